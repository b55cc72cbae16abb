//! docker-archive: the `docker save` format. Export writes, for `docker load` and skopeo's
//! `docker-archive:`, `manifest.json` (`Config`, `RepoTags`, `Layers` per image) and
//! `repositories` first, then each image's config as `<sha256 of the config>.json`, byte for
//! byte, and each layer uncompressed as `<diff_id hex>/layer.tar`. A layer is decompressed
//! twice (once to learn its size, which the tar header needs before the content, and to check
//! its diff_id before anything is written; once to write it), so nothing is spooled to disk
//! and memory stays small. Import turns each `manifest.json` entry back into an OCI manifest
//! over the layers [`super::import`] stored, checking every layer's diff_id against the
//! config.

use crate::words::plural;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};

use serde::Deserialize;

use super::error::{Error, Result};
use super::graph::holds;
use super::members::{manifest_path, Members, Stored};
use super::oci_archive::{ExportOptions, ExportReport, ExportedImage};
use super::tar_out::TarOut;
use super::{Chosen, ProgressFn, Ticker};
use crate::digest::{Algorithm, Digest, HashingReader};
use crate::layer::Compression;
use crate::layout::walk::{blob_ref, decode_config, Node};
use crate::layout::{Layout, LockMode, JSON_LIMIT};
use crate::spec::{media_type, to_canonical_json, BlobRef, Descriptor, Kind, Platform};

/// One layer of an image being exported.
struct PlannedLayer {
    blob: BlobRef,
    compression: Compression,
    diff_id: Digest,
    /// Uncompressed size, learnt by the first pass.
    size: u64,
}

/// One image being exported.
struct Planned {
    layout: usize,
    config_raw: Vec<u8>,
    config_name: String,
    layers: Vec<PlannedLayer>,
}

fn layer_dir(diff_id: &Digest) -> String {
    diff_id.hex().to_owned()
}

fn layer_name(diff_id: &Digest) -> String {
    format!("{}/layer.tar", diff_id.hex())
}

/// strata's own field in a `manifest.json` entry: `RepoTags` entry -> the layout tag it was
/// made from, where docker's rules changed it (`app` -> `app:latest`), so that an import
/// gives the tag back. docker and skopeo ignore fields they do not know.
const LAYOUT_TAGS: &str = "StrataLayoutTags";

/// A `manifest.json` entry being written.
struct ManifestItem {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
    layout_tags: BTreeMap<String, String>,
}

/// The docker `RepoTags` entry for a tag: `NAME:TAG` as it is, a bare name as `NAME:latest`.
/// docker refuses names with capitals and tags that are not `[A-Za-z0-9_][A-Za-z0-9_.-]*`.
pub fn docker_repo_tag(tag: &str) -> Result<String> {
    let (name, t) = match tag.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (tag, "latest"),
    };
    let name_ok = !name.is_empty()
        && name.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-:".contains(&b))
        });
    let tag_ok = t.len() <= 128
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if name_ok && tag_ok {
        Ok(format!("{name}:{t}"))
    } else {
        Err(Error::Unsupported(format!(
            "tag {tag:?} cannot be a docker RepoTag (NAME:TAG, the name in lowercase): export \
             it under another tag (strata tag) or by digest"
        )))
    }
}

