//! Crash injection at every write: each mutating command is run once to list the system
//! calls by which it changes the file system, then once per such call, killed by strace
//! (`-e inject=CALL:signal=KILL:when=N`) exactly at that call. After every kill:
//! `index.json` parses, every tag is either as it was before the command or as a complete
//! run leaves it, `ls` and `fsck` pass (unreferenced blobs are allowed), and running the
//! command again succeeds and gives the complete run's tags. Unlike the timed kills in
//! `crash.rs`, this visits every rename, unlink and fsync, deterministically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::crash::tag_map;
use crate::util::*;

/// Calls that change the file system (or make a change durable). Data writes are sampled:
/// a layer is thousands of them.
const METADATA_CALLS: &[&str] = &[
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "rmdir",
    "link",
    "linkat",
    "mkdir",
    "mkdirat",
    "symlinkat",
    "fsync",
    "fdatasync",
    "ftruncate",
    "fchmod",
    "fchmodat",
    "fchownat",
    "utimensat",
    "ioctl",
];
const DATA_CALLS: &[&str] = &["write", "pwrite64", "writev", "copy_file_range"];
/// Kill points per data call, spread from its first to its last occurrence.
const DATA_SAMPLES: usize = 6;
/// Kill points per metadata call at most (spread likewise when a command makes more).
const METADATA_SAMPLES: usize = 24;

/// A command under test, as arguments relative to the work directory `W`.
#[derive(Default)]
struct Case {
    args: &'static [&'static str],
    /// Once a first run's effect is complete, a second may fail (untag: the tag is gone).
    rerun_fails_when_done: bool,
    /// What the command may change beside the layout (`W/lay`): prefixes of paths under `W`.
    writes: &'static [&'static str],
    /// A tag whose image a rerun may make anew (repack adds a layer each time): it must
    /// then hold the same files as after a complete run, not the same digest.
    same_files: Option<&'static str>,
}

/// The state every command starts from, built once at `dir/W` and copied back before each
/// run (at the same path: a bundle's metadata names its layout by absolute path).
fn build_state(work: &Path) {
    let src = work.join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    write(&src.join("etc/hello"), b"hello\n");
    write(&src.join("payload.txt"), b"an artifact's payload\n");
    std::os::unix::fs::symlink("hello", src.join("etc/link")).unwrap();

    let (layout, images) = layout_with_images(work, "lay", &["b"]);
    ok(&["build", s(&src), &format!("{}:a", s(layout.root()))]);
    let a = layout
        .read_index()
        .expect("index.json")
        .index
        .manifests
        .into_iter()
        .find(|d| d.ref_name() == Some("a"))
        .expect("the tag a");
    let arm = write_image(&layout, &["arm-1", "arm-2"], "arm64");
    let index = write_index(&layout, &[&images[0], &arm]);
    add_entry(&layout, &index, Some("idx"));
    let referrer = write_referrer(&layout, &a, "signature of a");
    add_entry(&layout, &referrer.manifest, None);
    // Garbage for gc: an untagged image with a referrer in index.json (gc drops the entry
    // with its subject), and loose blobs.
    let junk = write_image(&layout, &["junk-1", "junk-2"], "amd64");
    let junk_referrer = write_referrer(&layout, &junk.manifest, "signature of junk");
    add_entry(&layout, &junk_referrer.manifest, None);
    for n in 0..4 {
        layout
            .put_blob(format!("loose {n}").as_bytes())
            .expect("put_blob");
    }

    let (other, _) = layout_with_images(work, "other", &["imp"]);
    ok(&[
        "export",
        &format!("{}:imp", s(other.root())),
        "-o",
        s(&work.join("archive.tar")),
    ]);
    let bundle = work.join("bundle");
    ok(&[
        "unpack",
        "--rootless",
        &format!("{}:a", s(layout.root())),
        s(&bundle),
    ]);
    write(&bundle.join("rootfs/added.txt"), b"added after unpack\n");
}

fn args_in(case: &Case, work: &Path) -> Vec<String> {
    let w = s(work);
    case.args.iter().map(|a| a.replace('W', w)).collect()
}

fn reset(template: &Path, work: &Path) {
    if work.exists() {
        std::fs::remove_dir_all(work).expect("removing the work dir");
    }
    let status = Command::new("cp")
        .args(["-a", s(template), s(work)])
        .status()
        .expect("cp");
    assert!(status.success(), "cp -a failed");
}

