//! The blobs an image consists of, found by the store's one walker
//! ([`crate::layout::walker::Walker`]) across one or more layouts (a source and a destination,
//! or a staging area and a destination). What transfers add: referrers are taken only when
//! their whole graph is at hand, and a missing blob is explained (a link, a FIFO, a wrong
//! size) rather than just "not found".

use crate::layout::Layout;
use crate::spec::{BlobRef, Descriptor};

pub(crate) use crate::layout::walker::{holds, Reached as Item, Role, Walker};

/// Adds to a walk every manifest or index stored in `layout` whose `subject` the walk
/// reached (signatures, SBOMs), with what they reach, until nothing changes. A referrer
/// whose own graph is incomplete is left out whole (it is not what was asked for, and a
/// kept manifest with a missing blob would stop gc). Returns the referrers added, in digest
/// order.
pub(crate) fn add_referrers(
    walker: &mut Walker<'_>,
    layout: &Layout,
) -> crate::Result<Vec<Descriptor>> {
    let stored = crate::layout::gc::list_blobs(layout)?;
    walker.add_referrers(layout, &stored, true)
}

/// The blobs the walk needed that no store holds.
pub(crate) fn missing(walker: &Walker<'_>) -> Vec<BlobRef> {
    walker.missing().iter().map(|(b, _)| b.clone()).collect()
}

/// The error for the first blob the walk found missing from `layout`, if any: what opening
/// it says (a symbolic link, not a regular file, a wrong size), else not found.
pub(crate) fn check_complete(walker: &Walker<'_>, layout: &Layout) -> crate::Result<()> {
    match walker.missing().first() {
        Some((blob, _)) => Err(layout.blob_error(blob)),
        None => Ok(()),
    }
}