/// Writes the chosen images to `out` in the `docker save` format. Each must be a single
/// image manifest (pick a platform out of an index first); layers are verified against the
/// config's diff_ids before anything is written.
pub fn export<W: Write>(
    chosen: &[Chosen],
    out: W,
    options: &ExportOptions,
    progress: ProgressFn<'_>,
) -> Result<ExportReport> {
    if options.exclude_present_in.is_some() {
        return Err(Error::Unsupported(
            "an incremental archive (blobs another layout has left out) needs the OCI archive \
             format: docker load cannot take one"
                .into(),
        ));
    }
    let _locks = chosen
        .iter()
        .map(|c| c.layout.lock_gc(LockMode::Shared))
        .collect::<crate::Result<Vec<_>>>()?;
    super::oci_archive::entries(chosen)?;
    let mut planned: Vec<Planned> = Vec::new();
    let mut manifest_json: Vec<ManifestItem> = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut images = Vec::new();
    // RepoTag -> (layout tag, image digest, config name) of the image that has it.
    let mut given: BTreeMap<String, (&str, &str, String)> = BTreeMap::new();
    for (i, c) in chosen.iter().enumerate() {
        let plan = plan(i, c)?;
        let repo_tag = c.tag().map(docker_repo_tag).transpose()?;
        if let (Some(rt), Some(tag)) = (&repo_tag, c.tag()) {
            match given.get(rt) {
                // One image (one config) under two tags docker spells alike is one image.
                Some((other_tag, other, config)) if *config != plan.config_name => {
                    return Err(Error::Unsupported(format!(
                        "tags {other_tag:?} ({other}) and {tag:?} ({}) are both {rt:?} to \
                         docker: the archive would give one tag to two images; export one \
                         of them under another tag",
                        c.entry.digest
                    )));
                }
                Some(_) => {}
                None => {
                    given.insert(
                        rt.clone(),
                        (tag, c.entry.digest.as_str(), plan.config_name.clone()),
                    );
                }
            }
        }
        // Where docker's rules changed the tag, the archive remembers the layout's own.
        let renamed = c
            .tag()
            .zip(repo_tag.as_deref())
            .filter(|(tag, rt)| tag != rt)
            .map(|(tag, rt)| (rt.to_owned(), tag.to_owned()));
        images.push(ExportedImage {
            tag: repo_tag.clone(),
            digest: c.entry.digest.clone(),
            media_type: c.entry.media_type.clone(),
        });
        if let (Some(rt), Some(top)) = (&repo_tag, plan.layers.last()) {
            let (name, tag) = rt.rsplit_once(':').expect("docker_repo_tag gives NAME:TAG");
            repositories
                .entry(name.to_owned())
                .or_default()
                .insert(tag.to_owned(), layer_dir(&top.diff_id));
        }
        let item = match manifest_json
            .iter_mut()
            .find(|m| m.config == plan.config_name)
        {
            Some(item) => item,
            None => {
                manifest_json.push(ManifestItem {
                    config: plan.config_name.clone(),
                    repo_tags: Vec::new(),
                    layers: plan.layers.iter().map(|l| layer_name(&l.diff_id)).collect(),
                    layout_tags: BTreeMap::new(),
                });
                planned.push(plan);
                manifest_json.last_mut().expect("just pushed")
            }
        };
        item.repo_tags
            .extend(repo_tag.filter(|t| !item.repo_tags.contains(t)));
        item.layout_tags.extend(renamed);
    }
    let manifest_doc: Vec<serde_json::Value> = manifest_json
        .iter()
        .map(|m| {
            let mut doc = serde_json::json!({
                "Config": m.config,
                "RepoTags": if m.repo_tags.is_empty() { serde_json::Value::Null } else { serde_json::json!(m.repo_tags) },
                "Layers": m.layers,
            });
            if !m.layout_tags.is_empty() {
                doc[LAYOUT_TAGS] = serde_json::json!(m.layout_tags);
            }
            doc
        })
        .collect();
    let io = |e: io::Error| crate::Error::Io {
        path: "the archive".into(),
        source: e,
    };
    let total: u64 = planned
        .iter()
        .flat_map(|p| p.layers.iter().map(|l| l.size))
        .sum();
    let mut ticker = Ticker::new(progress, Some(total));
    let mut tar = TarOut::new(out, options.mtime);
    tar.bytes("manifest.json", &to_canonical_json(&manifest_doc))
        .map_err(io)?;
    tar.bytes("repositories", &to_canonical_json(&repositories))
        .map_err(io)?;
    let mut written = HashSet::new();
    let mut blobs = 0;
    let mut blob_bytes = 0;
    for p in &planned {
        if written.insert(p.config_name.clone()) {
            tar.bytes(&p.config_name, &p.config_raw).map_err(io)?;
            ticker.blob(&p.config_name, p.config_raw.len() as u64, "written");
            blobs += 1;
            blob_bytes += p.config_raw.len() as u64;
        }
        let layout = &chosen[p.layout].layout;
        for layer in &p.layers {
            let name = layer_name(&layer.diff_id);
            if !written.insert(name.clone()) {
                continue;
            }
            tar.dir(&layer_dir(&layer.diff_id)).map_err(io)?;
            write_layer(&mut tar, layout, layer, &name, &mut ticker)?;
            ticker.blob(&name, layer.size, "written");
            blobs += 1;
            blob_bytes += layer.size;
        }
    }
    let archive_bytes = tar.written;
    tar.finish().map_err(io)?;
    ticker.finish();
    Ok(ExportReport {
        format: "docker",
        images,
        blobs,
        blob_bytes,
        excluded: 0,
        excluded_bytes: 0,
        archive_bytes,
    })
}

