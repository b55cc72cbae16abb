//! Image names as docker and the distribution spec write them:
//! `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`, with docker's defaults (`debian` is
//! `docker.io/library/debian:latest`). A first component is a registry when it has a `.` or
//! a `:` or is `localhost`, as docker decides.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// docker.io's name in references; its API lives at [`DOCKER_HUB_API`].
pub const DOCKER_HUB: &str = "docker.io";
/// The host docker.io's registry API answers on.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// An image in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// `host[:port]` as written (docker's aliases of docker.io become `docker.io`).
    pub registry: String,
    /// The repository path, `library/` added for docker.io's official images.
    pub repository: String,
    /// The tag, if one was given.
    pub tag: Option<String>,
    /// The digest, if one was given (it wins over the tag, as docker does).
    pub digest: Option<Digest>,
}

/// Why a name was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{name:?} is not an image name ({reason}); write [REGISTRY/]REPOSITORY[:TAG][@DIGEST], e.g. localhost:5000/app:1")]
pub struct NameError {
    /// The name as given.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

impl ImageName {
    /// The host (and port) the registry's API answers on.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What a manifest request names: the digest if given, else the tag (`latest` if none).
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> ImageName {
        ImageName {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// True for a registry on this machine, where plain HTTP is allowed without asking.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// True for `localhost`, `127.0.0.0/8` and `[::1]`, with or without a port.
pub fn is_loopback_host(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => registry.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl FromStr for ImageName {
    type Err = NameError;

    fn from_str(given: &str) -> Result<ImageName, NameError> {
        let fail = |reason: &str| NameError {
            name: given.to_owned(),
            reason: reason.to_owned(),
        };
        let s = given.strip_prefix("docker://").unwrap_or(given);
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(d.parse::<Digest>().map_err(|e| fail(&e.to_string()))?),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/': a registry's port is not.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !is_tag(t) {
                return Err(fail(
                    "a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with . or -",
                ));
            }
        }
        let (registry, repository) = match path.split_once('/') {
            Some((first, repo)) if names_registry(first) => (first.to_owned(), repo.to_owned()),
            _ => (DOCKER_HUB.to_owned(), path.to_owned()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
            _ => registry,
        };
        if !is_registry(&registry) {
            return Err(fail(
                "the registry is a host name or address, with an optional :port",
            ));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() || !repository.split('/').all(is_path_component) {
            return Err(fail(
                "repository components are lowercase letters and digits, joined by . _ __ or dashes",
            ));
        }
        if repository.len() > 255 {
            return Err(fail("the repository is longer than 255 characters"));
        }
        Ok(ImageName {
            registry,
            repository,
            tag: tag.map(str::to_owned),
            digest,
        })
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// True when a name's first path component is a registry, as docker decides: it has a `.`
/// or a `:`, or is `localhost` (else the name is docker.io's).
pub fn names_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// A tag as the distribution spec allows: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// `host[:port]`: DNS labels or an IPv4 address, or a bracketed IPv6 address.
fn is_registry(r: &str) -> bool {
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip6, after)) => {
                if ip6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, after.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match r.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(r), None),
        }
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            })
    });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ImageName {
        s.parse().unwrap()
    }

    #[test]
    fn docker_defaults() {
        let n = parse("debian");
        assert_eq!(n.registry, "docker.io");
        assert_eq!(n.repository, "library/debian");
        assert_eq!(n.reference(), "latest");
        assert_eq!(n.api_host(), "registry-1.docker.io");
        assert_eq!(parse("user/app:1").repository, "user/app");
        assert_eq!(parse("index.docker.io/library/x").registry, "docker.io");
    }

    #[test]
    fn registries_ports_tags_digests() {
        let n = parse("localhost:5000/a/b:v1.2");
        assert_eq!(
            (n.registry.as_str(), n.repository.as_str(), n.tag.as_deref()),
            ("localhost:5000", "a/b", Some("v1.2"))
        );
        assert!(n.is_loopback());
        let d = format!("sha256:{}", "a".repeat(64));
        let n = parse(&format!("127.0.0.1:5000/app@{d}"));
        assert_eq!(n.reference(), d);
        assert!(n.is_loopback());
        let n = parse("docker://quay.io/org/app:t");
        assert_eq!(n.registry, "quay.io");
        assert!(!n.is_loopback());
        assert_eq!(parse("[::1]:5000/app").registry, "[::1]:5000");
        assert!(parse("[::1]:5000/app").is_loopback());
        assert_eq!(parse("localhost/app").to_string(), "localhost/app");
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "App",
            "localhost:5000/App",
            "localhost:5000/a:",
            "localhost:5000/a:-x",
            "localhost:99999/a",
            "a//b",
            "a/b@sha256:xyz",
            "a__-b/c",
        ] {
            assert!(bad.parse::<ImageName>().is_err(), "{bad:?} accepted");
        }
    }
}
