//! fsck against the spec's rules and against what unpack meets: layers decompressed and
//! checked (compression, diff_id, tar), the spec's grammar rules, tolerance where the spec
//! and peers are tolerant, and messages that say what happened.

use std::io::Write;
use std::path::Path;

use strata::spec::{media_type, to_canonical_json, Descriptor};
use strata::Layout;

use crate::util::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// A tagged image with one layer stored as `stored` under `mt`, whose config gives
/// `diff_id`; returns the layer's digest.
fn image_with_layer(layout: &Layout, tag: &str, stored: &[u8], mt: &str, diff_id: &str) -> String {
    let blob = layout.put_blob(stored).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config = layout.put_blob(&to_canonical_json(&config)).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::MANIFEST,
        "config": Descriptor::new(media_type::CONFIG, &config.digest, config.size),
        "layers": [Descriptor::new(mt, &blob.digest, blob.size)],
    });
    let manifest = layout.put_blob(&to_canonical_json(&manifest)).unwrap();
    add_entry(
        layout,
        &Descriptor::new(media_type::MANIFEST, &manifest.digest, manifest.size),
        Some(tag),
    );
    blob.digest.to_string()
}

fn fresh(dir: &Path) -> Layout {
    Layout::init(&dir.join("lay")).unwrap()
}

/// fsck fails naming `subject` with `rule`, and unpack of `tag` fails too.
fn fsck_and_unpack_refuse(layout: &Layout, tag: &str, subject: &str, rule: &str) {
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&format!("problem: {subject}")) && l.contains(rule)),
        "wanted {subject}: {rule} in\n{}",
        out.stdout
    );
    let bundle = layout
        .root()
        .parent()
        .unwrap()
        .join(format!("bundle-{tag}"));
    let err = fails(
        &["unpack", &format!("{}:{tag}", s(layout.root())), s(&bundle)],
        1,
    );
    assert!(err.contains(subject), "{err}");
    assert!(!bundle.exists());
}

#[test]
fn fsck_passes_good_layers_of_every_compression() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let layers = vec![
        (tar_layer("p"), Packing::Plain),
        (tar_layer("g"), Packing::Gzip),
        (tar_layer("z"), Packing::Zstd),
    ];
    write_layered_image(&layout, "t", &layers, serde_json::json!({}));
    let report = json(&["fsck", s(layout.root()), "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["warnings"], serde_json::json!([]), "{report}");
}

#[test]
fn a_wrong_diff_id_is_a_problem_and_no_layers_skips_it() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let tar = tar_layer("a");
    let wrong = sha256(b"not the tar").to_string();
    let layer = image_with_layer(
        &layout,
        "t",
        &gzip(&tar),
        media_type::LAYER_TAR_GZIP,
        &wrong,
    );
    fsck_and_unpack_refuse(
        &layout,
        "t",
        &layer,
        &format!(
            "uncompressed content hashes to {}, but rootfs.diff_ids[0]",
            sha256(&tar)
        ),
    );
    // Digest-only, as before: the layer's bytes match its name.
    ok(&["fsck", "--no-layers", s(layout.root())]);
}

#[test]
fn compression_that_disagrees_with_the_media_type_is_a_problem() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let tar = tar_layer("a");
    let diff_id = sha256(&tar).to_string();
    let gz_as_plain = image_with_layer(
        &layout,
        "plain",
        &gzip(&tar),
        media_type::LAYER_TAR,
        &diff_id,
    );
    let gz_as_zstd = image_with_layer(
        &layout,
        "zstd",
        &gzip(&tar),
        media_type::LAYER_TAR_ZSTD,
        &diff_id,
    );
    let zstd_as_gzip = image_with_layer(
        &layout,
        "gzip",
        &zstd(&tar),
        media_type::LAYER_TAR_GZIP,
        &diff_id,
    );
    fsck_and_unpack_refuse(
        &layout,
        "plain",
        &gz_as_plain,
        "the content is gzip but the media type says plain tar (application/vnd.oci.image.layer.v1.tar)",
    );
    fsck_and_unpack_refuse(
        &layout,
        "zstd",
        &gz_as_zstd,
        "the content is gzip but the media type says zstd",
    );
    fsck_and_unpack_refuse(
        &layout,
        "gzip",
        &zstd_as_gzip,
        "the content is zstd but the media type says gzip",
    );
}

#[test]
fn a_layer_that_is_not_a_whole_tar_is_a_problem() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let mut tar = tar_layer("a");
    tar.truncate(700);
    let diff_id = sha256(&tar).to_string();
    let cut = image_with_layer(
        &layout,
        "cut",
        &gzip(&tar),
        media_type::LAYER_TAR_GZIP,
        &diff_id,
    );
    fsck_and_unpack_refuse(
        &layout,
        "cut",
        &cut,
        "does not read to its end as a gzip layer",
    );
    // A gzip stream cut short: the digest matches its name, the stream does not end.
    let dir = tempdir();
    let layout = fresh(dir.path());
    let tar = tar_layer("b");
    let gz = gzip(&tar);
    let short = image_with_layer(
        &layout,
        "short",
        &gz[..gz.len() - 10],
        media_type::LAYER_TAR_GZIP,
        &sha256(&tar).to_string(),
    );
    fsck_and_unpack_refuse(&layout, "short", &short, "does not read to its end");
}

#[test]
fn a_layer_of_a_media_type_strata_cannot_unpack_is_a_warning() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let tar = tar_layer("a");
    let layer = image_with_layer(
        &layout,
        "t",
        &tar,
        "application/vnd.example.layer.v1.tar+lz4",
        &sha256(&tar).to_string(),
    );
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!("warning: {layer}")),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("1 warnings"), "{}", out.stdout);
}

#[test]
fn unpack_says_when_the_content_is_not_what_the_media_type_says() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let tar = tar_layer("a");
    let diff_id = sha256(&tar).to_string();
    let cases = [
        ("plain", gzip(&tar), media_type::LAYER_TAR, "the content is gzip but the media type says plain tar (application/vnd.oci.image.layer.v1.tar)"),
        ("zstd", gzip(&tar), media_type::LAYER_TAR_ZSTD, "the content is gzip but the media type says zstd (application/vnd.oci.image.layer.v1.tar+zstd)"),
        ("gzip", tar.clone(), media_type::LAYER_TAR_GZIP, "the content is neither gzip nor zstd but the media type says gzip (application/vnd.oci.image.layer.v1.tar+gzip)"),
    ];
    for (tag, stored, mt, why) in cases {
        let layer = image_with_layer(&layout, tag, &stored, mt, &diff_id);
        let bundle = dir.path().join(tag);
        let err = fails(
            &["unpack", &format!("{}:{tag}", s(layout.root())), s(&bundle)],
            1,
        );
        assert!(
            err.contains(&format!("layer {layer}: {why}")),
            "{tag}: {err}"
        );
        assert!(!bundle.exists());
    }
}
