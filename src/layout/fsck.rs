//! Checking a layout: every stored blob hashes to its name, every descriptor reached from
//! `index.json` is well formed and its blob present with the right size, and every manifest,
//! index and image config follows the image-spec's MUST rules. Problems are collected, one per
//! blob and rule, rather than stopping at the first.

use crate::words::plural;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use base64::Engine as _;
use serde::Serialize;

use super::blob::AlignedBuffer;
use super::gc::{list_blobs, mark, roots, SweptBlob};
use super::walk::{decode_config, Node};
use super::walker::{Edge, Role, Visitor, Walker};
use super::{Layout, JSON_LIMIT};
use crate::digest::{is_algorithm, Algorithm, Digest, DigestError};
use crate::error::{IoContext, Result};
use crate::image::time::parse_rfc3339;
use crate::layer::scan::Scan;
use crate::layer::Compression;
use crate::spec::{
    is_valid_media_type, media_type, BlobRef, Descriptor, Kind, Manifest, ANNOTATION_CREATED,
};

/// One broken rule.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The blob digest or file at fault.
    pub subject: String,
    /// The rule it breaks, with the spec document it comes from.
    pub rule: String,
}

/// What fsck found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsckReport {
    /// Stored blobs hashed.
    pub blobs_checked: usize,
    /// Bytes hashed.
    pub bytes_checked: u64,
    /// Broken rules, sorted by subject.
    pub problems: Vec<Problem>,
    /// What the spec allows but strata cannot check or use, sorted by subject.
    pub warnings: Vec<Problem>,
    /// Blobs nothing in index.json reaches and no live referrer chain keeps.
    pub unreferenced: Vec<SweptBlob>,
    /// Referrers kept only by their subject.
    pub referrers: Vec<Digest>,
}

