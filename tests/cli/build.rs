//! Building images: `strata new`, `build`, `config`, `add-layer` and `insert`.
//!
//! Built images are checked from the outside: the layer tars are listed with the `tar`
//! crate, configs and manifests read with `strata inspect --json` / `--raw`, and images
//! unpacked (by strata, and by umoci and skopeo where they are installed) and compared with
//! the tree they were built from, entry by entry.
//!
//! The helpers here (tree editing, tree comparisons, layer listings) are shared
//! with `repack.rs`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{self as rfs, AtFlags, Mode, Timespec, Timestamps, XattrFlags, CWD};
use serde_json::{json, Value};
use strata::spec::media_type;

use crate::util::{
    json, ok, peer, peer_ok, s, scan, sha256, show, snapshot, strata_bin, tempdir,
    write_layered_image, Packing, Run, TarBuilder, Tree,
};

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// The `SOURCE_DATE_EPOCH` the harness gives strata.
pub(crate) const SDE: i64 = 1_700_000_000;
/// An mtime well before [`SDE`], which strata must keep as it is.
pub(crate) const OLD: i64 = 1_600_000_000;

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `LAYOUT:TAG`.
pub(crate) fn at(layout: &Path, tag: &str) -> String {
    format!("{}:{tag}", s(layout))
}

/// Runs strata under `prefix` (e.g. `taskset -c 0`), with the harness's environment.
pub(crate) fn run_with(prefix: &[&str], args: &[&str]) -> Run {
    run_in(None, prefix, args)
}

/// [`run_with`], in directory `cwd`.
pub(crate) fn run_in(cwd: Option<&Path>, prefix: &[&str], args: &[&str]) -> Run {
    let mut cmd = match prefix.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(strata_bin());
            c
        }
        None => Command::new(strata_bin()),
    };
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TZ", "UTC")
        .env("SOURCE_DATE_EPOCH", SDE.to_string());
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs strata unable to read files their mode forbids: as root, without
/// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (so a mode-000 file is unreadable even
/// to root); otherwise as it is.
pub(crate) fn run_restricted(args: &[&str]) -> Run {
    if is_root() {
        run_with(
            &[
                "setpriv",
                "--inh-caps=-all",
                "--bounding-set=-dac_override,-dac_read_search",
                "--",
            ],
            args,
        )
    } else {
        run_with(&[], args)
    }
}

/// Asserts a refusal: exit 1, every needle in stderr, no panic.
pub(crate) fn assert_refused(r: &Run, what: &str, needles: &[&str]) {
    assert_eq!(
        r.code, 1,
        "{what}: expected exit 1\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    for needle in needles {
        assert!(
            r.stderr.contains(needle),
            "{what}: stderr does not name {needle:?}:\n{}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
}

/// What refused commands got wrong, collected so that one test reports every case: each
/// must exit 1, name the culprit, and leave the layout as it was (index.json to the byte,
/// and no blob or temp file left behind).
pub(crate) struct Refusals {
    layout: PathBuf,
    before: BTreeMap<PathBuf, Option<Vec<u8>>>,
    problems: Vec<String>,
}

impl Refusals {
    pub(crate) fn new(layout: &Path) -> Self {
        Refusals {
            layout: layout.to_owned(),
            before: snapshot(layout),
            problems: Vec::new(),
        }
    }

    /// Checks one run refused because the operation failed (exit 1).
    pub(crate) fn check(&mut self, what: &str, r: &Run, needles: &[&str]) {
        self.check_exit(what, r, 1, needles);
    }

    /// Checks one run refused because a value given is wrong (exit 2).
    pub(crate) fn check_usage(&mut self, what: &str, r: &Run, needles: &[&str]) {
        self.check_exit(what, r, 2, needles);
    }

    fn check_exit(&mut self, what: &str, r: &Run, code: i32, needles: &[&str]) {
        if r.code != code {
            self.problems.push(format!(
                "{what}: exit {} (expected {code}); stderr: {}",
                r.code,
                r.stderr.trim()
            ));
        }
        for needle in needles {
            if !r.stderr.contains(needle) {
                self.problems.push(format!(
                    "{what}: the message does not name {needle:?}: {}",
                    r.stderr.trim()
                ));
            }
        }
        if r.stderr.contains("panicked") {
            self.problems
                .push(format!("{what}: panicked: {}", r.stderr));
        }
        let after = snapshot(&self.layout);
        let mut changed = Vec::new();
        for path in self.before.keys().chain(after.keys()) {
            let (x, y) = (self.before.get(path), after.get(path));
            if x != y && !changed.contains(path) {
                changed.push(path.clone());
            }
        }
        if !changed.is_empty() {
            let list: Vec<String> = changed
                .iter()
                .map(|p| {
                    let how = match (self.before.contains_key(p), after.contains_key(p)) {
                        (false, true) => "added",
                        (true, false) => "removed",
                        _ => "changed",
                    };
                    format!("{} {how}", p.display())
                })
                .collect();
            self.problems
                .push(format!("{what}: the layout changed: {}", list.join(", ")));
            // Compare later cases with the layout as it is now.
            self.before = after;
        }
    }

    /// Fails with every problem found.
    pub(crate) fn finish(self) {
        assert!(
            self.problems.is_empty(),
            "refused commands misbehaved:\n  {}",
            self.problems.join("\n  ")
        );
    }
}

/// A tree being prepared (as the test user, root for chown and mknod).
pub(crate) struct Fs<'a>(pub &'a Path);

impl Fs<'_> {
    pub(crate) fn p(&self, rel: impl AsRef<OsStr>) -> PathBuf {
        self.0.join(rel.as_ref())
    }

    pub(crate) fn mkdir(&self, rel: impl AsRef<OsStr>, mode: u32) -> &Self {
        let path = self.p(&rel);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("mkdir -p {}: {e}", path.display()));
        self.chmod(rel, mode)
    }

    pub(crate) fn write(&self, rel: impl AsRef<OsStr>, body: impl AsRef<[u8]>, mode: u32) -> &Self {
        let path = self.p(&rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir -p");
        std::fs::write(&path, body).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        self.chmod(rel, mode)
    }

    pub(crate) fn chmod(&self, rel: impl AsRef<OsStr>, mode: u32) -> &Self {
        let path = self.p(rel);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        self
    }

    pub(crate) fn chown(&self, rel: impl AsRef<OsStr>, uid: u32, gid: u32) -> &Self {
        let path = self.p(rel);
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        self
    }

    pub(crate) fn symlink(&self, rel: impl AsRef<OsStr>, target: impl AsRef<OsStr>) -> &Self {
        let path = self.p(rel);
        std::os::unix::fs::symlink(target.as_ref(), &path)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
        self
    }

    /// `rel` as another name of `existing`.
    pub(crate) fn link(&self, rel: impl AsRef<OsStr>, existing: impl AsRef<OsStr>) -> &Self {
        let path = self.p(rel);
        std::fs::hard_link(self.p(existing), &path)
            .unwrap_or_else(|e| panic!("link {}: {e}", path.display()));
        self
    }

    pub(crate) fn fifo(&self, rel: impl AsRef<OsStr>, mode: u32) -> &Self {
        let path = self.p(&rel);
        rfs::mknodat(
            CWD,
            &path,
            rfs::FileType::Fifo,
            Mode::from_raw_mode(mode),
            0,
        )
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
        self.chmod(rel, mode)
    }

    pub(crate) fn chardev(
        &self,
        rel: impl AsRef<OsStr>,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> &Self {
        let path = self.p(&rel);
        rfs::mknodat(
            CWD,
            &path,
            rfs::FileType::CharacterDevice,
            Mode::from_raw_mode(mode),
            rfs::makedev(major, minor),
        )
        .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
        self.chmod(rel, mode)
    }

    pub(crate) fn xattr(&self, rel: impl AsRef<OsStr>, name: &str, value: &[u8]) -> &Self {
        let path = self.p(rel);
        rfs::lsetxattr(&path, name, value, XattrFlags::empty())
            .unwrap_or_else(|e| panic!("setxattr {} {name}: {e}", path.display()));
        self
    }

    pub(crate) fn rm_xattr(&self, rel: impl AsRef<OsStr>, name: &str) -> &Self {
        let path = self.p(rel);
        rfs::lremovexattr(&path, name)
            .unwrap_or_else(|e| panic!("removexattr {} {name}: {e}", path.display()));
        self
    }

    /// `rm -rf`, but the path must exist.
    pub(crate) fn rm(&self, rel: impl AsRef<OsStr>) -> &Self {
        let path = self.p(rel);
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .unwrap_or_else(|e| panic!("rm {}: {e}", path.display()));
        self
    }

    /// Sets atime and mtime (of a symlink itself, not its target).
    pub(crate) fn mtime(&self, rel: impl AsRef<OsStr>, sec: i64) -> &Self {
        set_mtime(&self.p(rel), sec);
        self
    }
}

fn set_mtime(path: &Path, sec: i64) {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: 0,
    };
    rfs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

/// Sets the mtime of everything under `root` (and `root`) to `sec`.
pub(crate) fn set_all_mtimes(root: &Path, sec: i64) {
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        if std::fs::symlink_metadata(&path).expect("lstat").is_dir() {
            for entry in std::fs::read_dir(&path).expect("readdir") {
                stack.push(entry.expect("dir entry").path());
            }
        }
        set_mtime(&path, sec);
    }
}

