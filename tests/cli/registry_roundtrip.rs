//! Push then pull through a real registry (distribution 2.8): images strata and umoci built,
//! a multi-platform index, an artifact. What comes back has the digests that went, fsck
//! finds it sound and it unpacks to the same tree; a second push uploads nothing; a large
//! blob goes in chunks.

use std::path::{Path, PathBuf};

use super::registry_util::{
    assert_fsck, blob_bytes, noise, ok_in, run_measuring_memory, strata_built, tagged_digest,
    unpacked, FaultProxy, Registry,
};
use super::util::{add_entry, json, ok, peer, peer_ok, s, tempdir, write_image, write_index};

/// `strata push --json SRC NAME`.
fn push(src: &str, name: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["push", "--json", src, name];
    args.extend_from_slice(extra);
    json(&args)
}

/// `strata pull --json NAME DST`.
fn pull(name: &str, dst: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["pull", "--json", name, dst];
    args.extend_from_slice(extra);
    json(&args)
}

/// Pushes `layout:tag` to `repo:tag`, pulls it into a fresh layout and checks the round
/// trip: same digest, sound layout, same unpacked tree. Returns the pulled layout.
fn round_trip(reg: &Registry, dir: &Path, layout: &Path, tag: &str, repo: &str) -> PathBuf {
    let digest = tagged_digest(layout, tag).expect("the source is tagged");
    let name = reg.name(&format!("{repo}:{tag}"));
    let pushed = push(&format!("{}:{tag}", s(layout)), &name, &[]);
    assert_eq!(pushed["digest"], digest.as_str(), "{pushed}");
    assert!(pushed["blobsUploaded"].as_u64().unwrap() > 0, "{pushed}");
    let back = dir.join(format!("{repo}-back").replace('/', "-"));
    let pulled = pull(&name, s(&back), &[]);
    assert_eq!(pulled["digest"], digest.as_str(), "{pulled}");
    assert_eq!(tagged_digest(&back, tag).as_deref(), Some(digest.as_str()));
    assert_fsck(&back);
    back
}

#[test]
fn strata_built_multi_layer_image_round_trips_and_a_second_push_uploads_nothing() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(
        dir.path(),
        "src",
        "v1",
        &[
            &[
                ("etc/os-release", b"ID=test\n"),
                ("bin/tool", b"#!/bin/sh\necho one\n"),
            ],
            &[("usr/share/doc/readme", b"layer two\n")],
            &[
                ("bin/tool", b"#!/bin/sh\necho three\n"),
                ("var/empty/.keep", b""),
            ],
        ],
    );
    let back = round_trip(&reg, dir.path(), &layout, "v1", "rt/strata");
    let src_tree = unpacked(&format!("{}:v1", s(&layout)), &dir.path().join("b1"));
    let back_tree = unpacked(&format!("{}:v1", s(&back)), &dir.path().join("b2"));
    assert_eq!(src_tree, back_tree);
    for path in ["bin/tool", "usr/share/doc/readme", "var/empty/.keep"] {
        assert!(
            src_tree.contains_key(path.as_bytes()),
            "{path}: {src_tree:?}"
        );
    }

    // Everything is there now: nothing is uploaded, no manifest is put again.
    let again = push(
        &format!("{}:v1", s(&layout)),
        &reg.name("rt/strata:v1"),
        &[],
    );
    assert_eq!(again["blobsUploaded"], 0, "{again}");
    assert_eq!(again["manifestsPushed"], 0, "{again}");
    assert_eq!(again["bytes"], 0, "{again}");
    assert_eq!(
        again["blobsPresent"], 5,
        "3 layers, config, manifest: {again}"
    );

    // A pull into the layout that has it all fetches only the documents.
    let repull = pull(&reg.name("rt/strata:v1"), s(&back), &[]);
    assert_eq!(repull["blobsPresent"], 4, "{repull}");
    assert_fsck(&back);
}

