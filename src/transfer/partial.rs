//! Multi-platform images an archive holds only in part: `ctr image export` and BuildKit's OCI
//! exporter write the whole index but the blobs of some platforms only. What an import takes
//! of each index entry, as export's platform choice does:
//!
//! - every platform ([`Platforms::All`]): the index as it is, which must be complete;
//! - one platform ([`Platforms::One`]): the index's manifest for it, which must be complete;
//! - by default, every platform whose graph is complete. When all are, the index is kept as
//!   it is (its digest too). When some are not, the tag names a NEW index: the original's
//!   bytes re-serialised with only the complete entries (each entry's JSON kept as it was,
//!   unknown fields too), under its own digest. That keeps every platform and attestation
//!   that arrived, with the index's own annotations, where tagging the host's manifest would
//!   drop them; and the layout never holds an index naming manifests it lacks, so `strata
//!   fsck` and gc stay clean. The platforms left out are reported.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::error::{Error, Result};
use super::graph::{holds, Walker};
use super::import::Tagged;
use super::members::Members;
use super::Platforms;
use crate::layout::walk::decode_index;
use crate::layout::{Layout, JSON_LIMIT};
use crate::spec::{to_canonical_json, Descriptor, Kind};

/// A platform of an archive's index left out of the import.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeftOut {
    /// The index entry it belongs to: its tag, else the index's digest.
    pub image: String,
    /// Its platform (`os/arch[/variant]`), or `unknown` for an entry without one.
    pub platform: String,
    /// Its manifest's digest.
    pub digest: String,
    /// The blobs of its graph the archive lacks (those found: a missing manifest hides the
    /// rest), so that a damaged archive is told from a partial export.
    pub missing: Vec<String>,
}

/// What narrowing made of one index: an entry naming it (or the platform picked) stays, or
/// names a new index.
#[derive(Clone)]
enum Narrowed {
    AsIs,
    Replaced { digest: String, size: i64 },
    Child(Box<Descriptor>),
}

/// The entries to import, each index entry narrowed as `platforms` says (module docs), with
/// the platforms left out. A new index is written to `staging`. `stores` are where blobs may
/// be (the staging layout, then the destination).
pub(crate) fn narrow(
    entries: Tagged,
    members: &Members,
    stores: &[&Layout],
    staging: &Layout,
    platforms: Option<&Platforms>,
) -> Result<(Tagged, Vec<LeftOut>)> {
    let mut out = Vec::with_capacity(entries.len());
    let mut left_out = Vec::new();
    // Each index is narrowed once, however many tags name it, and each graph walked once,
    // however often an index lists it: an index.json of thousands of entries over one
    // index of thousands of manifests would otherwise walk millions of graphs.
    let mut done: HashMap<(String, String), (Narrowed, Vec<LeftOut>)> = HashMap::new();
    let mut walked: HashMap<(String, String), Vec<String>> = HashMap::new();
    for (desc, tag) in entries {
        if Kind::of(&desc.media_type) != Kind::Index || matches!(platforms, Some(Platforms::All)) {
            out.push((desc, tag));
            continue;
        }
        let image = tag.clone().unwrap_or_else(|| desc.digest.clone());
        let key = (desc.digest.clone(), desc.media_type.clone());
        if !done.contains_key(&key) {
            let narrowed = narrow_index(
                &desc,
                &image,
                members,
                stores,
                staging,
                platforms,
                &mut walked,
            )?;
            done.insert(key.clone(), narrowed);
        }
        let (narrowed, left) = &done[&key];
        left_out.extend(left.iter().map(|l| LeftOut {
            image: image.clone(),
            ..l.clone()
        }));
        let entry = match narrowed {
            Narrowed::AsIs => desc,
            Narrowed::Replaced { digest, size } => {
                let mut entry = desc;
                entry.digest = digest.clone();
                entry.size = *size;
                entry
            }
            Narrowed::Child(child) => (**child).clone(),
        };
        out.push((entry, tag));
    }
    Ok((out, left_out))
}

