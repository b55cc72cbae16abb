//! An image's merged filesystem as metadata, built from its layers without unpacking
//! (whiteouts and opaque directories applied as unpack applies them), for `strata files`
//! and `strata cat`: which paths there are, what each is, and which layer holds a file's
//! bytes.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};
use crate::layer::names::{entry_name, layer_path, EntryName};
use crate::layer::tarstream::{TarEntry, TarStream};
use crate::layer::Compression;
use crate::layout::walk::blob_ref;
use crate::layout::Layout;

use super::layer_cache::{self, Op};
use super::layer_pipe::read_layer;
use crate::spec::{Descriptor, Manifest};

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A FIFO.
    Fifo,
}

/// One path of the merged filesystem.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Bytes of a file's content.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: u64,
    /// A symlink's target, the layer's bytes (a target need not be UTF-8; JSON shows it
    /// lossily, as it shows names).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "lossy_link")]
    pub link: Option<Vec<u8>>,
    /// A device's major and minor numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<(u32, u32)>,
    /// Extended attributes (name, value), as unpack applies them.
    #[serde(skip)]
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// A file's content digest, when the tree was read with [`Tree::hashed`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Where a file's bytes are: the layer (0 is the lowest) and the entry's position in it.
    #[serde(skip)]
    content: Option<(usize, usize)>,
    /// The entry that made a node other than a directory (layer, position): names sharing
    /// it are hard links of one inode, as unpack makes them.
    #[serde(skip)]
    entry: Option<(usize, usize)>,
}

/// The merged filesystem: paths relative to the root, in byte order.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    /// Every path and what it is.
    pub nodes: BTreeMap<PathBuf, Node>,
    layers: Vec<(Descriptor, Compression)>,
    hash: bool,
}

pub(crate) fn layer_error(desc: &Descriptor, reason: impl std::fmt::Display) -> Error {
    Error::LayerStream {
        layer: desc.digest.clone(),
        reason: reason.to_string(),
    }
}

/// What a tar entry makes; `None` for a hard link (it takes its target's node).
pub(crate) fn entry_kind(header: &tar::Header) -> Option<Kind> {
    Some(match header.entry_type() {
        tar::EntryType::Directory => Kind::Directory,
        tar::EntryType::Symlink => Kind::Symlink,
        tar::EntryType::Char => Kind::CharDevice,
        tar::EntryType::Block => Kind::BlockDevice,
        tar::EntryType::Fifo => Kind::Fifo,
        tar::EntryType::Link => return None,
        _ => Kind::File,
    })
}

/// The path a hard link entry names.
pub(crate) fn link_target<R>(entry: &TarEntry<'_, R>, desc: &Descriptor) -> Result<PathBuf> {
    entry
        .link_name_bytes()
        .map(layer_path)
        .transpose()
        .map_err(|why| layer_error(desc, why))?
        .flatten()
        .ok_or_else(|| layer_error(desc, "a hardlink with no target"))
}

/// The node an entry of `kind` (not a hard link) makes at `path`, its content unplaced.
pub(crate) fn entry_node<R>(
    entry: &TarEntry<'_, R>,
    kind: Kind,
    desc: &Descriptor,
    path: &Path,
) -> Result<Node> {
    let header = entry.header();
    let link = match kind {
        Kind::Symlink => Some(
            crate::layer::names::symlink_target(entry.link_name_bytes())
                .map_err(|why| layer_error(desc, why))?
                .to_vec(),
        ),
        _ => None,
    };
    Ok(Node {
        kind,
        mode: header.mode().unwrap_or(0) & 0o7777,
        uid: entry.uid().map_err(|e| layer_error(desc, e))?,
        gid: entry.gid().map_err(|e| layer_error(desc, e))?,
        size: if kind == Kind::File { entry.size() } else { 0 },
        mtime: header.mtime().unwrap_or(0),
        link,
        device: match kind {
            Kind::CharDevice | Kind::BlockDevice => {
                Some(entry.device().map_err(|why| layer_error(desc, why))?)
            }
            _ => None,
        },
        xattrs: crate::layer::apply::entry_xattrs(entry.pax())
            .map_err(|why| layer_error(desc, format!("{}: {why}", path.display())))?,
        content: None,
        entry: None,
        digest: None,
    })
}

