//! Getting blobs into a layout's `blobs/` by rename only, so the layout never holds anything
//! unverified and a failed transfer leaves it as it was:
//! - [`Staging`]: a private layout inside the destination's `.strata-tmp/`, where an import
//!   or a copy writes every blob through [`crate::layout::BlobWriter`] (hashed, checked
//!   against its name, fsynced) or links it ([`link_blob`]); only when every image is
//!   complete are the blobs it needs renamed into the destination. Dropping it removes what
//!   is left. gc cannot sweep it meanwhile: the importer or copier holds the destination's
//!   gc lock shared, and gc needs it exclusively.
//!
//! A rename never replaces a sound blob that is already there (content-addressed: it is the
//! same content). One that is not sound (a file of the wrong size, a symlink, a file whose
//! bytes were damaged in place) is replaced by the staged, verified one: that is the only way
//! a transfer can repair it, and nothing is lost, since the staged file holds exactly the
//! content the digest names. Telling a damaged file of the right size from a sound one means
//! hashing it, so [`Staging::publish`] does that for the staged blobs the destination already
//! has a file for; the callers stage a blob the destination has only when they found its
//! copy there damaged (or could not know its digest before writing it, as for a recompressed
//! docker layer), so a healthy destination costs no extra reads.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::digest::HashingReader;
use crate::error::{Error, IoContext};
use crate::layout::{sync_dir, Layout, TMP_DIR};
use crate::spec::BlobRef;

/// A staging layout inside a destination layout.
pub(crate) struct Staging {
    /// The staging layout (blobs are written here).
    pub layout: Layout,
    dir: Option<tempfile::TempDir>,
    /// The staging directory, locked while this lives: the sweep of `.strata-tmp` takes
    /// only what nobody holds (see `Layout::tidy_tmp`).
    _held: std::fs::File,
    /// `.strata-tmp` did not exist before: remove it again if it is left empty.
    created_tmp: Option<PathBuf>,
}

impl Staging {
    /// Creates a staging layout in `dest`'s temp directory.
    pub fn new(dest: &Layout) -> crate::Result<Staging> {
        let tmp = dest.root().join(TMP_DIR);
        refuse_link(&tmp)?;
        let created_tmp = (!tmp.exists()).then(|| tmp.clone());
        let dir = dest.in_tmp(|tmp| {
            tempfile::Builder::new()
                .prefix(&crate::layout::temp_prefix("stage"))
                .tempdir_in(tmp)
        })?;
        let held = std::fs::File::open(dir.path()).at(dir.path())?;
        crate::layout::hold_temp(&held, dir.path())?;
        let layout = Layout::init(dir.path().join("layout"))?;
        Ok(Staging {
            layout,
            dir: Some(dir),
            _held: held,
            created_tmp,
        })
    }

    /// Moves the staged `blobs` into `dest` (each unless `dest` has a sound copy already:
    /// a damaged one is replaced), then makes the renames durable. Returns how many were
    /// moved and their bytes.
    pub fn publish(&self, dest: &Layout, blobs: &[BlobRef]) -> crate::Result<(usize, u64)> {
        let mut dirs = BTreeSet::new();
        let (mut count, mut bytes) = (0, 0);
        for blob in blobs {
            let from = self.layout.blob_path(&blob.digest);
            if rename_into(dest, blob, &from, &mut dirs)? {
                count += 1;
                bytes += blob.size;
            }
        }
        for dir in &dirs {
            sync_dir(dir)?;
        }
        Ok((count, bytes))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Best effort: what is left is unreferenced, and gc removes stale temp files anyway.
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        if let Some(tmp) = &self.created_tmp {
            // Only if empty: another strata process may have started using it meanwhile.
            let _ = fs::remove_dir(tmp);
        }
    }
}

/// Renames `from` (a file with `blob`'s content) to `blob`'s place in `dest`, unless a sound
/// copy is already there; a damaged one is replaced. Records the directory to fsync.
fn rename_into(
    dest: &Layout,
    blob: &BlobRef,
    from: &Path,
    dirs: &mut BTreeSet<PathBuf>,
) -> crate::Result<bool> {
    if holds_sound(dest, blob) {
        return Ok(false);
    }
    let target = dest.blob_path(&blob.digest);
    let dir = target
        .parent()
        .expect("blob paths have a parent")
        .to_owned();
    refuse_link(&dest.blobs_dir())?;
    refuse_link(&dir)?;
    fs::create_dir_all(&dir).at(&dir)?;
    fs::rename(from, &target).at(&target)?;
    dirs.insert(dir);
    Ok(true)
}

/// True when `layout` holds `blob` as a regular file (not a symlink) of the right size whose
/// content hashes to its digest. Reads the whole file; anything unreadable counts as damaged.
pub(crate) fn holds_sound(layout: &Layout, blob: &BlobRef) -> bool {
    super::graph::holds(layout, blob) && verify_file_nofollow(&layout.blob_path(&blob.digest), blob)
}

fn verify_file_nofollow(path: &Path, blob: &BlobRef) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let Ok(file) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(path)
    else {
        return false;
    };
    file.metadata().is_ok_and(|m| m.is_file()) && verify_reader(file, path, blob).is_ok()
}

