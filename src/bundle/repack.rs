//! Repacking a changed bundle into a new layer: the rootfs is compared with the snapshot
//! unpack took, by metadata alone (an unchanged ctime means an unchanged file: every write,
//! chmod, chown or xattr change moves it and nobody can set it back), so no file is read
//! unless it goes into the layer. New and changed paths are written with their parent
//! directories; deleted paths become whiteouts, one per deleted subtree.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::snapshot::{self, SnapshotEntry};
use super::unpack::{BundleMetadata, METADATA_FILE, SNAPSHOT_FILE};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::mutate::{Draft, HistoryOptions};
use crate::image::time::source_date_epoch;
use crate::image::PlatformSpec;
use crate::layer::build::{TarOptions, TarWriter};
use crate::layer::source::SourceTree;
use crate::layer::write::write_layer_with_progress;
use crate::layer::Compression;
use crate::layout::reference::{Reference, Target};
use crate::layout::Layout;

/// How to repack.
#[derive(Debug, Clone, Default)]
pub struct RepackOptions {
    /// Tag to write (default: the tag the bundle was unpacked from).
    pub tag: Option<String>,
    /// Layer compression (default: that of the image's last compressed layer, else gzip).
    pub compression: Option<Compression>,
    /// Paths (in the image) whose changes are left out.
    pub mask_paths: Vec<PathBuf>,
    /// Leave the image's volumes in (by default their changes are left out).
    pub no_mask_volumes: bool,
    /// Update the bundle's snapshot and metadata so the next repack builds on this one.
    pub refresh_bundle: bool,
    /// The history entry.
    pub history: HistoryOptions,
}

/// What a repack did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepackReport {
    /// The new manifest.
    pub manifest: String,
    /// The tag moved or written.
    pub tag: String,
    /// The new layer's digest, absent when nothing changed.
    pub layer: Option<String>,
    /// Paths added.
    pub added: usize,
    /// Paths changed.
    pub changed: usize,
    /// Whiteouts written.
    pub deleted: usize,
    /// The image the tag named before, when it was neither the bundle's image nor the
    /// result: changes made to the tag since the unpack (another repack, an insert) are not
    /// in the result, and that image is untagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
}

/// The changes between a snapshot and the tree now.
#[derive(Debug, Default)]
struct Changes {
    added: Vec<PathBuf>,
    changed: Vec<PathBuf>,
    deleted: Vec<PathBuf>,
}

/// Reads a bundle's metadata, naming the file when it is missing or broken.
pub fn read_metadata(bundle: impl AsRef<Path>) -> Result<BundleMetadata> {
    let bundle = bundle.as_ref();
    let path = bundle.join(METADATA_FILE);
    let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::Invalid {
            what: path.display().to_string(),
            reason: "does not exist (is this a bundle made by strata unpack?)".into(),
        },
        _ => Error::Io {
            path: path.clone(),
            source,
        },
    })?;
    serde_json::from_slice(&bytes).map_err(Error::bad_json(path.display()))
}

/// Repacks `bundle` into a new image.
pub fn repack(bundle: impl AsRef<Path>, options: &RepackOptions) -> Result<RepackReport> {
    repack_with_progress(bundle, options, &mut |_| {})
}

