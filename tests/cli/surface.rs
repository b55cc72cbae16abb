//! The command-line surface of issue 12: config edits that remove what was set, values
//! checked when they are given, insert like cp, unpack --rootfs-only like unpack, and
//! messages that say what happened.

use crate::util::*;

fn config_of(reference: &str) -> serde_json::Value {
    json(&["inspect", reference, "--raw", "config"])
}

#[test]
fn unset_env_and_label_remove_only_what_they_name() {
    let dir = tempdir();
    let image = format!("{}:app", s(&dir.path().join("lay")));
    ok(&["new", &image]);
    ok(&[
        "config", &image, "--env", "A=1", "--env", "B=2", "--label", "x=1", "--label", "y=2",
    ]);
    ok(&[
        "config",
        &image,
        "--unset-env",
        "A",
        "--unset-label",
        "x",
        "--env",
        "C=3",
    ]);
    let c = config_of(&image);
    assert_eq!(c["config"]["Env"], serde_json::json!(["B=2", "C=3"]), "{c}");
    assert_eq!(c["config"]["Labels"], serde_json::json!({"y": "2"}), "{c}");
    // Removing what is not there is not an error.
    ok(&["config", &image, "--unset-env", "NOPE"]);
}

#[test]
fn config_values_are_checked_when_given() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = format!("{}:app", s(&lay));
    ok(&["new", &image]);
    ok(&[
        "config",
        &image,
        "--expose",
        "8080",
        "--expose",
        "53/udp",
        "--stop-signal",
        "SIGQUIT",
        "--volume",
        "/data",
        "--workdir",
        "/srv",
    ]);
    let c = config_of(&image);
    assert_eq!(
        c["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    let before = snapshot(&lay);
    for (flag, value) in [
        ("--expose", "http"),
        ("--expose", "70000"),
        ("--expose", "80/tcp6"),
        ("--stop-signal", "SIGFOO"),
        ("--stop-signal", "0"),
        ("--volume", "data"),
        ("--workdir", "srv"),
    ] {
        let err = fails(&["config", &image, flag, value], 2);
        assert!(err.contains(value), "{flag} {value}: {err}");
    }
    assert!(
        snapshot(&lay) == before,
        "a refused edit changed the layout"
    );
}

/// Every key of a `--json` document, at every depth, is camelCase (as the OCI documents).
fn assert_camel_case(doc: &serde_json::Value, what: &str) {
    match doc {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let first_lower = key.chars().next().is_some_and(|c| c.is_ascii_lowercase());
                // Keys that are data (annotations, labels, paths) are not names of fields.
                let is_data = key.contains('.') || key.contains('/') || key.contains(':');
                assert!(
                    is_data || (first_lower && !key.contains('_') && !key.contains('-')),
                    "{what}: key {key:?} is not camelCase in {doc}"
                );
                if !is_data {
                    assert_camel_case(value, what);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| assert_camel_case(i, what)),
        _ => {}
    }
}

/// The document every writer prints with --json: the layout, the tag, and the descriptor of
/// what it wrote, which `inspect` then resolves to the same digest.
fn assert_written(doc: &serde_json::Value, lay: &str, tag: Option<&str>, what: &str) {
    assert_eq!(doc["schemaVersion"], 1, "{what}: {doc}");
    assert_eq!(doc["layout"], lay, "{what}: {doc}");
    assert_eq!(doc["tag"].as_str(), tag, "{what}: {doc}");
    let digest = doc["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {doc}"));
    assert!(digest.starts_with("sha256:"), "{what}: {doc}");
    assert!(doc["size"].as_i64().is_some_and(|n| n > 0), "{what}: {doc}");
    assert!(
        doc["mediaType"]
            .as_str()
            .is_some_and(|m| m.starts_with("application/vnd.oci")),
        "{what}: {doc}"
    );
    assert_camel_case(doc, what);
    let inspected = json(&["inspect", &format!("{lay}@{digest}"), "--raw", "manifest"]);
    assert!(inspected.is_object() || inspected.is_array(), "{what}");
    if let Some(tag) = tag {
        let by_tag = ok(&["inspect", &format!("{lay}:{tag}"), "--json"]);
        assert!(
            by_tag.contains(digest) || doc["mediaType"].as_str().unwrap().contains("index"),
            "{what}: {by_tag}"
        );
    }
}

