//! Blob I/O. Writes stream into a temp file under `.strata-tmp/`, are hashed on the way,
//! fsynced and only then renamed into `blobs/`, so a blob is never visible half-written or
//! under a wrong name. Reads are checked against the descriptor's size and digest as they
//! are consumed; a short, long or altered blob is an error naming the digest.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use tempfile::NamedTempFile;

use super::nofollow::{open_file, Refused};
use super::{set_readable, sync_dir, Layout};
use crate::digest::{Algorithm, Digest, HashingReader, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::ioext::EarlyWriteback;
use crate::spec::BlobRef;

/// The largest JSON document (manifest, index, config) strata reads into memory. Registries
/// cap manifests at 4 MiB; configs with long histories are larger but far below this.
pub const JSON_LIMIT: u64 = 64 << 20;

/// A read buffer starting on a page boundary: the kernel copies from the page cache into a
/// page-aligned buffer about 40% faster than into one 16 bytes in (what a large `Vec`
/// gets from malloc), which is the difference between hashing above or below 1 GB/s.
pub(crate) struct AlignedBuffer {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedBuffer {
    pub(crate) fn new(len: usize) -> AlignedBuffer {
        const PAGE: usize = 4096;
        let storage = vec![0u8; len + PAGE];
        let offset = storage.as_ptr().align_offset(PAGE).min(PAGE);
        AlignedBuffer {
            storage,
            offset,
            len,
        }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.offset..self.offset + self.len]
    }
}

/// A blob being written. Call [`BlobWriter::finish`] or [`BlobWriter::finish_expecting`];
/// dropping it discards the temp file.
pub struct BlobWriter<'a> {
    layout: &'a Layout,
    out: HashingWriter<BufWriter<EarlyWriteback<NamedTempFile>>>,
}

/// Writing blobs directly: nothing references a new blob until a tag or an index entry
/// does, and `gc` sweeps unreferenced blobs, so hold [`Layout::lock_gc`] shared from the first
/// blob written until `index.json` names what was written (as [`crate::image::mutate::Draft`],
/// `image::artifact::push`, `image::multiplatform` and `transfer` do).
impl Layout {
    /// Starts writing a blob hashed with `algorithm` (see the note on the gc lock above).
    pub fn blob_writer(&self, algorithm: Algorithm) -> Result<BlobWriter<'_>> {
        let tmp = self.in_tmp(|dir| {
            tempfile::Builder::new()
                .prefix(&super::temp_prefix("blob"))
                .tempfile_in(dir)
        })?;
        super::hold_temp(tmp.as_file(), tmp.path())?;
        Ok(BlobWriter {
            layout: self,
            out: HashingWriter::new(
                BufWriter::with_capacity(crate::ioext::FILE_WRITE_MAX, EarlyWriteback::new(tmp)),
                algorithm,
            ),
        })
    }

    /// Writes `bytes` as a sha256 blob and returns its digest and size (see the note on the
    /// gc lock above).
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef> {
        let mut w = self.blob_writer(Algorithm::Sha256)?;
        w.write_all(bytes).map_err(|source| Error::Io {
            path: self.tmp_dir().unwrap_or_default(),
            source,
        })?;
        w.finish()
    }

    /// True when the blob is a regular file (a link or a FIFO under its name is no blob).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        fs::symlink_metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file())
    }

    /// Opens a blob's file for reading, refusing to follow a link anywhere below the layout
    /// and refusing anything but a regular file, with an error that says which it is.
    pub(crate) fn open_blob_file(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        let hex = digest.hex();
        let components = ["blobs", digest.algorithm().name(), hex];
        open_file(&self.root, &components).map_err(|refused| match refused {
            Refused::Missing(_) => Error::BlobNotFound {
                digest: digest.clone(),
                path,
            },
            Refused::Io(path, source) => Error::Io { path, source },
            Refused::Symlink(link) if link == path => Error::BlobRefused {
                digest: digest.clone(),
                reason: "is a symbolic link, not a regular file (strata never follows links \
                         inside a layout)"
                    .into(),
                path,
            },
            other => Error::BlobRefused {
                digest: digest.clone(),
                reason: other.reason(),
                path: other.path().to_owned(),
            },
        })
    }

    /// The error that explains why `blob` cannot be read from this layout: what opening it
    /// says (a link, a FIFO, permission denied, a wrong size), else "not found".
    pub fn blob_error(&self, blob: &BlobRef) -> Error {
        match self.open_blob(blob) {
            Err(e) => e,
            Ok(_) => Error::BlobNotFound {
                digest: blob.digest.clone(),
                path: self.blob_path(&blob.digest),
            },
        }
    }

    /// Opens the blob named `digest` for a read verified against its digest, at the size the
    /// file has (for a blob no descriptor describes: `strata blob LAYOUT@DIGEST`).
    pub fn open_blob_by_digest(&self, digest: &Digest) -> Result<BlobReader> {
        let path = self.blob_path(digest);
        let size = self.open_blob_file(digest)?.metadata().at(&path)?.len();
        self.open_blob(&BlobRef {
            digest: digest.clone(),
            size,
        })
    }

    /// Opens a blob for a verified read against `expected` (digest and size).
    pub fn open_blob(&self, expected: &BlobRef) -> Result<BlobReader> {
        let path = self.blob_path(&expected.digest);
        let file = self.open_blob_file(&expected.digest)?;
        // The file length is known up front: refuse a wrong size before hashing anything.
        let actual = file.metadata().at(&path)?.len();
        if actual != expected.size {
            return Err(Error::SizeMismatch {
                digest: expected.digest.clone(),
                expected: expected.size,
                actual,
                path,
            });
        }
        Ok(BlobReader {
            inner: HashingReader::new(file.take(expected.size + 1), expected.digest.algorithm()),
            expected: expected.clone(),
            path,
            verified: false,
        })
    }

    /// Reads a whole blob into memory, verified, refusing blobs over `limit` bytes.
    pub fn read_blob(&self, expected: &BlobRef, limit: u64, what: &'static str) -> Result<Vec<u8>> {
        if expected.size > limit {
            return Err(Error::TooLarge {
                digest: expected.digest.clone(),
                size: expected.size,
                limit,
                what,
            });
        }
        let mut reader = self.open_blob(expected)?;
        let mut bytes = Vec::with_capacity(expected.size as usize);
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| reader.explain(e))?;
        Ok(bytes)
    }

    /// Hashes a stored blob in full and checks it against `expected`.
    pub fn verify_blob(&self, expected: &BlobRef) -> Result<()> {
        let mut reader = self.open_blob(expected)?;
        let mut buffer = AlignedBuffer::new(1 << 20);
        let buf = buffer.as_mut_slice();
        loop {
            match reader.read(buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(reader.explain(e)),
            }
        }
    }
}

