//! What the distribution spec asks of a client beyond plain requests: blob redirects to
//! another host (credentials stay with the registry), cross-repository mounts, uploads
//! whose response is lost, references by digest, one platform of an index.

use base64::Engine;

use super::registry_util::{
    assert_fsck, blob_bytes, docker_config, noise, strata_built, tagged_digest, Action, Auth,
    Fault, FaultProxy, Registry, PASSWORD, USER,
};
use super::util::{add_entry, json, ok, run, run_with_env, s, tempdir, write_image, write_index};

#[test]
fn blob_redirects_are_followed_and_credentials_stay_with_the_registry() {
    let Some(reg) = Registry::start(false, Auth::Basic) else {
        return;
    };
    let dir = tempdir();
    let layout = strata_built(
        dir.path(),
        "src",
        "v1",
        &[&[("a", b"a\n")], &[("b", b"b\n")]],
    );
    let digest = tagged_digest(&layout, "v1").unwrap();
    // "Object storage": another origin that needs no credentials from the client (it puts
    // its own on what it asks the registry, as a signed URL would carry them).
    let storage = FaultProxy::start(&reg.host);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    storage.inject_authorization(Some(format!("Basic {basic}")));
    let front = FaultProxy::start(&reg.host);
    front.add(Fault::blob_get(
        u32::MAX,
        Action::Redirect(storage.host.clone()),
    ));

    let config = docker_config(dir.path(), &front.host, USER, PASSWORD);
    let env = [("DOCKER_CONFIG", s(&config))];
    let r = run_with_env(
        &[
            "push",
            &format!("{}:v1", s(&layout)),
            &front.name("redir/img:v1"),
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let back = dir.path().join("back");
    let r = run_with_env(&["pull", &front.name("redir/img:v1"), s(&back)], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(digest.as_str()));
    assert_fsck(&back);

    let at_front = front.seen();
    assert!(
        at_front
            .iter()
            .any(|l| l.starts_with("GET /v2/redir/img/blobs/") && l.ends_with("[authorization]")),
        "the registry was asked with credentials: {at_front:#?}"
    );
    let at_storage = storage.seen();
    let gets: Vec<&String> = at_storage
        .iter()
        .filter(|l| l.starts_with("GET "))
        .collect();
    assert_eq!(gets.len(), 3, "config and two layers: {at_storage:#?}");
    assert!(
        gets.iter().all(|l| !l.contains("[authorization]")),
        "credentials went to another host: {at_storage:#?}"
    );
}

#[test]
fn blobs_are_mounted_from_another_repository() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(
        dir.path(),
        "src",
        "v1",
        &[&[("a", b"a\n")], &[("b", b"b\n")]],
    );
    let src = format!("{}:v1", s(&layout));
    ok(&["push", &src, &reg.name("mount/a:v1")]);
    let pushed = json(&[
        "push",
        "--json",
        "--mount-from",
        "mount/a",
        &src,
        &reg.name("mount/b:v1"),
    ]);
    assert_eq!(pushed["blobsMounted"], 3, "{pushed}");
    assert_eq!(pushed["blobsUploaded"], 0, "{pushed}");
    let back = dir.path().join("back");
    ok(&["pull", &reg.name("mount/b:v1"), s(&back)]);
    assert_eq!(tagged_digest(&back, "v1"), tagged_digest(&layout, "v1"));
    assert_fsck(&back);
}

/// Pushes a 3 MiB layer (in 1 MiB chunks when `chunked`) while the proxy loses the
/// registry's answer to the first upload request of `method`: the registry did the work,
/// strata did not hear it. The push must still end with the image in the registry.
fn push_with_a_lost_upload_response(method: &'static str, chunked: bool) {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("big"), noise(3 << 20, 5)).unwrap();
    let layout = dir.path().join("src");
    ok(&[
        "build",
        "--compress",
        "none",
        s(&tree),
        &format!("{}:v1", s(&layout)),
    ]);
    let proxy = FaultProxy::start(&reg.host);
    proxy.add(Fault {
        method,
        path_contains: "/blobs/uploads/".into(),
        times: 1,
        action: Action::Lose,
    });
    let chunk = if chunked { "1" } else { "0" };
    let r = run(&[
        "push",
        "-v",
        "--jobs",
        "1",
        "--chunk-mib",
        chunk,
        &format!("{}:v1", s(&layout)),
        &proxy.name("lost/img:v1"),
    ]);
    assert_eq!(r.code, 0, "{}\n{:#?}", r.stderr, proxy.seen());
    assert_eq!(proxy.faults_applied(), 1, "{:#?}", proxy.seen());
    let back = dir.path().join("back");
    ok(&["pull", &reg.name("lost/img:v1"), s(&back)]);
    let digest = tagged_digest(&layout, "v1").unwrap();
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(digest.as_str()));
    assert_fsck(&back);
}

