//! `strata push`.

use strata::registry::push::{push, PushOptions};
use strata::transfer::{choose, Event, Platforms};

use super::output::{human_size, Output};
use super::registry::{client, parse_name, JobsArg, RegistryArgs};
use super::{JsonArg, PlatformArg, Status};

/// Push an image from a layout to a registry.
///
/// NAME is [REGISTRY/]REPOSITORY[:TAG|@DIGEST]; without a tag the image's own tag in the
/// layout is used, and without either it is pushed by digest. A multi-platform index goes
/// whole unless --platform picks one image. Blobs the registry has are skipped; the others
/// are uploaded (in chunks when large, or mounted from --mount-from repositories), and the
/// manifests go only when every blob under them is in, children before their index.
/// Prints the digest and where it went.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image: LAYOUT:TAG, LAYOUT@DIGEST, or LAYOUT when it has one image.
    #[arg(value_name = "SRCREF")]
    source: String,
    /// Where to: [REGISTRY/]REPOSITORY[:TAG|@DIGEST].
    #[arg(value_name = "NAME")]
    dest: String,
    /// Push only this platform's image of a multi-platform index (default: the whole index).
    #[command(flatten)]
    platform: PlatformArg,
    /// Also push the manifests whose subject is the image (signatures, SBOMs); on a registry
    /// without the referrers API, the sha256-<hex> tag lists them.
    #[arg(long)]
    referrers: bool,
    /// A repository of the same registry to mount blobs from instead of uploading them
    /// (repeatable).
    #[arg(long, value_name = "REPOSITORY")]
    mount_from: Vec<String>,
    /// Blobs larger than this go in chunks of this many MiB (0: every blob in one request).
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    chunk_mib: u64,
    #[command(flatten)]
    jobs: JobsArg,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let source_ref = super::parse_reference(&args.source)?;
    let mut name = parse_name(&args.dest)?;
    let platforms = match args.platform.given()? {
        Some(p) => Platforms::One(p),
        None => Platforms::All,
    };
    let source = choose(&source_ref, &platforms)?;
    if name.tag.is_none() && name.digest.is_none() {
        if let Some(t) = source.tag() {
            if strata::registry::name::is_tag(t) {
                name.tag = Some(t.to_owned());
            } else {
                super::output::usage!(
                    "the layout's tag {t:?} is not a registry tag: give NAME:TAG"
                );
            }
        }
    }
    let client = client(&name, &args.registry, out)?;
    let options = PushOptions {
        referrers: args.referrers,
        jobs: usize::from(args.jobs.jobs),
        chunk_size: args.chunk_mib.saturating_mul(1 << 20),
        mount_from: args.mount_from.clone(),
    };
    let mut bar = out.transfer_progress("push");
    let mut progress = |e: Event<'_>| bar.event(e);
    let result = push(&client, &source, &name, &options, &mut progress);
    bar.clear();
    let report = result?;
    if args.json.json {
        out.json(&report)?;
        return Ok(Status::Success);
    }
    for r in &report.referrers {
        out.print(format_args!("{r} (referrer)"))?;
    }
    out.print(format_args!("{} {}", report.digest, report.reference))?;
    out.note(format_args!(
        "pushed to {}: {} uploaded ({}), {} mounted, {} already there",
        name.registry,
        super::output::plural(report.blobs_uploaded, "blob", "blobs"),
        human_size(report.bytes),
        report.blobs_mounted,
        report.blobs_present
    ));
    Ok(Status::Success)
}
