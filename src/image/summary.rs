//! What `ls` and `inspect` report: plain data, serialisable as the documented JSON shapes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::artifact::ANNOTATION_TITLE;
use super::platform::PlatformSpec;
use super::resolve::resolve_image;
use crate::error::Result;
use crate::layout::reference::Reference;
use crate::layout::walk::Node;
use crate::layout::walker::{Edge, Visitor, Walker};
use crate::layout::Layout;
use crate::spec::{Descriptor, History, Kind, Manifest};

/// One `index.json` entry, as `strata ls` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListEntry {
    /// The tag, absent for untagged entries.
    pub tag: Option<String>,
    /// The entry's digest.
    pub digest: String,
    /// The entry's media type.
    pub media_type: String,
    /// Platforms: the manifest's, or each manifest's of an index.
    pub platforms: Vec<String>,
    /// What the entry is when it is an artifact (see [`artifact_type_of`]).
    pub artifact_type: Option<String>,
    /// The digest of the manifest or index the entry refers to (its `subject`).
    pub subject: Option<String>,
    /// Bytes of the entry's own blobs: itself and every distinct blob it reaches, except
    /// through its `subject` (what an artifact describes is another entry's, not its own);
    /// absent when the graph could not be read.
    pub size: Option<u64>,
    /// Why size or platforms are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Lists every `index.json` entry in order. An entry whose graph is broken is still listed,
/// with the error, so one bad image does not hide the others.
pub fn list(layout: &Layout) -> Result<Vec<ListEntry>> {
    let index = layout.read_index()?.index;
    let mut out = Vec::new();
    for desc in &index.manifests {
        let mut entry = ListEntry {
            tag: desc.ref_name().map(str::to_owned),
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
            platforms: Vec::new(),
            artifact_type: None,
            subject: None,
            size: None,
            error: None,
        };
        let facts = own_size(layout, desc).and_then(|size| {
            let node = layout.read_node(desc)?.map(|(_, _, node)| node);
            Ok((size, platforms_of(layout, desc, node.as_ref())?, node))
        });
        match facts {
            Ok((size, platforms, node)) => {
                entry.size = Some(size);
                entry.platforms = platforms;
                if let Some(node) = &node {
                    entry.artifact_type = match node {
                        Node::Index(i) => i.artifact_type.clone(),
                        Node::Manifest(m) => artifact_type_of(m),
                    };
                    entry.subject = node.subject().map(|s| s.digest.clone());
                }
            }
            Err(e) => entry.error = Some(e.to_string()),
        }
        out.push(entry);
    }
    Ok(out)
}

/// The type of the artifact a manifest is: its `artifactType`, else its config's media
/// type when that is not an image config (artifacts made before `artifactType` existed
/// said what they were there). None for an image.
pub fn artifact_type_of(m: &Manifest) -> Option<String> {
    m.artifact_type.clone().or_else(|| {
        (Kind::of(&m.config.media_type) != Kind::Config).then(|| m.config.media_type.clone())
    })
}

/// A walk that does not cross `subject` links: the blobs an entry owns.
struct OwnBlobs;

impl Visitor for OwnBlobs {
    fn edge(&mut self, _desc: &Descriptor, edge: &Edge<'_>) -> bool {
        !edge.via_subject
    }
}

/// The bytes of every distinct blob `desc` reaches, itself included, not through subjects.
fn own_size(layout: &Layout, desc: &Descriptor) -> Result<u64> {
    let mut walker = Walker::new(&[layout]);
    walker.walk_with(std::slice::from_ref(desc), &mut OwnBlobs)?;
    walker.check_nodes()?;
    Ok(walker.items().iter().map(|b| b.blob.size).sum())
}

fn platforms_of(layout: &Layout, desc: &Descriptor, node: Option<&Node>) -> Result<Vec<String>> {
    if let Some(p) = &desc.platform {
        return Ok(vec![p.to_string()]);
    }
    match node {
        Some(Node::Index(index)) => Ok(index
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
            .collect()),
        Some(Node::Manifest(m)) if Kind::of(&m.config.media_type) == Kind::Config => {
            Ok(vec![layout.read_config(&m.config)?.1.platform()])
        }
        _ => Ok(Vec::new()),
    }
}

/// A blob in a summary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobSummary {
    /// Digest.
    pub digest: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
}

/// One layer in a summary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerSummary {
    /// Digest of the stored (possibly compressed) blob.
    pub digest: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
    /// The uncompressed digest from the config's `rootfs.diff_ids`, when known.
    pub diff_id: Option<String>,
}

/// One file of an artifact: a layer, named by its title annotation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileSummary {
    /// The `org.opencontainers.image.title` annotation, if any.
    pub title: Option<String>,
    /// Digest.
    pub digest: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
}

