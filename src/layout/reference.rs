//! References to images in a layout: `LAYOUT`, `LAYOUT:TAG` and `LAYOUT@ALG:HEX`, and the
//! grammar of tags (`org.opencontainers.image.ref.name`).

use std::path::{Path, PathBuf};

use crate::digest::{self, Digest};
use crate::error::{Error, Result};

/// What a reference names inside its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// No tag or digest: the layout's only image.
    Default,
    /// A tag in `index.json`.
    Tag(String),
    /// A manifest or index by digest.
    Digest(Digest),
}

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The layout directory.
    pub layout: PathBuf,
    /// The image in it.
    pub target: Target,
}

impl Reference {
    /// Parses a reference. The tag is the text after the last `:` when that text has no `/`;
    /// when that split does not name a layout but an earlier `:` does, the longer tag is
    /// taken (tags such as `docker.io/library/debian:12` written by other tools). A digest
    /// follows the last `@` and must be of a supported algorithm.
    pub fn parse(s: &str) -> Result<Reference> {
        if let Some((layout, digest)) = s.rsplit_once('@') {
            if digest.contains(':') && digest::is_grammatical(digest) && !layout.is_empty() {
                return Ok(Reference {
                    layout: PathBuf::from(layout),
                    target: Target::Digest(digest.parse()?),
                });
            }
        }
        if is_layout_dir(Path::new(s)) || !s.contains(':') {
            return Ok(Reference {
                layout: PathBuf::from(s),
                target: Target::Default,
            });
        }
        let (layout, tag) = s.rsplit_once(':').expect("contains a colon");
        if tag.contains('/') || !is_layout_dir(Path::new(layout)) {
            // Try the earliest colon whose left side is a layout: the tag has colons or slashes.
            let mut start = 0;
            while let Some(i) = s[start..].find(':') {
                let (l, t) = (&s[..start + i], &s[start + i + 1..]);
                if is_layout_dir(Path::new(l)) {
                    return Reference::tagged(l, t);
                }
                start += i + 1;
            }
            if tag.contains('/') {
                return Ok(Reference {
                    layout: PathBuf::from(s),
                    target: Target::Default,
                });
            }
        }
        Reference::tagged(layout, tag)
    }

    fn tagged(layout: &str, tag: &str) -> Result<Reference> {
        validate_tag(tag)?;
        Ok(Reference {
            layout: PathBuf::from(layout),
            target: Target::Tag(tag.to_owned()),
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Target::Default => write!(f, "{}", self.layout.display()),
            Target::Tag(t) => write!(f, "{}:{t}", self.layout.display()),
            Target::Digest(d) => write!(f, "{}@{d}", self.layout.display()),
        }
    }
}

fn is_layout_dir(path: &Path) -> bool {
    path.join("oci-layout").is_file()
}

/// Checks a tag against the image-spec's ref.name grammar:
/// `component ("/" component)*`, `component ::= alphanum (separator alphanum)*`,
/// `separator ::= [-._:@+] | "--"`.
pub fn validate_tag(tag: &str) -> Result<()> {
    if tag.split('/').all(is_component) {
        Ok(())
    } else {
        Err(Error::InvalidTag(tag.to_owned()))
    }
}

fn is_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        // A separator: one of -._:@+ or exactly "--", followed by an alphanumeric.
        let sep_len = if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
            2
        } else {
            1
        };
        if sep_len == 1 && !b"-._:@+".contains(&b[i]) {
            return false;
        }
        match b.get(i + sep_len) {
            Some(next) if next.is_ascii_alphanumeric() => i += sep_len,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_grammar() {
        for ok in [
            "latest",
            "v1.0",
            "a--b",
            "docker.io/library/debian:12",
            "x@y",
            "1",
        ] {
            assert!(validate_tag(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "-a", "a-", "a---b", "a..b", "a b", "a/", "/a", "ä", "a_-b", ".hidden",
        ] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_forms() {
        let r = Reference::parse("/no/such/dir:v1").unwrap();
        assert_eq!(r.layout, PathBuf::from("/no/such/dir"));
        assert_eq!(r.target, Target::Tag("v1".into()));
        let hex = "a".repeat(64);
        let r = Reference::parse(&format!("lay@sha256:{hex}")).unwrap();
        assert!(matches!(r.target, Target::Digest(_)));
        assert_eq!(r.layout, PathBuf::from("lay"));
        assert_eq!(Reference::parse("plain").unwrap().target, Target::Default);
        assert!(Reference::parse("lay:bad tag").is_err());
        assert!(Reference::parse("lay@md5:abcd").is_err());
    }

    #[test]
    fn earlier_colon_names_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let lay = dir.path().join("lay");
        std::fs::create_dir(&lay).unwrap();
        std::fs::write(lay.join("oci-layout"), "{}").unwrap();
        let s = format!("{}:docker.io/library/debian:12", lay.display());
        let r = Reference::parse(&s).unwrap();
        assert_eq!(r.layout, lay);
        assert_eq!(r.target, Target::Tag("docker.io/library/debian:12".into()));
    }
}
