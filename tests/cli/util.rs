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

/// A `strata` command that meets permission refusals: run as nobody (through setpriv) when
/// the tests run as root, who reads and writes everything; callers check `peer("setpriv")`.
pub fn strata_unprivileged(args: &[&str]) -> Command {
    let mut cmd = if rustix::process::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            strata_bin(),
        ]);
        c
    } else {
        Command::new(strata_bin())
    };
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
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

/// Runs strata with extra environment variables, whatever the exit code.
pub fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = strata(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running strata {args:?}: {e}"));
    finish(args, out)
}

/// Runs strata with extra environment variables and `stdin` as its standard input,
/// whatever the exit code.
pub fn run_with_input(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
    let mut child = strata(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running strata {args:?}: {e}"));
    // A strata that refuses the invocation exits without reading: its stdin is closed.
    if let Err(e) = child
        .stdin
        .take()
        .expect("piped")
        .write_all(stdin.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let out = child
        .wait_with_output()
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

/// Runs strata, asserts exit 0, returns stdout's exact bytes.
pub fn ok_bytes(args: &[&str]) -> Vec<u8> {
    let out = strata(args)
        .output()
        .unwrap_or_else(|e| panic!("running strata {args:?}: {e}"));
    assert!(
        out.status.success(),
        "strata {args:?} failed:\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
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

/// Every file under `root` (relative path → bytes), directories as empty markers, symlinks
/// as a NUL and their target (never followed), for byte-for-byte comparisons.
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
            } else if meta.file_type().is_symlink() {
                use std::os::unix::ffi::OsStrExt;
                let target = std::fs::read_link(&path).expect("readlink");
                let mut marked = vec![0];
                marked.extend_from_slice(target.as_os_str().as_bytes());
                out.insert(rel, Some(marked));
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
    let (config, mut desc) = write_manifest(layout, &config, &layer_descs);
    desc.platform = Some(Platform {
        architecture: arch.into(),
        os: "linux".into(),
        ..Platform::default()
    });
    Image {
        manifest: desc,
        config,
        layers,
    }
}

/// Writes `config` and an image manifest over it and `layers`; returns the config's digest
/// and the manifest's descriptor.
fn write_manifest(
    layout: &Layout,
    config: &serde_json::Value,
    layers: &[Descriptor],
) -> (Digest, Descriptor) {
    let config = layout
        .put_blob(&to_canonical_json(config))
        .expect("writing a config");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "config": Descriptor::new(media_type::CONFIG, &config.digest, config.size),
        "layers": layers,
    });
    let blob = layout
        .put_blob(&to_canonical_json(&manifest))
        .expect("writing a manifest");
    (
        config.digest,
        Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size),
    )
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

/// How a test layer is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    Plain,
    Gzip,
    Zstd,
}

/// Writes an image whose layers are the given uncompressed tars (stored as `packing` says),
/// with correct diff_ids, tagged `tag`; returns it.
pub fn write_layered_image(
    layout: &Layout,
    tag: &str,
    layers: &[(Vec<u8>, Packing)],
    config_extra: serde_json::Value,
) -> Image {
    let mut descs = Vec::new();
    let mut digests = Vec::new();
    let mut diff_ids = Vec::new();
    for (tar, packing) in layers {
        diff_ids.push(sha256(tar).to_string());
        let (bytes, mt) = match packing {
            Packing::Plain => (tar.clone(), media_type::LAYER_TAR),
            Packing::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(tar).expect("gzip in memory");
                (
                    enc.finish().expect("gzip in memory"),
                    media_type::LAYER_TAR_GZIP,
                )
            }
            Packing::Zstd => (
                zstd::encode_all(&tar[..], 3).expect("zstd in memory"),
                media_type::LAYER_TAR_ZSTD,
            ),
        };
        let blob = layout.put_blob(&bytes).expect("writing a layer");
        descs.push(Descriptor::new(mt, &blob.digest, blob.size));
        digests.push(blob.digest);
    }
    let mut config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    if let serde_json::Value::Object(extra) = config_extra {
        for (k, v) in extra {
            config[k] = v;
        }
    }
    let (config, desc) = write_manifest(layout, &config, &descs);
    add_entry(layout, &desc, Some(tag));
    Image {
        manifest: desc,
        config,
        layers: digests,
    }
}

