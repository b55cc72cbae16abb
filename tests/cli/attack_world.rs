//! Hostile inputs for what the world writes: layers with sparse members, ACLs and bsdtar's
//! xattrs, and archives as docker, ctr and BuildKit write them, each bent the way an archive
//! author on the other side of an air gap could bend it. Every refusal must leave the
//! layout as it was; every acceptance must give a layout `fsck` and `gc` agree with.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::build::at;
use crate::util::*;

// ---------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------

/// One tar member: type, name, PAX records, stored data, link target.
struct Member<'a> {
    kind: u8,
    name: &'a str,
    pax: Vec<(&'a str, Vec<u8>)>,
    data: Vec<u8>,
    link: &'a str,
}

fn member<'a>(kind: u8, name: &'a str, pax: Vec<(&'a str, Vec<u8>)>, data: &[u8]) -> Member<'a> {
    Member {
        kind,
        name,
        pax,
        data: data.to_vec(),
        link: "",
    }
}

fn tar_of(members: &[Member<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        if !m.pax.is_empty() {
            b.append_pax_extensions(m.pax.iter().map(|(k, v)| (*k, &v[..])))
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::new(m.kind));
        h.set_path(m.name).unwrap();
        if !m.link.is_empty() {
            h.set_link_name(m.link).unwrap();
        }
        h.set_mode(if m.kind == b'5' { 0o755 } else { 0o644 });
        h.set_mtime(1_600_000_000);
        h.set_size(m.data.len() as u64);
        h.set_cksum();
        b.append(&h, &m.data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// A one-layer image of `tar` in a fresh layout; returns the temp dir and the layout.
fn layer_image(tar: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempdir();
    let layout = strata::Layout::init(dir.path().join("l")).unwrap();
    write_layered_image(&layout, "t", &[(tar.to_vec(), Packing::Gzip)], json!({}));
    let root = layout.root().to_owned();
    (dir, root)
}

/// Unpacks `tar` as a one-layer image into `<dir>/b`.
fn unpack(tar: &[u8]) -> (tempfile::TempDir, Run) {
    let (dir, layout) = layer_image(tar);
    let bundle = dir.path().join("b");
    let run = run(&["unpack", &at(&layout, "t"), s(&bundle)]);
    (dir, run)
}

/// Unpacks `tar` and add-layers it: both must refuse it, naming `named`.
fn refused(tar: &[u8], named: &str) {
    let (dir, run) = unpack(tar);
    assert_eq!(run.code, 1, "unpack accepted it: {}", run.stderr);
    assert!(run.stderr.contains(named), "{named}: {}", run.stderr);
    assert!(
        !dir.path().join("b").exists(),
        "a failed unpack leaves nothing"
    );
    let tar_path = dir.path().join("layer.tar");
    std::fs::write(&tar_path, tar).unwrap();
    let add = crate::util::run(&["add-layer", &at(&dir.path().join("l"), "t"), s(&tar_path)]);
    assert_eq!(add.code, 1, "add-layer accepted it: {}", add.stdout);
    assert!(
        add.stderr.contains(named),
        "add-layer: {named}: {}",
        add.stderr
    );
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 1 << 16];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

fn acl(text: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![("SCHILY.acl.access", text.as_bytes().to_vec())]
}

/// A text ACL listing two hundred thousand users is read in time proportional to its length
/// (it used to check each entry against every one before it: minutes of CPU from a 2.7 MB
/// PAX record) and refused, as no filesystem holds an ACL of more entries than a 64 KiB
/// xattr value has room for.
#[test]
fn an_acl_of_two_hundred_thousand_entries_is_refused_at_once() {
    let mut text = String::from("user::rw-,group::r--,mask::rwx,other::r--");
    for id in 1..200_000 {
        text.push_str(&format!(",u:{id}:r"));
    }
    let tar = tar_of(&[member(b'0', "f", acl(&text), b"")]);
    let started = Instant::now();
    refused(&tar, "SCHILY.acl.access");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn malformed_acl_text_is_refused_by_name() {
    for text in [
        "user::rwX,group::r--,other::r--",
        "user::rwxr,group::r--,other::r--",
        "user::rw-,group::r--,other::r--,bogus::r--",
        "user::rw-,group::r--,other::r--,mask:7:rwx",
        "user::rw-,group::r--,other::r--,mask::rwx,u:99999999999:r",
        "user::rw-,group::r--,other::r--,mask::rwx,u:4294967295:r",
        "user::rw-,group::r--,other::r--,mask::rwx,user:nobody:r--:4294967295",
        "user::rw-,group::r--,other::r--,mask::rwx,g:-1:r",
        "user::rw-,group::r--,other::r--,mask::rwx,u:1:r,u:1:w",
        "user::rw-,group::r--,other::r--,u:1:r",
    ] {
        let tar = tar_of(&[member(b'0', "f", acl(text), b"")]);
        refused(&tar, "SCHILY.acl.access");
    }
}

/// The kernel's binary ACL: version 2, then (tag u16, perm u16, id u32) entries.
fn binary_acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend(tag.to_le_bytes());
        out.extend(perm.to_le_bytes());
        out.extend(id.to_le_bytes());
    }
    out
}

#[test]
fn binary_acls_with_a_bad_version_size_or_id_are_refused() {
    let good = binary_acl(&[(1, 6, u32::MAX), (4, 4, u32::MAX), (0x20, 4, u32::MAX)]);
    let mut bad_version = good.clone();
    bad_version[0] = 1;
    let mut bad_size = good.clone();
    bad_size.push(0);
    let nobody = binary_acl(&[
        (1, 6, u32::MAX),
        (2, 4, u32::MAX),
        (4, 4, u32::MAX),
        (0x10, 7, u32::MAX),
        (0x20, 4, u32::MAX),
    ]);
    for value in [bad_version, bad_size, good[..3].to_vec(), nobody] {
        let tar = tar_of(&[member(
            b'0',
            "f",
            vec![("SCHILY.xattr.system.posix_acl_access", value)],
            b"",
        )]);
        let (_dir, run) = unpack(&tar);
        assert_eq!(run.code, 1, "accepted: {}", run.stderr);
        assert!(run.stderr.contains("posix_acl_access"), "{}", run.stderr);
    }
}

/// A default ACL belongs to directories only: on a file the kernel refuses it with EACCES,
/// which must not read as a permission problem of the unpacking user.
#[test]
fn a_default_acl_on_a_file_is_refused_by_name() {
    let tar = tar_of(&[member(
        b'0',
        "f",
        vec![(
            "SCHILY.acl.default",
            b"user::rw-,group::r--,other::r--".to_vec(),
        )],
        b"x",
    )]);
    refused(&tar, "SCHILY.acl.default");
}

/// The allow-list is applied to the decoded name: URL escapes do not smuggle overlayfs's
/// or SELinux's attributes in; names with a NUL and values that are not base64 are refused.
#[test]
fn libarchive_xattr_names_are_filtered_after_decoding() {
    let tar = tar_of(&[member(
        b'0',
        "f",
        vec![
            ("LIBARCHIVE.xattr.trusted.overlay.opaque", b"eQ".to_vec()),
            (
                "LIBARCHIVE.xattr.trusted%2eoverlay%2eredirect",
                b"eQ".to_vec(),
            ),
            ("LIBARCHIVE.xattr.%73ecurity.selinux", b"eQ".to_vec()),
            ("LIBARCHIVE.xattr.user.overlay%2Eorigin", b"eQ".to_vec()),
            ("LIBARCHIVE.xattr.user.rootlesscontainers", b"eQ".to_vec()),
            ("LIBARCHIVE.xattr.user.a%2Fb", b"eQ".to_vec()),
        ],
        b"x",
    )]);
    let (dir, run) = unpack(&tar);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let f = dir.path().join("b/rootfs/f");
    for name in [
        "trusted.overlay.opaque",
        "trusted.overlay.redirect",
        "security.selinux",
        "user.overlay.origin",
        "user.rootlesscontainers",
    ] {
        assert_eq!(xattr(&f, name), None, "{name} was set");
    }
    assert_eq!(xattr(&f, "user.a/b").as_deref(), Some(&b"y"[..]));
    for (key, value) in [
        ("LIBARCHIVE.xattr.user.a%00b", &b"eQ"[..]),
        ("LIBARCHIVE.xattr.user.a%0", b"eQ"),
        ("LIBARCHIVE.xattr.user.a", b"e!Q"),
        ("LIBARCHIVE.xattr.%", b"eQ"),
    ] {
        let tar = tar_of(&[member(b'0', "f", vec![(key, value.to_vec())], b"")]);
        refused(&tar, key);
    }
}

// ---------------------------------------------------------------------------------------
// Sparse members
// ---------------------------------------------------------------------------------------

/// A PAX 0.1 sparse member named `name` (its real name in GNU.sparse.name).
fn sparse<'a>(name: &'a str, real: u64, map: &str, data: &[u8]) -> Member<'a> {
    member(
        b'0',
        "GNUSparseFile.0/x",
        vec![
            ("GNU.sparse.size", real.to_string().into_bytes()),
            ("GNU.sparse.map", map.as_bytes().to_vec()),
            ("GNU.sparse.name", name.as_bytes().to_vec()),
        ],
        data,
    )
}

#[test]
fn sparse_maps_that_do_not_describe_a_file_are_refused() {
    for (real, map, data) in [
        (20u64, "10,2,0,2", &b"abcd"[..]),
        (20, "0,4,2,2", b"abcdef"),
        (20, "18,4", b"abcd"),
        (2, "0,4", b"abcd"),
        (20, "0,3", b"abcd"),
        (u64::MAX, "18446744073709551615,1", b"a"),
        (20, "0,99999999999999999999999", b"a"),
    ] {
        let tar = tar_of(&[sparse("f", real, map, data)]);
        refused(&tar, "sparse");
    }
}

#[test]
fn sparse_names_go_through_name_validation() {
    for name in ["../escape", "/../escape", "a/../../escape"] {
        let tar = tar_of(&[sparse(name, 8, "0,1", b"a")]);
        let (dir, run) = unpack(&tar);
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        assert!(!dir.path().join("escape").exists());
    }
    // A leading slash is read under the root, as docker, containerd, umoci and GNU tar do.
    let tar = tar_of(&[sparse("/abs/escape", 8, "0,1", b"a")]);
    let (dir, run) = unpack(&tar);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let inside = dir.path().join("b/rootfs/abs/escape");
    assert_eq!(std::fs::read(inside).unwrap(), b"a\0\0\0\0\0\0\0");
    assert!(!Path::new("/abs/escape").exists());
}

/// A hardlink to a sparse file is the same inode; a sparse member in a whiteout's place
/// is a whiteout, its data read past.
#[test]
fn sparse_files_hardlinked_and_as_whiteouts() {
    let base = tar_of(&[
        member(b'5', "d", vec![], b""),
        member(b'0', "d/gone", vec![], b"lower"),
    ]);
    let mut link = member(b'1', "d/link", vec![], b"");
    link.link = "d/s";
    let top = tar_of(&[
        sparse("d/s", 1 << 20, "0,2,1048570,3", b"abxyz"),
        link,
        sparse("d/.wh.gone", 4096, "0,1", b"q"),
        member(b'0', "d/after", vec![], b"after"),
    ]);
    let dir = tempdir();
    let layout = strata::Layout::init(dir.path().join("l")).unwrap();
    write_layered_image(
        &layout,
        "t",
        &[(base, Packing::Plain), (top, Packing::Gzip)],
        json!({}),
    );
    let bundle = dir.path().join("b");
    ok(&["unpack", &at(layout.root(), "t"), s(&bundle)]);
    let rootfs = bundle.join("rootfs");
    use std::os::unix::fs::MetadataExt;
    let s_meta = std::fs::metadata(rootfs.join("d/s")).unwrap();
    let l_meta = std::fs::metadata(rootfs.join("d/link")).unwrap();
    assert_eq!(s_meta.ino(), l_meta.ino());
    assert_eq!(s_meta.len(), 1 << 20);
    assert!(s_meta.blocks() * 512 < 1 << 20, "the hole was written");
    let data = std::fs::read(rootfs.join("d/s")).unwrap();
    assert_eq!(&data[..2], b"ab");
    assert_eq!(&data[1_048_570..1_048_573], b"xyz");
    assert!(data[1_048_573..].iter().all(|b| *b == 0));
    assert!(!rootfs.join("d/gone").exists());
    assert!(!rootfs.join("d/.wh.gone").exists());
    assert_eq!(std::fs::read(rootfs.join("d/after")).unwrap(), b"after");
}

/// A file of 2^62 bytes that is all hole is a few bytes of tar. strata does not cap a
/// sparse file's length: a hole costs no disk, and the file system's own limit is the cap,
/// as for GNU tar and bsdtar (ext4 refuses past 16 TiB, tmpfs takes up to 8 EiB). Either
/// way no hole's zeros are written and no time goes by; a refusal names the entry.
#[test]
fn a_huge_hole_writes_nothing_and_takes_no_time() {
    let real = 1u64 << 62;
    let tar = tar_of(&[sparse("big", real, &format!("{},1", real - 1), b"z")]);
    let (dir, layout) = layer_image(&tar);
    let shm = tempfile::Builder::new()
        .prefix("strata-test")
        .tempdir_in("/dev/shm")
        .unwrap();
    for bundle in [dir.path().join("b"), shm.path().join("b")] {
        let started = Instant::now();
        let run = run(&["unpack", &at(&layout, "t"), s(&bundle)]);
        assert!(started.elapsed() < Duration::from_secs(20));
        if run.code == 0 {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(bundle.join("rootfs/big")).unwrap();
            assert_eq!(meta.len(), real);
            assert!(meta.blocks() < 64, "{} blocks", meta.blocks());
        } else {
            assert!(run.stderr.contains("\"big\""), "{}", run.stderr);
            assert!(run.stderr.contains("File too large"), "{}", run.stderr);
            assert!(!bundle.exists());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Archives
// ---------------------------------------------------------------------------------------

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn hex(bytes: &[u8]) -> String {
    sha256(bytes).hex().to_owned()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A tar of `members` in order: a name ending in `/` is a directory, one holding ` -> ` a
/// symbolic link.
fn archive(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut t = TarBuilder::new();
    for (name, bytes) in members {
        if let Some((link, target)) = name.split_once(" -> ") {
            t.symlink(link, target);
        } else if name.ends_with('/') {
            t.dir(name, 0o755);
        } else {
            t.file(name, bytes, 0o644);
        }
    }
    t.finish()
}

fn blob_name(bytes: &[u8]) -> String {
    format!("blobs/sha256/{}", hex(bytes))
}

fn config_of(tars: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<String> = tars.iter().map(|t| sha256(t).to_string()).collect();
    serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
    .unwrap()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha256(bytes).to_string(), "size": bytes.len()})
}

/// A manifest over `config` and gzip `layers`.
fn manifest_of(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": layers.iter().map(|l| descriptor(
            "application/vnd.oci.image.layer.v1.tar+gzip", l)).collect::<Vec<_>>()}))
    .unwrap()
}

