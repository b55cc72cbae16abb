//! Choosing what to move: a reference names an `index.json` entry; with one platform chosen,
//! an index is narrowed to the manifest for that platform (whose digest is kept: nothing is
//! rewritten), with every platform the entry goes as it is.

use crate::image::{resolve_entry, resolve_image, PlatformSpec};
use crate::layout::reference::{Reference, Target};
use crate::layout::Layout;
use crate::spec::{Descriptor, Kind, ANNOTATION_REF_NAME};

/// Which platforms of a multi-platform image to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platforms {
    /// The whole index, every platform.
    All,
    /// The manifest an index has for this platform (a single manifest is taken whatever its
    /// platform).
    One(PlatformSpec),
}

/// An image chosen for a transfer.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The layout it is in.
    pub layout: Layout,
    /// Its descriptor, as an `index.json` entry: the source entry's (or, through an index,
    /// the index's entry for the platform), tagged as the reference said.
    pub entry: Descriptor,
}

impl Chosen {
    /// The tag the entry carries.
    pub fn tag(&self) -> Option<&str> {
        self.entry.ref_name()
    }
}

/// Opens the reference's layout and chooses the image it names. The entry keeps the tag the
/// reference used (`LAYOUT:TAG`), the entry's tag for a bare `LAYOUT`, and no tag for
/// `LAYOUT@DIGEST`.
pub fn choose(reference: &Reference, platforms: &Platforms) -> crate::Result<Chosen> {
    let layout = Layout::open(&reference.layout)?;
    let found = resolve_entry(&layout, &reference.target)?;
    let tag: Option<String> = match &reference.target {
        Target::Tag(t) => Some(t.clone()),
        Target::Default => found.ref_name().map(str::to_owned),
        Target::Digest(_) => None,
    };
    let mut entry = match platforms {
        Platforms::One(platform) if Kind::of(&found.media_type) == Kind::Index => {
            let resolved = resolve_image(&layout, &reference.target, platform)?;
            let mut desc = resolved.descriptor;
            // The index's entry for the platform: its annotations are the index's business.
            desc.annotations = None;
            desc
        }
        _ => found,
    };
    entry.set_annotation(ANNOTATION_REF_NAME, tag.as_deref());
    Ok(Chosen { layout, entry })
}
