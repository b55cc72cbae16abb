//! Registry credentials where docker and podman keep them: containers' auth.json files,
//! docker's config.json, and the credential helper programs those files name.
//!
//! The library reads no environment: the caller passes the files and the helper search path
//! (the CLI derives them from `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, `DOCKER_CONFIG`, `HOME`
//! and `PATH`). No secret reaches a `Debug` or `Display` output of any type here.

use std::fmt;
use std::path::PathBuf;

mod config;
mod helper;
mod keys;

use config::ConfigFile;
use helper::Helper;
use keys::Registry;

/// A secret for one registry. Its `Debug` output hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// user name and password (or a personal access token as password)
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// an OAuth2 refresh token ("identitytoken" in docker's config, or a helper answering
    /// Username `"<token>"`): exchanged at the token endpoint
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Hidden;
        impl fmt::Debug for Hidden {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<hidden>")
            }
        }
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &Hidden)
                .finish(),
            Credential::IdentityToken(_) => f.debug_tuple("IdentityToken").field(&Hidden).finish(),
        }
    }
}

/// Where credentials are looked up, in this order: auth files (containers' auth.json:
/// REGISTRY_AUTH_FILE, then $XDG_RUNTIME_DIR/containers/auth.json), then the docker config
/// file.
///
/// Within one file, as docker and containers read it: the registry's `credHelpers` program,
/// else its `auths` entry, else the `credsStore` program. The first file that yields a
/// credential wins; a file that does not exist yields none.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    /// docker's config.json ($DOCKER_CONFIG/config.json or ~/.docker/config.json); login/logout write here
    pub docker_config: Option<PathBuf>,
    /// containers-auth.json files, first match wins
    pub auth_files: Vec<PathBuf>,
    /// directories searched for `docker-credential-<name>` programs (the CLI passes $PATH split); empty = not found
    pub helper_path: Vec<PathBuf>,
}

impl CredentialStore {
    /// The credential for `registry` (a `host[:port]` as it appears in an image reference, e.g.
    /// "localhost:5000", "docker.io"), or None. Keys scoped to a repository ("quay.io/org")
    /// are not considered: see [`CredentialStore::lookup_repository`].
    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        self.find(registry, None)
    }

    /// The credential for `repository` (its path on the registry, e.g. "org/app"; docker
    /// hub's official images are under "library/") of `registry`: as
    /// [`CredentialStore::lookup`], except that in each file a key naming a namespace of the
    /// registry that holds the repository ("quay.io/org", "quay.io/org/app", as podman
    /// writes them) comes before the registry's own key, the longest such key first.
    pub fn lookup_repository(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        self.find(registry, Some(repository))
    }

    /// Stores a credential as `docker login` does: through the credsStore/credHelpers
    /// program when the config names one for this registry (leaving an empty `auths` entry,
    /// as docker does), else base64 "auth" (or "identitytoken") under "auths". Every other
    /// key and entry of the file is kept; entries for other spellings of the same registry
    /// ("https://host", "http://host/v2/") are replaced by the one under the registry's own
    /// key. A new file is created 0600 (its directory 0700); the write is atomic.
    pub fn login(&self, registry: &str, credential: &Credential) -> Result<(), CredentialError> {
        let registry = parse_registry(registry)?;
        check(credential)?;
        let path = self
            .docker_config
            .as_deref()
            .ok_or(CredentialError::NoConfigFile)?;
        let mut config = ConfigFile::read(path)?.unwrap_or_else(|| ConfigFile::empty(path));
        let stored_in_file = match config.helper_for(&registry)? {
            Some(name) => {
                self.helper(name, &config)?
                    .store(registry.key(), credential)?;
                None
            }
            None => {
                if let Credential::Basic { username, .. } = credential {
                    if username.contains(':') {
                        return Err(CredentialError::InvalidCredential {
                            reason: "a user name holding ':' cannot be stored in an \"auth\" field",
                        });
                    }
                }
                Some(credential)
            }
        };
        if config.set_entry(&registry, stored_in_file)? {
            config.write()?;
        }
        Ok(())
    }

    /// Removes it (helper `erase`, or the auths entry). Ok(false) when there was none. Only
    /// the docker config is changed: a credential in an auth file stays.
    pub fn logout(&self, registry: &str) -> Result<bool, CredentialError> {
        let registry = parse_registry(registry)?;
        let path = self
            .docker_config
            .as_deref()
            .ok_or(CredentialError::NoConfigFile)?;
        let Some(mut config) = ConfigFile::read(path)? else {
            return Ok(false);
        };
        let erased = match config.helper_for(&registry)? {
            Some(name) => self.helper(name, &config)?.erase(registry.key())?,
            None => false,
        };
        // An empty entry left beside a helper is no credential: it goes, but does not make
        // a logout that found nothing a success.
        let (removed, held_secret) = config.remove_entries(&registry)?;
        if removed {
            config.write()?;
        }
        Ok(erased || held_secret)
    }

    fn find(
        &self,
        registry: &str,
        repository: Option<&str>,
    ) -> Result<Option<Credential>, CredentialError> {
        let registry = parse_registry(registry)?;
        for path in self.auth_files.iter().chain(&self.docker_config) {
            let Some(config) = ConfigFile::read(path)? else {
                continue;
            };
            if let Some(name) = config.cred_helper(&registry)? {
                match self.helper(name, &config)?.get(registry.key())? {
                    Some(credential) => return Ok(Some(credential)),
                    None => continue,
                }
            }
            if let Some(credential) = config.auths_credential(&registry, repository)? {
                return Ok(Some(credential));
            }
            if let Some(name) = config.creds_store()? {
                if let Some(credential) = self.helper(name, &config)?.get(registry.key())? {
                    return Ok(Some(credential));
                }
            }
        }
        Ok(None)
    }

    fn helper(&self, name: &str, config: &ConfigFile) -> Result<Helper, CredentialError> {
        Helper::find(name, &self.helper_path, &config.path)
    }
}

