//! Bad input: each case exits 1 with a message naming the culprit and leaves the layout
//! byte-for-byte as it was.

use std::path::Path;

use crate::util::*;

/// Runs `args` (with `{L}` replaced by the layout path), expects exit 1 and every `needles`
/// in stderr, and checks the layout did not change.
fn refused(layout: &Path, args: &[&str], needles: &[&str]) {
    refused_with(layout, args, needles, 1);
}

/// As [`refused`], for a wrong invocation (exit 2).
fn refused_usage(layout: &Path, args: &[&str], needles: &[&str]) {
    refused_with(layout, args, needles, 2);
}

fn refused_with(layout: &Path, args: &[&str], needles: &[&str], code: i32) {
    let before = snapshot(layout);
    let args: Vec<String> = args.iter().map(|a| a.replace("{L}", s(layout))).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = fails(&args, code);
    for needle in needles {
        assert!(
            err.contains(needle),
            "strata {args:?}: stderr lacks {needle:?}:\n{err}"
        );
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        snapshot(layout) == before,
        "strata {args:?} changed the layout"
    );
}

/// Every read and write command, to be refused on a broken layout.
const COMMANDS: &[&[&str]] = &[
    &["ls", "{L}"],
    &["inspect", "{L}:a"],
    &["tag", "{L}:a", "new"],
    &["untag", "{L}:a"],
    &["gc", "{L}"],
    &["fsck", "{L}"],
];

#[test]
fn missing_oci_layout() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a"]);
    std::fs::remove_file(layout.root().join("oci-layout")).unwrap();
    for cmd in COMMANDS {
        refused(layout.root(), cmd, &["oci-layout", "missing"]);
    }
}

#[test]
fn layout_version_2() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a"]);
    write(
        &layout.root().join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    );
    for cmd in COMMANDS {
        refused(layout.root(), cmd, &["oci-layout", "2.0.0"]);
    }
}

#[test]
fn truncated_index_json() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a"]);
    let path = layout.root().join("index.json");
    let full = std::fs::read(&path).unwrap();
    write(&path, &full[..full.len() / 2]);
    for cmd in COMMANDS {
        refused(layout.root(), cmd, &["index.json", "malformed JSON"]);
    }
}

#[test]
fn missing_blobs_dir() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &[]);
    std::fs::remove_dir_all(layout.root().join("blobs")).unwrap();
    refused(layout.root(), &["ls", "{L}"], &["blobs", "missing"]);
}

#[test]
fn blob_content_does_not_match_its_digest() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["a"]);
    let manifest = images[0].manifest.digest().unwrap();
    let path = layout.blob_path(&manifest);
    let mut bytes = std::fs::read(&path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01; // same size, different content
    write(&path, &bytes);
    let m = manifest.to_string();
    refused(layout.root(), &["inspect", "{L}:a"], &[&m, "corrupt"]);
    refused(
        layout.root(),
        &["tag", &format!("{{L}}@{m}"), "x"],
        &[&m, "corrupt"],
    );
    refused(layout.root(), &["tag", "{L}:a", "x"], &[&m, "corrupt"]);
    refused(layout.root(), &["gc", "{L}"], &[&m]);
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains(&format!("problem: {m}")),
        "{}",
        out.stdout
    );
    // A corrupt layer is found by fsck too.
    let layer = layout.blob_path(&images[0].layers[0]);
    write(&path, &{
        bytes[i] ^= 0x01;
        bytes
    });
    let mut l = std::fs::read(&layer).unwrap();
    l[0] ^= 0xff;
    write(&layer, &l);
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains(&images[0].layers[0].to_string()),
        "{}",
        out.stdout
    );
}

/// Rewrites the first index.json entry's field to `value`.
fn set_entry_field(layout: &Path, field: &str, value: serde_json::Value) {
    let path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    index["manifests"][0][field] = value;
    write(&path, serde_json::to_string(&index).unwrap().as_bytes());
}

