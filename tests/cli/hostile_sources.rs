//! Hostile sources: trees that change under build and repack, pull directories that already
//! hold the user's files, and dates no peer can parse. Nothing outside what a command was
//! given may be read, replaced or deleted, and a refusal leaves everything as it was.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::build::{at, layer_tar, layers, raw_config, strata_unpack, Fs, Refusals};
use crate::util::{fails, ok, run, run_with_env, s, tar_layer, tempdir, write_artifact};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// What a path is, exactly: kind, mode, and bytes or link target (unlike
/// `util::snapshot`, a symlink is recorded as a link and never read through).
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(PathBuf),
    Other(u32),
}

/// Every path under `root`, exactly (see [`Node`]).
fn exact(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.mode() & 0o7777;
            let node = if meta.is_symlink() {
                Node::Link(std::fs::read_link(&path).unwrap())
            } else if meta.is_dir() {
                stack.push(path);
                Node::Dir(mode)
            } else if meta.is_file() {
                Node::File(mode, std::fs::read(&path).unwrap())
            } else {
                Node::Other(mode)
            };
            out.insert(rel, node);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Build and repack read the tree through directory handles, never through a swapped link
// ---------------------------------------------------------------------------------------

/// What no layer may ever hold.
const SECRET: &[u8] = b"TOP-SECRET-outside-the-tree-7f3a9c";
const VICTIMS: usize = 24;

/// A tree of `VICTIMS` harmless files and a directory `d/` (holding `f`), and in `spare/` a
/// symlink for each to the secret outside (or to a directory holding it), same names.
fn racy_tree(dir: &Path, tree: &Path) -> PathBuf {
    let outside = dir.join("outside");
    std::fs::create_dir_all(outside.join("d")).unwrap();
    std::fs::write(outside.join("secret"), SECRET).unwrap();
    std::fs::write(outside.join("d/f"), SECRET).unwrap();
    let spare = dir.join("spare");
    std::fs::create_dir_all(&spare).unwrap();
    std::fs::create_dir_all(tree.join("d")).unwrap();
    std::fs::write(tree.join("d/f"), "harmless d/f\n").unwrap();
    std::os::unix::fs::symlink(outside.join("d"), spare.join("d")).unwrap();
    for i in 0..VICTIMS {
        let name = format!("victim{i:02}");
        std::fs::write(tree.join(&name), format!("harmless {i}\n")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), spare.join(&name)).unwrap();
    }
    spare
}

/// Exchanges (atomically: the name always exists) each victim in `tree` with its symlink
/// in `spare`, over and over, until stopped.
fn swapper(tree: PathBuf, spare: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut names: Vec<String> = (0..VICTIMS).map(|i| format!("victim{i:02}")).collect();
        names.push("d".into());
        while !stop.load(Ordering::Relaxed) {
            for name in &names {
                // Fails only once the test is over and its directory gone.
                let _ = rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    tree.join(name),
                    rustix::fs::CWD,
                    spare.join(name),
                    rustix::fs::RenameFlags::EXCHANGE,
                );
            }
        }
    })
}

/// Asserts that no layer of `tag` holds the secret; true when it has a layer.
fn assert_no_secret(layout: &Path, tag: &str, what: &str) {
    for layer in layers(layout, tag) {
        let tar = layer_tar(layout, &layer);
        assert!(
            !tar.windows(SECRET.len()).any(|w| w == SECRET),
            "{what}: a layer holds the content of a file outside the tree"
        );
    }
}

