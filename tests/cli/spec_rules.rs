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
    Layout::init(dir.join("lay")).unwrap()
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
    fsck_and_unpack_refuse(&layout, "cut", &cut, "is not a layer unpack applies: entry");
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
    fsck_and_unpack_refuse(&layout, "short", &short, "does not decompress as gzip");
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
    assert!(out.stdout.contains("1 warning,"), "{}", out.stdout);
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

/// A layout whose one root is an artifact manifest written as `manifest` (raw JSON, with
/// `{{DESC}}` replaced by `desc`); the blobs "hello" and "" are stored.
fn layout_with_manifest(dir: &Path, manifest: &str, desc: &str) -> Layout {
    let layout = fresh(dir);
    layout.put_blob(b"hello").unwrap();
    layout.put_blob(b"").unwrap();
    let empty = layout.put_blob(b"{}").unwrap();
    let raw = manifest
        .replace("{{DESC}}", desc)
        .replace("{{EMPTY}}", &empty.digest.to_string());
    let blob = layout.put_blob(raw.as_bytes()).unwrap();
    add_entry(
        &layout,
        &Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size),
        Some("t"),
    );
    layout
}

const ARTIFACT: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{{EMPTY}}","size":2},"layers":[{{DESC}}]}"#;

/// fsck's verdict on a document: exit 0 (with any warnings), or exit 1 with a problem line
/// holding `why`.
fn verdict(dir: &Path, manifest: &str, desc: &str, valid: bool, why: &str) {
    let layout = layout_with_manifest(dir, manifest, desc);
    let out = run(&["fsck", s(layout.root())]);
    let all = format!("{}{}", out.stdout, out.stderr);
    if valid {
        assert_eq!(out.code, 0, "valid: {desc}\n{all}");
        assert!(all.contains(why), "valid: {desc}: wanted {why:?} in\n{all}");
    } else {
        assert_eq!(out.code, 1, "invalid: {desc}\n{all}");
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("problem: ") && l.contains(why)),
            "invalid: {desc}: wanted a problem with {why:?} in\n{all}"
        );
    }
}

