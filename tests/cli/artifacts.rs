//! Artifacts, referrers and multi-platform indexes (image-spec 1.1).

use std::path::Path;

use crate::util::*;

fn lay(dir: &Path) -> String {
    s(&dir.join("lay")).to_owned()
}

/// An image built from a one-file tree, tagged `tag`.
fn image(dir: &Path, tag: &str, content: &str, platform: &str) -> String {
    let tree = dir.join(format!("tree-{tag}"));
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("f"), content).unwrap();
    ok(&[
        "build",
        s(&tree),
        &format!("{}:{tag}", lay(dir)),
        "--set-platform",
        platform,
    ])
    .trim()
    .to_owned()
}

fn file(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    s(&p).to_owned()
}

/// `strata artifact attach`; the new referrer's digest.
fn attach(subject: &str, artifact_type: &str, file: &str) -> String {
    ok(&[
        "artifact",
        "attach",
        "--disable-path-validation",
        subject,
        "--artifact-type",
        artifact_type,
        file,
    ])
    .trim()
    .to_owned()
}

/// The platforms `ls --json` gives the entry tagged `tag`.
fn platforms(layout: &str, tag: &str) -> serde_json::Value {
    let listed = json(&["ls", layout, "--json"]);
    listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["tag"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {listed:#}"))["platforms"]
        .clone()
}

/// Tags, as `tag`, an artifact whose one layer is `payload` titled `title` (the name
/// `artifact pull` writes it under).
fn titled_artifact(
    layout: &strata::Layout,
    payload: &strata::spec::BlobRef,
    empty: &strata::spec::BlobRef,
    title: &str,
    tag: &str,
) {
    use strata::spec::{media_type, to_canonical_json, Descriptor};
    let mut layer = Descriptor::new("text/plain", &payload.digest, payload.size);
    layer.set_annotation("org.opencontainers.image.title", Some(title));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "artifactType": "application/x",
        "config": Descriptor::new(media_type::EMPTY, &empty.digest, empty.size),
        "layers": [layer],
    });
    let blob = layout.put_blob(&to_canonical_json(&manifest)).unwrap();
    add_entry(
        layout,
        &Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size),
        Some(tag),
    );
}

/// `strata index create LAYOUT:multi` over the images tagged `amd` and `arm`, with `extra`.
fn create_multi(layout: &str, extra: &[&str]) {
    let (multi, amd, arm) = (
        format!("{layout}:multi"),
        format!("{layout}:amd"),
        format!("{layout}:arm"),
    );
    let args = [
        "index",
        "create",
        &multi,
        "--manifest",
        &amd,
        "--manifest",
        &arm,
    ];
    ok(&[&args[..], extra].concat());
}

