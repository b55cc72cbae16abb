//! Which entry types and PAX records strata accepts. Anything it cannot apply faithfully
//! is refused by name (unpack and add-layer's check alike), never dropped to give a tree
//! other than the one the writer meant.
//!
//! Entry types applied: regular (`0`, NUL, contiguous `7`), hardlink `1`, symlink `2`,
//! character and block devices `3`/`4`, directory `5`, FIFO `6`, GNU sparse `S`; read as
//! the extensions they are: PAX `x`/`g`, GNU long names `L`/`K`. Refused: every other type
//! (GNU dumpdir `D`, multi-volume `M`, old long names `N`, volume label `V`, vendor types).
//!
//! PAX records applied: `path`, `linkpath`, `size`, `uid`, `gid`, `mtime`, `atime`,
//! `SCHILY.xattr.*`, `LIBARCHIVE.xattr.*`, `SCHILY.acl.access`/`default`,
//! `SCHILY.devmajor`/`devminor`, and the `GNU.sparse.*` records of sparse formats 0.0, 0.1
//! and 1.0. Accepted because they change nothing strata could set: `ctime` and
//! `LIBARCHIVE.creationtime` (no call sets them), `uname`/`gname` (strata goes by ids, as
//! docker and containerd do), `comment`, `charset`, `hdrcharset` (names are taken as
//! bytes whatever it says), `SCHILY.dev`/`ino`/`nlink` (the writer's inode numbers:
//! hardlinks are entries of their own), `LIBARCHIVE.symlinktype` (Windows' file or
//! directory symlinks; Linux has one kind). Refused: every other key, `SCHILY.fflags`
//! included (chattr flags such as immutable are no part of a layer's tree as layer.md
//! defines it, and would break later layers), as are NFSv4 ACLs (`SCHILY.acl.ace`).

use super::TarEntry;

const APPLIED: &[&str] = &[
    "path",
    "linkpath",
    "size",
    "uid",
    "gid",
    "mtime",
    "atime",
    "SCHILY.acl.access",
    "SCHILY.acl.default",
    "SCHILY.devmajor",
    "SCHILY.devminor",
    "GNU.sparse.major",
    "GNU.sparse.minor",
    "GNU.sparse.name",
    "GNU.sparse.realsize",
    "GNU.sparse.size",
    "GNU.sparse.numblocks",
    "GNU.sparse.offset",
    "GNU.sparse.numbytes",
    "GNU.sparse.map",
];

const HARMLESS: &[&str] = &[
    "ctime",
    "LIBARCHIVE.creationtime",
    "uname",
    "gname",
    "comment",
    "charset",
    "hdrcharset",
    "SCHILY.dev",
    "SCHILY.ino",
    "SCHILY.nlink",
    "LIBARCHIVE.symlinktype",
];

const XATTR_PREFIXES: &[&str] = &["SCHILY.xattr.", "LIBARCHIVE.xattr."];

/// Whether a PAX key is one strata applies or knows to be harmless.
pub(super) fn key_known(key: &[u8]) -> bool {
    APPLIED.iter().chain(HARMLESS).any(|k| k.as_bytes() == key)
        || XATTR_PREFIXES.iter().any(|p| key.starts_with(p.as_bytes()))
}

/// Why strata cannot apply `key` of a global header (which would apply to every entry
/// after it); only the harmless keys are taken there.
pub(super) fn global_key_refused(key: &[u8]) -> Option<String> {
    if HARMLESS.iter().any(|k| k.as_bytes() == key) {
        return None;
    }
    Some(format!(
        "global PAX record {:?}: strata applies no record to every entry",
        String::from_utf8_lossy(key)
    ))
}

impl<R> TarEntry<'_, R> {
    /// Why strata cannot apply this entry as written: an entry type or a PAX record it
    /// does not know, by name.
    pub fn unsupported(&self) -> Option<String> {
        use tar::EntryType as T;
        let kind = self.header.entry_type();
        let applied = matches!(
            kind,
            T::Regular
                | T::Continuous
                | T::Link
                | T::Symlink
                | T::Char
                | T::Block
                | T::Directory
                | T::Fifo
                | T::GNUSparse
        );
        if !applied {
            let byte = kind.as_byte();
            let what = match byte {
                b'D' => " (GNU incremental dump directory)",
                b'M' => " (GNU multi-volume continuation)",
                b'N' => " (old GNU long names)",
                b'V' => " (GNU volume label)",
                _ => "",
            };
            let shown = if byte.is_ascii_graphic() {
                format!("'{}'", char::from(byte))
            } else {
                format!("byte {byte}")
            };
            return Some(format!(
                "tar entry type {shown}{what} is not one strata can apply"
            ));
        }
        self.pax.iter().find(|(k, _)| !key_known(k)).map(|(k, _)| {
            format!(
                "PAX record {:?} is not one strata can apply (see README, Unpacking)",
                String::from_utf8_lossy(k)
            )
        })
    }
}
