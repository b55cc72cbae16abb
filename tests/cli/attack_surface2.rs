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

/// A damaged archive is named in import's error, as every other input file is, and the
/// layout is left as it was.
#[test]
fn import_of_a_damaged_archive_names_it() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:t", s(&lay))]);
    let archive = dir.path().join("a.tar");
    ok(&["export", &format!("{}:t", s(&lay)), "-o", s(&archive)]);
    let whole = std::fs::read(&archive).unwrap();
    // Cut at a block boundary (an archive without its end) and inside a member.
    let cut = dir.path().join("cut-short.tar");
    write(&cut, &whole[..whole.len() / 2]);
    let torn = dir.path().join("torn.tar");
    write(&torn, &whole[..whole.len() / 2 + 100]);
    let junk = dir.path().join("junk.tar");
    write(&junk, &[0x5a; 3000]);
    let dest = dir.path().join("dest");
    ok(&["init", s(&dest)]);
    let before = snapshot(&dest);
    for bad in [&cut, &torn, &junk] {
        let err = fails(&["import", s(bad), s(&dest)], 1);
        assert!(err.contains(s(bad)), "{err}");
    }
    assert_eq!(before, snapshot(&dest));
}

/// `manifest put FILE` names FILE when its document is refused.
#[test]
fn manifest_put_names_the_file_it_refuses() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:t", s(&lay))]);
    let before = snapshot(&lay);
    let cases: [(&str, &[u8]); 3] = [
        ("not-json.json", b"{"),
        ("no-config.json", br#"{"schemaVersion":2}"#),
        (
            "odd-type.json",
            br#"{"schemaVersion":2,"mediaType":"text/plain"}"#,
        ),
    ];
    for (name, bytes) in cases {
        let file = dir.path().join(name);
        write(&file, bytes);
        let err = fails(&["manifest", "put", &format!("{}:m", s(&lay)), s(&file)], 1);
        assert!(err.contains(s(&file)), "{name}: {err}");
    }
    assert_eq!(before, snapshot(&lay));
}

