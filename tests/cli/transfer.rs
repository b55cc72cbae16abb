//! export, import and copy (issue 5): OCI archives and docker archives against skopeo in both
//! directions, round trips that keep digests (oci) or the unpacked tree (docker), multi-image
//! and multi-platform archives, tag collisions, incremental archives, hostile archives, and
//! copies between layouts with links and referrers.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use strata::spec::{media_type, Descriptor};
use strata::Layout;

use crate::util::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn at(layout: &Path, tag: &str) -> String {
    format!("{}:{tag}", s(layout))
}

/// Runs strata with `input` on stdin; returns (exit code, stdout bytes, stderr).
fn run_piped(args: &[&str], input: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = strata(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running strata {args:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // strata may stop reading early (a refused archive): a broken pipe is fine.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("waiting for strata");
    writer.join().expect("stdin writer");
    (
        out.status.code().expect("not killed"),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every member of a tar: (name, type, mode, uid, gid, mtime, content offset, size).
struct Member {
    name: String,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    offset: u64,
    size: u64,
}

fn members(archive: &[u8]) -> Vec<Member> {
    let mut a = tar::Archive::new(archive);
    a.entries()
        .expect("a tar")
        .map(|e| {
            let e = e.expect("a tar entry");
            let h = e.header();
            Member {
                name: String::from_utf8(e.path_bytes().into_owned()).expect("UTF-8 name"),
                kind: h.entry_type(),
                mode: h.mode().expect("mode"),
                uid: h.uid().expect("uid"),
                gid: h.gid().expect("gid"),
                mtime: h.mtime().expect("mtime"),
                offset: e.raw_file_position(),
                size: e.size(),
            }
        })
        .collect()
}

impl Member {
    /// The member's content in `archive`, the tar it was listed from.
    fn content<'a>(&self, archive: &'a [u8]) -> &'a [u8] {
        &archive[self.offset as usize..(self.offset + self.size) as usize]
    }
}

/// The member of `archive` named `name`.
fn member(archive: &[u8], name: &str) -> Member {
    members(archive)
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no member {name}"))
}

fn member_names(archive: &[u8]) -> Vec<String> {
    members(archive).into_iter().map(|m| m.name).collect()
}

/// Appends to `t` every regular member of `archive` that `keep` accepts, as it is.
fn add_regular(t: &mut TarBuilder, archive: &[u8], keep: impl Fn(&Member) -> bool) {
    for m in members(archive) {
        if m.kind == tar::EntryType::Regular && keep(&m) {
            t.file(&m.name, m.content(archive), 0o644);
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// `strata export --format docker REFERENCE -o OUT`.
fn export_docker(reference: &str, out: &Path) {
    ok(&["export", "--format", "docker", reference, "-o", s(out)]);
}

/// `skopeo copy FROM TO`.
fn skopeo_copy(from: &str, to: &str) {
    peer_ok("skopeo", &["copy", from, to]);
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// index.json's entries as (tag, digest).
fn entries(layout: &Path) -> Vec<(Option<String>, String)> {
    read_json(&layout.join("index.json"))["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|e| {
            (
                e["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .map(str::to_owned),
                e["digest"].as_str().expect("digest").to_owned(),
            )
        })
        .collect()
}

/// index.json's tags, in order (`None` for an untagged entry).
fn tags(layout: &Path) -> Vec<Option<String>> {
    entries(layout).into_iter().map(|e| e.0).collect()
}

fn tag_digest(layout: &Path, tag: &str) -> String {
    entries(layout)
        .into_iter()
        .find(|(t, _)| t.as_deref() == Some(tag))
        .unwrap_or_else(|| panic!("no tag {tag} in {}", layout.display()))
        .1
}

fn fsck_ok(layout: &Path) {
    let report = json(&["fsck", s(layout), "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["unreferenced"], serde_json::json!([]), "{report:#}");
}

/// A layer tree with a bit of everything a docker round trip must keep.
fn rich_layers() -> Vec<(Vec<u8>, Packing)> {
    let mut l1 = TarBuilder::new();
    l1.dir("etc", 0o755)
        .file("etc/hostname", b"box\n", 0o644)
        .file("etc/shadow", b"root:*:1::::::\n", 0o640)
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/tool", &[0x7f, b'E', b'L', b'F', 1, 2, 3], 0o755)
        .symlink("usr/bin/alias", "tool")
        .hardlink("usr/bin/tool2", "usr/bin/tool")
        .owned_file("home-data", b"user data\n", 0o600, 1000, 1000);
    let mut l2 = TarBuilder::new();
    l2.dir("etc", 0o755)
        .file("etc/hostname", b"changed\n", 0o644)
        .whiteout("etc", "shadow")
        .dir("opt", 0o755)
        .file("opt/big", &vec![b'x'; 300_000], 0o644);
    let mut l3 = TarBuilder::new();
    l3.dir("opt", 0o755)
        .file("opt/last", b"third layer\n", 0o644);
    vec![
        (l1.finish(), Packing::Gzip),
        (l2.finish(), Packing::Zstd),
        (l3.finish(), Packing::Plain),
    ]
}

/// The same as [`rich_layers`], gzip only (what every peer reads).
fn gzip_layers() -> Vec<(Vec<u8>, Packing)> {
    rich_layers()
        .into_iter()
        .map(|(t, _)| (t, Packing::Gzip))
        .collect()
}

/// Unpacks `reference` into `dir/name` and returns its rootfs tree.
fn unpacked(reference: &str, dir: &Path, name: &str) -> Tree {
    let bundle = dir.join(name);
    ok(&["unpack", reference, s(&bundle)]);
    scan(&bundle.join("rootfs"))
}

/// One field of each layer `inspect --json` lists.
fn layer_field(reference: &str, field: &str) -> Vec<String> {
    let report = json(&["inspect", reference, "--json"]);
    report["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l[field].as_str().expect(field).to_owned())
        .collect()
}

/// The config diff_ids of an image.
fn diff_ids(reference: &str) -> Vec<String> {
    layer_field(reference, "diffId")
}

/// A new layout at `dir/name` with an image of `layers` tagged `app`.
fn app_layout(
    dir: &Path,
    name: &str,
    layers: &[(Vec<u8>, Packing)],
    config: Value,
) -> (PathBuf, Image) {
    let path = dir.join(name);
    let layout = Layout::init(&path).expect("init");
    let image = write_layered_image(&layout, "app", layers, config);
    (path, image)
}

/// A layout with a rich three-layer image tagged `app`.
fn rich_layout(dir: &Path, name: &str) -> (PathBuf, Image) {
    let config = serde_json::json!({"config": {"Env": ["A=1"], "Cmd": ["/usr/bin/tool"]}});
    app_layout(dir, name, &rich_layers(), config)
}

/// [`rich_layout`] in the form every peer reads.
fn peer_layout(dir: &Path, name: &str) -> (PathBuf, Image) {
    let config = serde_json::json!({"config": {"Cmd": ["/usr/bin/tool"]}});
    app_layout(dir, name, &gzip_layers(), config)
}

/// A layout at `dir/src` with an index tagged `multi` over an amd64 and an arm64 image.
fn multi_platform_layout(dir: &Path) -> (PathBuf, Image, Image, Descriptor) {
    let path = dir.join("src");
    let layout = Layout::init(&path).unwrap();
    let amd = write_image(&layout, &["amd"], "amd64");
    let arm = write_image(&layout, &["arm"], "arm64");
    let index = write_index(&layout, &[&amd, &arm]);
    add_entry(&layout, &index, Some("multi"));
    (path, amd, arm, index)
}

// ---------------------------------------------------------------------------------------
// OCI archives
// ---------------------------------------------------------------------------------------

#[test]
fn oci_export_is_deterministic_with_fixed_headers_and_each_blob_once() {
    let dir = tempdir();
    let (src, images) = layout_with_images(dir.path(), "src", &["a", "b"]);
    // b shares nothing with a, but a second tag on a must not duplicate its blobs.
    ok(&["tag", &at(src.root(), "a"), "a2"]);
    let one = dir.path().join("one.tar");
    let two = dir.path().join("two.tar");
    for out in [&one, &two] {
        ok(&[
            "export",
            &at(src.root(), "a"),
            &at(src.root(), "b"),
            &at(src.root(), "a2"),
            "-o",
            s(out),
        ]);
    }
    let bytes = read(&one);
    assert_eq!(bytes, read(&two), "the same export twice differs");
    let list = members(&bytes);
    let names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        &names[..4],
        ["oci-layout", "index.json", "blobs/", "blobs/sha256/"]
    );
    let mut blobs: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.len() > 14 && n.starts_with("blobs/sha256/"))
        .collect();
    let count = blobs.len();
    blobs.sort();
    blobs.dedup();
    assert_eq!(
        blobs.len(),
        count,
        "a blob is in the archive twice: {names:?}"
    );
    let expected: std::collections::BTreeSet<String> = images
        .iter()
        .flat_map(|i| i.blobs())
        .map(|d| format!("blobs/sha256/{}", d.hex()))
        .collect();
    assert_eq!(
        blobs
            .iter()
            .map(|b| b.to_string())
            .collect::<std::collections::BTreeSet<_>>(),
        expected
    );
    for m in &list {
        assert_eq!((m.uid, m.gid), (0, 0), "{}", m.name);
        assert_eq!(
            m.mtime, 1_700_000_000,
            "{}: SOURCE_DATE_EPOCH is the mtime",
            m.name
        );
        let want = if m.kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        };
        assert_eq!(m.mode, want, "{}", m.name);
    }
    // Without SOURCE_DATE_EPOCH the mtime is 0.
    let r = strata(&["export", &at(src.root(), "a"), "-o", "-"])
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("strata");
    assert!(r.status.success());
    assert!(members(&r.stdout).iter().all(|m| m.mtime == 0));

    // index.json lists the three entries with their tags.
    let index: Value = serde_json::from_slice(list[1].content(&bytes)).unwrap();
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(tags, ["a", "b", "a2"]);
}

#[test]
fn oci_round_trip_keeps_digests_through_a_file_and_a_gzip_pipe() {
    let dir = tempdir();
    let (src, _) = rich_layout(dir.path(), "src");
    let archive = dir.path().join("a.tar");
    let report = json(&["export", &at(&src, "app"), "-o", s(&archive), "--json"]);
    assert_eq!(report["format"], "oci");
    assert_eq!(report["blobs"], 5, "{report:#}");

    let dst = dir.path().join("dst");
    let imported = json(&["import", s(&archive), s(&dst), "--json"]);
    assert_eq!(imported["images"][0]["tag"], "app");
    assert_eq!(imported["blobsWritten"], 5);
    assert_eq!(tag_digest(&dst, "app"), tag_digest(&src, "app"));
    fsck_ok(&dst);
    for blob in stored_blobs(&dst) {
        let (alg, hex) = blob.split_once(':').unwrap();
        assert_eq!(
            read(&dst.join("blobs").join(alg).join(hex)),
            read(&src.join("blobs").join(alg).join(hex))
        );
    }
    // Importing again changes nothing.
    let before = snapshot(&dst);
    ok(&["import", s(&archive), s(&dst)]);
    assert!(
        snapshot(&dst) == before,
        "a second import changed the layout"
    );

    // strata export -o - | gzip | strata import -
    let (code, tar_bytes, err) = run_piped(&["export", &at(&src, "app"), "-o", "-"], b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(tar_bytes, read(&archive), "stdout and file exports differ");
    let gz = gzip(&tar_bytes);
    let piped = dir.path().join("piped");
    let (code, _, err) = run_piped(&["import", "-", s(&piped)], &gz);
    assert_eq!(code, 0, "{err}");
    assert_eq!(tag_digest(&piped, "app"), tag_digest(&src, "app"));
    fsck_ok(&piped);
    // And the unpacked trees agree.
    assert_eq!(
        unpacked(&at(&src, "app"), dir.path(), "b1"),
        unpacked(&at(&piped, "app"), dir.path(), "b2")
    );
}

#[test]
fn import_tag_option_renames_a_single_image() {
    let dir = tempdir();
    let (src, _) = layout_with_images(dir.path(), "src", &["a", "b"]);
    let archive = dir.path().join("a.tar");
    ok(&["export", &at(src.root(), "a"), "-o", s(&archive)]);
    let dst = dir.path().join("dst");
    ok(&["import", s(&archive), s(&dst), "--tag", "renamed"]);
    assert_eq!(
        entries(&dst),
        [(Some("renamed".into()), tag_digest(src.root(), "a"))]
    );
    // Two images cannot take one tag.
    let both = dir.path().join("both.tar");
    ok(&[
        "export",
        &at(src.root(), "a"),
        &at(src.root(), "b"),
        "-o",
        s(&both),
    ]);
    let err = fails(&["import", s(&both), s(&dst), "--tag", "x"], 1);
    assert!(err.contains("--tag") && err.contains("2"), "{err}");
}

#[test]
fn multi_image_and_multi_platform_archives() {
    let dir = tempdir();
    let (path, amd, arm, index) = multi_platform_layout(dir.path());
    let layout = Layout::open(&path).unwrap();
    let single = write_image(&layout, &["single"], "amd64");
    add_entry(&layout, &single.manifest, Some("single"));

    // Every platform, and a second image: the index goes as it is.
    let all = dir.path().join("all.tar");
    ok(&[
        "export",
        "--all-platforms",
        &at(&path, "multi"),
        &at(&path, "single"),
        "-o",
        s(&all),
    ]);
    let dst = dir.path().join("dst");
    ok(&["import", s(&all), s(&dst)]);
    assert_eq!(tag_digest(&dst, "multi"), index.digest);
    assert_eq!(tag_digest(&dst, "single"), single.manifest.digest);
    for p in ["linux/amd64", "linux/arm64"] {
        let a = json(&["inspect", &at(&dst, "multi"), "--platform", p, "--json"]);
        let b = json(&["inspect", &at(&path, "multi"), "--platform", p, "--json"]);
        assert_eq!(a["manifest"]["digest"], b["manifest"]["digest"], "{p}");
    }
    fsck_ok(&dst);

    // One platform: the manifest for it, tagged as the index was, and nothing of the other.
    let arm_only = dir.path().join("arm.tar");
    ok(&[
        "export",
        "--platform",
        "linux/arm64",
        &at(&path, "multi"),
        "-o",
        s(&arm_only),
    ]);
    let names = member_names(&read(&arm_only));
    assert!(
        !names.contains(&format!("blobs/sha256/{}", amd.layers[0].hex())),
        "{names:?}"
    );
    let dst2 = dir.path().join("dst2");
    ok(&["import", s(&arm_only), s(&dst2)]);
    assert_eq!(
        entries(&dst2),
        [(Some("multi".into()), arm.manifest.digest.clone())]
    );
    fsck_ok(&dst2);

    // A docker archive holds single-platform images only.
    let err = fails(
        &[
            "export",
            "--format",
            "docker",
            "--all-platforms",
            &at(&path, "multi"),
            "-o",
            s(&dir.path().join("d.tar")),
        ],
        2,
    );
    assert!(err.contains("single-platform"), "{err}");
    assert!(!dir.path().join("d.tar").exists());
}

#[test]
fn a_tag_that_collides_on_import_is_refused_unless_forced() {
    let dir = tempdir();
    let (src, _) = layout_with_images(dir.path(), "src", &["shared"]);
    let (dst, _) = layout_with_images(dir.path(), "dst", &["other"]);
    // The destination's "shared" is another image.
    let theirs = write_image(&dst, &["theirs"], "amd64");
    add_entry(&dst, &theirs.manifest, Some("shared"));
    let archive = dir.path().join("a.tar");
    ok(&["export", &at(src.root(), "shared"), "-o", s(&archive)]);

    let before = snapshot(dst.root());
    let err = fails(&["import", s(&archive), s(dst.root())], 1);
    assert!(
        err.contains("\"shared\"")
            && err.contains(&theirs.manifest.digest)
            && err.contains("--force"),
        "{err}"
    );
    assert!(
        snapshot(dst.root()) == before,
        "a refused import changed the layout"
    );

    ok(&["import", s(&archive), s(dst.root()), "--force"]);
    assert_eq!(
        tag_digest(dst.root(), "shared"),
        tag_digest(src.root(), "shared")
    );
    assert_eq!(
        entries(dst.root()).len(),
        2,
        "the old entry was replaced, not kept"
    );
    fsck_ok_or_unreferenced(dst.root());
}

/// fsck passes (the image a forced import untagged is unreferenced until gc).
fn fsck_ok_or_unreferenced(layout: &Path) {
    let report = json(&["fsck", s(layout), "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
}

/// A layout `src` with `v1` and `v2` (v1 plus a layer), and a `receiver` that has v1: it
/// needs only v2's new blobs.
fn two_versions(dir: &Path) -> (PathBuf, Image, Image, PathBuf) {
    let src_path = dir.join("src");
    let src = Layout::init(&src_path).unwrap();
    let v1 = write_image(&src, &["base"], "amd64");
    add_entry(&src, &v1.manifest, Some("v1"));
    let v2 = write_image(&src, &["base", "app"], "amd64");
    add_entry(&src, &v2.manifest, Some("v2"));
    let receiver = dir.join("receiver");
    ok(&["copy", &at(&src_path, "v1"), &at(&receiver, "v1")]);
    (src_path, v1, v2, receiver)
}

#[test]
fn an_incremental_archive_imports_into_its_receiver_and_nowhere_else() {
    let dir = tempdir();
    let (src_path, v1, v2, receiver) = two_versions(dir.path());

    let archive = dir.path().join("inc.tar");
    let report = json(&[
        "export",
        &at(&src_path, "v2"),
        "--exclude-present-in",
        s(&receiver),
        "-o",
        s(&archive),
        "--json",
    ]);
    assert_eq!(
        report["excluded"], 1,
        "the shared base layer is left out: {report:#}"
    );
    let names = member_names(&read(&archive));
    assert!(!names.contains(&format!("blobs/sha256/{}", v1.layers[0].hex())));

    // A layout without v1 refuses it, naming the missing blob, and is unchanged.
    let (wrong, _) = layout_with_images(dir.path(), "wrong", &["x"]);
    let before = snapshot(wrong.root());
    let err = fails(&["import", s(&archive), s(wrong.root())], 1);
    assert!(
        err.contains(&v1.layers[0].to_string()) && err.contains("lacks"),
        "{err}"
    );
    assert!(
        snapshot(wrong.root()) == before,
        "the wrong receiver changed"
    );
    // A missing destination is not left behind either.
    let fresh = dir.path().join("fresh");
    fails(&["import", s(&archive), s(&fresh)], 1);
    assert!(!fresh.exists(), "a failed import left a new layout behind");

    ok(&["import", s(&archive), s(&receiver)]);
    assert_eq!(tag_digest(&receiver, "v2"), v2.manifest.digest);
    fsck_ok(&receiver);

    // docker archives cannot be incremental: an invocation error, found before anything
    // is read.
    let err = fails(
        &[
            "export",
            "--format",
            "docker",
            &at(&src_path, "v2"),
            "--exclude-present-in",
            s(&receiver),
            "-o",
            s(&dir.path().join("d.tar")),
        ],
        2,
    );
    assert!(err.contains("--format oci"), "{err}");
}

// ---------------------------------------------------------------------------------------
// docker archives
// ---------------------------------------------------------------------------------------

#[test]
fn docker_round_trip_keeps_the_tree_and_the_diff_ids() {
    let dir = tempdir();
    let (src, _) = rich_layout(dir.path(), "src");
    let archive = dir.path().join("d.tar");
    export_docker(&at(&src, "app"), &archive);
    let list = members(&read(&archive));
    let names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(&names[..2], ["manifest.json", "repositories"]);
    let bytes = read(&archive);
    let manifest: Value = serde_json::from_slice(list[0].content(&bytes)).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["app:latest"]));
    // The layout's own tag travels beside docker's form of it, so it comes back on import.
    assert_eq!(
        manifest[0]["StrataLayoutTags"],
        serde_json::json!({"app:latest": "app"})
    );
    let src_diff_ids = diff_ids(&at(&src, "app"));
    let layers: Vec<String> = src_diff_ids
        .iter()
        .map(|d| format!("{}/layer.tar", d.trim_start_matches("sha256:")))
        .collect();
    assert_eq!(manifest[0]["Layers"], serde_json::json!(layers));
    // Layers are stored uncompressed: each member hashes to its diff_id.
    for (name, diff_id) in layers.iter().zip(&src_diff_ids) {
        let content = member(&bytes, name).content(&bytes);
        assert_eq!(&crate::util::sha256(content).to_string(), diff_id);
    }

    let reference = unpacked(&at(&src, "app"), dir.path(), "ref");
    for (compress, mt) in [
        ("gzip", media_type::LAYER_TAR_GZIP),
        ("zstd", media_type::LAYER_TAR_ZSTD),
        ("none", media_type::LAYER_TAR),
    ] {
        let dst = dir.path().join(format!("dst-{compress}"));
        ok(&["import", s(&archive), s(&dst), "--compress", compress]);
        assert_eq!(
            tags(&dst),
            [Some("app".to_owned())],
            "{compress}: the tag did not survive the round trip"
        );
        let r = at(&dst, "app");
        assert_eq!(diff_ids(&r), src_diff_ids, "{compress}");
        assert!(
            layer_field(&r, "mediaType").iter().all(|m| m == mt),
            "{compress}"
        );
        fsck_ok(&dst);
        assert_eq!(
            unpacked(&r, dir.path(), &format!("b-{compress}")),
            reference,
            "{compress}"
        );
    }
    // The same archive twice gives the same digests (deterministic compression).
    let again = dir.path().join("again");
    ok(&["import", s(&archive), s(&again)]);
    assert_eq!(
        tag_digest(&again, "app"),
        tag_digest(&dir.path().join("dst-gzip"), "app")
    );
    // Without strata's field (an archive that docker save wrote), RepoTags are the tags.
    let plain = dir.path().join("plain.tar");
    let mut rewritten = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut rewritten);
        for m in &list {
            let mut content = m.content(&bytes).to_vec();
            if m.name == "manifest.json" {
                let mut doc = manifest.clone();
                doc[0].as_object_mut().unwrap().remove("StrataLayoutTags");
                content = serde_json::to_vec(&doc).unwrap();
            }
            let mut header = tar::Header::new_ustar();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, &m.name, &content[..])
                .unwrap();
        }
        builder.finish().unwrap();
    }
    write(&plain, &rewritten);
    let docker_named = dir.path().join("docker-named");
    ok(&["import", s(&plain), s(&docker_named)]);
    assert_eq!(tags(&docker_named), [Some("app:latest".to_owned())]);
}

#[test]
fn docker_archive_in_the_oci_layout_form_of_newer_docker() {
    // docker 25+ writes an OCI layout (uncompressed layers, the full name in
    // io.containerd.image.name, only the tag in ref.name) plus a manifest.json over it.
    let dir = tempdir();
    let path = dir.path().join("src");
    let layout = Layout::init(&path).unwrap();
    let layers = vec![(tar_layer("docker25"), Packing::Plain)];
    let image = write_layered_image(&layout, "latest", &layers, serde_json::json!({}));
    let mut entry = image.manifest.clone();
    entry.set_annotation(
        "io.containerd.image.name",
        Some("docker.io/library/app:latest"),
    );
    entry.set_annotation("org.opencontainers.image.ref.name", Some("latest"));
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": media_type::INDEX, "manifests": [entry]});
    let manifest_json = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", image.config.hex()),
        "RepoTags": ["app:latest"],
        "Layers": image.layers.iter().map(|l| format!("blobs/sha256/{}", l.hex())).collect::<Vec<_>>(),
    }]);
    let mut tar = TarBuilder::new();
    tar.dir("blobs", 0o755).dir("blobs/sha256", 0o755);
    for digest in image.blobs() {
        let content = read(&path.join("blobs/sha256").join(digest.hex()));
        tar.file(&format!("blobs/sha256/{}", digest.hex()), &content, 0o644);
    }
    tar.file("index.json", index.to_string().as_bytes(), 0o644)
        .file("manifest.json", manifest_json.to_string().as_bytes(), 0o644)
        .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644);
    let archive = dir.path().join("d25.tar");
    write(&archive, &tar.finish());
    let dst = dir.path().join("dst");
    let report = json(&["import", s(&archive), s(&dst), "--json"]);
    assert_eq!(report["format"], "oci");
    assert_eq!(
        entries(&dst),
        [(
            Some("docker.io/library/app:latest".into()),
            image.manifest.digest.clone()
        )]
    );
    fsck_ok(&dst);
}

// ---------------------------------------------------------------------------------------
// With skopeo
// ---------------------------------------------------------------------------------------

#[test]
fn skopeo_reads_strata_oci_and_docker_archives() {
    if !peer("skopeo") {
        return;
    }
    let dir = tempdir();
    let (src, image) = peer_layout(dir.path(), "src");
    // oci-archive: the manifest digest survives.
    let archive = dir.path().join("a.tar");
    ok(&["export", &at(&src, "app"), "-o", s(&archive)]);
    let y = dir.path().join("y");
    skopeo_copy(
        &format!("oci-archive:{}:app", s(&archive)),
        &format!("oci:{}:app", s(&y)),
    );
    assert_eq!(tag_digest(&y, "app"), image.manifest.digest);
    fsck_ok(&y);

    // docker-archive: skopeo reads it, the diff_ids and the unpacked tree are the same.
    let d = dir.path().join("d.tar");
    export_docker(&at(&src, "app"), &d);
    let z = dir.path().join("z");
    skopeo_copy(
        &format!("docker-archive:{}", s(&d)),
        &format!("oci:{}:app", s(&z)),
    );
    assert_eq!(diff_ids(&at(&z, "app")), diff_ids(&at(&src, "app")));
    assert_eq!(
        unpacked(&at(&z, "app"), dir.path(), "bz"),
        unpacked(&at(&src, "app"), dir.path(), "bsrc")
    );
    // skopeo lists the tag strata wrote.
    let tags: Value = serde_json::from_str(&peer_ok(
        "skopeo",
        &["list-tags", &format!("docker-archive:{}", s(&d))],
    ))
    .expect("skopeo JSON");
    assert!(tags.to_string().contains("app:latest"), "{tags}");
}

#[test]
fn strata_imports_skopeo_oci_and_docker_archives() {
    if !peer("skopeo") {
        return;
    }
    let dir = tempdir();
    let (src, image) = peer_layout(dir.path(), "src");
    // oci-archive written by skopeo: digests kept both ways.
    let archive = dir.path().join("sk.tar");
    skopeo_copy(
        &format!("oci:{}:app", s(&src)),
        &format!("oci-archive:{}:app", s(&archive)),
    );
    let dst = dir.path().join("dst");
    ok(&["import", s(&archive), s(&dst)]);
    assert_eq!(tag_digest(&dst, "app"), image.manifest.digest);
    fsck_ok(&dst);

    // docker-archive written by skopeo (with its <id>/layer.tar symlinks): the tree is the
    // same after the round trip.
    let d = dir.path().join("skd.tar");
    skopeo_copy(
        &format!("oci:{}:app", s(&src)),
        &format!("docker-archive:{}:example/app:v1", s(&d)),
    );
    assert!(
        members(&read(&d))
            .iter()
            .any(|m| m.kind == tar::EntryType::Symlink),
        "skopeo wrote no symlinks: the test lost its point"
    );
    let dd = dir.path().join("dd");
    let report = json(&["import", s(&d), s(&dd), "--json"]);
    assert_eq!(report["format"], "docker");
    let tag = report["images"][0]["tag"]
        .as_str()
        .expect("a tag")
        .to_owned();
    assert!(tag.ends_with("example/app:v1"), "{tag}");
    fsck_ok(&dd);
    assert_eq!(diff_ids(&at(&dd, &tag)), diff_ids(&at(&src, "app")));
    assert_eq!(
        unpacked(&at(&dd, &tag), dir.path(), "b1"),
        unpacked(&at(&src, "app"), dir.path(), "b2")
    );
}

// ---------------------------------------------------------------------------------------
// Hostile and broken archives
// ---------------------------------------------------------------------------------------

/// Imports `archive` into a copy of a layout holding one image, expects exit 1 with every
/// needle in stderr, and checks the layout is byte for byte unchanged and nothing was
/// written outside it.
fn refused(archive: &[u8], needles: &[&str]) {
    let dir = tempdir();
    let (dst, _) = layout_with_images(dir.path(), "dst", &["keep"]);
    let file = dir.path().join("bad.tar");
    write(&file, archive);
    let around = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let (before, beside) = (snapshot(dst.root()), around());
    let err = fails(&["import", s(&file), s(dst.root())], 1);
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        snapshot(dst.root()) == before,
        "a refused import changed the layout:\n{err}"
    );
    assert_eq!(around(), beside, "a refused import wrote beside the layout");
    // The same from stdin.
    let (code, _, err) = run_piped(&["import", "-", s(dst.root())], archive);
    assert_eq!(code, 1, "{err}");
    assert!(snapshot(dst.root()) == before);
}

