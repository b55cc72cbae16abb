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
    let quoted = format!("\"{hex}\"");
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

/// rebase adds a history entry of its own: what the image now stands on (the new base's
/// manifest digest), as an empty layer; --no-history leaves it out.
#[test]
fn rebase_notes_the_new_base_in_the_history() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let at = |t: &str| format!("{}:{t}", s(&lay));
    for (name, file) in [("base", "v1\n"), ("base2", "v2\n"), ("app", "app\n")] {
        let root = dir.path().join(name);
        std::fs::create_dir_all(&root).unwrap();
        write(&root.join(name), file.as_bytes());
    }
    ok(&["build", s(&dir.path().join("base")), &at("base")]);
    ok(&["build", s(&dir.path().join("base2")), &at("base2")]);
    let app = dir.path().join("app");
    ok(&["build", s(&app), &at("app"), "--from", &at("base")]);
    let rebase = |tag: &str, extra: &[&str]| {
        let mut args = vec![
            "rebase",
            &at("app"),
            "--old-base",
            &at("base"),
            "--new-base",
            &at("base2"),
            "--tag",
            tag,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(|a| a.to_string()));
        ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    rebase("rebased", &[]);
    rebase("quiet", &["--no-history"]);
    let history = |tag: &str| {
        json(&["inspect", &at(tag), "--raw", "config"])["history"]
            .as_array()
            .unwrap()
            .clone()
    };
    let onto = json(&["inspect", &at("base2"), "--json"])["manifest"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(onto.starts_with("sha256:"), "{onto}");
    let (base2, app, rebased) = (history("base2"), history("app"), history("rebased"));
    // base2's entries, app's own entry, then the rebase's.
    assert_eq!(
        rebased.len(),
        base2.len() + app.len() - history("base").len() + 1
    );
    let last = rebased.last().unwrap();
    assert_eq!(last["empty_layer"], serde_json::json!(true), "{last}");
    assert!(last["comment"].as_str().unwrap().contains(&onto), "{last}");
    assert!(
        last["created_by"].as_str().unwrap().contains(&onto),
        "{last}"
    );
    assert_eq!(history("quiet").len(), rebased.len() - 1);
    ok(&["fsck", s(&lay)]);
}

/// convert --format docker keeps only the fields Docker schema 2 has, and -v says which
/// went; skopeo reads the result.
#[test]
fn convert_to_docker_drops_what_schema_2_cannot_carry() {
    let dir = tempdir();
    let lay = dir.path().join("lay");
    let at = |t: &str| format!("{}:{t}", s(&lay));
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    write(&root.join("f"), b"f\n");
    ok(&[
        "build",
        s(&root),
        &at("plain"),
        "--annotation",
        "org.example.k=v",
    ]);
    // A manifest with an artifactType and annotations on its config and layer descriptors.
    let mut manifest = json(&["inspect", &at("plain"), "--raw", "manifest"]);
    manifest["artifactType"] = "application/vnd.example.thing".into();
    manifest["config"]["annotations"] = serde_json::json!({"org.example.c": "1"});
    manifest["layers"][0]["annotations"] = serde_json::json!({"org.example.l": "2"});
    let file = dir.path().join("manifest.json");
    write(&file, manifest.to_string().as_bytes());
    ok(&["manifest", "put", &at("rich"), s(&file)]);
    let verbose = run(&[
        "-v",
        "convert",
        &at("rich"),
        "--format",
        "docker",
        "--tag",
        "docker",
    ]);
    assert_eq!(verbose.code, 0, "{}", verbose.stderr);
    for field in [
        "annotations",
        "artifactType",
        "config.annotations",
        "layers[0].annotations",
    ] {
        assert!(
            verbose
                .stderr
                .contains(&format!(": {field}: Docker schema 2")),
            "{field}: {}",
            verbose.stderr
        );
    }
    let converted = json(&["inspect", &at("docker"), "--raw", "manifest"]);
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&converted),
        ["config", "layers", "mediaType", "schemaVersion"]
    );
    assert_eq!(keys(&converted["config"]), ["digest", "mediaType", "size"]);
    assert_eq!(
        keys(&converted["layers"][0]),
        ["digest", "mediaType", "size"]
    );
    assert_eq!(
        converted["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // Without -v nothing is said; converting to OCI drops nothing.
    let quiet = run(&[
        "convert",
        &at("rich"),
        "--format",
        "docker",
        "--tag",
        "docker2",
    ]);
    assert!(
        quiet.code == 0 && !quiet.stderr.contains("dropped"),
        "{}",
        quiet.stderr
    );
    let oci = run(&[
        "-v",
        "convert",
        &at("rich"),
        "--compress",
        "zstd",
        "--tag",
        "zstd",
    ]);
    assert!(
        oci.code == 0 && !oci.stderr.contains("dropped"),
        "{}",
        oci.stderr
    );
    assert_eq!(
        json(&["inspect", &at("zstd"), "--raw", "manifest"])["artifactType"],
        "application/vnd.example.thing"
    );
    if peer("skopeo") {
        let archive = dir.path().join("docker.tar");
        ok(&[
            "export",
            &at("docker"),
            "--format",
            "docker",
            "-o",
            s(&archive),
        ]);
        peer_ok(
            "skopeo",
            &["inspect", &format!("docker-archive:{}", s(&archive))],
        );
    }
    ok(&["fsck", s(&lay)]);
}

/// Two images sharing the tricky image's three layers, one with a layer more: the layout,
/// the two references and the shared layers' blob hex digests.
fn one_layer_apart(dir: &Path) -> (std::path::PathBuf, String, String, Vec<String>) {
    let image = tricky(dir);
    let lay = dir.join("tricky");
    let extra = dir.join("extra");
    write(&extra, b"new\n");
    let top = format!("{}:top", s(&lay));
    ok(&["insert", &image, s(&extra), "/etc/keep", "--tag", "top"]);
    let shared = json(&["inspect", "--json", &image])["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_owned()
        })
        .collect();
    (lay, image, top, shared)
}

