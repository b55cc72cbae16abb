//! Image operations of issue 13: blobs in and out.

use crate::util::*;

#[test]
fn blob_writes_a_verified_blob_to_stdout() {
    let dir = tempdir();
    let (layout, images) = layout_with_images(dir.path(), "lay", &["app"]);
    let lay = s(layout.root());
    let image = &images[0];
    let manifest_bytes =
        std::fs::read(layout.blob_path(&image.manifest.digest().unwrap())).unwrap();
    assert_eq!(
        ok_bytes(&["blob", &format!("{lay}@{}", image.manifest.digest)]),
        manifest_bytes
    );
    let config = json(&["inspect", &format!("{lay}:app"), "--raw", "manifest"]);
    let config_digest = config["config"]["digest"].as_str().unwrap().to_owned();
    let layer_digest = config["layers"][0]["digest"].as_str().unwrap().to_owned();
    let by_flag = ok_bytes(&["blob", &format!("{lay}:app"), "--config"]);
    assert_eq!(sha256(&by_flag).to_string(), config_digest);
    let layer = ok_bytes(&["blob", &format!("{lay}:app"), "--layer", "0"]);
    assert_eq!(sha256(&layer).to_string(), layer_digest);
    let err = fails(&["blob", &format!("{lay}:app"), "--layer", "9"], 1);
    assert!(err.contains("no layer 9"), "{err}");
    // A tag without --config/--layer names an image, not a blob.
    fails(&["blob", &format!("{lay}:app")], 2);
    // A damaged blob: the stream ends in an error naming it, exit 1.
    let path = layout
        .root()
        .join("blobs/sha256")
        .join(layer_digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = fails(&["blob", &format!("{lay}@{layer_digest}")], 1);
    assert!(err.contains(&layer_digest), "{err}");
}

#[test]
fn blob_put_stores_a_file_and_prints_its_descriptor() {
    let dir = tempdir();
    let lay = dir.path().join("fresh");
    ok(&["init", s(&lay)]);
    let file = dir.path().join("notes.txt");
    write(&file, b"notes\n");
    let desc = json(&[
        "blob",
        "put",
        s(&lay),
        s(&file),
        "--media-type",
        "text/plain",
        "--json",
    ]);
    let digest = sha256(b"notes\n").to_string();
    assert_eq!(desc["digest"], digest.as_str());
    assert_eq!(desc["size"], 6);
    assert_eq!(desc["mediaType"], "text/plain");
    assert_eq!(
        ok_bytes(&["blob", &format!("{}@{digest}", s(&lay))]),
        b"notes\n"
    );
    // A missing file: refused, the layout as it was.
    let before = snapshot(&lay);
    fails(&["blob", "put", s(&lay), s(&dir.path().join("nope"))], 1);
    assert_eq!(before, snapshot(&lay));
}

/// Builds an image of three layers: a tree with a directory symlink and a hard link, then a
/// file changed and a directory made opaque, then a whiteout.
fn layered(dir: &std::path::Path) -> String {
    use std::os::unix::fs::symlink;
    let lay = dir.join("lay");
    let image = format!("{}:app", s(&lay));
    let tree = dir.join("tree");
    for d in ["usr/bin", "etc/conf.d", "var/old"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    write(&tree.join("usr/bin/tool"), b"#!/bin/sh\necho v1\n");
    write(&tree.join("etc/conf.d/a.conf"), b"a\n");
    write(&tree.join("etc/conf.d/b.conf"), b"b\n");
    write(&tree.join("var/old/log"), b"old\n");
    std::fs::hard_link(tree.join("usr/bin/tool"), tree.join("usr/bin/tool-alias")).unwrap();
    symlink("usr/bin", tree.join("bin")).unwrap();
    symlink("../usr/bin/tool", tree.join("etc/tool-link")).unwrap();
    ok(&["build", s(&tree), &image]);
    let v2 = dir.join("tool-v2");
    write(&v2, b"#!/bin/sh\necho v2\n");
    ok(&["insert", &image, s(&v2), "/usr/bin/tool"]);
    let conf = dir.join("conf.d");
    std::fs::create_dir_all(&conf).unwrap();
    write(&conf.join("c.conf"), b"c\n");
    ok(&["insert", &image, s(&conf), "/etc/conf.d", "--opaque"]);
    ok(&["insert", &image, "--whiteout", "/var/old"]);
    image
}

#[test]
fn cat_reads_one_file_through_layers_links_and_whiteouts() {
    let dir = tempdir();
    let image = layered(dir.path());
    assert_eq!(
        ok(&["cat", &image, "/usr/bin/tool"]),
        "#!/bin/sh\necho v2\n"
    );
    // Through a directory symlink and a file symlink.
    assert_eq!(ok(&["cat", &image, "/bin/tool"]), "#!/bin/sh\necho v2\n");
    assert_eq!(
        ok(&["cat", &image, "/etc/tool-link"]),
        "#!/bin/sh\necho v2\n"
    );
    // The hard link made in layer 1 keeps layer 1's bytes (insert replaced the other name).
    assert_eq!(
        ok(&["cat", &image, "usr/bin/tool-alias"]),
        "#!/bin/sh\necho v1\n"
    );
    assert_eq!(ok(&["cat", &image, "/etc/conf.d/c.conf"]), "c\n");
    for (gone, why) in [
        ("/etc/conf.d/a.conf", "no such file"),
        ("/var/old/log", "no such file"),
        ("/etc", "not a file"),
    ] {
        let err = fails(&["cat", &image, gone], 1);
        assert!(err.contains(why) && err.contains(gone), "{gone}: {err}");
    }
}

/// `files` lists what unpack makes: every path with its type, mode, owner, size and link.
#[test]
fn files_lists_the_tree_unpack_makes() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dir = tempdir();
    let image = layered(dir.path());
    let bundle = dir.path().join("bundle");
    ok(&["unpack", &image, s(&bundle)]);
    let rootfs = bundle.join("rootfs");
    let listed = json(&["files", &image, "--json"]);
    let mut from_files = std::collections::BTreeMap::new();
    for f in listed["files"].as_array().unwrap() {
        from_files.insert(
            f["path"].as_str().unwrap().to_owned(),
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["mode"].as_u64().unwrap(),
                f["uid"].as_u64().unwrap(),
                f["size"].as_u64().unwrap(),
                f["link"].as_str().map(str::to_owned),
            ),
        );
    }
    let mut from_unpack = std::collections::BTreeMap::new();
    let mut stack = vec![rootfs.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let t = m.file_type();
            let kind = if t.is_dir() {
                stack.push(p.clone());
                "directory"
            } else if t.is_symlink() {
                "symlink"
            } else if t.is_fifo() {
                "fifo"
            } else {
                "file"
            };
            let rel = format!("/{}", p.strip_prefix(&rootfs).unwrap().display());
            let link = t
                .is_symlink()
                .then(|| std::fs::read_link(&p).unwrap().display().to_string());
            let size = if kind == "file" { m.size() } else { 0 };
            from_unpack.insert(
                rel,
                (
                    kind.to_owned(),
                    u64::from(m.mode() & 0o7777),
                    u64::from(m.uid()),
                    size,
                    link,
                ),
            );
        }
    }
    assert_eq!(from_files, from_unpack);
    // Under a path, through the symlink, text form.
    let text = ok(&["files", &image, "/bin"]);
    assert!(
        text.contains("/usr/bin/tool\n") && !text.contains("/etc/"),
        "{text}"
    );
    assert!(
        text.lines()
            .all(|l| l.starts_with('-') || l.starts_with('d')),
        "{text}"
    );
}

