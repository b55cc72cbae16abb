//! Importing an archive into a layout, as one pass over a stream (a file or a pipe, plain,
//! gzip- or zstd-compressed), never unpacking it anywhere:
//!
//! 1. Every member is checked ([`super::members`]) and then either buffered (the small JSON
//!    files: `oci-layout`, `index.json`, docker's `manifest.json` and configs, each capped),
//!    streamed into a staging layout through [`crate::layout::BlobWriter`] and verified
//!    against its name (`blobs/<alg>/<hex>`), or, for a docker layer, decompressed if need
//!    be, hashed for its diff_id and recompressed as `--compress` says, on other threads.
//!    Members may come in any order: nothing is judged until the stream ends.
//! 2. The images are assembled (a docker archive's manifests are written) and the graph of
//!    each is walked over the staging layout and the destination: every blob must be in one
//!    of them, or the import fails naming all that are missing (an incremental archive made
//!    for another layout).
//! 3. Tags are checked: one that already names another image is refused unless `force`.
//! 4. Only then are the blobs the images need renamed from staging into the destination,
//!    and the tags written, in one locked update of `index.json`.
//!
//! Any failure before step 4 leaves the destination exactly as it was (the staging layout is
//! removed). If `index.json` changes between steps 3 and 4 so that a tag now clashes, the
//! import fails with the published blobs left unreferenced, for gc. The destination's gc
//! lock is held shared throughout, so gc cannot remove staged or published blobs before the
//! tags that keep them are written.

use crate::ioext::{read_full, ChannelReader};
use std::cell::Cell;
use std::collections::HashSet;
use std::io::{self, BufReader, Cursor, Read, Write};
use std::rc::Rc;
use std::sync::mpsc;

use serde::Serialize;

use super::docker_archive;
use super::error::{Error, Result};
use super::graph::{add_referrers, holds, walk, Walked};
use super::members::{classify, normalize, MemberKind, Members, Stored};
use super::oci_archive;
use super::staging::Staging;
use super::{ProgressFn, Ticker};
use crate::layer::write::{write_layer, WrittenLayer};
use crate::layer::Compression;
use crate::layout::reference::validate_tag;
use crate::layout::{Layout, LockMode, JSON_LIMIT};
use crate::spec::{BlobRef, Descriptor, Index, ANNOTATION_REF_NAME};

/// The annotation containerd (and docker 25+) put the full image name in; `ref.name` then
/// holds only the tag part.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The largest `oci-layout` file read.
const LAYOUT_FILE_LIMIT: u64 = 64 << 10;
/// The most JSON held in memory at once, all members together (a hostile archive could
/// hold many configs just under the limit for one).
const BUFFERED_LIMIT: u64 = 4 * JSON_LIMIT;

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
    let read = Rc::new(Cell::new(0u64));
    let counted = Counting {
        inner: input,
        count: Rc::clone(&read),
    };
    let mut ticker = Ticker::new(progress, options.total);
    let members = read_members(
        open_archive(counted)?,
        &staging.layout,
        dest,
        options.compression,
        &mut || ticker.set(read.get()),
    )?;
    ticker.finish();

    let (format, entries) = plan(&members, &staging.layout, dest)?;
    let entries = match &options.tag {
        None => entries,
        Some(tag) => {
            let digests: HashSet<&str> = entries.iter().map(|(d, _)| d.digest.as_str()).collect();
            if digests.len() != 1 {
                return Err(Error::Unsupported(format!(
                    "--tag names one image, but the archive holds {}",
                    digests.len()
                )));
            }
            vec![(entries[0].0.clone(), Some(tag.clone()))]
        }
    };
    for tag in entries.iter().filter_map(|(_, t)| t.as_deref()) {
        validate_tag(tag)?;
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
    let (mut seen, mut walked) = (HashSet::new(), Walked::default());
    walk(&stores, &roots, &mut seen, &mut walked)?;
    if !walked.missing.is_empty() {
        return Err(Error::MissingBlobs {
            layout: dest.root().to_owned(),
            from: "the archive".into(),
            blobs: walked.missing,
        });
    }
    let referrers = add_referrers(&stores, &staging.layout, &mut seen, &mut walked)?;

    let clashing = clashes(&dest.read_index()?.index, &entries);
    if !clashing.is_empty() && !options.force {
        return Err(Error::TagsExist {
            layout: dest.root().to_owned(),
            clashes: clashing,
        });
    }
    let staged: Vec<BlobRef> = walked
        .items
        .iter()
        .filter(|i| i.store == 0)
        .map(|i| i.blob.clone())
        .collect();
    let (blobs_written, bytes_written) = staging.publish(dest, &staged)?;
    let blobs_present = walked.items.len() - blobs_written;
    publish_entries(dest, &entries, options.force)?;
    Ok(ImportReport {
        format,
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
    })
}

