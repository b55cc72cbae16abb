//! `strata tag`.

use strata::Layout;

use super::output::Output;
use super::Status;

/// Give an image another tag (moving the tag if it named another image).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image: LAYOUT, LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
    /// The new tag (org.opencontainers.image.ref.name grammar).
    #[arg(value_parser = super::values::tag)]
    new_tag: String,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let reference = super::parse_reference(&args.reference)?;
    let layout = Layout::open(&reference.layout)?;
    let entry = strata::image::tag(&layout, &reference.target, &args.new_tag)?;
    out.info(format_args!("tagged {} as {}", entry.digest, args.new_tag));
    Ok(Status::Success)
}