#[test]
fn a_lost_answer_to_a_monolithic_upload_is_survived() {
    push_with_a_lost_upload_response("PUT", false);
}

#[test]
fn a_lost_answer_to_an_upload_chunk_is_survived() {
    push_with_a_lost_upload_response("PATCH", true);
}

#[test]
fn images_go_and_come_by_digest() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(dir.path(), "src", "v1", &[&[("x", b"x\n")]]);
    let digest = tagged_digest(&layout, "v1").unwrap();
    let by_digest = format!("{}@{digest}", reg.name("digest/img"));
    let pushed = json(&["push", "--json", &format!("{}:v1", s(&layout)), &by_digest]);
    assert_eq!(pushed["reference"], by_digest.as_str(), "{pushed}");

    // Pulled by digest: untagged, unless a tag is given.
    let back = dir.path().join("back");
    ok(&["pull", &by_digest, s(&back)]);
    let ls = json(&["ls", s(&back), "--json"]);
    assert_eq!(ls["images"].as_array().unwrap().len(), 1, "{ls}");
    assert!(ls["images"][0]["tag"].is_null(), "{ls}");
    assert_eq!(ls["images"][0]["digest"], digest.as_str(), "{ls}");
    ok(&["pull", &by_digest, &format!("{}:mine", s(&back))]);
    assert_eq!(
        tagged_digest(&back, "mine").as_deref(),
        Some(digest.as_str())
    );
    assert_fsck(&back);

    // A digest that is not the image's is refused before anything is sent.
    let other = format!("{}@sha256:{}", reg.name("digest/img"), "0".repeat(64));
    let r = run(&["push", &format!("{}:v1", s(&layout)), &other]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains(&digest), "{}", r.stderr);
}

#[test]
fn one_platform_of_an_index_is_pushed_alone() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let path = dir.path().join("multi");
    let layout = strata::Layout::init(&path).unwrap();
    let amd = write_image(&layout, &["p"], "amd64");
    let arm = write_image(&layout, &["q"], "arm64");
    let index = write_index(&layout, &[&amd, &arm]);
    add_entry(&layout, &index, Some("m"));
    let pushed = json(&[
        "push",
        "--json",
        "--platform",
        "linux/arm64",
        &format!("{}:m", s(&path)),
        &reg.name("plat/img:arm"),
    ]);
    assert_eq!(pushed["digest"], arm.manifest.digest.as_str(), "{pushed}");
    let back = dir.path().join("back");
    let pulled = json(&[
        "pull",
        "--json",
        "--platform",
        "linux/arm64",
        &reg.name("plat/img:arm"),
        s(&back),
    ]);
    assert_eq!(pulled["digest"], arm.manifest.digest.as_str(), "{pulled}");
    assert_eq!(
        blob_bytes(&back, &arm.manifest.digest),
        blob_bytes(&path, &arm.manifest.digest)
    );
}

#[test]
fn a_redirected_blob_dropped_midway_resumes_at_the_storage() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("big"), noise(400_000, 21)).unwrap();
    let layout = dir.path().join("src");
    ok(&[
        "build",
        "--compress",
        "none",
        s(&tree),
        &format!("{}:v1", s(&layout)),
    ]);
    ok(&[
        "push",
        &format!("{}:v1", s(&layout)),
        &reg.name("redir/big:v1"),
    ]);
    let digest = tagged_digest(&layout, "v1").unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob_bytes(&layout, &digest)).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let storage = FaultProxy::start(&reg.host);
    storage.add(Fault {
        method: "GET",
        path_contains: layer.clone(),
        times: 1,
        action: Action::DropAfter(123_456),
    });
    let front = FaultProxy::start(&reg.host);
    front.add(Fault::blob_get(
        u32::MAX,
        Action::Redirect(storage.host.clone()),
    ));
    let back = dir.path().join("back");
    let r = run(&["pull", &front.name("redir/big:v1"), s(&back)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let at_storage = storage.seen();
    assert!(
        at_storage
            .iter()
            .any(|l| l.contains(&layer) && l.contains("range=bytes=123456-")),
        "{at_storage:#?}"
    );
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(digest.as_str()));
    assert_eq!(blob_bytes(&back, &layer), blob_bytes(&layout, &layer));
    assert_fsck(&back);
}
