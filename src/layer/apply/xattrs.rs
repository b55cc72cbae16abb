//! Ownership and extended attributes: which xattrs a layer may set at all, and setting them
//! both on open files and, for what cannot be opened for writing, through /proc without
//! following the last component. Filesystems and rootless unpacks that refuse some xattrs
//! give warnings, not failures.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, XattrFlags};
use rustix::io::Errno;

use super::acl::acl_text_to_xattr;
use super::error::{EntryError, EntryResult};
use super::meta::Meta;
use super::rootless::{rootless_xattr, ROOTLESS_XATTR};
use super::{gid, uid, Applier};
use crate::layer::pax::PaxRecords;

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

/// Where an xattr came from: when a writer gives one xattr in several forms (GNU tar
/// writes an ACL as text and as the xattr, bsdtar every xattr as LIBARCHIVE and SCHILY
/// records), the exact bytes win over a conversion.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Form {
    AclText,
    Libarchive,
    Schily,
}

/// The xattrs an entry's PAX records ask for, names as bytes: `SCHILY.xattr.NAME` (values
/// as stored), `LIBARCHIVE.xattr.NAME` (bsdtar: name URL-encoded, value base64) and the
/// POSIX ACLs of `SCHILY.acl.access`/`default` text (see [`super::acl`]). Not filtered by
/// [`xattr_allowed`]. An xattr that cannot be set as written is an error naming its key.
pub(crate) fn entry_xattrs(pax: &PaxRecords) -> Result<NamedValues, String> {
    let mut found: BTreeMap<Vec<u8>, (Form, Vec<u8>)> = BTreeMap::new();
    let mut acl_texts = Vec::new();
    for (key, value) in pax.iter() {
        let shown = || String::from_utf8_lossy(key).into_owned();
        let (name, form, value) = if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            (name.to_vec(), Form::Schily, value.to_vec())
        } else if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
            let name = url_decode(name).ok_or_else(|| format!("PAX {}: bad %-escape", shown()))?;
            let value = LIBARCHIVE_BASE64
                .decode(value)
                .map_err(|e| format!("PAX {}: the value is not base64: {e}", shown()))?;
            (name, Form::Libarchive, value)
        } else if key == b"SCHILY.acl.access" || key == b"SCHILY.acl.default" {
            if !value.is_empty() {
                acl_texts.push((key, value));
            }
            continue;
        } else {
            continue;
        };
        if name.is_empty() || name.contains(&0) {
            return Err(format!(
                "PAX {}: an xattr name that is empty or holds a NUL cannot be set",
                shown()
            ));
        }
        match found.get(&name) {
            Some((had, _)) if *had > form => {}
            _ => {
                found.insert(name, (form, value));
            }
        }
    }
    // Text only where the xattr is not given as bytes: GNU tar --xattrs writes both, with
    // names in the text that only the bytes resolve.
    for (key, text) in acl_texts {
        let name: &[u8] = if key == b"SCHILY.acl.access" {
            b"system.posix_acl_access"
        } else {
            b"system.posix_acl_default"
        };
        if !found.contains_key(name) {
            let value = acl_text_to_xattr(text)
                .map_err(|why| format!("PAX {}: {why}", String::from_utf8_lossy(key)))?;
            found.insert(name.to_vec(), (Form::AclText, value));
        }
    }
    Ok(found.into_iter().map(|(k, (_, v))| (k, v)).collect())
}

/// xattr names and values, as bytes.
pub(crate) type NamedValues = Vec<(Vec<u8>, Vec<u8>)>;

/// libarchive writes base64 without padding.
const LIBARCHIVE_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `%XX` escapes decoded (libarchive escapes `%`, `=`, blanks and non-ASCII bytes).
fn url_decode(name: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        if name[i] == b'%' {
            let hex = std::str::from_utf8(name.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(name[i]);
            i += 1;
        }
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libarchive_schily_and_acl_text_forms() {
        let pax = PaxRecords(vec![
            (b"LIBARCHIVE.xattr.user.a%3Db".to_vec(), b"AP8QCg".to_vec()),
            (b"LIBARCHIVE.xattr.user.both".to_vec(), b"eA".to_vec()),
            (b"SCHILY.xattr.user.both".to_vec(), b"exact".to_vec()),
            (
                b"SCHILY.acl.access".to_vec(),
                b"user::rw-,group::r--,other::r--".to_vec(),
            ),
            (b"SCHILY.acl.default".to_vec(), b"".to_vec()),
        ]);
        let got = entry_xattrs(&pax).unwrap();
        assert_eq!(
            got,
            [
                (
                    b"system.posix_acl_access".to_vec(),
                    crate::layer::apply::acl::acl_text_to_xattr(
                        b"user::rw-\ngroup::r--\nother::r--"
                    )
                    .unwrap()
                ),
                (b"user.a=b".to_vec(), vec![0, 0xff, 0x10, 0x0a]),
                (b"user.both".to_vec(), b"exact".to_vec()),
            ]
        );
        for bad in [
            (&b"LIBARCHIVE.xattr.user.x%G0"[..], &b"eA"[..]),
            (b"LIBARCHIVE.xattr.user.x", b"!!"),
            (b"SCHILY.xattr.user.a\0b", b"v"),
            (b"SCHILY.acl.access", b"user:alice:rwx"),
        ] {
            let pax = PaxRecords(vec![(bad.0.to_vec(), bad.1.to_vec())]);
            assert!(entry_xattrs(&pax).is_err(), "{bad:?}");
        }
    }
}
