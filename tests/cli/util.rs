//! Shared test harness: a fresh temp dir per test, the strata binary run with a clean
//! environment, layout fixtures built through the library, and tree snapshots.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use strata::digest::{Algorithm, Digest};
use strata::spec::{media_type, to_canonical_json, Descriptor, Platform};
use strata::Layout;

/// The strata binary under test.
pub fn strata_bin() -> &'static str {
    env!("CARGO_BIN_EXE_strata")
}

/// A `strata` command with a clean, fixed environment.
pub fn strata(args: &[&str]) -> Command {
    let mut cmd = Command::new(strata_bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TZ", "UTC")
        .env("SOURCE_DATE_EPOCH", "1700000000");
    cmd
}

/// What a run printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

fn finish(args: &[&str], out: Output) -> Run {
    Run {
        code: out
            .status
            .code()
            .unwrap_or_else(|| panic!("strata {args:?} was killed by a signal")),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs strata and returns what it printed, whatever the exit code.
pub fn run(args: &[&str]) -> Run {
    let out = strata(args)
        .output()
        .unwrap_or_else(|e| panic!("running strata {args:?}: {e}"));
    finish(args, out)
}

/// Runs strata, asserts exit 0, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let r = run(args);
    assert_eq!(
        r.code, 0,
        "strata {args:?} failed:\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    r.stdout
}

/// Runs strata, asserts exit `code`, returns stderr.
pub fn fails(args: &[&str], code: i32) -> String {
    let r = run(args);
    assert_eq!(
        r.code, code,
        "strata {args:?}: expected exit {code}:\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    r.stderr
}

/// Runs strata and parses its stdout as JSON (asserting exit 0).
pub fn json(args: &[&str]) -> serde_json::Value {
    let out = ok(args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("strata {args:?} printed no JSON ({e}): {out}"))
}

/// A fresh temp dir, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-test-")
        .tempdir()
        .expect("creating a temp dir")
}

/// Path as &str (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Every file under `root` (relative path → bytes), directories as empty markers, for
/// byte-for-byte comparisons.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        {
            let path = entry.expect("dir entry").path();
            let rel = path.strip_prefix(root).expect("under root").to_owned();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                out.insert(rel, None);
                stack.push(path);
            } else {
                out.insert(
                    rel,
                    Some(
                        std::fs::read(&path)
                            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
                    ),
                );
            }
        }
    }
    out
}

/// A small but valid uncompressed tar holding one file, different for each `seed`.
pub fn tar_layer(seed: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let body = format!("content of {seed}\n");
    let mut header = tar::Header::new_ustar();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, format!("files/{seed}.txt"), body.as_bytes())
        .expect("building a tar in memory");
    builder.into_inner().expect("finishing a tar in memory")
}

/// An image built through the library: what the test needs to know about it.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Descriptor,
    pub config: Digest,
    pub layers: Vec<Digest>,
}

impl Image {
    /// Every blob the image consists of.
    pub fn blobs(&self) -> Vec<Digest> {
        let mut v = vec![self.manifest.digest().expect("valid"), self.config.clone()];
        v.extend(self.layers.iter().cloned());
        v
    }
}

/// Writes an image with one layer per seed (uncompressed tars) and returns it, untagged.
pub fn write_image(layout: &Layout, seeds: &[&str], arch: &str) -> Image {
    let mut layers = Vec::new();
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for seed in seeds {
        let tar = tar_layer(seed);
        let blob = layout.put_blob(&tar).expect("writing a layer");
        diff_ids.push(blob.digest.to_string());
        layer_descs.push(Descriptor::new(
            media_type::LAYER_TAR,
            &blob.digest,
            blob.size,
        ));
        layers.push(blob.digest);
    }
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/bin/sh"], "Labels": {"seed": seeds.join(",")}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": seeds.iter().map(|s| serde_json::json!({"created_by": format!("add {s}")})).collect::<Vec<_>>(),
    });
    let config_blob = layout
        .put_blob(&to_canonical_json(&config))
        .expect("writing a config");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "config": Descriptor::new(media_type::CONFIG, &config_blob.digest, config_blob.size),
        "layers": layer_descs,
    });
    let manifest_blob = layout
        .put_blob(&to_canonical_json(&manifest))
        .expect("writing a manifest");
    let mut desc = Descriptor::new(
        media_type::MANIFEST,
        &manifest_blob.digest,
        manifest_blob.size,
    );
    desc.platform = Some(Platform {
        architecture: arch.into(),
        os: "linux".into(),
        ..Platform::default()
    });
    Image {
        manifest: desc,
        config: config_blob.digest,
        layers,
    }
}