impl FsckReport {
    /// True when no rule is broken.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// How much [`fsck_with`] reads.
#[derive(Debug, Clone, Copy)]
pub struct FsckOptions {
    /// Threads hashing and decompressing blobs in parallel (at least one).
    pub threads: usize,
    /// Decompress every layer of an image, checking its compression, diff_id and tar; when
    /// false, layers are only hashed.
    pub layers: bool,
}

/// Checks `layout` fully (layers decompressed) on `threads` threads.
pub fn fsck(layout: &Layout, threads: usize) -> Result<FsckReport> {
    fsck_with(
        layout,
        FsckOptions {
            threads,
            layers: true,
        },
    )
}

/// Checks `layout`. Holds the gc lock shared, so a concurrent gc cannot remove blobs
/// mid-check. Changes nothing: what killed writers left in `.strata-tmp` is reported, not
/// removed.
pub fn fsck_with(layout: &Layout, options: FsckOptions) -> Result<FsckReport> {
    let threads = options.threads.max(1);
    let _lock = layout.lock_gc_to_check()?;
    let mut problems = Vec::new();
    let stored = list_blobs(layout)?;
    problems.extend(misnamed_blob_files(layout)?);
    let (bad_dirs, mut warnings) = algorithm_dirs(layout)?;
    problems.extend(bad_dirs);
    // Documents are hashed before the walk reads them. Bigger blobs, layers mostly, wait
    // until the walk has said which are layers, so each is read once: hashed while it is
    // decompressed.
    let (early, late): (Vec<&Digest>, Vec<&Digest>) = stored
        .keys()
        .partition(|d| !options.layers || stored[*d] <= JSON_LIMIT);
    let mut corrupt = hash_all(layout, &early, threads)?;

    let index = layout.read_index()?.index;
    let mut checker = Checker {
        layout,
        stored: &stored,
        corrupt: &corrupt,
        problems: Vec::new(),
        warnings: Vec::new(),
        contents_checked: HashSet::new(),
        layers: options.layers.then(BTreeMap::new),
        images: BTreeMap::new(),
    };
    // Every entry, referrers too: each must follow the rules, whatever keeps it.
    Walker::new(&[layout]).walk_with(&index.manifests, &mut checker)?;
    problems.append(&mut checker.problems);
    warnings.append(&mut checker.warnings);
    let layers = checker.layers.take().unwrap_or_default();
    let images = std::mem::take(&mut checker.images);

    let scanned: HashSet<&Digest> = layers.keys().map(|(d, _)| d).collect();
    let mut work: Vec<Work<'_>> = late
        .iter()
        .filter(|d| !scanned.contains(**d))
        .map(|d| Work::Hash(d))
        .chain(
            layers
                .values()
                .filter(|job| !corrupt.contains_key(&job.digest))
                .map(Work::Layer),
        )
        .collect();
    // Biggest first: the last blob to start is a small one, so the threads end together.
    work.sort_by_key(|w| std::cmp::Reverse(stored.get(w.digest()).copied().unwrap_or(0)));
    let results = in_parallel(&work, threads, |w, buf| match w {
        Work::Hash(d) => hash_file(layout, d, buf).map(Done::Hashed),
        Work::Layer(job) => scan_layer(layout, job).map(Done::Scanned),
    })?;
    let mut layer_faults = LayerFaults::default();
    for (w, done) in work.iter().zip(results) {
        match done {
            Done::Hashed(actual) | Done::Scanned(Scan { blob: actual, .. })
                if actual != *w.digest() =>
            {
                corrupt.insert(w.digest().clone(), actual);
            }
            Done::Hashed(_) => {}
            Done::Scanned(scan) => {
                if let Work::Layer(job) = w {
                    let found = layer_problems(job, &scan);
                    layer_faults.note(job, &scan, !found.is_empty());
                    problems.extend(found);
                }
            }
        }
    }
    problems.extend(layer_faults.dangling_links(layout, &images));
    for (digest, actual) in &corrupt {
        problems.push(Problem {
            subject: digest.to_string(),
            rule: format!(
                "content hashes to {actual}: blobs/<alg>/<encoded> MUST match its digest (image-layout.md)"
            ),
        });
    }

    let marked = roots(layout, &index).and_then(|roots| mark(layout, &roots, &stored));
    let (unreferenced, referrers) = match marked {
        Ok(marked) => (
            stored
                .iter()
                .filter(|(d, _)| !marked.live.contains_key(*d))
                .map(|(d, &size)| SweptBlob {
                    digest: d.clone(),
                    size,
                })
                .collect(),
            marked.referrers,
        ),
        // The graph is broken (reported above); which blobs are unreferenced is unknowable.
        Err(_) => (Vec::new(), Vec::new()),
    };
    warnings.extend(leftovers_warning(layout));
    problems.sort();
    problems.dedup();
    warnings.sort();
    warnings.dedup();
    Ok(FsckReport {
        blobs_checked: stored.len(),
        bytes_checked: stored.values().sum(),
        problems,
        warnings,
        unreferenced,
        referrers,
    })
}

/// What the layer scans say about the hard links each layer leaves to the layers below it.
#[derive(Default)]
struct LayerFaults {
    /// Layers with such links.
    foreign: HashSet<Digest>,
    /// Layers read without a problem, and with one (under some media type): an image with a
    /// layer not read cleanly has that reported, and its tree is not built.
    clean: HashSet<Digest>,
    unclean: HashSet<Digest>,
}

impl LayerFaults {
    fn note(&mut self, job: &LayerJob, scan: &Scan, problems: bool) {
        if problems {
            self.unclean.insert(job.digest.clone());
        } else {
            self.clean.insert(job.digest.clone());
        }
        if !scan.foreign_links.is_empty() {
            self.foreign.insert(job.digest.clone());
        }
    }

