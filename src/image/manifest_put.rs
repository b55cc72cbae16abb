//! Storing a manifest or index written elsewhere (`oras manifest push`): its bytes as given,
//! after checking that it is one the spec allows and that every blob it names is here.

use crate::error::{Error, Result};
use crate::layout::walk::{blob_ref, decode_index, decode_manifest};
use crate::layout::{Layout, LockMode};
use crate::spec::{media_type, Descriptor};

/// Checks `raw` (a manifest or an index, by its `mediaType`, else by its shape) and every
/// descriptor it holds, verifies each blob they name (a manifest's config and layers, an
/// index's manifests) against its digest and size, then stores `raw` byte for byte and
/// points `tag` at it. Nothing is written when a check fails.
pub fn put_manifest(layout: &Layout, raw: &[u8], tag: &str) -> Result<super::tags::Tagged> {
    put_manifest_from(layout, raw, tag, "the document")
}

/// [`put_manifest`], its errors naming the document `source` (a file's path, say).
pub fn put_manifest_from(
    layout: &Layout,
    raw: &[u8],
    tag: &str,
    source: &str,
) -> Result<super::tags::Tagged> {
    crate::layout::reference::validate_tag(tag)?;
    let probe: serde_json::Value = serde_json::from_slice(raw).map_err(Error::bad_json(source))?;
    let declared = probe
        .get("mediaType")
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if probe.get("manifests").is_some() {
                media_type::INDEX.to_owned()
            } else {
                media_type::MANIFEST.to_owned()
            }
        });
    let what = source;
    let (links, subject) = match declared.as_str() {
        media_type::INDEX | media_type::DOCKER_MANIFEST_LIST => {
            let index = decode_index(raw, &declared, what)?;
            (index.manifests.clone(), index.subject.clone())
        }
        media_type::MANIFEST | media_type::DOCKER_MANIFEST => {
            let manifest = decode_manifest(raw, &declared, what)?;
            if manifest.config.media_type.is_empty() {
                return Err(Error::Invalid {
                    what: what.into(),
                    reason: "its config descriptor has no mediaType".into(),
                });
            }
            let mut links = vec![manifest.config.clone()];
            links.extend(manifest.layers.iter().cloned());
            (links, manifest.subject.clone())
        }
        other => {
            return Err(Error::Invalid {
                what: what.into(),
                reason: format!(
                    "mediaType {other:?} is neither an image manifest nor an image index"
                ),
            })
        }
    };
    let _lock = layout.lock_gc(LockMode::Shared)?;
    for (i, desc) in links.iter().enumerate() {
        let found_in = format!("descriptor {i} ({})", desc.digest);
        let blob = blob_ref(desc, &found_in)?;
        // Embedded data stands for the blob, which then need not be stored.
        if desc.data.is_some() && !layout.has_blob(&blob.digest) {
            continue;
        }
        layout.verify_blob(&blob).map_err(|e| Error::Invalid {
            what: found_in.clone(),
            reason: format!("the blob it names is not here as described: {e}"),
        })?;
    }
    // A subject may be elsewhere (a registry): it is not required, only checked if here.
    if let Some(subject) = &subject {
        blob_ref(subject, "its subject")?;
    }
    let stored = layout.put_blob(raw)?;
    let mut desc = Descriptor::new(&declared, &stored.digest, stored.size);
    if let Some(artifact_type) = probe.get("artifactType").and_then(|a| a.as_str()) {
        desc.artifact_type = Some(artifact_type.to_owned());
    }
    super::mutate::move_tag(layout, tag, &desc)
}
