//! Importing an archive into a layout, as one pass over a stream (a file or a pipe, plain,
//! gzip- or zstd-compressed), never unpacking it anywhere:
//!
//! 1. Every member is checked (`transfer::members`) and then either buffered (the small JSON
//!    files: `oci-layout`, `index.json`, docker's `manifest.json` and configs, each capped),
//!    streamed into a staging layout through [`crate::layout::BlobWriter`] and verified
//!    against its name (`blobs/<alg>/<hex>`), or, for a docker layer, decompressed if need
//!    be, hashed for its diff_id and recompressed as the options say, on other threads.
//!    Members may come in any order: nothing is judged until the stream ends.
//! 2. The images are assembled (a docker archive's manifests are written, also for docker
//!    25+'s OCI form when its index.json lists nothing or names manifests without layers),
//!    multi-platform images are narrowed to the platforms asked for or present
//!    ([`super::partial`]), and the graph of each is walked over the staging layout and the
//!    destination: every blob must be in one of them, or the import fails naming all that
//!    are missing (an incremental archive made for another layout).
//! 3. Tags are checked: one that already names another image is refused unless `force`.
//! 4. Only then are the blobs the images need renamed from staging into the destination,
//!    and the tags written, in one locked update of `index.json`.
//!
//! A blob the archive carries and the destination already has is hashed there (a read of
//! the destination's copy, instead of a write of the archive's): a sound copy stays (and so
//! do the links or reflinks it may share with other layouts), a damaged one, even of the
//! right size, is replaced by the archive's verified bytes. A blob the archive does not carry
//! (an incremental archive) is the destination's own: indexes, manifests and configs are
//! hashed when the graph is walked, layers are trusted as the destination holds them (`strata
//! fsck` checks them).
//!
//! Any failure before step 4 leaves the destination exactly as it was (the staging layout is
//! removed). If `index.json` changes between steps 3 and 4 so that a tag now clashes, the
//! import fails with the published blobs left unreferenced, for gc. The destination's gc
//! lock is held shared throughout, so gc cannot remove staged or published blobs before the
//! tags that keep them are written.

use std::collections::HashSet;
use std::io::Read;

use serde::Serialize;

use super::docker_archive;
use super::error::{Error, Result};
use super::graph::{add_referrers, holds, missing, Walker};
use super::members::Members;
use super::oci_archive;
use super::partial::{narrow, LeftOut};
use super::read_archive;
use super::staging::{holds_sound, Staging};
use super::tags::{archive_tag, clashes, given_twice, publish_entries};
use super::{ProgressFn, Ticker};
use crate::layer::Compression;
use crate::layout::reference::validate_tag;
use crate::layout::walk::{blob_ref, decode_manifest};
use crate::layout::JSON_LIMIT;
use crate::layout::{Layout, LockMode};
use crate::spec::{BlobRef, Descriptor, Kind};

/// The most `index.json` entries (image, tag pairs) one archive may bring. Checking tags
/// against each other and against the destination's index is quadratic in the count, so an
/// `index.json` or `manifest.json` of a few MB listing one image under a million tags would
/// hang the import; real archives hold a few hundred at most.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// `index.json` entries to add, each with its tag (or none).
pub(crate) type Tagged = Vec<(Descriptor, Option<String>)>;

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Tag the archive's image with this instead of the archive's tags (the archive must hold
    /// one image).
    pub tag: Option<String>,
    /// Move tags that already name other images.
    pub force: bool,
    /// How docker layers (uncompressed in the archive) are stored.
    pub compression: Compression,
    /// The archive's size, when known, for progress.
    pub total: Option<u64>,
    /// Which platforms of a multi-platform image to take: `None` for every platform the
    /// archive holds whole (see [`super::partial`]).
    pub platforms: Option<super::Platforms>,
    /// Do everything but publish: every blob read and verified, graphs checked against the
    /// destination, tags checked for clashes; the destination is left as it was.
    pub dry_run: bool,
}