/// Builds tar layers entry by entry, writing names as raw bytes (so tests can make the
/// hostile names that tar builders refuse).
pub struct TarBuilder {
    out: tar::Builder<Vec<u8>>,
}

/// Fixed mtime for test entries.
pub const MTIME: u64 = 1_700_000_000;

impl TarBuilder {
    pub fn new() -> Self {
        TarBuilder {
            out: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// Appends an entry with a raw name (GNU long name when over 100 bytes).
    pub fn raw(
        &mut self,
        mut h: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: &[u8],
    ) -> &mut Self {
        if name.len() > 100 {
            let mut long = Self::header(tar::EntryType::GNULongName, 0, name.len() as u64 + 1);
            long.as_gnu_mut().expect("gnu").name[..13].copy_from_slice(b"././@LongLink");
            long.set_cksum();
            let mut body = name.to_vec();
            body.push(0);
            self.out.append(&long, &body[..]).expect("tar in memory");
        } else {
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
        }
        if let Some(link) = link {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        self.out.append(&h, data).expect("tar in memory");
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.raw(
            Self::header(tar::EntryType::Regular, mode, data.len() as u64),
            name.as_bytes(),
            None,
            data,
        )
    }

    pub fn owned_file(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.raw(h, name.as_bytes(), None, data)
    }

    /// An entry without content.
    fn bare(
        &mut self,
        kind: tar::EntryType,
        mode: u32,
        name: &str,
        link: Option<&str>,
    ) -> &mut Self {
        let h = Self::header(kind, mode, 0);
        self.raw(h, name.as_bytes(), link.map(str::as_bytes), b"")
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.bare(tar::EntryType::Directory, mode, name, None)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.bare(tar::EntryType::Symlink, 0o777, name, Some(target))
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.bare(tar::EntryType::Link, 0o644, name, Some(target))
    }

    pub fn whiteout(&mut self, dir: &str, name: &str) -> &mut Self {
        let path = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&path, b"", 0o644)
    }

    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    pub fn device(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        let mut h = Self::header(kind, 0o600, 0);
        h.set_device_major(major).expect("gnu header");
        h.set_device_minor(minor).expect("gnu header");
        self.raw(h, name.as_bytes(), None, b"")
    }

    /// A file with PAX xattrs.
    pub fn file_with_xattrs(
        &mut self,
        name: &str,
        data: &[u8],
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.out
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .expect("tar in memory");
        self.file(name, data, 0o644)
    }

    /// A directory with PAX xattrs.
    pub fn dir_with_xattrs(
        &mut self,
        name: &str,
        mode: u32,
        xattrs: &[(String, Vec<u8>)],
    ) -> &mut Self {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
            .collect();
        self.out
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .expect("tar in memory");
        self.dir(name, mode)
    }

    pub fn finish(self) -> Vec<u8> {
        self.out.into_inner().expect("tar in memory")
    }
}

impl Default for TarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// One entry's attributes, field name to a printable value.
pub type Fields = BTreeMap<String, String>;
/// A scanned tree: relative path bytes to attributes (the root itself, when kept, is `/`).
pub type Tree = BTreeMap<Vec<u8>, Fields>;

/// Bytes as text when they are printable UTF-8, else hex.
pub fn show(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(t) if t.chars().all(|c| !c.is_control()) => t.to_owned(),
        _ => hex(b),
    }
}

/// A field value: printable UTF-8 is quoted, so that no text can read like the hex form of
/// other bytes.
fn value(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(t) if t.chars().all(|c| !c.is_control()) => format!("{t:?}"),
        _ => hex(b),
    }
}

fn hex(b: &[u8]) -> String {
    format!(
        "0x{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// The sha256 of a file's content, in hex, read in chunks (unpacked files can be large).
fn sha256_file(path: &Path) -> String {
    use sha2::Digest as _;
    use std::io::Read;
    let mut f =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).expect("reading");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|x| format!("{x:02x}")).collect()
}

