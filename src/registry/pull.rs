//! Pulling an image from a registry into a layout.
//!
//! Documents (indexes, manifests) are fetched one by one, each verified against its digest
//! and written to a staging layout inside the destination's `.strata-tmp/`; the store's walker
//! then tells which blobs neither the staging area nor the destination holds, and those are
//! downloaded several at once, each streamed through the verified blob writer (bounded memory
//! whatever a layer's size). Only when the whole graph is in are the staged blobs renamed into
//! `blobs/` (layers first, documents last) and the tag written: a failed or killed pull leaves
//! the layout as it was, plus a temp directory gc sweeps.

use serde::Serialize;

use super::api;
use super::client::Client;
use super::error::{Error, Result};
use super::name::ImageName;
use crate::image::PlatformSpec;
use crate::layout::reference::validate_tag;
use crate::layout::walker::{Role, Walker};
use crate::layout::{Layout, LockMode};
use crate::spec::{BlobRef, Descriptor, Kind};
use crate::transfer::staging::Staging;
use crate::transfer::tags::{clashes, publish_entries};
use crate::transfer::{ProgressFn, Ticker};

/// The deepest nesting of indexes a pull follows (real images nest one or two deep).
pub const MAX_NESTING: usize = 32;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to take from a multi-platform image.
    pub platform: PlatformSpec,
    /// Keep the whole index, every platform, byte for byte.
    pub all_platforms: bool,
    /// Also fetch the image's referrers (signatures, SBOMs), listed untagged.
    pub referrers: bool,
    /// Move the destination tag if it names another image.
    pub force: bool,
    /// Blobs downloaded at once.
    pub jobs: usize,
}

/// What a pull did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReport {
    /// The digest of the manifest or index stored.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// The tag it has in the layout.
    pub tag: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// Blobs downloaded (documents included).
    pub blobs_fetched: usize,
    /// Blobs the layout had.
    pub blobs_present: usize,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Referrers stored along (untagged).
    pub referrers: Vec<String>,
    /// Referrers the registry lists (a stale fallback tag) but does not have: skipped.
    #[serde(skip)]
    pub referrers_missing: Vec<String>,
}

