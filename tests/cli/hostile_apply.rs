//! Hostile layers against layer application: names that are not plain paths, ids the kernel
//! reads as "unchanged", PAX records with binary values, whiteouts among same-layer
//! entries, and `insert --whiteout` writing only what unpack accepts. Whatever is refused
//! leaves everything beside the bundle (or the `--rootfs-only` target) byte for byte as it
//! was.

use std::path::{Path, PathBuf};

use crate::util::*;

/// A header as the test layers use (GNU, root-owned, fixed mtime).
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

/// A lower layer with something to lose everywhere.
fn base_layer() -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.dir("a", 0o755)
        .file("a/keep", b"a/keep", 0o644)
        .dir("a/sub", 0o755)
        .file("a/sub/deep", b"deep", 0o644)
        .file("top", b"top", 0o644);
    t.finish()
}

/// The place a test unpacks into: canaries beside the bundle and a layout elsewhere.
struct Scene {
    _dir: tempfile::TempDir,
    layout: strata::Layout,
    /// The bundle's (or target's) parent, holding canaries: compared byte for byte.
    work: PathBuf,
}

impl Scene {
    fn new(layers: Vec<Vec<u8>>) -> Scene {
        let dir = tempdir();
        let layout = strata::Layout::init(dir.path().join("lay")).expect("init");
        let layers: Vec<(Vec<u8>, Packing)> =
            layers.into_iter().map(|l| (l, Packing::Plain)).collect();
        write_layered_image(&layout, "t", &layers, serde_json::json!({}));
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("sibling/inner")).unwrap();
        write(&work.join("canary"), b"canary");
        write(&work.join("sibling/inner/canary"), b"deep canary");
        Scene {
            _dir: dir,
            layout,
            work,
        }
    }

    fn reference(&self) -> String {
        format!("{}:t", s(self.layout.root()))
    }

    /// Args to unpack into `work/dest`, normally or `--rootfs-only` (the target made
    /// empty first), rootless or not; and the rootfs.
    fn unpack_args(&self, rootfs_only: bool, rootless: bool) -> (Vec<String>, PathBuf) {
        let dest = self.work.join("dest");
        let mut args = vec!["unpack".to_owned(), self.reference(), s(&dest).to_owned()];
        let rootfs = if rootfs_only {
            std::fs::create_dir(&dest).unwrap();
            args.push("--rootfs-only".into());
            dest
        } else {
            dest.join("rootfs")
        };
        if rootless {
            args.push("--rootless".into());
        }
        (args, rootfs)
    }

    /// Unpacks in both modes and expects a refusal naming `needle` and the layer each time,
    /// with the surroundings byte for byte as they were (the `--rootfs-only` target empty).
    fn refused(&self, needle: &str) {
        for rootfs_only in [false, true] {
            let (args, _) = self.unpack_args(rootfs_only, false);
            let before = snapshot(&self.work);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let err = fails(&args, 1);
            assert!(err.contains(needle), "rootfs_only={rootfs_only}: {err}");
            assert!(err.contains("layer sha256:"), "names the layer: {err}");
            assert_eq!(snapshot(&self.work), before, "rootfs_only={rootfs_only}");
            if rootfs_only {
                std::fs::remove_dir(self.work.join("dest")).unwrap();
            }
        }
    }

    /// Unpacks (normally, as root) and returns the rootfs.
    fn unpacked(&self) -> PathBuf {
        let (args, rootfs) = self.unpack_args(false, false);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&args);
        rootfs
    }
}

/// A layer whose only entry is an empty file called `name` (raw bytes).
fn lone_file(name: &[u8]) -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.raw(header(tar::EntryType::Regular, 0o644, 0), name, None, b"");
    t.finish()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// ---- 1. names that are not plain paths ----

#[test]
fn whiteout_of_dot_dot_is_refused_and_touches_nothing() {
    for name in [&b".wh..."[..], b"a/.wh...", b"./.wh...", b"a/sub/.wh..."] {
        let scene = Scene::new(vec![base_layer(), lone_file(name)]);
        scene.refused(&format!("{:?}", String::from_utf8_lossy(name)));
    }
}