#[test]
fn every_writer_prints_one_json_shape() {
    let dir = tempdir();
    let lay_path = dir.path().join("lay");
    let lay = s(&lay_path).to_owned();
    let at = |t: &str| format!("{lay}:{t}");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    write(&tree.join("etc/hello"), b"hi\n");
    let tar = dir.path().join("layer.tar");
    write(&tar, &tar_layer("json"));
    let file = dir.path().join("notes.txt");
    write(&file, b"notes");

    let doc = json(&["new", &at("empty"), "--json"]);
    assert_written(&doc, &lay, Some("empty"), "new");
    let doc = json(&["build", s(&tree), &at("app"), "--json"]);
    assert_written(&doc, &lay, Some("app"), "build");
    let doc = json(&["config", &at("app"), "--env", "A=1", "--json"]);
    assert_written(&doc, &lay, Some("app"), "config");
    let doc = json(&["add-layer", &at("app"), s(&tar), "--json"]);
    assert_written(&doc, &lay, Some("app"), "add-layer");
    let doc = json(&["insert", &at("app"), s(&file), "/etc/notes", "--json"]);
    assert_written(&doc, &lay, Some("app"), "insert");
    let app_digest = doc["digest"].as_str().unwrap().to_owned();
    let doc = json(&["tag", &at("app"), "v1", "--json"]);
    assert_written(&doc, &lay, Some("v1"), "tag");
    assert!(doc.get("movedFrom").is_none(), "{doc}");
    // Moving a tag says so, and from where.
    let r = run(&["tag", &at("empty"), "v1", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["movedFrom"], app_digest.as_str(), "{doc}");
    assert!(
        r.stderr.contains("moved tag v1") && r.stderr.contains(&app_digest),
        "{}",
        r.stderr
    );
    let doc = json(&[
        "index",
        "create",
        &at("multi"),
        "--manifest",
        &at("app"),
        "--json",
    ]);
    assert_written(&doc, &lay, Some("multi"), "index create");
    let doc = json(&[
        "artifact",
        "push",
        "--disable-path-validation",
        &at("notes"),
        "--artifact-type",
        "application/x.notes",
        s(&file),
        "--json",
    ]);
    assert_written(&doc, &lay, Some("notes"), "artifact push");
    let doc = json(&[
        "artifact",
        "attach",
        "--disable-path-validation",
        &at("app"),
        "--artifact-type",
        "application/x.notes",
        s(&file),
        "--json",
    ]);
    assert_written(&doc, &lay, None, "artifact attach");
    // Without --json, the digest alone.
    let text = ok(&["config", &at("app"), "--env", "B=2"]);
    assert!(
        text.trim().starts_with("sha256:") && text.lines().count() == 1,
        "{text}"
    );
}

/// Two users building the same files from different directories get the same history: no
/// host path is recorded.
#[test]
fn history_records_names_not_host_paths() {
    let dir = tempdir();
    let image = format!("{}:app", s(&dir.path().join("lay")));
    ok(&["new", &image]);
    let deep = dir.path().join("home/someone/work");
    std::fs::create_dir_all(&deep).unwrap();
    write(&deep.join("layer.tar"), &tar_layer("hist"));
    write(&deep.join("motd"), b"hello\n");
    ok(&["add-layer", &image, s(&deep.join("layer.tar"))]);
    ok(&["insert", &image, s(&deep.join("motd")), "/etc/motd"]);
    let config = json(&["inspect", &image, "--raw", "config"]);
    let history = config["history"].to_string();
    assert!(history.contains("strata add-layer layer.tar"), "{history}");
    assert!(
        history.contains("strata insert motd /etc/motd"),
        "{history}"
    );
    assert!(!history.contains("someone"), "{history}");
}

/// Lays out the same files as another user with another umask would: owners and group and
/// other permission bits differ, the content and execute bits do not.
fn checkout(root: &std::path::Path, owner: u32, group_writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    let file_mode = if group_writable { 0o664 } else { 0o644 };
    let dir_mode = if group_writable { 0o775 } else { 0o755 };
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc/app")).unwrap();
    write(&root.join("etc/app/config.toml"), b"answer = 42\n");
    write(&root.join("bin/run"), b"#!/bin/sh\necho run\n");
    std::os::unix::fs::symlink("../etc/app", root.join("bin/conf")).unwrap();
    for (rel, mode) in [
        ("", dir_mode),
        ("bin", dir_mode),
        ("etc", dir_mode),
        ("etc/app", dir_mode),
        ("etc/app/config.toml", file_mode),
        ("bin/run", file_mode | 0o111),
    ] {
        std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let status = std::process::Command::new("chown")
        .args(["-hR", &format!("{owner}:{owner}"), s(root)])
        .status()
        .unwrap();
    assert!(status.success() || rustix::process::geteuid().as_raw() != 0);
}

/// Two users on two machines building the same checkout with the same SOURCE_DATE_EPOCH get
/// the same digests: owners are recorded as 0:0, --normalize-modes takes the umask out, and
/// the directory the tree sits in is not recorded.
#[test]
fn builds_of_one_checkout_by_two_users_give_one_digest() {
    let dir = tempdir();
    let (a, b) = (
        dir.path().join("alice/src"),
        dir.path().join("elsewhere/bob/tree"),
    );
    checkout(&a, 1000, false);
    checkout(&b, 2000, true);
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let digest = |tree: &std::path::Path, lay: &str, extra: &[&str]| {
        let lay = dir.path().join(lay);
        let mut args = vec!["build", s(tree), "--normalize-modes", "-q"];
        args.extend(extra);
        let target = format!("{}:app", s(&lay));
        args.push(&target);
        let r = run_with_env(&args, &epoch);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout.trim().to_owned()
    };
    let first = digest(&a, "one", &[]);
    assert_eq!(
        first,
        digest(&b, "two", &[]),
        "the two users' builds differ"
    );
    // What is recorded: 0:0, modes normalised, the symlink as itself.
    let lay = dir.path().join("one");
    let bundle = dir.path().join("bundle");
    ok(&["unpack", &format!("{}:app", s(&lay)), s(&bundle)]);
    use std::os::unix::fs::MetadataExt;
    let run_meta = std::fs::symlink_metadata(bundle.join("rootfs/bin/run")).unwrap();
    assert_eq!(
        (run_meta.uid(), run_meta.gid(), run_meta.mode() & 0o7777),
        (0, 0, 0o755)
    );
    let conf = std::fs::symlink_metadata(bundle.join("rootfs/etc/app/config.toml")).unwrap();
    assert_eq!(conf.mode() & 0o7777, 0o644);
    // --keep-owners and --owner record what they say, and then the users differ.
    let kept = digest(&a, "kept", &["--keep-owners"]);
    assert_ne!(kept, first);
    let owned = digest(&a, "owned", &["--owner", "1000:1000"]);
    assert_eq!(owned, kept, "--owner 1000:1000 is what alice's files hold");
    fails(
        &[
            "build",
            s(&a),
            "--owner",
            "4294967295:0",
            &format!("{}:x", s(&lay)),
        ],
        2,
    );
}

fn files_of(image: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let bundle = dir.join(format!("b-{}", image.len() + dir.as_os_str().len()));
    let _ = std::fs::remove_dir_all(&bundle);
    ok(&["unpack", "--rootless", image, s(&bundle)]);
    bundle.join("rootfs")
}

/// insert as cp: DEST ending in / takes SRC under its own name; a file over a directory
/// the image has needs --replace; DEST must be absolute.
#[test]
fn insert_places_like_cp() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = format!("{}:app", s(&lay));
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("etc/conf.d")).unwrap();
    write(&tree.join("etc/conf.d/a.conf"), b"a\n");
    ok(&["build", s(&tree), &image]);
    let motd = dir.path().join("motd");
    write(&motd, b"hello\n");
    ok(&["insert", &image, s(&motd), "/etc/"]);
    ok(&["insert", &image, s(&motd), "/"]);
    let root = files_of(&image, dir.path());
    assert_eq!(std::fs::read(root.join("etc/motd")).unwrap(), b"hello\n");
    assert_eq!(std::fs::read(root.join("motd")).unwrap(), b"hello\n");

    // A file over the image's directory: refused, named, nothing written.
    let before = snapshot(&lay);
    let err = fails(&["insert", &image, s(&motd), "/etc/conf.d"], 1);
    assert!(
        err.contains("/etc/conf.d") && err.contains("--replace"),
        "{err}"
    );
    assert!(snapshot(&lay) == before);
    // Also when a lower layer made the directory only by a file inside it.
    let err = fails(&["insert", &image, s(&motd), "/etc"], 1);
    assert!(err.contains("directory"), "{err}");
    ok(&["insert", &image, s(&motd), "/etc/conf.d", "--replace"]);
    let root = files_of(&image, dir.path());
    assert_eq!(std::fs::read(root.join("etc/conf.d")).unwrap(), b"hello\n");
    // Once a whiteout removed the directory, no --replace is needed.
    ok(&["insert", &image, "--whiteout", "/etc/conf.d"]);
    ok(&["insert", &image, s(&motd), "/etc/conf.d"]);

    let err = fails(&["insert", &image, s(&motd), "etc/x"], 2);
    assert!(err.contains("absolute"), "{err}");
}