/// [`repack`], calling `progress` with the bytes of the new layer's tar compressed so far
/// (see [`crate::layer::write::write_layer_with_progress`]).
pub fn repack_with_progress(
    bundle: impl AsRef<Path>,
    options: &RepackOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<RepackReport> {
    let bundle = bundle.as_ref();
    crate::image::mutate::check_inputs(options.tag.as_deref(), &options.history, None)?;
    // Half a bundle has half a rootfs: its diff would record the rest as deleted.
    if let Some(reason) = super::unpack::unfinished(bundle, "the bundle") {
        return Err(Error::Invalid {
            what: bundle.display().to_string(),
            reason,
        });
    }
    let meta = read_metadata(bundle)?;
    let before = snapshot::read(bundle.join(SNAPSHOT_FILE))?;
    let rootfs = bundle.join("rootfs");
    let manifest_desc = meta.descriptor_path.last().ok_or_else(|| Error::Invalid {
        what: bundle.join(METADATA_FILE).display().to_string(),
        reason: "descriptorPath is empty".into(),
    })?;
    let manifest_digest: Digest = manifest_desc.digest()?;
    // Bundles from before `tag` was recorded: their reference was written when a layout
    // path held no `:`, so the one grammar reads it back.
    let recorded =
        meta.tag.clone().or_else(
            || match Reference::parse(&meta.reference).map(|r| r.target) {
                Ok(Target::Tag(t)) => Some(t),
                _ => None,
            },
        );
    let tag = match (&options.tag, recorded) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) => t,
        _ => {
            return Err(Error::ChoiceNeeded {
                what: bundle.display().to_string(),
                reason: format!(
                    "it was unpacked from {} (no tag): name the tag to write",
                    meta.reference
                ),
                choice: crate::Choice::Tag,
            })
        }
    };
    let layout = Layout::open(&meta.layout)?;
    if !layout.has_blob(&manifest_digest) {
        return Err(Error::Invalid {
            what: bundle.display().to_string(),
            reason: format!(
                "its image {manifest_digest} is no longer in {} (garbage-collected?)",
                layout.root().display()
            ),
        });
    }
    let any = PlatformSpec {
        os: String::new(),
        architecture: String::new(),
        variant: None,
    };
    let mut draft = Draft::load(&layout, &layout, &Target::Digest(manifest_digest), &any)?;
    let mut masks = Vec::new();
    for p in &options.mask_paths {
        let mask = image_path(p);
        if mask.as_os_str().is_empty()
            || p.components().any(|c| c == std::path::Component::ParentDir)
        {
            return Err(Error::Invalid {
                what: format!("mask path {}", p.display()),
                reason: "give a plain path below / in the image (no ..): the root would leave \
                         out every change"
                    .into(),
            });
        }
        masks.push(mask);
    }
    if !options.no_mask_volumes {
        let volumes = draft
            .config
            .config
            .as_ref()
            .and_then(|c| c.volumes.as_ref());
        // The image's own config says what its volumes are: one that is the root (`/`,
        // `/..`, `.`) would mask every change and the repack would silently record nothing,
        // so it masks nothing.
        masks.extend(
            volumes
                .into_iter()
                .flat_map(|v| v.keys())
                .map(|v| image_path(Path::new(v)))
                .filter(|m| !m.as_os_str().is_empty()),
        );
    }
    // The rootfs is read through directory handles, never following a link: a container
    // still running can swap anything for a symlink meanwhile.
    let tree = SourceTree::open(&rootfs, false)?;
    // The bundle's next snapshot is taken before the tree is compared and read, never
    // after: a change the container makes once a file is in the layer must show as a change
    // next time. Any change after this walk has a newer ctime than recorded, so the next
    // repack writes it again (at worst redundantly); a snapshot taken after the commit
    // would record it as already in the image, and it would be lost.
    let fresh = if options.refresh_bundle {
        Some(snapshot::take(&rootfs)?)
    } else {
        None
    };
    let present: BTreeMap<PathBuf, bool> = tree.walk()?.into_iter().collect();
    let changes = diff(&tree, &present, &before, &masks)?;
    let report_counts = (
        changes.added.len(),
        changes.changed.len(),
        changes.deleted.len(),
    );
    let layer =
        if changes.added.is_empty() && changes.changed.is_empty() && changes.deleted.is_empty() {
            draft.note_empty_change(&options.history, "strata repack (no changes)")?;
            None
        } else {
            let compression = options
                .compression
                .unwrap_or_else(|| draft.auto_compression());
            let tar_options = TarOptions {
                source_date_epoch: source_date_epoch()?,
                uid_map: meta.uid_map.clone(),
                gid_map: meta.gid_map.clone(),
                rootless: meta.rootless,
                // A rootfs's owners and modes are the image's: kept as they are.
                ..TarOptions::default()
            };
            let entries = layer_entries(&present, &changes);
            let tree = &tree;
            let layer = write_layer_with_progress(&layout, compression, progress, move |w| {
                let mut tar = TarWriter::new(w, tar_options);
                let mut cursor = tree.cursor();
                for (path, whiteout) in &entries {
                    if *whiteout {
                        tar.add_whiteout(path)?;
                    } else {
                        tar.add(&mut cursor, path)?;
                    }
                }
                tar.finish()?;
                Ok(())
            })?;
            draft.append_layer(&layer, &options.history, "strata repack")?;
            Some(layer)
        };
    let tagged = draft.commit_moving(&tag, None)?;
    let named_before = tagged.moved_from.clone();
    let desc = tagged.descriptor();
    let unpacked_from = meta.descriptor_path.first().map(|d| d.digest.as_str());
    let moved_from = named_before.filter(|d| Some(d.as_str()) != unpacked_from);
    if let Some(snapshot) = fresh {
        // The metadata (which image the bundle now stands for) is replaced before the
        // snapshot (what that image holds). Killed between the two, the next repack diffs
        // against the old snapshot and repeats the change on the new image: a redundant
        // layer, never a lost one. The other order would make it record nothing over the old
        // image, and move the tag off the change.
        let refreshed = BundleMetadata {
            reference: format!("{}:{tag}", layout.root().display()),
            descriptor_path: vec![desc.clone()],
            ..meta
        };
        let path = bundle.join(METADATA_FILE);
        let bytes =
            serde_json::to_vec_pretty(&refreshed).map_err(Error::bad_json(path.display()))?;
        crate::ioext::replace_file(&path, |out| out.write_all(&bytes).at(&path))?;
        snapshot::write(&snapshot, bundle.join(SNAPSHOT_FILE))?;
    }
    Ok(RepackReport {
        manifest: desc.digest,
        tag,
        layer: layer.map(|l| l.blob.digest.to_string()),
        added: report_counts.0,
        changed: report_counts.1,
        deleted: report_counts.2,
        moved_from,
    })
}

