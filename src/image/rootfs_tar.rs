//! `export --format rootfs` reading each layer once: the layers are read from the top down,
//! and an entry is written as soon as it is met when no layer above hides or replaces it.
//! What the layers above did is kept as a few path maps: the paths they decided, the paths
//! they hid with everything below (whiteouts, and anything not a directory, which replaces
//! what lower layers have under it), and the directories they made opaque.
//!
//! The stream's order follows from that: entries layer by layer from the top, each layer in
//! its own order; directories no layer names (implied by a path below them) last, in path
//! order. A directory can come after what it holds, which tar extraction takes (GNU tar
//! sets directory metadata at the end). A file's bytes go under the first of its names met;
//! its other names are hard links to that one, so a hard link always names an earlier entry:
//! a link in an upper layer to a file of a lower one waits until that file is read.
//!
//! What a layer does to its own earlier entries cannot be seen before it happens: the same
//! path twice in one layer, a path under something the layer made a file, a file over
//! something the layer filled, a link to a file this pass passed over. (A layer's
//! whiteouts keep what it wrote and the directories above that, as unpack does, so they
//! need no going back.) Real layers do not do that; when one does, [`write`] says so (`Ok(None)`)
//! and the caller writes the tree read in full ([`super::tree::Tree::write_tar`]) instead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layer::names::{entry_name, layer_path, EntryName};
use crate::layer::tarstream::TarStream;
use crate::layer::Compression;
use crate::layout::Layout;
use crate::spec::{Descriptor, Manifest};

use super::layer_pipe::read_layer;
use super::tree::{
    append_node, append_xattrs, directory, entry_kind, entry_node, header_for, layer_error,
    link_target, Kind, Node,
};

/// What the layers above decided at a path.
enum Taken {
    /// A directory, written.
    Dir,
    /// A directory only paths below it imply: written at the end, with the time of the
    /// lowest layer's first entry that needed it (as unpack makes it).
    Implied { layer: usize, mtime: u64 },
    /// Anything else, written (it hides what lower layers have at and below it).
    Leaf,
}

/// What the layer being read put at a path, for its own later hard links.
enum Seen {
    /// Written under `name` (a file's bytes, or a symlink, device or FIFO).
    Written { name: PathBuf, node: Node },
    /// A directory, or a node without data not written: a hard link to it is a copy.
    Copy(Node),
    /// A file passed over.
    Passed,
    /// A hard link to this path.
    Link(PathBuf),
}

/// A name that wants the bytes a lower layer holds at a path.
struct Waiting {
    /// The layer of the hard link: only layers below it hold its bytes.
    from: usize,
    /// `None`: no name wants the bytes, but the link must still find what it names.
    name: Option<PathBuf>,
}

/// A layer did something to its own entries that this pass cannot take back.
struct Undo;

type Step<T> = std::result::Result<T, Undo>;

/// Writes `manifest`'s merged filesystem to `out` as one tar, every layer read once and to
/// its end (so verified). Returns the number of paths written, or `None` when the layers
/// need the whole tree first (see the module doc): what went to `out` is then to be thrown
/// away.
pub fn write(layout: &Layout, manifest: &Manifest, out: impl Write) -> Result<Option<u64>> {
    let mut pass = Pass {
        builder: tar::Builder::new(out),
        taken: HashMap::new(),
        gone: HashMap::new(),
        opaque: HashMap::new(),
        waiting: HashMap::new(),
        through: HashSet::new(),
        paths: 0,
    };
    for (layer, desc) in manifest.layers.iter().enumerate().rev() {
        let compression = Compression::of_layer(&desc.media_type).ok_or_else(|| {
            layer_error(
                desc,
                format!("unsupported layer media type {:?}", desc.media_type),
            )
        })?;
        let read = read_layer(layout, desc, compression, |tar| {
            pass.layer(layer, desc, tar)
        })?;
        if read.is_err() {
            return Ok(None);
        }
    }
    if !pass.waiting.is_empty() {
        // A hard link to nothing: the whole tree names it.
        return Ok(None);
    }
    let implied: BTreeMap<&PathBuf, u64> = pass
        .taken
        .iter()
        .filter_map(|(p, t)| match t {
            Taken::Implied { mtime, .. } => Some((p, *mtime)),
            _ => None,
        })
        .collect();
    let io = |e: std::io::Error| Error::Io {
        path: PathBuf::from("the rootfs tar"),
        source: e,
    };
    for (path, mtime) in implied {
        let mut node = directory();
        node.mtime = mtime;
        append_node(&mut pass.builder, path, &node).map_err(io)?;
        pass.paths += 1;
    }
    pass.builder.into_inner().map_err(io)?.flush().map_err(io)?;
    Ok(Some(pass.paths))
}