/// `export --format rootfs` is the tree unpack makes, as one tar: GNU tar's extraction of it
/// equals strata's unpack (directory times aside: tar sets them as it goes), and two exports
/// are byte for byte the same.
#[test]
fn export_rootfs_is_the_unpacked_tree_as_one_tar() {
    let dir = tempdir();
    let image = layered(dir.path());
    let first = dir.path().join("fs.tar");
    let second = dir.path().join("fs2.tar");
    ok(&["export", &image, "-o", s(&first), "--format", "rootfs"]);
    ok(&["export", &image, "-o", s(&second), "--format", "rootfs"]);
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
    let extracted = dir.path().join("x");
    std::fs::create_dir_all(&extracted).unwrap();
    let status = std::process::Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "-xpf",
            s(&first),
            "-C",
            s(&extracted),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let bundle = dir.path().join("bundle");
    ok(&["unpack", &image, s(&bundle)]);
    let strip_dir_times = |mut tree: Tree| {
        for fields in tree.values_mut() {
            if fields.get("type").is_some_and(|t| t.contains("dir")) {
                fields.remove("mtime");
            }
        }
        tree
    };
    assert_eq!(
        strip_dir_times(scan(&extracted)),
        strip_dir_times(scan(&bundle.join("rootfs")))
    );
    // One image only.
    let other = format!("{}:other", image.rsplit_once(':').unwrap().0);
    ok(&["tag", &image, "other"]);
    fails(
        &[
            "export",
            &image,
            &other,
            "-o",
            s(&first),
            "--format",
            "rootfs",
        ],
        2,
    );
}

