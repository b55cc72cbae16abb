//! The last attack's findings on messages: what the user typed is escaped when clap echoes
//! it, hints are only given when they would be accepted, and a layout that cannot be
//! written is named as such.

use crate::util::*;

#[test]
fn values_clap_refuses_are_echoed_with_control_characters_escaped() {
    let dir = tempdir();
    let lay = dir.path().join("L");
    ok(&["new", &format!("{}:base", s(&lay))]);
    let image = format!("{}:base", s(&lay));
    for args in [
        vec!["tag", &image, "a\nb"],
        vec!["flatten", &image, "--tag", "x\ty"],
        vec!["tag", "--x\ny", &image, "v2"],
        vec!["ta\u{1b}[2Jg"],
    ] {
        let err = fails(&args, 2);
        assert!(
            !err.contains('\u{1b}') && !err.contains('\t'),
            "{args:?}: {err:?}"
        );
        // The typed value stays on its line: the newline inside it is shown escaped.
        let first = err.lines().next().unwrap();
        assert!(
            first.contains("\\n") || first.contains("\\t") || first.contains("\\u{1b}"),
            "{args:?}: {err:?}"
        );
        assert!(
            !err.contains("'a\nb'") && !err.contains("--x\ny"),
            "{err:?}"
        );
    }
}

#[test]
fn a_relative_dest_gets_an_example_only_when_the_example_is_valid() {
    let dir = tempdir();
    let lay = dir.path().join("L");
    let image = format!("{}:base", s(&lay));
    ok(&["new", &image]);
    let src = dir.path().join("f");
    write(&src, b"hi\n");
    let err = fails(&["insert", &image, s(&src), "../../x"], 2);
    assert!(err.contains("no .."), "{err}");
    assert!(
        !err.contains("/../../x"),
        "the hint is itself refused: {err}"
    );
    let err = fails(&["insert", &image, s(&src), "./etc/x"], 2);
    assert!(err.contains("(e.g. /etc/x)"), "{err}");
    let err = fails(&["insert", &image, "--whiteout", "a/../b"], 2);
    assert!(err.contains("no ..") && !err.contains("/a/../b"), "{err}");
}

