//! Transfers that fail or meet damage: a failed or killed import or copy into a new layout
//! leaves nothing or a usable layout, a damaged destination blob of the right size is
//! replaced, and an archive that gives one tag to two images is refused.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use strata::digest::Digest;
use strata::Layout;

use crate::util::*;

fn at(layout: &Path, tag: &str) -> String {
    format!("{}:{tag}", layout.display())
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn fsck_ok(layout: &Path) {
    let report = json(&["fsck", s(layout), "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
}

/// Every regular member of a tar, as (name, content), in order.
fn regular_members(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut a = tar::Archive::new(archive);
    let mut out = Vec::new();
    for e in a.entries().expect("a tar") {
        let mut e = e.expect("a tar entry");
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = String::from_utf8(e.path_bytes().into_owned()).expect("UTF-8 name");
        let mut content = Vec::new();
        e.read_to_end(&mut content).expect("member content");
        out.push((name, content));
    }
    out
}

/// A tar of `members`, each changed by `edit` (which may return new content).
fn rewrite(archive: &[u8], edit: impl Fn(&str, &[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut t = TarBuilder::new();
    for (name, content) in regular_members(archive) {
        let content = edit(&name, &content).unwrap_or(content);
        t.file(&name, &content, 0o644);
    }
    t.finish()
}

fn blob_member(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// A source layout with one image tagged `app` and a good OCI archive of it; returns the
/// source, the image and the archive's path.
fn source_and_archive(dir: &Path) -> (Layout, Image, PathBuf) {
    let (src, images) = layout_with_images(dir, "src", &["app"]);
    let archive = dir.join("good.tar");
    ok(&["export", &at(src.root(), "app"), "-o", s(&archive)]);
    (src, images[0].clone(), archive)
}

/// The archive at `good` with one byte of the image's layer flipped.
fn corrupt_archive(dir: &Path, good: &Path, image: &Image) -> PathBuf {
    let layer = blob_member(&image.layers[0]);
    let bad = rewrite(&read(good), |name, content| {
        (name == layer).then(|| {
            let mut c = content.to_vec();
            let mid = c.len() / 2;
            c[mid] ^= 0xff;
            c
        })
    });
    let path = dir.join("bad.tar");
    write(&path, &bad);
    path
}

/// Replaces a blob file by a new file (never writing in place: copy hard-links blobs) with
/// one byte flipped: the size stays right, the content is wrong.
fn damage_in_place_of(path: &Path) -> Vec<u8> {
    let good = read(path);
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    std::fs::remove_file(path).unwrap();
    write(path, &bad);
    good
}

// ---------------------------------------------------------------------------------------
// 1. A failed or killed import or copy into a new layout
// ---------------------------------------------------------------------------------------

#[test]
fn a_failed_import_into_a_missing_dir_leaves_the_parent_as_it_was_and_a_retry_works() {
    let dir = tempdir();
    let (_, image, good) = source_and_archive(dir.path());
    let bad = corrupt_archive(dir.path(), &good, &image);
    let before = snapshot(dir.path());
    // Missing parents too: none of them may stay behind.
    let dest = dir.path().join("new/deeper/lay");
    let err = fails(&["import", s(&bad), s(&dest)], 1);
    assert!(err.contains(&image.layers[0].to_string()), "{err}");
    assert!(
        snapshot(dir.path()) == before,
        "a failed import left something beside the archive: {:?}",
        std::fs::read_dir(dir.path()).unwrap().collect::<Vec<_>>()
    );
    ok(&["import", s(&good), s(&dest)]);
    fsck_ok(&dest);
    ok(&["inspect", &at(&dest, "app")]);
}

#[test]
fn a_failed_copy_into_a_missing_dir_leaves_the_parent_as_it_was_and_a_retry_works() {
    let dir = tempdir();
    let (src, images) = layout_with_images(dir.path(), "src", &["app"]);
    // A config of the right size but the wrong content: copy always hashes configs.
    let config = src.blob_path(&images[0].config);
    let good = damage_in_place_of(&config);
    let before = snapshot(dir.path());
    let dest = dir.path().join("new/deeper/lay");
    let err = fails(&["copy", &at(src.root(), "app"), s(&dest)], 1);
    assert!(err.contains(&images[0].config.to_string()), "{err}");
    assert!(
        snapshot(dir.path()) == before,
        "a failed copy left something beside the source"
    );
    write(&config, &good);
    ok(&["copy", &at(src.root(), "app"), s(&dest)]);
    fsck_ok(&dest);
}

/// What a strata killed while it created a layout in `dest` (an empty directory it was
/// given, or one it had just made) could leave: the skeleton without `oci-layout`.
fn half_made_layouts(dest: &Path) -> Vec<Box<dyn Fn()>> {
    let d = dest.to_owned();
    let blobs = move || std::fs::create_dir_all(d.join("blobs/sha256")).unwrap();
    let d = dest.to_owned();
    let blobs2 = blobs.clone();
    let index = move || {
        blobs2();
        write(
            &d.join("index.json"),
            br#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#,
        );
    };
    let d = dest.to_owned();
    let index2 = index.clone();
    let temp = move || {
        index2();
        std::fs::create_dir_all(d.join(".strata-tmp")).unwrap();
        write(
            &d.join(".strata-tmp/oci-layout-a1B2c3"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        );
    };
    vec![Box::new(blobs), Box::new(index), Box::new(temp)]
}

#[test]
fn import_and_copy_complete_a_layout_a_killed_strata_left_half_made() {
    let dir = tempdir();
    let (src, _, good) = source_and_archive(dir.path());
    for (n, make) in half_made_layouts(&dir.path().join("half"))
        .iter()
        .enumerate()
    {
        let dest = dir.path().join("half");
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir(&dest).unwrap();
        make();
        ok(&["import", s(&good), s(&dest)]);
        fsck_ok(&dest);
        ok(&["inspect", &at(&dest, "app")]);
        assert!(!dest.join(".strata-tmp").exists(), "state {n}");

        std::fs::remove_dir_all(&dest).unwrap();
        std::fs::create_dir(&dest).unwrap();
        make();
        ok(&["copy", &at(src.root(), "app"), s(&dest)]);
        fsck_ok(&dest);
    }
    // Anything strata could not have left is not taken over.
    let dest = dir.path().join("half");
    std::fs::remove_dir_all(&dest).unwrap();
    std::fs::create_dir_all(dest.join("blobs/sha256")).unwrap();
    write(&dest.join("notes.txt"), b"mine");
    let before = snapshot(&dest);
    let err = fails(&["import", s(&good), s(&dest)], 1);
    assert!(err.contains("oci-layout"), "{err}");
    assert!(snapshot(&dest) == before);
}

#[test]
fn a_failed_import_into_an_empty_dir_leaves_it_empty() {
    let dir = tempdir();
    let (_, image, good) = source_and_archive(dir.path());
    let bad = corrupt_archive(dir.path(), &good, &image);
    let dest = dir.path().join("empty");
    std::fs::create_dir(&dest).unwrap();
    let before = snapshot(dir.path());
    fails(&["import", s(&bad), s(&dest)], 1);
    assert!(snapshot(dir.path()) == before);
    ok(&["import", s(&good), s(&dest)]);
    fsck_ok(&dest);
}

#[test]
fn a_killed_import_into_a_missing_dir_leaves_nothing_or_a_usable_layout() {
    let dir = tempdir();
    // Big enough that an import takes a while to read.
    let src = dir.path().join("src");
    let layout = Layout::init(&src).unwrap();
    let mut t = TarBuilder::new();
    let big: Vec<u8> = (0..8_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    t.file("big", &big, 0o644);
    write_layered_image(
        &layout,
        "app",
        &[(t.finish(), Packing::Plain)],
        serde_json::json!({}),
    );
    let archive = dir.path().join("a.tar");
    ok(&["export", &at(&src, "app"), "-o", s(&archive)]);
    let parent = dir.path().join("p");
    std::fs::create_dir(&parent).unwrap();
    let dest = parent.join("lay");
    for round in 0..12u64 {
        let mut child = strata(&["import", s(&archive), s(&dest)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(round * round * 400));
        let _ = child.kill();
        let _ = child.wait();
        if dest.exists() {
            // Every command accepts it, and a retry completes it.
            ok(&["ls", s(&dest)]);
        }
        ok(&["import", s(&archive), s(&dest)]);
        fsck_ok(&dest);
        let names: Vec<String> = std::fs::read_dir(&parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["lay"], "round {round}: left beside the layout");
        std::fs::remove_dir_all(&dest).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// 2. A damaged destination blob of the right size
// ---------------------------------------------------------------------------------------

#[test]
fn import_replaces_damaged_blobs_of_the_right_size() {
    let dir = tempdir();
    let (_, image, good) = source_and_archive(dir.path());
    let dest = dir.path().join("dest");
    ok(&["import", s(&good), s(&dest)]);
    let lay = Layout::open(&dest).unwrap();
    for digest in [&image.layers[0], &image.config] {
        let path = lay.blob_path(digest);
        let original = damage_in_place_of(&path);
        let r = run(&["fsck", s(&dest)]);
        assert_ne!(r.code, 0, "the damage is not seen by fsck");
        ok(&["import", s(&good), s(&dest)]);
        fsck_ok(&dest);
        assert_eq!(read(&path), original, "{digest} was not replaced");
    }
    // A symlink of the right size where a blob belongs is replaced by the blob itself.
    let path = lay.blob_path(&image.layers[0]);
    let original = read(&path);
    let elsewhere = dir.path().join("elsewhere");
    let mut other = original.clone();
    other[0] ^= 0x01;
    write(&elsewhere, &other);
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    ok(&["import", s(&good), s(&dest)]);
    assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    assert_eq!(read(&path), original);
    assert_eq!(read(&elsewhere), other, "the symlink's target was written");
}

#[test]
fn import_of_a_docker_archive_replaces_a_damaged_layer_of_the_right_size() {
    let dir = tempdir();
    let (src, _) = layout_with_images(dir.path(), "src", &["app"]);
    let archive = dir.path().join("d.tar");
    ok(&[
        "export",
        "--format",
        "docker",
        &at(src.root(), "app"),
        "-o",
        s(&archive),
    ]);
    let dest = dir.path().join("dest");
    ok(&["import", s(&archive), s(&dest)]);
    let manifest: Value =
        serde_json::from_str(&ok(&["inspect", &at(&dest, "app"), "--raw", "manifest"])).unwrap();
    let layer: Digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let path = Layout::open(&dest).unwrap().blob_path(&layer);
    let original = damage_in_place_of(&path);
    ok(&["import", s(&archive), s(&dest)]);
    fsck_ok(&dest);
    assert_eq!(read(&path), original);
}

#[test]
fn copy_verify_replaces_damaged_blobs_of_the_right_size() {
    let dir = tempdir();
    let (src, images) = layout_with_images(dir.path(), "src", &["app"]);
    let dest = dir.path().join("dest");
    ok(&["copy", &at(src.root(), "app"), s(&dest)]);
    let lay = Layout::open(&dest).unwrap();
    for digest in [&images[0].layers[0], &images[0].config] {
        let path = lay.blob_path(digest);
        let original = damage_in_place_of(&path);
        ok(&["copy", "--verify", &at(src.root(), "app"), s(&dest)]);
        fsck_ok(&dest);
        assert_eq!(read(&path), original, "{digest} was not replaced");
    }
    fsck_ok(src.root());
}

// ---------------------------------------------------------------------------------------
// 3. One tag for two images
// ---------------------------------------------------------------------------------------

/// A source layout with two images tagged `one` and `two`.
fn two_images(dir: &Path) -> (Layout, Vec<Image>) {
    layout_with_images(dir, "src", &["one", "two"])
}

/// Imports `archive` into a layout with an image and into a missing dir; both must fail
/// with every needle said, and leave everything as it was.
fn refused_everywhere(dir: &Path, archive: &Path, needles: &[&str]) {
    let (dest, _) = layout_with_images(dir, "dest", &["keep"]);
    let before = snapshot(dir);
    let err = fails(&["import", s(archive), s(dest.root())], 1);
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    let missing = dir.join("missing");
    fails(&["import", s(archive), s(&missing)], 1);
    fails(&["import", "--force", s(archive), s(dest.root())], 1);
    assert!(
        snapshot(dir) == before,
        "a refused import changed something"
    );
}

#[test]
fn an_oci_archive_giving_one_tag_to_two_images_is_refused() {
    let dir = tempdir();
    let (src, images) = two_images(dir.path());
    let good = dir.path().join("two.tar");
    ok(&[
        "export",
        &at(src.root(), "one"),
        &at(src.root(), "two"),
        "-o",
        s(&good),
    ]);
    let bad = rewrite(&read(&good), |name, content| {
        (name == "index.json").then(|| {
            String::from_utf8(content.to_vec())
                .unwrap()
                .replace("\"two\"", "\"one\"")
                .into_bytes()
        })
    });
    let archive = dir.path().join("bad.tar");
    write(&archive, &bad);
    refused_everywhere(
        dir.path(),
        &archive,
        &[
            "\"one\"",
            &images[0].manifest.digest,
            &images[1].manifest.digest,
        ],
    );
}

#[test]
fn a_docker_archive_giving_one_tag_to_two_images_is_refused() {
    let dir = tempdir();
    let (src, images) = two_images(dir.path());
    let good = dir.path().join("two.tar");
    ok(&[
        "export",
        "--format",
        "docker",
        &at(src.root(), "one"),
        &at(src.root(), "two"),
        "-o",
        s(&good),
    ]);
    let bad = rewrite(&read(&good), |name, content| {
        (name == "manifest.json").then(|| {
            let mut doc: Value = serde_json::from_slice(content).unwrap();
            for entry in doc.as_array_mut().unwrap() {
                entry["RepoTags"] = serde_json::json!(["app:v1"]);
                entry.as_object_mut().unwrap().remove("StrataLayoutTags");
            }
            serde_json::to_vec(&doc).unwrap()
        })
    });
    let archive = dir.path().join("bad.tar");
    write(&archive, &bad);
    let configs: Vec<String> = images.iter().map(|i| i.config.hex().to_owned()).collect();
    refused_everywhere(
        dir.path(),
        &archive,
        &["\"app:v1\"", &configs[0], &configs[1]],
    );
}

#[test]
fn export_refuses_a_docker_archive_giving_one_repo_tag_to_two_images() {
    let dir = tempdir();
    // `a` and `a:latest` are two tags in a layout, but one RepoTag (a:latest) to docker.
    let (src, images) = layout_with_images(dir.path(), "src", &["a"]);
    let other = write_image(&src, &["other"], "amd64");
    add_entry(&src, &other.manifest, Some("a:latest"));
    let out = dir.path().join("d.tar");
    let err = fails(
        &[
            "export",
            "--format",
            "docker",
            &at(src.root(), "a"),
            &at(src.root(), "a:latest"),
            "-o",
            s(&out),
        ],
        1,
    );
    assert!(err.contains("a:latest"), "{err}");
    assert!(err.contains(&images[0].manifest.digest), "{err}");
    assert!(err.contains(&other.manifest.digest), "{err}");
    assert!(!out.exists());
    // The OCI format keeps the two tags apart.
    ok(&[
        "export",
        &at(src.root(), "a"),
        &at(src.root(), "a:latest"),
        "-o",
        s(&out),
    ]);
}

// ---------------------------------------------------------------------------------------
// A destination whose strata directories are symlinks out of it
// ---------------------------------------------------------------------------------------

/// Like `snapshot`, but a symlink is recorded by its target, never followed.
fn snapshot_links(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".into()
            } else {
                format!("{:?}", read(&path))
            };
            out.push((path, what));
        }
    }
    out.sort();
    out
}

#[test]
fn import_and_copy_never_write_through_a_symlinked_temp_or_blobs_dir() {
    let dir = tempdir();
    let (src, _, archive) = source_and_archive(dir.path());
    let outside = dir.path().join("outside");
    for linked in [".strata-tmp", "blobs/sha256"] {
        let _ = std::fs::remove_dir_all(&outside);
        std::fs::create_dir(&outside).unwrap();
        let (dest, _) = layout_with_images(dir.path(), "dest", &["keep"]);
        let at_link = dest.root().join(linked);
        if at_link.exists() {
            // The layout's own blobs move out, reached through the link.
            for e in std::fs::read_dir(&at_link).unwrap() {
                let e = e.unwrap();
                std::fs::rename(e.path(), outside.join(e.file_name())).unwrap();
            }
            std::fs::remove_dir(&at_link).unwrap();
        }
        std::os::unix::fs::symlink(&outside, &at_link).unwrap();
        let (before, outside_before) = (snapshot_links(dest.root()), snapshot(&outside));
        let err = fails(&["import", s(&archive), s(dest.root())], 1);
        assert!(err.contains(linked), "{linked}: {err}");
        let err = fails(&["copy", &at(src.root(), "app"), s(dest.root())], 1);
        assert!(err.contains(linked), "{linked}: {err}");
        assert!(snapshot_links(dest.root()) == before, "{linked}");
        assert!(
            snapshot(&outside) == outside_before,
            "{linked}: written outside"
        );
        std::fs::remove_dir_all(dest.root()).unwrap();
    }
}

#[test]
fn export_refuses_two_images_an_importer_would_tag_alike_by_their_containerd_name() {
    let dir = tempdir();
    let src = Layout::init(dir.path().join("src")).unwrap();
    let mut digests = Vec::new();
    for tag in ["one", "two"] {
        let image = write_image(&src, &[tag], "amd64");
        let mut desc = image.manifest.clone();
        // What containerd and docker 25+ write: the full name, read before ref.name.
        desc.set_annotation("io.containerd.image.name", Some("docker.io/library/app:1"));
        add_entry(&src, &desc, Some(tag));
        digests.push(image.manifest.digest);
    }
    let out = dir.path().join("a.tar");
    let err = fails(
        &[
            "export",
            &at(src.root(), "one"),
            &at(src.root(), "two"),
            "-o",
            s(&out),
        ],
        1,
    );
    assert!(err.contains("docker.io/library/app:1"), "{err}");
    assert!(
        err.contains(&digests[0]) && err.contains(&digests[1]),
        "{err}"
    );
    assert!(!out.exists());
}
