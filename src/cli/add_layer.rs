//! `strata add-layer`.

use std::path::PathBuf;

use strata::layer::given;
use strata::layer::Compression;

use super::build_args::{CompressArg, LayerEditArgs};
use super::output::Output;
use super::Status;

/// Append a layer file (a tar: plain, gzip- or zstd-compressed) to an image.
///
/// A plain tar is compressed as --compress says; a compressed one is stored byte for byte
/// with the matching media type. Either way its diff_id is the digest of the tar, and the
/// tar is checked by unpack's rules before anything is written.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::threads())]
pub struct Args {
    /// The image: LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
    /// The layer: a tar, plain, gzip- or zstd-compressed.
    layer: PathBuf,
    #[command(flatten)]
    edit: LayerEditArgs,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let given = given::sniff_file(&args.layer)?;
    let auto = matches!(args.edit.compress, CompressArg::Auto);
    if given != Compression::None && !auto && args.edit.compress.pick(given) != given {
        let asked = clap::ValueEnum::to_possible_value(&args.edit.compress)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        super::output::usage!(
            "{} is {}-compressed and is stored as given; --compress {} would mean \
             recompressing it (decompress it first, or leave --compress out)",
            args.layer.display(),
            given.name(),
            asked
        );
    }
    let (mut draft, tag, compression) = args.edit.open(&args.reference)?;
    let layout = draft.layout().clone();
    let layer = given::store_file(&layout, &args.layer, compression, |checked| {
        given::links_below(&layout, &draft.manifest, &args.layer, checked)
    })?;
    out.layer_written(&layer);
    draft.append_layer(
        &layer,
        &args.edit.image.history.options(),
        &format!(
            "strata add-layer {}",
            super::insert::host_name(&args.layer).display()
        ),
    )?;
    let source = draft.source().map(str::to_owned);
    let tagged = draft.commit_moving(&tag, None)?;
    out.written(
        args.edit.image.json,
        &super::output::Written::tagged(layout.root(), &tagged, source.as_deref()),
    )?;
    Ok(Status::Success)
}
