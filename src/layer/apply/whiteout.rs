//! Whiteouts, plain and opaque: they hide lower layers only, so what this layer wrote (its
//! upper paths, tracked as entries arrive) is never removed by them, wherever in the layer
//! the whiteout comes.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags};

use super::error::{EntryError, EntryResult};
use super::{dup, open_dir, Applier, LayerState};
use crate::layer::root::{children, remove_all, stat_nofollow};

impl Applier {
    /// `.wh.NAME` removes NAME from lower layers; `.wh..wh..opq` empties its directory of
    /// lower content. Neither touches what this layer wrote.
    pub(super) fn whiteout(
        &mut self,
        parent: &Path,
        target: &[u8],
        state: &mut LayerState,
    ) -> EntryResult<()> {
        if target.is_empty() {
            return Err(EntryError::Refused(
                "a bare \".wh.\" whiteout names nothing (layer.md: invalid)".into(),
            ));
        }
        // Whiteouts under a path this layer made a non-directory concern only lower layers,
        // which that path already hides (umoci 0.4.7 writes these).
        let Some(pfd) = self.root.existing_dir(parent)? else {
            return Ok(());
        };
        let pfd = dup(pfd)?;
        if target == b".wh..opq" {
            self.touch(parent, &pfd, state, &[])?;
            self.opaque(parent, &pfd, state)?;
            return Ok(());
        }
        if target.starts_with(b".wh.") {
            return Err(EntryError::Refused("unknown whiteout form".into()));
        }
        let name = OsStr::from_bytes(target);
        let path = parent.join(name);
        if state.upper.contains(&path) || stat_nofollow(&pfd, name)?.is_none() {
            return Ok(());
        }
        self.touch(parent, &pfd, state, &[])?;
        self.remove(&pfd, name)?;
        Ok(())
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
