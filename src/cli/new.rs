//! `strata new`.

use strata::image::mutate::{check_inputs, Draft, HistoryOptions};

use super::build_args::{in_layout, reference_tag};
use super::output::Output;
use super::Status;

/// Create an empty image (no layers) and tag it; the layout is created if missing.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// LAYOUT:TAG to create.
    reference: String,
    /// The image's OS/ARCH[/VARIANT] (default: this machine's).
    #[arg(long = "set-platform", value_name = "OS/ARCH[/VARIANT]", value_parser = super::values::platform)]
    set_platform: Option<String>,
    #[command(flatten)]
    json: super::JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let reference = super::parse_reference(&args.reference)?;
    let tag = reference_tag(&reference)?;
    check_inputs(Some(&tag), &HistoryOptions::default(), None)?;
    let platform = match &args.set_platform {
        Some(p) => p.parse()?,
        None => strata::image::host_platform(),
    };
    let desc = in_layout(&reference, |layout| {
        Ok(Draft::empty(layout, &platform)?.commit_moving(&tag, None)?)
    })?;
    out.written(
        args.json,
        &super::output::Written::tagged(&reference.layout, &desc, None),
    )?;
    Ok(Status::Success)
}
