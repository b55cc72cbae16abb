//! Checking a layer tar without applying it, by the rules unpack applies: what `add-layer`
//! stores verbatim must be a layer strata itself would unpack. Names (every entry's path,
//! every hardlink target, what each whiteout points at) go through [`super::names`], ids
//! must fit 32 bits and not be chown's "leave unchanged", and the stream must read to its
//! end through strata's own tar reader (PAX records by their length).
//!
//! One rule needs more than the layer: a hard link must name something already there, earlier
//! in the layer or in the layers below. The pass here only lists the links whose target the
//! layer itself does not define before them ([`Checked::foreign_links`], in real layers
//! none); the caller that has the layers below settles those on their merged tree.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::names::{self, EntryName};
use super::tarstream::TarStream;
use super::Compression;
use crate::bundle::idmap::UNCHANGED_ID;
use crate::error::Error;

/// What a pass over a layer's tar found.
#[derive(Debug, Default, Clone)]
pub struct Checked {
    /// Its entries.
    pub entries: u64,
    /// Its hard links whose targets it does not define earlier, in its order.
    pub foreign_links: Vec<ForeignLink>,
}

/// A hard link whose target must come from the layers below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignLink {
    /// The entry, as the tar names it.
    pub entry: String,
    /// Its target, as the tar names it.
    pub target: String,
}

/// Why a layer's stream is not one unpack applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The stream does not decompress as `compression` says (a plain one does not read).
    Decompress {
        /// What it was decompressed as.
        compression: Compression,
        /// The decoder's complaint.
        reason: String,
    },
    /// The stream is not a tar, or ends inside one.
    Tar(String),
    /// An entry unpack refuses.
    Entry {
        /// The entry, as the tar names it.
        entry: String,
        /// The rule it breaks.
        reason: String,
    },
}

impl Fault {
    /// The fault of the layer file `what`, as an error naming it.
    pub fn of_file(self, what: &str) -> Error {
        Error::Invalid {
            what: what.to_owned(),
            reason: self.clause(),
        }
    }

    /// What is wrong, to follow a layer file's name (`x.tar.gz: decompressing it as gzip: ...`).
    pub fn clause(&self) -> String {
        match self {
            Fault::Decompress {
                compression: Compression::None,
                reason,
            } => format!("reading it: {reason}"),
            Fault::Decompress {
                compression,
                reason,
            } => format!("decompressing it as {}: {reason}", compression.name()),
            Fault::Tar(reason) => reason.clone(),
            Fault::Entry { entry, reason } => format!("entry {entry:?}: {reason}"),
        }
    }

    /// What is wrong, as a sentence about a stored layer (fsck's: `does not decompress as
    /// gzip: ...`, `is not a layer unpack applies: entry "x": ...`).
    pub fn sentence(&self) -> String {
        match self {
            Fault::Decompress {
                compression: Compression::None,
                reason,
            } => format!("does not read: {reason}"),
            Fault::Decompress {
                compression,
                reason,
            } => format!("does not decompress as {}: {reason}", compression.name()),
            Fault::Tar(_) | Fault::Entry { .. } => {
                format!("is not a layer unpack applies: {}", self.clause())
            }
        }
    }
}

/// Reads the whole tar `input`, the stream decompressed as `compression` says, and returns
/// what [`Checked`] holds, or the first fault unpack would refuse. A read error of `input`
/// is the decompression's (the caller tells a failing disk apart where it can).
pub fn check_layer(input: impl Read, compression: Compression) -> Result<Checked, Fault> {
    let decoder_error = OnceCell::new();
    let recorded = Recorded {
        inner: input,
        error: &decoder_error,
    };
    // The tar reader wraps what the decoder said in its own words ("its first header does not
    // parse"); the decoder's own complaint is the fault when there was one.
    let decoding = |fault: Fault| match decoder_error.get() {
        Some(reason) => Fault::Decompress {
            compression,
            reason: reason.clone(),
        },
        None => fault,
    };
    let mut stream = TarStream::new(io::BufReader::new(recorded));
    let mut checked = Checked::default();
    let mut local = LocalPaths::default();
    let mut previous = String::new();
    loop {
        let entry = stream.next_entry().map_err(|e| {
            decoding(Fault::Tar(if checked.entries == 0 {
                // The tar crate quotes the header's bytes, which for a file that is no tar
                // at all are noise: a little of it is enough.
                format!(
                    "not a tar: its first header does not parse ({})",
                    crate::words::printable(&e.to_string(), 60)
                )
            } else {
                format!("reading the tar after entry {previous:?}: {e}")
            }))
        })?;
        let Some(mut entry) = entry else {
            return Ok(checked);
        };
        let shown = String::from_utf8_lossy(entry.path_bytes()).into_owned();
        let refused = |reason: String| Fault::Entry {
            entry: shown.clone(),
            reason,
        };
        let foreign = check_entry(&entry, &mut local).map_err(refused)?;
        if let Some(target) = foreign {
            checked.foreign_links.push(ForeignLink {
                entry: shown.clone(),
                target,
            });
        }
        // Only the stored bytes: a sparse member's holes need no reading.
        entry
            .skip_data()
            .map_err(|e| decoding(refused(format!("reading its data: {e}"))))?;
        previous = shown;
        checked.entries += 1;
    }
}

