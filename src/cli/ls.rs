//! `strata ls`.

use std::path::PathBuf;

use serde::Serialize;
use strata::image::{list, ListEntry};
use strata::Layout;

use super::output::{human_size, Output};
use super::{JsonArg, Status};

/// List every image in a layout: tag, digest, media type, platforms and total size.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The layout.
    layout: PathBuf,
    #[command(flatten)]
    json: JsonArg,
}

#[derive(Serialize)]
struct Listing<'a> {
    images: &'a [ListEntry],
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let layout = Layout::open(&args.layout)?;
    let images = list(&layout)?;
    for broken in images.iter().filter_map(|e| e.error.as_ref()) {
        out.warn(broken);
    }
    if args.json.json {
        out.json(&Listing { images: &images })?;
    } else {
        out.print(format_args!(
            "{:<24} {:<20} {:<10} {:>10}  {}",
            "TAG", "DIGEST", "TYPE", "SIZE", "PLATFORMS"
        ))?;
        for e in &images {
            out.print(format_args!(
                "{:<24} {:<20} {:<10} {:>10}  {}",
                e.tag.as_deref().unwrap_or("<none>"),
                short_digest(&e.digest),
                short_media_type(&e.media_type),
                e.size.map(human_size).unwrap_or_else(|| "?".into()),
                e.platforms.join(",")
            ))?;
        }
    }
    Ok(if images.iter().any(|e| e.error.is_some()) {
        Status::Failure
    } else {
        Status::Success
    })
}

fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => d.to_owned(),
    }
}

fn short_media_type(mt: &str) -> &str {
    use strata::spec::{media_type, Kind};
    match Kind::of(mt) {
        Kind::Index => "index",
        Kind::Manifest if mt == media_type::DOCKER_MANIFEST => "docker",
        Kind::Manifest => "manifest",
        _ => mt,
    }
}
