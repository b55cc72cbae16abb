//! Artifacts seen as artifacts: `ls` and `inspect` say what an artifact is and what it
//! refers to, `artifact push` takes relative paths and directories as oras does, `artifact
//! pull` unpacks directories.

use std::path::Path;

use strata::spec::{media_type, to_canonical_json, Descriptor};

use crate::util::*;

/// A layout at `dir/lay` with the image `img` (one layer) and, pushed with `--subject
/// :img`, the artifact `sbom` holding one file; the image's digest.
fn image_and_sbom(dir: &Path) -> (String, String) {
    let layout = strata::Layout::init(dir.join("lay")).unwrap();
    let image = write_image(&layout, &["base"], "amd64");
    add_entry(&layout, &image.manifest, Some("img"));
    let file = dir.join("sbom.json");
    std::fs::write(&file, br#"{"packages":[]}"#).unwrap();
    let lay = s(&dir.join("lay")).to_owned();
    ok(&[
        "artifact",
        "push",
        &format!("{lay}:sbom"),
        "--artifact-type",
        "application/vnd.example.sbom+json",
        "--subject",
        ":img",
        &format!("{}:application/spdx+json", s(&file)),
    ]);
    (lay, image.manifest.digest.clone())
}

fn entry<'a>(listed: &'a serde_json::Value, tag: &str) -> &'a serde_json::Value {
    listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["tag"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {listed:#}"))
}

/// The bytes of a manifest and the blobs it names directly.
fn own_bytes(layout: &str, tag: &str) -> u64 {
    let raw = ok_bytes(&["inspect", &format!("{layout}:{tag}"), "--raw", "manifest"]);
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let layers: u64 = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    raw.len() as u64 + m["config"]["size"].as_u64().unwrap() + layers
}

#[test]
fn ls_json_gives_an_artifacts_type_subject_and_own_size() {
    let dir = tempdir();
    let (lay, image) = image_and_sbom(dir.path());
    let listed = json(&["ls", &lay, "--json"]);
    let sbom = entry(&listed, "sbom");
    assert_eq!(sbom["artifactType"], "application/vnd.example.sbom+json");
    assert_eq!(sbom["subject"], image.as_str());
    // Its own manifest, config and file: not the image it describes.
    assert_eq!(sbom["size"], own_bytes(&lay, "sbom"), "{listed:#}");
    let img = entry(&listed, "img");
    assert!(img["artifactType"].is_null(), "{listed:#}");
    assert!(img["subject"].is_null(), "{listed:#}");
    assert_eq!(img["size"], own_bytes(&lay, "img"), "{listed:#}");
    assert_eq!(img["platforms"], serde_json::json!(["linux/amd64"]));
}

#[test]
fn ls_takes_an_artifacts_type_from_its_config_when_artifact_type_is_absent() {
    let dir = tempdir();
    let layout = strata::Layout::init(dir.path().join("lay")).unwrap();
    let config = layout.put_blob(b"{\"chart\":1}").unwrap();
    let body = layout.put_blob(b"chart").unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "config": Descriptor::new("application/vnd.cncf.helm.config.v1+json", &config.digest, config.size),
        "layers": [Descriptor::new("application/vnd.cncf.helm.chart.content.v1.tar+gzip", &body.digest, body.size)],
    });
    let blob = layout.put_blob(&to_canonical_json(&manifest)).unwrap();
    add_entry(
        &layout,
        &Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size),
        Some("chart"),
    );
    let listed = json(&["ls", s(&dir.path().join("lay")), "--json"]);
    let chart = entry(&listed, "chart");
    assert_eq!(
        chart["artifactType"], "application/vnd.cncf.helm.config.v1+json",
        "{listed:#}"
    );
    assert!(chart["subject"].is_null());
    assert!(chart["platforms"].as_array().unwrap().is_empty());
}

