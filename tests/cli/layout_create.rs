//! Every command that creates a layout creates it crash-safely, and takes it back when it
//! fails. Each command is traced once to list the calls by which it changes the file
//! system, then run once per such call, killed by strace exactly there. After every kill
//! the new layout (its first missing ancestor, for nested paths) is absent or passes fsck,
//! and the same command run again succeeds and leaves what a complete run leaves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::crash_matrix::{count_calls, kill_points, killed_at, traced};
use crate::util::*;

/// The calls by which a creation changes the file system or makes a change durable.
const CALLS: &[&str] = &[
    "mkdir",
    "mkdirat",
    "renameat",
    "renameat2",
    "rename",
    "fsync",
    "write",
    "fchmod",
    "unlinkat",
    "rmdir",
];
/// Kill points per call at most (a layer's data is many writes).
const SAMPLES: usize = 24;

/// A command under test, as arguments relative to the work directory `W`.
struct Case {
    args: &'static [&'static str],
    /// The layout the command creates, relative to `W`.
    layout: &'static str,
    /// An empty directory the command is given to create the layout in: a kill may leave
    /// a skeleton there (it is the user's, so it cannot appear whole), which a rerun
    /// completes.
    given_empty_dir: bool,
}

/// The source tree and file the commands read, made in `work`.
fn inputs(work: &Path) {
    std::fs::create_dir_all(work.join("src/etc")).unwrap();
    write(&work.join("src/etc/hello"), b"hello\n");
    write(&work.join("payload.txt"), b"an artifact's payload\n");
}

fn args_in(args: &[&str], work: &Path) -> Vec<String> {
    args.iter().map(|a| a.replace('W', s(work))).collect()
}

fn reset(template: &Path, work: &Path) {
    if work.exists() {
        std::fs::remove_dir_all(work).unwrap();
    }
    let status = std::process::Command::new("cp")
        .args(["-a", s(template), s(work)])
        .status()
        .expect("cp");
    assert!(status.success());
}

/// `W`'s files, leaving out the layout's temp files (a blob write killed after the layout
/// was complete may leave one; fsck ignores them).
fn state(work: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut snap = snapshot(work);
    snap.retain(|p, _| !p.components().any(|c| c.as_os_str() == ".strata-tmp"));
    snap
}

fn temp_dirs_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".strata-new."))
                .collect()
        })
        .unwrap_or_default()
}

fn fsck_passes(layout: &Path) -> Result<(), String> {
    let r = run(&["fsck", s(layout)]);
    if r.code == 0 {
        Ok(())
    } else {
        Err(format!("{}{}", r.stdout, r.stderr))
    }
}

fn killed_everywhere(case: Case) {
    if !peer("strace") {
        return;
    }
    let dir = tempdir();
    let work = dir.path().join("W");
    let template = dir.path().join("template");
    std::fs::create_dir(&work).unwrap();
    inputs(&work);
    let layout = work.join(case.layout);
    if case.given_empty_dir {
        std::fs::create_dir_all(&layout).unwrap();
    }
    // What appears first: the layout's first missing ancestor (or the layout's files).
    let top = work.join(case.layout.split('/').next().unwrap());
    reset(&work, &template);
    let args = args_in(case.args, &work);

    let log = dir.path().join("strace.log");
    let (killed, code) = traced(
        &args,
        &["-e".into(), format!("trace={}", CALLS.join(","))],
        &log,
    );
    assert!(
        !killed && code == 0,
        "a traced run of strata {args:?} failed ({code})"
    );
    fsck_passes(&layout).unwrap();
    let complete = state(&work);
    let counts = count_calls(&log);

    let (mut runs, mut kills) = (0, 0);
    for (call, count) in &counts {
        for n in kill_points(*count, SAMPLES) {
            reset(&template, &work);
            let (killed, code) = killed_at(&args, call, n, &log);
            runs += 1;
            let what = format!("strata {args:?} killed at {call} #{n}");
            if !killed {
                assert_eq!(code, 0, "{what}: it was not killed but failed");
                continue;
            }
            kills += 1;
            if !case.given_empty_dir && top.exists() {
                if let Err(e) = fsck_passes(&layout) {
                    panic!("{what}: {} exists but fsck fails:\n{e}", top.display());
                }
            }
            let again = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(
                again.code, 0,
                "{what}: running it again failed:\n{}",
                again.stderr
            );
            if let Err(e) = fsck_passes(&layout) {
                panic!("{what}, then run again: fsck fails:\n{e}");
            }
            assert!(
                state(&work) == complete,
                "{what}, then run again: the files differ from a complete run's"
            );
            assert_eq!(temp_dirs_in(&work), Vec::<String>::new(), "{what}");
        }
    }
    eprintln!("strata {args:?}: {runs} injections, {kills} kills, calls {counts:?}");
    assert!(
        kills > 0,
        "no injection killed strata {args:?}: is strace working?"
    );
}

#[test]
fn init_of_a_nested_missing_layout_killed_anywhere_is_absent_or_whole_and_a_rerun_works() {
    killed_everywhere(Case {
        args: &["init", "W/a/b/lay"],
        layout: "a/b/lay",
        given_empty_dir: false,
    });
}

#[test]
fn init_of_a_missing_layout_killed_anywhere_is_absent_or_whole_and_a_rerun_works() {
    killed_everywhere(Case {
        args: &["init", "W/lay"],
        layout: "lay",
        given_empty_dir: false,
    });
}

