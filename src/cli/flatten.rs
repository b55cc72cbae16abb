//! `strata flatten`.

use strata::image::tree::Tree;
use strata::layer::write::write_layer;

use super::build_args::LayerEditArgs;
use super::output::Output;
use super::Status;

/// Squash an image to one layer whose unpack is the original's; the config is kept (its
/// diff_ids and history rewritten for the one layer).
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::threads())]
pub struct Args {
    /// The image: LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
    #[command(flatten)]
    edit: LayerEditArgs,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let (mut draft, tag, compression) = args.edit.open(&args.reference)?;
    let layout = draft.layout().clone();
    let tree = Tree::of(&layout, &draft.manifest)?;
    let source = layout.clone();
    let layer = write_layer(&layout, compression, move |w| tree.write_tar(&source, w))?;
    draft.replace_layers(&layer, &args.edit.image.history.options(), "strata flatten")?;
    let source = draft.source().map(str::to_owned);
    let tagged = draft.commit_moving(&tag, None)?;
    out.layer_written(&layer);
    out.written(
        args.edit.image.json,
        &super::output::Written::tagged(layout.root(), &tagged, source.as_deref()),
    )?;
    Ok(Status::Success)
}
