//! Archives as the world writes them: `docker save` from Docker 25+ (an OCI layout plus
//! `manifest.json`, tagged and untagged), docker archives whose `manifest.json` names members
//! by any path (crane's `sha256:<hex>` config and `<hex>.tar.gz` layers, legacy
//! `<id>/layer.tar`, `./` prefixes), partial multi-platform OCI archives as `ctr image export`
//! and BuildKit write them, `tar -C dir -cf x.tar .` archives, and skopeo's archives. Each is
//! imported, checked with `strata fsck`, and unpacked by strata and by umoci for comparison.
//! Exports are opened by skopeo without naming an image.

use std::path::Path;

use serde_json::{json, Value};

use crate::unpack_diff::{assert_same, compare, Known, ROOT};
use crate::util::*;

// ---------------------------------------------------------------------------------------
// Images and archives
// ---------------------------------------------------------------------------------------

/// Two uncompressed layers: a small tree, then a change to it.
fn layers() -> Vec<Vec<u8>> {
    let mut one = TarBuilder::new();
    one.dir("etc", 0o755)
        .file("etc/hostname", b"world\n", 0o644)
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/tool", b"#!/bin/sh\necho hi\n", 0o755)
        .symlink("usr/bin/alias", "tool");
    let mut two = TarBuilder::new();
    two.dir("etc", 0o755)
        .file("etc/motd", b"hello\n", 0o644)
        .whiteout("usr/bin", "alias");
    vec![one.finish(), two.finish()]
}

