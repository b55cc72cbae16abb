//! Unpacking an image into a runtime bundle: every layer verified (blob digest and size,
//! uncompressed `diff_id`) and applied in order to `BUNDLE/rootfs`, then the runtime
//! `config.json` and strata's metadata. A failed unpack removes what it made.

use crate::words::plural;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use serde::Serialize;

use super::idmap::IdMap;
use super::runtime::{runtime_config, RuntimeOptions};
use super::snapshot;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::image::{resolve_image, PlatformSpec, Resolved};
use crate::ioext::{read_full, ChannelReader};
use crate::layer::apply::{Applier, ApplyOptions};
use crate::layer::Compression;
use crate::layout::reference::Reference;
use crate::layout::walk::blob_ref;
use crate::layout::{Layout, LockMode};
use crate::spec::{Descriptor, ImageConfig, Kind};

/// The bundle metadata file strata writes next to `rootfs/`.
pub const METADATA_FILE: &str = "strata.json";
/// The snapshot of the unpacked tree, for repack.
pub const SNAPSHOT_FILE: &str = "strata-snapshot.jsonl";
/// The file a bundle holds while strata unpacks into it: made first, removed last, and
/// locked meanwhile, so that a bundle a killed unpack left is told for sure from one being
/// unpacked and from anyone else's directory.
pub const UNFINISHED_FILE: &str = "strata-unfinished";

/// How to unpack.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Platform to pick through an index.
    pub platform: PlatformSpec,
    /// Unprivileged unpack (see [`ApplyOptions::rootless`]).
    pub rootless: bool,
    /// Container to host uid mapping.
    pub uid_map: IdMap,
    /// Container to host gid mapping.
    pub gid_map: IdMap,
    /// Keep symlinks to directories where a layer has a directory.
    pub keep_dirlinks: bool,
    /// Write only the rootfs, into an existing empty directory.
    pub rootfs_only: bool,
}

impl Default for UnpackOptions {
    /// This machine's platform, as the user running it, identity id maps.
    fn default() -> UnpackOptions {
        UnpackOptions {
            platform: crate::image::host_platform(),
            rootless: !rustix::process::geteuid().is_root(),
            uid_map: IdMap::default(),
            gid_map: IdMap::default(),
            keep_dirlinks: false,
            rootfs_only: false,
        }
    }
}

/// Progress of an unpack, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A layer is starting: index, count, descriptor.
    Layer(usize, usize, &'a Descriptor),
    /// Compressed bytes read so far in the current layer.
    Bytes(u64),
    /// An entry of the current layer is applied: its path as the tar names it.
    Entry(&'a str),
}

/// What an unpack did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnpackReport {
    /// The manifest unpacked.
    pub manifest: String,
    /// Layers applied.
    pub layers: usize,
    /// Tar entries applied.
    pub entries: u64,
    /// Things the user should know (devices skipped in rootless mode, ...).
    pub warnings: Vec<String>,
}

/// strata's bundle metadata (`strata.json`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleMetadata {
    /// Format version of this file.
    pub strata_bundle_version: u32,
    /// The layout the image came from (absolute).
    pub layout: PathBuf,
    /// The reference as given.
    pub reference: String,
    /// The tag the reference named, if it named one: kept apart so that repack never has
    /// to parse `reference` again (its layout part may hold anything, `:` included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The descriptors from the `index.json` entry down to the manifest.
    pub descriptor_path: Vec<Descriptor>,
    /// Whether the unpack was rootless.
    pub rootless: bool,
    /// uid mapping used.
    pub uid_map: IdMap,
    /// gid mapping used.
    pub gid_map: IdMap,
}

