//! Attacks on the commands that read local trees and write files, each one a hole found
//! and closed: a hostile bundle snapshot, whiteout names that mean something else, an
//! opaque marker under a file, and a bundle refreshed after the running container changed
//! it again.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::build::{at, layer_tar, layers, strata_unpack};
use crate::util::{ok, peer, run, s, snapshot, strata_bin, tempdir, write_artifact};

/// A layout with image `base` built from a small tree, and a bundle unpacked from it.
fn bundle_of_base(dir: &Path) -> (PathBuf, PathBuf) {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    std::fs::write(tree.join("a/b/f"), b"f\n").unwrap();
    std::fs::write(tree.join("top"), b"top\n").unwrap();
    let layout = dir.join("l");
    ok(&[
        "build",
        s(&tree),
        &at(&layout, "base"),
        "--compress",
        "none",
    ]);
    let bundle = dir.join("bundle");
    strata_unpack(&at(&layout, "base"), &bundle);
    (layout, bundle)
}

/// Runs strata, asserting it fails cleanly (no panic) with `needle` in its message and
/// leaves `layout` byte for byte as it was.
fn refused(args: &[&str], layout: &Path, needle: &str) {
    let before = snapshot(layout);
    let r = run(args);
    assert!(
        r.code != 0 && !r.stderr.contains("panicked"),
        "strata {args:?} should fail cleanly ({}):\n{}\n{}",
        r.code,
        r.stdout,
        r.stderr
    );
    assert!(
        r.stderr.contains(needle),
        "strata {args:?}: {needle:?} not in: {}",
        r.stderr
    );
    assert!(
        snapshot(layout) == before,
        "strata {args:?} changed the layout"
    );
}

// ---------------------------------------------------------------------------------------
// A hostile snapshot file cannot put `..` or empty names in a layer
// ---------------------------------------------------------------------------------------

#[test]
fn repack_refuses_a_snapshot_whose_paths_are_not_plain_relative_paths() {
    let dir = tempdir();
    let (layout, bundle) = bundle_of_base(dir.path());
    let snap = bundle.join("strata-snapshot.jsonl");
    let good = std::fs::read_to_string(&snap).unwrap();
    // Each line records a path that cannot be in a rootfs; as a "deleted" path it became a
    // whiteout named `../.wh.`, `a/../.wh.` or `.wh.` (the directory itself, to some
    // appliers: everything).
    for bad in [
        r#"{"path":"..","type":"file","mode":420,"uid":0,"gid":0,"size":0,"mtime":0,"mtime_nsec":0,"ctime":0,"ctime_nsec":0,"ino":1}"#,
        r#"{"path":"a/..","type":"dir","mode":493,"uid":0,"gid":0,"size":0,"mtime":0,"mtime_nsec":0,"ctime":0,"ctime_nsec":0,"ino":1}"#,
        r#"{"path":"","type":"dir","mode":493,"uid":0,"gid":0,"size":0,"mtime":0,"mtime_nsec":0,"ctime":0,"ctime_nsec":0,"ino":1}"#,
        r#"{"pathB64":"!!not base64!!","type":"file","mode":420,"uid":0,"gid":0,"size":0,"mtime":0,"mtime_nsec":0,"ctime":0,"ctime_nsec":0,"ino":1}"#,
        r#"{"type":"file","mode":420,"uid":0,"gid":0,"size":0,"mtime":0,"mtime_nsec":0,"ctime":0,"ctime_nsec":0,"ino":1}"#,
        r#"{"path":"/etc/passwd","type":"file","mode":420,"uid":0,"gid":0,"size":0,"mtime":0,"mtime_nsec":0,"ctime":0,"ctime_nsec":0,"ino":1}"#,
        r#"{"path":"a/./b","type":"dir","mode":493,"uid":0,"gid":0,"size":0,"mtime":0,"mtime_nsec":0,"ctime":0,"ctime_nsec":0,"ino":1}"#,
    ] {
        std::fs::write(&snap, format!("{good}{bad}\n")).unwrap();
        refused(
            &["repack", s(&bundle), "--tag", "x", "--compress", "none"],
            &layout,
            "strata-snapshot.jsonl",
        );
    }
    // The untouched snapshot still repacks.
    std::fs::write(&snap, &good).unwrap();
    ok(&["repack", s(&bundle), "--tag", "x", "--compress", "none"]);
}

// ---------------------------------------------------------------------------------------
// insert: whiteout names and opaque markers that mean something else
// ---------------------------------------------------------------------------------------

