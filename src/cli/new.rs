//! `strata new`.

use strata::image::mutate::{check_inputs, Draft, HistoryOptions};
use strata::layout::reference::Reference;

use super::build_args::{open_or_init, output_tag};
use super::output::Output;
use super::{PlatformArg, Status};

/// Create an empty image (no layers) and tag it; the layout is created if missing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// LAYOUT:TAG to create.
    reference: String,
    #[command(flatten)]
    platform: PlatformArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let reference = Reference::parse(&args.reference)?;
    let tag = output_tag(&reference, None)?;
    check_inputs(Some(&tag), &HistoryOptions::default(), None)?;
    let layout = open_or_init(&reference)?;
    let draft = Draft::empty(&layout, &args.platform.resolve()?)?;
    let desc = draft.commit(&tag, None)?;
    out.print(&desc.digest)?;
    Ok(Status::Success)
}
