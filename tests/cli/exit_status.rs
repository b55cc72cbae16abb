//! The exit status contract, command by command: 0 success, 1 the operation failed or found
//! a problem, 2 the invocation or its values are wrong, and a wrong invocation changes
//! nothing on disk.

use crate::util::*;

struct Fixture {
    _dir: tempfile::TempDir,
    lay: String,
    other: String,
    tree: String,
    tar: String,
    file: String,
    bundle: String,
    root: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempdir();
    let root = dir.path().to_owned();
    let lay = root.join("lay");
    let tree = root.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    write(&tree.join("etc/hello"), b"hi\n");
    ok(&["build", s(&tree), &format!("{}:app", s(&lay))]);
    ok(&["new", &format!("{}:two", s(&lay))]);
    let other = root.join("other");
    ok(&["new", &format!("{}:x", s(&other))]);
    let tar = root.join("layer.tar");
    write(&tar, &tar_layer("exit"));
    let file = root.join("f.txt");
    write(&file, b"x");
    let bundle = root.join("bundle");
    ok(&[
        "unpack",
        "--rootless",
        &format!("{}:app", s(&lay)),
        s(&bundle),
    ]);
    Fixture {
        lay: s(&lay).into(),
        other: s(&other).into(),
        tree: s(&tree).into(),
        tar: s(&tar).into(),
        file: s(&file).into(),
        bundle: s(&bundle).into(),
        root,
        _dir: dir,
    }
}

/// Every invocation error exits 2 and leaves the layout byte for byte as it was.
#[test]
fn wrong_invocations_exit_2_and_change_nothing() {
    let f = fixture();
    let app = format!("{}:app", f.lay);
    let bad_ref = format!("{}:bad tag", f.lay);
    let archive = f.root.join("a.tar");
    ok(&["export", &app, "-o", s(&archive)]);
    let other_ref = format!("{}:x", f.other);
    let idx = format!("{}:idx", f.lay);
    let digest_dst = format!("{}@sha256:{}", f.other, "a".repeat(64));
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("inspect: tag syntax", vec!["inspect", &bad_ref]),
        (
            "inspect: platform",
            vec!["inspect", &app, "--platform", "nonsense"],
        ),
        ("inspect: no image named", vec!["inspect", &f.lay]),
        ("inspect: no layout", vec!["inspect", ":app"]),
        ("tag: new tag syntax", vec!["tag", &app, "-bad"]),
        ("untag: no tag", vec!["untag", &f.lay]),
        ("new: no tag", vec!["new", &f.lay]),
        ("new: tag syntax", vec!["new", &bad_ref]),
        (
            "build: --clear value",
            vec!["build", &f.tree, &app, "--clear", "everything"],
        ),
        (
            "build: --created",
            vec!["build", &f.tree, &app, "--created", "yesterday"],
        ),
        (
            "build: --set-platform",
            vec!["build", &f.tree, &app, "--set-platform", "x"],
        ),
        (
            "config: --clear value",
            vec!["config", &app, "--clear", "nope"],
        ),
        ("config: --tag syntax", vec!["config", &app, "--tag", "a b"]),
        (
            "config: --history-created",
            vec!["config", &app, "--history-created", "x"],
        ),
        (
            "add-layer: --tag",
            vec!["add-layer", &app, &f.tar, "--tag", "-x"],
        ),
        (
            "insert: DEST outside",
            vec!["insert", &app, &f.file, "../x"],
        ),
        (
            "insert: DEST relative",
            vec!["insert", &app, &f.file, "etc/x"],
        ),
        ("repack: --tag", vec!["repack", &f.bundle, "--tag", "a b"]),
        (
            "export: --all-platforms docker",
            vec![
                "export",
                &app,
                "-o",
                "x.tar",
                "--format",
                "docker",
                "--all-platforms",
            ],
        ),
        (
            "import: --tag",
            vec!["import", s(&archive), &f.other, "--tag", "no good"],
        ),
        ("copy: digest destination", vec!["copy", &app, &digest_dst]),
        (
            "artifact push: no tag",
            vec![
                "artifact",
                "push",
                "--disable-path-validation",
                &f.lay,
                "--artifact-type",
                "a/b",
                &f.file,
            ],
        ),
        ("referrers: tag syntax", vec!["referrers", &bad_ref]),
        (
            "index create: other layout",
            vec!["index", "create", &idx, "--manifest", &other_ref],
        ),
        (
            "unpack: platform",
            vec!["unpack", &app, "b2", "--platform", "/"],
        ),
        ("clap: unknown flag", vec!["ls", &f.lay, "--no-such-flag"]),
    ];
    let before = snapshot(std::path::Path::new(&f.lay));
    let other_before = snapshot(std::path::Path::new(&f.other));
    for (what, args) in &cases {
        let r = run(args);
        assert_eq!(r.code, 2, "{what}: strata {args:?}\nstderr: {}", r.stderr);
        assert!(
            r.stderr.contains("error"),
            "{what}: no error message: {}",
            r.stderr
        );
    }
    assert!(
        snapshot(std::path::Path::new(&f.lay)) == before,
        "the layout changed"
    );
    assert!(
        snapshot(std::path::Path::new(&f.other)) == other_before,
        "the other layout changed"
    );
}

/// An operation that fails on good arguments exits 1.
#[test]
fn failed_operations_exit_1() {
    let f = fixture();
    let missing = f.root.join("missing");
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("ls: no layout", vec!["ls".into(), s(&missing).into()]),
        (
            "inspect: unknown tag",
            vec!["inspect".into(), format!("{}:nope", f.lay)],
        ),
        (
            "build: no tree",
            vec!["build".into(), s(&missing).into(), format!("{}:b", f.lay)],
        ),
        (
            "import: no archive",
            vec!["import".into(), s(&missing).into(), f.other.clone()],
        ),
        ("fsck: not a layout", vec!["fsck".into(), f.tree.clone()]),
    ];
    for (what, args) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args);
        assert_eq!(r.code, 1, "{what}: strata {args:?}\nstderr: {}", r.stderr);
    }
    // fsck finding a problem is 1 too.
    let blob = std::fs::read_dir(std::path::Path::new(&f.lay).join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    fails(&["fsck", &f.lay], 1);
}
