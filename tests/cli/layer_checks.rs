//! Layer checks that need more than one entry: hard links whose targets must come from the
//! layers below (add-layer and fsck agree with unpack), names with leading slashes (read as
//! peers read them), and what fsck and add-layer say about layers that do not read.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::build::{at, Refusals};
use crate::util::*;

/// The layer every image here starts from: a file, a directory, a symlink to the file and
/// a symlinked directory.
fn base_layer() -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.dir("etc", 0o755)
        .file("etc/passwd", b"root\n", 0o644)
        .dir("etc/sub", 0o755)
        .symlink("sym", "etc/passwd")
        .symlink("lib", "etc");
    t.finish()
}

fn layout_with_base(dir: &Path) -> strata::Layout {
    let layout = strata::Layout::init(dir.join("lay")).expect("init");
    write_layered_image(
        &layout,
        "base",
        &[(base_layer(), Packing::Plain)],
        serde_json::json!({}),
    );
    layout
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// (case, layer on top of the base, accepted by unpack).
fn link_cases() -> Vec<(&'static str, Vec<u8>, bool)> {
    let one = |f: &dyn Fn(&mut TarBuilder)| {
        let mut t = TarBuilder::new();
        f(&mut t);
        t.finish()
    };
    vec![
        (
            "to nothing",
            one(&|t| {
                t.hardlink("h", "missing");
            }),
            false,
        ),
        (
            "to a file of the layer below",
            one(&|t| {
                t.hardlink("h", "etc/passwd");
            }),
            true,
        ),
        (
            "to a file below, through a symlinked directory",
            one(&|t| {
                t.hardlink("h", "lib/passwd");
            }),
            true,
        ),
        (
            "to a symlink below (the link itself)",
            one(&|t| {
                t.hardlink("h", "sym");
            }),
            true,
        ),
        (
            "to a directory below",
            one(&|t| {
                t.hardlink("h", "etc/sub");
            }),
            false,
        ),
        (
            "to a file the layer whited out first",
            one(&|t| {
                t.whiteout("etc", "passwd").hardlink("h", "etc/passwd");
            }),
            false,
        ),
        (
            "to a file the layer whites out after",
            one(&|t| {
                t.hardlink("h", "etc/passwd").whiteout("etc", "passwd");
            }),
            true,
        ),
        (
            "to a file earlier in the layer",
            one(&|t| {
                t.file("new", b"new", 0o644).hardlink("h", "new");
            }),
            true,
        ),
        (
            "to a file later in the layer",
            one(&|t| {
                t.hardlink("h", "new").file("new", b"new", 0o644);
            }),
            false,
        ),
        (
            "to a file the layer replaced with a directory",
            one(&|t| {
                t.dir("etc/passwd", 0o755).hardlink("h", "etc/passwd");
            }),
            false,
        ),
        (
            "to a file written through a symlink the layer then replaced",
            one(&|t| {
                t.file("lib/new", b"new", 0o644)
                    .dir("lib", 0o755)
                    .hardlink("h", "lib/new");
            }),
            false,
        ),
        (
            "to a file in a directory the layer made",
            one(&|t| {
                t.dir("opt", 0o755)
                    .file("opt/new", b"new", 0o644)
                    .hardlink("opt/h", "/opt/new");
            }),
            true,
        ),
        (
            "with an absolute target",
            one(&|t| {
                t.hardlink("h", "/etc/passwd");
            }),
            true,
        ),
    ]
}

/// add-layer takes exactly the hard links unpack takes; what it refuses names the file, the
/// entry and the target, and leaves the layout as it was; what it takes, every reader reads.
#[test]
fn add_layer_takes_the_hard_links_unpack_takes() {
    let mut wrong = Vec::new();
    for (case, layer, accepted) in link_cases() {
        let dir = tempdir();
        let layout = layout_with_base(dir.path());
        let root = layout.root().to_owned();
        // unpack's verdict on the same two layers, stored by hand.
        write_layered_image(
            &layout,
            "stored",
            &[
                (base_layer(), Packing::Plain),
                (layer.clone(), Packing::Gzip),
            ],
            serde_json::json!({}),
        );
        let bundle = dir.path().join("bundle-stored");
        let unpacked = run(&["unpack", &at(&root, "stored"), s(&bundle)]);
        if (unpacked.code == 0) != accepted {
            wrong.push(format!(
                "{case}: unpack exit {}: {}",
                unpacked.code, unpacked.stderr
            ));
        }
        for (name, bytes) in [("layer.tar", layer.clone()), ("layer.tar.gz", gzip(&layer))] {
            let file = dir.path().join(name);
            write(&file, &bytes);
            let what = format!("{case} ({name})");
            if accepted {
                let r = run(&["add-layer", &at(&root, "base"), s(&file), "--tag", "top"]);
                if r.code != 0 {
                    wrong.push(format!("{what}: add-layer refused: {}", r.stderr));
                    continue;
                }
                let bundle = dir.path().join(format!("bundle-{name}"));
                for args in [
                    vec!["unpack", &at(&root, "top"), s(&bundle)],
                    vec!["files", &at(&root, "top")],
                    vec!["diff", &at(&root, "base"), &at(&root, "top")],
                ] {
                    let r = run(&args);
                    if r.code != 0 {
                        wrong.push(format!("{what}: {args:?}: {}", r.stderr));
                    }
                }
                let fsck = run(&["fsck", s(&root)]);
                if fsck.code != 0 {
                    wrong.push(format!("{what}: fsck: {}", fsck.stdout));
                }
                std::fs::remove_dir_all(&bundle).ok();
            } else {
                let mut refusals = Refusals::new(&root);
                let r = run(&["add-layer", &at(&root, "base"), s(&file), "--tag", "top"]);
                refusals.check(
                    &format!("add-layer {what}"),
                    &r,
                    &[name, "\"h\"", "hardlink"],
                );
                refusals.finish();
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The attack's case: the image add-layer used to make. unpack, files, diff, flatten and
/// export all fail on it, so fsck says so, naming the image, the layer, the entry and the
/// target; an image whose link names a file of the layer below is fine.
#[test]
fn fsck_reports_a_hard_link_to_nothing_in_the_layers_below() {
    let dir = tempdir();
    let layout = layout_with_base(dir.path());
    let mut bad = TarBuilder::new();
    bad.file("fine", b"fine", 0o644)
        .hardlink("dangling", "etc/nowhere");
    let image = write_layered_image(
        &layout,
        "bad",
        &[
            (base_layer(), Packing::Plain),
            (bad.finish(), Packing::Gzip),
        ],
        serde_json::json!({}),
    );
    let mut good = TarBuilder::new();
    good.hardlink("h", "etc/passwd").hardlink("h2", "h");
    write_layered_image(
        &layout,
        "good",
        &[
            (base_layer(), Packing::Plain),
            (good.finish(), Packing::Zstd),
        ],
        serde_json::json!({}),
    );
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let problems: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .collect();
    assert_eq!(problems.len(), 1, "{}", out.stdout);
    let line = problems[0];
    for needle in [
        image.manifest.digest.as_str(),
        image.layers[1].to_string().as_str(),
        "\"dangling\"",
        "\"etc/nowhere\"",
    ] {
        assert!(line.contains(needle), "{needle} not in {line}");
    }
}

/// `/etc/x` is `etc/x` under the root for docker, containerd, umoci and GNU tar: so for
/// unpack (the entry lands inside the rootfs, nothing outside it), add-layer and every
/// reader of the merged tree. `/../x` stays refused.
#[test]
fn leading_slashes_are_read_under_the_root() {
    let dir = tempdir();
    let layout = layout_with_base(dir.path());
    let root = layout.root().to_owned();
    let outside = PathBuf::from("/etc/strata-layer-checks-abs");
    let mut t = TarBuilder::new();
    t.dir("/etc/", 0o755)
        .file("/etc/strata-layer-checks-abs", b"inside\n", 0o644)
        .hardlink("//etc/again", "/etc/strata-layer-checks-abs")
        .whiteout("/etc", "passwd");
    let layer = t.finish();
    write_layered_image(
        &layout,
        "stored",
        &[
            (base_layer(), Packing::Plain),
            (layer.clone(), Packing::Gzip),
        ],
        serde_json::json!({}),
    );
    let file = dir.path().join("abs.tar");
    write(&file, &layer);
    ok(&["add-layer", &at(&root, "base"), s(&file), "--tag", "added"]);
    for tag in ["stored", "added"] {
        let image = at(&root, tag);
        let bundle = dir.path().join(format!("bundle-{tag}"));
        ok(&["unpack", &image, s(&bundle)]);
        let etc = bundle.join("rootfs/etc");
        assert_eq!(
            std::fs::read(etc.join("strata-layer-checks-abs")).unwrap(),
            b"inside\n"
        );
        assert_eq!(std::fs::read(etc.join("again")).unwrap(), b"inside\n");
        assert!(!etc.join("passwd").exists(), "{tag}: the whiteout applies");
        assert!(!outside.exists(), "{tag}: written outside the rootfs");
        let files = ok(&["files", &image]);
        assert!(files.contains("/etc/again"), "{files}");
        assert!(!files.contains("/etc/passwd"), "{files}");
        assert_eq!(
            ok(&["cat", &image, "/etc/strata-layer-checks-abs"]),
            "inside\n"
        );
        let diff = ok(&["diff", &at(&root, "base"), &image]);
        assert!(diff.contains("/etc/again"), "{diff}");
        let rootfs_tar = dir.path().join(format!("rootfs-{tag}.tar"));
        ok(&[
            "export",
            "--format",
            "rootfs",
            "--output",
            s(&rootfs_tar),
            &image,
        ]);
        let names: Vec<String> = tar::Archive::new(std::fs::File::open(&rootfs_tar).unwrap())
            .entries()
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.trim_start_matches("./") == "etc/again"),
            "{names:?}"
        );
        let inserted = dir.path().join("inserted");
        write(&inserted, b"put\n");
        let into = format!("{tag}-insert");
        ok(&["insert", &image, s(&inserted), "/etc/put", "--tag", &into]);
        assert_eq!(ok(&["cat", &at(&root, &into), "/etc/again"]), "inside\n");
        ok(&["flatten", &image, "--tag", &format!("{tag}-flat")]);
        let flat = dir.path().join(format!("bundle-{tag}-flat"));
        ok(&["unpack", &at(&root, &format!("{tag}-flat")), s(&flat)]);
        assert_eq!(
            std::fs::read(flat.join("rootfs/etc/again")).unwrap(),
            b"inside\n"
        );
    }
    let fsck = run(&["fsck", s(&root)]);
    assert_eq!(fsck.code, 0, "{}", fsck.stdout);
    // The way such a layer usually arrives: in a docker archive, which import stores unread.
    let archive = dir.path().join("docker.tar");
    ok(&[
        "export",
        "--format",
        "docker",
        "--output",
        s(&archive),
        &at(&root, "stored"),
    ]);
    let imported = dir.path().join("imported");
    ok(&["import", s(&archive), s(&imported)]);
    let bundle = dir.path().join("bundle-imported");
    ok(&["unpack", s(&imported), s(&bundle)]);
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/again")).unwrap(),
        b"inside\n"
    );
    ok(&["add-layer", s(&imported), s(&file), "--tag", "more"]);
    // Stripping the slashes does not lift any other rule.
    for bad in [&b"/../escape"[..], b"/etc//x"] {
        let mut t = TarBuilder::new();
        t.raw(file_header(), bad, None, b"");
        write(&file, &t.finish());
        let mut refusals = Refusals::new(&root);
        let r = run(&["add-layer", &at(&root, "base"), s(&file)]);
        refusals.check("add-layer", &r, &[String::from_utf8_lossy(bad).as_ref()]);
        refusals.finish();
    }
}

fn file_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(0);
    h.set_mtime(MTIME);
    h
}

/// umoci unpacks a layer of `/etc/...` names to the same tree strata does.
#[test]
fn umoci_and_strata_unpack_leading_slashes_alike() {
    if !peer("umoci") {
        return;
    }
    let dir = tempdir();
    let layout = layout_with_base(dir.path());
    let mut t = TarBuilder::new();
    t.dir("/etc/", 0o755)
        .file("/etc/x", b"x\n", 0o644)
        .file("///opt/app/y", b"y\n", 0o644)
        .hardlink("/etc/x2", "/etc/x")
        .whiteout("/etc", "passwd");
    write_layered_image(
        &layout,
        "abs",
        &[(base_layer(), Packing::Plain), (t.finish(), Packing::Gzip)],
        serde_json::json!({}),
    );
    let image = at(layout.root(), "abs");
    let ours = dir.path().join("ours");
    ok(&["unpack", &image, s(&ours)]);
    let theirs = dir.path().join("theirs");
    peer_ok("umoci", &["unpack", "--image", &image, s(&theirs)]);
    let tree = |bundle: &Path| -> Vec<(String, Option<Vec<u8>>)> {
        let rootfs = bundle.join("rootfs");
        let mut out: Vec<_> = walk(&rootfs)
            .into_iter()
            .map(|p| {
                let rel = p.strip_prefix(&rootfs).unwrap().display().to_string();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let bytes = meta.is_file().then(|| std::fs::read(&p).unwrap());
                (rel, bytes)
            })
            .collect();
        out.sort();
        out
    };
    let ours = tree(&ours);
    assert!(
        ours.contains(&("etc/x2".into(), Some(b"x\n".to_vec()))),
        "{ours:?}"
    );
    assert!(
        ours.contains(&("opt/app/y".into(), Some(b"y\n".to_vec()))),
        "{ours:?}"
    );
    assert_eq!(ours, tree(&theirs));
}

/// Every path under `root`, not following symlinks.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                pending.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

/// fsck says in one sentence what is wrong with a layer that does not read: the entry it
/// stops at, or that the stream does not decompress; no phrase twice.
#[test]
fn fsck_says_plainly_why_a_layer_does_not_read() {
    let dir = tempdir();
    let layout = layout_with_base(dir.path());
    let mut bad_name = TarBuilder::new();
    bad_name
        .file("ok", b"", 0o644)
        .raw(file_header(), b"a/../b", None, b"");
    let entry = write_layered_image(
        &layout,
        "entry",
        &[(bad_name.finish(), Packing::Gzip)],
        serde_json::json!({}),
    );
    let out = run(&["fsck", s(layout.root())]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("problem: {}", entry.layers[0])))
        .unwrap_or_else(|| panic!("{}", out.stdout))
        .to_owned();
    assert!(line.contains("entry \"a/../b\""), "{line}");
    assert!(line.contains("is not a layer unpack applies"), "{line}");
    for phrase in ["unpack applies", "entry", "layer"] {
        assert!(line.matches(phrase).count() <= 1, "{phrase} twice: {line}");
    }
    assert!(!line.contains("does not read to its end"), "{line}");
    // A gzip stream cut short, under a config whose diff_id is right.
    let dir2 = tempdir();
    let layout2 = strata::Layout::init(dir2.path().join("lay")).unwrap();
    let tar = base_layer();
    let gz = gzip(&tar);
    let cut = gz[..gz.len() - 20].to_vec();
    let cut_digest = sha256(&cut);
    write_cut_image(&layout2, &cut, &sha256(&tar).to_string());
    let out = run(&["fsck", s(layout2.root())]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("problem: {cut_digest}")))
        .unwrap_or_else(|| panic!("{}", out.stdout))
        .to_owned();
    assert!(line.contains("does not decompress as gzip"), "{line}");
    assert!(!line.contains("unpack applies"), "{line}");
}

