//! `strata artifact push|attach|pull`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use strata::image::artifact::{
    parse_file_arg, pull, push, subject_of, title_leaves_pull_dir, titles, ArtifactFile,
    ArtifactSpec, Placement, PullOptions,
};
use strata::image::{resolve_entry, resolve_image};
use strata::layout::reference::Reference;
use strata::Layout;

use super::build_args::{in_layout, parse_pair, reference_tag};
use super::output::Output;
use super::{JsonArg, PlatformArg, Status};

/// OCI artifacts: files (signatures, SBOMs, charts, ...) stored as manifests with an
/// artifactType, optionally referring to an image.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    Push(PushArgs),
    Attach(AttachArgs),
    Pull(PullArgs),
}

/// What `push` and `attach` share.
#[derive(Debug, clap::Args)]
pub struct Content {
    /// The artifact type (a media type, e.g. application/vnd.example.sbom+json).
    #[arg(long, value_name = "TYPE", value_parser = super::values::media_type)]
    artifact_type: String,
    /// Files, each FILE[:MEDIATYPE] (default application/octet-stream), titled by their
    /// path as given (dir/a.txt stays dir/a.txt; absolute paths and paths with ".." are
    /// refused, as oras refuses absolute ones, unless --disable-path-validation). A directory becomes one tar+gzip layer, as
    /// oras stores it (titled by its path, with io.deis.oras.content.digest and
    /// io.deis.oras.content.unpack=true), made as build makes layers (owner 0:0, mtimes
    /// clamped to SOURCE_DATE_EPOCH).
    #[arg(value_name = "FILE[:MEDIATYPE]")]
    files: Vec<String>,
    /// Accept files given by an absolute path or one with "..", titled by their file name
    /// (oras, given this flag, titles them by the whole path, which no pull writes back).
    #[arg(long)]
    disable_path_validation: bool,
    /// A config file, FILE:MEDIATYPE (default: the empty descriptor).
    #[arg(long, value_name = "FILE:MEDIATYPE")]
    config: Option<String>,
    /// Manifest annotation KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_pair)]
    annotation: Vec<(String, String)>,
}

impl Content {
    fn spec(&self) -> anyhow::Result<ArtifactSpec> {
        let config = match &self.config {
            Some(c) => {
                let f: ArtifactFile = parse_file_arg(c)?;
                if f.media_type == strata::image::artifact::DEFAULT_FILE_TYPE && !c.contains(':') {
                    super::output::usage!("--config {c}: give FILE:MEDIATYPE");
                }
                Some(f)
            }
            None => None,
        };
        let annotations: BTreeMap<String, String> = self.annotation.iter().cloned().collect();
        let files: Vec<ArtifactFile> = self
            .files
            .iter()
            .map(|f| parse_file_arg(f))
            .collect::<Result<_, _>>()?;
        // As oras: every such path named at once, before anything is read or written.
        let leaving: Vec<String> = files
            .iter()
            .filter(|f| title_leaves_pull_dir(&f.path))
            .map(|f| f.path.display().to_string())
            .collect();
        if !self.disable_path_validation && !leaving.is_empty() {
            super::output::usage!(
                "{}: a file's title is its path as given, and an absolute path or one with .. \
                 leads out of the directory it is pulled into; give it relative to the directory \
                 strata runs in, or --disable-path-validation to title it by its file name",
                leaving.join(", ")
            );
        }
        let spec = ArtifactSpec {
            artifact_type: self.artifact_type.clone(),
            files,
            config,
            annotations,
            subject: None,
            outside_titled_by_name: self.disable_path_validation,
        };
        // A path that names no file (`.`) or two that make one title are wrong values too.
        titles(&spec).map_err(|e| anyhow::Error::new(super::output::Usage(e.to_string())))?;
        Ok(spec)
    }
}

/// Store files as an artifact manifest and tag it.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::threads())]
#[command(arg = super::shared::layout())]
pub struct PushArgs {
    /// LAYOUT:TAG to write (the layout is created if missing).
    reference: String,
    #[command(flatten)]
    content: Content,
    /// Make it refer to this image (LAYOUT-relative reference in the same layout: :TAG or
    /// @DIGEST form, or a full LAYOUT:TAG).
    #[arg(long, value_name = "REF")]
    subject: Option<String>,
    #[command(flatten)]
    platform: PlatformArg,
    #[command(flatten)]
    json: super::JsonArg,
}

/// Store files as an artifact referring to an image; kept in index.json untagged.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::threads())]
#[command(arg = super::shared::layout())]
pub struct AttachArgs {
    /// The image the artifact describes (LAYOUT:TAG or LAYOUT@DIGEST).
    #[arg(value_name = "REF")]
    subject: String,
    #[command(flatten)]
    content: Content,
    #[command(flatten)]
    platform: PlatformArg,
    #[command(flatten)]
    json: super::JsonArg,
}

