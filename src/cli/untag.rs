//! `strata untag`.

use strata::Layout;

use super::output::Output;
use super::Status;

/// Remove a tag (or every index.json entry of a digest); blobs stay until gc.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let reference = super::parse_reference(&args.reference)?;
    let layout = Layout::open(&reference.layout)?;
    for removed in strata::image::untag(&layout, &reference.target)? {
        out.info(format_args!("removed entry {}", removed.digest));
    }
    Ok(Status::Success)
}
