//! Applying a layer (a tar stream) to a rootfs, as image-spec layer.md says: whiteouts hide
//! only lower layers, an opaque whiteout applies before its siblings wherever it appears,
//! anything but directory-over-directory is unlinked and recreated, directory modes and times
//! are set once the layer is done. Every path is resolved inside the root (see
//! `layer::root`), and entries that try to leave it are refused with an error naming the
//! layer and the entry.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::root::{children, remove_all, stat_nofollow, Root};
use crate::bundle::idmap::IdMap;
use crate::error::{Error, Result};

/// The xattr umoci (and PRoot) use to record ownership a rootless unpack could not set.
pub const ROOTLESS_XATTR: &str = "user.rootlesscontainers";
/// "Leave this id alone" in [`ROOTLESS_XATTR`].
const NOOP_ID: u32 = u32::MAX;

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

/// Attributes of an entry, after id mapping.
#[derive(Debug, Clone)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    times: (Timespec, Timespec),
    xattrs: Vec<(OsString, Vec<u8>)>,
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
}

impl Applier {
    /// Prepares to apply layers to the existing directory `rootfs`.
    pub fn new(rootfs: &Path, options: ApplyOptions) -> Result<Applier> {
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
        let mut archive = tar::Archive::new(tar);
        let mut state = LayerState::default();
        let mut count = 0;
        let entries = archive
            .entries()
            .map_err(|e| layer_error(layer, "", format!("reading the tar: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| layer_error(layer, "", format!("reading the tar: {e}")))?;
            let raw_path = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw_path).into_owned();
            self.entry(&mut entry, &raw_path, &mut state)
                .map_err(|e| match e {
                    EntryError::Refused(reason) => layer_error(layer, &shown, reason),
                    EntryError::Io(err) => layer_error(layer, &shown, err.to_string()),
                })?;
            count += 1;
        }
        self.finish_layer(state)
            .map_err(|e| layer_error(layer, "", e.to_string()))?;
        Ok(count)
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        raw_path: &[u8],
        state: &mut LayerState,
    ) -> EntryResult<()> {
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            return Ok(());
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
        let name_bytes = name.as_bytes();
        if let Some(target) = name_bytes.strip_prefix(b".wh.") {
            return self.whiteout(&parent, target, state);
        }
        let meta = self.meta(entry)?;
        let mut created = Vec::new();
        let pfd = self.root.dir(&parent, &mut created)?;
        let pfd = dup(pfd)?;
        self.touch(&parent, &pfd, state, &created)?;
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
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.replace(&pfd, &name, existing_type)?;
                self.write_file(&pfd, &name, entry, &meta)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| EntryError::Refused("symlink without a target".into()))?
                    .into_owned();
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
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| EntryError::Refused("hardlink without a target".into()))?
                    .into_owned();
                self.hardlink(&pfd, &name, &target, existing.as_ref())?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                self.replace(&pfd, &name, existing_type)?;
                self.special(&pfd, &name, entry, kind, &meta, &path)?;
            }
            tar::EntryType::GNUSparse => {
                return Err(EntryError::Refused(
                    "sparse files are not supported in layers (layer.md: SHOULD NOT be used)"
                        .into(),
                ))
            }
            other => {
                return Err(EntryError::Refused(format!(
                    "unsupported tar entry type {other:?}"
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

    /// Records `dir`'s times before this layer first changes its content.
    fn touch(
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

    fn links_to_dir(&mut self, path: &Path) -> EntryResult<bool> {
        Ok(self.root.existing_dir(path)?.is_some())
    }

    fn write_file<R: Read>(
        &mut self,
        pfd: &OwnedFd,
        name: &OsStr,
        entry: &mut tar::Entry<R>,
        meta: &Meta,
    ) -> EntryResult<()> {
        let mut file = File::from(create_file(pfd, name)?);
        let expected = entry.header().entry_size().map_err(EntryError::Io)?;
        let written = copy_with(entry, &mut file, &mut self.buffer)?;
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
        target: &[u8],
        existing: Option<&rfs::Stat>,
    ) -> EntryResult<()> {
        let target_path = clean_path(target)?
            .ok_or_else(|| EntryError::Refused("hardlink to the root directory".into()))?;
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
        entry: &tar::Entry<R>,
        kind: tar::EntryType,
        meta: &Meta,
        path: &Path,
    ) -> EntryResult<()> {
        let header = entry.header();
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
            let fd = create_file(pfd, name)?;
            let meta = Meta {
                mode: 0,
                ..meta.clone()
            };
            self.set_owner_and_xattrs(fd.as_fd(), &meta)?;
            rfs::fchmod(&fd, Mode::empty())?;
            rfs::futimens(&fd, &timestamps(&meta))?;
            return Ok(());
        }
        let major = header.device_major().ok().flatten().unwrap_or(0);
        let minor = header.device_minor().ok().flatten().unwrap_or(0);
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

    /// xattrs on what cannot be opened for writing (symlinks, devices, FIFOs): set through
    /// the parent's descriptor in /proc, never following the last component.
    fn set_xattrs_at(&mut self, pfd: &OwnedFd, name: &OsStr, meta: &Meta) -> EntryResult<()> {
        if meta.xattrs.is_empty() {
            return Ok(());
        }
        use std::os::fd::AsRawFd;
        let path = PathBuf::from(format!("/proc/self/fd/{}", pfd.as_raw_fd())).join(name);
        for (key, value) in &meta.xattrs {
            match rfs::lsetxattr(&path, key.as_os_str(), value, XattrFlags::empty()) {
                Ok(()) => {}
                // The kernel allows only trusted.* and security.* on symlinks, and a
                // rootless unpack may not set those.
                Err(Errno::PERM) | Err(Errno::NOTSUP) | Err(Errno::ACCESS) => {
                    self.warnings.push(format!(
                        "{}: xattr {key:?} could not be set here; skipped",
                        Path::new(name).display()
                    ))
                }
                Err(e) => {
                    return Err(EntryError::Io(io::Error::new(
                        e.kind(),
                        format!("setting xattr {key:?}: {e}"),
                    )))
                }
            }
        }
        Ok(())
    }

    /// `.wh.NAME` removes NAME from lower layers; `.wh..wh..opq` empties its directory of
    /// lower content. Neither touches what this layer wrote.
    fn whiteout(
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

    /// Directory attributes last (a read-only directory can then still be filled), and the
    /// times of directories whose content changed restored.
    fn finish_layer(&mut self, state: LayerState) -> io::Result<()> {
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

    fn meta<R: Read>(&self, entry: &mut tar::Entry<R>) -> EntryResult<Meta> {
        let header = entry.header();
        let mode = header.mode().map_err(EntryError::Io)? & 0o7777;
        let container_uid = u32::try_from(header.uid().map_err(EntryError::Io)?)
            .map_err(|_| EntryError::Refused("uid does not fit 32 bits".into()))?;
        let container_gid = u32::try_from(header.gid().map_err(EntryError::Io)?)
            .map_err(|_| EntryError::Refused("gid does not fit 32 bits".into()))?;
        let mut mtime = Timespec {
            tv_sec: header.mtime().map_err(EntryError::Io)? as i64,
            tv_nsec: 0,
        };
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(EntryError::Io)? {
            for ext in pax {
                let ext = ext.map_err(EntryError::Io)?;
                let Ok(key) = ext.key() else { continue };
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    if xattr_allowed(name) {
                        xattrs.push((OsString::from(name), ext.value_bytes().to_vec()));
                    }
                } else if key == "mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if key == "atime" {
                    atime = parse_pax_time(ext.value_bytes());
                }
            }
        }
        let (uid, gid) = if self.options.rootless {
            (container_uid, container_gid)
        } else {
            let uid = self.options.uid_map.to_host(container_uid).ok_or_else(|| {
                EntryError::Refused(format!(
                    "uid {container_uid} is outside the --uid-map ranges"
                ))
            })?;
            let gid = self.options.gid_map.to_host(container_gid).ok_or_else(|| {
                EntryError::Refused(format!(
                    "gid {container_gid} is outside the --gid-map ranges"
                ))
            })?;
            (uid, gid)
        };
        Ok(Meta {
            mode,
            uid,
            gid,
            times: (atime.unwrap_or(mtime), mtime),
            xattrs,
        })
    }

    /// chown (root) or the rootless ownership xattr, then the entry's xattrs. chown comes
    /// before chmod so setuid bits survive.
    fn set_owner_and_xattrs(
        &mut self,
        fd: rustix::fd::BorrowedFd<'_>,
        meta: &Meta,
    ) -> EntryResult<()> {
        if self.options.rootless {
            if meta.uid != 0 || meta.gid != 0 {
                let value = rootless_xattr(meta.uid, meta.gid);
                self.set_xattr(fd, OsStr::new(ROOTLESS_XATTR), &value)?;
            }
        } else {
            rfs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid)))?;
        }
        for (name, value) in &meta.xattrs {
            self.set_xattr(fd, name, value)?;
        }
        Ok(())
    }

    fn set_xattr(
        &mut self,
        fd: rustix::fd::BorrowedFd<'_>,
        name: &OsStr,
        value: &[u8],
    ) -> EntryResult<()> {
        match rfs::fsetxattr(fd, name, value, XattrFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::NOTSUP) => {
                if !self.warned_xattr_unsupported {
                    self.warned_xattr_unsupported = true;
                    self.warnings.push(format!(
                        "the filesystem of {} does not support xattr {:?}; xattrs are skipped",
                        self.root.path().display(),
                        name
                    ));
                }
                Ok(())
            }
            Err(Errno::PERM) if self.options.rootless => {
                self.warnings
                    .push(format!("xattr {name:?} needs privileges; skipped"));
                Ok(())
            }
            Err(e) => Err(EntryError::Io(io::Error::new(
                e.kind(),
                format!("setting xattr {name:?}: {e}"),
            ))),
        }
    }

    fn clear_xattrs(&mut self, fd: &OwnedFd) -> EntryResult<()> {
        let mut buf = vec![0u8; 4096];
        let len = match rfs::flistxattr(fd, &mut buf[..]) {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(()),
            Err(Errno::RANGE) => return Ok(()),
            Err(e) => return Err(EntryError::Io(e.into())),
        };
        for name in buf[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let name = OsStr::from_bytes(name);
            let text = name.to_string_lossy();
            // The directory takes the entry's attributes: an old ownership record goes too.
            if xattr_allowed(&text) || text == ROOTLESS_XATTR {
                let _ = rfs::fremovexattr(fd, name);
            }
        }
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

/// Which xattrs a layer may set: never SELinux labels (the host's policy decides), NFSv4
/// ACLs, overlayfs's own attributes, or the rootless ownership record (strata writes that).
fn xattr_allowed(name: &str) -> bool {
    !(name == "security.selinux"
        || name == "system.nfs4_acl"
        || name.starts_with("trusted.overlay.")
        || name.starts_with("user.overlay.")
        || name == ROOTLESS_XATTR)
}

/// The protobuf `Resource { uint32 uid = 1; uint32 gid = 2; }` umoci and PRoot use, with
/// 0 (the id the unpacking user already has) written as the no-op id.
pub fn rootless_xattr(uid: u32, gid: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    for (field, id) in [(1u8, uid), (2u8, gid)] {
        let id = if id == 0 { NOOP_ID } else { id };
        out.push(field << 3);
        let mut v = id;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    out
}

/// Normalises a tar path: strips `./` and trailing `/`; `None` for the root itself. `..`
/// components and absolute names are refused: nothing in a layer may name a path outside it.
fn clean_path(raw: &[u8]) -> EntryResult<Option<PathBuf>> {
    if raw.contains(&0) {
        return Err(EntryError::Refused("path contains a NUL byte".into()));
    }
    let path = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(EntryError::Refused(
                    "path has a \"..\" component: refusing to leave the rootfs".into(),
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(EntryError::Refused(
                    "absolute path: refusing to write outside the rootfs".into(),
                ))
            }
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

fn mark_upper(state: &mut LayerState, path: &Path) {
    let mut p = Some(path);
    while let Some(cur) = p {
        if cur.as_os_str().is_empty() || !state.upper.insert(cur.to_owned()) {
            break;
        }
        p = cur.parent();
    }
}

fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(value).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
    };
    Some(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

fn timestamps(meta: &Meta) -> Timestamps {
    Timestamps {
        last_access: meta.times.0,
        last_modification: meta.times.1,
    }
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

fn layer_error(layer: &str, entry: &str, reason: String) -> Error {
    Error::Layer {
        layer: layer.to_owned(),
        entry: entry.to_owned(),
        reason,
    }
}

enum EntryError {
    Refused(String),
    Io(io::Error),
}

impl From<io::Error> for EntryError {
    fn from(e: io::Error) -> Self {
        EntryError::Io(e)
    }
}

impl From<Errno> for EntryError {
    fn from(e: Errno) -> Self {
        EntryError::Io(e.into())
    }
}

type EntryResult<T> = std::result::Result<T, EntryError>;

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
        assert!(clean_path(b"/etc/passwd").is_err());
        assert!(clean_path(b"a/\0b").is_err());
    }

    #[test]
    fn rootless_xattr_encoding() {
        assert_eq!(
            rootless_xattr(1000, 0),
            vec![0x08, 0xe8, 0x07, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f]
        );
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        assert!(parse_pax_time(b"x").is_none());
    }
}
