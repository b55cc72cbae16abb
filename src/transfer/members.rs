//! Archive members as the importer sees them: names checked and normalised (a `../` or
//! absolute name is refused outright), each member classified by its name and type, and the
//! table of what was stored for each name. Links are never followed on disk: a symbolic or
//! hard link whose target stays inside the archive is only an alias from one member name to
//! another (skopeo's docker archives link `<id>/layer.tar` to `<diffid>.tar`); one that
//! leaves the archive, or one in the place of a layout file or blob, is refused.

use std::collections::HashMap;

use super::error::{Error, Result};
use crate::digest::{Algorithm, Digest};
use crate::layer::write::WrittenLayer;
use crate::layer::Compression;
use crate::layout::JSON_LIMIT;
use crate::spec::BlobRef;

/// What a member is, by its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MemberKind {
    /// A directory: nothing to do.
    Dir,
    /// `oci-layout`.
    OciLayout,
    /// `index.json`.
    Index,
    /// docker's `manifest.json`.
    DockerManifest,
    /// docker's `repositories` (legacy; read for nothing but accepted).
    Repositories,
    /// `blobs/<alg>/<hex>`.
    Blob(Digest),
    /// A top-level `*.json` other than the above: a docker image config.
    DockerConfig,
    /// A `*.tar` (`<hex>.tar`, `<id>/layer.tar`): a docker layer.
    DockerLayer,
    /// A link to another member (the normalised target).
    Alias(String),
    /// A name that says nothing (crane's `sha256:<hex>` config, `<hex>.tar.gz` layers, any
    /// path a `manifest.json` may give): what it is is read from its first bytes
    /// ([`by_content`]).
    Unknown,
    /// Anything else (legacy `<id>/json` and `<id>/VERSION`, stray files): read past.
    Ignored,
}

/// Checks and normalises a member name: `./` prefixes and trailing slashes go; an absolute
/// name, a `..` component, an empty or NUL-containing name are refused.
pub(crate) fn normalize(raw: &[u8]) -> Result<String> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    let name = std::str::from_utf8(raw).map_err(|_| Error::member(&shown, "name is not UTF-8"))?;
    if name.starts_with('/') {
        return Err(Error::member(
            &shown,
            "absolute names are refused: an archive member must stay inside the archive",
        ));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(Error::member(
                    &shown,
                    "names with \"..\" are refused: an archive member must stay inside the archive",
                ))
            }
            p if p.contains('\0') => return Err(Error::member(&shown, "name contains NUL")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Ok(String::new());
    }
    Ok(parts.join("/"))
}

/// Resolves a link target lexically, as a name inside the archive: relative to the link's
/// directory for a symbolic link, to the archive root for a hard link.
fn link_target(member: &str, target: &[u8], symbolic: bool) -> Result<String> {
    let target = std::str::from_utf8(target)
        .map_err(|_| Error::member(member, "link target is not UTF-8"))?;
    let escape = || {
        Error::member(
            member,
            format!("a link to {target:?}, outside the archive, is refused"),
        )
    };
    if target.starts_with('/') {
        return Err(escape());
    }
    let mut parts: Vec<&str> = if symbolic {
        member.split('/').collect()
    } else {
        vec![""]
    };
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(escape());
                }
            }
            p => parts.push(p),
        }
    }
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() {
        return Err(escape());
    }
    Ok(parts.join("/"))
}

/// Names whose content is read by name: a link cannot stand in for one.
fn is_layout_name(name: &str) -> bool {
    matches!(
        name,
        "oci-layout" | "index.json" | "manifest.json" | "repositories"
    ) || name.starts_with("blobs/")
}