/// Deterministic incompressible-looking bytes.
pub(crate) fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// A tree with one of each thing a layer can hold: setuid/setgid files, a sticky dir,
/// relative, absolute and dangling symlinks, three names of one file, xattrs, other owners
/// (root only), an empty dir, a fifo, a device (root only), unicode and non-UTF-8 names, a
/// name over 100 bytes, a file over two 128 KiB chunks and a mode-000 dir (root only).
pub(crate) fn rich_tree(root: &Path) {
    std::fs::create_dir_all(root).expect("mkdir");
    let fs = Fs(root);
    fs.write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .write("etc/motd", "hello\n", 0o644)
        .write("bin/su", "#!/bin/sh\necho su\n", 0o4755)
        .write("bin/wall", "#!/bin/sh\necho wall\n", 0o2711)
        .mkdir("tmp", 0o1777)
        .write("usr/lib/libfoo.so.1", noise(300_000, 1), 0o644)
        .symlink("usr/lib/libfoo.so", "libfoo.so.1")
        .symlink("abs-link", "/etc/passwd")
        .symlink("dangling", "../nowhere/at/all")
        .write("hard/a", "one file, three names\n", 0o640)
        .mkdir("hard/sub", 0o755)
        .link("hard/b", "hard/a")
        .link("hard/sub/c", "hard/a")
        .write("attrs", "with xattrs\n", 0o644)
        .xattr("attrs", "user.comment", b"strata")
        .xattr("attrs", "user.binary", b"\x00\xff\x01")
        .mkdir("empty", 0o755)
        .mkdir("run", 0o755)
        .fifo("run/ctl", 0o620)
        .write(
            "donn\u{e9}es/\u{65e5}\u{672c}/\u{30d5}.txt",
            "unicode\n",
            0o644,
        )
        .write("emoji-\u{1f600}", "smile\n", 0o644)
        .write(OsStr::from_bytes(b"latin1-caf\xe9"), "not utf-8\n", 0o644)
        .mkdir(OsStr::from_bytes(b"dir-\xff"), 0o750)
        .write(OsStr::from_bytes(b"dir-\xff/inner"), "inner\n", 0o644)
        .write(format!("long/{}", "n".repeat(150)), "long name\n", 0o644);
    if is_root() {
        fs.mkdir("home/user", 0o700)
            .write("home/user/.profile", "export A=1\n", 0o600)
            .chown("home/user", 1000, 1000)
            .chown("home/user/.profile", 1000, 1001)
            .mkdir("dev", 0o755)
            .chardev("dev/null", 0o666, 1, 3)
            .write("locked/secret", "s\n", 0o600)
            .chmod("locked", 0o000);
    }
}

/// mtimes newer than `epoch` become `epoch` (what a layer built with it holds).
pub(crate) fn clamp(mut tree: Tree, epoch: i64) -> Tree {
    for f in tree.values_mut() {
        if let Some(m) = f.get_mut("mtime") {
            let t: i64 = m.parse().expect("mtime");
            *m = t.min(epoch).to_string();
        }
    }
    tree
}

