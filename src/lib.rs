//! strata: OCI image-layout directories, offline and filesystem based.
//!
//! The library does the work; the `strata` binary parses arguments and prints. Data flows one
//! way: [`image`] → [`layout`] → [`digest`]/[`spec`].
//!
//! The package is `strata-oci` on crates.io; `default-features = false` leaves out the command
//! line (clap and its kin). The library reads no environment variables: a caller that wants
//! `SOURCE_DATE_EPOCH` honoured passes it to [`image::time::set_source_date_epoch`].
//!
//! # The main flow: build, tag, resolve, unpack, collect
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use strata::image::mutate::{Draft, HistoryOptions};
//! use strata::layer::{build::{TarOptions, TarWriter}, source::SourceTree, write::write_layer};
//! use strata::layout::{gc::{gc, GcOptions}, reference::Reference};
//! use strata::{bundle::unpack::{unpack, UnpackOptions}, image, Layout};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::create_dir_all(dir.path().join("tree/etc"))?;
//! std::fs::write(dir.path().join("tree/etc/motd"), "hello\n")?;
//!
//! // A new layout, and an image of one layer made from the tree, tagged "app".
//! let layout = Layout::init(dir.path().join("lay"))?;
//! let mut draft = Draft::empty(&layout, &image::host_platform())?;
//! let tree = SourceTree::open(dir.path().join("tree"), true)?;
//! let layer = write_layer(&layout, strata::layer::Compression::Gzip, move |w| {
//!     let mut tar = TarWriter::new(w, TarOptions { owner: Some((0, 0)), ..TarOptions::default() });
//!     tar.add_tree(&tree)?;
//!     tar.finish()?;
//!     Ok(())
//! })?;
//! draft.append_layer(&layer, &HistoryOptions::default(), "example")?;
//! let manifest = draft.commit("app", None)?;
//!
//! // Resolve it by reference, and unpack it into a bundle (rootless unless run as root).
//! let reference = Reference::parse(&format!("{}:app", layout.root().display()))?;
//! let resolved = image::resolve_image(&layout, &reference.target, &image::host_platform())?;
//! assert_eq!(resolved.descriptor.digest, manifest.digest);
//! let bundle = dir.path().join("bundle");
//! unpack(&reference, &bundle, &UnpackOptions::default(), &mut |_| {})?;
//! assert_eq!(std::fs::read_to_string(bundle.join("rootfs/etc/motd"))?, "hello\n");
//!
//! // Nothing is unreferenced yet: gc keeps every blob.
//! let report = gc(&layout, GcOptions::default())?;
//! assert!(report.removed.is_empty());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod bundle;
pub mod digest;
pub mod error;
#[cfg(test)]
mod flag_free;
pub mod image;
mod ioext;
pub mod layer;
pub mod layout;
#[cfg(feature = "oci-spec")]
pub mod oci_spec;
#[cfg(feature = "registry")]
pub mod registry;
pub mod spec;
pub mod threads;
pub mod transfer;
pub mod uri;
#[doc(hidden)]
pub mod words;

pub use error::{Choice, Error, Result};
pub use ioext::{temp_prefix_beside, CappedWrites};
pub use layout::Layout;