/// Refuses a directory of the destination that is a symlink (or not a directory): a hostile
/// layout could point `.strata-tmp` or `blobs/sha256` anywhere, and a rename through it
/// would write there. A missing one is fine: it is created as a real directory.
fn refuse_link(dir: &Path) -> crate::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::Invalid {
            what: dir.display().to_string(),
            reason: "is a symlink or not a directory: refusing to write through it, outside \
                     the layout"
                .into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(dir),
    }
}

/// How [`link_blob`] got a blob into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placed {
    /// A reflink (a copy-on-write clone: independent of the source from now on).
    Reflink,
    /// A hard link (the same inode as the source's blob; blobs are never written in place).
    HardLink,
}

/// Links `source`'s blob into the staging layout `staging` (on the destination's file
/// system). Returns `None` when neither a reflink nor a hard link is possible (another file
/// system, a file system without links): the caller copies instead.
///
/// The source must be a regular file (never a symlink) of the descriptor's size, and the
/// staged name must be that same file. Its content is hashed only when `verify` is set: a
/// link passes on exactly the bytes the source holds, so no corruption can arise on the way,
/// and re-reading them would only re-check the source (what `strata fsck` is for), at the
/// cost of reading every byte that the link saves copying.
pub(crate) fn link_blob(
    source: &Layout,
    staging: &Layout,
    blob: &BlobRef,
    verify: bool,
) -> crate::Result<Option<Placed>> {
    let from = source.blob_path(&blob.digest);
    let checked = regular_blob_file(&from, blob)?;
    let staged = staging.blob_path(&blob.digest);
    let dir = staged.parent().expect("blob paths have a parent");
    fs::create_dir_all(dir).at(dir)?;
    let how = if reflink(&from, &staged) {
        Placed::Reflink
    } else if fs::hard_link(&from, &staged).is_ok() {
        Placed::HardLink
    } else {
        return Ok(None);
    };
    let check = || -> crate::Result<()> {
        let linked = regular_blob_file(&staged, blob)?;
        if how == Placed::HardLink && (linked.dev(), linked.ino()) != (checked.dev(), checked.ino())
        {
            return Err(Error::Invalid {
                what: from.display().to_string(),
                reason: "replaced while it was being linked".into(),
            });
        }
        if verify {
            verify_file(&staged, blob)?;
        }
        Ok(())
    };
    if let Err(e) = check() {
        let _ = fs::remove_file(&staged);
        return Err(blame_source(e, &from));
    }
    Ok(Some(how))
}

/// The metadata of `path`, which must be a regular file (not followed if it is a symlink) of
/// `blob`'s size.
fn regular_blob_file(path: &Path, blob: &BlobRef) -> crate::Result<fs::Metadata> {
    let meta = fs::symlink_metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::BlobNotFound {
            digest: blob.digest.clone(),
            path: path.to_owned(),
        },
        _ => Error::Io {
            path: path.to_owned(),
            source: e,
        },
    })?;
    if !meta.file_type().is_file() {
        return Err(Error::Invalid {
            what: path.display().to_string(),
            reason: format!("blob {} is not a regular file", blob.digest),
        });
    }
    if meta.len() != blob.size {
        return Err(Error::SizeMismatch {
            digest: blob.digest.clone(),
            expected: blob.size,
            actual: meta.len(),
            path: path.to_owned(),
        });
    }
    Ok(meta)
}

/// An error about the linked temp file, told about the source blob it came from.
fn blame_source(e: Error, from: &Path) -> Error {
    let path = from.to_owned();
    match e {
        Error::DigestMismatch { digest, actual, .. } => Error::DigestMismatch {
            digest,
            actual,
            path,
        },
        Error::SizeMismatch {
            digest,
            expected,
            actual,
            ..
        } => Error::SizeMismatch {
            digest,
            expected,
            actual,
            path,
        },
        Error::Invalid { reason, .. } => Error::Invalid {
            what: path.display().to_string(),
            reason,
        },
        other => other,
    }
}

/// A copy-on-write clone of `from` at `to`; false (and nothing left at `to`) when the file
/// system cannot (ext4, across file systems).
fn reflink(from: &Path, to: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let Ok(src) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(from)
    else {
        return false;
    };
    let Ok(dst) = fs::OpenOptions::new().write(true).create_new(true).open(to) else {
        return false;
    };
    if rustix::fs::ioctl_ficlone(&dst, &src).is_ok() {
        use std::os::unix::fs::PermissionsExt;
        return dst
            .set_permissions(fs::Permissions::from_mode(0o644))
            .and_then(|()| dst.sync_all())
            .is_ok();
    }
    drop(dst);
    let _ = fs::remove_file(to);
    false
}

/// Hashes a file and checks it against `blob`.
pub(crate) fn verify_file(path: &Path, blob: &BlobRef) -> crate::Result<()> {
    verify_reader(fs::File::open(path).at(path)?, path, blob)
}

fn verify_reader(file: fs::File, path: &Path, blob: &BlobRef) -> crate::Result<()> {
    let size = file.metadata().at(path)?.len();
    if size != blob.size {
        return Err(Error::SizeMismatch {
            digest: blob.digest.clone(),
            expected: blob.size,
            actual: size,
            path: path.to_owned(),
        });
    }
    let mut reader = HashingReader::new(file, blob.digest.algorithm());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).at(path),
        }
    }
    let actual = reader.digest();
    if actual != blob.digest {
        return Err(Error::DigestMismatch {
            digest: blob.digest.clone(),
            actual,
            path: path.to_owned(),
        });
    }
    Ok(())
}
