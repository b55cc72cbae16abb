//! Moving images between layouts and across an air gap: OCI archives, docker-archive,
//! copies between layouts.
//!
//! - [`oci_archive`]: an OCI image layout as one tar, holding just the chosen images, each
//!   blob once, in a fixed order with fixed headers (the same images give the same bytes);
//!   optionally leaving out the blobs a receiver already has (an incremental archive).
//! - [`docker_archive`]: the `docker save` format, written for `docker load` and skopeo's
//!   `docker-archive:`; read in its legacy form and in the OCI-layout form newer docker
//!   writes.
//! - [`import`]: reads either kind of archive (plain or gzip-compressed) as one stream, from a
//!   file or a pipe, without unpacking it anywhere first. The archive is hostile input: its
//!   members are never written by their names, only through [`crate::layout::BlobWriter`]
//!   into a staging area, verified; nothing reaches the layout until every image's graph is
//!   complete, and tags come last.
//! - [`partial`]: what an import takes of a multi-platform image the archive holds only in
//!   part (`ctr image export`, BuildKit).
//! - [`copy`]: layout to layout, only the blobs the destination lacks, hard-linked on one
//!   file system after verification, optionally with the image's referrers.
//!
//! - [`destination`]: the layout an import or a copy writes into, created so that neither a
//!   failure nor a kill leaves a directory later commands refuse.
//!
//! Everything here reads through the layout store's verified readers; nothing prints.
//! Progress is reported through a [`Progress`] callback.

pub mod copy;
pub mod destination;
pub mod docker_archive;
mod error;
mod graph;
pub mod import;
mod members;
pub mod oci_archive;
pub mod partial;
mod read_archive;
mod select;
pub(crate) mod staging;
pub(crate) mod tags;
mod tar_out;

pub use error::{Error, Result};
pub use select::{choose, Chosen, Platforms};

/// A progress report: how many bytes of the work are done, out of how many when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes done so far.
    pub done: u64,
    /// Bytes in all, when known (an archive read from a pipe has no known size).
    pub total: Option<u64>,
}

/// What a transfer reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// Bytes moved so far.
    Progress(Progress),
    /// One blob is done.
    Blob {
        /// Its digest, or its member's name in a docker archive (which names layers by
        /// diff_id).
        name: &'a str,
        /// Its size in bytes.
        size: u64,
        /// What became of it: "written" (into an archive or a layout), "copied", "linked",
        /// "reflinked", or "present" (the destination had it).
        how: &'static str,
    },
}

/// The callback type the transfer functions report progress through.
pub type ProgressFn<'a> = &'a mut dyn FnMut(Event<'_>);

/// Calls a progress callback at most once per `STEP` bytes, so a fast copy is not slowed
/// down by drawing.
pub(crate) struct Ticker<'a> {
    callback: ProgressFn<'a>,
    total: Option<u64>,
    done: u64,
    reported: u64,
}

impl<'a> Ticker<'a> {
    const STEP: u64 = 4 << 20;

    pub(crate) fn new(callback: ProgressFn<'a>, total: Option<u64>) -> Ticker<'a> {
        let t = Ticker {
            callback,
            total,
            done: 0,
            reported: 0,
        };
        (t.callback)(Event::Progress(Progress { done: 0, total }));
        t
    }

    pub(crate) fn advance(&mut self, bytes: u64) {
        self.set(self.done + bytes);
    }

    pub(crate) fn set(&mut self, done: u64) {
        self.done = done;
        if self.done - self.reported >= Self::STEP {
            self.reported = self.done;
            (self.callback)(Event::Progress(Progress {
                done: self.done,
                total: self.total,
            }));
        }
    }

    pub(crate) fn finish(&mut self) {
        (self.callback)(Event::Progress(Progress {
            done: self.done,
            total: self.total.or(Some(self.done)),
        }));
    }

    /// Reports one blob done.
    pub(crate) fn blob(&mut self, name: &str, size: u64, how: &'static str) {
        (self.callback)(Event::Blob { name, size, how });
    }
}

/// Refuses an archive path that would replace a file of one of `layouts` (the layouts an
/// export reads): `oci-layout`, `index.json`, anything under `blobs/`, or strata's own hidden
/// files (locks, temp files). The archive, renamed into place when complete, would corrupt
/// a layout being read without a word. An archive elsewhere in the layout's directory (a
/// stray `out.tar`) harms nothing and stays allowed. The path's directory is resolved
/// through symbolic links; the path itself is not (a symbolic link there is replaced, never
/// written through).
pub fn check_archive_path(
    path: &std::path::Path,
    layouts: &[&crate::layout::Layout],
) -> Result<()> {
    use std::path::Component;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Ok(()); // not a file name: the write refuses it
    };
    // A directory that does not resolve cannot be inside a layout: the write fails there.
    let Ok(dir) = dir.canonicalize() else {
        return Ok(());
    };
    for layout in layouts {
        let Ok(root) = layout.root().canonicalize() else {
            continue;
        };
        let Ok(within) = dir.strip_prefix(&root) else {
            continue;
        };
        // The first name below the layout's root the archive would be written at or under.
        let first = match within.components().next() {
            Some(Component::Normal(c)) => c,
            _ => name,
        };
        let first = first.to_string_lossy();
        if matches!(&*first, "oci-layout" | "index.json" | "blobs") || first.starts_with('.') {
            return Err(Error::Unsupported(format!(
                "refusing to write {} over the files of the layout {} it reads: choose a \
                 path outside the layout's oci-layout, index.json and blobs/",
                path.display(),
                layout.root().display()
            )));
        }
    }
    Ok(())
}