const HELLO: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const EMPTY_SHA: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The rules of descriptor.md that the image-spec's own schema tests (schema/
/// descriptor_test.go) state, on documents of our own: media types, digests (registered
/// and not), sizes, urls, data, artifactType.
#[test]
fn descriptors_by_the_spec() {
    let d = |mt: &str, digest: &str, size: &str, extra: &str| {
        format!(r#"{{"mediaType":"{mt}","digest":"{digest}","size":{size}{extra}}}"#)
    };
    let os = "application/octet-stream";
    let long = "1".repeat(127);
    let too_long = "1".repeat(128);
    let hex = &HELLO[7..];
    let cases: Vec<(String, bool, &str)> = vec![
        (d(os, HELLO, "5", ""), true, "ok: "),
        (d(os, EMPTY_SHA, "0", ""), true, "ok: "),
        (d(&format!("{long}/{long}"), HELLO, "5", ""), true, "ok: "),
        (
            d(os, HELLO, "5", r#","urls":["https://example.com/foo"]"#),
            true,
            "ok: ",
        ),
        (
            d(
                os,
                HELLO,
                "5",
                r#","urls":["http://[::1]:5000/v2/x?y#z","urn:isbn:0451450523"]"#,
            ),
            true,
            "ok: ",
        ),
        (
            d(
                os,
                HELLO,
                "5",
                r#","artifactType":"application/vnd.oci.image.manifest.v1+json""#,
            ),
            true,
            "ok: ",
        ),
        (d(os, HELLO, "5", r#","data":"aGVsbG8=""#), true, "ok: "),
        // Unregistered algorithms fit the grammar: allowed, but strata cannot hash them.
        (
            d(
                os,
                "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
                "5",
                "",
            ),
            true,
            "cannot verify",
        ),
        (
            d(
                os,
                "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
                "5",
                "",
            ),
            true,
            "cannot verify",
        ),
        (
            d(
                os,
                "sha256+b64u.unknownlength:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564=",
                "5",
                "",
            ),
            true,
            "cannot verify",
        ),
        (
            d(
                os,
                "sha256.foo-bar:c86f7763873b6c0aae22d963bab59b4f5debbed6685761b5951584f6efb0633b",
                "5",
                r#","data":"aGVsbG8=""#,
            ),
            true,
            "cannot verify",
        ),
        (
            d("application", HELLO, "5", ""),
            false,
            "not an RFC 6838 media type",
        ),
        (
            d(".foo/bar", HELLO, "5", ""),
            false,
            "not an RFC 6838 media type",
        ),
        (
            d("foo/.bar", HELLO, "5", ""),
            false,
            "not an RFC 6838 media type",
        ),
        (
            d(&format!("{too_long}/bar"), HELLO, "5", ""),
            false,
            "not an RFC 6838 media type",
        ),
        (
            d(&format!("foo/{too_long}"), HELLO, "5", ""),
            false,
            "not an RFC 6838 media type",
        ),
        (
            d(os, HELLO, "5", r#","artifactType":"foo/.bar""#),
            false,
            "artifactType",
        ),
        (
            format!(r#"{{"digest":"{HELLO}","size":5}}"#),
            false,
            "mediaType",
        ),
        (
            format!(r#"{{"mediaType":"{os}","digest":"{HELLO}"}}"#),
            false,
            "size",
        ),
        (
            format!(r#"{{"mediaType":"{os}","digest":"{HELLO}","size":"5"}}"#),
            false,
            "invalid type",
        ),
        (
            format!(r#"{{"mediaType":"{os}","size":5}}"#),
            false,
            "digest",
        ),
        (d(os, HELLO, "-5", ""), false, "MUST NOT be negative"),
        (d(os, &format!(":{hex}"), "5", ""), false, "invalid digest"),
        (d(os, "sha256", "5", ""), false, "invalid digest"),
        (
            d(os, &format!("SHA256:{hex}"), "5", ""),
            false,
            "invalid digest",
        ),
        (
            d(os, &format!("sha256+foo+-b:{hex}"), "5", ""),
            false,
            "invalid digest",
        ),
        (
            d(os, &format!("sha256:{}", hex.to_uppercase()), "5", ""),
            false,
            "lowercase hex",
        ),
        (
            d(os, HELLO, "5", r#","urls":["value"]"#),
            false,
            "urls[0] \"value\" is not an RFC 3986 URI",
        ),
        (
            d(os, HELLO, "5", r#","urls":["https://example.com/a b"]"#),
            false,
            "is not an RFC 3986 URI",
        ),
        (
            d(os, HELLO, "5", r#","data":"aGVsbG8""#),
            false,
            "not padded base64",
        ),
        (
            d(os, HELLO, "5", r#","data":"aGVsbG8-""#),
            false,
            "not padded base64",
        ),
        (
            d(os, HELLO, "5", r#","data":"aGVsbA==""#),
            false,
            "decodes to 4 bytes, the descriptor says 5",
        ),
        (
            d(os, HELLO, "5", r#","data":"aGVsbW8=""#),
            false,
            "does not match the digest",
        ),
        (
            d(
                os,
                "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
                "5",
                r#","data":"aGVsbG8""#,
            ),
            false,
            "not padded base64",
        ),
    ];
    for (desc, valid, why) in cases {
        let dir = tempdir();
        verdict(dir.path(), ARTIFACT, &desc, valid, why);
    }
}

/// schemaVersion, annotations and dates in manifests and configs (manifest.md,
/// annotations.md, config.md; schema/manifest_test.go, schema/config_test.go).
#[test]
fn documents_by_the_spec() {
    let hello =
        format!(r#"{{"mediaType":"application/octet-stream","digest":"{HELLO}","size":5}}"#);
    let with = |field: &str| {
        ARTIFACT.replacen(
            r#""schemaVersion":2,"#,
            &format!(r#""schemaVersion":2,{field},"#),
            1,
        )
    };
    let cases: Vec<(String, bool, &str)> = vec![
        (
            with(
                r#""annotations":{"org.opencontainers.image.created":"2024-01-02T03:04:05.123+01:00","k":""}"#,
            ),
            true,
            "ok: ",
        ),
        (with(r#""annotations":{}"#), true, "ok: "),
        (
            ARTIFACT.replace(r#""schemaVersion":2"#, r#""schemaVersion":1"#),
            false,
            "schemaVersion",
        ),
        (
            ARTIFACT.replace(r#""schemaVersion":2,"#, ""),
            false,
            "schemaVersion",
        ),
        (with(r#""annotations":{"k":1}"#), false, "expected a string"),
        (
            with(r#""annotations":{"org.opencontainers.image.created":"last tuesday"}"#),
            false,
            "org.opencontainers.image.created \"last tuesday\" is not an RFC 3339 date-time",
        ),
        (
            with(r#""annotations":{"org.opencontainers.image.created":"2024-13-02T03:04:05Z"}"#),
            false,
            "not an RFC 3339",
        ),
    ];
    for (manifest, valid, why) in cases {
        let dir = tempdir();
        verdict(dir.path(), &manifest, &hello, valid, why);
    }
    // On a descriptor too.
    let dir = tempdir();
    let desc = format!(
        r#"{{"mediaType":"application/octet-stream","digest":"{HELLO}","size":5,"annotations":{{"org.opencontainers.image.created":"1 Jan"}}}}"#
    );
    verdict(
        dir.path(),
        ARTIFACT,
        &desc,
        false,
        "is not an RFC 3339 date-time",
    );
}

#[test]
fn config_dates_must_be_rfc3339() {
    for (extra, valid) in [
        (
            serde_json::json!({"created": "2015-10-31T22:22:56.015925234Z"}),
            true,
        ),
        (
            serde_json::json!({"created": "2015-10-31T22:22:56-07:00", "history": [{"created": "2015-10-31T22:22:54Z"}]}),
            true,
        ),
        (serde_json::json!({"created": "yesterday"}), false),
        (
            serde_json::json!({"history": [{"created": "2015-10-31"}]}),
            false,
        ),
    ] {
        let dir = tempdir();
        let layout = fresh(dir.path());
        let image = write_layered_image(
            &layout,
            "t",
            &[(tar_layer("a"), Packing::Gzip)],
            extra.clone(),
        );
        let out = run(&["fsck", s(layout.root())]);
        if valid {
            assert_eq!(out.code, 0, "{extra}: {}", out.stdout);
        } else {
            assert_eq!(out.code, 1, "{extra}: {}", out.stdout);
            assert!(
                out.stdout.contains(&format!("problem: {}", image.config))
                    && out
                        .stdout
                        .contains("is not an RFC 3339 date-time (config.md)"),
                "{extra}: {}",
                out.stdout
            );
        }
    }
}

#[test]
fn blob_directories_are_named_by_the_algorithm_grammar() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a"]);
    std::fs::create_dir(layout.root().join("blobs/sha256+b64u")).unwrap();
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("blobs/sha256+b64u: algorithm strata cannot verify"),
        "{}",
        out.stderr
    );
    std::fs::create_dir(layout.root().join("blobs/SHA256")).unwrap();
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("problem: blobs/SHA256: not a digest algorithm"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_unregistered_diff_id_algorithm_is_a_warning() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let tar = tar_layer("a");
    image_with_layer(&layout, "t", &tar, media_type::LAYER_TAR, "sha384:abcdef");
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("rootfs.diff_ids[0]") && out.stderr.contains("cannot verify"),
        "{}",
        out.stderr
    );
}

/// A tagged manifest written raw (`{{CONFIG}}` is an image config with no layers); returns
/// its digest and the config's.
fn raw_manifest(
    layout: &Layout,
    tag: &str,
    label: &str,
    body: &str,
    diff_ids: &[String],
) -> (String, String) {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = layout.put_blob(&to_canonical_json(&config)).unwrap();
    let config_desc = serde_json::to_string(&Descriptor::new(
        media_type::CONFIG,
        &config.digest,
        config.size,
    ))
    .unwrap();
    let raw = body.replace("{{CONFIG}}", &config_desc);
    let blob = layout.put_blob(raw.as_bytes()).unwrap();
    add_entry(
        layout,
        &Descriptor::new(label, &blob.digest, blob.size),
        Some(tag),
    );
    (blob.digest.to_string(), config.digest.to_string())
}

#[test]
fn null_layers_read_as_none_with_a_warning() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let body = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{CONFIG}},"layers":null}"#;
    let (manifest, _) = raw_manifest(&layout, "t", media_type::MANIFEST, body, &[]);
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains(&format!("warning: {manifest}: layers is null")),
        "{}",
        out.stderr
    );
    let listed = json(&["ls", s(layout.root()), "--json"]);
    assert!(listed["images"][0]["size"].is_u64(), "{listed}");
    let inspected = json(&["inspect", &format!("{}:t", s(layout.root())), "--json"]);
    assert_eq!(inspected["layers"], serde_json::json!([]), "{inspected}");
}

#[test]
fn ls_lists_what_it_can_and_warns_once() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["good", "gone"]);
    for tag in ["gone2", "gone3"] {
        add_entry(&layout, &images[1].manifest, Some(tag));
    }
    std::fs::remove_file(layout.blob_path(&images[1].manifest.digest().unwrap())).unwrap();
    let out = run(&["ls", s(layout.root())]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.matches("warning:").count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&images[1].manifest.digest),
        "{}",
        out.stderr
    );
    let good = out.stdout.lines().find(|l| l.starts_with("good ")).unwrap();
    assert!(!good.contains('?'), "{}", out.stdout);
    for tag in ["gone ", "gone2", "gone3"] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(tag)),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn gc_keeps_what_a_manifest_holds_whatever_its_label() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let tar = tar_layer("x");
    let layer = layout.put_blob(&tar).unwrap();
    let layer_desc = serde_json::to_string(&Descriptor::new(
        media_type::LAYER_TAR,
        &layer.digest,
        layer.size,
    ))
    .unwrap();
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{{{CONFIG}}}},"layers":[{layer_desc}]}}"#
    );
    // Labelled with a type strata does not know, and labelled as an index.
    let (unknown, unknown_config) = raw_manifest(
        &layout,
        "u",
        "application/vnd.example.thing+json",
        &body,
        &[sha256(&tar).to_string()],
    );
    let body2 = body.replace(
        "\"schemaVersion\":2,",
        "\"schemaVersion\":2,\"annotations\":{\"k\":\"v\"},",
    );
    let (mislabelled, mislabelled_config) = raw_manifest(
        &layout,
        "i",
        media_type::INDEX,
        &body2,
        &[sha256(&tar).to_string()],
    );
    let garbage = write_image(&layout, &["garbage"], "amd64");
    ok(&["gc", s(layout.root())]);
    let left = stored_blobs(layout.root());
    for kept in [
        &unknown,
        &unknown_config,
        &mislabelled,
        &mislabelled_config,
        &layer.digest.to_string(),
    ] {
        assert!(left.contains(kept), "gc removed {kept}: {left:?}");
    }
    assert!(!left.contains(&garbage.config.to_string()), "{left:?}");
    // fsck: the unknown label is the owner's business; the wrong one is a problem.
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let problems: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .collect();
    assert_eq!(problems.len(), 1, "{}", out.stdout);
    assert!(
        problems[0].contains(&format!(
            "{mislabelled}: its descriptor says {} but it is an image manifest",
            media_type::INDEX
        )),
        "{}",
        out.stdout
    );
    // A reachable document that is missing still stops gc.
    std::fs::remove_file(layout.blob_path(&mislabelled.parse().unwrap())).unwrap();
    let before = stored_blobs(layout.root());
    let err = fails(&["gc", s(layout.root())], 1);
    assert!(err.contains(&mislabelled), "{err}");
    assert_eq!(stored_blobs(layout.root()), before);
}

#[test]
fn another_schema_version_is_said_before_field_errors() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let body = r#"{"schemaVersion":99999,"config":5,"layers":"none"}"#;
    let (manifest, _) = raw_manifest(&layout, "t", media_type::MANIFEST, body, &[]);
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "problem: {manifest}: schemaVersion 99999, must be 2"
        )),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("invalid type"), "{}", out.stdout);
    let err = fails(&["inspect", &format!("{}:t", s(layout.root()))], 1);
    assert!(err.contains("schemaVersion 99999, must be 2"), "{err}");
    // index.json too.
    let index = layout.root().join("index.json");
    write(&index, br#"{"schemaVersion":99999,"manifests":{}}"#);
    let err = fails(&["ls", s(layout.root())], 1);
    assert!(err.contains("schemaVersion 99999, must be 2"), "{err}");
}

#[test]
fn fsck_json_reports_an_index_json_it_cannot_parse() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a"]);
    let index = layout.root().join("index.json");
    let full = std::fs::read(&index).unwrap();
    write(&index, &full[..full.len() / 2]);
    let out = run(&["fsck", s(layout.root()), "--json"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}{}", out.stdout, out.stderr));
    assert_eq!(report["ok"], false, "{report}");
    let rule = report["problems"][0]["rule"].as_str().unwrap_or_default();
    assert!(
        rule.contains("index.json") && rule.contains("malformed JSON"),
        "{report}"
    );
    assert!(out.stderr.contains("index.json"), "{}", out.stderr);
}

#[test]
fn untag_removes_every_entry_holding_the_tag_and_says_how_many() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["x", "keep"]);
    add_entry(&layout, &images[1].manifest, Some("x"));
    add_entry(&layout, &images[0].manifest, Some("x"));
    let said = run(&["untag", &format!("{}:x", s(layout.root()))]);
    assert!(
        said.code == 0 && said.stderr.contains("removed 3 index.json entries"),
        "{}",
        said.stderr
    );
    let listed = json(&["ls", s(layout.root()), "--json"]);
    let tags: Vec<&str> = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["tag"].as_str())
        .collect();
    assert_eq!(tags, ["keep"]);
    let said = run(&["untag", &format!("{}:keep", s(layout.root()))]);
    assert!(
        said.code == 0 && said.stderr.contains("removed 1 index.json entry"),
        "{}",
        said.stderr
    );
}

#[test]
fn warnings_are_said_once_per_blob_and_null_manifests_read_as_none() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let tar = tar_layer("a");
    let layer = layout.put_blob(&tar).unwrap();
    let odd = Descriptor::new(
        "application/vnd.example.layer+lz4",
        &layer.digest,
        layer.size,
    );
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar).to_string()]}});
    let config = layout.put_blob(&to_canonical_json(&config)).unwrap();
    for (tag, arch) in [("a", "amd64"), ("b", "arm64")] {
        let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": media_type::MANIFEST,
            "config": Descriptor::new(media_type::CONFIG, &config.digest, config.size),
            "layers": [odd], "annotations": {"arch": arch}});
        let m = layout.put_blob(&to_canonical_json(&manifest)).unwrap();
        add_entry(
            &layout,
            &Descriptor::new(media_type::MANIFEST, &m.digest, m.size),
            Some(tag),
        );
    }
    let index = layout
        .put_blob(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":null}"#)
        .unwrap();
    add_entry(
        &layout,
        &Descriptor::new(media_type::INDEX, &index.digest, index.size),
        Some("empty"),
    );
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stderr.matches(&layer.digest.to_string()).count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("warning: {}: manifests is null", index.digest)),
        "{}",
        out.stderr
    );
}

