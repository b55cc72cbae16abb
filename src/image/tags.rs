//! Tagging: adding and removing `index.json` entries, always through the locked
//! read-modify-write so concurrent taggers never lose each other's tags.

use super::resolve_entry_in;
use crate::error::{Error, Result};
use crate::layout::reference::{validate_tag, Target};
use crate::layout::Layout;
use crate::spec::{Descriptor, Index, ANNOTATION_REF_NAME};

/// What pointing a tag at an image did.
#[derive(Debug, Clone)]
pub struct Tagged {
    /// The `index.json` entry the tag now is.
    pub entry: Descriptor,
    /// The digest the tag named before, when it named another image (it moved).
    pub moved_from: Option<String>,
}

impl Tagged {
    /// The image's descriptor, without the tag's annotation.
    pub fn descriptor(mut self) -> Descriptor {
        self.entry
            .set_annotation(crate::spec::ANNOTATION_REF_NAME, None);
        self.entry
    }
}

/// Points `new_tag` at what `target` names (moving it if it named something else).
/// Idempotent: tagging an image with a tag it already has changes nothing on disk.
pub fn tag(layout: &Layout, target: &Target, new_tag: &str) -> Result<Tagged> {
    validate_tag(new_tag)?;
    layout.update_index(|index| {
        let mut entry = resolve_entry_in(layout, index, target)?;
        // Never hand out a new name for content that is not what its digest says.
        layout.read_node(&entry)?;
        entry.set_annotation(ANNOTATION_REF_NAME, Some(new_tag));
        let (changed, moved_from) = place_tag(index, &entry);
        Ok((changed, Tagged { entry, moved_from }))
    })
}

/// Makes `entry` (whose ref.name is the tag) the one entry of its tag in `index`: in place of
/// the first entry that had the tag, dropping any further ones (they would make it
/// ambiguous). Returns whether `index` changed and the digest the tag named before when that
/// was another one.
pub(crate) fn place_tag(index: &mut Index, entry: &Descriptor) -> (bool, Option<String>) {
    if index.manifests.iter().any(|d| d == entry) {
        return (false, None);
    }
    let tag = entry.ref_name().map(str::to_owned);
    let tag = tag.as_deref();
    let existing = index.manifests.iter().position(|d| d.ref_name() == tag);
    match existing {
        Some(at) => {
            let before = std::mem::replace(&mut index.manifests[at], entry.clone());
            let mut first = true;
            index
                .manifests
                .retain(|d| d.ref_name() != tag || std::mem::take(&mut first));
            let moved = (before.digest != entry.digest).then_some(before.digest);
            (true, moved)
        }
        None => {
            index.manifests.push(entry.clone());
            (true, None)
        }
    }
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
