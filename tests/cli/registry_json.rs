//! The registry commands' `--json` documents follow their schemas (tests/schemas/pull.json,
//! push.json, ls-tags.json, login.json), checked against a running registry; json_schemas.rs checks the
//! other commands' and leaves these to this file.

use super::json_schemas::{complaints, REGISTRY_SCHEMAS};
use super::registry_util::{strata_built, Registry};
use super::util::{json, run_with_input, s, tempdir};

#[test]
fn pull_push_and_tag_listing_documents_follow_their_schemas() {
    let Some(registry) = Registry::plain() else {
        return;
    };
    let dir = tempdir();
    let layout = strata_built(dir.path(), "lay", "app", &[&[("etc/a", b"1\n")]]);
    let app = format!("{}:app", s(&layout));
    let mut checked = Vec::new();
    let mut check = |schema: &'static str, args: &[&str]| {
        let doc = json(args);
        let bad = complaints(schema, &doc);
        assert!(
            bad.is_empty(),
            "strata {args:?} does not follow tests/schemas/{schema}.json:\n{}\n{doc:#}",
            bad.join("\n")
        );
        checked.push(format!("{schema}.json"));
        doc
    };
    let pushed = check(
        "push",
        &["push", &app, &registry.name("team/app:1"), "--json"],
    );
    assert_eq!(pushed["blobsUploaded"], 2, "{pushed:#}");
    let again = check(
        "push",
        &["push", &app, &registry.name("team/app:1"), "--json"],
    );
    assert_eq!(
        again["blobsUploaded"], 0,
        "a second push uploads nothing: {again:#}"
    );
    let pulled_to = dir.path().join("pulled");
    let pulled = check(
        "pull",
        &[
            "pull",
            &registry.name("team/app:1"),
            s(&pulled_to),
            "--json",
        ],
    );
    assert_eq!(pulled["digest"], pushed["digest"]);
    assert_eq!(pulled["tag"], "1");
    let tags = check(
        "ls-tags",
        &[
            "ls",
            &format!("docker://{}", registry.name("team/app")),
            "--json",
        ],
    );
    assert_eq!(tags["tags"], serde_json::json!(["1"]));
    let config = dir.path().join("docker");
    let login = run_with_input(
        &[
            "login",
            &registry.host,
            "-u",
            "someone",
            "--password-stdin",
            "--json",
        ],
        &[("DOCKER_CONFIG", s(&config))],
        "secret\n",
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    let doc: serde_json::Value = serde_json::from_str(&login.stdout).unwrap();
    let bad = complaints("login", &doc);
    assert!(bad.is_empty(), "login --json: {}\n{doc:#}", bad.join("\n"));
    assert_eq!(doc["registry"], registry.host.as_str());
    assert_eq!(doc["username"], "someone");
    checked.push("login.json".to_owned());
    checked.sort();
    checked.dedup();
    assert_eq!(checked, REGISTRY_SCHEMAS.map(String::from).to_vec());
}
