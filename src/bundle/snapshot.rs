//! A record of an unpacked tree, kept in the bundle so repack can tell what changed from
//! metadata alone (as git's index does): per path its type, mode, owner, size, mtime with
//! nanoseconds, inode, link target and xattrs.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use rustix::fs::FileType;

use crate::error::{Error, IoContext, Result};
use crate::layer::source::{Cursor, SourceTree};

/// One path of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// Path relative to the rootfs, as UTF-8 when it is, else base64 of its bytes in
    /// `pathB64`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    /// Base64 of a non-UTF-8 path.
    #[serde(rename = "pathB64", skip_serializing_if = "Option::is_none", default)]
    pub path_b64: Option<String>,
    /// `file`, `dir`, `symlink`, `char`, `block`, `fifo` or `socket`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: i64,
    /// Status change time, seconds: every write, chmod, chown or xattr change moves it and
    /// nobody can set it, so an unchanged ctime means an unchanged file.
    pub ctime: i64,
    /// Status change time, nanoseconds.
    pub ctime_nsec: i64,
    /// Inode number (hard links share one).
    pub ino: u64,
    /// Symlink target.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub link: Option<String>,
    /// Device number (devices).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rdev: Option<u64>,
    /// xattrs, values base64.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub xattrs: BTreeMap<String, String>,
}

impl SnapshotEntry {
    /// The path's bytes, if it is a plain relative path (see [`read`]); else why not.
    fn checked_path(&self) -> std::result::Result<Vec<u8>, String> {
        let bytes = match (&self.path, &self.path_b64) {
            (Some(p), _) => p.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| format!("pathB64 is not base64 ({e})"))?,
            (None, None) => return Err("it records no path".into()),
        };
        let plain = !bytes.is_empty()
            && !bytes.contains(&0)
            && bytes
                .split(|b| *b == b'/')
                .all(|name| !name.is_empty() && name != b"." && name != b"..");
        if !plain {
            return Err(format!(
                "path {:?} is not a plain relative path inside the rootfs",
                String::from_utf8_lossy(&bytes)
            ));
        }
        Ok(bytes)
    }

    /// The path as bytes-faithful `PathBuf`.
    pub fn path_buf(&self) -> PathBuf {
        match (&self.path, &self.path_b64) {
            (Some(p), _) => PathBuf::from(p),
            (None, Some(b)) => PathBuf::from(OsStr::from_bytes(
                &base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_default(),
            )),
            (None, None) => PathBuf::new(),
        }
    }
}

/// Walks `rootfs` (never following symlinks, see [`SourceTree`]) and records every path,
/// sorted by path bytes.
pub fn take(rootfs: impl AsRef<Path>) -> Result<Vec<SnapshotEntry>> {
    let rootfs = rootfs.as_ref();
    let tree = SourceTree::open(rootfs, false)?;
    let mut cursor = tree.cursor();
    tree.walk()?
        .iter()
        .map(|(rel, _)| entry(&mut cursor, rel))
        .collect()
}

/// The record of one path of the cursor's tree, read relative to its parent directory.
pub fn entry(cursor: &mut Cursor<'_>, rel: &Path) -> Result<SnapshotEntry> {
    let meta = cursor.lstat(rel)?;
    let kind = match meta.kind {
        FileType::Directory => "dir",
        FileType::Symlink => "symlink",
        FileType::CharacterDevice => "char",
        FileType::BlockDevice => "block",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        _ => "file",
    };
    let link = if meta.kind == FileType::Symlink {
        Some(String::from_utf8_lossy(&cursor.read_link(rel)?).into_owned())
    } else {
        None
    };
    let bytes = rel.as_os_str().as_bytes();
    let (path, path_b64) = match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s.to_owned()), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    };
    let is_device = matches!(meta.kind, FileType::CharacterDevice | FileType::BlockDevice);
    Ok(SnapshotEntry {
        path,
        path_b64,
        kind: kind.to_owned(),
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        size: if meta.kind == FileType::RegularFile {
            meta.size
        } else {
            0
        },
        mtime: meta.mtime,
        mtime_nsec: meta.mtime_nsec,
        ctime: meta.ctime,
        ctime_nsec: meta.ctime_nsec,
        ino: meta.ino,
        link,
        rdev: is_device.then_some(meta.rdev),
        // Values this user cannot read are left out (the snapshot is JSON lines: base64).
        xattrs: cursor
            .xattrs(rel, true)?
            .into_iter()
            .map(|(name, value)| {
                (
                    name,
                    base64::engine::general_purpose::STANDARD.encode(value),
                )
            })
            .collect(),
    })
}

/// Writes a snapshot as JSON lines.
pub fn write(entries: &[SnapshotEntry], path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    // Replaced whole: a repack killed while writing must not leave half a snapshot, which
    // would make the next repack see every missing line's file as added.
    crate::ioext::replace_file(path, |out| {
        for e in entries {
            serde_json::to_writer(&mut *out, e).map_err(Error::bad_json(path.display()))?;
            out.write_all(b"\n").at(path)?;
        }
        Ok(())
    })
}

/// Reads a snapshot written by [`write()`]. Every path must be one [`take`] can record: a
/// plain relative path (names joined by single `/`, none empty, `.` or `..`), each once.
/// Repack writes a whiteout for every recorded path that is gone, so a crafted line such as
/// `..` or `a/..` would otherwise put `../.wh.` in the layer, and an empty path `.wh.`,
/// which some appliers read as the deletion of the directory itself.
pub fn read(path: impl AsRef<Path>) -> Result<Vec<SnapshotEntry>> {
    let path = path.as_ref();
    let file = fs::File::open(path).at(path)?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.at(path)?;
        let what = format!("{} line {}", path.display(), i + 1);
        let entry: SnapshotEntry =
            serde_json::from_str(&line).map_err(Error::bad_json(what.clone()))?;
        let rel = entry.checked_path().map_err(|reason| Error::Invalid {
            what: what.clone(),
            reason,
        })?;
        if !seen.insert(rel) {
            return Err(Error::Invalid {
                what,
                reason: "the path is recorded twice".into(),
            });
        }
        out.push(entry);
    }
    Ok(out)
}