#[test]
fn insert_whiteout_refuses_names_that_would_be_whiteouts_themselves() {
    let dir = tempdir();
    let (layout, _) = bundle_of_base(dir.path());
    // `--whiteout /a/.wh..opq` wrote `a/.wh..wh..opq`: an opaque marker, hiding all of /a,
    // not the deletion of one (impossible) name.
    for bad in ["/a/.wh..opq", "/a/.wh.b", "/.wh..wh..opq"] {
        refused(
            &[
                "insert",
                &at(&layout, "base"),
                "--whiteout",
                bad,
                "--tag",
                "x",
            ],
            &layout,
            ".wh.",
        );
    }
    ok(&[
        "insert",
        &at(&layout, "base"),
        "--whiteout",
        "/a/b",
        "--tag",
        "x",
    ]);
}

#[test]
fn insert_opaque_needs_a_directory() {
    let dir = tempdir();
    let (layout, _) = bundle_of_base(dir.path());
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    // A file at /a with `a/.wh..wh..opq` after it: an entry under a regular file.
    refused(
        &[
            "insert",
            &at(&layout, "base"),
            s(&file),
            "/a",
            "--opaque",
            "--tag",
            "x",
        ],
        &layout,
        "--opaque",
    );
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path().join("tree"), &link).unwrap();
    refused(
        &[
            "insert",
            &at(&layout, "base"),
            s(&link),
            "/a",
            "--opaque",
            "--tag",
            "x",
        ],
        &layout,
        "--opaque",
    );
}

// ---------------------------------------------------------------------------------------
// --refresh-bundle never records a change the layer does not hold
// ---------------------------------------------------------------------------------------

#[test]
fn refresh_bundle_keeps_a_change_made_after_the_layer_was_written() {
    if !peer("strace") {
        eprintln!("SKIPPED: needs strace");
        return;
    }
    let dir = tempdir();
    let (layout, bundle) = bundle_of_base(dir.path());
    let rootfs = bundle.join("rootfs");
    std::fs::write(rootfs.join("top"), b"first change\n").unwrap();
    // Every rename is held for a while once done: once index.json names the new tag, the
    // layer is written and the tag moved, and the "container" changes a file again before
    // the bundle is refreshed.
    let child = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg("inject=rename,renameat,renameat2:delay_exit=1500000")
        .arg("--")
        .arg(strata_bin())
        .args([
            "repack",
            s(&bundle),
            "--refresh-bundle",
            "--tag",
            "x",
            "--compress",
            "none",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running strace");
    let start = Instant::now();
    while !std::fs::read_to_string(layout.join("index.json"))
        .unwrap()
        .contains("\"x\"")
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no tag x");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(rootfs.join("top"), b"second change, after the layer\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The next repack must carry the second change: the refreshed snapshot may not have
    // recorded it as already in the image.
    ok(&[
        "repack",
        s(&bundle),
        "--tag",
        "y",
        "--compress",
        "none",
        "--refresh-bundle",
    ]);
    let all = layers(&layout, "y");
    let tar = layer_tar(&layout, all.last().unwrap());
    let mut archive = tar::Archive::new(&tar[..]);
    let mut top = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if &*entry.path_bytes() == b"top" {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut body).unwrap();
            top = Some(body);
        }
    }
    assert_eq!(
        top.as_deref(),
        Some(&b"second change, after the layer\n"[..]),
        "the change made after the first layer was written is lost"
    );
}

// ---------------------------------------------------------------------------------------
// A tree deeper than a thread's stack or the open file limit
// ---------------------------------------------------------------------------------------

