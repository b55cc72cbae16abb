//! Ownership and extended attributes: which xattrs a layer may set at all, and setting them
//! both on open files and, for what cannot be opened for writing, through /proc without
//! following the last component. Filesystems and rootless unpacks that refuse some xattrs
//! give warnings, not failures.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, XattrFlags};
use rustix::io::Errno;

use super::error::{EntryError, EntryResult};
use super::meta::Meta;
use super::rootless::{rootless_xattr, ROOTLESS_XATTR};
use super::{gid, uid, Applier};

impl Applier {
    /// chown (root) or the rootless ownership xattr, then the entry's xattrs. chown comes
    /// before chmod so setuid bits survive.
    pub(super) fn set_owner_and_xattrs(
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

    pub(super) fn clear_xattrs(&mut self, fd: &OwnedFd) -> EntryResult<()> {
        let Some(names) = list_xattrs(fd)? else {
            return Ok(());
        };
        for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let name = OsStr::from_bytes(name);
            let text = name.to_string_lossy();
            // The directory takes the entry's attributes: an old ownership record goes too.
            if xattr_allowed(&text) || text == ROOTLESS_XATTR {
                match rfs::fremovexattr(fd, name) {
                    Ok(()) | Err(Errno::NODATA) => {}
                    Err(e) => self.warnings.push(format!(
                        "could not remove the lower layer's xattr {text:?} from a directory \
                         the layer replaces: {e}"
                    )),
                }
            }
        }
        Ok(())
    }

    /// xattrs on what cannot be opened for writing (symlinks, devices, FIFOs): set through
    /// the parent's descriptor in /proc, never following the last component.
    pub(super) fn set_xattrs_at(
        &mut self,
        pfd: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
    ) -> EntryResult<()> {
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
}

/// Which xattrs a layer may set: never SELinux labels (the host's policy decides), NFSv4
/// ACLs, overlayfs's own attributes, or the rootless ownership record (strata writes that).
pub(super) fn xattr_allowed(name: &str) -> bool {
    !(name == "security.selinux"
        || name == "system.nfs4_acl"
        || name.starts_with("trusted.overlay.")
        || name.starts_with("user.overlay.")
        || name == ROOTLESS_XATTR)
}

/// The names of `fd`'s xattrs (NUL-separated), however long the list; `None` where the
/// filesystem has none.
fn list_xattrs(fd: &OwnedFd) -> EntryResult<Option<Vec<u8>>> {
    loop {
        let size = match rfs::flistxattr_query(fd) {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(EntryError::Io(e.into())),
        };
        let mut buf = vec![0u8; size];
        match rfs::flistxattr(fd, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            // The list grew between the two calls.
            Err(Errno::RANGE) => continue,
            Err(Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(EntryError::Io(e.into())),
        }
    }
}
