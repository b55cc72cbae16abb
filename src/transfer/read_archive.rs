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
use super::members::{by_content, classify, normalize, MemberKind, Members, Stored, SNIFF_LEN};
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
/// The most bytes of member names (and link targets) kept, all members together: every
/// member's name is held until the stream ends, and a compressed archive of millions of
/// tiny members with long names would otherwise fill memory. Real archives hold a few
/// hundred names.
const NAMES_LIMIT: u64 = 16 << 20;

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

/// The archive's tar stream: `input` decompressed if it is gzip or zstd, buffered.
fn open_archive<'a, R: Read + 'a>(mut input: R) -> Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 4];
    let n = read_full(&mut input, &mut head)
        .map_err(|e| Error::Archive(format!("reading the archive: {e}")))?;
    let stream = Cursor::new(head[..n].to_vec()).chain(input);
    let decoded = Compression::sniff(&head[..n])
        .decoder(stream)
        .map_err(|e| Error::Archive(format!("reading the archive: {e}")))?;
    Ok(Box::new(BufReader::with_capacity(
        1 << 20,
        HeaderGuard::new(decoded),
    )))
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
    let mut names = 0u64;
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        any = true;
        let name = normalize(&entry.path_bytes())?;
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        names += (name.len() + link.as_ref().map_or(0, |l| l.len())) as u64;
        if names > NAMES_LIMIT {
            return Err(Error::member(
                &name,
                format!(
                    "the archive's member names add up to over {NAMES_LIMIT} bytes: \
                     not an image archive"
                ),
            ));
        }
        let size = entry.size();
        let mut kind = classify(&name, entry.header().entry_type(), link.as_deref())?;
        // A member whose name says nothing is judged by its first bytes, which are then
        // read again ahead of the rest: nothing but the head is held.
        let mut head = Vec::new();
        let sniffed = kind == MemberKind::Unknown;
        if sniffed {
            head.resize(SNIFF_LEN.min(size as usize), 0);
            let n = read_full(&mut entry, &mut head).map_err(|e| {
                Error::Archive(format!(
                    "the archive is damaged or cut short: reading member {name:?}: {e}"
                ))
            })?;
            head.truncate(n);
            kind = by_content(&head, size);
        }
        let mut entry = Cursor::new(head).chain(&mut entry);
        // A tar tool extracting the archive keeps a member's last copy, and this reader
        // would keep its first: two copies of one name are refused rather than either taken
        // silently (hashing a second blob copy to accept it when identical would serve no
        // archive a tool writes).
        let kept = !matches!(
            kind,
            MemberKind::Dir | MemberKind::Ignored | MemberKind::Unknown | MemberKind::Alias(_)
        );
        if kept && members.files.contains_key(&name) {
            return Err(Error::member(&name, "appears twice in the archive"));
        }
        match kind {
            MemberKind::Dir | MemberKind::Ignored | MemberKind::Unknown => {
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
                if holds(staging, &blob) || holds_sound(dest, &blob) {
                    // Already here and sound: the archive's copy is not needed. A damaged
                    // copy in the destination is hashed to tell, then replaced by this one.
                    copy_member(&mut entry, &mut io::sink(), &name, size, tick)?;
                } else {
                    stage_blob(&mut entry, &name, &blob, staging, tick)?;
                }
                members.files.insert(name, Stored::Blob(blob));
            }
            MemberKind::DockerLayer => {
                match stage_layer(&mut entry, &name, size, staging, compression, tick) {
                    Ok(layer) => {
                        members.files.insert(name, Stored::Layer(layer));
                    }
                    // Only its first bytes made it a layer: unless manifest.json names it
                    // (then the reason is given), it is a stray file like any other. A
                    // damaged archive stream still fails the import.
                    Err(e) if sniffed && !matches!(e, Error::Archive(_)) => {
                        members.unreadable.insert(name.clone(), e.to_string());
                        members.ignored.push(name);
                    }
                    Err(e) => return Err(e),
                }
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
                let mut decoded = Compression::sniff(&head[..n])
                    .decoder(stream)
                    .map_err(fail)?;
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

/// The longest GNU long name or long link target read (`PATH_MAX` is 4096; no image archive
/// comes near this).
const LONG_NAME_LIMIT: u64 = 64 << 10;
/// The largest PAX extended header read (names, times, xattrs of one member).
const PAX_LIMIT: u64 = 1 << 20;

/// Follows the tar stream's headers ahead of the `tar` crate, refusing a GNU long name, long
/// link or PAX header whose declared size is over its limit: the crate reads those whole into
/// memory before it hands out the member, so a compressed archive declaring a 10 GB long name
/// (a few MB of gzip) would exhaust memory before any check of ours could run. Headers are
/// located exactly as the crate does (a PAX `size` overrides the next member's header);
/// anything the crate itself refuses (a bad checksum) or that ends the archive (a zero block)
/// turns the guard into a plain pass-through.
struct HeaderGuard<R> {
    inner: R,
    state: GuardState,
    header: [u8; 512],
    /// A PAX header's bytes, while being read.
    pax: Vec<u8>,
    /// The size the last PAX header gave the next member.
    pax_size: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GuardState {
    /// This many bytes of the next header are in `header`.
    Header(usize),
    /// A member's content: `left` bytes, then `pad` to the block; `pax` if kept for its size.
    Data { left: u64, pad: u64, pax: bool },
    /// The stream is past what the guard follows.
    Through,
}

impl<R: Read> HeaderGuard<R> {
    fn new(inner: R) -> Self {
        HeaderGuard {
            inner,
            state: GuardState::Header(0),
            header: [0; 512],
            pax: Vec::new(),
            pax_size: None,
        }
    }

    /// Advances over `bytes`, just read from the stream.
    fn follow(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.state {
                GuardState::Through => return Ok(()),
                GuardState::Header(filled) => {
                    let n = (512 - filled).min(bytes.len());
                    self.header[filled..filled + n].copy_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    self.state = GuardState::Header(filled + n);
                    if filled + n == 512 {
                        self.state = self.next_member()?;
                    }
                }
                GuardState::Data { left, pad, pax } => {
                    let n = (left + pad).min(bytes.len() as u64);
                    if pax && left > 0 {
                        let data = n.min(left) as usize;
                        self.pax.extend_from_slice(&bytes[..data]);
                    }
                    bytes = &bytes[n as usize..];
                    let (left, pad) = if n <= left {
                        (left - n, pad)
                    } else {
                        (0, pad - (n - left))
                    };
                    self.state = GuardState::Data { left, pad, pax };
                    if pax && left == 0 {
                        self.pax_size = pax_size(&self.pax);
                        self.pax.clear();
                        self.state = GuardState::Data {
                            left,
                            pad,
                            pax: false,
                        };
                    }
                    if left == 0 && pad == 0 {
                        self.state = GuardState::Header(0);
                    }
                }
            }
        }
        Ok(())
    }

    /// The state after a whole header, as the `tar` crate reads it.
    fn next_member(&mut self) -> io::Result<GuardState> {
        if self.header.iter().all(|&b| b == 0) {
            return Ok(GuardState::Through); // the end of the archive
        }
        let header = tar::Header::from_byte_slice(&self.header);
        let sum = self.header[..148]
            .iter()
            .chain(&self.header[156..])
            .fold(8 * 32u32, |a, &b| a + b as u32);
        let Ok(size) = header.entry_size() else {
            return Ok(GuardState::Through);
        };
        if header.cksum().ok() != Some(sum) {
            return Ok(GuardState::Through);
        }
        let kind = header.entry_type();
        let recognised = header.as_gnu().is_some() || header.as_ustar().is_some();
        let refuse = |what: &str, limit: u64| {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "member {:?} declares a {size}-byte {what}, over the {limit}-byte limit",
                    String::from_utf8_lossy(&header.path_bytes())
                ),
            ))
        };
        if kind.is_gnu_longname() || kind.is_gnu_longlink() {
            if size > LONG_NAME_LIMIT {
                return refuse("long name", LONG_NAME_LIMIT);
            }
        } else if kind.is_pax_local_extensions() {
            if size > PAX_LIMIT {
                return refuse("PAX header", PAX_LIMIT);
            }
        } else if kind.is_gnu_sparse() {
            // The crate reads a sparse member's extension blocks itself; no image archive
            // has one (they are refused as members anyway).
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "member {:?} is a GNU sparse file, which has no place in an image archive",
                    String::from_utf8_lossy(&header.path_bytes())
                ),
            ));
        }
        let pax = recognised && kind.is_pax_local_extensions();
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        let mut size = size;
        if !extension {
            if let Some(pax_size) = self.pax_size {
                size = pax_size;
            }
        }
        // The crate keeps a PAX header for the next member it hands out (long names and
        // further PAX headers are read past on the way).
        let handed_out = !(recognised && (kind.is_gnu_longname() || kind.is_gnu_longlink() || pax));
        if handed_out {
            self.pax_size = None;
        }
        let Some(rounded) = size.checked_add(511) else {
            return Ok(GuardState::Through); // the crate refuses it
        };
        let pad = (rounded & !511) - size;
        Ok(if size == 0 && pad == 0 {
            GuardState::Header(0)
        } else {
            GuardState::Data {
                left: size,
                pad,
                pax,
            }
        })
    }
}

/// The `size` a PAX header gives its member, read as the `tar` crate reads it (the first
/// `size` record; a malformed one means none).
fn pax_size(pax: &[u8]) -> Option<u64> {
    for record in tar::PaxExtensions::new(pax) {
        let record = record.ok()?;
        if record.key() != Ok("size") {
            continue;
        }
        return record.value().ok()?.parse().ok();
    }
    None
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.follow(&buf[..n])?;
        Ok(n)
    }
}
