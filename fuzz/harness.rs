//! What the fuzz targets check, shared with the regression test that replays the corpus
//! (`tests/cli/fuzz_corpus.rs`), so a crash the fuzzer once found stays a test on stable Rust.
//!
//! Each function takes the fuzzer's bytes, never fails on them, and panics only when strata
//! broke a promise: a panic inside strata, a write outside the root or the layout, a layout
//! changed by a command that failed, or a success that left a layout fsck rejects.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use strata::digest::Digest;
use strata::image::mutate::Draft;
use strata::image::PlatformSpec;
use strata::layer::apply::{Applier, ApplyOptions};
use strata::layer::Compression;
use strata::layout::reference::{validate_tag, Reference, Target};
use strata::layout::walk::{decode_config, decode_index, decode_manifest};
use strata::spec::media_type;
use strata::transfer::import::{import, ImportOptions};
use strata::Layout;

/// Separates layers in the apply target's input, so one input can stack several layers
/// (whiteouts and overwrites only mean something over a lower layer).
pub const LAYER_SEPARATOR: &[u8] = b"\n--strata-next-layer--\n";

/// One directory entry as seen without following links: type, mode and content (a
/// symlink's target, a file's bytes).
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    mode: u32,
    content: Vec<u8>,
}

/// Everything under `root`, except the subtree `skip`, read without following links.
pub fn tree(root: &Path, skip: Option<&Path>) -> BTreeMap<PathBuf, Seen> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if Some(path.as_path()) == skip {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let content = if meta.file_type().is_symlink() {
                use std::os::unix::ffi::OsStrExt;
                std::fs::read_link(&path)
                    .map(|t| t.as_os_str().as_bytes().to_vec())
                    .unwrap_or_default()
            } else if meta.is_file() {
                std::fs::read(&path).unwrap_or_default()
            } else {
                Vec::new()
            };
            if meta.is_dir() {
                stack.push(path.clone());
            }
            out.insert(
                path.strip_prefix(root).unwrap().to_path_buf(),
                Seen {
                    mode: meta.mode(),
                    content,
                },
            );
        }
    }
    out
}

/// A temp dir on tmpfs where there is one: every input makes a layout or a root, and fsync
/// on a disk would make the replay (and the fuzzer) crawl.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    match shm.is_dir() {
        true => tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir()),
        false => tempfile::tempdir(),
    }
    .expect("temp dir")
}

/// A scratch directory with things an escaping layer would touch: a canary file, a
/// sibling directory, a symlink to it, and a bundle whose `rootfs` is the root.
fn surroundings() -> (tempfile::TempDir, PathBuf) {
    let base = scratch();
    let b = base.path();
    std::fs::write(b.join("canary"), b"canary").unwrap();
    std::fs::create_dir(b.join("sibling")).unwrap();
    std::fs::write(b.join("sibling/file"), b"sibling").unwrap();
    std::os::unix::fs::symlink("sibling", b.join("link")).unwrap();
    std::fs::create_dir_all(b.join("bundle/rootfs")).unwrap();
    std::fs::write(b.join("bundle/config.json"), b"{}").unwrap();
    let rootfs = b.join("bundle/rootfs");
    (base, rootfs)
}

/// Applies the layers in `data` (split at [`LAYER_SEPARATOR`]; the first byte picks the
/// options) to an empty root and checks that nothing beside the root changed, whether the
/// layers were accepted or refused.
pub fn apply_layers(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (base, rootfs) = surroundings();
    let before = tree(base.path(), Some(&rootfs));
    let options = ApplyOptions {
        rootless: flags & 1 != 0 || !rustix::process::geteuid().is_root(),
        keep_dirlinks: flags & 2 != 0,
        ..ApplyOptions::default()
    };
    let mut applier = Applier::new(&rootfs, options).expect("applier");
    for (i, layer) in split(rest, LAYER_SEPARATOR).into_iter().enumerate() {
        let mut layer = layer.to_vec();
        fix_tar_checksums(&mut layer);
        if applier
            .apply(Cursor::new(layer), &format!("layer {i}"))
            .is_err()
        {
            break;
        }
    }
    let after = tree(base.path(), Some(&rootfs));
    assert_eq!(
        before, after,
        "applying the layers changed the root's surroundings"
    );
    make_removable(&rootfs);
}

/// A layer may leave directories without write or search permission, which would stop the
/// temp dir's cleanup (and fill the disk over a long fuzz run).
fn make_removable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
}

