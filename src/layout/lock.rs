//! Advisory locks between strata processes on one layout. Two lock files, always taken in the
//! same order (gc lock, then index lock), so no two processes can wait on each other:
//! - `.strata.lock`: shared by anything that writes blobs it will reference later, exclusive
//!   for gc (which must not sweep a blob whose reference is not written yet);
//! - `.strata-index.lock`: exclusive around every read-modify-write of `index.json`.
//!
//! They are separate files because rename replaces `index.json`'s inode, and because flock
//! cannot turn a shared lock into an exclusive one atomically.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use super::{Layout, GC_LOCK_FILE, INDEX_LOCK_FILE};
use crate::error::{IoContext, Result};

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once.
    Shared,
    /// One holder.
    Exclusive,
}

/// A held lock; released on drop (the file descriptor closes).
#[derive(Debug)]
pub struct LayoutLock {
    _file: Option<File>,
}

impl Layout {
    /// Takes the gc lock, waiting for it.
    pub fn lock_gc(&self, mode: LockMode) -> Result<LayoutLock> {
        lock(&self.root().join(GC_LOCK_FILE), mode, false)
    }

    /// Takes the gc lock shared for a read-only job. On a layout strata cannot write to
    /// (read-only mount, no permission), reading goes on without a lock.
    pub fn lock_for_reading(&self) -> Result<LayoutLock> {
        lock(&self.root().join(GC_LOCK_FILE), LockMode::Shared, true)
    }

    /// Takes the index lock exclusively, waiting for it.
    pub(crate) fn lock_index(&self) -> Result<LayoutLock> {
        lock(&self.root().join(INDEX_LOCK_FILE), LockMode::Exclusive, false)
    }
}

fn lock(path: &Path, mode: LockMode, optional: bool) -> Result<LayoutLock> {
    let file = match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path) {
        Ok(f) => f,
        Err(e) if optional && is_unwritable(&e) => return Ok(LayoutLock { _file: None }),
        Err(e) => return Err(e).at(path),
    };
    match mode {
        LockMode::Shared => file.lock_shared(),
        LockMode::Exclusive => file.lock(),
    }
    .at(path)?;
    Ok(LayoutLock { _file: Some(file) })
}

fn is_unwritable(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem)
}
