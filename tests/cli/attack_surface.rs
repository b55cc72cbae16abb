//! Inputs probing issue 12's surface promises that the other suites do not try.

use crate::util::*;

/// `artifact push --subject` with a malformed digest is an invocation error (exit 2), as the
/// same text is for every other REF argument, and writes nothing.
#[test]
fn artifact_push_bad_subject_digest_is_exit_2() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:base", s(&lay))]);
    let file = dir.path().join("f.txt");
    write(&file, b"x");
    let before = snapshot(&lay);
    for subject in ["@sha256:zz", "@sha256:", "@md5:00"] {
        let err = fails(
            &[
                "artifact",
                "push",
                &format!("{}:art", s(&lay)),
                s(&file),
                "--artifact-type",
                "application/x-test",
                "--disable-path-validation",
                "--subject",
                subject,
            ],
            2,
        );
        assert!(err.contains("--subject"), "{subject}: {err}");
    }
    assert_eq!(before, snapshot(&lay));
}

/// A media type given on the command line is checked as the command line is parsed: a value
/// that is not `type/subtype` is an invocation error (exit 2) naming the flag, and nothing
/// is written.
#[test]
fn a_value_that_is_not_a_media_type_is_exit_2() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:base", s(&lay))]);
    let file = dir.path().join("f.txt");
    write(&file, b"x");
    let before = snapshot(&lay);
    let l = s(&lay);
    let (art, base, f) = (format!("{l}:art"), format!("{l}:base"), s(&file));
    let cases: Vec<Vec<&str>> = vec![
        vec!["artifact", "push", &art, f, "--artifact-type", "x"],
        vec!["artifact", "attach", &base, f, "--artifact-type", "x/"],
        vec!["blob", "put", l, f, "--media-type", "text"],
        vec!["referrers", &base, "--artifact-type", "/json"],
    ];
    for args in cases {
        let err = fails(&args, 2);
        let flag = args.iter().find(|a| a.ends_with("-type")).unwrap();
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(err.contains("not a media type"), "{args:?}: {err}");
    }
    assert_eq!(before, snapshot(&lay));
}

/// A missing input file is named and said not to exist, in the words the other commands
/// use, not the C library's; the layout stays as it was.
#[test]
fn a_missing_input_file_is_said_not_to_exist() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:base", s(&lay))]);
    let missing = dir.path().join("no-such-input");
    let m = s(&missing);
    let before = snapshot(&lay);
    let l = s(&lay);
    let base = format!("{l}:base");
    let cases: Vec<Vec<&str>> = vec![
        vec!["insert", &base, m, "/x", "--tag", "out"],
        vec!["add-layer", &base, m, "--tag", "out"],
        vec!["blob", "put", l, m],
        vec!["manifest", "put", &base, m],
        vec![
            "artifact",
            "push",
            &base,
            m,
            "--artifact-type",
            "a/b",
            "--disable-path-validation",
        ],
        vec!["import", m, l],
        vec!["runtime-config", &base, "-", "--rootfs", m],
        vec!["repack", m],
    ];
    for args in cases {
        let err = fails(&args, 1);
        assert!(err.contains(m), "{args:?} does not name the file: {err}");
        assert!(err.contains("does not exist"), "{args:?}: {err}");
        assert!(!err.contains("os error"), "{args:?}: {err}");
    }
    assert_eq!(before, snapshot(&lay));
}

/// A name too long for a file system is refused naming it, not the hidden temp name strata
/// would have made beside it; a long name that fits (whose temp name would not) works.
#[test]
fn long_names_are_named_or_made() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:base", s(&lay))]);
    let too_long = dir.path().join("a".repeat(300));
    let t = s(&too_long);
    for args in [
        vec!["init", t],
        vec!["new", &format!("{t}:x")],
        vec!["export", &format!("{}:base", s(&lay)), "-o", t],
    ] {
        let err = fails(&args, 1);
        assert!(
            err.contains(&format!("{t}: cannot be created")),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("strata-new") && !err.contains(".tmp"),
            "{err}"
        );
    }
    // Only `lay` is there: no temp directory or file was left.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let fits = dir.path().join("b".repeat(250));
    ok(&["init", s(&fits)]);
    assert!(fits.join("oci-layout").is_file());
    let archive = dir.path().join("c".repeat(250));
    ok(&["export", &format!("{}:base", s(&lay)), "-o", s(&archive)]);
    assert!(archive.is_file());
}