fn referrer_digests(args: &[&str]) -> Vec<String> {
    let j = json(args);
    j["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn signature_and_sbom_live_and_die_with_their_image() {
    let dir = tempdir();
    let l = lay(dir.path());
    let img = image(dir.path(), "app", "app", "linux/amd64");
    image(dir.path(), "other", "other", "linux/amd64");
    let sig = attach(
        &format!("{l}:app"),
        "application/vnd.example.sig",
        &file(dir.path(), "app.sig", "signed"),
    );
    let sbom = attach(
        &format!("{l}:app"),
        "application/spdx+json",
        &format!(
            "{}:application/spdx+json",
            file(dir.path(), "sbom.json", "{\"spdx\":true}")
        ),
    );
    let sbom_sig = attach(
        &format!("{l}@{sbom}"),
        "application/vnd.example.sig",
        &file(dir.path(), "sbom.sig", "signed too"),
    );

    // Attached referrers are kept in index.json, untagged.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("lay/index.json")).unwrap()).unwrap();
    let entries: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    for d in [&sig, &sbom, &sbom_sig] {
        assert!(entries.contains(&d.as_str()), "{d} not in index.json");
    }

    let direct = referrer_digests(&["referrers", &format!("{l}:app"), "--json"]);
    assert_eq!(direct.len(), 2);
    assert!(direct.contains(&sig) && direct.contains(&sbom));
    let deep = referrer_digests(&["referrers", &format!("{l}:app"), "--json", "--depth", "2"]);
    assert_eq!(deep.len(), 3);
    assert!(deep.contains(&sbom_sig));
    let only_sboms = json(&[
        "referrers",
        &format!("{l}:app"),
        "--json",
        "--artifact-type",
        "application/spdx+json",
    ]);
    assert_eq!(only_sboms["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        only_sboms["manifests"][0]["artifactType"],
        "application/spdx+json"
    );
    assert_eq!(only_sboms["mediaType"], strata::spec::media_type::INDEX);

    // Removing an unrelated image keeps every referrer.
    ok(&["untag", &format!("{l}:other")]);
    ok(&["gc", &l]);
    let stored = stored_blobs(&dir.path().join("lay"));
    for d in [&img, &sig, &sbom, &sbom_sig] {
        assert!(stored.contains(d), "{d} was collected");
    }
    // Untagging the image leaves its referrers to gc, which drops them all.
    ok(&["untag", &format!("{l}:app")]);
    let report = json(&["gc", &l, "--json"]);
    assert_eq!(report["entriesRemoved"], 3);
    let stored = stored_blobs(&dir.path().join("lay"));
    for d in [&img, &sig, &sbom, &sbom_sig] {
        assert!(!stored.contains(d), "{d} survived");
    }
    assert_eq!(json(&["ls", &l, "--json"])["images"], serde_json::json!([]));
    ok(&["fsck", &l]);
}

#[test]
fn push_follows_the_artifact_guidance_and_pull_gets_the_files_back() {
    let dir = tempdir();
    let l = lay(dir.path());
    let a = file(dir.path(), "a.txt", "alpha");
    let b = file(dir.path(), "b.bin", "beta");
    ok(&[
        "artifact",
        "push",
        "--disable-path-validation",
        &format!("{l}:files"),
        "--artifact-type",
        "application/vnd.example.bundle",
        &format!("{a}:text/plain"),
        &b,
        "--annotation",
        "org.example=1",
    ]);
    let raw = ok_bytes(&["inspect", &format!("{l}:files"), "--raw", "manifest"]);
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(m["artifactType"], "application/vnd.example.bundle");
    assert_eq!(m["config"]["mediaType"], strata::spec::media_type::EMPTY);
    assert_eq!(
        m["config"]["digest"],
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(m["config"]["data"], "e30=");
    assert_eq!(m["layers"][0]["mediaType"], "text/plain");
    assert_eq!(
        m["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "a.txt"
    );
    assert_eq!(m["layers"][1]["mediaType"], "application/octet-stream");
    assert_eq!(m["annotations"]["org.example"], "1");
    ok(&["fsck", &l]);

    let out = dir.path().join("out");
    ok(&["artifact", "pull", &format!("{l}:files"), s(&out)]);
    assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "alpha");
    assert_eq!(std::fs::read_to_string(out.join("b.bin")).unwrap(), "beta");

    // No files: one empty layer.
    ok(&[
        "artifact",
        "push",
        &format!("{l}:nothing"),
        "--artifact-type",
        "application/vnd.example.flag",
    ]);
    let raw = ok_bytes(&["inspect", &format!("{l}:nothing"), "--raw", "manifest"]);
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(m["layers"].as_array().unwrap().len(), 1);
    assert_eq!(m["layers"][0]["mediaType"], strata::spec::media_type::EMPTY);
    assert_eq!(m["layers"][0]["size"], 2);
}

#[test]
fn bad_artifact_input_changes_nothing() {
    let dir = tempdir();
    let l = lay(dir.path());
    image(dir.path(), "app", "app", "linux/amd64");
    let f = file(dir.path(), "x.txt", "x");
    let root = dir.path().join("lay");
    let (nope, t) = (format!("{l}:nope"), format!("{l}:t"));
    let outside = format!("{}/../x.txt", s(dir.path()));
    let push = [
        "artifact",
        "push",
        "--disable-path-validation",
        &t,
        "--artifact-type",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "artifact",
                "attach",
                "--disable-path-validation",
                &nope,
                "--artifact-type",
                "application/x",
                &f,
            ],
            "\"nope\"",
        ),
        (
            [&push[..], &["application/x", &f, "--subject", &nope]].concat(),
            "\"nope\"",
        ),
    ];
    for (args, needle) in cases {
        let before = snapshot(&root);
        let err = fails(&args, 1);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(snapshot(&root) == before, "{args:?} changed the layout");
    }
    // A value that is not a media type is a wrong value (exit 2), found as the command
    // line is parsed.
    let before = snapshot(&root);
    let err = fails(&[&push[..], &["not a type", &f]].concat(), 2);
    assert!(err.contains("not a type"), "{err}");
    assert!(
        snapshot(&root) == before,
        "a bad --artifact-type changed the layout"
    );
    // A path with .. is a wrong value (exit 2), refused before anything is read.
    let before = snapshot(&root);
    let err = fails(
        &[
            "artifact",
            "push",
            &t,
            "--artifact-type",
            "application/x",
            &outside,
        ],
        2,
    );
    assert!(err.contains(&outside) && err.contains(".."), "{err}");
    assert!(snapshot(&root) == before);
}

#[test]
fn pull_never_writes_outside_the_directory() {
    let dir = tempdir();
    let layout = strata::Layout::init(dir.path().join("lay")).unwrap();
    let payload = layout.put_blob(b"escaped").unwrap();
    let empty = layout.put_blob(b"{}").unwrap();
    for (tag, title) in [
        ("up", "../escaped"),
        ("abs", "/tmp/strata-escaped-by-title"),
        ("deep", "a/../../escaped"),
    ] {
        titled_artifact(&layout, &payload, &empty, title, tag);
        let target = dir.path().join("target").join(tag);
        let err = fails(
            &[
                "artifact",
                "pull",
                &format!("{}:{tag}", s(layout.root())),
                s(&target),
            ],
            1,
        );
        assert!(err.contains(title), "{err}");
    }
    assert!(!dir.path().join("escaped").exists());
    assert!(!dir.path().join("target/escaped").exists());
    assert!(!Path::new("/tmp/strata-escaped-by-title").exists());
    // A symlink planted in the directory does not lead the write out either.
    let payload_dir = dir.path().join("planted");
    std::fs::create_dir_all(&payload_dir).unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, payload_dir.join("sub")).unwrap();
    titled_artifact(&layout, &payload, &empty, "sub/file", "planted");
    let _ = run(&[
        "artifact",
        "pull",
        &format!("{}:planted", s(layout.root())),
        s(&payload_dir),
    ]);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "a write went through the planted symlink"
    );
}

