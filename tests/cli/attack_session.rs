//! Attacks on the day's changes: reading the merged tree through symlinks, insert, repack,
//! the temp sweep, warnings, escaping and the registry client's redirects.

use std::path::Path;

use crate::util::*;

/// A layout `lay` whose image `t` is `layers` (plain tars) in order.
fn layered(dir: &Path, layers: &[Vec<u8>]) -> String {
    let layout = strata::Layout::init(dir.join("lay")).unwrap();
    let layers: Vec<_> = layers.iter().map(|t| (t.clone(), Packing::Plain)).collect();
    write_layered_image(&layout, "t", &layers, serde_json::json!({}));
    s(&dir.join("lay")).to_owned()
}

/// `files --json`'s link targets, by path.
fn link_targets(image: &str) -> Vec<(String, String)> {
    json(&["files", image, "--json"])["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            Some((
                f["path"].as_str()?.to_owned(),
                f["link"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn flatten_and_export_keep_symlink_targets_byte_for_byte() {
    let dir = tempdir();
    let mut t = TarBuilder::new();
    t.dir("usr/", 0o755).dir("usr/bin/", 0o755);
    t.symlink("root", "/")
        .symlink("slash", "usr/bin/")
        .symlink("double", "usr//bin")
        .symlink("dot", "./usr/./bin");
    let lay = layered(dir.path(), &[t.finish()]);
    let image = format!("{lay}:t");
    let original = link_targets(&image);
    assert_eq!(original.len(), 4, "{original:?}");

    ok(&["flatten", &image, "--tag", "flat"]);
    assert_eq!(link_targets(&format!("{lay}:flat")), original, "flatten");

    let archive = dir.path().join("rootfs.tar");
    ok(&["export", &image, "--format", "rootfs", "-o", s(&archive)]);
    let listed = peer_ok("tar", &["-tvf", s(&archive)]);
    for (path, target) in &original {
        let line = format!("{} -> {target}\n", path.trim_start_matches('/'));
        assert!(listed.contains(&line), "export: {line:?} in\n{listed}");
    }
}

/// Layers writing, whiting out or linking through a symlink loop (`a -> b -> a`).
fn looped(dir: &Path, upper: Vec<u8>) -> String {
    let mut t = TarBuilder::new();
    t.dir("usr/", 0o755).file("usr/f", b"f\n", 0o644);
    t.symlink("a", "b").symlink("b", "a");
    layered(dir, &[t.finish(), upper])
}

#[test]
fn reading_through_a_symlink_loop_fails_as_unpack_does() {
    type Upper = fn(&mut TarBuilder);
    let uppers: [(&str, Upper); 4] = [
        ("file", |t| {
            t.file("a/x", b"x\n", 0o644);
        }),
        ("whiteout", |t| {
            t.whiteout("a", "x");
        }),
        ("opaque", |t| {
            t.opaque("a");
        }),
        ("hardlink", |t| {
            t.hardlink("x", "a/f");
        }),
    ];
    for (what, upper) in uppers {
        let dir = tempdir();
        let mut t = TarBuilder::new();
        upper(&mut t);
        let lay = looped(dir.path(), t.finish());
        let image = format!("{lay}:t");
        let err = fails(&["unpack", &image, s(&dir.path().join("b"))], 1);
        assert!(
            err.contains("too many levels of symbolic links"),
            "{what}: {err}"
        );
        assert!(!err.contains("os error"), "{what}: {err}");
        // What unpack refuses, the readers refuse: a flattened image must unpack as the
        // original does (it made `a` a directory where unpack met ELOOP).
        for args in [
            vec!["files", image.as_str()],
            vec!["flatten", image.as_str(), "--tag", "flat"],
            vec!["diff", image.as_str(), image.as_str()],
        ] {
            let err = fails(&args, 1);
            assert!(
                err.contains("too many levels of symbolic links"),
                "{what} {args:?}: {err}"
            );
        }
        let out = dir.path().join("r.tar");
        fails(&["export", &image, "--format", "rootfs", "-o", s(&out)], 1);
        assert!(!out.exists(), "{what}: export left {out:?}");
    }
}

#[test]
fn a_loopback_registry_cannot_send_strata_to_plain_http_elsewhere() {
    if !peer("python3") {
        return;
    }
    let dir = tempdir();
    // TEST-NET-1: never reached by a strata that refuses the redirect.
    let (server, port) =
        super::registry_downgrade::start_redirector(dir.path(), "http://192.0.2.1:9", false);
    let image = format!("docker://127.0.0.1:{port}/app:1");
    let started = std::time::Instant::now();
    let err = fails(&["pull", &image, s(&dir.path().join("lay"))], 1);
    assert!(
        err.contains("plain HTTP") && err.contains("refused"),
        "{err}"
    );
    assert!(err.contains("192.0.2.1"), "{err}");
    assert!(
        started.elapsed().as_secs() < 5,
        "it tried the target: {err}"
    );
    drop(server);
}

#[test]
fn insert_applies_cp_rules_through_symlinked_directories() {
    let dir = tempdir();
    let mut t = TarBuilder::new();
    t.dir("usr/", 0o755).dir("usr/bin/", 0o755);
    t.file("usr/bin/sh", b"sh\n", 0o755);
    t.dir("usr/bin/sub/", 0o755)
        .file("usr/bin/sub/keep", b"k\n", 0o644);
    t.symlink("bin", "usr/bin");
    let lay = layered(dir.path(), &[t.finish()]);
    let image = format!("{lay}:t");
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"f\n");
    let file = dir.path().join("file");
    write(&file, b"file\n");
    let index = std::fs::read(dir.path().join("lay/index.json")).unwrap();
    // /bin/sh is usr/bin/sh and /bin/sub usr/bin/sub, as unpack takes them: refused as the
    // same paths named directly are.
    for (src, dest, says) in [
        (&tree, "/bin/sh", "the image has a file there"),
        (&file, "/bin/sub", "the image has a directory there"),
        (&file, "/bin/sh/", "not a directory in the image"),
    ] {
        let err = fails(&["insert", &image, s(src), dest], 1);
        assert!(err.contains(says), "{dest}: {err}");
    }
    assert_eq!(
        std::fs::read(dir.path().join("lay/index.json")).unwrap(),
        index
    );
    // Into the directory behind the link is what cp does.
    ok(&["insert", &image, s(&file), "/bin/", "--tag", "into"]);
    assert_eq!(
        ok_bytes(&["cat", &format!("{lay}:into"), "/usr/bin/file"]),
        b"file\n"
    );
    // --replace still replaces, through the link.
    ok(&[
        "insert",
        &image,
        s(&file),
        "/bin/sub",
        "--replace",
        "--tag",
        "gone",
    ]);
    assert_eq!(
        ok_bytes(&["cat", &format!("{lay}:gone"), "/usr/bin/sub"]),
        b"file\n"
    );
}

#[test]
fn cat_of_a_file_named_with_a_trailing_slash_fails_as_the_kernel_does() {
    let dir = tempdir();
    let mut t = TarBuilder::new();
    t.dir("usr/", 0o755).file("usr/sh", b"sh\n", 0o755);
    t.symlink("link", "usr/sh");
    let lay = layered(dir.path(), &[t.finish()]);
    let image = format!("{lay}:t");
    assert_eq!(ok_bytes(&["cat", &image, "/usr/sh"]), b"sh\n");
    for path in ["/usr/sh/", "/usr/sh/.", "/link/"] {
        let run = run(&["cat", &image, path]);
        assert_eq!(run.code, 1, "{path}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{path}: printed {:?}", run.stdout);
        assert!(
            run.stderr.contains("not a directory"),
            "{path}: {}",
            run.stderr
        );
    }
}

#[test]
fn fsck_problems_escape_the_names_a_layout_holds() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:a", s(&lay))]);
    write(
        &lay.join("blobs/sha256/bad\u{1b}[2J\nproblem: forged"),
        b"x",
    );
    let run = run(&["fsck", s(&lay)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stdout.contains('\u{1b}'), "{:?}", run.stdout);
    let problems: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .collect();
    assert_eq!(problems.len(), 1, "{:?}", run.stdout);
    assert!(
        problems[0].contains("bad\\u{1b}[2J\\nproblem: forged"),
        "{problems:?}"
    );
}

#[test]
fn flatten_and_export_keep_a_symlink_target_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempdir();
    let mut t = TarBuilder::new();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    t.raw(h, b"link", Some(b"a\xff\xfeb"), b"");
    let lay = layered(dir.path(), &[t.finish()]);
    let image = format!("{lay}:t");
    ok(&["flatten", &image, "--tag", "flat"]);
    let archive = dir.path().join("rootfs.tar");
    ok(&["export", &image, "--format", "rootfs", "-o", s(&archive)]);
    let extracted = dir.path().join("x");
    std::fs::create_dir(&extracted).unwrap();
    peer_ok("tar", &["-xf", s(&archive), "-C", s(&extracted)]);
    for (what, rootfs) in [
        ("unpack", {
            ok(&["unpack", &image, s(&dir.path().join("u"))]);
            dir.path().join("u/rootfs")
        }),
        ("flatten", {
            ok(&["unpack", &format!("{lay}:flat"), s(&dir.path().join("f"))]);
            dir.path().join("f/rootfs")
        }),
        ("export", extracted.clone()),
    ] {
        let target = std::fs::read_link(rootfs.join("link")).unwrap();
        assert_eq!(target.as_os_str().as_bytes(), b"a\xff\xfeb", "{what}");
    }
    // diff sees no change between the two.
    assert_eq!(ok(&["diff", &image, &format!("{lay}:flat")]).trim(), "");
}