/// `export -o` is checked before anything is read: an empty name is the invocation's fault
/// (exit 2), and a directory is refused at once, named, rather than after the whole archive
/// was written beside it.
#[test]
fn export_output_is_checked_before_the_archive_is_written() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:t", s(&lay))]);
    let image = format!("{}:t", s(&lay));
    let err = fails(&["export", &image, "-o", ""], 2);
    assert!(err.contains("-o"), "{err}");
    let target = dir.path().join("somedir");
    std::fs::create_dir(&target).unwrap();
    let err = fails(&["export", &image, "-o", s(&target)], 1);
    assert!(
        err.contains(s(&target)) && err.contains("directory"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
    let listing = |d: &std::path::Path| -> Vec<_> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    assert_eq!(listing(&target), Vec::<std::ffi::OsString>::new());
    assert_eq!(listing(dir.path()).len(), 2, "{:?}", listing(dir.path()));
}

/// A layout that cannot be created is named as the user gave it, with the reason in words:
/// never the temp directory a creation builds in, never the C library's text.
#[test]
fn a_layout_that_cannot_be_created_is_named_as_given() {
    let dir = tempdir();
    let file = dir.path().join("afile");
    write(&file, b"x");
    let under = file.join("lay");
    let u = s(&under);
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let image = dir.path().join("src");
    ok(&["new", &format!("{}:t", s(&image))]);
    let cases: Vec<Vec<String>> = vec![
        vec!["init".into(), u.into()],
        vec!["new".into(), format!("{u}:t")],
        vec!["build".into(), s(&tree).into(), format!("{u}:t")],
        vec!["copy".into(), format!("{}:t", s(&image)), format!("{u}:t")],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&args, 1);
        assert!(err.contains(u), "{args:?}: {err}");
        assert!(err.contains("not a directory"), "{args:?}: {err}");
        assert!(
            !err.contains("strata-new") && !err.contains("os error"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// `export --format rootfs` prints no JSON document, so `--json` with it is refused (exit 2,
/// nothing written) rather than ignored: a script asking for JSON must not get silence and
/// exit 0.
#[test]
fn export_rootfs_does_not_ignore_json() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:t", s(&lay))]);
    let archive = dir.path().join("fs.tar");
    let r = run(&[
        "export",
        &format!("{}:t", s(&lay)),
        "--format",
        "rootfs",
        "-o",
        s(&archive),
        "--json",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--json"), "{}", r.stderr);
    assert!(!archive.exists());
}

/// `index create|add --manifest REF` whose layout is missing is refused as one in another
/// layout is (exit 2, REF named, "does not exist"), never with the C library's words.
#[test]
fn index_member_in_a_missing_layout_is_refused_in_words() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:t", s(&lay))]);
    ok(&[
        "index",
        "create",
        &format!("{}:i", s(&lay)),
        "--manifest",
        &format!("{}:t", s(&lay)),
    ]);
    let before = snapshot(&lay);
    let missing = format!("{}:t", s(&dir.path().join("nowhere")));
    for sub in ["create", "add"] {
        let err = fails(
            &[
                "index",
                sub,
                &format!("{}:i", s(&lay)),
                "--manifest",
                &missing,
            ],
            2,
        );
        assert!(
            err.contains(&missing) && err.contains("does not exist"),
            "{sub}: {err}"
        );
        assert!(!err.contains("os error"), "{sub}: {err}");
    }
    assert_eq!(before, snapshot(&lay));
}

/// `flatten -v` reports the layer it wrote as every layer writer does (blob, size,
/// compression), the diff_id only under `-vv`.
#[test]
fn flatten_reports_its_layer_as_the_other_writers_do() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"f\n");
    let image = format!("{}:t", s(&lay));
    ok(&["build", s(&tree), &image]);
    let r = run(&["-v", "flatten", &image, "--tag", "flat"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let layer_lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("strata: layer sha256:"))
        .collect();
    assert_eq!(layer_lines.len(), 1, "{}", r.stderr);
    assert!(layer_lines[0].contains(" written: "), "{}", r.stderr);
    assert!(layer_lines[0].contains("tar+gzip"), "{}", r.stderr);
    assert!(!r.stderr.contains("diff_id"), "-vv only: {}", r.stderr);
    let r = run(&["-vv", "flatten", &image, "--tag", "flat2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("layer diff_id sha256:"), "{}", r.stderr);
}

/// Counts in messages agree with their nouns: "1 layer", "1 blob", never "1 layers" or
/// "1 blob(s)".
#[test]
fn counts_in_messages_agree_with_their_nouns() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let l = s(&lay);
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"f\n");
    ok(&["build", s(&tree), &format!("{l}:base")]);
    write(&tree.join("g"), b"g\n");
    ok(&[
        "build",
        s(&tree),
        &format!("{l}:app"),
        "--from",
        &format!("{l}:base"),
    ]);

    // An image of one layer whose config lists no diff_id.
    let mut config: serde_json::Value = serde_json::from_slice(&ok_bytes(&[
        "inspect",
        &format!("{l}:base"),
        "--raw",
        "config",
    ]))
    .unwrap();
    config["rootfs"]["diff_ids"] = serde_json::json!([]);
    let config_file = dir.path().join("config.json");
    write(&config_file, &serde_json::to_vec(&config).unwrap());
    let config_type = "application/vnd.oci.image.config.v1+json";
    let put = json(&[
        "blob",
        "put",
        l,
        s(&config_file),
        "--media-type",
        config_type,
        "--json",
    ]);
    let mut manifest: serde_json::Value = serde_json::from_slice(&ok_bytes(&[
        "inspect",
        &format!("{l}:base"),
        "--raw",
        "manifest",
    ]))
    .unwrap();
    manifest["config"]["digest"] = put["digest"].clone();
    manifest["config"]["size"] = put["size"].clone();
    let manifest_file = dir.path().join("manifest.json");
    write(&manifest_file, &serde_json::to_vec(&manifest).unwrap());
    ok(&["manifest", "put", &format!("{l}:odd"), s(&manifest_file)]);
    let err = fails(
        &["unpack", &format!("{l}:odd"), s(&dir.path().join("b"))],
        1,
    );
    assert!(
        err.contains("1 layer but the config lists 0 diff_ids"),
        "{err}"
    );
    let r = run(&["fsck", l, "--no-layers"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("0 entries but the manifest has 1 layer "),
        "{}",
        r.stdout
    );
    let err = fails(
        &[
            "export",
            &format!("{l}:odd"),
            "--format",
            "docker",
            "-o",
            s(&dir.path().join("d.tar")),
        ],
        1,
    );
    assert!(err.contains("1 layer but 0 diff_ids"), "{err}");

    // An archive made for a receiver holding the base, imported where it is not.
    let other = dir.path().join("other");
    ok(&["copy", &format!("{l}:base"), &format!("{}:base", s(&other))]);
    let archive = dir.path().join("inc.tar");
    ok(&[
        "export",
        &format!("{l}:app"),
        "--exclude-present-in",
        s(&other),
        "-o",
        s(&archive),
    ]);
    let err = fails(&["import", s(&archive), s(&dir.path().join("fresh"))], 1);
    assert!(err.contains("lacks 1 blob that"), "{err}");
}

/// `fsck -q` on a sound layout prints nothing, unreferenced blobs (what an untag leaves for
/// gc, no problem) included: a cron job's `strata fsck -q LAYOUT` is silent unless something
/// is wrong. Without `-q` they are listed; problems are printed either way.
#[test]
fn fsck_quiet_is_silent_about_unreferenced_blobs() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let l = s(&lay);
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"f\n");
    ok(&["build", s(&tree), &format!("{l}:a")]);
    ok(&["new", &format!("{l}:b")]);
    ok(&["untag", &format!("{l}:a")]);
    let loud = run(&["fsck", l]);
    assert_eq!(loud.code, 0, "{}", loud.stderr);
    assert!(
        loud.stdout.contains("unreferenced: sha256:"),
        "{}",
        loud.stdout
    );
    let quiet = run(&["-q", "fsck", l]);
    assert_eq!(
        (quiet.code, quiet.stdout.as_str(), quiet.stderr.as_str()),
        (0, "", "")
    );
    // A problem is still printed under -q.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lay.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let blob = lay
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes.push(b' ');
    std::fs::write(&blob, bytes).unwrap();
    let broken = run(&["-q", "fsck", l]);
    assert_eq!(broken.code, 1, "{}", broken.stderr);
    assert!(broken.stdout.contains("problem: "), "{}", broken.stdout);
    assert!(
        !broken.stdout.contains("unreferenced:"),
        "{}",
        broken.stdout
    );
}

/// `STRATA_RESOLVE` takes one value, `userspace`; another (a typo) is the invocation's
/// fault (exit 2, named) where it acts, in unpack, rather than silently ignored, as
/// `STRATA_THREADS` and `SOURCE_DATE_EPOCH` are checked.
#[test]
fn strata_resolve_with_another_value_is_refused() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:t", s(&lay))]);
    let bundle = dir.path().join("b");
    let r = run_with_env(
        &["unpack", &format!("{}:t", s(&lay)), s(&bundle)],
        &[("STRATA_RESOLVE", "userpace")],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("STRATA_RESOLVE") && r.stderr.contains("userpace"),
        "{}",
        r.stderr
    );
    assert!(!bundle.exists());
    let r = run_with_env(
        &["unpack", &format!("{}:t", s(&lay)), s(&bundle)],
        &[("STRATA_RESOLVE", "userspace")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `login` and `logout` take a REGISTRY, and a value that is not one is refused in those
/// words, naming what was typed: never as an "image name", never with a `/x` strata added.
#[test]
fn login_and_logout_refuse_a_bad_registry_as_a_registry() {
    let dir = tempdir();
    let config = dir.path().join("docker");
    for registry in ["UPPER", "ht tp://x", "x:99999", "bad_host:5000"] {
        for args in [
            vec!["login", registry, "--username", "u", "--password-stdin"],
            vec!["logout", registry],
        ] {
            let r = run_with_input(&args, &[("DOCKER_CONFIG", s(&config))], "pw\n");
            assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
            assert!(
                r.stderr.contains("is not a registry"),
                "{args:?}: {}",
                r.stderr
            );
            assert!(
                r.stderr.contains(&format!("{registry:?}")),
                "{args:?}: {}",
                r.stderr
            );
            assert!(!r.stderr.contains("image name"), "{args:?}: {}", r.stderr);
        }
    }
    assert!(!config.exists());
}

/// The older spellings before the command (`strata --threads N CMD`, `strata --layout DIR
/// CMD`) are named in errors as the user wrote them, never by strata's internal ids.
#[test]
fn options_before_the_command_are_named_as_written() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["init", s(&lay)]);
    let err = fails(&["--threads", "0", "fsck", s(&lay)], 2);
    assert!(err.contains("--threads <N>"), "{err}");
    let err = fails(&["--layout"], 2);
    assert!(err.contains("--layout <DIR>"), "{err}");
    for err in [
        fails(&["--threads", "0", "fsck", s(&lay)], 2),
        fails(&["--layout"], 2),
    ] {
        assert!(!err.contains("global_"), "{err}");
    }
}

/// `index create` in a layout that is not there says so: its members must be images of that
/// layout, so it cannot succeed there, and it must not speak of an index.json that it made
/// and took back.
#[test]
fn index_create_in_a_missing_layout_says_it_does_not_exist() {
    let dir = tempdir();
    let missing = dir.path().join("missing");
    let m = s(&missing);
    let err = fails(
        &[
            "index",
            "create",
            &format!("{m}:i"),
            "--manifest",
            &format!("{m}:t"),
        ],
        1,
    );
    assert!(err.contains(&format!("{m}: does not exist")), "{err}");
    assert!(!err.contains("index.json"), "{err}");
    assert!(!missing.exists());
}

/// A path that is a file where a directory is needed, or a directory where a file is, is
/// said so in words naming it, as a missing one is: never the C library's "(os error N)".
#[test]
fn wrong_kinds_of_path_are_said_in_words() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = format!("{}:t", s(&lay));
    ok(&["new", &image]);
    let file = dir.path().join("afile");
    write(&file, b"x");
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    ok(&[
        "artifact",
        "push",
        &format!("{}:art", s(&lay)),
        "--artifact-type",
        "a/b",
        "--disable-path-validation",
        s(&file),
    ]);
    let under = file.join("x");
    let art = format!("{}:art", s(&lay));
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["unpack", &image, s(&under)],
            s(&under),
            "not a directory",
        ),
        (
            vec!["artifact", "pull", &art, s(&file)],
            s(&file),
            "not a directory",
        ),
        (
            vec!["add-layer", &image, s(&tree)],
            s(&tree),
            "is a directory",
        ),
        (
            vec!["runtime-config", &image, s(&tree)],
            s(&tree),
            "is a directory",
        ),
    ];
    for (args, path, words) in cases {
        let err = fails(&args, 1);
        assert!(err.contains(&format!("{path}: {words}")), "{args:?}: {err}");
        assert!(!err.contains("os error"), "{args:?}: {err}");
    }
}

