//! OCI artifacts (image-spec 1.1): manifests with an `artifactType`, an empty or
//! artifact-specific config, files as layers named by their title annotation, and an
//! optional `subject` tying them to the image they describe.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use crate::digest::Algorithm;
use crate::error::{Error, IoContext, Result};
use crate::image::mutate::move_tag;
use crate::image::tags::Tagged;
use crate::image::time::source_date_epoch;
use crate::layer::build::{TarOptions, TarWriter};
use crate::layer::source::SourceTree;
use crate::layer::write::write_layer;
use crate::layer::Compression;
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
    /// Title a file whose path leads out of the pull directory (absolute, or with `..`) by
    /// its file name; when false such paths are refused. (oras, told to accept an absolute
    /// path, titles it by the whole path, which no pull writes back unless allowed to write
    /// outside its directory.)
    pub outside_titled_by_name: bool,
}

/// oras's annotation on a directory layer: the digest of the uncompressed tar.
pub const ANNOTATION_CONTENT_DIGEST: &str = "io.deis.oras.content.digest";
/// oras's annotation on a directory layer: `"true"` tells pull to unpack it.
pub const ANNOTATION_UNPACK: &str = "io.deis.oras.content.unpack";

/// Parses `FILE[:MEDIATYPE]`. The media type is what follows the last `:` when that is a
/// valid media type.
pub fn parse_file_arg(arg: &str) -> Result<ArtifactFile> {
    let (path, media_type) = match arg.rsplit_once(':') {
        Some((p, mt)) if is_valid_media_type(mt) => (p, mt.to_owned()),
        _ => (arg, DEFAULT_FILE_TYPE.to_owned()),
    };
    Ok(ArtifactFile {
        path: PathBuf::from(path),
        media_type,
    })
}

/// Whether a file given as `path` would be titled by a path that leads out of the directory
/// the artifact is pulled into: an absolute one, or one with `..`. oras refuses absolute
/// paths unless told to accept them; strata refuses both unless
/// [`ArtifactSpec::outside_titled_by_name`].
pub fn title_leaves_pull_dir(path: &Path) -> bool {
    path.has_root() || path.components().any(|c| c == Component::ParentDir)
}

/// The empty descriptor `{}` with its content embedded, as the spec's guidance writes it.
fn empty_descriptor(layout: &Layout) -> Result<Descriptor> {
    let blob = layout.put_blob(b"{}")?;
    let mut d = Descriptor::new(media_type::EMPTY, &blob.digest, blob.size);
    d.data = Some("e30=".into());
    Ok(d)
}

/// Opens `path` for reading as a regular file. It is checked through the handle: a FIFO
/// or tty in its place must neither block the open nor become the controlling terminal.
/// The path itself may be a symlink (the user named it).
fn open_regular(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let source = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
        .open(path)
        .at(path)?;
    if !source.metadata().at(path)?.is_file() {
        return Err(Error::Invalid {
            what: path.display().to_string(),
            reason: "not a regular file".into(),
        });
    }
    Ok(source)
}

fn put_file(layout: &Layout, mut source: File, file: &ArtifactFile) -> Result<Descriptor> {
    let mut writer = layout.blob_writer(Algorithm::Sha256)?;
    io::copy(&mut source, &mut writer).at(&file.path)?;
    let blob = writer.finish()?;
    Ok(Descriptor::new(&file.media_type, &blob.digest, blob.size))
}

