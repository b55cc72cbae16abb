//! Crash safety: a strata writer killed with SIGKILL at any moment leaves a layout that fsck
//! passes and that still has every tag it had before (blobs and index.json are replaced by
//! rename, never written in place). Leftover temp files are harmless and gc removes them.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use strata::spec::ANNOTATION_REF_NAME;
use strata::Layout;

use crate::util::*;

/// A small deterministic PRNG (splitmix64): the same iteration always gets the same delays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Number of images the crash layout's tags point at.
const IMAGES: usize = 4;
/// Extra tags, so index.json is large (~100 KiB) and rewriting it takes a while.
const BULK_TAGS: usize = 300;

/// A layout with `IMAGES` tagged images (`img-N`) and `BULK_TAGS` more tags over them.
fn big_layout(dir: &Path) -> (Layout, Vec<Image>) {
    let names: Vec<String> = (0..IMAGES).map(|i| format!("img-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (layout, images) = layout_with_images(dir, "lay", &names);
    layout
        .update_index(|index| {
            for n in 0..BULK_TAGS {
                let mut desc = images[n % IMAGES].manifest.clone();
                desc.set_annotation(ANNOTATION_REF_NAME, Some(&format!("bulk-{n:03}")));
                desc.set_annotation(
                    "org.example.padding",
                    Some(&format!("entry {n} {}", "x".repeat(n % 97))),
                );
                index.manifests.push(desc);
            }
            Ok((true, ()))
        })
        .expect("adding the bulk tags");
    (layout, images)
}

/// Tag → digest from index.json, which must parse.
pub(crate) fn tag_map(layout: &Path) -> BTreeMap<String, String> {
    let raw = std::fs::read(layout.join("index.json")).expect("reading index.json");
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_else(|e| {
        panic!(
            "index.json is not JSON ({e}): {}",
            String::from_utf8_lossy(&raw)
        )
    });
    let mut out = BTreeMap::new();
    for m in index["manifests"].as_array().expect("a manifests array") {
        if let Some(tag) = m["annotations"][ANNOTATION_REF_NAME].as_str() {
            let digest = m["digest"].as_str().expect("a digest").to_owned();
            if let Some(other) = out.insert(tag.to_owned(), digest.clone()) {
                panic!("tag {tag} occurs twice in index.json ({other} and {digest})");
            }
        }
    }
    out
}

fn spawn(args: &[&str]) -> Child {
    strata(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning strata {args:?}: {e}"))
}

/// How a run ended.
enum End {
    /// It exited on its own (or just before the kill landed) with this status.
    Exited(ExitStatus),
    /// SIGKILL ended it.
    Killed,
}

/// When to kill a writer.
enum When<'a> {
    /// Never: let it finish.
    Never,
    /// At this moment.
    At(Instant),
    /// This long after `trigger` first returns true (polled while the writer runs).
    After(Box<dyn FnMut() -> bool + 'a>, Duration),
}

/// Runs `child`, SIGKILLs it as `when` says unless it exits first, and reaps it.
fn run_and_kill(mut child: Child, mut when: When) -> End {
    let mut fired: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return End::Exited(status);
        }
        let now = Instant::now();
        let kill = match &mut when {
            When::Never => false,
            When::At(deadline) => now >= *deadline,
            When::After(trigger, extra) => {
                if fired.is_none() && trigger() {
                    fired = Some(Instant::now());
                }
                fired.is_some_and(|at| now >= at + *extra)
            }
        };
        if kill {
            let _ = child.kill(); // SIGKILL; fails only if it has exited meanwhile
            let status = child.wait().expect("wait");
            return match status.code() {
                Some(_) => End::Exited(status),
                None => End::Killed,
            };
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// The names in `LAYOUT/.strata-tmp` (empty when it does not exist).
fn temp_files(root: &Path) -> BTreeSet<OsString> {
    match std::fs::read_dir(root.join(strata::layout::TMP_DIR)) {
        Ok(entries) => entries.map(|e| e.expect("entry").file_name()).collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// A trigger that fires once a temp file not in `known` appears: the writer is mid-write.
fn new_temp_file(root: &Path, known: BTreeSet<OsString>) -> Box<dyn FnMut() -> bool + '_> {
    Box::new(move || temp_files(root).iter().any(|n| !known.contains(n)))
}

fn assert_exited_ok(end: &End, what: &str) {
    if let End::Exited(status) = end {
        assert!(
            status.success(),
            "strata {what} failed on its own: {status}"
        );
    }
}

/// How long `args` takes when left alone (the best of three, each followed by `undo`).
fn time_of(args: &[&str], undo: &dyn Fn()) -> Duration {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            ok(args);
            let took = start.elapsed();
            undo();
            took
        })
        .min()
        .expect("three runs")
}

/// How many blobs [`add_garbage`] writes.
const GARBAGE_BLOBS: usize = 16;

/// Leaves garbage for gc: an untagged image (4 blobs) and a dozen loose blobs.
fn add_garbage(layout: &Layout, round: u64) {
    write_image(
        layout,
        &[&format!("junk-{round}-a"), &format!("junk-{round}-b")],
        "arm64",
    );
    for n in 0..12 {
        layout
            .put_blob(format!("loose {round} {n} {}", "y".repeat(4096)).as_bytes())
            .expect("put_blob");
    }
}

/// After a killed writer: fsck passes, every tag in `before` but `may_vanish` still names the
/// same image and resolves, and tags that appeared are ones the iteration asked for.
fn check_after_kill(
    root: &Path,
    before: &BTreeMap<String, String>,
    may_vanish: Option<&str>,
    expected_new: &BTreeMap<String, String>,
    rng: &mut Rng,
    what: &str,
) {
    let lay = s(root);
    let r = run(&["fsck", lay, "--json"]);
    assert_eq!(
        r.code, 0,
        "{what}: fsck failed after the kill:\n{}\n{}",
        r.stdout, r.stderr
    );
    let after = tag_map(root);
    for (tag, digest) in before {
        if Some(tag.as_str()) == may_vanish {
            continue;
        }
        assert_eq!(
            after.get(tag),
            Some(digest),
            "{what}: tag {tag} was lost or moved"
        );
    }
    for (tag, digest) in &after {
        if !before.contains_key(tag) {
            assert_eq!(
                expected_new.get(tag),
                Some(digest),
                "{what}: unexpected tag {tag} appeared"
            );
        }
    }
    // Every tag resolves (ls reads every entry's manifest and lists a broken one with its
    // error) ...
    let r = run(&["ls", lay, "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
    let broken = listed["images"]
        .as_array()
        .is_none_or(|images| images.iter().any(|i| i.get("error").is_some()));
    assert!(
        r.code == 0 && !broken,
        "{what}: ls failed after the kill:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    // ... and a few, picked at random, inspect cleanly.
    let tags: Vec<&String> = after.keys().collect();
    for _ in 0..3 {
        let tag = tags[rng.below(tags.len() as u64) as usize];
        let r = run(&["inspect", &format!("{lay}:{tag}")]);
        assert_eq!(
            r.code, 0,
            "{what}: inspect {tag} failed after the kill:\n{}",
            r.stderr
        );
    }
}

#[test]
fn killed_writers_leave_a_sound_layout_with_every_tag() {
    const ITERATIONS: u64 = 60;
    let dir = tempdir();
    let (layout, images) = big_layout(dir.path());
    let root: PathBuf = layout.root().to_owned();
    let lay = s(&root).to_owned();
    let image_ref = |k: usize| format!("{lay}:img-{k}");

    // Half the kills come at a random moment, drawn up to a little more than an undisturbed
    // run takes (so they land before, during and after the write whatever this machine's
    // speed); the other half a random few hundred µs after the writer's temp file appears
    // (or, for gc, its first blob goes), to hit the short window of the write itself.
    let tag_time = time_of(&["tag", &image_ref(0), "calibrate"], &|| {
        ok(&["untag", &format!("{lay}:calibrate")]);
    });
    ok(&["tag", &image_ref(0), "calibrate"]);
    let untag_time = time_of(&["untag", &format!("{lay}:calibrate")], &|| {
        ok(&["tag", &image_ref(0), "calibrate"]);
    });
    ok(&["untag", &format!("{lay}:calibrate")]);
    let mut garbage_round = 0;
    add_garbage(&layout, 1_000_000);
    let start = Instant::now();
    ok(&["gc", &lay]);
    let gc_time = start.elapsed();
    eprintln!("undisturbed: tag {tag_time:?}, untag {untag_time:?}, gc {gc_time:?}");
    let random_moment = |rng: &mut Rng, d: Duration, quarters: u64| {
        When::At(
            Instant::now()
                + Duration::from_micros(rng.below(d.as_micros() as u64 * quarters / 4 + 200)),
        )
    };
    let soon_after = |rng: &mut Rng| Duration::from_micros(rng.below(400));

    let (mut killed, mut exited, mut mid_write, mut mid_sweep) = (0, 0, 0, 0);
    for it in 0..ITERATIONS {
        let mut rng = Rng::new(it + 1);
        let triggered = (it / 3) % 2 == 1;
        let k = rng.below(IMAGES as u64) as usize;
        let digest = images[k].manifest.digest.clone();
        let mut expected_new = BTreeMap::new();
        let mut may_vanish = None;
        let temps_before = temp_files(&root);
        let blobs_before = stored_blobs(&root).len();
        let what = match it % 3 {
            0 => "tag loop",
            1 => "untag",
            _ => "gc",
        };
        let before;
        let end = match what {
            // Tags in a loop; the one running at the moment is killed.
            "tag loop" => {
                before = tag_map(&root);
                // Random mode: one deadline for the whole loop. Triggered: the victim-th tag
                // is killed mid-write, the ones before it finish.
                let deadline = Instant::now()
                    + Duration::from_micros(rng.below(tag_time.as_micros() as u64 * 3 + 200));
                let victim = rng.below(3);
                let mut n = 0;
                loop {
                    let tag = format!("it{it}-{n}");
                    expected_new.insert(tag.clone(), digest.clone());
                    let when = match (triggered, n == victim) {
                        (false, _) => When::At(deadline),
                        (true, true) => When::After(
                            new_temp_file(&root, temp_files(&root)),
                            soon_after(&mut rng),
                        ),
                        (true, false) => When::Never,
                    };
                    let end = run_and_kill(spawn(&["tag", &image_ref(k), &tag]), when);
                    assert_exited_ok(&end, &format!("tag {tag}"));
                    if let End::Exited(_) = end {
                        let now = tag_map(&root);
                        assert_eq!(
                            now.get(&tag),
                            Some(&digest),
                            "it {it}: tag {tag} exited 0 but is missing"
                        );
                    }
                    let last = match end {
                        End::Killed => true,
                        End::Exited(_) if triggered => n == victim,
                        End::Exited(_) => Instant::now() >= deadline,
                    };
                    if last {
                        break end;
                    }
                    exited += 1;
                    n += 1;
                }
            }
            // Untag of a tag made just now.
            "untag" => {
                let tag = format!("it{it}-gone");
                ok(&["tag", &image_ref(k), &tag]);
                before = tag_map(&root);
                may_vanish = Some(tag.clone());
                let when = if triggered {
                    When::After(
                        new_temp_file(&root, temp_files(&root)),
                        soon_after(&mut rng),
                    )
                } else {
                    random_moment(&mut rng, untag_time, 5)
                };
                let end = run_and_kill(spawn(&["untag", &format!("{lay}:{tag}")]), when);
                assert_exited_ok(&end, &format!("untag {tag}"));
                end
            }
            // gc of a layout with garbage.
            _ => {
                garbage_round += 1;
                add_garbage(&layout, garbage_round);
                before = tag_map(&root);
                let stored = stored_blobs(&root).len();
                let when = if triggered {
                    let first_gone = Box::new(|| stored_blobs(&root).len() < stored);
                    When::After(first_gone, soon_after(&mut rng))
                } else {
                    random_moment(&mut rng, gc_time, 5)
                };
                let end = run_and_kill(spawn(&["gc", &lay]), when);
                assert_exited_ok(&end, "gc");
                end
            }
        };
        match end {
            End::Exited(_) => exited += 1,
            End::Killed => {
                killed += 1;
                if temp_files(&root).iter().any(|n| !temps_before.contains(n)) {
                    mid_write += 1;
                }
                // Some garbage gone, some left.
                if what == "gc" && stored_blobs(&root).len() < blobs_before + GARBAGE_BLOBS {
                    let report = json(&["fsck", &lay, "--json"]);
                    if report["unreferenced"]
                        .as_array()
                        .is_some_and(|u| !u.is_empty())
                    {
                        mid_sweep += 1;
                    }
                }
            }
        }
        check_after_kill(
            &root,
            &before,
            may_vanish.as_deref(),
            &expected_new,
            &mut rng,
            &format!("iteration {it} ({what})"),
        );
    }
    eprintln!(
        "{killed} writers killed ({mid_write} with their temp file written, {mid_sweep} gcs mid-sweep), {exited} exited on their own"
    );
    assert!(
        killed >= ITERATIONS / 3,
        "too few kills ({killed}) to test anything"
    );
    assert!(
        mid_write >= 3,
        "too few kills mid-write ({mid_write}) to test anything"
    );

    // An undisturbed gc afterwards cleans up everything the kills left.
    let before = tag_map(&root);
    ok(&["gc", &lay]);
    let report = json(&["fsck", &lay, "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["unreferenced"], serde_json::json!([]), "{report}");
    assert_eq!(tag_map(&root), before);
    let left = temp_files(&root);
    assert!(left.is_empty(), "gc left temp files: {left:?}");
    for k in 0..IMAGES {
        ok(&["inspect", &image_ref(k)]);
    }
    for n in (0..BULK_TAGS).step_by(37) {
        ok(&["inspect", &format!("{lay}:bulk-{n:03}")]);
    }
}

#[test]
fn leftover_temp_files_pass_fsck_and_gc_removes_them() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["one", "two"]);
    let root = layout.root().to_owned();
    let lay = s(&root);
    let tmp = root.join(strata::layout::TMP_DIR);
    std::fs::create_dir_all(&tmp).expect("mkdir .strata-tmp");
    // What a writer killed mid-write leaves: a partial blob, a complete but unrenamed one
    // (named like a digest), a half-written index.json, and a stray directory.
    write(&tmp.join("blob-Xa81kq"), &b"partial layer data"[..10]);
    let whole = tar_layer("never-published");
    write(&tmp.join(sha256(&whole).hex()), &whole);
    write(
        &tmp.join("index.json-3kfj2L"),
        br#"{"schemaVersion":2,"manifests":[{"#,
    );
    std::fs::create_dir_all(tmp.join("blob-dir.partial")).expect("mkdir");
    write(&tmp.join("blob-dir.partial").join("inner"), b"x");
    let blobs_before = stored_blobs(&root);

    let report = json(&["fsck", lay, "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["unreferenced"],
        serde_json::json!([]),
        "temp files are not blobs: {report}"
    );
    ok(&["fsck", lay]);
    ok(&["ls", lay]);
    ok(&["inspect", &format!("{lay}:one")]);
    // Readers and writers work beside them.
    ok(&["tag", &format!("{lay}:one"), "three"]);
    ok(&["untag", &format!("{lay}:two")]);
    ok(&[
        "tag",
        &format!("{lay}@{}", images[1].manifest.digest),
        "two",
    ]);

    let report = json(&["gc", lay, "--json"]);
    assert_eq!(report["tempFilesRemoved"], 3, "{report}");
    assert_eq!(report["tempDirsRemoved"], 1, "{report}");
    assert_eq!(report["removed"], serde_json::json!([]), "{report}");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.map(|e| e.expect("entry").file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "gc left temp files: {left:?}");
    assert_eq!(stored_blobs(&root), blobs_before, "gc touched no blob");
    let report = json(&["fsck", lay, "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    let tags = tag_map(&root);
    assert_eq!(tags.len(), 3, "{tags:?}");
    assert_eq!(tags["one"], images[0].manifest.digest);
    assert_eq!(tags["three"], images[0].manifest.digest);
    assert_eq!(tags["two"], images[1].manifest.digest);
}

#[test]
fn killed_imports_and_copies_change_nothing_but_their_own_tags() {
    const ITERATIONS: u64 = 24;
    const SOURCES: usize = 6;
    let dir = tempdir();
    let (layout, _) = big_layout(dir.path());
    let root: PathBuf = layout.root().to_owned();
    let lay = s(&root).to_owned();
    let names: Vec<String> = (0..SOURCES).map(|i| format!("src-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (source, images) = layout_with_images(dir.path(), "source", &names);
    let archives: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            let a = dir.path().join(format!("{n}.tar"));
            ok(&["export", &format!("{}:{n}", s(source.root())), "-o", s(&a)]);
            a
        })
        .collect();

    // Mid-stream: the archive's first half is in, the importer waits for the rest.
    let bytes = std::fs::read(&archives[0]).expect("reading the archive");
    let index_before = std::fs::read(root.join("index.json")).expect("index.json");
    let blobs_before = stored_blobs(&root);
    let mut child = strata(&["import", "-", &lay, "--tag", "half"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning strata import");
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, &bytes[..bytes.len() / 2]).expect("feeding half");
    let known = temp_files(&root);
    let staged = new_temp_file(&root, known);
    let end = run_and_kill(child, When::After(staged, Duration::from_millis(50)));
    drop(stdin);
    assert!(matches!(end, End::Killed), "import ended before the kill");
    assert_eq!(
        std::fs::read(root.join("index.json")).unwrap(),
        index_before,
        "a killed import changed index.json"
    );
    assert_eq!(
        stored_blobs(&root),
        blobs_before,
        "a killed import published blobs"
    );
    let report = json(&["fsck", &lay, "--json"]);
    assert_eq!(report["ok"], true, "{report}");

    // At random moments, over an undisturbed run's length and a little more.
    let import_time = time_of(
        &["import", s(&archives[0]), &lay, "--tag", "calibrate"],
        &|| {
            ok(&["untag", &format!("{lay}:calibrate")]);
        },
    );
    let (mut killed, mut exited, mut mid_work) = (0, 0, 0);
    for it in 0..ITERATIONS {
        let mut rng = Rng::new(1000 + it);
        let k = rng.below(SOURCES as u64) as usize;
        let tag = format!("moved-{it}");
        let before = tag_map(&root);
        let temps_before = temp_files(&root);
        let expected_new = BTreeMap::from([(tag.clone(), images[k].manifest.digest.to_string())]);
        let (what, args) = if it % 2 == 0 {
            (
                "import",
                vec![
                    "import".to_owned(),
                    s(&archives[k]).to_owned(),
                    lay.clone(),
                    "--tag".into(),
                    tag.clone(),
                ],
            )
        } else {
            (
                "copy",
                vec![
                    "copy".to_owned(),
                    format!("{}:{}", s(source.root()), names[k]),
                    format!("{lay}:{tag}"),
                ],
            )
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let deadline = Instant::now()
            + Duration::from_micros(rng.below(import_time.as_micros() as u64 * 5 / 4 + 200));
        let end = run_and_kill(spawn(&args), When::At(deadline));
        assert_exited_ok(&end, what);
        match end {
            End::Killed => {
                killed += 1;
                if temp_files(&root).iter().any(|n| !temps_before.contains(n)) {
                    mid_work += 1;
                }
            }
            End::Exited(_) => exited += 1,
        }
        check_after_kill(
            &root,
            &before,
            None,
            &expected_new,
            &mut rng,
            &format!("iteration {it} ({what})"),
        );
    }
    eprintln!(
        "{killed} imports and copies killed ({mid_work} with staging begun), {exited} exited on their own"
    );
    assert!(
        killed >= ITERATIONS / 4 && mid_work >= 2,
        "too few kills ({killed}, {mid_work} mid-work) to test anything"
    );

    // gc clears what the kills left; every tag still resolves.
    let before = tag_map(&root);
    ok(&["gc", &lay]);
    assert_eq!(tag_map(&root), before);
    let report = json(&["fsck", &lay, "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    let left = temp_files(&root);
    assert!(left.is_empty(), "gc left temp files: {left:?}");
}
