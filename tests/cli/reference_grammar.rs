//! One reference grammar, by the text alone: the first `:` ends the layout whatever exists on
//! disk, `@ALG:` before it makes a digest reference, and `--layout` spells a layout whose path
//! holds a `:`.

use crate::util::*;

fn tags(layout: &std::path::Path) -> Vec<String> {
    let index = json(&["ls", "--json", s(layout)]);
    let mut tags: Vec<String> = index["images"]
        .as_array()
        .expect("ls --json lists images")
        .iter()
        .filter_map(|i| i["tag"].as_str().map(str::to_owned))
        .collect();
    tags.sort();
    tags
}

/// Before: with `newlay` missing, `new newlay:docker.io/library/app:1` created a layout
/// called `newlay:docker.io/library/app`; with it present, it tagged `docker.io/library/app:1`.
#[test]
fn a_tag_with_colons_and_slashes_splits_the_same_whether_or_not_the_layout_exists() {
    let dir = tempdir();
    let lay = dir.path().join("newlay");
    ok(&["new", &format!("{}:docker.io/library/app:1", s(&lay))]);
    assert!(lay.join("oci-layout").is_file(), "the layout is newlay");
    assert!(!dir.path().join("newlay:docker.io").exists());
    assert_eq!(tags(&lay), ["docker.io/library/app:1"]);
    // The same text once the layout exists: the same split.
    ok(&["new", &format!("{}:docker.io/library/app:2", s(&lay))]);
    assert_eq!(
        tags(&lay),
        ["docker.io/library/app:1", "docker.io/library/app:2"]
    );
    ok(&["inspect", &format!("{}:docker.io/library/app:2", s(&lay))]);
}

#[test]
fn a_layout_path_with_a_colon_is_given_by_layout() {
    let dir = tempdir();
    let lay = dir.path().join("lay:v2");
    ok(&["--layout", s(&lay), "new", ":v1"]);
    assert!(lay.join("oci-layout").is_file());
    assert_eq!(tags(&lay), ["v1"]);
    let digest = ok(&["--layout", s(&lay), "inspect", ":v1", "--json"]);
    assert!(digest.contains("\"digest\""), "{digest}");
    ok(&["--layout", s(&lay), "tag", ":v1", "v3"]);
    assert_eq!(tags(&lay), ["v1", "v3"]);
    // Written in full, the same text names the layout `lay` and the tag `v2:v1`.
    let err = fails(&["inspect", &format!("{}:v1", s(&lay))], 1);
    assert!(err.contains(s(&dir.path().join("lay"))), "{err}");
}

#[test]
fn a_reference_without_a_layout_needs_layout() {
    let err = fails(&["inspect", ":v1"], 2);
    assert!(
        err.contains("names no layout") && err.contains("--layout"),
        "{err}"
    );
}

#[test]
fn an_at_sign_in_a_directory_name_is_not_a_digest() {
    let dir = tempdir();
    let lay = dir.path().join("u@host").join("lay");
    ok(&["new", &format!("{}:v1", s(&lay))]);
    assert_eq!(tags(&lay), ["v1"]);
}

#[test]
fn push_subject_as_tag_or_digest_names_the_pushed_layout() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = ok(&["new", &format!("{}:app", s(&lay)), "-q"]);
    let file = dir.path().join("sbom.json");
    write(&file, b"{}");
    let by_tag = ok(&[
        "artifact",
        "push",
        "--disable-path-validation",
        &format!("{}:sbom", s(&lay)),
        "--artifact-type",
        "application/x.test",
        "--subject",
        ":app",
        s(&file),
    ]);
    let by_digest = ok(&[
        "artifact",
        "push",
        "--disable-path-validation",
        &format!("{}:sbom2", s(&lay)),
        "--artifact-type",
        "application/x.test",
        "--subject",
        &format!("@{}", image.trim()),
        s(&file),
    ]);
    for pushed in [by_tag, by_digest] {
        let manifest = json(&[
            "inspect",
            &format!("{}@{}", s(&lay), pushed.trim()),
            "--raw",
            "manifest",
        ]);
        assert_eq!(manifest["subject"]["digest"], image.trim(), "{manifest}");
    }
}
