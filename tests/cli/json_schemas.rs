//! The CLI's machine-facing surface: every `--json` document checked against its published
//! schema (tests/schemas/), and the flag a library error's missing choice is spelled with,
//! which only the CLI knows.

use std::path::Path;

use crate::util::*;

/// A layout at `dir/lay` with images tagged `a` and `b`.
fn two_images(dir: &Path) -> String {
    layout_with_images(dir, "lay", &["a", "b"]);
    s(&dir.join("lay")).to_owned()
}

#[test]
fn a_repack_with_no_tag_to_write_names_tag() {
    let dir = tempdir();
    let lay = two_images(dir.path());
    let digest = json(&["inspect", &format!("{lay}:a"), "--json"])["manifest"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let bundle = dir.path().join("bundle");
    ok(&["unpack", &format!("{lay}@{digest}"), s(&bundle)]);
    let err = fails(&["repack", s(&bundle)], 1);
    assert!(err.contains("name the tag to write; give --tag"), "{err}");
}

#[test]
fn an_import_that_would_move_a_tag_names_force() {
    let dir = tempdir();
    let lay = two_images(dir.path());
    let archive = dir.path().join("a.tar");
    ok(&["export", &format!("{lay}:a"), "-o", s(&archive)]);
    // Another layout whose `a` is another image.
    let other = dir.path().join("other");
    let layout = strata::Layout::init(&other).unwrap();
    let image = write_image(&layout, &["z"], "amd64");
    add_entry(&layout, &image.manifest, Some("a"));
    let before = snapshot(&other);
    let err = fails(&["import", s(&archive), s(&other)], 1);
    assert!(
        err.contains("needs leave to move tags; give --force"),
        "{err}"
    );
    assert_eq!(snapshot(&other), before);
}

#[test]
fn an_incremental_docker_archive_is_refused_before_anything_is_read() {
    let dir = tempdir();
    let lay = two_images(dir.path());
    let err = fails(
        &[
            "export",
            &format!("{lay}:a"),
            "--format",
            "docker",
            "--exclude-present-in",
            &lay,
            "-o",
            s(&dir.path().join("x.tar")),
        ],
        2,
    );
    assert!(
        err.contains("--exclude-present-in needs --format oci"),
        "{err}"
    );
    assert!(!dir.path().join("x.tar").exists());
}

#[test]
fn a_bad_config_value_is_named_by_its_flag_and_its_meaning() {
    let dir = tempdir();
    let lay = two_images(dir.path());
    let err = fails(&["config", &format!("{lay}:a"), "--volume", "data"], 2);
    assert!(err.contains("--volume"), "{err}");
    assert!(
        err.contains("the volume \"data\": must be an absolute path"),
        "{err}"
    );
    let err = fails(&["config", &format!("{lay}:a"), "--expose", "0"], 2);
    assert!(err.contains("the exposed port \"0\""), "{err}");
}
