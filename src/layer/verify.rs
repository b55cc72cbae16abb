//! Checking a layer tar without applying it, by the rules unpack applies: what `add-layer`
//! stores verbatim must be a layer strata itself would unpack. Names (every entry's path,
//! every hardlink target, what each whiteout points at) go through [`super::names`], ids
//! must fit 32 bits and not be chown's "leave unchanged", and the stream must read to its
//! end through strata's own tar reader (PAX records by their length).

use std::io::{self, Read};

use super::names;
use super::tarstream::TarStream;
use crate::bundle::idmap::UNCHANGED_ID;
use crate::error::{Error, Result};

/// Reads the whole tar `input` (`what` names it in errors) and returns its entry count, or
/// the first entry unpack would refuse.
pub fn check_layer(input: impl Read, what: &str) -> Result<u64> {
    let mut stream = TarStream::new(io::BufReader::new(input));
    let mut count = 0;
    let mut previous = String::new();
    loop {
        let entry = stream.next_entry().map_err(|e| Error::Invalid {
            what: what.to_owned(),
            reason: if count == 0 {
                // The tar crate quotes the header's bytes, which for a file that is no tar
                // at all are noise: a little of it is enough.
                format!(
                    "not a tar: its first header does not parse ({})",
                    crate::words::printable(&e.to_string(), 60)
                )
            } else {
                format!("reading the tar after entry {previous:?}: {e}")
            },
        })?;
        let Some(mut entry) = entry else {
            return Ok(count);
        };
        let shown = String::from_utf8_lossy(entry.path_bytes()).into_owned();
        let refused = |reason: String| Error::Invalid {
            what: format!("{what}: entry {shown:?}"),
            reason,
        };
        check_entry(&entry).map_err(refused)?;
        // Only the stored bytes: a sparse member's holes need no reading.
        entry
            .skip_data()
            .map_err(|e| refused(format!("reading its data: {e}")))?;
        previous = shown;
        count += 1;
    }
}

fn check_entry<R: Read>(
    entry: &super::tarstream::TarEntry<'_, R>,
) -> std::result::Result<(), String> {
    if let Some(why) = entry.unsupported() {
        return Err(why);
    }
    let kind = entry.header().entry_type();
    match names::layer_path(entry.path_bytes())? {
        // unpack lets only a directory describe the root (a link there would send later
        // layers anywhere).
        None if !kind.is_dir() => {
            return Err("refusing to replace the root directory with a non-directory".into())
        }
        None => {}
        Some(path) => {
            names::entry_name(&path)?;
        }
    }
    if kind == tar::EntryType::Link {
        let target = entry.link_name_bytes().unwrap_or_default();
        if names::layer_path(target)
            .map_err(|why| format!("its hardlink target: {why}"))?
            .is_none()
        {
            return Err("a hardlink to the root directory".into());
        }
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
    Ok(())
}
