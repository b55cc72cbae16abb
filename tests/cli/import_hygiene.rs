//! From the attack on the CLI: an archive holding one blob twice is refused (a tar tool would
//! keep the other copy); errors about an archive's documents name the archive and say in
//! words what is wrong; a descriptor whose size the archive's member does not have says so;
//! what killed writers left in `.strata-tmp` is reported by fsck and counted rightly by gc; a
//! killed unpack is recognised by the next one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;

/// A layout `src` with one image tagged `app`, and an OCI archive of it.
fn app_archive(dir: &Path) -> (Image, PathBuf) {
    let (src, images) = layout_with_images(dir, "src", &["app"]);
    let archive = dir.join("app.tar");
    ok(&[
        "export",
        &format!("{}:app", s(src.root())),
        "-o",
        s(&archive),
    ]);
    (images[0].clone(), archive)
}

/// The regular members of a tar, (name, content), in order.
fn members_of(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(archive).unwrap();
    let mut tar = tar::Archive::new(&bytes[..]);
    let mut out = Vec::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() == tar::EntryType::Regular {
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((name, data));
        }
    }
    out
}

/// Writes a tar of `members` at `dir/name`.
fn archive_of(dir: &Path, name: &str, members: &[(String, Vec<u8>)]) -> PathBuf {
    let mut t = TarBuilder::new();
    for (member, data) in members {
        t.file(member, data, 0o644);
    }
    let path = dir.join(name);
    write(&path, &t.finish());
    path
}

/// `archive` with the member `name`'s content replaced.
fn with_member(dir: &Path, archive: &Path, name: &str, data: &[u8]) -> PathBuf {
    let mut members = members_of(archive);
    members
        .iter_mut()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no member {name}"))
        .1 = data.to_vec();
    archive_of(dir, "edited.tar", &members)
}

/// Imports `archive` into a new layout, which must fail (exit 1) and be left without the
/// image; returns stderr.
fn import_fails(dir: &Path, archive: &Path) -> String {
    let dest = dir.join("dest");
    ok(&["new", &format!("{}:base", s(&dest))]);
    let before = snapshot(&dest);
    let err = fails(&["import", s(archive), s(&dest)], 1);
    assert!(
        snapshot(&dest) == before,
        "the failed import changed {dest:?}"
    );
    // Not a word of Rust: no serde type names, no Option's Debug form.
    for rust in ["Versioned", "struct ", "Some(", "None", "u64", "sequence"] {
        assert!(!err.contains(rust), "{rust:?} in: {err}");
    }
    err
}

// ---------------------------------------------------------------------------------------
// 1. A blob member twice
// ---------------------------------------------------------------------------------------

/// The archive with the image's layer member twice, the corrupt copy first or second.
fn layer_twice(dir: &Path, image: &Image, archive: &Path, corrupt_first: bool) -> PathBuf {
    let layer = format!("blobs/sha256/{}", image.layers[0].hex());
    let mut members = members_of(archive);
    let at = members.iter().position(|(n, _)| *n == layer).unwrap();
    let good = members[at].1.clone();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    let (first, second) = if corrupt_first {
        (bad, good)
    } else {
        (good, bad)
    };
    members[at].1 = first;
    members.insert(at + 1, (layer, second));
    archive_of(dir, "twice.tar", &members)
}

