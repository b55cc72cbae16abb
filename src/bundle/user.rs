//! The user a bundle's process runs as: the image config's `User` resolved in the rootfs's
//! `/etc/passwd` and `/etc/group` the way runc's and umoci's `GetExecUser` does it.
//!
//! Deliberate differences from umoci 0.4.7:
//! - `/etc/passwd` and `/etc/group` are resolved with chroot semantics inside the rootfs
//!   (umoci's `filepath.Join` follows an absolute symlink out to the host). Comment lines
//!   and lines whose uid/gid are not numbers are skipped (Go's parser reads them as uid 0).
//!   Spaces around `/etc/group` member names are ignored (Go keeps them, so a member
//!   written ` alice` is not alice to umoci; glibc skips leading spaces).
//! - A user spec with more than one `:` is refused (umoci ignores what follows the second).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, IoContext};
use crate::image::config_values::{numeric_id, user_parts, MAX_ID};
use crate::layer::root::walk_in_root;

/// `/etc/passwd` or `/etc/group` larger than this is refused rather than read into memory.
const MAX_DB_BYTES: u64 = 16 << 20;

/// One usable line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// One usable line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The user the container runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResolvedUser {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) additional_gids: Vec<u32>,
    /// The passwd entry's home directory, when a non-empty one was found.
    pub(super) home: Option<String>,
}

/// Resolves the image config's user `spec` in the rootfs's own `/etc/passwd` and
/// `/etc/group`, looked up inside `rootfs` as if it were `/`. Fails with [`Error::Invalid`]
/// for a user or group that does not resolve.
pub(super) fn resolve_in_rootfs(rootfs: &Path, spec: &str) -> crate::Result<ResolvedUser> {
    let root = rfs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
    .at(rootfs)?;
    let passwd = read_db(&root, rootfs, "etc/passwd")?;
    let group = read_db(&root, rootfs, "etc/group")?;
    resolve_in_dbs(spec, passwd.as_deref(), group.as_deref())
}

/// Resolves `spec` against the bytes of an `/etc/passwd` and an `/etc/group` (`None` for a
/// file the image lacks).
pub(super) fn resolve_in_dbs(
    spec: &str,
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> crate::Result<ResolvedUser> {
    let passwd = passwd.map(parse_passwd);
    let group = group.map(parse_group);
    resolve_user(spec, passwd.as_deref(), group.as_deref()).map_err(|reason| Error::Invalid {
        what: format!("image config user {spec:?}"),
        reason,
    })
}

/// An id field: decimal digits only, within the kernel's range. `None` for anything else.
fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|&id| id <= MAX_ID)
}

/// The lines of a passwd/group file worth parsing: trimmed, not empty, not comments.
fn db_lines(data: &[u8]) -> impl Iterator<Item = String> + '_ {
    data.split(|&b| b == b'\n')
        .map(|line| String::from_utf8_lossy(line).trim().to_owned())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// Parses `/etc/passwd` (`name:password:uid:gid:gecos:home:shell`), skipping lines without
