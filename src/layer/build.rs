//! Layers from directory trees: strata writes every tar header itself (no sparse files, no
//! symlink following, full mode bits, owners, device numbers, xattrs as PAX records,
//! hardlinks by device and inode), in sorted path order, so the same tree always gives the
//! same bytes. `SOURCE_DATE_EPOCH` clamps newer mtimes.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::bundle::idmap::IdMap;
use crate::error::{Error, IoContext, Result};
use crate::layer::apply::{is_acl_xattr, map_acl_ids, ROOTLESS_XATTR};
use crate::layer::source::{Cursor, Meta, SourceTree};
use rustix::fs::FileType;

/// How tree metadata becomes tar headers.
#[derive(Debug, Clone, Default)]
pub struct TarOptions {
    /// Clamp mtimes newer than this (seconds since the epoch).
    pub source_date_epoch: Option<i64>,
    /// Host uid to container uid (reversed unpack map); empty is identity.
    pub uid_map: IdMap,
    /// Host gid to container gid.
    pub gid_map: IdMap,
    /// Ownership comes from the `user.rootlesscontainers` xattr where present (a rootless
    /// unpack recorded it there), and files owned by the user count as root's.
    pub rootless: bool,
    /// Every entry owned by this uid:gid, whoever owns the files (a build from a checkout:
    /// two users' checkouts must give the same layer).
    pub owner: Option<(u32, u32)>,
    /// Modes as a checkout's umask cannot change them: directories 0755, files 0755 when
    /// any execute bit is set and 0644 otherwise, setuid/setgid/sticky dropped.
    pub normalize_modes: bool,
}

/// The mode [`TarOptions::normalize_modes`] records for an entry of kind `kind`.
fn normalized_mode(kind: FileType, mode: u32) -> u32 {
    match kind {
        FileType::Directory => 0o755,
        FileType::Symlink => 0o777,
        _ if mode & 0o111 != 0 => 0o755,
        _ => 0o644,
    }
}

