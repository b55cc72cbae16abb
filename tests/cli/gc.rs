//! gc on strata's own fixtures: exact reachability, referrers, dry runs, temp files.

use std::collections::BTreeSet;

use crate::util::*;

fn digests(images: &[&Image]) -> BTreeSet<String> {
    images
        .iter()
        .flat_map(|i| i.blobs())
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn gc_keeps_exactly_what_is_reachable() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["a", "b", "c"]);
    let amd = write_image(&layout, &["m1"], "amd64");
    let arm = write_image(&layout, &["m2"], "arm64");
    let index = write_index(&layout, &[&amd, &arm]);
    add_entry(&layout, &index, Some("multi"));
    let untagged = write_image(&layout, &["kept-untagged"], "amd64");
    add_entry(&layout, &untagged.manifest, None);
    let orphan = write_image(&layout, &["orphan"], "amd64");
    ok(&["untag", &format!("{}:b", s(layout.root()))]);

    let mut expected = digests(&[&images[0], &images[2], &amd, &arm, &untagged]);
    expected.insert(index.digest.clone());
    let garbage = digests(&[&images[1], &orphan]);
    assert!(stored_blobs(layout.root()).is_superset(&garbage));

    let before = snapshot(layout.root());
    let dry = json(&["gc", s(layout.root()), "--dry-run", "--json"]);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(snapshot(layout.root()), before, "a dry run changes nothing");
    let would: BTreeSet<String> = dry["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(would, garbage);

    let report = json(&["gc", s(layout.root()), "--json"]);
    assert_eq!(stored_blobs(layout.root()), expected);
    let freed: u64 = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["size"].as_u64().unwrap())
        .sum();
    assert_eq!(report["bytesFreed"], freed);
    assert!(freed > 0);
    ok(&["fsck", s(layout.root())]);
    // A second run finds nothing.
    let again = json(&["gc", s(layout.root()), "--json"]);
    assert_eq!(again["removed"], serde_json::json!([]));
}

#[test]
fn gc_keeps_referrers_of_kept_images_and_their_referrers() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["signed", "dropped"]);
    let sig = write_referrer(&layout, &images[0].manifest, "signature of signed");
    let sig_of_sig = write_referrer(&layout, &sig.manifest, "countersignature");
    let dead_sig = write_referrer(&layout, &images[1].manifest, "signature of dropped");
    ok(&["untag", &format!("{}:dropped", s(layout.root()))]);

    let report = json(&["gc", s(layout.root()), "--json"]);
    let stored = stored_blobs(layout.root());
    for d in digests(&[&images[0], &sig, &sig_of_sig]) {
        assert!(stored.contains(&d), "{d} was removed");
    }
    // The empty config {} is shared by all referrers; the dead one's manifest and payload go.
    assert!(!stored.contains(&dead_sig.manifest.digest));
    assert!(!stored.contains(&dead_sig.layers[0].to_string()));
    for d in images[1].blobs() {
        assert!(!stored.contains(&d.to_string()), "{d} survived");
    }
    let kept: Vec<&str> = report["referrersKept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept.contains(&sig.manifest.digest.as_str())
            && kept.contains(&sig_of_sig.manifest.digest.as_str())
    );
    let fsck = json(&["fsck", s(layout.root()), "--json"]);
    assert_eq!(fsck["referrers"].as_array().unwrap().len(), 2);
    assert_eq!(fsck["unreferenced"], serde_json::json!([]));
}

#[test]
fn gc_removes_stale_temp_files_but_not_foreign_files() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a"]);
    let tmp = layout.root().join(".strata-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    write(&tmp.join("blob-leftover"), b"half a blob");
    write(
        &layout.root().join("blobs/sha256/not-a-digest"),
        b"someone else's",
    );
    write(&layout.root().join("README"), b"mine");
    let report = json(&["gc", s(layout.root()), "--json"]);
    assert_eq!(report["tempFilesRemoved"], 1);
    assert!(!tmp.join("blob-leftover").exists());
    assert!(layout.root().join("blobs/sha256/not-a-digest").exists());
    assert!(layout.root().join("README").exists());
}

#[test]
fn gc_refuses_to_guess_when_a_manifest_is_missing() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["a", "b"]);
    let orphan = write_image(&layout, &["orphan"], "amd64");
    std::fs::remove_file(layout.blob_path(&images[0].manifest.digest().unwrap())).unwrap();
    let err = fails(&["gc", s(layout.root())], 1);
    assert!(err.contains(&images[0].manifest.digest), "{err}");
    assert!(
        stored_blobs(layout.root()).contains(&orphan.manifest.digest),
        "nothing swept after an error"
    );
}

#[test]
fn gc_min_age_keeps_blobs_another_tool_may_still_be_writing() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["a"]);
    // As skopeo would leave them mid-copy: blobs in place, index.json not written yet.
    let fresh = layout
        .put_blob(b"a layer someone is still copying")
        .unwrap();
    let lay = s(layout.root());
    let report = json(&["gc", lay, "--min-age", "1h", "--json"]);
    assert_eq!(report["removed"], serde_json::json!([]), "{report:#}");
    assert_eq!(
        report["keptRecent"],
        serde_json::json!([fresh.digest.to_string()]),
        "{report:#}"
    );
    assert!(stored_blobs(layout.root()).contains(&fresh.digest.to_string()));
    // Once older than the minimum age, it goes; the image's blobs stay.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let report = json(&["gc", lay, "--min-age", "1s", "--json"]);
    assert_eq!(
        report["removed"][0]["digest"],
        fresh.digest.to_string(),
        "{report:#}"
    );
    assert_eq!(report["keptRecent"], serde_json::json!([]));
    let left = stored_blobs(layout.root());
    assert!(!left.contains(&fresh.digest.to_string()));
    for blob in images[0].blobs() {
        assert!(left.contains(&blob.to_string()), "{blob} went");
    }
    // Ages are checked as they are typed.
    for bad in ["1y", "h", "5 m", "99999999999999999d"] {
        let err = fails(&["gc", lay, "--min-age", bad], 2);
        assert!(err.contains("--min-age"), "{bad}: {err}");
    }
}
