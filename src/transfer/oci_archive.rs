//! OCI archives: an image layout as one tar. Export writes just the chosen images: the
//! `oci-layout` file, a new `index.json` listing them (tags kept), then every blob they
//! reach once, JSON documents (indexes, manifests, configs) before layers, each group in
//! walk order. Headers are fixed (`transfer::tar_out`), so the same images give the same
//! bytes. Reading one is [`super::import`]'s job; what is specific to this format there
//! (`oci-layout`, `index.json`) is checked here.

use std::collections::{BTreeSet, HashSet};
use std::io::Write;

use serde::Serialize;

use super::error::{Error, Result};
use super::graph::{add_referrers, check_complete, holds, Item, Role, Walker};
use super::tags::{archive_tag, given_twice};
use super::tar_out::TarOut;
use super::{Chosen, ProgressFn, Ticker};
use crate::layout::walk::decode_index;
use crate::layout::{Layout, LockMode, LAYOUT_VERSION};
use crate::spec::{media_type, to_canonical_json, Descriptor, Index};

/// How to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Leave out the blobs this layout (the receiver's last known state) has: an
    /// incremental archive, which only imports into a layout that has them.
    pub exclude_present_in: Option<Layout>,
    /// The modification time of every member, seconds since the epoch (0, or
    /// `SOURCE_DATE_EPOCH`).
    pub mtime: u64,
    /// Carry the images' referrers (signatures, SBOMs) along, as untagged entries.
    pub referrers: bool,
}

/// An image written to an archive.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedImage {
    /// Its tag (a docker archive's `RepoTags` entry), if any.
    pub tag: Option<String>,
    /// The digest of its manifest or index.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportReport {
    /// `oci` or `docker`.
    pub format: &'static str,
    /// The images, in archive order.
    pub images: Vec<ExportedImage>,
    /// Blobs (files) written.
    pub blobs: usize,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Blobs left out because the receiver has them.
    pub excluded: usize,
    /// Their bytes.
    pub excluded_bytes: u64,
    /// Bytes of the archive.
    pub archive_bytes: u64,
}

/// The blobs of the chosen images, each once, with the layout that holds it: the walk of
/// each image in turn, in its own layout. A missing blob is an error naming it.
/// The blobs to export, each with the index of the chosen image whose layout holds it, and
/// the referrer entries found.
pub(crate) type Collected = (Vec<(usize, Item)>, Vec<Descriptor>);

/// With `referrers`, the manifests whose `subject` an image reaches (signatures, SBOMs) come
/// too, returned as untagged `index.json` entries, so that the receiver's gc keeps them.
pub(crate) fn collect(chosen: &[Chosen], referrers: bool) -> crate::Result<Collected> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut referrer_entries: Vec<Descriptor> = Vec::new();
    for (i, c) in chosen.iter().enumerate() {
        // A walk per image, in the image's own layout; blobs shared with an earlier image
        // are written once.
        let mut walker = Walker::new(&[&c.layout]);
        walker.walk(std::slice::from_ref(&c.entry))?;
        check_complete(&walker, &c.layout)?;
        if referrers {
            for r in add_referrers(&mut walker, &c.layout)? {
                if !referrer_entries.iter().any(|e| e.digest == r.digest) {
                    referrer_entries.push(r);
                }
            }
        }
        for item in walker.into_items() {
            if seen.insert(item.blob.digest.clone()) {
                out.push((i, item));
            }
        }
    }
    Ok((out, referrer_entries))
}

/// The `index.json` entries for the chosen images, in order, each distinct entry once. A
/// tag given to two different images is refused: the archive would name neither for sure.
pub(crate) fn entries(chosen: &[Chosen]) -> Result<Vec<Descriptor>> {
    let mut out: Vec<Descriptor> = Vec::new();
    for c in chosen {
        if let Some(other) = out.iter().find(|d| {
            d.ref_name().is_some() && d.ref_name() == c.tag() && d.digest != c.entry.digest
        }) {
            return Err(Error::Unsupported(format!(
                "tag {:?} is given to two images ({} and {}): export one of them under \
                 another tag",
                c.tag().unwrap_or_default(),
                other.digest,
                c.entry.digest
            )));
        }
        if !out.contains(&c.entry) {
            out.push(c.entry.clone());
        }
    }
    // An importer reads containerd's full name before ref.name: two entries may clash there.
    let tagged: Vec<(Descriptor, Option<String>)> =
        out.iter().map(|d| (d.clone(), archive_tag(d))).collect();
    if let Some((tag, i, j)) = given_twice(&tagged) {
        return Err(Error::Unsupported(format!(
            "tag {tag:?} is given to two images ({} and {}): export one of them under \
             another tag",
            out[i].digest, out[j].digest
        )));
    }
    Ok(out)
}