/// What `strata inspect` reports about one image. Documented in the README as a JSON
/// shape (`schemaVersion` 1).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// The reference as given.
    pub reference: String,
    /// The `index.json` entry (or digest) the reference named.
    pub entry: BlobSummary,
    /// The manifest chosen (the entry itself, or through indexes by platform).
    pub manifest: BlobSummary,
    /// What the artifact is (see [`artifact_type_of`]); None for an image.
    pub artifact_type: Option<String>,
    /// The digest of the manifest or index this one refers to (its `subject`).
    pub subject: Option<String>,
    /// An artifact's files (its layers), in order; absent for an image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileSummary>>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The config blob.
    pub config: BlobSummary,
    /// `os/arch[/variant]` from the image config.
    pub platform: Option<String>,
    /// When the image was created.
    pub created: Option<String>,
    /// Who made it.
    pub author: Option<String>,
    /// Layers, base first.
    pub layers: Vec<LayerSummary>,
    /// Sum of manifest, config and layer sizes.
    pub total_size: u64,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Cmd.
    pub cmd: Option<Vec<String>>,
    /// Environment.
    pub env: Vec<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Exposed ports.
    pub exposed_ports: Vec<String>,
    /// Volumes.
    pub volumes: Vec<String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// Build history, oldest first. Serialised with camelCase keys, as every other key of
    /// the document (the config's own spelling is `inspect --raw config`'s).
    #[serde(serialize_with = "history_in_camel_case")]
    pub history: Vec<History>,
}

/// Summarises the image a reference names, picking by platform through indexes.
pub fn inspect(
    reference: &Reference,
    platform: &PlatformSpec,
) -> Result<(ImageSummary, super::Resolved)> {
    let layout = Layout::open(&reference.layout)?;
    let resolved = resolve_image(&layout, &reference.target, platform)?;
    let m = &resolved.manifest;
    let blob = |d: &crate::spec::Descriptor| BlobSummary {
        digest: d.digest.clone(),
        media_type: d.media_type.clone(),
        size: d.size,
    };
    let image_config = if Kind::of(&m.config.media_type) == Kind::Config {
        Some(layout.read_config(&m.config)?.1)
    } else {
        None
    };
    let diff_ids = image_config
        .as_ref()
        .map(|c| c.rootfs.diff_ids.clone())
        .unwrap_or_default();
    let cc = image_config
        .as_ref()
        .and_then(|c| c.config.clone())
        .unwrap_or_default();
    let keys = |m: Option<BTreeMap<String, serde_json::Value>>| {
        m.map(|m| m.into_keys().collect()).unwrap_or_default()
    };
    let total = [resolved.descriptor.size, m.config.size]
        .into_iter()
        .chain(m.layers.iter().map(|l| l.size))
        .map(|s| s.max(0) as u64)
        .sum();
    let artifact_type = artifact_type_of(m);
    let summary = ImageSummary {
        reference: reference.to_string(),
        entry: blob(&resolved.entry),
        manifest: blob(&resolved.descriptor),
        artifact_type: artifact_type.clone(),
        subject: m.subject.as_ref().map(|d| d.digest.clone()),
        files: artifact_type.map(|_| {
            m.layers
                .iter()
                .map(|l| FileSummary {
                    title: l.annotation(ANNOTATION_TITLE).map(str::to_owned),
                    digest: l.digest.clone(),
                    media_type: l.media_type.clone(),
                    size: l.size,
                })
                .collect()
        }),
        annotations: m.annotations.clone().unwrap_or_default(),
        config: blob(&m.config),
        platform: image_config.as_ref().map(|c| c.platform()),
        created: image_config.as_ref().and_then(|c| c.created.clone()),
        author: image_config.as_ref().and_then(|c| c.author.clone()),
        layers: m
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| LayerSummary {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                diff_id: diff_ids.get(i).cloned(),
            })
            .collect(),
        total_size: total,
        entrypoint: cc.entrypoint,
        cmd: cc.cmd,
        env: cc.env.unwrap_or_default(),
        working_dir: cc.working_dir,
        user: cc.user,
        labels: cc.labels.unwrap_or_default(),
        exposed_ports: keys(cc.exposed_ports),
        volumes: keys(cc.volumes),
        stop_signal: cc.stop_signal,
        history: image_config.and_then(|c| c.history).unwrap_or_default(),
    };
    Ok((summary, resolved))
}

/// One history entry as the inspect document shows it: the fields the image-spec defines.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryEntry<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    empty_layer: Option<bool>,
}

fn history_in_camel_case<S: serde::Serializer>(
    history: &[History],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_seq(history.iter().map(|h| HistoryEntry {
        created: h.created.as_deref(),
        created_by: h.created_by.as_deref(),
        author: h.author.as_deref(),
        comment: h.comment.as_deref(),
        empty_layer: h.empty_layer,
    }))
}