/// Bytes from a hostile layer or archive reach the terminal only escaped: an escape
/// sequence in a tar header's field must not recolour (or retitle, or rewrite) the user's
/// terminal through strata's error message.
#[test]
fn control_characters_in_messages_are_escaped() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = format!("{}:t", s(&lay));
    ok(&["new", &image]);
    let mut header = vec![b'a'; 100];
    header.resize(512, 0);
    header[148..156].copy_from_slice(b"\x1b[31mRED");
    header.extend_from_slice(&[0; 1024]);
    let layer = dir.path().join("esc.tar");
    write(&layer, &header);
    let err = fails(&["add-layer", &image, s(&layer)], 1);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("esc.tar"), "{err}");
    let err = fails(&["import", s(&layer), s(&dir.path().join("other"))], 1);
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

/// `files` and `diff` print one entry a line, whatever the image's names hold: a newline or
/// an escape sequence in a file name is escaped, so a script reading lines gets no made-up
/// entry and the terminal is not driven (`--json` carries the names as they are).
#[test]
fn names_in_result_lines_are_one_line_each() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("a\u{1b}[31mb\nfake"), b"x");
    std::os::unix::fs::symlink("t\nx", tree.join("link")).unwrap();
    ok(&["new", &format!("{}:empty", s(&lay))]);
    ok(&["build", s(&tree), &format!("{}:t", s(&lay))]);
    let files = ok(&["files", &format!("{}:t", s(&lay))]);
    let diff = ok(&[
        "diff",
        &format!("{}:empty", s(&lay)),
        &format!("{}:t", s(&lay)),
    ]);
    for out in [&files, &diff] {
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(!out.contains('\u{1b}'), "{out:?}");
        assert!(out.contains("\\n"), "{out}");
    }
    let listed = json(&["files", &format!("{}:t", s(&lay)), "--json"]);
    assert!(listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "/a\u{1b}[31mb\nfake"));
}