/// `diff` names what each layer changed: content, mode, additions, removals, links.
#[test]
fn diff_names_added_removed_and_changed_paths() {
    let dir = tempdir();
    let image = layered(dir.path());
    let lay = image.rsplit_once(':').unwrap().0.to_owned();
    let before = format!("{lay}:before");
    ok(&["tag", &image, "before"]);
    let file = dir.path().join("new.txt");
    write(&file, b"new\n");
    ok(&["insert", &image, s(&file), "/etc/new.txt"]);
    ok(&["insert", &image, "--whiteout", "/etc/tool-link"]);
    let v3 = dir.path().join("tool");
    write(&v3, b"#!/bin/sh\necho v3\n");
    std::fs::set_permissions(&v3, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    ok(&["insert", &image, s(&v3), "/usr/bin/tool"]);
    let report = json(&["diff", &before, &image, "--json"]);
    assert_eq!(
        report["added"],
        serde_json::json!(["/etc/new.txt"]),
        "{report}"
    );
    assert_eq!(
        report["removed"],
        serde_json::json!(["/etc/tool-link"]),
        "{report}"
    );
    assert_eq!(
        report["changed"],
        serde_json::json!([{"path": "/usr/bin/tool", "what": ["content", "mode"]}]),
        "{report}"
    );
    // The same image twice: nothing.
    let same = json(&["diff", &image, &image, "--json"]);
    assert_eq!(same["added"], serde_json::json!([]));
    assert_eq!(same["changed"], serde_json::json!([]));
    let text = ok(&["diff", &before, &image]);
    assert!(
        text.contains("A /etc/new.txt") && text.contains("D /etc/tool-link"),
        "{text}"
    );
    assert!(text.contains("M /usr/bin/tool (content, mode)"), "{text}");
}

/// `flatten`: one layer whose unpack is the original's (every path, mode, owner, time, xattr
/// and hard link), the config kept, the same digest twice.
#[test]
fn flatten_gives_one_layer_that_unpacks_to_the_same_tree() {
    let dir = tempdir();
    let image = layered(dir.path());
    let lay = image.rsplit_once(':').unwrap().0.to_owned();
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let flat = |tag: &str| {
        let r = run_with_env(&["flatten", &image, "--tag", tag, "-q"], &epoch);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout.trim().to_owned()
    };
    let first = flat("flat");
    assert_eq!(first, flat("flat2"), "flatten is not reproducible");
    let manifest = json(&["inspect", &format!("{lay}:flat"), "--raw", "manifest"]);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    let config = json(&["inspect", &format!("{lay}:flat"), "--raw", "config"]);
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    let original = json(&["inspect", &image, "--raw", "config"]);
    assert_eq!(config["config"], original["config"]);
    let unpacked = |reference: &str, name: &str| {
        let bundle = dir.path().join(name);
        ok(&["unpack", reference, s(&bundle)]);
        scan(&bundle.join("rootfs"))
    };
    assert_eq!(
        unpacked(&image, "orig"),
        unpacked(&format!("{lay}:flat"), "flat")
    );
    ok(&["fsck", &lay]);
}

/// The example image umoci built flattens to the same tree (strata unpack of the original
/// is compared with umoci's in unpack_diff.rs).
#[test]
fn flatten_of_an_umoci_built_image_unpacks_to_the_same_tree() {
    let dir = tempdir();
    let lay = dir.path().join("example");
    peer_ok(
        "cp",
        &[
            "-r",
            concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/example-layout"),
            s(&lay),
        ],
    );
    ok(&["flatten", &format!("{}:demo", s(&lay)), "--tag", "flat"]);
    let ours = dir.path().join("ours");
    ok(&["unpack", &format!("{}:flat", s(&lay)), s(&ours)]);
    let theirs = dir.path().join("theirs");
    ok(&["unpack", &format!("{}:demo", s(&lay)), s(&theirs)]);
    assert_eq!(scan(&ours.join("rootfs")), scan(&theirs.join("rootfs")));
}

/// `rebase` moves the app's layers onto a patched base: the patched files, the app's files
/// and config; a base that is not the image's is refused with the layout unchanged.
#[test]
fn rebase_moves_the_layers_above_the_old_base_onto_the_new() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let at = |t: &str| format!("{}:{t}", s(&lay));
    let tree = |name: &str, files: &[(&str, &str)]| {
        let root = dir.path().join(name);
        for (path, content) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            write(&p, content.as_bytes());
        }
        root
    };
    let base = tree("base", &[("etc/os-release", "v1\n"), ("lib/libc", "old\n")]);
    let patched = tree(
        "patched",
        &[("etc/os-release", "v2\n"), ("lib/libc", "fixed\n")],
    );
    let app = tree("app", &[("app/run", "app\n")]);
    ok(&["build", s(&base), &at("base")]);
    ok(&["build", s(&patched), &at("base2"), "--env", "BASE=2"]);
    ok(&[
        "build",
        s(&app),
        &at("app"),
        "--from",
        &at("base"),
        "--env",
        "APP=1",
        "--cmd",
        "/app/run",
    ]);
    let unrelated = tree("other", &[("x", "x\n")]);
    ok(&["build", s(&unrelated), &at("other")]);

    let before = snapshot(&lay);
    let err = fails(
        &[
            "rebase",
            &at("app"),
            "--old-base",
            &at("other"),
            "--new-base",
            &at("base2"),
        ],
        1,
    );
    assert!(err.contains("not the image's base"), "{err}");
    assert!(
        snapshot(&lay) == before,
        "a refused rebase changed the layout"
    );

    ok(&[
        "rebase",
        &at("app"),
        "--old-base",
        &at("base"),
        "--new-base",
        &at("base2"),
        "--tag",
        "rebased",
    ]);
    assert_eq!(ok(&["cat", &at("rebased"), "/lib/libc"]), "fixed\n");
    assert_eq!(ok(&["cat", &at("rebased"), "/app/run"]), "app\n");
    let config = json(&["inspect", &at("rebased"), "--raw", "config"]);
    let env = config["config"]["Env"].to_string();
    assert!(env.contains("APP=1") && !env.contains("BASE=2"), "{env}");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/app/run"]));
    let manifest = json(&["inspect", &at("rebased"), "--raw", "manifest"]);
    let base2 = json(&["inspect", &at("base2"), "--raw", "manifest"]);
    assert_eq!(manifest["layers"][0], base2["layers"][0]);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    ok(&["fsck", s(&lay)]);
}