/// strata under strace, with util::strata's environment. Returns whether SIGKILL ended it.
pub(crate) fn traced(args: &[String], strace_args: &[String], log: &Path) -> (bool, i32) {
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o", s(log)])
        .args(strace_args)
        .arg("--")
        .arg(strata_bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TZ", "UTC")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running strace");
    let log = std::fs::read_to_string(log).unwrap_or_default();
    (
        log.contains("+++ killed by SIGKILL"),
        out.status.code().unwrap_or(-1),
    )
}

/// An image `src:app` under `dir`, and `dir/bundle` as an `unpack --rootless` of it left it
/// when killed making the first directory of the image's layer: rootfs/ is there,
/// config.json is not.
pub(crate) fn killed_unpack(dir: &Path) -> (String, std::path::PathBuf) {
    let (src, _) = crate::util::layout_with_images(dir, "src", &["app"]);
    let image = format!("{}:app", crate::util::s(src.root()));
    let bundle = dir.join("bundle");
    let args: Vec<String> = ["unpack", "--rootless", &image, crate::util::s(&bundle)]
        .map(str::to_owned)
        .into();
    let log = dir.join("strace.log");
    let (killed, _) = killed_at(&args, "mkdirat", 1, &log);
    assert!(killed, "{}", std::fs::read_to_string(&log).unwrap());
    (image, bundle)
}

/// strata killed by strace at the `n`th `call` (see [`traced`]).
pub(crate) fn killed_at(args: &[String], call: &str, n: usize, log: &Path) -> (bool, i32) {
    let strace_args = [
        "-e".into(),
        format!("trace={call}"),
        "-e".into(),
        format!("inject={call}:signal=KILL:when={n}"),
    ];
    traced(args, &strace_args, log)
}

/// How many times the command makes each call of interest, from a traced complete run.
pub(crate) fn count_calls(log: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(log).expect("reading the strace log");
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        // "PID name(args..." (an unfinished call's second half starts with "<...").
        let Some(rest) = line.split_once(' ').map(|(_, r)| r.trim_start()) else {
            continue;
        };
        let Some((name, _)) = rest.split_once('(') else {
            continue;
        };
        if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            *counts.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// `samples` kill points spread over `1..=count` (every one when there are few).
pub(crate) fn kill_points(count: usize, samples: usize) -> Vec<usize> {
    if count <= samples {
        return (1..=count).collect();
    }
    let mut points: Vec<usize> = (0..samples)
        .map(|i| 1 + i * (count - 1) / (samples - 1))
        .collect();
    points.dedup();
    points
}

/// The files of an image's rootfs (unpacked rootless into `dir`, emptied first).
fn files_of(image: &str, dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("removing an old bundle");
    }
    ok(&["unpack", "--rootless", image, s(dir)]);
    snapshot(&dir.join("rootfs"))
}

fn check_sound(lay: &Path, allowed: &[&BTreeMap<String, String>], what: &str) {
    let tags = tag_map(lay);
    let every: std::collections::BTreeSet<&String> = tags
        .keys()
        .chain(allowed.iter().flat_map(|m| m.keys()))
        .collect();
    for tag in every {
        let now = tags.get(tag);
        assert!(
            allowed.iter().any(|m| m.get(tag) == now),
            "{what}: tag {tag} is {now:?}, neither as before nor as after a complete run"
        );
    }
    for args in [["ls", s(lay), "--json"], ["fsck", s(lay), "--json"]] {
        let r = run(&args);
        assert_eq!(
            r.code, 0,
            "{what}: strata {} failed after the kill:\n{}\n{}",
            args[0], r.stdout, r.stderr
        );
    }
}

