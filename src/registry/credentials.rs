//! Placeholder until the credential store lands: the secret type only.

/// A secret for one registry.
pub enum Credential {
    /// User name and password.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token.
    IdentityToken(String),
}

/// Placeholder store.
pub struct CredentialStore {
    /// docker's config.json.
    pub docker_config: Option<std::path::PathBuf>,
    /// containers-auth.json files.
    pub auth_files: Vec<std::path::PathBuf>,
    /// Directories searched for helpers.
    pub helper_path: Vec<std::path::PathBuf>,
}

/// Placeholder error.
#[derive(Debug, thiserror::Error)]
#[error("credentials")]
pub struct CredentialError;

impl CredentialStore {
    /// Placeholder.
    pub fn lookup(&self, _registry: &str) -> Result<Option<Credential>, CredentialError> {
        Ok(None)
    }
    /// Placeholder.
    pub fn login(&self, _registry: &str, _c: &Credential) -> Result<(), CredentialError> {
        Ok(())
    }
    /// Placeholder.
    pub fn logout(&self, _registry: &str) -> Result<bool, CredentialError> {
        Ok(false)
    }
}