#[test]
fn index_create_add_remove_and_unpack_by_platform() {
    let dir = tempdir();
    let l = lay(dir.path());
    let amd = image(dir.path(), "amd", "amd64 tree", "linux/amd64");
    let arm = image(dir.path(), "arm", "arm64 tree", "linux/arm64/v8");
    create_multi(&l, &["--annotation", "org.example=multi"]);
    let raw = ok_bytes(&[
        "inspect",
        &format!("{l}:multi"),
        "--raw",
        "index",
        "--platform",
        "linux/amd64",
    ]);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["manifests"][0]["digest"], amd);
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64");
    assert_eq!(index["manifests"][1]["platform"]["variant"], "v8");
    assert_eq!(index["annotations"]["org.example"], "multi");
    for (platform, content) in [("linux/amd64", "amd64 tree"), ("linux/arm64", "arm64 tree")] {
        let bundle = dir.path().join(format!("b-{}", platform.replace('/', "-")));
        ok(&[
            "unpack",
            &format!("{l}:multi"),
            s(&bundle),
            "--platform",
            platform,
        ]);
        assert_eq!(
            std::fs::read_to_string(bundle.join("rootfs/f")).unwrap(),
            content
        );
    }
    ok(&[
        "index",
        "remove",
        &format!("{l}:multi"),
        "--platform",
        "linux/amd64",
    ]);
    assert_eq!(
        platforms(&l, "multi"),
        serde_json::json!(["linux/arm64/v8"])
    );
    ok(&[
        "index",
        "add",
        &format!("{l}:multi"),
        "--manifest",
        &format!("{l}:amd"),
    ]);
    assert_eq!(
        platforms(&l, "multi"),
        serde_json::json!(["linux/arm64/v8", "linux/amd64"])
    );
    let err = fails(
        &[
            "index",
            "remove",
            &format!("{l}:multi"),
            "--platform",
            "linux/s390x",
        ],
        1,
    );
    assert!(err.contains("linux/s390x"), "{err}");
    let err = fails(
        &[
            "index",
            "create",
            &format!("{l}:bad"),
            "--manifest",
            &format!("{l}:multi"),
        ],
        1,
    );
    assert!(err.contains("not an image manifest"), "{err}");
    ok(&["fsck", &l]);
    let _ = arm;
}