#[test]
fn build_and_repack_never_follow_a_symlink_swapped_in_mid_walk() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    let spare = racy_tree(dir.path(), &tree);
    let layout = dir.path().join("l");
    ok(&["new", &at(&layout, "keep")]);

    // A bundle whose rootfs gets the same treatment (as a running container could).
    ok(&[
        "build",
        s(&tree),
        &at(&layout, "base"),
        "--compress",
        "none",
    ]);
    let bundle = dir.path().join("bundle");
    strata_unpack(&at(&layout, "base"), &bundle);
    let rootfs = bundle.join("rootfs");
    let bundle_spare = dir.path().join("bundle-spare");
    std::fs::create_dir_all(&bundle_spare).unwrap();
    for entry in std::fs::read_dir(&spare).unwrap() {
        let entry = entry.unwrap();
        let target = std::fs::read_link(entry.path()).unwrap();
        std::os::unix::fs::symlink(target, bundle_spare.join(entry.file_name())).unwrap();
    }

    let budget = Duration::from_secs(4);
    let mut succeeded = BTreeMap::new();
    for (what, source, spare) in [
        ("build", &tree, &spare),
        ("insert", &tree, &spare),
        ("repack", &rootfs, &bundle_spare),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = swapper(source.clone(), spare.clone(), stop.clone());
        let start = Instant::now();
        let mut i = 0;
        while start.elapsed() < budget && i < 60 {
            i += 1;
            let tag = format!("{what}{i}");
            let keep = at(&layout, "keep");
            let r = match what {
                "build" => run(&["build", s(source), &at(&layout, &tag), "--compress", "none"]),
                "insert" => run(&[
                    "insert",
                    &keep,
                    s(source),
                    "/srv",
                    "--tag",
                    &tag,
                    "--compress",
                    "none",
                ]),
                _ => run(&["repack", s(&bundle), "--tag", &tag, "--compress", "none"]),
            };
            assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
            if r.code == 0 {
                assert_no_secret(&layout, &tag, &format!("{what} #{i}"));
                *succeeded.entry(what).or_insert(0) += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap();
    }
    // Races may fail a run (a type changed while it was read), but not every run.
    assert_eq!(succeeded.len(), 3, "runs that succeeded: {succeeded:?}");
}

// ---------------------------------------------------------------------------------------
// artifact pull never replaces or follows what is already in the directory
// ---------------------------------------------------------------------------------------

/// A pull directory holding the user's things: a file, a directory, a symlink to a file
/// outside and one to a directory outside (both beside `dir`, under `top`).
fn user_dir(top: &Path) -> PathBuf {
    let dir = top.join("pull");
    let outside = top.join("outside");
    std::fs::create_dir_all(outside.join("etc")).unwrap();
    std::fs::write(outside.join("precious"), "outside file\n").unwrap();
    std::fs::create_dir_all(dir.join("adir")).unwrap();
    std::fs::write(dir.join("adir/keep"), "kept\n").unwrap();
    std::fs::write(dir.join("userfile"), "the user's file\n").unwrap();
    std::fs::write(dir.join("existing"), "old content\n").unwrap();
    std::fs::set_permissions(dir.join("existing"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(outside.join("precious"), dir.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("etc"), dir.join("sub")).unwrap();
    dir
}

#[test]
fn artifact_pull_replaces_deletes_and_follows_nothing_already_there() {
    let top = tempdir();
    let layout = strata::Layout::init(top.path().join("lay")).unwrap();
    let l = s(layout.root()).to_owned();
    let dir = user_dir(top.path());
    // (tag, its (title, content) files, what the refusal must name)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("under-file", &[("userfile/child", "payload")], "userfile"),
        ("on-file", &[("existing", "payload")], "existing"),
        ("on-link", &[("link", "payload")], "link"),
        ("through-link", &[("sub/x", "payload")], "sub"),
        ("on-dir", &[("adir", "payload")], "adir"),
        (
            "late-conflict",
            &[("fresh/one", "payload"), ("userfile/child", "payload")],
            "userfile",
        ),
        (
            "self-conflict",
            &[("new/x", "payload"), ("new/x/y", "payload")],
            "new/x",
        ),
        (
            "duplicate",
            &[("twice", "payload"), ("twice", "other")],
            "twice",
        ),
    ];
    for (tag, files, _) in cases {
        write_artifact(&layout, tag, files);
    }
    for overwrite in [false, true] {
        for (tag, _, needle) in cases {
            if overwrite && *tag == "on-file" {
                continue;
            }
            let before = exact(top.path());
            let mut args = vec!["artifact", "pull"];
            let reference = format!("{l}:{tag}");
            args.extend([reference.as_str(), s(&dir)]);
            if overwrite {
                args.push("--overwrite");
            }
            let err = fails(&args, 1);
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert!(
                exact(top.path()) == before,
                "{args:?} changed the directory or its surroundings"
            );
        }
    }

    // --overwrite replaces a regular file at exactly a title's path, and nothing else.
    let before = exact(top.path());
    ok(&[
        "artifact",
        "pull",
        &format!("{l}:on-file"),
        s(&dir),
        "--overwrite",
    ]);
    let mut after = exact(top.path());
    let replaced = after.remove(Path::new("pull/existing"));
    assert!(
        matches!(&replaced, Some(Node::File(_, body)) if body == b"payload"),
        "{replaced:?}"
    );
    let mut expected = before;
    expected.remove(Path::new("pull/existing"));
    assert!(
        after == expected,
        "--overwrite changed more than the title's file"
    );

    // A fresh directory (and its parents) is made; a refused pull leaves none behind.
    ok(&[
        "artifact",
        "pull",
        &format!("{l}:late-conflict"),
        s(&top.path().join("new-dir")),
    ]);
    assert_eq!(
        std::fs::read(top.path().join("new-dir/userfile/child")).unwrap(),
        b"payload"
    );
    let before = exact(top.path());
    fails(
        &[
            "artifact",
            "pull",
            &format!("{l}:self-conflict"),
            s(&top.path().join("never")),
        ],
        1,
    );
    assert!(
        exact(top.path()) == before,
        "a refused pull left a directory"
    );
}

// ---------------------------------------------------------------------------------------
// Dates: RFC 3339 with a four-digit year, or a clear error before any blob is written
// ---------------------------------------------------------------------------------------

#[test]
fn out_of_range_dates_are_refused_before_anything_is_written() {
    let dir = tempdir();
    let layout = dir.path().join("l");
    let tree = dir.path().join("tree");
    Fs(&tree).write("etc/motd", "hello\n", 0o644);
    ok(&["build", s(&tree), &at(&layout, "keep")]);
    let bundle = dir.path().join("bundle");
    strata_unpack(&at(&layout, "keep"), &bundle);
    Fs(&bundle.join("rootfs")).write("etc/motd", "changed\n", 0o644);
    let tar_path = dir.path().join("layer.tar");
    std::fs::write(&tar_path, tar_layer("dates")).unwrap();
    let fresh = dir.path().join("fresh");
    let (keep, out) = (at(&layout, "keep"), at(&layout, "out"));
    let fresh_ref = at(&fresh, "t");
    let commands: Vec<Vec<&str>> = vec![
        vec!["build", s(&tree), &out],
        vec!["build", s(&tree), &out, "--from", &keep],
        vec!["build", s(&tree), &fresh_ref],
        vec!["new", &out],
        vec!["new", &fresh_ref],
        vec!["config", &keep, "--tag", "out", "--env", "A=1"],
        vec!["insert", &keep, s(&tar_path), "/x", "--tag", "out"],
        vec!["insert", &keep, "--whiteout", "/etc", "--tag", "out"],
        vec!["add-layer", &keep, s(&tar_path), "--tag", "out"],
        vec!["repack", s(&bundle), "--tag", "out"],
    ];
    let mut refusals = Refusals::new(&layout);
    // 10000-01-01T00:00:00Z, far beyond, the year -1, and before 1970 (a tar mtime
    // cannot hold it).
    // A value of the environment is the invocation's: exit 2, as a bad STRATA_THREADS.
    for epoch in [
        "253402300800",
        "99999999999999999",
        "-62167219201",
        "-1",
        "abc",
    ] {
        for args in &commands {
            let r = run_with_env(args, &[("SOURCE_DATE_EPOCH", epoch)]);
            refusals.check_usage(
                &format!("SOURCE_DATE_EPOCH={epoch} {args:?}"),
                &r,
                &["SOURCE_DATE_EPOCH", epoch],
            );
            assert!(!fresh.exists(), "{args:?} left a new layout behind");
        }
    }
    let bad_times = [
        "10000-01-01T00:00:00Z",
        "+10000-01-01T00:00:00Z",
        "-0001-01-01T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:60Z",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00Zjunk",
        "2024-01-01T00:00:00-0100",
        "2024-01-01T00:00:00.Z",
        "2024-01-01 00:00:00Z",
        "2024-01-01t00:00:00z",
        // In range as written, out of range in UTC.
        "9999-12-31T23:59:59-00:01",
        "0000-01-01T00:00:00+00:01",
    ];
    for time in bad_times {
        // `--flag=VALUE`: a value may start with `-`.
        let (created, history) = (
            format!("--created={time}"),
            format!("--history-created={time}"),
        );
        let (created, history) = (created.as_str(), history.as_str());
        let with_time: Vec<Vec<&str>> = vec![
            vec!["build", s(&tree), &out, created],
            vec!["build", s(&tree), &fresh_ref, history],
            vec!["config", &keep, "--tag", "out", created],
            vec!["config", &keep, "--tag", "out", history],
            vec!["insert", &keep, s(&tar_path), "/x", "--tag", "out", history],
            vec!["add-layer", &keep, s(&tar_path), "--tag", "out", history],
            vec!["repack", s(&bundle), "--tag", "out", history],
        ];
        for args in with_time {
            let r = run(&args);
            refusals.check_usage(&format!("{args:?}"), &r, &[time]);
            assert!(!fresh.exists(), "{args:?} left a new layout behind");
        }
    }
    refusals.finish();

    // The edges of the range are fine, and written as such.
    let r = run_with_env(
        &["new", &at(&layout, "last")],
        &[("SOURCE_DATE_EPOCH", "253402300799")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        raw_config(&layout, "last")["created"],
        "9999-12-31T23:59:59Z"
    );
    let r = run_with_env(
        &["build", s(&tree), &at(&layout, "first")],
        &[("SOURCE_DATE_EPOCH", "0")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        raw_config(&layout, "first")["created"],
        "1970-01-01T00:00:00Z"
    );
    for good in [
        "2024-02-29T23:59:59.123456789+05:30",
        "0000-01-01T00:00:00Z",
        "0000-01-01T23:59:59-00:01",
        "9999-12-31T23:59:59Z",
    ] {
        ok(&["config", &keep, "--tag", "good", "--created", good]);
        assert_eq!(raw_config(&layout, "good")["created"], good);
    }
}
