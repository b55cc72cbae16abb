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