/// Makes `levels` nested directories `d` under `root` (one name at a time: the path is far
/// longer than PATH_MAX) with a file `f` at the bottom.
fn deep_tree(root: &Path, levels: usize) {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    std::fs::create_dir_all(root).unwrap();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = openat(rustix::fs::CWD, root, flags, Mode::empty()).unwrap();
    for _ in 0..levels {
        mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
        dir = openat(&dir, "d", flags, Mode::empty()).unwrap();
    }
    let f = openat(
        &dir,
        "f",
        OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    rustix::io::write(&f, b"deep").unwrap();
}

#[test]
fn a_tree_thousands_of_directories_deep_builds_or_fails_cleanly() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    deep_tree(&tree, 4000);
    let layout = dir.path().join("l");
    ok(&["new", &at(&layout, "keep")]);
    // Walked by recursion, this overflowed the stack of the thread writing the layer:
    // strata aborted (SIGABRT) instead of building or failing with a message.
    for args in [
        vec!["build", s(&tree), "l:deep", "--compress", "none"],
        vec![
            "insert",
            "l:keep",
            s(&tree),
            "/deep",
            "--tag",
            "ins",
            "--compress",
            "none",
        ],
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("l:", &format!("{}:", s(&layout))))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args);
        if r.code != 0 {
            assert!(
                r.stderr.contains("Too many open files") && !r.stderr.contains("panicked"),
                "strata {args:?}: {}",
                r.stderr
            );
        }
    }
    // With few handles allowed, a clean error naming the directory, and nothing written.
    let before = snapshot(&layout);
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" build \"$1\" \"$2\" --compress none")
        .arg(strata_bin())
        .arg(&tree)
        .arg(at(&layout, "few"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Too many open files") && stderr.contains("tree/d/d/d"),
        "{stderr}"
    );
    assert!(
        snapshot(&layout) == before,
        "a failed build changed the layout"
    );
}

// ---------------------------------------------------------------------------------------
// artifact pull: a failure while files are renamed into place undoes the ones placed
// ---------------------------------------------------------------------------------------

/// Pulls `reference` into `dir` under strace, each rename held 1.5 s once done; when
/// `first` has its pulled content, runs `meanwhile`. Returns strata's exit code and stderr.
fn pull_with_a_change_between_renames(
    reference: &str,
    dir: &Path,
    extra: &[&str],
    first: &str,
    meanwhile: impl FnOnce(),
) -> (i32, String) {
    let child = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg("inject=rename,renameat,renameat2:delay_exit=1500000")
        .arg("--")
        .arg(strata_bin())
        .args(["artifact", "pull", reference, s(dir)])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running strace");
    let start = Instant::now();
    while std::fs::read(dir.join(first)).ok().as_deref() != Some(b"pulled a\n") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{first} never came"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    meanwhile();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The names in `dir` (no temporary file may be left).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn artifact_pull_failing_midway_leaves_the_directory_as_it_was() {
    if !peer("strace") {
        eprintln!("SKIPPED: needs strace");
        return;
    }
    let top = tempdir();
    let layout = strata::Layout::init(top.path().join("lay")).unwrap();
    write_artifact(&layout, "two", &[("a", "pulled a\n"), ("b", "pulled b\n")]);
    let reference = at(layout.root(), "two");

    // Without --overwrite: `b` appears once `a` is in place; the pull fails, and `a`,
    // which it put there, was left behind.
    let dir = top.path().join("fresh");
    std::fs::create_dir(&dir).unwrap();
    let (code, stderr) = pull_with_a_change_between_renames(&reference, &dir, &[], "a", || {
        std::fs::write(dir.join("b"), "the user's b\n").unwrap()
    });
    assert!(code != 0 && stderr.contains("appeared"), "{code}: {stderr}");
    assert_eq!(names_in(&dir), ["b"], "{stderr}");
    assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"the user's b\n");

    // With --overwrite: `a` replaced, then `b` turns into a directory; the pull fails, and
    // the user's old `a` was gone for good.
    let dir = top.path().join("old");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a"), "old a\n").unwrap();
    std::fs::write(dir.join("b"), "old b\n").unwrap();
    let (code, stderr) =
        pull_with_a_change_between_renames(&reference, &dir, &["--overwrite"], "a", || {
            std::fs::remove_file(dir.join("b")).unwrap();
            std::fs::create_dir(dir.join("b")).unwrap();
        });
    assert!(code != 0 && stderr.contains("/b"), "{code}: {stderr}");
    assert_eq!(names_in(&dir), ["a", "b"], "{stderr}");
    assert_eq!(
        std::fs::read(dir.join("a")).unwrap(),
        b"old a\n",
        "{stderr}"
    );
    assert!(dir.join("b").is_dir());

    // Undisturbed, --overwrite replaces both and leaves nothing else.
    std::fs::remove_dir(dir.join("b")).unwrap();
    std::fs::write(dir.join("b"), "old b\n").unwrap();
    ok(&["artifact", "pull", &reference, s(&dir), "--overwrite"]);
    assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"pulled a\n");
    assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"pulled b\n");
    assert_eq!(names_in(&dir), ["a", "b"]);
}

// ---------------------------------------------------------------------------------------
// An xattr whose name is not UTF-8
// ---------------------------------------------------------------------------------------