struct Pass<W: Write> {
    builder: tar::Builder<W>,
    taken: HashMap<PathBuf, Taken>,
    /// Hidden with all below, for the layers under the one given (the lowest that hid it).
    gone: HashMap<PathBuf, usize>,
    /// Directories whose content is hidden for the layers under the one given.
    opaque: HashMap<PathBuf, usize>,
    /// Names that wait for a lower layer's bytes at a path.
    waiting: HashMap<PathBuf, Vec<Waiting>>,
    /// The directories the layers above went through (above their entries, whiteouts and
    /// opaque markers): a lower layer's symlink at one of them is followed by unpack for
    /// the layers above it up to one that put a directory there.
    through: HashSet<PathBuf>,
    paths: u64,
}

/// What the layer being read did so far.
#[derive(Default)]
struct LayerState {
    seen: HashMap<PathBuf, Seen>,
    /// Directories above the paths it wrote.
    parents: HashSet<PathBuf>,
    /// What it hides from the layers below, once it is read.
    gone: HashSet<PathBuf>,
    opaque: HashSet<PathBuf>,
    /// Directories above its whiteouts and opaque markers.
    marked_under: HashSet<PathBuf>,
}

/// Adds the directories above `path` to `set`.
fn went_through(set: &mut HashSet<PathBuf>, path: &Path) {
    for a in path.ancestors().skip(1) {
        if a.as_os_str().is_empty() || !set.insert(a.to_path_buf()) {
            break;
        }
    }
}

impl Seen {
    fn is_dir(&self) -> bool {
        matches!(self, Seen::Copy(n) if n.kind == Kind::Directory)
    }
}

fn io_error(desc: &Descriptor) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| layer_error(desc, e)
}

impl<W: Write> Pass<W> {
    /// Whether `path` is hidden from layer `below - 1` and lower by a layer under `below`
    /// (`usize::MAX`: by any layer read so far).
    fn hidden(&self, path: &Path, below: usize) -> bool {
        path.ancestors()
            .filter(|p| !p.as_os_str().is_empty())
            .any(|p| {
                self.hides(&self.gone, p, below)
                    || p.parent()
                        .is_some_and(|q| self.hides(&self.opaque, q, below))
            })
    }

    fn hides(&self, map: &HashMap<PathBuf, usize>, path: &Path, below: usize) -> bool {
        map.get(path).is_some_and(|&l| l < below)
    }

