//! Metadata that cannot be set as entries arrive: directory modes and times wait for the end
//! of the layer (a read-only directory must still take its children, and every child written
//! changes its parent's times), and rootless directory modes wait for the end of the unpack.

use std::collections::HashSet;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::error::EntryResult;
use super::meta::timestamps;
use super::whiteout::mark_upper;
use super::{dup, Applier, LayerState};
use crate::error::{Error, Result};
use crate::layer::root::stat_nofollow;

impl Applier {
    /// Records `dir`'s times before this layer first changes its content.
    pub(super) fn touch(
        &mut self,
        dir: &Path,
        fd: &OwnedFd,
        state: &mut LayerState,
        created: &[PathBuf],
    ) -> EntryResult<()> {
        for c in created {
            mark_upper(state, c);
        }
        if !state.touched.contains_key(dir) {
            let st = rfs::fstat(fd)?;
            if !state.touched_dirs.insert((st.st_dev, st.st_ino)) {
                // Reached by another path before: its times then are the ones to restore.
                return Ok(());
            }
            state.touched.insert(
                dir.to_owned(),
                Timestamps {
                    last_access: Timespec {
                        tv_sec: st.st_atime,
                        tv_nsec: st.st_atime_nsec as _,
                    },
                    last_modification: Timespec {
                        tv_sec: st.st_mtime,
                        tv_nsec: st.st_mtime_nsec as _,
                    },
                },
            );
        }
        Ok(())
    }

    /// When `dir` is missing and will be made, records the times of the directory it will
    /// be made in (the nearest that exists) before that changes them.
    pub(super) fn touch_nearest_existing(
        &mut self,
        dir: &Path,
        state: &mut LayerState,
    ) -> EntryResult<()> {
        if self.root.existing_dir(dir)?.is_some() {
            return Ok(());
        }
        for ancestor in dir.ancestors().skip(1) {
            if let Some(fd) = self.root.existing_dir(ancestor)? {
                let fd = dup(fd)?;
                return self.touch(ancestor, &fd, state, &[]);
            }
        }
        Ok(())
    }

    /// Directory attributes last (a read-only directory can then still be filled), and the
    /// times of directories whose content changed restored.
    pub(super) fn finish_layer(&mut self, state: LayerState) -> io::Result<()> {
        let explicit: HashSet<&PathBuf> = state.dirs.iter().map(|(p, _)| p).collect();
        for (dir, times) in &state.touched {
            if explicit.contains(dir) {
                continue;
            }
            if let Some(path_fd) = self.root.existing_dir(dir)? {
                // The cached handle is O_PATH, which cannot take new times.
                let fd = rfs::openat(
                    path_fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                rfs::futimens(&fd, times)?;
            }
        }
        for (dir, mtime) in &state.implied {
            if explicit.contains(dir) {
                continue;
            }
            if let Some(path_fd) = self.root.existing_dir(dir)? {
                let fd = rfs::openat(
                    path_fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let times = Timestamps {
                    last_access: *mtime,
                    last_modification: *mtime,
                };
                rfs::futimens(&fd, &times)?;
            }
        }
        for (dir, meta) in state.dirs.iter().rev() {
            let fd = if dir.as_os_str().is_empty() {
                dup(self.root.fd())?
            } else {
                let parent = dir.parent().unwrap_or(Path::new(""));
                let Some(pfd) = self.root.existing_dir(parent)? else {
                    continue;
                };
                let pfd = dup(pfd)?;
                match rfs::openat(
                    &pfd,
                    dir.file_name().expect("named"),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    // Replaced by a non-directory later in the layer.
                    Err(Errno::NOTDIR) | Err(Errno::LOOP) | Err(Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            if self.options.rootless {
                // Without privileges strata cannot write into a directory it made read-only:
                // keep it writable for later layers and set the real mode at the very end.
                rfs::fchmod(&fd, Mode::from_raw_mode(meta.mode | 0o700))?;
                self.final_modes.insert(dir.clone(), meta.mode);
            } else {
                rfs::fchmod(&fd, Mode::from_raw_mode(meta.mode))?;
            }
            rfs::futimens(&fd, &timestamps(meta))?;
        }
        Ok(())
    }

    /// Ends a rootless unpack: gives directories the modes their layers asked for (kept
    /// owner-writable until now), deepest first. Returns each directory's status afterwards
    /// (a snapshot taken before can be corrected with it; walking the tree again may be
    /// impossible under a mode-000 directory).
    pub fn finish(&mut self) -> Result<Vec<(PathBuf, rfs::Stat)>> {
        let mut out = Vec::new();
        let dirs: Vec<(PathBuf, u32)> = std::mem::take(&mut self.final_modes)
            .into_iter()
            .rev()
            .collect();
        for (dir, mode) in dirs {
            let full = self.root.path().join(&dir);
            let io = |e: io::Error| Error::Io {
                path: full.clone(),
                source: e,
            };
            if mode & 0o700 == 0o700 {
                continue;
            }
            let (parent, name) = match (dir.parent(), dir.file_name()) {
                (Some(p), Some(n)) => (p.to_owned(), n.to_owned()),
                _ => {
                    rfs::fchmod(self.root.fd(), Mode::from_raw_mode(mode))
                        .map_err(|e| io(e.into()))?;
                    out.push((
                        dir.clone(),
                        rfs::fstat(self.root.fd()).map_err(|e| io(e.into()))?,
                    ));
                    continue;
                }
            };
            let Some(pfd) = self.root.existing_dir(&parent).map_err(io)? else {
                continue;
            };
            let pfd = dup(pfd).map_err(io)?;
            match stat_nofollow(&pfd, &name).map_err(io)? {
                Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                _ => continue,
            }
            rfs::chmodat(&pfd, &name, Mode::from_raw_mode(mode), AtFlags::empty())
                .map_err(|e| io(e.into()))?;
            let st =
                rfs::statat(&pfd, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io(e.into()))?;
            out.push((dir, st));
        }
        Ok(out)
    }
}