/// A valid OCI archive of one image, and the image.
fn valid_archive(dir: &Path) -> (Vec<u8>, Image) {
    let path = dir.join("src");
    let layout = Layout::init(&path).unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut t = TarBuilder::new();
    t.file("big", &big, 0o644);
    let image = write_layered_image(
        &layout,
        "img",
        &[(t.finish(), Packing::Plain)],
        serde_json::json!({}),
    );
    let archive = dir.join("ok.tar");
    ok(&["export", &at(&path, "img"), "-o", s(&archive)]);
    (read(&archive), image)
}

#[test]
fn a_truncated_archive_is_refused() {
    let dir = tempdir();
    let (bytes, image) = valid_archive(dir.path());
    let layer = format!("blobs/sha256/{}", image.layers[0].hex());
    let m = member(&bytes, &layer);
    // Cut in the middle of the layer, and at a member boundary just before it.
    refused(
        &bytes[..(m.offset + m.size / 2) as usize],
        &["cut short", &layer],
    );
    refused(
        &bytes[..(m.offset - 512) as usize],
        &["lacks", &image.layers[0].to_string()],
    );
    // A gzip stream cut short.
    let gz = gzip(&bytes);
    refused(&gz[..gz.len() * 2 / 3], &["archive"]);
    refused(b"", &["empty"]);
    refused(&[7u8; 2048], &["damaged"]);
}