/// A docker image config over `tars` (as docker writes it: Go's field order).
fn docker_config(tars: &[Vec<u8>], arch: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = tars.iter().map(|t| sha256(t).to_string()).collect();
    serde_json::to_vec(&json!({
        "architecture": arch,
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/usr/bin/tool"], "WorkingDir": "/"},
        "created": "2024-01-20T10:00:00Z",
        "history": [{"created_by": "ADD one"}, {"created_by": "ADD two"}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json")
}

fn hex(bytes: &[u8]) -> String {
    sha256(bytes).hex().to_owned()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip in memory");
    gz.finish().expect("gzip in memory")
}

/// A tar of `members` in order: a name ending in `/` is a directory.
fn archive(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut t = TarBuilder::new();
    for (name, bytes) in members {
        if name.ends_with('/') {
            t.dir(name, 0o755);
        } else {
            t.file(name, bytes, 0o644);
        }
    }
    t.finish()
}

fn m(name: &str, bytes: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
    (name.to_owned(), bytes.into())
}

/// `docker save` as Docker 25 writes it (moby image/tarexport/save.go, graph-driver store):
/// the archive is the walk of a directory, in name order; layers are uncompressed blobs named
/// by their diff_id, each with the legacy v1 JSON of its layer beside it; the OCI manifest's
/// config descriptor carries the platform; `index.json` (Go's `json.Marshal`, no newline)
/// lists one entry per tag with containerd's full name and the tag, or `null` for an image
/// saved by ID; `manifest.json` and `repositories` are written by a JSON encoder (newline
/// after). `manifests` overrides index.json's list (`Some("[]")`). Docker 25.0.0 put only
/// foreign layers in the OCI manifest (`"layers":[]` for an ordinary image, manifest.json
/// alone listing them); later releases list every layer: `full_manifest` picks the latter.
fn docker25(tags: &[(&str, &str)], manifests: Option<&str>, full_manifest: bool) -> Vec<u8> {
    let tars = layers();
    let config = docker_config(&tars, "amd64");
    let mut blobs: Vec<Vec<u8>> = tars.clone();
    blobs.push(config.clone());
    // The legacy v1 layer JSON docker still writes for each layer (unreferenced).
    for (i, t) in tars.iter().enumerate() {
        blobs.push(
            format!(
                r#"{{"id":"{}","created":"1970-01-01T00:00:00Z","container_config":{{"Cmd":null}},"os":"linux"}}"#,
                hex(&[t.as_slice(), &[i as u8]].concat())
            )
            .into_bytes(),
        );
    }
    let layer_descs: Vec<Value> = tars
        .iter()
        .filter(|_| full_manifest)
        .map(|t| {
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                   "digest": sha256(t).to_string(), "size": t.len()})
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}},"layers":{}}}"#,
        sha256(&config),
        config.len(),
        serde_json::to_string(&layer_descs).expect("json")
    );
    blobs.push(manifest.clone().into_bytes());
    let entries: Vec<String> = tags
        .iter()
        .map(|(full, tag)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"annotations":{{"io.containerd.image.name":"{full}","org.opencontainers.image.ref.name":"{tag}"}},"platform":{{"architecture":"amd64","os":"linux"}}}}"#,
                sha256(manifest.as_bytes()),
                manifest.len()
            )
        })
        .collect();
    let list = match manifests {
        Some(list) => list.to_owned(),
        None if entries.is_empty() => "null".to_owned(),
        None => format!("[{}]", entries.join(",")),
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":{list}}}"#
    );
    let repo_tags: Vec<String> = tags
        .iter()
        .map(|(full, _)| full.trim_start_matches("docker.io/library/").to_owned())
        .collect();
    let manifest_json = format!(
        "{}\n",
        serde_json::to_string(&json!([{
            "Config": format!("blobs/sha256/{}", hex(&config)),
            "RepoTags": if repo_tags.is_empty() { Value::Null } else { json!(repo_tags) },
            "Layers": tars.iter().map(|t| format!("blobs/sha256/{}", hex(t))).collect::<Vec<_>>(),
        }]))
        .expect("json")
    );
    blobs.sort_by_key(|b| hex(b));
    let mut members = vec![m("blobs/", ""), m("blobs/sha256/", "")];
    for b in &blobs {
        members.push(m(&format!("blobs/sha256/{}", hex(b)), b.clone()));
    }
    members.push(m("index.json", index));
    members.push(m("manifest.json", manifest_json));
    members.push(m("oci-layout", r#"{"imageLayoutVersion": "1.0.0"}"#));
    if !repo_tags.is_empty() {
        let mut repos = serde_json::Map::new();
        for rt in &repo_tags {
            let (name, tag) = rt.rsplit_once(':').expect("NAME:TAG");
            repos.insert(
                name.into(),
                json!({ tag: hex(tars.last().expect("layers")) }),
            );
        }
        members.push(m("repositories", format!("{}\n", Value::Object(repos))));
    }
    archive(&members)
}

// ---------------------------------------------------------------------------------------
// Checking an import
// ---------------------------------------------------------------------------------------

/// The root directory has no entry in these layers: its times are the unpacker's choice.
fn root_mtime() -> Known {
    Known {
        path: "/",
        field: "mtime",
        strata: "*",
        why: "no layer has an entry for the root directory: each tool leaves its own time",
    }
}

/// `strata import ARCHIVE LAYOUT --json` with `extra` flags; the report.
fn import(archive: &Path, layout: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["import", s(archive), s(layout), "--json"];
    args.extend_from_slice(extra);
    json(&args)
}

fn fsck_clean(layout: &Path) {
    let report = json(&["fsck", s(layout), "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["unreferenced"], json!([]), "{report:#}");
}

/// fsck is clean and `tag` unpacks as umoci unpacks it.
fn check_unpacks(work: &Path, layout: &Path, tag: &str) {
    fsck_clean(layout);
    if !peer("umoci") {
        return;
    }
    assert_same(vec![compare(work, layout, tag, ROOT, &[root_mtime()])]);
}

/// Writes `bytes` to `dir/name`; the path.
fn save(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    write(&path, bytes);
    path
}

// ---------------------------------------------------------------------------------------
// 1. Docker 25+
// ---------------------------------------------------------------------------------------

#[test]
fn docker25_untagged_save_imports_as_an_untagged_image() {
    let dir = tempdir();
    let work = dir.path();
    for (name, list) in [("null", None), ("empty", Some("[]"))] {
        let file = save(work, &format!("{name}.tar"), &docker25(&[], list, true));
        let layout = work.join(format!("layout-{name}"));
        let out = ok(&["import", s(&file), s(&layout)]);
        let report = import(&file, &work.join(format!("again-{name}")), &[]);
        let images = report["images"].as_array().expect("images");
        assert_eq!(images.len(), 1, "{report:#}");
        assert_eq!(images[0]["tag"], Value::Null, "{report:#}");
        let digest = images[0]["digest"].as_str().expect("digest");
        assert!(
            out.contains(&format!("{digest} (untagged)")),
            "import prints the untagged image's digest: {out}"
        );
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
                .expect("json");
        assert_eq!(index["manifests"].as_array().expect("list").len(), 1);
        assert_eq!(index["manifests"][0]["digest"], digest);
        assert!(index["manifests"][0]["annotations"].is_null(), "{index:#}");
        ok(&["tag", &format!("{}@{digest}", s(&layout)), "saved"]);
        check_unpacks(work, &layout, "saved");
    }
}

#[test]
fn docker25_tagged_save_imports_under_containerd_names() {
    let dir = tempdir();
    let work = dir.path();
    for (form, full) in [("25.0.0", false), ("25.0.2", true)] {
        let file = save(
            work,
            &format!("tagged-{form}.tar"),
            &docker25(
                &[
                    ("docker.io/library/app:v1", "v1"),
                    ("docker.io/library/app:latest", "latest"),
                ],
                None,
                full,
            ),
        );
        let layout = work.join(format!("layout-{form}"));
        let report = import(&file, &layout, &[]);
        let tags: Vec<&str> = report["images"]
            .as_array()
            .expect("images")
            .iter()
            .filter_map(|i| i["tag"].as_str())
            .collect();
        assert_eq!(
            tags,
            ["docker.io/library/app:v1", "docker.io/library/app:latest"],
            "{form}: {report:#}"
        );
        assert_eq!(
            layer_media_types(&layout, "docker.io/library/app:v1").len(),
            2,
            "{form}: the image has its layers"
        );
        check_unpacks(work, &layout, "docker.io/library/app:v1");
    }
}

// ---------------------------------------------------------------------------------------
// 2. docker archives naming their members by any path
// ---------------------------------------------------------------------------------------

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).expect("zstd in memory")
}

/// A docker archive of the image: `config` at `config_name`, each layer stored as given at its
/// name, `manifest.json` naming them as `refs` says (a layer's name as manifest.json gives
/// it, when it differs from the member's), members in this order.
fn docker_archive(
    config_name: &str,
    config_ref: &str,
    layers: &[(String, Vec<u8>, String)],
    tag: &str,
    prefix: &str,
) -> Vec<u8> {
    let config = docker_config(&self::layers(), "amd64");
    let manifest = format!(
        "{}\n",
        json!([{
            "Config": config_ref,
            "RepoTags": [tag],
            "Layers": layers.iter().map(|(_, _, r)| r.clone()).collect::<Vec<_>>(),
        }])
    );
    let mut members = vec![m(&format!("{prefix}manifest.json"), manifest)];
    members.push(m(&format!("{prefix}{config_name}"), config));
    for (name, bytes, _) in layers {
        if let Some((dir, _)) = name.rsplit_once('/') {
            members.push(m(&format!("{prefix}{dir}/"), ""));
        }
        members.push(m(&format!("{prefix}{name}"), bytes.clone()));
    }
    archive(&members)
}

/// The layers' media types in the manifest `tag` names.
fn layer_media_types(layout: &Path, tag: &str) -> Vec<String> {
    let raw = ok(&[
        "inspect",
        &format!("{}:{tag}", s(layout)),
        "--raw",
        "manifest",
    ]);
    let manifest: Value = serde_json::from_str(&raw).expect("manifest JSON");
    let layers = manifest["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers in {manifest:#}"));
    layers
        .iter()
        .map(|l| l["mediaType"].as_str().expect("mediaType").to_owned())
        .collect()
}

#[test]
fn docker_archives_name_members_by_any_path() {
    let dir = tempdir();
    let work = dir.path();
    let tars = layers();
    let config = docker_config(&tars, "amd64");
    let (gz, zs) = (gzip(&tars[0]), zstd(&tars[1]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // crane / go-containerregistry's tarball: config `sha256:<hex>`, `<hex>.tar.gz` layers.
        (
            "crane",
            docker_archive(
                &format!("sha256:{}", hex(&config)),
                &format!("sha256:{}", hex(&config)),
                &[
                    (
                        format!("{}.tar.gz", hex(&gz)),
                        gz.clone(),
                        format!("{}.tar.gz", hex(&gz)),
                    ),
                    (
                        format!("{}.tar.gz", hex(&zs)),
                        zs.clone(),
                        format!("{}.tar.gz", hex(&zs)),
                    ),
                ],
                "app:crane",
                "",
            ),
        ),
        // The legacy layout, every member under `./`, manifest.json naming some with `./`.
        (
            "legacy",
            docker_archive(
                &format!("{}.json", hex(&config)),
                &format!("./{}.json", hex(&config)),
                &[
                    (
                        format!("{}/layer.tar", hex(&tars[0])),
                        tars[0].clone(),
                        format!("./{}/layer.tar", hex(&tars[0])),
                    ),
                    (
                        format!("{}/layer.tar", hex(&tars[1])),
                        tars[1].clone(),
                        format!("{}/layer.tar", hex(&tars[1])),
                    ),
                ],
                "app:legacy",
                "./",
            ),
        ),
        // Names with no hint at all: a config in a directory, layers without extensions.
        (
            "plain",
            docker_archive(
                "images/config",
                "images/config",
                &[
                    ("layers/one".into(), gz.clone(), "layers/one".into()),
                    ("layers/two".into(), tars[1].clone(), "layers/two".into()),
                ],
                "app:plain",
                "",
            ),
        ),
    ];
    for (name, bytes) in cases {
        let file = save(work, &format!("{name}.tar"), &bytes);
        let layout = work.join(format!("layout-{name}"));
        let report = import(&file, &layout, &["--compress", "none"]);
        assert_eq!(report["format"], "docker", "{report:#}");
        let tag = format!("app:{name}");
        assert_eq!(report["images"][0]["tag"], tag.as_str(), "{report:#}");
        assert_eq!(
            layer_media_types(&layout, &tag),
            ["application/vnd.oci.image.layer.v1.tar"; 2],
            "{name}: --compress none stores every layer uncompressed"
        );
        check_unpacks(work, &layout, &tag);
    }
}

/// docker 25 with the containerd image store keeps layers compressed in blobs/; an image saved
/// by ID is listed only in manifest.json, whose layers are then gzip (or zstd) blobs. (umoci
/// 0.4.7 cannot unpack zstd: that image is unpacked by strata alone.)
#[test]
fn docker_oci_form_with_compressed_layer_blobs() {
    let dir = tempdir();
    let work = dir.path();
    let tars = layers();
    let config = docker_config(&tars, "amd64");
    const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    let cases = [
        ("gzip", [gzip(&tars[0]), tars[1].clone()], [GZIP, TAR], true),
        (
            "zstd",
            [zstd(&tars[0]), gzip(&tars[1])],
            [ZSTD, GZIP],
            false,
        ),
    ];
    for (name, stored, media_types, unpack) in cases {
        let mut members = vec![m("blobs/", ""), m("blobs/sha256/", "")];
        for b in stored.iter().chain([&config]) {
            members.push(m(&format!("blobs/sha256/{}", hex(b)), b.clone()));
        }
        members.push(m(
            "index.json",
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":null}"#,
        ));
        let manifest = json!([{
            "Config": format!("blobs/sha256/{}", hex(&config)),
            "RepoTags": null,
            "Layers": stored.iter().map(|b| format!("blobs/sha256/{}", hex(b))).collect::<Vec<_>>(),
        }]);
        members.push(m("manifest.json", format!("{manifest}\n")));
        members.push(m("oci-layout", r#"{"imageLayoutVersion": "1.0.0"}"#));
        let file = save(work, &format!("{name}.tar"), &archive(&members));
        let layout = work.join(format!("layout-{name}"));
        let report = import(&file, &layout, &[]);
        let digest = report["images"][0]["digest"].as_str().expect("digest");
        ok(&["tag", &format!("{}@{digest}", s(&layout)), "saved"]);
        // The blobs are kept as they are: their media types say how they are compressed.
        assert_eq!(layer_media_types(&layout, "saved"), media_types, "{name}");
        fsck_clean(&layout);
        ok(&[
            "unpack",
            &format!("{}:saved", s(&layout)),
            s(&work.join(format!("b-{name}"))),
        ]);
        if unpack {
            check_unpacks(work, &layout, "saved");
        }
    }
}

#[test]
fn manifest_json_paths_out_of_the_archive_are_refused() {
    let dir = tempdir();
    let work = dir.path();
    let tars = layers();
    for (config_ref, layer_ref) in [
        (
            "../config.json".to_owned(),
            format!("{}/layer.tar", hex(&tars[0])),
        ),
        ("config.json".to_owned(), "/etc/passwd".to_owned()),
        (
            "config.json".to_owned(),
            format!("x/../../{}/layer.tar", hex(&tars[0])),
        ),
    ] {
        let bytes = docker_archive(
            "config.json",
            &config_ref,
            &[
                (
                    format!("{}/layer.tar", hex(&tars[0])),
                    tars[0].clone(),
                    layer_ref.clone(),
                ),
                (
                    format!("{}/layer.tar", hex(&tars[1])),
                    tars[1].clone(),
                    format!("{}/layer.tar", hex(&tars[1])),
                ),
            ],
            "app:x",
            "",
        );
        let file = save(work, "hostile.tar", &bytes);
        let layout = work.join("hostile");
        let err = fails(&["import", s(&file), s(&layout)], 1);
        assert!(
            err.contains("refused") && err.contains("manifest.json"),
            "{config_ref} / {layer_ref}: {err}"
        );
        assert!(!layout.exists(), "a failed import creates nothing");
    }
}

// ---------------------------------------------------------------------------------------
// 3. Multi-platform OCI archives with blobs for some platforms only
// ---------------------------------------------------------------------------------------

/// One platform's image: its blobs and its index entry.
struct PlatformImage {
    entry: Value,
    manifest: Vec<u8>,
    blobs: Vec<Vec<u8>>,
}

fn platform_image(arch: &str, tars: &[Vec<u8>], gzipped: bool) -> PlatformImage {
    let config = docker_config(tars, arch);
    let stored: Vec<Vec<u8>> = tars
        .iter()
        .map(|t| if gzipped { gzip(t) } else { t.clone() })
        .collect();
    let media_type = if gzipped {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    };
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&config).to_string(), "size": config.len()},
        "layers": stored.iter().map(|b| json!({"mediaType": media_type,
                   "digest": sha256(b).to_string(), "size": b.len()})).collect::<Vec<_>>(),
    }))
    .expect("json");
    let entry = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha256(&manifest).to_string(), "size": manifest.len(),
        "platform": {"architecture": arch, "os": "linux"}});
    let mut blobs = stored;
    blobs.push(config);
    PlatformImage {
        entry,
        manifest,
        blobs,
    }
}