/// `runtime-config` writes the config.json unpack writes, resolving the user in the image's
/// own /etc/passwd (read from its layers) or in --rootfs.
#[test]
fn runtime_config_is_unpacks_config_without_unpacking() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let image = format!("{}:app", s(&lay));
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    write(
        &tree.join("etc/passwd"),
        b"root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
    );
    write(
        &tree.join("etc/group"),
        b"root:x:0:\napp:x:1001:\nextra:x:2000:app\n",
    );
    ok(&[
        "build",
        s(&tree),
        &image,
        "--user",
        "app",
        "--env",
        "A=1",
        "--cmd",
        "/bin/true",
    ]);
    let out = dir.path().join("config.json");
    ok(&["runtime-config", &image, s(&out)]);
    let ours: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(ours["process"]["user"]["uid"], 1000, "{ours}");
    assert_eq!(ours["process"]["user"]["gid"], 1001, "{ours}");
    assert!(
        ours["process"]["env"]
            .to_string()
            .contains("HOME=/home/app"),
        "{ours}"
    );
    let bundle = dir.path().join("bundle");
    ok(&["unpack", &image, s(&bundle)]);
    let unpacked: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(ours, unpacked);
    // Against another rootfs: its passwd decides.
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("etc")).unwrap();
    write(
        &other.join("etc/passwd"),
        b"app:x:4242:4242::/srv:/bin/sh\n",
    );
    let text = ok(&["runtime-config", &image, "-", "--rootfs", s(&other)]);
    let theirs: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(theirs["process"]["user"]["uid"], 4242, "{theirs}");
}

