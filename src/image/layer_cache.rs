//! What each layer does to the tree, kept beside the layout so that `diff` reads a layer's
//! blob once: two images that share all but their top layers then cost the new layers and
//! the reading of a few small files, not the image.
//!
//! Why a cache and not a narrower comparison: A = S+a and B = S+b differ only at the paths a
//! and b touch, but what S has at those paths (a file's content digest above all) is known
//! only by reading S, every layer of it, to the end. So the work that scales with S is done
//! once per layer, not once per diff.
//!
//! Where: `LAYOUT/.strata-cache/layers/ALGORITHM/HEX`, per layer blob digest (the blob is
//! what is read and verified; keyed by it, a gzip and a zstd copy of one tar are two
//! entries). What: the layer's entries as tree operations, files with their sha256 and
//! position, as JSON after a first line holding the sha256 of the rest.
//!
//! Trust: an entry is written only after a read of its blob verified to the end, replaced
//! atomically, and used only when its checksum, version and layer digest all hold and its
//! paths are plain; anything else and the blob is read instead (and the entry rewritten).
//! Only the content digests for comparing trees come from it: `cat` and `export` read
//! bytes and positions from the blob itself. The directory is safe to delete at any time;
//! gc removes the entries of the blobs it removes; fsck leaves it alone (it is not part
//! of the OCI layout).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::digest::{Algorithm, Digest};
use crate::layer::names::layer_path;
use crate::layout::Layout;
use crate::spec::Descriptor;

use super::tree::{Kind, Node};

/// Bumped whenever what an entry holds changes: older ones are then ignored.
const VERSION: u32 = 2;
/// Entries larger than this are not read (a layer of millions of paths is read from its blob).
const LIMIT: u64 = 256 << 20;

/// One thing a layer does, in its order.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Removes a path and what is below it, from lower layers.
    Whiteout(PathBuf),
    /// Removes what is below a directory, from lower layers.
    Opaque(PathBuf),
    /// A hard link to what is at `target`.
    Link { path: PathBuf, target: PathBuf },
    /// A node, the `at`th entry of the layer.
    Node {
        path: PathBuf,
        node: Node,
        at: usize,
    },
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    layer: String,
    ops: Vec<StoredOp>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum StoredOp {
    Whiteout {
        path: String,
    },
    Opaque {
        path: String,
    },
    Link {
        path: String,
        target: String,
    },
    Node {
        path: String,
        at: usize,
        kind: Kind,
        mode: u32,
        uid: u64,
        gid: u64,
        size: u64,
        mtime: u64,
        /// A symlink's target, base64 (it need not be UTF-8).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<(u32, u32)>,
        /// Names and values, base64.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        xattrs: Vec<(String, String)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
    },
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A path as stored: base64 of its bytes, so any name a layer can hold fits.
fn put_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    b64().encode(path.as_os_str().as_bytes())
}

/// A stored path back, when it is one a layer could name (plain, relative, inside).
fn get_path(text: &str) -> Option<PathBuf> {
    let bytes = b64().decode(text).ok()?;
    let path = layer_path(&bytes).ok()??;
    use std::os::unix::ffi::OsStrExt;
    (path.as_os_str().as_bytes() == bytes.as_slice()).then_some(path)
}

fn file_of(layout: &Layout, digest: &Digest) -> PathBuf {
    layout.layer_cache_path(digest)
}

/// Whether the directories above `file` up to the layout are real directories: a link
/// planted there would send the cache's reads and writes outside the layout.
fn dirs_sound(layout: &Layout, file: &Path) -> bool {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == layout.root() {
            return true;
        }
        match std::fs::symlink_metadata(d) {
            Ok(m) if m.is_dir() => {}
            _ => return false,
        }
        dir = d.parent();
    }
    false
}