/// `/a/b` (as an image path) to `a/b`, with `..` resolved as the image's runtime cleans a
/// volume path (`/a/../b` is `b`, not `a/b`); empty for the root itself.
fn image_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn masked(path: &Path, masks: &[PathBuf]) -> bool {
    masks.iter().any(|m| path.starts_with(m))
}

fn diff(
    tree: &SourceTree,
    present: &BTreeMap<PathBuf, bool>,
    before: &[SnapshotEntry],
    masks: &[PathBuf],
) -> Result<Changes> {
    let old: HashMap<PathBuf, &SnapshotEntry> = before.iter().map(|e| (e.path_buf(), e)).collect();
    let mut changes = Changes::default();
    let mut cursor = tree.cursor();
    for path in present.keys() {
        if masked(path, masks) {
            continue;
        }
        match old.get(path) {
            None => changes.added.push(path.clone()),
            Some(was) => {
                let now = snapshot::entry(&mut cursor, path)?;
                if now != **was {
                    changes.changed.push(path.clone());
                }
            }
        }
    }
    let not_a_dir_now = |p: &Path| -> bool { present.get(p) == Some(&false) };
    for entry in before {
        let path = entry.path_buf();
        if present.contains_key(&path) || masked(&path, masks) {
            continue;
        }
        // One whiteout per deleted subtree; below a path that is now a file, the file
        // entry already replaces the whole old directory.
        let covered = path
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
            .any(|a| !present.contains_key(a) || not_a_dir_now(a));
        if !covered {
            changes.deleted.push(path);
        }
    }
    Ok(changes)
}

/// The layer's entries in tar order: every added or changed path with the directories above
/// it, and a whiteout per deleted path, sorted by their names in the tar.
fn layer_entries(present: &BTreeMap<PathBuf, bool>, changes: &Changes) -> Vec<(PathBuf, bool)> {
    let mut paths: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut entries: Vec<(Vec<u8>, PathBuf, bool)> = Vec::new();
    for path in changes.added.iter().chain(&changes.changed) {
        for p in path.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            let key = p.as_os_str().as_bytes().to_vec();
            if paths.insert(key.clone()) {
                entries.push((key, p.to_owned(), false));
            }
        }
    }
    for path in &changes.deleted {
        let name = path.file_name().unwrap_or_default();
        let mut wh = b".wh.".to_vec();
        wh.extend_from_slice(name.as_bytes());
        let key = path
            .with_file_name(OsStr::from_bytes(&wh))
            .as_os_str()
            .as_bytes()
            .to_vec();
        entries.push((key, path.clone(), true));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if present.get(parent) == Some(&true) {
                let pkey = parent.as_os_str().as_bytes().to_vec();
                if paths.insert(pkey.clone()) {
                    entries.push((pkey, parent.to_owned(), false));
                }
            }
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(_, p, w)| (p, w)).collect()
}