/// Classifies a member by its normalised name, header type and link target.
pub(crate) fn classify(
    name: &str,
    kind: tar::EntryType,
    link: Option<&[u8]>,
) -> Result<MemberKind> {
    use tar::EntryType as T;
    match kind {
        T::Directory => return Ok(MemberKind::Dir),
        T::XGlobalHeader => return Ok(MemberKind::Ignored),
        T::Symlink | T::Link => {
            if is_layout_name(name) {
                return Err(Error::member(
                    name,
                    "is a link; layout files and blobs must be regular files",
                ));
            }
            let target = link.ok_or_else(|| Error::member(name, "link without a target"))?;
            return Ok(MemberKind::Alias(link_target(
                name,
                target,
                kind == T::Symlink,
            )?));
        }
        T::Regular | T::Continuous => {}
        other => {
            return Err(Error::member(
                name,
                format!("member type {other:?} has no place in an image archive"),
            ))
        }
    }
    if name.is_empty() {
        return Ok(MemberKind::Ignored);
    }
    Ok(match name {
        "oci-layout" => MemberKind::OciLayout,
        "index.json" => MemberKind::Index,
        "manifest.json" => MemberKind::DockerManifest,
        "repositories" => MemberKind::Repositories,
        _ => {
            if let Some(rest) = name.strip_prefix("blobs/") {
                let (alg, hex) = rest.split_once('/').unwrap_or((rest, ""));
                let algorithm = Algorithm::from_name(alg).ok_or_else(|| {
                    Error::member(
                        name,
                        format!("blobs of algorithm {alg:?} are not supported"),
                    )
                })?;
                let digest = Digest::new(algorithm, hex)
                    .map_err(|e| Error::member(name, format!("not a blob name: {e}")))?;
                MemberKind::Blob(digest)
            } else if !name.contains('/') && name.ends_with(".json") {
                MemberKind::DockerConfig
            } else if name.ends_with(".tar") {
                MemberKind::DockerLayer
            } else if is_legacy_metadata(name) {
                MemberKind::Ignored
            } else {
                MemberKind::Unknown
            }
        }
    })
}

/// The legacy archive's per-layer `<id>/json` and `<id>/VERSION`: v1 metadata nothing reads.
fn is_legacy_metadata(name: &str) -> bool {
    name.rsplit_once('/')
        .is_some_and(|(_, base)| base == "json" || base == "VERSION")
}

/// How many leading bytes of a member [`by_content`] needs: a tar header block.
pub(crate) const SNIFF_LEN: usize = 512;

/// What a member whose name says nothing is, by its first bytes (`head`, up to
/// [`SNIFF_LEN`]) and size: a layer when it is gzip, zstd or a tar (the `ustar` magic, a
/// header whose checksum holds, or the zero block of an empty tar), a config when it looks
/// like a JSON object small enough to be one, else nothing strata needs. A `manifest.json`
/// naming a member read past says so, by name, when the images are assembled.
pub(crate) fn by_content(head: &[u8], size: u64) -> MemberKind {
    if Compression::sniff(head) != Compression::None || is_tar_header(head) {
        return MemberKind::DockerLayer;
    }
    let json = head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if json && size <= JSON_LIMIT {
        MemberKind::DockerConfig
    } else {
        MemberKind::Ignored
    }
}

fn is_tar_header(head: &[u8]) -> bool {
    let Some(block) = head.get(..512) else {
        return false;
    };
    if block.iter().all(|&b| b == 0) || &block[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum = block[..148]
        .iter()
        .chain(&block[156..])
        .fold(8 * 32u32, |a, &b| a + b as u32);
    stored == Some(sum)
}

/// Checks a path `manifest.json` gives: refused when absolute or with a `..` component (a
/// docker archive names its own members only); the name as [`Members::resolve`] takes it.
pub(crate) fn manifest_path(path: &str) -> std::result::Result<String, String> {
    if path.starts_with('/') {
        return Err(format!(
            "the absolute path {path:?} is refused: manifest.json names members of the archive"
        ));
    }
    if path.split('/').any(|p| p == "..") {
        return Err(format!(
            "the path {path:?} with \"..\" is refused: manifest.json names members of the archive"
        ));
    }
    normalize(path.as_bytes()).map_err(|e| e.to_string())
}

/// What the importer kept for a member.
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    /// A blob, staged or already in the destination.
    Blob(BlobRef),
    /// A small JSON document, in memory.
    Json(Vec<u8>),
    /// A docker layer, recompressed into the staging area.
    Layer(WrittenLayer),
}

/// Every member kept, by normalised name, and the aliases.
#[derive(Debug, Default)]
pub(crate) struct Members {
    pub files: HashMap<String, Stored>,
    pub aliases: HashMap<String, String>,
    /// Members read past without use.
    pub ignored: Vec<String>,
    /// Members taken for layers by their first bytes that did not read as one, with why.
    pub unreadable: HashMap<String, String>,
}