/// The operations of layer `desc`, when a sound cache entry holds them.
pub(crate) fn load(layout: &Layout, desc: &Descriptor) -> Option<Vec<Op>> {
    let digest: Digest = desc.digest.parse().ok()?;
    let path = file_of(layout, &digest);
    if !dirs_sound(layout, &path) {
        return None;
    }
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > LIMIT {
        return None;
    }
    let bytes = std::fs::read(&path).ok()?;
    let newline = bytes.iter().position(|b| *b == b'\n')?;
    let (head, body) = (&bytes[..newline], &bytes[newline + 1..]);
    if head != Digest::of_bytes(Algorithm::Sha256, body).hex().as_bytes() {
        return None;
    }
    let stored: Stored = serde_json::from_slice(body).ok()?;
    if stored.version != VERSION || stored.layer != desc.digest {
        return None;
    }
    stored.ops.into_iter().map(from_stored).collect()
}

fn from_stored(op: StoredOp) -> Option<Op> {
    Some(match op {
        StoredOp::Whiteout { path } => Op::Whiteout(get_path(&path)?),
        StoredOp::Opaque { path } => Op::Opaque(get_path(&path).or_else(|| {
            // The root made opaque: the one path that is empty.
            path.is_empty().then(PathBuf::new)
        })?),
        StoredOp::Link { path, target } => Op::Link {
            path: get_path(&path)?,
            target: get_path(&target)?,
        },
        StoredOp::Node {
            path,
            at,
            kind,
            mode,
            uid,
            gid,
            size,
            mtime,
            link,
            device,
            xattrs,
            digest,
        } => {
            let xattrs = xattrs
                .iter()
                .map(|(k, v)| Some((b64().decode(k).ok()?, b64().decode(v).ok()?)))
                .collect::<Option<Vec<_>>>()?;
            let mut node = super::tree::directory();
            node.kind = kind;
            node.mode = mode & 0o7777;
            node.uid = uid;
            node.gid = gid;
            node.size = size;
            node.mtime = mtime;
            node.link = match link {
                Some(text) => Some(b64().decode(text).ok()?),
                None => None,
            };
            node.device = device;
            node.xattrs = xattrs;
            node.digest = digest;
            Op::Node {
                path: get_path(&path)?,
                node,
                at,
            }
        }
    })
}

fn to_stored(op: &Op) -> StoredOp {
    match op {
        Op::Whiteout(path) => StoredOp::Whiteout {
            path: put_path(path),
        },
        Op::Opaque(path) => StoredOp::Opaque {
            path: put_path(path),
        },
        Op::Link { path, target } => StoredOp::Link {
            path: put_path(path),
            target: put_path(target),
        },
        Op::Node { path, node, at } => StoredOp::Node {
            path: put_path(path),
            at: *at,
            kind: node.kind,
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            size: node.size,
            mtime: node.mtime,
            link: node.link.as_ref().map(|l| b64().encode(l)),
            device: node.device,
            xattrs: node
                .xattrs
                .iter()
                .map(|(k, v)| (b64().encode(k), b64().encode(v)))
                .collect(),
            digest: node.digest.clone(),
        },
    }
}

/// Keeps the operations of layer `desc` (read from its blob, verified to the end). A cache
/// that cannot be written (a read-only layout, a full disk) only costs the next read.
pub(crate) fn store(layout: &Layout, desc: &Descriptor, ops: &[Op]) {
    let Ok(digest) = desc.digest.parse::<Digest>() else {
        return;
    };
    let path = file_of(layout, &digest);
    let stored = Stored {
        version: VERSION,
        layer: desc.digest.clone(),
        ops: ops.iter().map(to_stored).collect(),
    };
    let Ok(body) = serde_json::to_vec(&stored) else {
        return;
    };
    let Some(dir) = path.parent() else {
        return;
    };
    // One level at a time, each checked before the next is made in it: create_dir_all
    // would make directories wherever a planted link points.
    let mut below: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| *d != layout.root())
        .collect();
    below.reverse();
    for d in below {
        let made = match std::fs::create_dir(d) {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::AlreadyExists,
        };
        let real = std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir());
        if !made || !real {
            return;
        }
    }
    let check = Digest::of_bytes(Algorithm::Sha256, &body);
    let _ = crate::ioext::replace_file(&path, |w| {
        let io = |e| crate::error::Error::Io {
            path: path.clone(),
            source: e,
        };
        w.write_all(check.hex().as_bytes()).map_err(io)?;
        w.write_all(b"\n").map_err(io)?;
        w.write_all(&body).map_err(io)
    });
}