#[test]
fn whiteout_of_dot_and_empty_whiteouts_are_refused() {
    for name in [&b".wh.."[..], b"a/.wh..", b".wh.", b"a/.wh."] {
        let scene = Scene::new(vec![base_layer(), lone_file(name)]);
        scene.refused(&format!("{:?}", String::from_utf8_lossy(name)));
    }
}

#[test]
fn unknown_opaque_variants_are_refused() {
    for name in [
        &b".wh..wh.."[..],
        b"a/.wh..wh..opqx",
        b"a/.wh..wh..wh..opq",
        b"a/.wh..wh.",
    ] {
        let scene = Scene::new(vec![base_layer(), lone_file(name)]);
        scene.refused("whiteout");
    }
}

#[test]
fn names_with_dot_dot_empty_or_dot_components_are_refused() {
    for name in [
        &b"a/../b"[..],
        b"a/../../canary",
        b"./../canary",
        b"a//b",
        b"a/./b",
        b"/../evil",
        b"..",
        b".wh.x/y",
    ] {
        let scene = Scene::new(vec![base_layer(), lone_file(name)]);
        scene.refused(&format!("{:?}", String::from_utf8_lossy(name)));
    }
}

#[test]
fn hardlink_targets_with_dot_dot_are_refused() {
    for target in ["../canary", "a/../../canary", "a/../top", "./a//keep"] {
        let mut t = TarBuilder::new();
        t.hardlink("h", target);
        let scene = Scene::new(vec![base_layer(), t.finish()]);
        scene.refused("\"h\"");
    }
}

#[test]
fn a_bad_entry_after_good_ones_still_leaves_everything_as_it_was() {
    let mut t = TarBuilder::new();
    t.file("new", b"new", 0o644).whiteout("a", "keep").raw(
        header(tar::EntryType::Regular, 0o644, 0),
        b".wh...",
        None,
        b"",
    );
    let scene = Scene::new(vec![base_layer(), t.finish()]);
    scene.refused("\".wh...\"");
}

#[test]
fn a_refused_unpack_gives_an_existing_target_back_its_owner_mode_and_times() {
    use std::os::unix::fs::MetadataExt;
    // The first layer takes the root over (owner, mode); the second is refused.
    let mut root = TarBuilder::new();
    let mut h = header(tar::EntryType::Directory, 0o700, 0);
    h.set_uid(1000);
    h.set_gid(1000);
    root.raw(h, b"./", None, b"").file("f", b"f", 0o644);
    let scene = Scene::new(vec![root.finish(), lone_file(b".wh...")]);
    for rootfs_only in [true, false] {
        let dest = scene.work.join("dest");
        std::fs::create_dir(&dest).unwrap();
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o751))
            .unwrap();
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 1_600_000_000,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 1_600_000_001,
                tv_nsec: 0,
            },
        };
        rustix::fs::utimensat(rustix::fs::CWD, &dest, &times, rustix::fs::AtFlags::empty())
            .unwrap();
        let before = std::fs::metadata(&dest).unwrap();
        let reference = scene.reference();
        let mut args = vec!["unpack", &reference, s(&dest)];
        if rootfs_only {
            args.push("--rootfs-only");
        }
        fails(&args, 1);
        let after = std::fs::metadata(&dest).unwrap();
        let what = format!("rootfs_only={rootfs_only}");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0, "{what}");
        assert_eq!(
            (after.uid(), after.gid(), after.mode(), after.mtime()),
            (before.uid(), before.gid(), before.mode(), before.mtime()),
            "{what}"
        );
        std::fs::remove_dir(&dest).unwrap();
    }
}

