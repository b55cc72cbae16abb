//! POSIX ACLs written as text (`SCHILY.acl.access`/`SCHILY.acl.default`: GNU tar `--acls`
//! puts one entry a line, bsdtar and star separate them with commas and may add the id as
//! a fourth field, `user:NAME:rwx:ID`), turned into the value of the
//! `system.posix_acl_access`/`_default` xattr the kernel takes: a little-endian version 2
//! header, then one (tag u16, perm u16, id u32) entry each, sorted by tag and then id, with
//! the id 0xffffffff on entries that name nobody.
//!
//! A qualifier must give the numeric id (as the qualifier or as the fourth field): a bare
//! name would have to be looked up, and neither the unpacking host's users nor the image's
//! `/etc/passwd` are where the writer found it, so such an ACL is refused rather than given
//! to whoever has that name here.

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const NO_ID: u32 = u32::MAX;
/// The most entries an ACL xattr can hold: the kernel takes values of at most 64 KiB
/// (`XATTR_SIZE_MAX`), a 4-byte header and 8 bytes an entry.
const MAX_ENTRIES: usize = (65536 - 4) / 8;

/// The xattr value for the ACL `text`; the error says which entry is wrong.
pub(crate) fn acl_text_to_xattr(text: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the ACL text is not UTF-8".to_string())?;
    let mut entries: Vec<(u16, u32, u16)> = Vec::new();
    for raw in text.split([',', '\n']) {
        // Comments (`#effective:r--`) and surrounding blanks carry nothing.
        let entry = raw.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("ACL entry {entry:?}: {why}");
        let fields: Vec<&str> = entry.split(':').collect();
        if !(3..=4).contains(&fields.len()) {
            return Err(bad("not tag:qualifier:permissions[:id]"));
        }
        let (tag, qualifier, perms) = (fields[0], fields[1], fields[2]);
        let id = fields.get(3).copied();
        let named = !qualifier.is_empty() || id.is_some_and(|i| !i.is_empty());
        let tag = match (tag, named) {
            ("user" | "u", false) => USER_OBJ,
            ("user" | "u", true) => USER,
            ("group" | "g", false) => GROUP_OBJ,
            ("group" | "g", true) => GROUP,
            ("mask" | "m", false) => MASK,
            ("other" | "o", false) => OTHER,
            _ => return Err(bad("unknown tag, or a qualifier where none belongs")),
        };
        let id = if named {
            let numeric = |s: &str| s.parse::<u32>().ok().filter(|n| *n != NO_ID);
            match (id.and_then(numeric), numeric(qualifier)) {
                (Some(n), _) | (None, Some(n)) => n,
                (None, None) => {
                    return Err(bad(
                        "names a user or group without its numeric id (strata does not \
                         guess which id the writer's name meant)",
                    ))
                }
            }
        } else {
            NO_ID
        };
        if perms.is_empty() || perms.len() > 3 {
            return Err(bad("bad permissions"));
        }
        let mut perm = 0u16;
        for c in perms.chars() {
            perm |= match c {
                'r' => 4,
                'w' => 2,
                'x' => 1,
                '-' => 0,
                _ => return Err(bad("bad permissions")),
            };
        }
        if entries.len() == MAX_ENTRIES {
            return Err(format!(
                "the ACL has over {MAX_ENTRIES} entries, more than an xattr can hold"
            ));
        }
        entries.push((tag, id, perm));
    }
    // Sorted first, so that a long ACL is not checked entry against entry.
    entries.sort_unstable();
    if let Some(w) = entries
        .windows(2)
        .find(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1))
    {
        let (tag, id, _) = w[0];
        return Err(format!(
            "the ACL gives the entry of tag {tag:#x} and id {id} twice"
        ));
    }
    let count = |t: u16| entries.iter().filter(|e| e.0 == t).count();
    if count(USER_OBJ) != 1 || count(GROUP_OBJ) != 1 || count(OTHER) != 1 {
        return Err("the ACL lacks one of the owner, owning group and other entries".to_string());
    }
    if (count(USER) > 0 || count(GROUP) > 0) && count(MASK) == 0 {
        return Err("the ACL names users or groups but has no mask".to_string());
    }
    let mut out = VERSION.to_le_bytes().to_vec();
    for (tag, id, perm) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(out)
}

