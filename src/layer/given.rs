//! Storing a layer file as given: a compressed layer's bytes go into the blob unchanged (so
//! its digest is the one its maker may already have published), while the decompressed
//! stream is hashed for the diff_id and checked by unpack's rules ([`super::verify`]) in the
//! same pass over one open file. The blob is published only once all of that passed; on any
//! failure its temp file is dropped and the layout is as it was.

use std::io::{self, Read, Write};
use std::path::Path;

use super::verify::{check_layer, decode_fault, Checked};
use super::write::WrittenLayer;
use super::Compression;
use crate::digest::{Algorithm, HashingReader};
use crate::error::{Error, Result};
use crate::layout::{BlobWriter, Layout};

/// The compression of the layer file at `path`, by its first bytes. An empty file is
/// refused: no tar (nor docker, nor any compressor) writes 0 bytes, so it is a mistake (a
/// truncated download, `/dev/null`), not an empty layer.
pub fn sniff_file(path: impl AsRef<Path>) -> Result<Compression> {
    let path = path.as_ref();
    let mut file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut head = [0u8; Compression::SNIFF_LEN];
    let n = crate::ioext::read_full(&mut file, &mut head).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    if n == 0 {
        return Err(Error::Invalid {
            what: path.display().to_string(),
            reason: "is empty: not a tar layer".into(),
        });
    }
    if let Some(compressor) = Compression::foreign(&head[..n]) {
        return Err(Error::Invalid {
            what: path.display().to_string(),
            reason: format!(
                "is {compressor}-compressed: a layer is a tar, plain or compressed with gzip or zstd; decompress it first"
            ),
        });
    }
    Ok(Compression::sniff(&head[..n]))
}

/// Stores the layer file at `path`: a compressed one as given, a plain tar compressed with
/// `plain` (both checked by unpack's rules before the blob is published). `settle` sees what
/// the check found (the hard links the layer leaves to the layers below) and may still
/// refuse the layer, before anything is published.
pub fn store_file(
    layout: &Layout,
    path: impl AsRef<Path>,
    plain: Compression,
    settle: impl FnOnce(&Checked) -> Result<()>,
) -> Result<WrittenLayer> {
    let path = path.as_ref();
    let what = path.display().to_string();
    let open = || {
        std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
    };
    match sniff_file(path)? {
        Compression::None => {
            let checked = check_layer(open()?, Compression::None).map_err(|f| f.of_file(&what))?;
            settle(&checked)?;
            super::write::write_layer(layout, plain, |w| {
                io::copy(&mut open()?, w).map_err(|source| Error::Io {
                    path: path.to_owned(),
                    source,
                })?;
                Ok(())
            })
        }
        compression => store_compressed(layout, open()?, compression, &what, settle),
    }
}

/// Settles the hard links the layer file at `path` leaves to the layers below (`checked`
/// found them) on the merged tree of `below`'s layers, as unpack would meet them: each must
/// name something there that is not a directory. Reads nothing when there are none.
pub fn links_below(
    layout: &Layout,
    below: &crate::spec::Manifest,
    path: &Path,
    checked: &Checked,
) -> Result<()> {
    if checked.foreign_links.is_empty() {
        return Ok(());
    }
    let mut tree = crate::image::tree::Tree::of(layout, below)?;
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let what = path.display().to_string();
    let compression = sniff_file(path)?;
    let decoder = compression
        .decoder(io::BufReader::new(file))
        .map_err(|e| decode_fault(compression, &e).of_file(&what))?;
    tree.apply_unstored(&mut super::tarstream::TarStream::new(decoder), &what)
}

