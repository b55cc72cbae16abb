//! The referrers of a manifest: every stored manifest whose `subject` is it, in the shape of
//! the distribution-spec's referrers API (an image index of descriptors with
//! `artifactType` and annotations), optionally followed to referrers of referrers.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::Result;
use crate::layout::gc::{find_referrers, list_blobs, Referrer};
use crate::layout::Layout;
use crate::spec::{media_type, Descriptor, Index};

/// One referrer found, with how far it is from the manifest asked about.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    /// Its descriptor (mediaType, digest, size, artifactType, annotations).
    pub descriptor: Descriptor,
    /// The manifest it refers to.
    pub subject: String,
    /// 1 for a direct referrer, 2 for a referrer of one, ...
    pub depth: usize,
}

/// The referrers of `subject`, breadth first down to `depth` levels, keeping only those of
/// `artifact_type` when given (the filter applies at every level).
pub fn referrers(
    layout: &Layout,
    subject: &Digest,
    artifact_type: Option<&str>,
    depth: usize,
) -> Result<Vec<Found>> {
    let stored = list_blobs(layout)?;
    let all = find_referrers(layout, &stored, |_| false)?;
    let mut by_subject: BTreeMap<&Digest, Vec<&Referrer>> = BTreeMap::new();
    for r in &all {
        by_subject.entry(&r.subject).or_default().push(r);
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut level = vec![subject.clone()];
    // Stops when a level finds nothing: a depth of 2^64 costs what the graph holds.
    for d in 1..=depth.max(1) {
        if level.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for s in &level {
            for r in by_subject.get(s).into_iter().flatten() {
                if artifact_type.is_some_and(|t| r.artifact_type.as_deref() != Some(t))
                    || !seen.insert(r.digest.clone())
                {
                    continue;
                }
                let mut desc = Descriptor::new(&r.media_type, &r.digest, r.size);
                desc.artifact_type = r.artifact_type.clone();
                desc.annotations = (!r.annotations.is_empty()).then(|| r.annotations.clone());
                out.push(Found {
                    descriptor: desc,
                    subject: s.to_string(),
                    depth: d,
                });
                next.push(r.digest.clone());
            }
        }
        level = next;
    }
    Ok(out)
}

/// The referrers as the referrers API returns them: an image index.
pub fn as_index(found: &[Found]) -> Index {
    let mut index = Index::empty();
    index.media_type = Some(media_type::INDEX.into());
    index.manifests = found.iter().map(|f| f.descriptor.clone()).collect();
    index
}