#[test]
fn ls_shows_an_artifacts_type_and_subject_and_keeps_image_rows() {
    let dir = tempdir();
    let (lay, image) = image_and_sbom(dir.path());
    let out = ok(&["ls", &lay]);
    let row = |tag: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{tag} ")))
            .unwrap_or_else(|| panic!("no {tag} row in\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let short = format!("sha256:{}", &image["sha256:".len()..][..12]);
    let sbom = row("sbom");
    assert_eq!(sbom[2], "artifact", "{out}");
    assert_eq!(
        &sbom[5..],
        ["application/vnd.example.sbom+json", "->", short.as_str()],
        "{out}"
    );
    let img = row("img");
    assert_eq!(img[2], "manifest", "{out}");
    assert_eq!(&img[5..], ["linux/amd64"], "{out}");
}

#[test]
fn ls_help_says_what_size_counts() {
    let help = ok(&["ls", "--help"]);
    assert!(help.contains("SIZE is the entry's own"), "{help}");
    assert!(help.contains("subject"), "{help}");
}

#[test]
fn inspect_json_of_an_artifact_has_its_type_subject_files_and_annotations() {
    let dir = tempdir();
    let (lay, image) = image_and_sbom(dir.path());
    let sbom = json(&["inspect", &format!("{lay}:sbom"), "--json"]);
    assert_eq!(sbom["artifactType"], "application/vnd.example.sbom+json");
    assert_eq!(sbom["subject"], image.as_str());
    let files = sbom["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{sbom:#}");
    assert_eq!(files[0]["title"], "sbom.json");
    assert_eq!(files[0]["mediaType"], "application/spdx+json");
    assert_eq!(files[0]["size"], 15);
    assert_eq!(files[0]["digest"], sbom["layers"][0]["digest"]);
    assert!(sbom["annotations"].is_object(), "{sbom:#}");
    // An image has no files, and refers to nothing.
    let img = json(&["inspect", &format!("{lay}:img"), "--json"]);
    assert!(img.get("files").is_none(), "{img:#}");
    assert!(
        img["artifactType"].is_null() && img["subject"].is_null(),
        "{img:#}"
    );
}

#[test]
fn inspect_of_an_artifact_shows_files_not_empty_image_fields() {
    let dir = tempdir();
    let layout = strata::Layout::init(dir.path().join("lay")).unwrap();
    write_artifact(&layout, "art", &[("notes.txt", "hello")]);
    // A layer without a title, as other tools may write.
    let loose = layout.put_blob(b"loose").unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "artifactType": "application/x",
        "config": Descriptor::new(media_type::EMPTY, &sha256(b"{}"), 2),
        "layers": [Descriptor::new("text/plain", &loose.digest, loose.size)],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    });
    let blob = layout.put_blob(&to_canonical_json(&manifest)).unwrap();
    add_entry(
        &layout,
        &Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size),
        Some("loose"),
    );
    let lay = s(&dir.path().join("lay")).to_owned();
    let out = ok(&["inspect", &format!("{lay}:art")]);
    for absent in [
        "Platform:",
        "Entrypoint:",
        "Cmd:",
        "WorkingDir:",
        "User:",
        "Created:",
    ] {
        assert!(!out.contains(absent), "{absent} in\n{out}");
    }
    assert!(out.contains("Artifact:   application/x"), "{out}");
    let hello = sha256(b"hello").to_string();
    assert!(
        out.lines().any(
            |l| l.trim_start().starts_with(&format!("notes.txt  {hello}"))
                && l.trim_end().ends_with("text/plain")
        ),
        "{out}"
    );
    let out = ok(&["inspect", &format!("{lay}:loose")]);
    assert!(
        out.contains(&format!("(untitled)  {}", loose.digest)),
        "{out}"
    );
    assert!(
        out.contains("Annotations:\n  org.opencontainers.image.created=2024-01-01T00:00:00Z"),
        "{out}"
    );
    // Images are shown as before.
    let image = write_image(&layout, &["base"], "amd64");
    add_entry(&layout, &image.manifest, Some("img"));
    let out = ok(&["inspect", &format!("{lay}:img")]);
    assert!(out.contains("Platform:   linux/amd64"), "{out}");
    assert!(out.contains("Cmd:        [\"/bin/sh\"]"), "{out}");
    assert!(!out.contains("Files:"), "{out}");
}
