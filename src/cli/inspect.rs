//! `strata inspect`.

use strata::image::{inspect, FileSummary, ImageSummary};
use strata::Layout;

use super::output::{aligned, human_size, size_and_bytes, Output};
use super::{JsonArg, PlatformArg, Status};

/// Show what an image holds: manifest, platform, config, layers, history, entrypoint, env,
/// labels.
///
/// For an artifact: its type, the digest it refers to (subject), its files (title,
/// or "(untitled)", digest, size, media type) and annotations.
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct Args {
    /// The image: LAYOUT, LAYOUT:TAG or LAYOUT@DIGEST; or
    /// docker://[REGISTRY/]REPOSITORY[:TAG|@DIGEST] to read it from a registry (its manifest,
    /// index and config only; no layer is fetched).
    reference: String,
    #[command(flatten)]
    platform: PlatformArg,
    #[command(flatten)]
    json: JsonArg,
    /// Print the exact stored bytes of the manifest, its config, or the index the reference
    /// went through (the layout's index.json when it named a manifest directly).
    #[arg(long, value_enum, conflicts_with = "json")]
    raw: Option<Raw>,
    #[command(flatten)]
    registry: super::registry::RegistryArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Raw {
    Manifest,
    Config,
    Index,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let platform = args.platform.resolve()?;
    // A registry image is read into a scratch layout (documents only) and shown from there.
    let documents = match args
        .reference
        .strip_prefix(super::registry::REGISTRY_PREFIX)
    {
        Some(_) => {
            let name = super::registry::parse_name(&args.reference)?;
            let client = super::registry::client(&name, &args.registry, out)?;
            Some(strata::registry::documents::fetch_documents(
                &client,
                &name,
                &platform,
                std::env::temp_dir(),
            )?)
        }
        None => None,
    };
    let reference = match &documents {
        Some(d) => strata::layout::reference::Reference {
            layout: d.layout.root().to_owned(),
            target: strata::layout::reference::Target::Digest(d.entry.digest.parse()?),
        },
        None => {
            let reference = super::parse_reference(&args.reference)?;
            if !reference.layout.exists() {
                super::registry::hint_registry_spelling(&args.reference)?;
            }
            reference
        }
    };
    // The index REF names is shown as it is: no platform needs picking out of it.
    if let Some(Raw::Index) = args.raw {
        let layout = Layout::open(&reference.layout)?;
        let entry = strata::image::resolve_entry(&layout, &reference.target)?;
        if strata::spec::Kind::of(&entry.media_type) == strata::spec::Kind::Index {
            let blob = strata::layout::walk::blob_ref(&entry, "the index")?;
            out.raw(&layout.read_blob(&blob, strata::layout::JSON_LIMIT, "index")?)?;
            return Ok(Status::Success);
        }
    }
    let (mut summary, resolved) = inspect(&reference, &platform)?;
    if documents.is_some() {
        summary.reference = args.reference.clone();
    }
    match args.raw {
        Some(Raw::Manifest) => out.raw(&resolved.raw)?,
        Some(Raw::Config) => {
            let layout = Layout::open(&reference.layout)?;
            let blob =
                strata::layout::walk::blob_ref(&resolved.manifest.config, "the manifest's config")?;
            out.raw(&layout.read_blob(&blob, strata::layout::JSON_LIMIT, "config")?)?;
        }
        Some(Raw::Index) => match resolved.indexes.last() {
            Some((_, raw, _)) => out.raw(raw)?,
            None => out.raw(&Layout::open(&reference.layout)?.read_index()?.raw)?,
        },
        None if args.json.json => out.json(&summary)?,
        None => print_human(&summary, out)?,
    }
    Ok(Status::Success)
}

fn print_human(s: &ImageSummary, out: &Output) -> std::io::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    out.line(format_args!("Reference:  {}", s.reference))?;
    if s.entry.digest != s.manifest.digest {
        out.line(format_args!(
            "Index:      {} ({})",
            s.entry.digest, s.entry.media_type
        ))?;
    }
    out.line(format_args!(
        "Manifest:   {} ({})",
        s.manifest.digest, s.manifest.media_type
    ))?;
    if let Some(at) = &s.artifact_type {
        out.line(format_args!("Artifact:   {at}"))?;
    }
    if let Some(subject) = &s.subject {
        out.line(format_args!("Subject:    {subject}"))?;
    }
    if let Some(files) = &s.files {
        // An artifact has no platform, entrypoint or history: its files say what it is.
        return print_artifact(s, files, out);
    }
    out.line(format_args!("Platform:   {}", opt(&s.platform)))?;
    print_config_and_size(s, out)?;
    out.line(format_args!("Created:    {}", opt(&s.created)))?;
    out.line(format_args!("Author:     {}", opt(&s.author)))?;
    let list = |v: &Option<Vec<String>>| v.as_ref().map_or("-".into(), |v| format!("{v:?}"));
    out.line(format_args!("Entrypoint: {}", list(&s.entrypoint)))?;
    out.line(format_args!("Cmd:        {}", list(&s.cmd)))?;
    out.line(format_args!("WorkingDir: {}", opt(&s.working_dir)))?;
    out.line(format_args!("User:       {}", opt(&s.user)))?;
    section(out, "Env", s.env.iter().cloned())?;
    section(
        out,
        "Labels",
        s.labels.iter().map(|(k, v)| format!("{k}={v}")),
    )?;
    section(
        out,
        "Annotations",
        s.annotations.iter().map(|(k, v)| format!("{k}={v}")),
    )?;
    section(out, "ExposedPorts", s.exposed_ports.iter().cloned())?;
    section(out, "Volumes", s.volumes.iter().cloned())?;
    section(
        out,
        "Layers",
        s.layers.iter().map(|l| {
            format!(
                "{}  {:>10}  {}",
                l.digest,
                human_size(l.size.max(0) as u64),
                l.media_type
            )
        }),
    )?;
    section(
        out,
        "History",
        s.history.iter().map(|h| {
            let empty = if h.empty_layer == Some(true) {
                " (empty layer)"
            } else {
                ""
            };
            format!(
                "{}  {}{empty}",
                h.created.as_deref().unwrap_or("-"),
                h.created_by
                    .as_deref()
                    .or(h.comment.as_deref())
                    .unwrap_or("-")
            )
        }),
    )
}

fn print_config_and_size(s: &ImageSummary, out: &Output) -> std::io::Result<()> {
    out.line(format_args!(
        "Config:     {} ({})",
        s.config.digest, s.config.media_type
    ))?;
    out.line(format_args!("Size:       {}", size_and_bytes(s.total_size)))
}

fn print_artifact(s: &ImageSummary, files: &[FileSummary], out: &Output) -> std::io::Result<()> {
    print_config_and_size(s, out)?;
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|f| {
            vec![
                f.title.as_deref().unwrap_or("(untitled)").to_owned(),
                f.digest.clone(),
                human_size(f.size.max(0) as u64),
                f.media_type.clone(),
            ]
        })
        .collect();
    section(
        out,
        "Files",
        aligned(&rows, &[false, false, true, false]).into_iter(),
    )?;
    section(
        out,
        "Annotations",
        s.annotations.iter().map(|(k, v)| format!("{k}={v}")),
    )
}

fn section(out: &Output, title: &str, lines: impl Iterator<Item = String>) -> std::io::Result<()> {
    let lines: Vec<String> = lines.collect();
    if lines.is_empty() {
        return Ok(());
    }
    out.line(format_args!("{title}:"))?;
    for l in lines {
        out.line(format_args!("  {l}"))?;
    }
    Ok(())
}
