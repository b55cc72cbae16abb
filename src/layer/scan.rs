//! Reading a stored layer blob once, as fsck does: the digest of its bytes, whether its
//! content is compressed as its media type says, the digests of its uncompressed stream (for
//! the config's diff_ids) and whether that stream reads as a tar unpack would apply. One pass
//! over the file, so a big layer costs one decompression.

use std::io::{self, Read};

use super::verify::{check_layer, decode_fault, Fault, ForeignLink};
use super::Compression;
use crate::digest::{Algorithm, Digest, Hasher, HashingReader};

/// What one pass over a layer blob found.
#[derive(Debug)]
pub struct Scan {
    /// The digest of the stored bytes.
    pub blob: Digest,
    /// Why the content is not what the media type declares (see [`Compression::mismatch`]);
    /// when set, nothing was decompressed.
    pub mismatch: Option<String>,
    /// The uncompressed stream's digest under each algorithm asked for, when it decompressed
    /// to its end.
    pub diff_ids: Vec<Digest>,
    /// Why the uncompressed stream is not a layer unpack applies (decompression or tar).
    pub broken: Option<Fault>,
    /// The hard links whose targets the layer does not define earlier (see
    /// [`super::verify::Checked`]): they must be in the layers below.
    pub foreign_links: Vec<ForeignLink>,
}

/// Scans `blob` (whose name is under `blob_alg`) declared `compression` by `media_type`,
/// hashing the uncompressed stream with each of `diff_algs`. Only reading `blob` itself
/// failing is an error; everything the content gets wrong is in the [`Scan`].
pub fn scan(
    blob: impl Read,
    blob_alg: Algorithm,
    compression: Compression,
    media_type: &str,
    diff_algs: &[Algorithm],
) -> io::Result<Scan> {
    let mut stored = HashingReader::new(blob, blob_alg);
    let mut head = Vec::with_capacity(Compression::SNIFF_LEN);
    (&mut stored)
        .take(Compression::SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    let mismatch = compression.mismatch(&head, media_type);
    let mut diff_ids = Vec::new();
    let mut broken = None;
    let mut foreign_links = Vec::new();
    if mismatch.is_none() {
        let mut source = Failing {
            inner: io::Cursor::new(&head).chain(&mut stored),
            error: None,
        };
        let outcome = {
            let decoder = compression.decoder(&mut source);
            match decoder {
                Err(e) => Err(decode_fault(compression, &e)),
                Ok(decoder) => {
                    let mut tar = MultiHashReader {
                        inner: decoder,
                        hashers: diff_algs.iter().map(|a| a.hasher()).collect(),
                    };
                    let checked = check_layer(&mut tar, compression);
                    // The diff_id covers whatever follows the end marker too.
                    let rest = checked.and_then(|checked| {
                        io::copy(&mut tar, &mut io::sink())
                            .map_err(|e| decode_fault(compression, &e))?;
                        Ok(checked)
                    });
                    rest.map(|checked| (tar.finish(), checked.foreign_links))
                }
            }
        };
        if let Some(e) = source.error.take() {
            return Err(e);
        }
        match outcome {
            Ok((ids, links)) => (diff_ids, foreign_links) = (ids, links),
            Err(why) => broken = Some(why),
        }
    }
    io::copy(&mut stored, &mut io::sink())?;
    let (blob, _, _) = stored.finish();
    Ok(Scan {
        blob,
        mismatch,
        diff_ids,
        broken,
        foreign_links,
    })
}

/// Keeps the stored file's own read error apart from the decoder's complaints, so a disk
/// error is not reported as corrupt content.
struct Failing<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R: Read> Read for Failing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = e.kind();
            let shown = e.to_string();
            self.error.get_or_insert(e);
            io::Error::new(kind, shown)
        })
    }
}

/// Hashes what passes through under several algorithms.
struct MultiHashReader<R> {
    inner: R,
    hashers: Vec<Hasher>,
}

impl<R> MultiHashReader<R> {
    fn finish(self) -> Vec<Digest> {
        self.hashers.into_iter().map(Hasher::finish).collect()
    }
}

impl<R: Read> Read for MultiHashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for h in &mut self.hashers {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::spec::media_type;

    fn tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "a", &b"abc"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    const SHA: &[Algorithm] = &[Algorithm::Sha256];

    #[test]
    fn a_good_gzip_layer() {
        let (tar, gz) = (tar(), gzip(&tar()));
        let s = scan(&gz[..], Algorithm::Sha256, Compression::Gzip, "m", SHA).unwrap();
        assert_eq!(s.blob, Digest::of_bytes(Algorithm::Sha256, &gz));
        assert_eq!(s.diff_ids, [Digest::of_bytes(Algorithm::Sha256, &tar)]);
        assert!(s.mismatch.is_none() && s.broken.is_none(), "{s:?}");
    }

    #[test]
    fn gzip_under_a_plain_media_type_is_a_mismatch() {
        let gz = gzip(&tar());
        let s = scan(
            &gz[..],
            Algorithm::Sha256,
            Compression::None,
            media_type::LAYER_TAR,
            SHA,
        )
        .unwrap();
        assert!(s.mismatch.unwrap().contains("content is gzip"));
        assert_eq!(s.blob, Digest::of_bytes(Algorithm::Sha256, &gz));
    }

    #[test]
    fn a_cut_tar_is_broken_and_trailing_bytes_count_in_the_diff_id() {
        let t = tar();
        let s = scan(&t[..600], Algorithm::Sha256, Compression::None, "m", SHA).unwrap();
        assert!(s.broken.is_some(), "{s:?}");
        let mut longer = t.clone();
        longer.extend_from_slice(&[0u8; 1024]);
        longer.extend_from_slice(b"junk");
        let s = scan(&longer[..], Algorithm::Sha256, Compression::None, "m", SHA).unwrap();
        assert!(s.broken.is_none(), "{s:?}");
        assert_eq!(s.diff_ids, [Digest::of_bytes(Algorithm::Sha256, &longer)]);
    }
}