/// A registry that refuses the first connection is down or misspelt: the pull fails at once
/// naming it, rather than after seconds of retries (those are for a registry that answered
/// and then dropped a connection, tested in registry_faults.rs).
#[test]
fn a_refused_first_connection_fails_at_once() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempdir();
    let out = dir.path().join("out");
    let started = std::time::Instant::now();
    let err = fails(&["pull", &format!("127.0.0.1:{port}/x:y"), s(&out)], 1);
    let took = started.elapsed();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        took < std::time::Duration::from_secs(2),
        "took {took:?}: {err}"
    );
    assert!(!out.exists());
}

/// rebase moves layers as they are and writes none, so it has no layer compression to
/// choose: the flag is refused rather than accepted and ignored.
#[test]
fn rebase_takes_no_compression() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:base", s(&lay))]);
    let base = format!("{}:base", s(&lay));
    let err = fails(
        &[
            "rebase",
            &base,
            "--old-base",
            &base,
            "--new-base",
            &base,
            "--compress",
            "zstd",
        ],
        2,
    );
    assert!(err.contains("--compress"), "{err}");
    let help = ok(&["rebase", "--help"]);
    assert!(!help.contains("--compress"), "{help}");
}

/// `--layout DIR` names the layout of references that give none; when every reference names
/// its own, the flag did nothing, and strata says so instead of staying silent.
#[test]
fn an_unused_layout_flag_is_pointed_out() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:base", s(&lay))]);
    let other = dir.path().join("other");
    let l = s(&lay);
    let r = run(&["inspect", "--layout", s(&other), &format!("{l}:base")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("--layout {} was not used", s(&other))),
        "{}",
        r.stderr
    );
    let r = run(&["inspect", "--layout", l, ":base"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("not used"), "{}", r.stderr);
    // -q keeps it quiet, as every warning.
    let r = run(&["inspect", "-q", "--layout", s(&other), &format!("{l}:base")]);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

/// `tag lay:v1 other:v1` makes the tag `other:v1` in `lay` (tags may hold `:`); when
/// `other` is a layout, the user likely meant a copy, and strata says so.
#[test]
fn a_tag_that_reads_like_another_layout_is_pointed_out() {
    let dir = tempdir();
    let in_dir = |args: &[&str]| {
        let out = strata(args).current_dir(dir.path()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    in_dir(&["new", "lay:v1"]);
    in_dir(&["init", "other"]);
    let warned = in_dir(&["tag", "lay:v1", "other:v1"]);
    assert!(warned.contains("strata copy"), "{warned}");
    let quiet = in_dir(&["tag", "lay:v1", "plain:v2"]);
    assert!(!quiet.contains("strata copy"), "{quiet}");
    let layout = strata::Layout::open(dir.path().join("lay")).unwrap();
    let tags: Vec<String> = layout
        .read_index()
        .unwrap()
        .index
        .manifests
        .iter()
        .filter_map(|d| d.ref_name().map(str::to_owned))
        .collect();
    assert!(tags.contains(&"other:v1".to_owned()), "{tags:?}");
}

/// Paths, labels and names an image chose reach the terminal with their control characters
/// escaped: an escape sequence or a newline in a file name could otherwise repaint the
/// screen or forge lines of output (`files`, `diff`, `inspect`, errors).
#[test]
fn text_an_image_chose_cannot_drive_the_terminal() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    write(&tree.join("a\u{1b}[31mred"), b"x");
    write(&tree.join("new\nline"), b"y");
    let lay = dir.path().join("lay");
    let (empty, image) = (format!("{}:e", s(&lay)), format!("{}:t", s(&lay)));
    ok(&["new", &empty]);
    ok(&["build", s(&tree), &image, "--from", &empty]);
    ok(&["config", &image, "--label", "k=\u{1b}[2Jv"]);
    let shown = [
        ok(&["files", &image]),
        ok(&["diff", &empty, &image]),
        ok(&["inspect", &image]),
        fails(&["cat", &image, "/gone\u{1b}[31m"], 1),
    ];
    for text in &shown {
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }
    assert!(shown[0].contains("/a\\u{1b}[31mred") && shown[0].contains("/new\\nline"));
    assert!(shown[1].contains("A /new\\nline"), "{}", shown[1]);
    assert!(shown[2].contains("k=\\u{1b}[2Jv"), "{}", shown[2]);
    // The content itself is the result: cat gives it as stored.
    assert_eq!(ok_bytes(&["cat", &image, "/new\nline"]), b"y");
}

/// insert is cp: `DEST/` must be a directory of the image (a file cannot take SRC into
/// it), and a directory does not replace a file unless `--replace` says so; both refusals
/// leave the layout as it was.
#[test]
fn insert_refuses_what_cp_refuses() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    write(&tree.join("etc/motd"), b"hi\n");
    let lay = dir.path().join("lay");
    let image = format!("{}:app", s(&lay));
    ok(&["build", s(&tree), &image]);
    let file = dir.path().join("f");
    write(&file, b"f\n");
    let sub = dir.path().join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    write(&sub.join("inner"), b"i\n");
    let before = snapshot(&lay);
    let err = fails(&["insert", &image, s(&file), "/etc/motd/"], 1);
    assert!(err.contains("/etc/motd: not a directory"), "{err}");
    let err = fails(&["insert", &image, s(&sub), "/etc/motd"], 1);
    assert!(err.contains("give --replace"), "{err}");
    assert_eq!(before, snapshot(&lay));
    ok(&["insert", &image, s(&sub), "/etc/motd", "--replace"]);
    assert_eq!(ok_bytes(&["cat", &image, "/etc/motd/inner"]), b"i\n");
    ok(&["insert", &image, s(&file), "/etc/"]);
    assert_eq!(ok_bytes(&["cat", &image, "/etc/f"]), b"f\n");
}

/// A repack moves its tag from whatever the tag names now: when that is not the image the
/// bundle was unpacked from (an insert came in between), strata says so and names it, in
/// text and in `--json`'s movedFrom, instead of silently dropping the insert from the tag.
#[test]
fn repack_over_a_tag_that_moved_since_the_unpack_says_so() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    write(&tree.join("a"), b"a\n");
    let lay = dir.path().join("lay");
    let image = format!("{}:app", s(&lay));
    ok(&["build", s(&tree), &image]);
    let bundle = dir.path().join("bundle");
    ok(&["unpack", &image, s(&bundle)]);
    let extra = dir.path().join("extra");
    write(&extra, b"e\n");
    let inserted = ok(&["insert", &image, s(&extra), "/extra", "-q"])
        .trim()
        .to_owned();
    write(&bundle.join("rootfs/b"), b"b\n");
    let r = run(&["repack", s(&bundle), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["movedFrom"], inserted.as_str(), "{doc:#}");
    assert!(
        r.stderr.contains(&format!("from {inserted}")),
        "{}",
        r.stderr
    );
    // A repack straight after the unpack moves nothing it should not.
    let again = dir.path().join("again");
    ok(&["unpack", &image, s(&again)]);
    write(&again.join("rootfs/c"), b"c\n");
    let r = run(&["repack", s(&again), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("movedFrom"), "{}", r.stdout);
    assert!(!r.stderr.contains("moved tag"), "{}", r.stderr);
}

/// A writer stopped by Ctrl-C (or killed) cannot clean up after itself: what it left in
/// `.strata-tmp` is taken by the next writer to the layout, which tells a gone writer's
/// files by the pid in their names, and the directory goes with them.
#[test]
fn what_an_interrupted_writer_left_goes_with_the_next_write() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:base", s(&lay))]);
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    // Incompressible, so that the build is still writing when it is stopped.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..(96 << 20))
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    write(&tree.join("noise"), &noise);
    let tmp = lay.join(".strata-tmp");
    let mut child = strata(&[
        "build",
        s(&tree),
        &format!("{}:big", s(&lay)),
        "--from",
        &format!("{}:base", s(&lay)),
    ])
    .spawn()
    .unwrap();
    let started = std::time::Instant::now();
    while std::fs::read_dir(&tmp).map_or(true, |mut d| d.next().is_none()) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the build wrote no temp file"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    peer_ok("kill", &["-INT", &child.id().to_string()]);
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the build finished before it was stopped"
    );
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_some(),
        "nothing was left to clean"
    );
    ok(&["tag", &format!("{}:base", s(&lay)), "again"]);
    assert!(
        !tmp.exists(),
        "{:?}",
        std::fs::read_dir(&tmp).map(|d| d.count())
    );
}

