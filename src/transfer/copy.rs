//! Copying an image between layouts: only the blobs the destination lacks.
//! Every document (index, manifest, config) is read and hashed to find what the image needs.
//! On one file system a blob is reflinked (a copy-on-write clone) where the file system can,
//! else hard-linked: blobs are content-addressed and never written in place, so sharing an
//! inode is safe. A linked blob must be a regular file of the descriptor's size; its content
//! is hashed only with [`CopyOptions::verify`], since a link carries the source's bytes
//! unchanged and reading them all is what linking saves. Elsewhere bytes are copied through
//! the store's verified reader and writer. Everything is staged first and renamed into place
//! when all is in. A blob the destination has (a file of the right size) is not copied;
//! with [`CopyOptions::verify`] it is hashed, and replaced if damaged. With referrers, the
//! manifests whose `subject` is the image (found as gc finds them) come too, with what they
//! reach, and are listed in `index.json` untagged. The tag is written last.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;

use serde::Serialize;

use super::error::{Error, Result};
use super::graph::{add_referrers, check_complete, holds, Item, Role, Walker};
use super::staging::{holds_sound, link_blob, Placed, Staging};
use super::tags::{clashes, publish_entries};
use super::{Chosen, ProgressFn, Ticker};
use crate::layout::reference::validate_tag;
use crate::layout::{Layout, LockMode};
use crate::spec::BlobRef;

/// How to copy.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// Also copy the manifests whose subject is the image (signatures, SBOMs).
    pub referrers: bool,
    /// Move a destination tag that names another image.
    pub force: bool,
    /// Hash linked blobs too before publishing them (copied bytes are always hashed), and
    /// the blobs the destination already has, replacing any that are damaged.
    pub verify: bool,
}

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// The digest of the manifest or index copied.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// The tag it has in the destination.
    pub tag: Option<String>,
    /// Blobs cloned with a reflink.
    pub blobs_reflinked: usize,
    /// Blobs hard-linked.
    pub blobs_linked: usize,
    /// Blobs copied byte for byte.
    pub blobs_copied: usize,
    /// Blobs the destination had.
    pub blobs_present: usize,
    /// Bytes of the blobs added (linked or copied).
    pub bytes: u64,
    /// Referrers copied along.
    pub referrers: Vec<String>,
}

/// Copies the chosen image into `dest`, tagged `tag` (default: the tag it was chosen by;
/// none for a digest). Holds both layouts' gc locks shared.
pub fn copy(
    source: &Chosen,
    dest: &Layout,
    tag: Option<&str>,
    options: CopyOptions,
    progress: ProgressFn<'_>,
) -> Result<CopyReport> {
    let tag = tag.or(source.tag()).map(str::to_owned);
    if let Some(t) = &tag {
        validate_tag(t)?;
    }
    let _src_lock = source.layout.lock_gc(LockMode::Shared)?;
    let _dst_lock = dest.lock_gc(LockMode::Shared)?;
    let mut root = source.entry.clone();
    root.annotations = None;
    let mut walker = Walker::new(&[&source.layout]);
    walker.walk(std::slice::from_ref(&root))?;
    let referrers = if options.referrers {
        add_referrers(&mut walker, &source.layout)?
    } else {
        Vec::new()
    };
    check_complete(&walker, &source.layout)?;
    let items = walker.into_items();
    // Referrers are listed too, untagged (as import, export and `artifact attach` do): tools
    // that keep only what index.json reaches (oras, umoci's gc) would lose them otherwise.
    let mut entries = vec![(source.entry.clone(), tag.clone())];
    entries.extend(referrers.iter().map(|r| (r.clone(), None)));
    let clashing = clashes(&dest.read_index()?.index, &entries);
    if !clashing.is_empty() && !options.force {
        return Err(Error::TagsExist {
            layout: dest.root().to_owned(),
            clashes: clashing,
        });
    }

    // When verifying, a present blob is hashed too, so a damaged one is replaced.
    let needed: Vec<&Item> = items
        .iter()
        .filter(|i| {
            if options.verify {
                !holds_sound(dest, &i.blob)
            } else {
                !holds(dest, &i.blob)
            }
        })
        .collect();
    let total: u64 = needed
        .iter()
        .fold(0u64, |t, i| t.saturating_add(i.blob.size));
    let mut ticker = Ticker::new(progress, Some(total));
    let mut report = CopyReport {
        digest: source.entry.digest.clone(),
        media_type: source.entry.media_type.clone(),
        tag: tag.clone(),
        blobs_reflinked: 0,
        blobs_linked: 0,
        blobs_copied: 0,
        blobs_present: items.len() - needed.len(),
        bytes: 0,
        referrers: referrers.iter().map(|d| d.digest.clone()).collect(),
    };
    let same_fs = same_file_system(&source.layout, dest);
    // Everything goes to a staging layout first, so that a blob refused halfway through
    // leaves the destination as it was.
    let staging = Staging::new(dest)?;
    for item in &needed {
        let linked = if same_fs {
            link_blob(
                &source.layout,
                &staging.layout,
                &item.blob,
                // Configs are documents too: small, and what a runtime trusts.
                options.verify || item.role == Role::Config,
            )?
        } else {
            None
        };
        let how = match linked {
            Some(Placed::Reflink) => {
                report.blobs_reflinked += 1;
                ticker.advance(item.blob.size);
                "reflinked"
            }
            Some(Placed::HardLink) => {
                report.blobs_linked += 1;
                ticker.advance(item.blob.size);
                "linked"
            }
            None => {
                copy_bytes(&source.layout, &staging.layout, item, &mut ticker)?;
                report.blobs_copied += 1;
                "copied"
            }
        };
        report.bytes += item.blob.size;
        ticker.blob(&item.blob.digest.to_string(), item.blob.size, how);
    }
    // Layers first, then the documents that name them, so that at every moment what is in
    // the destination is whole from the bottom up.
    let order: Vec<BlobRef> = needed.iter().rev().map(|i| i.blob.clone()).collect();
    let (published, _) = staging.publish(dest, &order)?;
    // A blob another process added meanwhile was not needed after all.
    report.blobs_present += needed.len() - published;
    drop(staging);
    ticker.finish();
    publish_entries(dest, &entries, options.force)?;
    Ok(report)
}

/// True when both layouts' blobs live on one file system (a link is possible).
fn same_file_system(a: &Layout, b: &Layout) -> bool {
    match (
        std::fs::metadata(a.blobs_dir()),
        std::fs::metadata(b.blobs_dir()),
    ) {
        (Ok(x), Ok(y)) => x.dev() == y.dev(),
        _ => false,
    }
}

/// Copies one blob through the verified reader and the store's writer.
fn copy_bytes(source: &Layout, dest: &Layout, item: &Item, ticker: &mut Ticker<'_>) -> Result<()> {
    let mut reader = source.open_blob(&item.blob)?;
    let mut writer = dest.blob_writer(item.blob.digest.algorithm())?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(reader.explain(e).into()),
        };
        writer.write_all(&buf[..n]).map_err(|e| crate::Error::Io {
            path: dest.root().join(crate::layout::TMP_DIR),
            source: e,
        })?;
        ticker.advance(n as u64);
    }
    writer.finish_expecting(&item.blob)?;
    Ok(())
}
