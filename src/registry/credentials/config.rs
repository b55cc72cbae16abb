//! Docker's config.json and containers' auth.json: the same shape ("auths", "credHelpers",
//! "credsStore"), read as a JSON value so that a rewrite keeps every key strata does not know.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Map, Value};

use super::keys::{Registry, Scope};
use super::{Credential, CredentialError};

/// Fields of an "auths" entry that hold a secret: replaced as a whole on login.
const SECRET_FIELDS: [&str; 5] = [
    "auth",
    "username",
    "password",
    "identitytoken",
    "registrytoken",
];

/// Docker and containers decode with Go's padded standard alphabet; hand-written files
/// sometimes drop the padding, which loses nothing.
const AUTH_DECODER: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// One config file, as read. No Debug: it holds secrets.
pub(super) struct ConfigFile {
    pub(super) path: PathBuf,
    root: Map<String, Value>,
}

impl ConfigFile {
    /// The file at `path`, or None when it does not exist.
    pub(super) fn read(path: &Path) -> Result<Option<ConfigFile>, CredentialError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CredentialError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        // Docker reads an empty file as an empty config.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(ConfigFile::empty(path)));
        }
        // The parser's own message may quote the text, which may be a secret: only the
        // position is kept.
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| CredentialError::BadJson {
                path: path.to_path_buf(),
                line: e.line(),
                column: e.column(),
            })?;
        match value {
            Value::Object(root) => Ok(Some(ConfigFile {
                path: path.to_path_buf(),
                root,
            })),
            _ => Err(bad(path, "is not a JSON object".to_string())),
        }
    }

    /// A config that does not exist yet.
    pub(super) fn empty(path: &Path) -> ConfigFile {
        ConfigFile {
            path: path.to_path_buf(),
            root: Map::new(),
        }
    }

    /// The helper "credHelpers" names for `registry`: its own key first, then any key that
    /// normalises to it (in key order, so the answer does not depend on hashing).
    pub(super) fn cred_helper(&self, registry: &Registry) -> Result<Option<&str>, CredentialError> {
        let Some(helpers) = self.object("credHelpers")? else {
            return Ok(None);
        };
        let key = match helpers.get(registry.key()) {
            Some(_) => registry.key(),
            None => match helpers
                .keys()
                .find(|k| Scope::of_key(k).is_registry(registry))
            {
                Some(k) => k.as_str(),
                None => return Ok(None),
            },
        };
        match &helpers[key] {
            Value::String(name) => self.helper_name(name, || format!("credHelpers[{key:?}]")),
            _ => Err(bad(
                &self.path,
                format!("credHelpers[{key:?}] is not a string"),
            )),
        }
    }

    /// The "credsStore" helper, for registries without their own. Docker omits an empty one.
    pub(super) fn creds_store(&self) -> Result<Option<&str>, CredentialError> {
        match self.root.get("credsStore") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(name)) if name.is_empty() => Ok(None),
            Some(Value::String(name)) => self.helper_name(name, || "credsStore".to_string()),
            Some(_) => Err(bad(&self.path, "credsStore is not a string".to_string())),
        }
    }

    /// The helper for `registry` as docker picks it: its credHelpers entry, else credsStore.
    pub(super) fn helper_for(&self, registry: &Registry) -> Result<Option<&str>, CredentialError> {
        match self.cred_helper(registry)? {
            Some(name) => Ok(Some(name)),
            None => self.creds_store(),
        }
    }

    /// A helper name becomes part of a program's file name: one that could climb out of the
    /// helper directories is refused.
    fn helper_name<'a>(
        &self,
        name: &'a str,
        field: impl FnOnce() -> String,
    ) -> Result<Option<&'a str>, CredentialError> {
        if name.is_empty() || name.contains(['/', '\0']) {
            return Err(bad(
                &self.path,
                format!("{} is not a credential helper name", field()),
            ));
        }
        Ok(Some(name))
    }

    /// The credential stored in "auths" for `registry` (and, given, `repository` of it): the
    /// longest namespace key covering the repository, then the registry's own key, then any
    /// key that normalises to it. Entries that hold no credential (the `{}` docker writes when
    /// a helper keeps the secret) are passed over.
    pub(super) fn auths_credential(
        &self,
        registry: &Registry,
        repository: Option<&str>,
    ) -> Result<Option<Credential>, CredentialError> {
        let Some(auths) = self.object("auths")? else {
            return Ok(None);
        };
        let mut namespaced: Vec<(usize, &String)> = match repository {
            Some(repo) => auths
                .keys()
                .filter_map(|k| Scope::of_key(k).covers(registry, repo).map(|n| (n, k)))
                .collect(),
            None => Vec::new(),
        };
        namespaced.sort_by_key(|(covered, _)| std::cmp::Reverse(*covered));
        let own = auths.get_key_value(registry.key()).map(|(k, _)| k);
        let aliases = auths
            .keys()
            .filter(|k| Some(*k) != own && Scope::of_key(k).is_registry(registry));
        let candidates = namespaced
            .into_iter()
            .map(|(_, k)| k)
            .chain(own)
            .chain(aliases);
        for key in candidates {
            if let Some(credential) = self.entry_credential(key, &auths[key])? {
                return Ok(Some(credential));
            }
        }
        Ok(None)
    }

    /// The credential one "auths" entry holds: "identitytoken" first (docker exchanges it in
    /// preference to a password), then "auth", then "username"/"password".
    fn entry_credential(
        &self,
        key: &str,
        entry: &Value,
    ) -> Result<Option<Credential>, CredentialError> {
        let Value::Object(entry) = entry else {
            return Err(bad(&self.path, format!("auths[{key:?}] is not an object")));
        };
        let field = |name: &str| -> Result<&str, CredentialError> {
            match entry.get(name) {
                None | Some(Value::Null) => Ok(""),
                Some(Value::String(s)) => Ok(s),
                Some(_) => Err(bad(
                    &self.path,
                    format!("auths[{key:?}].{name} is not a string"),
                )),
            }
        };
        let token = field("identitytoken")?;
        if !token.is_empty() {
            return Ok(Some(Credential::IdentityToken(token.to_string())));
        }
        let auth = field("auth")?.trim();
        if !auth.is_empty() {
            // Neither the decoder's message nor the decoded text may reach the error: both
            // quote the secret.
            let refuse = |what: &str| bad(&self.path, format!("auths[{key:?}].auth {what}"));
            let decoded = AUTH_DECODER
                .decode(auth)
                .map_err(|_| refuse("is not valid base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| refuse("is not UTF-8"))?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| refuse("is not \"user:password\""))?;
            if username.is_empty() {
                return Err(refuse("has an empty user name"));
            }
            // Docker and containers both strip NULs some old writers padded the password with.
            return Ok(Some(Credential::Basic {
                username: username.to_string(),
                password: password.trim_matches('\0').to_string(),
            }));
        }
        let username = field("username")?;
        if !username.is_empty() {
            return Ok(Some(Credential::Basic {
                username: username.to_string(),
                password: field("password")?.to_string(),
            }));
        }
        Ok(None)
    }

    /// Makes `registry`'s "auths" entry hold `credential` (None: an empty entry, as docker
    /// keeps when a helper holds the secret), under the registry's own key; entries under
    /// other spellings of the same registry are removed, as they would shadow or outlive it.
    /// Other fields of the entry (docker's "email") are kept. Says whether anything changed.
    pub(super) fn set_entry(
        &mut self,
        registry: &Registry,
        credential: Option<&Credential>,
    ) -> Result<bool, CredentialError> {
        let path = self.path.clone();
        let auths = self.object_mut("auths")?;
        let before = auths.clone();
        auths.retain(|k, _| k == registry.key() || !Scope::of_key(k).is_registry(registry));
        let entry = auths
            .entry(registry.key().to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(entry) = entry else {
            return Err(bad(
                &path,
                format!("auths[{:?}] is not an object", registry.key()),
            ));
        };
        entry.retain(|k, _| !SECRET_FIELDS.contains(&k.as_str()));
        match credential {
            Some(Credential::Basic { username, password }) => {
                let auth = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                entry.insert("auth".to_string(), Value::String(auth));
            }
            Some(Credential::IdentityToken(token)) => {
                entry.insert("identitytoken".to_string(), Value::String(token.clone()));
            }
            None => {}
        }
        Ok(*auths != before)
    }

    /// Removes every "auths" entry for the registry as a whole (namespace keys stay: they
    /// are other logins). Says what went: `(entries removed, one of them held a secret)`.
    pub(super) fn remove_entries(
        &mut self,
        registry: &Registry,
    ) -> Result<(bool, bool), CredentialError> {
        let Some(Value::Object(auths)) = self.root.get_mut("auths") else {
            // object() reports a non-object "auths"; absent means nothing to remove.
            return self.object("auths").map(|_| (false, false));
        };
        let (mut removed, mut held_secret) = (false, false);
        auths.retain(|k, entry| {
            let keep = !Scope::of_key(k).is_registry(registry);
            if !keep {
                removed = true;
                held_secret |= SECRET_FIELDS.iter().any(|f| {
                    entry
                        .get(f)
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                });
            }
            keep
        });
        Ok((removed, held_secret))
    }

    /// Writes the config back crash-safely, through a symlink to its target as docker does.
    /// A new file is 0600 in a directory created 0700; an existing one keeps its mode.
    pub(super) fn write(&self) -> Result<(), CredentialError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CredentialError::Io { path, source }
        };
        let target = match fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(&self.path) {
                Ok(target) => target,
                // A dangling link: its target is where the config is to be created.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let link = fs::read_link(&self.path).map_err(io_err(&self.path))?;
                    match self.path.parent() {
                        Some(dir) => dir.join(link),
                        None => link,
                    }
                }
                Err(e) => return Err(io_err(&self.path)(e)),
            },
            _ => self.path.clone(),
        };
        let mode = match fs::metadata(&target) {
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0o600,
            Err(e) => return Err(io_err(&target)(e)),
        };
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir))?;
        }
        // Tab-indented, as docker writes it.
        crate::ioext::replace_file_with_mode(&target, mode, |out| {
            let mut ser = serde_json::Serializer::with_formatter(
                &mut *out,
                serde_json::ser::PrettyFormatter::with_indent(b"\t"),
            );
            serde::Serialize::serialize(&self.root, &mut ser)
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|source| crate::Error::Io {
                    path: target.clone(),
                    source,
                })
        })
        .map_err(|e| match e {
            crate::Error::Io { path, source } => CredentialError::Io { path, source },
            other => CredentialError::Io {
                path: target.clone(),
                source: io::Error::other(other.to_string()),
            },
        })
    }

    /// The object under `field`, or None when absent or null.
    fn object(&self, field: &str) -> Result<Option<&Map<String, Value>>, CredentialError> {
        match self.root.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(bad(&self.path, format!("{field} is not an object"))),
        }
    }

    /// The object under `field`, created when absent or null.
    fn object_mut(&mut self, field: &str) -> Result<&mut Map<String, Value>, CredentialError> {
        let slot = self.root.entry(field.to_string()).or_insert(Value::Null);
        if slot.is_null() {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(m) => Ok(m),
            _ => Err(bad(&self.path, format!("{field} is not an object"))),
        }
    }
}

fn bad(path: &Path, reason: String) -> CredentialError {
    CredentialError::BadConfig {
        path: path.to_path_buf(),
        reason,
    }
}
