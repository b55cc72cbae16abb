//! A directory layer of an artifact (oras's `io.deis.oras.content.unpack`), unpacked by
//! `artifact pull` into a fresh directory of its own, which is then put in place whole.
//! Names are checked as unpack checks them; nothing is ever followed: every entry is made
//! relative to its parent's handle, opened one name at a time without following links.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

use crate::digest::{Algorithm, Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::layer::names::{entry_name, layer_path, EntryName};
use crate::layer::Compression;
use crate::layout::Layout;
use crate::spec::BlobRef;

const DIR_PATH: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Why an extraction stopped: the stream (to be explained by the blob reader) or the
/// content.
enum Stop {
    Read(io::Error),
    Refused(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Refused(e)
    }
}

/// Unpacks the gzip tar `blob` into `root` (an empty directory this pull made, at `host`):
/// each entry must be under `prefix` (the title), which is stripped. The uncompressed tar
/// must have the digest `expected` when given. Entries other than files, directories,
/// symlinks and hard links are skipped, each with a warning in `warnings`.
pub fn extract(
    layout: &Layout,
    blob: &BlobRef,
    expected: Option<&str>,
    prefix: &Path,
    root: &OwnedFd,
    host: &Path,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let expected = expected
        .map(|d| {
            d.parse::<Digest>().map_err(|e| Error::Invalid {
                what: format!("layer {}: io.deis.oras.content.digest {d:?}", blob.digest),
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let algorithm = expected
        .as_ref()
        .map_or(Algorithm::Sha256, Digest::algorithm);
    let mut reader = layout.open_blob(blob)?;
    let got = {
        let decoder = Compression::Gzip
            .decoder(&mut reader)
            .map_err(|e| Error::Io {
                path: host.to_owned(),
                source: e,
            })?;
        let mut tar = HashingReader::new(decoder, algorithm);
        match unpack(&mut tar, prefix, root, host, warnings) {
            // The digest covers the whole stream, past the end-of-archive blocks.
            Ok(()) => io::copy(&mut tar, &mut io::sink())
                .map(|_| tar.digest())
                .map_err(Stop::Read),
            Err(e) => Err(e),
        }
    };
    let got = match got {
        Ok(d) => d,
        Err(Stop::Read(e)) => return Err(reader.explain(e)),
        Err(Stop::Refused(e)) => return Err(e),
    };
    match expected {
        Some(want) if want != got => Err(Error::Invalid {
            what: format!("layer {}", blob.digest),
            reason: format!(
                "its uncompressed tar is {got}, not the {want} its io.deis.oras.content.digest \
                 annotation says"
            ),
        }),
        _ => Ok(()),
    }
}

fn unpack(
    stream: &mut dyn Read,
    prefix: &Path,
    root: &OwnedFd,
    host: &Path,
    warnings: &mut Vec<String>,
) -> std::result::Result<(), Stop> {
    let mut archive = tar::Archive::new(stream);
    // Directory modes are set last: a read-only directory must still take its entries.
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    for entry in archive.entries().map_err(Stop::Read)? {
        let mut entry = entry.map_err(Stop::Read)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let refuse = |reason: String| {
            Stop::Refused(Error::Invalid {
                what: format!("{}: entry {shown:?}", host.display()),
                reason,
            })
        };
        let path = layer_path(&raw).map_err(refuse)?;
        let rel = match path.as_deref().map(|p| p.strip_prefix(prefix)) {
            Some(Ok(rel)) => rel.to_owned(),
            _ => {
                return Err(refuse(format!(
                    "it is not under the layer's title {:?}",
                    prefix.display()
                )))
            }
        };
        if entry_name(&rel).map_err(refuse)? != EntryName::Plain {
            return Err(refuse("a whiteout means nothing in an artifact".into()));
        }
        let mode = entry.header().mode().map_err(Stop::Read)? & 0o777;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            if !kind.is_dir() {
                return Err(refuse("the title itself must be a directory".into()));
            }
            dir_modes.push((rel, mode));
            continue;
        }
        let (parent, name) = parent_of(root, &rel, host)?;
        let made = if kind.is_file() {
            let fd = rfs::openat(
                &parent,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            );
            match fd {
                Ok(fd) => {
                    let mut file = File::from(fd);
                    io::copy(&mut entry, &mut file).map_err(Stop::Read)?;
                    file.sync_all().at(host.join(&rel))?;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else if kind.is_dir() {
            dir_modes.push((rel.clone(), mode));
            match rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
                // A directory listed again, or after its entries: the same directory.
                Err(Errno::EXIST)
                    if rfs::openat(&parent, name, DIR_PATH, Mode::empty()).is_ok() =>
                {
                    Ok(())
                }
                other => other,
            }
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| refuse("a symlink without a target".into()))?
                .into_owned();
            if !stays_inside(&rel, Path::new(OsStr::from_bytes(&target))) {
                return Err(refuse(format!(
                    "its symlink target {:?} leads out of the title's directory",
                    String::from_utf8_lossy(&target)
                )));
            }
            rfs::symlinkat(OsStr::from_bytes(&target), &parent, name)
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| refuse("a hard link without a target".into()))?;
            let target = match layer_path(&target).map_err(refuse)? {
                Some(t) => t,
                None => return Err(refuse("a hard link to the root".into())),
            };
            let Ok(target) = target.strip_prefix(prefix) else {
                return Err(refuse(
                    "its hard link target is not under the layer's title".into(),
                ));
            };
            if target.as_os_str().is_empty() {
                return Err(refuse("a hard link to the title's directory".into()));
            }
            let (from, from_name) = parent_of(root, target, host)?;
            rfs::linkat(&from, from_name, &parent, name, rfs::AtFlags::empty())
        } else {
            warnings.push(format!(
                "{}: entry {shown:?} skipped: only files, directories and links are pulled",
                host.display()
            ));
            continue;
        };
        made.map_err(|e| match e {
            Errno::EXIST => refuse("the layer holds it twice".into()),
            e => Stop::Refused(Error::Io {
                path: host.join(&rel),
                source: e.into(),
            }),
        })?;
    }
    for (rel, mode) in dir_modes.iter().rev() {
        let fd = if rel.as_os_str().is_empty() {
            rfs::openat(root, ".", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
        } else {
            let (parent, name) = parent_of(root, rel, host)?;
            rfs::openat(
                &parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        fd.and_then(|fd| rfs::fchmod(&fd, Mode::from_raw_mode(*mode)))
            .map_err(io::Error::from)
            .at(host.join(rel))?;
    }
    Ok(())
}

/// The handle of `rel`'s parent inside `root` (missing directories made, 0700 until their
/// own entry says otherwise; nothing followed) and `rel`'s last name.
fn parent_of<'r>(root: &OwnedFd, rel: &'r Path, host: &Path) -> Result<(OwnedFd, &'r OsStr)> {
    let names: Vec<&OsStr> = rel.iter().collect();
    let (name, parents) = names.split_last().expect("a checked entry has a name");
    let mut here = rfs::openat(root, ".", DIR_PATH, Mode::empty())
        .map_err(io::Error::from)
        .at(host)?;
    let mut at = host.to_owned();
    for part in parents {
        at.push(part);
        let next = match rfs::openat(&here, *part, DIR_PATH, Mode::empty()) {
            Err(Errno::NOENT) => rfs::mkdirat(&here, *part, Mode::from_raw_mode(0o700))
                .and_then(|()| rfs::openat(&here, *part, DIR_PATH, Mode::empty())),
            other => other,
        };
        here = match next {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(Error::Invalid {
                    what: at.display().to_string(),
                    reason: "the layer puts entries below something that is not a directory".into(),
                })
            }
            Err(e) => return Err(io::Error::from(e)).at(&at),
        };
    }
    Ok((here, name))
}

/// True when the symlink at `rel` pointing at `target` resolves, by its text, inside the
/// directory it is unpacked into (as oras requires): relative, and never above the top.
fn stays_inside(rel: &Path, target: &Path) -> bool {
    let mut depth = rel.iter().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}
