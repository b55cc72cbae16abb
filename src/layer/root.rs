//! Operations on paths inside a rootfs that can never reach outside it. Parents are resolved
//! with `openat2(RESOLVE_IN_ROOT)`, so `..` and absolute symlinks stay inside the root as in a
//! chroot; the last component is never followed (every call works on a parent directory fd
//! and a single name). Missing parents are created, and a parent that is not a directory is
//! replaced by one, as umoci does.
//!
//! Where `openat2` is missing (kernels before 5.6, seccomp profiles of older container
//! runtimes that answer ENOSYS or EPERM), [`resolve_in_userspace`] gives the same answers: it
//! only ever descends by one name with `O_NOFOLLOW`, reads each symlink itself, and takes
//! `..` by dropping the last directory it holds, so the kernel never walks a `..` or a link
//! for it. Unlike `openat2` it cannot notice a directory being moved out of the root while
//! it walks, which needs someone else writing in the rootfs at the same time; a hostile
//! image alone cannot. `STRATA_RESOLVE=userspace` forces it (for tests and for comparing).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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
    pub fn open(path: impl AsRef<Path>) -> io::Result<Root> {
        let path = path.as_ref();
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
        if !resolving_in_userspace() {
            loop {
                match rfs::openat2(&self.fd, target, DIR_PATH, Mode::empty(), IN_ROOT) {
                    // The kernel asks for a retry when a rename raced the lookup.
                    Err(Errno::AGAIN) => continue,
                    Err(Errno::NOSYS | Errno::PERM) => {
                        OPENAT2_MISSING.store(true, Ordering::Relaxed);
                        break;
                    }
                    other => return other.map_err(io::Error::from),
                }
            }
        }
        resolve_in_userspace(&self.fd, target)
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

/// Set once `openat2` has answered that it is not there.
static OPENAT2_MISSING: AtomicBool = AtomicBool::new(false);

/// How paths under a rootfs are being resolved in this process: "openat2" or "userspace".
pub fn resolution() -> &'static str {
    if resolving_in_userspace() {
        "userspace"
    } else {
        "openat2"
    }
}

/// Set by [`force_userspace_resolution`].
static FORCED: AtomicBool = AtomicBool::new(false);

/// Resolves paths under a rootfs step by step in userspace even where `openat2` works (the
/// same results; for testing the fallback, or where a seccomp profile makes `openat2` fail
/// in a way that is not reported as missing). The CLI sets it from `STRATA_RESOLVE`.
pub fn force_userspace_resolution(forced: bool) {
    FORCED.store(forced, Ordering::Relaxed);
}

fn resolving_in_userspace() -> bool {
    FORCED.load(Ordering::Relaxed) || OPENAT2_MISSING.load(Ordering::Relaxed)
}

/// Symlinks followed in one resolution before giving up with ELOOP, as the kernel does.
pub(crate) const MAX_SYMLINKS: usize = 40;

/// The directory `path` under `root` as `openat2(RESOLVE_IN_ROOT)` would open it (an `O_PATH`
/// handle): `..` never above `root`, absolute symlinks relative to it, every symlink on the
/// way followed, the result a directory (else ENOTDIR), ENOENT for a missing component,
/// ELOOP after [`MAX_SYMLINKS`] links.
pub fn resolve_in_userspace(root: &OwnedFd, path: &Path) -> io::Result<OwnedFd> {
    let reached = walk_in_root(root, path)?;
    if FileType::from_raw_mode(reached.stat.st_mode) != FileType::Directory {
        return Err(Errno::NOTDIR.into());
    }
    Ok(reached.fd)
}

/// What [`walk_in_root`] reached.
pub(crate) struct Reached {
    /// An `O_PATH` handle on it.
    pub fd: OwnedFd,
    /// Its metadata.
    pub stat: rfs::Stat,
    /// For anything but a directory: the directory it is in (`None`: the root) and its name
    /// there, so that it can be opened for real by name, never following a link.
    pub entry: Option<(Option<OwnedFd>, OsString)>,
}

/// Walks `path` under `root` with chroot semantics (see [`resolve_in_userspace`]), following
/// every symlink, the last component's too. Components before the last must be
/// directories (ENOTDIR); the last may be anything.
pub(crate) fn walk_in_root(root: &OwnedFd, path: &Path) -> io::Result<Reached> {
    // The directories walked into below the root; `..` pops one.
    let mut held: Vec<OwnedFd> = Vec::new();
    let mut pending: VecDeque<OsString> = VecDeque::new();
    push_front_components(&mut pending, path, &mut held);
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            held.pop();
            continue;
        }
        let here = held.last().unwrap_or(root);
        let fd = rfs::openat(here, &*name, DIR_PATH_ANY | OFlags::NOFOLLOW, Mode::empty())?;
        let stat = rfs::fstat(&fd)?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => held.push(fd),
            FileType::Symlink => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP.into());
                }
                // Read through the handle just opened, so the link read is the link checked.
                let target = rfs::readlinkat(&fd, "", Vec::new())?;
                if target.as_bytes().is_empty() {
                    return Err(Errno::NOENT.into());
                }
                let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                push_front_components(&mut pending, target, &mut held);
            }
            _ if pending.is_empty() => {
                return Ok(Reached {
                    fd,
                    stat,
                    entry: Some((held.pop(), name)),
                })
            }
            _ => return Err(Errno::NOTDIR.into()),
        }
    }
    let fd = match held.pop() {
        Some(fd) => fd,
        None => rfs::openat(root, ".", DIR_PATH, Mode::empty())?,
    };
    let stat = rfs::fstat(&fd)?;
    Ok(Reached {
        fd,
        stat,
        entry: None,
    })
}