/// Unpacks the image `reference` names into `dest`.
pub fn unpack(
    reference: &Reference,
    dest: impl AsRef<Path>,
    options: &UnpackOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<UnpackReport> {
    let dest = dest.as_ref();
    options.uid_map.check()?;
    options.gid_map.check()?;
    let layout = Layout::open(&reference.layout)?;
    // Shared: gc cannot remove the blobs while they are read.
    let _lock = layout.lock_gc(LockMode::Shared)?;
    let resolved = resolve_image(&layout, &reference.target, &options.platform)?;
    let config = image_config(&layout, &resolved)?;
    let layers = check_layers(&resolved, &config)?;
    if !options.rootless && !rustix::process::geteuid().is_root() {
        return Err(Error::ChoiceNeeded {
            what: dest.display().to_string(),
            reason: "unpacking as a non-root user needs a rootless unpack (ownership and device nodes cannot be set otherwise)".into(),
            choice: crate::Choice::Rootless,
        });
    }

    let made = prepare_destination(dest, options.rootfs_only)?;
    let rootfs = if options.rootfs_only {
        dest.to_owned()
    } else {
        dest.join("rootfs")
    };
    let result = (|| {
        let unfinished = (!options.rootfs_only)
            .then(|| mark_unfinished(dest))
            .transpose()?;
        if !options.rootfs_only {
            fs::create_dir(&rootfs).at(&rootfs)?;
        }
        // The image's `/` as a runtime sees it, whichever directory holds it (a rootfs-only
        // destination too, which was 0700 while it was prepared): a layer's `./` entry, if
        // any, sets it again.
        fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755)).at(&rootfs)?;
        if !options.rootless {
            let uid = options.uid_map.to_host(0).unwrap_or(0);
            let gid = options.gid_map.to_host(0).unwrap_or(0);
            std::os::unix::fs::lchown(&rootfs, Some(uid), Some(gid)).at(&rootfs)?;
        }
        let mut applier = Applier::new(
            &rootfs,
            ApplyOptions {
                rootless: options.rootless,
                uid_map: options.uid_map.clone(),
                gid_map: options.gid_map.clone(),
                keep_dirlinks: options.keep_dirlinks,
            },
        )?;
        let mut entries = 0;
        for (i, (desc, compression, diff_id)) in layers.iter().enumerate() {
            progress(Progress::Layer(i, layers.len(), desc));
            entries += apply_one(&layout, &mut applier, desc, *compression, diff_id, progress)?;
        }
        let warnings = applier.take_warnings();
        if options.rootfs_only {
            applier.finish()?;
        } else {
            write_bundle_files(
                dest, &rootfs, &layout, reference, &resolved, &config, options,
            )?;
            // The tree is walked before a rootless unpack makes directories read-only (it
            // could not be walked after), then corrected with their final status.
            let mut snapshot = snapshot::take(&rootfs)?;
            let finals: std::collections::HashMap<PathBuf, rustix::fs::Stat> =
                applier.finish()?.into_iter().collect();
            for entry in &mut snapshot {
                if let Some(st) = finals.get(&entry.path_buf()) {
                    entry.mode = st.st_mode & 0o7777;
                    entry.ctime = st.st_ctime;
                    entry.ctime_nsec = st.st_ctime_nsec as i64;
                }
            }
            snapshot::write(&snapshot, dest.join(SNAPSHOT_FILE))?;
        }
        if let Some(_held) = unfinished {
            let marker = dest.join(UNFINISHED_FILE);
            fs::remove_file(&marker).at(&marker)?;
        }
        Ok(UnpackReport {
            manifest: resolved.descriptor.digest.clone(),
            layers: layers.len(),
            entries,
            warnings,
        })
    })();
    if result.is_err() {
        discard(dest, made);
    }
    result
}

fn image_config(layout: &Layout, resolved: &Resolved) -> Result<ImageConfig> {
    let m = &resolved.manifest;
    if Kind::of(&m.config.media_type) != Kind::Config {
        return Err(Error::Invalid {
            what: format!("manifest {}", resolved.descriptor.digest),
            reason: format!("its config is {:?}, not an image config: it is an artifact, not an image to unpack", m.config.media_type),
        });
    }
    let (_, config) = layout.read_config(&m.config)?;
    if config.rootfs.kind != "layers" {
        return Err(Error::Invalid {
            what: format!("config {}", m.config.digest),
            reason: format!(
                "rootfs.type is {:?}, must be \"layers\"",
                config.rootfs.kind
            ),
        });
    }
    Ok(config)
}

