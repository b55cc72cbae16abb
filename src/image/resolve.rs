//! From a reference to the `index.json` entry it names, and from there through any indexes to
//! one image manifest, picking by platform.

use std::collections::HashSet;

use super::platform::PlatformSpec;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::reference::Target;
use crate::layout::walk::{blob_ref, decode_index, decode_manifest};
use crate::layout::{Layout, JSON_LIMIT};
use crate::spec::{media_type, Descriptor, Index, Kind, Manifest};

/// An image manifest found through a reference.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The descriptor the reference named (an `index.json` entry, or found by digest).
    pub entry: Descriptor,
    /// The indexes passed through to reach the manifest, outermost first, with their bytes.
    pub indexes: Vec<(Descriptor, Vec<u8>, Index)>,
    /// The manifest's descriptor.
    pub descriptor: Descriptor,
    /// The manifest's exact stored bytes.
    pub raw: Vec<u8>,
    /// The parsed manifest.
    pub manifest: Manifest,
}

/// The descriptor a reference names, without descending into indexes.
pub fn resolve_entry(layout: &Layout, target: &Target) -> Result<Descriptor> {
    resolve_entry_in(layout, &layout.read_index()?.index, target)
}

/// [`resolve_entry`] against an index already read (e.g. under the index lock).
pub fn resolve_entry_in(layout: &Layout, index: &Index, target: &Target) -> Result<Descriptor> {
    match target {
        Target::Tag(tag) => {
            let matching: Vec<&Descriptor> = index
                .manifests
                .iter()
                .filter(|d| d.ref_name() == Some(tag))
                .collect();
            let first = matching.first().ok_or_else(|| Error::TagNotFound {
                layout: layout.root().to_owned(),
                tag: tag.clone(),
                hint: tag_hint(index),
            })?;
            if matching.iter().any(|d| d.digest != first.digest) {
                let digests: Vec<&str> = matching.iter().map(|d| d.digest.as_str()).collect();
                return Err(Error::Ambiguous(format!(
                    "tag {tag:?} is ambiguous in {}/index.json: it names {}",
                    layout.root().display(),
                    digests.join(", ")
                )));
            }
            Ok((*first).clone())
        }
        Target::Default => {
            let digests: HashSet<&str> =
                index.manifests.iter().map(|d| d.digest.as_str()).collect();
            match digests.len() {
                1 => Ok(index.manifests[0].clone()),
                0 => Err(Error::Ambiguous(format!(
                    "{} holds no images",
                    layout.root().display()
                ))),
                n => Err(Error::NoImageNamed(format!(
                    "{} holds {n} images: name one as LAYOUT:TAG or LAYOUT@DIGEST{}",
                    layout.root().display(),
                    tag_hint(index)
                ))),
            }
        }
        Target::Digest(digest) => find_by_digest(layout, index, digest),
    }
}

fn tag_hint(index: &Index) -> String {
    let tags: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(Descriptor::ref_name)
        .collect();
    if tags.is_empty() {
        " (it has no tags)".into()
    } else {
        format!(" (tags: {})", tags.join(", "))
    }
}