#[test]
fn gc_follows_a_manifest_labelled_as_a_config_or_layer() {
    let dir = tempdir();
    let layout = fresh(dir.path());
    let image = write_image(&layout, &["x"], "amd64");
    let mut labelled = image.manifest.clone();
    labelled.media_type = media_type::LAYER_TAR.into();
    labelled.platform = None;
    add_entry(&layout, &labelled, Some("odd"));
    ok(&["gc", s(layout.root())]);
    let left = stored_blobs(layout.root());
    for blob in image.blobs() {
        assert!(left.contains(&blob.to_string()), "gc removed {blob}");
    }
}

fn entry_header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o755);
    h.set_size(size);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Entries unpack refuses by their type alone: fsck finds them, as unpack would.
#[test]
fn entries_unpack_refuses_by_type_are_problems() {
    type Case<'a> = (&'a str, tar::EntryType, &'a [u8], Option<&'a [u8]>, &'a str);
    // (Sparse members are expanded since unpack learnt them: tests/cli/world_layers.rs.)
    let cases: [Case<'_>; 2] = [
        (
            "root-link",
            tar::EntryType::Symlink,
            b"./",
            Some(b"/etc"),
            "replace the root directory",
        ),
        (
            "volume",
            tar::EntryType::new(b'V'),
            b"label",
            None,
            "is not one strata can apply",
        ),
    ];
    for (tag, kind, name, link, why) in cases {
        let dir = tempdir();
        let layout = fresh(dir.path());
        let mut b = TarBuilder::new();
        b.file("ok.txt", b"fine", 0o644);
        b.raw(entry_header(kind, 0), name, link, b"");
        let tar = b.finish();
        let layer = image_with_layer(
            &layout,
            tag,
            &gzip(&tar),
            media_type::LAYER_TAR_GZIP,
            &sha256(&tar).to_string(),
        );
        fsck_and_unpack_refuse(&layout, tag, &layer, why);
    }
    // A FIFO and a whiteout of any type are applied: not problems.
    let dir = tempdir();
    let layout = fresh(dir.path());
    let mut b = TarBuilder::new();
    b.raw(entry_header(tar::EntryType::Fifo, 0), b"pipe", None, b"");
    b.raw(
        entry_header(tar::EntryType::Fifo, 0),
        b".wh.gone",
        None,
        b"",
    );
    let tar = b.finish();
    image_with_layer(
        &layout,
        "t",
        &tar,
        media_type::LAYER_TAR,
        &sha256(&tar).to_string(),
    );
    ok(&["fsck", s(layout.root())]);
}

