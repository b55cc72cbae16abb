//! Pushing an image from a layout to a registry.
//!
//! The store's walker lists what the image consists of. Blobs the registry has already (a
//! HEAD answers 200) are skipped; the others are uploaded several at once, mounted from
//! another repository of the same registry when one is named, else sent in one PUT (small
//! blobs) or in chunks. Manifests go only when every blob under them is confirmed, children
//! before their index, the tagged one last. With referrers, the manifests whose subject is
//! the image go too; on a registry without the referrers API the fallback tag's index
//! (`sha256-<hex>`) is kept up to date, as the distribution spec asks of clients.

use std::collections::BTreeMap;

use serde::Serialize;

use super::api;
use super::client::{Access, Client};
use super::error::{Error, Result};
use super::name::ImageName;
use crate::layout::walk::Node;
use crate::layout::walker::{Reached, Role, Walker};
use crate::layout::{Layout, LockMode, JSON_LIMIT};
use crate::spec::{media_type, BlobRef, Descriptor, Index};
use crate::transfer::{Chosen, ProgressFn, Ticker};

/// How to push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Also push the manifests whose subject is the image (signatures, SBOMs).
    pub referrers: bool,
    /// Blobs uploaded at once.
    pub jobs: usize,
    /// Blobs larger than this go in chunks of this size; 0 sends every blob in one request.
    pub chunk_size: u64,
    /// Repositories of the same registry to mount blobs from before uploading them.
    pub mount_from: Vec<String>,
}

/// What a push did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    /// The digest of the manifest or index pushed.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Where it went (`registry/repository:tag` or `@digest`).
    pub reference: String,
    /// Its size in bytes.
    pub size: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Blobs (and manifests) the registry had.
    pub blobs_present: usize,
    /// Manifests and indexes stored.
    pub manifests_pushed: usize,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Referrers pushed along.
    pub referrers: Vec<String>,
}

