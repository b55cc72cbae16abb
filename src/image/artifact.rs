//! OCI artifacts (image-spec 1.1): manifests with an `artifactType`, an empty or
//! artifact-specific config, files as layers named by their title annotation, and an
//! optional `subject` tying them to the image they describe.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::digest::Algorithm;
use crate::error::{Error, IoContext, Result};
use crate::image::mutate::set_tag;
use crate::layer::root::Root;
use crate::layout::reference::validate_tag;
use crate::layout::walk::blob_ref;
use crate::layout::{Layout, LockMode};
use crate::spec::{is_valid_media_type, media_type, to_canonical_json, Descriptor, Manifest};

/// The annotation naming a file in an artifact.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// The media type of files given without one.
pub const DEFAULT_FILE_TYPE: &str = "application/octet-stream";

/// One file to put in an artifact.
#[derive(Debug, Clone)]
pub struct ArtifactFile {
    /// Where it is read from.
    pub path: PathBuf,
    /// Its media type.
    pub media_type: String,
}

/// What an artifact manifest is made of.
#[derive(Debug, Clone, Default)]
pub struct ArtifactSpec {
    /// The artifact type (a media type).
    pub artifact_type: String,
    /// The files, in order.
    pub files: Vec<ArtifactFile>,
    /// A config file and its media type; the empty descriptor when absent.
    pub config: Option<ArtifactFile>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// The manifest or index this artifact refers to.
    pub subject: Option<Descriptor>,
}

/// Parses `FILE[:MEDIATYPE]`. The media type is what follows the last `:` when that is a
/// valid media type; paths with `..` are refused (a title must never lead out of the
/// directory it is pulled into).
pub fn parse_file_arg(arg: &str) -> Result<ArtifactFile> {
    let (path, media_type) = match arg.rsplit_once(':') {
        Some((p, mt)) if is_valid_media_type(mt) => (p, mt.to_owned()),
        _ => (arg, DEFAULT_FILE_TYPE.to_owned()),
    };
    let path = PathBuf::from(path);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(Error::Invalid {
            what: format!("file {}", path.display()),
            reason:
                "paths with .. are refused: the file is stored under its name and pulled back by it"
                    .into(),
        });
    }
    Ok(ArtifactFile { path, media_type })
}

/// The empty descriptor `{}` with its content embedded, as the spec's guidance writes it.
fn empty_descriptor(layout: &Layout) -> Result<Descriptor> {
    let blob = layout.put_blob(b"{}")?;
    let mut d = Descriptor::new(media_type::EMPTY, &blob.digest, blob.size);
    d.data = Some("e30=".into());
    Ok(d)
}

fn put_file(layout: &Layout, file: &ArtifactFile) -> Result<Descriptor> {
    let mut source = File::open(&file.path).at(&file.path)?;
    let mut writer = layout.blob_writer(Algorithm::Sha256)?;
    io::copy(&mut source, &mut writer).at(&file.path)?;
    let blob = writer.finish()?;
    Ok(Descriptor::new(&file.media_type, &blob.digest, blob.size))
}

/// Where [`push`] records an artifact in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Under this tag (moved from any image that had it).
    Tag(String),
    /// Without a tag, as oras keeps attached referrers: it lives as long as its subject.
    Untagged,
}

/// Writes an artifact manifest (and its blobs) into `layout` and records it as `placement`
/// says; returns its descriptor (with `artifactType` set). The gc lock is held shared from
/// the first blob written to the update of `index.json`, so a gc running meanwhile cannot
/// sweep blobs that nothing references yet.
pub fn push(layout: &Layout, spec: &ArtifactSpec, placement: &Placement) -> Result<Descriptor> {
    if let Placement::Tag(tag) = placement {
        validate_tag(tag)?;
    }
    let _lock = layout.lock_gc(LockMode::Shared)?;
    let desc = write_artifact(layout, spec)?;
    match placement {
        Placement::Tag(tag) => set_tag(layout, tag, &desc)?,
        Placement::Untagged => add_untagged(layout, &desc)?,
    }
    Ok(desc)
}

