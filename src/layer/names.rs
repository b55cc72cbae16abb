//! What a name in a layer may be. One place decides it for unpack (every entry's path, every
//! hardlink target, the name every whiteout points at) and for the whiteouts `insert` writes, so that
//! strata never writes a layer it would itself refuse.
//!
//! A path is a list of normal components: not empty, not `.`, not `..`. Real tars add
//! decorations that are accepted: leading `/`s, one leading `./` (`tar -C dir .`,
//! buildkit's `./`-less names too), one trailing `/` on directories, and the root written
//! as `.`, `./` or `/`. Anything else (`a/../b`, `a//b`, `a/./b`) is refused rather than
//! normalised: a layer that spells a path oddly was not written by a tool anyone trusts,
//! and guessing what it meant is how `.wh...` came to remove the rootfs's parent.
//!
//! Leading slashes are the exception because every peer reads them one way: docker,
//! containerd, umoci and GNU tar all take `/etc/x` as `etc/x` under the root (GNU tar
//! strips every leading `/`), and `import` stores docker-archive layers unread, so
//! refusing them left images strata itself had stored but could not unpack. Stripping
//! them cannot leave the root: what follows still has to pass every other rule here
//! (`/../x` and `/a//b` stay refused).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The prefix of whiteout names (image-spec layer.md).
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The opaque whiteout's full name.
pub const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";

/// What an entry's last component means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryName<'a> {
    /// A plain name: the entry is a file, directory, link...
    Plain,
    /// `.wh.NAME`: removes NAME (a normal component) from lower layers.
    Whiteout(&'a OsStr),
    /// `.wh..wh..opq`: hides everything lower layers have in its directory.
    Opaque,
}

/// A layer path, checked: `None` for the root itself, else the relative path. The error
/// says which rule the name breaks.
pub fn layer_path(raw: &[u8]) -> Result<Option<PathBuf>, String> {
    if raw.contains(&0) {
        return Err("the name contains a NUL byte".into());
    }
    if raw.is_empty() {
        return Err("the name is empty".into());
    }
    let unrooted = &raw[raw.iter().take_while(|b| **b == b'/').count()..];
    if matches!(unrooted, b"" | b"." | b"./") {
        return Ok(None);
    }
    let rest = unrooted.strip_prefix(b"./").unwrap_or(unrooted);
    let rest = rest.strip_suffix(b"/").unwrap_or(rest);
    let mut out = PathBuf::new();
    for component in rest.split(|b| *b == b'/') {
        check_component(component)?;
        out.push(OsStr::from_bytes(component));
    }
    Ok(Some(out))
}

/// One name component: refused unless it names an entry of its own directory.
pub fn check_component(c: &[u8]) -> Result<(), String> {
    match c {
        b"" => Err("the name has an empty component (\"//\")".into()),
        b"." => Err("the name has a \".\" component".into()),
        b".." => Err("the name has a \"..\" component: refusing to leave the rootfs".into()),
        _ if c.contains(&b'/') || c.contains(&0) => Err(format!(
            "{:?} is not a single name",
            String::from_utf8_lossy(c)
        )),
        _ => Ok(()),
    }
}

/// What a checked path's last component means, with the rules on whiteouts: the name a
/// whiteout points at must itself be a normal component (`.wh.`, `.wh..`, `.wh...` name
/// nothing, the directory itself or its parent), the only `.wh..wh.` form is the opaque
/// one, and no directory on the way may be a whiteout.
pub fn entry_name(path: &Path) -> Result<EntryName<'_>, String> {
    let mut components = path.iter().peekable();
    while let Some(c) = components.next() {
        let bytes = c.as_bytes();
        let Some(target) = bytes.strip_prefix(WHITEOUT_PREFIX) else {
            fits_a_file_system(bytes)?;
            continue;
        };
        fits_a_file_system(target)?;
        if components.peek().is_some() {
            return Err("a whiteout name (\".wh.\") can only be the last component".into());
        }
        if bytes == OPAQUE_WHITEOUT {
            return Ok(EntryName::Opaque);
        }
        if target.starts_with(WHITEOUT_PREFIX) {
            return Err("unknown whiteout form (only \".wh..wh..opq\" is defined)".into());
        }
        return match target {
            b"" => Err("the whiteout \".wh.\" names nothing".into()),
            b"." | b".." => Err(format!(
                "the whiteout names {:?}, not an entry of its directory",
                String::from_utf8_lossy(target)
            )),
            _ => Ok(EntryName::Whiteout(OsStr::from_bytes(target))),
        };
    }
    Ok(EntryName::Plain)
}

/// The longest name a Linux file system holds (NAME_MAX): a layer naming more cannot be
/// unpacked anywhere, so every reader refuses it alike rather than unpack alone, late.
/// A whiteout's own name may be longer: only the name it points at must fit.
const NAME_MAX: usize = 255;