    fn layer<R: Read>(
        &mut self,
        layer: usize,
        desc: &Descriptor,
        tar: &mut TarStream<R>,
    ) -> Result<Step<()>> {
        let mut state = LayerState::default();
        while let Some(mut entry) = tar.next_entry().map_err(io_error(desc))? {
            let named = layer_path(entry.path_bytes())
                .map_err(|why| layer_error(desc, format!("an entry: {why}")))?;
            let Some(path) = named else {
                continue;
            };
            match entry_name(&path).map_err(|why| layer_error(desc, why))? {
                EntryName::Whiteout(target) => {
                    went_through(&mut state.marked_under, &path);
                    state.gone.insert(path.with_file_name(target));
                    continue;
                }
                EntryName::Opaque => {
                    went_through(&mut state.marked_under, &path);
                    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
                    state.opaque.insert(dir);
                    continue;
                }
                EntryName::Plain => {}
            }
            let kind = entry_kind(entry.header());
            if kind == Some(Kind::Symlink) && self.through.contains(&path) {
                // Layers above put things under this path; unpack takes those of them
                // below any directory that replaced this link through it. Only the whole
                // tree resolves that.
                return Ok(Err(Undo));
            }
            if state.seen.contains_key(&path)
                || path
                    .ancestors()
                    .skip(1)
                    .any(|a| state.seen.get(a).is_some_and(|s| !s.is_dir()))
                || (kind != Some(Kind::Directory) && state.parents.contains(&path))
            {
                return Ok(Err(Undo));
            }
            let mtime = entry.header().mtime().unwrap_or(0);
            let hidden = self.imply_parents(&path, layer, mtime);
            went_through(&mut state.parents, &path);
            let taken = self.taken.get(&path);
            let own = !hidden
                && match kind {
                    Some(Kind::Directory) => !matches!(taken, Some(Taken::Dir)),
                    _ => taken.is_none(),
                };
            if !hidden && kind != Some(Kind::Directory) {
                // Anything but a directory replaces what lower layers have here and below.
                state.gone.insert(path.clone());
            }
            let mut names = Vec::new();
            if own {
                names.push(path.clone());
                let decided = if kind == Some(Kind::Directory) {
                    Taken::Dir
                } else {
                    Taken::Leaf
                };
                self.taken.insert(path.clone(), decided);
            }
            let (waiting, linked) = self.waiting_for(&path, layer);
            names.extend(waiting);
            let Some(kind) = kind else {
                let target = link_target(&entry, desc)?;
                if target != path && target.starts_with(&path) {
                    // Only the whole tree's reading words this error as unpack does.
                    return Ok(Err(Undo));
                }
                state.seen.insert(path.clone(), Seen::Link(target.clone()));
                // Even a link no name keeps must name something unpack would link to.
                let link = (path.as_path(), names);
                if self.attach(layer, desc, target, link, &mut state)?.is_err() {
                    return Ok(Err(Undo));
                }
                continue;
            };
            let node = entry_node(&entry, kind, desc, &path)?;
            if kind == Kind::Directory && linked {
                return Err(hardlink_to_directory(desc, &path));
            }
            self.paths += names.len() as u64;
            if kind != Kind::File {
                let seen = self.copies(desc, node, &names)?;
                state.seen.insert(path, seen);
                continue;
            }
            let Some((first, others)) = names.split_first() else {
                entry.skip_data().map_err(io_error(desc))?;
                state.seen.insert(path, Seen::Passed);
                continue;
            };
            append_xattrs(&mut self.builder, &node).map_err(io_error(desc))?;
            let mut header = header_for(&node, tar::EntryType::Regular, node.size);
            self.builder
                .append_data(&mut header, first, &mut entry)
                .map_err(io_error(desc))?;
            for other in others {
                let mut header = header_for(&node, tar::EntryType::Link, 0);
                self.builder
                    .append_link(&mut header, other, first)
                    .map_err(io_error(desc))?;
            }
            let name = first.clone();
            state.seen.insert(path, Seen::Written { name, node });
        }
        self.through.extend(state.parents);
        self.through.extend(state.marked_under);
        for p in state.gone {
            self.gone.insert(p, layer);
        }
        for p in state.opaque {
            self.opaque.insert(p, layer);
        }
        Ok(Ok(()))
    }

    /// The directories above an entry of `layer` exist: those no layer above named become
    /// implied, and an implied one takes the time of the lowest layer's first entry below
    /// it (as unpack makes it). Returns whether the entry itself is hidden.
    fn imply_parents(&mut self, path: &Path, layer: usize, mtime: u64) -> bool {
        let all = usize::MAX;
        let mut parents: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        parents.reverse();
        let mut above = Path::new("");
        for p in parents {
            if self.hides(&self.opaque, above, all) || self.hides(&self.gone, p, all) {
                return true;
            }
            match self.taken.get_mut(p) {
                None => {
                    self.taken
                        .insert(p.to_path_buf(), Taken::Implied { layer, mtime });
                }
                Some(Taken::Implied { layer: l, mtime: t }) if *l > layer => {
                    *l = layer;
                    *t = mtime;
                }
                _ => {}
            }
            above = p;
        }
        self.hides(&self.opaque, above, all) || self.hides(&self.gone, path, all)
    }