/// A second diff over the same layers reads only the layers it has not seen (the layer
/// cache), and says the same as the first.
#[test]
fn diff_of_images_one_layer_apart_reads_the_shared_layers_once() {
    if !peer("strace") {
        return;
    }
    let dir = tempdir();
    let (lay, image, top, shared) = one_layer_apart(dir.path());
    let args = ["diff", image.as_str(), top.as_str(), "--json"];
    let cold = ok(&args);
    assert!(cold.contains("/etc/keep"), "{cold}");
    let log = dir.path().join("strace.log");
    for hex in &shared {
        assert_eq!(blob_opens(&log, &args, hex), 0, "{hex}");
        assert!(lay.join(".strata-cache/layers/sha256").join(hex).is_file());
    }
    assert_eq!(ok(&args), cold);
    // The same, the other way round and against itself.
    let back = ok(&["diff", &top, &image, "--json"]);
    assert!(back.contains("/etc/keep"), "{back}");
    let same = json(&["diff", &image, &image, "--json"]);
    assert_eq!(same["changed"], serde_json::json!([]), "{same}");
    ok(&["fsck", s(&lay)]);
}

/// A damaged cache entry is ignored (the blob is read again, the entry rewritten) and the
/// diff is what it was; a cache reached through a planted link is neither read nor
/// written; gc takes a removed blob's entry with it; deleting the cache changes nothing.
#[test]
fn the_layer_cache_is_checked_and_safe_to_lose() {
    let dir = tempdir();
    let (lay, image, top, shared) = one_layer_apart(dir.path());
    let args = ["diff", image.as_str(), top.as_str(), "--json"];
    let first = ok(&args);
    let entry = lay.join(".strata-cache/layers/sha256").join(&shared[0]);
    let good = std::fs::read(&entry).unwrap();
    // A flipped byte, a truncation, a body whose line of checksum was recomputed but whose
    // paths escape, a foreign layer's entry.
    let mut flipped = good.clone();
    let at = flipped.len() - 10;
    flipped[at] ^= 1;
    let body = r#"{"version":1,"layer":"sha256:LAYER","ops":[{"node":{"path":"Li4vZXRj","at":0,"kind":"file","mode":420,"uid":0,"gid":0,"size":0,"mtime":0}}]}"#
        .replace("LAYER", &shared[0]);
    let escaping = format!("{}\n{body}", sha256(body.as_bytes()).hex());
    let foreign = String::from_utf8(good.clone())
        .unwrap()
        .replace(&shared[0], &shared[1]);
    for bad in [
        flipped,
        good[..good.len() / 2].to_vec(),
        escaping.into_bytes(),
        foreign.into_bytes(),
    ] {
        write(&entry, &bad);
        assert_eq!(ok(&args), first);
        assert_eq!(std::fs::read(&entry).unwrap(), good);
    }
    // Deleted: rebuilt, same answer.
    std::fs::remove_dir_all(lay.join(".strata-cache")).unwrap();
    assert_eq!(ok(&args), first);
    assert!(entry.is_file());
    // A planted link: not followed.
    std::fs::remove_dir_all(lay.join(".strata-cache")).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, lay.join(".strata-cache")).unwrap();
    assert_eq!(ok(&args), first);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    std::fs::remove_file(lay.join(".strata-cache")).unwrap();
    // gc: the entry of a blob it removes goes too; fsck has nothing to say about the rest.
    assert_eq!(ok(&args), first);
    let top_layers = json(&["inspect", "--json", &top])["layers"].clone();
    let new_hex = top_layers.as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let new_entry = lay.join(".strata-cache/layers/sha256").join(&new_hex);
    assert!(new_entry.is_file());
    ok(&["untag", &top]);
    ok(&["gc", s(&lay)]);
    assert!(!new_entry.exists());
    assert!(entry.is_file());
    let fsck = ok(&["fsck", s(&lay)]);
    assert!(fsck.contains("0 problems, 0 warnings"), "{fsck}");
}

