//! init, ls, inspect, tag and untag on layouts built by strata's fixtures.

use crate::util::*;

#[test]
fn init_makes_a_layout_that_fsck_passes() {
    let dir = tempdir();
    let lay = dir.path().join("a/b/lay");
    ok(&["init", s(&lay)]);
    assert_eq!(
        std::fs::read(lay.join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lay.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"], serde_json::json!([]));
    assert!(lay.join("blobs/sha256").is_dir());
    // Only the layout's own files: no temp or lock litter.
    let names: Vec<_> = std::fs::read_dir(&lay)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    ok(&["fsck", s(&lay)]);
    // Again on the empty layout: a retry of a killed init must succeed.
    ok(&["init", s(&lay)]);
    ok(&["new", &format!("{}:t", s(&lay))]);
    let r = run(&["init", s(&lay)]);
    assert!(
        r.code == 0 && r.stderr.contains("a layout already"),
        "{}",
        r.stderr
    );
}

#[test]
fn ls_lists_every_entry_with_size_and_platform() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["one", "two"]);
    let arm = write_image(&layout, &["arm"], "arm64");
    let index = write_index(&layout, &[&images[0], &arm]);
    add_entry(&layout, &index, Some("multi"));
    add_entry(&layout, &images[1].manifest, None);

    let listing = json(&["ls", s(layout.root()), "--json"]);
    assert_eq!(listing["schemaVersion"], 1);
    let entries = listing["images"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0]["tag"], "one");
    assert_eq!(entries[0]["digest"], images[0].manifest.digest);
    assert_eq!(entries[0]["platforms"], serde_json::json!(["linux/amd64"]));
    let one_size: u64 = images[0]
        .blobs()
        .iter()
        .map(|d| std::fs::metadata(layout.blob_path(d)).unwrap().len())
        .sum();
    assert_eq!(entries[0]["size"], one_size);
    assert_eq!(entries[2]["tag"], "multi");
    assert_eq!(entries[2]["mediaType"], strata::spec::media_type::INDEX);
    assert_eq!(
        entries[2]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert!(entries[3]["tag"].is_null());

    let text = ok(&["ls", s(layout.root())]);
    assert!(text.lines().nth(1).unwrap().starts_with("one "), "{text}");
    assert!(text.contains("<none>"), "{text}");
}