/// Stores `input`, a layer compressed with `compression` (`what` names it in errors), byte
/// for byte as a layer blob with the matching media type (`settle` as for [`store_file`]).
pub fn store_compressed(
    layout: &Layout,
    input: impl Read,
    compression: Compression,
    what: &str,
    settle: impl FnOnce(&Checked) -> Result<()>,
) -> Result<WrittenLayer> {
    let mut blob = layout.blob_writer(Algorithm::Sha256)?;
    let mut tee = Tee {
        input,
        copy: &mut blob,
        write_error: None,
    };
    let checked = check_decompressed(&mut tee, compression, what);
    if let Some(source) = tee.write_error.take() {
        return Err(Error::Io {
            path: layout.root().join(crate::layout::TMP_DIR),
            source,
        });
    }
    let (diff_id, checked) = checked?;
    // The decoder stops at the end of the compressed stream: bytes after it would be in
    // the blob but in no layer a peer reads, so they are refused rather than stored.
    let mut rest = [0u8; 1];
    let trailing = tee
        .read(&mut rest)
        .map_err(|e| decode_fault(compression, &e).of_file(what))?;
    if trailing != 0 {
        return Err(Error::Invalid {
            what: what.to_owned(),
            reason: format!("data follows the end of its {} stream", compression.name()),
        });
    }
    settle(&checked)?;
    Ok(WrittenLayer {
        blob: blob.finish()?,
        diff_id,
        media_type: compression.media_type(),
    })
}

/// Decompresses `raw`, checks the tar and hashes the whole decompressed stream (past the
/// tar's end-of-archive blocks too: the diff_id covers every byte).
fn check_decompressed(
    raw: &mut impl Read,
    compression: Compression,
    what: &str,
) -> Result<(crate::digest::Digest, Checked)> {
    let fault = |e: io::Error| decode_fault(compression, &e).of_file(what);
    let decoder = compression.decoder(raw).map_err(fault)?;
    let mut tar = HashingReader::new(decoder, Algorithm::Sha256);
    let checked = check_layer(&mut tar, compression).map_err(|f| f.of_file(what))?;
    io::copy(&mut tar, &mut io::sink()).map_err(fault)?;
    // As an empty file: a tar, even of nothing, is at least its end-of-archive blocks.
    if tar.count() == 0 {
        return Err(Error::Invalid {
            what: what.to_owned(),
            reason: format!(
                "decompresses ({}) to nothing: not a tar layer",
                compression.name()
            ),
        });
    }
    Ok((tar.digest(), checked))
}

/// Copies what is read from `input` into the blob being written.
struct Tee<'b, 'l, R> {
    input: R,
    copy: &'b mut BlobWriter<'l>,
    /// A failed blob write, told apart from a bad input.
    write_error: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        if let Err(e) = self.copy.write_all(&buf[..n]) {
            let shown = io::Error::new(e.kind(), e.to_string());
            self.write_error = Some(e);
            return Err(shown);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "hello.txt", &b"hello"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn stores_the_given_bytes_and_hashes_the_tar() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::init(dir.path().join("l")).unwrap();
        let tar = tar();
        for (compression, bytes) in [
            (Compression::Gzip, gzip(&tar)),
            (Compression::Zstd, zstd::encode_all(&tar[..], 19).unwrap()),
        ] {
            let written =
                store_compressed(&layout, &bytes[..], compression, "x", |_| Ok(())).unwrap();
            assert_eq!(
                written.blob.digest,
                Digest::of_bytes(Algorithm::Sha256, &bytes)
            );
            assert_eq!(written.blob.size, bytes.len() as u64);
            assert_eq!(written.diff_id, Digest::of_bytes(Algorithm::Sha256, &tar));
            assert_eq!(written.media_type, compression.media_type());
            let stored = std::fs::read(layout.blob_path(&written.blob.digest)).unwrap();
            assert_eq!(stored, bytes);
        }
    }

    #[test]
    fn refuses_trailing_bytes_and_corruption_without_publishing() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::init(dir.path().join("l")).unwrap();
        let good = gzip(&tar());
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"junk");
        let mut corrupt = good.clone();
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 0xff;
        let truncated = good[..good.len() - 6].to_vec();
        for bytes in [trailing, corrupt, truncated] {
            let e = store_compressed(
                &layout,
                &bytes[..],
                Compression::Gzip,
                "bad.tgz",
                |_| Ok(()),
            );
            assert!(e.unwrap_err().to_string().contains("bad.tgz"));
            let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
            assert!(!layout.has_blob(&digest));
        }
    }
}