/// Every xattr of `path` (not following a symlink); none where the filesystem has none.
fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    use rustix::fs as rfs;
    let len = match rfs::llistxattr_query(path) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Vec::new(),
        Err(e) => panic!("llistxattr {}: {e}", path.display()),
    };
    let mut names = vec![0u8; len];
    let n = rfs::llistxattr(path, &mut names[..]).expect("llistxattr");
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let size = rfs::lgetxattr_query(path, name.as_str()).expect("lgetxattr size");
        let mut value = vec![0u8; size];
        let got = rfs::lgetxattr(path, name.as_str(), &mut value[..]).expect("lgetxattr");
        value.truncate(got);
        out.push((name, value));
    }
    out
}

/// How [`scan_with`] records a tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanOptions {
    /// The root directory is an entry too, under `/`.
    pub root: bool,
    /// mtimes to the nanosecond (`seconds.nanoseconds`), not whole seconds: layers strata
    /// builds hold whole seconds, so only comparisons of two unpacks can ask for more.
    pub nanoseconds: bool,
}

/// [`scan_with`] in whole seconds, the root left out.
pub fn scan(root: &Path) -> Tree {
    scan_with(root, ScanOptions::default())
}

/// Every entry under `root` with its type, mode (but a symlink's, which Linux fixes at
/// 0777), owner, mtime, size and content hash, link target, device number, xattrs, link
/// count and the other names of its inode in the tree. Special files are never opened.
pub fn scan_with(root: &Path, opts: ScanOptions) -> Tree {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut tree = Tree::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let ft = meta.file_type();
        if ft.is_dir() {
            for entry in std::fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            {
                stack.push(entry.expect("dir entry").path());
            }
        }
        let rel = path.strip_prefix(root).expect("under root").as_os_str();
        let name = match (rel.is_empty(), opts.root) {
            (false, _) => rel.as_bytes().to_vec(),
            (true, true) => b"/".to_vec(),
            (true, false) => continue,
        };
        let mut f = Fields::new();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        f.insert("type".into(), kind.into());
        if !ft.is_symlink() {
            f.insert("mode".into(), format!("{:04o}", meta.mode() & 0o7777));
        }
        f.insert("uid".into(), meta.uid().to_string());
        f.insert("gid".into(), meta.gid().to_string());
        let mtime = if opts.nanoseconds {
            format!("{}.{:09}", meta.mtime(), meta.mtime_nsec())
        } else {
            meta.mtime().to_string()
        };
        f.insert("mtime".into(), mtime);
        if ft.is_file() {
            f.insert("size".into(), meta.len().to_string());
            f.insert("sha256".into(), sha256_file(&path));
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(&path).expect("readlink");
            f.insert("target".into(), value(target.as_os_str().as_bytes()));
        }
        if ft.is_char_device() || ft.is_block_device() {
            let dev = meta.rdev();
            f.insert(
                "rdev".into(),
                format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev)),
            );
        }
        for (k, v) in xattrs(&path) {
            f.insert(format!("xattr {k}"), value(&v));
        }
        // A directory's link count is its number of subdirectories, already in the tree.
        if !ft.is_dir() && meta.nlink() > 1 {
            f.insert("nlink".into(), meta.nlink().to_string());
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(name.clone());
        }
        tree.insert(name, f);
    }
    for group in inodes.values() {
        for member in group {
            let mut others: Vec<String> = group
                .iter()
                .filter(|p| *p != member)
                .map(|p| show(p))
                .collect();
            others.sort_unstable();
            if !others.is_empty() {
                tree.get_mut(member)
                    .expect("scanned")
                    .insert("links".into(), others.join(", "));
            }
        }
    }
    tree
}

/// Tags, as `tag`, an artifact with one layer per `(title, content)`.
pub fn write_artifact(layout: &strata::Layout, tag: &str, files: &[(&str, &str)]) {
    use strata::spec::{media_type, to_canonical_json, Descriptor};
    let empty = layout.put_blob(b"{}").unwrap();
    let layers: Vec<Descriptor> = files
        .iter()
        .map(|(title, content)| {
            let blob = layout.put_blob(content.as_bytes()).unwrap();
            let mut d = Descriptor::new("text/plain", &blob.digest, blob.size);
            d.set_annotation("org.opencontainers.image.title", Some(title));
            d
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "artifactType": "application/x",
        "config": Descriptor::new(media_type::EMPTY, &empty.digest, empty.size),
        "layers": layers,
    });
    let blob = layout.put_blob(&to_canonical_json(&manifest)).unwrap();
    add_entry(
        layout,
        &Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size),
        Some(tag),
    );
}