/// `manifest put` stores a hand-written manifest byte for byte once every blob it names is
/// here; a document naming a missing blob, or of no manifest type, changes nothing.
#[test]
fn manifest_put_stores_checked_documents_as_given() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "lay", &["app"]);
    let lay = s(layout.root()).to_owned();
    let original = ok_bytes(&["inspect", &format!("{lay}:app"), "--raw", "manifest"]);
    let mut doc: serde_json::Value = serde_json::from_slice(&original).unwrap();
    doc["annotations"] = serde_json::json!({"org.example.note": "hand  written"});
    // Odd spacing on purpose: the bytes must be kept, not re-serialised.
    let text = serde_json::to_string_pretty(&doc)
        .unwrap()
        .replace("  ", "   ");
    let file = dir.path().join("m.json");
    write(&file, text.as_bytes());
    let put = json(&[
        "manifest",
        "put",
        &format!("{lay}:hand"),
        s(&file),
        "--json",
    ]);
    assert_eq!(put["digest"], sha256(text.as_bytes()).to_string());
    assert_eq!(
        ok_bytes(&["inspect", &format!("{lay}:hand"), "--raw", "manifest"]),
        text.as_bytes()
    );
    // An index over it, from stdin.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": put["digest"], "size": put["size"],
                        "platform": {"os": "linux", "architecture": "amd64"}}]
    });
    let index_file = dir.path().join("i.json");
    write(&index_file, index.to_string().as_bytes());
    ok(&["manifest", "put", &format!("{lay}:multi"), s(&index_file)]);
    ok(&[
        "inspect",
        &format!("{lay}:multi"),
        "--platform",
        "linux/amd64",
    ]);
    ok(&["fsck", &lay]);

    let before = snapshot(layout.root());
    let mut missing = doc.clone();
    missing["layers"][0]["digest"] = serde_json::json!(format!("sha256:{}", "e".repeat(64)));
    write(&file, missing.to_string().as_bytes());
    let err = fails(&["manifest", "put", &format!("{lay}:bad"), s(&file)], 1);
    assert!(err.contains("eeee"), "{err}");
    let mut wrong_size = doc.clone();
    let size = doc["config"]["size"].as_i64().unwrap();
    wrong_size["config"]["size"] = serde_json::json!(size + 1);
    write(&file, wrong_size.to_string().as_bytes());
    fails(&["manifest", "put", &format!("{lay}:bad"), s(&file)], 1);
    write(&file, br#"{"schemaVersion":2,"mediaType":"text/plain"}"#);
    let err = fails(&["manifest", "put", &format!("{lay}:bad"), s(&file)], 1);
    assert!(
        err.contains("neither an image manifest nor an image index"),
        "{err}"
    );
    assert!(
        snapshot(layout.root()) == before,
        "a refused put changed the layout"
    );
}

