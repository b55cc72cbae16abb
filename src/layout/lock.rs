//! Advisory locks (flock) between strata processes on one layout. Two locks, always taken in
//! the same order (gc lock, then index lock), so no two processes can wait on each other:
//! - the gc lock, on the layout directory itself: shared by anything that writes blobs it
//!   will reference later, exclusive for gc (which must not sweep a blob whose reference is
//!   not written yet);
//! - the index lock, on the `blobs/` directory: exclusive around every read-modify-write of
//!   `index.json`.
//!
//! They are two because flock cannot turn a shared lock into an exclusive one atomically.
//! They sit on directories, not on lock files, because those always exist and are never
//! renamed (rename replaces `index.json`'s inode), so a read-only command or a failed one
//! leaves the layout exactly as it found it, and a read-only layout can still be locked
//! shared.

use std::fs::File;
use std::path::Path;

use super::Layout;
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
    _file: File,
    /// Held by a writer: tidy the layout's temp directory as the writer lets go.
    writer_of: Option<Layout>,
}

impl Drop for LayoutLock {
    fn drop(&mut self) {
        if let Some(layout) = &self.writer_of {
            layout.tidy_tmp();
        }
    }
}

impl Layout {
    /// Takes the gc lock, waiting for it. Writers hold it shared; when the last reference to
    /// a shared hold goes, an empty `.strata-tmp` goes with it.
    pub fn lock_gc(&self, mode: LockMode) -> Result<LayoutLock> {
        let mut held = lock(self.root(), mode)?;
        if mode == LockMode::Shared {
            held.writer_of = Some(self.clone());
        }
        Ok(held)
    }

    /// Takes the gc lock shared for a check: as [`Layout::lock_gc`] does, except that letting
    /// go leaves `.strata-tmp` as it was, so that a check reports what killed writers left
    /// there and changes nothing (writers tidy it).
    pub(crate) fn lock_gc_to_check(&self) -> Result<LayoutLock> {
        lock(self.root(), LockMode::Shared)
    }

    /// Takes the index lock exclusively, waiting for it.
    pub(crate) fn lock_index(&self) -> Result<LayoutLock> {
        lock(&self.blobs_dir(), LockMode::Exclusive)
    }
}

fn lock(dir: &Path, mode: LockMode) -> Result<LayoutLock> {
    let file = File::open(dir).at(dir)?;
    match mode {
        LockMode::Shared => file.lock_shared(),
        LockMode::Exclusive => file.lock(),
    }
    .at(dir)?;
    Ok(LayoutLock {
        _file: file,
        writer_of: None,
    })
}
