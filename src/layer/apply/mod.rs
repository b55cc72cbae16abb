//! Applying a layer (a tar stream) to a rootfs, as image-spec layer.md says: whiteouts hide
//! only lower layers, an opaque whiteout applies before its siblings wherever it appears,
//! anything but directory-over-directory is unlinked and recreated, directory modes and times
//! are set once the layer is done. Every path is resolved inside the root (see
//! `layer::root`), and entries that try to leave it are refused with an error naming the
//! layer and the entry.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timestamps};

use super::names::{self, EntryName};
use super::root::{remove_all, stat_nofollow, Root};
use super::tarstream::{TarEntry, TarStream};
use crate::bundle::idmap::IdMap;
use crate::error::{Error, Result};

mod acl;
mod error;
mod finish;
mod meta;
mod rootless;
mod whiteout;
mod xattrs;

pub(crate) use acl::{is_acl_xattr, map_acl_ids, misplaced_default_acl};
use error::{layer_error, EntryError, EntryResult};
use meta::{timestamps, Meta};
pub use rootless::{rootless_xattr, ROOTLESS_XATTR};
use whiteout::mark_upper;
pub(crate) use xattrs::entry_xattrs;

/// How to apply layers.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Running without privileges: ownership is recorded in [`ROOTLESS_XATTR`] instead of
    /// set, and device nodes become empty files.
    pub rootless: bool,
    /// Container uid to host uid.
    pub uid_map: IdMap,
    /// Container gid to host gid.
    pub gid_map: IdMap,
    /// Keep a symlink where a layer has a directory, when the link leads to a directory
    /// inside the root (`/lib64 -> usr/lib64`).
    pub keep_dirlinks: bool,
}

/// Applies layers, one after another, to one rootfs.
pub struct Applier {
    root: Root,
    options: ApplyOptions,
    warnings: Vec<String>,
    warned_xattr_unsupported: bool,
    /// Reused for file data: large writes, few syscalls.
    buffer: Vec<u8>,
    /// Rootless: directory modes to set when the whole unpack is done.
    final_modes: std::collections::BTreeMap<PathBuf, u32>,
}

/// What one layer's application has to remember until the layer ends.
#[derive(Default)]
struct LayerState {
    /// Paths written by this layer and all their ancestors: whiteouts must not touch them.
    upper: HashSet<PathBuf>,
    /// Directories with an entry in this layer: attributes applied at the end.
    dirs: Vec<(PathBuf, Meta)>,
    /// Directories whose content changed, with their times before: restored at the end
    /// unless the layer sets them.
    touched: HashMap<PathBuf, Timestamps>,
    /// The directories in `touched`, by device and inode: two paths can lead to one
    /// directory (`bin/x` and `usr/bin/y` under `bin -> usr/bin`), whose times before the
    /// layer are those seen the first time.
    touched_dirs: HashSet<(u64, u64)>,
    /// Directories made because an entry needed them and the layer did not list them, with
    /// that entry's mtime: they take it at the end, so the same image always gives the same
    /// tree (the clock would differ from one unpack to the next).
    implied: Vec<(PathBuf, rustix::fs::Timespec)>,
}

impl Applier {
    /// Prepares to apply layers to the existing directory `rootfs`.
    pub fn new(rootfs: impl AsRef<Path>, options: ApplyOptions) -> Result<Applier> {
        let rootfs = rootfs.as_ref();
        let root = Root::open(rootfs).map_err(|source| Error::Io {
            path: rootfs.to_owned(),
            source,
        })?;
        Ok(Applier {
            root,
            options,
            warnings: Vec::new(),
            warned_xattr_unsupported: false,
            buffer: vec![0; 256 << 10],
            final_modes: Default::default(),
        })
    }

    /// Warnings collected so far (e.g. device nodes replaced by files in rootless mode).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Applies one layer's uncompressed tar stream. `layer` names it in errors. The stream
    /// is read only up to the tar's end marker; the caller drains the rest (and verifies).
    pub fn apply(&mut self, tar: impl Read, layer: &str) -> Result<u64> {
        self.apply_reporting(tar, layer, &mut |_| {})
    }

