//! `strata add-layer`.

use std::path::PathBuf;

use anyhow::Context;
use strata::layer::write::write_layer;

use super::build_args::LayerEditArgs;
use super::output::Output;
use super::Status;

/// Append an existing uncompressed tar as a new layer, byte for byte (its diff_id is the
/// digest of the tar).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image: LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
    /// The uncompressed tar.
    layer: PathBuf,
    #[command(flatten)]
    edit: LayerEditArgs,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    check_tar(&args.layer)?;
    let (mut draft, tag, compression) = args.edit.open(&args.reference)?;
    let layout = draft.layout().clone();
    let path = args.layer.clone();
    let layer = write_layer(&layout, compression, move |w| {
        let mut file = std::fs::File::open(&path).map_err(|source| strata::Error::Io {
            path: path.clone(),
            source,
        })?;
        std::io::copy(&mut file, w).map_err(|source| strata::Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok(())
    })?;
    out.layer_written(&layer);
    draft.append_layer(
        &layer,
        &args.edit.history.options(),
        &format!(
            "strata add-layer {}",
            super::insert::host_name(&args.layer).display()
        ),
    )?;
    let desc = draft.commit(&tag, None)?;
    out.written(
        args.edit.json,
        &super::output::Written::new(layout.root(), Some(&tag), &desc),
    )?;
    Ok(Status::Success)
}

/// Refuses, before anything is written, a file that is not a tar unpack would take.
fn check_tar(path: &std::path::Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    strata::layer::verify::check_layer(file, &path.display().to_string())?;
    Ok(())
}
