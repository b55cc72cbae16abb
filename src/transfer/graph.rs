//! The blobs an image consists of, found by walking its graph across one or more layouts
//! (a source and a destination, or a staging area and a destination). The walk is the
//! store's ([`crate::layout::walk::reachable`]): indexes, manifests, configs, layers, and
//! `subject` as a weak link; but it records where each blob was found, in a fixed order,
//! and collects what is missing instead of stopping at the first gap, so an error can name
//! every missing blob.

use std::collections::HashSet;

use crate::digest::Digest;
use crate::layout::walk::blob_ref;
use crate::layout::Layout;
use crate::spec::{BlobRef, Descriptor};

/// What a blob is to the image that reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// An index or manifest (read and followed).
    Node,
    /// A manifest's config.
    Config,
    /// Anything else: layers, artifact payloads.
    Leaf,
}

/// A blob reached by a walk.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// Its checked digest and size.
    pub blob: BlobRef,
    /// What it is.
    pub role: Role,
    /// The index of the store it was found in.
    pub store: usize,
}

/// The result of a walk: the blobs found, in depth-first order, and the blobs missing from
/// every store (a missing node's children are unknown, so they are not listed).
#[derive(Debug, Default)]
pub(crate) struct Walked {
    pub items: Vec<Item>,
    pub missing: Vec<BlobRef>,
}

impl Walked {
    /// The digests found.
    pub fn digests(&self) -> HashSet<Digest> {
        self.items.iter().map(|i| i.blob.digest.clone()).collect()
    }
}

/// True when `layout` holds a blob file of the right size for `blob` (content is verified
/// when it is read).
pub(crate) fn holds(layout: &Layout, blob: &BlobRef) -> bool {
    std::fs::metadata(layout.blob_path(&blob.digest))
        .is_ok_and(|m| m.is_file() && m.len() == blob.size)
}

/// Walks from `roots` through `stores` (the first store holding a blob is where it is read),
/// skipping digests in `seen` and adding what it reaches to it, so several walks can share
/// one set. Nodes are read verified; a node that is corrupt or cannot be decoded is an error.
pub(crate) fn walk(
    stores: &[&Layout],
    roots: &[Descriptor],
    seen: &mut HashSet<Digest>,
    out: &mut Walked,
) -> crate::Result<()> {
    // (descriptor, role, reached through a `subject`): a referrer's subject may be absent.
    let mut stack: Vec<(Descriptor, Role, bool)> = roots
        .iter()
        .rev()
        .map(|d| (d.clone(), Role::Node, false))
        .collect();
    while let Some((desc, role, via_subject)) = stack.pop() {
        let blob = blob_ref(&desc, "a descriptor in the image graph")?;
        if seen.contains(&blob.digest) {
            continue;
        }
        let Some(store) = stores.iter().position(|l| holds(l, &blob)) else {
            if !via_subject {
                seen.insert(blob.digest.clone());
                out.missing.push(blob);
            }
            continue;
        };
        seen.insert(blob.digest.clone());
        let node = if role == Role::Node {
            stores[store].read_node(&desc)?
        } else {
            None
        };
        // A root or index child that is not an index or manifest is a leaf after all.
        let role = match (&node, role) {
            (None, Role::Node) => Role::Leaf,
            (_, r) => r,
        };
        out.items.push(Item { blob, role, store });
        if let Some((_, _, node)) = node {
            let mut children: Vec<(Descriptor, Role, bool)> = Vec::new();
            match &node {
                crate::layout::walk::Node::Index(i) => {
                    children.extend(i.manifests.iter().map(|d| (d.clone(), Role::Node, false)));
                }
                crate::layout::walk::Node::Manifest(m) => {
                    children.push((m.config.clone(), Role::Config, false));
                    children.extend(m.layers.iter().map(|d| (d.clone(), Role::Leaf, false)));
                }
            }
            if let Some(s) = node.subject() {
                children.push((s.clone(), Role::Node, true));
            }
            stack.extend(children.into_iter().rev());
        }
    }
    Ok(())
}

/// Adds to a walk every manifest or index stored in `layout` whose `subject` the walk
/// reached (signatures, SBOMs: what gc keeps for a kept image), with what they reach, until
/// nothing changes. A referrer whose own graph is incomplete is left out whole (it is not
/// what was asked for, and a kept manifest with a missing blob would stop gc). Returns the
/// referrers added, in digest order.
pub(crate) fn add_referrers(
    stores: &[&Layout],
    layout: &Layout,
    seen: &mut HashSet<Digest>,
    out: &mut Walked,
) -> crate::Result<Vec<Descriptor>> {
    let stored = crate::layout::gc::list_blobs(layout)?;
    let candidates = crate::layout::gc::find_referrers(layout, &stored, |d| seen.contains(d))?;
    let mut added = Vec::new();
    let mut incomplete = HashSet::new();
    loop {
        let reached = out.digests();
        let newly: Vec<Descriptor> = candidates
            .iter()
            .filter(|r| {
                !seen.contains(&r.digest)
                    && !incomplete.contains(&r.digest)
                    && reached.contains(&r.subject)
            })
            .map(|r| Descriptor::new(&r.media_type, &r.digest, r.size))
            .collect();
        if newly.is_empty() {
            break;
        }
        for referrer in newly {
            let (mut trial_seen, mut trial) = (seen.clone(), Walked::default());
            walk(
                stores,
                std::slice::from_ref(&referrer),
                &mut trial_seen,
                &mut trial,
            )?;
            if trial.missing.is_empty() {
                *seen = trial_seen;
                out.items.extend(trial.items);
                added.push(referrer);
            } else if let Ok(d) = referrer.digest() {
                incomplete.insert(d);
            }
        }
    }
    added.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(added)
}