#[test]
fn a_blob_whose_content_does_not_match_is_refused() {
    let dir = tempdir();
    let (mut bytes, image) = valid_archive(dir.path());
    let layer = format!("blobs/sha256/{}", image.layers[0].hex());
    let m = member(&bytes, &layer);
    bytes[(m.offset + 1000) as usize] ^= 0xff;
    refused(&bytes, &[&image.layers[0].to_string(), "corrupt"]);
}

#[test]
fn hostile_names_and_links_are_refused() {
    let dir = tempdir();
    let (bytes, image) = valid_archive(dir.path());
    let hex = image.layers[0].hex().to_owned();
    // One hostile member ahead of the valid archive's members.
    let with = |add: &dyn Fn(&mut TarBuilder)| -> Vec<u8> {
        let mut t = TarBuilder::new();
        add(&mut t);
        add_regular(&mut t, &bytes, |_| true);
        t.finish()
    };
    refused(
        &with(&|t| {
            t.file("../evil", b"x", 0o644);
        }),
        &["../evil", "\"..\""],
    );
    refused(
        &with(&|t| {
            t.file("blobs/../../evil", b"x", 0o644);
        }),
        &["\"..\""],
    );
    refused(
        &with(&|t| {
            t.file("/tmp/strata-evil", b"x", 0o644);
        }),
        &["absolute"],
    );
    // A symlink in the place of a blob, pointing out of the archive.
    let mut t = TarBuilder::new();
    t.symlink(&format!("blobs/sha256/{hex}"), "/etc/passwd");
    add_regular(&mut t, &bytes, |m| !m.name.ends_with(&hex));
    refused(&t.finish(), &[&hex, "link"]);
    // A docker layer that is a symlink out of the archive, and a hard link to a host file.
    refused(
        &with(&|t| {
            t.symlink("abc/layer.tar", "../../../etc/passwd");
        }),
        &["abc/layer.tar", "outside the archive"],
    );
    refused(
        &with(&|t| {
            t.hardlink("abc/layer.tar", "/etc/passwd");
        }),
        &["outside the archive"],
    );
    refused(
        &with(&|t| {
            t.device("dev/null", tar::EntryType::Char, 1, 3);
        }),
        &["dev/null"],
    );
    assert!(!std::path::Path::new("/tmp/strata-evil").exists());
}

