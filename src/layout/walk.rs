//! The content graph's nodes: reading and decoding the JSON documents (indexes, manifests,
//! configs) that point at other blobs. Children are named explicitly per node kind
//! (entries, config, layers, subject); blobs of other media types are leaves. Walking from
//! descriptors to everything they reach is [`super::walker`]'s job.

use super::index::parse_index;
use super::Layout;
use crate::error::{Error, Result};
use crate::spec::{BlobRef, Descriptor, ImageConfig, Index, Kind, Manifest};

/// A decoded node of the graph.
#[derive(Debug, Clone)]
pub enum Node {
    /// An image index.
    Index(Box<Index>),
    /// An image manifest.
    Manifest(Box<Manifest>),
}

impl Node {
    /// The descriptors this node holds strongly (entries; config and layers), in document
    /// order. The `subject`, a weak link, is not among them.
    pub fn links(&self) -> Vec<&Descriptor> {
        match self {
            Node::Index(i) => i.manifests.iter().collect(),
            Node::Manifest(m) => std::iter::once(&m.config).chain(m.layers.iter()).collect(),
        }
    }

    /// The `subject`, if any.
    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Node::Index(i) => i.subject.as_ref(),
            Node::Manifest(m) => m.subject.as_ref(),
        }
    }
}

/// Checks a descriptor's digest and size, naming where it was found on failure.
pub fn blob_ref(desc: &Descriptor, found_in: &str) -> Result<BlobRef> {
    desc.blob_ref().map_err(|source| Error::Descriptor {
        what: found_in.to_owned(),
        source,
    })
}

/// Parses a manifest whose descriptor says `declared` media type. Refuses a manifest with a
/// `manifests` field, an embedded media type other than the descriptor's, or a wrong
/// `schemaVersion`.
pub fn decode_manifest(raw: &[u8], declared: &str, what: &str) -> Result<Manifest> {
    super::index::check_schema_version(raw, what)?;
    let manifest: Manifest = serde_json::from_slice(raw).map_err(Error::bad_json(what))?;
    let invalid = |reason: String| Error::Invalid {
        what: what.to_owned(),
        reason,
    };
    if manifest.extra.contains_key("manifests") {
        return Err(invalid(
            "a manifest must not have a \"manifests\" field (is it an index?)".into(),
        ));
    }
    if let Some(embedded) = &manifest.media_type {
        if embedded != declared {
            return Err(invalid(format!(
                "its mediaType {embedded:?} differs from its descriptor's {declared:?}"
            )));
        }
    }
    Ok(manifest)
}

/// Parses an index whose descriptor says `declared` media type (see [`decode_manifest`]).
pub fn decode_index(raw: &[u8], declared: &str, what: &str) -> Result<Index> {
    let index = parse_index(raw, what)?;
    if let Some(embedded) = &index.media_type {
        if embedded != declared {
            return Err(Error::Invalid {
                what: what.to_owned(),
                reason: format!(
                    "its mediaType {embedded:?} differs from its descriptor's {declared:?}"
                ),
            });
        }
    }
    Ok(index)
}

/// Parses an image config.
pub fn decode_config(raw: &[u8], what: &str) -> Result<ImageConfig> {
    serde_json::from_slice(raw).map_err(Error::bad_json(what))
}

impl Layout {
    /// Reads (verified) and decodes the node a descriptor points at; `None` for leaves.
    pub fn read_node(&self, desc: &Descriptor) -> Result<Option<(BlobRef, Vec<u8>, Node)>> {
        let kind = Kind::of(&desc.media_type);
        if !matches!(kind, Kind::Index | Kind::Manifest) {
            return Ok(None);
        }
        let blob = blob_ref(desc, &format!("descriptor of {}", desc.digest))?;
        let raw = self.read_blob(&blob, super::JSON_LIMIT, "manifest or index")?;
        let what = format!("blob {}", blob.digest);
        let node = match kind {
            Kind::Index => Node::Index(Box::new(decode_index(&raw, &desc.media_type, &what)?)),
            _ => Node::Manifest(Box::new(decode_manifest(&raw, &desc.media_type, &what)?)),
        };
        Ok(Some((blob, raw, node)))
    }

    /// Reads (verified) a blob whatever its media type says and decodes it as an index (it
    /// has `manifests`) or a manifest (it has `config` and `layers`), without the rules of
    /// either; `None` when it is neither, or cannot be read.
    pub fn read_node_by_shape(&self, blob: &BlobRef) -> Option<(Vec<u8>, Node)> {
        if blob.size > super::JSON_LIMIT {
            return None;
        }
        // Most blobs of unknown type are not JSON: one byte says so without reading them.
        let mut first = [0u8; 1];
        let mut file = self.open_blob_file(&blob.digest).ok()?;
        std::io::Read::read_exact(&mut file, &mut first).ok()?;
        if !b"{ \t\r\n".contains(&first[0]) {
            return None;
        }
        let raw = self.read_blob(blob, super::JSON_LIMIT, "document").ok()?;
        let value: serde_json::Value = serde_json::from_slice(&raw).ok()?;
        let node = if value.get("manifests").is_some() {
            Node::Index(Box::new(serde_json::from_value(value).ok()?))
        } else if value.get("config").is_some() && value.get("layers").is_some() {
            Node::Manifest(Box::new(serde_json::from_value(value).ok()?))
        } else {
            return None;
        };
        Some((raw, node))
    }

    /// Reads (verified) and decodes an image config.
    pub fn read_config(&self, desc: &Descriptor) -> Result<(Vec<u8>, ImageConfig)> {
        let blob = blob_ref(desc, &format!("config descriptor {}", desc.digest))?;
        let raw = self.read_blob(&blob, super::JSON_LIMIT, "config")?;
        let config = decode_config(&raw, &format!("config {}", blob.digest))?;
        Ok((raw, config))
    }
}
