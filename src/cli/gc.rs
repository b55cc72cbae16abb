//! `strata gc`.

use std::path::PathBuf;

use strata::layout::gc::{gc, GcOptions};
use strata::Layout;

use super::output::{human_size, plural, size_and_bytes, Output};
use super::{JsonArg, Status};

/// Remove blobs nothing references, keeping referrers of kept images, and stale temp files.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The layout.
    layout: PathBuf,
    /// Report what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep unreferenced blobs changed less than this long ago (e.g. 30m, 2h, 7d; plain
    /// numbers are seconds): for layouts that skopeo or umoci may be writing to meanwhile,
    /// whose new blobs are unreferenced until they finish.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    min_age: Option<std::time::Duration>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let layout = Layout::open(&args.layout)?;
    let report = gc(
        &layout,
        GcOptions {
            dry_run: args.dry_run,
            min_age: args.min_age,
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
        out.info(format_args!(
            "{verb} {} ({})",
            blob.digest,
            human_size(blob.size)
        ));
    }
    out.note(format_args!(
        "{verb} {}, {}, {}, {}; kept {} ({})",
        plural(report.removed.len(), "blob", "blobs"),
        size_and_bytes(report.bytes_freed),
        plural(
            report.entries_removed,
            "index.json entry",
            "index.json entries"
        ),
        strata::words::temp_entries(report.temp_files_removed, report.temp_dirs_removed),
        plural(report.kept, "blob", "blobs"),
        plural(report.referrers_kept.len(), "referrer", "referrers")
    ));
    if !report.kept_recent.is_empty() {
        out.note(format_args!(
            "kept {} younger than --min-age",
            plural(
                report.kept_recent.len(),
                "unreferenced blob",
                "unreferenced blobs"
            )
        ));
    }
    Ok(Status::Success)
}

/// `30`, `30s`, `10m`, `2h`, `7d`.
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and s, m, h or d, e.g. 2h"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    n.checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: too long"))
}