/// Fails with every difference between two trees, one line each.
pub(crate) fn assert_trees(expected: &Tree, actual: &Tree, what: &str) {
    let mut problems = Vec::new();
    let none = String::from("-");
    for path in expected
        .keys()
        .chain(actual.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (expected.get(path), actual.get(path)) {
            (Some(e), None) => problems.push(format!("{}: missing ({})", show(path), e["type"])),
            (None, Some(a)) => problems.push(format!("{}: unexpected ({})", show(path), a["type"])),
            (Some(e), Some(a)) => {
                for field in e
                    .keys()
                    .chain(a.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                {
                    let (x, y) = (e.get(field).unwrap_or(&none), a.get(field).unwrap_or(&none));
                    if x != y {
                        problems.push(format!("{}: {field} expected {x}, got {y}", show(path)));
                    }
                }
            }
            (None, None) => unreachable!(),
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: the trees differ ({} entries expected):\n  {}",
        expected.len(),
        problems.join("\n  ")
    );
}

/// `strata inspect --json`.
pub(crate) fn inspect(layout: &Path, tag: &str) -> Value {
    json(&["inspect", "--json", &at(layout, tag)])
}

/// The stored config of an image.
pub(crate) fn raw_config(layout: &Path, tag: &str) -> Value {
    let out = ok(&["inspect", "--raw", "config", &at(layout, tag)]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("config is not JSON ({e}): {out}"))
}

/// The stored manifest of an image.
pub(crate) fn raw_manifest(layout: &Path, tag: &str) -> Value {
    let out = ok(&["inspect", "--raw", "manifest", &at(layout, tag)]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("manifest is not JSON ({e}): {out}"))
}

/// The digest `strata inspect` gives a tag's manifest.
pub(crate) fn manifest_digest(layout: &Path, tag: &str) -> String {
    inspect(layout, tag)["manifest"]["digest"]
        .as_str()
        .expect("manifest digest")
        .to_owned()
}

/// The `layers` of `strata inspect --json`.
pub(crate) fn layers(layout: &Path, tag: &str) -> Vec<Value> {
    inspect(layout, tag)["layers"]
        .as_array()
        .expect("layers")
        .clone()
}

pub(crate) fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').expect("ALG:HEX");
    layout.join("blobs").join(alg).join(hex)
}

/// The uncompressed tar of a layer (an entry of `strata inspect --json`'s `layers`).
pub(crate) fn layer_tar(layout: &Path, layer: &Value) -> Vec<u8> {
    let digest = layer["digest"].as_str().expect("layer digest");
    let stored = std::fs::read(blob_path(layout, digest)).expect("reading a layer blob");
    match layer["mediaType"].as_str().expect("layer media type") {
        media_type::LAYER_TAR => stored,
        media_type::LAYER_TAR_GZIP => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&stored[..])
                .read_to_end(&mut out)
                .expect("gunzip");
            out
        }
        media_type::LAYER_TAR_ZSTD => zstd::decode_all(&stored[..]).expect("unzstd"),
        other => panic!("unexpected layer media type {other}"),
    }
}

/// One tar entry, as a layer holds it.
#[derive(Debug, Clone)]
pub(crate) struct TarEntry {
    pub name: Vec<u8>,
    pub kind: tar::EntryType,
    pub mode: u32,
    /// `None` when the header's field is not a number.
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    pub mtime: u64,
    pub size: u64,
    pub link: Option<Vec<u8>>,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Every entry of a tar, in order.
pub(crate) fn tar_entries(bytes: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .expect("a tar")
        .map(|e| {
            let mut e = e.expect("a tar entry");
            let xattrs = match e.pax_extensions().expect("pax records") {
                Some(records) => records
                    .map(|r| r.expect("a pax record"))
                    .filter_map(|r| {
                        let key = r.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_owned();
                        Some((key, r.value_bytes().to_vec()))
                    })
                    .collect(),
                None => Vec::new(),
            };
            let h = e.header();
            TarEntry {
                name: e.path_bytes().into_owned(),
                kind: h.entry_type(),
                mode: h.mode().expect("mode"),
                uid: h.uid().ok(),
                gid: h.gid().ok(),
                mtime: h.mtime().expect("mtime"),
                size: e.size(),
                link: e.link_name_bytes().map(|l| l.into_owned()),
                xattrs,
            }
        })
        .collect()
}

/// The names in a layer, for messages.
pub(crate) fn names(entries: &[TarEntry]) -> Vec<String> {
    entries.iter().map(|e| show(&e.name)).collect()
}

/// `umoci unpack --image REF BUNDLE` (rootless when not root).
pub(crate) fn umoci_unpack(image: &str, bundle: &Path) {
    let mut args = vec!["unpack"];
    if !is_root() {
        args.push("--rootless");
    }
    args.extend(["--image", image, s(bundle)]);
    peer_ok("umoci", &args);
}

/// `strata unpack REF BUNDLE` (`--rootless` when not root).
pub(crate) fn strata_unpack(image: &str, bundle: &Path) {
    if is_root() {
        ok(&["unpack", image, s(bundle)]);
    } else {
        ok(&["unpack", "--rootless", image, s(bundle)]);
    }
}

/// [`strata_unpack`] and a scan of the rootfs.
pub(crate) fn strata_unpacked(image: &str, bundle: &Path) -> Tree {
    strata_unpack(image, bundle);
    scan(&bundle.join("rootfs"))
}

/// index.json's exact bytes.
pub(crate) fn index_bytes(layout: &Path) -> Vec<u8> {
    std::fs::read(layout.join("index.json")).expect("reading index.json")
}

// ---------------------------------------------------------------------------------------
// new
// ---------------------------------------------------------------------------------------

#[test]
fn new_makes_an_empty_image_for_the_platform() {
    let dir = tempdir();
    let layout = dir.path().join("l");
    let digest = ok(&[
        "new",
        &at(&layout, "empty"),
        "--set-platform",
        "linux/arm64/v8",
    ]);
    let config = raw_config(&layout, "empty");
    assert_eq!(config["rootfs"], json!({"type": "layers", "diff_ids": []}));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["variant"], "v8");
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    let manifest = raw_manifest(&layout, "empty");
    assert_eq!(manifest["layers"], json!([]));
    assert_eq!(manifest["mediaType"], media_type::MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], media_type::CONFIG);
    assert_eq!(digest.trim(), manifest_digest(&layout, "empty"));
    ok(&["fsck", s(&layout)]);
    // The same again (another layout, with SOURCE_DATE_EPOCH) is the same image.
    let other = dir.path().join("m");
    let again = ok(&["new", &at(&other, "x"), "--set-platform", "linux/arm64/v8"]);
    assert_eq!(digest, again);
    // An empty image unpacks to an empty rootfs.
    let tree = strata_unpacked(&at(&layout, "empty"), &dir.path().join("b"));
    assert!(tree.is_empty(), "{tree:?}");
}

// ---------------------------------------------------------------------------------------
// build: reproducibility
// ---------------------------------------------------------------------------------------

