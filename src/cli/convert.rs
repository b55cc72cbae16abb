//! `strata convert`.

use strata::image::convert::{convert_reporting, ConvertOptions, ConvertReport, Format};
use strata::layout::LockMode;
use strata::Layout;

use super::build_args::{output_tag, CompressArg};
use super::output::Output;
use super::{JsonArg, Status};

/// Recompress an image's layers (diff_ids unchanged) and switch its media types between
/// OCI and Docker schema 2; an index is converted platform by platform. Blobs that do not
/// change are kept. Docker schema 2 has no annotations, artifactType or subject: --format
/// docker drops them (-v lists what went).
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::threads())]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// The image or index: LAYOUT:TAG or LAYOUT@DIGEST.
    #[arg(value_name = "REF")]
    reference: String,
    /// Tag the result with this tag instead of moving REF's.
    #[arg(long, value_parser = super::values::tag)]
    tag: Option<String>,
    /// The layers' compression (default: each keeps its own).
    #[arg(long, value_enum)]
    compress: Option<CompressArg>,
    /// The level of the recompressed layers: gzip 0 to 9, zstd 1 to 19 (default 3 for both;
    /// lower is faster and larger). Layers already in that compression are kept as they are.
    #[arg(long, value_name = "N", requires = "compress")]
    compress_level: Option<u32>,
    /// The media types: oci or docker (default: as they are).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    #[command(flatten)]
    json: JsonArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Oci,
    Docker,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let reference = super::parse_reference(&args.reference)?;
    let tag = output_tag(&reference, args.tag.as_deref())?;
    let compression = match args.compress {
        None => None,
        Some(CompressArg::Auto) => {
            super::output::usage!(
                "--compress auto keeps nothing to convert: give gzip, zstd or none"
            )
        }
        Some(c) => Some(c.pick(strata::layer::Compression::Gzip)),
    };
    if let (Some(compression), Some(level)) = (compression, args.compress_level) {
        match strata::layer::write::levels(compression) {
            None => super::output::usage!("--compress none has no --compress-level"),
            Some(range) if !range.contains(&level) => super::output::usage!(
                "--compress-level {level}: {} takes {} to {}",
                compression.name(),
                range.start(),
                range.end()
            ),
            Some(_) => {}
        }
    }
    let options = ConvertOptions {
        compression,
        format: args.format.map(|f| match f {
            FormatArg::Oci => Format::Oci,
            FormatArg::Docker => Format::Docker,
        }),
        level: args.compress_level,
    };
    let layout = Layout::open(&reference.layout)?;
    let (tagged, source) = {
        let _lock = layout.lock_gc(LockMode::Shared)?;
        let entry = strata::image::resolve_entry(&layout, &reference.target)?;
        let mut report = ConvertReport::default();
        let desc = convert_reporting(&layout, &entry, options, &mut report)?;
        for layer in &report.layers {
            out.layer_written(layer);
        }
        for field in &report.dropped {
            out.info(format_args!(
                "dropped {field}: Docker schema 2 has no place for it"
            ));
        }
        let tagged = strata::image::mutate::move_tag(&layout, &tag, &desc)?;
        (tagged, entry.digest)
    };
    out.written(
        args.json,
        &super::output::Written::tagged(&reference.layout, &tagged, Some(&source)),
    )?;
    Ok(Status::Success)
}