#[test]
fn a_docker_manifest_naming_missing_files_is_refused() {
    let dir = tempdir();
    let (src, _) = rich_layout(dir.path(), "src");
    let archive = dir.path().join("d.tar");
    export_docker(&at(&src, "app"), &archive);
    let bytes = read(&archive);
    let list = members(&bytes);
    // Leave out the second layer.
    let dropped = list
        .iter()
        .filter(|m| m.name.ends_with("/layer.tar"))
        .nth(1)
        .expect("3 layers")
        .name
        .clone();
    let mut t = TarBuilder::new();
    add_regular(&mut t, &bytes, |m| m.name != dropped);
    refused(&t.finish(), &["manifest.json", &dropped, "no such file"]);
    // And a manifest.json naming a config that is not there.
    let mut t = TarBuilder::new();
    t.file(
        "manifest.json",
        br#"[{"Config":"nope.json","RepoTags":["x:y"],"Layers":[]}]"#,
        0o644,
    );
    refused(&t.finish(), &["nope.json"]);
    // Neither format.
    let mut t = TarBuilder::new();
    t.file("hello.txt", b"hi", 0o644);
    refused(&t.finish(), &["not an image archive"]);
}

// ---------------------------------------------------------------------------------------
// copy
// ---------------------------------------------------------------------------------------