/// The archive's images as `index.json` entries with their tags: an OCI archive's entries,
/// or the manifests assembled from a docker archive (one entry per `RepoTags` name).
fn plan(members: &Members, staging: &Layout, dest: &Layout) -> Result<(&'static str, Tagged)> {
    let oci = members.files.contains_key("oci-layout") || members.files.contains_key("index.json");
    if oci {
        let index =
            oci_archive::read_index(members.json("oci-layout"), members.json("index.json"))?;
        if index.manifests.is_empty() {
            return Err(Error::BadArchive {
                what: "index.json".into(),
                reason: "lists no images".into(),
            });
        }
        let entries = index
            .manifests
            .into_iter()
            .map(|d| {
                let tag = d
                    .annotation(CONTAINERD_NAME)
                    .filter(|n| validate_tag(n).is_ok())
                    .or(d.ref_name())
                    .map(str::to_owned);
                (d, tag)
            })
            .collect();
        return Ok(("oci", entries));
    }
    let Some(manifest_json) = members.json("manifest.json") else {
        return Err(Error::Archive(
            "not an image archive: it has neither an OCI layout (oci-layout, index.json) nor \
             a docker manifest.json"
                .into(),
        ));
    };
    let images = docker_archive::assemble(manifest_json, members, staging, dest)?;
    let mut entries = Vec::new();
    for image in images {
        if image.tags.is_empty() {
            entries.push((image.manifest.clone(), None));
        }
        for tag in image.tags {
            entries.push((image.manifest.clone(), Some(tag)));
        }
    }
    Ok(("docker", entries))
}

/// The entry as it goes into `index.json`.
fn entry(desc: &Descriptor, tag: Option<&str>) -> Descriptor {
    let mut e = desc.clone();
    e.set_annotation(ANNOTATION_REF_NAME, tag);
    e
}

/// Adds the entries to `index.json` in one locked update, refusing (unless `force`) to move
/// a tag that names another image: the last check, done under the lock, so a tag written
/// meanwhile by another process is not lost either.
pub(crate) fn publish_entries(
    dest: &Layout,
    entries: &[(Descriptor, Option<String>)],
    force: bool,
) -> Result<()> {
    let late = dest.update_index(|index| {
        let clashing = clashes(index, entries);
        if !clashing.is_empty() && !force {
            return Ok((false, clashing));
        }
        Ok((apply(index, entries), Vec::new()))
    })?;
    if !late.is_empty() {
        return Err(Error::TagsExist {
            layout: dest.root().to_owned(),
            clashes: late,
        });
    }
    Ok(())
}

/// (tag, digest it names now, digest it would name) for every tag that would move.
pub(crate) fn clashes(
    index: &Index,
    entries: &[(Descriptor, Option<String>)],
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (desc, tag) in entries {
        let Some(tag) = tag else { continue };
        for existing in &index.manifests {
            if existing.ref_name() == Some(tag.as_str())
                && existing.digest != desc.digest
                && !out
                    .iter()
                    .any(|(t, _, _): &(String, String, String)| t == tag)
            {
                out.push((tag.clone(), existing.digest.clone(), desc.digest.clone()));
            }
        }
    }
    out
}