/// `inspect` shows an image's own strings (labels, env) one line each, escaped: a label
/// holding a newline or an escape sequence can neither forge a field nor drive the terminal.
#[test]
fn inspect_escapes_the_images_strings() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = format!("{}:t", s(&lay));
    ok(&["new", &image]);
    ok(&[
        "config",
        &image,
        "--label",
        "k=v\u{1b}[2J\nUser:       root",
        "--env",
        "E=\u{1b}]0;title\u{7}",
    ]);
    let shown = ok(&["inspect", &image]);
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
        "{shown:?}"
    );
    assert_eq!(
        shown.lines().filter(|l| l.starts_with("User:")).count(),
        1,
        "{shown}"
    );
}

/// `ls` and `referrers` show a manifest's `artifactType` (its own text, which `manifest put`
/// or an imported archive brings in) escaped, one entry a line.
#[test]
fn artifact_types_in_listings_are_escaped() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let l = s(&lay);
    ok(&["new", &format!("{l}:base")]);
    let base = json(&["inspect", &format!("{l}:base"), "--json"]);
    let mut manifest: serde_json::Value = serde_json::from_slice(&ok_bytes(&[
        "inspect",
        &format!("{l}:base"),
        "--raw",
        "manifest",
    ]))
    .unwrap();
    manifest["artifactType"] = "a/b\u{1b}[31m\nFAKE".into();
    manifest["subject"] = serde_json::json!({
        "mediaType": base["manifest"]["mediaType"],
        "digest": base["manifest"]["digest"],
        "size": base["manifest"]["size"],
    });
    let file = dir.path().join("m.json");
    write(&file, &serde_json::to_vec(&manifest).unwrap());
    ok(&["manifest", "put", &format!("{l}:odd"), s(&file)]);
    let listed = ok(&["ls", l]);
    let referrers = ok(&["referrers", &format!("{l}:base")]);
    for (out, lines) in [(&listed, 3), (&referrers, 1)] {
        assert!(!out.contains('\u{1b}'), "{out:?}");
        assert_eq!(out.lines().count(), lines, "{out}");
    }
}
