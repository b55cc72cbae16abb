//! `strata new`.

use strata::image::mutate::{check_inputs, Draft, HistoryOptions};

use super::build_args::{in_layout, reference_tag};
use super::output::Output;
use super::{PlatformArg, Status};

/// Create an empty image (no layers) and tag it; the layout is created if missing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// LAYOUT:TAG to create.
    reference: String,
    #[command(flatten)]
    platform: PlatformArg,
    #[command(flatten)]
    json: super::JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let reference = super::parse_reference(&args.reference)?;
    let tag = reference_tag(&reference)?;
    check_inputs(Some(&tag), &HistoryOptions::default(), None)?;
    let platform = args.platform.resolve()?;
    let desc = in_layout(&reference, |layout| {
        Ok(Draft::empty(layout, &platform)?.commit(&tag, None)?)
    })?;
    out.written(
        args.json,
        &super::output::Written::new(&reference.layout, Some(&tag), &desc),
    )?;
    Ok(Status::Success)
}