#[test]
fn builds_are_reproducible_and_clamp_mtimes() {
    let dir = tempdir();
    // Two copies of one tree, made at different times (different inodes, ctimes and
    // mtimes, all newer than SOURCE_DATE_EPOCH) except for one old file.
    // (Both are called `tree`, and built from their parent directory: the command line
    // is part of the input, as the history's created_by.)
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    rich_tree(&a.join("tree"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    rich_tree(&b.join("tree"));
    for t in [&a, &b] {
        Fs(t).mtime("tree/etc/motd", OLD);
    }
    let one = dir.path().join("one");
    let two = dir.path().join("two");
    let single_cpu = peer("taskset");
    let mut diff_ids = Vec::new();
    for (comp, mt) in [
        ("gzip", media_type::LAYER_TAR_GZIP),
        ("zstd", media_type::LAYER_TAR_ZSTD),
        ("none", media_type::LAYER_TAR),
    ] {
        let build_with = |cwd: &Path, prefix: &[&str], layout: &Path, tag: &str, extra: &[&str]| {
            let reference = at(layout, tag);
            let mut args = vec!["build", "tree", &reference, "--compress", comp];
            args.extend_from_slice(extra);
            let r = run_in(Some(cwd), prefix, &args);
            assert_eq!(r.code, 0, "build {comp}: {}", r.stderr);
            inspect(layout, tag)
        };
        let build = |cwd: &Path, prefix: &[&str], layout: &Path, tag: &str| {
            build_with(cwd, prefix, layout, tag, &[])
        };
        let mut images = vec![build(&a, &[], &one, comp), build(&b, &[], &two, comp)];
        // More compressing threads than this machine has cores: the same bytes.
        images.push(build_with(
            &a,
            &[],
            &two,
            &format!("{comp}-5threads"),
            &["--threads", "5"],
        ));
        if single_cpu {
            // On one CPU (the tar writer and the compressor share it).
            images.push(build(
                &a,
                &["taskset", "-c", "0"],
                &two,
                &format!("{comp}-1cpu"),
            ));
        }
        for image in &images[1..] {
            for field in ["layers", "config", "manifest"] {
                assert_eq!(
                    image[field], images[0][field],
                    "{comp}: the same tree built twice gives different {field}s"
                );
            }
        }
        let layer = &images[0]["layers"][0];
        assert_eq!(layer["mediaType"], mt, "{comp}");
        diff_ids.push(layer["diffId"].clone());
        if comp == "none" {
            assert_eq!(layer["digest"], layer["diffId"]);
        }
    }
    assert!(
        diff_ids.windows(2).all(|w| w[0] == w[1]),
        "the uncompressed tar depends on the compression: {diff_ids:?}"
    );

    // The layer: sorted, parents first, mtimes clamped (the old one kept).
    let layer = &layers(&one, "zstd")[0];
    let entries = tar_entries(&layer_tar(&one, layer));
    assert!(entries.len() > 25, "{:?}", names(&entries));
    let trimmed: Vec<&[u8]> = entries
        .iter()
        .map(|e| e.name.strip_suffix(b"/").unwrap_or(&e.name))
        .collect();
    assert!(
        trimmed.windows(2).all(|w| w[0] < w[1]),
        "entries not sorted: {:?}",
        names(&entries)
    );
    for (i, name) in trimmed.iter().enumerate() {
        if let Some(cut) = name.iter().rposition(|b| *b == b'/') {
            assert!(
                trimmed[..i].contains(&&name[..cut]),
                "{} comes before its parent (or without it)",
                show(name)
            );
        }
    }
    for e in &entries {
        let expected = if e.name == b"etc/motd" {
            OLD as u64
        } else {
            SDE as u64
        };
        assert_eq!(e.mtime, expected, "{}: mtime", show(&e.name));
    }
    let find = |n: &[u8]| {
        entries
            .iter()
            .find(|e| e.name == n)
            .unwrap_or_else(|| panic!("{} not in the layer: {:?}", show(n), names(&entries)))
    };
    // Hardlinks by inode: the first name is the file, the others link to it.
    assert_eq!(find(b"hard/a").kind, tar::EntryType::Regular);
    for other in [&b"hard/b"[..], b"hard/sub/c"] {
        let e = find(other);
        assert_eq!(e.kind, tar::EntryType::Link, "{}", show(other));
        assert_eq!(e.link.as_deref(), Some(&b"hard/a"[..]));
    }
    assert_eq!(find(b"bin/su").mode, 0o4755);
    assert_eq!(find(b"dangling").kind, tar::EntryType::Symlink);
    assert_eq!(
        find(b"dangling").link.as_deref(),
        Some(&b"../nowhere/at/all"[..])
    );
    find(b"latin1-caf\xe9");
    find(format!("long/{}", "n".repeat(150)).as_bytes());
    assert_eq!(find(b"run/ctl").kind, tar::EntryType::Fifo);
    let attrs = find(b"attrs");
    assert!(
        attrs
            .xattrs
            .contains(&("user.binary".into(), b"\x00\xff\x01".to_vec())),
        "{:?}",
        attrs.xattrs
    );
    assert!(
        !entries.iter().any(|e| e.kind == tar::EntryType::GNUSparse),
        "sparse entries"
    );
}

// ---------------------------------------------------------------------------------------
// build: the peers read what strata builds
// ---------------------------------------------------------------------------------------

#[test]
fn built_images_unpack_to_the_tree_in_strata_umoci_and_skopeo() {
    if !is_root() {
        eprintln!("SKIPPED: the tree needs root (other owners, a device node)");
        return;
    }
    let dir = tempdir();
    let tree = dir.path().join("tree");
    rich_tree(&tree);
    set_all_mtimes(&tree, OLD);
    let expected = scan(&tree);
    assert!(expected.len() > 30, "{}", expected.len());
    let layout = dir.path().join("l");
    for comp in ["gzip", "none"] {
        // --keep-owners: the tree's owners are what this test checks arrive (build records
        // 0:0 by default).
        ok(&[
            "build",
            s(&tree),
            &at(&layout, comp),
            "--compress",
            comp,
            "--keep-owners",
        ]);
    }
    ok(&["fsck", s(&layout)]);
    for comp in ["gzip", "none"] {
        let got = strata_unpacked(&at(&layout, comp), &dir.path().join(format!("s-{comp}")));
        assert_trees(
            &expected,
            &got,
            &format!("strata unpack of the {comp} build"),
        );
    }
    if peer("umoci") {
        for comp in ["gzip", "none"] {
            let bundle = dir.path().join(format!("u-{comp}"));
            umoci_unpack(&at(&layout, comp), &bundle);
            let got = scan(&bundle.join("rootfs"));
            assert_trees(
                &expected,
                &got,
                &format!("umoci unpack of the {comp} build"),
            );
        }
    }
    if peer("skopeo") {
        let image = format!("oci:{}", at(&layout, "gzip"));
        let info: Value =
            serde_json::from_str(&peer_ok("skopeo", &["inspect", &image])).expect("skopeo JSON");
        let ours = layers(&layout, "gzip");
        assert_eq!(info["Layers"], json!([ours[0]["digest"]]), "{info}");
        assert_eq!(info["Digest"], manifest_digest(&layout, "gzip"));
        assert_eq!(info["Os"], "linux");
        let copy = dir.path().join("copy");
        peer_ok(
            "skopeo",
            &["copy", &image, &format!("oci:{}", at(&copy, "copied"))],
        );
        ok(&["fsck", s(&copy)]);
        assert_eq!(layers(&copy, "copied"), ours);
        let got = strata_unpacked(&at(&copy, "copied"), &dir.path().join("s-copy"));
        assert_trees(&expected, &got, "strata unpack of skopeo's copy");
    }
}

// ---------------------------------------------------------------------------------------
// build --from, unknown config fields, compression auto
// ---------------------------------------------------------------------------------------

/// Config fields strata does not model, inside `config` and at the top level.
fn docker_extras() -> Value {
    json!({
        "config": {
            "Healthcheck": {"Test": ["CMD", "/bin/check", "--fast"], "Interval": 30_000_000_000u64, "Retries": 3},
            "OnBuild": ["RUN echo hi"],
            "Shell": ["/bin/bash", "-c"],
            "Env": ["PATH=/usr/bin", "KEEP=1"],
        },
        "container": "0123abcd",
        "docker_version": "20.10.7",
        "moby.example": {"nested": [1, 2, {"x": null}]},
        "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "base layer"}],
    })
}

/// The fields of `docker_extras` as a config holds them.
fn assert_extras_kept(config: &Value, what: &str) {
    let want = docker_extras();
    for key in ["Healthcheck", "OnBuild", "Shell"] {
        assert_eq!(
            config["config"][key], want["config"][key],
            "{what}: config.{key}"
        );
    }
    for key in ["container", "docker_version", "moby.example"] {
        assert_eq!(config[key], want[key], "{what}: {key}");
    }
}

/// A layout with tag `base`: two layers (`stored` as given), unknown config fields.
fn docker_base(layout: &Path, stored: Packing) -> Value {
    let l = strata::Layout::init(layout).expect("init");
    let mut t = TarBuilder::new();
    t.dir("etc", 0o755)
        .file("etc/base", b"base\n", 0o644)
        .dir("opt", 0o755);
    let mut t2 = TarBuilder::new();
    t2.file("etc/second", b"second\n", 0o600);
    let mut extras = docker_extras();
    extras["history"] = json!([
        {"created": "2020-01-01T00:00:00Z", "created_by": "base layer"},
        {"created": "2020-01-02T00:00:00Z", "created_by": "second layer"},
    ]);
    write_layered_image(
        &l,
        "base",
        &[(t.finish(), Packing::Plain), (t2.finish(), stored)],
        extras,
    );
    raw_config(layout, "base")
}

#[test]
fn build_from_a_base_keeps_its_layers_and_unknown_fields() {
    let dir = tempdir();
    let base = dir.path().join("base");
    let before = docker_base(&base, Packing::Zstd);
    let base_layers = layers(&base, "base");
    let tree = dir.path().join("tree");
    Fs(&tree)
        .write("opt/app/run", "#!/bin/sh\n", 0o755)
        .write("etc/app.conf", "x=1\n", 0o644);

    // Into another layout: the base's blobs are copied.
    let out = dir.path().join("out");
    ok(&[
        "build",
        s(&tree),
        &at(&out, "app"),
        "--from",
        &at(&base, "base"),
        "--cmd",
        "/opt/app/run",
        "--env",
        "APP=1",
        "--history-comment",
        "the app",
        "--history-created-by",
        "make app",
        "--history-author",
        "builder",
    ]);
    ok(&["fsck", s(&out)]);
    let config = raw_config(&out, "app");
    assert_extras_kept(&config, "build --from");
    assert_eq!(
        config["config"]["Env"],
        json!(["PATH=/usr/bin", "KEEP=1", "APP=1"])
    );
    assert_eq!(config["config"]["Cmd"], json!(["/opt/app/run"]));
    let ids = config["rootfs"]["diff_ids"].as_array().expect("diff_ids");
    assert_eq!(ids.len(), 3);
    assert_eq!(
        ids[..2],
        before["rootfs"]["diff_ids"].as_array().unwrap()[..]
    );
    let history = config["history"].as_array().expect("history");
    assert_eq!(history[..2], before["history"].as_array().unwrap()[..]);
    assert_eq!(
        history[2],
        json!({"created": "2023-11-14T22:13:20Z", "created_by": "make app", "comment": "the app", "author": "builder"})
    );
    let built = layers(&out, "app");
    assert_eq!(built[..2], base_layers[..], "the base's layers, unchanged");
    // auto: the base's last compressed layer is zstd.
    assert_eq!(built[2]["mediaType"], media_type::LAYER_TAR_ZSTD);
    let tree_now = strata_unpacked(&at(&out, "app"), &dir.path().join("b"));
    for p in ["etc/base", "etc/second", "etc/app.conf", "opt/app/run"] {
        assert!(tree_now.contains_key(p.as_bytes()), "{p} missing");
    }
    // The base layout did not change.
    assert_eq!(raw_config(&base, "base"), before);

    // Same layout, no config flags: nothing unknown is lost either; a base without
    // compressed layers gives gzip.
    let plain = dir.path().join("plain");
    docker_base(&plain, Packing::Plain);
    ok(&[
        "build",
        s(&tree),
        &at(&plain, "app"),
        "--from",
        &at(&plain, "base"),
    ]);
    assert_extras_kept(&raw_config(&plain, "app"), "build --from (same layout)");
    assert_eq!(
        layers(&plain, "app")[2]["mediaType"],
        media_type::LAYER_TAR_GZIP
    );
    // --no-history adds no entry.
    ok(&[
        "build",
        s(&tree),
        &at(&plain, "quiet"),
        "--from",
        &at(&plain, "base"),
        "--no-history",
    ]);
    assert_eq!(
        raw_config(&plain, "quiet")["history"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

// ---------------------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------------------

#[test]
fn config_sets_every_field_clears_and_keeps_unknown_ones() {
    let dir = tempdir();
    let layout = dir.path().join("l");
    let before = docker_base(&layout, Packing::Gzip);
    let base_digest = manifest_digest(&layout, "base");
    ok(&[
        "config",
        &at(&layout, "base"),
        "--tag",
        "edited",
        "--entrypoint",
        "/bin/app",
        "--entrypoint=--serve",
        "--cmd",
        "a",
        "--cmd",
        "b c",
        "--env",
        "PATH=/bin:/usr/bin",
        "--env",
        "NEW=v=w",
        "--label",
        "org.example.a=1",
        "--label",
        "b=two words",
        "--expose",
        "80",
        "--expose",
        "53/udp",
        "--volume",
        "/data",
        "--volume",
        "/var/cache",
        "--user",
        "1000:1000",
        "--workdir",
        "/srv",
        "--stop-signal",
        "SIGINT",
        "--author",
        "Jane <jane@example.com>",
        "--created",
        "2024-01-02T03:04:05Z",
        "--set-platform",
        "linux/arm64/v8",
        "--annotation",
        "org.example.k=v",
        "--history-author",
        "hist",
        "--history-comment",
        "a comment",
        "--history-created",
        "2024-05-06T07:08:09Z",
        "--history-created-by",
        "made by hand",
    ]);
    // The base tag still names the old image.
    assert_eq!(manifest_digest(&layout, "base"), base_digest);
    assert_eq!(raw_config(&layout, "base"), before);

    let config = raw_config(&layout, "edited");
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], json!(["/bin/app", "--serve"]));
    assert_eq!(c["Cmd"], json!(["a", "b c"]));
    assert_eq!(c["Env"], json!(["PATH=/bin:/usr/bin", "KEEP=1", "NEW=v=w"]));
    assert_eq!(c["Labels"], json!({"org.example.a": "1", "b": "two words"}));
    assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
    assert_eq!(c["Volumes"], json!({"/data": {}, "/var/cache": {}}));
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(config["author"], "Jane <jane@example.com>");
    assert_eq!(config["created"], "2024-01-02T03:04:05Z");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["variant"], "v8");
    assert_eq!(config["rootfs"], before["rootfs"]);
    assert_extras_kept(&config, "config");
    let history = config["history"].as_array().expect("history");
    assert_eq!(history.len(), 3);
    assert_eq!(history[..2], before["history"].as_array().unwrap()[..]);
    assert_eq!(
        history[2],
        json!({
            "created": "2024-05-06T07:08:09Z",
            "author": "hist",
            "created_by": "made by hand",
            "comment": "a comment",
            "empty_layer": true,
        })
    );
    let manifest = raw_manifest(&layout, "edited");
    assert_eq!(manifest["annotations"], json!({"org.example.k": "v"}));
    assert_eq!(manifest["layers"], raw_manifest(&layout, "base")["layers"]);
    // What inspect shows.
    let summary = inspect(&layout, "edited");
    assert_eq!(summary["entrypoint"], json!(["/bin/app", "--serve"]));
    assert_eq!(summary["cmd"], json!(["a", "b c"]));
    assert_eq!(summary["user"], "1000:1000");
    assert_eq!(summary["workingDir"], "/srv");
    assert_eq!(summary["stopSignal"], "SIGINT");
    assert_eq!(summary["platform"], "linux/arm64/v8");
    assert_eq!(summary["author"], "Jane <jane@example.com>");
    assert_eq!(summary["created"], "2024-01-02T03:04:05Z");
    assert_eq!(summary["labels"]["b"], "two words");
    assert_eq!(summary["annotations"]["org.example.k"], "v");
    for port in ["80/tcp", "53/udp"] {
        assert!(
            summary["exposedPorts"]
                .as_array()
                .unwrap()
                .contains(&json!(port)),
            "{summary}"
        );
    }
    for v in ["/data", "/var/cache"] {
        assert!(
            summary["volumes"].as_array().unwrap().contains(&json!(v)),
            "{summary}"
        );
    }
    // The index entry carries the new platform.
    let index: Value = serde_json::from_slice(&index_bytes(&layout)).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == "edited")
        .expect("edited in index.json");
    assert_eq!(entry["platform"]["architecture"], "arm64");

    // --clear, in place (the tag moves), with no history entry.
    ok(&[
        "config",
        &at(&layout, "edited"),
        "--clear",
        "entrypoint",
        "--clear",
        "cmd",
        "--clear",
        "labels",
        "--clear",
        "exposed-ports",
        "--clear",
        "volumes",
        "--clear",
        "annotations",
        "--clear",
        "env",
        "--env",
        "ONLY=1",
        "--no-history",
    ]);
    let cleared = raw_config(&layout, "edited");
    for key in ["Entrypoint", "Cmd", "Labels", "ExposedPorts", "Volumes"] {
        assert!(
            cleared["config"].get(key).is_none(),
            "--clear left {key}: {cleared}"
        );
    }
    assert_eq!(cleared["config"]["Env"], json!(["ONLY=1"]));
    assert_eq!(cleared["config"]["User"], "1000:1000");
    assert_eq!(cleared["history"], config["history"]);
    assert_extras_kept(&cleared, "config --clear");
    assert!(
        raw_manifest(&layout, "edited").get("annotations").is_none(),
        "--clear annotations"
    );
    ok(&["fsck", s(&layout)]);

    // Bad values are refused before anything is written.
    let image = at(&layout, "base");
    let mut refusals = Refusals::new(&layout);
    for (args, needle) in [
        (["--clear", "bogus"], "bogus"),
        (["--created", "yesterday"], "yesterday"),
        (["--history-created", "soon"], "soon"),
        (["--set-platform", "linux"], "linux"),
    ] {
        let mut full = vec!["config", &image, "--tag", "bad"];
        full.extend(args);
        let r = crate::util::run(&full);
        refusals.check_usage(&format!("{full:?}"), &r, &[needle]);
    }
    refusals.finish();
}

// ---------------------------------------------------------------------------------------
// add-layer
// ---------------------------------------------------------------------------------------

#[test]
fn add_layer_appends_a_tar_verbatim_and_refuses_what_is_not_one() {
    let dir = tempdir();
    let layout = dir.path().join("l");
    ok(&["new", &at(&layout, "t")]);
    let mut t = TarBuilder::new();
    t.dir("data", 0o755)
        .file("data/file", b"payload\n", 0o640)
        .symlink("data/link", "file")
        .file_with_xattrs("data/x", b"x", &[("user.k", b"v")]);
    let tar = t.finish();
    let tar_path = dir.path().join("layer.tar");
    std::fs::write(&tar_path, &tar).unwrap();

    ok(&[
        "add-layer",
        &at(&layout, "t"),
        s(&tar_path),
        "--compress",
        "none",
    ]);
    let l = layers(&layout, "t");
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["diffId"], sha256(&tar).to_string());
    assert_eq!(l[0]["digest"], sha256(&tar).to_string());
    assert_eq!(l[0]["mediaType"], media_type::LAYER_TAR);
    assert_eq!(
        std::fs::read(blob_path(&layout, l[0]["digest"].as_str().unwrap())).unwrap(),
        tar
    );
    // auto with no compressed layer: gzip; the tar inside is the same bytes.
    ok(&["add-layer", &at(&layout, "t"), s(&tar_path), "--tag", "gz"]);
    let l = layers(&layout, "gz");
    assert_eq!(l.len(), 2);
    assert_eq!(l[1]["mediaType"], media_type::LAYER_TAR_GZIP);
    assert_eq!(l[1]["diffId"], sha256(&tar).to_string());
    assert_eq!(layer_tar(&layout, &l[1]), tar);
    ok(&[
        "add-layer",
        &at(&layout, "gz"),
        s(&tar_path),
        "--compress",
        "zstd",
    ]);
    let l = layers(&layout, "gz");
    assert_eq!(l[2]["mediaType"], media_type::LAYER_TAR_ZSTD);
    assert_eq!(layer_tar(&layout, &l[2]), tar);
    let history = raw_config(&layout, "gz")["history"].clone();
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");
    let tree = strata_unpacked(&at(&layout, "gz"), &dir.path().join("b"));
    assert_eq!(tree[&b"data/link"[..]]["target"], "\"file\"");
    assert_eq!(tree[&b"data/x"[..]]["xattr user.k"], "\"v\"");
    assert_eq!(tree[&b"data/file"[..]]["mode"], "0640");
    ok(&["fsck", s(&layout)]);

    // Not tars: refused, nothing written. (A gzip-compressed tar is taken now: see
    // completion_layers.rs.)
    let mut truncated = tar.clone();
    truncated.truncate(700);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text.tar", b"this is not a tar archive at all\n".to_vec()),
        ("noise.tar", noise(4096, 7)),
        ("truncated.tar", truncated),
    ];
    let mut refusals = Refusals::new(&layout);
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let r = crate::util::run(&["add-layer", &at(&layout, "gz"), s(&path)]);
        refusals.check(&format!("add-layer {name}"), &r, &[name]);
    }
    let missing = dir.path().join("missing.tar");
    let r = crate::util::run(&["add-layer", &at(&layout, "gz"), s(&missing)]);
    refusals.check("add-layer of a missing file", &r, &["missing.tar"]);
    refusals.finish();
}