/// Opens layer `desc` for reading its tar, verified to its end by the blob reader.
pub(crate) fn open_layer<'a>(
    layout: &Layout,
    desc: &Descriptor,
    compression: Compression,
) -> Result<TarStream<Box<dyn Read + 'a>>> {
    let blob = blob_ref(desc, &format!("layer {}", desc.digest))?;
    let reader = layout.open_blob(&blob)?;
    let decoder = compression
        .decoder(reader)
        .map_err(|e| layer_error(desc, e))?;
    Ok(TarStream::new(decoder))
}

impl Tree {
    /// Reads every layer of `manifest`, lowest first.
    pub fn of(layout: &Layout, manifest: &Manifest) -> Result<Tree> {
        Tree::read(layout, manifest, false)
    }

    /// As [`Tree::of`], with every file's content digest (for comparing two images).
    pub fn hashed(layout: &Layout, manifest: &Manifest) -> Result<Tree> {
        Tree::read(layout, manifest, true)
    }

    fn read(layout: &Layout, manifest: &Manifest, hash: bool) -> Result<Tree> {
        let mut tree = Tree::empty(hash);
        for desc in &manifest.layers {
            tree.push_layer(layout, desc)?;
        }
        Ok(tree)
    }

    fn empty(hash: bool) -> Tree {
        let mut tree = Tree {
            hash,
            ..Tree::default()
        };
        tree.nodes.insert(PathBuf::new(), directory());
        tree
    }

    /// Applies the next layer.
    fn push_layer(&mut self, layout: &Layout, desc: &Descriptor) -> Result<()> {
        let compression = Compression::of_layer(&desc.media_type).ok_or_else(|| {
            layer_error(
                desc,
                format!("unsupported layer media type {:?}", desc.media_type),
            )
        })?;
        self.apply(layout, self.layers.len(), desc, compression)?;
        self.layers.push((desc.clone(), compression));
        Ok(())
    }

    /// Applies the tar of a layer not stored yet (`what` names it in errors) on top of this
    /// tree by unpack's rules: how `add-layer` settles the hard links a new layer leaves to
    /// the layers below. The tree cannot be read for content after.
    pub fn apply_unstored<R: Read>(&mut self, tar: &mut TarStream<R>, what: &str) -> Result<()> {
        // Only named in errors, which are put in the file's name here.
        let unstored = Descriptor::new("", &Digest::of_bytes(Algorithm::Sha256, b""), 0);
        let index = self.layers.len();
        self.apply_tar(index, &unstored, tar, &mut HashSet::new(), None)
            .map_err(|e| match e {
                Error::LayerStream { reason, .. } => Error::Invalid {
                    what: what.to_owned(),
                    reason,
                },
                other => other,
            })
    }

