//! The OCI image-spec documents strata reads and writes: descriptors, manifests, indexes,
//! image configs and platforms. Every struct keeps the fields it does not know in `extra`, so
//! an edited document loses nothing; documents that are not edited are never re-serialised
//! (callers keep the stored bytes). New JSON goes through [`to_canonical_json`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::{Digest, DigestError};

/// Media types strata knows by name.
pub mod media_type {
    /// OCI image index.
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image manifest.
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image config.
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// The empty JSON document `{}`.
    pub const EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// Uncompressed layer.
    pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// gzip layer.
    pub const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// zstd layer.
    pub const LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Deprecated non-distributable layer.
    pub const LAYER_ND_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    /// Deprecated non-distributable gzip layer.
    pub const LAYER_ND_TAR_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// Deprecated non-distributable zstd layer.
    pub const LAYER_ND_TAR_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// The `oci-layout` file.
    pub const LAYOUT_HEADER: &str = "application/vnd.oci.layout.header.v1+json";
}

/// The annotation that names a tag on an `index.json` entry.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The annotation giving when an image was built (RFC 3339).
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// What a descriptor's media type says its blob is, for walking the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image index (OCI or Docker manifest list).
    Index,
    /// An image manifest (OCI or Docker schema 2).
    Manifest,
    /// An image config (OCI or Docker).
    Config,
    /// Anything else: layers, artifacts, unknown types. A leaf.
    Opaque,
}

impl Kind {
    /// Classifies a media type.
    pub fn of(media_type: &str) -> Kind {
        match media_type {
            media_type::INDEX | media_type::DOCKER_MANIFEST_LIST => Kind::Index,
            media_type::MANIFEST | media_type::DOCKER_MANIFEST => Kind::Manifest,
            media_type::CONFIG | media_type::DOCKER_CONFIG => Kind::Config,
            _ => Kind::Opaque,
        }
    }
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The referenced content's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The digest, as stored; see [`Descriptor::digest`] for the checked form.
    pub digest: String,
    /// The size in bytes, as stored (negative values are kept so they can be reported).
    pub size: i64,
    /// Alternative download locations.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub urls: Option<Vec<String>>,
    /// Annotations.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Embedded content, base64.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data: Option<String>,
    /// The artifact type of the referenced manifest.
    #[serde(
        rename = "artifactType",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub artifact_type: Option<String>,
    /// The platform of the referenced manifest.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<Platform>,
    /// Fields strata does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A descriptor whose digest and size were checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobRef {
    /// The digest.
    pub digest: Digest,
    /// The size in bytes.
    pub size: u64,
}

/// Why a descriptor cannot be used to address a blob.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptorError {
    /// The digest is malformed or of an unsupported algorithm.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// The size is negative.
    #[error("descriptor for {digest} has a negative size {size}")]
    NegativeSize {
        /// The digest as stored.
        digest: String,
        /// The size as stored.
        size: i64,
    },
}

impl Descriptor {
    /// A descriptor with just the three required fields.
    pub fn new(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: digest.to_string(),
            size: i64::try_from(size).expect("blob sizes fit in i64"),
            urls: None,
            annotations: None,
            data: None,
            artifact_type: None,
            platform: None,
            extra: Map::new(),
        }
    }

    /// The checked digest.
    pub fn digest(&self) -> Result<Digest, DigestError> {
        self.digest.parse()
    }

    /// The checked digest and size.
    pub fn blob_ref(&self) -> Result<BlobRef, DescriptorError> {
        let digest = self.digest()?;
        let size = u64::try_from(self.size).map_err(|_| DescriptorError::NegativeSize {
            digest: self.digest.clone(),
            size: self.size,
        })?;
        Ok(BlobRef { digest, size })
    }

    /// The value of one annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The tag (`org.opencontainers.image.ref.name`), if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotation(ANNOTATION_REF_NAME)
    }

    /// Sets or removes one annotation, dropping an emptied map.
    pub fn set_annotation(&mut self, key: &str, value: Option<&str>) {
        let map = self.annotations.get_or_insert_with(BTreeMap::new);
        match value {
            Some(v) => {
                map.insert(key.to_owned(), v.to_owned());
            }
            None => {
                map.remove(key);
            }
        }
        if map.is_empty() {
            self.annotations = None;
        }
    }
}

