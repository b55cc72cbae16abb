//! `strata import`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use strata::layer::Compression;
use strata::transfer::import::{import, ImportOptions, ImportReport};
use strata::transfer::{Event, Platforms};

use super::output::{human_size, image_line, plural, Output};
use super::{JsonArg, PlatformArg, Status};

/// Import an OCI archive or a docker archive into a layout, verifying every blob.
///
/// An OCI archive is a tar of an image layout, plain or gzip/zstd-compressed; a docker
/// archive is `docker save` output, legacy or OCI form. The archive is read as one stream,
/// never unpacked anywhere; every blob is verified before it is published, tags appear only
/// when all their blobs are in, and a failed import leaves the layout as it was. A blob
/// the archive carries that LAYOUT already has is hashed there, and replaced if damaged. An
/// archive that gives one tag to two images is refused.
///
/// A multi-platform image the archive holds only in part (`ctr image export`, BuildKit's OCI
/// exporter: the whole index, the blobs of some platforms) is imported with the platforms
/// whose blobs are all there: its tag names a new index listing just those (its own digest;
/// the original's other fields kept), and the platforms left out are named on stderr.
/// --platform takes one platform's manifest instead, --all-platforms the index as it is;
/// either fails if what it names is not whole in the archive.
///
/// With --dry-run, the whole import happens but for publishing: an archive can be checked
/// before it is carried over (against the receiver's last known state, or an empty layout).
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::threads())]
pub struct Args {
    /// The archive, or - for stdin.
    #[arg(value_name = "ARCHIVE|-")]
    archive: String,
    /// The layout to import into (created if missing; with --dry-run, a missing layout
    /// stands for an empty one and is not created).
    #[arg(value_parser = super::values::new_layout)]
    layout: PathBuf,
    /// Tag the image NAME instead of with the archive's tags (the archive must hold one
    /// image).
    #[arg(long, value_name = "NAME", value_parser = super::values::tag)]
    tag: Option<String>,
    /// Move tags that already name other images in LAYOUT.
    #[arg(long)]
    force: bool,
    /// How to store docker archive layers (uncompressed in the archive; diff_ids are kept).
    /// An OCI archive's blobs are stored as they are, digests kept.
    #[arg(long, value_enum, default_value_t = Compress::Gzip)]
    compress: Compress,
    #[command(flatten)]
    platform: PlatformArg,
    /// Take every platform of a multi-platform index: the index goes as it is, and every
    /// platform's blobs must be in the archive.
    #[arg(long, conflicts_with = "platform")]
    all_platforms: bool,
    /// Read, verify and check everything, publish nothing: LAYOUT is left as it was.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    json: JsonArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Compress {
    Gzip,
    Zstd,
    None,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let options = ImportOptions {
        tag: args.tag.clone(),
        force: args.force,
        compression: match args.compress {
            Compress::Gzip => Compression::Gzip,
            Compress::Zstd => Compression::Zstd,
            Compress::None => Compression::None,
        },
        total: None,
        platforms: if args.all_platforms {
            Some(Platforms::All)
        } else {
            args.platform.given()?.map(Platforms::One)
        },
        dry_run: args.dry_run,
    };
    // Opened before the layout is created, so an unreadable archive creates nothing.
    let file = if args.archive == "-" {
        None
    } else {
        let path = Path::new(&args.archive);
        Some(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?)
    };
    let dest = strata::Layout::open_or_create(&args.layout)?;
    let mut bar = out.transfer_progress("import");
    let mut progress = |e: Event<'_>| bar.event(e);
    let result = match file {
        None => import(
            std::io::stdin().lock(),
            dest.layout(),
            &options,
            &mut progress,
        ),
        Some(file) => {
            let total = file.metadata().ok().map(|m| m.len());
            let options = ImportOptions { total, ..options };
            import(file, dest.layout(), &options, &mut progress)
        }
    };
    bar.clear();
    // A layout made only to be checked against goes again, as after a failure.
    if result.is_err() || args.dry_run {
        dest.discard();
    }
    let report = result.map_err(|e| name_archive(e, &args.archive))?;
    for l in &report.left_out {
        let missing = if l.missing == [l.digest.clone()] {
            "its manifest".to_owned()
        } else {
            l.missing.join(", ")
        };
        out.warn(format_args!(
            "{}: platform {} ({}) left out: the archive lacks {missing}",
            l.image, l.platform, l.digest
        ));
    }
    if args.json.json {
        out.json(&report)?;
        return Ok(Status::Success);
    }
    print(&report, out)?;
    Ok(Status::Success)
}

/// An error in the archive's own bytes or documents names the archive, as every command
/// names the input file at fault (the library knows only a stream).
fn name_archive(e: strata::transfer::Error, archive: &str) -> anyhow::Error {
    use strata::transfer::Error as E;
    // A layout error is the archive's too (its documents were read from it), unless it is
    // the destination's I/O (a full disk).
    let in_archive = matches!(
        e,
        E::Archive(_) | E::Member { .. } | E::BadArchive { .. } | E::MissingBlobs { .. }
    ) || matches!(&e, E::Layout(inner) if !matches!(inner, strata::Error::Io { .. }));
    if in_archive && archive != "-" {
        anyhow::Error::new(e).context(archive.to_owned())
    } else {
        e.into()
    }
}

fn print(report: &ImportReport, out: &Output) -> anyhow::Result<()> {
    for image in &report.images {
        out.print(image_line(&image.digest, image.tag.as_deref()))?;
    }
    for r in &report.referrers {
        out.print(format_args!("{r} (referrer)"))?;
    }
    if !report.ignored.is_empty() {
        out.info(format_args!(
            "ignored archive members: {}",
            report.ignored.join(", ")
        ));
    }
    out.note(format_args!(
        "{} {} ({} archive): {} {} ({}), {} already present",
        if report.dry_run {
            "dry run: would import"
        } else {
            "imported"
        },
        // Images, not tags: one image under two tags is one.
        plural(
            report
                .images
                .iter()
                .map(|i| &i.digest)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            "image",
            "images"
        ),
        report.format,
        plural(report.blobs_written, "blob", "blobs"),
        if report.dry_run {
            "to write"
        } else {
            "written"
        },
        human_size(report.bytes_written),
        report.blobs_present
    ));
    Ok(())
}