/// `-q` prints nothing but the result: stderr stays empty on success, and stdout holds only
/// digests (or the image lines of a transfer), never a summary.
#[test]
fn quiet_prints_only_results() {
    let dir = tempdir();
    let root = dir.path();
    let lay = s(&root.join("lay")).to_owned();
    let at = |t: &str| format!("{lay}:{t}");
    let tree = root.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    write(&tree.join("etc/x"), b"x\n");
    let file = root.join("f.txt");
    write(&file, b"f");
    let archive = root.join("a.tar");
    let (l2, l3, l4, bundle, pulled) = (
        root.join("l2"),
        root.join("l3"),
        root.join("l4"),
        root.join("bundle"),
        root.join("pulled"),
    );
    let digest_only = |out: &str| out.lines().all(|l| l.starts_with("sha256:"));
    let cases: Vec<Vec<String>> = vec![
        vec!["init".into(), s(&l2).into()],
        vec!["new".into(), at("a")],
        vec!["build".into(), s(&tree).into(), at("b")],
        vec!["config".into(), at("b"), "--env".into(), "A=1".into()],
        vec!["tag".into(), at("b"), "c".into()],
        vec!["tag".into(), at("a"), "c".into()],
        vec!["untag".into(), at("c")],
        vec!["insert".into(), at("b"), s(&file).into(), "/etc/f".into()],
        vec!["gc".into(), lay.clone()],
        vec!["fsck".into(), lay.clone()],
        vec!["export".into(), at("b"), "-o".into(), s(&archive).into()],
        vec!["import".into(), s(&archive).into(), s(&l3).into()],
        vec!["copy".into(), at("b"), format!("{}:b", s(&l4))],
        vec![
            "unpack".into(),
            "--rootless".into(),
            at("b"),
            s(&bundle).into(),
        ],
        vec![
            "index".into(),
            "create".into(),
            at("i"),
            "--manifest".into(),
            at("b"),
        ],
        vec![
            "artifact".into(),
            "push".into(),
            "--disable-path-validation".into(),
            at("art"),
            "--artifact-type".into(),
            "a/b".into(),
            s(&file).into(),
        ],
        vec![
            "artifact".into(),
            "pull".into(),
            at("art"),
            s(&pulled).into(),
        ],
        vec!["referrers".into(), at("b")],
        vec!["flatten".into(), at("b"), "--tag".into(), "flat".into()],
        vec![
            "convert".into(),
            at("b"),
            "--compress".into(),
            "zstd".into(),
            "--tag".into(),
            "z".into(),
        ],
        vec![
            "rebase".into(),
            at("b"),
            "--old-base".into(),
            at("a"),
            "--new-base".into(),
            at("a"),
            "--tag".into(),
            "rb".into(),
        ],
        vec!["blob".into(), "put".into(), lay.clone(), s(&file).into()],
    ];
    for args in &cases {
        let mut argv: Vec<&str> = vec!["-q"];
        argv.extend(args.iter().map(String::as_str));
        let r = run(&argv);
        assert_eq!(r.code, 0, "{argv:?}: {}", r.stderr);
        assert!(
            r.stderr.is_empty(),
            "{argv:?} wrote to stderr under -q: {}",
            r.stderr
        );
        let transfer = matches!(args[0].as_str(), "export" | "import" | "copy" | "artifact");
        assert!(
            digest_only(&r.stdout)
                || transfer && r.stdout.lines().all(|l| l.starts_with("sha256:")),
            "{argv:?} printed more than its result: {}",
            r.stdout
        );
    }
}