/// An `O_PATH` handle on anything (a symlink too, with `NOFOLLOW`), checked by the caller.
const DIR_PATH_ANY: OFlags = OFlags::PATH.union(OFlags::CLOEXEC);

/// Puts `path`'s components in front of `pending`; an absolute path starts again at the root.
fn push_front_components(pending: &mut VecDeque<OsString>, path: &Path, held: &mut Vec<OwnedFd>) {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => {
                held.clear();
                names.clear();
            }
            Component::CurDir => {}
            Component::ParentDir => names.push(OsString::from("..")),
            Component::Normal(n) => names.push(n.to_owned()),
        }
    }
    for name in names.into_iter().rev() {
        pending.push_front(name);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A tree full of the links a hostile image plants, beside an `outside` directory that
    /// must never be reached.
    fn tricky_tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside/a/b/c")).unwrap();
        std::fs::write(root.join("f"), b"file").unwrap();
        let links: &[(&str, &str)] = &[
            ("abs", "/a/b"),
            ("rel", "a/b"),
            ("up", "../../../.."),
            ("upabs", "../outside/a"),
            ("chain1", "chain2"),
            ("chain2", "./a/"),
            ("loop1", "loop2"),
            ("loop2", "loop1"),
            ("tofile", "f"),
            ("dangling", "nowhere/else"),
            ("a/b/back", "../.."),
            ("a/b/rootlink", "/"),
            ("a/b/hostabs", "/../../outside"),
            ("selfdir", "."),
        ];
        for (name, target) in links {
            symlink(target, root.join(name)).unwrap();
        }
        // Chains of exactly the kernel's limit and one more.
        for (prefix, n) in [("ok", MAX_SYMLINKS), ("over", MAX_SYMLINKS + 1)] {
            for i in 0..n {
                let next = if i + 1 == n {
                    "a".to_owned()
                } else {
                    format!("{prefix}{}", i + 1)
                };
                symlink(&next, root.join(format!("{prefix}{i}"))).unwrap();
            }
        }
        (dir, root)
    }

    const PATHS: &[&str] = &[
        ".",
        "a",
        "a/b",
        "a/b/c",
        "abs",
        "abs/c",
        "rel/c",
        "up",
        "up/a/b",
        "upabs",
        "chain1/b",
        "loop1",
        "loop1/x",
        "tofile",
        "f",
        "f/x",
        "dangling",
        "a/b/back/a",
        "a/b/rootlink/a/b/c",
        "../a",
        "/a/b",
        "a/./b/../b/c",
        "a/../../../a",
        "missing",
        "missing/x",
        "a/b/hostabs",
        "a/b/hostabs/a",
        "selfdir/selfdir/a",
        "ok0",
        "ok0/b",
        "over0",
        "a/b/c/../../../../f/..",
    ];

    /// (device, inode) of the directory, or the errno.
    fn outcome(r: io::Result<OwnedFd>) -> Result<(u64, u64), i32> {
        match r {
            Ok(fd) => {
                let st = rfs::fstat(&fd).unwrap();
                Ok((st.st_dev, st.st_ino))
            }
            Err(e) => Err(e.raw_os_error().unwrap()),
        }
    }

    fn id(path: &Path) -> Result<(u64, u64), i32> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).unwrap();
        Ok((m.dev(), m.ino()))
    }

    #[test]
    fn userspace_resolution_stays_in_the_root() {
        let (_dir, root_path) = tricky_tree();
        let root = Root::open(&root_path).unwrap();
        let us = |p: &str| outcome(resolve_in_userspace(&root.fd, Path::new(p)));
        let enoent = Err(Errno::NOENT.raw_os_error());
        let enotdir = Err(Errno::NOTDIR.raw_os_error());
        let eloop = Err(Errno::LOOP.raw_os_error());
        assert_eq!(us("."), id(&root_path));
        assert_eq!(us("up"), id(&root_path));
        assert_eq!(us("up/a/b"), id(&root_path.join("a/b")));
        assert_eq!(us("../a"), id(&root_path.join("a")));
        assert_eq!(us("a/b/rootlink/a/b/c"), id(&root_path.join("a/b/c")));
        assert_eq!(us("a/b/hostabs/a"), enoent, "reached the host's outside/");
        assert_eq!(us("upabs"), enoent, "reached the host's outside/a");
        assert_eq!(us("abs/c"), id(&root_path.join("a/b/c")));
        assert_eq!(us("chain1/b"), id(&root_path.join("a/b")));
        assert_eq!(us("tofile"), enotdir);
        assert_eq!(us("f/x"), enotdir);
        assert_eq!(us("dangling"), enoent);
        assert_eq!(us("loop1"), eloop);
        assert_eq!(us("ok0/b"), id(&root_path.join("a/b")));
        assert_eq!(us("over0"), eloop);
    }

    #[test]
    fn userspace_resolution_answers_as_openat2_does() {
        let (_dir, root_path) = tricky_tree();
        let root = Root::open(&root_path).unwrap();
        let kernel = |p: &str| {
            outcome(
                rfs::openat2(&root.fd, p, DIR_PATH, Mode::empty(), IN_ROOT)
                    .map_err(io::Error::from),
            )
        };
        if kernel(".") == Err(Errno::NOSYS.raw_os_error()) {
            // Nothing to compare with on this kernel; the expectations above still ran.
            eprintln!("openat2 is missing here: comparison skipped");
            return;
        }
        for p in PATHS {
            assert_eq!(
                outcome(resolve_in_userspace(&root.fd, Path::new(p))),
                kernel(p),
                "{p}"
            );
        }
    }
}
