//! `strata referrers`.

use strata::image::referrers::{as_index, referrers};
use strata::image::{resolve_entry, resolve_image};
use strata::Layout;

use super::output::Output;
use super::{JsonArg, PlatformArg, Status};

/// List the manifests whose subject is REF's (signatures, SBOMs, ...); --json prints them as
/// an image index, the referrers API's shape.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// The image (LAYOUT:TAG or LAYOUT@DIGEST); with --platform, the platform's manifest
    /// through an index, else what REF names itself.
    reference: String,
    /// Only referrers of this artifact type.
    #[arg(long, value_name = "TYPE", value_parser = super::values::media_type)]
    artifact_type: Option<String>,
    /// Follow referrers of referrers this many levels (1: direct referrers only).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    depth: u64,
    #[command(flatten)]
    platform: PlatformArg,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let reference = super::parse_reference(&args.reference)?;
    let layout = Layout::open(&reference.layout)?;
    let desc = match args.platform.given()? {
        Some(p) => resolve_image(&layout, &reference.target, &p)?.descriptor,
        None => resolve_entry(&layout, &reference.target)?,
    };
    let subject = desc.digest()?;
    let depth = usize::try_from(args.depth).unwrap_or(usize::MAX);
    let found = referrers(&layout, &subject, args.artifact_type.as_deref(), depth)?;
    if args.json.json {
        // The index itself, as the referrers API returns it (no schemaVersion envelope: an
        // image index already has one).
        out.raw(&serde_json::to_vec_pretty(&as_index(&found))?)?;
        out.raw(b"\n")?;
    } else {
        for f in &found {
            out.line(format_args!(
                "{}{}  {}",
                "  ".repeat(f.depth - 1),
                f.descriptor.digest,
                f.descriptor.artifact_type.as_deref().unwrap_or("-")
            ))?;
        }
    }
    Ok(Status::Success)
}
