//! `strata build`.

use std::path::PathBuf;

use strata::image::mutate::{check_inputs, ConfigEdits, Draft};
use strata::image::time::source_date_epoch;
use strata::image::PlatformSpec;
use strata::layer::build::{TarOptions, TarWriter};
use strata::layer::source::SourceTree;
use strata::layer::write::{write_layer_with_progress, WrittenLayer};
use strata::Layout;

use super::build_args::{in_layout, reference_tag, CompressArg, ConfigArgs, HistoryArgs};
use super::output::Output;
use super::{PlatformArg, Status};

/// Build an image from a directory tree: the tree becomes one layer, on top of --from or
/// alone, with config edits; the result is tagged REF.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::threads())]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// The directory tree to put in the layer.
    dir: PathBuf,
    /// LAYOUT:TAG to write (the layout is created if missing).
    reference: String,
    /// Base image (LAYOUT[:TAG|@DIGEST]; may be another layout, its blobs are copied).
    #[arg(long, value_name = "BASEREF")]
    from: Option<String>,
    #[command(flatten)]
    platform: PlatformArg,
    /// Layer compression.
    #[arg(long, value_enum, default_value_t = CompressArg::Auto)]
    compress: CompressArg,
    #[command(flatten)]
    ownership: super::build_args::OwnershipArgs,
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    history: HistoryArgs,
    #[command(flatten)]
    json: super::JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let reference = super::parse_reference(&args.reference)?;
    let tag = reference_tag(&reference)?;
    if !args.dir.is_dir() {
        let why = if std::fs::symlink_metadata(&args.dir).is_err() {
            "does not exist"
        } else {
            "not a directory"
        };
        anyhow::bail!("{}: {why}", args.dir.display());
    }
    let edits = args.config.edits()?;
    check_inputs(
        Some(&tag),
        &args.history.options(),
        edits.created.as_deref(),
    )?;
    // --platform picks out of --from's index; the new image's own is --set-platform's.
    if args.from.is_none() && args.platform.given()?.is_some() {
        super::output::usage!(
            "--platform picks the base image out of --from's index; give --set-platform to \
             set the platform of an image built without --from"
        );
    }
    let platform = args.platform.resolve()?;
    let ((tagged, source), layer) = in_layout(&reference, |layout| {
        build(&args, out, layout, &tag, &edits, &platform)
    })?;
    out.layer_written(&layer);
    out.written(
        args.json,
        &super::output::Written::tagged(&reference.layout, &tagged, source.as_deref()),
    )?;
    Ok(Status::Success)
}

fn build(
    args: &Args,
    out: &Output,
    layout: &Layout,
    tag: &str,
    edits: &ConfigEdits,
    platform: &PlatformSpec,
) -> anyhow::Result<((strata::image::Tagged, Option<String>), WrittenLayer)> {
    let mut draft = match &args.from {
        Some(base) => {
            let base = super::parse_reference(base)?;
            let source = Layout::open(&base.layout)?;
            Draft::load(layout, &source, &base.target, platform)?
        }
        None => Draft::empty(layout, platform)?,
    };
    let compression = args.compress.pick(draft.auto_compression());
    let mut options = TarOptions {
        source_date_epoch: source_date_epoch()?,
        ..TarOptions::default()
    };
    args.ownership.apply(&mut options);
    let tree = SourceTree::open(&args.dir, true)?;
    let mut bar = out.transfer_progress("build");
    let layer = write_layer_with_progress(layout, compression, &mut |n| bar.bytes(n), move |w| {
        let mut tar = TarWriter::new(w, options);
        tar.add_tree(&tree)?;
        tar.finish()?;
        Ok(())
    })?;
    bar.clear();
    // The directory's own name stays out of the history: the same tree built from another
    // place gives the same image.
    draft.append_layer(&layer, &args.history.options(), "strata build")?;
    draft.edit_config(edits)?;
    let source = draft.source().map(str::to_owned);
    let tagged = draft.commit_moving(tag, edits.created.as_deref())?;
    Ok(((tagged, source), layer))
}
