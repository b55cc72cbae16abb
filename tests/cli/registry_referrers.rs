//! Referrers through a registry without the referrers API (distribution 2.8): `push
//! --referrers` keeps the `sha256-<hex>` fallback tag's index, `pull --referrers` reads it and
//! records the referrers untagged, as `artifact attach` does.

use std::path::Path;

use super::registry_util::{assert_fsck, ok_in, strata_built, tagged_digest, Registry};
use super::util::{json, ok, peer, peer_ok, s, tempdir};

/// Attaches a signature-like artifact holding `content` to `layout:v1`; returns its digest.
fn attach(dir: &Path, layout: &Path, file: &str, content: &str) -> String {
    let path = dir.join(file);
    std::fs::write(&path, content).unwrap();
    let out = ok_in(
        dir,
        &[
            "artifact",
            "attach",
            "--artifact-type",
            "application/vnd.example.signature",
            "--annotation",
            &format!("org.example.file={file}"),
            &format!("{}:v1", s(layout)),
            file,
        ],
    );
    out.trim().to_owned()
}

/// The entries of the fallback tag's index in the registry, as skopeo reads it.
fn fallback_entries(reg: &Registry, repo: &str, subject: &str) -> Vec<serde_json::Value> {
    let tag = subject.replace(':', "-");
    let raw = peer_ok(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{}:{tag}", reg.name(repo)),
        ],
    );
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    index["manifests"].as_array().unwrap().clone()
}

#[test]
fn referrers_go_through_the_fallback_tag_and_come_back_untagged() {
    if !peer("skopeo") {
        return;
    }
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(dir.path(), "src", "v1", &[&[("app", b"app\n")]]);
    let subject = tagged_digest(&layout, "v1").unwrap();
    let sig = attach(dir.path(), &layout, "sig.txt", "signed\n");
    let name = reg.name("ref/img:v1");

    let pushed = json(&[
        "push",
        "--json",
        "--referrers",
        &format!("{}:v1", s(&layout)),
        &name,
    ]);
    assert_eq!(pushed["referrers"], serde_json::json!([sig]), "{pushed}");
    let entries = fallback_entries(&reg, "ref/img", &subject);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["digest"], sig.as_str());
    assert_eq!(
        entries[0]["artifactType"],
        "application/vnd.example.signature"
    );
    assert_eq!(
        entries[0]["annotations"]["org.example.file"], "sig.txt",
        "the referrers API lists annotations: so does the fallback index"
    );

    // Without --referrers: only the image.
    let plain = dir.path().join("plain");
    ok(&["pull", &name, s(&plain)]);
    let ls = json(&["ls", s(&plain), "--json"]);
    assert_eq!(ls["images"].as_array().unwrap().len(), 1, "{ls}");

    let back = dir.path().join("back");
    let pulled = json(&["pull", "--json", "--referrers", &name, s(&back)]);
    assert_eq!(pulled["referrers"], serde_json::json!([sig]), "{pulled}");
    let ls = json(&["ls", s(&back), "--json"]);
    let images = ls["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{ls}");
    let referrer = images.iter().find(|i| i["digest"] == sig.as_str()).unwrap();
    assert!(referrer["tag"].is_null(), "{ls}");
    assert_eq!(referrer["subject"], subject.as_str(), "{ls}");
    assert_eq!(
        referrer["artifactType"], "application/vnd.example.signature",
        "{ls}"
    );
    assert_eq!(
        tagged_digest(&back, "v1").as_deref(),
        Some(subject.as_str())
    );
    let listed = ok(&["referrers", &format!("{}:v1", s(&back))]);
    assert!(listed.contains(&sig), "{listed}");
    assert_fsck(&back);
    // What came back is what was attached, byte for byte.
    let out = dir.path().join("files");
    ok(&["artifact", "pull", &format!("{}@{sig}", s(&back)), s(&out)]);
    assert_eq!(std::fs::read(out.join("sig.txt")).unwrap(), b"signed\n");

    // A second referrer later: the fallback index keeps the first and adds it.
    let sbom = attach(dir.path(), &layout, "sbom.txt", "packages\n");
    let pushed = json(&[
        "push",
        "--json",
        "--referrers",
        &format!("{}:v1", s(&layout)),
        &name,
    ]);
    assert_eq!(pushed["blobsUploaded"], 1, "only the new payload: {pushed}");
    let entries = fallback_entries(&reg, "ref/img", &subject);
    let digests: Vec<&str> = entries
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 2, "{entries:?}");
    assert!(digests.contains(&sig.as_str()) && digests.contains(&sbom.as_str()));

    let back2 = dir.path().join("back2");
    let pulled = json(&["pull", "--json", "--referrers", &name, s(&back2)]);
    assert_eq!(pulled["referrers"].as_array().unwrap().len(), 2, "{pulled}");
    assert_fsck(&back2);
}