#[test]
fn peers_accept_artifacts_and_indexes() {
    if !peer("skopeo") {
        return;
    }
    let dir = tempdir();
    let l = lay(dir.path());
    image(dir.path(), "amd", "a", "linux/amd64");
    image(dir.path(), "arm", "b", "linux/arm64");
    create_multi(&l, &[]);
    ok(&[
        "artifact",
        "push",
        "--disable-path-validation",
        &format!("{l}:sbom"),
        "--artifact-type",
        "application/spdx+json",
        &file(dir.path(), "s.json", "{}"),
        "--subject",
        &format!("{l}:amd"),
    ]);
    let copy = format!("oci:{}", s(&dir.path().join("copy")));
    for tag in ["multi", "sbom"] {
        peer_ok(
            "skopeo",
            &[
                "copy",
                "--all",
                "--preserve-digests",
                &format!("oci:{l}:{tag}"),
                &format!("{copy}:{tag}"),
            ],
        );
        let raw = peer_ok("skopeo", &["inspect", "--raw", &format!("oci:{l}:{tag}")]);
        let what = if tag == "multi" { "index" } else { "manifest" };
        let ours = ok_bytes(&[
            "inspect",
            &format!("{l}:{tag}"),
            "--raw",
            what,
            "--platform",
            "linux/amd64",
        ]);
        assert_eq!(raw.as_bytes(), &ours[..], "{tag}");
    }
    ok(&["fsck", s(&dir.path().join("copy"))]);
}

#[test]
fn export_and_copy_carry_referrers() {
    let dir = tempdir();
    let l = lay(dir.path());
    image(dir.path(), "app", "app", "linux/amd64");
    let sig = attach(
        &format!("{l}:app"),
        "application/vnd.example.sig",
        &file(dir.path(), "app.sig", "signed"),
    );
    let archive = dir.path().join("app.tar");
    // Referrers are opt-in on export: an archive of one image lists one image by default.
    ok(&[
        "export",
        &format!("{l}:app"),
        "-o",
        s(&archive),
        "--referrers",
    ]);
    let received = dir.path().join("received");
    ok(&["import", s(&archive), s(&received)]);
    let found = referrer_digests(&["referrers", &format!("{}:app", s(&received)), "--json"]);
    assert_eq!(found, std::slice::from_ref(&sig));
    ok(&["gc", s(&received)]);
    assert!(
        stored_blobs(&received).contains(&sig),
        "gc on the receiver dropped the signature"
    );
    ok(&["fsck", s(&received)]);

    let copied = dir.path().join("copied");
    ok(&[
        "copy",
        &format!("{l}:app"),
        &format!("{}:app", s(&copied)),
        "--referrers",
    ]);
    assert_eq!(
        referrer_digests(&["referrers", &format!("{}:app", s(&copied)), "--json"]),
        std::slice::from_ref(&sig)
    );

    let bare = dir.path().join("bare.tar");
    ok(&["export", &format!("{l}:app"), "-o", s(&bare)]);
    let received = dir.path().join("received-bare");
    ok(&["import", s(&bare), s(&received)]);
    assert!(
        referrer_digests(&["referrers", &format!("{}:app", s(&received)), "--json"]).is_empty()
    );
}