/// `umoci init/new/unpack/repack`: an image with one layer holding `files`.
fn umoci_image(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let layout = dir.join("umoci");
    let bundle = dir.join("umoci-bundle");
    let image = |t: &str| format!("{}:{t}", s(&layout));
    peer_ok("umoci", &["init", "--layout", s(&layout)]);
    peer_ok("umoci", &["new", "--image", &image("base")]);
    let mut unpack = vec!["unpack", "--image"];
    let base = image("base");
    unpack.push(&base);
    if !rustix::process::geteuid().is_root() {
        unpack.push("--rootless");
    }
    unpack.push(s(&bundle));
    peer_ok("umoci", &unpack);
    for (path, content) in files {
        let p = bundle.join("rootfs").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    peer_ok("umoci", &["repack", "--image", &image("v1"), s(&bundle)]);
    layout
}

#[test]
fn umoci_built_image_round_trips() {
    if !peer("umoci") {
        return;
    }
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = umoci_image(
        dir.path(),
        &[
            ("etc/hello", "from umoci\n"),
            ("opt/app/run", "#!/bin/sh\n"),
        ],
    );
    let back = round_trip(&reg, dir.path(), &layout, "v1", "rt/umoci");
    let src_tree = unpacked(&format!("{}:v1", s(&layout)), &dir.path().join("b1"));
    let back_tree = unpacked(&format!("{}:v1", s(&back)), &dir.path().join("b2"));
    assert!(
        src_tree.contains_key(b"etc/hello".as_slice()),
        "{src_tree:?}"
    );
    assert_eq!(src_tree, back_tree);
}

#[test]
fn multi_platform_index_pulls_one_platform_or_all_byte_for_byte() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let path = dir.path().join("multi");
    let layout = strata::Layout::init(&path).unwrap();
    let amd = write_image(&layout, &["amd-a", "amd-b"], "amd64");
    let arm = write_image(&layout, &["arm-a"], "arm64");
    let index = write_index(&layout, &[&amd, &arm]);
    add_entry(&layout, &index, Some("multi"));
    let name = reg.name("rt/multi:multi");
    let pushed = push(&format!("{}:multi", s(&path)), &name, &[]);
    assert_eq!(pushed["digest"], index.digest.as_str(), "{pushed}");
    assert_eq!(pushed["manifestsPushed"], 3, "{pushed}");

    // Default: this machine's platform (the tests run on linux/amd64).
    let one = dir.path().join("one");
    let r = pull(&name, s(&one), &[]);
    assert_eq!(r["digest"], amd.manifest.digest.as_str(), "{r}");
    assert_eq!(
        tagged_digest(&one, "multi").as_deref(),
        Some(amd.manifest.digest.as_str())
    );
    assert!(!one.join("blobs/sha256").join(arm.layers[0].hex()).exists());
    assert_fsck(&one);

    let arm_dir = dir.path().join("arm");
    let r = pull(&name, s(&arm_dir), &["--platform", "linux/arm64"]);
    assert_eq!(r["digest"], arm.manifest.digest.as_str(), "{r}");
    assert_fsck(&arm_dir);

    let all = dir.path().join("all");
    let r = pull(&name, s(&all), &["--all-platforms"]);
    assert_eq!(r["digest"], index.digest.as_str(), "{r}");
    assert_eq!(
        blob_bytes(&all, &index.digest),
        blob_bytes(&path, &index.digest),
        "the index is stored byte for byte"
    );
    for blob in amd.blobs().iter().chain(arm.blobs().iter()) {
        let d = blob.to_string();
        assert_eq!(blob_bytes(&all, &d), blob_bytes(&path, &d), "{d}");
    }
    assert_fsck(&all);

    // A platform the index does not have: refused, naming what it has.
    let none = dir.path().join("none");
    let r = super::util::run(&["pull", &name, s(&none), "--platform", "linux/s390x"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("linux/arm64"), "{}", r.stderr);
}

#[test]
fn artifact_round_trips_and_its_files_come_back() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let sbom = dir.path().join("sbom.json");
    std::fs::write(&sbom, br#"{"packages":["a","b"]}"#).unwrap();
    let layout = dir.path().join("art");
    ok_in(
        dir.path(),
        &[
            "artifact",
            "push",
            "--artifact-type",
            "application/vnd.example.sbom+json",
            &format!("{}:sbom", s(&layout)),
            "sbom.json:application/spdx+json",
        ],
    );
    let back = round_trip(&reg, dir.path(), &layout, "sbom", "rt/artifact");
    let ls = json(&["ls", s(&back), "--json"]);
    assert_eq!(
        ls["images"][0]["artifactType"], "application/vnd.example.sbom+json",
        "{ls}"
    );
    let out = dir.path().join("files");
    ok(&["artifact", "pull", &format!("{}:sbom", s(&back)), s(&out)]);
    assert_eq!(
        std::fs::read(out.join("sbom.json")).unwrap(),
        std::fs::read(&sbom).unwrap()
    );
}

#[test]
fn a_large_blob_goes_in_chunks_and_comes_back_identical() {
    let Some(reg) = Registry::plain() else { return };
    // The proxy only watches: the requests show how the blob went.
    let proxy = FaultProxy::start(&reg.host);
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("big.bin"), noise(3 << 20, 7)).unwrap();
    let layout = dir.path().join("big");
    ok(&[
        "build",
        "--compress",
        "none",
        s(&tree),
        &format!("{}:big", s(&layout)),
    ]);
    let digest = tagged_digest(&layout, "big").unwrap();
    let pushed = push(
        &format!("{}:big", s(&layout)),
        &proxy.name("rt/big:big"),
        &["--chunk-mib", "1"],
    );
    assert_eq!(pushed["digest"], digest.as_str(), "{pushed}");
    let seen = proxy.seen();
    let patches = seen.iter().filter(|l| l.starts_with("PATCH ")).count();
    // 3 MiB of file plus the tar's headers: four 1 MiB pieces.
    assert_eq!(patches, 4, "{seen:#?}");

    let back = dir.path().join("back");
    let pulled = pull(&reg.name("rt/big:big"), s(&back), &[]);
    assert_eq!(pulled["digest"], digest.as_str(), "{pulled}");
    assert_fsck(&back);
    let a = unpacked(&format!("{}:big", s(&layout)), &dir.path().join("b1"));
    let b = unpacked(&format!("{}:big", s(&back)), &dir.path().join("b2"));
    assert_eq!(a, b);
}