#[test]
fn a_layout_that_cannot_be_written_is_named_not_its_temp_directory() {
    use std::os::unix::fs::PermissionsExt;
    // Root writes anywhere: as root, run strata as nobody (setpriv) to meet the refusal.
    let as_root = rustix::process::geteuid().is_root();
    if as_root && !peer("setpriv") {
        return;
    }
    let dir = tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let lay = dir.path().join("RO");
    let image = format!("{}:base", s(&lay));
    ok(&["new", &image]);
    std::fs::set_permissions(&lay, std::fs::Permissions::from_mode(0o555)).unwrap();
    let before = snapshot(&lay);
    for args in [
        vec!["tag", &image, "v2"],
        vec!["config", &image, "--env", "A=1"],
        vec!["new", &format!("{}:other", s(&lay))],
    ] {
        let out = strata_unprivileged(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{}: the layout cannot be written to", s(&lay))),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains(".strata-tmp"), "{args:?}: {stderr}");
    }
    assert_eq!(before, snapshot(&lay), "the layout changed");
    std::fs::set_permissions(&lay, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn untag_json_says_nothing_on_stderr_as_the_other_writers_do() {
    let dir = tempdir();
    let image = format!("{}:base", s(&dir.path().join("L")));
    ok(&["new", &image]);
    let r = run(&["untag", &image, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "", "--json prints the document alone");
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["removed"][0]["tag"], "base");
}

#[test]
fn index_create_refuses_two_images_for_one_platform() {
    let dir = tempdir();
    let lay = s(&dir.path().join("L")).to_owned();
    let tree = dir.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"f\n");
    ok(&["new", &format!("{lay}:a")]);
    ok(&["build", s(&tree), &format!("{lay}:b")]);
    ok(&[
        "new",
        &format!("{lay}:arm"),
        "--set-platform",
        "linux/arm64",
    ]);
    let before = snapshot(dir.path());
    let err = fails(
        &[
            "index",
            "create",
            &format!("{lay}:i"),
            "--manifest",
            &format!("{lay}:a"),
            "--manifest",
            &format!("{lay}:b"),
        ],
        1,
    );
    assert!(err.contains("both are for linux/amd64"), "{err}");
    let err = fails(
        &[
            "index",
            "create",
            &format!("{lay}:i"),
            "--manifest",
            &format!("{lay}:a"),
            "--manifest",
            &format!("{lay}:a"),
        ],
        1,
    );
    assert!(err.contains("listed twice"), "{err}");
    assert_eq!(
        before,
        snapshot(dir.path()),
        "a refused index changed the layout"
    );
    ok(&[
        "index",
        "create",
        &format!("{lay}:i"),
        "--manifest",
        &format!("{lay}:a"),
        "--manifest",
        &format!("{lay}:arm"),
    ]);
}

#[test]
fn a_skopeo_transport_prefix_is_refused_unless_such_a_directory_exists() {
    let dir = tempdir();
    let tree = dir.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"f\n");
    let run_in = |args: &[&str]| {
        let out = strata(args).current_dir(dir.path()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    ok(&["new", &format!("{}:app", s(&dir.path().join("lay")))]);
    let (code, err) = run_in(&["inspect", "oci:lay:app"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("here lay:app"), "{err}");
    // A writer would have created a layout `oci` with the tag `lay:x`.
    let (code, err) = run_in(&["build", "t", "oci:lay:x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!dir.path().join("oci").exists());
    let (code, err) = run_in(&["copy", "lay:app", "docker://example.com/app:1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("strata push"), "{err}");
    // LAYOUT arguments that create a layout refuse the prefix too (they made `oci:Z`).
    for args in [
        &["init", "oci:I"][..],
        &["import", "none.tar", "oci:Z"][..],
        &["init", "sif:x"][..],
        &["init", "oci:"][..],
        &["import", "none.tar", "docker://x"][..],
    ] {
        let (code, err) = run_in(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("skopeo transport"), "{err}");
    }
    assert!(!dir.path().join("oci:I").exists() && !dir.path().join("oci:Z").exists());
    let (code, err) = run_in(&["init", "./oci:I"]);
    assert_eq!(code, Some(0), "{err}");
    // Spelled as a path, it is a layout named so.
    let (code, err) = run_in(&["build", "t", "./oci:x"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run_in(&["inspect", "oci:x"]);
    assert_eq!(code, Some(0), "{err}");
}

/// An output path that is not a regular file is written through, as tar -f and cp do:
/// renaming a temp file over it replaced a symlink by a file (the target kept its old
/// bytes) and a FIFO by a file (its reader waited forever).
#[test]
fn export_and_runtime_config_write_through_symlinks_and_fifos() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempdir();
    let image = format!("{}:app", s(&dir.path().join("L")));
    ok(&["new", &image]);
    let target = dir.path().join("target.tar");
    write(&target, b"keep\n");
    let link = dir.path().join("link.tar");
    std::os::unix::fs::symlink("target.tar", &link).unwrap();
    ok(&["export", &image, "-o", s(&link)]);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let archive = std::fs::read(&target).unwrap();
    assert!(archive.len() > 1024, "the link's target holds the archive");

    let config_link = dir.path().join("config.json");
    std::os::unix::fs::symlink("real-config.json", &config_link).unwrap();
    ok(&["runtime-config", &image, s(&config_link)]);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("real-config.json")).unwrap())
            .unwrap();
    assert!(config["process"].is_object(), "{config}");

    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    ok(&["export", &image, "-o", s(&fifo)]);
    let streamed = reader.join().unwrap();
    assert_eq!(
        streamed.len(),
        archive.len(),
        "the FIFO's reader got the archive"
    );
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn runtime_config_refuses_to_write_over_the_layouts_own_files() {
    let dir = tempdir();
    let lay = dir.path().join("L");
    let image = format!("{}:app", s(&lay));
    ok(&["new", &image]);
    let before = snapshot(&lay);
    for name in ["oci-layout", "index.json"] {
        let err = fails(&["runtime-config", &image, s(&lay.join(name))], 1);
        assert!(err.contains("over the files of the layout"), "{err}");
    }
    assert_eq!(before, snapshot(&lay));
}

/// The library reads no environment: runtime-config read the image's /etc/passwd through a
/// scratch directory under TMPDIR, and failed naming it when TMPDIR did not exist.
#[test]
fn runtime_config_of_an_image_needs_no_scratch_directory() {
    let dir = tempdir();
    let tree = dir.path().join("t");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    write(
        &tree.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    );
    write(&tree.join("etc/group"), b"root:x:0:\napp:x:1000:\n");
    let image = format!("{}:app", s(&dir.path().join("L")));
    ok(&["build", s(&tree), &image, "--user", "app"]);
    let r = run_with_env(
        &["runtime-config", &image, "-"],
        &[("TMPDIR", "/nonexistent/strata-test")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let config: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(config["process"]["user"]["uid"], 1000, "{config}");
    assert_eq!(config["process"]["cwd"], "/", "{config}");
}

/// Every writer says when its tag moved off another image (`movedFrom`, and a warning), as
/// `tag` and `repack` did; an edit in place (config L:v1) moves its own tag silently.
#[test]
fn writers_say_when_they_move_a_tag_off_another_image() {
    let dir = tempdir();
    let lay = s(&dir.path().join("L")).to_owned();
    let tree = dir.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"f\n");
    let r = |t: &str| format!("{lay}:{t}");
    ok(&["new", &r("base")]);
    ok(&["build", s(&tree), &r("app")]);
    let index_json = dir.path().join("L/index.json");
    let digest_of = |t: &str| {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&index_json).unwrap()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == t)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let file = dir.path().join("a.txt");
    write(&file, b"a\n");
    for args in [
        vec![
            "config".to_owned(),
            r("base"),
            "--env".into(),
            "A=1".into(),
            "--tag".into(),
            "app".into(),
        ],
        vec![
            "build".into(),
            s(&tree).into(),
            r("app"),
            "--label".into(),
            "x=1".into(),
        ],
        vec![
            "artifact".into(),
            "push".into(),
            r("app"),
            s(&file).into(),
            "--artifact-type".into(),
            "application/x.t".into(),
            "--disable-path-validation".into(),
        ],
        vec!["tag".into(), r("base"), "app".into()],
    ] {
        let before = digest_of("app");
        let mut with_json: Vec<&str> = args.iter().map(String::as_str).collect();
        with_json.push("--json");
        let out = run(&with_json);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(doc["movedFrom"], before.as_str(), "{args:?}: {doc}");
        assert!(
            out.stderr.contains(&format!("moved tag app from {before}")),
            "{args:?}: {}",
            out.stderr
        );
    }
    // In place: the tag moving off the image it edits is the edit itself.
    let before = digest_of("app");
    let out = run(&["config", &r("app"), "--env", "B=2", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "", "an edit in place is not news");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["movedFrom"], before.as_str(), "{doc}");
    // tag prints what every writer prints: the digest.
    let printed = ok(&["tag", &r("base"), "v9"]);
    assert_eq!(printed.trim(), digest_of("base"));
}

#[test]
fn referrers_depth_stops_when_nothing_is_left_and_zero_is_refused() {
    let dir = tempdir();
    let image = format!("{}:app", s(&dir.path().join("L")));
    ok(&["new", &image]);
    let mut child = strata(&["referrers", &image, "--depth", "18446744073709551615"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("referrers --depth 2^64-1 did not end: one pass per level, past the last");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success());
    let err = fails(&["referrers", &image, "--depth", "0"], 2);
    assert!(err.contains("--depth"), "{err}");
}

#[test]
fn a_layer_digest_is_named_a_blob_that_is_no_image_and_a_dangling_link_is_listed() {
    let dir = tempdir();
    let tree = dir.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"f\n");
    std::os::unix::fs::symlink("/nowhere", tree.join("dl")).unwrap();
    let lay = s(&dir.path().join("L")).to_owned();
    let image = format!("{lay}:app");
    ok(&["build", s(&tree), &image]);
    let layer = json(&["inspect", &image, "--json"])["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = fails(&["tag", &format!("{lay}@{layer}"), "x"], 1);
    assert!(err.contains("not an image manifest or index"), "{err}");
    assert!(
        !err.contains("not reachable"),
        "it is reachable, as a layer: {err}"
    );

    let listed = ok(&["files", &image, "/dl"]);
    assert!(listed.contains("/dl -> /nowhere"), "{listed}");
    fails(&["files", &image, "/dl/x"], 1);
}

#[test]
fn index_members_may_name_the_index_layout_as_an_artifact_subject_does() {
    let dir = tempdir();
    let lay = s(&dir.path().join("L")).to_owned();
    ok(&[
        "new",
        &format!("{lay}:amd"),
        "--set-platform",
        "linux/amd64",
    ]);
    ok(&[
        "new",
        &format!("{lay}:arm"),
        "--set-platform",
        "linux/arm64",
    ]);
    ok(&["index", "create", &format!("{lay}:i"), "--manifest", ":amd"]);
    ok(&["index", "add", &format!("{lay}:i"), "--manifest", ":arm"]);
    let shown = json(&["inspect", &format!("{lay}:i"), "--raw", "index"]);
    assert_eq!(shown["manifests"].as_array().unwrap().len(), 2, "{shown}");
}

/// A layer compressed with what no layer media type allows is named by its compressor, not
/// refused as a tar whose first header does not parse.
#[test]
fn bzip2_xz_and_lz4_layers_are_named_as_such() {
    let dir = tempdir();
    let image = format!("{}:app", s(&dir.path().join("L")));
    ok(&["new", &image]);
    for (name, head) in [
        ("bzip2", &b"BZh91AY&SY"[..]),
        ("xz", &[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4][..]),
        ("lz4", &[0x04, 0x22, 0x4d, 0x18, 0x64, 0x40][..]),
    ] {
        let file = dir.path().join(format!("layer.{name}"));
        let mut bytes = head.to_vec();
        bytes.resize(1024, 0x55);
        write(&file, &bytes);
        let err = fails(&["add-layer", &image, s(&file)], 1);
        assert!(
            err.contains(&format!("is {name}-compressed")) && err.contains("decompress it first"),
            "{err}"
        );
    }
}

/// `linux/arm64` and `linux/arm64/v8` are one platform to every consumer (v8 is implied):
/// an index holding both could never give the second.
#[test]
fn index_create_takes_implied_variants_as_the_same_platform() {
    let dir = tempdir();
    let lay = s(&dir.path().join("L")).to_owned();
    ok(&["new", &format!("{lay}:a"), "--set-platform", "linux/arm64"]);
    ok(&[
        "new",
        &format!("{lay}:b"),
        "--set-platform",
        "linux/arm64/v8",
    ]);
    ok(&["new", &format!("{lay}:c"), "--set-platform", "linux/arm/v6"]);
    ok(&["new", &format!("{lay}:d"), "--set-platform", "linux/arm"]);
    let create = |a: &str, b: &str| {
        run(&[
            "index",
            "create",
            &format!("{lay}:i"),
            "--manifest",
            a,
            "--manifest",
            b,
        ])
    };
    let r = create(":a", ":b");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("both are for"), "{}", r.stderr);
    let r = create(":c", ":d");
    assert_eq!(r.code, 0, "arm/v6 and arm (v7) differ: {}", r.stderr);
    // index add replaces the entry of the same platform, implied variants as create sees them.
    ok(&["index", "create", &format!("{lay}:j"), "--manifest", ":a"]);
    ok(&["index", "add", &format!("{lay}:j"), "--manifest", ":b"]);
    let index = json(&["inspect", &format!("{lay}:j"), "--raw", "index"]);
    let platforms = index["manifests"].as_array().unwrap();
    assert_eq!(platforms.len(), 1, "{index}");
    assert_eq!(platforms[0]["platform"]["variant"], "v8", "{index}");
}

/// A link to a file in a directory that does not exist names the link the user gave.
#[test]
fn export_through_a_link_to_nowhere_names_the_link() {
    let dir = tempdir();
    let image = format!("{}:app", s(&dir.path().join("L")));
    ok(&["new", &image]);
    let link = dir.path().join("dl");
    std::os::unix::fs::symlink("nothere/x.tar", &link).unwrap();
    let err = fails(&["export", &image, "-o", s(&link)], 1);
    assert!(
        err.contains(&format!("{}: a symbolic link to nothere/x.tar", s(&link))),
        "{err}"
    );
}
