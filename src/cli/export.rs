//! `strata export`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use strata::image::time::source_date_epoch;
use strata::transfer::oci_archive::{ExportOptions, ExportReport};
use strata::transfer::{choose, docker_archive, oci_archive, Event, Platforms};
use strata::Layout;

use super::output::{human_size, image_line, plural, Output};
use super::{JsonArg, PlatformArg, Status};

/// Write images to one archive: an OCI image layout as a tar, or the `docker save` format.
///
/// An OCI archive holds just the chosen images (tags kept), each blob once, in a fixed order
/// with fixed headers: the same images always give the same bytes. Every blob is verified as
/// it is read. Referrers (signatures, SBOMs) come only with --referrers.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// The images: LAYOUT:TAG, LAYOUT@DIGEST or LAYOUT (its only image), from any layouts.
    #[arg(required = true, value_name = "REF")]
    references: Vec<String>,
    /// The archive to write (replaced only once it is complete), or - for stdout.
    #[arg(short, long, value_name = "ARCHIVE|-")]
    output: String,
    /// oci: an OCI image layout as a tar, digests kept; docker: for `docker load` and
    /// skopeo's docker-archive: (uncompressed layers, new digests on the other side).
    #[arg(long, value_enum, default_value_t = Format::Oci)]
    format: Format,
    #[command(flatten)]
    platform: PlatformArg,
    /// Take every platform of a multi-platform index: the index goes as it is.
    #[arg(long, conflicts_with = "platform")]
    all_platforms: bool,
    /// Leave out the blobs this layout has (the receiver's last known state): an incremental
    /// archive, which imports only into a layout that has them (oci format only).
    #[arg(long, value_name = "LAYOUT")]
    exclude_present_in: Option<PathBuf>,
    /// Also carry the images' referrers (signatures, SBOMs), as untagged index.json entries
    /// (oci format). Without it an archive of one image lists one image, which is what
    /// skopeo's `oci-archive:FILE` (no image named) and other readers of one image expect.
    #[arg(long)]
    referrers: bool,
    /// The name `docker load` gives the image, NAME:TAG (docker format, one image; default:
    /// its tag in the layout, NAME:latest for a bare name).
    #[arg(long, value_name = "NAME:TAG", value_parser = repo_tag)]
    repo_tag: Option<String>,
    /// The default (referrers left out); kept for scripts written when it was not.
    #[arg(long, hide = true, conflicts_with = "referrers")]
    no_referrers: bool,
    #[command(flatten)]
    json: JsonArg,
}

