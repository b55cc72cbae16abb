//! The one walk of the content graph (see [`Walker`]), used by gc, fsck, ls, export, copy
//! and import, so that they all reach the same blobs in the same roles.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::walk::{blob_ref, Node};
use super::Layout;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::spec::{BlobRef, Descriptor, Kind};

/// What a blob is to the descriptor that reached it. Ordered from the most to the least
/// document-like, so that a blob reached in several roles is reported in the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// An index or manifest (read and followed).
    Node,
    /// A manifest's config.
    Config,
    /// Anything else: layers, artifact payloads, roots of other media types.
    Leaf,
}

/// A blob reached by a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// Its checked digest and size.
    pub blob: BlobRef,
    /// The most document-like role it was reached in.
    pub role: Role,
    /// The media type of the first descriptor that reached it in that role.
    pub media_type: String,
    /// The index of the store it was found in (see [`Walker::new`]).
    pub store: usize,
}

/// How a blob was visited: a node is keyed by the kind its descriptor gives, because the
/// same bytes may be decoded as an index under one descriptor and a manifest under another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Visit {
    Index,
    Manifest,
    Config,
    Leaf,
}

/// The one walk of the content graph, for gc, fsck, ls, export, copy and import: from root
/// descriptors through indexes and manifests to configs and layers, with `subject` as a weak
/// link (a referrer's subject may be absent). It remembers a blob per (digest, role), not
/// per digest: bytes met first as an artifact's layer are still read and followed when an
/// index reaches them as a manifest, or that manifest's config and layers would be missed
/// (gc would delete them, export would leave them out).
///
/// Blobs are looked up in several stores in turn (a staging layout, then the destination);
/// the first holding a regular file of the right size is where a blob is read. Blobs no
/// store holds are collected rather than fatal, so an error can name every one; nodes are
/// read verified, and one that cannot be decoded is an error.
#[derive(Debug, Clone)]
pub struct Walker<'a> {
    stores: Vec<&'a Layout>,
    visited: HashSet<(Digest, Visit)>,
    position: HashMap<Digest, usize>,
    items: Vec<Reached>,
    missing: Vec<(BlobRef, Role)>,
}

