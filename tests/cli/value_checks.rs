//! Values that are wrong are refused as wrong (exit 2, before anything is read or written),
//! and values that are right do what their --help says: users, id maps, insert's --replace
//! and --opaque, artifact titles, empty layer files, blob put's input and blob's output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::util::*;

/// A layout `lay` whose image `v1` has /etc/motd and /etc/hostname (no `./` entry, as
/// strata's own build writes none).
fn image_with_etc(dir: &Path) -> std::path::PathBuf {
    let lay = dir.join("lay");
    let layout = strata::Layout::init(&lay).unwrap();
    let mut tar = TarBuilder::new();
    tar.dir("etc", 0o755)
        .file("etc/motd", b"old motd\n", 0o644)
        .file("etc/hostname", b"old\n", 0o644);
    write_layered_image(
        &layout,
        "v1",
        &[(tar.finish(), Packing::Plain)],
        serde_json::json!({}),
    );
    lay
}

fn config_of(reference: &str) -> serde_json::Value {
    serde_json::from_slice(&ok_bytes(&["inspect", reference, "--raw", "config"])).unwrap()
}

#[test]
fn a_user_is_checked_when_set_as_unpack_reads_it_and_empty_means_root() {
    let dir = tempdir();
    let lay = image_with_etc(dir.path());
    let reference = format!("{}:v1", s(&lay));
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    write(&tree.join("f"), b"f");
    let before = snapshot(&lay);
    let built = format!("{}:built", s(&lay));
    for user in ["a:b:c", "::", "99999999999", "alice:2147483648"] {
        let err = fails(&["config", &reference, "--user", user], 2);
        assert!(err.contains(&format!("{user:?}")), "{user}: {err}");
        let err = fails(&["build", s(&tree), &built, "--user", user], 2);
        assert!(err.contains("--user"), "{user}: {err}");
    }
    assert!(fails(&["config", &reference, "--user", "a:b:c"], 2)
        .contains("expected USER, UID, USER:GROUP or UID:GID"));
    assert_eq!(before, snapshot(&lay));

    // What is accepted, runtime-config resolves (a name only when the image has it).
    ok(&["config", &reference, "--user", "1000:50"]);
    assert_eq!(config_of(&reference)["config"]["User"], "1000:50");
    let runtime = json(&["runtime-config", &reference, "-"]);
    assert_eq!(runtime["process"]["user"]["uid"], 1000);
    assert_eq!(runtime["process"]["user"]["gid"], 50);

    // Empty: the field goes (root, as unpack reads an absent or empty User).
    ok(&["config", &reference, "--user", ""]);
    assert!(config_of(&reference)["config"].get("User").is_none());
    let runtime = json(&["runtime-config", &reference, "-"]);
    assert_eq!(runtime["process"]["user"]["uid"], 0);
    assert!(ok(&["config", "--help"]).contains("'' removes the field"));
}