/// An image whose one layer is `blob` (gzip media type) and whose diff_id is `diff_id`.
fn write_cut_image(layout: &strata::Layout, blob: &[u8], diff_id: &str) {
    let stored = layout.put_blob(blob).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config = layout
        .put_blob(serde_json::to_string(&config).unwrap().as_bytes())
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": strata::spec::media_type::MANIFEST,
        "config": {
            "mediaType": strata::spec::media_type::CONFIG,
            "digest": config.digest.to_string(),
            "size": config.size,
        },
        "layers": [{
            "mediaType": strata::spec::media_type::LAYER_TAR_GZIP,
            "digest": stored.digest.to_string(),
            "size": stored.size,
        }],
    });
    let manifest = layout
        .put_blob(serde_json::to_string(&manifest).unwrap().as_bytes())
        .unwrap();
    let desc = strata::spec::Descriptor::new(
        strata::spec::media_type::MANIFEST,
        &manifest.digest,
        manifest.size,
    );
    add_entry(layout, &desc, Some("cut"));
}

/// A layer that does not decompress is reported as that, naming the file: not as a tar
/// whose first header does not parse.
#[test]
fn add_layer_says_a_broken_compressed_layer_does_not_decompress() {
    let dir = tempdir();
    let layout = layout_with_base(dir.path());
    let root = layout.root().to_owned();
    let mut t = TarBuilder::new();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    t.file("big", &data, 0o644).file("small", b"s", 0o644);
    let tar = t.finish();
    let gz = gzip(&tar);
    let truncated = gz[..gz.len() / 2].to_vec();
    let mut zst = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    zst.include_checksum(true).unwrap();
    zst.write_all(&tar).unwrap();
    let mut zst = zst.finish().unwrap();
    let n = zst.len();
    for b in &mut zst[n / 2..n / 2 + 64] {
        *b = 0xff;
    }
    for (name, bytes, as_what) in [("x.tar.gz", truncated, "gzip"), ("x.tar.zst", zst, "zstd")] {
        let file = dir.path().join(name);
        write(&file, &bytes);
        let mut refusals = Refusals::new(&root);
        let r = run(&["add-layer", &at(&root, "base"), s(&file)]);
        let wanted = format!("{name}: decompressing it as {as_what}: ");
        refusals.check(name, &r, &[wanted.as_str()]);
        refusals.finish();
        assert!(!r.stderr.contains("not a tar"), "{}", r.stderr);
        assert!(!r.stderr.contains("header"), "{}", r.stderr);
    }
}
