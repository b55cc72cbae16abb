//! Reading a source tree (build, insert, repack's rootfs) that someone may be changing
//! meanwhile, a running container say. Every name is looked up relative to its parent
//! directory's handle with `O_NOFOLLOW`, and a regular file's header comes from `fstat` of
//! the very handle its bytes are read from, so a symlink swapped in anywhere, for the entry
//! or one of its parents, is recorded as a symlink or fails the walk; it is never followed
//! and no outside file's content can enter a layer. Parent handles are kept along the
//! current path (entries come in sorted order), so no path is resolved from the root.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, IoContext, Result};

/// A directory tree opened for reading.
pub struct SourceTree {
    root: OwnedFd,
    path: PathBuf,
}

/// What `lstat` or `fstat` said about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Its type.
    pub kind: FileType,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: i64,
    /// Status change time, seconds.
    pub ctime: i64,
    /// Status change time, nanoseconds.
    pub ctime_nsec: i64,
    /// Inode.
    pub ino: u64,
    /// Device holding it.
    pub dev: u64,
    /// Hard link count.
    pub nlink: u64,
    /// Device number (devices).
    pub rdev: u64,
}

impl From<&rfs::Stat> for Meta {
    #[allow(clippy::unnecessary_cast)] // the field types differ between architectures
    fn from(st: &rfs::Stat) -> Meta {
        Meta {
            kind: FileType::from_raw_mode(st.st_mode as _),
            mode: st.st_mode as u32 & 0o7777,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            size: st.st_size as u64,
            mtime: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as i64,
            ctime: st.st_ctime as i64,
            ctime_nsec: st.st_ctime_nsec as i64,
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
            nlink: st.st_nlink as u64,
            rdev: st.st_rdev as u64,
        }
    }
}

const DIR_READ: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const DIR_PATH: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// As GNU tar opens what it archives: a FIFO or tty swapped in can neither block the read
/// nor become the controlling terminal.
const FILE_READ: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

impl SourceTree {
    /// Opens the directory at `path`. With `follow`, `path` itself may be a symlink to a
    /// directory (the user named it); nothing below it is ever followed.
    pub fn open(path: impl AsRef<Path>, follow: bool) -> Result<SourceTree> {
        let path = path.as_ref();
        let flags = if follow {
            DIR_READ.difference(OFlags::NOFOLLOW)
        } else {
            DIR_READ
        };
        let root = rfs::open(path, flags, Mode::empty()).map_err(|e| not_a_dir_now(e, path))?;
        Ok(SourceTree {
            root,
            path: path.to_owned(),
        })
    }

    /// The tree's path on the host, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` on the host, for messages.
    pub fn host_path(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    /// Every path under the root (not the root itself), sorted by bytes so parents come
    /// before their children, each with whether it was a directory when listed. Symlinks are
    /// listed, never followed; a directory replaced by something else while it is walked is
    /// listed without children (what it is now is for the reader to find out).
    pub fn walk(&self) -> Result<Vec<(PathBuf, bool)>> {
        let mut out = Vec::new();
        // Depth first with a stack of its own, not by recursion: a container can make a
        // tree thousands of directories deep, which would overflow the thread's stack (an
        // abort, not an error). One handle is held per level, so a tree deeper than the
        // open file limit fails with EMFILE naming the directory.
        let mut stack: Vec<(OwnedFd, PathBuf, Vec<OsString>)> = Vec::new();
        let subdirs = self.list_dir(&self.root, Path::new(""), &mut out)?;
        let root = rfs::openat(&self.root, ".", DIR_READ, Mode::empty())
            .map_err(io::Error::from)
            .at(&self.path)?;
        stack.push((root, PathBuf::new(), subdirs));
        while let Some((dir, rel, subdirs)) = stack.last_mut() {
            let Some(name) = subdirs.pop() else {
                stack.pop();
                continue;
            };
            let child = rel.join(&name);
            match rfs::openat(&*dir, &name, DIR_READ, Mode::empty()) {
                Ok(fd) => {
                    let subdirs = self.list_dir(&fd, &child, &mut out)?;
                    stack.push((fd, child, subdirs));
                }
                Err(Errno::LOOP | Errno::NOTDIR | Errno::NOENT) => {}
                Err(e) => return Err(io::Error::from(e)).at(self.host_path(&child)),
            }
        }
        out.sort_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
        Ok(out)
    }

    /// Lists `dir` (at `rel`) into `out`; returns the names of its subdirectories.
    fn list_dir(
        &self,
        dir: &OwnedFd,
        rel: &Path,
        out: &mut Vec<(PathBuf, bool)>,
    ) -> Result<Vec<OsString>> {
        let host = self.host_path(rel);
        let mut subdirs = Vec::new();
        let mut reader = rfs::Dir::read_from(dir)
            .map_err(io::Error::from)
            .at(&host)?;
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(io::Error::from).at(&host)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let is_dir = match entry.file_type() {
                FileType::Unknown => match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(io::Error::from(e)).at(host.join(name)),
                },
                t => t == FileType::Directory,
            };
            if is_dir {
                subdirs.push(name.to_owned());
            }
            out.push((rel.join(name), is_dir));
        }
        Ok(subdirs)
    }

    /// A reader of entries, best used in [`walk`](Self::walk)'s order.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            tree: self,
            stack: Vec::new(),
        }
    }
}