/// Reads an image's manifest and config and learns every layer's uncompressed size,
/// checking its diff_id.
fn plan(index: usize, chosen: &Chosen) -> Result<Planned> {
    let layout = &chosen.layout;
    let what = format!(
        "{} ({})",
        chosen.entry.digest,
        chosen.tag().unwrap_or("untagged")
    );
    let manifest = match layout.read_node(&chosen.entry)? {
        Some((_, _, Node::Manifest(m))) => m,
        Some((_, _, Node::Index(_))) => {
            return Err(Error::Layout(crate::Error::ChoiceNeeded {
                what,
                reason: "a multi-platform index: a docker archive holds single-platform images \
                         (pick one platform)"
                    .into(),
                choice: crate::Choice::Platform,
            }))
        }
        None => {
            return Err(Error::Unsupported(format!(
                "{what} has media type {}, not an image manifest",
                chosen.entry.media_type
            )))
        }
    };
    if Kind::of(&manifest.config.media_type) != Kind::Config {
        return Err(Error::Unsupported(format!(
            "{what} is not an image (its config is {}): docker archives hold images only",
            manifest.config.media_type
        )));
    }
    let (config_raw, config) = layout.read_config(&manifest.config)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(crate::Error::Invalid {
            what: format!("image {what}"),
            reason: format!(
                "{} but {} in its config",
                plural(manifest.layers.len(), "layer", "layers"),
                plural(config.rootfs.diff_ids.len(), "diff_id", "diff_ids")
            ),
        }
        .into());
    }
    let mut layers = Vec::new();
    for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let blob = blob_ref(desc, &format!("layer of {what}"))?;
        let compression = Compression::of_layer(&desc.media_type).ok_or_else(|| {
            Error::Unsupported(format!(
                "layer {} of {what} has media type {}, which strata cannot decompress",
                blob.digest, desc.media_type
            ))
        })?;
        let diff_id: Digest = diff_id.parse().map_err(|e| crate::Error::Invalid {
            what: format!("config {}", manifest.config.digest),
            reason: format!("diff_id {diff_id:?}: {e}"),
        })?;
        let (actual, size) = uncompressed(layout, &blob, compression, diff_id.algorithm())?;
        if actual != diff_id {
            return Err(crate::Error::LayerStream {
                layer: blob.digest.to_string(),
                reason: format!(
                    "its uncompressed content hashes to {actual}, but the config's diff_id \
                     says {diff_id}"
                ),
            }
            .into());
        }
        layers.push(PlannedLayer {
            blob,
            compression,
            diff_id,
            size,
        });
    }
    let config_name = format!(
        "{}.json",
        Digest::of_bytes(Algorithm::Sha256, &config_raw).hex()
    );
    Ok(Planned {
        layout: index,
        config_raw,
        config_name,
        layers,
    })
}

/// The digest and size of a layer's uncompressed content (the blob itself is verified).
fn uncompressed(
    layout: &Layout,
    blob: &BlobRef,
    compression: Compression,
    algorithm: Algorithm,
) -> crate::Result<(Digest, u64)> {
    let mut reader = layout.open_blob(blob)?;
    let result = (|| {
        let mut hashing = HashingReader::new(compression.decoder(&mut reader)?, algorithm);
        let mut buf = vec![0u8; 1 << 20];
        while hashing.read(&mut buf)? != 0 {}
        // A compressed stream may end before the blob: the blob is verified to its end.
        let (digest, size, mut decoder) = hashing.finish();
        io::copy(&mut decoder, &mut io::sink())?;
        drop(decoder);
        Ok((digest, size))
    })();
    match result {
        Ok(v) => {
            io::copy(&mut reader, &mut io::sink()).map_err(|e| reader.explain(e))?;
            Ok(v)
        }
        Err(e) => Err(reader.explain(e)),
    }
}