/// The permission bits an access ACL gives a file (owner, then the mask, or the owning
/// group without one, then other), as the kernel sets them when the ACL is set: a later
/// chmod with other group bits would change the mask. `None` for a malformed value.
pub(crate) fn acl_mode_bits(xattr: &[u8]) -> Option<u32> {
    let (header, body) = xattr.split_at_checked(4)?;
    if header != VERSION.to_le_bytes() || body.len() % 8 != 0 {
        return None;
    }
    let (mut user, mut group, mut mask, mut other) = (None, None, None, None);
    for e in body.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u32::from(u16::from_le_bytes([e[2], e[3]]) & 7);
        match tag {
            USER_OBJ => user = Some(perm),
            GROUP_OBJ => group = Some(perm),
            MASK => mask = Some(perm),
            OTHER => other = Some(perm),
            _ => {}
        }
    }
    Some(user? << 6 | mask.or(group)? << 3 | other?)
}

/// Why an entry of type `kind` cannot take the xattrs `named`: a default ACL is what a
/// directory hands down to what is made in it, and the kernel refuses one anywhere else
/// (EACCES, which would read as the unpacking user lacking a permission).
pub(crate) fn misplaced_default_acl(
    named: &[(Vec<u8>, Vec<u8>)],
    kind: tar::EntryType,
) -> Option<String> {
    let given = named
        .iter()
        .any(|(n, v)| n == b"system.posix_acl_default" && !v.is_empty());
    (given && kind != tar::EntryType::Directory).then(|| {
        "a default ACL (SCHILY.acl.default or the system.posix_acl_default xattr) on a \
         non-directory: only directories have one"
            .to_string()
    })
}

/// Whether `name` is an xattr holding a POSIX ACL (whose named entries carry ids).
pub(crate) fn is_acl_xattr(name: &str) -> bool {
    name == "system.posix_acl_access" || name == "system.posix_acl_default"
}

/// An ACL xattr value with each named user's id passed through `uid` and each named group's
/// through `gid` (id maps: an ACL's ids are owners, as a file's are), entries sorted again.
/// The error names the id no map covers, or says the value is malformed.
pub(crate) fn map_acl_ids(
    value: &[u8],
    uid: impl Fn(u32) -> Option<u32>,
    gid: impl Fn(u32) -> Option<u32>,
) -> Result<Vec<u8>, String> {
    let malformed = || "a malformed POSIX ACL xattr value".to_string();
    let (header, body) = value.split_at_checked(4).ok_or_else(malformed)?;
    if header != VERSION.to_le_bytes() || body.len() % 8 != 0 {
        return Err(malformed());
    }
    let mut entries = Vec::with_capacity(body.len() / 8);
    for e in body.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let id = match tag {
            USER => {
                uid(id).ok_or_else(|| format!("its ACL names uid {id}, outside the uid map"))?
            }
            GROUP => {
                gid(id).ok_or_else(|| format!("its ACL names gid {id}, outside the gid map"))?
            }
            _ => id,
        };
        entries.push((tag, id, perm));
    }
    entries.sort_unstable();
    let mut out = header.to_vec();
    for (tag, id, perm) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `getfattr -e hex -n system.posix_acl_access` shows for
    /// `setfacl -m u:1000:rwx,g:100:r-x` on a 0644 file.
    const SETFACL: &str = "0200000001000600ffffffff02000700e803000004000400ffffffff\
                           08000500640000001000070\
                           0ffffffff20000400ffffffff";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn gnu_and_bsdtar_text_give_the_kernels_bytes() {
        let want = SETFACL.replace(' ', "");
        let gnu = b"user::rw-\nuser:1000:rwx\ngroup::r--\ngroup:100:r-x\nmask::rwx\nother::r--\n";
        assert_eq!(hex(&acl_text_to_xattr(gnu).unwrap()), want);
        let bsd =
            b"user::rw-,group::r--,other::r--,user:alice:rwx:1000,group:users:r-x:100,mask::rwx";
        assert_eq!(hex(&acl_text_to_xattr(bsd).unwrap()), want);
    }

    #[test]
    fn what_cannot_be_converted_faithfully_is_an_error() {
        for bad in [
            &b"user::rw-,user:alice:rwx,group::r--,mask::rwx,other::r--"[..],
            b"user::rw-,group::r--",
            b"user::rw-,user:5:rwx,group::r--,other::r--",
            b"user::rwz,group::r--,other::r--",
            b"user::rw-,group::r--,other::r--,other::r--",
            b"bogus::rw-,group::r--,other::r--,user::rw-",
            b"\xff",
        ] {
            assert!(acl_text_to_xattr(bad).is_err(), "{bad:?}");
        }
        let entries = |n: u32| {
            let mut text = String::from("user::rw-,group::r--,mask::rwx,other::r--");
            for id in 0..n {
                text.push_str(&format!(",u:{id}:r"));
            }
            text
        };
        assert!(acl_text_to_xattr(entries(MAX_ENTRIES as u32 - 4).as_bytes()).is_ok());
        assert!(acl_text_to_xattr(entries(MAX_ENTRIES as u32 - 3).as_bytes()).is_err());
    }
}
