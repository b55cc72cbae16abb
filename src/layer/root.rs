//! Operations on paths inside a rootfs that can never reach outside it. Parents are resolved
//! with `openat2(RESOLVE_IN_ROOT)`, so `..` and absolute symlinks stay inside the root as in a
//! chroot; the last component is never followed (every call works on a parent directory fd
//! and a single name). Missing parents are created, and a parent that is not a directory is
//! replaced by one, as umoci does.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// A rootfs directory, opened once.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// The last parent resolved, reused while entries stay in one directory. Dropped on any
    /// removal, since a removed or replaced directory must never receive new entries.
    cache: Option<(PathBuf, OwnedFd)>,
}

const DIR_PATH: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);
const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Root {
    /// Opens `path` as the root.
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: path.to_owned(),
            cache: None,
        })
    }

    /// The root's path on the host, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root directory itself.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Forgets cached directory handles (after anything was removed).
    pub fn invalidate(&mut self) {
        self.cache = None;
    }

    fn resolve(&self, dir: &Path) -> io::Result<OwnedFd> {
        let target: &Path = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        loop {
            match rfs::openat2(&self.fd, target, DIR_PATH, Mode::empty(), IN_ROOT) {
                // The kernel asks for a retry when a rename raced the lookup.
                Err(Errno::AGAIN) => continue,
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// The directory `dir` (relative to the root) if it exists, following symlinks inside the
    /// root; `None` when it does not exist or is not a directory.
    pub fn existing_dir(&mut self, dir: &Path) -> io::Result<Option<&OwnedFd>> {
        if self.cache.as_ref().is_some_and(|(p, _)| p == dir) {
            return Ok(self.cache.as_ref().map(|(_, fd)| fd));
        }
        match self.resolve(dir) {
            Ok(fd) => {
                self.cache = Some((dir.to_owned(), fd));
                Ok(self.cache.as_ref().map(|(_, fd)| fd))
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The directory `dir`, created (with its parents, mode 0755) if missing; a component that
    /// exists but is not a directory (or is a dangling symlink) is replaced by one. `created`
    /// gets the relative paths of directories made here.
    pub fn dir(&mut self, dir: &Path, created: &mut Vec<PathBuf>) -> io::Result<&OwnedFd> {
        if self.existing_dir(dir)?.is_none() {
            let fd = self.make_dirs(dir, created)?;
            self.cache = Some((dir.to_owned(), fd));
        }
        Ok(self.cache.as_ref().map(|(_, fd)| fd).expect("just cached"))
    }

    fn make_dirs(&mut self, dir: &Path, created: &mut Vec<PathBuf>) -> io::Result<OwnedFd> {
        let mut current = self.resolve(Path::new(""))?;
        let mut prefix = PathBuf::new();
        for component in dir.iter() {
            prefix.push(component);
            match self.resolve(&prefix) {
                Ok(fd) => current = fd,
                Err(e) if is_missing(&e) => {
                    // `current` is the resolved parent; the component is missing, a dangling
                    // symlink, or not a directory.
                    if stat_nofollow(&current, component)?.is_some() {
                        remove_all(&current, component)?;
                        self.cache = None;
                    }
                    rfs::mkdirat(&current, component, Mode::from_raw_mode(0o755))?;
                    created.push(prefix.clone());
                    current = rfs::openat(
                        &current,
                        component,
                        DIR_PATH | OFlags::NOFOLLOW,
                        Mode::empty(),
                    )?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(current)
    }
}

/// True for "no such directory": missing, or a component that is not a directory.
fn is_missing(e: &io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(Errno::NOENT.raw_os_error()) || code == Some(Errno::NOTDIR.raw_os_error())
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub fn stat_nofollow(dir: impl AsFd, name: &OsStr) -> io::Result<Option<rfs::Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir` and, if it is a directory, everything under it, never following a
/// symlink. Missing is fine.
pub fn remove_all(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    let dir = dir.as_fd();
    let Some(st) = stat_nofollow(dir, name)? else {
        return Ok(());
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let fd = rfs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for child in children(&fd)? {
            remove_all(&fd, &child)?;
        }
        match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    } else {
        match rfs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The names in an open directory, without `.` and `..`.
pub fn children(dir: &OwnedFd) -> io::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut names = Vec::new();
    let mut reader = rfs::Dir::read_from(dir)?;
    while let Some(entry) = reader.read() {
        let entry = entry?;
        let bytes = entry.file_name().to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(OsStr::from_bytes(bytes).to_owned());
        }
    }
    Ok(names)
}