impl<'a> Walker<'a> {
    /// A walker over `stores`, none visited yet.
    pub fn new(stores: &[&'a Layout]) -> Walker<'a> {
        Walker {
            stores: stores.to_vec(),
            visited: HashSet::new(),
            position: HashMap::new(),
            items: Vec::new(),
            missing: Vec::new(),
        }
    }

    /// The blobs reached, each once, in the order first met (depth first).
    pub fn items(&self) -> &[Reached] {
        &self.items
    }

    /// Takes the blobs reached.
    pub fn into_items(self) -> Vec<Reached> {
        self.items
    }

    /// The blobs reached that no store holds, each once, with the role they were needed in
    /// (a missing node's children are unknown, so they are not listed).
    pub fn missing(&self) -> &[(BlobRef, Role)] {
        &self.missing
    }

    /// True when `digest` was reached, in any role.
    pub fn reached(&self, digest: &Digest) -> bool {
        self.position.contains_key(digest)
    }

    /// True when `digest` was read and followed as an index or manifest.
    pub fn walked_as_node(&self, digest: &Digest) -> bool {
        self.visited.contains(&(digest.clone(), Visit::Index))
            || self.visited.contains(&(digest.clone(), Visit::Manifest))
    }

    /// Walks from `roots` (each an index, a manifest or, taken as a leaf, anything else).
    pub fn walk(&mut self, roots: &[Descriptor]) -> Result<()> {
        self.walk_with(roots, &mut Plain)
    }

    /// [`Walker::walk`], telling `visitor` about every edge and node on the way (fsck
    /// checks the spec's rules there).
    pub fn walk_with(&mut self, roots: &[Descriptor], visitor: &mut dyn Visitor) -> Result<()> {
        // (descriptor, role, how it was linked, where it was found)
        let mut stack: Vec<(Descriptor, Role, Link, String)> = roots
            .iter()
            .rev()
            .map(|d| (d.clone(), Role::Node, Link::Strong, "index.json".to_owned()))
            .collect();
        while let Some((desc, role, link, found_in)) = stack.pop() {
            let edge = Edge {
                role,
                via_subject: link == Link::Subject,
                by_shape: link == Link::ByShape,
                found_in: &found_in,
            };
            if !visitor.edge(&desc, &edge) {
                continue;
            }
            let blob = match blob_ref(&desc, &format!("a descriptor in {found_in}")) {
                Ok(blob) => blob,
                // Inside a blob of unknown type, read only to keep what it points at.
                Err(_) if link == Link::ByShape => continue,
                Err(e) => return Err(e),
            };
            let kind = Kind::of(&desc.media_type);
            let is_node = matches!(kind, Kind::Index | Kind::Manifest);
            // A root, index entry or subject labelled as anything but a manifest or index
            // may still be one: what it points at is kept whatever its label says.
            let unknown_label = role == Role::Node && !is_node;
            // A root, index entry or subject that is not an index or manifest is a leaf.
            let role = if role == Role::Node && !is_node {
                Role::Leaf
            } else {
                role
            };
            let visit = match (role, kind) {
                (Role::Node, Kind::Index) => Visit::Index,
                (Role::Node, _) => Visit::Manifest,
                (Role::Config, _) => Visit::Config,
                (Role::Leaf, _) => Visit::Leaf,
            };
            let key = (blob.digest.clone(), visit);
            if self.visited.contains(&key) {
                continue;
            }
            let Some(store) = self.stores.iter().position(|l| holds(l, &blob)) else {
                if link == Link::Strong {
                    self.visited.insert(key);
                    if !self.missing.iter().any(|(b, _)| b.digest == blob.digest) {
                        self.missing.push((blob, role));
                    }
                }
                continue;
            };
            self.visited.insert(key);
            self.record(&blob, role, &desc.media_type, store);
            let store = self.stores[store];
            let (node, children_link) = if unknown_label {
                match store.read_node_by_shape(&blob) {
                    Some((_, node)) => (node, Link::ByShape),
                    None => continue,
                }
            } else if role != Role::Node {
                continue;
            } else {
                match store.read_node(&desc) {
                    Ok(Some((_, raw, node))) => {
                        visitor.node(&blob, &raw, &node);
                        (node, Link::Strong)
                    }
                    Ok(None) => continue,
                    // One that breaks its label's rules but reads by its shape is still
                    // followed: gc must not lose what it points at.
                    Err(e) => match store.read_node_by_shape(&blob) {
                        Some((raw, node)) => {
                            visitor.misread_node(&blob, &desc.media_type, &node, e);
                            visitor.node(&blob, &raw, &node);
                            (node, Link::Strong)
                        }
                        None => {
                            visitor.bad_node(&blob, e)?;
                            continue;
                        }
                    },
                }
            };
            let here = format!("blob {}", blob.digest);
            let mut children: Vec<(Descriptor, Role, Link, String)> = Vec::new();
            match &node {
                Node::Index(i) => {
                    children.extend(
                        i.manifests
                            .iter()
                            .map(|d| (d.clone(), Role::Node, children_link, here.clone())),
                    );
                }
                Node::Manifest(m) => {
                    children.push((m.config.clone(), Role::Config, children_link, here.clone()));
                    children.extend(
                        m.layers
                            .iter()
                            .map(|d| (d.clone(), Role::Leaf, children_link, here.clone())),
                    );
                }
            }
            if let Some(s) = node.subject() {
                let link = match children_link {
                    Link::Strong => Link::Subject,
                    weak => weak,
                };
                children.push((s.clone(), Role::Node, link, here));
            }
            stack.extend(children.into_iter().rev());
        }
        Ok(())
    }

    fn record(&mut self, blob: &BlobRef, role: Role, media_type: &str, store: usize) {
        match self.position.get(&blob.digest) {
            Some(&i) => {
                let item = &mut self.items[i];
                if role < item.role {
                    item.role = role;
                    item.media_type = media_type.to_owned();
                }
            }
            None => {
                self.position.insert(blob.digest.clone(), self.items.len());
                self.items.push(Reached {
                    blob: blob.clone(),
                    role,
                    media_type: media_type.to_owned(),
                    store,
                });
            }
        }
    }

    /// Adds every manifest or index stored in `layout` whose `subject` the walk reached
    /// (signatures, SBOMs), with what they reach, until nothing changes. With `whole_only`,
    /// a referrer whose graph has a missing blob is left out whole (a transfer must not
    /// carry a broken graph); otherwise it is walked like any root (gc keeps what is there).
    /// Returns the referrers added, in digest order.
    /// `stored` is `layout`'s blobs ([`super::gc::list_blobs`]).
    pub fn add_referrers(
        &mut self,
        layout: &Layout,
        stored: &BTreeMap<Digest, u64>,
        whole_only: bool,
    ) -> Result<Vec<Descriptor>> {
        let candidates = super::gc::find_referrers(layout, stored, |d| self.walked_as_node(d))?;
        let mut added = Vec::new();
        let mut incomplete = HashSet::new();
        loop {
            let newly: Vec<Descriptor> = candidates
                .iter()
                .filter(|r| {
                    !self.walked_as_node(&r.digest)
                        && !incomplete.contains(&r.digest)
                        && self.reached(&r.subject)
                })
                .map(|r| Descriptor::new(&r.media_type, &r.digest, r.size))
                .collect();
            if newly.is_empty() {
                break;
            }
            for referrer in newly {
                let digest = referrer.digest()?;
                if !whole_only {
                    self.walk(std::slice::from_ref(&referrer))?;
                    added.push(referrer);
                    continue;
                }
                let mut trial = self.clone();
                trial.walk(std::slice::from_ref(&referrer))?;
                if trial.missing.len() == self.missing.len() {
                    *self = trial;
                    added.push(referrer);
                } else {
                    incomplete.insert(digest);
                }
            }
        }
        added.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(added)
    }

    /// Everything reached by digest, missing blobs included (as found in store 0): an
    /// image's size counts its absent layers, and gc keeps the `index.json` entry of a
    /// missing blob.
    pub fn into_map(self) -> BTreeMap<Digest, Reached> {
        let missing = self.missing.into_iter().map(|(blob, role)| Reached {
            blob,
            role,
            media_type: String::new(),
            store: 0,
        });
        let mut out = BTreeMap::new();
        for r in self.items.into_iter().chain(missing) {
            out.entry(r.blob.digest.clone()).or_insert(r);
        }
        out
    }

    /// The error for the first missing node, if any: the walk could not know what it holds.
    /// What opening it says (a link, a wrong size, permission denied) is the message.
    pub fn check_nodes(&self) -> Result<()> {
        match self.missing.iter().find(|(_, role)| *role == Role::Node) {
            Some((blob, _)) => Err(self.stores[0].blob_error(blob)),
            None => Ok(()),
        }
    }
}

/// How a descriptor is linked from where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// A root, an index entry, a config or a layer: it must be there.
    Strong,
    /// A `subject`: a weak link, which may dangle.
    Subject,
    /// Held by a blob of a media type strata does not know that reads as a manifest or
    /// index: followed so gc keeps it, but nothing requires it to be there.
    ByShape,
}

/// How a walk met a descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Edge<'s> {
    /// The role the parent gives it (a root, index entry or subject is a [`Role::Node`]
    /// until its media type says otherwise).
    pub role: Role,
    /// Reached through a `subject`: a weak link, which may dangle.
    pub via_subject: bool,
    /// Held by a blob of unknown media type read as a manifest or index by its shape: the
    /// spec gives it no rules, and it may dangle.
    pub by_shape: bool,
    /// Where it was found: `index.json` or `blob <digest>`.
    pub found_in: &'s str,
}

