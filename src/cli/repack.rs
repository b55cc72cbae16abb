//! `strata repack`.

use std::path::PathBuf;

use strata::bundle::repack::{repack_with_progress, RepackOptions};
use strata::layer::Compression;

use super::build_args::{CompressArg, HistoryArgs};
use super::output::Output;
use super::{JsonArg, Status};

/// Turn the changes made to an unpacked bundle's rootfs into a new layer on its image and
/// move the tag (or write --tag). Unchanged files are never read.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::threads())]
pub struct Args {
    /// A bundle made by strata unpack.
    bundle: PathBuf,
    /// Tag to write (default: the tag the bundle was unpacked from).
    #[arg(long, value_parser = super::values::tag)]
    tag: Option<String>,
    /// Layer compression.
    #[arg(long, value_enum, default_value_t = CompressArg::Auto)]
    compress: CompressArg,
    /// Leave changes under this image path out (repeatable).
    #[arg(long, value_name = "PATH")]
    mask_path: Vec<PathBuf>,
    /// Include changes under the image's volumes (left out by default).
    #[arg(long)]
    no_mask_volumes: bool,
    /// Afterwards, update the bundle so the next repack builds on the new image.
    #[arg(long)]
    refresh_bundle: bool,
    #[command(flatten)]
    history: HistoryArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    // Before any thread exists: an unprivileged repack reads its own mode-000 entries there.
    match strata::bundle::userns::enter_own_user_namespace() {
        Ok(true) => out.info("reading the rootfs from a user namespace of this user's own"),
        Ok(false) => {}
        Err(e) => out.info(format_args!(
            "no user namespace ({e}): entries this user cannot read will stop the repack"
        )),
    }
    let compression = match args.compress {
        CompressArg::Auto => None,
        other => Some(other.pick(Compression::Gzip)),
    };
    let mut bar = out.transfer_progress("repack");
    let report = repack_with_progress(
        &args.bundle,
        &RepackOptions {
            tag: args.tag.clone(),
            compression,
            mask_paths: args.mask_path.clone(),
            no_mask_volumes: args.no_mask_volumes,
            refresh_bundle: args.refresh_bundle,
            history: args.history.options(),
        },
        &mut |n| bar.bytes(n),
    )?;
    bar.clear();
    if let Some(layer) = &report.layer {
        layer_line(out, &args.bundle, layer);
    }
    if let Some(before) = &report.moved_from {
        out.warn(format_args!(
            "moved tag {} from {before}, which is not the image the bundle was unpacked \
             from: the tag no longer names {before}, and what it has that the bundle's image \
             had not (an insert, another repack since the unpack) is not in {}",
            report.tag, report.manifest
        ));
    }
    if args.json.json {
        out.json(&report)?;
    } else {
        out.print(&report.manifest)?;
        out.info(format_args!(
            "{} added, {} changed, {} deleted; layer {}; tag {}",
            report.added,
            report.changed,
            report.deleted,
            report.layer.as_deref().unwrap_or("none (no changes)"),
            report.tag
        ));
    }
    Ok(Status::Success)
}

/// `-v`'s line for the layer a repack wrote, with the size its blob has in the layout.
fn layer_line(out: &Output, bundle: &std::path::Path, layer: &str) {
    let size = (|| {
        let layout = strata::bundle::repack::read_metadata(bundle).ok()?.layout;
        let digest = layer.parse().ok()?;
        let path = strata::Layout::open(layout).ok()?.blob_path(&digest);
        Some(std::fs::metadata(path).ok()?.len())
    })();
    match size {
        Some(size) => out.info(format_args!(
            "layer {layer} written: {}",
            super::output::size_and_bytes(size)
        )),
        None => out.info(format_args!("layer {layer} written")),
    }
}