#[test]
fn descriptor_with_wrong_size() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["a"]);
    set_entry_field(
        layout.root(),
        "size",
        serde_json::json!(images[0].manifest.size + 1),
    );
    let m = images[0].manifest.digest.clone();
    refused(layout.root(), &["inspect", "{L}:a"], &[&m, "bytes"]);
    refused(layout.root(), &["gc", "{L}"], &[&m]);
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains(&m) && out.stdout.contains("descriptor"),
        "{}",
        out.stdout
    );
}

#[test]
fn descriptor_with_negative_size() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["a"]);
    set_entry_field(layout.root(), "size", serde_json::json!(-1));
    let m = images[0].manifest.digest.clone();
    refused(layout.root(), &["inspect", "{L}:a"], &[&m, "negative"]);
    // ls lists the entry with its error.
    let out = run(&["ls", s(layout.root())]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("negative"), "{}", out.stderr);
    refused(layout.root(), &["gc", "{L}"], &["negative"]);
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("MUST NOT be negative"),
        "{}",
        out.stdout
    );
}

#[test]
fn digest_with_path_traversal() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a"]);
    set_entry_field(
        layout.root(),
        "digest",
        serde_json::json!("sha256:../../etc/passwd"),
    );
    refused(
        layout.root(),
        &["inspect", "{L}:a"],
        &["sha256:../../etc/passwd"],
    );
    refused(layout.root(), &["gc", "{L}"], &["sha256:../../etc/passwd"]);
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("sha256:../../etc/passwd"),
        "{}",
        out.stdout
    );
    // On the command line as well.
    refused_usage(
        layout.root(),
        &["inspect", "{L}@sha256:../../etc/passwd"],
        &["etc/passwd"],
    );
}

#[test]
fn unknown_digest_algorithm() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a"]);
    refused_usage(
        layout.root(),
        &["inspect", "{L}@md5:d41d8cd98f00b204e9800998ecf8427e"],
        &["md5", "unsupported"],
    );
    set_entry_field(layout.root(), "digest", serde_json::json!("blake9:abcdef"));
    refused(layout.root(), &["inspect", "{L}:a"], &["blake9"]);
    refused(layout.root(), &["gc", "{L}"], &["blake9"]);
    // The digest grammar allows unregistered algorithms: fsck warns that it cannot verify.
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("blake9") && out.stderr.contains("cannot verify"),
        "{}",
        out.stderr
    );
}

#[test]
fn tag_that_does_not_exist() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a", "b"]);
    refused(
        layout.root(),
        &["inspect", "{L}:nope"],
        &["\"nope\"", "not found", "tags: a, b"],
    );
    refused(
        layout.root(),
        &["tag", "{L}:nope", "x"],
        &["\"nope\"", "not found"],
    );
    refused(
        layout.root(),
        &["untag", "{L}:nope"],
        &["\"nope\"", "not found"],
    );
    let missing = format!("{{L}}@sha256:{}", "0".repeat(64));
    refused(layout.root(), &["inspect", &missing], &["not an image"]);
}

#[test]
fn tag_that_breaks_ref_name_grammar() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a"]);
    for bad in ["-lead", "a..b", "sp ace", "trail/", "ünï"] {
        refused_usage(
            layout.root(),
            &["tag", "{L}:a", "--", bad],
            &["invalid tag", bad],
        );
    }
    refused_usage(
        layout.root(),
        &["inspect", "{L}:bad..tag"],
        &["invalid tag"],
    );
}

#[test]
fn manifest_that_claims_to_be_an_index() {
    // CVE-2021-41190: a document must be what its descriptor says.
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["a"]);
    set_entry_field(
        layout.root(),
        "mediaType",
        serde_json::json!(strata::spec::media_type::INDEX),
    );
    let m = images[0].manifest.digest.clone();
    refused(layout.root(), &["inspect", "{L}:a"], &[&m]);
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains(&m), "{}", out.stdout);
}