/// What a [`Walker::walk_with`] tells its caller. The defaults walk as gc does.
pub trait Visitor {
    /// Every descriptor met, before its blob is looked at; false: do not follow it (it is
    /// unusable, and the visitor has said why).
    fn edge(&mut self, _desc: &Descriptor, _edge: &Edge<'_>) -> bool {
        true
    }

    /// A node (index or manifest) that could not be read or decoded: return the error to
    /// stop the walk, or Ok to go on without its children.
    fn bad_node(&mut self, _blob: &BlobRef, error: Error) -> Result<()> {
        Err(error)
    }

    /// A node read and decoded (`raw` its bytes), before its children are walked.
    fn node(&mut self, _blob: &BlobRef, _raw: &[u8], _node: &Node) {}

    /// A node that breaks the rules of its media type `declared` (`error`) but reads as
    /// `node` by its shape, and is walked as such.
    fn misread_node(&mut self, _blob: &BlobRef, _declared: &str, _node: &Node, _error: Error) {}
}

/// The visitor that only walks.
struct Plain;

impl Visitor for Plain {}

/// True when `layout` holds a regular file of the right size for `blob` (content is
/// verified when it is read). A link under the blob's name is not a blob.
pub fn holds(layout: &Layout, blob: &BlobRef) -> bool {
    std::fs::symlink_metadata(layout.blob_path(&blob.digest))
        .is_ok_and(|m| m.is_file() && m.len() == blob.size)
}