/// a name or with a uid or gid that is not a number.
fn parse_passwd(data: &[u8]) -> Vec<PasswdEntry> {
    db_lines(data)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let name = *fields.first()?;
            if name.is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: name.to_owned(),
                uid: parse_id(fields.get(2)?)?,
                gid: parse_id(fields.get(3)?)?,
                home: fields.get(5).copied().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// Parses `/etc/group` (`name:password:gid:member,member`), skipping lines without a name
/// or with a gid that is not a number.
fn parse_group(data: &[u8]) -> Vec<GroupEntry> {
    db_lines(data)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let name = *fields.first()?;
            if name.is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: name.to_owned(),
                gid: parse_id(fields.get(2)?)?,
                members: fields
                    .get(3)
                    .copied()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves `Config.User` (`user`, `uid`, `user:group`, `uid:gid`, ...) the way runc's and
/// umoci's `GetExecUser` does: an empty user is uid 0, numeric parts are used verbatim
/// (taking the gid and home of a passwd entry with that uid, if there is one), names must
/// exist in the files, and supplementary groups come from `/etc/group` membership when no
/// group is given. `None` files are treated as empty. The error is the reason, for
/// [`Error::Invalid`].
fn resolve_user(
    spec: &str,
    passwd: Option<&[PasswdEntry]>,
    group: Option<&[GroupEntry]>,
) -> Result<ResolvedUser, String> {
    let (user_part, group_part) = user_parts(spec)?;
    let passwd = passwd.unwrap_or_default();
    let group = group.unwrap_or_default();

    let user_id = numeric_id(user_part).transpose()?;
    let entry = passwd.iter().find(|p| match (user_part, user_id) {
        ("", _) => p.uid == 0,
        (_, Some(uid)) => p.uid == uid,
        (name, None) => p.name == name,
    });
    let mut user = match (entry, user_id) {
        (Some(p), _) => ResolvedUser {
            uid: p.uid,
            gid: p.gid,
            additional_gids: Vec::new(),
            home: Some(p.home.clone()).filter(|h| !h.is_empty()),
        },
        (None, Some(uid)) => ResolvedUser {
            uid,
            gid: 0,
            additional_gids: Vec::new(),
            home: None,
        },
        (None, None) if user_part.is_empty() => ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            home: None,
        },
        (None, None) => {
            return Err(format!(
                "unable to find user {user_part:?} in the image's /etc/passwd"
            ))
        }
    };

    if !group_part.is_empty() {
        user.gid = match numeric_id(group_part).transpose()? {
            Some(gid) => gid,
            None => match group.iter().find(|g| g.name == group_part) {
                Some(g) => g.gid,
                None => {
                    return Err(format!(
                        "unable to find group {group_part:?} in the image's /etc/group"
                    ))
                }
            },
        };
    } else if let Some(p) = entry {
        // As runc and umoci (and Docker) do, also for a numeric uid that has a passwd entry;
        // conversion.md's SHOULD NOT for numeric users is not followed, so strata's bundles
        // run with the same groups as umoci's.
        user.additional_gids = group
            .iter()
            .filter(|g| g.members.contains(&p.name))
            .map(|g| g.gid)
            .collect();
    }
    Ok(user)
}

// ---------------------------------------------------------------------------------------
// Reading files inside the rootfs
// ---------------------------------------------------------------------------------------

/// Reads `rel` (e.g. `etc/passwd`) inside the rootfs; `None` when it does not exist.
fn read_db(root: &OwnedFd, rootfs: &Path, rel: &str) -> crate::Result<Option<Vec<u8>>> {
    let path = rootfs.join(rel);
    let Some(file) = open_in_root(root, rel).at(&path)? else {
        return Ok(None);
    };
    let mut data = Vec::new();
    file.take(MAX_DB_BYTES + 1)
        .read_to_end(&mut data)
        .at(&path)?;
    if data.len() as u64 > MAX_DB_BYTES {
        return Err(Error::Invalid {
            what: path.display().to_string(),
            reason: format!("larger than {MAX_DB_BYTES} bytes"),
        });
    }
    Ok(Some(data))
}

/// Opens the regular file at `path` for reading, resolving it as if `root` were `/` (see
/// [`walk_in_root`]: no step ever leaves the root, whatever the links say). `Ok(None)` when
/// the path does not exist, crosses a non-directory, or is not a regular file (a FIFO or a
/// directory at `/etc/passwd` holds no users: as absent, as runtime-config reads an image's
/// tree); an error for a symlink loop.
fn open_in_root(root: &OwnedFd, path: &str) -> io::Result<Option<File>> {
    let reached = match walk_in_root(root, Path::new(path)) {
        Ok(r) => r,
        Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::NOENT | Errno::NOTDIR)) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let kind = FileType::from_raw_mode(reached.stat.st_mode);
    let (FileType::RegularFile, Some((dir, name))) = (kind, reached.entry) else {
        return Ok(None);
    };
    let file = rfs::openat(
        dir.as_ref().unwrap_or(root),
        name.as_os_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    let opened = rfs::fstat(&file)?;
    if (opened.st_dev, opened.st_ino) != (reached.stat.st_dev, reached.stat.st_ino) {
        return Err(io::Error::other("replaced while being opened"));
    }
    Ok(Some(File::from(file)))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    // Shared with runtime's tests, which check the resolved user in whole configs.
    pub(in crate::bundle) const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
broken line without colons
nohome:x:1002:1002:::/bin/sh
bad:x:notanumber:1:::
";
    pub(in crate::bundle) const GROUP: &str = "\
root:x:0:
wheel:x:10:alice,root
alice:x:1000:
staff:x:50:bob,alice
junk:x:zz:alice
";

    #[test]
    fn parsing_is_robust() {
        let passwd = parse_passwd(PASSWD.as_bytes());
        let names: Vec<&str> = passwd.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["root", "alice", "bob", "nohome"]);
        assert_eq!(passwd[3].home, "");
        let group = parse_group(GROUP.as_bytes());
        assert_eq!(group.len(), 4);
        assert_eq!(group[3].members, ["bob", "alice"]);
        // Spaces around members are dropped (glibc skips leading ones; Go keeps them all).
        assert_eq!(
            parse_group(b"g:x:1: a , b,,c\n")[0].members,
            ["a", "b", "c"]
        );
        // Junk never panics.
        let junk: &[&[u8]] = &[
            b"",
            b"\n\n\n",
            b":::::::",
            b"a:b",
            b"\xff\xfe:x:1:1:\xc3::",
            b"x:x:-1:0::/:/",
            b"x:x:+1:0::/:/",
            b"x:x:99999999999999999999:0",
            b"\0\0\0",
        ];
        for data in junk {
            let _ = parse_passwd(data);
            let _ = parse_group(data);
        }
        assert!(parse_passwd(b"x:x:-1:0::/:/\nx:x:+1:0::/:/").is_empty());
    }
}
