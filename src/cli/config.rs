//! `strata config`.

use super::build_args::{edit_image, ConfigArgs, HistoryArgs};
use super::output::Output;
use super::{PlatformArg, Status};

/// Edit an image's config (entrypoint, cmd, env, labels, ports, volumes, user, ...) and
/// manifest annotations; fields strata does not model are kept.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// The image: LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
    /// Tag the result with this tag instead of moving REF's.
    #[arg(long, value_parser = super::values::tag)]
    tag: Option<String>,
    #[command(flatten)]
    platform: PlatformArg,
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    history: HistoryArgs,
    #[command(flatten)]
    json: super::JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let edits = args.config.edits()?;
    let (mut draft, tag) = edit_image(&args.reference, args.tag.as_deref(), &args.platform)?;
    draft.edit_config(&edits)?;
    draft.note_empty_change(&args.history.options(), "strata config")?;
    let layout = draft.layout().root().to_owned();
    let source = draft.source().map(str::to_owned);
    let tagged = draft.commit_moving(&tag, edits.created.as_deref())?;
    out.written(
        args.json,
        &super::output::Written::tagged(&layout, &tagged, source.as_deref()),
    )?;
    Ok(Status::Success)
}
