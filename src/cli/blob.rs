//! `strata blob`: one verified blob to stdout, or a file stored as a blob (as `crane blob`
//! and `oras blob fetch/push`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use strata::image::resolve_image;
use strata::layout::reference::Target;
use strata::layout::walk::blob_ref;
use strata::layout::LockMode;
use strata::Layout;

use super::output::Output;
use super::{JsonArg, PlatformArg, Status};

/// Write a blob to stdout, verified as it is read: LAYOUT@DIGEST for any blob, or REF with
/// --config or --layer N for one of an image's.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    put: Option<Put>,
    #[command(flatten)]
    get: GetArgs,
}

#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct GetArgs {
    /// LAYOUT@DIGEST, or an image's REF with --config or --layer.
    #[arg(value_name = "REF")]
    reference: Option<String>,
    /// The image's config blob.
    #[arg(long, conflicts_with = "layer")]
    config: bool,
    /// The image's layer N (0 is the lowest), as stored (compressed).
    #[arg(long, value_name = "N")]
    layer: Option<usize>,
    #[command(flatten)]
    platform: PlatformArg,
}

#[derive(Debug, clap::Subcommand)]
enum Put {
    /// Store a file as a blob in an existing layout and print its digest (--json: its
    /// descriptor); it stays until gc, unless something refers to it.
    Put(PutArgs),
}

#[derive(Debug, clap::Args)]
pub struct PutArgs {
    /// The layout (it must exist, as for manifest put: a blob alone is no image).
    layout: PathBuf,
    /// The file to store, or - for stdin.
    file: PathBuf,
    /// The descriptor's media type.
    #[arg(
        long,
        value_name = "TYPE",
        default_value = "application/octet-stream",
        value_parser = super::values::media_type
    )]
    media_type: String,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    match args.put {
        Some(Put::Put(put)) => store(put, out),
        None => fetch(args.get, out),
    }
}

fn fetch(args: GetArgs, out: &Output) -> anyhow::Result<Status> {
    let Some(text) = args.reference.as_deref() else {
        super::output::usage!("give LAYOUT@DIGEST, or REF with --config or --layer N");
    };
    // As export: a blob is bytes for a file or a pipe, which a terminal would take as
    // commands.
    if std::io::stdout().is_terminal() {
        super::output::usage!("refusing to write a blob to a terminal: redirect stdout");
    }
    let reference = super::parse_reference(text)?;
    let layout = Layout::open(&reference.layout)?;
    let _lock = layout.lock_gc(LockMode::Shared)?;
    let mut reader = match (&reference.target, args.config, args.layer) {
        (Target::Digest(digest), false, None) => layout.open_blob_by_digest(digest)?,
        (_, false, None) => super::output::usage!(
            "{text} names an image: give LAYOUT@DIGEST for a blob, or --config or --layer N"
        ),
        (target, config, layer) => {
            let resolved = resolve_image(&layout, target, &args.platform.resolve()?)?;
            let manifest = &resolved.manifest;
            let desc = if config {
                &manifest.config
            } else {
                let n = layer.expect("--config or --layer");
                manifest.layers.get(n).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{text} has {}: there is no layer {n} (the lowest is 0)",
                        super::output::plural(manifest.layers.len(), "layer", "layers")
                    )
                })?
            };
            layout.open_blob(&blob_ref(desc, &format!("{text}: {}", desc.digest))?)?
        }
    };
    // Streamed: a blob that does not match its digest fails at its end, with exit 1 (as
    // crane and oras do); nothing is read past it.
    let mut stdout = std::io::stdout().lock();
    std::io::copy(&mut reader, &mut stdout).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            anyhow::Error::new(reader.explain(e))
        } else {
            e.into()
        }
    })?;
    stdout.flush()?;
    out.info(format_args!("{} verified", reader.blob().digest));
    Ok(Status::Success)
}

fn store(args: PutArgs, out: &Output) -> anyhow::Result<Status> {
    let stdin = args.file.as_os_str() == "-";
    let layout = Layout::open(&args.layout)?;
    let _lock = layout.lock_gc(LockMode::Shared)?;
    let mut input: Box<dyn std::io::Read> = if stdin {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&args.file).map_err(|source| strata::Error::Io {
                path: args.file.clone(),
                source,
            })?,
        )
    };
    let mut writer = layout.blob_writer(strata::digest::Algorithm::Sha256)?;
    std::io::copy(&mut input, &mut writer).map_err(|source| strata::Error::Io {
        path: if stdin {
            PathBuf::from("stdin")
        } else {
            args.file.clone()
        },
        source,
    })?;
    let blob = writer.finish()?;
    let desc = strata::spec::Descriptor::new(&args.media_type, &blob.digest, blob.size);
    if args.json.json {
        out.json(&desc)?;
    } else {
        out.print(&desc.digest)?;
    }
    Ok(Status::Success)
}