#[test]
fn copy_links_only_the_missing_blobs_and_takes_referrers_when_asked() {
    let dir = tempdir();
    let src_path = dir.path().join("src");
    let src = Layout::init(&src_path).unwrap();
    let image = write_image(&src, &["one", "two"], "amd64");
    add_entry(&src, &image.manifest, Some("app"));
    let sig = write_referrer(&src, &image.manifest, "signature");

    let dst = dir.path().join("sub/dst");
    let report = json(&["copy", &at(&src_path, "app"), s(&dst), "--json"]);
    assert_eq!(
        report["blobsLinked"].as_u64().unwrap() + report["blobsReflinked"].as_u64().unwrap(),
        4,
        "{report:#}"
    );
    assert_eq!(report["referrers"], serde_json::json!([]));
    assert_eq!(tag_digest(&dst, "app"), image.manifest.digest);
    fsck_ok(&dst);
    // Hard-linked (or cloned): no bytes copied.
    for d in image.blobs() {
        let a = std::fs::metadata(src_path.join("blobs/sha256").join(d.hex())).unwrap();
        let b = std::fs::metadata(dst.join("blobs/sha256").join(d.hex())).unwrap();
        assert!(
            a.ino() == b.ino() || report["blobsReflinked"] != 0,
            "{d} was copied"
        );
    }
    assert!(
        !stored_blobs(&dst).contains(&sig.manifest.digest),
        "a referrer came without --referrers"
    );

    // Again, under another tag, with referrers: only the referrer's blobs are new.
    let report = json(&[
        "copy",
        "--referrers",
        &at(&src_path, "app"),
        &at(&dst, "again"),
        "--json",
    ]);
    assert_eq!(
        report["referrers"],
        serde_json::json!([sig.manifest.digest])
    );
    assert_eq!(report["blobsPresent"], 4, "{report:#}");
    for d in sig.blobs() {
        assert!(stored_blobs(&dst).contains(&d.to_string()), "{d} missing");
    }
    fsck_ok_or_unreferenced(&dst);
    // gc keeps the referrer: its subject is kept.
    let gc = json(&["gc", s(&dst), "--json"]);
    assert_eq!(gc["removed"], serde_json::json!([]), "{gc:#}");

    // A destination tag naming another image is refused unless forced.
    let other = write_image(&src, &["other"], "amd64");
    add_entry(&src, &other.manifest, Some("other"));
    let before = snapshot(&dst);
    let err = fails(&["copy", &at(&src_path, "other"), &at(&dst, "app")], 1);
    assert!(err.contains("\"app\"") && err.contains("--force"), "{err}");
    assert!(
        snapshot(&dst) == before,
        "a refused copy changed the layout"
    );
    ok(&["copy", "--force", &at(&src_path, "other"), &at(&dst, "app")]);
    assert_eq!(tag_digest(&dst, "app"), other.manifest.digest);
}