/// Adds the entries to `index.json` (a tag replaces the entry that had it, where it was);
/// returns whether anything changed.
pub(crate) fn apply(index: &mut Index, entries: &[(Descriptor, Option<String>)]) -> bool {
    let mut changed = false;
    for (desc, tag) in entries {
        let new = entry(desc, tag.as_deref());
        match tag {
            Some(tag) => {
                if index.manifests.contains(&new) {
                    continue;
                }
                match index
                    .manifests
                    .iter()
                    .position(|d| d.ref_name() == Some(tag.as_str()))
                {
                    Some(at) => {
                        index.manifests[at] = new;
                        let mut first = true;
                        index.manifests.retain(|d| {
                            d.ref_name() != Some(tag.as_str()) || std::mem::take(&mut first)
                        });
                    }
                    None => index.manifests.push(new),
                }
            }
            None => {
                if index
                    .manifests
                    .iter()
                    .any(|d| d.digest == new.digest && d.ref_name().is_none())
                {
                    continue;
                }
                index.manifests.push(new);
            }
        }
        changed = true;
    }
    changed
}

/// Counts the bytes read from the archive (before decompression), for progress.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// The compression a stream starts with, by its magic number.
fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The archive's tar stream: `input` decompressed if it is gzip or zstd, buffered.
fn open_archive<'a, R: Read + 'a>(mut input: R) -> Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 4];
    let n = read_full(&mut input, &mut head)
        .map_err(|e| Error::Archive(format!("reading the archive: {e}")))?;
    let stream = Cursor::new(head[..n].to_vec()).chain(input);
    let decoded = sniff(&head[..n])
        .decoder(stream)
        .map_err(|e| Error::Archive(format!("reading the archive: {e}")))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, decoded)))
}

/// Reads every member of the archive, keeping what an image layout needs (module docs).
fn read_members(
    reader: Box<dyn Read + '_>,
    staging: &Layout,
    dest: &Layout,
    compression: Compression,
    tick: &mut dyn FnMut(),
) -> Result<Members> {
    let damaged =
        |e: io::Error| Error::Archive(format!("the archive is damaged or cut short: {e}"));
    let mut archive = tar::Archive::new(reader);
    let mut members = Members::default();
    let mut any = false;
    let mut buffered = 0u64;
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        any = true;
        let name = normalize(&entry.path_bytes())?;
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let size = entry.size();
        let kind = classify(&name, entry.header().entry_type(), link.as_deref())?;
        match kind {
            MemberKind::Dir | MemberKind::Ignored => {
                copy_member(&mut entry, &mut io::sink(), &name, size, tick)?;
                if kind == MemberKind::Ignored && !name.is_empty() {
                    members.ignored.push(name);
                }
            }
            MemberKind::Alias(target) => {
                members.aliases.insert(name, target);
            }
            MemberKind::OciLayout
            | MemberKind::Index
            | MemberKind::DockerManifest
            | MemberKind::Repositories
            | MemberKind::DockerConfig => {
                let limit = if kind == MemberKind::OciLayout {
                    LAYOUT_FILE_LIMIT
                } else {
                    JSON_LIMIT
                };
                if size > limit {
                    return Err(Error::member(
                        &name,
                        format!("is {size} bytes, over the {limit}-byte limit for this file"),
                    ));
                }
                if members.files.contains_key(&name) {
                    return Err(Error::member(&name, "appears twice in the archive"));
                }
                buffered += size;
                if buffered > BUFFERED_LIMIT {
                    return Err(Error::member(
                        &name,
                        format!("the archive's JSON files add up to over {BUFFERED_LIMIT} bytes"),
                    ));
                }
                let mut bytes = Vec::with_capacity(size as usize);
                copy_member(&mut entry, &mut bytes, &name, size, tick)?;
                members.files.insert(name, Stored::Json(bytes));
            }
            MemberKind::Blob(digest) => {
                let blob = BlobRef { digest, size };
                if members.files.contains_key(&name) || holds(dest, &blob) || holds(staging, &blob)
                {
                    // Already here: the archive's copy is not needed.
                    copy_member(&mut entry, &mut io::sink(), &name, size, tick)?;
                } else {
                    stage_blob(&mut entry, &name, &blob, staging, tick)?;
                }
                members.files.insert(name, Stored::Blob(blob));
            }
            MemberKind::DockerLayer => {
                if members.files.contains_key(&name) {
                    return Err(Error::member(&name, "appears twice in the archive"));
                }
                let layer = stage_layer(&mut entry, &name, size, staging, compression, tick)?;
                members.files.insert(name, Stored::Layer(layer));
            }
        }
    }
    if !any {
        return Err(Error::Archive("the archive is empty".into()));
    }
    Ok(members)
}