#[test]
fn a_pull_moves_a_layout_tag_only_with_force() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let one = strata_built(dir.path(), "one", "v1", &[&[("f", b"one\n")]]);
    let two = strata_built(dir.path(), "two", "v1", &[&[("f", b"two\n")]]);
    ok(&["push", &format!("{}:v1", s(&one)), &reg.name("tags/one:v1")]);
    ok(&["push", &format!("{}:v1", s(&two)), &reg.name("tags/two:v1")]);
    let dest = dir.path().join("dest");
    ok(&["pull", &reg.name("tags/one:v1"), &format!("{}:t", s(&dest))]);
    let first = tagged_digest(&dest, "t").unwrap();
    // Pulling the same image again is no clash.
    ok(&["pull", &reg.name("tags/one:v1"), &format!("{}:t", s(&dest))]);
    let before = super::util::snapshot(&dest);
    let r = super::util::run(&["pull", &reg.name("tags/two:v1"), &format!("{}:t", s(&dest))]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&first), "{}", r.stderr);
    assert!(
        r.stderr.contains("--force"),
        "the flag that moves it: {}",
        r.stderr
    );
    assert_eq!(super::util::snapshot(&dest), before);
    ok(&[
        "pull",
        "--force",
        &reg.name("tags/two:v1"),
        &format!("{}:t", s(&dest)),
    ]);
    assert_eq!(tagged_digest(&dest, "t"), tagged_digest(&two, "v1"));
    assert_fsck(&dest);
}