/// Reads entries of a [`SourceTree`] relative to their parent directory's handle; keeps
/// the handles of the last entry's parents for the next one.
pub struct Cursor<'a> {
    tree: &'a SourceTree,
    stack: Vec<(OsString, OwnedFd)>,
}

impl Cursor<'_> {
    /// The tree read.
    pub fn tree(&self) -> &SourceTree {
        self.tree
    }

    /// The directory holding `rel` (opened one name at a time, never following a link) and
    /// `rel`'s last name; `None` for the root itself.
    fn parent(&mut self, rel: &Path) -> Result<Option<(BorrowedFd<'_>, OsString)>> {
        let mut names: Vec<&OsStr> = rel.iter().collect();
        let Some(name) = names.pop() else {
            return Ok(None);
        };
        let same = self
            .stack
            .iter()
            .zip(&names)
            .take_while(|((have, _), want)| have.as_os_str() == **want)
            .count();
        self.stack.truncate(same);
        for (i, dir) in names.iter().enumerate().skip(same) {
            let at = self
                .stack
                .last()
                .map_or(self.tree.root.as_fd(), |(_, fd)| fd.as_fd());
            let fd = rfs::openat(at, *dir, DIR_PATH, Mode::empty()).map_err(|e| {
                let host = self
                    .tree
                    .host_path(&names[..=i].iter().collect::<PathBuf>());
                not_a_dir_now(e, &host)
            })?;
            self.stack.push((dir.to_os_string(), fd));
        }
        let at = self
            .stack
            .last()
            .map_or(self.tree.root.as_fd(), |(_, fd)| fd.as_fd());
        Ok(Some((at, name.to_owned())))
    }

    /// What `rel` is (not followed).
    pub fn lstat(&mut self, rel: &Path) -> Result<Meta> {
        let host = self.tree.host_path(rel);
        let st = match self.parent(rel)? {
            Some((dir, name)) => rfs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW),
            None => rfs::fstat(&self.tree.root),
        };
        Ok(Meta::from(&st.map_err(io::Error::from).at(host)?))
    }

    /// The target of the symlink `rel`.
    pub fn read_link(&mut self, rel: &Path) -> Result<Vec<u8>> {
        let host = self.tree.host_path(rel);
        let Some((dir, name)) = self.parent(rel)? else {
            return Err(changed(&host, "a symlink"));
        };
        match rfs::readlinkat(dir, &name, Vec::new()) {
            Ok(target) => Ok(target.into_bytes()),
            Err(Errno::INVAL) => Err(changed(&host, "a symlink")),
            Err(e) => Err(io::Error::from(e)).at(host),
        }
    }

    /// The regular file `rel`, opened for reading, and what its handle says it is.
    pub fn open_file(&mut self, rel: &Path) -> Result<(File, Meta)> {
        let host = self.tree.host_path(rel);
        let Some((dir, name)) = self.parent(rel)? else {
            return Err(changed(&host, "a regular file"));
        };
        let fd = match rfs::openat(dir, &name, FILE_READ, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => return Err(changed(&host, "a regular file")),
            Err(e) => return Err(io::Error::from(e)).at(host),
        };
        let meta = Meta::from(&rfs::fstat(&fd).map_err(io::Error::from).at(&host)?);
        if meta.kind != FileType::RegularFile {
            return Err(changed(&host, "a regular file"));
        }
        Ok((File::from(fd), meta))
    }

    /// The xattrs of `rel` (not followed), by name; with `skip_unreadable`, values this
    /// user cannot read are left out.
    pub fn xattrs(
        &mut self,
        rel: &Path,
        skip_unreadable: bool,
    ) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
        let host = self.tree.host_path(rel);
        let Some((dir, name)) = self.parent(rel)? else {
            return super::build::read_fd_xattrs(&self.tree.root, &host, skip_unreadable);
        };
        // There are no *xattrat calls before Linux 6.13: the name is reached through the
        // parent's handle in /proc, which pins the directory as the handle does.
        let path = match proc_fd_dir() {
            Some(proc) => {
                use std::os::fd::AsRawFd;
                proc.join(dir.as_raw_fd().to_string()).join(&name)
            }
            None => host.clone(),
        };
        // Errors name the entry, not its /proc alias.
        super::build::read_xattrs(&path, skip_unreadable).map_err(|e| match e {
            Error::Io { source, .. } => Error::Io { path: host, source },
            Error::Invalid { reason, .. } => Error::Invalid {
                what: host.display().to_string(),
                reason,
            },
            other => other,
        })
    }
}