#[test]
fn init_in_an_empty_dir_killed_anywhere_is_completed_by_a_rerun() {
    killed_everywhere(Case {
        args: &["init", "W/lay"],
        layout: "lay",
        given_empty_dir: true,
    });
}

#[test]
fn new_into_a_nested_missing_layout_killed_anywhere_is_absent_or_whole_and_a_rerun_works() {
    killed_everywhere(Case {
        args: &["new", "W/a/b/lay:t"],
        layout: "a/b/lay",
        given_empty_dir: false,
    });
}

#[test]
fn build_into_a_nested_missing_layout_killed_anywhere_is_absent_or_whole_and_a_rerun_works() {
    killed_everywhere(Case {
        args: &["build", "W/src", "W/a/b/lay:t"],
        layout: "a/b/lay",
        given_empty_dir: false,
    });
}

#[test]
fn build_into_an_empty_dir_killed_anywhere_is_completed_by_a_rerun() {
    killed_everywhere(Case {
        args: &["build", "W/src", "W/lay:t"],
        layout: "lay",
        given_empty_dir: true,
    });
}

#[test]
fn artifact_push_into_a_missing_layout_killed_anywhere_is_absent_or_whole_and_a_rerun_works() {
    killed_everywhere(Case {
        args: &[
            "artifact",
            "push",
            "--disable-path-validation",
            "W/a/lay:t",
            "--artifact-type",
            "application/x-test",
            "W/payload.txt",
        ],
        layout: "a/lay",
        given_empty_dir: false,
    });
}

/// Commands that would create `W/a/b/lay` (or fill the empty `W/e`) and then fail.
const FAILING: &[&[&str]] = &[
    &["build", "W/src", "L:t", "--from", "W/nowhere:x"],
    &["build", "W/missing", "L:t"],
    &["new", "L:t", "--set-platform", "nonsense"],
    &["index", "create", "L:i", "--manifest", "L:none"],
    &[
        "artifact",
        "push",
        "--disable-path-validation",
        "L:t",
        "--artifact-type",
        "application/x-test",
        "W/none.txt",
    ],
    &[
        "artifact",
        "push",
        "--disable-path-validation",
        "L:t",
        "--artifact-type",
        "application/x-test",
        "--subject",
        "L:none",
        "W/payload.txt",
    ],
];

#[test]
fn a_command_that_fails_leaves_a_missing_layouts_parents_as_they_were() {
    let dir = tempdir();
    let work = dir.path().join("W");
    std::fs::create_dir(&work).unwrap();
    inputs(&work);
    let before = snapshot(dir.path());
    for args in FAILING {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace('L', "W/a/b/lay").replace('W', s(&work)))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args);
        assert_ne!(r.code, 0, "strata {args:?} succeeded");
        assert!(
            snapshot(dir.path()) == before,
            "strata {args:?} failed but left {:?}",
            std::fs::read_dir(&work)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_command_that_fails_leaves_an_empty_dir_empty() {
    let dir = tempdir();
    let work = dir.path().join("W");
    std::fs::create_dir_all(work.join("e")).unwrap();
    inputs(&work);
    let before = snapshot(dir.path());
    for args in FAILING {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace('L', "W/e").replace('W', s(&work)))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args);
        assert_ne!(r.code, 0, "strata {args:?} succeeded");
        assert!(
            snapshot(dir.path()) == before,
            "strata {args:?} failed but changed W/e"
        );
    }
}

#[test]
fn init_accepts_an_empty_layout_and_refuses_anything_else() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    ok(&["init", s(&lay)]);
    let before = snapshot(dir.path());
    ok(&["init", s(&lay)]);
    assert!(snapshot(dir.path()) == before);
    ok(&["new", &format!("{}:t", s(&lay))]);
    // A layout with images: init says so and changes nothing (as `git init` in a repo).
    let before = snapshot(dir.path());
    let r = run(&["init", s(&lay)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("is a layout already (1 index.json entry)"),
        "{}",
        r.stderr
    );
    assert!(snapshot(dir.path()) == before);

    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    write(&mine.join("notes.txt"), b"mine");
    let before = snapshot(dir.path());
    let err = fails(&["init", s(&mine)], 1);
    assert!(err.contains("not empty") && err.contains(s(&mine)), "{err}");
    let file = dir.path().join("file");
    write(&file, b"x");
    let err = fails(&["init", s(&file.join("lay"))], 1);
    assert!(err.contains(s(&file)), "{err}");
    assert!(
        snapshot(dir.path())
            == before
                .into_iter()
                .chain([(PathBuf::from("file"), Some(b"x".to_vec()))])
                .collect()
    );
}

#[test]
fn new_and_build_fill_an_empty_dir_or_a_killed_creations_skeleton() {
    let dir = tempdir();
    let work = dir.path().join("W");
    std::fs::create_dir(&work).unwrap();
    inputs(&work);
    let empty = work.join("empty");
    std::fs::create_dir(&empty).unwrap();
    ok(&["new", &format!("{}:t", s(&empty))]);
    fsck_passes(&empty).unwrap();
    let half = work.join("half");
    std::fs::create_dir_all(half.join("blobs/sha256")).unwrap();
    std::fs::create_dir_all(half.join(".strata-tmp")).unwrap();
    write(&half.join(".strata-tmp/index.json-a1B2c3"), b"{");
    ok(&["build", s(&work.join("src")), &format!("{}:t", s(&half))]);
    fsck_passes(&half).unwrap();
}