impl BlobWriter<'_> {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.out.count()
    }

    /// Publishes the blob under the digest of what was written.
    pub fn finish(self) -> Result<BlobRef> {
        self.publish(None)
    }

    /// Publishes the blob only if what was written has exactly `expected`'s digest and size;
    /// otherwise the temp file is discarded and the mismatch reported.
    pub fn finish_expecting(self, expected: &BlobRef) -> Result<BlobRef> {
        self.publish(Some(expected))
    }

    fn publish(self, expected: Option<&BlobRef>) -> Result<BlobRef> {
        let (digest, size, buffered) = self.out.finish();
        let tmp = buffered
            .into_inner()
            .map_err(|e| Error::Io {
                path: self.layout.root().join(super::TMP_DIR),
                source: e.into_error(),
            })?
            .into_inner();
        if let Some(expected) = expected {
            let path = tmp.path().to_owned();
            if digest != expected.digest {
                return Err(Error::DigestMismatch {
                    digest: expected.digest.clone(),
                    actual: digest,
                    path,
                });
            }
            if size != expected.size {
                return Err(Error::SizeMismatch {
                    digest: expected.digest.clone(),
                    expected: expected.size,
                    actual: size,
                    path,
                });
            }
        }
        set_readable(tmp.as_file(), tmp.path())?;
        tmp.as_file().sync_all().at(tmp.path())?;
        let target = self.layout.blob_path(&digest);
        let dir = target
            .parent()
            .expect("blob paths have a parent")
            .to_owned();
        fs::create_dir_all(&dir).at(&dir)?;
        // Not following a link: a link under this name is replaced, not trusted.
        match fs::symlink_metadata(&target) {
            // Content-addressed: a file of the right size under this name is this content
            // (fsck checks the rest); keep it, so concurrent writers of one blob agree.
            Ok(meta) if meta.is_file() && meta.len() == size => {
                return Ok(BlobRef { digest, size })
            }
            _ => {}
        }
        tmp.persist(&target).map_err(|e| e.error).at(&target)?;
        sync_dir(&dir)?;
        Ok(BlobRef { digest, size })
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A write as large as the buffer goes straight to the file: capped like every file
        // write (see crate::ioext::FILE_WRITE_MAX).
        self.out
            .write(&buf[..buf.len().min(crate::ioext::FILE_WRITE_MAX)])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A verified reader of one blob: it fails with [`io::ErrorKind::InvalidData`] when the blob
/// turns out longer than expected or, at end of file, when the digest does not match.
/// Read it to EOF; [`BlobReader::explain`] turns its errors back into [`Error`]s.
pub struct BlobReader {
    inner: HashingReader<io::Take<File>>,
    expected: BlobRef,
    path: PathBuf,
    verified: bool,
}

impl BlobReader {
    /// The blob this reader reads.
    pub fn blob(&self) -> &BlobRef {
        &self.expected
    }

    /// Converts an error from `read` into the library error that names this blob.
    pub fn explain(&self, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::InvalidData {
            if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<Mismatch>()) {
                return inner.to_error(&self.expected, &self.path);
            }
        }
        Error::Io {
            path: self.path.clone(),
            source: e,
        }
    }

    /// True once EOF was reached and the content matched.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    fn check_at_eof(&mut self) -> io::Result<()> {
        let count = self.inner.count();
        if count != self.expected.size {
            return Err(Mismatch::Size(count).into_io());
        }
        let actual = self.inner.digest();
        if actual != self.expected.digest {
            return Err(Mismatch::Digest(actual).into_io());
        }
        self.verified = true;
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if self.inner.count() > self.expected.size {
            return Err(Mismatch::Size(self.inner.count()).into_io());
        }
        if n == 0 && !buf.is_empty() {
            self.check_at_eof()?;
        }
        Ok(n)
    }
}

#[derive(Debug)]
enum Mismatch {
    Size(u64),
    Digest(Digest),
}

impl Mismatch {
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    fn to_error(&self, expected: &BlobRef, path: &std::path::Path) -> Error {
        match self {
            Mismatch::Size(actual) => Error::SizeMismatch {
                digest: expected.digest.clone(),
                expected: expected.size,
                actual: *actual,
                path: path.to_owned(),
            },
            Mismatch::Digest(actual) => Error::DigestMismatch {
                digest: expected.digest.clone(),
                actual: actual.clone(),
                path: path.to_owned(),
            },
        }
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Size(n) => write!(f, "blob size mismatch: read {}", crate::words::bytes(*n)),
            Mismatch::Digest(d) => write!(f, "blob digest mismatch: content hashes to {d}"),
        }
    }
}

impl std::error::Error for Mismatch {}
