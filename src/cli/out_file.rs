//! Writing a file the user named (`export -o FILE`, `runtime-config REF FILE`). A regular
//! file is replaced whole through a temp file beside it, so a failed write leaves no half
//! archive. What is not a regular file is written through, as `tar -f` and `cp` do: a
//! symlink's target is the file replaced (the link stays), and a FIFO or a character device
//! (`/dev/null`, a pipe another program reads) is opened and written, never renamed over.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where the bytes go.
pub enum Target {
    /// A regular file, missing or not: written beside it and renamed over it.
    Replace(PathBuf),
    /// A FIFO or character device, written in place.
    Stream(PathBuf),
}

impl Target {
    /// The path written, a symlink resolved.
    pub fn path(&self) -> &Path {
        match self {
            Target::Replace(p) | Target::Stream(p) => p,
        }
    }
}

/// What `path` names: a symlink is followed to the file it points at.
pub fn target(path: &Path) -> anyhow::Result<Target> {
    if path.file_name().is_none() {
        anyhow::bail!("{}: not a file name", path.display());
    }
    let resolved = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => resolve_link(path)?,
        _ => path.to_path_buf(),
    };
    match std::fs::metadata(&resolved) {
        // Missing, or not reachable (a file where a directory should be, a name too long):
        // the write beside it says which, naming what the user gave.
        Err(_) => Ok(Target::Replace(resolved)),
        Ok(meta) => {
            let kind = meta.file_type();
            if kind.is_file() {
                Ok(Target::Replace(resolved))
            } else if kind.is_fifo() || kind.is_char_device() {
                Ok(Target::Stream(resolved))
            } else if kind.is_dir() {
                anyhow::bail!("{}: is a directory: give a file's name", path.display())
            } else {
                // A block device is a disk: replacing or overwriting it is not what
                // writing a file means.
                anyhow::bail!(
                    "{}: not a regular file, FIFO or character device: refusing to write it",
                    path.display()
                )
            }
        }
    }
}

/// The file a symlink points at, followed through further links; a link to nothing names
/// the file it would create, in the link's own directory when relative.
fn resolve_link(path: &Path) -> anyhow::Result<PathBuf> {
    if let Ok(real) = path.canonicalize() {
        return Ok(real);
    }
    let target = std::fs::read_link(path).map_err(|source| strata::Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let joined = dir.join(&target);
    // A dangling link through another link (or into a missing directory) has no file to
    // create that the user could have meant with certainty.
    let dir_missing = joined
        .parent()
        .is_some_and(|p| !p.as_os_str().is_empty() && !p.is_dir());
    if std::fs::symlink_metadata(&joined).is_ok() || joined.file_name().is_none() || dir_missing {
        anyhow::bail!(
            "{}: a symbolic link to {}, which does not resolve to a file that can be made: \
             give the file itself",
            path.display(),
            target.display()
        );
    }
    Ok(joined)
}

/// Writes stdout with `write` through a large buffer (`what` names the output in errors).
pub fn to_stdout<T>(
    what: &str,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let out = write(&mut w)?;
    w.flush()
        .with_context(|| format!("writing {what} to stdout"))?;
    Ok(out)
}

/// Writes `target` with `write`: a regular file through a temp file beside it (fsynced,
/// mode 0644, renamed only when `write` succeeded), a stream in place.
pub fn write<T>(
    target: &Target,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let path = target.path();
    let failed = || format!("writing {}", path.display());
    match target {
        Target::Stream(_) => {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|source| strata::Error::Io {
                    path: path.to_owned(),
                    source,
                })?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            let out = write(&mut w).map_err(|e| named(e, path))?;
            w.flush().with_context(failed)?;
            Ok(out)
        }
        Target::Replace(_) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            super::writable_dir(dir)?;
            let tmp = tempfile::Builder::new()
                .prefix(&strata::temp_prefix_beside(path)?)
                .suffix(".tmp")
                .tempfile_in(dir)
                .map_err(|e| cannot_create(dir, e))?;
            // Through the File, not the NamedTempFile, whose errors name the temp path.
            let mut w =
                std::io::BufWriter::with_capacity(1 << 20, strata::CappedWrites(tmp.as_file()));
            let out = write(&mut w).map_err(|e| named(e, path))?;
            w.into_inner()
                .map_err(|e| e.into_error())
                .with_context(failed)?;
            finish(tmp.as_file()).with_context(failed)?;
            tmp.persist(path)
                .map_err(|e| e.error)
                .with_context(failed)?;
            Ok(out)
        }
    }
}

/// The library names what it writes "the archive" or "the rootfs tar" (it has no path):
/// here it has the user's name.
fn named(e: anyhow::Error, path: &Path) -> anyhow::Error {
    let renamed = |error: strata::Error| match error {
        strata::Error::Io { path: p, source }
            if p == Path::new("the archive") || p == Path::new("the rootfs tar") =>
        {
            strata::Error::Io {
                path: path.to_owned(),
                source,
            }
        }
        other => other,
    };
    match e.downcast::<strata::Error>() {
        Ok(error) => renamed(error).into(),
        Err(e) => match e.downcast::<strata::transfer::Error>() {
            Ok(strata::transfer::Error::Layout(error)) => renamed(error).into(),
            Ok(other) => other.into(),
            Err(e) => e,
        },
    }
}

/// The temp file is the tool's business: the user hears about the directory they chose.
fn cannot_create(dir: &Path, e: std::io::Error) -> anyhow::Error {
    strata::Error::Io {
        path: dir.to_owned(),
        source: std::io::Error::new(
            e.kind(),
            format!(
                "cannot create a file there: {}",
                strata::words::io_reason(&e)
            ),
        ),
    }
    .into()
}

fn finish(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.sync_all()
}