/// The entries of test layers, for a failure's message.
fn listing(layers: &[(Vec<u8>, Packing)]) -> String {
    let mut out = String::new();
    for (i, (tar, _)) in layers.iter().enumerate() {
        out.push_str(&format!("\n layer {i}:"));
        for e in tar::Archive::new(&tar[..]).entries().unwrap() {
            let e = e.unwrap();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| format!(" -> {}", l.display()));
            out.push_str(&format!(
                " {:?} {}{};",
                e.header().entry_type(),
                e.path().unwrap().display(),
                link.unwrap_or_default()
            ));
        }
    }
    out
}

/// Random stacks of small layers over a few names (files, directories, links, hard links,
/// whiteouts, opaque directories, names repeated): whenever unpack takes the image, GNU
/// tar's extraction of the export equals it; when unpack refuses it, so does export.
#[test]
fn export_rootfs_equals_unpack_for_random_layer_stacks() {
    let names = ["a", "a/b", "a/b/c", "a/d", "e", "e/f", "g"];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let dir = tempdir();
    for round in 0..300 {
        let here = dir.path().join(format!("r{round}"));
        std::fs::create_dir_all(&here).unwrap();
        let layout = Layout::init(here.join("lay")).unwrap();
        let mut layers = Vec::new();
        for _ in 0..1 + next(3) {
            let mut b = TarBuilder::new();
            for i in 0..1 + next(5) {
                let name = names[next(names.len())];
                match next(8) {
                    0 | 1 => b.file(name, format!("{round}.{i}\n").as_bytes(), 0o644),
                    2 => b.dir(name, 0o755),
                    3 => b.symlink(name, "target"),
                    4 => b.hardlink(name, names[next(names.len())]),
                    5 => match name.rsplit_once('/') {
                        Some((d, n)) => b.whiteout(d, n),
                        None => b.whiteout("", name),
                    },
                    6 => b.opaque(name),
                    _ => b.file(name, b"", 0o600),
                };
            }
            let packing = [Packing::Plain, Packing::Gzip, Packing::Zstd][next(3)];
            layers.push((b.finish(), packing));
        }
        write_layered_image(&layout, "r", &layers, serde_json::json!({}));
        let image = format!("{}:r", s(&here.join("lay")));
        let bundle = here.join("bundle");
        let unpacked = run(&["unpack", &image, s(&bundle)]);
        let file = here.join("fs.tar");
        let exported = run(&["export", &image, "-o", s(&file), "--format", "rootfs"]);
        if unpacked.code != 0 {
            assert_ne!(
                exported.code,
                0,
                "round {round}: unpack refused ({}), export did not; layers: {}",
                unpacked.stderr,
                listing(&layers)
            );
            continue;
        }
        assert_eq!(exported.code, 0, "round {round}: {}", exported.stderr);
        let bytes = std::fs::read(&file).unwrap();
        check_stream(&bytes);
        assert_eq!(
            extracted(&file, &here.join("x")),
            without_dir_times(scan(&bundle.join("rootfs"))),
            "round {round}: {}",
            listing(&layers)
        );
    }
}