#[test]
fn a_48_mib_layer_goes_and_comes_in_bounded_memory() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let size = 48 << 20;
    std::fs::write(tree.join("big.bin"), noise(size, 3)).unwrap();
    let layout = dir.path().join("big");
    ok(&[
        "build",
        "--compress",
        "none",
        s(&tree),
        &format!("{}:big", s(&layout)),
    ]);
    std::fs::remove_dir_all(&tree).unwrap();
    let limit_kib = (size as u64 / 1024) * 2 / 3;
    for chunk in ["0", "8"] {
        let (code, stderr, peak) = run_measuring_memory(super::util::strata(&[
            "push",
            "--chunk-mib",
            chunk,
            &format!("{}:big", s(&layout)),
            &reg.name(&format!("mem/big{chunk}:big")),
        ]));
        assert_eq!(code, 0, "{stderr}");
        assert!(
            peak > 0 && peak < limit_kib,
            "push --chunk-mib {chunk}: peak {peak} KiB"
        );
    }
    let back = dir.path().join("back");
    let (code, stderr, peak) = run_measuring_memory(super::util::strata(&[
        "pull",
        &reg.name("mem/big8:big"),
        s(&back),
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(peak > 0 && peak < limit_kib, "pull: peak {peak} KiB");
    assert_eq!(tagged_digest(&back, "big"), tagged_digest(&layout, "big"));
    assert_fsck(&back);
}

#[test]
fn a_push_puts_blobs_then_children_then_the_index_then_referrers() {
    let Some(reg) = Registry::plain() else { return };
    let proxy = FaultProxy::start(&reg.host);
    let dir = tempdir();
    let path = dir.path().join("multi");
    let layout = strata::Layout::init(&path).unwrap();
    let amd = write_image(&layout, &["o1", "o2"], "amd64");
    let arm = write_image(&layout, &["o3"], "arm64");
    let index = write_index(&layout, &[&amd, &arm]);
    add_entry(&layout, &index, Some("m"));
    let note = dir.path().join("note.txt");
    std::fs::write(&note, "about the index\n").unwrap();
    let referrer = ok_in(
        dir.path(),
        &[
            "artifact",
            "attach",
            "--artifact-type",
            "application/vnd.example.note",
            &format!("{}:m", s(&path)),
            "note.txt",
        ],
    );
    let referrer = referrer.trim();
    // A signature of that note: a referrer of a referrer.
    let signature = ok_in(
        dir.path(),
        &[
            "artifact",
            "attach",
            "--artifact-type",
            "application/vnd.example.signature",
            &format!("{}@{referrer}", s(&path)),
            "note.txt",
        ],
    );
    let signature = signature.trim();
    push(
        &format!("{}:m", s(&path)),
        &proxy.name("order/img:m"),
        &["--referrers", "--jobs", "3"],
    );
    let seen = proxy.seen();
    let position = |prefix: &str| {
        seen.iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {seen:#?}"))
    };
    let last_blob = seen
        .iter()
        .rposition(|l| l.starts_with("PUT /v2/order/img/blobs/uploads/"))
        .unwrap();
    let first_manifest = position("PUT /v2/order/img/manifests/");
    assert!(last_blob < first_manifest, "{seen:#?}");
    let amd_put = position(&format!(
        "PUT /v2/order/img/manifests/{}",
        amd.manifest.digest
    ));
    let arm_put = position(&format!(
        "PUT /v2/order/img/manifests/{}",
        arm.manifest.digest
    ));
    let index_put = position("PUT /v2/order/img/manifests/m");
    let referrer_put = position(&format!("PUT /v2/order/img/manifests/{referrer}"));
    let fallback_put = position(&format!(
        "PUT /v2/order/img/manifests/{}",
        index.digest.replace(':', "-")
    ));
    assert!(amd_put < index_put && arm_put < index_put, "{seen:#?}");
    let signature_put = position(&format!("PUT /v2/order/img/manifests/{signature}"));
    assert!(index_put < referrer_put, "{seen:#?}");
    assert!(referrer_put < signature_put, "{seen:#?}");
    assert!(referrer_put < fallback_put, "{seen:#?}");
}

#[test]
fn verbose_pull_and_push_print_a_line_per_blob() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(
        dir.path(),
        "src",
        "v1",
        &[&[("a", b"a\n")], &[("b", b"b\n")]],
    );
    let digest = tagged_digest(&layout, "v1").unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob_bytes(&layout, &digest)).unwrap();
    let mut blobs = vec![
        digest.clone(),
        manifest["config"]["digest"].as_str().unwrap().to_owned(),
    ];
    for l in manifest["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_owned());
    }
    let lines_naming = |stderr: &str, d: &str| stderr.lines().filter(|l| l.contains(d)).count();
    let r = super::util::run(&[
        "push",
        "-v",
        &format!("{}:v1", s(&layout)),
        &reg.name("verbose/img:v1"),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for d in &blobs {
        assert_eq!(lines_naming(&r.stderr, d), 1, "{d}:\n{}", r.stderr);
    }
    let r = super::util::run(&[
        "pull",
        "-v",
        &reg.name("verbose/img:v1"),
        s(&dir.path().join("back")),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for d in &blobs {
        assert_eq!(lines_naming(&r.stderr, d), 1, "{d}:\n{}", r.stderr);
    }
}
