//! strata: OCI image-layout directories, offline and filesystem based.
//!
//! The library does the work; the `strata` binary parses arguments and prints. Data flows one
//! way: [`image`] → [`layout`] → [`digest`]/[`spec`].
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod bundle;
pub mod digest;
pub mod error;
pub mod image;
mod ioext;
pub mod layer;
pub mod layout;
pub mod spec;
pub mod threads;
pub mod transfer;
pub mod uri;

pub use error::{Error, Result};
pub use layout::Layout;