/// An image the import tagged (or added untagged).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportedImage {
    /// Its tag.
    pub tag: Option<String>,
    /// The digest of its manifest or index.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// `oci` or `docker`.
    pub format: &'static str,
    /// Nothing was published: the counts say what an import would write.
    pub dry_run: bool,
    /// The `index.json` entries, as now in the layout.
    pub images: Vec<ImportedImage>,
    /// Blobs added to the layout.
    pub blobs_written: usize,
    /// Their bytes.
    pub bytes_written: u64,
    /// Blobs the images need that the layout already had.
    pub blobs_present: usize,
    /// Referrers found in the archive and kept (manifests whose subject was imported).
    pub referrers: Vec<String>,
    /// Archive members read past because they mean nothing to an image layout.
    pub ignored: Vec<String>,
    /// Platforms of the archive's multi-platform images whose blobs it lacks, left out.
    pub left_out: Vec<LeftOut>,
}

/// Imports the archive `input` into `dest` (see the module documentation for the steps and
/// what a failure leaves behind).
pub fn import<R: Read>(
    input: R,
    dest: &Layout,
    options: &ImportOptions,
    progress: ProgressFn<'_>,
) -> Result<ImportReport> {
    if let Some(tag) = &options.tag {
        validate_tag(tag)?;
    }
    let _gc = dest.lock_gc(LockMode::Shared)?;
    let staging = Staging::new(dest)?;
    let mut ticker = Ticker::new(progress, options.total);
    let members = read_archive::read(
        input,
        &staging.layout,
        dest,
        options.compression,
        &mut |read| ticker.set(read),
    )?;
    ticker.finish();

    let (format, entries) = plan(&members, &staging.layout, dest)?;
    let (entries, left_out) = narrow(
        entries,
        &members,
        &[&staging.layout, dest],
        &staging.layout,
        options.platforms.as_ref(),
    )?;
    let entries = match &options.tag {
        None => entries,
        Some(tag) => {
            let digests: HashSet<&str> = entries.iter().map(|(d, _)| d.digest.as_str()).collect();
            if digests.len() != 1 {
                return Err(Error::OneTagForMany {
                    images: digests.len(),
                });
            }
            vec![(entries[0].0.clone(), Some(tag.clone()))]
        }
    };
    // An archive may list one image, or one tag of it, twice (manifest.json entries, a
    // RepoTags list): it is one entry of index.json, and counted once.
    // An untagged copy of an image the archive also tags adds nothing but a `<none>` entry.
    let tagged: HashSet<String> = entries
        .iter()
        .filter(|(_, tag)| tag.is_some())
        .map(|(desc, _)| desc.digest.clone())
        .collect();
    let mut seen = HashSet::new();
    let entries: Vec<_> = entries
        .into_iter()
        .filter(|(desc, tag)| tag.is_some() || !tagged.contains(&desc.digest))
        .filter(|(desc, tag)| seen.insert((desc.digest.clone(), tag.clone())))
        .collect();
    for tag in entries.iter().filter_map(|(_, t)| t.as_deref()) {
        validate_tag(tag)?;
    }
    // What goes into index.json must be what fsck accepts there (the fuzzer found an
    // entry whose mediaType was no media type: imported, then reported by fsck).
    for (desc, _) in &entries {
        let bad = std::iter::once(desc.media_type.as_str())
            .chain(desc.artifact_type.as_deref())
            .find(|t| !crate::spec::is_valid_media_type(t));
        if let Some(bad) = bad {
            return Err(Error::BadArchive {
                what: "index.json".into(),
                reason: format!(
                    "the entry for {} has {bad:?}, which is not a media type (type/subtype, \
                     RFC 6838)",
                    desc.digest
                ),
            });
        }
    }

    let stores = [&staging.layout, dest];
    let mut roots: Vec<Descriptor> = Vec::new();
    for (desc, _) in &entries {
        if !roots.iter().any(|r| r.digest == desc.digest) {
            let mut root = desc.clone();
            root.annotations = None;
            roots.push(root);
        }
    }
    let mut walker = Walker::new(&stores);
    walker.walk(&roots)?;
    if !walker.missing().is_empty() {
        let blobs = missing(&walker);
        if let Some(e) = blobs.iter().find_map(|b| members.sized_otherwise(b)) {
            return Err(e);
        }
        return Err(Error::MissingBlobs {
            layout: dest.root().to_owned(),
            from: "the archive".into(),
            blobs,
        });
    }
    let referrers = add_referrers(&mut walker, &staging.layout)?;
    let items = walker.into_items();

    let clashing = clashes(&dest.read_index()?.index, &entries);
    if !clashing.is_empty() && !options.force {
        return Err(Error::TagsExist {
            layout: dest.root().to_owned(),
            clashes: clashing,
        });
    }
    let staged: Vec<BlobRef> = items
        .iter()
        .filter(|i| i.store == 0)
        .map(|i| i.blob.clone())
        .collect();
    let (blobs_written, bytes_written) = if options.dry_run {
        let absent = staged.iter().filter(|b| !holds_sound(dest, b));
        absent.fold((0, 0), |(n, bytes), b| (n + 1, bytes + b.size))
    } else {
        staging.publish(dest, &staged)?
    };
    let blobs_present = items.len() - blobs_written;
    // A dry run's blobs were not placed anywhere: its counts say what an import would do.
    for item in items.iter().filter(|_| !options.dry_run) {
        let how = if item.store == 0 {
            "written"
        } else {
            "present"
        };
        ticker.blob(&item.blob.digest.to_string(), item.blob.size, how);
    }
    if !options.dry_run {
        publish_entries(dest, &entries, options.force)?;
    }
    Ok(ImportReport {
        format,
        dry_run: options.dry_run,
        images: entries
            .iter()
            .map(|(d, t)| ImportedImage {
                tag: t.clone(),
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
            })
            .collect(),
        blobs_written,
        bytes_written,
        blobs_present,
        referrers: referrers.into_iter().map(|d| d.digest).collect(),
        ignored: members.ignored,
        left_out,
    })
}

