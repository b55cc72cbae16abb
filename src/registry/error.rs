//! What can go wrong talking to a registry. Messages name the registry, repository, URL or
//! digest at fault and never carry a secret (no credential, token or Authorization header).

use crate::spec::BlobRef;

/// A registry operation's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The layout side failed (I/O, a corrupt blob, bad JSON, ...).
    #[error(transparent)]
    Layout(#[from] crate::Error),
    /// Moving the image into or out of the layout failed (a tag clash, missing blobs).
    #[error(transparent)]
    Transfer(#[from] crate::transfer::Error),
    /// An image name that cannot be used.
    #[error(transparent)]
    Name(#[from] super::name::NameError),
    /// No connection, a dropped one, a TLS failure: after the retries.
    #[error("{url}: {reason}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The registry answered with an error status.
    #[error("{method} {url}: {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        /// The request's method.
        method: String,
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error message (its `errors` list), if it gave one.
        message: String,
    },
    /// The registry asks for credentials that were not given or were refused.
    #[error("{registry}: {reason}")]
    Auth {
        /// The registry.
        registry: String,
        /// What failed.
        reason: String,
    },
    /// A manifest, index or tag list that cannot be used.
    #[error("{what}: {reason}")]
    Invalid {
        /// The document (its URL or digest).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry sent bytes that are not the blob's.
    #[error("{url}: the registry sent {got}, not the {} bytes of {}", blob.size, blob.digest)]
    WrongBlob {
        /// The request's URL.
        url: String,
        /// The blob asked for.
        blob: BlobRef,
        /// What came instead.
        got: String,
    },
    /// Something the registry or these images cannot do.
    #[error("{0}")]
    Unsupported(String),
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
