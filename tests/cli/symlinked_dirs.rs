//! Layers that write under a directory a lower layer made a symlink (merged-/usr images:
//! `bin -> usr/bin`): unpack, like umoci and docker, takes `bin/x` through the link to
//! `usr/bin/x`, and a whiteout `bin/.wh.sh` removes `usr/bin/sh`; a layer's own `bin/`
//! directory replaces the link. Every command that reads the merged tree without unpacking
//! (`files`, `cat`, `diff`, `flatten`, `export --format rootfs`) must agree with unpack.

use std::path::Path;

use crate::util::*;

/// A layout with images `through` (files through the links), `over` (then a directory
/// replacing a link), `hidden` (then a whiteout and a file through the links) and `base`.
fn merged_usr(dir: &Path) -> String {
    let layout = strata::Layout::init(dir.join("lay")).unwrap();
    let base = {
        let mut t = TarBuilder::new();
        t.dir("usr/", 0o755).dir("usr/bin/", 0o755);
        t.file("usr/bin/sh", b"sh\n", 0o755)
            .file("usr/bin/ls", b"ls\n", 0o755);
        t.symlink("bin", "usr/bin").symlink("sbin", "/usr/bin");
        t.finish()
    };
    let through = {
        let mut t = TarBuilder::new();
        t.file("bin/x", b"x\n", 0o755).file("sbin/y", b"y\n", 0o755);
        t.finish()
    };
    let over = {
        let mut t = TarBuilder::new();
        t.dir("bin/", 0o755).file("bin/z", b"z\n", 0o755);
        t.finish()
    };
    let hide = {
        let mut t = TarBuilder::new();
        t.whiteout("sbin", "ls").file("bin/sh", b"new sh\n", 0o755);
        t.finish()
    };
    let p = |tar: &Vec<u8>| (tar.clone(), Packing::Gzip);
    write_layered_image(&layout, "base", &[p(&base)], serde_json::json!({}));
    write_layered_image(
        &layout,
        "through",
        &[p(&base), p(&through)],
        serde_json::json!({}),
    );
    write_layered_image(
        &layout,
        "over",
        &[p(&base), p(&through), p(&over)],
        serde_json::json!({}),
    );
    write_layered_image(
        &layout,
        "hidden",
        &[p(&base), p(&through), p(&hide)],
        serde_json::json!({}),
    );
    s(&dir.join("lay")).to_owned()
}

/// The paths of an unpacked tree, `/`-rooted, each with its attributes.
fn listing(tree: &Tree) -> Vec<String> {
    tree.iter()
        .map(|(path, fields)| format!("/{} {fields:?}", show(path)))
        .collect()
}

#[test]
fn reading_the_merged_tree_agrees_with_unpack_through_symlinked_directories() {
    let dir = tempdir();
    let lay = merged_usr(dir.path());
    for tag in ["through", "over", "hidden"] {
        let image = format!("{lay}:{tag}");
        let bundle = dir.path().join(format!("unpacked-{tag}"));
        ok(&["unpack", &image, s(&bundle)]);
        let unpacked = scan(&bundle.join("rootfs"));

        // files: every path unpack made, nothing else.
        let files: Vec<String> = ok(&["files", &image, "--json"])
            .parse::<serde_json::Value>()
            .unwrap()["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().trim_end_matches('/').to_owned())
            .collect();
        let made: Vec<String> = unpacked.keys().map(|p| format!("/{}", show(p))).collect();
        assert_eq!(files, made, "{tag}: files against unpack");

        // flatten: one layer unpacking to the same tree.
        ok(&["flatten", &image, "--tag", &format!("flat-{tag}")]);
        let flat = dir.path().join(format!("flat-{tag}"));
        ok(&["unpack", &format!("{lay}:flat-{tag}"), s(&flat)]);
        assert_eq!(
            listing(&scan(&flat.join("rootfs"))),
            listing(&unpacked),
            "{tag}: flatten"
        );

        // export --format rootfs, extracted by GNU tar.
        let archive = dir.path().join(format!("{tag}.tar"));
        ok(&["export", &image, "--format", "rootfs", "-o", s(&archive)]);
        let extracted = dir.path().join(format!("extracted-{tag}"));
        std::fs::create_dir_all(&extracted).unwrap();
        peer_ok("tar", &["-xf", s(&archive), "-C", s(&extracted)]);
        // GNU tar sets a directory's times when it leaves it, and a later member inside
        // changes them again: directory times are left out, as in image_ops.rs.
        let dir_times_out = |tree: &Tree| {
            let mut tree = tree.clone();
            for fields in tree.values_mut() {
                if fields.get("type").is_some_and(|t| t == "dir") {
                    fields.remove("mtime");
                }
            }
            listing(&tree)
        };
        assert_eq!(
            dir_times_out(&scan(&extracted)),
            dir_times_out(&unpacked),
            "{tag}: export --format rootfs"
        );
    }

    // cat follows the link as the unpacked tree does.
    let through = format!("{lay}:through");
    assert_eq!(ok_bytes(&["cat", &through, "/bin/x"]), b"x\n");
    assert_eq!(ok_bytes(&["cat", &through, "/usr/bin/y"]), b"y\n");
    assert_eq!(ok_bytes(&["cat", &through, "/bin/sh"]), b"sh\n");
    let hidden = format!("{lay}:hidden");
    fails(&["cat", &hidden, "/usr/bin/ls"], 1);
    // The base names usr/bin/sh literally; the layer above rewrote it as bin/sh.
    assert_eq!(ok_bytes(&["cat", &hidden, "/usr/bin/sh"]), b"new sh\n");
    assert_eq!(ok_bytes(&["cat", &format!("{lay}:over"), "/bin/z"]), b"z\n");

    // diff: what the layer did, where it did it.
    let diff = ok(&["diff", &format!("{lay}:base"), &through]);
    assert_eq!(diff.trim(), "A /usr/bin/x\nA /usr/bin/y", "{diff}");
}