#[test]
fn an_xattr_name_that_is_not_utf8_is_refused_not_renamed() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/file"), b"x").unwrap();
    let name = OsStr::from_bytes(b"user.caf\xe9");
    for entry in ["sub", "sub/file"] {
        if rustix::fs::lsetxattr(
            tree.join(entry),
            name,
            b"1",
            rustix::fs::XattrFlags::empty(),
        )
        .is_err()
        {
            eprintln!("SKIPPED: no user xattrs here");
            return;
        }
        let layout = dir.path().join(format!("l-{}", entry.replace('/', "-")));
        ok(&["new", &at(&layout, "keep")]);
        // It went into the layer as `user.caf\u{fffd}`: another xattr than the tree has.
        refused(
            &["build", s(&tree), &at(&layout, "t"), "--compress", "none"],
            &layout,
            "not UTF-8",
        );
        let r = run(&["build", s(&tree), &at(&layout, "t"), "--compress", "none"]);
        assert!(
            r.stderr.contains(s(&tree.join(entry))),
            "the error names the entry: {}",
            r.stderr
        );
        rustix::fs::lremovexattr(tree.join(entry), name).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Masks that are the root leave out every change
// ---------------------------------------------------------------------------------------

#[test]
fn repack_never_masks_the_whole_rootfs() {
    let dir = tempdir();
    let (layout, _) = bundle_of_base(dir.path());
    // An image whose config declares `/` (or `/..`) a volume: every change was masked, and
    // the repack reported 0 added and wrote no layer.
    ok(&[
        "config",
        &at(&layout, "base"),
        "--volume",
        "/",
        "--volume",
        "/..",
    ]);
    ok(&["config", &at(&layout, "base"), "--volume", "/a/../data"]);
    let bundle = dir.path().join("bundle-vol");
    strata_unpack(&at(&layout, "base"), &bundle);
    std::fs::write(bundle.join("rootfs/new"), b"new\n").unwrap();
    std::fs::create_dir_all(bundle.join("rootfs/a/data")).unwrap();
    std::fs::write(bundle.join("rootfs/a/data/kept"), b"kept\n").unwrap();
    std::fs::create_dir_all(bundle.join("rootfs/data")).unwrap();
    std::fs::write(bundle.join("rootfs/data/masked"), b"masked\n").unwrap();
    let report = crate::util::json(&[
        "repack",
        s(&bundle),
        "--tag",
        "x",
        "--compress",
        "none",
        "--json",
    ]);
    // `new`, and `a/data/kept` with its directory (`/a/../data` is `/data`, not `/a/data`).
    assert_eq!(report["added"], 3, "{report}");
    // A mask the user gives that is the root, or climbs, is refused.
    for bad in ["/", "..", "/x/../..", "/a/../b"] {
        refused(
            &["repack", s(&bundle), "--tag", "y", "--mask-path", bad],
            &layout,
            "mask path",
        );
    }
}

// ---------------------------------------------------------------------------------------
// artifact pull: odd titles are refused cleanly and change nothing
// ---------------------------------------------------------------------------------------

#[test]
fn artifact_pull_odd_titles_fail_cleanly_or_stay_inside() {
    let top = tempdir();
    let layout = strata::Layout::init(top.path().join("lay")).unwrap();
    let long = "x".repeat(300);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("nul", vec![("a\0b", "1")]),
        ("long", vec![(long.as_str(), "1")]),
        ("dot", vec![(".", "1")]),
        ("empty", vec![("", "1")]),
        ("slash", vec![("/", "1")]),
        ("climb", vec![("a/../../x", "1")]),
        ("twice", vec![("a/", "1"), ("./a", "2")]),
        ("late", vec![("ok", "1"), ("a\0b", "2")]),
    ];
    for (tag, files) in &cases {
        write_artifact(&layout, tag, files);
    }
    let dir = top.path().join("pull");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep"), "mine\n").unwrap();
    for (tag, _) in &cases {
        let before = snapshot(top.path());
        let r = run(&["artifact", "pull", &at(layout.root(), tag), s(&dir)]);
        assert!(
            r.code != 0 && !r.stderr.contains("panicked") && r.stderr.contains("strata: error"),
            "{tag}: {} {}",
            r.code,
            r.stderr
        );
        assert!(snapshot(top.path()) == before, "{tag} changed something");
    }
    // Newline and unicode names are just names.
    write_artifact(
        &layout,
        "names",
        &[
            ("line\nbreak", "1"),
            ("caf\u{e9}", "2"),
            ("cafe\u{301}", "3"),
        ],
    );
    ok(&["artifact", "pull", &at(layout.root(), "names"), s(&dir)]);
    assert_eq!(names_in(&dir).len(), 4);
}

