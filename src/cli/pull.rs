//! `strata pull`.

use strata::layout::reference::Target;
use strata::registry::pull::{pull, PullOptions};
use strata::transfer::Event;

use super::output::{human_size, image_line, Output};
use super::registry::{client, parse_name, JobsArg, RegistryArgs};
use super::{JsonArg, PlatformArg, Status};

/// Pull an image from a registry into a layout.
///
/// NAME is [REGISTRY/]REPOSITORY[:TAG|@DIGEST], as docker writes it (`debian` is
/// docker.io/library/debian:latest). By default the image for this machine's platform is
/// stored and tagged; --all-platforms keeps the whole index. Manifests and configs are
/// stored byte for byte as the registry served them, so digests stay the same. Every blob is
/// verified as it arrives and published only when the whole image is in: a failed pull
/// leaves the layout as it was. The layout is created if missing; its tag defaults to
/// NAME's tag (none when pulled by digest).
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// The image in the registry: [REGISTRY/]REPOSITORY[:TAG|@DIGEST].
    #[arg(value_name = "NAME")]
    source: String,
    /// The destination: LAYOUT or LAYOUT:TAG.
    #[arg(value_name = "DSTREF")]
    dest: String,
    #[command(flatten)]
    platform: PlatformArg,
    /// Keep every platform of a multi-platform image: the index as it is.
    #[arg(long, conflicts_with = "platform")]
    all_platforms: bool,
    /// Also pull the image's referrers (signatures, SBOMs), listed untagged.
    #[arg(long)]
    referrers: bool,
    /// Move the destination tag if it names another image.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    jobs: JobsArg,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let name = parse_name(&args.source)?;
    let dest_ref = super::parse_reference(&args.dest)?;
    let tag = match &dest_ref.target {
        Target::Tag(t) => Some(t.clone()),
        Target::Default if name.digest.is_none() => {
            Some(name.tag.clone().unwrap_or_else(|| "latest".into()))
        }
        Target::Default => None,
        Target::Digest(_) => {
            super::output::usage!(
                "{}: DSTREF is LAYOUT or LAYOUT:TAG, not a digest",
                args.dest
            )
        }
    };
    let client = client(&name, &args.registry, out)?;
    let options = PullOptions {
        platform: args.platform.resolve()?,
        all_platforms: args.all_platforms,
        referrers: args.referrers,
        force: args.force,
        jobs: usize::from(args.jobs.jobs),
    };
    let dest = strata::Layout::open_or_create(&dest_ref.layout)?;
    let mut bar = out.transfer_progress("pull");
    let mut progress = |e: Event<'_>| bar.event(e);
    let result = pull(
        &client,
        &name,
        dest.layout(),
        tag.as_deref(),
        &options,
        &mut progress,
    );
    bar.clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            dest.discard();
            // The transfer error itself, not its registry wrapper (transparent, so absent
            // from the chain): the CLI's hints recognise it by type (a tag clash: --force).
            return Err(match e {
                strata::registry::Error::Transfer(t) => t.into(),
                other => other.into(),
            });
        }
    };
    for r in &report.referrers_missing {
        out.warn(format_args!(
            "{name} lists the referrer {r}, which the registry does not have: skipped"
        ));
    }
    if args.json.json {
        out.json(&report)?;
        return Ok(Status::Success);
    }
    for r in &report.referrers {
        out.print(format_args!("{r} (referrer)"))?;
    }
    out.print(image_line(&report.digest, report.tag.as_deref()))?;
    out.note(format_args!(
        "pulled {name} into {}: {} fetched ({}), {} already present",
        dest.layout().root().display(),
        super::output::plural(report.blobs_fetched, "blob", "blobs"),
        human_size(report.bytes),
        report.blobs_present
    ));
    Ok(Status::Success)
}