/// Narrows the index `desc` (named `image` in messages and reports); `walked` holds what
/// each graph walked so far lacks.
fn narrow_index(
    desc: &Descriptor,
    image: &str,
    members: &Members,
    stores: &[&Layout],
    staging: &Layout,
    platforms: Option<&Platforms>,
    walked: &mut HashMap<(String, String), Vec<String>>,
) -> Result<(Narrowed, Vec<LeftOut>)> {
    let mut left_out = Vec::new();
    let blob = crate::layout::walk::blob_ref(desc, "an index.json entry in the archive")?;
    // An index the archive lacks is reported missing with the rest, after this.
    let Some(store) = stores.iter().find(|s| holds(s, &blob)) else {
        return Ok((Narrowed::AsIs, left_out));
    };
    let raw = store.read_blob(&blob, JSON_LIMIT, "index")?;
    let what = format!("index {}", blob.digest);
    let index = decode_index(&raw, &desc.media_type, &what)?;
    let mut lacking = |d: &Descriptor| -> Result<Vec<String>> {
        let key = (d.digest.clone(), d.media_type.clone());
        if let Some(found) = walked.get(&key) {
            return Ok(found.clone());
        }
        let mut root = d.clone();
        root.annotations = None;
        let mut walker = Walker::new(stores);
        walker.walk(std::slice::from_ref(&root))?;
        // A blob the archive holds at another size than a descriptor gives it is no
        // platform the archive left out: the archive is damaged, and said to be.
        let resized = walker
            .missing()
            .iter()
            .find_map(|(b, _)| members.sized_otherwise(b));
        if let Some(e) = resized {
            return Err(e);
        }
        let found: Vec<String> = walker
            .missing()
            .iter()
            .map(|(b, _)| b.digest.to_string())
            .collect();
        walked.insert(key, found.clone());
        Ok(found)
    };
    let shown = |d: &Descriptor| {
        d.platform
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), |p| p.to_string())
    };
    if let Some(Platforms::One(platform)) = platforms {
        let child = crate::image::pick(&index, platform).ok_or_else(|| {
            Error::Unsupported(format!(
                "{image} has no image for platform {platform} (it has: {})",
                crate::image::available(&index)
            ))
        })?;
        if !lacking(&child)?.is_empty() {
            return Err(Error::Unsupported(format!(
                "{image}: the image for platform {} ({}) is not in the archive whole; \
                 import another platform, or all of those that are",
                shown(&child),
                child.digest
            )));
        }
        let mut entry = child;
        entry.annotations = None;
        return Ok((Narrowed::Child(Box::new(entry)), left_out));
    }
    let mut keep = HashSet::new();
    let mut kept = 0;
    for child in &index.manifests {
        let missing = lacking(child)?;
        if missing.is_empty() {
            kept += 1;
            keep.insert(child.digest.as_str());
        } else {
            left_out.push(LeftOut {
                image: image.to_owned(),
                platform: shown(child),
                digest: child.digest.clone(),
                missing,
            });
        }
    }
    if kept == index.manifests.len() {
        return Ok((Narrowed::AsIs, left_out));
    }
    if keep.is_empty() {
        return Err(Error::Unsupported(format!(
            "{image}: the archive holds none of its platforms whole ({}); it names \
             them but lacks their blobs",
            crate::image::available(&index)
        )));
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| crate::Error::Invalid {
            what: what.clone(),
            reason: format!("malformed JSON: {e}"),
        })?;
    if let Some(list) = value
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
    {
        list.retain(|m| {
            m.get("digest")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|d| keep.contains(d))
        });
    }
    let written = staging.put_blob(&to_canonical_json(&value))?;
    Ok((
        Narrowed::Replaced {
            digest: written.digest.to_string(),
            size: written.size as i64,
        },
        left_out,
    ))
}
