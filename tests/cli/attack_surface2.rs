//! A second pass over issue 12's surface promises, as a user coming from umoci, skopeo,
//! crane and oras and as a script author would try them.

use crate::util::*;

/// `init` of a layout that is there already says so, empty or not (as `git init` does), and
/// `-q` keeps it quiet; nothing changes.
#[test]
fn init_of_an_existing_empty_layout_says_so() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["init", s(&lay)]);
    let before = snapshot(&lay);
    let again = run(&["init", s(&lay)]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("layout already") && again.stderr.contains(s(&lay)),
        "{}",
        again.stderr
    );
    assert_eq!(again.stdout, "");
    let quiet = run(&["-q", "init", s(&lay)]);
    assert_eq!(
        (quiet.code, quiet.stdout.as_str(), quiet.stderr.as_str()),
        (0, "", "")
    );
    assert_eq!(before, snapshot(&lay));
}

/// `insert --whiteout PATH` takes PATH as DEST is taken: an absolute path in the image, the
/// root and `..` refused; a PATH that does not parse is the invocation's fault (exit 2, the
/// flag named) and nothing is written.
#[test]
fn insert_whiteout_path_is_checked_as_dest_is() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:t", s(&lay))]);
    let before = snapshot(&lay);
    let image = format!("{}:t", s(&lay));
    for path in [
        "etc/motd",
        "/",
        "//",
        "/a/../b",
        "/.wh.x",
        "/a/.wh..wh..opq",
    ] {
        let err = fails(&["insert", &image, "--whiteout", path], 2);
        assert!(err.contains("--whiteout"), "{path}: {err}");
        assert!(err.contains(path), "{path}: {err}");
    }
    assert_eq!(before, snapshot(&lay));
}