    /// Builds the tree of `layers` (lowest first) one layer at a time, as far as it goes: the
    /// layer it stopped at and why, `None` when every layer applied. For fsck, which has
    /// checked each layer alone and asks what only the layers below can tell (a hard link
    /// to a file they should have).
    pub(crate) fn first_refused(
        layout: &Layout,
        layers: &[Descriptor],
    ) -> Result<Option<(Descriptor, String)>> {
        let mut tree = Tree::empty(false);
        for desc in layers {
            match tree.push_layer(layout, desc) {
                Ok(()) => {}
                Err(Error::LayerStream { reason, .. }) => return Ok(Some((desc.clone(), reason))),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Two images' trees, with content digests, for [`diff`]: the layers they share at the
    /// bottom (same digests) are read once.
    pub fn hashed_pair(
        first: (&Layout, &Manifest),
        second: (&Layout, &Manifest),
    ) -> Result<(Tree, Tree)> {
        let shared = first
            .1
            .layers
            .iter()
            .zip(&second.1.layers)
            .take_while(|(a, b)| a.digest == b.digest)
            .count();
        let mut base = Tree::empty(true);
        for desc in &first.1.layers[..shared] {
            base.push_layer(first.0, desc)?;
        }
        let mut one = base.clone();
        for desc in &first.1.layers[shared..] {
            one.push_layer(first.0, desc)?;
        }
        let mut two = base;
        for desc in &second.1.layers[shared..] {
            two.push_layer(second.0, desc)?;
        }
        Ok((one, two))
    }

    fn apply(
        &mut self,
        layout: &Layout,
        index: usize,
        desc: &Descriptor,
        compression: Compression,
    ) -> Result<()> {
        // Whiteouts hide lower layers only: what this layer wrote stays.
        let mut written: HashSet<PathBuf> = HashSet::new();
        if !self.hash {
            return read_layer(layout, desc, compression, |tar| {
                self.apply_tar(index, desc, tar, &mut written, None)
            });
        }
        // Content digests are what a diff needs from a layer: kept per layer (layer_cache).
        if let Some(ops) = layer_cache::load(layout, desc) {
            for op in ops {
                self.apply_op(index, desc, op, &mut written)?;
            }
            return Ok(());
        }
        let mut ops = Vec::new();
        read_layer(layout, desc, compression, |tar| {
            self.apply_tar(index, desc, tar, &mut written, Some(&mut ops))
        })?;
        layer_cache::store(layout, desc, &ops);
        Ok(())
    }

    /// Applies the entries of a layer's tar, each also pushed to `record` when given.
    fn apply_tar<R: Read>(
        &mut self,
        index: usize,
        desc: &Descriptor,
        tar: &mut TarStream<R>,
        written: &mut HashSet<PathBuf>,
        mut record: Option<&mut Vec<Op>>,
    ) -> Result<()> {
        let mut position = 0;
        while let Some(mut entry) = tar.next_entry().map_err(|e| layer_error(desc, e))? {
            let at = position;
            position += 1;
            let named = layer_path(entry.path_bytes())
                .map_err(|why| layer_error(desc, format!("an entry: {why}")))?;
            let Some(path) = named else {
                continue;
            };
            let op = match entry_name(&path).map_err(|why| layer_error(desc, why))? {
                EntryName::Whiteout(target) => Op::Whiteout(path.with_file_name(target)),
                EntryName::Opaque => {
                    Op::Opaque(path.parent().unwrap_or(Path::new("")).to_path_buf())
                }
                EntryName::Plain => match entry_kind(entry.header()) {
                    None => Op::Link {
                        target: link_target(&entry, desc)?,
                        path,
                    },
                    Some(kind) => {
                        let mut node = entry_node(&entry, kind, desc, &path)?;
                        if self.hash && kind == Kind::File {
                            let mut hasher = crate::digest::HashingWriter::new(
                                std::io::sink(),
                                crate::digest::Algorithm::Sha256,
                            );
                            std::io::copy(&mut entry, &mut hasher)
                                .map_err(|e| layer_error(desc, e))?;
                            node.digest = Some(hasher.finish().0.to_string());
                        }
                        entry.skip_data().map_err(|e| layer_error(desc, e))?;
                        Op::Node { path, node, at }
                    }
                },
            };
            if let Some(record) = record.as_deref_mut() {
                record.push(op.clone());
            }
            // What goes wrong resolving a path (a symlink loop on the way) is the entry's,
            // as unpack says it (its name is made only then: this runs for every entry).
            let shown = || String::from_utf8_lossy(entry.path_bytes()).into_owned();
            self.apply_op(index, desc, op, written)
                .map_err(|e| match e {
                    Error::LayerStream { layer, reason } if !reason.starts_with("entry ") => {
                        Error::LayerStream {
                            layer,
                            reason: format!("entry {:?}: {reason}", shown()),
                        }
                    }
                    Error::LayerStream { .. } => e,
                    other => layer_error(desc, format!("entry {:?}: {other}", shown())),
                })?;
        }
        Ok(())
    }

    /// Applies one thing a layer does (`index`: the layer's place in the image).
    fn apply_op(
        &mut self,
        index: usize,
        desc: &Descriptor,
        op: Op,
        written: &mut HashSet<PathBuf>,
    ) -> Result<()> {
        match op {
            // As unpack, a layer's paths are taken through the symlinks to directories
            // that lower layers put above them (`bin/x` under `bin -> usr/bin` is
            // `usr/bin/x`); only the last name is the entry's own.
            Op::Whiteout(gone) => {
                if let Some(gone) = self.find_entry(&gone).map_err(|e| layer_error(desc, e))? {
                    self.remove_below(&gone, true, written);
                }
            }
            Op::Opaque(dir) => {
                if let Some(dir) = self.find_dir(&dir).map_err(|e| layer_error(desc, e))? {
                    self.remove_below(&dir, false, written);
                }
            }
            Op::Link { path, target } => {
                let named = format!("entry {:?}: hardlink target {:?}", path, target);
                let target = self
                    .find_entry(&target)
                    .map_err(|e| layer_error(desc, e))?
                    .unwrap_or(target);
                // As unpack: the link's directories are made first, and may replace what
                // it names.
                let mtime = self.nodes.get(&target).map_or(0, |n| n.mtime);
                let path = self
                    .make_parents(&path, mtime)
                    .map_err(|e| layer_error(desc, e))?;
                // The link replaces its own path first: what is there is gone.
                let replaced = target != path && target.starts_with(&path);
                let found = self.nodes.get(&target).filter(|_| !replaced);
                let node = found.cloned().ok_or_else(|| {
                    layer_error(
                        desc,
                        format!(
                            "{named} is not there (neither earlier in its layer nor in the \
                             layers below); unpack refuses it"
                        ),
                    )
                })?;
                // As unpack: a directory has one name.
                if node.kind == Kind::Directory {
                    return Err(layer_error(
                        desc,
                        format!("{named} is a directory; unpack refuses it"),
                    ));
                }
                self.place(path, node, written);
            }
            Op::Node { path, mut node, at } => {
                node.content = (node.kind == Kind::File).then_some((index, at));
                node.entry = (node.kind != Kind::Directory).then_some((index, at));
                let path = self
                    .make_parents(&path, node.mtime)
                    .map_err(|e| layer_error(desc, e))?;
                self.place(path, node, written);
            }
        }
        Ok(())
    }

    /// Puts `node` at `path`, whose parents [`Tree::make_parents`] made: a directory over a
    /// directory keeps what is below it; anything else replaces the path and all below it.
    fn place(&mut self, path: PathBuf, node: Node, written: &mut HashSet<PathBuf>) {
        let both_dirs = node.kind == Kind::Directory
            && self
                .nodes
                .get(&path)
                .is_some_and(|n| n.kind == Kind::Directory);
        if !both_dirs {
            self.remove_below(&path, true, &HashSet::new());
        }
        // As unpack: what a layer wrote includes the directories above it, which its
        // whiteouts keep too.
        for p in path.ancestors() {
            if p.as_os_str().is_empty() || !written.insert(p.to_path_buf()) {
                break;
            }
        }
        self.nodes.insert(path, node);
    }

    /// Makes the directories above `path`, from the root down, and returns where `path`
    /// is: a symlink on the way to a directory is followed (inside the tree, as unpack
    /// resolves it in the rootfs), anything else that is not a directory is replaced by one
    /// (and all below it). As unpack: a directory a layer implies takes the time of the
    /// entry that needed it. A symlink loop on the way is an error, as unpack's ELOOP.
    fn make_parents(&mut self, path: &Path, mtime: u64) -> Result<PathBuf> {
        let mut at = PathBuf::new();
        let Some(name) = path.file_name() else {
            return Ok(path.to_path_buf());
        };
        for part in path.parent().into_iter().flat_map(Path::components) {
            let Component::Normal(part) = part else {
                continue;
            };
            let candidate = at.join(part);
            at = match self.nodes.get(&candidate).map(|n| n.kind) {
                Some(Kind::Directory) => candidate,
                Some(Kind::Symlink) => match self.dir_behind(&candidate)? {
                    Some(dir) => dir,
                    None => self.implied_dir(candidate, mtime),
                },
                _ => self.implied_dir(candidate, mtime),
            };
        }
        Ok(at.join(name))
    }

    /// Puts a directory an entry below implies at `path`, replacing what is there (and all
    /// below it); returns `path`.
    fn implied_dir(&mut self, path: PathBuf, mtime: u64) -> PathBuf {
        self.remove_below(&path, true, &HashSet::new());
        let mut implied = directory();
        implied.mtime = mtime;
        self.nodes.insert(path.clone(), implied);
        path
    }

    /// The directory a symlink at `link` leads to, followed inside the tree; `None` when it
    /// leads nowhere or to something else; an error when it goes round in circles (unpack
    /// meets ELOOP there, where a missing target is a directory to make).
    fn dir_behind(&self, link: &Path) -> Result<Option<PathBuf>> {
        let Some(resolved) = self.resolve(link)? else {
            return Ok(None);
        };
        Ok(self
            .nodes
            .get(&resolved)
            .is_some_and(|n| n.kind == Kind::Directory)
            .then_some(resolved))
    }

    /// Where the directory `dir` (relative to the root) is, its symlinks followed as
    /// [`Tree::make_parents`] follows them; `None` when it is not there.
    fn find_dir(&self, dir: &Path) -> Result<Option<PathBuf>> {
        let mut at = PathBuf::new();
        for part in dir.components() {
            let Component::Normal(part) = part else {
                continue;
            };
            let candidate = at.join(part);
            at = match self.nodes.get(&candidate).map(|n| n.kind) {
                Some(Kind::Directory) => candidate,
                Some(Kind::Symlink) => match self.dir_behind(&candidate)? {
                    Some(dir) => dir,
                    None => return Ok(None),
                },
                _ => return Ok(None),
            };
        }
        Ok(Some(at))
    }

    /// Where the entry `path` is: its directory found by [`Tree::find_dir`], its own name
    /// not followed (as `lstat` finds a dangling symlink); `None` when its directory is not
    /// there.
    pub fn find_entry(&self, path: &Path) -> Result<Option<PathBuf>> {
        let Some(name) = path.file_name() else {
            return Ok(None);
        };
        let dir = self.find_dir(path.parent().unwrap_or(Path::new("")))?;
        Ok(dir.map(|d| d.join(name)))
    }

    /// Removes what is at `path` and below it (`path` itself only when `including`),
    /// keeping the paths in `keep` (what the current layer wrote: whiteouts hide lower
    /// layers only).
    fn remove_below(&mut self, path: &Path, including: bool, keep: &HashSet<PathBuf>) {
        let doomed: Vec<PathBuf> = self
            .nodes
            .range(path.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(path))
            .map(|(p, _)| p.clone())
            .filter(|p| (including || p != path) && !p.as_os_str().is_empty() && !keep.contains(p))
            .collect();
        for p in doomed {
            self.nodes.remove(&p);
        }
    }

    /// The kind of what is at `path` (relative to the root) as a layer's entry there meets
    /// it: the directories above it followed through symlinks, as unpack follows them, and
    /// with `follow` its own name too (a name ending in `/`); `None` when nothing is there.
    pub fn kind_at(&self, path: &Path, follow: bool) -> Result<Option<Kind>> {
        let at = if follow {
            self.resolve(path)?
        } else {
            self.find_entry(path)?
        };
        Ok(at.and_then(|p| self.nodes.get(&p)).map(|n| n.kind))
    }

    /// The path `path` (absolute or relative to the root) leads to, following symlinks as
    /// the kernel would inside a chroot (`..` stops at the root; at most 40 links); `None`
    /// when a component is missing.
    pub fn resolve(&self, path: &Path) -> Result<Option<PathBuf>> {
        enum Step {
            Root,
            Up,
            Name(std::ffi::OsString),
        }
        fn steps(p: &Path) -> Vec<Step> {
            p.components()
                .filter_map(|c| match c {
                    Component::RootDir => Some(Step::Root),
                    Component::ParentDir => Some(Step::Up),
                    Component::Normal(n) => Some(Step::Name(n.to_owned())),
                    Component::CurDir | Component::Prefix(_) => None,
                })
                .collect()
        }
        let mut queue: std::collections::VecDeque<Step> = steps(path).into();
        let mut at = PathBuf::new();
        let mut hops = 0;
        while let Some(step) = queue.pop_front() {
            match step {
                Step::Root => at = PathBuf::new(),
                Step::Up => {
                    at.pop();
                }
                Step::Name(name) => {
                    let candidate = at.join(&name);
                    let Some(node) = self.nodes.get(&candidate) else {
                        return Ok(None);
                    };
                    if node.kind != Kind::Symlink {
                        at = candidate;
                        continue;
                    }
                    hops += 1;
                    if hops > 40 {
                        return Err(Error::Invalid {
                            what: path.display().to_string(),
                            reason: "too many levels of symbolic links".into(),
                        });
                    }
                    // The target replaces the link's name; `at` stays the link's directory.
                    use std::os::unix::ffi::OsStrExt;
                    let target = PathBuf::from(std::ffi::OsStr::from_bytes(
                        node.link.as_deref().unwrap_or_default(),
                    ));
                    for step in steps(&target).into_iter().rev() {
                        queue.push_front(step);
                    }
                }
            }
        }
        Ok(Some(at))
    }

    /// Writes the content of the file at `path` (following symlinks) to `out`: the layer
    /// holding it is read to its end first, so only verified bytes are written.
    pub fn cat(&self, layout: &Layout, path: &Path, out: &mut dyn Write) -> Result<u64> {
        let not_found = || Error::Invalid {
            what: path.display().to_string(),
            reason: "no such file in the image".into(),
        };
        let resolved = self.resolve(path)?.ok_or_else(not_found)?;
        let node = self.nodes.get(&resolved).ok_or_else(not_found)?;
        let Some((layer, at)) = node.content else {
            return Err(Error::Invalid {
                what: path.display().to_string(),
                reason: format!("is a {:?}, not a file", node.kind).to_lowercase(),
            });
        };
        // As the kernel: `sh/` asks for a directory.
        if ends_with_slash(path) {
            return Err(Error::Invalid {
                what: path.display().to_string(),
                reason: "not a directory".into(),
            });
        }
        let (desc, compression) = &self.layers[layer];
        let mut tar = open_layer(layout, desc, *compression)?;
        let mut held = crate::ioext::scratch_file(node.size).map_err(|e| layer_error(desc, e))?;
        let mut position = 0;
        let mut copied = 0;
        while let Some(mut entry) = tar.next_entry().map_err(|e| layer_error(desc, e))? {
            if position == at {
                copied = std::io::copy(&mut entry, &mut held).map_err(|e| layer_error(desc, e))?;
            }
            position += 1;
        }
        let mut rest = tar.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| layer_error(desc, e))?;
        use std::io::Seek;
        held.rewind().map_err(|e| layer_error(desc, e))?;
        std::io::copy(&mut held, out).map_err(|source| Error::Io {
            path: PathBuf::from("-"),
            source,
        })?;
        Ok(copied)
    }
}

impl Tree {
    /// Writes the merged filesystem as one tar stream (what `docker export` and `crane
    /// export` give): directories, links and devices first in path order, then the files
    /// layer by layer, each file's bytes once and its other names as hard links. The same
    /// image always gives the same bytes; every layer is verified to its end.
    pub fn write_tar(&self, layout: &Layout, out: impl Write) -> Result<()> {
        let mut builder = tar::Builder::new(out);
        let io = |e: std::io::Error| Error::Io {
            path: PathBuf::from("the rootfs tar"),
            source: e,
        };
        let mut files: BTreeMap<(usize, usize), Vec<(&PathBuf, &Node)>> = BTreeMap::new();
        let mut others: BTreeMap<(usize, usize), &PathBuf> = BTreeMap::new();
        for (path, node) in &self.nodes {
            if path.as_os_str().is_empty() {
                continue;
            }
            if node.kind == Kind::File {
                let at = node.content.expect("a file node knows its bytes");
                files.entry(at).or_default().push((path, node));
                continue;
            }
            // The other names of a link, symlink, device or FIFO are hard links to the first.
            match node.entry.and_then(|e| others.get(&e)) {
                Some(first) => {
                    let mut header = header_for(node, tar::EntryType::Link, 0);
                    builder.append_link(&mut header, path, first).map_err(io)?;
                }
                None => {
                    append_node(&mut builder, path, node).map_err(io)?;
                    if let Some(e) = node.entry {
                        others.insert(e, path);
                    }
                }
            }
        }
        for (layer, (desc, compression)) in self.layers.iter().enumerate() {
            if files.range((layer, 0)..(layer + 1, 0)).next().is_none() {
                continue;
            }
            read_layer(layout, desc, *compression, |tar| {
                self.write_files(layer, desc, tar, &files, &mut builder)
            })?;
        }
        builder.into_inner().map_err(io)?.flush().map_err(io)?;
        Ok(())
    }

    /// Writes the files of `layer` that `files` lists (by position), as [`Tree::write_tar`].
    fn write_files<R: Read, W: Write>(
        &self,
        layer: usize,
        desc: &Descriptor,
        tar: &mut TarStream<R>,
        files: &BTreeMap<(usize, usize), Vec<(&PathBuf, &Node)>>,
        builder: &mut tar::Builder<W>,
    ) -> Result<()> {
        let io = |e: std::io::Error| Error::Io {
            path: PathBuf::from("the rootfs tar"),
            source: e,
        };
        let mut position = 0;
        while let Some(mut entry) = tar.next_entry().map_err(|e| layer_error(desc, e))? {
            if let Some(names) = files.get(&(layer, position)) {
                let (first, node) = names[0];
                append_xattrs(builder, node).map_err(io)?;
                let mut header = header_for(node, tar::EntryType::Regular, node.size);
                builder
                    .append_data(&mut header, first, &mut entry)
                    .map_err(|e| layer_error(desc, e))?;
                for (other, node) in &names[1..] {
                    let mut header = header_for(node, tar::EntryType::Link, 0);
                    builder.append_link(&mut header, other, first).map_err(io)?;
                }
            }
            position += 1;
        }
        Ok(())
    }
}

/// Appends a node that has no data (anything but a file) at `path`.
pub(crate) fn append_node<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    node: &Node,
) -> std::io::Result<()> {
    let kind = match node.kind {
        Kind::Directory => tar::EntryType::Directory,
        Kind::Symlink => tar::EntryType::Symlink,
        Kind::CharDevice => tar::EntryType::Char,
        Kind::BlockDevice => tar::EntryType::Block,
        Kind::Fifo => tar::EntryType::Fifo,
        Kind::File => {
            return Err(std::io::Error::other(format!(
                "{}: a file goes with its data",
                path.display()
            )))
        }
    };
    append_xattrs(builder, node)?;
    let mut header = header_for(node, kind, 0);
    if node.kind == Kind::Symlink {
        let target = node.link.as_deref().unwrap_or_default();
        // The target is text the layer chose, kept as it was: the tar crate's set_link_name
        // would tidy it as a path ('/' became '//', 'a//b' 'a/b'). One too long for the
        // header goes as a GNU long link, whose bytes the crate writes as given.
        if header.set_link_name_literal(target).is_err() {
            use std::os::unix::ffi::OsStrExt;
            return builder.append_link(&mut header, path, std::ffi::OsStr::from_bytes(target));
        }
        builder.append_data(&mut header, path, std::io::empty())
    } else {
        builder.append_data(&mut header, path, std::io::empty())
    }
}

/// A node's xattrs as the PAX records before its header.
pub(crate) fn append_xattrs<W: Write>(
    builder: &mut tar::Builder<W>,
    node: &Node,
) -> std::io::Result<()> {
    if node.xattrs.is_empty() {
        return Ok(());
    }
    let records: Vec<(String, &[u8])> = node
        .xattrs
        .iter()
        .map(|(name, value)| {
            (
                format!("SCHILY.xattr.{}", String::from_utf8_lossy(name)),
                value.as_slice(),
            )
        })
        .collect();
    builder.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
}

pub(crate) fn directory() -> Node {
    Node {
        kind: Kind::Directory,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        link: None,
        device: None,
        xattrs: Vec::new(),
        digest: None,
        content: None,
        entry: None,
    }
}

/// A tar header for `node` with its metadata, of type `kind` and `size` data bytes.
pub(crate) fn header_for(node: &Node, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(node.mode);
    header.set_uid(node.uid);
    header.set_gid(node.gid);
    header.set_mtime(node.mtime);
    header.set_size(size);
    if let Some((major, minor)) = node.device {
        let _ = header.set_device_major(major);
        let _ = header.set_device_minor(minor);
    }
    header
}

/// How two merged filesystems differ, path by path (`/`-rooted paths, in byte order).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeDiff {
    /// Paths only the second has.
    pub added: Vec<String>,
    /// Paths only the first has.
    pub removed: Vec<String>,
    /// Paths both have, with what differs.
    pub changed: Vec<Changed>,
}