/// Writes a layer tar entry by entry.
pub struct TarWriter<W: Write> {
    out: tar::Builder<W>,
    options: TarOptions,
    /// (device, inode) of files already written, with the path they went in under.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> TarWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W, options: TarOptions) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Complete);
        TarWriter {
            out: builder,
            options,
            links: HashMap::new(),
        }
    }

    /// Adds every entry of `tree` (not its root), in sorted order.
    pub fn add_tree(&mut self, tree: &SourceTree) -> Result<()> {
        let mut cursor = tree.cursor();
        for (rel, _) in tree.walk()? {
            self.add(&mut cursor, &rel)?;
        }
        Ok(())
    }

    /// Adds `rel` of the cursor's tree with its metadata and content, as `rel`.
    pub fn add(&mut self, cursor: &mut Cursor<'_>, rel: &Path) -> Result<()> {
        self.add_as(cursor, rel, rel)
    }

    /// Adds `rel` of the cursor's tree under the name `name`. A regular file's header is
    /// what `fstat` says of the handle its bytes are read from.
    pub fn add_as(&mut self, cursor: &mut Cursor<'_>, rel: &Path, name: &Path) -> Result<()> {
        let source = cursor.tree().host_path(rel);
        let invalid = |reason: String| Error::Invalid {
            what: source.display().to_string(),
            reason,
        };
        // Every name, not just the last: `insert SRC /a/.wh.b/c` would otherwise put an
        // entry below a whiteout's name.
        if name
            .as_os_str()
            .as_bytes()
            .split(|b| *b == b'/')
            .any(|n| n.starts_with(b".wh."))
        {
            return Err(invalid(format!(
                "{}: a name starting with .wh. cannot be stored in a layer (it would read as a whiteout)",
                name.display()
            )));
        }
        let mut meta = cursor.lstat(rel)?;
        let mut file = None;
        let mut target = None;
        match meta.kind {
            FileType::RegularFile => {
                let (f, m) = cursor.open_file(rel)?;
                meta = m;
                file = Some(f);
            }
            FileType::Symlink => target = Some(cursor.read_link(rel)?),
            _ => {}
        }
        let xattrs = match &file {
            Some(f) => read_fd_xattrs(f, &source, false)?,
            None => cursor.xattrs(rel, false)?,
        };
        let ft = meta.kind;
        let name_bytes = name_bytes(name, ft == FileType::Directory);
        let (uid, gid) = match self.options.owner {
            Some(owner) => owner,
            None => self.owner(&meta, &xattrs, &source)?,
        };
        let mut header = tar::Header::new_ustar();
        header.set_mode(if self.options.normalize_modes {
            normalized_mode(ft, meta.mode)
        } else {
            meta.mode
        });
        header.set_uid(u64::from(uid));
        header.set_gid(u64::from(gid));
        header.set_mtime(self.mtime(meta.mtime));
        header.set_size(0);
        let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, mut v) in xattrs {
            if k == ROOTLESS_XATTR || k.starts_with("security.selinux") {
                continue;
            }
            // An ACL's named users and groups go back to container ids, as owners do.
            if is_acl_xattr(&k) && !self.options.rootless {
                v = map_acl_ids(
                    &v,
                    |id| self.options.uid_map.to_container(id),
                    |id| self.options.gid_map.to_container(id),
                )
                .map_err(invalid)?;
            }
            pax.insert(format!("SCHILY.xattr.{k}"), v);
        }
        let mut link_name: Option<Vec<u8>> = None;
        if ft == FileType::RegularFile && meta.nlink > 1 {
            if let Some(first) = self.links.get(&(meta.dev, meta.ino)) {
                header.set_entry_type(tar::EntryType::Link);
                link_name = Some(first.clone());
                file = None;
            } else {
                self.links.insert((meta.dev, meta.ino), name_bytes.clone());
            }
        }
        if link_name.is_none() {
            match ft {
                FileType::Directory => header.set_entry_type(tar::EntryType::Directory),
                FileType::Symlink => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    link_name = target;
                }
                FileType::RegularFile => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(meta.size);
                    if meta.size >= 8 << 30 {
                        pax.insert("size".into(), meta.size.to_string().into_bytes());
                    }
                }
                FileType::CharacterDevice | FileType::BlockDevice => {
                    header.set_entry_type(if ft == FileType::CharacterDevice {
                        tar::EntryType::Char
                    } else {
                        tar::EntryType::Block
                    });
                    header
                        .set_device_major(rustix::fs::major(meta.rdev))
                        .at(&source)?;
                    header
                        .set_device_minor(rustix::fs::minor(meta.rdev))
                        .at(&source)?;
                }
                FileType::Fifo => header.set_entry_type(tar::EntryType::Fifo),
                _ => return Err(invalid("sockets cannot be stored in a layer".into())),
            }
        }
        set_name(&mut header, &mut pax, "path", &name_bytes, |h| {
            &mut h.as_old_mut().name
        });
        if let Some(link) = &link_name {
            set_name(&mut header, &mut pax, "linkpath", link, |h| {
                &mut h.as_old_mut().linkname
            });
        }
        if !pax.is_empty() {
            self.out
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .at(&source)?;
        }
        header.set_cksum();
        match file {
            Some(f) => self.append_exact(&header, f, &source)?,
            None => self.out.append(&header, io::empty()).at(&source)?,
        }
        Ok(())
    }

    /// Appends `header` and exactly its size of bytes from `file`: the size fstat gave, so
    /// a file that grows meanwhile is cut there, and one that shrinks fails (the header
    /// already promised the bytes; padding them would make up content).
    fn append_exact(&mut self, header: &tar::Header, file: fs::File, source: &Path) -> Result<()> {
        let expected = header.size().at(source)?;
        let mut limited = io::Read::take(file, expected);
        self.out
            .append(
                header,
                &mut ExactReader {
                    inner: &mut limited,
                    left: expected,
                },
            )
            .at(source)
    }

    /// Adds a whiteout for `rel` (which must not exist in the new tree).
    pub fn add_whiteout(&mut self, rel: &Path) -> Result<()> {
        check_whiteout_target(rel)?;
        let name = rel.file_name().unwrap_or_default();
        let mut wh = b".wh.".to_vec();
        wh.extend_from_slice(name.as_bytes());
        let path = rel.with_file_name(OsStr::from_bytes(&wh));
        self.empty_file(&path)
    }

    /// Adds an opaque whiteout for directory `rel`.
    pub fn add_opaque(&mut self, rel: &Path) -> Result<()> {
        self.empty_file(&rel.join(".wh..wh..opq"))
    }

    fn empty_file(&mut self, path: &Path) -> Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);
        header.set_mtime(
            self.options
                .source_date_epoch
                .map_or(0, |t| t.max(0) as u64),
        );
        let mut pax = BTreeMap::new();
        set_name(
            &mut header,
            &mut pax,
            "path",
            path.as_os_str().as_bytes(),
            |h| &mut h.as_old_mut().name,
        );
        if !pax.is_empty() {
            self.out
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .at(path)?;
        }
        header.set_cksum();
        self.out.append(&header, io::empty()).at(path)
    }

    /// Writes the end-of-archive marker and returns the output.
    pub fn finish(self) -> Result<W> {
        self.out.into_inner().at(PathBuf::from("<layer>"))
    }

    fn mtime(&self, mtime: i64) -> u64 {
        let clamped = match self.options.source_date_epoch {
            Some(epoch) if mtime > epoch => epoch,
            _ => mtime,
        };
        clamped.max(0) as u64
    }

    fn owner(
        &self,
        meta: &Meta,
        xattrs: &BTreeMap<String, Vec<u8>>,
        source: &Path,
    ) -> Result<(u32, u32)> {
        if self.options.rootless {
            let recorded = xattrs
                .get(ROOTLESS_XATTR)
                .map(|v| decode_rootless(v))
                .unwrap_or((None, None));
            return Ok((recorded.0.unwrap_or(0), recorded.1.unwrap_or(0)));
        }
        let uid = self
            .options
            .uid_map
            .to_container(meta.uid)
            .ok_or_else(|| Error::Invalid {
                what: source.display().to_string(),
                reason: format!("owner uid {} is outside the uid map", meta.uid),
            })?;
        let gid = self
            .options
            .gid_map
            .to_container(meta.gid)
            .ok_or_else(|| Error::Invalid {
                what: source.display().to_string(),
                reason: format!("group gid {} is outside the gid map", meta.gid),
            })?;
        Ok((uid, gid))
    }
}