/// `copy SRCLAYOUT DSTLAYOUT` copies every tagged image under its tag (`skopeo sync`);
/// `--tags REGEX` chooses by whole-tag match.
#[test]
fn copy_of_a_bare_layout_syncs_every_tag() {
    let dir = tempdir();
    let (layout, _) = layout_with_images(dir.path(), "src", &["v1.0", "v1.2", "xv1.0", "latest"]);
    let src = s(layout.root()).to_owned();
    let all = dir.path().join("all");
    ok(&["copy", &src, s(&all)]);
    let tags_of = |lay: &std::path::Path| {
        let listed = json(&["ls", s(lay), "--json"]);
        let mut tags: Vec<String> = listed["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["tag"].as_str().map(str::to_owned))
            .collect();
        tags.sort();
        tags
    };
    assert_eq!(tags_of(&all), ["latest", "v1.0", "v1.2", "xv1.0"]);
    ok(&["fsck", s(&all)]);
    let some = dir.path().join("some");
    ok(&["copy", &src, s(&some), "--tags", r"v1\..*"]);
    assert_eq!(tags_of(&some), ["v1.0", "v1.2"]);
    let none = dir.path().join("none");
    let err = fails(&["copy", &src, s(&none), "--tags", "nomatch"], 1);
    assert!(err.contains("no tag"), "{err}");
    assert!(!none.exists(), "a failed sync left a layout");
    fails(&["copy", &src, s(&none), "--tags", "("], 2);
    fails(
        &["copy", &format!("{src}:latest"), s(&none), "--tags", "v1"],
        2,
    );
}

/// `convert` recompresses (diff_ids and unpack unchanged) and switches media types; skopeo
/// reads both results.
#[test]
fn convert_recompresses_and_switches_formats() {
    let dir = tempdir();
    let image = layered(dir.path());
    let lay = image.rsplit_once(':').unwrap().0.to_owned();
    let at = |t: &str| format!("{lay}:{t}");
    let config_before = json(&["inspect", &image, "--raw", "config"]);
    ok(&["convert", &image, "--compress", "zstd", "--tag", "zstd"]);
    let manifest = json(&["inspect", &at("zstd"), "--raw", "manifest"]);
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
            "{manifest}"
        );
    }
    assert_eq!(
        json(&["inspect", &at("zstd"), "--raw", "config"]),
        config_before
    );
    let unpacked = |reference: &str, name: &str| {
        let bundle = dir.path().join(name);
        ok(&["unpack", reference, s(&bundle)]);
        scan(&bundle.join("rootfs"))
    };
    assert_eq!(unpacked(&image, "a"), unpacked(&at("zstd"), "b"));
    // Back to gzip: the diff_ids still match (fsck decompresses every layer).
    ok(&["convert", &at("zstd"), "--compress", "gzip", "--tag", "gz"]);
    ok(&["fsck", &lay]);
    // Docker schema 2.
    ok(&["convert", &image, "--format", "docker", "--tag", "docker"]);
    let manifest = json(&["inspect", &at("docker"), "--raw", "manifest"]);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_eq!(unpacked(&image, "c"), unpacked(&at("docker"), "d"));
    // Nothing to change: the same manifest, tagged again.
    let same = json(&["convert", &image, "--tag", "same", "--json"]);
    assert_eq!(
        same["digest"],
        json(&["inspect", &image, "--json"])["manifest"]["digest"]
    );
    // On a fresh layout too (above, the zstd blobs are already there).
    let fresh = dir.path().join("fresh");
    let fresh_ref = format!("{}:app", s(&fresh));
    ok(&["copy", &image, &fresh_ref]);
    let fresh_before = snapshot(&fresh);
    let args = [
        "convert",
        &fresh_ref,
        "--format",
        "docker",
        "--compress",
        "zstd",
        "--tag",
        "x",
    ];
    fails(&args, 1);
    assert!(
        snapshot(&fresh) == fresh_before,
        "a refused conversion changed the layout"
    );
    let before = snapshot(std::path::Path::new(&lay));
    let err = fails(
        &[
            "convert",
            &image,
            "--format",
            "docker",
            "--compress",
            "zstd",
            "--tag",
            "x",
        ],
        1,
    );
    assert!(err.contains("zstd"), "{err}");
    assert!(snapshot(std::path::Path::new(&lay)) == before);
    ok(&["fsck", &lay]);
    if peer("skopeo") {
        let out = dir.path().join("skopeo-zstd");
        peer_ok(
            "skopeo",
            &[
                "copy",
                &format!("oci:{lay}:zstd"),
                &format!("oci:{}:x", s(&out)),
            ],
        );
        let archive = dir.path().join("docker.tar");
        ok(&[
            "export",
            &at("docker"),
            "-o",
            s(&archive),
            "--format",
            "docker",
        ]);
        peer_ok(
            "skopeo",
            &["inspect", &format!("docker-archive:{}", s(&archive))],
        );
    }
}

