//! `index.json`: read with its exact bytes kept, and updated only under the index lock with an
//! atomic replace, so concurrent taggers never lose each other's entries.

use super::Layout;
use crate::error::{Error, Result};
use crate::spec::{media_type, to_canonical_json, Index};

/// `index.json` as read: the parsed index and the exact bytes it came from.
#[derive(Debug, Clone)]
pub struct IndexFile {
    /// The parsed index.
    pub index: Index,
    /// The bytes on disk.
    pub raw: Vec<u8>,
}

impl Layout {
    /// Reads and checks `index.json`.
    pub fn read_index(&self) -> Result<IndexFile> {
        let path = self.index_path();
        let raw = match self.read_own_file("index.json") {
            Ok(raw) => raw,
            Err(super::nofollow::Refused::Missing(_)) => {
                return Err(Error::BadLayout {
                    path,
                    reason: "missing: an OCI layout must have an index.json".into(),
                })
            }
            Err(refused) => return Err(refused.into_layout_error()),
        };
        let what = path.display().to_string();
        let index = parse_index(&raw, &what)?;
        Ok(IndexFile { index, raw })
    }

    /// Read-modify-write of `index.json` under the index lock. `change` gets the current
    /// index and returns whether it changed it; only then is the file replaced (atomically:
    /// temp file, fsync, rename, directory fsync). Returns what `change` returned.
    pub fn update_index<T>(
        &self,
        change: impl FnOnce(&mut Index) -> Result<(bool, T)>,
    ) -> Result<T> {
        let _lock = self.lock_index()?;
        let mut current = self.read_index()?.index;
        let (changed, out) = change(&mut current)?;
        if changed {
            if current.media_type.is_none() {
                current.media_type = Some(media_type::INDEX.to_owned());
            }
            self.write_file_atomically("index.json", &to_canonical_json(&current))?;
            self.tidy_tmp();
        }
        Ok(out)
    }
}

/// Parses an image index, refusing the shapes the spec forbids (a `config` or `layers` field:
/// CVE-2021-41190's media-type confusion) and a wrong `schemaVersion` or `mediaType`.
pub(crate) fn parse_index(raw: &[u8], what: &str) -> Result<Index> {
    check_schema_version(raw, what)?;
    let index: Index = serde_json::from_slice(raw).map_err(Error::bad_json(what))?;
    let invalid = |reason: String| Error::Invalid {
        what: what.to_owned(),
        reason,
    };
    if let Some(mt) = &index.media_type {
        if mt != media_type::INDEX && mt != media_type::DOCKER_MANIFEST_LIST {
            return Err(invalid(format!(
                "mediaType is {mt:?}, must be {}",
                media_type::INDEX
            )));
        }
    }
    for field in ["config", "layers"] {
        if index.extra.contains_key(field) {
            return Err(invalid(format!(
                "an index must not have a {field:?} field (is it a manifest?)"
            )));
        }
    }
    Ok(index)
}

/// Refuses an index or manifest whose `schemaVersion` is not 2 before its other fields are
/// decoded: a document of another version is not read by this version's rules, and its
/// field errors would only hide that.
pub(crate) fn check_schema_version(raw: &[u8], what: &str) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<serde_json::Value>,
    }
    let doc: Versioned = serde_json::from_slice(raw).map_err(|e| {
        match crate::words::other_json_kind(raw, "object") {
            Some(reason) => Error::Invalid {
                what: what.to_owned(),
                reason,
            },
            None => Error::bad_json(what)(e),
        }
    })?;
    let reason = match doc.schema_version {
        Some(v) if v == 2 => return Ok(()),
        Some(v) => format!("schemaVersion {v}, must be 2"),
        None => "schemaVersion is missing, must be 2".to_owned(),
    };
    Err(Error::Invalid {
        what: what.to_owned(),
        reason,
    })
}
