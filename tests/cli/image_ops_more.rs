//! Image operations of issue 13 and their performance goals: export --format rootfs reads
//! each layer once.

use std::collections::BTreeSet;
use std::path::Path;

use crate::util::*;
use strata::Layout;

/// Layers that do everything a layer can to the ones below: a hard link to a lower file
/// whose other name is then whited out, a link to a link, a file made a directory by a path
/// below it, a directory made a symlink, a whiteout of a directory, an opaque directory, a
/// directory's metadata changed after its child, an implied directory.
fn tricky(dir: &Path) -> String {
    let lay = dir.join("tricky");
    let layout = Layout::init(&lay).unwrap();
    let mut l0 = TarBuilder::new();
    l0.dir("etc", 0o755)
        .file("etc/a", b"a0\n", 0o644)
        .file("etc/keep", b"k0\n", 0o644)
        .dir("opt", 0o755)
        .file("opt/x", b"x\n", 0o644)
        .file("data/blob", b"blob\n", 0o640)
        .hardlink("data/blob2", "data/blob")
        .symlink("lib", "usr/lib")
        .dir("usr", 0o755)
        .dir("usr/lib", 0o755)
        .file("usr/lib/l.so", b"so\n", 0o755)
        .file("rep", b"file\n", 0o644)
        .dir("repdir", 0o755)
        .file("repdir/f", b"f\n", 0o644)
        .dir("wh", 0o755)
        .file("wh/gone", b"gone\n", 0o644)
        .device("dev-null", tar::EntryType::Char, 1, 3);
    let mut l1 = TarBuilder::new();
    l1.hardlink("up/link", "etc/a")
        .whiteout("etc", "a")
        .file("rep/inner", b"inner\n", 0o644)
        .symlink("repdir", "elsewhere")
        .whiteout("", "wh")
        .opaque("opt")
        .file("opt/new", b"new\n", 0o600)
        .owned_file("etc/keep", b"k1\n", 0o600, 7, 8);
    let mut l2 = TarBuilder::new();
    l2.file("etc/new", b"n\n", 0o644)
        .dir("etc", 0o750)
        .hardlink("top", "data/blob2")
        .file_with_xattrs("x/attr", b"xa\n", &[("user.k", b"v")]);
    let layers = vec![
        (l0.finish(), Packing::Gzip),
        (l1.finish(), Packing::Plain),
        (l2.finish(), Packing::Zstd),
    ];
    write_layered_image(&layout, "app", &layers, serde_json::json!({}));
    format!("{}:app", s(&lay))
}

/// GNU tar's extraction of `archive`, scanned, directory times left out (tar sets them as
/// it goes).
fn extracted(archive: &Path, into: &Path) -> Tree {
    std::fs::create_dir_all(into).unwrap();
    let status = std::process::Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "-xpf",
            s(archive),
            "-C",
            s(into),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    without_dir_times(scan(into))
}

fn without_dir_times(mut tree: Tree) -> Tree {
    for fields in tree.values_mut() {
        if fields.get("type").is_some_and(|t| t.contains("dir")) {
            fields.remove("mtime");
        }
    }
    tree
}

/// Every path once, and every hard link names an entry before it.
fn check_stream(archive: &[u8]) {
    let mut names = BTreeSet::new();
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        if entry.header().entry_type() == tar::EntryType::Link {
            let target = entry.link_name().unwrap().unwrap().into_owned();
            assert!(
                names.contains(&target),
                "{path:?} links to {target:?}, not before it"
            );
        }
        assert!(names.insert(path.clone()), "{path:?} twice");
    }
}

/// Exports `image` to a file and to stdout: the same bytes, a well-formed stream, and GNU
/// tar's extraction equals strata's unpack.
fn export_matches_unpack(dir: &Path, image: &str) -> Vec<u8> {
    let file = dir.join("fs.tar");
    ok(&["export", image, "-o", s(&file), "--format", "rootfs"]);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(
        ok_bytes(&["export", image, "-o", "-", "--format", "rootfs"]),
        bytes
    );
    check_stream(&bytes);
    let bundle = dir.join("bundle");
    ok(&["unpack", image, s(&bundle)]);
    assert_eq!(
        extracted(&file, &dir.join("x")),
        without_dir_times(scan(&bundle.join("rootfs")))
    );
    bytes
}

#[test]
fn export_rootfs_in_one_pass_equals_unpack_for_tricky_layers() {
    let dir = tempdir();
    let image = tricky(dir.path());
    let bytes = export_matches_unpack(dir.path(), &image);
    // The one-pass order: the top layer first, the directory no layer names last.
    let mut tar = tar::Archive::new(&bytes[..]);
    let names: Vec<String> = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("etc/new"),
        "{names:?}"
    );
    assert_eq!(names.last().map(String::as_str), Some("x"), "{names:?}");
}

/// A layer naming a path twice needs the whole tree: the export falls back to it, equal to
/// unpack still, and to stdout too.
#[test]
fn export_rootfs_of_a_layer_naming_a_path_twice_equals_unpack() {
    let dir = tempdir();
    let lay = dir.path().join("dup");
    let layout = Layout::init(&lay).unwrap();
    let mut l0 = TarBuilder::new();
    l0.file("a", b"1\n", 0o644).file("d/f", b"f\n", 0o644);
    let mut l1 = TarBuilder::new();
    l1.file("dup", b"x\n", 0o644)
        .file("d", b"now a file\n", 0o644)
        .file("dup", b"y\n", 0o600)
        .file("d/g", b"g\n", 0o644);
    let layers = vec![(l0.finish(), Packing::Gzip), (l1.finish(), Packing::Gzip)];
    write_layered_image(&layout, "dup", &layers, serde_json::json!({}));
    export_matches_unpack(dir.path(), &format!("{}:dup", s(&lay)));
}

/// How many times `strata args` opens the blob `hex` (strace: blobs are opened by name in
/// their directory).
fn blob_opens(log: &Path, args: &[&str], hex: &str) -> usize {
    let status = std::process::Command::new("strace")
        .args(["-f", "-e", "trace=open,openat", "-o", s(log), strata_bin()])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let quoted = format!("{hex}\"");
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(&quoted))
        .count()
}

#[test]
fn export_rootfs_to_a_file_reads_each_layer_once() {
    if !peer("strace") {
        return;
    }
    let dir = tempdir();
    let image = tricky(dir.path());
    let out = dir.path().join("fs.tar");
    let args = ["export", &image, "-o", s(&out), "--format", "rootfs"];
    let log = dir.path().join("strace.log");
    let inspected = json(&["inspect", "--json", &image]);
    let layers = inspected["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for layer in layers {
        let hex = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        assert_eq!(blob_opens(&log, &args, hex), 1, "{hex}");
    }
}

/// A damaged layer (read on its own thread now) fails the export, naming the blob, and
/// leaves no archive behind.
#[test]
fn export_rootfs_of_a_damaged_layer_fails_and_writes_nothing() {
    let dir = tempdir();
    let image = tricky(dir.path());
    let inspected = json(&["inspect", "--json", &image]);
    for layer in inspected["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let blob = dir
            .path()
            .join("tricky/blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let good = std::fs::read(&blob).unwrap();
        let mut bad = good.clone();
        let at = bad.len() / 2;
        bad[at] ^= 0x55;
        write(&blob, &bad);
        let out = dir.path().join("fs.tar");
        let err = fails(&["export", &image, "-o", s(&out), "--format", "rootfs"], 1);
        assert!(err.contains(digest), "{digest}: {err}");
        assert!(!out.exists(), "{digest}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("fs.tar"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        write(&blob, &good);
    }
}