/// The decoder's complaint for an error met reading past the tar's end (the diff_id covers
/// those bytes too).
pub fn decode_fault(compression: Compression, e: &io::Error) -> Fault {
    Fault::Decompress {
        compression,
        reason: e.to_string(),
    }
}

/// Keeps the first read error of what it wraps.
struct Recorded<'c, R> {
    inner: R,
    error: &'c OnceCell<String>,
}

impl<R: Read> Read for Recorded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            let _ = self.error.set(e.to_string());
        })
    }
}

/// What one layer defined so far, by the names its entries give (`true`: a directory), as
/// far as telling its own hard links from those to lower layers goes. An entry that is not
/// a directory replaces what was at its path and below; one below a non-directory makes a
/// directory of it. Only ever claims too little: a link it does not find here is settled
/// on the merged tree.
#[derive(Default)]
struct LocalPaths(BTreeMap<PathBuf, bool>);

impl LocalPaths {
    /// Records an entry at `path`, a directory or not.
    fn put(&mut self, path: &Path, dir: bool) {
        for above in path.ancestors().skip(1) {
            if above.as_os_str().is_empty() {
                break;
            }
            if let Some(is_dir) = self.0.get_mut(above) {
                *is_dir = true;
            }
        }
        if !dir {
            let below: Vec<PathBuf> = self
                .0
                .range(path.to_path_buf()..)
                .take_while(|(p, _)| p.starts_with(path))
                .map(|(p, _)| p.clone())
                .collect();
            for p in below {
                self.0.remove(&p);
            }
        }
        self.0.insert(path.to_owned(), dir);
    }

    /// Whether a non-directory this layer wrote is at `path`.
    fn has_file(&self, path: &Path) -> bool {
        self.0.get(path) == Some(&false)
    }
}

/// Checks one entry; for a hard link whose target the layer did not define before it, that
/// target (as the tar names it).
fn check_entry<R: Read>(
    entry: &super::tarstream::TarEntry<'_, R>,
    local: &mut LocalPaths,
) -> std::result::Result<Option<String>, String> {
    if let Some(why) = entry.unsupported() {
        return Err(why);
    }
    let kind = entry.header().entry_type();
    let path = match names::layer_path(entry.path_bytes())? {
        // unpack lets only a directory describe the root (a link there would send later
        // layers anywhere).
        None if !kind.is_dir() => {
            return Err("refusing to replace the root directory with a non-directory".into())
        }
        None => None,
        Some(path) => match names::entry_name(&path)? {
            EntryName::Plain => Some(path),
            // Whiteouts hide lower layers only: nothing this layer wrote goes.
            EntryName::Whiteout(_) | EntryName::Opaque => None,
        },
    };
    let mut foreign = None;
    if kind == tar::EntryType::Link {
        let raw = entry.link_name_bytes().unwrap_or_default();
        let Some(target) =
            names::layer_path(raw).map_err(|why| format!("its hardlink target: {why}"))?
        else {
            return Err("a hardlink to the root directory".into());
        };
        // As unpack: the link's own path is replaced first, and what was below it with it.
        let under_itself = path
            .as_ref()
            .is_some_and(|p| target != *p && target.starts_with(p));
        if under_itself || !local.has_file(&target) {
            foreign = Some(String::from_utf8_lossy(raw).into_owned());
        }
    }
    if let Some(path) = &path {
        local.put(path, kind.is_dir());
    }
    let named = super::apply::entry_xattrs(entry.pax())?;
    if let Some(why) = super::apply::misplaced_default_acl(&named, entry.header().entry_type()) {
        return Err(why);
    }
    for (what, id) in [("uid", entry.uid()), ("gid", entry.gid())] {
        let id = id.map_err(|e| format!("its {what}: {e}"))?;
        match u32::try_from(id) {
            Ok(UNCHANGED_ID) => {
                return Err(format!(
                    "{what} {id} is chown's \"leave unchanged\"; unpack refuses it"
                ))
            }
            Ok(_) => {}
            Err(_) => return Err(format!("{what} {id} does not fit 32 bits")),
        }
    }
    Ok(foreign)
}