/// A digest names a top-level entry, an entry of a nested index, or failing those a stored
/// manifest or index (a referrer, say) whose media type is read from its content.
fn find_by_digest(layout: &Layout, index: &Index, digest: &Digest) -> Result<Descriptor> {
    let wanted = digest.to_string();
    let mut stack: Vec<Descriptor> = index.manifests.clone();
    let mut seen = HashSet::new();
    while let Some(desc) = stack.pop() {
        if desc.digest == wanted {
            return Ok(desc);
        }
        if Kind::of(&desc.media_type) == Kind::Index && seen.insert(desc.digest.clone()) {
            if let Some((_, _, node)) = layout.read_node(&desc)? {
                stack.extend(node.links().into_iter().cloned());
            }
        }
    }
    let path = layout.blob_path(digest);
    let Ok(meta) = std::fs::metadata(&path) else {
        return Err(Error::DigestNotFound {
            layout: layout.root().to_owned(),
            digest: digest.clone(),
        });
    };
    // Stored, yet no image: a layer, a config or any other blob names no image to use.
    let not_an_image = || Error::Invalid {
        what: format!("{digest} in {}", layout.root().display()),
        reason: "is a stored blob, but not an image manifest or index (a layer or a config?)"
            .into(),
    };
    if meta.len() > JSON_LIMIT {
        return Err(not_an_image());
    }
    let blob = crate::spec::BlobRef {
        digest: digest.clone(),
        size: meta.len(),
    };
    let raw = layout.read_blob(&blob, JSON_LIMIT, "manifest or index")?;
    #[derive(serde::Deserialize)]
    struct Sniff {
        /// Every manifest and index has one; an image config (which has a `config` too)
        /// has none.
        #[serde(rename = "schemaVersion")]
        schema_version: Option<serde_json::Value>,
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let sniff: Sniff = serde_json::from_slice(&raw).map_err(|_| not_an_image())?;
    if sniff.schema_version.is_none() {
        return Err(not_an_image());
    }
    let media_type = match (sniff.media_type, sniff.manifests, sniff.config) {
        (Some(mt), _, _) => mt,
        (None, Some(_), None) => media_type::INDEX.to_owned(),
        (None, None, Some(_)) => media_type::MANIFEST.to_owned(),
        _ => return Err(not_an_image()),
    };
    Ok(Descriptor::new(&media_type, digest, blob.size))
}

/// Resolves a reference to one image manifest. Through an index, the first entry whose
/// platform matches `platform` wins; entries without a platform are tried after those with
/// one, and nested indexes are searched depth first.
pub fn resolve_image(
    layout: &Layout,
    target: &Target,
    platform: &PlatformSpec,
) -> Result<Resolved> {
    let entry = resolve_entry(layout, target)?;
    let mut indexes = Vec::new();
    let mut current = entry.clone();
    loop {
        let blob = blob_ref(&current, &format!("descriptor of {}", current.digest))?;
        match Kind::of(&current.media_type) {
            Kind::Manifest => {
                let raw = layout.read_blob(&blob, JSON_LIMIT, "manifest")?;
                let manifest = decode_manifest(
                    &raw,
                    &current.media_type,
                    &format!("manifest {}", blob.digest),
                )?;
                return Ok(Resolved {
                    entry,
                    indexes,
                    descriptor: current,
                    raw,
                    manifest,
                });
            }
            Kind::Index => {
                if indexes.len() > 8 {
                    return Err(Error::Invalid {
                        what: format!("index {}", blob.digest),
                        reason: "indexes nested more than 8 deep".into(),
                    });
                }
                let raw = layout.read_blob(&blob, JSON_LIMIT, "index")?;
                let index =
                    decode_index(&raw, &current.media_type, &format!("index {}", blob.digest))?;
                let next = pick(&index, platform).ok_or_else(|| Error::NoPlatform {
                    wanted: platform.to_string(),
                    digest: blob.digest.clone(),
                    available: available(&index),
                })?;
                indexes.push((current, raw, index.clone()));
                current = next;
            }
            _ => {
                return Err(Error::Invalid {
                    what: format!("{} ({})", current.digest, current.media_type),
                    reason: "not an image manifest or index".into(),
                })
            }
        }
    }
}

pub(crate) fn pick(index: &Index, platform: &PlatformSpec) -> Option<Descriptor> {
    let candidates = |with_platform: bool| {
        index.manifests.iter().filter(move |d| {
            matches!(Kind::of(&d.media_type), Kind::Manifest | Kind::Index)
                && d.platform.is_some() == with_platform
        })
    };
    candidates(true)
        .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
        .or_else(|| candidates(false).next())
        .cloned()
}

pub(crate) fn available(index: &Index) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}