// ---------------------------------------------------------------------------------------
// A bundle's strata.json with an id map past u32::MAX
// ---------------------------------------------------------------------------------------

#[test]
fn repack_with_an_id_map_past_the_last_id_fails_cleanly() {
    if !crate::build::is_root() {
        eprintln!("SKIPPED: needs root to own a file as uid 1");
        return;
    }
    let dir = tempdir();
    let (layout, bundle) = bundle_of_base(dir.path());
    let rootfs = bundle.join("rootfs");
    std::fs::write(rootfs.join("owned"), b"x").unwrap();
    std::os::unix::fs::lchown(rootfs.join("owned"), Some(1), Some(1)).unwrap();
    // Host uid 1 is container uid 4294967295 + 1: it panicked (debug) or wrapped to 0, a
    // file of uid 1 made root's (release).
    let meta_path = bundle.join("strata.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["uidMap"] = serde_json::json!([{"containerID": 4294967295u32, "hostID": 0, "size": 10}]);
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    refused(
        &["repack", s(&bundle), "--tag", "x", "--compress", "none"],
        &layout,
        "outside the uid map",
    );
}

// ---------------------------------------------------------------------------------------
// artifact push: a file swapped for a FIFO after it was checked
// ---------------------------------------------------------------------------------------

#[test]
fn artifact_push_of_a_file_swapped_for_a_fifo_does_not_hang() {
    if !peer("strace") {
        eprintln!("SKIPPED: needs strace");
        return;
    }
    let dir = tempdir();
    let layout = dir.path().join("lay");
    ok(&["init", s(&layout)]);
    let file = dir.path().join("payload");
    std::fs::write(&file, b"payload\n").unwrap();
    let log = dir.path().join("strace.log");
    // Only the calls on `payload` are traced: its check (a stat) is held once done, and the
    // file becomes a FIFO before strata opens it.
    let mut child = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-o",
            s(&log),
            "-P",
            s(&file),
            "-e",
            "trace=statx",
        ])
        .arg("-e")
        .arg("inject=statx:delay_exit=1000000")
        .arg("--")
        .arg(strata_bin())
        .args([
            "artifact",
            "push",
            "--disable-path-validation",
            &at(&layout, "a"),
            "--artifact-type",
        ])
        .args(["application/x", s(&file)])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running strace");
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("DELAYED")
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no stat of the file"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::remove_file(&file).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &file,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let start = Instant::now();
    let mut hung = false;
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            // Blocked opening the FIFO: a writer lets it go on (and read nothing).
            hung = true;
            drop(std::fs::OpenOptions::new().write(true).open(&file));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !hung,
        "strata blocked opening a FIFO swapped in for the file"
    );
    // Read through the handle opened before the swap, or refused; never blocked.
    assert!(
        out.status.success() || (stderr.contains("payload") && stderr.contains("regular file")),
        "{stderr}"
    );
}

#[test]
fn a_refused_artifact_push_leaves_no_blob_behind() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempdir();
    let layout = dir.path().join("lay");
    ok(&["init", s(&layout)]);
    ok(&["new", &at(&layout, "keep")]);
    let good = dir.path().join("good");
    std::fs::write(&good, b"good\n").unwrap();
    let latin1 = dir.path().join(OsStr::from_bytes(b"caf\xe9"));
    std::fs::write(&latin1, b"not a title\n").unwrap();
    std::fs::create_dir(dir.path().join("other")).unwrap();
    let same = dir.path().join("other/good");
    std::fs::write(&same, b"same name\n").unwrap();
    let push = |files: &[&str]| -> Vec<String> {
        let mut args = vec![
            "artifact",
            "push",
            "--disable-path-validation",
            "--artifact-type",
            "application/x",
        ];
        args.extend_from_slice(files);
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.insert(2, at(&layout, "a"));
        args
    };
    // The good file's blob was written before the bad name was found, and stayed.
    let before = snapshot(&layout);
    let args = push(&[s(&good)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = crate::util::strata(&args).arg(&latin1).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("UTF-8"),
        "{stderr}"
    );
    assert!(
        snapshot(&layout) == before,
        "a refused push left blobs behind"
    );
    // Two files titled alike: an artifact no pull could write.
    let args = push(&[s(&good), s(&same)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(&args, &layout, "same name");
    // A FIFO in the list, after a good file.
    let fifo = dir.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let args = push(&[s(&good), s(&fifo)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(&args, &layout, "not a regular file");
}
