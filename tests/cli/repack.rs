//! `strata repack`: a bundle made by `strata unpack` is changed and repacked, and the new
//! image must unpack (with strata, and with umoci for many cases) to exactly the changed
//! tree: type, mode, owner, mtime (clamped to SOURCE_DATE_EPOCH, as every layer strata
//! writes), size, content, link target, xattrs and hardlinks. The new layer itself is
//! listed too, to check it holds the change and nothing else (one whiteout per deleted
//! directory, parents present).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use strata::spec::media_type;

use crate::build::{
    assert_trees, at, clamp, inspect, is_root, layer_tar, layers, manifest_digest, names,
    raw_config, run_restricted, set_all_mtimes, strata_unpack, strata_unpacked, tar_entries,
    umoci_unpack, Fs, Refusals, TarEntry, OLD, SDE,
};
use crate::util::{
    json, ok, peer, peer_ok, s, scan, show, strata_bin, tempdir, write_layered_image, Packing,
    TarBuilder, Tree,
};

// ---------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------

/// The tree every case starts from (mtimes all [`OLD`]). With `owners`, a home directory
/// owned by another user (root only).
fn base_tree(root: &Path, owners: bool) {
    std::fs::create_dir_all(root).expect("mkdir");
    let fs = Fs(root);
    fs.write("etc/motd", "hello\n", 0o644)
        .write("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
        .write("etc/hosts", "127.0.0.1 localhost\n", 0o644)
        .write("bin/tool", "#!/bin/sh\necho tool\n", 0o755)
        .write("usr/share/doc/a/readme", "a\n", 0o644)
        .write("usr/share/doc/a/changelog", "changes\n", 0o644)
        .write("usr/share/doc/a/deeper/more", "more\n", 0o644)
        .write("usr/share/doc/b/readme", "b\n", 0o644)
        .symlink("link", "etc/motd")
        .symlink("abs", "/etc/hosts")
        .write("hard/a", "linked\n", 0o644)
        .link("hard/b", "hard/a")
        .write("data/keep", "volume data\n", 0o644)
        .write("masked/keep", "masked\n", 0o644)
        .write("replace-file", "a file\n", 0o644)
        .write("replace-dir/child/grand", "deep\n", 0o644)
        .write("na\u{ef}ve-\u{fc}nicode", "unicode\n", 0o644)
        .write(OsStr::from_bytes(b"bytes-\xff\xfe"), "not utf-8\n", 0o644)
        .write("locked/inner", "inner\n", 0o600)
        .write("attrs", "x\n", 0o644)
        .xattr("attrs", "user.a", b"1");
    if owners && is_root() {
        fs.write("home/user/.profile", "export A=1\n", 0o600)
            .chown("home/user", 1000, 1000)
            .chown("home/user/.profile", 1000, 1000);
    }
    set_all_mtimes(root, OLD);
}

/// A layout whose `base` image holds [`base_tree`] (one gzip layer, built by strata).
struct Fixture {
    dir: tempfile::TempDir,
    layout: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_owners(true)
    }

    fn with_owners(owners: bool) -> Fixture {
        let dir = tempdir();
        let tree = dir.path().join("tree");
        base_tree(&tree, owners);
        let layout = dir.path().join("l");
        // --keep-owners: the base image carries the tree's owners (user 1000's home), which
        // repack must keep.
        ok(&["build", s(&tree), &at(&layout, "base"), "--keep-owners"]);
        Fixture { dir, layout }
    }

    fn image(&self, tag: &str) -> String {
        at(&self.layout, tag)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `strata unpack LAYOUT:tag` into a new bundle `name`.
    fn unpack(&self, tag: &str, name: &str) -> PathBuf {
        let bundle = self.path(name);
        strata_unpack(&self.image(tag), &bundle);
        bundle
    }

    /// A scan of a fresh strata unpack of `tag`.
    fn tree(&self, tag: &str) -> Tree {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        strata_unpacked(&self.image(tag), &self.path(&format!("check-{tag}-{n}")))
    }

    /// A scan of a umoci unpack of `tag`.
    fn umoci_tree(&self, tag: &str) -> Tree {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bundle = self.path(&format!("umoci-{tag}-{n}"));
        umoci_unpack(&self.image(tag), &bundle);
        scan(&bundle.join("rootfs"))
    }

    /// The last layer of `tag`, listed.
    fn last_layer(&self, tag: &str) -> Vec<TarEntry> {
        let l = layers(&self.layout, tag);
        tar_entries(&layer_tar(&self.layout, l.last().expect("a layer")))
    }
}

fn rootfs(bundle: &Path) -> PathBuf {
    bundle.join("rootfs")
}

/// `strata repack BUNDLE --json` with `flags`; the report.
fn repack(bundle: &Path, flags: &[&str]) -> Value {
    let mut args = vec!["repack", s(bundle), "--json"];
    args.extend(flags);
    json(&args)
}

/// One case: unpack `base`, `change` the rootfs, repack as `tag` (with `flags`), then check
/// that the image unpacks to the changed tree, with strata and (`with_umoci`) umoci.
/// Returns the report and the new image's last layer.
fn case(
    f: &Fixture,
    tag: &str,
    flags: &[&str],
    with_umoci: bool,
    change: impl FnOnce(&Fs<'_>),
) -> (Value, Vec<TarEntry>) {
    let bundle = f.unpack("base", &format!("bundle-{tag}"));
    change(&Fs(&rootfs(&bundle)));
    let changed = scan(&rootfs(&bundle));
    let base_layers = layers(&f.layout, "base").len();
    let mut all = vec!["--tag", tag];
    all.extend(flags);
    let report = repack(&bundle, &all);
    assert_eq!(report["tag"], tag, "{report}");
    assert_eq!(
        report["manifest"],
        manifest_digest(&f.layout, tag),
        "{report}"
    );
    assert_eq!(
        layers(&f.layout, tag).len(),
        base_layers + 1,
        "{tag}: one new layer"
    );
    let layer = f.last_layer(tag);
    let expected = clamp_written(changed, &layer);
    assert_trees(
        &expected,
        &f.tree(tag),
        &format!("{tag}: strata unpack of the repack"),
    );
    if with_umoci && peer("umoci") {
        assert_trees(
            &expected,
            &f.umoci_tree(tag),
            &format!("{tag}: umoci unpack of the repack"),
        );
    }
    (report, layer)
}

/// What a tree unpacks to once `layer` (written from it) is applied: the layer's entries
/// have their mtimes clamped to SOURCE_DATE_EPOCH, the rest are as they were.
fn clamp_written(mut tree: Tree, layer: &[TarEntry]) -> Tree {
    for e in layer {
        let name = e.name.strip_suffix(b"/").unwrap_or(&e.name);
        if let Some(fields) = tree.get_mut(name) {
            let clamped = clamp(Tree::from([(Vec::new(), fields.clone())]), SDE);
            *fields = clamped[&Vec::new()].clone();
        }
    }
    tree
}

/// The names of the whiteouts in a layer.
fn whiteouts(entries: &[TarEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| {
            let base = e.name.rsplit(|b| *b == b'/').next().unwrap_or_default();
            base.starts_with(b".wh.")
        })
        .map(|e| show(&e.name))
        .collect()
}

fn count(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {report}"))
}

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

#[test]
fn repack_adds_new_files_in_the_chosen_compression() {
    let f = Fixture::new();
    let (report, layer) = case(&f, "add", &[], true, |fs| {
        fs.write("etc/new.conf", "new\n", 0o640)
            .write("opt/app/bin/run", "#!/bin/sh\n", 0o755)
            .symlink("opt/app/current", "bin")
            .mkdir("opt/app/empty", 0o700);
    });
    assert_eq!(
        names(&layer),
        [
            "etc/",
            "etc/new.conf",
            "opt/",
            "opt/app/",
            "opt/app/bin/",
            "opt/app/bin/run",
            "opt/app/current",
            "opt/app/empty/"
        ]
    );
    assert_eq!(count(&report, "deleted"), 0);
    assert!(count(&report, "added") >= 5, "{report}");
    // auto: the base's gzip.
    assert_eq!(
        layers(&f.layout, "add").last().unwrap()["mediaType"],
        media_type::LAYER_TAR_GZIP
    );
    for (comp, mt) in [
        ("zstd", media_type::LAYER_TAR_ZSTD),
        ("none", media_type::LAYER_TAR),
    ] {
        let tag = format!("add-{comp}");
        let (_, layer2) = case(&f, &tag, &["--compress", comp], false, |fs| {
            fs.write("etc/new.conf", "new\n", 0o640);
        });
        assert_eq!(names(&layer2), ["etc/", "etc/new.conf"]);
        assert_eq!(
            layers(&f.layout, &tag).last().unwrap()["mediaType"],
            mt,
            "--compress {comp}"
        );
    }
    // The base tag did not move; the history says what happened.
    let config = raw_config(&f.layout, "add");
    let last = config["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["created"], "2023-11-14T22:13:20Z");
    assert!(last.get("empty_layer").is_none(), "{last}");
    assert_eq!(layers(&f.layout, "base").len(), 1);
}

#[test]
fn repack_sees_every_kind_of_change() {
    let f = Fixture::new();
    // Content, same size, mtime put back: only the ctime tells.
    let (report, layer) = case(&f, "content", &[], true, |fs| {
        fs.write("etc/motd", "HELLO\n", 0o644)
            .mtime("etc/motd", OLD);
    });
    assert_eq!(names(&layer), ["etc/", "etc/motd"], "{report}");
    assert_eq!(count(&report, "changed"), 1, "{report}");
    // A bigger file (more than one 128 KiB chunk).
    let (_, layer) = case(&f, "big", &[], false, |fs| {
        fs.write("etc/passwd", crate::build::noise(300_000, 9), 0o644);
    });
    assert_eq!(names(&layer), ["etc/", "etc/passwd"]);
    // Mode only, setuid included.
    let (_, layer) = case(&f, "mode", &[], true, |fs| {
        fs.chmod("etc/passwd", 0o600).chmod("bin/tool", 0o4755);
    });
    assert_eq!(names(&layer), ["bin/", "bin/tool", "etc/", "etc/passwd"]);
    assert_eq!(layer[1].mode, 0o4755);
    // Owner only.
    if is_root() {
        let (_, layer) = case(&f, "owner", &[], true, |fs| {
            fs.chown("etc/hosts", 1234, 5678);
        });
        assert_eq!(names(&layer), ["etc/", "etc/hosts"]);
        assert_eq!((layer[1].uid, layer[1].gid), (Some(1234), Some(5678)));
    }
    // xattrs only: one added, one removed.
    let (_, layer) = case(&f, "xattr", &[], true, |fs| {
        fs.xattr("etc/passwd", "user.new", b"value")
            .rm_xattr("attrs", "user.a");
    });
    assert_eq!(names(&layer), ["attrs", "etc/", "etc/passwd"]);
    assert!(layer[0].xattrs.is_empty(), "{:?}", layer[0].xattrs);
    assert_eq!(
        layer[2].xattrs,
        [("user.new".to_owned(), b"value".to_vec())]
    );
    // mtime only (older than SOURCE_DATE_EPOCH, so kept as it is).
    let when = 981_173_106; // 2001-02-03T04:05:06Z
    let (_, layer) = case(&f, "mtime", &[], true, |fs| {
        fs.mtime("etc/hosts", when);
    });
    assert_eq!(names(&layer), ["etc/", "etc/hosts"]);
    assert_eq!(layer[1].mtime, when as u64);
    // A symlink retargeted.
    let (_, layer) = case(&f, "retarget", &[], true, |fs| {
        fs.rm("link").symlink("link", "etc/passwd");
    });
    assert_eq!(names(&layer), ["link"]);
    assert_eq!(layer[0].link.as_deref(), Some(&b"etc/passwd"[..]));
}

#[test]
fn repack_deletes_with_one_whiteout_per_path() {
    let f = Fixture::new();
    let (report, layer) = case(&f, "del-file", &[], true, |fs| {
        fs.rm("etc/hosts");
    });
    assert_eq!(whiteouts(&layer), ["etc/.wh.hosts"]);
    assert_eq!(names(&layer), ["etc/", "etc/.wh.hosts"]);
    assert_eq!(count(&report, "deleted"), 1, "{report}");
    // A directory with files and a subdirectory: one whiteout, not one per child.
    let (report, layer) = case(&f, "del-dir", &[], true, |fs| {
        fs.rm("usr/share/doc/a");
    });
    assert_eq!(
        whiteouts(&layer),
        ["usr/share/doc/.wh.a"],
        "{:?}",
        names(&layer)
    );
    assert_eq!(count(&report, "deleted"), 1, "{report}");
    let (_, layer) = case(&f, "del-link", &[], true, |fs| {
        fs.rm("link");
    });
    assert_eq!(whiteouts(&layer), [".wh.link"]);
    // Everything under a top-level directory, and the directory.
    let (_, layer) = case(&f, "del-tree", &[], true, |fs| {
        fs.rm("usr");
    });
    assert_eq!(whiteouts(&layer), [".wh.usr"]);
    // A file deleted and another added in the same directory.
    let (_, layer) = case(&f, "del-add", &[], true, |fs| {
        fs.rm("usr/share/doc/b/readme")
            .write("usr/share/doc/b/README.md", "# b\n", 0o644);
    });
    assert_eq!(whiteouts(&layer), ["usr/share/doc/b/.wh.readme"]);
}

#[test]
fn repack_replaces_files_by_directories_and_back() {
    let f = Fixture::new();
    let (_, layer) = case(&f, "file-to-dir", &[], true, |fs| {
        fs.rm("replace-file")
            .write("replace-file/inside", "now a dir\n", 0o644);
    });
    assert!(
        names(&layer).contains(&"replace-file/".to_owned())
            && names(&layer).contains(&"replace-file/inside".to_owned()),
        "{:?}",
        names(&layer)
    );
    let (_, layer) = case(&f, "dir-to-file", &[], true, |fs| {
        fs.rm("replace-dir")
            .write("replace-dir", "now a file\n", 0o600);
    });
    assert!(
        !names(&layer).iter().any(|n| n.starts_with("replace-dir/")),
        "{:?}",
        names(&layer)
    );
    // A symlink where a directory was, and a directory where a symlink was.
    case(&f, "swap-links", &[], true, |fs| {
        fs.rm("usr/share/doc/b")
            .symlink("usr/share/doc/b", "a")
            .rm("link")
            .write("link/file", "was a symlink\n", 0o644);
    });
}

#[test]
fn repack_keeps_hardlinks() {
    let f = Fixture::new();
    let (_, layer) = case(&f, "links", &[], true, |fs| {
        // A new name for an old file, two new names for a new file, and a broken link.
        fs.link("etc/hosts.alias", "etc/hosts")
            .write("new/x", "new, linked\n", 0o644)
            .link("new/y", "new/x")
            .link("new/sub-z", "new/x")
            .rm("hard/b")
            .write("hard/b", "no longer linked\n", 0o644);
    });
    let links: Vec<(String, String)> = layer
        .iter()
        .filter(|e| e.kind == tar::EntryType::Link)
        .map(|e| (show(&e.name), show(e.link.as_deref().unwrap_or_default())))
        .collect();
    assert_eq!(
        links.len(),
        3,
        "expected etc/hosts.alias, new/sub-z or new/y as links: {links:?}"
    );
    // Changing a file that has two names changes both.
    let (_, layer) = case(&f, "link-content", &[], true, |fs| {
        fs.write("hard/a", "changed through one name\n", 0o644);
    });
    assert_eq!(names(&layer), ["hard/", "hard/a", "hard/b"]);
    assert_eq!(layer[2].kind, tar::EntryType::Link);
}

#[test]
fn repack_handles_unicode_and_non_utf8_names() {
    let f = Fixture::new();
    let (_, layer) = case(&f, "names", &[], true, |fs| {
        fs.write(
            "\u{65b0}\u{3057}\u{3044}/\u{30d5}\u{30a1}\u{30a4}\u{30eb}",
            "new\n",
            0o644,
        )
        .write(
            OsStr::from_bytes(b"new-\xff\xfe/\xe9t\xe9"),
            "latin-1\n",
            0o644,
        )
        .rm("na\u{ef}ve-\u{fc}nicode")
        .rm(OsStr::from_bytes(b"bytes-\xff\xfe"))
        .write(format!("long/{}", "\u{e9}".repeat(80)), "long\n", 0o644);
    });
    let wh: Vec<Vec<u8>> = layer
        .iter()
        .filter(|e| e.name.starts_with(b".wh."))
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(
        wh,
        [
            b".wh.bytes-\xff\xfe".to_vec(),
            ".wh.na\u{ef}ve-\u{fc}nicode".as_bytes().to_vec()
        ]
    );
    assert!(layer.iter().any(|e| e.name == b"new-\xff\xfe/\xe9t\xe9"));
}

#[test]
fn repack_mode_000_directories() {
    let f = Fixture::new();
    let (_, layer) = case(&f, "locked", &[], true, |fs| {
        fs.chmod("locked", 0o000)
            .write("sealed/inner/file", "sealed\n", 0o600)
            .chmod("sealed/inner", 0o000)
            .chmod("sealed", 0o000);
    });
    let dirs: Vec<(String, u32)> = layer
        .iter()
        .filter(|e| e.kind == tar::EntryType::Directory)
        .map(|e| (show(&e.name), e.mode))
        .collect();
    assert_eq!(
        dirs,
        [
            ("locked/".to_owned(), 0),
            ("sealed/".to_owned(), 0),
            ("sealed/inner/".to_owned(), 0)
        ]
    );
    // And repacked again from a bundle that has them.
    let bundle = f.unpack("locked", "bundle-locked-again");
    Fs(&rootfs(&bundle)).write("etc/motd", "changed\n", 0o644);
    let expected = clamp(scan(&rootfs(&bundle)), SDE);
    repack(&bundle, &["--tag", "locked-again"]);
    assert_trees(
        &expected,
        &f.tree("locked-again"),
        "repack with mode-000 dirs",
    );
}

#[test]
fn repack_leaves_out_masked_paths() {
    let f = Fixture::new();
    let base = f.tree("base");
    let bundle = f.unpack("base", "bundle-mask");
    Fs(&rootfs(&bundle))
        .write("masked/keep", "changed, but masked\n", 0o644)
        .write("masked/new/file", "new, but masked\n", 0o644)
        .write("usr/share/doc/a/readme", "masked too\n", 0o644)
        .rm("usr/share/doc/a/changelog")
        .write("etc/motd", "not masked\n", 0o644);
    let mut expected = clamp(scan(&rootfs(&bundle)), SDE);
    // Under the masks, the image keeps what it had.
    expected.retain(|k, _| !k.starts_with(b"masked") && !k.starts_with(b"usr/share/doc/a"));
    for (k, v) in &base {
        if k.starts_with(b"masked") || k.starts_with(b"usr/share/doc/a") {
            expected.insert(k.clone(), v.clone());
        }
    }
    let report = repack(
        &bundle,
        &[
            "--tag",
            "masked",
            "--mask-path",
            "/masked",
            "--mask-path",
            "usr/share/doc/a",
        ],
    );
    assert_trees(&expected, &f.tree("masked"), "repack --mask-path");
    let layer = f.last_layer("masked");
    assert_eq!(names(&layer), ["etc/", "etc/motd"], "{report}");
}

#[test]
fn repack_masks_volumes_unless_asked() {
    let f = Fixture::new();
    ok(&[
        "config",
        &f.image("base"),
        "--tag",
        "vol",
        "--volume",
        "/data",
    ]);
    let base = f.tree("vol");
    let bundle = f.unpack("vol", "bundle-vol");
    Fs(&rootfs(&bundle))
        .write("data/keep", "changed in a volume\n", 0o644)
        .write("data/new", "new in a volume\n", 0o644)
        .write("etc/motd", "outside\n", 0o644);
    let changed = clamp(scan(&rootfs(&bundle)), SDE);

    repack(&bundle, &["--tag", "masked"]);
    let mut expected = changed.clone();
    expected.retain(|k, _| !k.starts_with(b"data"));
    for (k, v) in &base {
        if k.starts_with(b"data") {
            expected.insert(k.clone(), v.clone());
        }
    }
    assert_trees(&expected, &f.tree("masked"), "repack of a volume's changes");
    assert_eq!(names(&f.last_layer("masked")), ["etc/", "etc/motd"]);
    assert_eq!(inspect(&f.layout, "masked")["volumes"], json!(["/data"]));

    repack(&bundle, &["--tag", "included", "--no-mask-volumes"]);
    assert_trees(&changed, &f.tree("included"), "repack --no-mask-volumes");
    assert_eq!(
        names(&f.last_layer("included")),
        ["data/", "data/keep", "data/new", "etc/", "etc/motd"]
    );
}

#[test]
fn repack_without_changes_adds_no_layer_but_a_history_entry() {
    let f = Fixture::new();
    let bundle = f.unpack("base", "bundle-same");
    let before = inspect(&f.layout, "base");
    // Reading files (atime) is no change.
    std::fs::read(rootfs(&bundle).join("etc/motd")).unwrap();
    let report = repack(&bundle, &["--tag", "same"]);
    assert_eq!(report["layer"], Value::Null, "{report}");
    assert_eq!(
        (
            count(&report, "added"),
            count(&report, "changed"),
            count(&report, "deleted")
        ),
        (0, 0, 0)
    );
    let after = inspect(&f.layout, "same");
    assert_eq!(after["layers"], before["layers"]);
    let history = after["history"].as_array().expect("history");
    assert_eq!(
        history.len(),
        before["history"].as_array().unwrap().len() + 1
    );
    let last = history.last().unwrap();
    assert_eq!(last["emptyLayer"], true, "{last}");
    assert_eq!(last["created"], "2023-11-14T22:13:20Z", "{last}");
    let config = raw_config(&f.layout, "same");
    assert_eq!(
        config["rootfs"],
        raw_config(&f.layout, "base")["rootfs"],
        "the layers did not change"
    );
    assert_eq!(
        config["history"].as_array().unwrap().last().unwrap()["empty_layer"],
        true
    );
    // With --no-history, nothing at all changes but the tag.
    let report = repack(&bundle, &["--tag", "quiet", "--no-history"]);
    assert_eq!(report["layer"], Value::Null);
    assert_eq!(
        raw_config(&f.layout, "quiet")["history"],
        raw_config(&f.layout, "base")["history"]
    );
}

#[test]
fn repeated_repacks_with_refresh_bundle_build_on_each_other() {
    let f = Fixture::new();
    ok(&["tag", &f.image("base"), "work"]);
    let base_digest = manifest_digest(&f.layout, "base");
    let bundle = f.unpack("work", "bundle-work");
    let root = rootfs(&bundle);

    Fs(&root).write("etc/first", "first\n", 0o644);
    let r1 = repack(&bundle, &["--refresh-bundle", "--history-comment", "one"]);
    assert_eq!(r1["tag"], "work", "without --tag, the bundle's tag moves");
    assert_eq!(r1["manifest"], manifest_digest(&f.layout, "work"));
    let meta: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("strata.json")).unwrap()).unwrap();
    assert_eq!(
        meta["descriptorPath"].as_array().unwrap().last().unwrap()["digest"],
        r1["manifest"]
    );

    Fs(&root)
        .rm("etc/hosts")
        .write("opt/second", "second\n", 0o644);
    let r2 = repack(&bundle, &["--refresh-bundle", "--history-comment", "two"]);
    assert_eq!(r2["manifest"], manifest_digest(&f.layout, "work"));
    assert_ne!(r1["manifest"], r2["manifest"]);

    let l = layers(&f.layout, "work");
    assert_eq!(l.len(), 3, "base + one layer per repack: {l:?}");
    let first = tar_entries(&layer_tar(&f.layout, &l[1]));
    let second = tar_entries(&layer_tar(&f.layout, &l[2]));
    assert_eq!(names(&first), ["etc/", "etc/first"]);
    assert_eq!(
        names(&second),
        ["etc/", "etc/.wh.hosts", "opt/", "opt/second"]
    );
    let comments: Vec<Value> = raw_config(&f.layout, "work")["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["comment"].clone())
        .collect();
    assert_eq!(comments[1..], [json!("one"), json!("two")]);
    assert_trees(
        &clamp(scan(&root), SDE),
        &f.tree("work"),
        "the image after two repacks",
    );
    // A third repack with nothing new: no layer.
    let r3 = repack(&bundle, &["--refresh-bundle"]);
    assert_eq!(r3["layer"], Value::Null, "{r3}");
    assert_eq!(layers(&f.layout, "work").len(), 3);
    assert_eq!(
        manifest_digest(&f.layout, "base"),
        base_digest,
        "base moved"
    );
}

#[test]
fn repack_reverses_id_maps() {
    if !is_root() {
        eprintln!("SKIPPED: id-mapped unpacks need root");
        return;
    }
    let f = Fixture::new();
    let bundle = f.path("bundle-mapped");
    ok(&[
        "unpack",
        &f.image("base"),
        s(&bundle),
        "--uid-map",
        "0:100000:65536",
        "--gid-map",
        "0:200000:65536",
    ]);
    let fs = Fs(&rootfs(&bundle));
    fs.write("etc/new", "new\n", 0o644)
        .chown("etc/new", 101_000, 200_050)
        .chmod("etc/passwd", 0o600);
    repack(&bundle, &["--tag", "mapped"]);
    let layer = f.last_layer("mapped");
    let owners: Vec<(String, Option<u64>, Option<u64>)> = layer
        .iter()
        .map(|e| (show(&e.name), e.uid, e.gid))
        .collect();
    assert_eq!(
        owners,
        [
            ("etc/".to_owned(), Some(0), Some(0)),
            ("etc/new".to_owned(), Some(1000), Some(50)),
            ("etc/passwd".to_owned(), Some(0), Some(0)),
        ]
    );
    // An owner outside the map cannot be stored: refused, nothing written.
    fs.chown("etc/new", 5, 5);
    let mut refusals = Refusals::new(&f.layout);
    let r = crate::util::run(&["repack", s(&bundle), "--tag", "unmappable"]);
    refusals.check(
        "repack of a file owned outside the id map",
        &r,
        &["etc/new"],
    );
    refusals.finish();
}

/// A fixture that user nobody can reach and write to.
fn nobody_fixture() -> Fixture {
    let f = Fixture::new();
    peer_ok("chmod", &["-R", "a+rwX", s(&f.layout)]);
    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    f
}

/// strata run as user nobody (uid 65534) from root.
fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(strata_bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SOURCE_DATE_EPOCH", SDE.to_string())
        .output()
        .expect("running strata as nobody")
}

fn as_nobody_ok(args: &[&str]) -> String {
    let out = as_nobody(args);
    assert!(
        out.status.success(),
        "strata {args:?} as nobody: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn rootless_repack_reads_what_its_owner_cannot_and_changes_no_mode() {
    if !is_root() || !peer("setpriv") {
        eprintln!("SKIPPED: runs strata as nobody from root");
        return;
    }
    let f = nobody_fixture();
    let bundle = f.path("bundle-sealed");
    as_nobody_ok(&["unpack", "--rootless", &f.image("base"), s(&bundle)]);
    let root = rootfs(&bundle);
    // As an image would have them (Fedora's /etc/shadow is 000), owned by nobody.
    let nobody = 65534;
    Fs(&root)
        .write("vault/inner/secret", "sealed\n", 0o000)
        .chmod("vault/inner", 0o000)
        .chmod("vault", 0o000)
        .chown("vault", nobody, nobody)
        .chown("vault/inner", nobody, nobody)
        .chown("vault/inner/secret", nobody, nobody)
        .write("etc/motd", "now unreadable\n", 0o000);
    let ctime = |rel: &str| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(root.join(rel)).unwrap();
        (m.ctime(), m.ctime_nsec())
    };
    let ctimes_before: Vec<(i64, i64)> = ["vault", "vault/inner", "etc/motd"].map(ctime).to_vec();
    // Can nobody have a user namespace here? (unshare(1) execs, so it only proves creation.)
    let userns = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["unshare", "--user", "true"])
        .status()
        .is_ok_and(|st| st.success());
    let out = as_nobody(&["repack", "-v", s(&bundle), "--tag", "sealed"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if !userns {
        // Without one, the repack stops at the first unreadable entry and says so.
        assert!(!out.status.success());
        assert!(
            err.contains("no user namespace") && err.contains("vault"),
            "{err}"
        );
        return;
    }
    assert!(out.status.success(), "{err}");
    assert!(err.contains("user namespace"), "{err}");
    // Nothing in the bundle was chmod-ed to be read (a chmod moves the ctime).
    assert_eq!(
        ["vault", "vault/inner", "etc/motd"].map(ctime).to_vec(),
        ctimes_before
    );
    let entries: Vec<(String, u32, Option<u64>)> = f
        .last_layer("sealed")
        .iter()
        .map(|e| (show(&e.name), e.mode, e.uid))
        .collect();
    assert_eq!(
        entries,
        [
            ("etc/".to_owned(), 0o755, Some(0)),
            ("etc/motd".to_owned(), 0, Some(0)),
            ("vault/".to_owned(), 0, Some(0)),
            ("vault/inner/".to_owned(), 0, Some(0)),
            ("vault/inner/secret".to_owned(), 0, Some(0)),
        ]
    );
    let check = f.unpack("sealed", "check-sealed");
    let read = |rel: &str| std::fs::read_to_string(rootfs(&check).join(rel)).unwrap();
    assert_eq!(read("vault/inner/secret"), "sealed\n");
    assert_eq!(read("etc/motd"), "now unreadable\n");
}

#[test]
fn repack_of_a_rootless_bundle_restores_recorded_owners() {
    if !is_root() || !peer("setpriv") {
        eprintln!("SKIPPED: runs strata as nobody from root");
        return;
    }
    let f = nobody_fixture();
    let bundle = f.path("bundle-rootless");
    as_nobody_ok(&["unpack", "--rootless", &f.image("base"), s(&bundle)]);
    let root = rootfs(&bundle);
    // Changed as nobody would: a chmod keeps the file nobody's.
    std::fs::set_permissions(
        root.join("home/user/.profile"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::write(root.join("etc/motd"), "rootless\n").unwrap();
    as_nobody_ok(&["repack", s(&bundle), "--tag", "rootless"]);
    let layer = f.last_layer("rootless");
    let owners: Vec<(String, Option<u64>, Option<u64>, u32)> = layer
        .iter()
        .map(|e| (show(&e.name), e.uid, e.gid, e.mode))
        .collect();
    assert_eq!(
        owners,
        [
            ("etc/".to_owned(), Some(0), Some(0), 0o755),
            ("etc/motd".to_owned(), Some(0), Some(0), 0o644),
            ("home/".to_owned(), Some(0), Some(0), 0o755),
            ("home/user/".to_owned(), Some(1000), Some(1000), 0o755),
            (
                "home/user/.profile".to_owned(),
                Some(1000),
                Some(1000),
                0o640
            ),
        ]
    );
    assert!(
        layer
            .iter()
            .all(|e| e.xattrs.iter().all(|(k, _)| k != "user.rootlesscontainers")),
        "the rootless record leaked into the layer"
    );
}

// ---------------------------------------------------------------------------------------
// Unknown config fields
// ---------------------------------------------------------------------------------------

#[test]
fn repack_keeps_config_fields_strata_does_not_model() {
    let dir = tempdir();
    let layout = dir.path().join("l");
    let l = strata::Layout::init(&layout).expect("init");
    let mut t = TarBuilder::new();
    t.dir("etc", 0o755).file("etc/x", b"x\n", 0o644);
    write_layered_image(
        &l,
        "docker",
        &[(t.finish(), Packing::Gzip)],
        json!({
            "config": {
                "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000u64},
                "OnBuild": ["RUN make"],
                "Env": ["A=1"],
            },
            "container_config": {"Hostname": "abc"},
            "docker_version": "24.0.0",
            "history": [{"created_by": "base"}],
        }),
    );
    let before = raw_config(&layout, "docker");
    let bundle = dir.path().join("b");
    strata_unpack(&at(&layout, "docker"), &bundle);
    Fs(&rootfs(&bundle)).write("etc/y", "y\n", 0o644);
    repack(&bundle, &["--tag", "repacked"]);
    let after = raw_config(&layout, "repacked");
    for key in ["Healthcheck", "OnBuild", "Env"] {
        assert_eq!(after["config"][key], before["config"][key], "config.{key}");
    }
    for key in ["container_config", "docker_version"] {
        assert_eq!(after[key], before[key], "{key}");
    }
    let ids = after["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], before["rootfs"]["diff_ids"][0]);
}

// ---------------------------------------------------------------------------------------
// Round trips with umoci
// ---------------------------------------------------------------------------------------

#[test]
fn strata_repacks_umoci_unpacks_and_the_other_way_round() {
    if !peer("umoci") {
        return;
    }
    let f = Fixture::new();
    // strata unpack + change + strata repack: umoci unpacks the changed tree (many changes
    // in one layer).
    case(&f, "mixed", &[], true, |fs| {
        fs.write("etc/motd", "changed\n", 0o644)
            .chmod("etc/passwd", 0o600)
            .rm("usr/share/doc/a")
            .rm("replace-dir")
            .write("replace-dir", "file now\n", 0o644)
            .link("etc/motd.alias", "etc/motd")
            .write("opt/new/file", "new\n", 0o755)
            .xattr("etc/hosts", "user.k", b"v")
            .rm(OsStr::from_bytes(b"bytes-\xff\xfe"));
    });

    // umoci unpack + change + umoci repack: strata unpacks the changed tree.
    let bundle = f.path("umoci-bundle");
    umoci_unpack(&f.image("base"), &bundle);
    Fs(&rootfs(&bundle))
        .write("etc/motd", "changed by umoci\n", 0o644)
        .rm("usr/share/doc/b")
        .rm("etc/hosts")
        .chmod("bin/tool", 0o700)
        .write("opt/umoci/file", "new\n", 0o644)
        .symlink("opt/umoci/link", "file");
    // umoci 0.4.7 stores whole seconds and rounds rather than truncates: give the tree whole
    // seconds first so the comparison is about what each tool does with them.
    whole_second_mtimes(&rootfs(&bundle));
    let expected = scan(&rootfs(&bundle));
    peer_ok(
        "umoci",
        &["repack", "--image", &f.image("by-umoci"), s(&bundle)],
    );
    assert_trees(
        &expected,
        &f.tree("by-umoci"),
        "strata unpack of umoci's repack",
    );

    // And strata repacks on top of umoci's image.
    let (_, layer) = case_from(&f, "by-umoci", "on-umoci", |fs| {
        fs.rm("opt/umoci").write("etc/motd", "and strata\n", 0o644);
    });
    assert_eq!(whiteouts(&layer), ["opt/.wh.umoci"]);
}

/// [`case`] from another tag, checked with both tools.
fn case_from(
    f: &Fixture,
    from: &str,
    tag: &str,
    change: impl FnOnce(&Fs<'_>),
) -> (Value, Vec<TarEntry>) {
    let bundle = f.unpack(from, &format!("bundle-{tag}"));
    change(&Fs(&rootfs(&bundle)));
    let changed = scan(&rootfs(&bundle));
    let report = repack(&bundle, &["--tag", tag]);
    let layer = f.last_layer(tag);
    let expected = clamp_written(changed, &layer);
    assert_trees(&expected, &f.tree(tag), &format!("{tag}: strata unpack"));
    if peer("umoci") {
        assert_trees(
            &expected,
            &f.umoci_tree(tag),
            &format!("{tag}: umoci unpack"),
        );
    }
    (report, layer)
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

#[test]
fn repack_refuses_bad_bundles_and_leaves_the_layout_alone() {
    let f = Fixture::with_owners(false);
    let mut refusals = Refusals::new(&f.layout);

    // No strata.json.
    let bundle = f.unpack("base", "no-metadata");
    Fs(&rootfs(&bundle)).write("etc/motd", "x\n", 0o644);
    std::fs::remove_file(bundle.join("strata.json")).unwrap();
    let r = crate::util::run(&["repack", s(&bundle)]);
    refusals.check("repack without strata.json", &r, &["strata.json"]);

    // Not a bundle at all.
    let r = crate::util::run(&["repack", s(&f.path("nowhere"))]);
    refusals.check("repack of a missing directory", &r, &["nowhere"]);

    // A .wh. name in the rootfs.
    let bundle = f.unpack("base", "whiteout-name");
    Fs(&rootfs(&bundle))
        .write("etc/motd", crate::build::noise(300_000, 5), 0o644)
        .write("etc/sub/.wh.sneaky", "", 0o644);
    let r = crate::util::run(&["repack", s(&bundle)]);
    refusals.check("repack of a .wh. name", &r, &[".wh.sneaky"]);
    let r = crate::util::run(&["repack", s(&bundle), "--tag", "other"]);
    refusals.check("repack --tag of a .wh. name", &r, &[".wh.sneaky"]);

    // An unreadable file.
    let bundle = f.unpack("base", "unreadable");
    Fs(&rootfs(&bundle))
        .write("etc/motd", crate::build::noise(300_000, 6), 0o644)
        .write("etc/secret", "secret\n", 0o000);
    let r = run_restricted(&["repack", s(&bundle)]);
    refusals.check("repack of an unreadable file", &r, &["etc/secret"]);

    // Bad flags (each bundle with its own change, so a stray layer would be new).
    for (i, (flags, needle)) in [
        (["--history-created", "tomorrow"], "tomorrow"),
        (["--tag", "Bad Tag!"], "Bad Tag!"),
    ]
    .into_iter()
    .enumerate()
    {
        let bundle = f.unpack("base", &format!("bad-flags-{i}"));
        Fs(&rootfs(&bundle)).write("etc/motd", format!("change {i}\n"), 0o644);
        let mut args = vec!["repack", s(&bundle)];
        args.extend(flags);
        let r = crate::util::run(&args);
        refusals.check_usage(&format!("{args:?}"), &r, &[needle]);
    }
    refusals.finish();
}

#[test]
fn repack_refuses_a_bundle_whose_image_is_gone() {
    let f = Fixture::with_owners(false);
    let bundle = f.unpack("base", "orphan");
    Fs(&rootfs(&bundle)).write("etc/motd", "x\n", 0o644);
    let digest = manifest_digest(&f.layout, "base");
    std::fs::remove_file(crate::build::blob_path(&f.layout, &digest)).unwrap();
    let mut refusals = Refusals::new(&f.layout);
    let r = crate::util::run(&["repack", s(&bundle)]);
    refusals.check("repack after the manifest was deleted", &r, &[&digest]);
    let r = crate::util::run(&["repack", s(&bundle), "--tag", "new"]);
    refusals.check(
        "repack --tag after the manifest was deleted",
        &r,
        &[&digest],
    );
    refusals.finish();
}

/// Sets every mtime (and atime) under `root` to its whole second.
fn whole_second_mtimes(root: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.is_dir() {
            for e in std::fs::read_dir(&path).expect("read_dir") {
                stack.push(e.expect("entry").path());
            }
        }
        let t = rustix::fs::Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &path,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .expect("utimensat");
    }
}