/// Writes the chosen images to `out` as an OCI archive. Every blob is read verified; a
/// corrupt one fails the export (the archive written so far is then incomplete: write to a
/// temp file and rename it on success). Holds each source's gc lock shared.
pub fn export<W: Write>(
    chosen: &[Chosen],
    out: W,
    options: &ExportOptions,
    progress: ProgressFn<'_>,
) -> Result<ExportReport> {
    let _locks = chosen
        .iter()
        .map(|c| c.layout.lock_gc(LockMode::Shared))
        .collect::<crate::Result<Vec<_>>>()?;
    let mut entries = entries(chosen)?;
    let (blobs, referrers) = collect(chosen, options.referrers)?;
    entries.extend(referrers);
    // JSON documents first, so a reader learns the graph before the bulk of the bytes.
    let (mut write, mut excluded) = (Vec::new(), Vec::new());
    for json_pass in [true, false] {
        for (i, item) in &blobs {
            if (item.role != Role::Leaf) != json_pass {
                continue;
            }
            let skip = options
                .exclude_present_in
                .as_ref()
                .is_some_and(|l| holds(l, &item.blob));
            if skip {
                excluded.push(item.blob.clone());
            } else {
                write.push((*i, item.clone()));
            }
        }
    }
    let index = Index {
        manifests: entries.clone(),
        ..Index::empty()
    };
    let total: u64 = write
        .iter()
        .fold(0u64, |t, (_, item)| t.saturating_add(item.blob.size));
    let mut ticker = Ticker::new(progress, Some(total));
    let mut tar = TarOut::new(out, options.mtime);
    let io = |e: std::io::Error| crate::Error::Io {
        path: "the archive".into(),
        source: e,
    };
    tar.bytes(
        "oci-layout",
        format!(r#"{{"imageLayoutVersion":"{LAYOUT_VERSION}"}}"#).as_bytes(),
    )
    .map_err(io)?;
    tar.bytes("index.json", &to_canonical_json(&index))
        .map_err(io)?;
    tar.dir("blobs").map_err(io)?;
    let algorithms: BTreeSet<&str> = write
        .iter()
        .map(|(_, item)| item.blob.digest.algorithm().name())
        .collect();
    for alg in algorithms {
        tar.dir(&format!("blobs/{alg}")).map_err(io)?;
    }
    for (i, item) in &write {
        let layout = &chosen[*i].layout;
        let digest = &item.blob.digest;
        let name = format!("blobs/{}/{}", digest.algorithm().name(), digest.hex());
        let mut reader = layout.open_blob(&item.blob)?;
        tar.file(&name, item.blob.size, &mut reader, &mut |n| {
            ticker.advance(n)
        })
        .map_err(|e| super::tar_out::as_archive_write(e).map_or_else(|e| reader.explain(e), io))?;
        ticker.blob(&digest.to_string(), item.blob.size, "written");
    }
    let archive_bytes = {
        let written = tar.written;
        tar.finish().map_err(io)?;
        written
    };
    ticker.finish();
    Ok(ExportReport {
        format: "oci",
        images: entries
            .iter()
            .map(|e| ExportedImage {
                tag: e.ref_name().map(str::to_owned),
                digest: e.digest.clone(),
                media_type: e.media_type.clone(),
            })
            .collect(),
        blobs: write.len(),
        blob_bytes: total,
        excluded: excluded.len(),
        excluded_bytes: excluded.iter().map(|b| b.size).sum(),
        archive_bytes,
    })
}

/// Checks an archive's `oci-layout` and parses its `index.json`.
pub(crate) fn read_index(layout_file: Option<&[u8]>, index: Option<&[u8]>) -> Result<Index> {
    let layout_file = layout_file.ok_or_else(|| Error::BadArchive {
        what: "oci-layout".into(),
        reason: "missing (the archive has an index.json but no oci-layout)".into(),
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(layout_file).map_err(|e| Error::BadArchive {
            what: "oci-layout".into(),
            reason: format!("malformed JSON: {e}"),
        })?;
    let reason = match value.as_object().map(|o| o.get("imageLayoutVersion")) {
        None => format!(
            "is not a JSON object (it is {})",
            crate::words::json_kind(&value)
        ),
        Some(None) => format!("has no imageLayoutVersion (strata reads {LAYOUT_VERSION:?})"),
        Some(Some(v)) if *v == LAYOUT_VERSION => String::new(),
        Some(Some(v)) => format!("imageLayoutVersion is {v}, strata reads {LAYOUT_VERSION:?}"),
    };
    if !reason.is_empty() {
        return Err(Error::BadArchive {
            what: "oci-layout".into(),
            reason,
        });
    }
    let raw = index.ok_or_else(|| Error::BadArchive {
        what: "index.json".into(),
        reason: "missing (the archive has an oci-layout but no index.json)".into(),
    })?;
    decode_index(raw, media_type::INDEX, "index.json")
        .map_err(|e| Error::in_archive("index.json", e))
}