/// Stores the directory `tree` as oras does: one gzip-compressed tar whose entries are
/// under `title` (so a pull into DIR makes DIR/TITLE), annotated with the uncompressed
/// tar's digest and the mark that tells oras (and strata) to unpack it. The tar is strata
/// build's: entries in sorted order, owned by 0:0, mtimes clamped to `SOURCE_DATE_EPOCH`,
/// so the same tree gives the same layer. Without a media type of its own, a directory is
/// the OCI gzip layer type.
fn put_dir(
    layout: &Layout,
    tree: &SourceTree,
    title: &str,
    file: &ArtifactFile,
) -> Result<Descriptor> {
    let options = TarOptions {
        source_date_epoch: source_date_epoch()?,
        owner: Some((0, 0)),
        ..TarOptions::default()
    };
    let prefix = Path::new(title);
    let layer = write_layer(layout, Compression::Gzip, |w| {
        let mut tar = TarWriter::new(w, options);
        let mut cursor = tree.cursor();
        tar.add_as(&mut cursor, Path::new(""), prefix)?;
        for (rel, _) in tree.walk()? {
            tar.add_as(&mut cursor, &rel, &prefix.join(&rel))?;
        }
        tar.finish()?;
        Ok(())
    })?;
    let media_type = if file.media_type == DEFAULT_FILE_TYPE {
        layer.media_type
    } else {
        &file.media_type
    };
    let mut desc = Descriptor::new(media_type, &layer.blob.digest, layer.blob.size);
    desc.set_annotation(ANNOTATION_CONTENT_DIGEST, Some(&layer.diff_id.to_string()));
    desc.set_annotation(ANNOTATION_UNPACK, Some("true"));
    Ok(desc)
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
/// says; returns its entry (with `artifactType` set). The gc lock is held shared from
/// the first blob written to the update of `index.json`, so a gc running meanwhile cannot
/// sweep blobs that nothing references yet.
pub fn push(layout: &Layout, spec: &ArtifactSpec, placement: &Placement) -> Result<Tagged> {
    if let Placement::Tag(tag) = placement {
        validate_tag(tag)?;
    }
    // Everything that can be refused is, before the first blob is written: a refused push
    // leaves the layout as it was, without orphan blobs.
    let sources = open_sources(spec)?;
    let _lock = layout.lock_gc(LockMode::Shared)?;
    let desc = write_artifact(layout, spec, sources)?;
    match placement {
        Placement::Tag(tag) => move_tag(layout, tag, &desc),
        Placement::Untagged => {
            add_untagged(layout, &desc)?;
            Ok(Tagged {
                entry: desc,
                moved_from: None,
            })
        }
    }
}

/// A file to store as it is, or a directory to store as one tar+gzip layer.
enum Source {
    File(File),
    Dir(SourceTree),
}

/// The files of an artifact, opened, with their titles; the config file, opened.
struct Sources {
    files: Vec<(Source, String)>,
    config: Option<File>,
}

/// The title of a file given as `path`: the path as given, as oras records it (`dir/a.txt`
/// stays `dir/a.txt`, so a pull puts it back where it was), spelled plainly (`./` and
/// doubled or trailing slashes dropped). A path leading out of the pull directory (see
/// [`title_leaves_pull_dir`]) is refused, or titled by its file name when `by_name`.
fn title_of(path: &Path, by_name: bool) -> Result<String> {
    let invalid = |reason: &str| Error::Invalid {
        what: path.display().to_string(),
        reason: reason.into(),
    };
    let names: Vec<&OsStr> = if title_leaves_pull_dir(path) {
        if !by_name {
            return Err(invalid(
                "an absolute path or one with .. would be the title, which leads out of the \
                 directory the artifact is pulled into",
            ));
        }
        path.file_name().into_iter().collect()
    } else {
        path.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect()
    };
    if names.is_empty() {
        return Err(invalid("it names no file, so it cannot be a title"));
    }
    let names = names
        .iter()
        .map(|n| n.to_str())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid("the path is not UTF-8, so it cannot be a title annotation"))?;
    Ok(names.join("/"))
}

/// Opens `path` as a regular file, or as a directory tree when it is one (the path itself
/// may be a symlink: the user named it; nothing below it is followed).
fn open_source(path: &Path) -> Result<Source> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        let tree = SourceTree::open(path, true)?;
        // A name the layer could not carry is refused now, before any blob is written.
        for (rel, _) in tree.walk()? {
            if rel.iter().any(|n| {
                n.as_bytes()
                    .starts_with(crate::layer::names::WHITEOUT_PREFIX)
            }) {
                return Err(Error::Invalid {
                    what: tree.host_path(&rel).display().to_string(),
                    reason: "a name starting with .wh. cannot be stored in a layer (it would \
                             read as a whiteout)"
                        .into(),
                });
            }
        }
        return Ok(Source::Dir(tree));
    }
    open_regular(path).map(Source::File)
}