/// Reads exactly `left` bytes or fails: a file that shrinks while it is archived would
/// otherwise give a tar whose header lies about the size.
struct ExactReader<'a, R> {
    inner: &'a mut R,
    left: u64,
}

impl<R: io::Read> io::Read for ExactReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Refuses what a whiteout cannot delete (see [`super::names::whiteout_entry`]: the rules
/// unpack applies): `..`, `.`, the root, and names starting with `.wh.`, whose whiteout would
/// be another whiteout or the opaque marker hiding the whole directory.
pub fn check_whiteout_target(rel: &Path) -> Result<()> {
    super::names::whiteout_entry(rel)
        .map(|_| ())
        .map_err(|reason| Error::Invalid {
            what: format!("whiteout of {rel:?}"),
            reason,
        })
}

fn name_bytes(name: &Path, is_dir: bool) -> Vec<u8> {
    let mut bytes = name.as_os_str().as_bytes().to_vec();
    if is_dir {
        bytes.push(b'/');
    }
    bytes
}

/// Puts a name in its header field when it fits, else in a PAX record (with a truncated
/// copy in the header for old readers).
fn set_name(
    header: &mut tar::Header,
    pax: &mut BTreeMap<String, Vec<u8>>,
    key: &str,
    value: &[u8],
    field: impl Fn(&mut tar::Header) -> &mut [u8; 100],
) {
    let slot = field(header);
    let n = value.len().min(100);
    slot[..n].copy_from_slice(&value[..n]);
    if value.len() > 100 || std::str::from_utf8(value).is_err() {
        pax.insert(key.to_owned(), value.to_vec());
    }
}

/// Every xattr of `path` (not followed), by name. The buffers are the kernel's limits
/// (XATTR_LIST_MAX, XATTR_SIZE_MAX), so no list or value is ever cut short. With
/// `skip_unreadable`, a value that cannot be read (a `user.*` xattr of a mode-000 file its
/// owner reads without privileges) is left out instead of failing.
pub(crate) fn read_xattrs(path: &Path, skip_unreadable: bool) -> Result<BTreeMap<String, Vec<u8>>> {
    collect_xattrs(
        path,
        skip_unreadable,
        |names| rustix::fs::llistxattr(path, names),
        |name, value| rustix::fs::lgetxattr(path, name, value),
    )
}

/// An xattr name as text. A layer stores xattrs as PAX records, whose keys are UTF-8: a
/// name that is not (the kernel allows any bytes) is refused rather than stored under a
/// lossy look-alike, which would set another xattr where the layer is unpacked. With
/// `lossy` (a snapshot, which only compares), the look-alike is good enough.
fn xattr_name(name: &[u8], path: &Path, lossy: bool) -> Result<String> {
    match std::str::from_utf8(name) {
        Ok(name) => Ok(name.to_owned()),
        Err(_) if lossy => Ok(String::from_utf8_lossy(name).into_owned()),
        Err(_) => Err(Error::Invalid {
            what: path.display().to_string(),
            reason: format!(
                "its xattr {:?} has a name that is not UTF-8, which a layer cannot store",
                String::from_utf8_lossy(name)
            ),
        }),
    }
}

/// Every xattr of the open file `fd` (at `path`, for messages); see [`read_xattrs`].
pub(crate) fn read_fd_xattrs(
    fd: impl AsFd,
    path: &Path,
    skip_unreadable: bool,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let fd = fd.as_fd();
    collect_xattrs(
        path,
        skip_unreadable,
        |names| rustix::fs::flistxattr(fd, names),
        |name, value| rustix::fs::fgetxattr(fd, name, value),
    )
}

fn collect_xattrs(
    path: &Path,
    skip_unreadable: bool,
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&OsStr, &mut [u8]) -> rustix::io::Result<usize>,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 64 << 10];
    let len = match list(&mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(out),
        Err(e) => return Err(io::Error::from(e)).at(path),
    };
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; 64 << 10];
        let n = match get(OsStr::from_bytes(name), &mut value[..]) {
            Ok(n) => n,
            Err(_) if skip_unreadable => continue,
            Err(e) => return Err(io::Error::from(e)).at(path),
        };
        value.truncate(n);
        out.insert(xattr_name(name, path, skip_unreadable)?, value);
    }
    Ok(out)
}

