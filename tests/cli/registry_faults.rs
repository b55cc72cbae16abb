//! A registry that misbehaves: a proxy between strata and distribution drops connections in
//! the middle of a blob, answers 503 and 429, serves corrupted bytes or slows a blob down
//! while the pull is killed. Transient faults are retried (a blob resumed where it broke);
//! the others fail the pull; never is a bad blob published, nor a tag whose blobs are
//! missing, and a killed pull leaves a sound layout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::registry_util::{
    assert_fsck, blob_bytes, noise, tagged_digest, Action, Fault, FaultProxy, Registry,
};
use super::util::{add_entry, json, ok, run, s, snapshot, strata, tempdir, write_image, Run};

/// An image of three uncompressed 256 KiB-ish layers at `dir/src:v1`, pushed to the
/// registry as `faults/img:v1`. Returns the layout, the manifest's digest and its layers'.
fn pushed_image(reg: &Registry, dir: &Path) -> (PathBuf, String, Vec<String>) {
    let layout = dir.join("src");
    // Uncompressed, so that each layer is as large as its noise.
    for i in 0..3 {
        let t = dir.join(format!("tree{i}"));
        std::fs::create_dir_all(t.join("data")).unwrap();
        std::fs::write(t.join(format!("data/part{i}")), noise(256 << 10, i + 11)).unwrap();
        let dest = format!("{}:v1", s(&layout));
        let mut args = vec!["build", "--compress", "none", s(&t), &dest];
        if i > 0 {
            args.extend(["--from", &dest]);
        }
        ok(&args);
    }
    let digest = tagged_digest(&layout, "v1").unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob_bytes(&layout, &digest)).unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    ok(&[
        "push",
        &format!("{}:v1", s(&layout)),
        &reg.name("faults/img:v1"),
    ]);
    (layout, digest, layers)
}

/// A layout holding one other image, tagged `base`, for checks that a failed pull leaves it
/// as it was.
fn base_layout(path: &Path) -> PathBuf {
    let layout = strata::Layout::init(path).unwrap();
    let image = write_image(&layout, &["base"], "amd64");
    add_entry(&layout, &image.manifest, Some("base"));
    path.to_owned()
}

/// Asserts the pulled image is the pushed one, blob for blob.
fn assert_same_image(src: &Path, back: &Path, digest: &str, layers: &[String]) {
    assert_eq!(tagged_digest(back, "v1").as_deref(), Some(digest));
    for d in std::iter::once(&digest.to_owned()).chain(layers) {
        assert!(blob_bytes(back, d) == blob_bytes(src, d), "{d} differs");
    }
    assert_fsck(back);
}