    /// [`Applier::apply`], calling `applied` with each entry's path (as the tar names it)
    /// once it is applied.
    pub fn apply_reporting(
        &mut self,
        tar: impl Read,
        layer: &str,
        applied: &mut dyn FnMut(&str),
    ) -> Result<u64> {
        let mut stream = TarStream::new(tar);
        let mut state = LayerState::default();
        let mut count = 0;
        let mut last = String::new();
        loop {
            let next = stream.next_entry().map_err(|e| {
                let after = if last.is_empty() {
                    String::new()
                } else {
                    format!(" after entry {last:?}")
                };
                layer_error(layer, "", format!("reading the tar{after}: {e}"))
            })?;
            let Some(mut entry) = next else { break };
            let raw_path = entry.path_bytes().to_vec();
            let shown = String::from_utf8_lossy(&raw_path).into_owned();
            self.entry(&mut entry, &raw_path, &mut state)
                .map_err(|e| match e {
                    EntryError::Refused(reason) => layer_error(layer, &shown, reason),
                    EntryError::Io(err) => {
                        layer_error(layer, &shown, crate::words::io_reason(&err))
                    }
                })?;
            applied(&shown);
            last = shown;
            count += 1;
        }
        self.finish_layer(state)
            .map_err(|e| layer_error(layer, "", e.to_string()))?;
        Ok(count)
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut TarEntry<'_, R>,
        raw_path: &[u8],
        state: &mut LayerState,
    ) -> EntryResult<()> {
        let kind = entry.header().entry_type();
        if let Some(why) = entry.unsupported() {
            return Err(EntryError::Refused(why));
        }
        let Some(path) = clean_path(raw_path)? else {
            // The root itself: only a directory may describe it (CVE-2021-29136: a layer
            // that turned the root into a symlink would send later layers anywhere).
            if !kind.is_dir() {
                return Err(EntryError::Refused(
                    "refusing to replace the root directory with a non-directory".into(),
                ));
            }
            let meta = self.meta(entry)?;
            let root = dup(self.root.fd())?;
            self.set_owner_and_xattrs(root.as_fd(), &meta)?;
            state.dirs.push((PathBuf::new(), meta));
            return Ok(());
        };
        let name = path
            .file_name()
            .expect("a cleaned path has a last component")
            .to_owned();
        let parent = path.parent().unwrap_or(Path::new("")).to_owned();
        match names::entry_name(&path).map_err(EntryError::Refused)? {
            EntryName::Plain => {}
            EntryName::Whiteout(target) => return self.whiteout(&parent, target, state),
            EntryName::Opaque => return self.opaque_whiteout(&parent, state),
        }
        // A hardlink's target obeys the same rules, checked before anything is written.
        let link_target = if kind == tar::EntryType::Link {
            let raw = entry
                .link_name_bytes()
                .ok_or_else(|| EntryError::Refused("hardlink without a target".into()))?;
            let target = clean_path(raw)
                .map_err(|e| match e {
                    EntryError::Refused(why) => EntryError::Refused(format!(
                        "hardlink target {:?}: {why}",
                        String::from_utf8_lossy(raw)
                    )),
                    other => other,
                })?
                .ok_or_else(|| EntryError::Refused("hardlink to the root directory".into()))?;
            Some(target)
        } else {
            None
        };
        let meta = self.meta(entry)?;
        self.touch_nearest_existing(&parent, state)?;
        let mut created = Vec::new();
        let pfd = self.root.dir(&parent, &mut created)?;
        let pfd = dup(pfd)?;
        self.touch(&parent, &pfd, state, &created)?;
        state
            .implied
            .extend(created.iter().map(|dir| (dir.clone(), meta.times.1)));
        let existing = stat_nofollow(&pfd, &name)?;
        let existing_type = existing
            .as_ref()
            .map(|st| FileType::from_raw_mode(st.st_mode));

        match kind {
            tar::EntryType::Directory => {
                match existing_type {
                    Some(FileType::Directory) => {
                        // Directory over directory: keep it, take the new attributes.
                        let fd = open_dir(&pfd, &name)?;
                        self.clear_xattrs(&fd)?;
                        self.set_owner_and_xattrs(fd.as_fd(), &meta)?;
                    }
                    Some(FileType::Symlink)
                        if self.options.keep_dirlinks && self.links_to_dir(&path)? =>
                    {
                        mark_upper(state, &path);
                        return Ok(());
                    }
                    other => {
                        if other.is_some() {
                            self.remove(&pfd, &name)?;
                        }
                        rfs::mkdirat(&pfd, &name, Mode::from_raw_mode(0o700))?;
                        let fd = open_dir(&pfd, &name)?;
                        self.set_owner_and_xattrs(fd.as_fd(), &meta)?;
                    }
                }
                state.dirs.push((path.clone(), meta));
            }
            // Sparse members (GNU `S`, or PAX GNU.sparse on a regular one) read as their
            // expanded bytes.
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.replace(&pfd, &name, existing_type)?;
                self.write_file(&pfd, &name, entry, &meta)?;
            }
            tar::EntryType::Symlink => {
                let target = super::names::symlink_target(entry.link_name_bytes())
                    .map_err(EntryError::Refused)?
                    .to_vec();
                self.replace(&pfd, &name, existing_type)?;
                rfs::symlinkat(OsStr::from_bytes(&target), &pfd, &name)?;
                if !self.options.rootless {
                    rfs::chownat(
                        &pfd,
                        &name,
                        Some(uid(meta.uid)),
                        Some(gid(meta.gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )?;
                }
                self.set_xattrs_at(&pfd, &name, &meta)?;
                set_times_at(&pfd, &name, &meta)?;
            }
            tar::EntryType::Link => {
                let target = link_target.expect("checked before anything was written");
                self.hardlink(&pfd, &name, &target, existing.as_ref())?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                self.replace(&pfd, &name, existing_type)?;
                self.special(&pfd, &name, entry, kind, &meta, &path)?;
            }
            // Refused above (`unsupported`); the extension types never reach here.
            other => {
                return Err(EntryError::Refused(format!(
                    "tar entry type {:?} is not one strata can apply",
                    char::from(other.as_byte())
                )))
            }
        }
        mark_upper(state, &path);
        Ok(())
    }

    /// Unlinks what is at `name` unless nothing is there (the entry is a non-directory).
    fn replace(
        &mut self,
        pfd: &OwnedFd,
        name: &OsStr,
        existing: Option<FileType>,
    ) -> EntryResult<()> {
        if existing.is_some() {
            self.remove(pfd, name)?;
        }
        Ok(())
    }

    fn remove(&mut self, pfd: &OwnedFd, name: &OsStr) -> EntryResult<()> {
        remove_all(pfd, name)?;
        self.root.invalidate();
        Ok(())
    }

    fn links_to_dir(&mut self, path: &Path) -> EntryResult<bool> {
        Ok(self.root.existing_dir(path)?.is_some())
    }

    fn write_file<R: Read>(
        &mut self,
        pfd: &OwnedFd,
        name: &OsStr,
        entry: &mut TarEntry<'_, R>,
        meta: &Meta,
    ) -> EntryResult<()> {
        let mut file = File::from(create_file(pfd, name)?);
        let expected = entry.size();
        let written = if entry.sparse_map().is_some() {
            write_sparse(entry, &file, &mut self.buffer)?
        } else {
            copy_with(entry, &mut file, &mut self.buffer)?
        };
        if written != expected {
            return Err(EntryError::Refused(format!(
                "file data is short: {written} of {expected} bytes"
            )));
        }
        self.set_owner_and_xattrs(file.as_fd(), meta)?;
        rfs::fchmod(&file, Mode::from_raw_mode(meta.mode))?;
        rfs::futimens(&file, &timestamps(meta))?;
        Ok(())
    }

    fn hardlink(
        &mut self,
        pfd: &OwnedFd,
        name: &OsStr,
        target_path: &Path,
        existing: Option<&rfs::Stat>,
    ) -> EntryResult<()> {
        let target_name = target_path.file_name().expect("cleaned").to_owned();
        let target_parent = target_path.parent().unwrap_or(Path::new(""));
        let tfd = match self.root.existing_dir(target_parent)? {
            Some(fd) => dup(fd)?,
            None => {
                return Err(EntryError::Refused(format!(
                    "hardlink target {:?} does not exist",
                    target_path
                )))
            }
        };
        let Some(target_stat) = stat_nofollow(&tfd, &target_name)? else {
            return Err(EntryError::Refused(format!(
                "hardlink target {:?} does not exist (yet)",
                target_path
            )));
        };
        if FileType::from_raw_mode(target_stat.st_mode) == FileType::Directory {
            return Err(EntryError::Refused("hardlink to a directory".into()));
        }
        if let Some(st) = existing {
            if st.st_ino == target_stat.st_ino && st.st_dev == target_stat.st_dev {
                return Ok(());
            }
            self.remove(pfd, name)?;
        }
        rfs::linkat(&tfd, &target_name, pfd, name, AtFlags::empty())?;
        Ok(())
    }

    fn special<R: Read>(
        &mut self,
        pfd: &OwnedFd,
        name: &OsStr,
        entry: &TarEntry<'_, R>,
        kind: tar::EntryType,
        meta: &Meta,
        path: &Path,
    ) -> EntryResult<()> {
        let file_type = match kind {
            tar::EntryType::Char => FileType::CharacterDevice,
            tar::EntryType::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        if self.options.rootless && file_type != FileType::Fifo {
            self.warnings.push(format!(
                "{}: device node replaced by an empty file (rootless unpack cannot create devices)",
                path.display()
            ));
            // The placeholder keeps the node's mode, as umoci's does: a repack or a diff
            // against the image then sees the permissions the layer gave.
            let fd = create_file(pfd, name)?;
            self.set_owner_and_xattrs(fd.as_fd(), meta)?;
            rfs::fchmod(&fd, Mode::from_raw_mode(meta.mode))?;
            rfs::futimens(&fd, &timestamps(meta))?;
            return Ok(());
        }
        let (major, minor) = entry.device().map_err(EntryError::Refused)?;
        rfs::mknodat(
            pfd,
            name,
            file_type,
            Mode::from_raw_mode(0o600),
            rfs::makedev(major, minor),
        )?;

        if !self.options.rootless {
            rfs::chownat(
                pfd,
                name,
                Some(uid(meta.uid)),
                Some(gid(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        rfs::chmodat(pfd, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())?;
        self.set_xattrs_at(pfd, name, meta)?;
        set_times_at(pfd, name, meta)?;
        Ok(())
    }
}

/// Copies `from` into `to` through `buffer`, returning the bytes copied.
fn copy_with(from: &mut impl Read, to: &mut impl io::Write, buffer: &mut [u8]) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let n = match from.read(buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buffer[..n])?;
        total += n as u64;
    }
}

/// Writes a sparse member's data at its offsets, leaving its holes as holes (the file is
/// new, so what is skipped reads as zeros); returns the file's length.
fn write_sparse<R: Read>(
    entry: &mut TarEntry<'_, R>,
    file: &File,
    buffer: &mut [u8],
) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut pos = 0u64;
    loop {
        let hole = entry.hole_ahead();
        if hole > 0 {
            entry.skip_hole();
            pos += hole;
            continue;
        }
        let n = match entry.read(buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        file.write_all_at(&buffer[..n], pos)?;
        pos += n as u64;
    }
    file.set_len(pos)?;
    Ok(pos)
}

/// A checked entry path (see `layer::names`); `None` for the root itself.
fn clean_path(raw: &[u8]) -> EntryResult<Option<PathBuf>> {
    names::layer_path(raw).map_err(EntryError::Refused)
}

fn set_times_at(dir: &OwnedFd, name: &OsStr, meta: &Meta) -> io::Result<()> {
    rfs::utimensat(dir, name, &timestamps(meta), AtFlags::SYMLINK_NOFOLLOW).map_err(Into::into)
}

/// A new regular file, never through a symlink and never over an existing one. It starts
/// 0600 (writable, so the ownership record and xattrs can be set) and gets its real mode last.
fn create_file(parent: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    rfs::openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(Into::into)
}

fn open_dir(parent: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(Into::into)
}

fn dup(fd: impl AsFd) -> io::Result<OwnedFd> {
    fd.as_fd().try_clone_to_owned()
}

fn uid(id: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(id)
}

fn gid(id: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths_and_refuses_escapes() {
        assert_eq!(
            clean_path(b"./a/b/").ok().flatten(),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(clean_path(b"./").ok().flatten(), None);
        assert!(clean_path(b"a/../../etc").is_err());
        // As docker, containerd, umoci and GNU tar: under the root, never outside it.
        assert_eq!(
            clean_path(b"/etc/passwd").ok().flatten(),
            Some(PathBuf::from("etc/passwd"))
        );
        assert!(clean_path(b"a/\0b").is_err());
    }

    /// A tar of one hardlink entry, names raw.
    fn hardlink_tar(name: &[u8], target: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_mode(0o644);
        h.set_size(0);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b""[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn a_bad_hardlink_target_is_refused_before_its_directory_is_made() {
        for target in [&b"../x"[..], b"a//b", b"/../etc/passwd", b"./"] {
            let dir = tempfile::tempdir().unwrap();
            let mut applier = Applier::new(
                dir.path(),
                ApplyOptions {
                    rootless: true,
                    ..Default::default()
                },
            )
            .unwrap();
            let tar = hardlink_tar(b"newdir/h", target);
            let err = applier.apply(&tar[..], "test").unwrap_err().to_string();
            assert!(err.contains("hardlink"), "{err}");
            assert!(!dir.path().join("newdir").exists(), "{target:?}");
        }
    }
}
