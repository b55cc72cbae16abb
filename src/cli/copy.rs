//! `strata copy`.

use strata::layout::reference::Target;
use strata::transfer::copy::{copy, CopyOptions};
use strata::transfer::{choose, Event, Platforms};

use super::output::{human_size, image_line, Output};
use super::{JsonArg, PlatformArg, Status};

/// Copy an image or index to another layout, linking blobs on one file system.
///
/// The destination is created if missing. Only the blobs it lacks are added. On one file
/// system they are reflinked or hard-linked instead of copied: a linked blob must be a
/// regular file of the right size, and its content is not re-read unless --verify is given
/// (a link passes on the source's bytes unchanged; `strata fsck` checks the source).
/// Copied bytes and every index, manifest and config are always hashed. With --referrers,
/// the manifests whose subject is the image come too.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// The image: LAYOUT:TAG or LAYOUT@DIGEST; a bare LAYOUT (with a bare destination)
    /// copies every tagged image, as `skopeo sync` does.
    #[arg(value_name = "SRCREF")]
    source: String,
    /// The destination: LAYOUT:TAG, or LAYOUT to keep the source's tag.
    #[arg(value_name = "DSTREF")]
    dest: String,
    #[command(flatten)]
    platform: PlatformArg,
    /// Copy every platform of a multi-platform index: the index goes as it is.
    #[arg(long, conflicts_with = "platform")]
    all_platforms: bool,
    /// Also copy the manifests whose subject is the image (signatures, SBOMs).
    #[arg(long)]
    referrers: bool,
    /// Move the destination tag if it names another image.
    #[arg(long)]
    force: bool,
    /// Hash every linked blob before it is published, as copied ones are, and every blob the
    /// destination already has, replacing any that is damaged.
    #[arg(long)]
    verify: bool,
    /// With a bare source layout, only the tags this regular expression matches (the whole
    /// tag: `v1\..*` takes v1.0 and v1.2, not xv1.0).
    #[arg(long, value_name = "REGEX", value_parser = whole_match)]
    tags: Option<regex::Regex>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let platforms = if args.all_platforms {
        Platforms::All
    } else {
        Platforms::One(args.platform.resolve()?)
    };
    let source_ref = super::parse_reference(&args.source)?;
    let dest_ref = super::parse_reference(&args.dest)?;
    let bare = |t: &Target| matches!(t, Target::Default);
    if bare(&source_ref.target) && bare(&dest_ref.target) {
        // A mirror: each tag as it is (an index whole) unless --platform picks one.
        let platforms = match args.platform.given()? {
            Some(p) => Platforms::One(p),
            None => Platforms::All,
        };
        return sync(&args, &source_ref.layout, &dest_ref.layout, &platforms, out);
    }
    if args.tags.is_some() {
        super::output::usage!("--tags chooses among a bare source layout's tags: give SRCREF as LAYOUT and DSTREF as LAYOUT");
    }
    let source = choose(&source_ref, &platforms)?;
    let tag = match &dest_ref.target {
        Target::Tag(t) => Some(t.clone()),
        Target::Default => None,
        Target::Digest(_) => {
            super::output::usage!(
                "{}: DSTREF is LAYOUT or LAYOUT:TAG, not a digest",
                args.dest
            )
        }
    };
    let dest = strata::Layout::open_or_create(&dest_ref.layout)?;
    let mut bar = out.transfer_progress("copy");
    let mut progress = |e: Event<'_>| bar.event(e);
    let options = CopyOptions {
        referrers: args.referrers,
        force: args.force,
        verify: args.verify,
    };
    let result = copy(
        &source,
        dest.layout(),
        tag.as_deref(),
        options,
        &mut progress,
    );
    bar.clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            dest.discard();
            return Err(e.into());
        }
    };
    if args.json.json {
        out.json(&report)?;
        return Ok(Status::Success);
    }
    for r in &report.referrers {
        out.print(format_args!("{r} (referrer)"))?;
    }
    out.print(image_line(&report.digest, report.tag.as_deref()))?;
    out.note(format_args!(
        "copied to {}: {} linked, {} reflinked, {} copied ({}), {} already present",
        dest.layout().root().display(),
        super::output::plural(report.blobs_linked, "blob", "blobs"),
        report.blobs_reflinked,
        report.blobs_copied,
        human_size(report.bytes),
        report.blobs_present
    ));
    Ok(Status::Success)
}

/// `--tags`: anchored, so the expression must match a whole tag.
fn whole_match(text: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{text})$")).map_err(|e| e.to_string())
}

/// A bare source and destination: every tagged image (matching --tags) under its tag.
fn sync(
    args: &Args,
    source: &std::path::Path,
    dest: &std::path::Path,
    platforms: &Platforms,
    out: &Output,
) -> anyhow::Result<Status> {
    let layout = strata::Layout::open(source)?;
    let mut tags: Vec<String> = layout
        .read_index()?
        .index
        .manifests
        .iter()
        .filter_map(|d| d.ref_name().map(str::to_owned))
        .filter(|t| args.tags.as_ref().is_none_or(|re| re.is_match(t)))
        .collect();
    tags.sort();
    tags.dedup();
    if tags.is_empty() {
        anyhow::bail!(
            "{}: no tag to copy{}",
            source.display(),
            if args.tags.is_some() {
                " matches --tags"
            } else {
                ""
            }
        );
    }
    let creation = strata::Layout::open_or_create(dest)?;
    let options = CopyOptions {
        referrers: args.referrers,
        force: args.force,
        verify: args.verify,
    };
    let mut reports = Vec::new();
    for tag in &tags {
        let reference = strata::layout::reference::Reference {
            layout: source.to_path_buf(),
            target: Target::Tag(tag.clone()),
        };
        let chosen = choose(&reference, platforms)?;
        let mut bar = out.transfer_progress("copy");
        let mut progress = |e: Event<'_>| bar.event(e);
        let result = copy(
            &chosen,
            creation.layout(),
            Some(tag),
            options,
            &mut progress,
        );
        bar.clear();
        match result {
            Ok(report) => reports.push(report),
            Err(e) if reports.is_empty() => {
                creation.discard();
                return Err(e.into());
            }
            // What was copied stays (each image went in whole); the error says where it stopped.
            Err(e) => return Err(anyhow::Error::new(e).context(format!("copying tag {tag}"))),
        }
    }
    if args.json.json {
        #[derive(serde::Serialize)]
        struct Synced<'a, T: serde::Serialize> {
            images: &'a [T],
        }
        out.json(&Synced { images: &reports })?;
        return Ok(Status::Success);
    }
    for report in &reports {
        for r in &report.referrers {
            out.print(format_args!("{r} (referrer)"))?;
        }
        out.print(image_line(&report.digest, report.tag.as_deref()))?;
    }
    out.note(format_args!(
        "copied {} to {}",
        super::output::plural(reports.len(), "image", "images"),
        creation.layout().root().display()
    ));
    Ok(Status::Success)
}