#[test]
fn a_blob_member_twice_is_refused_whichever_copy_is_corrupt() {
    for corrupt_first in [false, true] {
        let dir = tempdir();
        let (image, archive) = app_archive(dir.path());
        let twice = layer_twice(dir.path(), &image, &archive, corrupt_first);
        let err = import_fails(dir.path(), &twice);
        let layer = image.layers[0].hex().to_owned();
        assert!(
            err.contains(s(&twice)),
            "corrupt first: {corrupt_first}: {err}"
        );
        assert!(
            err.contains(&layer),
            "corrupt first: {corrupt_first}: {err}"
        );
        if !corrupt_first {
            assert!(err.contains("appears twice"), "{err}");
        }
        // Two sound copies are still two copies: refused the same way.
        let dir = tempdir();
        let (image, archive) = app_archive(dir.path());
        let layer = format!("blobs/sha256/{}", image.layers[0].hex());
        let mut members = members_of(&archive);
        let copy = members.iter().find(|(n, _)| *n == layer).unwrap().clone();
        members.push(copy);
        let twice = archive_of(dir.path(), "twice.tar", &members);
        let err = import_fails(dir.path(), &twice);
        assert!(err.contains("appears twice"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. Messages about the archive's documents
// ---------------------------------------------------------------------------------------

#[test]
fn a_bad_index_json_is_named_with_its_archive_and_said_in_words() {
    let dir = tempdir();
    let (_, archive) = app_archive(dir.path());
    for (index, says) in [
        (&b"null"[..], "is not a JSON object (it is null)"),
        (b"[1, 2]", "is not a JSON object (it is an array)"),
        (b"\"x\"", "is not a JSON object (it is a string)"),
        (b"{\"schemaVersion\": 2, \"manifests\": 7}", "a JSON array"),
        (
            b"{\"schemaVersion\": 2, \"manifests\": [7]}",
            "a JSON object",
        ),
        (
            b"{\"schemaVersion\": 2, \"manifests\": [}",
            "malformed JSON",
        ),
        (b"{\"schemaVersion\": 3}", "schemaVersion 3, must be 2"),
    ] {
        let edited = with_member(dir.path(), &archive, "index.json", index);
        let err = import_fails(&dir.path().join(format!("{}", index.len())), &edited);
        let named = format!("{}: index.json", s(&edited));
        assert!(err.contains(&named), "{err}");
        assert!(err.contains(says), "{says:?} in: {err}");
    }
    for (layout_file, says) in [
        (&b"null"[..], "is not a JSON object (it is null)"),
        (b"{}", "has no imageLayoutVersion"),
        (
            b"{\"imageLayoutVersion\": \"2.0.0\"}",
            "imageLayoutVersion is \"2.0.0\"",
        ),
    ] {
        let edited = with_member(dir.path(), &archive, "oci-layout", layout_file);
        let err = import_fails(&dir.path().join(format!("l{}", layout_file.len())), &edited);
        assert!(
            err.contains(&format!("{}: oci-layout", s(&edited))),
            "{err}"
        );
        assert!(err.contains(says), "{says:?} in: {err}");
    }
}

#[test]
fn a_bad_docker_manifest_json_is_named_with_its_archive_and_said_in_words() {
    let dir = tempdir();
    let (src, _) = layout_with_images(dir.path(), "src", &["app"]);
    let archive = dir.path().join("app.docker.tar");
    ok(&[
        "export",
        &format!("{}:app", s(src.root())),
        "--format",
        "docker",
        "-o",
        s(&archive),
    ]);
    for (manifest, says) in [
        (&b"null"[..], "is not a JSON array (it is null)"),
        (
            b"{\"Config\": \"x\"}",
            "is not a JSON array (it is an object)",
        ),
        (b"[7]", "a JSON object"),
        (b"[{\"Config\": 7}]", "a string"),
    ] {
        let edited = with_member(dir.path(), &archive, "manifest.json", manifest);
        let err = import_fails(&dir.path().join(format!("{}", manifest.len())), &edited);
        assert!(
            err.contains(&format!("{}: manifest.json", s(&edited))),
            "{err}"
        );
        assert!(err.contains(says), "{says:?} in: {err}");
    }
    // The image's config, named by manifest.json.
    let config = members_of(&archive)
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| n.ends_with(".json") && n != "manifest.json")
        .unwrap();
    let edited = with_member(dir.path(), &archive, &config, b"7");
    let err = import_fails(&dir.path().join("config"), &edited);
    assert!(
        err.contains(&format!("{}: config {config:?}", s(&edited)))
            && err.contains("expected a JSON object"),
        "{err}"
    );
}

#[test]
fn a_descriptor_larger_than_its_member_says_so() {
    let dir = tempdir();
    let (image, archive) = app_archive(dir.path());
    let manifest = image.manifest.digest().unwrap();
    let member = format!("blobs/sha256/{}", manifest.hex());
    let index = members_of(&archive)
        .into_iter()
        .find(|(n, _)| n == "index.json")
        .unwrap()
        .1;
    let mut index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    for size in [1i64 << 62, image.manifest.size + 1] {
        index["manifests"][0]["size"] = size.into();
        let edited = with_member(
            dir.path(),
            &archive,
            "index.json",
            &serde_json::to_vec(&index).unwrap(),
        );
        let err = import_fails(&dir.path().join(format!("{size}")), &edited);
        assert!(!err.contains("does not hold"), "{err}");
        assert!(err.contains(s(&edited)), "{err}");
        assert!(err.contains(&member), "{err}");
        assert!(
            err.contains(&format!("{size} bytes"))
                && err.contains(&format!("has {}", image.manifest.size)),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. What killed writers left in .strata-tmp
// ---------------------------------------------------------------------------------------

/// A strata writing to `layout` from a pipe, fed `bytes` and left waiting for the rest,
/// once it has made an entry named `prefix...` in `.strata-tmp`.
fn writer_waiting(args: &[&str], layout: &Path, prefix: &str, bytes: &[u8]) -> Child {
    let tmp = layout.join(".strata-tmp");
    let has = |prefix: &str| {
        std::fs::read_dir(&tmp).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    assert!(!has(prefix), "a {prefix} entry before the writer started");
    let mut child = strata(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(bytes).unwrap();
    let started = Instant::now();
    while !has(prefix) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "strata {args:?} made no {prefix} entry"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    Child {
        child,
        _stdin: stdin,
    }
}

struct Child {
    child: std::process::Child,
    _stdin: std::process::ChildStdin,
}

impl Child {
    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL: no cleanup runs
        self.child.wait().unwrap();
    }
}

/// fsck's warnings about `.strata-tmp` (the run must pass).
fn tmp_warnings(layout: &Path) -> Vec<String> {
    let report = json(&["fsck", s(layout), "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
    report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["subject"].as_str().unwrap().ends_with(".strata-tmp"))
        .map(|w| w["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn fsck_reports_what_killed_writers_left_and_gc_counts_it_rightly() {
    let dir = tempdir();
    let (_, archive) = app_archive(dir.path());
    let bytes = std::fs::read(&archive).unwrap();
    let dest = dir.path().join("dest");
    ok(&["new", &format!("{}:base", s(&dest))]);
    // An import that has read part of its archive, and a blob put part of its blob.
    let import = writer_waiting(
        &["import", "-", s(&dest)],
        &dest,
        "stage-",
        &bytes[..bytes.len() / 2],
    );
    let put = writer_waiting(
        &["blob", "put", s(&dest), "/dev/stdin"],
        &dest,
        "blob-",
        &[7u8; 1 << 16],
    );
    // Live writers' entries are no leftovers.
    assert_eq!(tmp_warnings(&dest), Vec::<String>::new());
    import.kill();
    let warnings = tmp_warnings(&dest);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("1 staging directory left by writers that were stopped")
            && warnings[0].contains("the next write to the layout removes them")
            && warnings[0].contains("strata gc"),
        "{warnings:?}"
    );
    put.kill();
    let warnings = tmp_warnings(&dest);
    assert!(
        warnings.len() == 1 && warnings[0].starts_with("1 temp file and 1 staging directory "),
        "{warnings:?}"
    );
    // Said on stderr as a warning; the exit status is fsck's own.
    let r = run(&["fsck", s(&dest)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("warning: ") && r.stderr.contains("1 temp file and 1 staging directory"),
        "{}",
        r.stderr
    );
    let r = run(&["gc", "--dry-run", s(&dest)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("0 index.json entries, 1 temp file and 1 staging directory; kept"),
        "{}",
        r.stderr
    );
    let report = json(&["gc", "--dry-run", "--json", s(&dest)]);
    assert_eq!(report["tempFilesRemoved"], 1, "{report}");
    assert_eq!(report["tempDirsRemoved"], 1, "{report}");
    // The next write takes them.
    ok(&["tag", &format!("{}:base", s(&dest)), "again"]);
    assert_eq!(tmp_warnings(&dest), Vec::<String>::new());
    assert!(!dest.join(".strata-tmp").exists());
}

// ---------------------------------------------------------------------------------------
// 4. A killed unpack
// ---------------------------------------------------------------------------------------

#[test]
fn an_unpack_into_what_a_killed_unpack_left_says_so() {
    let dir = tempdir();
    let (image, bundle) = crate::crash_matrix::killed_unpack(dir.path());
    assert!(bundle.join("rootfs").is_dir());
    assert!(!bundle.join("config.json").exists());
    let before = snapshot(&bundle);
    let err = fails(&["unpack", "--rootless", &image, s(&bundle)], 1);
    assert!(
        err.contains(&format!(
            "{}: the destination holds an unpack that did not finish",
            s(&bundle)
        )) && err.contains("remove the directory and unpack again"),
        "{err}"
    );
    assert!(
        snapshot(&bundle) == before,
        "the refused unpack changed the bundle"
    );
    // As it says: removed and unpacked again, the bundle is whole, and holds no marker.
    std::fs::remove_dir_all(&bundle).unwrap();
    ok(&["unpack", "--rootless", &image, s(&bundle)]);
    assert!(bundle.join("config.json").is_file());
    let names: Vec<String> = std::fs::read_dir(&bundle)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("unfinished")), "{names:?}");
    // A directory of anyone else's is still only "not empty".
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    write(&other.join("mine"), b"x");
    let err = fails(&["unpack", "--rootless", &image, s(&other)], 1);
    assert!(err.contains("exists and is not empty"), "{err}");
}

/// While an unpack runs, another into the same bundle is told so (the marker is locked).
#[test]
fn an_unpack_into_a_bundle_being_unpacked_says_so() {
    let dir = tempdir();
    let (src, _) = layout_with_images(dir.path(), "src", &["app"]);
    let image = format!("{}:app", s(src.root()));
    let bundle = dir.path().join("bundle");
    // Held up for a while making the layer's first directory.
    let slow = std::process::Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=mkdirat"])
        .args(["-e", "inject=mkdirat:delay_enter=3000000:when=1"])
        .arg("--")
        .arg(strata_bin())
        .args(["unpack", "--rootless", &image, s(&bundle)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !bundle.join("rootfs").exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "no rootfs");
        std::thread::sleep(Duration::from_millis(2));
    }
    let err = fails(&["unpack", "--rootless", &image, s(&bundle)], 1);
    assert!(
        err.contains("is being unpacked into by another strata now"),
        "{err}"
    );
    let out = slow.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(bundle.join("config.json").is_file());
    assert!(!bundle.join("strata-unfinished").exists());
}

/// In a multi-platform index, a platform's manifest the archive holds at another size than
/// the index gives it is no platform the archive left out (imported without it, with a
/// warning): the archive is damaged, and the import fails saying how.
#[test]
fn a_platform_whose_manifest_size_is_wrong_is_not_left_out() {
    let dir = tempdir();
    let src = strata::Layout::init(dir.path().join("src")).unwrap();
    let amd = write_image(&src, &["a"], "amd64");
    let arm = write_image(&src, &["b"], "arm64");
    let index = write_index(&src, &[&amd, &arm]);
    add_entry(&src, &index, Some("multi"));
    let archive = dir.path().join("multi.tar");
    ok(&[
        "export",
        &format!("{}:multi", s(src.root())),
        "--all-platforms",
        "-o",
        s(&archive),
    ]);
    let old = format!("blobs/sha256/{}", index.digest().unwrap().hex());
    let mut members = members_of(&archive);
    let at = members.iter().position(|(n, _)| *n == old).unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&members[at].1).unwrap();
    doc["manifests"][1]["size"] = (arm.manifest.size + 7).into();
    let bytes = serde_json::to_vec(&doc).unwrap();
    let digest = sha256(&bytes);
    members[at] = (format!("blobs/sha256/{}", digest.hex()), bytes.clone());
    let entry = members.iter_mut().find(|(n, _)| n == "index.json").unwrap();
    let mut top: serde_json::Value = serde_json::from_slice(&entry.1).unwrap();
    top["manifests"][0]["digest"] = digest.to_string().into();
    top["manifests"][0]["size"] = bytes.len().into();
    entry.1 = serde_json::to_vec(&top).unwrap();
    let edited = archive_of(dir.path(), "edited.tar", &members);
    let err = import_fails(dir.path(), &edited);
    let member = format!("blobs/sha256/{}", arm.manifest.digest().unwrap().hex());
    assert!(
        err.contains(&member)
            && err.contains(&format!(
                "{} bytes, but the member has {}",
                arm.manifest.size + 7,
                arm.manifest.size
            )),
        "{err}"
    );
}
