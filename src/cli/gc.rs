//! `strata gc`.

use std::path::PathBuf;

use strata::layout::gc::{gc, GcOptions};
use strata::Layout;

use super::output::{human_size, Output};
use super::{JsonArg, Status};

/// Remove blobs nothing references, keeping referrers of kept images, and stale temp files.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The layout.
    layout: PathBuf,
    /// Report what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let layout = Layout::open(&args.layout)?;
    let report = gc(
        &layout,
        GcOptions {
            dry_run: args.dry_run,
        },
    )?;
    if args.json.json {
        out.json(&report)?;
        return Ok(Status::Success);
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for blob in &report.removed {
        out.print(format_args!(
            "{verb} {} ({})",
            blob.digest,
            human_size(blob.size)
        ))?;
    }
    out.print(format_args!(
        "{verb} {} blobs, {} ({} bytes), {} index.json entries and {} temp files; kept {} blobs ({} referrers)",
        report.removed.len(),
        human_size(report.bytes_freed),
        report.bytes_freed,
        report.entries_removed,
        report.temp_files_removed,
        report.kept,
        report.referrers_kept.len()
    ))?;
    Ok(Status::Success)
}
