//! What an entry asks for, read from its tar header and PAX records before anything is
//! written: mode, owner (mapped to host ids unless rootless), times and the xattrs a layer
//! may set.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;

use rustix::fs::{Timespec, Timestamps};

use super::acl::{acl_mode_bits, is_acl_xattr, map_acl_ids, misplaced_default_acl};
use super::error::{EntryError, EntryResult};
use super::xattrs::{entry_xattrs, xattr_allowed};
use super::Applier;
use crate::bundle::idmap::UNCHANGED_ID;
use crate::layer::tarstream::TarEntry;

/// Attributes of an entry, after id mapping.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) times: (Timespec, Timespec),
    pub(super) xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Applier {
    pub(super) fn meta<R: Read>(&self, entry: &TarEntry<'_, R>) -> EntryResult<Meta> {
        let header = entry.header();
        let mode = header.mode().map_err(EntryError::Io)? & 0o7777;
        let container_uid = u32::try_from(entry.uid().map_err(EntryError::Io)?)
            .map_err(|_| EntryError::Refused("uid does not fit 32 bits".into()))?;
        let container_gid = u32::try_from(entry.gid().map_err(EntryError::Io)?)
            .map_err(|_| EntryError::Refused("gid does not fit 32 bits".into()))?;
        for (what, id) in [("uid", container_uid), ("gid", container_gid)] {
            if id == UNCHANGED_ID {
                return Err(EntryError::Refused(format!(
                    "{what} {id} is chown's \"leave unchanged\": the entry would keep the \
                     unpacking user's {what} (setuid bits included)"
                )));
            }
        }
        let mut mtime = Timespec {
            tv_sec: header.mtime().map_err(EntryError::Io)? as i64,
            tv_nsec: 0,
        };
        let mut atime = None;
        for (key, value) in entry.pax().iter() {
            if key == b"mtime" {
                if let Some(t) = parse_pax_time(value) {
                    mtime = t;
                }
            } else if key == b"atime" {
                atime = parse_pax_time(value);
            }
        }
        let named = entry_xattrs(entry.pax()).map_err(EntryError::Refused)?;
        if let Some(why) = misplaced_default_acl(&named, header.entry_type()) {
            return Err(EntryError::Refused(why));
        }
        let mut xattrs: Vec<(OsString, Vec<u8>)> = named
            .into_iter()
            .map(|(name, value)| (OsString::from_vec(name), value))
            .filter(|(name, _)| xattr_allowed(&name.to_string_lossy()))
            .collect();
        // An ACL's named users and groups are owners too: mapped as the entry's are.
        if !self.options.rootless {
            for (name, value) in &mut xattrs {
                if is_acl_xattr(&name.to_string_lossy()) {
                    *value = map_acl_ids(
                        value,
                        |id| self.options.uid_map.to_host(id),
                        |id| self.options.gid_map.to_host(id),
                    )
                    .map_err(|why| EntryError::Refused(format!("xattr {name:?}: {why}")))?;
                }
            }
        }
        // With an access ACL the group bits are its mask (bsdtar writes the owning group's
        // bits in the header): take the ACL's, or the chmod that follows would cut the mask.
        let acl = xattrs.iter().find(|(n, _)| n == "system.posix_acl_access");
        let mode = match acl.and_then(|(_, v)| acl_mode_bits(v)) {
            Some(bits) => mode & !0o777 | bits,
            None => mode,
        };
        let (uid, gid) = if self.options.rootless {
            (container_uid, container_gid)
        } else {
            let uid = self.options.uid_map.to_host(container_uid).ok_or_else(|| {
                EntryError::Refused(format!(
                    "uid {container_uid} is outside the uid map's ranges"
                ))
            })?;
            let gid = self.options.gid_map.to_host(container_gid).ok_or_else(|| {
                EntryError::Refused(format!(
                    "gid {container_gid} is outside the gid map's ranges"
                ))
            })?;
            (uid, gid)
        };
        Ok(Meta {
            mode,
            uid,
            gid,
            times: (atime.unwrap_or(mtime), mtime),
            xattrs,
        })
    }
}

fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(value).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
    };
    Some(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

pub(super) fn timestamps(meta: &Meta) -> Timestamps {
    Timestamps {
        last_access: meta.times.0,
        last_modification: meta.times.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        assert!(parse_pax_time(b"x").is_none());
    }
}