#[test]
fn referrers_of_referrers_make_the_round_trip_too() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(dir.path(), "src", "v1", &[&[("app", b"app\n")]]);
    let sbom = attach(dir.path(), &layout, "sbom.txt", "packages\n");
    // A signature of the SBOM: its subject is the SBOM, not the image.
    let sig_file = dir.path().join("sbom.sig");
    std::fs::write(&sig_file, "signed sbom\n").unwrap();
    let signature = ok_in(
        dir.path(),
        &[
            "artifact",
            "attach",
            "--artifact-type",
            "application/vnd.example.signature",
            &format!("{}@{sbom}", s(&layout)),
            "sbom.sig",
        ],
    )
    .trim()
    .to_owned();
    let name = reg.name("ref/nested:v1");
    let pushed = json(&[
        "push",
        "--json",
        "--referrers",
        &format!("{}:v1", s(&layout)),
        &name,
    ]);
    let mut want = vec![sbom.clone(), signature.clone()];
    want.sort();
    assert_eq!(pushed["referrers"], serde_json::json!(want), "{pushed}");

    let back = dir.path().join("back");
    let pulled = json(&["pull", "--json", "--referrers", &name, s(&back)]);
    let mut got: Vec<String> = pulled["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, want, "{pulled}");
    let ls = json(&["ls", s(&back), "--json"]);
    let nested = ls["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["digest"] == signature.as_str())
        .unwrap_or_else(|| panic!("no {signature}: {ls}"));
    assert_eq!(nested["subject"], sbom.as_str(), "{ls}");
    assert!(nested["tag"].is_null(), "{ls}");
    assert_fsck(&back);
}

#[test]
fn a_push_that_failed_before_the_fallback_tag_is_completed_by_the_next() {
    if !peer("skopeo") {
        return;
    }
    let Some(reg) = Registry::plain() else { return };
    let proxy = super::registry_util::FaultProxy::start(&reg.host);
    let dir = tempdir();
    let layout = strata_built(dir.path(), "src", "v1", &[&[("app", b"app\n")]]);
    let subject = tagged_digest(&layout, "v1").unwrap();
    let sig = attach(dir.path(), &layout, "sig.txt", "signed\n");
    let fallback = subject.replace(':', "-");
    // The registry fails the fallback tag's update: the referrer is in, the tag is not.
    proxy.add(super::registry_util::Fault {
        method: "PUT",
        path_contains: format!("/manifests/{fallback}"),
        times: u32::MAX,
        action: super::registry_util::Action::Status(500, Some(0)),
    });
    let src = format!("{}:v1", s(&layout));
    let r = super::util::run(&["push", "--referrers", &src, &proxy.name("ref/retry:v1")]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    proxy.clear();
    ok(&["push", "--referrers", &src, &proxy.name("ref/retry:v1")]);
    let entries = fallback_entries(&reg, "ref/retry", &subject);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["digest"], sig.as_str());
}

#[test]
fn a_referrer_the_fallback_tag_lists_but_the_registry_lost_does_not_stop_the_pull() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(dir.path(), "src", "v1", &[&[("app", b"app\n")]]);
    let subject = tagged_digest(&layout, "v1").unwrap();
    let kept = attach(dir.path(), &layout, "kept.txt", "kept\n");
    let gone = attach(dir.path(), &layout, "gone.txt", "gone\n");
    let name = reg.name("ref/stale:v1");
    ok(&["push", "--referrers", &format!("{}:v1", s(&layout)), &name]);
    // Deleted from the registry; the fallback tag still lists it (clients are to update it,
    // not all do).
    assert_eq!(
        super::registry_util::http_status(
            &reg.host,
            "DELETE",
            &format!("/v2/ref/stale/manifests/{gone}"),
            &[]
        ),
        Some(202)
    );
    let back = dir.path().join("back");
    let r = super::util::run(&["pull", "--json", "--referrers", &name, s(&back)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pulled: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(pulled["referrers"], serde_json::json!([kept]), "{pulled}");
    assert!(
        r.stderr.contains(&gone),
        "the missing referrer is named: {}",
        r.stderr
    );
    assert_eq!(
        tagged_digest(&back, "v1").as_deref(),
        Some(subject.as_str())
    );
    assert_fsck(&back);
}