#[test]
fn inspect_summarises_and_prints_raw_bytes() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["web"]);
    let r = format!("{}:web", s(layout.root()));
    let j = json(&["inspect", &r, "--json"]);
    assert_eq!(j["manifest"]["digest"], images[0].manifest.digest);
    assert_eq!(j["config"]["digest"], images[0].config.to_string());
    assert_eq!(j["platform"], "linux/amd64");
    assert_eq!(j["layers"][0]["digest"], images[0].layers[0].to_string());
    assert_eq!(j["layers"][0]["diffId"], images[0].layers[0].to_string());
    assert_eq!(j["cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(j["env"], serde_json::json!(["PATH=/usr/bin"]));
    assert_eq!(j["labels"]["seed"], "web");
    assert_eq!(j["history"][0]["createdBy"], "add web");

    let human = ok(&["inspect", &r]);
    assert!(human.contains(&images[0].manifest.digest), "{human}");
    assert!(human.contains("PATH=/usr/bin"), "{human}");

    let raw = strata(&["inspect", &r, "--raw", "manifest"])
        .output()
        .unwrap()
        .stdout;
    let manifest_digest = images[0].manifest.digest().unwrap();
    assert_eq!(
        raw,
        std::fs::read(layout.blob_path(&manifest_digest)).unwrap()
    );
    let raw = strata(&["inspect", &r, "--raw", "config"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(
        raw,
        std::fs::read(layout.blob_path(&images[0].config)).unwrap()
    );
    let raw = strata(&["inspect", &r, "--raw", "index"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(
        raw,
        std::fs::read(layout.root().join("index.json")).unwrap()
    );

    // By digest, too.
    let by_digest = format!("{}@{}", s(layout.root()), images[0].manifest.digest);
    assert_eq!(
        json(&["inspect", &by_digest, "--json"])["manifest"]["digest"],
        images[0].manifest.digest
    );
}

#[test]
fn inspect_picks_the_platform_from_an_index() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &[]);
    let amd = write_image(&layout, &["a"], "amd64");
    let arm = write_image(&layout, &["b"], "arm64");
    let index = write_index(&layout, &[&amd, &arm]);
    add_entry(&layout, &index, Some("multi"));
    let r = format!("{}:multi", s(layout.root()));
    let j = json(&["inspect", &r, "--platform", "linux/arm64", "--json"]);
    assert_eq!(j["manifest"]["digest"], arm.manifest.digest);
    assert_eq!(j["entry"]["digest"], index.digest);
    let raw = strata(&["inspect", &r, "--platform", "linux/arm64", "--raw", "index"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(
        raw,
        std::fs::read(layout.blob_path(&index.digest().unwrap())).unwrap()
    );
    let err = fails(&["inspect", &r, "--platform", "linux/s390x"], 1);
    assert!(err.contains("linux/amd64, linux/arm64"), "{err}");
    let err = fails(&["inspect", &r, "--platform", "linux"], 2);
    assert!(err.contains("OS/ARCH"), "{err}");
}

#[test]
fn tag_adds_moves_and_untag_removes() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["a", "b"]);
    let root = s(layout.root());
    ok(&["tag", &format!("{root}:a"), "v1"]);
    ok(&["tag", &format!("{root}:a"), "docker.io/library/x:1"]);
    let tags = |l: &serde_json::Value| -> Vec<String> {
        l["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["tag"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let listing = json(&["ls", root, "--json"]);
    assert_eq!(tags(&listing), ["a", "b", "v1", "docker.io/library/x:1"]);
    assert_eq!(listing["images"][2]["digest"], images[0].manifest.digest);
    // A tag with slashes and colons is still addressable.
    assert_eq!(
        json(&[
            "inspect",
            &format!("{root}:docker.io/library/x:1"),
            "--json"
        ])["manifest"]["digest"],
        images[0].manifest.digest
    );

    // Moving a tag keeps its place; tagging again changes nothing on disk.
    ok(&["tag", &format!("{root}:b"), "v1"]);
    let listing = json(&["ls", root, "--json"]);
    assert_eq!(tags(&listing), ["a", "b", "v1", "docker.io/library/x:1"]);
    assert_eq!(listing["images"][2]["digest"], images[1].manifest.digest);
    let before = std::fs::read(layout.root().join("index.json")).unwrap();
    ok(&["tag", &format!("{root}:b"), "v1"]);
    assert_eq!(
        std::fs::read(layout.root().join("index.json")).unwrap(),
        before
    );

    ok(&["untag", &format!("{root}:v1")]);
    assert_eq!(
        tags(&json(&["ls", root, "--json"])),
        ["a", "b", "docker.io/library/x:1"]
    );
    ok(&["untag", &format!("{root}@{}", images[0].manifest.digest)]);
    assert_eq!(tags(&json(&["ls", root, "--json"])), ["b"]);
    // Blobs stay until gc.
    for blob in images[0].blobs() {
        assert!(layout.blob_path(&blob).is_file());
    }
}

#[test]
fn unknown_fields_in_index_json_survive_a_tag() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["a"]);
    let path = layout.root().join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    index["x-future"] = serde_json::json!({"keep": [1, 2, 3]});
    index["manifests"][0]["x-entry"] = serde_json::json!("mine");
    index["annotations"] = serde_json::json!({"org.example": "v"});
    write(&path, serde_json::to_string(&index).unwrap().as_bytes());
    ok(&["tag", &format!("{}:a", s(layout.root())), "b"]);
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(after["x-future"], index["x-future"]);
    assert_eq!(after["annotations"], index["annotations"]);
    assert_eq!(after["manifests"][0]["x-entry"], "mine");
    assert_eq!(
        after["manifests"][1]["x-entry"], "mine",
        "the new entry copies the source descriptor"
    );
}

#[test]
fn default_reference_needs_a_single_image() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["only"]);
    let j = json(&["inspect", s(layout.root()), "--json"]);
    assert_eq!(j["manifest"]["digest"], images[0].manifest.digest);
    ok(&["tag", &format!("{}:only", s(layout.root())), "second"]);
    // Two tags of one image are still one image.
    ok(&["inspect", s(layout.root())]);
    let other = write_image(&layout, &["x"], "amd64");
    add_entry(&layout, &other.manifest, Some("other"));
    let err = fails(&["inspect", s(layout.root())], 2);
    assert!(
        err.contains("holds 2 images") || err.contains("holds 3 images"),
        "{err}"
    );
    assert!(err.contains("only"), "{err}");
}

#[test]
fn exit_codes_and_help() {
    assert_eq!(run(&["--help"]).code, 0);
    for cmd in [
        "init",
        "ls",
        "inspect",
        "tag",
        "untag",
        "gc",
        "fsck",
        "man",
        "completions",
    ] {
        let r = run(&[cmd, "--help"]);
        assert_eq!(r.code, 0, "{cmd} --help");
        assert!(r.stdout.contains("Usage: strata"), "{cmd}: {}", r.stdout);
    }
    assert_eq!(run(&["no-such-command"]).code, 2);
    assert_eq!(run(&["ls"]).code, 2);
    assert_eq!(run(&["inspect", "x", "--raw", "bogus"]).code, 2);
    let bash = ok(&["completions", "bash"]);
    assert!(bash.contains("strata") && bash.contains("fsck"), "{bash}");
}

#[test]
fn sha512_blobs_are_verified() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &[]);
    let bytes = tar_layer("five-twelve");
    let mut w = layout
        .blob_writer(strata::digest::Algorithm::Sha512)
        .unwrap();
    std::io::Write::write_all(&mut w, &bytes).unwrap();
    let blob = w.finish().unwrap();
    assert_eq!(blob.digest.algorithm(), strata::digest::Algorithm::Sha512);
    assert!(layout
        .root()
        .join("blobs/sha512")
        .join(blob.digest.hex())
        .is_file());
    let report = json(&["fsck", s(layout.root()), "--json"]);
    assert_eq!(report["blobsChecked"].as_u64(), Some(1));
    write(&layout.blob_path(&blob.digest), b"tampered");
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains(&blob.digest.to_string()),
        "{}",
        out.stdout
    );
}
