//! Interoperability with the peers Debian ships (umoci 0.4.7, skopeo 1.9, oci-image-tool
//! 1.0.0-rc1): strata reads what they write, they read what strata leaves behind, and gc
//! keeps exactly what it should (the same as `umoci gc`, except for referrers).
//!
//! Every test that runs a peer checks for it first with `util::peer`, which skips the test
//! (or fails it under STRATA_REQUIRE_PEERS=1) when the peer is missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use strata::spec::{media_type, Descriptor};
use strata::Layout;

use crate::util::{
    add_entry, fails, json, ok, ok_bytes, peer, peer_ok, s, stored_blobs, tempdir, write_image,
    write_index, write_referrer,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// True when the tests run as root (umoci needs `--rootless` to unpack otherwise).
fn is_root() -> bool {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .expect("running id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn umoci(args: &[&str]) -> String {
    peer_ok("umoci", args)
}

/// `umoci unpack --image REF BUNDLE`, rootless when not root.
fn umoci_unpack(image: &str, bundle: &Path) {
    let mut args = vec!["unpack"];
    if !is_root() {
        args.push("--rootless");
    }
    args.extend(["--image", image, s(bundle)]);
    umoci(&args);
}

/// `umoci repack --image REF BUNDLE`.
fn umoci_repack(image: &str, bundle: &Path) {
    umoci(&["repack", "--image", image, s(bundle)]);
}

/// A new umoci layout at `dir/name` holding `base`, umoci's image with no layers.
fn umoci_init(dir: &Path, name: &str) -> PathBuf {
    let layout = dir.join(name);
    umoci(&["init", "--layout", s(&layout)]);
    umoci(&["new", "--image", &at(&layout, "base")]);
    layout
}

/// Unpacks `from` with umoci into `bundle`, writes each (path, body) in `put` under its
/// rootfs and removes each path in `remove`, then repacks it as `to`. `bundle` must be fresh:
/// umoci 0.4.7's repack does not move a bundle's base forward.
fn umoci_derive(
    layout: &Path,
    from: &str,
    to: &str,
    bundle: &Path,
    put: &[(&str, &str)],
    remove: &[&str],
) {
    umoci_unpack(&at(layout, from), bundle);
    let rootfs = bundle.join("rootfs");
    for (rel, body) in put {
        let path = rootfs.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir -p");
        std::fs::write(&path, body).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
    for rel in remove {
        let path = rootfs.join(rel);
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
    }
    umoci_repack(&at(layout, to), bundle);
}

/// `image` as `LAYOUT:TAG`.
fn at(layout: &Path, tag: &str) -> String {
    format!("{}:{tag}", s(layout))
}

/// The layout at `dir/name` that umoci builds for several tests:
/// - `base`: `umoci new`, no layers;
/// - `v1`: base plus etc/greeting, etc/other and usr/share/doc/readme (1 layer);
/// - `v2`: v1 with etc/greeting modified and etc/other deleted (2 layers, one whiteout);
/// - `v3`: v2 plus opt/app/data (3 layers), then `umoci config` in place (env, cmd, label),
///   which leaves v3's first manifest and config unreferenced.
///
/// umoci 0.4.7's repack does not move a bundle's base forward, so each version is unpacked
/// from the previous tag into a fresh bundle.
fn umoci_layout(dir: &Path, name: &str) -> PathBuf {
    let layout = umoci_init(dir, name);
    let bundle = |n: u8| dir.join(format!("{name}-b{n}"));
    umoci_derive(
        &layout,
        "base",
        "v1",
        &bundle(1),
        &[
            ("etc/greeting", "hello\n"),
            ("etc/other", "bye\n"),
            ("usr/share/doc/readme", "v1\n"),
        ],
        &[],
    );
    umoci_derive(
        &layout,
        "v1",
        "v2",
        &bundle(2),
        &[("etc/greeting", "modified\n")],
        &["etc/other"],
    );
    umoci_derive(
        &layout,
        "v2",
        "v3",
        &bundle(3),
        &[("opt/app/data", "v3 data\n")],
        &[],
    );
    umoci(&[
        "config",
        "--image",
        &at(&layout, "v3"),
        "--config.env",
        "GREETING=hi",
        "--config.cmd",
        "/bin/sh",
        "--config.label",
        "org.example.stage=three",
    ]);
    layout
}

/// Parses a file as JSON.
fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The path of a blob, from its digest.
fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').expect("ALG:HEX");
    layout.join("blobs").join(alg).join(hex)
}

fn blob_json(layout: &Path, digest: &str) -> Value {
    read_json(&blob_path(layout, digest))
}

fn config_digest(manifest: &Value) -> &str {
    manifest["config"]["digest"]
        .as_str()
        .expect("config digest")
}

/// index.json's entries, straight from the file.
fn index_entries(layout: &Path) -> Vec<Value> {
    read_json(&layout.join("index.json"))["manifests"]
        .as_array()
        .expect("index.json has manifests")
        .clone()
}

fn ref_name(entry: &Value) -> Option<&str> {
    entry["annotations"]["org.opencontainers.image.ref.name"].as_str()
}

/// The digest index.json gives `tag`.
fn tag_digest(layout: &Path, tag: &str) -> String {
    index_entries(layout)
        .iter()
        .find(|e| ref_name(e) == Some(tag))
        .and_then(|e| e["digest"].as_str())
        .unwrap_or_else(|| panic!("no tag {tag} in {}/index.json", layout.display()))
        .to_owned()
}

/// The tags in index.json, sorted.
fn tags(layout: &Path) -> BTreeSet<String> {
    index_entries(layout)
        .iter()
        .filter_map(ref_name)
        .map(str::to_owned)
        .collect()
}

/// A peer's exact stdout bytes (asserting success).
fn peer_raw(tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .expect("running a peer");
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every blob reachable from index.json, computed without strata: entries, then through
/// indexes to manifests, then configs and layers. Referrers are not followed.
fn reachable_by_hand(layout: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<Value> = index_entries(layout);
    while let Some(desc) = stack.pop() {
        let digest = desc["digest"]
            .as_str()
            .expect("descriptor digest")
            .to_owned();
        if !out.insert(digest.clone()) {
            continue;
        }
        let blob = blob_json(layout, &digest);
        match desc["mediaType"].as_str().expect("descriptor mediaType") {
            media_type::INDEX => stack.extend(
                blob["manifests"]
                    .as_array()
                    .expect("index manifests")
                    .iter()
                    .cloned(),
            ),
            media_type::MANIFEST => {
                out.insert(
                    blob["config"]["digest"]
                        .as_str()
                        .expect("config digest")
                        .to_owned(),
                );
                for layer in blob["layers"].as_array().expect("layers") {
                    out.insert(layer["digest"].as_str().expect("layer digest").to_owned());
                }
            }
            other => panic!("unexpected media type {other} in {}", layout.display()),
        }
    }
    out
}

/// The digests a `gc --json` report removed (or, in a dry run, would remove).
fn removed(report: &Value) -> BTreeSet<String> {
    report["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .map(|b| b["digest"].as_str().expect("digest").to_owned())
        .collect()
}

/// `cp -a from to`: an identical copy for a peer to work on.
fn copy_layout(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .args(["-a", s(from), s(to)])
        .output()
        .expect("running cp");
    assert!(
        out.status.success(),
        "cp -a failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What strata must read correctly in any layout a peer wrote: `ls --json` lists index.json's
/// entries in order; for each tag, `inspect --json` gives the manifest's config and layers,
/// `inspect --raw manifest|config` the exact stored bytes; `fsck` passes.
fn check_strata_reads(layout: &Path) {
    let l = s(layout);
    let entries = index_entries(layout);
    assert!(!entries.is_empty(), "{l} has no images");

    let listed = json(&["ls", l, "--json"]);
    let images = listed["images"].as_array().expect("ls --json has images");
    assert_eq!(images.len(), entries.len(), "ls --json: {listed:#}");
    for (image, entry) in images.iter().zip(&entries) {
        assert_eq!(
            image["tag"].as_str(),
            ref_name(entry),
            "ls --json: {listed:#}"
        );
        assert_eq!(image["digest"], entry["digest"], "ls --json: {listed:#}");
        assert_eq!(
            image["mediaType"], entry["mediaType"],
            "ls --json: {listed:#}"
        );
        // The platform comes from the config (umoci writes the host's GOOS/GOARCH).
        let manifest = blob_json(layout, entry["digest"].as_str().expect("digest"));
        let config = blob_json(layout, config_digest(&manifest));
        let platform = format!(
            "{}/{}",
            config["os"].as_str().unwrap(),
            config["architecture"].as_str().unwrap()
        );
        assert_eq!(
            image["platforms"],
            serde_json::json!([platform]),
            "ls --json: {listed:#}"
        );
        assert!(image.get("error").is_none(), "ls --json: {listed:#}");
    }

    for entry in &entries {
        let tag = ref_name(entry).expect("every entry here is tagged");
        let reference = at(layout, tag);
        let digest = entry["digest"].as_str().expect("digest");
        let manifest_path = blob_path(layout, digest);
        let manifest = blob_json(layout, digest);

        let summary = json(&["inspect", &reference, "--json"]);
        assert_eq!(
            summary["manifest"]["digest"].as_str(),
            Some(digest),
            "{summary:#}"
        );
        assert_eq!(
            summary["entry"]["digest"].as_str(),
            Some(digest),
            "{summary:#}"
        );
        assert_eq!(summary["manifest"]["size"], entry["size"], "{summary:#}");
        assert_eq!(
            summary["config"]["digest"], manifest["config"]["digest"],
            "{summary:#}"
        );
        assert_eq!(
            summary["config"]["size"], manifest["config"]["size"],
            "{summary:#}"
        );
        assert_eq!(
            summary["config"]["mediaType"], manifest["config"]["mediaType"],
            "{summary:#}"
        );
        let want_layers: Vec<(&Value, &Value, &Value)> = manifest["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| (&l["digest"], &l["size"], &l["mediaType"]))
            .collect();
        let got_layers: Vec<(&Value, &Value, &Value)> = summary["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| (&l["digest"], &l["size"], &l["mediaType"]))
            .collect();
        assert_eq!(got_layers, want_layers, "{reference}: {summary:#}");
        let config = blob_json(layout, config_digest(&manifest));
        let diff_ids: Vec<&Value> = summary["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| &l["diffId"])
            .collect();
        let want_diff_ids: Vec<&Value> = config["rootfs"]["diff_ids"]
            .as_array()
            .expect("diff_ids")
            .iter()
            .collect();
        assert_eq!(diff_ids, want_diff_ids, "{reference}: {summary:#}");

        let manifest_bytes = std::fs::read(&manifest_path).expect("reading the manifest blob");
        assert_eq!(
            ok_bytes(&["inspect", &reference, "--raw", "manifest"]),
            manifest_bytes,
            "{reference}"
        );
        let config_bytes = std::fs::read(blob_path(layout, config_digest(&manifest)))
            .expect("reading the config blob");
        assert_eq!(
            ok_bytes(&["inspect", &reference, "--raw", "config"]),
            config_bytes,
            "{reference}"
        );
        // By digest too.
        assert_eq!(
            ok_bytes(&["inspect", &format!("{l}@{digest}"), "--raw", "manifest"]),
            manifest_bytes
        );
    }

    let report = json(&["fsck", l, "--json"]);
    assert_eq!(report["ok"], Value::Bool(true), "fsck {l}: {report:#}");
    assert_eq!(
        report["problems"],
        serde_json::json!([]),
        "fsck {l}: {report:#}"
    );
    ok(&["fsck", l]);
}

// ---------------------------------------------------------------------------------------
// 1. Layouts umoci wrote
// ---------------------------------------------------------------------------------------

#[test]
fn strata_reads_a_layout_umoci_built() {
    if !peer("umoci") {
        return;
    }
    let dir = tempdir();
    let layout = umoci_layout(dir.path(), "umoci");
    let l = s(&layout);

    // The fixture is what it claims: 0, 1, 2 and 3 layers.
    for (tag, n) in [("base", 0), ("v1", 1), ("v2", 2), ("v3", 3)] {
        let manifest = blob_json(&layout, &tag_digest(&layout, tag));
        assert_eq!(
            manifest["layers"].as_array().expect("layers").len(),
            n,
            "{tag}: {manifest:#}"
        );
    }
    assert_eq!(
        tags(&layout),
        ["base", "v1", "v2", "v3"].map(String::from).into()
    );

    check_strata_reads(&layout);

    // umoci config's changes show through.
    let v3 = json(&["inspect", &at(&layout, "v3"), "--json"]);
    assert!(
        v3["env"]
            .as_array()
            .expect("env")
            .contains(&Value::from("GREETING=hi")),
        "{v3:#}"
    );
    assert_eq!(v3["cmd"], serde_json::json!(["/bin/sh"]), "{v3:#}");
    assert_eq!(v3["labels"]["org.example.stage"], "three", "{v3:#}");
    let v3_config = blob_json(
        &layout,
        v3["config"]["digest"].as_str().expect("config digest"),
    );
    assert_eq!(v3_config["os"], "linux", "{v3_config:#}");
    assert_eq!(
        v3["platform"],
        format!("linux/{}", v3_config["architecture"].as_str().unwrap()),
        "{v3:#}"
    );
    assert_eq!(
        v3["history"].as_array().expect("history").len(),
        4,
        "3 repacks and a config: {v3:#}"
    );
    // v3's layers start with v2's, which start with v1's.
    let layers = |tag: &str| -> Vec<Value> {
        json(&["inspect", &at(&layout, tag), "--json"])["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].clone())
            .collect()
    };
    let (v1, v2, v3_layers) = (layers("v1"), layers("v2"), layers("v3"));
    assert_eq!(v2[..1], v1[..]);
    assert_eq!(v3_layers[..2], v2[..]);

    // The manifest and config `umoci config` replaced are unreferenced, not problems.
    let report = json(&["fsck", l, "--json"]);
    assert_eq!(
        report["unreferenced"]
            .as_array()
            .expect("unreferenced")
            .len(),
        2,
        "{report:#}"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Layouts skopeo wrote
// ---------------------------------------------------------------------------------------

#[test]
fn strata_reads_a_layout_skopeo_copied() {
    if !peer("umoci") || !peer("skopeo") {
        return;
    }
    let dir = tempdir();
    let src = umoci_layout(dir.path(), "src");
    let dst = dir.path().join("dst");
    for tag in ["v1", "v3"] {
        peer_ok(
            "skopeo",
            &[
                "copy",
                "-q",
                &format!("oci:{}:{tag}", s(&src)),
                &format!("oci:{}:{tag}", s(&dst)),
            ],
        );
    }
    assert_eq!(tags(&dst), ["v1", "v3"].map(String::from).into());
    // skopeo keeps manifest digests on oci: -> oci:.
    for tag in ["v1", "v3"] {
        assert_eq!(tag_digest(&dst, tag), tag_digest(&src, tag), "{tag}");
    }
    check_strata_reads(&dst);
    // skopeo copied exactly the two images' blobs: nothing unreferenced.
    let report = json(&["fsck", s(&dst), "--json"]);
    assert_eq!(report["unreferenced"], serde_json::json!([]), "{report:#}");
    assert_eq!(stored_blobs(&dst), reachable_by_hand(&dst));
}

// ---------------------------------------------------------------------------------------
// 3. Peers read what strata's tag, untag and gc leave behind
// ---------------------------------------------------------------------------------------

#[test]
fn peers_read_a_layout_after_strata_tag_untag_gc() {
    if !peer("umoci") || !peer("skopeo") || !peer("oci-image-tool") {
        return;
    }
    let dir = tempdir();
    let layout = umoci_layout(dir.path(), "umoci");
    let l = s(&layout);
    let v3 = tag_digest(&layout, "v3");

    ok(&["tag", &at(&layout, "v3"), "release"]);
    for tag in ["base", "v1", "v2"] {
        ok(&["untag", &at(&layout, tag)]);
    }
    let gc = json(&["gc", l, "--json"]);
    assert!(
        !gc["removed"].as_array().expect("removed").is_empty(),
        "{gc:#}"
    );
    assert_eq!(stored_blobs(&layout), reachable_by_hand(&layout), "{gc:#}");

    // umoci sees exactly the tags left.
    let listed: BTreeSet<String> = umoci(&["ls", "--layout", l])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(listed, ["release", "v3"].map(String::from).into());

    // umoci unpacks the 3-layer image: v1's layer survived gc though v1 is gone.
    let bundle = dir.path().join("bundle");
    umoci_unpack(&at(&layout, "release"), &bundle);
    let rootfs = bundle.join("rootfs");
    let read = |rel: &str| {
        std::fs::read_to_string(rootfs.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    };
    assert_eq!(read("etc/greeting"), "modified\n");
    assert_eq!(read("usr/share/doc/readme"), "v1\n");
    assert_eq!(read("opt/app/data"), "v3 data\n");
    assert!(
        !rootfs.join("etc/other").exists(),
        "v2's whiteout of etc/other was not applied"
    );

    // skopeo reads it and agrees on the digest.
    for tag in ["release", "v3"] {
        let inspected: Value =
            serde_json::from_str(&peer_ok("skopeo", &["inspect", &format!("oci:{l}:{tag}")]))
                .expect("skopeo JSON");
        assert_eq!(
            inspected["Digest"].as_str(),
            Some(v3.as_str()),
            "{tag}: {inspected:#}"
        );
        assert_eq!(
            inspected["Layers"].as_array().expect("Layers").len(),
            3,
            "{inspected:#}"
        );
        assert!(
            inspected["Env"]
                .as_array()
                .expect("Env")
                .contains(&Value::from("GREETING=hi")),
            "{inspected:#}"
        );
    }

    // oci-image-tool 1.0.0-rc1 has no `--type imageLayout` (it answers "type imageLayout
    // unimplemented"): a layout is validated with `--type image`, which autodetects it. Its
    // `--ref name=TAG` filter is unreliable when index.json has more than one entry: with the
    // four tags umoci made, every name (even an absent one) is "not unique"; with two entries
    // any name, even an absent one, "matches" and validates the last entry. So with two
    // entries we validate every entry (no --ref), and with one entry check that --ref picks
    // by name. (Without --ref, an image with no layers, like umoci's `base`, fails its
    // schema: "layers: Array must have at least 1 items".)
    peer_ok("oci-image-tool", &["validate", "--type", "image", l]);
    ok(&["untag", &at(&layout, "release")]);
    ok(&["gc", l]);
    peer_ok(
        "oci-image-tool",
        &["validate", "--type", "image", "--ref", "name=v3", l],
    );
    let wrong = Command::new("oci-image-tool")
        .args(["validate", "--type", "image", "--ref", "name=release", l])
        .output()
        .expect("running oci-image-tool");
    assert!(
        !wrong.status.success(),
        "oci-image-tool found the untagged name=release"
    );
    assert_eq!(
        umoci(&["ls", "--layout", l]).lines().collect::<Vec<_>>(),
        ["v3"],
        "umoci ls after untagging release"
    );
}

// ---------------------------------------------------------------------------------------
// 4. gc removes exactly the unreachable blobs, as umoci gc does
// ---------------------------------------------------------------------------------------

#[test]
fn gc_keeps_exactly_the_reachable_blobs_like_umoci() {
    if !peer("umoci") {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    let layout = umoci_init(d, "shared");
    let l = s(&layout);
    // a: the common base layer.
    let two = [("shared/one", "one\n"), ("shared/two", "two\n")];
    umoci_derive(&layout, "base", "a", &d.join("ba"), &two, &[]);
    // b and c: two images on top of a.
    umoci_derive(&layout, "a", "b", &d.join("bb"), &[("b/file", "b\n")], &[]);
    let (put, remove) = ([("c/file", "c\n")], ["shared/two"]);
    umoci_derive(&layout, "a", "c", &d.join("bc"), &put, &remove);
    // d: b with another config (same layers); c's config changed in place (orphans).
    umoci(&[
        "config",
        "--image",
        &at(&layout, "b"),
        "--config.env",
        "D=1",
        "--tag",
        "d",
    ]);
    umoci(&[
        "config",
        "--image",
        &at(&layout, "c"),
        "--config.env",
        "C=2",
    ]);

    let a_layers = blob_json(&layout, &tag_digest(&layout, "a"))["layers"].clone();
    let c_manifest = blob_json(&layout, &tag_digest(&layout, "c"));
    let c_top = c_manifest["layers"][1]["digest"]
        .as_str()
        .expect("c's layer")
        .to_owned();
    for tag in ["base", "a", "c"] {
        ok(&["untag", &at(&layout, tag)]);
    }
    assert_eq!(tags(&layout), ["b", "d"].map(String::from).into());

    let before = stored_blobs(&layout);
    let expected = reachable_by_hand(&layout);
    assert!(expected.is_subset(&before));
    let doomed: BTreeSet<String> = before.difference(&expected).cloned().collect();
    // base's, a's and c's manifests and configs, c's own layer, c's replaced manifest+config.
    assert_eq!(doomed.len(), 9, "doomed: {doomed:#?}");
    assert!(doomed.contains(&c_top));
    // a's layer is shared by b and d: it must stay though a is untagged.
    let a_layer = a_layers[0]["digest"]
        .as_str()
        .expect("a's layer")
        .to_owned();
    assert!(expected.contains(&a_layer));

    let copy = d.join("copy");
    copy_layout(&layout, &copy);

    // A dry run changes nothing but reports the same set.
    let dry = json(&["gc", l, "--dry-run", "--json"]);
    assert_eq!(stored_blobs(&layout), before);
    assert_eq!(removed(&dry), doomed, "{dry:#}");

    let report = json(&["gc", l, "--json"]);
    assert_eq!(removed(&report), doomed, "{report:#}");
    assert_eq!(report["kept"], expected.len(), "{report:#}");
    assert_eq!(report["referrersKept"], serde_json::json!([]), "{report:#}");
    assert_eq!(stored_blobs(&layout), expected);
    // A second gc has nothing left to do, and the layout is sound.
    let again = json(&["gc", l, "--json"]);
    assert_eq!(again["removed"], serde_json::json!([]), "{again:#}");
    ok(&["fsck", l]);
    check_strata_reads(&layout);

    // umoci gc on the identical copy leaves the same blobs.
    umoci(&["gc", "--layout", s(&copy)]);
    assert_eq!(
        stored_blobs(&copy),
        stored_blobs(&layout),
        "umoci gc and strata gc disagree"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Referrers: strata keeps them, umoci gc (issue #455) does not
// ---------------------------------------------------------------------------------------

#[test]
fn gc_keeps_referrers_of_kept_images_unlike_umoci() {
    if !peer("umoci") {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    let layout = umoci_init(d, "signed");
    let l = s(&layout);
    let greeting = [("etc/greeting", "hello\n")];
    umoci_derive(&layout, "base", "v1", &d.join("b1"), &greeting, &[]);
    let signed = [("etc/signed", "yes\n")];
    umoci_derive(&layout, "v1", "v2", &d.join("b2"), &signed, &[]);

    let lib = Layout::open(&layout).expect("opening umoci's layout");
    let entry = lib
        .read_index()
        .expect("index.json")
        .index
        .manifests
        .into_iter()
        .find(|e| e.ref_name() == Some("v2"))
        .expect("v2 in index.json");
    let subject = Descriptor::new(
        &entry.media_type,
        &entry.digest().expect("digest"),
        entry.size as u64,
    );
    let referrer = write_referrer(&lib, &subject, "signature of v2");
    let referrer_digest = referrer.manifest.digest.clone();
    let referrer_blobs: BTreeSet<String> =
        referrer.blobs().iter().map(ToString::to_string).collect();
    assert_eq!(referrer_blobs.len(), 3, "manifest, empty config, payload");
    // Not in index.json: only its subject reaches it.
    assert!(index_entries(&layout)
        .iter()
        .all(|e| e["digest"].as_str() != Some(referrer_digest.as_str())));
    let reachable = reachable_by_hand(&layout);
    assert!(referrer_blobs.is_disjoint(&reachable));

    // fsck knows it as a referrer, not as garbage.
    let report = json(&["fsck", l, "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(
        report["referrers"],
        serde_json::json!([referrer_digest]),
        "{report:#}"
    );
    assert_eq!(report["unreferenced"], serde_json::json!([]), "{report:#}");

    let copy = d.join("copy");
    copy_layout(&layout, &copy);

    let gc = json(&["gc", l, "--json"]);
    assert_eq!(
        gc["referrersKept"],
        serde_json::json!([referrer_digest]),
        "{gc:#}"
    );
    assert_eq!(gc["removed"], serde_json::json!([]), "{gc:#}");
    let kept = stored_blobs(&layout);
    assert!(
        referrer_blobs.is_subset(&kept),
        "strata gc dropped the referrer: {gc:#}"
    );
    assert_eq!(kept, reachable.union(&referrer_blobs).cloned().collect());
    let artifact = json(&["inspect", &format!("{l}@{referrer_digest}"), "--json"]);
    assert_eq!(
        artifact["artifactType"], "application/vnd.example.signature",
        "{artifact:#}"
    );

    // umoci 0.4.7 gc only marks from index.json and deletes the referrer with its blobs
    // (opencontainers/umoci#455); strata deliberately keeps referrers of kept images.
    umoci(&["gc", "--layout", s(&copy)]);
    let umoci_kept = stored_blobs(&copy);
    assert!(
        referrer_blobs.is_disjoint(&umoci_kept),
        "umoci gc now keeps referrers: {umoci_kept:#?}"
    );
    assert_eq!(umoci_kept, reachable);

    // Once the subject is untagged, strata gc removes the image and its referrer.
    let v2_blobs: BTreeSet<String> = {
        let m = blob_json(&layout, &subject.digest);
        [
            subject.digest.clone(),
            m["config"]["digest"].as_str().unwrap().to_owned(),
            m["layers"][1]["digest"].as_str().unwrap().to_owned(),
        ]
        .into()
    };
    ok(&["untag", &at(&layout, "v2")]);
    let gc = json(&["gc", l, "--json"]);
    assert_eq!(gc["referrersKept"], serde_json::json!([]), "{gc:#}");
    let left = stored_blobs(&layout);
    assert!(
        referrer_blobs.is_disjoint(&left),
        "the referrer outlived its subject: {left:#?}"
    );
    assert!(
        v2_blobs.is_disjoint(&left),
        "v2 survived its untag: {left:#?}"
    );
    assert_eq!(left, reachable_by_hand(&layout));
    assert_eq!(tags(&layout), ["base", "v1"].map(String::from).into());
    ok(&["fsck", l]);
}

// ---------------------------------------------------------------------------------------
// 6. Multi-platform indexes
// ---------------------------------------------------------------------------------------

#[test]
fn multi_platform_index_reads_like_skopeo() {
    if !peer("skopeo") {
        return;
    }
    let dir = tempdir();
    let layout = dir.path().join("multi");
    let l = s(&layout);
    ok(&["init", l]);
    let lib = Layout::open(&layout).expect("open");
    let amd = write_image(&lib, &["amd-base", "amd-top"], "amd64");
    let arm = write_image(&lib, &["arm-base"], "arm64");
    let index = write_index(&lib, &[&amd, &arm]);
    add_entry(&lib, &index, Some("multi"));

    let listed = json(&["ls", l, "--json"]);
    let images = listed["images"].as_array().expect("images");
    assert_eq!(images.len(), 1, "{listed:#}");
    assert_eq!(images[0]["tag"], "multi", "{listed:#}");
    assert_eq!(images[0]["digest"], index.digest.as_str(), "{listed:#}");
    assert_eq!(images[0]["mediaType"], media_type::INDEX, "{listed:#}");
    assert_eq!(
        images[0]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"]),
        "{listed:#}"
    );

    let reference = at(&layout, "multi");
    for (platform, image) in [("linux/arm64", &arm), ("linux/amd64", &amd)] {
        let summary = json(&["inspect", &reference, "--platform", platform, "--json"]);
        assert_eq!(
            summary["entry"]["digest"],
            index.digest.as_str(),
            "{summary:#}"
        );
        assert_eq!(
            summary["manifest"]["digest"],
            image.manifest.digest.as_str(),
            "{platform}: {summary:#}"
        );
        assert_eq!(
            summary["config"]["digest"],
            image.config.to_string(),
            "{summary:#}"
        );
        assert_eq!(summary["platform"], platform, "{summary:#}");
        let layers: Vec<String> = image.layers.iter().map(ToString::to_string).collect();
        let got: Vec<&str> = summary["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap())
            .collect();
        assert_eq!(got, layers, "{platform}");
    }
    let stderr = fails(
        &["inspect", &reference, "--platform", "linux/s390x", "--json"],
        1,
    );
    for needle in ["linux/s390x", "linux/amd64", "linux/arm64"] {
        assert!(
            stderr.contains(needle),
            "stderr does not name {needle}: {stderr}"
        );
    }

    let arm_raw = |what| {
        ok_bytes(&[
            "inspect",
            &reference,
            "--platform",
            "linux/arm64",
            "--raw",
            what,
        ])
    };
    let index_bytes = std::fs::read(blob_path(&layout, &index.digest)).expect("index blob");
    assert_eq!(arm_raw("index"), index_bytes);
    let arm_bytes =
        std::fs::read(blob_path(&layout, &arm.manifest.digest)).expect("arm64 manifest blob");
    assert_eq!(arm_raw("manifest"), arm_bytes);

    // skopeo returns the index's exact bytes, and picks the same manifest per platform.
    assert_eq!(
        peer_raw("skopeo", &["inspect", "--raw", &format!("oci:{l}:multi")]),
        index_bytes
    );
    let skopeo_arm = |what| {
        let args = [
            "--override-arch",
            "arm64",
            "--override-os",
            "linux",
            "inspect",
        ];
        peer_raw(
            "skopeo",
            &[&args[..], &[what, &format!("oci:{l}:multi")]].concat(),
        )
    };
    assert_eq!(
        skopeo_arm("--raw"),
        index_bytes,
        "skopeo inspect --raw does not descend into the index"
    );
    let skopeo_config: Value =
        serde_json::from_slice(&skopeo_arm("--config")).expect("skopeo --config JSON");
    assert_eq!(skopeo_config["architecture"], "arm64", "{skopeo_config:#}");
    assert_eq!(
        skopeo_config["rootfs"]["diff_ids"][0],
        arm.layers[0].to_string(),
        "{skopeo_config:#}"
    );

    // skopeo copy --all keeps the index byte for byte when told to keep uncompressed layers
    // (by default skopeo 1.9 gzips uncompressed layers on the way into an `oci:` layout, which
    // changes every manifest and so the index), and strata reads the copy.
    let copy = dir.path().join("copy");
    peer_ok(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--preserve-digests",
            "--dest-oci-accept-uncompressed-layers",
            &format!("oci:{l}:multi"),
            &format!("oci:{}:multi", s(&copy)),
        ],
    );
    assert_eq!(tag_digest(&copy, "multi"), index.digest);
    assert_eq!(
        std::fs::read(blob_path(&copy, &index.digest)).expect("copied index"),
        index_bytes
    );
    assert_eq!(stored_blobs(&copy), stored_blobs(&layout));
    let summary = json(&[
        "inspect",
        &at(&copy, "multi"),
        "--platform",
        "linux/arm64",
        "--json",
    ]);
    assert_eq!(
        summary["manifest"]["digest"],
        arm.manifest.digest.as_str(),
        "{summary:#}"
    );
    ok(&["fsck", s(&copy)]);

    // The default copy recompresses: new digests, same platforms, still sound.
    let gzipped = dir.path().join("gzipped");
    peer_ok(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            &format!("oci:{l}:multi"),
            &format!("oci:{}:multi", s(&gzipped)),
        ],
    );
    assert_ne!(tag_digest(&gzipped, "multi"), index.digest);
    let listed = json(&["ls", s(&gzipped), "--json"]);
    assert_eq!(
        listed["images"][0]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"]),
        "{listed:#}"
    );
    let summary = json(&[
        "inspect",
        &at(&gzipped, "multi"),
        "--platform",
        "linux/arm64",
        "--json",
    ]);
    assert_eq!(summary["platform"], "linux/arm64", "{summary:#}");
    assert_eq!(
        summary["layers"][0]["mediaType"],
        media_type::LAYER_TAR_GZIP,
        "{summary:#}"
    );
    // The diffID (uncompressed digest) is the layer strata wrote.
    assert_eq!(
        summary["layers"][0]["diffId"],
        arm.layers[0].to_string(),
        "{summary:#}"
    );
    ok(&["fsck", s(&gzipped)]);
}