/// A platform, as in index entries and image configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    /// CPU architecture (GOARCH values).
    pub architecture: String,
    /// Operating system (GOOS values).
    pub os: String,
    /// OS version.
    #[serde(
        rename = "os.version",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub os_version: Option<String>,
    /// OS features.
    #[serde(
        rename = "os.features",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
    /// Fields strata does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (OCI, or Docker schema 2 which has the same shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Must be 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    /// The manifest media type, when present.
    #[serde(rename = "mediaType", skip_serializing_if = "Option::is_none", default)]
    pub media_type: Option<String>,
    /// The artifact type.
    #[serde(
        rename = "artifactType",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub artifact_type: Option<String>,
    /// The config.
    pub config: Descriptor,
    /// The layers, base first (`null`, as Go tools write an empty list, reads as none).
    #[serde(deserialize_with = "null_as_empty")]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Fields strata does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An image index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Must be 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    /// The index media type, when present.
    #[serde(rename = "mediaType", skip_serializing_if = "Option::is_none", default)]
    pub media_type: Option<String>,
    /// The artifact type.
    #[serde(
        rename = "artifactType",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub artifact_type: Option<String>,
    /// The entries (`null` reads as none).
    #[serde(deserialize_with = "null_as_empty")]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Fields strata does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Index {
    /// An empty index, as a new layout's `index.json`.
    pub fn empty() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media_type::INDEX.to_owned()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: None,
            extra: Map::new(),
        }
    }
}

/// An image config (OCI, or Docker's which is a superset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// CPU variant.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
    /// Creation time, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created: Option<String>,
    /// Author.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub author: Option<String>,
    /// Execution parameters.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub config: Option<ContainerConfig>,
    /// Layer digests (uncompressed).
    pub rootfs: RootFs,
    /// Build history.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub history: Option<Vec<History>>,
    /// Fields strata does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageConfig {
    /// `os/arch[/variant]`.
    pub fn platform(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// The `config` object of an image config: what the runtime should run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// User (name, uid, or user:group).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<String>,
    /// Exposed ports (`port/proto` keys).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// Environment, `NAME=value`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub env: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cmd: Option<Vec<String>>,
    /// Volumes (paths as keys).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Stop signal.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stop_signal: Option<String>,
    /// Fields strata does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Must be `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests, base first.
    pub diff_ids: Vec<String>,
    /// Fields strata does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One history entry of an image config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct History {
    /// Creation time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created: Option<String>,
    /// Author.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub author: Option<String>,
    /// The command that made the layer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created_by: Option<String>,
    /// A comment.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub comment: Option<String>,
    /// True when the entry made no layer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub empty_layer: Option<bool>,
    /// Fields strata does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A list that may be `null`: Go's encoders write a nil slice so. A missing field is still
/// an error (the field is required).
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Descriptor>, D::Error> {
    Ok(Option::<Vec<Descriptor>>::deserialize(d)?.unwrap_or_default())
}

/// Serialises `value` as compact JSON with map keys sorted, so the same document always
/// gives the same bytes (and digest).
pub fn to_canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Going through Value sorts every object's keys (serde_json's Map is a BTreeMap here).
    let value = serde_json::to_value(value).expect("strata's spec types serialise to JSON");
    serde_json::to_vec(&value).expect("a JSON value serialises")
}

/// True when `s` is a media type by RFC 6838's `type/subtype` grammar.
pub fn is_valid_media_type(s: &str) -> bool {
    let restricted_name = |part: &str| {
        let bytes = part.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 127
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(b))
    };
    match s.split_once('/') {
        Some((t, sub)) => restricted_name(t) && restricted_name(sub),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let raw = r#"{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"sha256:x","size":1,"zz":{"k":1}}],"future":[1,2]}"#;
        let index: Index = serde_json::from_str(raw).unwrap();
        let back: Value = serde_json::from_slice(&to_canonical_json(&index)).unwrap();
        assert_eq!(back["future"], serde_json::json!([1, 2]));
        assert_eq!(back["manifests"][0]["zz"]["k"], 1);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let mut d = Descriptor::new(
            media_type::LAYER_TAR,
            &Digest::of_bytes(crate::digest::Algorithm::Sha256, b""),
            0,
        );
        d.set_annotation("z", Some("1"));
        d.set_annotation("a", Some("2"));
        let s = String::from_utf8(to_canonical_json(&d)).unwrap();
        assert!(
            s.starts_with(r#"{"annotations":{"a":"2","z":"1"},"digest":"#),
            "{s}"
        );
    }

    #[test]
    fn media_type_grammar() {
        assert!(is_valid_media_type(media_type::MANIFEST));
        assert!(!is_valid_media_type("nonsense"));
        assert!(!is_valid_media_type("a/"));
    }

    #[test]
    fn negative_size_is_refused() {
        let mut d = Descriptor::new(
            media_type::LAYER_TAR,
            &Digest::of_bytes(crate::digest::Algorithm::Sha256, b""),
            0,
        );
        d.size = -1;
        assert!(matches!(
            d.blob_ref(),
            Err(DescriptorError::NegativeSize { .. })
        ));
    }
}
