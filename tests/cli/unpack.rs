//! strata unpack on layers built by the tests: layer.md semantics, hostile layers and
//! corruption.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::util::*;

fn layout_at(dir: &Path) -> strata::Layout {
    strata::Layout::init(dir.join("lay")).expect("init")
}

/// Tags, as `tag`, an image whose one layer is `t`.
fn one_layer(layout: &strata::Layout, tag: &str, t: TarBuilder, packing: Packing) -> Image {
    write_layered_image(layout, tag, &[(t.finish(), packing)], serde_json::json!({}))
}

fn unpack_ok(layout: &strata::Layout, tag: &str, bundle: &Path) {
    ok(&["unpack", &format!("{}:{tag}", s(layout.root())), s(bundle)]);
}

#[test]
fn layers_apply_in_order_with_whiteouts() {
    let dir = tempdir();
    let layout = layout_at(dir.path());
    let mut base = TarBuilder::new();
    base.dir("etc", 0o755)
        .file("etc/keep", b"keep", 0o644)
        .file("etc/gone", b"gone", 0o644)
        .dir("opt", 0o755)
        .dir("opt/old", 0o755)
        .file("opt/old/a", b"a", 0o644)
        .dir("var", 0o755)
        .dir("var/lib", 0o755)
        .file("var/lib/x", b"lower x", 0o644)
        .file("var/lib/y", b"lower y", 0o644)
        .file("replace-me", b"file", 0o644)
        .owned_file("usr-bin-sudo", b"#!", 0o4755, 0, 0)
        .owned_file("etc/shadow", b"s", 0o640, 0, 42);
    let mut upper = TarBuilder::new();
    // Opaque after a sibling written by this layer: the sibling stays, lower content goes.
    upper
        .file("var/lib/new", b"upper", 0o644)
        .opaque("var/lib")
        .whiteout("etc", "gone")
        // A whiteout for something this same layer writes must not remove it.
        .file("etc/same", b"same layer", 0o600)
        .whiteout("etc", "same")
        .whiteout("opt", "old")
        .dir("replace-me", 0o750)
        .file("replace-me/inner", b"in", 0o644);
    let image = write_layered_image(
        &layout,
        "t",
        &[
            (base.finish(), Packing::Gzip),
            (upper.finish(), Packing::Zstd),
        ],
        serde_json::json!({}),
    );
    let bundle = dir.path().join("bundle");
    unpack_ok(&layout, "t", &bundle);
    let root = bundle.join("rootfs");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    assert_eq!(read("etc/keep").as_deref(), Some("keep"));
    assert!(!root.join("etc/gone").exists());
    assert!(!root.join(".wh.gone").exists() && !root.join("etc/.wh.gone").exists());
    assert_eq!(read("etc/same").as_deref(), Some("same layer"));
    assert!(!root.join("opt/old").exists());
    assert!(root.join("opt").is_dir());
    assert_eq!(read("var/lib/new").as_deref(), Some("upper"));
    assert!(!root.join("var/lib/x").exists() && !root.join("var/lib/y").exists());
    assert!(!root.join("var/lib/.wh..wh..opq").exists());
    assert!(root.join("replace-me").is_dir());
    assert_eq!(read("replace-me/inner").as_deref(), Some("in"));
    let mode = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("replace-me"), 0o750);
    assert_eq!(mode("usr-bin-sudo"), 0o4755);
    assert_eq!(
        std::fs::metadata(root.join("etc/shadow")).unwrap().gid(),
        42
    );
    let mtime = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap().mtime();
    assert_eq!(mtime("etc/keep"), MTIME as i64);
    // Directories keep their layer's mtime though children changed after.
    assert_eq!(mtime("etc"), MTIME as i64);
    assert_eq!(mtime("var/lib"), MTIME as i64);
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["root"]["path"], "rootfs");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("strata.json")).unwrap()).unwrap();
    assert_eq!(meta["descriptorPath"][0]["digest"], image.manifest.digest);
    let snapshot = std::fs::read_to_string(bundle.join("strata-snapshot.jsonl")).unwrap();
    assert!(
        snapshot
            .lines()
            .any(|l| l.contains("\"path\":\"var/lib/new\"")),
        "{snapshot}"
    );
}

