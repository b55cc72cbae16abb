//! Reading an archive as one stream, in whatever order its members come: the tar is never
//! unpacked by member names (those are checked by [`super::members`]); blobs go straight into
//! the staging layout, verified, docker layers are recompressed on other threads while the
//! stream is read on, and only the small JSON files are held in memory, capped, so a hostile
//! archive cannot exhaust it.

use std::cell::Cell;
use std::io::{self, BufReader, Cursor, Read, Write};
use std::rc::Rc;
use std::sync::mpsc;

use super::error::{Error, Result};
use super::graph::holds;
use super::members::{classify, normalize, MemberKind, Members, Stored};
use super::staging::holds_sound;
use crate::ioext::{read_full, ChannelReader};
use crate::layer::write::{write_layer, WrittenLayer};
use crate::layer::Compression;
use crate::layout::{Layout, JSON_LIMIT};
use crate::spec::BlobRef;

/// The largest `oci-layout` file read.
const LAYOUT_FILE_LIMIT: u64 = 64 << 10;
/// The most JSON held in memory at once, all members together (a hostile archive could
/// hold many configs just under the limit for one).
const BUFFERED_LIMIT: u64 = 4 * JSON_LIMIT;

/// Reads the archive `input` (plain, gzip- or zstd-compressed) to its end: blobs and docker
/// layers staged in `staging` (those `dest` already holds, sound, read past), JSON files
/// buffered.
/// `progress` is told the bytes read so far from `input`, before decompression, since only
/// that can be set against the archive's size.
pub(crate) fn read<R: Read>(
    input: R,
    staging: &Layout,
    dest: &Layout,
    compression: Compression,
    progress: &mut dyn FnMut(u64),
) -> Result<Members> {
    let read = Rc::new(Cell::new(0u64));
    let counted = Counting {
        inner: input,
        count: Rc::clone(&read),
    };
    read_members(
        open_archive(counted)?,
        staging,
        dest,
        compression,
        &mut || progress(read.get()),
    )
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
                if members.files.contains_key(&name)
                    || holds(staging, &blob)
                    || holds_sound(dest, &blob)
                {
                    // Already here and sound: the archive's copy is not needed. A damaged
                    // copy in the destination is hashed to tell, then replaced by this one.
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