/// The archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Oci,
    Docker,
    /// The merged filesystem of one image as one tar (whiteouts applied), as `docker
    /// export` gives it.
    Rootfs,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let to_stdout = args.output == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        super::output::usage!(
            "refusing to write an archive to a terminal: redirect stdout or use -o ARCHIVE"
        );
    }
    if args.output.is_empty() {
        super::output::usage!("-o: the name is empty: give the archive's file, or - for stdout");
    }
    // Refused before anything is read: the archive is written beside its name first, and
    // only its rename would find a directory there.
    if !to_stdout && Path::new(&args.output).is_dir() {
        anyhow::bail!(
            "{}: is a directory: give the archive's own name (-o {}/NAME.tar)",
            args.output,
            args.output.trim_end_matches('/')
        );
    }
    let file = (!to_stdout)
        .then(|| super::out_file::target(Path::new(&args.output)))
        .transpose()?;
    if to_stdout && args.json.json {
        super::output::usage!(
            "--json needs -o ARCHIVE: with -o - the archive itself goes to stdout"
        );
    }
    if args.format == Format::Docker && args.all_platforms {
        super::output::usage!(
            "--all-platforms needs --format oci: a docker archive holds single-platform images"
        );
    }
    if args.format == Format::Docker && args.exclude_present_in.is_some() {
        super::output::usage!(
            "--exclude-present-in needs --format oci: docker load cannot take an incremental \
             archive"
        );
    }
    let platforms = if args.all_platforms {
        Platforms::All
    } else {
        Platforms::One(args.platform.resolve()?)
    };
    if args.repo_tag.is_some() && (args.format != Format::Docker || args.references.len() != 1) {
        super::output::usage!(
            "--repo-tag names one image of a docker archive: give one REF and --format docker"
        );
    }
    let mut chosen = args
        .references
        .iter()
        .map(|r| Ok(choose(&super::parse_reference(r)?, &platforms)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let (Some(name), [only]) = (&args.repo_tag, chosen.as_mut_slice()) {
        only.entry
            .set_annotation(strata::spec::ANNOTATION_REF_NAME, Some(name));
    }
    let options = ExportOptions {
        exclude_present_in: args
            .exclude_present_in
            .as_deref()
            .map(Layout::open)
            .transpose()?,
        mtime: source_date_epoch()?.unwrap_or(0).max(0) as u64,
        referrers: args.referrers && !args.no_referrers,
    };
    if let Some(file) = &file {
        let mut read: Vec<&Layout> = chosen.iter().map(|c| &c.layout).collect();
        read.extend(options.exclude_present_in.as_ref());
        strata::transfer::check_archive_path(file.path(), &read)?;
    }
    if args.format == Format::Rootfs {
        return export_rootfs(&args, &chosen, file.as_ref(), out);
    }
    let mut bar = out.transfer_progress("export");
    let mut progress = |e: Event<'_>| bar.event(e);
    let export = |w: &mut dyn Write| -> anyhow::Result<ExportReport> {
        Ok(match args.format {
            Format::Oci => oci_archive::export(&chosen, w, &options, &mut progress)?,
            Format::Docker => docker_archive::export(&chosen, w, &options, &mut progress)?,
            Format::Rootfs => unreachable!("written above"),
        })
    };
    let report = match &file {
        None => super::out_file::to_stdout("the archive", export)?,
        Some(file) => super::out_file::write(file, export)?,
    };
    bar.clear();
    if args.json.json {
        out.json(&report)?;
        return Ok(Status::Success);
    }
    let summary = summary(&report, &args.output);
    if to_stdout {
        for image in &report.images {
            out.info(format_args!(
                "{} {}",
                image.digest,
                image.tag.as_deref().unwrap_or("")
            ));
        }
        out.info(summary);
    } else {
        for image in &report.images {
            out.print(image_line(&image.digest, image.tag.as_deref()))?;
        }
        out.note(summary);
    }
    Ok(Status::Success)
}

/// `--format rootfs`: one image's merged filesystem as a tar.
fn export_rootfs(
    args: &Args,
    chosen: &[strata::transfer::Chosen],
    file: Option<&super::out_file::Target>,
    out: &Output,
) -> anyhow::Result<Status> {
    let [image] = chosen else {
        super::output::usage!("--format rootfs exports one image: give one REF");
    };
    if args.referrers || args.exclude_present_in.is_some() || args.all_platforms {
        super::output::usage!(
            "--format rootfs writes a filesystem: --referrers, --exclude-present-in and \
             --all-platforms do not apply"
        );
    }
    // It has no document to print: ignoring --json would leave a script reading nothing.
    if args.json.json {
        super::output::usage!("--format rootfs prints no JSON document: --json does not apply");
    }
    let target = strata::layout::reference::Target::Digest(image.entry.digest()?);
    let resolved = strata::image::resolve_image(&image.layout, &target, &args.platform.resolve()?)?;
    let _lock = image.layout.lock_gc(strata::layout::LockMode::Shared)?;
    let (layout, manifest) = (&image.layout, &resolved.manifest);
    let one_pass = |w: &mut dyn Write| -> anyhow::Result<Option<u64>> {
        Ok(strata::image::rootfs_tar::write(layout, manifest, w)?)
    };
    // The two orders must not mix: when the one read of each layer cannot give the tree
    // (see rootfs_tar), the tree is read in full and written in its own order.
    let whole_tree = |w: &mut dyn Write| -> anyhow::Result<u64> {
        let tree = strata::image::tree::Tree::of(layout, manifest)?;
        tree.write_tar(layout, w)?;
        Ok(tree.nodes.len().saturating_sub(1) as u64)
    };
    let paths = match file {
        // Bytes on stdout or a stream cannot be taken back: a dry run first says which
        // order applies.
        None | Some(super::out_file::Target::Stream(_)) => {
            let dry = one_pass(&mut std::io::sink())?;
            let write = |w: &mut dyn Write| -> anyhow::Result<u64> {
                match dry {
                    Some(_) => Ok(one_pass(w)?.context("the layers changed while being read")?),
                    None => whole_tree(w),
                }
            };
            match file {
                Some(file) => super::out_file::write(file, write)?,
                None => super::out_file::to_stdout("the filesystem", write)?,
            }
        }
        Some(file) => {
            // A refused one-pass write must leave no file: the refusal is an error to the
            // writer, which then drops its temp file.
            let refused =
                super::out_file::write(file, |w| one_pass(w)?.ok_or(WholeTreeNeeded.into()));
            match refused {
                Err(e) if e.is::<WholeTreeNeeded>() => super::out_file::write(file, whole_tree)?,
                other => other?,
            }
        }
    };
    out.note(format_args!(
        "wrote the filesystem of {} ({}) to {}",
        resolved.descriptor.digest,
        plural(paths as usize, "path", "paths"),
        if file.is_none() {
            "stdout"
        } else {
            &args.output
        }
    ));
    Ok(Status::Success)
}

/// The layers need the whole tree read before the filesystem can be written.
#[derive(Debug)]
struct WholeTreeNeeded;

impl std::fmt::Display for WholeTreeNeeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the layers need the whole tree read first")
    }
}

impl std::error::Error for WholeTreeNeeded {}

fn summary(report: &ExportReport, archive: &str) -> String {
    let mut s = format!(
        "wrote {} ({} archive): {}, {}, {}",
        if archive == "-" { "stdout" } else { archive },
        report.format,
        plural(report.images.len(), "image", "images"),
        plural(report.blobs, "blob", "blobs"),
        human_size(report.archive_bytes)
    );
    if report.excluded > 0 {
        s.push_str(&format!(
            "; left out {} ({}) the receiver has",
            plural(report.excluded, "blob", "blobs"),
            human_size(report.excluded_bytes)
        ));
    }
    s
}

/// `NAME:TAG` as docker takes it (lowercase name, a tag of letters, digits, `_`, `.`, `-`).
fn repo_tag(text: &str) -> Result<String, String> {
    if text.rsplit_once(':').is_none_or(|(_, t)| t.contains('/')) {
        return Err(format!("{text:?}: give NAME:TAG"));
    }
    strata::transfer::docker_archive::docker_repo_tag(text).map_err(|e| e.to_string())
}