/// docker 25.0.0 wrote each image's OCI manifest with its foreign layers only (none, for an
/// ordinary image), listing the layers in manifest.json alone: imported as it is, the image
/// would have no files. An `index.json` entry naming a manifest without layers over a config
/// with diff_ids is pointed instead at the manifest assembled from manifest.json for the same
/// config (its tag and other fields kept); a manifest with layers is never touched.
fn mend_layerless(
    mut entries: Tagged,
    members: &Members,
    staging: &Layout,
    dest: &Layout,
) -> Result<Tagged> {
    let Some(manifest_json) = members.json("manifest.json") else {
        return Ok(entries);
    };
    let held = |blob: &BlobRef| [staging, dest].into_iter().find(|s| holds(s, blob));
    let mut assembled: Option<Vec<docker_archive::DockerImage>> = None;
    for (desc, _) in entries.iter_mut() {
        if Kind::of(&desc.media_type) != Kind::Manifest {
            continue;
        }
        let blob = blob_ref(desc, "an index.json entry in the archive")?;
        let Some(store) = held(&blob) else { continue };
        let raw = store.read_blob(&blob, JSON_LIMIT, "manifest")?;
        let manifest =
            decode_manifest(&raw, &desc.media_type, &format!("manifest {}", blob.digest))?;
        if !manifest.layers.is_empty() || Kind::of(&manifest.config.media_type) != Kind::Config {
            continue;
        }
        let config_blob = blob_ref(&manifest.config, &format!("manifest {}", blob.digest))?;
        let Some(store) = held(&config_blob) else {
            continue;
        };
        let (_, config) = store.read_config(&manifest.config)?;
        if config.rootfs.diff_ids.is_empty() {
            continue;
        }
        if assembled.is_none() {
            assembled = Some(docker_archive::assemble(
                manifest_json,
                members,
                staging,
                dest,
            )?);
        }
        let images = assembled.as_deref().unwrap_or_default();
        if let Some(image) = images
            .iter()
            .find(|i| i.config_digest == manifest.config.digest)
        {
            desc.digest = image.manifest.digest.clone();
            desc.size = image.manifest.size;
        }
    }
    Ok(entries)
}