    /// For each image with a layer whose hard links name what that layer does not define
    /// (usually none), whether the layers below have it: unpack, `files`, `export` and
    /// the rest refuse the image when they do not. Only the layers up to the last such one
    /// are read, and only when each of them read cleanly alone (else that is the problem).
    fn dangling_links(
        &self,
        layout: &Layout,
        images: &BTreeMap<Digest, Vec<Descriptor>>,
    ) -> Vec<Problem> {
        let mut out = Vec::new();
        for (image, layers) in images {
            let digests: Vec<Option<Digest>> = layers.iter().map(|l| l.digest().ok()).collect();
            let Some(last) = digests
                .iter()
                .rposition(|d| d.as_ref().is_some_and(|d| self.foreign.contains(d)))
            else {
                continue;
            };
            let readable = digests[..=last].iter().all(|d| {
                d.as_ref()
                    .is_some_and(|d| self.clean.contains(d) && !self.unclean.contains(d))
            });
            if !readable {
                continue;
            }
            let rule = match crate::image::tree::Tree::first_refused(layout, &layers[..=last]) {
                Ok(None) => continue,
                Ok(Some((layer, why))) => format!("layer {}: {why}", layer.digest),
                Err(e) => format!("its layers do not apply: {e}"),
            };
            out.push(Problem {
                subject: image.to_string(),
                rule,
            });
        }
        out
    }
}

/// What killed writers left in `.strata-tmp`: no problem (nothing reads it), but space used
/// until the next write takes it.
fn leftovers_warning(layout: &Layout) -> Option<Problem> {
    let left = layout.tmp_leftovers();
    if left.is_empty() {
        return None;
    }
    let dirs = left.iter().filter(|l| l.is_dir).count();
    Some(Problem {
        subject: layout.root().join(super::TMP_DIR).display().to_string(),
        rule: format!(
            "{} left by writers that were stopped: the next write to the layout removes them \
             (or strata gc)",
            crate::words::temp_entries(left.len() - dirs, dirs)
        ),
    })
}

/// A layer of an image, to be decompressed, with what the configs that list it expect.
#[derive(Debug)]
struct LayerJob {
    digest: Digest,
    compression: Compression,
    media_type: String,
    expected: Vec<Expected>,
}

/// One config's diff_id for a layer.
#[derive(Debug)]
struct Expected {
    diff_id: Digest,
    config: Digest,
    position: usize,
}

enum Work<'a> {
    Hash(&'a Digest),
    Layer(&'a LayerJob),
}

impl Work<'_> {
    fn digest(&self) -> &Digest {
        match self {
            Work::Hash(d) => d,
            Work::Layer(job) => &job.digest,
        }
    }
}

enum Done {
    Hashed(Digest),
    Scanned(Scan),
}

fn scan_layer(layout: &Layout, job: &LayerJob) -> Result<Scan> {
    let path = layout.blob_path(&job.digest);
    let file = layout.open_blob_file(&job.digest)?;
    let mut algs: Vec<Algorithm> = job.expected.iter().map(|e| e.diff_id.algorithm()).collect();
    algs.sort();
    algs.dedup();
    crate::layer::scan::scan(
        std::io::BufReader::with_capacity(1 << 20, file),
        job.digest.algorithm(),
        job.compression,
        &job.media_type,
        &algs,
    )
    .at(&path)
}

/// What a layer's scan says is wrong, all of which unpack refuses.
fn layer_problems(job: &LayerJob, scan: &Scan) -> Vec<Problem> {
    let subject = job.digest.to_string();
    let problem = |rule: String| Problem {
        subject: subject.clone(),
        rule,
    };
    if let Some(why) = &scan.mismatch {
        return vec![problem(format!(
            "{why}; unpack refuses it (image-layer.md)"
        ))];
    }
    if let Some(why) = &scan.broken {
        return vec![problem(why.sentence())];
    }
    job.expected
        .iter()
        .filter_map(|e| {
            let actual = scan
                .diff_ids
                .iter()
                .find(|d| d.algorithm() == e.diff_id.algorithm())?;
            (*actual != e.diff_id).then(|| {
                problem(format!(
                    "uncompressed content hashes to {actual}, but rootfs.diff_ids[{}] of config {} says {} (config.md)",
                    e.position, e.config, e.diff_id
                ))
            })
        })
        .collect()
}

/// Blob files whose names are not digests, and digest names that are not regular files.
fn misnamed_blob_files(layout: &Layout) -> Result<Vec<Problem>> {
    let mut out = Vec::new();
    for alg in Algorithm::ALL {
        let dir = layout.blobs_dir().join(alg.name());
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            let digest = name.to_str().and_then(|n| Digest::new(alg, n).ok());
            if let Some(digest) = &digest {
                // list_blobs skips these; say what they are rather than "missing".
                if !entry.file_type().at(entry.path())?.is_file() {
                    if let Err(e) = layout.open_blob_file(digest) {
                        out.push(Problem {
                            subject: digest.to_string(),
                            rule: format!("{e}: a blob MUST be a regular file (image-layout.md)"),
                        });
                    }
                }
            }
            if digest.is_none() {
                out.push(Problem {
                    subject: entry.path().display().to_string(),
                    rule: "file name is not a valid digest: blob names MUST follow the digest grammar (image-layout.md)"
                        .into(),
                });
            }
        }
    }
    Ok(out)
}

