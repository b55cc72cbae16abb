//! Registries that follow the OCI distribution spec: pulling images into a layout, pushing
//! them from one, listing tags, and the credentials to do so.
//!
//! Only this module touches the network, and only when called: every other part of the
//! library works on local files. It is compiled with the `registry` feature (on by default).

pub mod challenge;
pub mod client;
pub mod credentials;
pub mod error;
pub mod name;

pub use client::{Client, ClientOptions};
pub use error::{Error, Result};
pub use name::ImageName;
pub mod api;
pub mod documents;
mod pipe;
pub mod pull;
pub mod push;
mod workers;
