//! `strata fsck`.

use std::path::PathBuf;

use strata::layout::fsck::{fsck_with, FsckOptions, FsckReport, Problem};
use strata::Layout;

use super::output::{human_size, Output};
use super::{JsonArg, Status};

/// Verify a layout: every blob's digest, every referenced blob present with the right size,
/// manifests, indexes and configs following the image-spec, and every image layer
/// decompressed: its compression as its media type says, its diff_id as the config says, a
/// tar unpack applies. Warnings (what the spec allows but strata cannot check) do not fail
/// it. Exit 1 on any problem.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::threads())]
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
    let checked = Layout::open(&args.layout).and_then(|layout| {
        fsck_with(
            &layout,
            FsckOptions {
                threads: strata::threads::get(),
                layers: !args.no_layers,
            },
        )
    });
    let report = match checked {
        Ok(report) => report,
        // A layout fsck cannot even walk (index.json unreadable, say) is its biggest problem:
        // a --json reader gets it as one, and the error goes to stderr as usual.
        Err(e) if args.json.json => {
            let report = FsckReport {
                blobs_checked: 0,
                bytes_checked: 0,
                problems: vec![Problem {
                    subject: args.layout.display().to_string(),
                    rule: e.to_string(),
                }],
                warnings: Vec::new(),
                unreferenced: Vec::new(),
                referrers: Vec::new(),
            };
            print_json(out, &report)?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    for w in &report.warnings {
        out.warn(format_args!("{}: {}", w.subject, w.rule));
    }
    if args.json.json {
        print_json(out, &report)?;
    } else {
        for p in &report.problems {
            out.line(format_args!("problem: {}: {}", p.subject, p.rule))?;
        }
        // What gc would take is no problem: -q leaves it out, as the summary.
        for b in &report.unreferenced {
            out.summary(format_args!(
                "unreferenced: {} ({})",
                b.digest,
                human_size(b.size)
            ))?;
        }
        out.summary(format_args!(
            "{}: {} ({}) checked, {}, {}, {} unreferenced, {}",
            if report.ok() { "ok" } else { "FAILED" },
            super::output::plural(report.blobs_checked as usize, "blob", "blobs"),
            human_size(report.bytes_checked),
            super::output::plural(report.problems.len(), "problem", "problems"),
            super::output::plural(report.warnings.len(), "warning", "warnings"),
            report.unreferenced.len(),
            super::output::plural(report.referrers.len(), "referrer", "referrers")
        ))?;
    }
    Ok(if report.ok() {
        Status::Success
    } else {
        Status::Failure
    })
}

fn print_json(out: &Output, report: &FsckReport) -> std::io::Result<()> {
    #[derive(serde::Serialize)]
    struct Json<'a> {
        ok: bool,
        #[serde(flatten)]
        report: &'a FsckReport,
    }
    out.json(&Json {
        ok: report.ok(),
        report,
    })
}