#[test]
fn copy_of_an_index_by_platform_and_whole() {
    let dir = tempdir();
    let (path, _, arm, index) = multi_platform_layout(dir.path());
    let dst = dir.path().join("dst");
    ok(&["copy", "--all-platforms", &at(&path, "multi"), s(&dst)]);
    assert_eq!(tag_digest(&dst, "multi"), index.digest);
    fsck_ok(&dst);
    let one = dir.path().join("one");
    ok(&[
        "copy",
        "--platform",
        "linux/arm64",
        &at(&path, "multi"),
        &at(&one, "arm"),
    ]);
    assert_eq!(
        entries(&one),
        [(Some("arm".into()), arm.manifest.digest.clone())]
    );
    fsck_ok(&one);
}

/// Copies `src:a` into a fresh clone of `dst` and expects a refusal that names `needle`,
/// with the destination unchanged.
fn copy_refused(src: &Path, dst: &Path, extra: &[&str], needle: &str) {
    let before = snapshot(dst);
    let source = at(src, "a");
    let mut args = vec!["copy"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&source, s(dst)]);
    let err = fails(&args, 1);
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(
        snapshot(dst) == before,
        "{args:?}: a failed copy changed the layout"
    );
}

#[test]
fn corrupt_source_blobs_are_not_passed_on() {
    let dir = tempdir();
    let (src, images) = layout_with_images(dir.path(), "src", &["a"]);
    let (dst, _) = layout_with_images(dir.path(), "dst", &["x"]);
    let layer_digest = images[0].layers[0].to_string();
    let layer = src.blob_path(&images[0].layers[0]);
    let good = read(&layer);
    let mut flipped = good.clone();
    flipped[0] ^= 0xff;
    write(&layer, &flipped);

    // --verify hashes linked blobs: refused, naming the blob.
    copy_refused(src.root(), dst.root(), &["--verify"], &layer_digest);
    // A wrong size is caught without reading the content.
    write(&layer, &good[..good.len() - 1]);
    copy_refused(src.root(), dst.root(), &[], &layer_digest);
    // A symlink standing in for a blob is never linked, even to the right bytes.
    let elsewhere = dir.path().join("elsewhere");
    write(&elsewhere, &good);
    std::fs::remove_file(&layer).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &layer).unwrap();
    copy_refused(src.root(), dst.root(), &[], "not a regular file");
    // Documents are always hashed: a corrupt config stops the copy.
    std::fs::remove_file(&layer).unwrap();
    write(&layer, &good);
    let config = src.blob_path(&images[0].config);
    let config_bytes = read(&config);
    let mut bad_config = config_bytes.clone();
    bad_config[0] ^= 0x01;
    write(&config, &bad_config);
    copy_refused(src.root(), dst.root(), &[], &images[0].config.to_string());
    write(&config, &config_bytes);

    // Without --verify a same-size corrupt layer is linked as it is (the link carries the
    // source's bytes, no worse than they were), and fsck of either layout names it.
    write(&layer, &flipped);
    let plain = dir.path().join("plain");
    ok(&["copy", &at(src.root(), "a"), s(&plain)]);
    let r = run(&["fsck", s(&plain)]);
    assert_ne!(r.code, 0, "fsck passed a corrupt linked blob");
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains(&layer_digest), "{said}");

    // export reads every byte: refused, and no archive is left behind.
    let out = dir.path().join("a.tar");
    let err = fails(&["export", &at(src.root(), "a"), "-o", s(&out)], 1);
    assert!(err.contains(&layer_digest), "{err}");
    assert!(!out.exists(), "a failed export left an archive");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn exported_descriptors_keep_their_annotations() {
    // An entry's own annotations (other than the tag) travel with it.
    let dir = tempdir();
    let path = dir.path().join("src");
    let layout = Layout::init(&path).unwrap();
    let image = write_image(&layout, &["a"], "amd64");
    let mut desc: Descriptor = image.manifest.clone();
    desc.set_annotation("org.example.note", Some("kept"));
    add_entry(&layout, &desc, Some("a"));
    let archive = dir.path().join("a.tar");
    ok(&["export", &at(&path, "a"), "-o", s(&archive)]);
    let dst = dir.path().join("dst");
    ok(&["import", s(&archive), s(&dst)]);
    let index = read_json(&dst.join("index.json"));
    assert_eq!(
        index["manifests"][0]["annotations"]["org.example.note"],
        "kept"
    );
}