/// Every layer's compression and expected diff_id, checked before anything is written.
fn check_layers(
    resolved: &Resolved,
    config: &ImageConfig,
) -> Result<Vec<(Descriptor, Compression, Digest)>> {
    let m = &resolved.manifest;
    if m.layers.len() != config.rootfs.diff_ids.len() {
        return Err(Error::Invalid {
            what: format!("manifest {}", resolved.descriptor.digest),
            reason: format!(
                "{} but the config lists {}",
                plural(m.layers.len(), "layer", "layers"),
                plural(config.rootfs.diff_ids.len(), "diff_id", "diff_ids")
            ),
        });
    }
    m.layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(desc, diff_id)| {
            let compression =
                Compression::of_layer(&desc.media_type).ok_or_else(|| Error::LayerStream {
                    layer: desc.digest.clone(),
                    reason: format!("unsupported layer media type {:?}", desc.media_type),
                })?;
            let diff_id: Digest = diff_id.parse().map_err(|e| Error::LayerStream {
                layer: desc.digest.clone(),
                reason: format!("its diff_id: {e}"),
            })?;
            Ok((desc.clone(), compression, diff_id))
        })
        .collect()
}

/// Reads `reader` to its end: a layer is verified only once every byte has been hashed.
fn drain(reader: &mut impl Read) -> io::Result<u64> {
    io::copy(reader, &mut io::sink())
}

/// Uncompressed bytes travel between the two threads in chunks of this size; at most
/// [`CHUNKS_IN_FLIGHT`] wait, so memory stays flat whatever the layer's size.
const CHUNK: usize = 256 << 10;
const CHUNKS_IN_FLIGHT: usize = 8;

/// Applies one layer on two threads: this one parses the tar and writes files while a second
/// reads the blob (verifying its digest and size), decompresses it and hashes the result
/// for the diff_id. The second thread reads to the very end even after the tar's end marker,
/// so trailing bytes are hashed too.
fn apply_one(
    layout: &Layout,
    applier: &mut Applier,
    desc: &Descriptor,
    compression: Compression,
    diff_id: &Digest,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<u64> {
    let stream_error = |reason: String| Error::LayerStream {
        layer: desc.digest.clone(),
        reason,
    };
    let blob = blob_ref(desc, &format!("layer descriptor {}", desc.digest))?;
    let mut reader = layout.open_blob(&blob)?;
    let compressed_read = AtomicU64::new(0);
    let abandon = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(CHUNKS_IN_FLIGHT);
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| -> Result<Digest> {
            // A content the media type misdescribes would fail deep in the decoder or the tar
            // reader ("Unknown frame descriptor"); say what it is instead.
            let mut head = Vec::with_capacity(Compression::SNIFF_LEN);
            (&mut reader)
                .take(Compression::SNIFF_LEN as u64)
                .read_to_end(&mut head)
                .map_err(|e| stream_error(e.to_string()))?;
            if let Some(why) = compression.mismatch(&head, &desc.media_type) {
                return Err(stream_error(why));
            }
            let counted = CountingReader {
                inner: io::Cursor::new(head).chain(&mut reader),
                count: &compressed_read,
            };
            let decoder = compression
                .decoder(counted)
                .map_err(|e| stream_error(e.to_string()))?;
            let mut uncompressed = HashingReader::new(decoder, diff_id.algorithm());
            let mut consumer_alive = true;
            while !abandon.load(Ordering::Relaxed) {
                let mut chunk = vec![0u8; CHUNK];
                match read_full(&mut uncompressed, &mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        chunk.truncate(n);
                        consumer_alive = consumer_alive && tx.send(Ok(chunk)).is_ok();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(stream_error(e.to_string()));
                    }
                }
            }
            drop(tx);
            let (actual, _, decoder) = uncompressed.finish();
            drop(decoder);
            if !abandon.load(Ordering::Relaxed) {
                drain(&mut reader).map_err(|e| stream_error(e.to_string()))?;
            }
            Ok(actual)
        });
        let input = ChannelReader::new(rx);
        // Shared by the reader (bytes) and the applier (entries), which take turns.
        let progress = std::cell::RefCell::new(progress);
        let applied = applier.apply_reporting(
            ProgressReader {
                inner: input,
                count: &compressed_read,
                progress: &progress,
                last: 0,
            },
            &desc.digest,
            &mut |path| (progress.borrow_mut())(Progress::Entry(path)),
        );
        if applied.is_err() {
            abandon.store(true, Ordering::Relaxed);
        }
        let produced = producer
            .join()
            .expect("the decompressing thread does not panic");
        // The stream's own error (corruption, wrong digest) explains a tar error better.
        let actual = produced?;
        let entries = applied?;
        if actual != *diff_id {
            return Err(stream_error(format!(
                "uncompressed content hashes to {actual}, but the config's diff_id is {diff_id}"
            )));
        }
        Ok(entries)
    })
}