/// gc lists each blob only with -v; its summary is a note (stderr), with plurals right.
#[test]
fn gc_lists_blobs_under_verbose_and_counts_in_words() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = format!("{}:a", s(&lay));
    ok(&["new", &image]);
    ok(&["config", &image, "--env", "A=1"]);
    let r = run(&["gc", s(&lay), "--dry-run"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(!r.stderr.contains("sha256:"), "{}", r.stderr);
    assert!(
        r.stderr.contains("would remove 2 blobs") && r.stderr.contains("0 index.json entries"),
        "{}",
        r.stderr
    );
    let r = run(&["gc", s(&lay), "--dry-run", "-v"]);
    assert_eq!(
        r.stderr.matches("would remove sha256:").count(),
        2,
        "{}",
        r.stderr
    );
}

#[test]
fn a_missing_path_is_said_not_to_exist() {
    let dir = tempdir();
    let missing = dir.path().join("nope");
    for args in [
        vec!["ls", s(&missing)],
        vec!["fsck", s(&missing)],
        vec!["build", s(&missing), "x:y"],
    ] {
        let err = fails(&args, 1);
        assert!(
            err.contains("does not exist") && err.contains("nope"),
            "{args:?}: {err}"
        );
    }
}

/// `export --format docker --repo-tag NAME:TAG` names the image as `docker load` shows it;
/// skopeo reads the name back from the archive.
#[test]
fn docker_export_takes_a_repo_tag() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = format!("{}:app", s(&lay));
    ok(&["new", &image]);
    let archive = dir.path().join("d.tar");
    ok(&[
        "export",
        &image,
        "-o",
        s(&archive),
        "--format",
        "docker",
        "--repo-tag",
        "example.com/team/app:1.0",
    ]);
    let listing = std::process::Command::new("tar")
        .args(["-xOf", s(&archive), "manifest.json"])
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["example.com/team/app:1.0"]),
        "{manifest}"
    );
    if peer("skopeo") {
        // skopeo finds the image in the archive by that name, and not by the layout's tag.
        peer_ok(
            "skopeo",
            &[
                "inspect",
                &format!("docker-archive:{}:example.com/team/app:1.0", s(&archive)),
            ],
        );
        let other = std::process::Command::new("skopeo")
            .args([
                "inspect",
                &format!("docker-archive:{}:app:latest", s(&archive)),
            ])
            .output()
            .unwrap();
        assert!(!other.status.success());
    }
    // Back in a layout, the name is the tag.
    let back = dir.path().join("back");
    ok(&["import", s(&archive), s(&back)]);
    ok(&["inspect", &format!("{}:example.com/team/app:1.0", s(&back))]);
    for bad in [
        vec![
            "export",
            &image,
            "-o",
            s(&archive),
            "--format",
            "docker",
            "--repo-tag",
            "Upper:1",
        ],
        vec!["export", &image, "-o", s(&archive), "--repo-tag", "app:1"],
        vec![
            "export",
            &image,
            "-o",
            s(&archive),
            "--format",
            "docker",
            "--repo-tag",
            "noversion",
        ],
    ] {
        fails(&bad, 2);
    }
}