#[test]
fn one_tag_for_two_images_is_refused_on_export() {
    let dir = tempdir();
    let (a, _) = layout_with_images(dir.path(), "a", &["x"]);
    let (b, _) = layout_with_images(dir.path(), "b", &["y"]);
    ok(&["tag", &at(b.root(), "y"), "x"]);
    for format in ["oci", "docker"] {
        let out = dir.path().join(format!("{format}.tar"));
        let err = fails(
            &[
                "export",
                "--format",
                format,
                &at(a.root(), "x"),
                &at(b.root(), "x"),
                "-o",
                s(&out),
            ],
            1,
        );
        assert!(
            err.contains("\"x\"") && err.contains("two images"),
            "{format}: {err}"
        );
        assert!(!out.exists(), "{format}");
    }
}

#[test]
fn referrers_in_an_archive_come_along_only_when_complete() {
    let dir = tempdir();
    let path = dir.path().join("src");
    let layout = Layout::init(&path).unwrap();
    let image = write_image(&layout, &["a"], "amd64");
    add_entry(&layout, &image.manifest, Some("a"));
    let sig = write_referrer(&layout, &image.manifest, "signature");
    let archive = dir.path().join("a.tar");
    ok(&[
        "export",
        &at(&path, "a"),
        "-o",
        s(&archive),
        "--no-referrers",
    ]);
    let bytes = read(&archive);
    // The archive plus the referrer's blobs, loose (as other tools store referrers), once
    // whole and once without the referrer's payload.
    let build = |blobs: &[strata::digest::Digest]| -> Vec<u8> {
        let mut t = TarBuilder::new();
        add_regular(&mut t, &bytes, |_| true);
        for d in blobs {
            t.file(
                &format!("blobs/sha256/{}", d.hex()),
                &read(&path.join("blobs/sha256").join(d.hex())),
                0o644,
            );
        }
        t.finish()
    };
    let whole = dir.path().join("whole.tar");
    write(&whole, &build(&sig.blobs()));
    let dst = dir.path().join("dst");
    let report = json(&["import", s(&whole), s(&dst), "--json"]);
    assert_eq!(
        report["referrers"],
        serde_json::json!([sig.manifest.digest]),
        "{report:#}"
    );
    for d in sig.blobs() {
        assert!(stored_blobs(&dst).contains(&d.to_string()));
    }
    fsck_ok_or_unreferenced(&dst);

    let partial = dir.path().join("partial.tar");
    write(&partial, &build(&sig.blobs()[..2]));
    let dst2 = dir.path().join("dst2");
    let report = json(&["import", s(&partial), s(&dst2), "--json"]);
    assert_eq!(report["referrers"], serde_json::json!([]), "{report:#}");
    assert!(!stored_blobs(&dst2).contains(&sig.manifest.digest));
    fsck_ok(&dst2);
}

/// A directory on another file system than the test's temp dir (tmpfs at /dev/shm), where
/// no link can reach.
fn other_file_system(near: &Path) -> Option<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let dev = |p: &Path| std::fs::metadata(p).ok().map(|m| m.dev());
    if dev(shm).is_none() || dev(shm) == dev(near) {
        return None;
    }
    Some(
        tempfile::Builder::new()
            .prefix("strata-test-")
            .tempdir_in(shm)
            .expect("a temp dir in /dev/shm"),
    )
}