/// Pulls `name` into `dest`, tagged `tag`. Holds the layout's gc lock shared.
pub fn pull(
    client: &Client,
    name: &ImageName,
    dest: &Layout,
    tag: Option<&str>,
    options: &PullOptions,
    progress: ProgressFn<'_>,
) -> Result<PullReport> {
    if let Some(t) = tag {
        validate_tag(t)?;
    }
    let repo = name.repository.as_str();
    let _lock = dest.lock_gc(LockMode::Shared)?;
    let staging = Staging::new(dest)?;
    // Each document fetched (digest, size), for the per-blob lines and the report.
    let mut docs: Vec<(String, u64)> = Vec::new();

    let top = api::get_manifest(client, repo, &name.reference())?;
    let mut root = top.descriptor();
    super::documents::store(&staging.layout, &top)?;
    docs.push((top.digest.to_string(), top.bytes.len() as u64));
    if Kind::of(&top.media_type) == Kind::Index && !options.all_platforms {
        let index =
            crate::layout::walk::decode_index(&top.bytes, &top.media_type, &name.to_string())?;
        let Some(entry) = index.manifests.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| options.platform.matches(p))
        }) else {
            let offered: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect();
            return Err(Error::Unsupported(format!(
                "{name} has no image for {} (it has: {}); pick one of those platforms, or take them all",
                options.platform,
                if offered.is_empty() { "none with a platform".to_owned() } else { crate::words::printable(&offered.join(", "), 2048) }
            )));
        };
        root = entry.clone();
        root.annotations = None;
    }

    let mut roots = vec![root.clone()];
    let mut referrer_roots = Vec::new();
    let mut referrers_missing = Vec::new();
    if options.referrers {
        // Referrers of referrers too (a signature of an SBOM), as push and copy carry them.
        // The listing is the registry's word (and the fallback tag anyone's who can push):
        // only a manifest whose subject is what it is listed for is kept as its referrer.
        let mut subjects = vec![root.digest().map_err(crate::Error::from)?];
        while let Some(subject) = subjects.pop() {
            for mut r in api::referrers(client, repo, &subject)? {
                if r.digest == root.digest
                    || referrers_missing.contains(&r.digest)
                    || referrer_roots
                        .iter()
                        .any(|k: &Descriptor| k.digest == r.digest)
                {
                    continue;
                }
                if !matches!(Kind::of(&r.media_type), Kind::Index | Kind::Manifest) {
                    client.log(&format!(
                        "skipping {}: listed as a referrer of {subject}, but not a manifest",
                        r.digest
                    ));
                    continue;
                }
                let doc = match api::get_manifest(client, repo, &r.digest) {
                    Ok(doc) => doc,
                    Err(Error::Status { status: 404, .. }) => {
                        referrers_missing.push(r.digest.clone());
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if doc.bytes.len() as u64 != r.size.max(0) as u64
                    || subject_of(&doc.bytes).as_deref() != Some(subject.to_string().as_str())
                {
                    client.log(&format!(
                        "skipping {}: listed as a referrer of {subject}, but its subject is not",
                        r.digest
                    ));
                    continue;
                }
                super::documents::store(&staging.layout, &doc)?;
                docs.push((doc.digest.to_string(), doc.bytes.len() as u64));
                subjects.push(r.digest().map_err(crate::Error::from)?);
                r.annotations = None;
                roots.push(r.clone());
                referrer_roots.push(r);
            }
        }
    }

    // Fetch documents until the walk misses nothing but leaves and configs. Each round
    // fetches one level deeper and walks the whole graph again: a registry serving indexes
    // nested thousands deep would keep the pull busy for hours, so the depth is bounded.
    let mut level = 0;
    let (blobs, present) = loop {
        level += 1;
        if level > MAX_NESTING {
            return Err(Error::Invalid {
                what: name.to_string(),
                reason: format!("its indexes are nested more than {MAX_NESTING} deep"),
            });
        }
        let mut walker = Walker::new(&[&staging.layout, dest]);
        walker.walk(&roots)?;
        let (nodes, leaves): (Vec<_>, Vec<_>) = walker
            .missing()
            .iter()
            .cloned()
            .partition(|(_, role)| *role == Role::Node);
        if nodes.is_empty() {
            let present = walker.items().iter().filter(|i| i.store == 1).count();
            break (
                leaves.into_iter().map(|(b, _)| b).collect::<Vec<BlobRef>>(),
                present,
            );
        }
        for (blob, _) in nodes {
            let doc = api::get_manifest(client, repo, &blob.digest.to_string())?;
            if doc.bytes.len() as u64 != blob.size {
                return Err(Error::Invalid {
                    what: format!("{}@{}", name.repository, blob.digest),
                    reason: format!(
                        "{} bytes where its descriptor says {}",
                        doc.bytes.len(),
                        blob.size
                    ),
                });
            }
            super::documents::store(&staging.layout, &doc)?;
            docs.push((doc.digest.to_string(), doc.bytes.len() as u64));
        }
    };

    let entries: Vec<(Descriptor, Option<String>)> =
        std::iter::once((root.clone(), tag.map(str::to_owned)))
            .chain(referrer_roots.iter().map(|r| (r.clone(), None)))
            .collect();
    let clashing = clashes(&dest.read_index()?.index, &entries);
    if !clashing.is_empty() && !options.force {
        return Err(crate::transfer::Error::TagsExist {
            layout: dest.root().to_owned(),
            clashes: clashing,
        }
        .into());
    }

    // Sizes are the registry's word (up to i64::MAX each): a plain sum overflows.
    let total: u64 = blobs.iter().map(|b| b.size).fold(0, u64::saturating_add);
    let mut ticker = Ticker::new(progress, Some(total));
    for (digest, size) in &docs {
        ticker.blob(digest, *size, "fetched");
    }
    fetch_blobs(
        client,
        repo,
        &staging.layout,
        &blobs,
        options.jobs.max(1),
        &mut ticker,
    )?;

    // Everything is staged: check the whole graph once more, then publish bottom-up.
    let mut walker = Walker::new(&[&staging.layout, dest]);
    walker.walk(&roots)?;
    if let Some((blob, _)) = walker.missing().first() {
        return Err(Error::Invalid {
            what: name.to_string(),
            reason: format!("{} is still missing after the pull", blob.digest),
        });
    }
    let order: Vec<BlobRef> = walker
        .items()
        .iter()
        .rev()
        .filter(|i| i.store == 0)
        .map(|i| i.blob.clone())
        .collect();
    staging.publish(dest, &order)?;
    drop(staging);
    ticker.finish();
    publish_entries(dest, &entries, options.force)?;
    Ok(PullReport {
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        tag: tag.map(str::to_owned),
        size: root.size.max(0) as u64,
        blobs_fetched: docs.len() + blobs.len(),
        blobs_present: present,
        bytes: docs
            .iter()
            .map(|(_, size)| size)
            .sum::<u64>()
            .saturating_add(total),
        referrers: referrer_roots.iter().map(|r| r.digest.clone()).collect(),
        referrers_missing,
    })
}

/// The digest a manifest or index names as its subject, if any.
fn subject_of(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Subject {
        digest: String,
    }
    #[derive(serde::Deserialize)]
    struct Shape {
        subject: Option<Subject>,
    }
    serde_json::from_slice::<Shape>(bytes)
        .ok()?
        .subject
        .map(|s| s.digest)
}

/// Downloads `blobs` into `staging`, `jobs` at a time, reporting progress on this thread.
fn fetch_blobs(
    client: &Client,
    repo: &str,
    staging: &Layout,
    blobs: &[BlobRef],
    jobs: usize,
    ticker: &mut Ticker<'_>,
) -> Result<()> {
    super::workers::each(
        blobs,
        jobs,
        |blob, advance| fetch_one(client, repo, staging, blob, advance),
        |ticker, i, ()| ticker.blob(&blobs[i].digest.to_string(), blobs[i].size, "fetched"),
        ticker,
    )?;
    Ok(())
}

fn fetch_one(
    client: &Client,
    repo: &str,
    staging: &Layout,
    blob: &BlobRef,
    advance: &mut dyn FnMut(u64),
) -> Result<()> {
    let writer = staging.blob_writer(blob.digest.algorithm())?;
    let ((), writer) = super::pipe::pipelined(
        writer,
        |w| api::fetch_blob(client, repo, blob, w, advance),
        |e| {
            Error::Layout(crate::Error::Io {
                path: staging.root().join(crate::layout::TMP_DIR),
                source: e,
            })
        },
    )?;
    writer.finish_expecting(blob).map_err(|e| match e {
        crate::Error::Io { .. } => Error::Layout(e),
        other => Error::WrongBlob {
            url: client.url(&format!("/v2/{repo}/blobs/{}", blob.digest)),
            blob: blob.clone(),
            got: other.to_string(),
        },
    })?;
    Ok(())
}