#[test]
fn connections_dropped_mid_blob_are_resumed_with_range_requests() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let (src, digest, layers) = pushed_image(&reg, dir.path());
    let proxy = FaultProxy::start(&reg.host);
    // The second layer breaks twice: after 100000 bytes, then 100000 bytes into the rest.
    proxy.add(Fault {
        method: "GET",
        path_contains: layers[1].clone(),
        times: 2,
        action: Action::DropAfter(100_000),
    });
    let back = dir.path().join("back");
    let r = run(&["pull", "-v", &proxy.name("faults/img:v1"), s(&back)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(proxy.faults_applied(), 2, "{:#?}", proxy.seen());
    let seen = proxy.seen();
    assert!(
        seen.iter().any(|l| l.contains("range=bytes=100000-")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("range=bytes=200000-")),
        "{seen:#?}"
    );
    assert!(r.stderr.contains("resuming"), "{}", r.stderr);
    assert_same_image(&src, &back, &digest, &layers);
}

#[test]
fn status_503_and_429_are_retried_on_pull_and_push() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let (src, digest, layers) = pushed_image(&reg, dir.path());
    let proxy = FaultProxy::start(&reg.host);
    proxy.add(Fault {
        method: "GET",
        path_contains: "/manifests/".into(),
        times: 2,
        action: Action::Status(503, None),
    });
    proxy.add(Fault::blob_get(3, Action::Status(429, Some(0))));
    let back = dir.path().join("back");
    let started = Instant::now();
    let r = run(&["pull", &proxy.name("faults/img:v1"), s(&back)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(proxy.faults_applied(), 5, "{:#?}", proxy.seen());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "Retry-After: 0 is honoured"
    );
    assert_same_image(&src, &back, &digest, &layers);

    // Pushing: the uploads and the manifest meet the same.
    proxy.clear();
    let before = proxy.faults_applied();
    proxy.add(Fault {
        method: "HEAD",
        path_contains: "/blobs/".into(),
        times: 2,
        action: Action::Status(503, Some(0)),
    });
    proxy.add(Fault {
        method: "POST",
        path_contains: "/blobs/uploads/".into(),
        times: 2,
        action: Action::Status(429, Some(0)),
    });
    proxy.add(Fault {
        method: "PUT",
        path_contains: "/blobs/uploads/".into(),
        times: 2,
        action: Action::Status(503, Some(0)),
    });
    proxy.add(Fault {
        method: "PUT",
        path_contains: "/manifests/".into(),
        times: 1,
        action: Action::Status(503, Some(0)),
    });
    let pushed = json(&[
        "push",
        "--json",
        &format!("{}:v1", s(&src)),
        &proxy.name("faults/copy:v1"),
    ]);
    assert_eq!(pushed["blobsUploaded"], 4, "{pushed}");
    assert_eq!(proxy.faults_applied() - before, 7, "{:#?}", proxy.seen());
    let back2 = dir.path().join("back2");
    ok(&["pull", &reg.name("faults/copy:v1"), s(&back2)]);
    assert_same_image(&src, &back2, &digest, &layers);
}

#[test]
fn a_registry_that_keeps_failing_fails_the_pull_and_changes_nothing() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let (_, _, layers) = pushed_image(&reg, dir.path());
    let proxy = FaultProxy::start(&reg.host);
    proxy.add(Fault {
        method: "GET",
        path_contains: layers[2].clone(),
        times: 1000,
        action: Action::Status(503, Some(0)),
    });
    let dest = base_layout(&dir.path().join("dest"));
    let before = snapshot(&dest);
    let r = run(&[
        "pull",
        &proxy.name("faults/img:v1"),
        &format!("{}:new", s(&dest)),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("503"), "{}", r.stderr);
    assert!(r.stderr.contains(&layers[2]), "{}", r.stderr);
    assert_eq!(snapshot(&dest), before, "a failed pull changed the layout");
}

#[test]
fn a_corrupt_blob_fails_the_pull_naming_it_and_publishes_nothing() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let (_, digest, layers) = pushed_image(&reg, dir.path());
    let proxy = FaultProxy::start(&reg.host);
    proxy.add(Fault {
        method: "GET",
        path_contains: layers[0].clone(),
        times: 1,
        action: Action::Corrupt(4321),
    });
    let dest = base_layout(&dir.path().join("dest"));
    let before = snapshot(&dest);
    let r = run(&[
        "pull",
        &proxy.name("faults/img:v1"),
        &format!("{}:new", s(&dest)),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(proxy.faults_applied(), 1, "{:#?}", proxy.seen());
    assert!(r.stderr.contains(&layers[0]), "{}", r.stderr);
    assert_eq!(snapshot(&dest), before, "a failed pull changed the layout");
    assert_fsck(&dest);

    // A tag's manifest whose bytes are not the digest the registry gives.
    proxy.add(Fault {
        method: "GET",
        path_contains: "/manifests/v1".into(),
        times: 1,
        action: Action::Corrupt(30),
    });
    let r = run(&[
        "pull",
        &proxy.name("faults/img:v1"),
        &format!("{}:new", s(&dest)),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&digest), "{}", r.stderr);
    assert_eq!(snapshot(&dest), before, "a failed pull changed the layout");

    // Once the registry serves the right bytes, the same pull works.
    let r = run(&[
        "pull",
        &proxy.name("faults/img:v1"),
        &format!("{}:new", s(&dest)),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        tagged_digest(&dest, "new").as_deref(),
        Some(digest.as_str())
    );
    assert!(tagged_digest(&dest, "base").is_some());
    assert_fsck(&dest);
}

/// A small deterministic generator (the seed is printed, so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn a_pull_killed_at_random_points_leaves_a_sound_layout() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let (src, digest, layers) = pushed_image(&reg, dir.path());
    let proxy = FaultProxy::start(&reg.host);
    // Each layer takes about 32 x 8 ms: the kills land before, during and after the blobs.
    proxy.add(Fault::blob_get(
        u32::MAX,
        Action::Slow(8 << 10, Duration::from_millis(8)),
    ));
    let seed = std::env::var("STRATA_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill delays from seed {seed} (STRATA_KILL_SEED={seed} replays them)");
    let mut rng = Lcg(seed);
    let (mut killed, mut completed) = (0, 0);
    for i in 0..10 {
        let dest = base_layout(&dir.path().join(format!("dest{i}")));
        let delay = Duration::from_millis(20 + rng.below(600));
        let mut child = strata(&[
            "pull",
            &proxy.name("faults/img:v1"),
            &format!("{}:v1", s(&dest)),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap();
        let status = match finished {
            Some(st) => st,
            None => {
                child.kill().unwrap();
                killed += 1;
                child.wait().unwrap()
            }
        };
        let context = format!("iteration {i}, killed after {delay:?} (seed {seed})");
        if status.success() {
            completed += 1;
            assert_same_image(&src, &dest, &digest, &layers);
        }
        // Whatever the moment: a sound layout, the other image untouched, the tag only
        // with all its blobs.
        let r: Run = run(&["fsck", s(&dest)]);
        assert_eq!(r.code, 0, "{context}: {}{}", r.stdout, r.stderr);
        ok(&["ls", s(&dest)]);
        assert!(tagged_digest(&dest, "base").is_some(), "{context}");
        if tagged_digest(&dest, "v1").is_some() {
            assert_same_image(&src, &dest, &digest, &layers);
        }
        // What a killed pull leaves, gc clears.
        ok(&["gc", s(&dest)]);
        assert!(!dest.join(".strata-tmp").exists(), "{context}");
        assert_fsck(&dest);
    }
    eprintln!("{killed} pulls killed, {completed} completed");
    assert!(killed > 0, "no pull was killed (seed {seed})");
}

#[test]
fn a_resumed_blob_from_a_server_that_ignores_ranges_is_still_right() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let (src, digest, layers) = pushed_image(&reg, dir.path());
    let proxy = FaultProxy::start(&reg.host);
    for action in [Action::DropAfter(150_000), Action::IgnoreRange] {
        proxy.add(Fault {
            method: "GET",
            path_contains: layers[2].clone(),
            times: 1,
            action,
        });
    }
    let back = dir.path().join("back");
    let r = run(&["pull", &proxy.name("faults/img:v1"), s(&back)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(proxy.faults_applied(), 2, "{:#?}", proxy.seen());
    assert_same_image(&src, &back, &digest, &layers);
}

#[test]
fn a_push_whose_blob_upload_fails_writes_no_manifest() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let (src, _, _) = pushed_image(&reg, dir.path());
    let proxy = FaultProxy::start(&reg.host);
    proxy.add(Fault {
        method: "PUT",
        path_contains: "/blobs/uploads/".into(),
        times: u32::MAX,
        action: Action::Status(400, None),
    });
    // Another repository: the registry has none of the blobs there.
    let r = run(&[
        "push",
        &format!("{}:v1", s(&src)),
        &proxy.name("faults/fails:v1"),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("400"), "{}", r.stderr);
    let seen = proxy.seen();
    assert!(
        !seen
            .iter()
            .any(|l| l.starts_with("PUT /v2/faults/fails/manifests/")),
        "a manifest was put over missing blobs: {seen:#?}"
    );
    let accept = [("Accept", "application/vnd.oci.image.manifest.v1+json")];
    assert_eq!(
        super::registry_util::http_status(
            &reg.host,
            "HEAD",
            "/v2/faults/fails/manifests/v1",
            &accept
        ),
        Some(404)
    );
}

#[test]
fn a_push_of_a_layer_damaged_in_the_layout_names_it_there() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let (src, _, layers) = pushed_image(&reg, dir.path());
    // Same size, one byte flipped: only hashing finds it.
    let hex = layers[1].strip_prefix("sha256:").unwrap();
    let path = src.join("blobs/sha256").join(hex);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    for chunk in ["0", "1"] {
        let repo = format!("faults/damaged{chunk}");
        let r = run(&[
            "push",
            "--chunk-mib",
            chunk,
            &format!("{}:v1", s(&src)),
            &reg.name(&format!("{repo}:v1")),
        ]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains(&layers[1]), "{}", r.stderr);
        assert!(
            r.stderr.contains(s(&path)),
            "the error names the damaged file in the layout: {}",
            r.stderr
        );
        let accept = [("Accept", "application/vnd.oci.image.manifest.v1+json")];
        assert_eq!(
            super::registry_util::http_status(
                &reg.host,
                "HEAD",
                &format!("/v2/{repo}/manifests/v1"),
                &accept
            ),
            Some(404)
        );
    }
}

#[test]
fn a_pull_killed_again_and_again_then_run_to_the_end_completes_the_layout() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let (src, digest, layers) = pushed_image(&reg, dir.path());
    let proxy = FaultProxy::start(&reg.host);
    proxy.add(Fault::blob_get(
        u32::MAX,
        Action::Slow(8 << 10, Duration::from_millis(8)),
    ));
    let dest = base_layout(&dir.path().join("dest"));
    let target = format!("{}:v1", s(&dest));
    for delay in [40, 110, 180] {
        let mut child = strata(&["pull", &proxy.name("faults/img:v1"), &target])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let status = child.wait().unwrap();
        assert!(!status.success(), "the pull finished within {delay} ms");
        assert_fsck(&dest);
        assert!(
            tagged_digest(&dest, "v1").is_none(),
            "killed after {delay} ms"
        );
    }
    proxy.clear();
    let r = run(&["pull", &proxy.name("faults/img:v1"), &target]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_same_image(&src, &dest, &digest, &layers);
    ok(&["gc", s(&dest)]);
    assert!(!dest.join(".strata-tmp").exists());
    assert_same_image(&src, &dest, &digest, &layers);
}

#[test]
fn a_push_killed_at_random_points_never_leaves_a_tag_over_missing_blobs() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let (src, digest, layers) = pushed_image(&reg, dir.path());
    let proxy = FaultProxy::start(&reg.host);
    // Every upload request waits: the kills land between them.
    for method in ["POST", "PUT", "PATCH"] {
        proxy.add(Fault {
            method,
            path_contains: "/blobs/uploads/".into(),
            times: u32::MAX,
            action: Action::Delay(Duration::from_millis(40)),
        });
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill delays from seed {seed}");
    let mut rng = Lcg(seed);
    let accept = [("Accept", "application/vnd.oci.image.manifest.v1+json")];
    for i in 0..6 {
        let repo = format!("faults/killed{i}");
        let delay = Duration::from_millis(20 + rng.below(300));
        let mut child = strata(&[
            "push",
            "--jobs",
            "1",
            &format!("{}:v1", s(&src)),
            &proxy.name(&format!("{repo}:v1")),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let tagged = super::registry_util::http_status(
            &reg.host,
            "HEAD",
            &format!("/v2/{repo}/manifests/v1"),
            &accept,
        );
        let context = format!("push {i} killed after {delay:?} (seed {seed})");
        if status.success() {
            assert_eq!(tagged, Some(200), "{context}");
        }
        if tagged == Some(200) {
            // Whatever the tag names is whole.
            let back = dir.path().join(format!("back{i}"));
            let r = run(&["pull", &reg.name(&format!("{repo}:v1")), s(&back)]);
            assert_eq!(r.code, 0, "{context}: {}", r.stderr);
            assert_same_image(&src, &back, &digest, &layers);
        } else {
            assert_eq!(tagged, Some(404), "{context}");
        }
        // Pushing again completes it.
        ok(&[
            "push",
            &format!("{}:v1", s(&src)),
            &reg.name(&format!("{repo}:v1")),
        ]);
    }
}
