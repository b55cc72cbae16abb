//! Why one entry failed: refused (a rule of layer.md or of the rootfs boundary) or an I/O
//! error, kept apart until the caller names the layer and the entry in the error it reports.

use std::io;

use rustix::io::Errno;

use crate::error::Error;

pub(super) fn layer_error(layer: &str, entry: &str, reason: String) -> Error {
    Error::Layer {
        layer: layer.to_owned(),
        entry: entry.to_owned(),
        reason,
    }
}

pub(super) enum EntryError {
    Refused(String),
    Io(io::Error),
}

impl From<io::Error> for EntryError {
    fn from(e: io::Error) -> Self {
        EntryError::Io(e)
    }
}

impl From<Errno> for EntryError {
    fn from(e: Errno) -> Self {
        EntryError::Io(e.into())
    }
}

pub(super) type EntryResult<T> = std::result::Result<T, EntryError>;
