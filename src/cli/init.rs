//! `strata init`.

use std::path::PathBuf;

use strata::Layout;

use super::output::Output;
use super::Status;

/// Create an empty OCI image layout.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to create (parents too); must not exist or be empty.
    layout: PathBuf,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    Layout::init(&args.layout)?;
    out.info(format_args!("created layout {}", args.layout.display()));
    Ok(Status::Success)
}
