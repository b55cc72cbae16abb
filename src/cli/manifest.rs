//! `strata manifest put`.

use std::path::PathBuf;

use strata::image::manifest_put::put_manifest_from;
use strata::Layout;

use super::output::Output;
use super::{JsonArg, Status};

/// Hand-written manifests and indexes.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    Put(PutArgs),
}

/// Store a manifest or index (its bytes as given) and tag it, after checking it follows the
/// spec and that every blob it names is in the layout, verified.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct PutArgs {
    /// LAYOUT:TAG to write.
    reference: String,
    /// The JSON document, or - for stdin.
    file: PathBuf,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(command: Command, out: &Output) -> anyhow::Result<Status> {
    let Command::Put(args) = command;
    let reference = super::parse_reference(&args.reference)?;
    let tag = super::build_args::output_tag(&reference, None)?;
    let raw = if args.file.as_os_str() == "-" {
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut raw)?;
        raw
    } else {
        std::fs::read(&args.file).map_err(|source| strata::Error::Io {
            path: args.file.clone(),
            source,
        })?
    };
    let layout = Layout::open(&reference.layout)?;
    let source = if args.file.as_os_str() == "-" {
        "the document on stdin".to_owned()
    } else {
        args.file.display().to_string()
    };
    let desc = put_manifest_from(&layout, &raw, &tag, &source)?;
    out.written(
        args.json,
        &super::output::Written::tagged(&reference.layout, &desc, None),
    )?;
    Ok(Status::Success)
}
