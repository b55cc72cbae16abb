//! `strata untag`.

use strata::Layout;

use super::output::Output;
use super::Status;

/// Remove a tag (every index.json entry holding it) or every entry of a digest, and say
/// how many entries went; blobs stay until gc.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// LAYOUT:TAG or LAYOUT@DIGEST.
    reference: String,
    #[command(flatten)]
    json: super::JsonArg,
}

/// `untag --json`: the entries that went, as they were in index.json.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Untagged<'a> {
    layout: String,
    removed: Vec<RemovedEntry<'a>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RemovedEntry<'a> {
    tag: Option<&'a str>,
    digest: &'a str,
    media_type: &'a str,
    size: i64,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let reference = super::parse_reference(&args.reference)?;
    let layout = Layout::open(&reference.layout)?;
    let removed = strata::image::untag(&layout, &reference.target)?;
    for entry in &removed {
        out.info(format_args!("removed entry {}", entry.digest));
    }
    if !args.json.json {
        // A tag may be held by several entries (other tools write duplicates): all go, and
        // the count says so.
        out.note(format_args!(
            "untagged {}: removed {}",
            args.reference,
            super::output::plural(removed.len(), "index.json entry", "index.json entries")
        ));
    } else {
        out.json(&Untagged {
            layout: reference.layout.display().to_string(),
            removed: removed
                .iter()
                .map(|d| RemovedEntry {
                    tag: d.ref_name(),
                    digest: &d.digest,
                    media_type: &d.media_type,
                    size: d.size,
                })
                .collect(),
        })?;
    }
    Ok(Status::Success)
}