#[test]
fn links_devices_xattrs_and_long_names() {
    let dir = tempdir();
    let layout = layout_at(dir.path());
    let long = format!("deep/{}", "n".repeat(150));
    let mut t = TarBuilder::new();
    t.dir("deep", 0o755)
        .file(&long, b"long", 0o644)
        .file("target", b"shared", 0o644)
        .hardlink("alias", "target")
        .symlink("abs", "/target")
        .symlink("rel", "../../target")
        .device("null", tar::EntryType::Char, 1, 3)
        .device("fifo", tar::EntryType::Fifo, 0, 0)
        .file_with_xattrs(
            "x",
            b"x",
            &[
                ("user.test", b"v1"),
                ("security.selinux", b"system_u:object_r:etc_t:s0"),
            ],
        );
    t.raw(
        {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(3);
            h.set_mtime(MTIME);
            h.set_uid(0);
            h.set_gid(0);
            h
        },
        b"caf\xe9",
        None,
        b"iso",
    );
    one_layer(&layout, "t", t, Packing::Plain);
    let bundle = dir.path().join("b");
    unpack_ok(&layout, "t", &bundle);
    let root = bundle.join("rootfs");
    assert_eq!(std::fs::read(root.join(&long)).unwrap(), b"long");
    let a = std::fs::metadata(root.join("alias")).unwrap();
    let b = std::fs::metadata(root.join("target")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(
        std::fs::read_link(root.join("abs")).unwrap(),
        Path::new("/target")
    );
    assert_eq!(
        std::fs::read_link(root.join("rel")).unwrap(),
        Path::new("../../target")
    );
    use std::os::unix::fs::FileTypeExt;
    let null = std::fs::symlink_metadata(root.join("null")).unwrap();
    if rustix::process::geteuid().is_root() {
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    }
    assert!(std::fs::symlink_metadata(root.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let mut buf = [0u8; 64];
    if let Ok(n) = rustix::fs::lgetxattr(root.join("x"), "user.test", &mut buf[..]) {
        assert_eq!(&buf[..n], b"v1");
    }
    assert!(
        rustix::fs::lgetxattr(root.join("x"), "security.selinux", &mut buf[..])
            .map_or(true, |n| &buf[..n] != b"system_u:object_r:etc_t:s0")
    );
    use std::os::unix::ffi::OsStrExt;
    assert_eq!(
        std::fs::read(root.join(std::ffi::OsStr::from_bytes(b"caf\xe9"))).unwrap(),
        b"iso"
    );
}

/// A directory outside every bundle that hostile layers aim at.
struct Canary {
    dir: tempfile::TempDir,
}

impl Canary {
    fn new() -> Canary {
        let dir = tempdir();
        std::fs::write(dir.path().join("passwd"), b"canary").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        Canary { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn assert_untouched(&self, case: &str) {
        let names: Vec<_> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{case}: the canary dir changed: {names:?}");
        assert_eq!(
            std::fs::read(self.path().join("passwd")).unwrap(),
            b"canary",
            "{case}"
        );
        assert_eq!(
            std::fs::read_dir(self.path().join("sub")).unwrap().count(),
            0,
            "{case}"
        );
        let mode = std::fs::metadata(self.path().join("passwd"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o644, "{case}: canary mode changed");
    }
}

#[test]
fn hostile_layers_never_touch_anything_outside_the_bundle() {
    let canary = Canary::new();
    let c = s(canary.path()).to_owned();
    let rel_up = format!("../../../../../../../../..{c}");
    type Case = (&'static str, Vec<Vec<u8>>, bool);
    let mut cases: Vec<Case> = Vec::new();
    let one = |f: &dyn Fn(&mut TarBuilder)| {
        let mut t = TarBuilder::new();
        f(&mut t);
        t.finish()
    };
    // (name, layers, must be refused)
    cases.push((
        "dotdot name",
        vec![one(&|t| {
            t.file(&format!("{rel_up}/passwd"), b"pwned", 0o644);
        })],
        true,
    ));
    // As docker, containerd, umoci and GNU tar read it: under the rootfs (checked after
    // the loop), never at the host path.
    cases.push((
        "absolute name",
        vec![one(&|t| {
            t.file(&format!("{c}/passwd"), b"pwned", 0o644);
        })],
        false,
    ));
    cases.push((
        "symlinked parent, absolute",
        vec![one(&|t| {
            t.symlink("esc", &c)
                .file("esc/passwd", b"pwned", 0o644)
                .file("esc/new", b"pwned", 0o644);
        })],
        false,
    ));
    cases.push((
        "symlinked parent, relative",
        vec![one(&|t| {
            t.symlink("esc", &rel_up)
                .file("esc/passwd", b"pwned", 0o644)
                .dir("esc/sub/d", 0o755);
        })],
        false,
    ));
    cases.push((
        "symlink chain across layers",
        vec![
            one(&|t| {
                t.symlink("a", "b").symlink("b", "c").symlink("c", &rel_up);
            }),
            one(&|t| {
                t.file("a/passwd", b"pwned", 0o644)
                    .file("a/sub/x", b"pwned", 0o644);
            }),
        ],
        false,
    ));
    cases.push((
        "symlink loop",
        vec![one(&|t| {
            t.symlink("l1", "l2")
                .symlink("l2", "l1")
                .file("l1/x", b"x", 0o644);
        })],
        false,
    ));
    cases.push((
        "root replaced by a symlink (CVE-2021-29136)",
        vec![one(&|t| {
            t.symlink(".", &c).file("passwd", b"pwned", 0o644);
        })],
        true,
    ));
    cases.push((
        "root replaced by a symlink, slash form",
        vec![one(&|t| {
            t.symlink("./", &c);
        })],
        true,
    ));
    cases.push((
        "hardlink to outside by dotdot",
        vec![one(&|t| {
            t.hardlink("h", &format!("{rel_up}/passwd"));
        })],
        true,
    ));
    cases.push((
        "hardlink through a symlinked dir",
        vec![one(&|t| {
            t.symlink("esc", &c).hardlink("h", "esc/passwd");
        })],
        true,
    ));
    cases.push((
        "whiteout through a symlink",
        vec![
            one(&|t| {
                t.symlink("esc", &c);
            }),
            one(&|t| {
                t.whiteout("esc", "passwd")
                    .opaque("esc/sub")
                    .whiteout("esc", "sub");
            }),
        ],
        false,
    ));
    cases.push((
        "device named like a host path",
        vec![one(&|t| {
            t.symlink("dev", &c)
                .device("dev/passwd", tar::EntryType::Char, 1, 3);
        })],
        false,
    ));
    cases.push((
        "file over a symlink to outside",
        vec![
            one(&|t| {
                t.symlink("passwd", &format!("{c}/passwd"));
            }),
            one(&|t| {
                t.file("passwd", b"replaced the link, not the target", 0o600);
            }),
        ],
        false,
    ));
    cases.push((
        "chmod through a symlinked dir entry",
        vec![one(&|t| {
            t.symlink("d", &c).dir("d", 0o777).dir("d/sub", 0o777);
        })],
        false,
    ));
    cases.push((
        "bare whiteout",
        vec![one(&|t| {
            t.file(".wh.", b"", 0o644);
        })],
        true,
    ));

    // Every case twice: parents resolved by openat2, and by the userspace walk used where
    // openat2 is missing. Both must keep the canary safe and give the same tree.
    for (name, layers, refused) in cases {
        let dir = tempdir();
        let layout = layout_at(dir.path());
        let packed: Vec<(Vec<u8>, Packing)> =
            layers.into_iter().map(|l| (l, Packing::Plain)).collect();
        write_layered_image(&layout, "t", &packed, serde_json::json!({}));
        let mut trees = Vec::new();
        for resolve in ["kernel", "userspace"] {
            let what = format!("{name} ({resolve})");
            let bundle = dir.path().join(format!("bundle-{resolve}"));
            let args = [
                "unpack",
                "-v",
                &format!("{}:t", s(layout.root())),
                s(&bundle),
            ];
            let r = run_with_env(&args, &[("STRATA_RESOLVE", resolve)]);
            if r.code == 0 {
                let mode = if resolve == "kernel" {
                    "openat2"
                } else {
                    resolve
                };
                assert!(
                    r.stderr.contains(&format!("resolved by {mode}")),
                    "{what}: {}",
                    r.stderr
                );
            }
            canary.assert_untouched(&what);
            if refused {
                assert_eq!(
                    r.code, 1,
                    "{what}: expected a refusal, got:\n{}{}",
                    r.stdout, r.stderr
                );
                assert!(
                    r.stderr.contains("layer sha256:") && r.stderr.contains("entry"),
                    "{what}: {}",
                    r.stderr
                );
                assert!(
                    !bundle.exists(),
                    "{what}: a failed unpack left the bundle behind"
                );
            } else {
                assert!(r.code == 0 || r.code == 1, "{what}: {}", r.stderr);
                assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
            }
            let rootfs = bundle.join("rootfs");
            if name == "absolute name" {
                assert_eq!(r.code, 0, "{what}: {}", r.stderr);
                let inside = rootfs.join(c.trim_start_matches('/')).join("passwd");
                assert_eq!(std::fs::read(&inside).unwrap(), b"pwned", "{what}");
            }
            trees.push((r.code, rootfs.exists().then(|| scan(&rootfs))));
        }
        assert_eq!(
            trees[0], trees[1],
            "{name}: openat2 and the userspace walk disagree"
        );
    }
}

fn corrupt_case(mutate: impl FnOnce(&strata::Layout, &Image), needle: &str) {
    let dir = tempdir();
    let layout = layout_at(dir.path());
    let mut t = TarBuilder::new();
    t.file("a", &vec![b'a'; 100_000], 0o644)
        .file("b", b"b", 0o644);
    let image = one_layer(&layout, "t", t, Packing::Gzip);
    mutate(&layout, &image);
    let bundle = dir.path().join("bundle");
    let err = fails(
        &["unpack", &format!("{}:t", s(layout.root())), s(&bundle)],
        1,
    );
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(
        !bundle.exists(),
        "a failed unpack left {} behind",
        bundle.display()
    );
}

/// Rewrites the manifest (and index.json) after `edit` changed its JSON.
fn rewrite_manifest(
    layout: &strata::Layout,
    image: &Image,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    let digest = image.manifest.digest().unwrap();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.blob_path(&digest)).unwrap()).unwrap();
    edit(&mut m);
    let bytes = serde_json::to_vec(&m).unwrap();
    let blob = layout.put_blob(&bytes).unwrap();
    let path = layout.root().join("index.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace(&image.manifest.digest, &blob.digest.to_string())
        .replace(
            &format!("\"size\":{}", image.manifest.size),
            &format!("\"size\":{}", blob.size),
        );
    write(&path, text.as_bytes());
}

/// Stores `bytes` and points the manifest's descriptor at `pointer` (`/config`,
/// `/layers/0`) to them, so that the blob itself verifies.
fn repoint(layout: &strata::Layout, image: &Image, pointer: &str, bytes: &[u8]) {
    let blob = layout.put_blob(bytes).unwrap();
    rewrite_manifest(layout, image, |m| {
        let desc = m.pointer_mut(pointer).expect("a descriptor");
        desc["digest"] = blob.digest.to_string().into();
        desc["size"] = blob.size.into();
    });
}

/// The stored bytes of the image's first layer.
fn first_layer(layout: &strata::Layout, image: &Image) -> Vec<u8> {
    std::fs::read(layout.blob_path(&image.layers[0])).unwrap()
}

#[test]
fn corrupt_layers_fail_and_name_the_layer() {
    // A flipped byte in the blob.
    corrupt_case(
        |layout, image| {
            let mut b = first_layer(layout, image);
            let i = b.len() / 2;
            b[i] ^= 0x40;
            write(&layout.blob_path(&image.layers[0]), &b);
        },
        "sha256:",
    );
    // A wrong diff_id.
    corrupt_case(
        |layout, image| {
            let p = layout.blob_path(&image.config);
            let text = std::fs::read_to_string(&p).unwrap();
            let cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
            let old = cfg["rootfs"]["diff_ids"][0].as_str().unwrap().to_owned();
            let fixed = text.replace(&old, &format!("sha256:{}", "1".repeat(64)));
            repoint(layout, image, "/config", fixed.as_bytes());
        },
        "diff_id",
    );
    // A truncated gzip stream.
    corrupt_case(
        |layout, image| {
            let b = first_layer(layout, image);
            repoint(layout, image, "/layers/0", &b[..b.len() / 2]);
        },
        "layer sha256:",
    );
    // Trailing garbage after the tar's end, inside the compressed stream: the diff_id no
    // longer matches.
    corrupt_case(
        |layout, image| {
            let b = first_layer(layout, image);
            let mut tar = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&b[..]), &mut tar)
                .unwrap();
            tar.extend_from_slice(b"garbage after the end of the archive");
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut enc, &tar).unwrap();
            repoint(layout, image, "/layers/0", &enc.finish().unwrap());
        },
        "diff_id",
    );
    // A descriptor whose size is wrong.
    corrupt_case(
        |layout, image| {
            rewrite_manifest(layout, image, |m| {
                let size = m["layers"][0]["size"].as_u64().unwrap();
                m["layers"][0]["size"] = (size - 1).into();
            });
        },
        "bytes but its descriptor says",
    );
}

#[test]
fn unknown_layer_media_type_is_refused_before_writing() {
    let dir = tempdir();
    let layout = layout_at(dir.path());
    let image = one_layer(&layout, "t", TarBuilder::new(), Packing::Plain);
    rewrite_manifest(&layout, &image, |m| {
        m["layers"][0]["mediaType"] = "application/x-squashfs".into()
    });
    let bundle = dir.path().join("b");
    let err = fails(
        &["unpack", &format!("{}:t", s(layout.root())), s(&bundle)],
        1,
    );
    assert!(err.contains("application/x-squashfs"), "{err}");
    assert!(!bundle.exists());
}

#[test]
fn rootfs_only_and_destination_rules() {
    let dir = tempdir();
    let layout = layout_at(dir.path());
    let mut t = TarBuilder::new();
    t.file("hello", b"hi", 0o644);
    one_layer(&layout, "t", t, Packing::Gzip);
    let r = format!("{}:t", s(layout.root()));
    let target = dir.path().join("rootfs");
    std::fs::create_dir(&target).unwrap();
    ok(&["unpack", &r, s(&target), "--rootfs-only"]);
    assert_eq!(std::fs::read(target.join("hello")).unwrap(), b"hi");
    assert!(!target.join("config.json").exists());
    // Not empty any more: refused, and left as it was.
    let err = fails(&["unpack", &r, s(&target), "--rootfs-only"], 1);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read(target.join("hello")).unwrap(), b"hi");
    // A missing directory is created, as a normal unpack creates its bundle (it was
    // refused before).
    let missing = dir.path().join("missing/rootfs");
    ok(&["unpack", &r, s(&missing), "--rootfs-only"]);
    assert_eq!(std::fs::read(missing.join("hello")).unwrap(), b"hi");
    assert!(!missing.join("config.json").exists());
}

#[test]
fn keep_dirlinks_keeps_a_symlinked_directory() {
    let dir = tempdir();
    let layout = layout_at(dir.path());
    let mut base = TarBuilder::new();
    base.dir("usr", 0o755)
        .dir("usr/lib64", 0o755)
        .symlink("lib64", "usr/lib64");
    let mut upper = TarBuilder::new();
    upper.dir("lib64", 0o755).file("lib64/ld.so", b"elf", 0o755);
    write_layered_image(
        &layout,
        "t",
        &[
            (base.finish(), Packing::Plain),
            (upper.finish(), Packing::Plain),
        ],
        serde_json::json!({}),
    );
    let r = format!("{}:t", s(layout.root()));
    let kept = dir.path().join("kept");
    ok(&["unpack", &r, s(&kept), "--keep-dirlinks"]);
    let root = kept.join("rootfs");
    assert_eq!(
        std::fs::read_link(root.join("lib64")).unwrap(),
        Path::new("usr/lib64")
    );
    assert_eq!(std::fs::read(root.join("usr/lib64/ld.so")).unwrap(), b"elf");
    // Without the flag the directory entry replaces the link, as layer.md says.
    let plain = dir.path().join("plain");
    ok(&["unpack", &r, s(&plain)]);
    let root = plain.join("rootfs");
    assert!(std::fs::symlink_metadata(root.join("lib64"))
        .unwrap()
        .is_dir());
    assert_eq!(std::fs::read(root.join("lib64/ld.so")).unwrap(), b"elf");
    assert!(!root.join("usr/lib64/ld.so").exists());
}

#[test]
fn id_maps_shift_ownership() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: id maps need root to chown");
        return;
    }
    let dir = tempdir();
    let layout = layout_at(dir.path());
    let mut t = TarBuilder::new();
    t.owned_file("root-owned", b"r", 0o644, 0, 0)
        .owned_file("user-owned", b"u", 0o640, 1000, 100);
    one_layer(&layout, "t", t, Packing::Plain);
    let bundle = dir.path().join("b");
    ok(&[
        "unpack",
        &format!("{}:t", s(layout.root())),
        s(&bundle),
        "--uid-map",
        "0:100000:65536",
        "--gid-map",
        "0:200000:65536",
    ]);
    let meta = |p: &str| std::fs::metadata(bundle.join("rootfs").join(p)).unwrap();
    assert_eq!(
        (meta("root-owned").uid(), meta("root-owned").gid()),
        (100000, 200000)
    );
    assert_eq!(
        (meta("user-owned").uid(), meta("user-owned").gid()),
        (101000, 200100)
    );
    assert_eq!(
        std::fs::metadata(bundle.join("rootfs")).unwrap().uid(),
        100000
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["linux"]["uidMappings"][0]["hostID"], 100000);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("strata.json")).unwrap()).unwrap();
    assert_eq!(meta["uidMap"][0]["hostID"], 100000);
    // An id outside the map is an error naming the entry.
    let mut t = TarBuilder::new();
    t.owned_file("far", b"f", 0o644, 70000, 0);
    one_layer(&layout, "far", t, Packing::Plain);
    let err = fails(
        &[
            "unpack",
            &format!("{}:far", s(layout.root())),
            s(&dir.path().join("c")),
            "--uid-map",
            "0:100000:65536",
        ],
        1,
    );
    assert!(err.contains("far") && err.contains("70000"), "{err}");
}