/// Copies a member's content into `out`, checking it has all `size` bytes.
fn copy_member(
    entry: &mut dyn Read,
    out: &mut dyn Write,
    name: &str,
    size: u64,
    tick: &mut dyn FnMut(),
) -> Result<()> {
    let mut buf = vec![0u8; (1 << 20).min(size as usize).max(1)];
    let mut copied = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Archive(format!(
                    "the archive is damaged or cut short: reading member {name:?}: {e}"
                )))
            }
        };
        out.write_all(&buf[..n]).map_err(|e| crate::Error::Io {
            path: name.into(),
            source: e,
        })?;
        copied += n as u64;
        tick();
    }
    if copied != size {
        return Err(truncated(name, copied, size));
    }
    Ok(())
}

fn truncated(name: &str, got: u64, size: u64) -> Error {
    Error::Archive(format!(
        "the archive is cut short: member {name:?} has {got} of its {size} bytes"
    ))
}

/// Streams a blob member into the staging layout, verified against its name.
fn stage_blob(
    entry: &mut dyn Read,
    name: &str,
    blob: &BlobRef,
    staging: &Layout,
    tick: &mut dyn FnMut(),
) -> Result<()> {
    let mut writer = staging.blob_writer(blob.digest.algorithm())?;
    copy_member(entry, &mut writer, name, blob.size, tick)?;
    writer.finish_expecting(blob).map_err(|e| match e {
        crate::Error::DigestMismatch { digest, actual, .. } => Error::member(
            name,
            format!("blob {digest} is corrupt: its content hashes to {actual}"),
        ),
        other => Error::bad_blob(name, other),
    })?;
    Ok(())
}

/// Stores a docker layer member: decompressed if it is compressed, hashed for its diff_id and
/// compressed as asked, on the layer writer's threads while this one reads the archive.
fn stage_layer(
    entry: &mut dyn Read,
    name: &str,
    size: u64,
    staging: &Layout,
    compression: Compression,
    tick: &mut dyn FnMut(),
) -> Result<WrittenLayer> {
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
    let layer_name = name.to_owned();
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            write_layer(staging, compression, move |w| {
                let fail = |e: io::Error| crate::Error::LayerStream {
                    layer: layer_name.clone(),
                    reason: e.to_string(),
                };
                let mut input = ChannelReader::new(rx);
                let mut head = [0u8; 4];
                let n = read_full(&mut input, &mut head).map_err(fail)?;
                let stream = Cursor::new(head[..n].to_vec()).chain(input);
                let mut decoded = sniff(&head[..n]).decoder(stream).map_err(fail)?;
                io::copy(&mut decoded, w).map_err(fail)?;
                Ok(())
            })
        });
        let mut copied = 0u64;
        let mut read_error = None;
        loop {
            let mut buf = vec![0u8; 1 << 20];
            let n = match read_full(entry, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            if n == 0 {
                break;
            }
            buf.truncate(n);
            copied += n as u64;
            tick();
            if tx.send(Ok(buf)).is_err() {
                break; // the writer stopped: its error says why
            }
        }
        drop(tx);
        let written = worker.join().expect("the layer writer does not panic");
        if let Some(e) = read_error {
            return Err(Error::Archive(format!(
                "the archive is damaged or cut short: reading member {name:?}: {e}"
            )));
        }
        let written = written.map_err(|e| Error::bad_blob(name, e))?;
        if copied != size {
            return Err(truncated(name, copied, size));
        }
        Ok(written)
    })
}
