//! The library's error type. Every variant that concerns a file, blob or tag names it, so the
//! CLI can print one line that tells the user what is at fault.

use std::io;
use std::path::PathBuf;

use crate::digest::{Digest, DigestError};
use crate::spec::DescriptorError;

/// What went wrong in a layout operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a named file.
    #[error("{path}: {}", crate::words::io_reason(.source))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The directory is not an OCI layout or is malformed.
    #[error("{path}: {reason}")]
    BadLayout {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A JSON document could not be parsed.
    #[error("{what}: {}", crate::words::json_reason(.error))]
    BadJson {
        /// The file or blob.
        what: String,
        /// The parser's complaint. Not the error's source: its words, which name Rust
        /// types, are said again in plain ones above.
        error: serde_json::Error,
    },
    /// A document parsed but breaks a rule of the spec.
    #[error("{what}: {reason}")]
    Invalid {
        /// The file or blob.
        what: String,
        /// The rule broken.
        reason: String,
    },
    /// A setting the caller passed in (not data read from a layout or archive) is wrong, such
    /// as a source date epoch that is not a number of seconds: the caller must change it.
    #[error("{name}: {reason}")]
    BadSetting {
        /// The setting, as the caller knows it.
        name: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A descriptor that cannot address a blob.
    #[error("{what}: {source}")]
    Descriptor {
        /// Where the descriptor was found.
        what: String,
        /// Why it is unusable.
        #[source]
        source: DescriptorError,
    },
    /// A digest given by the user was refused.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// A referenced blob is not in the layout.
    #[error("blob {digest} not found ({path})")]
    BlobNotFound {
        /// The digest.
        digest: Digest,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A blob's content does not hash to its name.
    #[error("blob {digest} is corrupt: its content hashes to {actual} ({path})")]
    DigestMismatch {
        /// The expected digest.
        digest: Digest,
        /// What the content hashes to.
        actual: Digest,
        /// The file.
        path: PathBuf,
    },
    /// A blob's size is not what its descriptor says.
    #[error(
        "blob {digest} has {} but its descriptor says {expected} ({path})",
        crate::words::bytes(*actual)
    )]
    SizeMismatch {
        /// The digest.
        digest: Digest,
        /// The size in the descriptor.
        expected: u64,
        /// The size found.
        actual: u64,
        /// The file.
        path: PathBuf,
    },
    /// A blob is larger than strata will read into memory for its kind.
    #[error("blob {digest} is {size} bytes, over the {limit}-byte limit for a {what}")]
    TooLarge {
        /// The digest.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
        /// What kind of document it was meant to be.
        what: &'static str,
    },
    /// A tag is not in `index.json`.
    #[error("tag {tag:?} not found in {layout}/index.json{hint}")]
    TagNotFound {
        /// The layout.
        layout: PathBuf,
        /// The tag.
        tag: String,
        /// Known tags, for the message.
        hint: String,
    },
    /// A digest is not reachable from `index.json`.
    #[error("{digest} is not an image in {layout} (not reachable from index.json)")]
    DigestNotFound {
        /// The layout.
        layout: PathBuf,
        /// The digest.
        digest: Digest,
    },
    /// A name that is not valid `org.opencontainers.image.ref.name` grammar.
    #[error("invalid tag {0:?}: a tag is components of letters and digits joined by one of -._:@+ or --, separated by /")]
    InvalidTag(String),
    /// A reference whose text does not follow the grammar.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A reference named no image where one is needed: the layout holds several, or the
    /// command needs a tag or digest. The invocation is at fault, not the layout.
    #[error("{0}")]
    NoImageNamed(String),
    /// A reference that needs a tag or digest did not give one and the layout is ambiguous.
    #[error("{0}")]
    Ambiguous(String),
    /// No manifest in an index matches the platform.
    #[error("no manifest for platform {wanted} in {digest} (available: {available})")]
    NoPlatform {
        /// The platform asked for.
        wanted: String,
        /// The index.
        digest: Digest,
        /// The platforms the index has.
        available: String,
    },
    /// A layer entry that could not be applied, or that was refused as hostile.
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    Layer {
        /// The layer's digest (or position).
        layer: String,
        /// The tar entry's path.
        entry: String,
        /// What went wrong.
        reason: String,
    },
    /// A layer blob whose stream is broken or does not verify.
    #[error("layer {layer}: {reason}")]
    LayerStream {
        /// The layer's digest.
        layer: String,
        /// What went wrong.
        reason: String,
    },
    /// A request that needs a choice the caller did not make (a tag to write, leave to
    /// replace a file); `choice` says which, so that a front end can name its own spelling.
    #[error("{what}: {reason}")]
    ChoiceNeeded {
        /// The file, bundle or image concerned.
        what: String,
        /// What is missing, in the library's terms.
        reason: String,
        /// The choice that would let the request go ahead.
        choice: Choice,
    },
    /// A platform string that is not `os/arch[/variant]`.
    #[error("invalid platform {0:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8")]
    InvalidPlatform(String),
    /// A blob's name is taken by something strata will not read (a symbolic link, a FIFO,
    /// a device), or by a file it may not read.
    #[error("blob {digest}: {path} {reason}")]
    BlobRefused {
        /// The digest.
        digest: Digest,
        /// The file.
        path: PathBuf,
        /// What the file is, or why it cannot be read.
        reason: String,
    },
}

/// A choice of the caller's that a request needed: see [`Error::ChoiceNeeded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Choice {
    /// The tag to write.
    Tag,
    /// Leave to replace existing files.
    Overwrite,
    /// Unpacking without privileges.
    Rootless,
    /// One platform of a multi-platform index.
    Platform,
}

impl Error {
    /// For `map_err`: the JSON of `what` (a file or blob) did not parse.
    pub(crate) fn bad_json(
        what: impl std::fmt::Display,
    ) -> impl FnOnce(serde_json::Error) -> Error {
        let what = what.to_string();
        move |error| Error::BadJson { what, error }
    }
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds the path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
