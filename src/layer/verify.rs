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

/// A decoder's complaint as a fault, where [`check_layer`] is not reading: making the
/// decoder, or reading past the tar's end (the diff_id covers those bytes too).
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

/// The entries one layer made so far, by the names it gives them (`true`: a directory), as
/// far as telling its own hard links from those to lower layers goes. Only claims too
/// little: a link not found here is settled on the merged tree. So an entry is kept only
/// when every directory above it is one this layer made, which no name can be taken around
/// (a directory of a lower layer may be a symlink, followed to anywhere; one listed after
/// the entry may have replaced that symlink), and an entry that is not a directory removes
/// what was at its path and below it.
#[derive(Default)]
struct LocalPaths(BTreeMap<PathBuf, bool>);

impl LocalPaths {
    /// Records an entry at `path`, a directory or not.
    fn put(&mut self, path: &Path, dir: bool) {
        let mut placed = true;
        for above in path.ancestors().skip(1) {
            if above.as_os_str().is_empty() {
                break;
            }
            match self.0.get(above) {
                Some(true) => {}
                // Followed if a symlink, made a directory if not: no longer known.
                Some(false) => {
                    self.0.remove(above);
                    placed = false;
                }
                None => placed = false,
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
        if placed {
            self.0.insert(path.to_owned(), dir);
        }
    }

    /// Whether a non-directory this layer made is at `path`.
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
    if kind == tar::EntryType::Symlink {
        names::symlink_target(entry.link_name_bytes())?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of (kind, name, link target) entries, names as given.
    fn tar(entries: &[(tar::EntryType, &str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (kind, name, target) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_size(0);
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
            h.set_cksum();
            b.append(&h, &b""[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn foreign(entries: &[(tar::EntryType, &str, &str)]) -> Vec<String> {
        check_layer(&tar(entries)[..], Compression::None)
            .unwrap()
            .foreign_links
            .into_iter()
            .map(|l| l.entry)
            .collect()
    }

    use tar::EntryType::{Directory as D, Link as L, Regular as F, Symlink as S};

    #[test]
    fn links_to_what_the_layer_made_before_are_its_own() {
        let own = foreign(&[
            (D, "a/", ""),
            (F, "a/f", ""),
            (L, "a/h", "a/f"),
            (L, "./a/h2", "/a/h"),
            (F, "top", ""),
            (L, "h3", "top"),
            (L, "top", "top"),
            (F, ".wh.top", ""),
            (L, "h4", "top"),
        ]);
        assert!(own.is_empty(), "{own:?}");
    }

    #[test]
    fn links_the_layer_cannot_settle_alone_are_listed() {
        let listed = foreign(&[
            (L, "to-lower", "etc/passwd"),
            (F, "b/f", ""),
            (L, "under-unlisted-dir", "b/f"),
            (D, "c/", ""),
            (F, "c/f", ""),
            (F, "c", ""),
            (L, "under-replaced-dir", "c/f"),
            (D, "d/", ""),
            (F, "d/f", ""),
            (L, "d", "d/f"),
            (D, "e/", ""),
            (L, "to-a-dir", "e"),
            (F, "g", ""),
            (F, "g/f", ""),
            (L, "through-a-non-dir", "g/f"),
            (S, "s", "e"),
            (F, "s/f", ""),
            (L, "through-a-symlink", "s/f"),
            (L, "later", "x"),
            (F, "x", ""),
        ]);
        assert_eq!(
            listed,
            [
                "to-lower",
                "under-unlisted-dir",
                "under-replaced-dir",
                "d",
                "to-a-dir",
                "through-a-non-dir",
                "through-a-symlink",
                "later"
            ]
        );
    }

    #[test]
    fn a_decoder_error_is_a_decompression_fault() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar(&[(F, "a", "")])).unwrap();
        let gz = gz.finish().unwrap();
        let cut = &gz[..gz.len() / 2];
        let decoder = Compression::Gzip.decoder(cut).unwrap();
        let fault = check_layer(decoder, Compression::Gzip).unwrap_err();
        assert!(
            matches!(fault, Fault::Decompress { .. }),
            "{fault:?}: {}",
            fault.clause()
        );
        assert!(fault.clause().starts_with("decompressing it as gzip: "));
        assert!(fault
            .sentence()
            .starts_with("does not decompress as gzip: "));
    }
}