/// Hashes `blobs` on `threads` threads; returns the ones whose content does not match
/// their name, with what they hash to.
fn hash_all(
    layout: &Layout,
    blobs: &[&Digest],
    threads: usize,
) -> Result<BTreeMap<Digest, Digest>> {
    let hashed = in_parallel(blobs, threads, |d, buf| hash_file(layout, d, buf))?;
    Ok(blobs
        .iter()
        .zip(hashed)
        .filter(|(d, actual)| **d != actual)
        .map(|(d, actual)| ((*d).clone(), actual))
        .collect())
}

/// Runs `f` on every item on up to `threads` threads, each with its own read buffer;
/// results in item order, or the first error.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T, &mut [u8]) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    let failure = Mutex::new(None);
    let work = || {
        let mut buffer = AlignedBuffer::new(1 << 20);
        let buf = buffer.as_mut_slice();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            match f(item, buf) {
                Ok(r) => results.lock().expect("no panics hold it")[i] = Some(r),
                Err(e) => {
                    failure.lock().expect("no panics hold it").get_or_insert(e);
                    // The others stop at their next item.
                    next.store(items.len(), Ordering::Relaxed);
                    break;
                }
            }
        }
    };
    std::thread::scope(|scope| {
        // A machine out of thread slots gives fewer workers, and with none this thread
        // does the work itself.
        let mut spawned = 0;
        for _ in 0..threads.max(1).min(items.len().max(1)) {
            match std::thread::Builder::new().spawn_scoped(scope, work) {
                Ok(_) => spawned += 1,
                Err(_) => break,
            }
        }
        if spawned == 0 {
            work();
        }
    });
    if let Some(e) = failure.into_inner().expect("threads joined") {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .expect("threads joined")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect())
}

