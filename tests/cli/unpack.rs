//! strata unpack on layers built by the tests: layer.md semantics, hostile layers and
//! corruption.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::util::*;

fn layout_at(dir: &Path) -> strata::Layout {
    strata::Layout::init(&dir.join("lay")).expect("init")
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
    write_layered_image(
        &layout,
        "t",
        &[(t.finish(), Packing::Plain)],
        serde_json::json!({}),
    );
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
    cases.push((
        "absolute name",
        vec![one(&|t| {
            t.file(&format!("{c}/passwd"), b"pwned", 0o644);
        })],
        true,
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

    for (name, layers, refused) in cases {
        let dir = tempdir();
        let layout = layout_at(dir.path());
        let packed: Vec<(Vec<u8>, Packing)> =
            layers.into_iter().map(|l| (l, Packing::Plain)).collect();
        write_layered_image(&layout, "t", &packed, serde_json::json!({}));
        let bundle = dir.path().join("bundle");
        let r = run(&["unpack", &format!("{}:t", s(layout.root())), s(&bundle)]);
        canary.assert_untouched(name);
        if refused {
            assert_eq!(
                r.code, 1,
                "{name}: expected a refusal, got:\n{}{}",
                r.stdout, r.stderr
            );
            assert!(
                r.stderr.contains("layer sha256:") && r.stderr.contains("entry"),
                "{name}: {}",
                r.stderr
            );
            assert!(
                !bundle.exists(),
                "{name}: a failed unpack left the bundle behind"
            );
        } else {
            assert!(r.code == 0 || r.code == 1, "{name}: {}", r.stderr);
            assert!(!r.stderr.contains("panicked"), "{name}: {}", r.stderr);
        }
    }
}

fn corrupt_case(mutate: impl FnOnce(&strata::Layout, &Image), needle: &str) {
    let dir = tempdir();
    let layout = layout_at(dir.path());
    let mut t = TarBuilder::new();
    t.file("a", &vec![b'a'; 100_000], 0o644)
        .file("b", b"b", 0o644);
    let image = write_layered_image(
        &layout,
        "t",
        &[(t.finish(), Packing::Gzip)],
        serde_json::json!({}),
    );
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

#[test]
fn corrupt_layers_fail_and_name_the_layer() {
    // A flipped byte in the blob.
    corrupt_case(
        |layout, image| {
            let p = layout.blob_path(&image.layers[0]);
            let mut b = std::fs::read(&p).unwrap();
            let i = b.len() / 2;
            b[i] ^= 0x40;
            write(&p, &b);
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
            let blob = layout.put_blob(fixed.as_bytes()).unwrap();
            rewrite_manifest(layout, image, |m| {
                m["config"]["digest"] = blob.digest.to_string().into();
                m["config"]["size"] = blob.size.into();
            });
        },
        "diff_id",
    );
    // A truncated gzip stream (descriptor updated so the blob itself verifies).
    corrupt_case(
        |layout, image| {
            let b = std::fs::read(layout.blob_path(&image.layers[0])).unwrap();
            let cut = layout.put_blob(&b[..b.len() / 2]).unwrap();
            rewrite_manifest(layout, image, |m| {
                m["layers"][0]["digest"] = cut.digest.to_string().into();
                m["layers"][0]["size"] = cut.size.into();
            });
        },
        "layer sha256:",
    );
    // Trailing garbage after the tar's end, inside the compressed stream: the diff_id no
    // longer matches.
    corrupt_case(
        |layout, image| {
            let b = std::fs::read(layout.blob_path(&image.layers[0])).unwrap();
            let mut tar = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&b[..]), &mut tar)
                .unwrap();
            tar.extend_from_slice(b"garbage after the end of the archive");
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut enc, &tar).unwrap();
            let blob = layout.put_blob(&enc.finish().unwrap()).unwrap();
            rewrite_manifest(layout, image, |m| {
                m["layers"][0]["digest"] = blob.digest.to_string().into();
                m["layers"][0]["size"] = blob.size.into();
            });
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
    let image = write_layered_image(
        &layout,
        "t",
        &[(TarBuilder::new().finish(), Packing::Plain)],
        serde_json::json!({}),
    );
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
    write_layered_image(
        &layout,
        "t",
        &[(t.finish(), Packing::Gzip)],
        serde_json::json!({}),
    );
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
    let err = fails(
        &[
            "unpack",
            &r,
            s(&dir.path().join("missing")),
            "--rootfs-only",
        ],
        1,
    );
    assert!(err.contains("does not exist"), "{err}");
}
