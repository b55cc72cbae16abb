//! An image's documents without its layers: the index, the manifest for a platform and its
//! config, fetched into a scratch layout so that everything that reads images from layouts
//! (inspect's summary among them) reads them from a registry too.

use std::io::Write;

use super::api::{self, Fetched};
use super::client::Client;
use super::error::{Error, Result};
use super::name::ImageName;
use crate::image::PlatformSpec;
use crate::layout::Layout;
use crate::spec::{BlobRef, Descriptor, Kind};

/// A scratch layout holding an image's documents, removed on drop.
pub struct Documents {
    /// The layout.
    pub layout: Layout,
    /// The entry for what the name named (an index or a manifest), as `index.json` lists it.
    pub entry: Descriptor,
    _dir: tempfile::TempDir,
}

/// Fetches what `name` names, and when that is an index, the manifest for `platform`; then
/// that manifest's config, into a scratch layout made under `scratch` (the caller chooses
/// it: the library reads no `TMPDIR`). Layers are not fetched.
pub fn fetch_documents(
    client: &Client,
    name: &ImageName,
    platform: &PlatformSpec,
    scratch: impl AsRef<std::path::Path>,
) -> Result<Documents> {
    let repo = name.repository.as_str();
    let scratch = scratch.as_ref();
    let dir = tempfile::Builder::new()
        .prefix("strata-inspect-")
        .tempdir_in(scratch)
        .map_err(|e| crate::Error::Io {
            path: scratch.to_owned(),
            source: e,
        })?;
    let layout = Layout::init(dir.path().join("layout"))?;
    let top = api::get_manifest(client, repo, &name.reference())?;
    store(&layout, &top)?;
    let entry = top.descriptor();
    let mut manifest = top;
    if Kind::of(&manifest.media_type) == Kind::Index {
        let index = crate::layout::walk::decode_index(
            &manifest.bytes,
            &manifest.media_type,
            &name.to_string(),
        )?;
        let chosen = index
            .manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
            .or_else(|| index.manifests.iter().find(|d| d.platform.is_none()))
            .ok_or_else(|| Error::Unsupported(format!("{name} has no image for {platform}")))?;
        manifest = api::get_manifest(client, repo, &chosen.digest)?;
        store(&layout, &manifest)?;
    }
    if Kind::of(&manifest.media_type) == Kind::Manifest {
        let m = crate::layout::walk::decode_manifest(
            &manifest.bytes,
            &manifest.media_type,
            &name.to_string(),
        )?;
        let config = crate::layout::walk::blob_ref(&m.config, "the manifest's config")?;
        // An artifact's config may be anything; only a small one is worth showing.
        if config.size <= crate::layout::JSON_LIMIT {
            let bytes = api::get_small_blob(client, repo, &config)?;
            put(&layout, &bytes, &config)?;
        }
    }
    crate::transfer::tags::publish_entries(&layout, &[(entry.clone(), None)], false)?;
    Ok(Documents {
        layout,
        entry,
        _dir: dir,
    })
}

/// Writes a fetched (already verified) document into a layout.
pub(crate) fn store(layout: &Layout, doc: &Fetched) -> Result<()> {
    put(
        layout,
        &doc.bytes,
        &BlobRef {
            digest: doc.digest.clone(),
            size: doc.bytes.len() as u64,
        },
    )
}

/// Writes bytes known to be `blob` into a layout, checked against it.
pub(crate) fn put(layout: &Layout, bytes: &[u8], blob: &BlobRef) -> Result<()> {
    let mut w = layout.blob_writer(blob.digest.algorithm())?;
    w.write_all(bytes).map_err(|e| crate::Error::Io {
        path: layout.root().to_owned(),
        source: e,
    })?;
    w.finish_expecting(blob)?;
    Ok(())
}
