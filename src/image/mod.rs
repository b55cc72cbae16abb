//! Images in a layout: resolving a reference to the index entry it names and, through
//! indexes, to the manifest for a platform; summaries of what an image holds.

pub mod artifact;
mod artifact_dir;
pub mod config_values;
pub mod convert;
pub mod layer_cache;
mod layer_pipe;
pub mod manifest_put;
pub mod multiplatform;
pub mod mutate;
mod platform;
pub mod referrers;
mod resolve;
pub mod rootfs_tar;
mod summary;
mod tags;
pub mod time;
pub mod tree;

pub use platform::{host_platform, PlatformSpec};
pub(crate) use resolve::{available, pick};
pub use resolve::{resolve_entry, resolve_entry_in, resolve_image, Resolved};
pub use summary::{
    artifact_type_of, inspect, list, FileSummary, ImageSummary, LayerSummary, ListEntry,
};
pub use tags::{tag, untag, Tagged};