// ---------------------------------------------------------------------------------------
// insert
// ---------------------------------------------------------------------------------------

#[test]
fn insert_files_directories_opaque_and_whiteouts() {
    let dir = tempdir();
    let layout = dir.path().join("l");
    {
        let l = strata::Layout::init(&layout).expect("init");
        let mut t = TarBuilder::new();
        t.dir("etc", 0o755)
            .file("etc/a", b"a\n", 0o644)
            .file("etc/b", b"b\n", 0o644)
            .dir("opt", 0o755)
            .dir("opt/old", 0o755)
            .file("opt/old/x", b"x\n", 0o644)
            .file("opt/keep", b"keep\n", 0o644);
        write_layered_image(&l, "base", &[(t.finish(), Packing::Gzip)], json!({}));
    }
    let src = dir.path().join("src");
    Fs(&src)
        .write("one.conf", "one\n", 0o600)
        .write("tree/bin/tool", "#!/bin/sh\n", 0o755)
        .symlink("tree/bin/alias", "tool")
        .mkdir("tree/empty", 0o700)
        .write("etc-new/only", "only\n", 0o644);
    set_all_mtimes(&src, OLD);
    let base = at(&layout, "base");
    let unpack =
        |tag: &str| strata_unpacked(&at(&layout, tag), &dir.path().join(format!("b-{tag}")));
    let expect_layers = |tag: &str, n: usize| {
        let l = layers(&layout, tag);
        assert_eq!(l.len(), n, "{tag}: {l:?}");
        assert_eq!(l[n - 1]["mediaType"], media_type::LAYER_TAR_GZIP);
    };

    // A file, to a new name in an existing dir and into dirs the image does not have.
    ok(&[
        "insert",
        &base,
        s(&src.join("one.conf")),
        "/etc/one.conf",
        "--tag",
        "file",
    ]);
    ok(&[
        "insert",
        &at(&layout, "file"),
        s(&src.join("one.conf")),
        "/new/deep/f",
        "--tag",
        "file2",
    ]);
    expect_layers("file", 2);
    expect_layers("file2", 3);
    let t = unpack("file2");
    assert_eq!(t[&b"etc/one.conf"[..]]["mode"], "0600");
    assert_eq!(t[&b"etc/one.conf"[..]]["mtime"], OLD.to_string());
    assert_eq!(
        t[&b"etc/one.conf"[..]]["sha256"],
        t[&b"new/deep/f"[..]]["sha256"]
    );
    assert_eq!(t[&b"new/deep"[..]]["type"], "dir");
    assert!(t.contains_key(&b"etc/a"[..]) && t.contains_key(&b"opt/old/x"[..]));

    // A directory tree.
    ok(&[
        "insert",
        &base,
        s(&src.join("tree")),
        "/opt/tree",
        "--tag",
        "dir",
    ]);
    expect_layers("dir", 2);
    let t = unpack("dir");
    let mut want = scan(&src.join("tree"));
    want = want
        .into_iter()
        .map(|(k, v)| ([&b"opt/tree/"[..], &k].concat(), v))
        .collect();
    let got: Tree = t
        .iter()
        .filter(|(k, _)| k.starts_with(b"opt/tree/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_trees(&want, &got, "insert of a directory");
    assert_eq!(t[&b"opt/tree"[..]]["type"], "dir");
    assert!(t.contains_key(&b"opt/old/x"[..]));

    // --whiteout.
    ok(&[
        "insert",
        &at(&layout, "dir"),
        "--whiteout",
        "/opt/old",
        "--tag",
        "wh",
    ]);
    expect_layers("wh", 3);
    let entries = tar_entries(&layer_tar(&layout, &layers(&layout, "wh")[2]));
    assert_eq!(names(&entries), ["opt/.wh.old"]);
    let t = unpack("wh");
    assert!(
        !t.keys().any(|k| k.starts_with(b"opt/old")),
        "opt/old stayed"
    );
    assert!(t.contains_key(&b"opt/keep"[..]) && t.contains_key(&b"opt/tree/bin/tool"[..]));

    // --opaque: what lower layers had under /etc is hidden.
    ok(&[
        "insert",
        &at(&layout, "wh"),
        s(&src.join("etc-new")),
        "/etc",
        "--opaque",
        "--tag",
        "opq",
    ]);
    expect_layers("opq", 4);
    let entries = tar_entries(&layer_tar(&layout, &layers(&layout, "opq")[3]));
    assert!(
        names(&entries).contains(&"etc/.wh..wh..opq".to_owned()),
        "{:?}",
        names(&entries)
    );
    let t = unpack("opq");
    let etc: Vec<String> = t
        .keys()
        .filter(|k| k.starts_with(b"etc/"))
        .map(|k| show(k))
        .collect();
    assert_eq!(etc, ["etc/only"]);
    assert!(t.contains_key(&b"opt/keep"[..]));

    if peer("umoci") {
        for tag in ["file2", "opq"] {
            let bundle = dir.path().join(format!("u-{tag}"));
            umoci_unpack(&at(&layout, tag), &bundle);
            let theirs = scan(&bundle.join("rootfs"));
            let ours = scan(&dir.path().join(format!("b-{tag}")).join("rootfs"));
            // Directories the layer does not hold are created by each tool as it likes.
            let dirs_only = |t: Tree| -> Tree {
                t.into_iter()
                    .filter(|(k, _)| k != b"new" && k != b"new/deep")
                    .collect()
            };
            assert_trees(
                &dirs_only(ours),
                &dirs_only(theirs),
                &format!("umoci unpack of {tag}"),
            );
        }
    }

    // Bad input: refused, layout unchanged.
    let mut refusals = Refusals::new(&layout);
    let wh = dir.path().join("whsrc");
    Fs(&wh).write(".wh.sneaky", "", 0o644);
    // A DEST that is no path inside the image is a wrong invocation (exit 2); a source
    // that cannot be stored fails the operation (exit 1).
    for (args, needle, code) in [
        (
            ["insert", &base, "/nonexistent/src", "/x"],
            "/nonexistent/src",
            1,
        ),
        (["insert", &base, s(&src), "etc/x"], "absolute", 2),
        (["insert", &base, s(&src), "/a/../b"], "..", 2),
        (["insert", &base, s(&wh), "/opt/w"], ".wh.sneaky", 1),
    ] {
        let r = crate::util::run(&args);
        if code == 2 {
            refusals.check_usage(&format!("{args:?}"), &r, &[needle]);
        } else {
            refusals.check(&format!("{args:?}"), &r, &[needle]);
        }
    }
    refusals.finish();
}

#[test]
fn whiteout_headers_are_proper_ustar_headers() {
    // Numeric fields must hold numbers (the tar crate, among other readers, refuses empty
    // ones); every header strata writes, whiteouts included.
    let dir = tempdir();
    let layout = dir.path().join("l");
    let src = dir.path().join("src");
    Fs(&src).write("f", "f\n", 0o644);
    ok(&["new", &at(&layout, "t")]);
    ok(&["insert", &at(&layout, "t"), "--whiteout", "/etc/gone"]);
    ok(&["insert", &at(&layout, "t"), s(&src), "/opt", "--opaque"]);
    for layer in layers(&layout, "t") {
        for e in tar_entries(&layer_tar(&layout, &layer)) {
            assert_eq!(
                (e.uid, e.gid),
                (Some(0), Some(0)),
                "the uid/gid header fields of {} are not numbers",
                show(&e.name)
            );
            if show(&e.name).contains(".wh.") {
                assert_eq!(e.size, 0, "{}", show(&e.name));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// build: bad input
// ---------------------------------------------------------------------------------------

#[test]
fn build_refuses_whiteout_names_and_unreadable_files() {
    let dir = tempdir();
    let layout = dir.path().join("l");
    ok(&["new", &at(&layout, "keep")]);
    let tree = dir.path().join("tree");
    Fs(&tree)
        .write("etc/fine", "fine\n", 0o644)
        .write("etc/deep/.wh.evil", "", 0o644)
        .write("big/file", noise(400_000, 3), 0o644);
    let mut refusals = Refusals::new(&layout);
    for tag in ["keep", "other"] {
        let r = crate::util::run(&["build", s(&tree), &at(&layout, tag)]);
        refusals.check(
            &format!("build of a .wh. name into :{tag}"),
            &r,
            &[".wh.evil"],
        );
    }
    let r = crate::util::run(&[
        "build",
        s(&tree),
        &at(&layout, "other"),
        "--from",
        &at(&layout, "keep"),
    ]);
    refusals.check("build --from of a .wh. name", &r, &[".wh.evil"]);

    // An unreadable file (after a large one: part of the layer is written by then).
    std::fs::remove_file(tree.join("etc/deep/.wh.evil")).unwrap();
    Fs(&tree).write("zz/secret", "secret\n", 0o000);
    let r = run_restricted(&["build", s(&tree), &at(&layout, "keep")]);
    refusals.check("build of an unreadable file", &r, &["zz/secret"]);

    // Bad flag values (each with its own tree, so that a stray layer would be new).
    let tar_path = dir.path().join("layer.tar");
    std::fs::write(&tar_path, crate::util::tar_layer("flags")).unwrap();
    for (i, (flags, needle)) in [
        (["--history-created", "soon"], "soon"),
        (["--created", "yesterday"], "yesterday"),
        (["--set-platform", "plan9"], "plan9"),
    ]
    .into_iter()
    .enumerate()
    {
        let good = dir.path().join(format!("good-{i}"));
        Fs(&good).write("file", format!("tree {i}\n"), 0o644);
        let mut args = vec!["build", s(&good), "--from"];
        let (base, out) = (at(&layout, "keep"), at(&layout, "flags"));
        args.extend([base.as_str(), out.as_str()]);
        args.extend(flags);
        let r = crate::util::run(&args);
        refusals.check_usage(&format!("{args:?}"), &r, &[needle]);
    }
    let r = crate::util::run(&[
        "add-layer",
        &at(&layout, "keep"),
        s(&tar_path),
        "--history-created",
        "later",
    ]);
    refusals.check_usage("add-layer --history-created later", &r, &["later"]);
    let r = crate::util::run(&[
        "insert",
        &at(&layout, "keep"),
        s(&tar_path),
        "/x",
        "--history-created",
        "never",
    ]);
    refusals.check_usage("insert --history-created never", &r, &["never"]);

    let r = crate::util::run(&["build", s(&tree.join("etc/fine")), &at(&layout, "keep")]);
    refusals.check("build of a file, not a directory", &r, &["etc/fine"]);
    let r = crate::util::run(&["build", s(&dir.path().join("nope")), &at(&layout, "keep")]);
    refusals.check("build of a missing directory", &r, &["nope"]);
    refusals.finish();
}

#[test]
fn a_refused_build_creates_no_layout() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    Fs(&tree).write(".wh.evil", "", 0o644);
    let layout = dir.path().join("fresh");
    let r = crate::util::run(&["build", s(&tree), &at(&layout, "t")]);
    assert_refused(&r, "build into a new layout", &[".wh.evil"]);
    assert!(
        !layout.exists(),
        "a refused build left a new layout behind: {:?}",
        snapshot(&layout).keys().collect::<Vec<_>>()
    );
}