/// Everything reachable from `roots` in `layout`, by digest. A node that is missing or
/// cannot be decoded is an error naming it, because its children cannot be known.
pub fn reachable(layout: &Layout, roots: &[Descriptor]) -> Result<BTreeMap<Digest, Reached>> {
    let mut walker = Walker::new(&[layout]);
    walker.walk(roots)?;
    walker.check_nodes()?;
    Ok(walker.into_map())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{media_type, to_canonical_json};

    fn put(layout: &Layout, media_type: &str, bytes: &[u8]) -> Descriptor {
        let blob = layout.put_blob(bytes).unwrap();
        Descriptor::new(media_type, &blob.digest, blob.size)
    }

    fn json(value: serde_json::Value) -> Vec<u8> {
        to_canonical_json(&value)
    }

    #[test]
    fn a_manifest_met_first_as_a_layer_is_still_followed() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::init(dir.path().join("lay")).unwrap();
        let layer = put(&layout, media_type::LAYER_TAR, b"layer bytes");
        let config = put(
            &layout,
            media_type::CONFIG,
            &json(serde_json::json!({"architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [layer.digest]}})),
        );
        let manifest = put(
            &layout,
            media_type::MANIFEST,
            &json(
                serde_json::json!({"schemaVersion": 2, "mediaType": media_type::MANIFEST,
                "config": config, "layers": [layer]}),
            ),
        );
        let empty = put(&layout, media_type::EMPTY, b"{}");
        let mut carried = manifest.clone();
        carried.media_type = "application/octet-stream".into();
        let artifact = put(
            &layout,
            media_type::MANIFEST,
            &json(
                serde_json::json!({"schemaVersion": 2, "mediaType": media_type::MANIFEST,
                "artifactType": "application/x.test", "config": empty, "layers": [carried]}),
            ),
        );
        let index = put(
            &layout,
            media_type::INDEX,
            &json(
                serde_json::json!({"schemaVersion": 2, "mediaType": media_type::INDEX,
                "manifests": [artifact, manifest]}),
            ),
        );
        let mut walker = Walker::new(&[&layout]);
        walker.walk(&[index]).unwrap();
        let roles: BTreeMap<String, Role> = walker
            .items()
            .iter()
            .map(|r| (r.blob.digest.to_string(), r.role))
            .collect();
        assert_eq!(roles.len(), 6, "{roles:?}");
        assert_eq!(roles[&manifest.digest], Role::Node);
        assert_eq!(roles[&config.digest], Role::Config);
        assert_eq!(roles[&layer.digest], Role::Leaf);
        assert!(walker.missing().is_empty());
    }
}