#[test]
fn a_refused_unpack_takes_the_xattrs_a_root_entry_gave_a_target_back() {
    let mut root = TarBuilder::new();
    root.dir_with_xattrs("./", 0o755, &[("user.image".into(), b"set".to_vec())])
        .file("f", b"f", 0o644);
    let scene = Scene::new(vec![root.finish(), lone_file(b".wh...")]);
    let dest = scene.work.join("dest");
    std::fs::create_dir(&dest).unwrap();
    rustix::fs::lsetxattr(&dest, "user.mine", b"kept", rustix::fs::XattrFlags::empty()).unwrap();
    let reference = scene.reference();
    fails(&["unpack", &reference, s(&dest), "--rootfs-only"], 1);
    assert_eq!(xattr(&dest, "user.mine"), b"kept");
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(&dest, &mut names[..]).unwrap();
    assert_eq!(&names[..n], b"user.mine\0");
}

#[test]
fn real_world_spellings_still_unpack() {
    // What docker, buildkit, GNU tar and bsdtar write: `./` prefixes, trailing slashes,
    // the root as `./` or `/`, whiteouts and opaque whiteouts with and without `./`.
    let mut lower = TarBuilder::new();
    lower
        .dir("./", 0o755)
        .dir("./a/", 0o755)
        .file("./a/b", b"b", 0o644)
        .file("./a/c", b"c", 0o644)
        .file("x", b"x", 0o644)
        .dir("d", 0o755)
        .file("d/lower", b"lower", 0o644)
        .file("..dots", b"dots", 0o644);
    let mut upper = TarBuilder::new();
    upper
        .dir("/", 0o755)
        .file("./a/.wh.b", b"", 0o644)
        .file("./.wh.x", b"", 0o644)
        .dir("./d/", 0o755)
        .file("./d/.wh..wh..opq", b"", 0o644)
        .file("./d/upper", b"upper", 0o644)
        .hardlink("./a/c2", "./a/c")
        .file(".wh...dots", b"", 0o644);
    let scene = Scene::new(vec![lower.finish(), upper.finish()]);
    let rootfs = scene.unpacked();
    assert_eq!(names(&rootfs), ["a", "d"]);
    assert_eq!(names(&rootfs.join("a")), ["c", "c2"]);
    assert_eq!(names(&rootfs.join("d")), ["upper"]);
}

// ---- 2. ids the kernel reads as "unchanged" ----

#[test]
fn ids_that_mean_unchanged_are_refused() {
    for (uid, gid) in [(4294967295u64, 0u64), (0, 4294967295)] {
        let mut t = TarBuilder::new();
        t.owned_file("suid", b"#!/bin/sh\n", 0o4755, uid, gid);
        let scene = Scene::new(vec![base_layer(), t.finish()]);
        scene.refused("4294967295");
        // Rootless: the ownership record would read "leave alone" too.
        let before = snapshot(&scene.work);
        let (args, _) = scene.unpack_args(false, true);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&args, 1);
        assert!(err.contains("4294967295"), "{err}");
        assert_eq!(snapshot(&scene.work), before);
    }
}

#[test]
fn id_maps_that_reach_the_unchanged_id_are_refused() {
    let scene = Scene::new(vec![base_layer()]);
    for (flag, map) in [
        ("--uid-map", "0:4294967295:1"),
        ("--gid-map", "0:4294967295:1"),
        ("--uid-map", "0:4294967200:96"),
        ("--uid-map", "4294967295:0:1"),
        ("--gid-map", "4294967200:0:96"),
    ] {
        let before = snapshot(&scene.work);
        let dest = scene.work.join("dest");
        let err = fails(&["unpack", &scene.reference(), s(&dest), flag, map], 2);
        assert!(err.contains("4294967295"), "{flag} {map}: {err}");
        assert_eq!(snapshot(&scene.work), before);
    }
    // The largest map that stays clear of it is fine.
    let dest = scene.work.join("dest");
    ok(&[
        "unpack",
        &scene.reference(),
        s(&dest),
        "--uid-map",
        "0:4294901759:65536",
        "--gid-map",
        "0:4294901759:65536",
    ]);
}

// ---- 3. PAX records with binary values ----

