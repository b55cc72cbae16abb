//! `strata ls`.

use std::path::PathBuf;

use serde::Serialize;
use strata::image::{list, ListEntry};
use strata::Layout;

use super::output::{human_size, Output};
use super::{JsonArg, Status};

/// List every image and artifact in a layout: tag, digest, type, size and platforms; or the
/// tags of a registry repository (docker://[REGISTRY/]REPOSITORY), every page of them.
///
/// An artifact's TYPE is "artifact" and its last column its artifact type, then "->" and the
/// digest of the image it refers to (its subject), if any. SIZE is the entry's own: its
/// manifest (or index and the manifests under it), configs and layers, each distinct blob
/// once, not what its subject holds. An entry whose graph is damaged is listed with "?" and
/// a warning; the exit status is 0.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The layout, or docker://[REGISTRY/]REPOSITORY for a repository's tags.
    layout: PathBuf,
    #[command(flatten)]
    json: JsonArg,
    #[command(flatten)]
    registry: super::registry::RegistryArgs,
}

#[derive(Serialize)]
struct TagListing<'a> {
    repository: String,
    tags: &'a [String],
}

/// `ls docker://REPOSITORY`: the tags, one per line.
fn list_tags(text: &str, args: &Args, out: &Output) -> anyhow::Result<Status> {
    let name = super::registry::parse_name(text)?;
    if name.tag.is_some() || name.digest.is_some() {
        super::output::usage!("{text}: ls lists a repository's tags: give docker://[REGISTRY/]REPOSITORY without a tag or digest");
    }
    let client = super::registry::client(&name, &args.registry, out)?;
    let tags = strata::registry::api::list_tags(&client, &name.repository)?;
    if args.json.json {
        out.json(&TagListing {
            repository: format!("{}/{}", name.registry, name.repository),
            tags: &tags,
        })?;
    } else {
        for t in &tags {
            out.line(t)?;
        }
    }
    Ok(Status::Success)
}

#[derive(Serialize)]
struct Listing<'a> {
    images: &'a [ListEntry],
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    if let Some(text) = args
        .layout
        .to_str()
        .filter(|t| t.starts_with(super::registry::REGISTRY_PREFIX))
    {
        return list_tags(text, &args, out);
    }
    if !args.layout.exists() {
        super::registry::hint_registry_spelling(&args.layout.to_string_lossy())?;
    }
    let layout = Layout::open(&args.layout)?;
    let images = list(&layout)?;
    // Several tags often name one damaged manifest: say it once.
    let mut said = std::collections::HashSet::new();
    for broken in images.iter().filter_map(|e| e.error.as_ref()) {
        if said.insert(broken) {
            out.warn(broken);
        }
    }
    if args.json.json {
        out.json(&Listing { images: &images })?;
    } else {
        // The header is no result: -q leaves it out.
        out.summary(format_args!(
            "{:<24} {:<20} {:<10} {:>10}  {}",
            "TAG", "DIGEST", "TYPE", "SIZE", "PLATFORMS / ARTIFACT TYPE -> SUBJECT"
        ))?;
        for e in &images {
            let kind = match &e.artifact_type {
                Some(_) => "artifact",
                None => short_media_type(&e.media_type),
            };
            out.line(format_args!(
                "{:<24} {:<20} {:<10} {:>10}  {}",
                e.tag.as_deref().unwrap_or("<none>"),
                short_digest(&e.digest),
                kind,
                e.size.map(human_size).unwrap_or_else(|| "?".into()),
                details(e)
            ))?;
        }
    }
    // A damaged entry is listed with its error, as the others are: listing worked.
    Ok(Status::Success)
}

/// Platforms, the artifact type, and what the entry refers to, as far as each is known.
fn details(e: &ListEntry) -> String {
    let mut parts = Vec::new();
    if !e.platforms.is_empty() {
        parts.push(e.platforms.join(","));
    }
    if let Some(t) = &e.artifact_type {
        parts.push(t.clone());
    }
    if let Some(s) = &e.subject {
        parts.push(format!("-> {}", short_digest(s)));
    }
    parts.join(" ")
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
