//! What a path is in an image's merged filesystem, read from its layers top down without
//! unpacking: the answer comes from the highest layer that says anything about the path
//! (an entry for it, an entry below it, a whiteout of it or of a parent, or an opaque
//! marker above it), so lower layers are read only when the upper ones are silent.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layer::names::{entry_name, layer_path, EntryName};
use crate::layer::tarstream::TarStream;
use crate::layer::Compression;
use crate::layout::walk::blob_ref;
use crate::layout::Layout;
use crate::spec::Manifest;

/// The kind of a path in the merged filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A directory (listed, or implied by an entry below it).
    Directory,
    /// A regular file or a hard link to one.
    File,
    /// A symbolic link.
    Symlink,
    /// A device node, FIFO or anything else.
    Other,
}

/// What one layer says about the path.
enum Verdict {
    Silent,
    Is(PathKind),
    Gone,
    /// The layer hides everything lower under a parent (opaque) without naming the path.
    HiddenBelow,
}

/// The kind of `path` (relative to the image root, normal components) in the image
/// `manifest` describes; `None` when no layer has it or a whiteout removed it.
pub fn path_kind(layout: &Layout, manifest: &Manifest, path: &Path) -> Result<Option<PathKind>> {
    for desc in manifest.layers.iter().rev() {
        let compression =
            Compression::of_layer(&desc.media_type).ok_or_else(|| Error::LayerStream {
                layer: desc.digest.clone(),
                reason: format!("unsupported layer media type {:?}", desc.media_type),
            })?;
        let blob = blob_ref(desc, &format!("layer {}", desc.digest))?;
        let reader = layout.open_blob(&blob)?;
        let stream_error = |e: std::io::Error| Error::LayerStream {
            layer: desc.digest.clone(),
            reason: e.to_string(),
        };
        let decoder = compression.decoder(reader).map_err(stream_error)?;
        match verdict(TarStream::new(decoder), path).map_err(stream_error)? {
            Verdict::Silent => continue,
            Verdict::Is(kind) => return Ok(Some(kind)),
            Verdict::Gone | Verdict::HiddenBelow => return Ok(None),
        }
    }
    Ok(None)
}

fn verdict<R: std::io::Read>(mut tar: TarStream<R>, path: &Path) -> std::io::Result<Verdict> {
    let mut found = Verdict::Silent;
    while let Some(entry) = tar.next_entry()? {
        let Ok(Some(name)) = layer_path(entry.path_bytes()) else {
            continue;
        };
        match entry_name(&name) {
            Ok(EntryName::Whiteout(target)) => {
                let removed: PathBuf = name.with_file_name(target);
                if path.starts_with(&removed) && !matches!(found, Verdict::Is(_)) {
                    found = Verdict::Gone;
                }
            }
            Ok(EntryName::Opaque) => {
                let dir = name.parent().unwrap_or(Path::new(""));
                if path.starts_with(dir) && path != dir && matches!(found, Verdict::Silent) {
                    found = Verdict::HiddenBelow;
                }
            }
            Ok(EntryName::Plain) => {
                if name == path {
                    let kind = match entry.header().entry_type() {
                        tar::EntryType::Directory => PathKind::Directory,
                        tar::EntryType::Regular
                        | tar::EntryType::Continuous
                        | tar::EntryType::Link
                        | tar::EntryType::GNUSparse => PathKind::File,
                        tar::EntryType::Symlink => PathKind::Symlink,
                        _ => PathKind::Other,
                    };
                    found = Verdict::Is(kind);
                } else if name.starts_with(path) {
                    found = Verdict::Is(PathKind::Directory);
                }
            }
            Err(_) => continue,
        }
    }
    Ok(found)
}
