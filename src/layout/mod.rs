//! The store: an OCI image-layout directory. It owns the on-disk format (`oci-layout`,
//! `index.json`, `blobs/<alg>/<hex>`), verified blob reads, crash-safe blob and index writes,
//! the locks that keep concurrent strata processes from losing each other's work, and the
//! layout-wide jobs (tags, gc, fsck). It knows nothing about layers' contents.

mod blob;
mod create;
pub mod fsck;
pub mod gc;
mod index;
mod lock;
mod nofollow;
pub mod reference;
pub mod walk;
pub mod walker;

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use blob::{BlobReader, BlobWriter, JSON_LIMIT};
pub use create::Creation;
pub use index::IndexFile;
pub use lock::{LayoutLock, LockMode};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};

/// The only layout version the image-spec defines.
pub const LAYOUT_VERSION: &str = "1.0.0";
/// strata's temp files live here, never inside `blobs/` (peers list that as digests).
pub const TMP_DIR: &str = ".strata-tmp";
/// What strata keeps to skip work, rebuilt from blobs when missing (`image::layer_cache`):
/// not part of the OCI layout, safe to delete.
pub const CACHE_DIR: &str = ".strata-cache";

/// An opened OCI image layout.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens an existing layout, checking `oci-layout`, `blobs/` and `index.json`.
    pub fn open(path: impl AsRef<Path>) -> Result<Layout> {
        let path = path.as_ref();
        let layout = Layout {
            root: path.to_owned(),
        };
        if !path.is_dir() {
            let reason = if std::fs::symlink_metadata(path).is_err() {
                "does not exist"
            } else {
                "not a directory (an OCI layout is a directory)"
            };
            return Err(Error::BadLayout {
                path: path.to_owned(),
                reason: reason.into(),
            });
        }
        layout.check_layout_file()?;
        let blobs = layout.blobs_dir();
        if !blobs.is_dir() {
            return Err(Error::BadLayout {
                path: blobs,
                reason: "missing: an OCI layout must have a blobs/ directory".into(),
            });
        }
        layout.check_structure()?;
        layout.read_index()?;
        Ok(layout)
    }

    /// Refuses a layout whose own files or directories are symbolic links (or of the wrong
    /// type): following one would let a layout's author point strata's reads, writes and
    /// gc's deletions at anything the user can reach. The layout directory itself may be a
    /// link: the user named it.
    pub fn check_structure(&self) -> Result<()> {
        use rustix::fs::FileType;
        let mut parts = vec![
            (self.root.join("oci-layout"), FileType::RegularFile),
            (self.index_path(), FileType::RegularFile),
            (self.blobs_dir(), FileType::Directory),
        ];
        for alg in crate::digest::Algorithm::ALL {
            parts.push((self.blobs_dir().join(alg.name()), FileType::Directory));
        }
        parts.push((self.root.join(TMP_DIR), FileType::Directory));
        for (path, kind) in parts {
            match nofollow::check_type(&path, kind) {
                // Only oci-layout, index.json and blobs/ are required; open checks those.
                Ok(()) | Err(nofollow::Refused::Missing(_)) => {}
                Err(refused) => return Err(refused.into_layout_error()),
            }
        }
        Ok(())
    }

    /// Reads a file of the layout's structure without following links.
    fn read_own_file(&self, name: &str) -> std::result::Result<Vec<u8>, nofollow::Refused> {
        use std::io::Read;
        let mut bytes = Vec::new();
        nofollow::open_file(&self.root, &[name])?
            .read_to_end(&mut bytes)
            .map_err(|e| nofollow::Refused::Io(self.root.join(name), e))?;
        Ok(bytes)
    }

    fn check_layout_file(&self) -> Result<()> {
        let path = self.root.join("oci-layout");
        let bytes = match self.read_own_file("oci-layout") {
            Ok(b) => b,
            Err(nofollow::Refused::Missing(_)) => {
                return Err(Error::BadLayout {
                    path,
                    reason: "missing: not an OCI image layout".into(),
                })
            }
            Err(refused) => return Err(refused.into_layout_error()),
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(Error::bad_json(path.display()))?;
        match value.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(LAYOUT_VERSION) => Ok(()),
            Some(other) => Err(Error::BadLayout {
                path,
                reason: format!(
                    "unsupported imageLayoutVersion {other:?} (strata reads {LAYOUT_VERSION})"
                ),
            }),
            None => Err(Error::BadLayout {
                path,
                reason: "imageLayoutVersion missing or not a string".into(),
            }),
        }
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `LAYOUT/blobs`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// `LAYOUT/index.json`.
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Where the blob with `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir()
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    /// Where the layer cache keeps what the layer blob `digest` does to a tree.
    pub fn layer_cache_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join(CACHE_DIR)
            .join("layers")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    /// `LAYOUT/.strata-tmp`, created on demand. Every writer comes here first, so the
    /// layout's structure is checked again here: a link planted since it was opened is
    /// refused before anything is written through it.
    pub(crate) fn tmp_dir(&self) -> Result<PathBuf> {
        self.check_structure()?;
        let dir = self.root.join(TMP_DIR);
        // The first thing any write makes: when it cannot be made, the user must hear that
        // the layout is not writable, not about a directory they never asked for.
        fs::create_dir_all(&dir).map_err(|e| Error::Io {
            path: self.root.clone(),
            source: std::io::Error::new(
                e.kind(),
                format!(
                    "the layout cannot be written to: {}",
                    crate::words::io_reason(&e)
                ),
            ),
        })?;
        Ok(dir)
    }

    /// Makes something in `.strata-tmp` with `make`, creating the directory first. Another
    /// writer that finished may remove the directory (empty) between the two steps
    /// ([`Layout::tidy_tmp`]): then it is made again, a few times at most.
    pub(crate) fn in_tmp<T>(&self, make: impl Fn(&Path) -> std::io::Result<T>) -> Result<T> {
        let mut attempts = 0;
        loop {
            let dir = self.tmp_dir()?;
            match make(&dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 8 => {
                    attempts += 1;
                }
                other => return other.at(&dir),
            }
        }
    }

    /// Removes `.strata-tmp` when it is empty, so that a layout holds it only while a writer
    /// needs it, after removing what writers that are gone left there (killed, or stopped
    /// by Ctrl-C, which no cleanup runs after). Never fails: a directory another writer is
    /// using is not empty, and one it is about to use is made again ([`Layout::in_tmp`]).
    pub(crate) fn tidy_tmp(&self) {
        for left in self.tmp_leftovers() {
            let _ = if left.is_dir {
                fs::remove_dir_all(&left.path)
            } else {
                fs::remove_file(&left.path)
            };
        }
        let _ = fs::remove_dir(self.root.join(TMP_DIR));
    }

    /// What writers that are gone left in `.strata-tmp` (temp files, and the staging
    /// directories of imports and copies), as [`Layout::tidy_tmp`] judges it: what the next
    /// write removes. A live writer's entries are not among them.
    pub(crate) fn tmp_leftovers(&self) -> Vec<TempLeftover> {
        let Ok(entries) = fs::read_dir(self.root.join(TMP_DIR)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if (kind.is_file() || kind.is_dir()) && temp_is_left(&path) {
                out.push(TempLeftover {
                    path,
                    is_dir: kind.is_dir(),
                });
            }
        }
        out
    }

    /// Replaces `LAYOUT/name` with `bytes`: temp file, fsync, rename, fsync the directory.
    pub(crate) fn write_file_atomically(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let target = self.root.join(name);
        let tmp = self.in_tmp(|dir| {
            tempfile::Builder::new()
                .prefix(&temp_prefix(name))
                .tempfile_in(dir)
        })?;
        hold_temp(tmp.as_file(), tmp.path())?;
        // Through the File: the NamedTempFile's own errors add "at path" to the message.
        tmp.as_file().write_all(bytes).at(tmp.path())?;
        set_readable(tmp.as_file(), tmp.path())?;
        tmp.as_file().sync_all().at(tmp.path())?;
        tmp.persist(&target).map_err(|e| e.error).at(&target)?;
        sync_dir(&self.root)
    }
}

/// A temp file or staging directory in `.strata-tmp` whose writer is gone.
pub(crate) struct TempLeftover {
    pub path: PathBuf,
    pub is_dir: bool,
}

/// The start of the name of a temp file or directory in `.strata-tmp`: `KIND-PID.`, so
/// that what a writer left when it was stopped can be told from what a running one uses.
pub(crate) fn temp_prefix(kind: &str) -> String {
    format!("{kind}-{}.", std::process::id())
}

/// Takes a lock on a temp file (or staging directory) its writer holds until it is done with it (closing it lets
/// go): [`Layout::tidy_tmp`] removes only files nobody holds, so a writer in another pid
/// namespace (a container sharing the layout), whose pid looks gone from here, keeps its
/// file.
pub(crate) fn hold_temp(file: &fs::File, path: &Path) -> Result<()> {
    file.lock().at(path)
}

/// Whether a temp file was left by a writer that is gone: named by [`temp_prefix`] for a
/// pid that does not run here, and held by nobody ([`hold_temp`]). Files of any other form
/// are left alone (only gc, under its exclusive lock, takes those). A writer whose pid
/// looks gone from here and that is between creating its file and locking it, a few
/// system calls, would see its file vanish and fail, never publish a wrong blob.
fn temp_is_left(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if !temp_owner_is_gone(name) {
        return false;
    }
    // Not through a link planted there.
    let Ok(file) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    else {
        return false;
    };
    // Our lock, if we get it, goes with `file` when this returns.
    file.try_lock().is_ok()
}

/// Whether a name made with [`temp_prefix`] names a process that no longer runs here.
fn temp_owner_is_gone(name: &str) -> bool {
    // KIND-PID.RANDOM: the random part (tempfile's) holds no dot; KIND may (index.json).
    name.rsplit_once('.')
        .and_then(|(head, _)| head.rsplit_once('-'))
        .is_some_and(|(_, pid)| process_is_gone(pid))
}

/// Whether `pid` (as text in a temp name) is a process id that no process here has.
pub(crate) fn process_is_gone(pid: &str) -> bool {
    pid.parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|pid| {
            matches!(
                rustix::process::test_kill_process(pid),
                Err(rustix::io::Errno::SRCH)
            )
        })
}

/// Blobs and layout files are 0644 (tempfile makes 0600), so other users can read them.
pub(crate) fn set_readable(file: &fs::File, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .at(path)
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}
