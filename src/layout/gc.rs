//! Garbage collection: mark everything reachable from `index.json` (every entry, tagged or
//! not, through nested indexes, configs, layers and `subject`), keep every manifest whose
//! `subject` is kept (referrers: signatures, SBOMs), and sweep the rest plus stale temp files.
//! The whole run holds the gc lock exclusively and the index lock, so no writer can add a
//! reference or a blob meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::walker::{Reached, Walker};
use super::{Layout, LockMode, JSON_LIMIT, TMP_DIR};
use crate::digest::{Algorithm, Digest};
use crate::error::{IoContext, Result};
use crate::spec::{media_type, Descriptor};

/// What gc should do.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcOptions {
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// Keep unreferenced blobs written or linked more recently than this (the newer of
    /// mtime and ctime). Tools other than strata (skopeo, umoci) do not take strata's lock:
    /// a blob they just wrote is unreferenced until they write `index.json`.
    pub min_age: Option<std::time::Duration>,
}

/// A blob gc removed (or would remove).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SweptBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// What a gc run did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// True when nothing was removed on purpose.
    pub dry_run: bool,
    /// Blobs kept.
    pub kept: usize,
    /// Referrers kept because their subject is kept, though nothing in index.json reaches them.
    pub referrers_kept: Vec<Digest>,
    /// Blobs removed, by digest.
    pub removed: Vec<SweptBlob>,
    /// Unreferenced blobs kept because they are younger than the minimum age.
    pub kept_recent: Vec<Digest>,
    /// Bytes freed by the removed blobs.
    pub bytes_freed: u64,
    /// `index.json` entries removed: untagged referrers whose subject is gone.
    pub entries_removed: usize,
    /// Stale temp files removed from `.strata-tmp`.
    pub temp_files_removed: usize,
    /// Stale directories (an import's or copy's staging directory) removed from
    /// `.strata-tmp`.
    pub temp_dirs_removed: usize,
}

/// Enough of a manifest to tell whether it is a referrer and of what.
#[derive(Deserialize)]
struct ReferrerProbe {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// Every blob file under `blobs/` named by a valid digest of a supported algorithm, with its
/// size. Other files are not strata's to judge and are left alone.
pub fn list_blobs(layout: &Layout) -> Result<BTreeMap<Digest, u64>> {
    let mut out = BTreeMap::new();
    for alg in Algorithm::ALL {
        let dir = layout.blobs_dir().join(alg.name());
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).at(dir),
        };
        for entry in entries {
            let entry = entry.at(&dir)?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(digest) = Digest::new(alg, &name) else {
                continue;
            };
            let meta = entry.metadata().at(entry.path())?;
            if meta.is_file() {
                out.insert(digest, meta.len());
            }
        }
    }
    Ok(out)
}

/// Runs gc on `layout`. `index.json` is rewritten before any blob is deleted, so a gc
/// killed at any instant leaves a layout whose every reference resolves, with at most some
/// unreferenced blobs for the next run.
pub fn gc(layout: &Layout, options: GcOptions) -> Result<GcReport> {
    let _gc_lock = layout.lock_gc(LockMode::Exclusive)?;
    let _index_lock = layout.lock_index()?;
    // Again under the lock: gc deletes, and must not delete through a link planted since open.
    layout.check_structure()?;
    let index = layout.read_index()?.index;
    let stored = list_blobs(layout)?;
    let Marked { live, referrers } = mark(layout, &roots(layout, &index)?, &stored)?;

    // Untagged referrers whose subject went are dropped from index.json, before their blobs.
    let kept_entries: Vec<Descriptor> = index
        .manifests
        .iter()
        .filter(|d| d.digest().is_ok_and(|digest| live.contains_key(&digest)))
        .cloned()
        .collect();
    let entries_removed = index.manifests.len() - kept_entries.len();
    if entries_removed > 0 && !options.dry_run {
        let mut index = index;
        index.manifests = kept_entries;
        // The index lock is held for the whole run, so this is the locked write.
        layout.write_file_atomically("index.json", &crate::spec::to_canonical_json(&index))?;
    }

    let mut removed = Vec::new();
    let mut kept_recent = Vec::new();
    let now = std::time::SystemTime::now();
    for (digest, &size) in &stored {
        if live.contains_key(digest) {
            continue;
        }
        let path = layout.blob_path(digest);
        if let Some(min_age) = options.min_age {
            if changed_within(&path, now, min_age)? {
                kept_recent.push(digest.clone());
                continue;
            }
        }
        if !options.dry_run {
            // unlink: removes the name, never what a link would point at.
            fs::remove_file(&path).at(&path)?;
            // A cache entry outlives its blob only as a stale file: gone with it.
            let _ = fs::remove_file(layout.layer_cache_path(digest));
        }
        removed.push(SweptBlob {
            digest: digest.clone(),
            size,
        });
    }
    let (temp_files_removed, temp_dirs_removed) = sweep_temp(layout, options.dry_run)?;
    Ok(GcReport {
        dry_run: options.dry_run,
        entries_removed,
        kept: stored.len() - removed.len(),
        kept_recent,
        referrers_kept: referrers,
        bytes_freed: removed.iter().map(|b| b.size).sum(),
        removed,
        temp_files_removed,
        temp_dirs_removed,
    })
}

