//! Layers: their compression, applying a layer's tar stream to a rootfs ([`apply`]), and
//! building layers from trees ([`build`], [`mod@write`]).

pub mod apply;
pub mod build;
pub mod names;
pub mod pax;
mod pgzip;
pub(crate) mod root;
pub mod source;
pub mod tarstream;
pub mod verify;
pub mod write;

pub use root::{force_userspace_resolution, resolution as path_resolution};

use std::io::{self, BufReader, Read};

use crate::spec::media_type;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// The compression a stream starts with, by its magic number (gzip `1f 8b`, zstd
    /// `28 b5 2f fd`); anything else is taken as a plain tar. Four bytes are enough.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Wraps a reader of the stored blob in a decompressor.
    pub fn decoder<'a, R: Read + 'a>(self, blob: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(blob),
            // Multi-member: pigz/BGZF/estargz write several gzip members; GzDecoder would
            // silently stop after the first.
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                BufReader::with_capacity(1 << 17, blob),
            )),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(blob)?),
        })
    }
}
