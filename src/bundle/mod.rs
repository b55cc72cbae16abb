//! Runtime bundles: `BUNDLE/rootfs`, the runtime-spec `config.json` made from the image
//! config, and strata's metadata that repack needs.

pub mod idmap;
pub mod repack;
pub mod runtime;
pub mod snapshot;
pub mod unpack;
mod user;
pub mod userns;
