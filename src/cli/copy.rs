//! `strata copy`.

use strata::layout::reference::Target;
use strata::transfer::copy::{copy, CopyOptions};
use strata::transfer::{choose, Event, Platforms};

use super::output::{human_size, image_line, Output};
use super::{JsonArg, PlatformArg, Status};

/// Copy an image or index to another layout, linking blobs on one file system.
///
/// The destination is created if missing. Only the blobs it lacks are added. On one file
/// system they are reflinked or hard-linked instead of copied: a linked blob must be a
/// regular file of the right size, and its content is not re-read unless --verify is given
/// (a link passes on the source's bytes unchanged; `strata fsck` checks the source).
/// Copied bytes and every index, manifest and config are always hashed. With --referrers,
/// the manifests whose subject is the image come too.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image: LAYOUT:TAG, LAYOUT@DIGEST or LAYOUT.
    #[arg(value_name = "SRCREF")]
    source: String,
    /// The destination: LAYOUT:TAG, or LAYOUT to keep the source's tag.
    #[arg(value_name = "DSTREF")]
    dest: String,
    #[command(flatten)]
    platform: PlatformArg,
    /// Copy every platform of a multi-platform index: the index goes as it is.
    #[arg(long, conflicts_with = "platform")]
    all_platforms: bool,
    /// Also copy the manifests whose subject is the image (signatures, SBOMs).
    #[arg(long)]
    referrers: bool,
    /// Move the destination tag if it names another image.
    #[arg(long)]
    force: bool,
    /// Hash every linked blob before it is published, as copied ones are, and every blob the
    /// destination already has, replacing any that is damaged.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let platforms = if args.all_platforms {
        Platforms::All
    } else {
        Platforms::One(args.platform.resolve()?)
    };
    let source = choose(&super::parse_reference(&args.source)?, &platforms)?;
    let dest_ref = super::parse_reference(&args.dest)?;
    let tag = match &dest_ref.target {
        Target::Tag(t) => Some(t.clone()),
        Target::Default => None,
        Target::Digest(_) => {
            super::output::usage!(
                "{}: DSTREF is LAYOUT or LAYOUT:TAG, not a digest",
                args.dest
            )
        }
    };
    let dest = strata::Layout::open_or_create(&dest_ref.layout)?;
    let mut bar = out.transfer_progress("copy");
    let mut progress = |e: Event<'_>| bar.event(e);
    let options = CopyOptions {
        referrers: args.referrers,
        force: args.force,
        verify: args.verify,
    };
    let result = copy(
        &source,
        dest.layout(),
        tag.as_deref(),
        options,
        &mut progress,
    );
    bar.clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            dest.discard();
            return Err(e.into());
        }
    };
    if args.json.json {
        out.json(&report)?;
        return Ok(Status::Success);
    }
    for r in &report.referrers {
        out.print(format_args!("{r} (referrer)"))?;
    }
    out.print(image_line(&report.digest, report.tag.as_deref()))?;
    out.note(format_args!(
        "copied to {}: {} blobs linked, {} reflinked, {} copied ({}), {} already present",
        dest.layout().root().display(),
        report.blobs_linked,
        report.blobs_reflinked,
        report.blobs_copied,
        human_size(report.bytes),
        report.blobs_present
    ));
    Ok(Status::Success)
}