/// Decodes the rootless ownership record (see [`crate::layer::apply::rootless_xattr`]).
pub fn decode_rootless(bytes: &[u8]) -> (Option<u32>, Option<u32>) {
    let mut uid = None;
    let mut gid = None;
    let mut i = 0;
    while i < bytes.len() {
        let tag = bytes[i];
        i += 1;
        let mut value: u64 = 0;
        let mut shift = 0;
        while i < bytes.len() && shift < 64 {
            let b = bytes[i];
            i += 1;
            value |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let id = u32::try_from(value).ok().filter(|v| *v != u32::MAX);
        match tag {
            0x08 => uid = id.or(Some(0)),
            0x10 => gid = id.or(Some(0)),
            _ => {}
        }
    }
    (uid, gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_record_round_trips() {
        let bytes = crate::layer::apply::rootless_xattr(1000, 0);
        assert_eq!(decode_rootless(&bytes), (Some(1000), Some(0)));
    }

    #[test]
    fn same_tree_same_bytes_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/c")).unwrap();
        fs::write(root.join("b/c/f"), b"x").unwrap();
        fs::write(root.join("a"), b"y").unwrap();
        fs::hard_link(root.join("a"), root.join("b/a-link")).unwrap();
        std::os::unix::fs::symlink("../a", root.join("b/s")).unwrap();
        let build = || {
            let mut w = TarWriter::new(
                Vec::new(),
                TarOptions {
                    source_date_epoch: Some(1),
                    ..Default::default()
                },
            );
            w.add_tree(&SourceTree::open(root, false).unwrap()).unwrap();
            w.finish().unwrap()
        };
        let one = build();
        assert_eq!(one, build());
        let mut archive = tar::Archive::new(&one[..]);
        let names: Vec<(String, tar::EntryType)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    e.header().entry_type(),
                )
            })
            .collect();
        let just: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(just, ["a", "b/", "b/a-link", "b/c/", "b/c/f", "b/s"]);
        assert_eq!(names[2].1, tar::EntryType::Link);
        assert_eq!(names[5].1, tar::EntryType::Symlink);
    }

    #[test]
    fn whiteout_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".wh.x"), b"").unwrap();
        let mut w = TarWriter::new(Vec::new(), TarOptions::default());
        let tree = SourceTree::open(dir.path(), false).unwrap();
        let err = w.add(&mut tree.cursor(), Path::new(".wh.x")).unwrap_err();
        assert!(err.to_string().contains(".wh."), "{err}");
    }

    #[test]
    fn a_file_changing_size_gives_exactly_its_fstat_size_or_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"0123456789").unwrap();
        let tree = SourceTree::open(dir.path(), false).unwrap();
        let (file, meta) = tree.cursor().open_file(Path::new("f")).unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_path("f").unwrap();
        header.set_size(meta.size);
        header.set_cksum();
        // Grown after fstat: the entry holds the first 10 bytes, and the tar stays whole.
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"more")
            .unwrap();
        let mut w = TarWriter::new(Vec::new(), TarOptions::default());
        w.append_exact(&header, file, &path).unwrap();
        let bytes = w.finish().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        let mut body = Vec::new();
        io::Read::read_to_end(&mut entry, &mut body).unwrap();
        assert_eq!(body, b"0123456789");
        drop(entry);
        assert!(entries.next().is_none());
        // Shrunk after fstat: an error naming the file, not zeros.
        let (file, _) = tree.cursor().open_file(Path::new("f")).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(3)
            .unwrap();
        let mut w = TarWriter::new(Vec::new(), TarOptions::default());
        let err = w
            .append_exact(&header, file, &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("shrank") && err.contains("/f"), "{err}");
    }
}