/// image-index.md, after schema/imageindex_test.go: entries need a media type by the
/// grammar, may be of a custom type, and need no platform.
#[test]
fn index_entries_by_the_spec() {
    let entry = |mt: &str, extra: &str| {
        format!(r#"{{"mediaType":"{mt}","digest":"{HELLO}","size":5{extra}}}"#)
    };
    let cases = [
        (
            entry("application/customized.manifest+json", ""),
            true,
            "ok: ",
        ),
        (
            entry(
                "application/customized.manifest+json",
                r#","platform":{"architecture":"ppc64le","os":"linux"}"#,
            ),
            true,
            "ok: ",
        ),
        (entry("", ""), false, "not an RFC 6838 media type"),
        (entry("invalid", ""), false, "not an RFC 6838 media type"),
        (
            entry(
                "application/x",
                r#","platform":{"architecture":"amd64","os":""}"#,
            ),
            false,
            "platform needs os and architecture",
        ),
    ];
    for (desc, valid, why) in cases {
        let dir = tempdir();
        let layout = fresh(dir.path());
        layout.put_blob(b"hello").unwrap();
        let raw = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{desc}],"annotations":{{"com.example.key1":"value1"}}}}"#,
            media_type::INDEX
        );
        let blob = layout.put_blob(raw.as_bytes()).unwrap();
        add_entry(
            &layout,
            &Descriptor::new(media_type::INDEX, &blob.digest, blob.size),
            Some("t"),
        );
        let out = run(&["fsck", s(layout.root())]);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, if valid { 0 } else { 1 }, "{desc}\n{all}");
        assert!(all.contains(why), "{desc}: wanted {why:?} in\n{all}");
    }
}