/// Sets the checksum of every header block it can find, walking from header to header by
/// the sizes the headers give: a mutated header otherwise dies at the checksum check, and
/// the fuzzer never gets past it to the names, links and whiteouts that matter.
pub fn fix_tar_checksums(tar: &mut [u8]) {
    // Only what starts as a ustar or GNU tar: compressed input is left as it is.
    if tar.get(257..262) != Some(b"ustar".as_slice()) {
        return;
    }
    let mut at = 0;
    while at + 512 <= tar.len() {
        let block = &mut tar[at..at + 512];
        if block.iter().all(|b| *b == 0) {
            at += 512;
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let size = tar::Header::from_byte_slice(block)
            .entry_size()
            .unwrap_or(0);
        let Some(next) = size
            .checked_add(511)
            .map(|s| s / 512 * 512)
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| (at + 512).checked_add(s))
        else {
            return;
        };
        at = next;
    }
}

fn split<'a>(data: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(separator.len()).position(|w| w == separator) {
        parts.push(&rest[..i]);
        rest = &rest[i + separator.len()..];
    }
    parts.push(rest);
    parts
}

/// Imports `data` as an archive (OCI or docker, any compression) into a layout that holds
/// one tagged image. A refused archive must leave the layout and its surroundings as they
/// were, byte for byte; an accepted one must leave a layout fsck passes, with the old tag
/// where it was. The first byte picks a dry run.
pub fn import_archive(data: &[u8]) {
    let Some((&flags, archive)) = data.split_first() else {
        return;
    };
    let base = scratch();
    std::fs::write(base.path().join("canary"), b"canary").unwrap();
    let path = base.path().join("layout");
    let layout = Layout::init(&path).expect("layout");
    let platform = PlatformSpec::from_str("linux/amd64").unwrap();
    let kept = Draft::empty(&layout, &platform)
        .and_then(|d| d.commit("keep", Some("2024-01-01T00:00:00Z")))
        .expect("seed image");
    let before = tree(base.path(), None);
    let options = ImportOptions {
        tag: None,
        force: false,
        compression: Compression::Gzip,
        total: None,
        platforms: None,
        dry_run: flags & 1 != 0,
    };
    let mut archive = archive.to_vec();
    fix_tar_checksums(&mut archive);
    let result = import(Cursor::new(archive), &layout, &options, &mut |_| {});
    let after = tree(base.path(), None);
    match result {
        Err(_) => assert_eq!(before, after, "a refused import changed the layout"),
        Ok(_) if options.dry_run => assert_eq!(before, after, "a dry run changed the layout"),
        Ok(_) => {
            let report = strata::layout::fsck::fsck(&layout, 1).expect("fsck runs");
            assert!(
                report.problems.is_empty(),
                "an accepted import left problems: {:?}",
                report.problems
            );
            let index = layout.read_index().expect("index.json reads");
            let keep: Vec<_> = index
                .index
                .manifests
                .iter()
                .filter(|d| d.ref_name() == Some("keep"))
                .collect();
            assert_eq!(keep.len(), 1, "the tag keep is gone or doubled");
            assert_eq!(keep[0].digest, kept.digest, "the tag keep moved");
        }
    }
}

/// Parses `data` as every kind of document and name strata reads, checking that what
/// parses prints back to itself.
pub fn documents(data: &[u8]) {
    let _ = decode_manifest(data, media_type::MANIFEST, "fuzz");
    let _ = decode_manifest(data, media_type::DOCKER_MANIFEST, "fuzz");
    let _ = decode_index(data, media_type::INDEX, "fuzz");
    let _ = decode_config(data, "fuzz");
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(digest) = Digest::from_str(text) {
        assert_eq!(
            digest.to_string(),
            text,
            "a digest does not print as it parsed"
        );
    }
    if let Ok(platform) = PlatformSpec::from_str(text) {
        assert_eq!(
            platform.to_string(),
            text,
            "a platform does not print as it parsed"
        );
    }
    // Tags become file names in archives and lines in listings: never a path that climbs,
    // never a control character.
    if validate_tag(text).is_ok() {
        assert!(
            text.split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
                && text.bytes().all(|b| b.is_ascii_graphic()),
            "validate_tag accepted {text:?}"
        );
    }
    // A reference names a layout on disk only when it exists; relative names cannot reach
    // one here, so the grammar alone decides.
    if let Ok(reference) = Reference::parse(text) {
        if let Target::Tag(tag) = &reference.target {
            assert!(
                validate_tag(tag).is_ok(),
                "a parsed reference has a bad tag {tag:?}"
            );
        }
    }
}