/// A file whose entry is preceded by the given raw PAX extension data.
fn with_pax(t: &mut TarBuilder, name: &str, data: &[u8], pax: &[u8]) {
    t.raw(
        header(tar::EntryType::XHeader, 0o644, pax.len() as u64),
        b"PaxHeader",
        None,
        pax,
    );
    t.raw(
        header(tar::EntryType::Regular, 0o644, data.len() as u64),
        name.as_bytes(),
        None,
        data,
    );
}

/// One PAX record, its length prefix counting itself.
fn record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = 1 + key.len() + 1 + value.len() + 1;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

fn xattr(path: &Path, name: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..])
        .unwrap_or_else(|e| panic!("{}: {name}: {e}", path.display()));
    buf.truncate(n);
    buf
}

#[test]
fn xattr_values_of_every_byte_survive() {
    let every: Vec<u8> = (0..=255u8).collect();
    let newline_first = b"\n12 path=evil\n".to_vec();
    let mut t = TarBuilder::new();
    t.file_with_xattrs(
        "every",
        b"data",
        &[("user.every", &every[..]), ("user.nl", &newline_first[..])],
    );
    // A record whose value looks like more records: one value, not a `path` override.
    let mut pax = record("SCHILY.xattr.user.tricky", b"x\n13 path=evil\n");
    pax.extend(record("mtime", b"1700000001.25"));
    with_pax(&mut t, "tricky", b"tricky", &pax);
    let scene = Scene::new(vec![base_layer(), t.finish()]);
    let rootfs = scene.unpacked();
    assert_eq!(xattr(&rootfs.join("every"), "user.every"), every);
    assert_eq!(xattr(&rootfs.join("every"), "user.nl"), newline_first);
    assert_eq!(
        xattr(&rootfs.join("tricky"), "user.tricky"),
        b"x\n13 path=evil\n"
    );
    assert_eq!(std::fs::read(rootfs.join("tricky")).unwrap(), b"tricky");
    assert!(!rootfs.join("evil").exists());
}

/// A layer whose file `big` has its size only in a PAX record that follows a value holding
/// newlines (a parser that splits at newlines misses it and reads the data as headers),
/// then a file `after`; and `big`'s data.
fn size_after_binary_record() -> (Vec<u8>, Vec<u8>) {
    let data = vec![b'z'; 1500];
    let mut pax = record("SCHILY.xattr.user.acl", b"\x02\0\0\0\n\0\n");
    pax.extend(record("size", data.len().to_string().as_bytes()));
    let mut t = TarBuilder::new();
    t.raw(
        header(tar::EntryType::XHeader, 0o644, pax.len() as u64),
        b"PaxHeader",
        None,
        &pax,
    );
    // The header says 0 bytes, as Go's archive/tar writes when only PAX can hold the size.
    let mut h = header(tar::EntryType::Regular, 0o644, 0);
    h.as_old_mut().name[..3].copy_from_slice(b"big");
    h.set_cksum();
    let mut raw = t.finish();
    raw.truncate(raw.len() - 1024);
    raw.extend_from_slice(h.as_bytes());
    raw.extend_from_slice(&data);
    raw.resize(raw.len().div_ceil(512) * 512, 0);
    let mut after = TarBuilder::new();
    after.file("after", b"after", 0o644);
    raw.extend(after.finish());
    (raw, data)
}

#[test]
fn a_posix_acl_for_uid_10_survives() {
    // uid 10 is a newline byte in the ACL's binary form.
    let mut acl = vec![2, 0, 0, 0];
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 10),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        acl.extend(tag.to_le_bytes());
        acl.extend(perm.to_le_bytes());
        acl.extend(id.to_le_bytes());
    }
    let mut t = TarBuilder::new();
    t.file_with_xattrs("acl", b"acl", &[("system.posix_acl_access", &acl[..])]);
    let scene = Scene::new(vec![t.finish()]);
    let rootfs = scene.unpacked();
    assert_eq!(xattr(&rootfs.join("acl"), "system.posix_acl_access"), acl);
}

#[test]
fn a_binary_record_before_the_size_record_keeps_the_stream_in_step() {
    let (raw, data) = size_after_binary_record();
    let scene = Scene::new(vec![raw]);
    let rootfs = scene.unpacked();
    assert_eq!(std::fs::read(rootfs.join("big")).unwrap(), data);
    assert_eq!(std::fs::read(rootfs.join("after")).unwrap(), b"after");
}