/// Counts compressed bytes read, for progress.
struct CountingReader<'a, R> {
    inner: R,
    count: &'a AtomicU64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reports progress from the consuming thread, about once per MiB.
struct ProgressReader<'a, 'p, R> {
    inner: R,
    count: &'a AtomicU64,
    progress: &'a std::cell::RefCell<&'p mut dyn FnMut(Progress<'_>)>,
    last: u64,
}

impl<R: Read> Read for ProgressReader<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let now = self.count.load(Ordering::Relaxed);
        if now >> 20 != self.last >> 20 {
            self.last = now;
            (self.progress.borrow_mut())(Progress::Bytes(now));
        }
        Ok(n)
    }
}

/// What the destination looked like before, so a failure can put it back.
enum Made {
    /// strata created the directory: remove it.
    Dir,
    /// It existed (empty): empty it again and give it back what the unpack changed (a
    /// rootfs-only target is the rootfs, whose owner and mode a layer's root entry sets;
    /// a bundle directory was made 0700).
    Contents(Original),
}

/// An existing destination's owner, mode, times and xattrs.
struct Original {
    uid: u32,
    gid: u32,
    mode: u32,
    times: rustix::fs::Timestamps,
    /// `None` where they could not be read: then they are left alone.
    xattrs: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl Original {
    fn of(dest: &Path, meta: &fs::Metadata) -> Original {
        use std::os::unix::fs::MetadataExt;
        let time = |sec, nsec| rustix::fs::Timespec {
            tv_sec: sec,
            tv_nsec: nsec as _,
        };
        Original {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            times: rustix::fs::Timestamps {
                last_access: time(meta.atime(), meta.atime_nsec()),
                last_modification: time(meta.mtime(), meta.mtime_nsec()),
            },
            xattrs: xattrs_of(dest),
        }
    }

    /// Best effort: the unpack already failed, and this is its cleanup. Owner before mode,
    /// as chown clears setuid bits; times last, as the others change them.
    fn restore(&self, dest: &Path) {
        use rustix::fs::{lremovexattr, lsetxattr, XattrFlags};
        let _ = std::os::unix::fs::lchown(dest, Some(self.uid), Some(self.gid));
        if let (Some(before), Some(now)) = (&self.xattrs, xattrs_of(dest)) {
            for (name, value) in &now {
                match before.iter().find(|(n, _)| n == name) {
                    None => {
                        let _ = lremovexattr(dest, OsStr::from_bytes(name));
                    }
                    Some((_, old)) if old != value => {
                        let _ = lsetxattr(dest, OsStr::from_bytes(name), old, XattrFlags::empty());
                    }
                    Some(_) => {}
                }
            }
        }
        let _ = fs::set_permissions(dest, fs::Permissions::from_mode(self.mode));
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            dest,
            &self.times,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
    }
}

/// `path`'s xattrs, names and values; `None` when they cannot be read.
fn xattrs_of(path: &Path) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    use rustix::fs::{lgetxattr, lgetxattr_query, llistxattr, llistxattr_query};
    let mut names = vec![0u8; llistxattr_query(path).ok()?];
    let n = llistxattr(path, &mut names[..]).ok()?;
    names.truncate(n);
    names
        .split(|b| *b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let key = OsStr::from_bytes(name);
            let mut value = vec![0u8; lgetxattr_query(path, key).ok()?];
            let n = lgetxattr(path, key, &mut value[..]).ok()?;
            value.truncate(n);
            Some((name.to_vec(), value))
        })
        .collect()
}

/// Makes [`UNFINISHED_FILE`] in a new bundle, locked: the lock goes with the file returned.
fn mark_unfinished(dest: &Path) -> Result<fs::File> {
    use std::io::Write;
    let path = dest.join(UNFINISHED_FILE);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .at(&path)?;
    file.lock().at(&path)?;
    file.write_all(
        b"strata is unpacking an image into this directory. If no strata is running, the \
          unpack was stopped before it finished: remove the directory and unpack again.\n",
    )
    .at(&path)?;
    Ok(file)
}