fn matrix(case: Case) {
    if !peer("strace") {
        return;
    }
    let dir = tempdir();
    let work: PathBuf = dir.path().join("W");
    let template = dir.path().join("template");
    std::fs::create_dir(&work).unwrap();
    build_state(&work);
    reset(&work, &template);
    // The complete run starts from a copy too, as every later run does.
    reset(&template, &work);
    let lay = work.join("lay");
    let args = args_in(&case, &work);
    let before = tag_map(&lay);
    // Everything beside the layout, but what the command writes: byte for byte the same
    // after every kill and rerun.
    let beside = |root: &Path| {
        let mut tree = snapshot(root);
        tree.retain(|path, _| {
            let path = path.to_string_lossy();
            !path.starts_with("lay") && !case.writes.iter().any(|w| path.starts_with(w))
        });
        tree
    };
    let surroundings = beside(&template);

    let log = dir.path().join("strace.log");
    let calls: Vec<String> = METADATA_CALLS
        .iter()
        .chain(DATA_CALLS)
        .map(|c| c.to_string())
        .collect();
    let (killed, code) = traced(
        &args,
        &["-e".into(), format!("trace={}", calls.join(","))],
        &log,
    );
    assert!(
        !killed && code == 0,
        "a traced run of strata {args:?} failed ({code})"
    );
    let complete = tag_map(&lay);
    let counts = count_calls(&log);
    let files = |what: &str| {
        case.same_files
            .map(|tag| files_of(&format!("{}:{tag}", s(&lay)), &dir.path().join(what)))
    };
    let complete_files = files("complete");

    let (mut runs, mut kills) = (0, 0);
    for (call, count) in &counts {
        let samples = if DATA_CALLS.contains(&call.as_str()) {
            DATA_SAMPLES
        } else {
            METADATA_SAMPLES
        };
        for n in kill_points(*count, samples) {
            reset(&template, &work);
            let (killed, code) = killed_at(&args, call, n, &log);
            runs += 1;
            let what = format!("strata {args:?} killed at {call} #{n}");
            if !killed {
                assert_eq!(code, 0, "{what}: it was not killed but failed");
                continue;
            }
            kills += 1;
            check_sound(&lay, &[&before, &complete], &what);
            assert!(
                beside(&work) == surroundings,
                "{what}: something beside the layout changed"
            );
            let done = tag_map(&lay) == complete;
            let again = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
            if again.code != 0 {
                assert!(
                    case.rerun_fails_when_done && done,
                    "{what}: running it again failed:\n{}",
                    again.stderr
                );
            }
            let mut rerun = tag_map(&lay);
            let mut expected = complete.clone();
            if let Some(tag) = case.same_files {
                assert!(
                    files("rerun") == complete_files,
                    "{what}: after a rerun, {tag} holds other files than after a complete run"
                );
                rerun.remove(tag);
                expected.remove(tag);
            }
            assert_eq!(rerun, expected, "{what}: a rerun did not complete it");
            let sound_after: BTreeMap<String, String> = if case.same_files.is_some() {
                tag_map(&lay)
            } else {
                complete.clone()
            };
            check_sound(&lay, &[&sound_after], &format!("{what}, then run again"));
            assert!(
                beside(&work) == surroundings,
                "{what}: a rerun changed something beside the layout"
            );
        }
    }
    eprintln!(
        "strata {:?}: {runs} injections, {kills} kills, calls {counts:?}",
        case.args
    );
    // The injection must really land: a command that writes anything is killed at least
    // at its first write.
    assert!(
        kills > 0,
        "no injection killed strata {args:?}: is strace working?"
    );
}

macro_rules! crash_case {
    ($name:ident, [$($arg:expr),+] $(, $field:ident: $value:expr)*) => {
        #[test]
        fn $name() {
            #[allow(clippy::needless_update)]
            matrix(Case {
                args: &[$($arg),+],
                $($field: $value,)*
                ..Case::default()
            });
        }
    };
}

crash_case!(tag_killed_at_every_write, ["tag", "W/lay:a", "t2"]);
crash_case!(untag_killed_at_every_write, ["untag", "W/lay:b"], rerun_fails_when_done: true);
crash_case!(gc_killed_at_every_write, ["gc", "W/lay"]);
crash_case!(
    build_killed_at_every_write,
    ["build", "W/src", "W/lay:built", "--from", "W/lay:a"]
);
crash_case!(
    repack_killed_at_every_write,
    ["repack", "W/bundle", "--tag", "repacked"],
    same_files: Some("repacked")
);
crash_case!(
    repack_refreshing_the_bundle_killed_at_every_write,
    ["repack", "W/bundle", "--tag", "repacked", "--refresh-bundle"],
    same_files: Some("repacked"),
    // The two files, and a temp file beside each when killed before its rename.
    writes: &["bundle/strata.json", "bundle/strata-snapshot.jsonl", "bundle/.strata"]
);
crash_case!(
    import_killed_at_every_write,
    ["import", "W/archive.tar", "W/lay"]
);
crash_case!(
    copy_killed_at_every_write,
    ["copy", "W/other:imp", "W/lay:copied"]
);
crash_case!(
    export_into_the_layout_killed_at_every_write,
    ["export", "W/lay:a", "-o", "W/lay/out.tar"]
);
crash_case!(
    artifact_attach_killed_at_every_write,
    [
        "artifact",
        "attach",
        "--disable-path-validation",
        "W/lay:a",
        "--artifact-type",
        "application/x-test",
        "W/src/payload.txt"
    ]
);
crash_case!(
    index_add_killed_at_every_write,
    ["index", "add", "W/lay:idx", "--manifest", "W/lay:b"]
);