/// Writes one layer, uncompressed, checking it is what the first pass saw.
fn write_layer<W: Write>(
    tar: &mut TarOut<W>,
    layout: &Layout,
    layer: &PlannedLayer,
    name: &str,
    ticker: &mut Ticker<'_>,
) -> Result<()> {
    let mut reader = layout.open_blob(&layer.blob)?;
    let result = (|| -> io::Result<Digest> {
        let mut hashing = HashingReader::new(
            layer.compression.decoder(&mut reader)?,
            layer.diff_id.algorithm(),
        );
        tar.file(name, layer.size, &mut hashing, &mut |n| ticker.advance(n))?;
        Ok(hashing.digest())
    })();
    let digest = result.map_err(|e| match super::tar_out::as_archive_write(e) {
        Ok(write) => crate::Error::Io {
            path: "the archive".into(),
            source: write,
        },
        Err(read) => reader.explain(read),
    })?;
    if digest != layer.diff_id {
        return Err(crate::Error::LayerStream {
            layer: layer.blob.digest.to_string(),
            reason: "changed while it was being exported".into(),
        }
        .into());
    }
    Ok(())
}

/// An entry of docker's `manifest.json`.
#[derive(Debug, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
    #[serde(rename = "StrataLayoutTags", default)]
    layout_tags: BTreeMap<String, String>,
}

/// An image assembled from a docker archive.
#[derive(Debug, Clone)]
pub(crate) struct DockerImage {
    /// The new OCI manifest's descriptor (in the staging layout), with the config's platform.
    pub manifest: Descriptor,
    /// Its `RepoTags`.
    pub tags: Vec<String>,
    /// Its config's name in the archive, as `manifest.json` gives it.
    pub config: String,
    /// Its config's digest.
    pub config_digest: String,
}