/// Pushes the chosen image to `dest` (its tag, or its digest when it has none; the image's
/// own digest otherwise). Holds the layout's gc lock shared.
pub fn push(
    client: &Client,
    source: &Chosen,
    dest: &ImageName,
    options: &PushOptions,
    progress: ProgressFn<'_>,
) -> Result<PushReport> {
    let repo = dest.repository.as_str();
    let layout = &source.layout;
    let _lock = layout.lock_gc(LockMode::Shared)?;
    let mut root = source.entry.clone();
    root.annotations = None;
    let root_digest = root.digest().map_err(crate::Error::from)?;
    if let Some(want) = &dest.digest {
        if *want != root_digest {
            return Err(Error::Unsupported(format!(
                "{dest} names {want}, but the image is {root_digest}: push by tag, or by the image's own digest"
            )));
        }
    }
    let mut walker = Walker::new(&[layout]);
    walker.walk(std::slice::from_ref(&root))?;
    let image_items = walker.items().len();
    let referrers = if options.referrers {
        let stored = crate::layout::gc::list_blobs(layout)?;
        walker.add_referrers(layout, &stored, true)?
    } else {
        Vec::new()
    };
    if let Some((blob, _)) = walker.missing().first() {
        return Err(layout.blob_error(blob).into());
    }
    let items = walker.into_items();
    let (nodes, blobs): (Vec<&Reached>, Vec<&Reached>) =
        push_order(&items, image_items, &referrers)
            .into_iter()
            .partition(|i| i.role == Role::Node);

    let mut report = PushReport {
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        reference: match &dest.tag {
            Some(t) if dest.digest.is_none() => dest.to_string(),
            _ => format!("{}/{}@{root_digest}", dest.registry, dest.repository),
        },
        size: root.size.max(0) as u64,
        blobs_uploaded: 0,
        blobs_mounted: 0,
        blobs_present: 0,
        manifests_pushed: 0,
        bytes: 0,
        referrers: referrers.iter().map(|r| r.digest.clone()).collect(),
    };

    let total: u64 = blobs
        .iter()
        .fold(0u64, |t, i| t.saturating_add(i.blob.size));
    let mut ticker = Ticker::new(progress, Some(total));
    let outcomes = upload_blobs(client, repo, layout, &blobs, options, &mut ticker)?;
    for (item, how) in blobs.iter().zip(&outcomes) {
        match how {
            Outcome::Present => report.blobs_present += 1,
            Outcome::Mounted => report.blobs_mounted += 1,
            Outcome::Uploaded => {
                report.blobs_uploaded += 1;
                report.bytes += item.blob.size;
            }
        }
    }

    let root_tag = dest.tag.as_deref().filter(|_| dest.digest.is_none());
    let mut pushed_with_subject: BTreeMap<String, Vec<Descriptor>> = BTreeMap::new();
    let mut present_with_subject: BTreeMap<String, Vec<Descriptor>> = BTreeMap::new();
    for item in &nodes {
        let raw = layout.read_blob(&item.blob, JSON_LIMIT, "manifest or index")?;
        let digest = item.blob.digest.to_string();
        let is_root = item.blob.digest == root_digest;
        let reference = match (is_root, root_tag) {
            (true, Some(t)) => t.to_owned(),
            _ => digest.clone(),
        };
        let present = api::head_manifest(client, repo, &reference, Access::Push)?
            .is_some_and(|(d, size)| d == item.blob.digest && size == item.blob.size);
        let desc = Descriptor::new(&item.media_type, &item.blob.digest, item.blob.size);
        if present {
            report.blobs_present += 1;
            // Pushed before, maybe by a push that failed before the fallback tag listed it:
            // checked below against what the registry lists.
            if let Some((subject, entry)) = referrer_entry(layout, &desc)? {
                present_with_subject.entry(subject).or_default().push(entry);
            }
        } else {
            let media_type = document_media_type(&raw, &item.media_type);
            let subject_seen = api::put_manifest(client, repo, &reference, &raw, &media_type)?;
            report.manifests_pushed += 1;
            report.bytes += raw.len() as u64;
            ticker.blob(&digest, item.blob.size, "pushed");
            if subject_seen.is_none() {
                if let Some((subject, entry)) = referrer_entry(layout, &desc)? {
                    pushed_with_subject.entry(subject).or_default().push(entry);
                }
            }
        }
    }
    ticker.finish();
    for (subject, entries) in present_with_subject {
        let digest: crate::digest::Digest = subject.parse().map_err(crate::Error::from)?;
        let listed = api::referrers(client, repo, &digest)?;
        let unlisted = entries
            .into_iter()
            .filter(|e| !listed.iter().any(|l| l.digest == e.digest));
        pushed_with_subject
            .entry(subject)
            .or_default()
            .extend(unlisted);
    }
    for (subject, entries) in pushed_with_subject {
        update_fallback_tag(client, repo, &subject, entries)?;
    }
    Ok(report)
}

/// The order documents go in: children before the documents naming them (the walk lists
/// parents first), and a referrer after its subject, which a registry may need to have
/// first: the image's graph reversed, then each referrer's graph reversed, in the order the
/// walk added them (each after its subject's). `items[..image_items]` is the image's graph;
/// every referrer's walk starts with the referrer itself.
fn push_order<'a>(
    items: &'a [Reached],
    image_items: usize,
    referrers: &[Descriptor],
) -> Vec<&'a Reached> {
    let starts: std::collections::HashSet<&str> =
        referrers.iter().map(|r| r.digest.as_str()).collect();
    let mut order: Vec<&Reached> = items[..image_items].iter().rev().collect();
    let mut graph: Vec<&Reached> = Vec::new();
    for item in &items[image_items..] {
        if starts.contains(item.blob.digest.to_string().as_str()) {
            order.extend(graph.drain(..).rev());
        }
        graph.push(item);
    }
    order.extend(graph.into_iter().rev());
    order
}

/// The media type a manifest goes with: the document's own `mediaType` when it has one (a
/// registry compares them), else the descriptor's.
fn document_media_type(raw: &[u8], declared: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Shape>(raw)
        .ok()
        .and_then(|s| s.media_type)
        .unwrap_or_else(|| declared.to_owned())
}

