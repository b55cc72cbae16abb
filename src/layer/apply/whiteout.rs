//! Whiteouts, plain and opaque: they hide lower layers only, so what this layer wrote (its
//! upper paths, tracked as entries arrive) is never removed by them, wherever in the layer
//! the whiteout comes.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags};

use super::error::EntryResult;
use super::{dup, open_dir, Applier, LayerState};
use crate::layer::root::{children, remove_all, stat_nofollow};

impl Applier {
    /// `.wh.NAME` removes what lower layers have at NAME. What this layer wrote there,
    /// before the whiteout or after it, stays: a file it wrote already replaced the lower
    /// one, and a directory it wrote into (or that holds what it wrote) keeps only this
    /// layer's content. `target` is a normal name (checked by `layer::names`).
    pub(super) fn whiteout(
        &mut self,
        parent: &Path,
        target: &OsStr,
        state: &mut LayerState,
    ) -> EntryResult<()> {
        // Whiteouts under a path this layer made a non-directory concern only lower layers,
        // which that path already hides (umoci 0.4.7 writes these).
        let Some(pfd) = self.root.existing_dir(parent)? else {
            return Ok(());
        };
        let pfd = dup(pfd)?;
        let path = parent.join(target);
        let Some(st) = stat_nofollow(&pfd, target)? else {
            return Ok(());
        };
        if state.upper.contains(&path) {
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let dir = open_dir(&pfd, target)?;
                self.touch(&path, &dir, state, &[])?;
                self.opaque(&path, &dir, state)?;
            }
            return Ok(());
        }
        self.touch(parent, &pfd, state, &[])?;
        self.remove(&pfd, target)?;
        Ok(())
    }

    /// `.wh..wh..opq` in `parent`: empties it of lower content.
    pub(super) fn opaque_whiteout(
        &mut self,
        parent: &Path,
        state: &mut LayerState,
    ) -> EntryResult<()> {
        let Some(pfd) = self.root.existing_dir(parent)? else {
            return Ok(());
        };
        let pfd = dup(pfd)?;
        self.touch(parent, &pfd, state, &[])?;
        self.opaque(parent, &pfd, state)
    }

    /// Removes everything below `dir` that this layer did not write, recursing into
    /// directories it did write (their lower content is hidden too).
    fn opaque(&mut self, dir: &Path, fd: &OwnedFd, state: &LayerState) -> EntryResult<()> {
        let listing = rfs::openat(
            fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for child in children(&listing)? {
            let path = dir.join(&child);
            if !state.upper.contains(&path) {
                remove_all(&listing, &child)?;
                self.root.invalidate();
            } else if stat_nofollow(&listing, &child)?
                .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
            {
                let sub = open_dir(&listing, &child)?;
                self.opaque(&path, &sub, state)?;
            }
        }
        Ok(())
    }
}

pub(super) fn mark_upper(state: &mut LayerState, path: &Path) {
    let mut p = Some(path);
    while let Some(cur) = p {
        if cur.as_os_str().is_empty() || !state.upper.insert(cur.to_owned()) {
            break;
        }
        p = cur.parent();
    }
}