#[test]
fn copy_to_another_file_system_copies_and_hashes_every_byte() {
    let dir = tempdir();
    let Some(far) = other_file_system(dir.path()) else {
        // Every machine this runs on has a tmpfs at /dev/shm; say so loudly if one does not.
        panic!("no second file system at /dev/shm to copy across");
    };
    let (src, images) = layout_with_images(dir.path(), "src", &["a"]);
    let dst = far.path().join("dst");
    let report = json(&["copy", &at(src.root(), "a"), s(&dst), "--json"]);
    assert_eq!(report["blobsCopied"], 3, "{report:#}");
    assert_eq!(report["blobsLinked"], 0, "{report:#}");
    assert_eq!(tag_digest(&dst, "a"), images[0].manifest.digest);
    fsck_ok(&dst);

    // A same-size corrupt layer: linking would pass it on, copying hashes it and refuses.
    let layer = src.blob_path(&images[0].layers[0]);
    let mut bytes = read(&layer);
    bytes[0] ^= 0xff;
    write(&layer, &bytes);
    let other = far.path().join("other");
    let err = fails(&["copy", &at(src.root(), "a"), s(&other)], 1);
    assert!(err.contains(&images[0].layers[0].to_string()), "{err}");
    assert!(!other.exists(), "a refused copy left a new layout behind");
}

#[test]
fn mangled_archives_are_refused_cleanly_and_change_nothing() {
    // A few hundred deterministic mutations of an OCI and a docker archive: flipped bytes
    // (headers and JSON are near the front, so half of them land there), cuts, overwritten
    // runs. Each import either succeeds with a sound layout or exits 1 with the destination
    // byte-for-byte as it was; never a panic or another exit code.
    let dir = tempdir();
    let (oci, _) = valid_archive(dir.path());
    let docker_path = dir.path().join("d.tar");
    export_docker(&at(&dir.path().join("src"), "img"), &docker_path);
    let docker = read(&docker_path);
    let (dest, _) = layout_with_images(dir.path(), "dest", &["keep"]);
    let before = snapshot(dest.root());
    let index_before = read(&dest.root().join("index.json"));
    let mangled = dir.path().join("m.tar");
    let mut state: u64 = 0x5eed;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    let (mut refused, mut imported) = (0, 0);
    for (name, original) in [("oci", &oci), ("docker", &docker)] {
        for round in 0..120 {
            let mut bytes = original.clone();
            match round % 4 {
                0 => {
                    for _ in 0..1 + next(6) {
                        let i = next(bytes.len());
                        bytes[i] = next(256) as u8;
                    }
                }
                1 => {
                    let i = next(bytes.len().min(8192));
                    bytes[i] ^= 1 << next(8);
                }
                2 => bytes.truncate(next(bytes.len())),
                _ => {
                    let start = next(bytes.len());
                    let end = (start + 1 + next(600)).min(bytes.len());
                    for b in &mut bytes[start..end] {
                        *b = next(256) as u8;
                    }
                }
            }
            write(&mangled, &bytes);
            let what = format!("{name} round {round}");
            let r = run(&["import", s(&mangled), s(dest.root()), "--force"]);
            assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
            match r.code {
                0 => {
                    imported += 1;
                    fsck_ok(dest.root());
                    // Back to the starting state for the next round, whatever was tagged.
                    write(&dest.root().join("index.json"), &index_before);
                    ok(&["gc", s(dest.root())]);
                }
                1 => {
                    refused += 1;
                    assert!(!r.stderr.trim().is_empty(), "{what}: exit 1 without a word");
                }
                code => panic!("{what}: exit {code}: {}", r.stderr),
            }
            assert!(
                snapshot(dest.root()) == before,
                "{what}: the destination is not as it was"
            );
        }
    }
    eprintln!("{refused} mangled archives refused, {imported} imported intact");
    assert!(
        refused >= 120,
        "too few refusals ({refused}) to test anything"
    );
}

#[test]
fn a_dry_run_import_checks_everything_and_publishes_nothing() {
    let dir = tempdir();
    let (src_path, v1, v2, receiver) = two_versions(dir.path());
    let full = dir.path().join("full.tar");
    ok(&["export", &at(&src_path, "v2"), "-o", s(&full)]);
    let inc = dir.path().join("inc.tar");
    let exclude = ["--exclude-present-in", s(&receiver)];
    ok(&[
        &["export", &at(&src_path, "v2"), "-o", s(&inc)][..],
        &exclude[..],
    ]
    .concat());

    // Into the receiver: what an import would write, and the receiver untouched.
    let before = snapshot(&receiver);
    let report = json(&["import", "--dry-run", s(&inc), s(&receiver), "--json"]);
    assert_eq!(report["dryRun"], true);
    assert_eq!(report["images"][0]["tag"], "v2");
    assert_eq!(
        report["blobsWritten"], 3,
        "v2's manifest, config, app layer: {report:#}"
    );
    assert_eq!(report["blobsPresent"], 1, "the base layer: {report:#}");
    assert!(
        snapshot(&receiver) == before,
        "a dry run changed the layout"
    );
    // A real import then writes exactly that.
    let real = json(&["import", s(&inc), s(&receiver), "--json"]);
    assert_eq!(real["dryRun"], false);
    assert_eq!(real["blobsWritten"], report["blobsWritten"]);
    assert_eq!(tag_digest(&receiver, "v2"), v2.manifest.digest);

    // A missing layout stands for an empty one and is not created: the full archive
    // passes, the incremental one fails naming what the empty receiver lacks.
    let nowhere = dir.path().join("nowhere");
    let out = run(&["import", "--dry-run", s(&full), s(&nowhere)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("dry run: would import 1 image "),
        "{}",
        out.stderr
    );
    assert!(!nowhere.exists(), "a dry run created the layout");
    let err = fails(&["import", "--dry-run", s(&inc), s(&nowhere)], 1);
    assert!(err.contains(&v1.layers[0].to_string()), "{err}");
    assert!(!nowhere.exists());

    // A corrupt blob is found as in a real import.
    let mut bytes = read(&full);
    let layer = v2.layers[1].hex().to_owned();
    let list = members(&bytes);
    let m = list
        .iter()
        .find(|m| m.name.ends_with(&layer))
        .expect("the app layer in the archive");
    bytes[m.offset as usize] ^= 0xff;
    write(&full, &bytes);
    let err = fails(&["import", "--dry-run", s(&full), s(&nowhere)], 1);
    assert!(err.contains(&layer), "{err}");
    assert!(!nowhere.exists());
}
