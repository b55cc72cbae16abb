//! Attacks on the day's changes: reading the merged tree through symlinks, insert, repack,
//! the temp sweep, warnings, escaping and the registry client's redirects.

use std::path::Path;

use crate::util::*;

/// A layout `lay` whose image `t` is `layers` (plain tars) in order.
fn layered(dir: &Path, layers: &[Vec<u8>]) -> String {
    let layout = strata::Layout::init(dir.join("lay")).unwrap();
    let layers: Vec<_> = layers.iter().map(|t| (t.clone(), Packing::Plain)).collect();
    write_layered_image(&layout, "t", &layers, serde_json::json!({}));
    s(&dir.join("lay")).to_owned()
}

/// `files --json`'s link targets, by path.
fn link_targets(image: &str) -> Vec<(String, String)> {
    json(&["files", image, "--json"])["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            Some((
                f["path"].as_str()?.to_owned(),
                f["link"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn flatten_and_export_keep_symlink_targets_byte_for_byte() {
    let dir = tempdir();
    let mut t = TarBuilder::new();
    t.dir("usr/", 0o755).dir("usr/bin/", 0o755);
    t.symlink("root", "/")
        .symlink("slash", "usr/bin/")
        .symlink("double", "usr//bin")
        .symlink("dot", "./usr/./bin");
    let lay = layered(dir.path(), &[t.finish()]);
    let image = format!("{lay}:t");
    let original = link_targets(&image);
    assert_eq!(original.len(), 4, "{original:?}");

    ok(&["flatten", &image, "--tag", "flat"]);
    assert_eq!(link_targets(&format!("{lay}:flat")), original, "flatten");

    let archive = dir.path().join("rootfs.tar");
    ok(&["export", &image, "--format", "rootfs", "-o", s(&archive)]);
    let listed = peer_ok("tar", &["-tvf", s(&archive)]);
    for (path, target) in &original {
        let line = format!("{} -> {target}\n", path.trim_start_matches('/'));
        assert!(listed.contains(&line), "export: {line:?} in\n{listed}");
    }
}