/// True when an `index.json` (well-formed or not: only its `manifests` is looked at) lists
/// no image: `manifests` null, missing or empty.
fn lists_nothing(index: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(index) {
        Ok(v) => match v.get("manifests") {
            None | Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::Array(list)) => list.is_empty(),
            Some(_) => false,
        },
        Err(_) => false,
    }
}

/// The archive's images as `index.json` entries with their tags: an OCI archive's entries,
/// or the manifests assembled from a docker archive (one entry per `RepoTags` name).
fn plan(members: &Members, staging: &Layout, dest: &Layout) -> Result<(&'static str, Tagged)> {
    let oci = members.files.contains_key("oci-layout") || members.files.contains_key("index.json");
    // docker 25+ writes an OCI layout beside its manifest.json, but lists an image saved by
    // ID nowhere in index.json (`"manifests": null`): manifest.json is then the only list.
    let docker_only = members.json("manifest.json").is_some()
        && members.json("index.json").is_some_and(lists_nothing);
    if oci && !docker_only {
        let index =
            oci_archive::read_index(members.json("oci-layout"), members.json("index.json"))?;
        if index.manifests.is_empty() {
            return Err(Error::BadArchive {
                what: "index.json".into(),
                reason: "lists no images".into(),
            });
        }
        if index.manifests.len() > MAX_ENTRIES {
            return Err(Error::BadArchive {
                what: "index.json".into(),
                reason: format!(
                    "lists {} entries, over the limit of {MAX_ENTRIES} for one archive",
                    index.manifests.len()
                ),
            });
        }
        let entries: Tagged = index
            .manifests
            .into_iter()
            .map(|d| {
                let tag = archive_tag(&d);
                (d, tag)
            })
            .collect();
        if let Some((tag, i, j)) = given_twice(&entries) {
            return Err(Error::BadArchive {
                what: "index.json".into(),
                reason: format!(
                    "gives tag {tag:?} to two images, {} and {}: refusing to guess which one \
                     it names",
                    entries[i].0.digest, entries[j].0.digest
                ),
            });
        }
        let entries = mend_layerless(entries, members, staging, dest)?;
        return Ok(("oci", entries));
    }
    let Some(manifest_json) = members.json("manifest.json") else {
        if members.files.contains_key("repositories") {
            // docker before 1.10 wrote only `repositories` and per-layer v1 JSON: images
            // there have no config with diff_ids, so nothing to verify layers against.
            return Err(Error::Archive(
                "this is docker's pre-1.10 archive format (a `repositories` file and \
                 <id>/json layers, no manifest.json), which strata does not read: load it \
                 into a newer docker and `docker save` it again"
                    .into(),
            ));
        }
        return Err(Error::Archive(
            "not an image archive: it has neither an OCI layout (oci-layout, index.json) nor \
             a docker manifest.json"
                .into(),
        ));
    };
    let images = docker_archive::assemble(manifest_json, members, staging, dest)?;
    let (mut entries, mut configs) = (Vec::new(), Vec::new());
    for image in images {
        if image.tags.is_empty() {
            entries.push((image.manifest.clone(), None));
            configs.push(image.config.clone());
        }
        for tag in image.tags {
            entries.push((image.manifest.clone(), Some(tag)));
            configs.push(image.config.clone());
        }
        if entries.len() > MAX_ENTRIES {
            return Err(Error::BadArchive {
                what: "manifest.json".into(),
                reason: format!(
                    "gives its images over {MAX_ENTRIES} tags, the limit for one archive"
                ),
            });
        }
    }
    if let Some((tag, i, j)) = given_twice(&entries) {
        return Err(Error::BadArchive {
            what: "manifest.json".into(),
            reason: format!(
                "gives tag {tag:?} to two images, the one with config {} and the one with \
                 config {}: refusing to guess which one it names",
                configs[i], configs[j]
            ),
        });
    }
    Ok(("docker", entries))
}