fn hash_file(layout: &Layout, digest: &Digest, buf: &mut [u8]) -> Result<Digest> {
    let path = layout.blob_path(digest);
    let mut file = layout.open_blob_file(digest)?;
    let mut hasher = digest.algorithm().hasher();
    loop {
        let n = file.read(buf).at(&path)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// The spec's rules, checked on the walk every other command takes: each descriptor as it
/// is met, each index and manifest once it is decoded.
struct Checker<'a> {
    layout: &'a Layout,
    stored: &'a BTreeMap<Digest, u64>,
    corrupt: &'a BTreeMap<Digest, Digest>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    /// Image layers to decompress, by digest and declared compression (`None`: layers
    /// are only hashed).
    layers: Option<BTreeMap<(Digest, Compression), LayerJob>>,
    /// Leaves whose content has a rule (the empty descriptor, configs outside a manifest).
    contents_checked: HashSet<(Digest, String)>,
    /// Image manifests whose layers are decompressed, with their layers: the images whose
    /// hard links the layers below must settle.
    images: BTreeMap<Digest, Vec<Descriptor>>,
}

impl Visitor for Checker<'_> {
    fn edge(&mut self, desc: &Descriptor, edge: &Edge<'_>) -> bool {
        if edge.by_shape {
            // Inside a blob of a media type the spec leaves to its owner: no rules apply.
            return true;
        }
        let parent = edge.found_in;
        let subject = format!("{} (in {parent})", desc.digest);
        if !is_valid_media_type(&desc.media_type) {
            self.problem(
                &subject,
                format!(
                    "mediaType {:?} is not an RFC 6838 media type (descriptor.md)",
                    desc.media_type
                ),
            );
        }
        if let Some(at) = &desc.artifact_type {
            if !is_valid_media_type(at) {
                self.problem(
                    &subject,
                    format!("artifactType {at:?} is not an RFC 6838 media type (descriptor.md)"),
                );
            }
        }
        for (i, url) in desc.urls.iter().flatten().enumerate() {
            if !crate::uri::is_uri(url) {
                self.problem(
                    &subject,
                    format!("urls[{i}] {url:?} is not an RFC 3986 URI (descriptor.md)"),
                );
            }
        }
        self.annotations(&subject, desc.annotations.as_ref());
        if desc.size < 0 {
            self.problem(
                &subject,
                format!("size {} MUST NOT be negative (descriptor.md)", desc.size),
            );
            return false;
        }
        let size = desc.size as u64;
        let digest = match desc.digest() {
            Ok(d) => d,
            Err(e @ DigestError::UnsupportedAlgorithm { .. }) => {
                // The grammar allows unregistered algorithms; strata just cannot hash them.
                // One warning per digest, however many descriptors use it.
                self.warnings.push(Problem {
                    subject: desc.digest.clone(),
                    rule: format!("{e}: cannot verify this blob"),
                });
                if let Some(data) = &desc.data {
                    self.embedded_data(&desc.digest, None, size, data, parent);
                }
                return false;
            }
            Err(e) => {
                self.problem(&subject, format!("{e} (descriptor.md)"));
                return false;
            }
        };
        let Some(&stored_size) = self.stored.get(&digest) else {
            // A subject is a weak link: referrers may point at content held elsewhere. A
            // name that is there but not a regular file is reported with what it is.
            let present = fs::symlink_metadata(self.layout.blob_path(&digest)).is_ok();
            if !edge.via_subject && !present {
                self.problem(
                    &digest,
                    format!("referenced from {parent} but missing from blobs/"),
                );
            }
            return false;
        };
        if stored_size != size {
            self.problem(
                &digest,
                format!(
                    "blob has {}, descriptor in {parent} says {size} (descriptor.md)",
                    crate::words::bytes(stored_size)
                ),
            );
            return false;
        }
        if let Some(data) = &desc.data {
            self.embedded_data(&desc.digest, Some(&digest), size, data, parent);
        }
        if self.corrupt.contains_key(&digest) {
            return false;
        }
        let kind = Kind::of(&desc.media_type);
        let content_rule = desc.media_type == media_type::EMPTY
            // A manifest's config is checked with the manifest (its layer count matters).
            || (kind == Kind::Config && edge.role != Role::Config);
        if content_rule
            && self
                .contents_checked
                .insert((digest.clone(), desc.media_type.clone()))
        {
            self.contents(&digest, desc, size);
        }
        true
    }

    fn bad_node(&mut self, blob: &BlobRef, error: crate::Error) -> Result<()> {
        let what = format!("blob {}: ", blob.digest);
        self.problem(&blob.digest, error.to_string().replacen(&what, "", 1));
        Ok(())
    }

    fn misread_node(&mut self, blob: &BlobRef, declared: &str, node: &Node, error: crate::Error) {
        let (is, kind) = match node {
            Node::Index(_) => ("an image index", Kind::Index),
            Node::Manifest(_) => ("an image manifest", Kind::Manifest),
        };
        if Kind::of(declared) == kind {
            // The right kind, breaking one of its rules: the error says which.
            let _ = self.bad_node(blob, error);
        } else {
            self.problem(
                &blob.digest,
                format!("its descriptor says {declared} but it is {is} (descriptor.md: mediaType describes the content)"),
            );
        }
    }

    fn node(&mut self, blob: &BlobRef, raw: &[u8], node: &Node) {
        let digest = &blob.digest;
        let (field, empty) = match node {
            Node::Index(i) => ("manifests", i.manifests.is_empty()),
            Node::Manifest(m) => ("layers", m.layers.is_empty()),
        };
        // Go's encoders write an empty slice as null; read as empty, but it is not an array.
        if empty
            && serde_json::from_slice::<serde_json::Value>(raw)
                .is_ok_and(|v| v.get(field).is_some_and(serde_json::Value::is_null))
        {
            self.warnings.push(Problem {
                subject: digest.to_string(),
                rule: format!("{field} is null, read as empty (the spec wants an array)"),
            });
        }
        let annotations = match node {
            Node::Index(i) => i.annotations.as_ref(),
            Node::Manifest(m) => m.annotations.as_ref(),
        };
        self.annotations(&digest.to_string(), annotations);
        match node {
            Node::Index(index) => {
                for (i, entry) in index.manifests.iter().enumerate() {
                    if let Some(p) = &entry.platform {
                        if p.os.is_empty() || p.architecture.is_empty() {
                            self.problem(digest, format!("manifests[{i}].platform needs os and architecture (image-index.md)"));
                        }
                    }
                }
            }
            Node::Manifest(manifest) => self.manifest(digest, manifest),
        }
    }
}