#[test]
fn add_layer_reads_binary_pax_records_as_unpack_does() {
    let (raw, data) = size_after_binary_record();
    let scene = Scene::new(vec![base_layer()]);
    let tar_path = scene.work.join("layer.tar");
    write(&tar_path, &raw);
    ok(&["add-layer", &scene.reference(), s(&tar_path)]);
    let rootfs = scene.unpacked();
    assert_eq!(std::fs::read(rootfs.join("big")).unwrap(), data);
    assert_eq!(std::fs::read(rootfs.join("after")).unwrap(), b"after");
}

#[test]
fn malformed_pax_records_are_clear_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"99 path=a\n", "PAX"),
        (b"5 path=a\n", "PAX"),
        (b"x1 path=a\n", "PAX"),
        (b"11 patha12\n", "PAX"),
        (b"10 path=ab", "PAX"),
        (b"0 \n", "PAX"),
        (b"18446744073709551617 a=b\n", "PAX"),
        (b"10 path=a\0", "PAX"),
    ];
    for (pax, needle) in cases {
        let mut t = TarBuilder::new();
        with_pax(&mut t, "f", b"f", pax);
        let scene = Scene::new(vec![base_layer(), t.finish()]);
        scene.refused(needle);
    }
}

// ---- 4. whiteouts among the same layer's entries ----

fn lower_w() -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.dir("w", 0o755)
        .file("w/old", b"old", 0o644)
        .dir("w/d", 0o755)
        .file("w/d/olddeep", b"old", 0o644);
    t.finish()
}

#[test]
fn a_whiteout_after_a_same_layer_child_hides_only_the_lower_content() {
    let mut t = TarBuilder::new();
    t.file("w/new", b"new", 0o644)
        .file("w/d/newdeep", b"new", 0o644)
        .whiteout("", "w");
    let scene = Scene::new(vec![lower_w(), t.finish()]);
    let rootfs = scene.unpacked();
    assert_eq!(names(&rootfs.join("w")), ["d", "new"]);
    assert_eq!(names(&rootfs.join("w/d")), ["newdeep"]);
}

#[test]
fn a_whiteout_after_a_same_layer_directory_hides_only_the_lower_content() {
    let mut t = TarBuilder::new();
    t.dir("w", 0o700)
        .file("w/new", b"new", 0o644)
        .whiteout("", "w");
    let scene = Scene::new(vec![lower_w(), t.finish()]);
    let rootfs = scene.unpacked();
    assert_eq!(names(&rootfs.join("w")), ["new"]);
}

#[test]
fn a_whiteout_before_a_same_layer_child_hides_only_the_lower_content() {
    let mut t = TarBuilder::new();
    t.whiteout("", "w").file("w/new", b"new", 0o644);
    let scene = Scene::new(vec![lower_w(), t.finish()]);
    let rootfs = scene.unpacked();
    assert_eq!(names(&rootfs.join("w")), ["new"]);
}

#[test]
fn an_opaque_whiteout_after_a_same_layer_child_keeps_it() {
    let mut t = TarBuilder::new();
    t.file("w/d/newdeep", b"new", 0o644)
        .file("w/new", b"new", 0o644)
        .opaque("w");
    let scene = Scene::new(vec![lower_w(), t.finish()]);
    let rootfs = scene.unpacked();
    assert_eq!(names(&rootfs.join("w")), ["d", "new"]);
    assert_eq!(names(&rootfs.join("w/d")), ["newdeep"]);
}

#[test]
fn a_whiteout_of_a_file_the_same_layer_wrote_keeps_it() {
    let mut t = TarBuilder::new();
    t.file("w", b"now a file", 0o644).whiteout("", "w");
    let scene = Scene::new(vec![lower_w(), t.finish()]);
    let rootfs = scene.unpacked();
    assert_eq!(std::fs::read(rootfs.join("w")).unwrap(), b"now a file");
}

