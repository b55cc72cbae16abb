//! The errors of moving images: those of the store, plus what an archive or a destination can
//! get wrong. Each names the archive member, blob, tag or layout at fault.

use crate::words::plural;
use std::path::PathBuf;

use crate::spec::BlobRef;

/// What went wrong in an export, import or copy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the layout store (I/O, a corrupt or missing blob, bad JSON, ...).
    #[error(transparent)]
    Layout(#[from] crate::Error),
    /// An archive member that is refused: a hostile name or type, a blob whose content does
    /// not match its name, a member cut short.
    #[error("archive member {member:?}: {reason}")]
    Member {
        /// The member's name as the archive gives it.
        member: String,
        /// Why it is refused.
        reason: String,
    },
    /// The archive is not a readable tar, or ends in the middle of one.
    #[error("{0}")]
    Archive(String),
    /// A docker `manifest.json` or OCI `index.json` in the archive that cannot be used.
    #[error("{what} in the archive: {reason}")]
    BadArchive {
        /// The document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The images' graphs are incomplete: blobs neither in the archive (or source) nor in the
    /// destination. An incremental archive imported into a layout it was not made for.
    #[error("{layout} lacks {} that the images need and {from} does not hold: {}", plural(blobs.len(), "blob", "blobs"), list(blobs))]
    MissingBlobs {
        /// The destination layout.
        layout: PathBuf,
        /// Where the blobs were expected ("the archive", a source layout).
        from: String,
        /// The blobs.
        blobs: Vec<BlobRef>,
    },
    /// Tags that already name other images in the destination.
    #[error(
        "{} in {layout}, and existing tags are moved only when asked",
        describe(clashes)
    )]
    TagsExist {
        /// The destination layout.
        layout: PathBuf,
        /// (tag, digest it names now, digest it would name).
        clashes: Vec<(String, String, String)>,
    },
    /// One tag was given for what an archive holds, but it holds several images.
    #[error("one tag names one image, but the archive holds {images}")]
    OneTagForMany {
        /// How many images the archive holds.
        images: usize,
    },
    /// A request this format or these images cannot satisfy.
    #[error("{0}")]
    Unsupported(String),
}

fn list(blobs: &[BlobRef]) -> String {
    blobs
        .iter()
        .map(|b| format!("{} ({})", b.digest, crate::words::bytes(b.size)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(clashes: &[(String, String, String)]) -> String {
    clashes
        .iter()
        .map(|(tag, now, new)| format!("tag {tag:?} already names {now} (not {new})"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub(crate) fn member(member: &str, reason: impl Into<String>) -> Error {
        Error::Member {
            member: member.to_owned(),
            reason: reason.into(),
        }
    }

    /// A layout error about a document of the archive (`what`), as one of the archive's:
    /// named with the archive where the CLI knows it.
    pub(crate) fn in_archive(what: &str, e: crate::Error) -> Error {
        let reason = match e {
            crate::Error::BadJson { error, .. } => crate::words::json_reason(&error),
            crate::Error::Invalid { reason, .. } => reason,
            other => return other.into(),
        };
        Error::BadArchive {
            what: what.to_owned(),
            reason,
        }
    }

    pub(crate) fn bad_blob(member: &str, source: crate::Error) -> Error {
        // Writing it into the layout failed (a full disk): the member is not at fault.
        if let crate::Error::Io { .. } = source {
            return Error::Layout(source);
        }
        Error::Member {
            member: member.to_owned(),
            reason: source.to_string(),
        }
    }
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
