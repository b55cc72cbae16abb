//! Opening the files of a layout without following a symbolic link anywhere below the layout
//! directory. A layout may come from anyone (an unpacked archive, a shared directory): a
//! link named `blobs/sha256/<hex>` pointing at `/etc/shadow` must not make export or copy
//! carry that file away, and a FIFO or device under a blob's name must not hang or poke a
//! reader. The layout directory itself is what the user named, so it may be a link.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::error::{Error, Result};

/// Why a file of a layout was not opened.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Nothing by that name.
    Missing(PathBuf),
    /// A symbolic link where a file or directory of the layout belongs.
    Symlink(PathBuf),
    /// Something other than what belongs there (a FIFO, a device, a directory ...).
    WrongType(PathBuf, &'static str),
    /// Any other failure (permission denied ...).
    Io(PathBuf, io::Error),
}

impl Refused {
    /// The path at fault.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Refused::Missing(p)
            | Refused::Symlink(p)
            | Refused::WrongType(p, _)
            | Refused::Io(p, _) => p,
        }
    }

    /// What is wrong, for a message that names the path separately.
    pub(crate) fn reason(&self) -> String {
        match self {
            Refused::Missing(_) => "missing".into(),
            Refused::Symlink(_) => {
                "is a symbolic link (strata never follows links inside a layout)".into()
            }
            Refused::WrongType(_, what) => format!("is not a regular file (it is {what})"),
            Refused::Io(_, e) => e.to_string(),
        }
    }

    /// The library error for a file of the layout's structure (`index.json`, `oci-layout`).
    pub(crate) fn into_layout_error(self) -> Error {
        match self {
            Refused::Io(path, source) => Error::Io { path, source },
            other => Error::BadLayout {
                reason: other.reason(),
                path: other.path().to_owned(),
            },
        }
    }
}

/// Opens `root/components...` for reading: every directory on the way and the file itself
/// must be what they claim (directories, then a regular file), never a link. The type is
/// checked before opening (so a device is never opened) and again on the open descriptor
/// (so a swap in between is caught); O_NONBLOCK keeps a FIFO swapped in from blocking.
pub(crate) fn open_file(root: &Path, components: &[&str]) -> Result<File, Refused> {
    let (last, dirs) = components
        .split_last()
        .expect("a file path has at least one component");
    let mut path = root.to_owned();
    let mut dir: OwnedFd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| classify_root(root, e))?;
    for name in dirs {
        path.push(name);
        expect_type(dir.as_fd(), *name, &path, FileType::Directory)?;
        dir = rustix::fs::openat(
            &dir,
            *name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| classify(dir.as_fd(), name, &path, e))?;
    }
    path.push(last);
    expect_type(dir.as_fd(), *last, &path, FileType::RegularFile)?;
    let fd = rustix::fs::openat(
        &dir,
        *last,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| classify(dir.as_fd(), last, &path, e))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| Refused::Io(path.clone(), e.into()))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(Refused::WrongType(path, describe(kind)));
    }
    // Reads of a regular file never block, so O_NONBLOCK changes nothing from here on.
    Ok(File::from(fd))
}

/// Checks that `path` is a `wanted` without following it (its parent may be a link).
pub(crate) fn check_type(path: &Path, wanted: FileType) -> Result<(), Refused> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or(path.as_os_str());
    let dir = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| classify_root(parent, e))?;
    expect_type(dir.as_fd(), name, path, wanted)
}

fn expect_type(
    dir: std::os::fd::BorrowedFd<'_>,
    name: impl rustix::path::Arg,
    path: &Path,
    wanted: FileType,
) -> Result<(), Refused> {
    let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
        if e == rustix::io::Errno::NOENT {
            Refused::Missing(path.to_owned())
        } else {
            Refused::Io(path.to_owned(), e.into())
        }
    })?;
    match FileType::from_raw_mode(stat.st_mode) {
        kind if kind == wanted => Ok(()),
        FileType::Symlink => Err(Refused::Symlink(path.to_owned())),
        kind if wanted == FileType::Directory => Err(Refused::Io(
            path.to_owned(),
            io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("not a directory (it is {})", describe(kind)),
            ),
        )),
        kind => Err(Refused::WrongType(path.to_owned(), describe(kind))),
    }
}

/// Turns a failed `openat` into what it means, looking again without following links.
fn classify(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &str,
    path: &Path,
    e: rustix::io::Errno,
) -> Refused {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
            Refused::Symlink(path.to_owned())
        }
        Err(rustix::io::Errno::NOENT) => Refused::Missing(path.to_owned()),
        _ => Refused::Io(path.to_owned(), e.into()),
    }
}

fn classify_root(root: &Path, e: rustix::io::Errno) -> Refused {
    if e == rustix::io::Errno::NOENT {
        Refused::Missing(root.to_owned())
    } else {
        Refused::Io(root.to_owned(), e.into())
    }
}

fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::CWD;

    fn read(root: &Path, components: &[&str]) -> Result<Vec<u8>, Refused> {
        use std::io::Read;
        let mut out = Vec::new();
        open_file(root, components)?
            .read_to_end(&mut out)
            .map_err(|e| Refused::Io(root.to_owned(), e))?;
        Ok(out)
    }

    #[test]
    fn refuses_links_and_special_files_anywhere_below_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::fs::write(root.join("blobs/sha256/ok"), b"fine").unwrap();
        std::fs::write(root.join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("blobs/sha256/link")).unwrap();
        std::os::unix::fs::symlink(root.join("blobs"), root.join("linked")).unwrap();
        rustix::fs::mknodat(
            CWD,
            root.join("blobs/sha256/fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert_eq!(read(root, &["blobs", "sha256", "ok"]).unwrap(), b"fine");
        assert!(matches!(
            read(root, &["blobs", "sha256", "link"]),
            Err(Refused::Symlink(p)) if p.ends_with("blobs/sha256/link")
        ));
        assert!(matches!(
            read(root, &["linked", "sha256", "ok"]),
            Err(Refused::Symlink(p)) if p.ends_with("linked")
        ));
        assert!(matches!(
            read(root, &["blobs", "sha256", "fifo"]),
            Err(Refused::WrongType(_, "a FIFO"))
        ));
        assert!(matches!(
            read(root, &["blobs", "sha256", "none"]),
            Err(Refused::Missing(_))
        ));
        assert!(matches!(
            check_type(&root.join("linked"), FileType::Directory),
            Err(Refused::Symlink(_))
        ));
    }
}
