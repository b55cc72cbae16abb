//! How a registry named in an image reference is matched against the keys of config files,
//! which docker, podman and hand-written files spell in many ways (`https://host/v1/`,
//! `http://host`, `host`, `docker.io` for docker hub's `https://index.docker.io/v1/`, and
//! containers' `host/namespace` keys).

/// The key `docker login` writes for docker hub, and the server URL docker hands helpers.
pub(super) const HUB_KEY: &str = "https://index.docker.io/v1/";

/// Docker hub's host names; any of them in a key or a reference means docker hub.
const HUB_HOSTS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// A registry as keys are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Registry {
    /// `host[:port]`, docker hub's aliases folded to "docker.io".
    host: String,
}

impl Registry {
    /// The registry an argument names: a `host[:port]`, leniently also a URL (scheme and path
    /// dropped, as `docker login` does). None when no host is left.
    pub(super) fn parse(name: &str) -> Option<Registry> {
        match Scope::of_key(name.trim()) {
            Scope::Registry(r) if !r.host.is_empty() => Some(r),
            Scope::Namespace(r, _) if !r.host.is_empty() => Some(r),
            _ => None,
        }
    }

    fn from_host(host: &str) -> Registry {
        let host = if HUB_HOSTS.contains(&host) {
            HUB_HOSTS[0]
        } else {
            host
        };
        Registry {
            host: host.to_string(),
        }
    }

    /// The key `docker login` stores it under, which is also the server URL docker passes
    /// to credential helpers: docker hub's v1 URL, else the bare `host[:port]`.
    pub(super) fn key(&self) -> &str {
        if self.host == HUB_HOSTS[0] {
            HUB_KEY
        } else {
            &self.host
        }
    }
}

/// What a config file key applies to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Scope {
    /// The whole registry.
    Registry(Registry),
    /// A repository or namespace of it (containers' auth.json "quay.io/org/repo" keys): the
    /// path without leading or trailing '/'.
    Namespace(Registry, String),
}

impl Scope {
    /// A key with a scheme is a URL whose path is an API version ("/v1/", "/v2/"), never a
    /// namespace: docker normalises such keys to their host. Without a scheme, a path is a
    /// namespace, as containers reads it.
    pub(super) fn of_key(key: &str) -> Scope {
        let (rest, url) = match key.split_once("://") {
            Some((scheme, rest))
                if !scheme.is_empty()
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
            {
                (rest, true)
            }
            _ => (key, false),
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let registry = Registry::from_host(host);
        let path = path.trim_matches('/');
        if url || path.is_empty() {
            Scope::Registry(registry)
        } else {
            Scope::Namespace(registry, path.to_string())
        }
    }

    /// Whether this key is for exactly `registry`, as a whole.
    pub(super) fn is_registry(&self, registry: &Registry) -> bool {
        matches!(self, Scope::Registry(r) if r == registry)
    }

    /// How many bytes of `repository`'s path this namespace key covers, when it covers it:
    /// the longest covering key is the most specific.
    pub(super) fn covers(&self, registry: &Registry, repository: &str) -> Option<usize> {
        match self {
            Scope::Namespace(r, path) if r == registry => {
                let repository = repository.trim_matches('/');
                let inside = repository == path
                    || repository
                        .strip_prefix(path.as_str())
                        .is_some_and(|rest| rest.starts_with('/'));
                inside.then_some(path.len())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(s: &str) -> Registry {
        Registry::parse(s).unwrap()
    }

    #[test]
    fn hub_spellings_are_one_registry_keyed_by_the_v1_url() {
        for name in [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "https://index.docker.io/v1/",
        ] {
            assert_eq!(reg(name).key(), HUB_KEY, "{name}");
        }
        for key in [
            HUB_KEY,
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "https://index.docker.io/v2/",
            "http://registry-1.docker.io",
        ] {
            assert!(Scope::of_key(key).is_registry(&reg("docker.io")), "{key}");
        }
    }

    #[test]
    fn url_keys_match_their_host_and_port_only() {
        let r = reg("localhost:5000");
        assert_eq!(r.key(), "localhost:5000");
        for key in [
            "localhost:5000",
            "https://localhost:5000",
            "http://localhost:5000",
            "https://localhost:5000/v1/",
            "https://localhost:5000/v2/",
        ] {
            assert!(Scope::of_key(key).is_registry(&r), "{key}");
        }
        for key in [
            "localhost",
            "localhost:5001",
            "https://localhost:50000",
            "localhost:5000/org",
        ] {
            assert!(!Scope::of_key(key).is_registry(&r), "{key}");
        }
        assert_eq!(Registry::parse(""), None);
        assert_eq!(Registry::parse("https:///v2/"), None);
    }

    #[test]
    fn namespace_keys_cover_their_repositories_only() {
        let quay = reg("quay.io");
        let org = Scope::of_key("quay.io/org");
        assert_eq!(org.covers(&quay, "org/repo"), Some(3));
        assert_eq!(org.covers(&quay, "org"), Some(3));
        assert_eq!(org.covers(&quay, "orgx/repo"), None);
        assert_eq!(org.covers(&reg("ghcr.io"), "org/repo"), None);
        assert!(!org.is_registry(&quay));
        assert_eq!(
            Scope::of_key("docker.io/library/").covers(&reg("docker.io"), "library/alpine"),
            Some(7)
        );
    }
}