/// Builds an OCI manifest in `staging` for every `manifest.json` entry: the config stored
/// byte for byte, the layers as [`super::import`] stored them, each layer's diff_id checked
/// against the config. A file `manifest.json` names that the archive lacks is an error.
pub(crate) fn assemble(
    manifest_json: &[u8],
    members: &Members,
    staging: &Layout,
    dest: &Layout,
) -> Result<Vec<DockerImage>> {
    let bad = |reason: String| Error::BadArchive {
        what: "manifest.json".into(),
        reason,
    };
    let entries: Vec<DockerEntry> = serde_json::from_slice(manifest_json).map_err(|e| {
        bad(crate::words::other_json_kind(manifest_json, "array")
            .unwrap_or_else(|| crate::words::json_reason(&e)))
    })?;
    if entries.is_empty() {
        return Err(bad("lists no images".into()));
    }
    if entries.len() > super::import::MAX_ENTRIES {
        return Err(bad(format!(
            "lists {} images, over the limit of {} for one archive",
            entries.len(),
            super::import::MAX_ENTRIES
        )));
    }
    // Every entry's config is parsed, and entries may share one: a 64 MB manifest.json
    // naming a 64 MB config in each entry would parse it without end. Real configs are KBs.
    let mut parsed = 0u64;
    // A layer blob is read through for its diff_id once, however often entries name it: a
    // manifest.json of a few MB may name one blob a hundred thousand times.
    let mut blob_layers: HashMap<(Digest, Algorithm), (Descriptor, String)> = HashMap::new();
    let mut out = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let image = format!("image {} ({})", n + 1, entry.config);
        let missing = |path: &str, what: &str| {
            let name = manifest_path(path).unwrap_or_default();
            match members.unreadable.get(&name) {
                Some(reason) => bad(format!(
                    "names {path:?} as {what} of {image}, but that member is not a layer \
                     strata can read: {reason}"
                )),
                None => bad(format!(
                    "names {path:?} as {what} of {image}, but the archive has no such file"
                )),
            }
        };
        let refused = |path: &str, what: &str, reason: String| {
            bad(format!("names {path:?} as {what} of {image}: {reason}"))
        };
        let config_name = manifest_path(&entry.config)
            .map_err(|reason| refused(&entry.config, "the config", reason))?;
        let config_raw: Vec<u8> = match members.resolve(&config_name) {
            Some(Stored::Json(bytes)) => bytes.clone(),
            Some(Stored::Blob(blob)) => {
                let store = if holds(staging, blob) { staging } else { dest };
                store.read_blob(blob, JSON_LIMIT, "config")?
            }
            Some(Stored::Layer(_)) => {
                return Err(bad(format!(
                    "names {:?}, a layer, as the config of {image}",
                    entry.config
                )))
            }
            None => return Err(missing(&entry.config, "the config")),
        };
        parsed += config_raw.len() as u64;
        if parsed > 4 * JSON_LIMIT {
            return Err(bad(format!(
                "its images' configs add up to over {} bytes (at {image})",
                4 * JSON_LIMIT
            )));
        }
        let what = format!("config {:?}", entry.config);
        let config = decode_config(&config_raw, &what).map_err(|e| Error::in_archive(&what, e))?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(bad(format!(
                "{image} has {}, but its config lists {}",
                plural(entry.layers.len(), "layer", "layers"),
                plural(config.rootfs.diff_ids.len(), "diff_id", "diff_ids")
            )));
        }
        let mut layers = Vec::new();
        for (path, want) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let name = manifest_path(path).map_err(|reason| refused(path, "a layer", reason))?;
            let (desc, diff_id) = match members.resolve(&name) {
                Some(Stored::Layer(w)) => (
                    Descriptor::new(w.media_type, &w.blob.digest, w.blob.size),
                    w.diff_id.to_string(),
                ),
                // The OCI-layout form newer docker writes: a layer blob, kept as it is, so
                // its media type says how its bytes are compressed.
                Some(Stored::Blob(b)) => {
                    let store = if holds(staging, b) { staging } else { dest };
                    let want: Digest = want.parse().map_err(|e| {
                        bad(format!(
                            "{image}'s config has a malformed diff_id {want:?}: {e}"
                        ))
                    })?;
                    let key = (b.digest.clone(), want.algorithm());
                    match blob_layers.get(&key) {
                        Some(found) => found.clone(),
                        None => {
                            let found = blob_layer(store, b, want.algorithm())?;
                            blob_layers.insert(key, found.clone());
                            found
                        }
                    }
                }
                Some(Stored::Json(_)) => {
                    return Err(bad(format!(
                        "names {path:?}, a JSON file, as a layer of {image}"
                    )))
                }
                None => return Err(missing(path, "a layer")),
            };
            if &diff_id != want {
                return Err(bad(format!(
                    "layer {path:?} of {image} is {diff_id} uncompressed, but the config's \
                     diff_id says {want}"
                )));
            }
            layers.push(desc);
        }
        let config_blob = staging.put_blob(&config_raw)?;
        // Docker configs are OCI configs with extra fields, which stay (byte for byte).
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::MANIFEST,
            "config": Descriptor::new(media_type::CONFIG, &config_blob.digest, config_blob.size),
            "layers": layers,
        });
        let manifest_blob = staging.put_blob(&to_canonical_json(&manifest))?;
        let mut desc = Descriptor::new(
            media_type::MANIFEST,
            &manifest_blob.digest,
            manifest_blob.size,
        );
        desc.platform = Some(Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: config.variant.clone(),
            ..Platform::default()
        });
        out.push(DockerImage {
            manifest: desc,
            tags: entry
                .repo_tags
                .iter()
                .flatten()
                .map(|rt| entry.layout_tags.get(rt).unwrap_or(rt).clone())
                .collect(),
            config: entry.config.clone(),
            config_digest: config_blob.digest.to_string(),
        });
    }
    Ok(out)
}

/// The descriptor and diff_id of a layer stored as a blob, by what its bytes are: a plain
/// tar is its own diff_id; a gzip or zstd one is read through (streamed) for it.
fn blob_layer(
    store: &Layout,
    blob: &BlobRef,
    algorithm: Algorithm,
) -> Result<(Descriptor, String)> {
    let mut head = [0u8; 4];
    let n = {
        let mut reader = store.open_blob(blob)?;
        crate::ioext::read_full(&mut reader, &mut head).map_err(|e| reader.explain(e))?
    };
    let compression = Compression::sniff(&head[..n]);
    let diff_id = match compression {
        Compression::None => blob.digest.clone(),
        _ => uncompressed(store, blob, compression, algorithm)?.0,
    };
    Ok((
        Descriptor::new(compression.media_type(), &blob.digest, blob.size),
        diff_id.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_tags() {
        assert_eq!(docker_repo_tag("demo").unwrap(), "demo:latest");
        assert_eq!(docker_repo_tag("demo:v1").unwrap(), "demo:v1");
        assert_eq!(
            docker_repo_tag("docker.io/library/debian:12").unwrap(),
            "docker.io/library/debian:12"
        );
        assert_eq!(
            docker_repo_tag("localhost:5000/app").unwrap(),
            "localhost:5000/app:latest"
        );
        assert!(docker_repo_tag("Demo").is_err());
    }
}