/// A layout holding one image tagged `keep`: the destination archives are imported into.
fn destination(dir: &Path) -> std::path::PathBuf {
    let layout = strata::Layout::init(dir.join("dest")).unwrap();
    let image = write_image(&layout, &["kept"], "amd64");
    add_entry(&layout, &image.manifest, Some("keep"));
    layout.root().to_owned()
}

fn import_ok(dir: &Path, layout: &Path, bytes: &[u8]) -> Value {
    let file = dir.join("ok.tar");
    write(&file, bytes);
    json(&["import", s(&file), s(layout), "--json"])
}

/// manifest.json naming one gzip layer blob a thousand times (a valid image: docker
/// repeats layers) must decompress it once, not once per mention: a few MB of archive
/// would otherwise cost hours of inflating and hashing.
#[test]
fn a_layer_blob_named_many_times_is_read_once() {
    let dir = tempdir();
    let layout = destination(dir.path());
    let mut t = TarBuilder::new();
    t.file("zeros", &vec![0u8; 16 << 20], 0o644);
    let layer = t.finish();
    let gz = gzip(&layer);
    let n = 1000;
    let diff_id = sha256(&layer).to_string();
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": vec![diff_id; n]}}))
    .unwrap();
    let list = json!([{"Config": "config.json", "RepoTags": ["amp:1"],
        "Layers": vec![blob_name(&gz); n]}]);
    let bytes = archive(&[
        ("manifest.json", list.to_string().into_bytes()),
        ("config.json", config),
        ("blobs/", vec![]),
        ("blobs/sha256/", vec![]),
        (&blob_name(&gz), gz.clone()),
    ]);
    let started = Instant::now();
    let report = import_ok(dir.path(), &layout, &bytes);
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(report["images"][0]["tag"], "amp:1");
    let report = json(&["fsck", s(&layout), "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
}

/// index.json giving one multi-platform index many tags, the index listing one manifest
/// many times: each graph is walked once, not once per tag and entry.
#[test]
fn one_index_under_many_tags_is_narrowed_once() {
    let dir = tempdir();
    let layout = destination(dir.path());
    let layer = gzip(&tar_layer("one"));
    let config = config_of(&[&tar_layer("one")]);
    let manifest = manifest_of(&config, &[&layer]);
    let mut child = descriptor(MANIFEST, &manifest);
    child["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let mut missing = descriptor(MANIFEST, b"{\"absent\":1}");
    missing["platform"] = json!({"architecture": "arm64", "os": "linux"});
    let mut children = vec![child; 400];
    children.push(missing);
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": INDEX,
        "manifests": children}))
    .unwrap();
    let entries: Vec<Value> = (0..2500)
        .map(|i| {
            let mut e = descriptor(INDEX, &index);
            e["annotations"] = json!({"org.opencontainers.image.ref.name": format!("t{i}")});
            e
        })
        .collect();
    let top = json!({"schemaVersion": 2, "manifests": entries});
    let bytes = archive(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json", top.to_string().into_bytes()),
        (&blob_name(&index), index.clone()),
        (&blob_name(&manifest), manifest.clone()),
        (&blob_name(&config), config.clone()),
        (&blob_name(&layer), layer.clone()),
    ]);
    let started = Instant::now();
    let report = import_ok(dir.path(), &layout, &bytes);
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(report["images"].as_array().unwrap().len(), 2500);
    assert_eq!(report["leftOut"].as_array().unwrap().len(), 2500);
    let report = json(&["fsck", s(&layout), "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
}
