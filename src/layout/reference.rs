//! References to images in a layout: `LAYOUT`, `LAYOUT:TAG` and `LAYOUT@ALG:HEX`, and the
//! grammar of tags (`org.opencontainers.image.ref.name`).

use std::path::{Path, PathBuf};

use crate::digest::Digest;
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
    /// Parses a reference by its text alone, whatever exists on disk:
    ///
    /// - `LAYOUT@ALG:ENCODED`: when an `@` comes before the first `:` and the text between
    ///   them fits the digest algorithm grammar, the rest is a digest (of a supported
    ///   algorithm);
    /// - `LAYOUT:TAG`: otherwise the first `:` ends the layout, and the tag is everything
    ///   after it, colons and slashes included (`lay:docker.io/library/debian:12`), as
    ///   skopeo's `oci:PATH:REF` splits;
    /// - `LAYOUT`: no `:` at all.
    ///
    /// A layout path holding a `:` cannot be written here: it is given apart (as the default
    /// layout of [`Reference::parse_in`]) and the reference is then `:TAG`, `@DIGEST` or
    /// empty.
    pub fn parse(s: &str) -> Result<Reference> {
        Reference::parse_in(s, None)
    }

    /// Parses a reference whose layout part may be empty (`:TAG`, `@DIGEST`, or nothing), in
    /// which case it names `default_layout`.
    pub fn parse_in(s: &str, default_layout: Option<&Path>) -> Result<Reference> {
        let (layout, target) = split(s)?;
        let layout = match (layout.is_empty(), default_layout) {
            (false, _) => PathBuf::from(layout),
            (true, Some(d)) => d.to_path_buf(),
            (true, None) => {
                return Err(Error::InvalidReference {
                    reference: s.to_owned(),
                    reason: "it names no layout (write LAYOUT:TAG or LAYOUT@DIGEST, or give the \
                             layout apart)"
                        .into(),
                })
            }
        };
        Ok(Reference { layout, target })
    }
}

/// The layout part (possibly empty) and the target of a reference's text.
fn split(s: &str) -> Result<(&str, Target)> {
    let Some(colon) = s.find(':') else {
        return Ok((s, Target::Default));
    };
    if let Some(at) = s[..colon].rfind('@') {
        if is_algorithm(&s[at + 1..colon]) {
            let digest = s[at + 1..].parse().map_err(|e| Error::InvalidReference {
                reference: s.to_owned(),
                reason: format!("the text after @ is not a digest strata can verify: {e}"),
            })?;
            return Ok((&s[..at], Target::Digest(digest)));
        }
    }
    let tag = &s[colon + 1..];
    validate_tag(tag)?;
    Ok((&s[..colon], Target::Tag(tag.to_owned())))
}

/// The digest algorithm grammar: `[a-z0-9]+([+._-][a-z0-9]+)*`.
fn is_algorithm(s: &str) -> bool {
    s.split(['+', '.', '_', '-']).all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
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
        assert!(Reference::parse("lay:").is_err());
    }

    /// The split never depends on what exists: the same text gives the same layout and tag
    /// whether or not a directory of the longer name is a layout.
    #[test]
    fn the_first_colon_ends_the_layout_whatever_exists() {
        let dir = tempfile::tempdir().unwrap();
        let text = |root: &Path| format!("{}/newlay:docker.io/library/app:1", root.display());
        let before = Reference::parse(&text(dir.path())).unwrap();
        let long = dir.path().join("newlay:docker.io/library/app");
        std::fs::create_dir_all(&long).unwrap();
        std::fs::write(long.join("oci-layout"), "{}").unwrap();
        let after = Reference::parse(&text(dir.path())).unwrap();
        assert_eq!(before, after);
        assert_eq!(before.layout, dir.path().join("newlay"));
        assert_eq!(before.target, Target::Tag("docker.io/library/app:1".into()));
    }

    #[test]
    fn an_at_sign_in_a_path_is_not_a_digest() {
        let r = Reference::parse("/home/u@host/lay:v1").unwrap();
        assert_eq!(r.layout, PathBuf::from("/home/u@host/lay"));
        assert_eq!(r.target, Target::Tag("v1".into()));
        let r = Reference::parse("/home/u@host/lay").unwrap();
        assert_eq!(r.target, Target::Default);
        // A tag may hold @ (ref.name allows it) once the layout has ended.
        let r = Reference::parse("lay:v1@x").unwrap();
        assert_eq!(r.target, Target::Tag("v1@x".into()));
    }

    #[test]
    fn an_empty_layout_part_names_the_default_layout() {
        let d = Path::new("/some/lay:with:colons");
        let r = Reference::parse_in(":v1", Some(d)).unwrap();
        assert_eq!(
            (r.layout.as_path(), r.target),
            (d, Target::Tag("v1".into()))
        );
        let hex = "b".repeat(64);
        let r = Reference::parse_in(&format!("@sha256:{hex}"), Some(d)).unwrap();
        assert_eq!(r.layout, d);
        assert!(matches!(r.target, Target::Digest(_)));
        assert_eq!(
            Reference::parse_in("", Some(d)).unwrap().target,
            Target::Default
        );
        assert!(Reference::parse(":v1").is_err());
        assert!(Reference::parse("").is_err());
    }
}
