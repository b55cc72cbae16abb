//! `strata config`.

use strata::image::mutate::Draft;
use strata::layout::reference::Reference;
use strata::Layout;

use super::build_args::{output_tag, ConfigArgs, HistoryArgs};
use super::output::Output;
use super::{PlatformArg, Status};

/// Edit an image's config (entrypoint, cmd, env, labels, ports, volumes, user, ...) and
/// manifest annotations; fields strata does not model are kept.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image: LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
    /// Tag the result with this tag instead of moving REF's.
    #[arg(long)]
    tag: Option<String>,
    #[command(flatten)]
    platform: PlatformArg,
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    history: HistoryArgs,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let reference = Reference::parse(&args.reference)?;
    let tag = output_tag(&reference, args.tag.as_deref())?;
    let edits = args.config.edits()?;
    let layout = Layout::open(&reference.layout)?;
    let mut draft = Draft::load(
        &layout,
        &layout,
        &reference.target,
        &args.platform.resolve()?,
    )?;
    draft.edit_config(&edits)?;
    draft.note_empty_change(&args.history.options(), "strata config")?;
    let desc = draft.commit(&tag, edits.created.as_deref())?;
    out.print(&desc.digest)?;
    Ok(Status::Success)
}