/// For a manifest with a subject: the subject's digest and the entry the fallback index
/// lists it by (with its artifact type and annotations, as the referrers API would).
fn referrer_entry(layout: &Layout, desc: &Descriptor) -> Result<Option<(String, Descriptor)>> {
    let node = layout.read_node(desc)?;
    let Some((_, _, node)) = node else {
        return Ok(None);
    };
    let (subject, artifact_type, annotations) = match &node {
        Node::Manifest(m) => (
            m.subject.clone(),
            m.artifact_type
                .clone()
                .or_else(|| Some(m.config.media_type.clone())),
            m.annotations.clone(),
        ),
        Node::Index(i) => (
            i.subject.clone(),
            i.artifact_type.clone(),
            i.annotations.clone(),
        ),
    };
    let Some(subject) = subject else {
        return Ok(None);
    };
    let mut entry = desc.clone();
    entry.artifact_type = artifact_type;
    entry.annotations = annotations;
    Ok(Some((subject.digest, entry)))
}

/// Adds entries to the index at a subject's fallback tag (creating it), keeping what other
/// clients put there.
fn update_fallback_tag(
    client: &Client,
    repo: &str,
    subject: &str,
    entries: Vec<Descriptor>,
) -> Result<()> {
    let digest: crate::digest::Digest = subject.parse().map_err(crate::Error::from)?;
    let tag = api::fallback_tag(&digest);
    let mut index = match api::fallback_index(client, repo, &digest)? {
        Some(f) => {
            crate::layout::walk::decode_index(&f.bytes, &f.media_type, &format!("{repo}:{tag}"))?
        }
        None => Index::empty(),
    };
    let mut changed = false;
    for e in entries {
        if !index.manifests.iter().any(|m| m.digest == e.digest) {
            index.manifests.push(e);
            changed = true;
        }
    }
    if changed {
        let bytes = crate::spec::to_canonical_json(&index);
        api::put_manifest(client, repo, &tag, &bytes, media_type::INDEX)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Present,
    Mounted,
    Uploaded,
}

/// Makes sure the registry has every blob, `jobs` at a time.
fn upload_blobs(
    client: &Client,
    repo: &str,
    layout: &Layout,
    blobs: &[&Reached],
    options: &PushOptions,
    ticker: &mut Ticker<'_>,
) -> Result<Vec<Outcome>> {
    super::workers::each(
        blobs,
        options.jobs,
        |item, advance| ensure_blob(client, repo, layout, &item.blob, options, advance),
        |ticker, i, how| {
            let word = match how {
                Outcome::Present => "present",
                Outcome::Mounted => "mounted",
                Outcome::Uploaded => "uploaded",
            };
            // An upload counted its bytes as they went; the others count at once.
            if !matches!(how, Outcome::Uploaded) {
                ticker.advance(blobs[i].blob.size);
            }
            ticker.blob(&blobs[i].blob.digest.to_string(), blobs[i].blob.size, word);
        },
        ticker,
    )
}

fn ensure_blob(
    client: &Client,
    repo: &str,
    layout: &Layout,
    blob: &BlobRef,
    options: &PushOptions,
    advance: &mut dyn FnMut(u64),
) -> Result<Outcome> {
    if api::has_blob(client, repo, blob, Access::Push)? {
        return Ok(Outcome::Present);
    }
    for from in &options.mount_from {
        if from != repo && api::mount_blob(client, repo, blob, from)? {
            return Ok(Outcome::Mounted);
        }
    }
    // A whole blob is read through the verified reader, so a blob damaged in the layout
    // fails here, named; a chunk is read from its offset, and the registry checks the digest
    // of the whole when the upload closes.
    let open = |offset: u64| -> std::io::Result<Box<dyn std::io::Read>> {
        let to_io = |e: crate::Error| std::io::Error::other(e.to_string());
        if offset == 0 {
            return Ok(Box::new(layout.open_blob(blob).map_err(to_io)?));
        }
        let mut file = layout.open_blob_file(&blob.digest).map_err(to_io)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))?;
        Ok(Box::new(file))
    };
    if let Err(e) = api::upload_blob(client, repo, blob, options.chunk_size, &open, advance) {
        // The registry refuses bytes that are not the digest (and the reader above may not
        // be read to its end, where it checks): a copy damaged in the layout is named as
        // such, not as the registry's refusal.
        layout.verify_blob(blob)?;
        return Err(e);
    }
    Ok(Outcome::Uploaded)
}