#[test]
fn overlapping_id_maps_are_refused_naming_both_ranges() {
    let dir = tempdir();
    let lay = image_with_etc(dir.path());
    let reference = format!("{}:v1", s(&lay));
    let before = snapshot(&lay);
    let bundle = dir.path().join("bundle");
    let out = dir.path().join("config.json");
    let cases: [(&str, &str, &str, &str); 4] = [
        // The same container id twice.
        ("--uid-map", "0:1000:1", "0:2000:1", "container id 0 "),
        // The same host ids twice.
        (
            "--uid-map",
            "0:1000:10",
            "20:1000:10",
            "host ids 1000 to 1009",
        ),
        ("--gid-map", "0:1000:1", "0:2000:1", "container id 0 "),
        ("--gid-map", "5:1000:10", "20:1009:3", "host id 1009 "),
    ];
    for (flag, a, b, overlap) in cases {
        let err = fails(
            &[
                "unpack",
                "--rootless",
                flag,
                a,
                flag,
                b,
                &reference,
                s(&bundle),
            ],
            2,
        );
        for needle in [flag, a, b, overlap, "overlap"] {
            assert!(err.contains(needle), "{flag} {a} {b}: {needle:?} in {err}");
        }
        assert!(!bundle.exists());
        let err = fails(
            &["runtime-config", flag, a, flag, b, &reference, s(&out)],
            2,
        );
        assert!(
            err.contains(a) && err.contains(b) && err.contains(flag),
            "{err}"
        );
        assert!(!out.exists());
    }
    assert_eq!(before, snapshot(&lay));
    // Ranges side by side are fine.
    let runtime = json(&[
        "runtime-config",
        "--uid-map",
        "0:1000:1",
        "--uid-map",
        "1:2000:1",
        &reference,
        "-",
    ]);
    assert_eq!(runtime["linux"]["uidMappings"].as_array().unwrap().len(), 2);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn rootfs_only_makes_its_root_as_a_bundle_makes_rootfs() {
    let dir = tempdir();
    let lay = image_with_etc(dir.path());
    let layout = strata::Layout::open(&lay).unwrap();
    let mut tar = TarBuilder::new();
    tar.dir("./", 0o750).file("f", b"f", 0o644);
    write_layered_image(
        &layout,
        "rooted",
        &[(tar.finish(), Packing::Plain)],
        serde_json::json!({}),
    );
    for (tag, want) in [("v1", 0o755), ("rooted", 0o750)] {
        let reference = format!("{}:{tag}", s(&lay));
        let bundle = dir.path().join(format!("bundle-{tag}"));
        let only = dir.path().join(format!("only-{tag}"));
        let given = dir.path().join(format!("given-{tag}"));
        std::fs::create_dir(&given).unwrap();
        std::fs::set_permissions(&given, std::fs::Permissions::from_mode(0o700)).unwrap();
        ok(&["unpack", "--rootless", &reference, s(&bundle)]);
        ok(&[
            "unpack",
            "--rootless",
            "--rootfs-only",
            &reference,
            s(&only),
        ]);
        ok(&[
            "unpack",
            "--rootless",
            "--rootfs-only",
            &reference,
            s(&given),
        ]);
        assert_eq!(mode(&bundle.join("rootfs")), want, "{tag}");
        assert_eq!(mode(&only), want, "{tag}");
        assert_eq!(mode(&given), want, "{tag}");
    }
}

/// The names under `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn insert_replace_makes_dest_exactly_a_directory_src_and_without_it_merges() {
    let dir = tempdir();
    let lay = image_with_etc(dir.path());
    let src = dir.path().join("etc");
    std::fs::create_dir(&src).unwrap();
    write(&src.join("hostname"), b"new\n");
    write(&src.join("issue"), b"issue\n");
    let l = s(&lay);
    ok(&[
        "insert",
        &format!("{l}:v1"),
        s(&src),
        "/etc",
        "--tag",
        "merged",
    ]);
    ok(&[
        "insert",
        &format!("{l}:v1"),
        s(&src),
        "/etc",
        "--replace",
        "--tag",
        "replaced",
    ]);
    for (tag, want) in [
        ("merged", &["hostname", "issue", "motd"][..]),
        ("replaced", &["hostname", "issue"][..]),
    ] {
        let bundle = dir.path().join(format!("b-{tag}"));
        ok(&["unpack", "--rootless", &format!("{l}:{tag}"), s(&bundle)]);
        let etc = bundle.join("rootfs/etc");
        assert_eq!(names(&etc), want, "{tag}");
        assert_eq!(std::fs::read(etc.join("hostname")).unwrap(), b"new\n");
    }
    let help = ok(&["insert", "--help"]);
    assert!(help.contains("merges"), "{help}");
}

#[test]
fn insert_opaque_with_a_file_is_a_wrong_combination() {
    let dir = tempdir();
    let lay = image_with_etc(dir.path());
    let file = dir.path().join("motd");
    write(&file, b"m\n");
    let before = snapshot(&lay);
    let err = fails(
        &[
            "insert",
            &format!("{}:v1", s(&lay)),
            s(&file),
            "/etc/motd",
            "--opaque",
        ],
        2,
    );
    assert!(err.contains("--opaque needs a directory"), "{err}");
    assert_eq!(before, snapshot(&lay));
}

