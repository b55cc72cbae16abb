//! A registry that answers nonsense: every answer strata cannot use ends the pull or push
//! with exit 1 and a message naming what was wrong, never a panic, and the layout as it was.

use super::registry_util::{strata_built, Action, Fault, FaultProxy, Registry};
use super::util::{ok, run, s, snapshot, tempdir};

fn header(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

/// Pushes a small image, then pulls (or pushes) it through a proxy answering `fault`:
/// asserts exit 1, stderr holding each of `says`, and the layout unchanged.
fn refused(command: &str, fault: Fault, says: &[&str]) {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(dir.path(), "src", "v1", &[&[("f", b"f\n")]]);
    let src = format!("{}:v1", s(&layout));
    ok(&["push", &src, &reg.name("hostile/img:v1")]);
    let proxy = FaultProxy::start(&reg.host);
    proxy.add(fault);
    let dest = dir.path().join("dest");
    ok(&["init", s(&dest)]);
    let before = snapshot(&dest);
    let before_src = snapshot(&layout);
    let r = match command {
        "pull" => run(&["pull", &proxy.name("hostile/img:v1"), s(&dest)]),
        _ => run(&["push", &src, &proxy.name("hostile/other:v1")]),
    };
    assert_eq!(r.code, 1, "{command}: {}\n{:#?}", r.stderr, proxy.seen());
    assert!(proxy.faults_applied() >= 1, "{:#?}", proxy.seen());
    for word in says {
        assert!(
            r.stderr.contains(word),
            "{command}: no {word:?} in {}",
            r.stderr
        );
    }
    assert_eq!(snapshot(&dest), before);
    assert_eq!(snapshot(&layout), before_src);
}

fn get(path: &str, action: Action) -> Fault {
    Fault {
        method: "GET",
        path_contains: path.into(),
        times: 1,
        action,
    }
}

#[test]
fn a_manifest_that_is_not_json() {
    refused(
        "pull",
        get(
            "/manifests/v1",
            Action::Answer(
                200,
                vec![header("Content-Type", "text/html")],
                b"<html>hi</html>".to_vec(),
            ),
        ),
        &["/manifests/v1", "not a JSON"],
    );
}

#[test]
fn a_manifest_too_large() {
    refused(
        "pull",
        get(
            "/manifests/v1",
            Action::Answer(
                200,
                vec![header("Content-Type", strata::spec::media_type::MANIFEST)],
                vec![b' '; 5 << 20],
            ),
        ),
        &["/manifests/v1"],
    );
}

#[test]
fn a_challenge_with_a_realm_that_is_not_http() {
    refused(
        "pull",
        get(
            "/manifests/v1",
            Action::Challenge("Bearer realm=\"ftp://example.invalid/token\",service=\"x\"".into()),
        ),
        &["ftp://example.invalid/token"],
    );
}

#[test]
fn a_challenge_strata_cannot_answer() {
    refused(
        "pull",
        get("/manifests/v1", Action::Challenge("Negotiate".into())),
        &["challenge"],
    );
}

#[test]
fn a_redirect_without_a_location() {
    refused(
        "pull",
        get("/blobs/sha256:", Action::Answer(307, vec![], vec![])),
        &["without a Location"],
    );
}

#[test]
fn an_upload_opened_without_a_location() {
    refused(
        "push",
        Fault {
            method: "POST",
            path_contains: "/blobs/uploads/".into(),
            // An upload is started over once after a bad answer: this one never changes.
            times: u32::MAX,
            action: Action::Answer(202, vec![], vec![]),
        },
        &["Location"],
    );
}

#[test]
fn a_blob_longer_than_its_descriptor() {
    refused(
        "pull",
        get(
            "/blobs/sha256:",
            Action::Answer(200, vec![], vec![b'x'; 100_000]),
        ),
        &["/blobs/sha256:"],
    );
}

#[test]
fn an_error_status_with_a_garbage_body() {
    refused(
        "pull",
        get(
            "/manifests/v1",
            Action::Answer(
                404,
                vec![header("Content-Type", "application/json")],
                b"{\"errors\":[{\"code\":1}]".to_vec(),
            ),
        ),
        &["404"],
    );
}

#[test]
fn a_resumed_blob_from_another_offset() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("big"), super::registry_util::noise(300_000, 9)).unwrap();
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
        &reg.name("hostile/big:v1"),
    ]);
    let digest = super::registry_util::tagged_digest(&layout, "v1").unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&super::registry_util::blob_bytes(&layout, &digest)).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let proxy = FaultProxy::start(&reg.host);
    for action in [
        Action::DropAfter(100_000),
        Action::Answer(
            206,
            vec![header("Content-Range", "bytes 5-299999/300000")],
            vec![b'x'; 1000],
        ),
    ] {
        proxy.add(Fault {
            method: "GET",
            path_contains: layer.clone(),
            times: 1,
            action,
        });
    }
    let dest = dir.path().join("dest");
    let r = run(&[
        "pull",
        "--jobs",
        "1",
        &proxy.name("hostile/big:v1"),
        s(&dest),
    ]);
    assert_eq!(r.code, 1, "{}\n{:#?}", r.stderr, proxy.seen());
    assert!(r.stderr.contains("range"), "{}", r.stderr);
    assert!(!dest.exists());
}

#[test]
fn a_token_service_that_sends_no_token() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(dir.path(), "src", "v1", &[&[("f", b"f\n")]]);
    ok(&[
        "push",
        &format!("{}:v1", s(&layout)),
        &reg.name("hostile/img:v1"),
    ]);
    let proxy = FaultProxy::start(&reg.host);
    proxy.add(get(
        "/manifests/v1",
        Action::Challenge(format!(
            "Bearer realm=\"http://{}/token\",service=\"x\"",
            proxy.host
        )),
    ));
    proxy.add(get(
        "/token",
        Action::Answer(
            200,
            vec![header("Content-Type", "application/json")],
            b"[1,2".to_vec(),
        ),
    ));
    let dest = dir.path().join("dest");
    let r = run(&["pull", &proxy.name("hostile/img:v1"), s(&dest)]);
    assert_eq!(r.code, 1, "{}\n{:#?}", r.stderr, proxy.seen());
    assert!(r.stderr.contains("/token"), "{}", r.stderr);
    assert!(r.stderr.contains("no JSON token"), "{}", r.stderr);
}
