//! `strata init`.

use std::path::PathBuf;

use strata::Layout;

use super::output::Output;
use super::Status;

/// Create an empty OCI image layout.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to create (parents too); must not exist, be empty, or be an empty layout.
    #[arg(value_parser = super::values::new_layout)]
    layout: PathBuf,
    #[command(flatten)]
    json: super::JsonArg,
}

/// `init --json`: whether the layout was made now, and what it holds.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Initialised {
    layout: String,
    created: bool,
    entries: usize,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    // As `git init` in a repository: say what is there and change nothing.
    if args.layout.join("oci-layout").is_file() {
        if let Ok(existing) = Layout::open(&args.layout) {
            let entries = existing.read_index()?.index.manifests.len();
            if entries > 0 {
                out.note(format_args!(
                    "{} is a layout already ({}); left as it was",
                    args.layout.display(),
                    super::output::plural(entries, "index.json entry", "index.json entries")
                ));
                return report(&args, out, false, entries);
            }
        }
    }
    let creation = Layout::create(&args.layout)?;
    if creation.created() {
        out.info(format_args!("created layout {}", args.layout.display()));
    } else {
        // Said as for a layout with entries: a script re-running init learns it made nothing.
        out.note(format_args!(
            "{} is a layout already (empty); left as it was",
            args.layout.display()
        ));
    }
    report(&args, out, creation.created(), 0)
}

fn report(args: &Args, out: &Output, created: bool, entries: usize) -> anyhow::Result<Status> {
    if args.json.json {
        out.json(&Initialised {
            layout: args.layout.display().to_string(),
            created,
            entries,
        })?;
    }
    Ok(Status::Success)
}
