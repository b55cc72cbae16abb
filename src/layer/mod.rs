//! Layers: their compression, applying a layer's tar stream to a rootfs ([`apply`]), and
//! building layers from trees ([`build`], [`mod@write`]).

pub mod apply;
pub mod build;
pub mod given;
pub mod names;
pub mod pax;
mod pgzip;
pub(crate) mod root;
pub mod scan;
pub mod source;
pub mod tarstream;
pub mod verify;
pub mod write;

pub use root::{force_userspace_resolution, resolution as path_resolution};

use std::io::{self, BufReader, Read};

use crate::spec::media_type;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (possibly several members).
    Gzip,
    /// zstd (possibly several frames).
    Zstd,
}

impl Compression {
    /// The compression a layer media type declares; `None` for media types that are not
    /// tar layers strata can apply.
    pub fn of_layer(mt: &str) -> Option<Compression> {
        match mt {
            media_type::LAYER_TAR | media_type::LAYER_ND_TAR => Some(Compression::None),
            media_type::LAYER_TAR_GZIP
            | media_type::LAYER_ND_TAR_GZIP
            | media_type::DOCKER_LAYER_GZIP => Some(Compression::Gzip),
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
            media_type::LAYER_TAR_ZSTD | media_type::LAYER_ND_TAR_ZSTD => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// What `head`, a blob's first bytes, says its compression is: gzip by its magic
    /// `1f 8b`, zstd by a frame's magic `28 b5 2f fd` or a skippable frame's (`5? 2a 4d 18`,
    /// which a zstd decoder reads past); anything else is taken as not compressed.
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            [b, 0x2a, 0x4d, 0x18, ..] if b & 0xf0 == 0x50 => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// The compressor whose magic `head` starts with, among those no layer media type
    /// allows (bzip2, xz, lz4): such a file would otherwise be read as a plain tar and
    /// refused as one whose first header does not parse.
    pub fn foreign(head: &[u8]) -> Option<&'static str> {
        match head {
            [b'B', b'Z', b'h', ..] => Some("bzip2"),
            [0xfd, b'7', b'z', b'X', ..] => Some("xz"),
            [0x04, 0x22, 0x4d, 0x18, ..] => Some("lz4"),
            _ => None,
        }
    }

    /// How many leading bytes [`Compression::sniff`] needs.
    pub const SNIFF_LEN: usize = 4;

    /// Why a layer whose content starts with `head` cannot be read as `media_type` (which
    /// declares `self`), or `None` when they agree. An empty blob is left to the decoder.
    pub fn mismatch(self, head: &[u8], media_type: &str) -> Option<String> {
        let found = Compression::sniff(head);
        if head.is_empty() || found == self {
            return None;
        }
        let content = match (found, Compression::foreign(head)) {
            (Compression::None, Some(compressor)) => compressor,
            (Compression::None, None) => "neither gzip nor zstd",
            (other, _) => other.name(),
        };
        Some(format!(
            "the content is {content} but the media type says {} ({media_type})",
            self.name()
        ))
    }

    /// How messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "plain tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// Wraps a reader of the stored blob in a decompressor.
    pub fn decoder<'a, R: Read + 'a>(self, blob: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(blob),
            // Multi-member: pigz/BGZF/estargz write several gzip members; GzDecoder would
            // silently stop after the first. The bufread decoder reads straight from our
            // buffer (the read one would put a 32 KiB buffer of its own behind it).
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
                BufReader::with_capacity(1 << 17, blob),
            )),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(blob)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(
            Compression::sniff(&[0x5e, 0x2a, 0x4d, 0x18]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"etc/"), Compression::None);
        assert_eq!(Compression::sniff(&[0x1f]), Compression::None);
        let gz = [0x1f, 0x8b, 8, 0];
        let msg = Compression::None
            .mismatch(&gz, media_type::LAYER_TAR)
            .unwrap();
        assert_eq!(
            msg,
            "the content is gzip but the media type says plain tar (application/vnd.oci.image.layer.v1.tar)"
        );
        assert!(Compression::Gzip
            .mismatch(&gz, media_type::LAYER_TAR_GZIP)
            .is_none());
        assert!(Compression::Gzip
            .mismatch(b"", media_type::LAYER_TAR_GZIP)
            .is_none());
        assert!(Compression::Zstd
            .mismatch(b"abcd", "x")
            .unwrap()
            .contains("neither"));
    }
}