    /// Writes a node that has no data under `names`: the first as itself, the others as
    /// hard links to it (a directory has one name). What the layer saw there, for its
    /// later links.
    fn copies(&mut self, desc: &Descriptor, node: Node, names: &[PathBuf]) -> Result<Seen> {
        let Some((first, others)) = names.split_first() else {
            return Ok(Seen::Copy(node));
        };
        append_node(&mut self.builder, first, &node).map_err(io_error(desc))?;
        if node.kind == Kind::Directory {
            return Ok(Seen::Copy(node));
        }
        for other in others {
            let mut header = header_for(&node, tar::EntryType::Link, 0);
            self.builder
                .append_link(&mut header, other, first)
                .map_err(io_error(desc))?;
        }
        let name = first.clone();
        Ok(Seen::Written { name, node })
    }

    /// The names waiting for what `layer` holds at `path` (nothing hides it between them),
    /// and whether any link, named or not, waited for it.
    fn waiting_for(&mut self, path: &Path, layer: usize) -> (Vec<PathBuf>, bool) {
        let Some(list) = self.waiting.remove(path) else {
            return (Vec::new(), false);
        };
        let (ready, wait): (Vec<Waiting>, Vec<Waiting>) = list
            .into_iter()
            .partition(|w| w.from > layer && !self.hidden(path, w.from));
        if !wait.is_empty() {
            self.waiting.insert(path.to_path_buf(), wait);
        }
        let linked = !ready.is_empty();
        (ready.into_iter().filter_map(|w| w.name).collect(), linked)
    }

    /// Gives `names` what `target` is at this point of `layer`: a link to bytes written, a
    /// copy of what is not a file, or a wait for a lower layer.
    fn attach(
        &mut self,
        layer: usize,
        desc: &Descriptor,
        mut target: PathBuf,
        (link, names): (&Path, Vec<PathBuf>),
        state: &mut LayerState,
    ) -> Result<Step<()>> {
        // A chain of links is at most as long as the layer's entries.
        for _ in 0..=state.seen.len() {
            match state.seen.get(&target) {
                Some(Seen::Written { name, node }) => {
                    for other in &names {
                        let mut header = header_for(node, tar::EntryType::Link, 0);
                        self.builder
                            .append_link(&mut header, other, name)
                            .map_err(io_error(desc))?;
                    }
                    self.paths += names.len() as u64;
                    return Ok(Ok(()));
                }
                Some(Seen::Copy(node)) => {
                    if node.kind == Kind::Directory {
                        return Err(hardlink_to_directory(desc, link));
                    }
                    self.paths += names.len() as u64;
                    let seen = self.copies(desc, node.clone(), &names)?;
                    // Later links to it link to the name written now.
                    state.seen.insert(target, seen);
                    return Ok(Ok(()));
                }
                // Bytes passed over are wanted only when a name is.
                Some(Seen::Passed) if names.is_empty() => return Ok(Ok(())),
                Some(Seen::Passed) => return Ok(Err(Undo)),
                Some(Seen::Link(next)) => target = next.clone(),
                // A directory this layer made for what it holds.
                None if state.parents.contains(&target) => {
                    return Err(hardlink_to_directory(desc, link));
                }
                None => {
                    let hid = target.ancestors().any(|p| state.gone.contains(p))
                        || target.ancestors().skip(1).any(|p| state.opaque.contains(p));
                    if hid {
                        return Ok(Err(Undo));
                    }
                    let list = self.waiting.entry(target).or_default();
                    if names.is_empty() {
                        list.push(Waiting {
                            from: layer,
                            name: None,
                        });
                    }
                    list.extend(names.into_iter().map(|name| Waiting {
                        from: layer,
                        name: Some(name),
                    }));
                    return Ok(Ok(()));
                }
            }
        }
        Ok(Err(Undo))
    }
}

/// As unpack: a directory has one name.
fn hardlink_to_directory(desc: &Descriptor, link: &Path) -> Error {
    layer_error(desc, format!("{}: hardlink to a directory", link.display()))
}