impl Checker<'_> {
    fn problem(&mut self, subject: impl ToString, rule: impl Into<String>) {
        self.problems.push(Problem {
            subject: subject.to_string(),
            rule: rule.into(),
        });
    }

    /// Checks the content of a leaf whose media type has rules (the empty descriptor, an
    /// image config).
    fn contents(&mut self, digest: &Digest, desc: &Descriptor, size: u64) {
        if size > JSON_LIMIT {
            return self.problem(
                digest,
                format!(
                    "a {} of {size} bytes is over strata's {JSON_LIMIT}-byte limit",
                    desc.media_type
                ),
            );
        }
        let blob = crate::spec::BlobRef {
            digest: digest.clone(),
            size,
        };
        let raw = match self.layout.read_blob(&blob, JSON_LIMIT, "document") {
            Ok(raw) => raw,
            Err(e) => return self.problem(digest, format!("cannot read: {e}")),
        };
        if desc.media_type == media_type::EMPTY {
            if raw != b"{}" {
                self.problem(
                    digest,
                    "the empty descriptor's content MUST be {} (manifest.md)",
                );
            }
        } else {
            self.config(digest, &raw, None);
        }
    }

    /// `data`: padded base64 of the standard alphabet (RFC 4648 section 4), decoding to
    /// `size` bytes that hash to the digest (when strata can hash it).
    fn embedded_data(
        &mut self,
        shown: &str,
        digest: Option<&Digest>,
        size: u64,
        data: &str,
        parent: &str,
    ) {
        let rule = match base64::engine::general_purpose::STANDARD.decode(data) {
            Err(e) => format!("embedded data in {parent} is not padded base64 (RFC 4648): {e}"),
            Ok(bytes) if bytes.len() as u64 != size => format!(
                "embedded data in {parent} decodes to {}, the descriptor says {size}",
                crate::words::bytes(bytes.len() as u64)
            ),
            Ok(bytes) => match digest {
                Some(d) if Digest::of_bytes(d.algorithm(), &bytes) != *d => {
                    format!("embedded data in {parent} does not match the digest")
                }
                _ => return,
            },
        };
        self.problem(shown, format!("{rule} (descriptor.md)"));
    }

    /// Annotation values with a format: `org.opencontainers.image.created` is RFC 3339.
    fn annotations(&mut self, subject: &str, annotations: Option<&BTreeMap<String, String>>) {
        let Some(annotations) = annotations else {
            return;
        };
        if let Some(created) = annotations.get(ANNOTATION_CREATED) {
            if parse_rfc3339(created).is_none() {
                self.problem(
                    subject,
                    format!("annotation {ANNOTATION_CREATED} {created:?} is not an RFC 3339 date-time (annotations.md)"),
                );
            }
        }
    }

    fn manifest(&mut self, digest: &Digest, manifest: &Manifest) {
        if manifest.config.media_type == media_type::EMPTY && manifest.artifact_type.is_none() {
            self.problem(
                digest,
                "artifactType MUST be set when config.mediaType is the empty type (manifest.md)",
            );
        }
        // An artifact's layers are whatever it says; only an image's are unpacked.
        if Kind::of(&manifest.config.media_type) != Kind::Config {
            return;
        }
        let Ok(cd) = manifest.config.digest() else {
            return; // reported on the edge
        };
        let diff_ids = self.manifest_config(&cd, manifest);
        self.queue_layers(digest, manifest, &cd, &diff_ids.unwrap_or_default());
    }

    /// Checks a manifest's config; its diff_ids when it could be read.
    fn manifest_config(&mut self, cd: &Digest, manifest: &Manifest) -> Option<Vec<String>> {
        // Only a config that is there, whole and of the right size (the edge reports the rest).
        let size = manifest.config.size.max(0) as u64;
        if self.stored.get(cd) != Some(&size) || self.corrupt.contains_key(cd) {
            return None;
        }
        let blob = crate::spec::BlobRef {
            digest: cd.clone(),
            size,
        };
        match self.layout.read_blob(&blob, JSON_LIMIT, "config") {
            Ok(raw) => self.config(cd, &raw, Some(manifest.layers.len())),
            Err(e) => {
                self.problem(cd, format!("cannot read: {e}"));
                None
            }
        }
    }

    /// Queues an image's stored layers for decompression, each with the diff_id at its
    /// position in the config.
    fn queue_layers(
        &mut self,
        image: &Digest,
        manifest: &Manifest,
        config: &Digest,
        diff_ids: &[String],
    ) {
        let Some(mut layers) = self.layers.take() else {
            return;
        };
        self.images.insert(image.clone(), manifest.layers.clone());
        for (position, layer) in manifest.layers.iter().enumerate() {
            let Ok(ld) = layer.digest() else { continue };
            // A missing, wrong-sized or corrupt layer is reported as such.
            let whole = u64::try_from(layer.size).is_ok_and(|n| self.stored.get(&ld) == Some(&n));
            if !whole || self.corrupt.contains_key(&ld) {
                continue;
            }
            let Some(compression) = Compression::of_layer(&layer.media_type) else {
                // The spec has implementations ignore media types they do not know.
                self.warnings.push(Problem {
                    subject: ld.to_string(),
                    rule: format!(
                        "layer media type {:?} is not one strata can unpack; its content is not checked",
                        layer.media_type
                    ),
                });
                continue;
            };
            let job = layers
                .entry((ld.clone(), compression))
                .or_insert_with(|| LayerJob {
                    digest: ld,
                    compression,
                    media_type: layer.media_type.clone(),
                    expected: Vec::new(),
                });
            if let Some(diff_id) = diff_ids.get(position).and_then(|d| d.parse().ok()) {
                job.expected.push(Expected {
                    diff_id,
                    config: config.clone(),
                    position,
                });
            }
        }
        self.layers = Some(layers);
    }

    /// Checks an image config; its diff_ids when it decodes.
    fn config(
        &mut self,
        digest: &Digest,
        raw: &[u8],
        layer_count: Option<usize>,
    ) -> Option<Vec<String>> {
        let config = match decode_config(raw, "config") {
            Ok(c) => c,
            Err(e) => {
                self.problem(
                    digest,
                    format!(
                        "{} (config.md: architecture, os and rootfs are REQUIRED)",
                        e.to_string().replacen("config: ", "", 1)
                    ),
                );
                return None;
            }
        };
        if config.rootfs.kind != "layers" {
            self.problem(
                digest,
                format!(
                    "rootfs.type is {:?}, MUST be \"layers\" (config.md)",
                    config.rootfs.kind
                ),
            );
        }
        for (i, id) in config.rootfs.diff_ids.iter().enumerate() {
            match id.parse::<Digest>() {
                Ok(_) => {}
                Err(e @ DigestError::UnsupportedAlgorithm { .. }) => self.warnings.push(Problem {
                    subject: digest.to_string(),
                    rule: format!("rootfs.diff_ids[{i}]: {e}: cannot verify that layer's content"),
                }),
                Err(e) => self.problem(digest, format!("rootfs.diff_ids[{i}]: {e} (config.md)")),
            }
        }
        let history = config.history.iter().flatten().enumerate();
        let dates = std::iter::once(("created".to_owned(), config.created.as_ref()))
            .chain(history.map(|(i, h)| (format!("history[{i}].created"), h.created.as_ref())));
        for (field, value) in dates {
            if let Some(value) = value.filter(|v| parse_rfc3339(v).is_none()) {
                self.problem(
                    digest,
                    format!("{field} {value:?} is not an RFC 3339 date-time (config.md)"),
                );
            }
        }
        if let Some(n) = layer_count {
            if n != config.rootfs.diff_ids.len() {
                self.problem(
                    digest,
                    format!(
                        "rootfs.diff_ids has {} but the manifest has {} (config.md, manifest.md)",
                        plural(config.rootfs.diff_ids.len(), "entry", "entries"),
                        plural(n, "layer", "layers")
                    ),
                );
            }
        }
        for env in config.config.iter().flat_map(|c| c.env.iter().flatten()) {
            match env.split_once('=') {
                Some((name, _)) if !name.is_empty() => {}
                _ => self.problem(
                    digest,
                    format!("Env entry {env:?} is not NAME=value (config.md)"),
                ),
            }
        }
        Some(config.rootfs.diff_ids)
    }
}

/// Directories under `blobs/` named for no algorithm (a problem: the name is the digest's
/// algorithm) or for one strata cannot hash (a warning: the spec allows it); in that order.
fn algorithm_dirs(layout: &Layout) -> Result<(Vec<Problem>, Vec<Problem>)> {
    let dir = layout.blobs_dir();
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    for entry in fs::read_dir(&dir).at(&dir)? {
        let name = entry.at(&dir)?.file_name().to_string_lossy().into_owned();
        let subject = format!("blobs/{name}");
        if !is_algorithm(&name) {
            problems.push(Problem {
                subject,
                rule: "not a digest algorithm: blobs/<alg> MUST be named by the digest grammar's algorithm (image-layout.md)".into(),
            });
        } else if Algorithm::from_name(&name).is_none() {
            warnings.push(Problem {
                subject,
                rule: "algorithm strata cannot verify; its blobs are not checked".into(),
            });
        }
    }
    Ok((problems, warnings))
}