/// `/proc/self/fd` when /proc is mounted.
fn proc_fd_dir() -> Option<&'static Path> {
    static PROC: OnceLock<bool> = OnceLock::new();
    let here = *PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir());
    here.then_some(Path::new("/proc/self/fd"))
}

/// The error for an entry found to be something else than it was a moment ago.
fn changed(host: &Path, was: &str) -> Error {
    Error::Invalid {
        what: host.display().to_string(),
        reason: format!(
            "it changed while it was being read (it is no longer {was}); nothing is followed, \
             try again once the tree is still"
        ),
    }
}

/// An open of a directory by name that failed: a symlink or file in its place is named as
/// a change.
fn not_a_dir_now(e: Errno, host: &Path) -> Error {
    match e {
        Errno::LOOP => changed(host, "a directory"),
        e => Error::Io {
            path: host.to_owned(),
            source: e.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn walk_lists_sorted_and_never_follows() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside/x")).unwrap();
        std::fs::write(root.join("a-c"), b"").unwrap();
        std::fs::write(root.join("a/b/f"), b"").unwrap();
        symlink(dir.path().join("outside"), root.join("link")).unwrap();
        let tree = SourceTree::open(&root, false).unwrap();
        let listed: Vec<(String, bool)> = tree
            .walk()
            .unwrap()
            .into_iter()
            .map(|(p, d)| (p.display().to_string(), d))
            .collect();
        let want = [
            ("a", true),
            ("a-c", false),
            ("a/b", true),
            ("a/b/f", false),
            ("link", false),
        ];
        let want: Vec<(String, bool)> = want.iter().map(|(p, d)| (p.to_string(), *d)).collect();
        assert_eq!(listed, want);
        let mut cursor = tree.cursor();
        assert_eq!(
            cursor.lstat(Path::new("link")).unwrap().kind,
            FileType::Symlink
        );
        let err = cursor.lstat(Path::new("link/x")).unwrap_err().to_string();
        assert!(err.contains("link"), "{err}");
        let err = cursor.open_file(Path::new("link")).unwrap_err().to_string();
        assert!(err.contains("no longer a regular file"), "{err}");
        assert_eq!(cursor.lstat(Path::new("a/b/f")).unwrap().size, 0);
        let link = SourceTree::open(root.join("link"), false).err().unwrap();
        assert!(link.to_string().contains("link"), "{link}");
    }
}
