//! strata and skopeo through the same registry: skopeo sees what strata pushed, copies it out
//! with the same digests, and strata pulls what skopeo pushed (OCI and Docker schema 2).

use std::path::Path;

use super::registry_util::{
    assert_fsck, blob_bytes, strata_built, tagged_digest, unpacked, Registry,
};
use super::util::{add_entry, json, peer, peer_ok, s, sha256, tempdir, write_image, write_index};

fn skopeo(args: &[&str]) -> String {
    peer_ok("skopeo", args)
}

/// The digest of the manifest an OCI layout (skopeo's) tags `tag`.
fn oci_tagged(layout: &Path, tag: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn skopeo_sees_and_copies_what_strata_pushed() {
    if !peer("skopeo") {
        return;
    }
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(
        dir.path(),
        "src",
        "v1",
        &[&[("a/one", b"1\n")], &[("b/two", b"2\n")]],
    );
    let digest = tagged_digest(&layout, "v1").unwrap();
    let name = reg.name("interop/strata:v1");
    json(&["push", "--json", &format!("{}:v1", s(&layout)), &name]);

    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str(), "{inspect}");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2, "{inspect}");
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{name}"),
    ]);
    assert_eq!(raw.as_bytes(), blob_bytes(&layout, &digest));

    let out = dir.path().join("skopeo-oci");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:v1", s(&out)),
    ]);
    assert_eq!(oci_tagged(&out, "v1"), digest);
    // strata reads skopeo's copy as its own.
    assert_fsck(&out);
    let a = unpacked(&format!("{}:v1", s(&layout)), &dir.path().join("b1"));
    let b = unpacked(&format!("{}:v1", s(&out)), &dir.path().join("b2"));
    assert_eq!(a, b);
}

#[test]
fn skopeo_sees_a_multi_platform_index_strata_pushed_byte_for_byte() {
    if !peer("skopeo") {
        return;
    }
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let path = dir.path().join("multi");
    let layout = strata::Layout::init(&path).unwrap();
    let amd = write_image(&layout, &["x"], "amd64");
    let arm = write_image(&layout, &["y"], "arm64");
    let index = write_index(&layout, &[&amd, &arm]);
    add_entry(&layout, &index, Some("m"));
    let name = reg.name("interop/multi:m");
    json(&["push", "--json", &format!("{}:m", s(&path)), &name]);
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{name}"),
    ]);
    assert_eq!(raw.as_bytes(), blob_bytes(&path, &index.digest));
    let out = dir.path().join("skopeo-all");
    // Without --preserve-digests skopeo 1.9 writes the index again in its own key order.
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:m", s(&out)),
    ]);
    assert_eq!(oci_tagged(&out, "m"), index.digest);
    assert_fsck(&out);
}

/// skopeo pushes `layout:v1` as `format` (oci or v2s2); strata pulls it: the digest is the
/// one of the manifest the registry serves, its media type kept, the tree the same.
fn strata_pulls_what_skopeo_pushed(format: &str, media_type: &str) {
    if !peer("skopeo") {
        return;
    }
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(
        dir.path(),
        "src",
        "v1",
        &[&[("etc/conf", b"x=1\n")], &[("etc/conf", b"x=2\n")]],
    );
    let name = reg.name(&format!("interop/skopeo-{format}:v1"));
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        format,
        &format!("oci:{}:v1", s(&layout)),
        &format!("docker://{name}"),
    ]);
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{name}"),
    ]);
    let served = sha256(raw.as_bytes()).to_string();
    let back = dir.path().join("back");
    let pulled = json(&["pull", "--json", &name, s(&back)]);
    assert_eq!(pulled["digest"], served.as_str(), "{pulled}");
    assert_eq!(pulled["mediaType"], media_type, "{pulled}");
    assert_eq!(blob_bytes(&back, &served), raw.as_bytes());
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(served.as_str()));
    assert_fsck(&back);
    let a = unpacked(&format!("{}:v1", s(&layout)), &dir.path().join("b1"));
    let b = unpacked(&format!("{}:v1", s(&back)), &dir.path().join("b2"));
    assert_eq!(a, b);

    // And back to the registry as it came: the same bytes under the same media type.
    let again = reg.name(&format!("interop/again-{format}:v1"));
    let pushed = json(&["push", "--json", &format!("{}:v1", s(&back)), &again]);
    assert_eq!(pushed["digest"], served.as_str(), "{pushed}");
    let raw_again = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{again}"),
    ]);
    assert_eq!(raw_again, raw);
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{again}"),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], served.as_str(), "{inspect}");
}

#[test]
fn strata_pulls_an_oci_image_skopeo_pushed() {
    strata_pulls_what_skopeo_pushed("oci", strata::spec::media_type::MANIFEST);
}

#[test]
fn strata_pulls_a_docker_schema2_image_skopeo_pushed() {
    strata_pulls_what_skopeo_pushed("v2s2", strata::spec::media_type::DOCKER_MANIFEST);
}

#[test]
fn strata_pulls_one_platform_of_a_docker_manifest_list_skopeo_pushed() {
    if !peer("skopeo") {
        return;
    }
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let path = dir.path().join("multi");
    let layout = strata::Layout::init(&path).unwrap();
    let amd = write_image(&layout, &["dl-a"], "amd64");
    let arm = write_image(&layout, &["dl-b"], "arm64");
    let index = write_index(&layout, &[&amd, &arm]);
    add_entry(&layout, &index, Some("m"));
    let name = reg.name("interop/list:m");
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &format!("oci:{}:m", s(&path)),
        &format!("docker://{name}"),
    ]);
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{name}"),
    ]);
    let list: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        list["mediaType"],
        strata::spec::media_type::DOCKER_MANIFEST_LIST,
        "{list}"
    );
    let arm_entry = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    let back = dir.path().join("arm");
    let pulled = json(&[
        "pull",
        "--json",
        "--platform",
        "linux/arm64",
        &name,
        s(&back),
    ]);
    assert_eq!(pulled["digest"], arm_entry.as_str(), "{pulled}");
    assert_eq!(
        pulled["mediaType"],
        strata::spec::media_type::DOCKER_MANIFEST,
        "{pulled}"
    );
    assert_fsck(&back);

    let all = dir.path().join("all");
    let pulled = json(&["pull", "--json", "--all-platforms", &name, s(&all)]);
    let served = sha256(raw.as_bytes()).to_string();
    assert_eq!(pulled["digest"], served.as_str(), "{pulled}");
    assert_eq!(blob_bytes(&all, &served), raw.as_bytes());
    assert_fsck(&all);
}