#[test]
fn artifact_titles_that_collide_or_name_no_file_are_wrong_values() {
    let dir = tempdir();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    write(&work.join("f.txt"), b"f");
    let existing = work.join("lay");
    ok(&["new", &format!("{}:base", s(&existing))]);
    let before = snapshot(&existing);
    for files in [
        &["f.txt", "./f.txt"][..],
        &["."][..],
        &["f.txt", "f.txt:text/plain"][..],
    ] {
        for lay in ["lay", "fresh"] {
            let reference = format!("{lay}:art");
            let mut args = vec!["artifact", "push", &reference];
            args.extend_from_slice(files);
            args.extend_from_slice(&["--artifact-type", "application/x.test"]);
            let out = strata(&args).current_dir(&work).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{files:?} into {lay}: {err}");
            assert!(
                err.contains("same name") || err.contains("names no file"),
                "{files:?}: {err}"
            );
        }
        assert!(!work.join("fresh").exists(), "{files:?}");
        assert_eq!(before, snapshot(&existing), "{files:?}");
    }
}

#[test]
fn an_empty_layer_file_is_refused() {
    let dir = tempdir();
    let lay = image_with_etc(dir.path());
    let empty = dir.path().join("empty.tar");
    write(&empty, b"");
    let before = snapshot(&lay);
    // (`/dev/null` reads the same; not used here, as a test run as root elsewhere on the
    // machine could have replaced it.)
    let err = fails(&["add-layer", &format!("{}:v1", s(&lay)), s(&empty)], 1);
    assert!(
        err.contains(&format!("{}: is empty: not a tar layer", s(&empty))),
        "{err}"
    );
    assert_eq!(before, snapshot(&lay));
}

#[test]
fn blob_put_reads_stdin_needs_a_layout_and_prints_the_digest() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["init", s(&lay)]);
    let r = run_with_input(&["blob", "put", s(&lay), "-"], &[], "from stdin\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let digest = sha256(b"from stdin\n").to_string();
    // Text: the digest, as the other writers print; --json: the descriptor.
    assert_eq!(r.stdout, format!("{digest}\n"));
    let r = run_with_input(
        &["blob", "put", s(&lay), "-", "--json"],
        &[],
        "from stdin\n",
    );
    let desc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(desc["digest"], digest.as_str());
    assert_eq!(desc["size"], 11);
    assert_eq!(
        ok_bytes(&["blob", &format!("{}@{digest}", s(&lay))]),
        b"from stdin\n"
    );
    // As manifest put: a layout that is not there is not made for one blob.
    let missing = dir.path().join("missing");
    let file = dir.path().join("f");
    write(&file, b"f");
    for (command, target) in [
        (["blob", "put"], s(&missing).to_owned()),
        (["manifest", "put"], format!("{}:t", s(&missing))),
    ] {
        let err = fails(&[command[0], command[1], &target, s(&file)], 1);
        assert!(err.contains(s(&missing)), "{command:?}: {err}");
        assert!(!missing.exists(), "{command:?}");
    }
    let help = ok(&["blob", "put", "--help"]);
    assert!(
        help.contains("- for stdin") && help.contains("digest"),
        "{help}"
    );
}

/// A pseudo-terminal's two ends: what strata writes to the second reaches the first.
fn pty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    // SAFETY: plain libc calls on a descriptor this function owns; the name buffer is
    // NUL-terminated by ptsname_r on success.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
        let path = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_str()
            .unwrap()
            .to_owned();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(path)
            .unwrap();
        (std::fs::File::from_raw_fd(master), slave)
    }
}

#[test]
fn a_blob_is_not_written_to_a_terminal() {
    let dir = tempdir();
    let lay = image_with_etc(dir.path());
    let l = s(&lay);
    for args in [
        vec![
            "blob".to_owned(),
            format!("{l}:v1"),
            "--layer".into(),
            "0".into(),
        ],
        vec!["blob".to_owned(), format!("{l}:v1"), "--config".into()],
    ] {
        let (_master, slave) = pty();
        let out = strata(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(slave)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("refusing to write a blob to a terminal"),
            "{err}"
        );
    }
    // To a pipe it is written.
    assert!(!ok_bytes(&["blob", &format!("{l}:v1"), "--layer", "0"]).is_empty());
}