/// True when `path` was written, linked, renamed or had its metadata changed (the newer of
/// mtime and ctime) less than `age` before `now`. A time in the future counts as recent.
fn changed_within(
    path: &Path,
    now: std::time::SystemTime,
    age: std::time::Duration,
) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).at(path)?;
    let newest = meta.mtime().max(meta.ctime());
    let cutoff = now
        .checked_sub(age)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    Ok(newest >= cutoff)
}

/// The `index.json` entries gc starts from: all of them but untagged referrers (entries
/// whose manifest has a `subject`). `strata artifact attach` and oras keep referrers in
/// index.json so that peers see them, yet they live only as long as their subject.
pub fn roots(layout: &Layout, index: &crate::spec::Index) -> Result<Vec<Descriptor>> {
    let mut out = Vec::new();
    for entry in &index.manifests {
        let referrer = entry.ref_name().is_none()
            && layout
                .read_node(entry)?
                .is_some_and(|(_, _, node)| node.subject().is_some());
        if !referrer {
            out.push(entry.clone());
        }
    }
    Ok(out)
}

/// The blobs gc keeps.
#[derive(Debug, Clone)]
pub struct Marked {
    /// Every blob to keep, with its size and media type.
    pub live: BTreeMap<Digest, Reached>,
    /// The referrers among them that only their `subject` keeps, sorted.
    pub referrers: Vec<Digest>,
}

/// Marks what is reachable from `roots`, then adds, until nothing changes, every stored
/// manifest or index whose `subject` is marked, with everything it reaches. A missing
/// index or manifest is an error: what it would keep cannot be known.
pub fn mark(
    layout: &Layout,
    roots: &[Descriptor],
    stored: &BTreeMap<Digest, u64>,
) -> Result<Marked> {
    let mut walker = Walker::new(&[layout]);
    walker.walk(roots)?;
    let added = walker.add_referrers(layout, stored, false)?;
    walker.check_nodes()?;
    let mut referrers: Vec<Digest> = added.iter().filter_map(|d| d.digest().ok()).collect();
    referrers.sort();
    Ok(Marked {
        live: walker.into_map(),
        referrers,
    })
}

/// A stored manifest or index that names a `subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type (from its content; a manifest when it does not say).
    pub media_type: String,
    /// Its artifactType, or its config's media type (the referrers API's rule).
    pub artifact_type: Option<String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// The digest of its subject.
    pub subject: Digest,
}

/// Every stored blob that is a manifest or index with a `subject`, except those `skip`
/// names. Only small blobs starting with `{` are read, so layers cost a stat and one small
/// read at most; content that does not match its name is ignored.
pub fn find_referrers(
    layout: &Layout,
    stored: &BTreeMap<Digest, u64>,
    skip: impl Fn(&Digest) -> bool,
) -> Result<Vec<Referrer>> {
    let mut out = Vec::new();
    for (digest, &size) in stored {
        if skip(digest) || !(2..=JSON_LIMIT).contains(&size) {
            continue;
        }
        let path = layout.blob_path(digest);
        let mut file = layout.open_blob_file(digest)?;
        let mut first = [0u8; 1];
        if file.read(&mut first).at(&path)? != 1 || first[0] != b'{' {
            continue;
        }
        let mut raw = vec![b'{'];
        file.read_to_end(&mut raw).at(&path)?;
        let Ok(probe) = serde_json::from_slice::<ReferrerProbe>(&raw) else {
            continue;
        };
        let Some(subject) = probe.subject.and_then(|s| s.digest().ok()) else {
            continue;
        };
        // Content that does not match its name is not kept on the strength of what it says.
        if Digest::of_bytes(digest.algorithm(), &raw) != *digest {
            continue;
        }
        let media_type = probe.media_type.unwrap_or_else(|| {
            if probe.manifests.is_some() {
                media_type::INDEX.to_owned()
            } else {
                media_type::MANIFEST.to_owned()
            }
        });
        out.push(Referrer {
            digest: digest.clone(),
            size,
            media_type,
            artifact_type: probe
                .artifact_type
                .or_else(|| probe.config.map(|c| c.media_type)),
            annotations: probe.annotations.unwrap_or_default(),
            subject,
        });
    }
    Ok(out)
}

/// Removes everything in `.strata-tmp`. Only called under the exclusive gc lock and the index
/// lock, when no strata writer can be running, so every file there is a leftover. Returns
/// how many files and how many directories there were.
fn sweep_temp(layout: &Layout, dry_run: bool) -> Result<(usize, usize)> {
    let dir = layout.root().join(TMP_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e).at(dir),
    };
    let mut names = BTreeSet::new();
    for entry in entries {
        names.insert(entry.at(&dir)?.path());
    }
    let mut dirs = 0;
    for path in &names {
        // Not following links: a link in the temp dir is removed, never what it names.
        let is_dir = fs::symlink_metadata(path).at(path)?.is_dir();
        dirs += usize::from(is_dir);
        if !dry_run {
            let result = if is_dir {
                fs::remove_dir_all(path)
            } else {
                fs::remove_file(path)
            };
            result.at(path)?;
        }
    }
    if !dry_run {
        // No writer can be running (see above): the directory itself goes too.
        layout.tidy_tmp();
    }
    Ok((names.len() - dirs, dirs))
}