/// Writes an index over `images` and returns its descriptor.
pub fn write_index(layout: &Layout, images: &[&Image]) -> Descriptor {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::INDEX,
        "manifests": images.iter().map(|i| &i.manifest).collect::<Vec<_>>(),
    });
    let blob = layout
        .put_blob(&to_canonical_json(&index))
        .expect("writing an index");
    Descriptor::new(media_type::INDEX, &blob.digest, blob.size)
}

/// Writes a referrer (an artifact manifest whose subject is `subject`) and returns it.
pub fn write_referrer(layout: &Layout, subject: &Descriptor, payload: &str) -> Image {
    let empty = layout.put_blob(b"{}").expect("writing the empty config");
    let body = layout
        .put_blob(payload.as_bytes())
        .expect("writing a payload");
    let mut subject = subject.clone();
    subject.platform = None;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": Descriptor::new(media_type::EMPTY, &empty.digest, empty.size),
        "layers": [Descriptor::new("application/vnd.example.payload", &body.digest, body.size)],
        "subject": subject,
    });
    let blob = layout
        .put_blob(&to_canonical_json(&manifest))
        .expect("writing a referrer");
    Image {
        manifest: Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size),
        config: empty.digest,
        layers: vec![body.digest],
    }
}

/// Adds `desc` to index.json, tagged `tag` when given.
pub fn add_entry(layout: &Layout, desc: &Descriptor, tag: Option<&str>) {
    let mut desc = desc.clone();
    if let Some(t) = tag {
        desc.set_annotation(strata::spec::ANNOTATION_REF_NAME, Some(t));
    }
    layout
        .update_index(|index| {
            index.manifests.push(desc);
            Ok((true, ()))
        })
        .expect("updating index.json");
}

/// A new layout at `dir/name` with one tagged single-layer image per tag.
pub fn layout_with_images(dir: &Path, name: &str, tags: &[&str]) -> (Layout, Vec<Image>) {
    let path = dir.join(name);
    let layout = Layout::init(&path).expect("init");
    let images = tags
        .iter()
        .map(|t| {
            let image = write_image(&layout, &[t], "amd64");
            add_entry(&layout, &image.manifest, Some(t));
            image
        })
        .collect();
    (layout, images)
}

/// The digests of every blob file in a layout.
pub fn stored_blobs(layout: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for alg in ["sha256", "sha512"] {
        if let Ok(entries) = std::fs::read_dir(layout.join("blobs").join(alg)) {
            for e in entries {
                out.insert(format!(
                    "{alg}:{}",
                    e.expect("entry").file_name().to_string_lossy()
                ));
            }
        }
    }
    out
}

/// Overwrites a file (tests that corrupt layouts on purpose).
pub fn write(path: &Path, bytes: &[u8]) {
    let mut f =
        std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    f.write_all(bytes).expect("writing");
}

/// The sha256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    Digest::of_bytes(Algorithm::Sha256, bytes)
}

/// True when `tool` is on PATH. Under STRATA_REQUIRE_PEERS=1 a missing peer fails the test;
/// otherwise the test is skipped with a visible message.
pub fn peer(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("STRATA_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{tool} is required (STRATA_REQUIRE_PEERS=1) but not on PATH");
        }
        eprintln!(
            "SKIPPED: {tool} not on PATH (set STRATA_REQUIRE_PEERS=1 to make this a failure)"
        );
    }
    found
}

/// Runs a peer tool and asserts it succeeds; returns stdout.
pub fn peer_ok(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