/// Write an artifact's files into a directory by their titles, verified. A directory layer
/// (io.deis.oras.content.unpack=true, as oras and push write them) is unpacked to
/// DIR/TITLE, which must not exist, its names checked as unpack checks them and its
/// uncompressed digest against io.deis.oras.content.digest. Layers without a title are
/// skipped with a warning.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct PullArgs {
    /// The artifact (LAYOUT:TAG or LAYOUT@DIGEST).
    reference: String,
    /// Directory to write into (created if missing).
    dir: PathBuf,
    /// Replace regular files at exactly the titles' paths (nothing else is ever replaced,
    /// deleted or followed).
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    platform: PlatformArg,
    #[command(flatten)]
    json: JsonArg,
}

/// Resolves `reference` in `layout` to the descriptor an artifact's subject points at:
/// with --platform, the platform's manifest through an index, else the entry itself.
fn subject_descriptor(
    layout: &Layout,
    reference: &Reference,
    platform: &PlatformArg,
) -> anyhow::Result<strata::spec::Descriptor> {
    let desc = match platform.given()? {
        Some(p) => resolve_image(layout, &reference.target, &p)?.descriptor,
        None => resolve_entry(layout, &reference.target)?,
    };
    Ok(subject_of(&desc)?)
}

/// `-v`'s line per file blob of the artifact just written, as the other writers give per
/// layer (a directory's tar+gzip included).
fn blob_lines(out: &Output, layout: &Layout, desc: &strata::spec::Descriptor) {
    if out.verbosity() == 0 {
        return;
    }
    let Ok(Some((_, _, strata::layout::walk::Node::Manifest(manifest)))) = layout.read_node(desc)
    else {
        return;
    };
    for layer in &manifest.layers {
        let title = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(strata::image::artifact::ANNOTATION_TITLE))
            .map_or("(untitled)", String::as_str);
        out.info(format_args!(
            "blob {} written: {}, {}, {title}",
            layer.digest,
            super::output::size_and_bytes(layer.size.max(0) as u64),
            layer.media_type
        ));
    }
}

pub fn run(command: Command, out: &Output) -> anyhow::Result<Status> {
    match command {
        Command::Push(args) => {
            let reference = super::parse_reference(&args.reference)?;
            let tag = reference_tag(&reference)?;
            let mut spec = args.content.spec()?;
            // `:TAG` and `@DIGEST` name the layout being pushed to, as --help says.
            let subject = args
                .subject
                .as_deref()
                .map(|s| strata::layout::reference::Reference::parse_in(s, Some(&reference.layout)))
                .transpose()
                .map_err(|e| anyhow::Error::new(super::output::Usage(format!("--subject: {e}"))))?;
            if let Some(subject) = &subject {
                if subject.layout != reference.layout {
                    super::output::usage!(
                        "--subject {}: the subject must be in {}",
                        subject,
                        reference.layout.display()
                    );
                }
            }
            let desc = in_layout(&reference, |layout| {
                if let Some(subject) = &subject {
                    spec.subject = Some(subject_descriptor(layout, subject, &args.platform)?);
                }
                let desc = push(layout, &spec, &Placement::Tag(tag.clone()))?;
                blob_lines(out, layout, &desc.entry);
                Ok(desc)
            })?;
            out.written(
                args.json,
                &super::output::Written::tagged(&reference.layout, &desc, None),
            )?;
        }
        Command::Attach(args) => {
            let subject = super::parse_reference(&args.subject)?;
            let mut spec = args.content.spec()?;
            let layout = Layout::open(&subject.layout)?;
            spec.subject = Some(subject_descriptor(&layout, &subject, &args.platform)?);
            let desc = push(&layout, &spec, &Placement::Untagged)?;
            blob_lines(out, &layout, &desc.entry);
            out.written(
                args.json,
                &super::output::Written::new(&subject.layout, None, &desc.entry),
            )?;
        }
        Command::Pull(args) => {
            let reference = super::parse_reference(&args.reference)?;
            let layout = Layout::open(&reference.layout)?;
            let resolved = resolve_image(&layout, &reference.target, &args.platform.resolve()?)?;
            let options = PullOptions {
                overwrite: args.overwrite,
            };
            let report = pull(&layout, &resolved.manifest, &args.dir, options)?;
            for w in &report.warnings {
                out.warn(w);
            }
            let files = report.files;
            if args.json.json {
                #[derive(serde::Serialize)]
                struct Pulled<'a> {
                    manifest: &'a str,
                    files: &'a [strata::image::artifact::PulledFile],
                }
                out.json(&Pulled {
                    manifest: &resolved.descriptor.digest,
                    files: &files,
                })?;
            } else {
                for f in &files {
                    out.line(format_args!("{}  {}", f.digest, f.title))?;
                }
            }
        }
    }
    Ok(Status::Success)
}