/// Writes the artifact's blobs and manifest; untagged (the caller holds the gc lock).
fn write_artifact(layout: &Layout, spec: &ArtifactSpec) -> Result<Descriptor> {
    if !is_valid_media_type(&spec.artifact_type) {
        return Err(Error::Invalid {
            what: format!("artifact type {:?}", spec.artifact_type),
            reason: "not a media type (type/subtype, RFC 6838)".into(),
        });
    }
    for f in spec.files.iter().chain(&spec.config) {
        if !f.path.is_file() {
            return Err(Error::Invalid {
                what: f.path.display().to_string(),
                reason: "not a regular file".into(),
            });
        }
    }
    let mut layers = Vec::new();
    for file in &spec.files {
        let mut desc = put_file(layout, file)?;
        let title = file
            .path
            .file_name()
            .and_then(OsStr::to_str)
            .ok_or_else(|| Error::Invalid {
                what: file.path.display().to_string(),
                reason: "the file name is not UTF-8, so it cannot be a title annotation".into(),
            })?;
        desc.set_annotation(ANNOTATION_TITLE, Some(title));
        layers.push(desc);
    }
    if layers.is_empty() {
        // The spec's guidance: an artifact without files has one empty layer.
        layers.push(empty_descriptor(layout)?);
    }
    let config = match &spec.config {
        Some(file) => put_file(layout, file)?,
        None => empty_descriptor(layout)?,
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::MANIFEST.into()),
        artifact_type: Some(spec.artifact_type.clone()),
        config,
        layers,
        subject: spec.subject.clone(),
        annotations: (!spec.annotations.is_empty()).then(|| spec.annotations.clone()),
        extra: Default::default(),
    };
    let blob = layout.put_blob(&to_canonical_json(&manifest))?;
    let mut desc = Descriptor::new(media_type::MANIFEST, &blob.digest, blob.size);
    desc.artifact_type = Some(spec.artifact_type.clone());
    if !spec.annotations.is_empty() {
        desc.annotations = Some(spec.annotations.clone());
    }
    Ok(desc)
}

/// Adds `desc` to `index.json` without a tag (as oras keeps attached referrers), unless
/// an entry with its digest is there already.
fn add_untagged(layout: &Layout, desc: &Descriptor) -> Result<()> {
    layout.update_index(|index| {
        if index.manifests.iter().any(|d| d.digest == desc.digest) {
            return Ok((false, ()));
        }
        index.manifests.push(desc.clone());
        Ok((true, ()))
    })
}

/// A subject descriptor for a manifest or index: just what the referrers API needs.
pub fn subject_of(desc: &Descriptor) -> Result<Descriptor> {
    let blob = blob_ref(desc, "the subject's descriptor")?;
    Ok(Descriptor::new(&desc.media_type, &blob.digest, blob.size))
}

/// A file an artifact pull wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PulledFile {
    /// Its title (the path under the directory).
    pub title: String,
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: i64,
}

/// Writes the files of the artifact `manifest` into `dir` by their title annotations,
/// verified, never outside `dir` (titles with `..` or absolute ones are refused; parents are
/// resolved inside `dir`). Layers without a title are skipped.
pub fn pull(layout: &Layout, manifest: &Manifest, dir: &Path) -> Result<Vec<PulledFile>> {
    let _lock = layout.lock_gc(LockMode::Shared)?;
    let mut titled = Vec::new();
    for layer in &manifest.layers {
        let Some(title) = layer.annotation(ANNOTATION_TITLE) else {
            continue;
        };
        let rel = safe_title(title)?;
        titled.push((layer, title.to_owned(), rel));
    }
    std::fs::create_dir_all(dir).at(dir)?;
    let mut root = Root::open(dir).at(dir)?;
    let mut out = Vec::new();
    for (layer, title, rel) in titled {
        let blob = blob_ref(layer, &format!("layer {}", layer.digest))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel
            .file_name()
            .expect("a checked title has a name")
            .to_owned();
        let mut created = Vec::new();
        let pfd = root
            .dir(parent, &mut created)
            .at(dir.join(parent))?
            .try_clone()
            .at(dir)?;
        let target = dir.join(&rel);
        let _ = rustix::fs::unlinkat(&pfd, &name, rustix::fs::AtFlags::empty());
        let fd = rustix::fs::openat(
            &pfd,
            &name,
            rustix::fs::OFlags::WRONLY
                | rustix::fs::OFlags::CREATE
                | rustix::fs::OFlags::EXCL
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .map_err(io::Error::from)
        .at(&target)?;
        let mut file = File::from(fd);
        let mut reader = layout.open_blob(&blob)?;
        let copied = io::copy(&mut reader, &mut file);
        if let Err(e) = copied {
            let _ = rustix::fs::unlinkat(&pfd, &name, rustix::fs::AtFlags::empty());
            return Err(reader.explain(e));
        }
        out.push(PulledFile {
            title,
            digest: layer.digest.clone(),
            size: layer.size,
        });
    }
    Ok(out)
}

/// A title as a relative path that stays inside the pull directory.
fn safe_title(title: &str) -> Result<PathBuf> {
    let path = Path::new(title);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(Error::Invalid {
                    what: format!("title annotation {title:?}"),
                    reason: "it would write outside the target directory".into(),
                })
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Error::Invalid {
            what: format!("title annotation {title:?}"),
            reason: "it names no file".into(),
        });
    }
    Ok(out)
}