impl Members {
    /// What `name` stands for, following aliases (a chain of at most 8).
    pub fn resolve(&self, name: &str) -> Option<&Stored> {
        let mut name = normalize(name.as_bytes()).ok()?;
        for _ in 0..8 {
            if let Some(found) = self.files.get(&name) {
                return Some(found);
            }
            name = self.aliases.get(&name)?.clone();
        }
        None
    }

    /// A blob the images need that the archive holds, but of another size than a descriptor
    /// gives it (a hostile or damaged `size`): said so, rather than that the archive lacks it.
    pub fn sized_otherwise(&self, wanted: &BlobRef) -> Option<Error> {
        let name = format!(
            "blobs/{}/{}",
            wanted.digest.algorithm().name(),
            wanted.digest.hex()
        );
        match self.files.get(&name)? {
            Stored::Blob(held) if held.size != wanted.size => Some(Error::member(
                &name,
                format!(
                    "a descriptor gives this blob {} bytes, but the member has {}",
                    wanted.size, held.size
                ),
            )),
            _ => None,
        }
    }

    /// The bytes of a JSON member.
    pub fn json(&self, name: &str) -> Option<&[u8]> {
        match self.files.get(name)? {
            Stored::Json(bytes) => Some(bytes),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize(b"./blobs//sha256/x").unwrap(), "blobs/sha256/x");
        assert_eq!(normalize(b"dir/").unwrap(), "dir");
        assert!(normalize(b"../x").is_err());
        assert!(normalize(b"a/../../x").is_err());
        assert!(normalize(b"/etc/passwd").is_err());
    }

    #[test]
    fn links_stay_inside() {
        assert_eq!(
            link_target("id/layer.tar", b"../abc.tar", true).unwrap(),
            "abc.tar"
        );
        assert_eq!(link_target("x", b"abc.tar", false).unwrap(), "abc.tar");
        assert!(link_target("id/layer.tar", b"../../etc/passwd", true).is_err());
        assert!(link_target("x", b"/etc/passwd", true).is_err());
        assert!(classify("blobs/sha256/aa", tar::EntryType::Symlink, Some(b"x")).is_err());
    }

    #[test]
    fn kinds() {
        let hex = "a".repeat(64);
        let blob = format!("blobs/sha256/{hex}");
        assert!(matches!(
            classify(&blob, tar::EntryType::Regular, None).unwrap(),
            MemberKind::Blob(_)
        ));
        assert!(classify("blobs/md5/abc", tar::EntryType::Regular, None).is_err());
        assert_eq!(
            classify("abc/layer.tar", tar::EntryType::Regular, None).unwrap(),
            MemberKind::DockerLayer
        );
        assert_eq!(
            classify("abc.json", tar::EntryType::Regular, None).unwrap(),
            MemberKind::DockerConfig
        );
        assert_eq!(
            classify("abc/json", tar::EntryType::Regular, None).unwrap(),
            MemberKind::Ignored
        );
        assert!(classify("dev", tar::EntryType::Char, None).is_err());
        assert_eq!(
            classify("sha256:abc", tar::EntryType::Regular, None).unwrap(),
            MemberKind::Unknown
        );
    }

    #[test]
    fn contents() {
        assert_eq!(by_content(&[0x1f, 0x8b, 8, 0], 10), MemberKind::DockerLayer);
        assert_eq!(
            by_content(&[0x28, 0xb5, 0x2f, 0xfd], 10),
            MemberKind::DockerLayer
        );
        assert_eq!(by_content(&[0; 512], 1024), MemberKind::DockerLayer);
        assert_eq!(by_content(b" {\"a\":1}", 8), MemberKind::DockerConfig);
        assert_eq!(by_content(b"hello", 5), MemberKind::Ignored);
        assert_eq!(by_content(b"{", JSON_LIMIT + 1), MemberKind::Ignored);
        assert!(manifest_path("../x").is_err());
        assert!(manifest_path("/x").is_err());
        assert_eq!(manifest_path("./a/b.tar").unwrap(), "a/b.tar");
    }
}
