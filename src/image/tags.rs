//! Tagging: adding and removing `index.json` entries, always through the locked
//! read-modify-write so concurrent taggers never lose each other's tags.

use super::resolve_entry_in;
use crate::error::{Error, Result};
use crate::layout::reference::{validate_tag, Target};
use crate::layout::Layout;
use crate::spec::{Descriptor, ANNOTATION_REF_NAME};

/// Points `new_tag` at what `target` names (moving it if it named something else) and
/// returns the new entry. Idempotent: tagging an image with a tag it already has changes
/// nothing on disk.
pub fn tag(layout: &Layout, target: &Target, new_tag: &str) -> Result<Descriptor> {
    validate_tag(new_tag)?;
    layout.update_index(|index| {
        let mut entry = resolve_entry_in(layout, index, target)?;
        // Never hand out a new name for content that is not what its digest says.
        layout.read_node(&entry)?;
        entry.set_annotation(ANNOTATION_REF_NAME, Some(new_tag));
        if index.manifests.iter().any(|d| d == &entry) {
            return Ok((false, entry));
        }
        let existing = index
            .manifests
            .iter()
            .position(|d| d.ref_name() == Some(new_tag));
        match existing {
            Some(at) => {
                index.manifests[at] = entry.clone();
                // Further entries with this tag would make it ambiguous: keep the first only.
                let mut first = true;
                index
                    .manifests
                    .retain(|d| d.ref_name() != Some(new_tag) || std::mem::take(&mut first));
            }
            None => index.manifests.push(entry.clone()),
        }
        Ok((true, entry))
    })
}

/// Removes the `index.json` entries a tag or digest names and returns them. Blobs stay until
/// gc.
pub fn untag(layout: &Layout, target: &Target) -> Result<Vec<Descriptor>> {
    layout.update_index(|index| {
        let wanted = |d: &Descriptor| match target {
            Target::Tag(t) => d.ref_name() == Some(t.as_str()),
            Target::Digest(digest) => d.digest == digest.to_string(),
            Target::Default => false,
        };
        let removed: Vec<Descriptor> = index
            .manifests
            .iter()
            .filter(|d| wanted(d))
            .cloned()
            .collect();
        if removed.is_empty() {
            return Err(match target {
                Target::Tag(tag) => Error::TagNotFound {
                    layout: layout.root().to_owned(),
                    tag: tag.clone(),
                    hint: String::new(),
                },
                Target::Digest(digest) => Error::DigestNotFound {
                    layout: layout.root().to_owned(),
                    digest: digest.clone(),
                },
                Target::Default => {
                    Error::NoImageNamed("untag needs LAYOUT:TAG or LAYOUT@DIGEST".into())
                }
            });
        }
        index.manifests.retain(|d| !wanted(d));
        Ok((true, removed))
    })
}