/// `.strata-tmp/` exists only while a writer needs it: after every writer, and after gc, a
/// layout holds only oci-layout, index.json and blobs/.
#[test]
fn the_temp_directory_goes_when_the_writer_is_done() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let at = |t: &str| format!("{}:{t}", s(&lay));
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    write(&tree.join("etc/x"), b"x\n");
    let file = dir.path().join("f");
    write(&file, b"f");
    let archive = dir.path().join("a.tar");
    let other = dir.path().join("other");
    let steps: Vec<Vec<String>> = vec![
        vec!["init".into(), s(&lay).into()],
        vec!["new".into(), at("a")],
        vec!["build".into(), s(&tree).into(), at("b")],
        vec!["config".into(), at("b"), "--env".into(), "A=1".into()],
        vec!["insert".into(), at("b"), s(&file).into(), "/f".into()],
        vec!["tag".into(), at("b"), "c".into()],
        vec!["untag".into(), at("c")],
        vec![
            "artifact".into(),
            "push".into(),
            "--disable-path-validation".into(),
            at("art"),
            "--artifact-type".into(),
            "a/b".into(),
            s(&file).into(),
        ],
        vec!["export".into(), at("b"), "-o".into(), s(&archive).into()],
        vec!["import".into(), s(&archive).into(), s(&other).into()],
        vec!["copy".into(), at("b"), format!("{}:copied", s(&other))],
        vec!["gc".into(), s(&lay).into()],
    ];
    for step in &steps {
        let args: Vec<&str> = step.iter().map(String::as_str).collect();
        ok(&args);
        for layout in [&lay, &other] {
            assert!(
                !layout.join(".strata-tmp").exists(),
                "{args:?} left {}/.strata-tmp",
                s(layout)
            );
        }
    }
    ok(&["fsck", s(&lay)]);
}

/// `--platform` always picks; `--set-platform` always sets.
#[test]
fn platform_picks_and_set_platform_sets() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = format!("{}:arm", s(&lay));
    ok(&["new", &image, "--set-platform", "linux/arm64/v8"]);
    let config = json(&["inspect", &image, "--raw", "config"]);
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("linux"), Some("arm64"))
    );
    fails(
        &[
            "new",
            &format!("{}:x", s(&lay)),
            "--platform",
            "linux/arm64",
        ],
        2,
    );
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let err = fails(
        &[
            "build",
            s(&tree),
            &format!("{}:b", s(&lay)),
            "--platform",
            "linux/arm64",
        ],
        2,
    );
    assert!(err.contains("--set-platform"), "{err}");
    ok(&[
        "build",
        s(&tree),
        &format!("{}:b", s(&lay)),
        "--set-platform",
        "linux/arm64",
    ]);
}