/// Why a destination that is not empty cannot be unpacked into, in the words of what it
/// holds: a bundle a stopped unpack left (its [`UNFINISHED_FILE`] nobody holds), one being
/// unpacked now, or anything else.
fn not_empty(dest: &Path) -> String {
    unfinished(dest, "the destination")
        .unwrap_or_else(|| "the destination exists and is not empty".into())
}

/// What `bundle` (`what` in the message) is when an unpack into it has not finished: one
/// that was stopped (its [`UNFINISHED_FILE`] nobody holds) or one running now.
pub(crate) fn unfinished(bundle: &Path, what: &str) -> Option<String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(bundle.join(UNFINISHED_FILE))
        .ok()
        .filter(|file| file.metadata().is_ok_and(|m| m.is_file()))?;
    Some(if file.try_lock().is_ok() {
        format!(
            "{what} holds an unpack that did not finish (it was stopped: {UNFINISHED_FILE} is \
             still there): remove the directory and unpack again"
        )
    } else {
        format!("{what} is being unpacked into by another strata now")
    })
}

fn prepare_destination(dest: &Path, rootfs_only: bool) -> Result<Made> {
    match fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => {
            if fs::read_dir(dest).at(dest)?.next().is_some() {
                return Err(Error::Invalid {
                    what: dest.display().to_string(),
                    reason: not_empty(dest),
                });
            }
            let original = Original::of(dest, &meta);
            if !rootfs_only {
                fs::set_permissions(dest, fs::Permissions::from_mode(0o700)).at(dest)?;
            }
            Ok(Made::Contents(original))
        }
        Ok(_) => Err(Error::Invalid {
            what: dest.display().to_string(),
            reason: "the destination exists and is not a directory".into(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A rootfs-only target too: created as a bundle is (a failed unpack removes it again).
            fs::create_dir_all(dest).at(dest)?;
            // 0700: the rootfs may hold setuid binaries and devices other users must not reach.
            fs::set_permissions(dest, fs::Permissions::from_mode(0o700)).at(dest)?;
            Ok(Made::Dir)
        }
        Err(e) => Err(e).at(dest),
    }
}

/// Makes every directory under `path` owner-accessible, so a rootless unpack can remove
/// what it made even where a layer asked for mode 000.
fn loosen(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(
        path,
        fs::Permissions::from_mode(meta.permissions().mode() | 0o700),
    );
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            loosen(&entry.path());
        }
    }
}

fn discard(dest: &Path, made: Made) {
    loosen(dest);
    match made {
        Made::Dir => {
            let _ = fs::remove_dir_all(dest);
        }
        Made::Contents(original) => {
            if let Ok(entries) = fs::read_dir(dest) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        fs::remove_dir_all(&path)
                    } else {
                        fs::remove_file(&path)
                    };
                }
            }
            original.restore(dest);
        }
    }
}

fn write_bundle_files(
    dest: &Path,
    rootfs: &Path,
    layout: &Layout,
    reference: &Reference,
    resolved: &Resolved,
    config: &ImageConfig,
    options: &UnpackOptions,
) -> Result<()> {
    let runtime = runtime_config(
        config,
        rootfs,
        &RuntimeOptions {
            rootless: options.rootless,
            uid_map: options.uid_map.clone(),
            gid_map: options.gid_map.clone(),
        },
    )?;
    write_json(&dest.join("config.json"), &runtime)?;
    let mut descriptor_path: Vec<Descriptor> =
        resolved.indexes.iter().map(|(d, _, _)| d.clone()).collect();
    descriptor_path.push(resolved.descriptor.clone());
    let layout_path = fs::canonicalize(layout.root()).at(layout.root())?;
    let metadata = BundleMetadata {
        strata_bundle_version: 1,
        layout: layout_path,
        reference: reference.to_string(),
        tag: match &reference.target {
            crate::layout::reference::Target::Tag(t) => Some(t.clone()),
            _ => None,
        },
        descriptor_path,
        rootless: options.rootless,
        uid_map: options.uid_map.clone(),
        gid_map: options.gid_map.clone(),
    };
    write_json(&dest.join(METADATA_FILE), &metadata)?;
    Ok(())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(Error::bad_json(path.display()))?;
    bytes.push(b'\n');
    fs::write(path, bytes).at(path)
}
