//! `strata index create|add|remove`.

use std::collections::BTreeMap;

use strata::image::multiplatform::{add, create, remove};
use strata::Layout;

use super::build_args::{parse_pair, reference_tag};
use super::output::Output;
use super::Status;

/// Multi-platform image indexes.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    Create(CreateArgs),
    Add(AddArgs),
    Remove(RemoveArgs),
}

/// Make an index over images of the layout (each entry's platform from its config), tagged
/// REF.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct CreateArgs {
    /// LAYOUT:TAG to write.
    reference: String,
    /// An image to include, in the same layout (LAYOUT:TAG, LAYOUT@DIGEST, or :TAG and
    /// @DIGEST for the index's own layout; repeatable, one image per platform).
    #[arg(long = "manifest", value_name = "REF", required = true)]
    manifests: Vec<String>,
    /// Index annotation KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_pair)]
    annotation: Vec<(String, String)>,
    #[command(flatten)]
    json: super::JsonArg,
}

/// Add an image to the index REF names (replacing the entry of the same platform).
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct AddArgs {
    /// The index, LAYOUT:TAG.
    reference: String,
    /// The image to add (LAYOUT:TAG or LAYOUT@DIGEST in the same layout, or :TAG, @DIGEST).
    #[arg(long = "manifest", value_name = "REF")]
    manifest: String,
    #[command(flatten)]
    json: super::JsonArg,
}

/// Remove a platform's entries from the index REF names.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct RemoveArgs {
    /// The index, LAYOUT:TAG.
    reference: String,
    /// The platform to remove, OS/ARCH[/VARIANT].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = super::values::platform)]
    platform: String,
    #[command(flatten)]
    json: super::JsonArg,
}

/// Parses an image reference that must be in `layout`.
fn same_layout(
    layout: &Layout,
    reference: &str,
) -> anyhow::Result<strata::layout::reference::Target> {
    // `:TAG` and `@DIGEST` name the index's own layout, as artifact push's --subject does.
    if reference.is_empty() || reference.starts_with([':', '@']) {
        let r = strata::layout::reference::Reference::parse_in(reference, Some(layout.root()))
            .map_err(|e| anyhow::Error::new(super::output::Usage(format!("--manifest: {e}"))))?;
        return Ok(r.target);
    }
    let r = super::parse_reference(reference)?;
    // A layout that is not there is not the index's (which is): the same refusal.
    let a = match std::fs::canonicalize(&r.layout) {
        Ok(a) => a,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => super::output::usage!(
            "{reference}: index entries must be images of {} ({} does not exist)",
            layout.root().display(),
            r.layout.display()
        ),
        Err(source) => {
            return Err(strata::Error::Io {
                path: r.layout,
                source,
            }
            .into())
        }
    };
    let b = std::fs::canonicalize(layout.root())
        .map_err(|e| anyhow::anyhow!("{}: {e}", layout.root().display()))?;
    if a != b {
        super::output::usage!(
            "{reference}: index entries must be images of {}",
            layout.root().display()
        );
    }
    Ok(r.target)
}

pub fn run(command: Command, out: &Output) -> anyhow::Result<Status> {
    // add and remove edit the index REF names: its tag moving off the old index is the edit.
    let (reference, in_place, desc, json) = match command {
        Command::Create(args) => {
            let reference = super::parse_reference(&args.reference)?;
            let tag = reference_tag(&reference)?;
            let annotations: BTreeMap<String, String> = args.annotation.iter().cloned().collect();
            // Opened, not created: the members must be images of this layout already.
            let layout = Layout::open(&reference.layout)?;
            let members = args
                .manifests
                .iter()
                .map(|m| same_layout(&layout, m))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let desc = create(&layout, &members, &annotations, &tag)?;
            (reference, false, desc, args.json)
        }
        Command::Add(args) => {
            let reference = super::parse_reference(&args.reference)?;
            let tag = reference_tag(&reference)?;
            let layout = Layout::open(&reference.layout)?;
            let member = same_layout(&layout, &args.manifest)?;
            let desc = add(&layout, &reference.target, &member, &tag)?;
            (reference, true, desc, args.json)
        }
        Command::Remove(args) => {
            let reference = super::parse_reference(&args.reference)?;
            let tag = reference_tag(&reference)?;
            let platform = args.platform.parse()?;
            let layout = Layout::open(&reference.layout)?;
            let desc = remove(&layout, &reference.target, &platform, &tag)?;
            (reference, true, desc, args.json)
        }
    };
    out.written(
        json,
        &super::output::Written::tagged(
            &reference.layout,
            &desc,
            desc.moved_from.as_deref().filter(|_| in_place),
        ),
    )?;
    Ok(Status::Success)
}
