//! Writing tags into `index.json` for an import or a copy, shared so both refuse to move a
//! tag the same way: checked once up front for a clean failure, and again under the index
//! lock, where a tag another process wrote meanwhile is not lost.

use super::error::{Error, Result};
use crate::layout::Layout;
use crate::spec::{Descriptor, Index, ANNOTATION_REF_NAME};

/// The entry as it goes into `index.json`.
fn entry(desc: &Descriptor, tag: Option<&str>) -> Descriptor {
    let mut e = desc.clone();
    e.set_annotation(ANNOTATION_REF_NAME, tag);
    e
}

/// Adds the entries to `index.json` in one locked update, refusing (unless `force`) to move
/// a tag that names another image: the last check, done under the lock, so a tag written
/// meanwhile by another process is not lost either.
pub(crate) fn publish_entries(
    dest: &Layout,
    entries: &[(Descriptor, Option<String>)],
    force: bool,
) -> Result<()> {
    let late = dest.update_index(|index| {
        let clashing = clashes(index, entries);
        if !clashing.is_empty() && !force {
            return Ok((false, clashing));
        }
        Ok((apply(index, entries), Vec::new()))
    })?;
    if !late.is_empty() {
        return Err(Error::TagsExist {
            layout: dest.root().to_owned(),
            clashes: late,
        });
    }
    Ok(())
}

/// The annotation containerd (and docker 25+) put the full image name in; `ref.name` then
/// holds only the tag part.
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// The tag an archive's `index.json` entry gives its image on import: containerd's full name
/// when it is a valid tag, else `ref.name`.
pub(crate) fn archive_tag(desc: &Descriptor) -> Option<String> {
    desc.annotation(CONTAINERD_NAME)
        .filter(|n| crate::layout::reference::validate_tag(n).is_ok())
        .or(desc.ref_name())
        .map(str::to_owned)
}

/// The first tag `entries` give to two different images: the tag and the two entries'
/// positions. Publishing both would keep whichever came last, so callers refuse instead.
pub(crate) fn given_twice(
    entries: &[(Descriptor, Option<String>)],
) -> Option<(String, usize, usize)> {
    for (j, (desc, tag)) in entries.iter().enumerate() {
        let Some(tag) = tag else { continue };
        let earlier = entries[..j]
            .iter()
            .position(|(d, t)| t.as_ref() == Some(tag) && d.digest != desc.digest);
        if let Some(i) = earlier {
            return Some((tag.clone(), i, j));
        }
    }
    None
}

/// (tag, digest it names now, digest it would name) for every tag that would move.
pub(crate) fn clashes(
    index: &Index,
    entries: &[(Descriptor, Option<String>)],
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (desc, tag) in entries {
        let Some(tag) = tag else { continue };
        for existing in &index.manifests {
            if existing.ref_name() == Some(tag.as_str())
                && existing.digest != desc.digest
                && !out
                    .iter()
                    .any(|(t, _, _): &(String, String, String)| t == tag)
            {
                out.push((tag.clone(), existing.digest.clone(), desc.digest.clone()));
            }
        }
    }
    out
}

/// Adds the entries to `index.json` (a tag replaces the entry that had it, where it was);
/// returns whether anything changed.
fn apply(index: &mut Index, entries: &[(Descriptor, Option<String>)]) -> bool {
    let mut changed = false;
    for (desc, tag) in entries {
        let new = entry(desc, tag.as_deref());
        match tag {
            Some(tag) => {
                if index.manifests.contains(&new) {
                    continue;
                }
                match index
                    .manifests
                    .iter()
                    .position(|d| d.ref_name() == Some(tag.as_str()))
                {
                    Some(at) => {
                        index.manifests[at] = new;
                        let mut first = true;
                        index.manifests.retain(|d| {
                            d.ref_name() != Some(tag.as_str()) || std::mem::take(&mut first)
                        });
                    }
                    None => index.manifests.push(new),
                }
            }
            None => {
                if index
                    .manifests
                    .iter()
                    .any(|d| d.digest == new.digest && d.ref_name().is_none())
                {
                    continue;
                }
                index.manifests.push(new);
            }
        }
        changed = true;
    }
    changed
}