#[test]
fn non_root_needs_rootless_and_rootless_records_ownership() {
    if !rustix::process::geteuid().is_root() || !peer("setpriv") {
        return;
    }
    let dir = tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let layout = layout_at(dir.path());
    let mut t = TarBuilder::new();
    t.owned_file("owned", b"o", 0o644, 1000, 50)
        .device("dev-null", tar::EntryType::Char, 1, 3)
        .file("plain", b"p", 0o4755);
    one_layer(&layout, "t", t, Packing::Gzip);
    let r = format!("{}:t", s(layout.root()));
    let as_nobody = |extra: &[&str], bundle: &Path| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            strata_bin(),
            "unpack",
            &r,
            s(bundle),
        ])
        .args(extra);
        cmd.output().unwrap()
    };
    let bundle = dir.path().join("b");
    let out = as_nobody(&[], &bundle);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--rootless"), "{err}");
    assert!(!bundle.exists());
    let out = as_nobody(&["--rootless"], &bundle);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("device node"));
    let root = bundle.join("rootfs");
    let mut buf = [0u8; 32];
    let n = rustix::fs::lgetxattr(root.join("owned"), "user.rootlesscontainers", &mut buf[..])
        .expect("ownership recorded");
    assert_eq!(&buf[..n], &[0x08, 0xe8, 0x07, 0x10, 0x32]);
    assert!(
        rustix::fs::lgetxattr(root.join("plain"), "user.rootlesscontainers", &mut buf[..]).is_err()
    );
    let dev = std::fs::symlink_metadata(root.join("dev-null")).unwrap();
    // The placeholder keeps the node's mode (0600 in TarBuilder::device), as umoci's does.
    assert!(dev.is_file() && dev.len() == 0 && dev.mode() & 0o7777 == 0o600);
    assert_eq!(
        std::fs::metadata(root.join("plain")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(std::fs::metadata(root.join("owned")).unwrap().uid(), 65534);
}

#[test]
fn config_json_reads_right_with_jq() {
    if !peer("jq") {
        return;
    }
    let dir = tempdir();
    let layout = layout_at(dir.path());
    let mut t = TarBuilder::new();
    t.dir("etc", 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
            0o644,
        )
        .file(
            "etc/group",
            b"root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
            0o644,
        );
    let config = serde_json::json!({"config": {
        "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"], "User": "app",
        "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv",
        "Volumes": {"/data": {}}, "Labels": {"org.opencontainers.image.os": "labelled", "x": "y"},
        "StopSignal": "SIGINT"
    }});
    write_layered_image(&layout, "t", &[(t.finish(), Packing::Gzip)], config);
    let bundle = dir.path().join("b");
    unpack_ok(&layout, "t", &bundle);
    let config = bundle.join("config.json");
    for filter in [
        r#".process.args == ["/bin/sh","-c","echo hi"]"#,
        r#".process.user.uid == 1000 and .process.user.gid == 1000 and .process.user.additionalGids == [2000]"#,
        r#".process.cwd == "/srv""#,
        r#"(.process.env | index("A=1")) != null and (.process.env | map(select(startswith("HOME="))) == ["HOME=/home/app"])"#,
        r#"[.mounts[] | select(.destination == "/data") | .type] == ["tmpfs"]"#,
        r#".annotations["org.opencontainers.image.os"] == "labelled" and .annotations.x == "y" and .annotations["org.opencontainers.image.stopSignal"] == "SIGINT""#,
        r#".root.path == "rootfs""#,
    ] {
        let out = std::process::Command::new("jq")
            .args(["-e", filter])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "jq -e '{filter}' failed on {}: {}",
            config.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn mangled_layers_never_panic_nor_write_outside_the_bundle() {
    // Layers full of every entry kind, mangled a few hundred ways before the image is written
    // (so the diff_ids match and every mangled entry is really applied): each unpack exits 0
    // or 1, never panics, and touches nothing but its bundle.
    let canary = Canary::new();
    let c = s(canary.path()).to_owned();
    let mut one = TarBuilder::new();
    one.dir("etc", 0o755)
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
        .symlink("abs", &c)
        .symlink("rel", "../../../../../../..")
        .symlink("inside", "etc")
        .hardlink("etc/again", "etc/passwd")
        .file_with_xattrs("x", b"x", &[("user.a", b"1")])
        .device("dev-null", tar::EntryType::Char, 1, 3)
        .file(
            &format!("{}/{}", "d".repeat(120), "e".repeat(120)),
            b"long",
            0o600,
        )
        .dir("locked", 0o000)
        .file("a/b/c", b"deep", 0o644);
    let mut two = TarBuilder::new();
    two.whiteout("etc", "passwd")
        .opaque("a")
        .file("a/new", b"n", 0o644)
        .file("inside/through", b"t", 0o644)
        .file("abs/escape", b"e", 0o644)
        .file("rel/escape", b"e", 0o644)
        .dir("etc", 0o700);
    let originals = [one.finish(), two.finish()];
    let dir = tempdir();
    let layout = layout_at(dir.path());
    let mut state: u64 = 0x1a7e5;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    let (mut applied, mut refused) = (0, 0);
    for round in 0..160 {
        let mut layers = originals.clone();
        let which = next(2);
        let layer = &mut layers[which];
        for _ in 0..1 + next(4) {
            // Mostly header bytes: the first 512 of a block, where names, modes, sizes,
            // types and link names live.
            let block = next(layer.len() / 512);
            let at = block * 512 + if next(4) == 0 { next(512) } else { next(345) };
            layer[at] = match next(3) {
                0 => next(256) as u8,
                1 => b'/',
                _ => b'.',
            };
        }
        let tag = format!("m{round}");
        let packed: Vec<(Vec<u8>, Packing)> =
            layers.into_iter().map(|l| (l, Packing::Plain)).collect();
        write_layered_image(&layout, &tag, &packed, serde_json::json!({}));
        let bundle = dir.path().join(format!("b{round}"));
        let r = run(&[
            "unpack",
            "--rootless",
            &format!("{}:{tag}", s(layout.root())),
            s(&bundle),
        ]);
        let what = format!("round {round} (layer {which})");
        assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
        match r.code {
            0 => applied += 1,
            1 => {
                refused += 1;
                assert!(!bundle.exists(), "{what}: a failed unpack left its bundle");
            }
            code => panic!("{what}: exit {code}: {}", r.stderr),
        }
        canary.assert_untouched(&what);
        if bundle.exists() {
            // Removable whatever modes the layer set (rootless keeps them as they were).
            let _ = std::process::Command::new("chmod")
                .args(["-R", "u+rwx", s(&bundle)])
                .status();
            std::fs::remove_dir_all(&bundle).unwrap();
        }
        let beside: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            beside.len(),
            1,
            "{what}: something appeared beside the layout: {beside:?}"
        );
    }
    eprintln!("{applied} mangled images unpacked, {refused} refused");
    assert!(
        applied >= 10 && refused >= 20,
        "{applied} applied, {refused} refused"
    );
}

#[test]
fn a_directory_over_a_directory_sheds_even_a_long_list_of_lower_xattrs() {
    // More xattr names than fit in 4 KiB (tmpfs holds them; ext4 without ea_inode cannot).
    let names: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("user.attribute-name-number-{i:03}"), b"v".to_vec()))
        .collect();
    let mut lower = TarBuilder::new();
    lower.dir_with_xattrs("d", 0o755, &names);
    let mut upper = TarBuilder::new();
    upper.dir("d", 0o700);
    let dir = tempfile::Builder::new()
        .prefix("strata-test-")
        .tempdir_in("/dev/shm")
        .expect("a temp dir on tmpfs");
    let layout = layout_at(dir.path());
    write_layered_image(
        &layout,
        "t",
        &[
            (lower.finish(), Packing::Plain),
            (upper.finish(), Packing::Plain),
        ],
        serde_json::json!({}),
    );
    let bundle = dir.path().join("bundle");
    unpack_ok(&layout, "t", &bundle);
    let d = bundle.join("rootfs/d");
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(&d, &mut buf[..]).expect("listing xattrs");
    let left: Vec<String> = buf[..n]
        .split(|b| *b == 0)
        .filter(|n| n.starts_with(b"user.attribute"))
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(
        left.is_empty(),
        "{} lower xattrs survived, e.g. {:?}",
        left.len(),
        left.first()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&d).unwrap().permissions().mode() & 0o7777,
        0o700
    );
}