/// BuildKit's attestation manifest for `image` (platform unknown/unknown, pointing at the
/// image by annotation), with its blobs.
fn attestation(image: &PlatformImage) -> PlatformImage {
    let statement = json!({"_type": "https://in-toto.io/Statement/v0.1",
        "subject": [{"digest": {"sha256": image.entry["digest"]}}]})
    .to_string()
    .into_bytes();
    let config = br#"{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#.to_vec();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.in-toto+json",
                    "digest": sha256(&statement).to_string(), "size": statement.len(),
                    "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}],
    }))
    .expect("json");
    let entry = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha256(&manifest).to_string(), "size": manifest.len(),
        "annotations": {"vnd.docker.reference.digest": image.entry["digest"],
                        "vnd.docker.reference.type": "attestation-manifest"},
        "platform": {"architecture": "unknown", "os": "unknown"}});
    PlatformImage {
        entry,
        manifest,
        blobs: vec![statement, config],
    }
}

/// An OCI archive whose `index.json` tags an index over `images`, with the blobs of only
/// those `present` says (the index itself always), members under `prefix`; with
/// `docker_manifest`, containerd's docker-compatible `manifest.json` for the first image, as
/// `ctr image export` adds by default. Returns the archive and the index's bytes.
fn partial_archive(
    images: &[&PlatformImage],
    present: &[bool],
    prefix: &str,
    docker_manifest: bool,
) -> (Vec<u8>, Vec<u8>) {
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": images.iter().map(|i| i.entry.clone()).collect::<Vec<_>>(),
    }))
    .expect("json");
    let top = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": sha256(&index).to_string(), "size": index.len(),
            "annotations": {"io.containerd.image.name": "docker.io/library/app:multi",
                            "org.opencontainers.image.ref.name": "multi"}}]});
    let mut blobs = vec![index.clone()];
    for (image, here) in images.iter().zip(present) {
        if *here {
            blobs.push(image.manifest.clone());
            blobs.extend(image.blobs.iter().cloned());
        }
    }
    blobs.sort_by_key(|b| hex(b));
    blobs.dedup();
    let mut members = vec![
        m(
            &format!("{prefix}oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        ),
        m(&format!("{prefix}index.json"), top.to_string()),
        m(&format!("{prefix}blobs/"), ""),
        m(&format!("{prefix}blobs/sha256/"), ""),
    ];
    for b in &blobs {
        members.push(m(&format!("{prefix}blobs/sha256/{}", hex(b)), b.clone()));
    }
    if docker_manifest {
        let (config, layers) = images[0].blobs.split_last().expect("a config");
        let path = |b: &Vec<u8>| format!("blobs/sha256/{}", hex(b));
        let list = json!([{"Config": path(config), "RepoTags": ["docker.io/library/app:multi"],
            "Layers": layers.iter().map(path).collect::<Vec<_>>()}]);
        members.push(m(&format!("{prefix}manifest.json"), list.to_string()));
    }
    (archive(&members), index)
}

#[test]
fn partial_multi_platform_archives_import_what_is_there() {
    let dir = tempdir();
    let work = dir.path();
    let tars = layers();
    let mut arm_tars = tars.clone();
    arm_tars.push(tar_layer("arm-only"));
    let amd = platform_image("amd64", &tars, true);
    let arm = platform_image("arm64", &arm_tars, true);
    let (amd_att, arm_att) = (attestation(&amd), attestation(&arm));
    // ctr image export: the host's image only; BuildKit: images and attestations, one
    // platform missing.
    let cases: Vec<(&str, Vec<&PlatformImage>, Vec<bool>)> = vec![
        ("ctr", vec![&amd, &arm], vec![true, false]),
        (
            "buildkit",
            vec![&amd, &arm, &amd_att, &arm_att],
            vec![true, false, true, false],
        ),
    ];
    for (name, images, present) in cases {
        let (bytes, original) = partial_archive(&images, &present, "", name == "ctr");
        let file = save(work, &format!("{name}.tar"), &bytes);
        let layout = work.join(format!("layout-{name}"));
        let run = run(&["import", s(&file), s(&layout)]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains("linux/arm64")
                && run.stderr.contains(arm.entry["digest"].as_str().unwrap()),
            "{name}: the platform left out is named on stderr: {}",
            run.stderr
        );
        fsck_clean(&layout);
        // The tag names a new index of the platforms that arrived.
        let tag = "docker.io/library/app:multi";
        let raw = ok(&[
            "inspect",
            &format!("{}:{tag}", s(&layout)),
            "--raw",
            "index",
        ]);
        let index: Value = serde_json::from_str(&raw).expect("index JSON");
        let kept: Vec<&Value> = index["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .collect();
        let want: Vec<&Value> = images
            .iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .map(|(i, _)| &i.entry)
            .collect();
        assert_eq!(kept, want, "{name}: {index:#}");
        assert_ne!(sha256(raw.as_bytes()), sha256(&original));
        // The host's image unpacks through the tag, and as umoci unpacks it.
        let bundle = work.join(format!("bundle-{name}"));
        ok(&["unpack", &format!("{}:{tag}", s(&layout)), s(&bundle)]);
        assert!(bundle.join("rootfs/etc/motd").is_file());
        let digest = amd.entry["digest"].as_str().expect("digest");
        ok(&["tag", &format!("{}@{digest}", s(&layout)), "host"]);
        check_unpacks(work, &layout, "host");
    }
}

#[test]
fn partial_archives_take_platform_flags_as_export_does() {
    let dir = tempdir();
    let work = dir.path();
    let tars = layers();
    let amd = platform_image("amd64", &tars, false);
    let arm = platform_image("arm64", &tars[..1], false);
    let (bytes, _) = partial_archive(&[&amd, &arm], &[true, false], "", false);
    let file = save(work, "partial.tar", &bytes);

    // --platform: the tag names that platform's manifest, as export --platform writes it.
    let layout = work.join("one");
    let report = import(&file, &layout, &["--platform", "linux/amd64"]);
    assert_eq!(
        report["images"][0]["digest"], amd.entry["digest"],
        "{report:#}"
    );
    assert_eq!(
        report["images"][0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    fsck_clean(&layout);
    check_unpacks(work, &layout, "docker.io/library/app:multi");

    // A platform whose blobs are not there, or every platform, cannot be had.
    for flags in [&["--platform", "linux/arm64"][..], &["--all-platforms"][..]] {
        let layout = work.join("none");
        let mut args = vec!["import", s(&file), s(&layout)];
        args.extend_from_slice(flags);
        let err = fails(&args, 1);
        assert!(
            err.contains(arm.entry["digest"].as_str().unwrap()) || err.contains("linux/arm64"),
            "{flags:?}: {err}"
        );
        assert!(
            !layout.exists(),
            "{flags:?}: a failed import creates nothing"
        );
    }
    let err = fails(
        &[
            "import",
            s(&file),
            s(&work.join("x")),
            "--platform",
            "linux/s390x",
        ],
        1,
    );
    assert!(err.contains("linux/s390x"), "{err}");
}

// ---------------------------------------------------------------------------------------
// 4. `./` members and docker's legacy `repositories`
// ---------------------------------------------------------------------------------------

#[test]
fn oci_archives_made_by_tar_of_a_directory_import() {
    let dir = tempdir();
    let work = dir.path();
    // A layout on disk, archived as `tar -C dir -cf x.tar .` does: every member under `./`,
    // the directory itself first.
    let source = work.join("source");
    let layout = strata::Layout::init(&source).expect("init");
    let packed: Vec<(Vec<u8>, Packing)> =
        layers().into_iter().map(|t| (t, Packing::Gzip)).collect();
    write_layered_image(&layout, "dot", &packed, json!({}));
    let file = work.join("dot.tar");
    let out = std::process::Command::new("tar")
        .args(["-C", s(&source), "-cf", s(&file), "."])
        .output()
        .expect("running tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = std::process::Command::new("tar")
        .args(["-tf", s(&file)])
        .output()
        .expect("tar -t");
    assert!(String::from_utf8_lossy(&listing.stdout).starts_with("./\n"));
    let dest = work.join("dest");
    let report = import(&file, &dest, &[]);
    assert_eq!(report["format"], "oci", "{report:#}");
    assert_eq!(report["images"][0]["tag"], "dot", "{report:#}");
    check_unpacks(work, &dest, "dot");

    // A partial multi-platform archive under `./` as well.
    let amd = platform_image("amd64", &layers(), true);
    let arm = platform_image("arm64", &layers()[..1], true);
    let (bytes, _) = partial_archive(&[&amd, &arm], &[true, false], "./", true);
    let file = save(work, "partial-dot.tar", &bytes);
    let dest = work.join("partial");
    let report = import(&file, &dest, &[]);
    assert_eq!(
        report["leftOut"][0]["platform"], "linux/arm64",
        "{report:#}"
    );
    fsck_clean(&dest);
}

#[test]
fn repositories_is_ignored_beside_manifest_json_and_named_alone() {
    let dir = tempdir();
    let work = dir.path();
    let tars = layers();
    let config = docker_config(&tars, "amd64");
    let top = hex(&tars[1]);
    let repositories = format!("{{\"app\":{{\"legacy\":\"{top}\"}}}}\n");
    // The form docker 1.10 to 24 wrote: manifest.json, repositories, <id>/ directories.
    let mut bytes = docker_archive(
        &format!("{}.json", hex(&config)),
        &format!("{}.json", hex(&config)),
        &[
            (
                format!("{}/layer.tar", hex(&tars[0])),
                tars[0].clone(),
                format!("{}/layer.tar", hex(&tars[0])),
            ),
            (
                format!("{top}/layer.tar"),
                tars[1].clone(),
                format!("{top}/layer.tar"),
            ),
        ],
        "app:legacy",
        "",
    );
    // Append `repositories` and the v1 files before the end-of-archive blocks.
    let mut extra = TarBuilder::new();
    extra
        .file("repositories", repositories.as_bytes(), 0o644)
        .file(&format!("{top}/json"), br#"{"id":"x"}"#, 0o644)
        .file(&format!("{top}/VERSION"), b"1.0", 0o644);
    let extra = extra.finish();
    let end = bytes.len() - 1024;
    bytes.truncate(end);
    bytes.extend_from_slice(&extra);
    let file = save(work, "with-repositories.tar", &bytes);
    let layout = work.join("layout");
    let report = import(&file, &layout, &[]);
    assert_eq!(report["images"][0]["tag"], "app:legacy", "{report:#}");
    check_unpacks(work, &layout, "app:legacy");

    // docker before 1.10: repositories and <id>/{json,layer.tar,VERSION}, no manifest.json.
    let mut v1 = TarBuilder::new();
    v1.file("repositories", repositories.as_bytes(), 0o644)
        .dir(&top, 0o755)
        .file(&format!("{top}/VERSION"), b"1.0", 0o644)
        .file(&format!("{top}/json"), br#"{"id":"x","os":"linux"}"#, 0o644)
        .file(&format!("{top}/layer.tar"), &tars[1], 0o644);
    let file = save(work, "v1.tar", &v1.finish());
    let err = fails(&["import", s(&file), s(&work.join("v1"))], 1);
    assert!(err.contains("pre-1.10"), "{err}");
    assert!(!work.join("v1").exists());
}

// ---------------------------------------------------------------------------------------
// 5. Exports peers open without naming an image; referrers only when asked
// ---------------------------------------------------------------------------------------

/// A layout with image `app` and a signature attached to it (an untagged index.json entry,
/// as `strata artifact attach` leaves it); the layout and the signature's digest.
fn signed_layout(work: &Path) -> (std::path::PathBuf, String) {
    let path = work.join("signed");
    let layout = strata::Layout::init(&path).expect("init");
    let packed: Vec<(Vec<u8>, Packing)> =
        layers().into_iter().map(|t| (t, Packing::Gzip)).collect();
    let image = write_layered_image(&layout, "app", &packed, json!({}));
    let sig = write_referrer(&layout, &image.manifest, "signature");
    add_entry(&layout, &sig.manifest, None);
    (path, sig.manifest.digest.to_string())
}

fn archive_index(file: &Path) -> Value {
    let out = std::process::Command::new("tar")
        .args(["-xOf", s(file), "index.json"])
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("index.json")
}

#[test]
fn export_of_one_image_is_one_image_for_skopeo() {
    if !peer("skopeo") {
        return;
    }
    let dir = tempdir();
    let work = dir.path();
    let (layout, sig) = signed_layout(work);
    let file = work.join("app.tar");
    ok(&["export", &format!("{}:app", s(&layout)), "-o", s(&file)]);
    let index = archive_index(&file);
    assert_eq!(
        index["manifests"].as_array().expect("list").len(),
        1,
        "{index:#}"
    );
    let inspected = peer_ok("skopeo", &["inspect", &format!("oci-archive:{}", s(&file))]);
    assert!(inspected.contains("\"Layers\""), "{inspected}");
    let copied = work.join("copied");
    peer_ok(
        "skopeo",
        &[
            "copy",
            &format!("oci-archive:{}", s(&file)),
            &format!("oci:{}:x", s(&copied)),
        ],
    );
    check_unpacks(work, &copied, "x");

    // --referrers: the signature comes along, as an untagged entry.
    let with = work.join("with.tar");
    ok(&[
        "export",
        &format!("{}:app", s(&layout)),
        "-o",
        s(&with),
        "--referrers",
    ]);
    let index = archive_index(&with);
    let digests: Vec<&str> = index["manifests"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["digest"].as_str().expect("digest"))
        .collect();
    assert_eq!(digests.len(), 2, "{index:#}");
    assert_eq!(digests[1], sig);
}

#[test]
fn copy_with_referrers_lists_them_in_the_destination_index() {
    let dir = tempdir();
    let work = dir.path();
    let (layout, sig) = signed_layout(work);
    let dest = work.join("dest");
    ok(&[
        "copy",
        &format!("{}:app", s(&layout)),
        s(&dest),
        "--referrers",
    ]);
    let index: Value =
        serde_json::from_slice(&std::fs::read(dest.join("index.json")).expect("index"))
            .expect("json");
    let entry = index["manifests"]
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["digest"] == sig.as_str())
        .unwrap_or_else(|| panic!("the referrer is not in index.json: {index:#}"));
    assert!(entry["annotations"]["org.opencontainers.image.ref.name"].is_null());
    fsck_clean(&dest);
}

// ---------------------------------------------------------------------------------------
// 6. Archives skopeo writes
// ---------------------------------------------------------------------------------------

#[test]
fn skopeo_archives_import_and_unpack_like_umoci() {
    if !peer("skopeo") {
        return;
    }
    let dir = tempdir();
    let work = dir.path();
    let source = work.join("source");
    let layout = strata::Layout::init(&source).expect("init");
    let packed: Vec<(Vec<u8>, Packing)> = layers()
        .into_iter()
        .zip([Packing::Gzip, Packing::Plain])
        .collect();
    write_layered_image(
        &layout,
        "app",
        &packed,
        json!({"config": {"Cmd": ["/usr/bin/tool"]}}),
    );
    let from = format!("oci:{}:app", s(&source));
    let docker = work.join("docker.tar");
    peer_ok(
        "skopeo",
        &[
            "copy",
            &from,
            &format!("docker-archive:{}:example/app:v1", s(&docker)),
        ],
    );
    let oci = work.join("oci.tar");
    peer_ok(
        "skopeo",
        &["copy", &from, &format!("oci-archive:{}:v1", s(&oci))],
    );
    // skopeo writes the full name into RepoTags.
    for (file, tag, format) in [
        (&docker, "docker.io/example/app:v1", "docker"),
        (&oci, "v1", "oci"),
    ] {
        let dest = work.join(format!("dest-{format}"));
        let report = import(file, &dest, &[]);
        assert_eq!(report["format"], format, "{report:#}");
        assert_eq!(report["images"][0]["tag"], tag, "{report:#}");
        check_unpacks(work, &dest, tag);
    }
}

/// A member nothing names whose first bytes look like a layer but are not one (a damaged
/// `.gz` beside the images) is read past, as any stray file is; named by manifest.json, it
/// is refused saying why.
#[test]
fn a_stray_member_that_only_looks_like_a_layer_is_read_past() {
    let dir = tempdir();
    let work = dir.path();
    let tars = layers();
    let gz = gzip(&tars[0]);
    // Larger than the chunks a layer is read in, so that it is abandoned halfway.
    let junk = [0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef].repeat(3 << 17);
    let layer_refs = |first: &str| {
        vec![
            (format!("{}.tar.gz", hex(&gz)), gz.clone(), first.to_owned()),
            (
                format!("{}/layer.tar", hex(&tars[1])),
                tars[1].clone(),
                format!("{}/layer.tar", hex(&tars[1])),
            ),
        ]
    };
    let with_junk = |layers: &[(String, Vec<u8>, String)]| {
        // The stray member first: the members after it must still be read.
        let mut stray = TarBuilder::new();
        stray.file("notes.gz", &junk, 0o644);
        let mut bytes = stray.finish();
        bytes.truncate(bytes.len() - 1024);
        bytes.extend_from_slice(&docker_archive("cfg", "cfg", layers, "app:stray", ""));
        bytes
    };
    let file = save(
        work,
        "stray.tar",
        &with_junk(&layer_refs(&format!("{}.tar.gz", hex(&gz)))),
    );
    let layout = work.join("layout");
    let report = import(&file, &layout, &[]);
    assert!(
        report["ignored"]
            .as_array()
            .expect("ignored")
            .contains(&json!("notes.gz")),
        "{report:#}"
    );
    fsck_clean(&layout);

    let file = save(work, "named.tar", &with_junk(&layer_refs("notes.gz")));
    let err = fails(&["import", s(&file), s(&work.join("named"))], 1);
    assert!(
        err.contains("notes.gz") && err.contains("not a layer"),
        "{err}"
    );
}