/// cat reads the image as files and unpack do, through its merged tree: a damaged lower
/// layer is refused, naming it, even for a file the top layer holds (a quick read of the
/// top layers alone could not know the path's directories below; it was dropped).
#[test]
fn cat_refuses_an_image_with_a_damaged_layer_naming_it() {
    let dir = tempdir();
    let image = layered(dir.path());
    let manifest = json(&["inspect", &image, "--raw", "manifest"]);
    let lay = image.rsplit_once(':').unwrap().0.to_owned();
    let base = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    assert_eq!(
        ok(&["cat", &image, "/usr/bin/tool"]),
        "#!/bin/sh\necho v2\n"
    );
    let path = std::path::Path::new(&lay).join("blobs/sha256").join(&base);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    for file in ["/usr/bin/tool", "/etc/conf.d/c.conf", "/usr/bin/tool-alias"] {
        let err = fails(&["cat", &image, file], 1);
        assert!(err.contains(&base), "{file}: {err}");
    }
}

/// flatten and convert give the same bytes whatever the thread count; export --format rootfs
/// the same bytes twice.
#[test]
fn outputs_do_not_depend_on_the_thread_count() {
    let dir = tempdir();
    let image = layered(dir.path());
    let lay = image.rsplit_once(':').unwrap().0.to_owned();
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let digest = |args: &[&str]| {
        let r = run_with_env(args, &epoch);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r.stdout.trim().to_owned()
    };
    for threads in ["1", "3"] {
        let flat = digest(&[
            "--threads",
            threads,
            "-q",
            "flatten",
            &image,
            "--tag",
            &format!("flat{threads}"),
        ]);
        let zstd = digest(&[
            "--threads",
            threads,
            "-q",
            "convert",
            &image,
            "--compress",
            "zstd",
            "--tag",
            &format!("z{threads}"),
        ]);
        let gz = digest(&[
            "--threads",
            threads,
            "-q",
            "convert",
            &format!("{lay}:z{threads}"),
            "--compress",
            "gzip",
            "--tag",
            &format!("g{threads}"),
        ]);
        let fs = dir.path().join(format!("fs{threads}.tar"));
        // export uses no threads (it takes no --threads): two runs give the same tar.
        digest(&["export", &image, "--format", "rootfs", "-o", s(&fs)]);
        std::fs::write(
            dir.path().join(format!("digests{threads}")),
            format!("{flat}\n{zstd}\n{gz}\n"),
        )
        .unwrap();
    }
    assert_eq!(
        std::fs::read(dir.path().join("digests1")).unwrap(),
        std::fs::read(dir.path().join("digests3")).unwrap()
    );
    assert_eq!(
        std::fs::read(dir.path().join("fs1.tar")).unwrap(),
        std::fs::read(dir.path().join("fs3.tar")).unwrap()
    );
}