/// The title of each of `spec`'s files, in order (see [`ArtifactSpec::files`]), each once:
/// pull writes a file by its title. Reads nothing: a refusal here is the caller's wrong
/// value (a path that names no file, the same title twice), found before any file is opened.
pub fn titles(spec: &ArtifactSpec) -> Result<Vec<String>> {
    let mut seen = BTreeMap::new();
    let mut titles = Vec::new();
    for file in &spec.files {
        let title = title_of(&file.path, spec.outside_titled_by_name)?;
        if let Some(first) = seen.insert(title.clone(), &file.path) {
            return Err(Error::Invalid {
                what: file.path.display().to_string(),
                reason: format!(
                    "{} has the same name: both would be titled {title:?}, and a pull could \
                     write only one",
                    first.display()
                ),
            });
        }
        titles.push(title);
    }
    // A pull writes each title as a path: one title inside another (`x` and `x/y`) needs
    // `x` to be a directory and a file at once (oras's pull fails the same way).
    for (title, path) in &seen {
        let inside = seen
            .range::<String, _>((std::ops::Bound::Excluded(title), std::ops::Bound::Unbounded))
            .take_while(|(other, _)| other.starts_with(title.as_str()))
            .find(|(other, _)| other.as_bytes().get(title.len()) == Some(&b'/'));
        if let Some((other, other_path)) = inside {
            return Err(Error::Invalid {
                what: other_path.display().to_string(),
                reason: format!(
                    "its title {other:?} is inside {title:?}, the title of {}: a pull would \
                     need {title:?} to be a file and a directory",
                    path.display()
                ),
            });
        }
    }
    Ok(titles)
}

/// Checks the artifact type, the titles (see [`titles`]) and
/// opens every file (see [`open_regular`]) and directory.
fn open_sources(spec: &ArtifactSpec) -> Result<Sources> {
    if !is_valid_media_type(&spec.artifact_type) {
        return Err(Error::Invalid {
            what: format!("artifact type {:?}", spec.artifact_type),
            reason: "not a media type (type/subtype, RFC 6838)".into(),
        });
    }
    let mut files = Vec::new();
    for (file, title) in spec.files.iter().zip(titles(spec)?) {
        let source = open_source(&file.path)?;
        if matches!(source, Source::Dir(_)) && title_leaves_pull_dir(Path::new(&title)) {
            // Its entries are stored under the title: they would be absolute or climb out.
            return Err(Error::Invalid {
                what: file.path.display().to_string(),
                reason: format!(
                    "a directory cannot be titled {title:?}: its entries are named under its title"
                ),
            });
        }
        files.push((source, title));
    }
    let config = spec
        .config
        .as_ref()
        .map(|c| open_regular(&c.path))
        .transpose()?;
    Ok(Sources { files, config })
}