/// `-v` gives a line per layer or blob written, without a terminal, in convert and in
/// artifact push (a directory's tar+gzip layer included) as in the other writers.
#[test]
fn convert_and_artifact_push_say_what_they_wrote_under_v() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    write(&tree.join("a"), b"a\n");
    let lay = dir.path().join("lay");
    let image = format!("{}:app", s(&lay));
    ok(&["build", s(&tree), &image]);
    let r = run(&["convert", &image, "--compress", "zstd", "--tag", "z", "-v"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let layer = json(&["inspect", &format!("{}:z", s(&lay)), "--raw", "manifest"])["layers"][0]
        ["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        r.stderr.contains(&format!("layer {layer} written")) && r.stderr.contains("tar+zstd"),
        "{}",
        r.stderr
    );
    let r = run(&[
        "artifact",
        "push",
        &format!("{}:art", s(&lay)),
        "--artifact-type",
        "application/x-test",
        "--disable-path-validation",
        s(&tree),
        "-v",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("blob sha256:") && r.stderr.contains("tar+gzip"),
        "{}",
        r.stderr
    );
    // Quiet without -v.
    let r = run(&["convert", &image, "--compress", "none", "--tag", "n"]);
    assert!(!r.stderr.contains("written"), "{}", r.stderr);
}

/// Errors name what the user gave: runtime-config into a path under a file names that
/// file, not a temp file beside it; `inspect` of a config blob's digest says it is no
/// image rather than reading it as a manifest.
#[test]
fn errors_name_what_was_given() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = format!("{}:base", s(&lay));
    ok(&["new", &image]);
    let file = dir.path().join("plain");
    write(&file, b"x");
    let err = fails(&["runtime-config", &image, s(&file.join("config.json"))], 1);
    assert!(
        err.contains(&format!("{}: not a directory", s(&file))),
        "{err}"
    );
    assert!(!err.contains(".tmp"), "{err}");
    let config = json(&["inspect", &image, "--json"])["config"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = fails(&["inspect", &format!("{}@{config}", s(&lay))], 1);
    assert!(err.contains("not an image manifest or index"), "{err}");
    assert!(!err.contains("schemaVersion"), "{err}");
}

/// A file that is no tar at all is said to be one, without pages of its bytes and without
/// naming an entry before the first.
#[test]
fn add_layer_of_a_file_that_is_no_tar_says_so_briefly() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:base", s(&lay))]);
    let junk = dir.path().join("junk.tar");
    let bytes: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    write(&junk, &bytes);
    let before = snapshot(&lay);
    let err = fails(&["add-layer", &format!("{}:base", s(&lay)), s(&junk)], 1);
    assert!(err.contains("not a tar"), "{err}");
    assert!(!err.contains("after entry"), "{err}");
    assert!(err.len() < 400, "{} bytes: {err}", err.len());
    assert_eq!(before, snapshot(&lay));
}

/// The sweep of `.strata-tmp` never takes a live writer's file, even from a strata in
/// another pid namespace (a container sharing the layout), to which every pid of the host
/// looks gone: a writer holds a lock on its temp file, and only files nobody holds go.
#[test]
fn a_writer_in_another_pid_namespace_keeps_its_temp_file() {
    use std::io::Write as _;
    if !peer("unshare") || !peer("mkfifo") {
        return;
    }
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["new", &format!("{}:base", s(&lay))]);
    let fifo = dir.path().join("fifo");
    peer_ok("mkfifo", &[s(&fifo)]);
    let writer = strata(&["blob", "put", s(&lay), s(&fifo)])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut feed = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    feed.write_all(&[7u8; 1 << 20]).unwrap();
    let tmp = lay.join(".strata-tmp");
    let started = std::time::Instant::now();
    while std::fs::read_dir(&tmp).map_or(true, |mut d| d.next().is_none()) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no temp file"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = std::process::Command::new("unshare")
        .args(["-p", "-f", "--mount-proc", strata_bin(), "tag"])
        .args([&format!("{}:base", s(&lay)), "other"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_some(),
        "the live writer's temp file was removed"
    );
    feed.write_all(&[8u8; 1 << 20]).unwrap();
    drop(feed);
    let put = writer.wait_with_output().unwrap();
    assert!(put.status.success(), "{put:?}");
    let printed = String::from_utf8_lossy(&put.stdout);
    assert!(printed.contains("sha256:"), "{printed}");
}

/// From the last attack: `ls -q` prints rows, not the header; an insert DEST holding a
/// `.wh.` name is a wrong value (exit 2) as a relative DEST is; export into a directory
/// that does not exist names that directory, not a temp file.
#[test]
fn ls_quiet_insert_whiteout_names_and_export_into_nothing() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = format!("{}:base", s(&lay));
    ok(&["new", &image]);
    let listed = ok(&["ls", "-q", s(&lay)]);
    assert!(!listed.contains("DIGEST"), "{listed}");
    assert!(listed.contains("base"), "{listed}");
    let file = dir.path().join("hi");
    write(&file, b"hi\n");
    let before = snapshot(&lay);
    let err = fails(&["insert", &image, s(&file), "/.wh.foo"], 2);
    assert!(err.contains(".wh."), "{err}");
    let gone = dir.path().join("nonexistdir");
    let err = fails(&["export", &image, "-o", s(&gone.join("x.tar"))], 1);
    assert!(
        err.contains(&format!("{}: does not exist", s(&gone))),
        "{err}"
    );
    assert!(!err.contains(".tmp") && !err.contains("os error"), "{err}");
    assert_eq!(before, snapshot(&lay));
}

