//! `strata rebase`.

use strata::image::mutate::Draft;
use strata::Layout;

use super::build_args::ImageEditArgs;
use super::output::Output;
use super::Status;

/// Move an image's layers above its old base onto a new base (a patched one): the image's
/// config is kept, the history joined, with an entry saying what it now stands on.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image: LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
    /// The base the image was built on (any layout).
    #[arg(long, value_name = "BASEREF")]
    old_base: String,
    /// The base to move it onto (any layout; its blobs are copied in).
    #[arg(long, value_name = "BASEREF")]
    new_base: String,
    #[command(flatten)]
    edit: ImageEditArgs,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let (mut draft, tag) = args.edit.open(&args.reference)?;
    let layout = draft.layout().clone();
    let platform = args.edit.platform.resolve()?;
    let load = |text: &str| -> anyhow::Result<Draft> {
        let base = super::parse_reference(text)?;
        let source = Layout::open(&base.layout)?;
        Ok(Draft::load(&layout, &source, &base.target, &platform)?)
    };
    let old = {
        let base = super::parse_reference(&args.old_base)?;
        let source = Layout::open(&base.layout)?;
        let resolved = strata::image::resolve_image(&source, &base.target, &platform)?;
        let (_, config) = source.read_config(&resolved.manifest.config)?;
        (resolved.manifest, config)
    };
    let new = load(&args.new_base)?;
    let onto = {
        let base = super::parse_reference(&args.new_base)?;
        let source = Layout::open(&base.layout)?;
        strata::image::resolve_image(&source, &base.target, &platform)?
            .descriptor
            .digest
    };
    draft
        .rebase(
            (&old.0, &old.1),
            (&new.manifest, &new.config),
            &onto,
            &args.edit.history.options(),
        )
        .map_err(|e| anyhow::anyhow!("--old-base {}: {e}", args.old_base))?;
    drop(new);
    let source = draft.source().map(str::to_owned);
    let tagged = draft.commit_moving(&tag, None)?;
    out.written(
        args.edit.json,
        &super::output::Written::tagged(layout.root(), &tagged, source.as_deref()),
    )?;
    Ok(Status::Success)
}
