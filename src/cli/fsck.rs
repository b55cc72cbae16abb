//! `strata fsck`.

use std::path::PathBuf;

use strata::layout::fsck::{fsck_with, FsckOptions};
use strata::Layout;

use super::output::{human_size, Output};
use super::{JsonArg, Status};

/// Verify a layout: every blob's digest, every referenced blob present with the right size,
/// manifests, indexes and configs following the image-spec, and every image layer
/// decompressed: its compression as its media type says, its diff_id as the config says, a
/// tar unpack applies. Warnings (what the spec allows but strata cannot check) do not fail
/// it. Exit 1 on any problem.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The layout.
    layout: PathBuf,
    /// Only hash layers: skip decompressing them (no diff_id, compression or tar check).
    #[arg(long)]
    no_layers: bool,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let layout = Layout::open(&args.layout)?;
    let report = fsck_with(
        &layout,
        FsckOptions {
            threads: strata::threads::get(),
            layers: !args.no_layers,
        },
    )?;
    for w in &report.warnings {
        out.warn(format_args!("{}: {}", w.subject, w.rule));
    }
    if args.json.json {
        #[derive(serde::Serialize)]
        struct Json<'a> {
            ok: bool,
            #[serde(flatten)]
            report: &'a strata::layout::fsck::FsckReport,
        }
        out.json(&Json {
            ok: report.ok(),
            report: &report,
        })?;
    } else {
        for p in &report.problems {
            out.print(format_args!("problem: {}: {}", p.subject, p.rule))?;
        }
        for b in &report.unreferenced {
            out.print(format_args!(
                "unreferenced: {} ({})",
                b.digest,
                human_size(b.size)
            ))?;
        }
        out.print(format_args!(
            "{}: {} blobs ({}) checked, {} problems, {} warnings, {} unreferenced, {} referrers",
            if report.ok() { "ok" } else { "FAILED" },
            report.blobs_checked,
            human_size(report.bytes_checked),
            report.problems.len(),
            report.warnings.len(),
            report.unreferenced.len(),
            report.referrers.len()
        ))?;
    }
    Ok(if report.ok() {
        Status::Success
    } else {
        Status::Failure
    })
}