/// A killed import leaves its staging directory in `.strata-tmp`; the next write to the
/// layout takes it, as it takes a killed writer's files (a live import holds a lock on its
/// staging directory, so only a gone one's goes).
#[test]
fn a_killed_imports_staging_directory_goes_with_the_next_write() {
    let dir = tempdir();
    let src = dir.path().join("src");
    ok(&["new", &format!("{}:base", s(&src))]);
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..(96 << 20))
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    write(&tree.join("noise"), &noise);
    let image = format!("{}:big", s(&src));
    ok(&[
        "build",
        s(&tree),
        &image,
        "--from",
        &format!("{}:base", s(&src)),
        "--compress",
        "none",
    ]);
    let archive = dir.path().join("big.tar");
    ok(&["export", &image, "-o", s(&archive)]);
    let dest = dir.path().join("dest");
    ok(&["new", &format!("{}:base", s(&dest))]);
    let tmp = dest.join(".strata-tmp");
    let mut child = strata(&["import", s(&archive), s(&dest)]).spawn().unwrap();
    let started = std::time::Instant::now();
    while !std::fs::read_dir(&tmp).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("stage-"))
    }) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the import made no staging directory"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(std::fs::read_dir(&tmp).unwrap().next().is_some());
    ok(&["tag", &format!("{}:base", s(&dest)), "again"]);
    assert!(
        !tmp.exists(),
        "{:?}",
        std::fs::read_dir(&tmp).map(|d| d.count())
    );
}