/// Writes the artifact's blobs and manifest; untagged (the caller holds the gc lock).
fn write_artifact(layout: &Layout, spec: &ArtifactSpec, sources: Sources) -> Result<Descriptor> {
    let mut layers = Vec::new();
    for ((source, title), file) in sources.files.into_iter().zip(&spec.files) {
        let mut desc = match source {
            Source::File(source) => put_file(layout, source, file)?,
            Source::Dir(tree) => put_dir(layout, &tree, &title, file)?,
        };
        desc.set_annotation(ANNOTATION_TITLE, Some(&title));
        layers.push(desc);
    }
    if layers.is_empty() {
        // The spec's guidance: an artifact without files has one empty layer.
        layers.push(empty_descriptor(layout)?);
    }
    let config = match (sources.config, &spec.config) {
        (Some(source), Some(file)) => put_file(layout, source, file)?,
        _ => empty_descriptor(layout)?,
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

/// What [`pull`] did.
#[derive(Debug, Clone, Default)]
pub struct PullReport {
    /// The files (and directories) written.
    pub files: Vec<PulledFile>,
    /// What was skipped, and why.
    pub warnings: Vec<String>,
}

/// How [`pull`] treats what is already in the directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullOptions {
    /// Replace regular files at exactly the titles' paths (nothing else is ever replaced).
    pub overwrite: bool,
}

/// Writes the files of the artifact `manifest` into `dir` by their title annotations,
/// verified, never outside `dir` (titles with `..` or absolute ones are refused). Nothing
/// already in `dir` is deleted, replaced or followed: every name is opened relative to its
/// parent's handle without following links, a file, symlink or anything else in the way
/// of a title's directories is an error, and so is anything at a title's own path, except
/// a regular file with `overwrite`. Every check is made before the first write, files are
/// written under temporary names and renamed into place once all are verified, so a
/// refused or failed pull leaves `dir` as it was. Layers without a title are skipped with a
/// warning (the empty descriptor, which stands for "no files", silently). A layer marked
/// for unpacking as oras marks directories is unpacked to `dir/TITLE`, which must not exist:
/// its entries are checked as unpack checks names, and its uncompressed digest against its
/// `io.deis.oras.content.digest` annotation.
pub fn pull(
    layout: &Layout,
    manifest: &Manifest,
    dir: &Path,
    options: PullOptions,
) -> Result<PullReport> {
    let _lock = layout.lock_gc(LockMode::Shared)?;
    let mut titled = Vec::new();
    let mut warnings = Vec::new();
    for layer in &manifest.layers {
        let Some(title) = layer.annotation(ANNOTATION_TITLE) else {
            if layer.media_type != media_type::EMPTY {
                warnings.push(format!(
                    "layer {} ({}) has no title annotation: skipped",
                    layer.digest, layer.media_type
                ));
            }
            continue;
        };
        let rel = safe_title(title)?;
        let blob = blob_ref(layer, &format!("layer {}", layer.digest))?;
        let is_dir = layer.annotation(ANNOTATION_UNPACK) == Some("true");
        titled.push((layer, title.to_owned(), rel, blob, is_dir));
    }
    check_titles(
        titled
            .iter()
            .map(|(_, title, rel, _, _)| (title.as_str(), rel.as_path())),
    )?;
    let made = make_dir(dir)?;
    let pulled = pull_into(layout, &titled, dir, options, &mut warnings);
    if pulled.is_err() {
        // Only directories this pull made, and only if empty (nothing else was put there).
        for d in made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
    Ok(PullReport {
        files: pulled?,
        warnings,
    })
}

/// A titled layer: its descriptor, title, path under the directory, blob, and whether it
/// is a directory to unpack.
type Titled<'a> = (&'a Descriptor, String, PathBuf, crate::spec::BlobRef, bool);

fn pull_into(
    layout: &Layout,
    titled: &[Titled<'_>],
    dir: &Path,
    options: PullOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<PulledFile>> {
    let root = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
    .at(dir)?;
    for (_, _, rel, _, is_dir) in titled {
        check_target(&root, dir, rel, options, *is_dir)?;
    }
    let mut staged = Staged {
        made_dirs: Vec::new(),
        files: Vec::new(),
    };
    let result = (|| {
        for (layer, _, rel, blob, is_dir) in titled {
            let unpack = is_dir.then_some((*layer, &mut *warnings));
            staged.stage(layout, &root, dir, rel, blob, unpack)?;
        }
        staged.commit(options)
    })();
    if result.is_err() {
        staged.undo();
    }
    result?;
    Ok(titled
        .iter()
        .map(|(layer, title, _, _, _)| PulledFile {
            title: title.clone(),
            digest: layer.digest.clone(),
            size: layer.size,
        })
        .collect())
}

/// Refuses titles that collide: the same path twice, or one title under another (which
/// would have to be a file and a directory at once).
fn check_titles<'a>(titles: impl Iterator<Item = (&'a str, &'a Path)>) -> Result<()> {
    let mut seen: BTreeMap<&Path, &str> = BTreeMap::new();
    let titles: Vec<(&str, &Path)> = titles.collect();
    for (title, rel) in &titles {
        if let Some(first) = seen.insert(rel, title) {
            return Err(Error::Invalid {
                what: format!("title annotation {title:?}"),
                reason: format!("{first:?} names the same file: pull would write it twice"),
            });
        }
    }
    for (title, rel) in &titles {
        for parent in rel.ancestors().skip(1) {
            if let Some(file) = seen.get(parent) {
                return Err(Error::Invalid {
                    what: format!("title annotation {title:?}"),
                    reason: format!("it needs a directory where the title {file:?} is a file"),
                });
            }
        }
    }
    Ok(())
}

/// Creates `dir` and missing parents; returns those made, outermost first.
fn make_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && std::fs::symlink_metadata(at).is_err() {
        missing.push(at.to_owned());
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    missing.reverse();
    for (i, d) in missing.iter().enumerate() {
        if let Err(e) = std::fs::create_dir(d) {
            for made in missing[..i].iter().rev() {
                let _ = std::fs::remove_dir(made);
            }
            return Err(e).at(d);
        }
    }
    Ok(missing)
}

const DIR_PATH: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What is in the way of `rel`'s directories or at `rel` itself, as an error; checked
/// before anything is written.
fn check_target(
    root: &OwnedFd,
    dir: &Path,
    rel: &Path,
    options: PullOptions,
    is_dir: bool,
) -> Result<()> {
    let names: Vec<&OsStr> = rel.iter().collect();
    let (name, parents) = names.split_last().expect("a checked title has a name");
    let mut here: Option<OwnedFd> = None;
    let mut host = dir.to_owned();
    for part in parents {
        host.push(part);
        let at = here.as_ref().unwrap_or(root);
        match stat_nofollow(at, part).at(&host)? {
            None => return Ok(()),
            Some(FileType::Directory) => {
                here = Some(
                    rfs::openat(at, *part, DIR_PATH, Mode::empty())
                        .map_err(io::Error::from)
                        .at(&host)?,
                );
            }
            Some(kind) => return Err(in_the_way(&host, kind, "directory")),
        }
    }
    host.push(name);
    let at = here.as_ref().unwrap_or(root);
    match stat_nofollow(at, name).at(&host)? {
        None => Ok(()),
        Some(kind) if is_dir => Err(in_the_way(&host, kind, "new directory")),
        Some(FileType::RegularFile) if options.overwrite => Ok(()),
        Some(FileType::RegularFile) => Err(Error::ChoiceNeeded {
            what: host.display().to_string(),
            reason: "it exists: pull replaces nothing unless told to overwrite".into(),
            choice: crate::Choice::Overwrite,
        }),
        Some(kind) => Err(in_the_way(&host, kind, "regular file")),
    }
}

fn in_the_way(host: &Path, kind: FileType, wanted: &str) -> Error {
    let what = match kind {
        FileType::Symlink => "a symlink (never followed)",
        FileType::Directory => "a directory",
        FileType::RegularFile => "a file",
        _ => "a special file",
    };
    Error::Invalid {
        what: host.display().to_string(),
        reason: format!("it is {what} where the artifact needs a {wanted}: pull never replaces it"),
    }
}

fn stat_nofollow(dir: &OwnedFd, name: &OsStr) -> io::Result<Option<FileType>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A staged file renamed into place: its index in [`Staged::files`], and whether it was
/// swapped with a file that was there (which now has its temporary name).
struct Placed {
    index: usize,
    swapped: bool,
}

/// Files written under temporary names, and the directories made for them.
struct Staged {
    /// (parent handle, name) of each directory made, in order.
    made_dirs: Vec<(OwnedFd, OsString)>,
    /// (parent handle, temporary name, final name, final path, a directory?).
    files: Vec<(OwnedFd, OsString, OsString, PathBuf, bool)>,
}

impl Staged {
    /// Writes the blob into a temporary file beside `rel`, making missing directories on
    /// the way (one name at a time, never following a link); with `unpack` (the layer and
    /// where to warn), unpacks it into a temporary directory there instead.
    fn stage(
        &mut self,
        layout: &Layout,
        root: &OwnedFd,
        dir: &Path,
        rel: &Path,
        blob: &crate::spec::BlobRef,
        unpack: Option<(&Descriptor, &mut Vec<String>)>,
    ) -> Result<()> {
        let names: Vec<&OsStr> = rel.iter().collect();
        let (name, parents) = names.split_last().expect("a checked title has a name");
        let mut here = rfs::openat(root, ".", DIR_PATH, Mode::empty())
            .map_err(io::Error::from)
            .at(dir)?;
        let mut host = dir.to_owned();
        for part in parents {
            host.push(part);
            let next = match rfs::openat(&here, *part, DIR_PATH, Mode::empty()) {
                Err(Errno::NOENT) => {
                    rfs::mkdirat(&here, *part, Mode::from_raw_mode(0o755))
                        .map_err(io::Error::from)
                        .at(&host)?;
                    let parent = here.try_clone().at(&host)?;
                    self.made_dirs.push((parent, part.to_os_string()));
                    rfs::openat(&here, *part, DIR_PATH, Mode::empty())
                }
                other => other,
            };
            here = match next {
                Ok(fd) => fd,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(in_the_way(&host, FileType::Symlink, "directory"))
                }
                Err(e) => return Err(io::Error::from(e)).at(&host),
            };
        }
        host.push(name);
        let temp = OsString::from(format!(
            ".strata-pull-{}-{}",
            std::process::id(),
            self.files.len()
        ));
        if let Some((layer, warnings)) = unpack {
            rfs::mkdirat(&here, &temp, Mode::from_raw_mode(0o700))
                .map_err(io::Error::from)
                .at(&host)?;
            let parent = here.try_clone().at(&host)?;
            self.files.push((
                parent,
                temp.clone(),
                name.to_os_string(),
                host.clone(),
                true,
            ));
            let made = rfs::openat(
                &here,
                &temp,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)
            .at(&host)?;
            return super::artifact_dir::extract(
                layout,
                blob,
                layer.annotation(ANNOTATION_CONTENT_DIGEST),
                rel,
                &made,
                &host,
                warnings,
            );
        }
        let fd = rfs::openat(
            &here,
            &temp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(io::Error::from)
        .at(&host)?;
        self.files
            .push((here, temp, name.to_os_string(), host.clone(), false));
        let mut file = File::from(fd);
        let mut reader = layout.open_blob(blob)?;
        io::copy(&mut reader, &mut file).map_err(|e| reader.explain(e))?;
        file.sync_all().at(&host)
    }

    /// Renames every staged file into place: with `overwrite`, over a regular file (checked
    /// again), else only where nothing is. All or nothing: a file that replaced another is
    /// swapped with it (`RENAME_EXCHANGE`), so the old one waits under the temporary name
    /// until every file is in place; if one cannot be placed (something appeared at its
    /// title meanwhile), the files already placed are taken back out and the old ones
    /// swapped back, and the directory is as it was.
    fn commit(&mut self, options: PullOptions) -> Result<()> {
        let mut placed: Vec<Placed> = Vec::new();
        let result = self.place_all(options, &mut placed);
        match result {
            Ok(()) => {
                // Now the old contents, under the temporary names, can go.
                for p in placed.iter().filter(|p| p.swapped) {
                    let (parent, temp, _, _, _) = &self.files[p.index];
                    let _ = rfs::unlinkat(parent, temp, AtFlags::empty());
                }
                self.files.clear();
                Ok(())
            }
            Err(e) => {
                for p in placed.iter().rev() {
                    let (parent, temp, name, _, _) = &self.files[p.index];
                    if p.swapped {
                        // The new file goes back to the temporary name (removed by undo).
                        let _ =
                            rfs::renameat_with(parent, temp, parent, name, RenameFlags::EXCHANGE);
                    } else {
                        let _ =
                            rfs::renameat_with(parent, name, parent, temp, RenameFlags::NOREPLACE);
                    }
                }
                Err(e)
            }
        }
    }

    fn place_all(&self, options: PullOptions, placed: &mut Vec<Placed>) -> Result<()> {
        for (index, (parent, temp, name, host, is_dir)) in self.files.iter().enumerate() {
            let existing = stat_nofollow(parent, name).at(host)?;
            let swapped = match existing {
                None => false,
                Some(kind) if *is_dir => return Err(in_the_way(host, kind, "new directory")),
                Some(FileType::RegularFile) if options.overwrite => true,
                Some(FileType::RegularFile) => {
                    return Err(Error::Invalid {
                        what: host.display().to_string(),
                        reason: "it appeared while the artifact was pulled: it is left as it is"
                            .into(),
                    })
                }
                Some(kind) => return Err(in_the_way(host, kind, "regular file")),
            };
            let flags = if swapped {
                RenameFlags::EXCHANGE
            } else {
                RenameFlags::NOREPLACE
            };
            rfs::renameat_with(parent, temp, parent, name, flags).map_err(|e| match e {
                Errno::EXIST | Errno::NOENT => Error::Invalid {
                    what: host.display().to_string(),
                    reason: "it appeared or changed while the artifact was pulled: it is left \
                             as it is"
                        .into(),
                },
                e => Error::Io {
                    path: host.clone(),
                    source: e.into(),
                },
            })?;
            placed.push(Placed { index, swapped });
            if swapped {
                // What was swapped out must have been the regular file seen a moment ago;
                // anything else swapped in meanwhile is put back.
                let was = stat_nofollow(parent, temp).at(host)?;
                if was != Some(FileType::RegularFile) {
                    return Err(in_the_way(
                        host,
                        was.unwrap_or(FileType::Unknown),
                        "regular file",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Removes what was staged and not committed, and the directories made (if empty).
    fn undo(&mut self) {
        for (parent, temp, _, host, is_dir) in self.files.drain(..) {
            if is_dir {
                // Only this pull's own directory, under the name it made.
                let _ = std::fs::remove_dir_all(host.with_file_name(&temp));
            } else {
                let _ = rfs::unlinkat(&parent, &temp, AtFlags::empty());
            }
        }
        for (parent, name) in self.made_dirs.drain(..).rev() {
            let _ = rfs::unlinkat(&parent, &name, AtFlags::REMOVEDIR);
        }
    }
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