fn parse_registry(name: &str) -> Result<Registry, CredentialError> {
    Registry::parse(name).ok_or_else(|| CredentialError::InvalidRegistry(name.to_string()))
}

/// Refuses credentials no registry accepts and that docker would not read back.
fn check(credential: &Credential) -> Result<(), CredentialError> {
    let reason = match credential {
        Credential::Basic { username, .. } if username.is_empty() => "the user name is empty",
        Credential::IdentityToken(token) if token.is_empty() => "the identity token is empty",
        _ => return Ok(()),
    };
    Err(CredentialError::InvalidCredential { reason })
}

/// Errors name the file or helper program at fault and never contain a secret (not even part
/// of a malformed base64 auth value, nor a helper's stdout).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// A config file or helper program could not be read, written or run.
    #[error("{path}: {source}")]
    Io {
        /// The file or program.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A config file is not JSON.
    #[error("{path}: not valid JSON (at line {line}, column {column})")]
    BadJson {
        /// The file.
        path: PathBuf,
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
    },
    /// A config file is JSON but not of the expected shape.
    #[error("{path}: {reason}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the value).
        reason: String,
    },
    /// A config names a credential helper that is in none of the helper directories.
    #[error(
        "credential helper {program} (named in {configured_in}) is not in any directory of the search path"
    )]
    HelperNotFound {
        /// The program's file name, `docker-credential-<name>`.
        program: String,
        /// The config file naming it.
        configured_in: PathBuf,
    },
    /// A credential helper failed.
    #[error(
        "credential helper {program} {action} failed ({status}){}{}",
        message.as_ref().map(|m| format!(": {m}")).unwrap_or_default(),
        if stderr.is_empty() { String::new() } else { format!("; stderr: {stderr}") }
    )]
    HelperFailed {
        /// The program.
        program: PathBuf,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// How it exited.
        status: String,
        /// The protocol's complaint, when its stdout was one of the fixed messages (any other
        /// stdout is withheld: it may hold a secret).
        message: Option<String>,
        /// Its stderr, trimmed and shortened.
        stderr: String,
    },
    /// A credential helper answered something else than the protocol's JSON.
    #[error("credential helper {program} {action} gave {reason}")]
    HelperOutput {
        /// The program.
        program: PathBuf,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// What was wrong (never the output itself).
        reason: &'static str,
    },
    /// A credential helper did not finish in time, and was killed.
    #[error(
        "credential helper {program} {action} did not finish within {seconds} s and was killed"
    )]
    HelperTimeout {
        /// The program.
        program: PathBuf,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// The time allowed.
        seconds: f64,
    },
    /// Login or logout without a docker config file to write.
    #[error("no docker config file is set to store credentials in")]
    NoConfigFile,
    /// A registry name with no host in it.
    #[error("{0:?} is not a registry host name")]
    InvalidRegistry(String),
    /// A credential that cannot be stored.
    #[error("cannot store the credential: {reason}")]
    InvalidCredential {
        /// Why.
        reason: &'static str,
    },
}

#[cfg(test)]
mod tests;