fn fits_a_file_system(name: &[u8]) -> Result<(), String> {
    if name.len() > NAME_MAX {
        return Err(format!(
            "a name of {} bytes ({:?}...): file systems hold at most {NAME_MAX}",
            name.len(),
            String::from_utf8_lossy(&name[..40])
        ));
    }
    Ok(())
}

/// The longest symlink target Linux stores (PATH_MAX less its NUL).
const LINK_TARGET_MAX: usize = 4095;

/// A symlink entry's target, checked as the kernel will: present, not empty, and short
/// enough to store. Every reader refuses alike what unpack could not make.
pub fn symlink_target(raw: Option<&[u8]>) -> Result<&[u8], String> {
    match raw {
        None | Some(b"") => Err("a symlink without a target".into()),
        Some(target) if target.len() > LINK_TARGET_MAX => Err(format!(
            "a symlink target of {} bytes: Linux stores at most {LINK_TARGET_MAX}",
            target.len()
        )),
        Some(target) => Ok(target),
    }
}

/// The entry that deletes `image_path` (`/a/b` -> `a/.wh.b`), for a whiteout `insert` writes:
/// checked by the rules unpack applies, and refused when it would mean anything but
/// deleting that one path (a whiteout of `/x/.wh..opq` would be an opaque whiteout).
pub fn whiteout_entry(image_path: &Path) -> Result<PathBuf, String> {
    let bytes = image_path.as_os_str().as_bytes();
    let relative = bytes.strip_prefix(b"/").unwrap_or(bytes);
    let relative = relative.strip_suffix(b"/").unwrap_or(relative);
    let path = layer_path(relative)?.ok_or("the image root cannot be deleted")?;
    let name = path
        .file_name()
        .expect("a checked path has a last component");
    if name.as_bytes().starts_with(WHITEOUT_PREFIX) {
        return Err("names starting with \".wh.\" cannot be stored in a layer".into());
    }
    let mut whiteout = WHITEOUT_PREFIX.to_vec();
    whiteout.extend_from_slice(name.as_bytes());
    let entry = path.with_file_name(OsStr::from_bytes(&whiteout));
    match entry_name(&entry)? {
        EntryName::Whiteout(target) if target == name => Ok(entry),
        _ => Err("this would not be a whiteout of that path".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Option<PathBuf> {
        layer_path(raw.as_bytes()).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
    }

    #[test]
    fn real_world_names_are_accepted() {
        assert_eq!(ok("./a/b"), Some(PathBuf::from("a/b")));
        assert_eq!(ok("./a/b/"), Some(PathBuf::from("a/b")));
        assert_eq!(ok("a/b"), Some(PathBuf::from("a/b")));
        assert_eq!(ok("usr/"), Some(PathBuf::from("usr")));
        assert_eq!(ok("..a/b..c/...d"), Some(PathBuf::from("..a/b..c/...d")));
        for root in [".", "./", "/", "//", "/.", "/./"] {
            assert_eq!(ok(root), None, "{root}");
        }
    }

    #[test]
    fn leading_slashes_are_stripped_as_peers_do() {
        assert_eq!(ok("/etc/x"), Some(PathBuf::from("etc/x")));
        assert_eq!(ok("///etc/x/"), Some(PathBuf::from("etc/x")));
        assert_eq!(ok("/./etc"), Some(PathBuf::from("etc")));
        for bad in ["/../x", "/a//b", "//..", "/a/../b", "/./../x", "/.//a"] {
            assert!(layer_path(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn odd_names_are_refused() {
        for bad in [
            "", "a/../b", "../a", "..", "a/..", "a//b", "a/./b", ".//a", "././a", "a/\0b", "a//",
        ] {
            assert!(layer_path(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn whiteouts_must_name_one_entry() {
        let name = |p: &str| entry_name(Path::new(p)).map(|n| format!("{n:?}"));
        assert_eq!(name("a/.wh.b").unwrap(), "Whiteout(\"b\")");
        assert_eq!(name("a/.wh..wh..opq").unwrap(), "Opaque");
        assert_eq!(name("a/b").unwrap(), "Plain");
        assert_eq!(name(".wh..b").unwrap(), "Whiteout(\".b\")");
        for bad in [
            ".wh.",
            ".wh..",
            ".wh...",
            "a/.wh...",
            ".wh..wh.",
            ".wh..wh..opqx",
            ".wh..wh..",
            ".wh.a/b",
        ] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn insert_whiteouts_are_checked_like_unpack() {
        assert_eq!(
            whiteout_entry(Path::new("/a/b")).unwrap(),
            PathBuf::from("a/.wh.b")
        );
        assert_eq!(
            whiteout_entry(Path::new("x")).unwrap(),
            PathBuf::from(".wh.x")
        );
        for bad in [
            "/",
            "/.wh.x",
            "/a/.wh..opq",
            ".wh..opq",
            "/a/..",
            "/a/../b",
            "/a/.",
            "",
            "/a//b",
        ] {
            assert!(whiteout_entry(Path::new(bad)).is_err(), "{bad:?}");
        }
    }
}