// ---- 5. insert --whiteout ----

#[test]
fn insert_whiteout_refuses_what_unpack_would_refuse() {
    let scene = Scene::new(vec![base_layer()]);
    let parent = scene.layout.root().parent().unwrap().to_owned();
    for bad in [
        ".wh.x",
        "/a/.wh.x",
        ".wh..opq",
        "/a/.wh..opq",
        "/a/..",
        "/a/../top",
        "/",
        "/a/.",
    ] {
        let before = snapshot(&parent);
        let r = run(&["insert", &scene.reference(), "--whiteout", bad]);
        assert_ne!(r.code, 0, "{bad}: {}", r.stdout);
        assert!(
            r.stderr.contains(bad.trim_start_matches('/')),
            "{bad}: {}",
            r.stderr
        );
        assert_eq!(snapshot(&parent), before, "{bad}");
    }
    // A plain path still works, and unpacks.
    ok(&["insert", &scene.reference(), "--whiteout", "/a/keep"]);
    let rootfs = scene.unpacked();
    assert_eq!(names(&rootfs.join("a")), ["sub"]);
}

// ---- the same image gives the same tree ----

#[test]
fn directories_a_layer_implies_take_its_entry_s_time_not_the_clock() {
    use std::os::unix::fs::MetadataExt;
    let mut lower = TarBuilder::new();
    lower.dir("d", 0o755).file("d/f", b"f", 0o644);
    let mut upper = TarBuilder::new();
    // Neither d/x, d/x/y nor p is listed: they are made on the way.
    upper.file("d/x/y/z", b"z", 0o644).file("p/q", b"q", 0o644);
    let scene = Scene::new(vec![lower.finish(), upper.finish()]);
    let rootfs = scene.unpacked();
    for dir in ["d", "d/x", "d/x/y", "p"] {
        let meta = std::fs::metadata(rootfs.join(dir)).unwrap();
        assert_eq!(meta.mtime(), MTIME as i64, "{dir}");
    }
}

#[test]
fn add_layer_refuses_what_unpack_would_refuse() {
    let layers: Vec<(&str, Vec<u8>)> = vec![
        ("a whiteout of ..", {
            let mut t = TarBuilder::new();
            t.whiteout("", "..");
            t.finish()
        }),
        ("a .. component", {
            let mut t = TarBuilder::new();
            t.file("a/../escape", b"x", 0o644);
            t.finish()
        }),
        ("a hardlink out", {
            let mut t = TarBuilder::new();
            t.hardlink("link", "../../etc/passwd");
            t.finish()
        }),
        ("an unknown whiteout form", {
            let mut t = TarBuilder::new();
            t.whiteout("a", ".wh.x");
            t.finish()
        }),
        ("uid -1", {
            let mut t = TarBuilder::new();
            t.owned_file("suid", b"x", 0o4755, 4_294_967_295, 0);
            t.finish()
        }),
    ];
    for (what, layer) in layers {
        let scene = Scene::new(vec![base_layer()]);
        let tar_path = scene.work.join("layer.tar");
        write(&tar_path, &layer);
        let parent = scene.layout.root().parent().unwrap().to_owned();
        let before = snapshot(&parent);
        let err = fails(&["add-layer", &scene.reference(), s(&tar_path)], 1);
        assert!(
            err.contains("layer.tar"),
            "{what}: the error names no file: {err}"
        );
        assert_eq!(
            snapshot(&parent),
            before,
            "{what}: add-layer changed something"
        );
    }
}

/// util::tar_layer writes ustar headers with the uid and gid fields left blank, as some
/// writers do; Go's archive/tar and GNU tar read blank as 0.
#[test]
fn blank_numeric_id_fields_read_as_zero() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["blank"]);
    let bundle = dir.path().join("b");
    ok(&[
        "unpack",
        "--rootless",
        &format!("{}:blank", s(layout.root())),
        s(&bundle),
    ]);
    assert_eq!(
        std::fs::read(bundle.join("rootfs/files/blank.txt")).unwrap(),
        b"content of blank\n"
    );
}