/// One changed path.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    /// The path.
    pub path: String,
    /// What differs: type, content, mode, owner, link, device, xattrs (modification times
    /// are left out: rebuilding the same files moves them).
    pub what: Vec<&'static str>,
}

/// Compares two trees read with [`Tree::hashed`].
pub fn diff(first: &Tree, second: &Tree) -> TreeDiff {
    let shown = |p: &Path| format!("/{}", p.display());
    let mut out = TreeDiff::default();
    for (path, a) in &first.nodes {
        if path.as_os_str().is_empty() {
            continue;
        }
        let Some(b) = second.nodes.get(path) else {
            out.removed.push(shown(path));
            continue;
        };
        let mut what = Vec::new();
        if a.kind != b.kind {
            what.push("type");
        } else if a.kind == Kind::File && (a.digest != b.digest || a.size != b.size) {
            what.push("content");
        }
        if a.mode != b.mode {
            what.push("mode");
        }
        if (a.uid, a.gid) != (b.uid, b.gid) {
            what.push("owner");
        }
        if a.link != b.link {
            what.push("link");
        }
        if a.device != b.device {
            what.push("device");
        }
        if a.xattrs != b.xattrs {
            what.push("xattrs");
        }
        if !what.is_empty() {
            out.changed.push(Changed {
                path: shown(path),
                what,
            });
        }
    }
    out.added = second
        .nodes
        .keys()
        .filter(|p| !p.as_os_str().is_empty() && !first.nodes.contains_key(*p))
        .map(|p| shown(p))
        .collect();
    out
}

/// Whether `path` ends in `/` (or `/.`), which only a directory satisfies; Path's
/// components drop it.
fn ends_with_slash(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    bytes.ends_with(b"/") || bytes.ends_with(b"/.")
}

fn lossy_link<S: serde::Serializer>(
    link: &Option<Vec<u8>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match link {
        Some(bytes) => s.serialize_str(&String::from_utf8_lossy(bytes)),
        None => s.serialize_none(),
    }
}
