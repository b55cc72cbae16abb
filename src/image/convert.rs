//! Converting an image or index: its layers recompressed (diff_ids unchanged) and its media
//! types switched between OCI and Docker schema 2, as `skopeo copy --dest-compress-format`
//! and `--format` do. Blobs that do not change are kept as they are; an index is converted
//! platform by platform. Written as Docker schema 2, a document keeps only the fields that
//! format has: annotations, artifactType, subject and the like are dropped, and said.

use crate::error::{Error, Result};
use crate::layer::write::{check_level, write_layer_to_sink};
use crate::layer::Compression;
use crate::layout::walk::{blob_ref, Node};
use crate::layout::Layout;
use crate::spec::{media_type, to_canonical_json, Descriptor};

/// The media-type family to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OCI image-spec media types.
    Oci,
    /// Docker image manifest schema 2 media types.
    Docker,
}

/// What to convert to; `None` keeps what each blob has.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConvertOptions {
    /// The layers' compression.
    pub compression: Option<Compression>,
    /// The media types.
    pub format: Option<Format>,
    /// The level of the layers recompressed (`None`: level 3, for gzip and zstd alike); only
    /// with `compression`.
    pub level: Option<u32>,
}

/// The layer media type for `compression` in `format`; Docker schema 2 has no zstd layer.
fn layer_type(format: Format, compression: Compression) -> Result<&'static str> {
    Ok(match (format, compression) {
        (Format::Oci, c) => c.media_type(),
        (Format::Docker, Compression::Gzip) => media_type::DOCKER_LAYER_GZIP,
        (Format::Docker, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
        (Format::Docker, Compression::Zstd) => {
            return Err(Error::Invalid {
                what: "the conversion".into(),
                reason: "Docker schema 2 has no zstd layer type: convert to the OCI format \
                         for zstd"
                    .into(),
            })
        }
    })
}

fn format_of(manifest_type: &str) -> Format {
    match manifest_type {
        media_type::DOCKER_MANIFEST | media_type::DOCKER_MANIFEST_LIST => Format::Docker,
        _ => Format::Oci,
    }
}

/// Converts what `entry` points at and returns the descriptor of the result (the same one
/// when nothing changes). New blobs are written to `layout`; hold its gc lock shared until
/// the result is tagged.
pub fn convert(layout: &Layout, entry: &Descriptor, options: ConvertOptions) -> Result<Descriptor> {
    convert_reporting(layout, entry, options, &mut ConvertReport::default())
}

/// What a conversion did besides its result.
#[derive(Debug, Default)]
pub struct ConvertReport {
    /// The fields a conversion to Docker schema 2 left out, each as `DIGEST: field`.
    pub dropped: Vec<String>,
    /// The layers written anew (recompressed), in the order written.
    pub layers: Vec<crate::layer::write::WrittenLayer>,
}

/// The fields Docker schema 2 has (distribution's docs/spec/manifest-v2-2.md): an image
/// manifest, a manifest list, their descriptors and a list entry's platform.
const DOCKER_MANIFEST: &[&str] = &["schemaVersion", "mediaType", "config", "layers"];
const DOCKER_LIST: &[&str] = &["schemaVersion", "mediaType", "manifests"];
const DOCKER_CONFIG: &[&str] = &["mediaType", "size", "digest"];
const DOCKER_LAYER: &[&str] = &["mediaType", "size", "digest", "urls"];
const DOCKER_ENTRY: &[&str] = &["mediaType", "size", "digest", "platform"];
const DOCKER_PLATFORM: &[&str] = &[
    "architecture",
    "os",
    "os.version",
    "os.features",
    "variant",
    "features",
];

/// Removes from the object `value` the fields not in `allowed`, naming each in `dropped`
/// as `where_` and the field.
fn keep_only(
    value: &mut serde_json::Value,
    allowed: &[&str],
    where_: &str,
    dropped: &mut Vec<String>,
) {
    let Some(map) = value.as_object_mut() else {
        return;
    };
    let extra: Vec<String> = map
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in extra {
        map.remove(&key);
        dropped.push(format!("{where_}{key}"));
    }
}

/// Strips a manifest or list written as Docker schema 2 to the fields that format has.
fn docker_fields(value: &mut serde_json::Value, list: bool, dropped: &mut Vec<String>) {
    if list {
        keep_only(value, DOCKER_LIST, "", dropped);
        for (i, entry) in value["manifests"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .enumerate()
        {
            keep_only(entry, DOCKER_ENTRY, &format!("manifests[{i}]."), dropped);
            if entry.get("platform").is_some() {
                let at = format!("manifests[{i}].platform.");
                keep_only(&mut entry["platform"], DOCKER_PLATFORM, &at, dropped);
            }
        }
    } else {
        keep_only(value, DOCKER_MANIFEST, "", dropped);
        keep_only(&mut value["config"], DOCKER_CONFIG, "config.", dropped);
        for (i, layer) in value["layers"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .enumerate()
        {
            keep_only(layer, DOCKER_LAYER, &format!("layers[{i}]."), dropped);
        }
    }
}

/// [`convert`], saying in `report` which layers it wrote and what a conversion to Docker
/// schema 2 left out because
/// that format has no place for it (`DIGEST: FIELD`, DIGEST the document's before), for
/// each document converted.
pub fn convert_reporting(
    layout: &Layout,
    entry: &Descriptor,
    options: ConvertOptions,
    report: &mut ConvertReport,
) -> Result<Descriptor> {
    // Before any blob is written, as for the layer types below.
    match (options.compression, options.level) {
        (_, None) => {}
        (Some(compression), level) => check_level(compression, level)?,
        (None, Some(_)) => {
            return Err(Error::Invalid {
                what: "the conversion".into(),
                reason: "a compression level needs a compression to convert to".into(),
            })
        }
    }
    let Some((_, raw, node)) = layout.read_node(entry)? else {
        return Err(Error::Invalid {
            what: entry.digest.clone(),
            reason: format!("{:?} is neither an image nor an index", entry.media_type),
        });
    };
    let from = format_of(&entry.media_type);
    let to = options.format.unwrap_or(from);
    let mut value: serde_json::Value =
        serde_json::from_slice(&raw).map_err(Error::bad_json(&entry.digest))?;
    let doc_type = match node {
        Node::Index(index) => {
            let mut entries = Vec::new();
            for child in &index.manifests {
                let converted = match layout.read_node(child)? {
                    Some(_) => convert_reporting(layout, child, options, report)?,
                    // Not a manifest or index (a blob listed as is): kept.
                    None => child.clone(),
                };
                let mut converted_entry = child.clone();
                converted_entry.media_type = converted.media_type;
                converted_entry.digest = converted.digest;
                converted_entry.size = converted.size;
                entries.push(converted_entry);
            }
            value["manifests"] = serde_json::to_value(&entries).expect("descriptors serialise");
            match to {
                Format::Oci => media_type::INDEX,
                Format::Docker => media_type::DOCKER_MANIFEST_LIST,
            }
        }
        Node::Manifest(manifest) => {
            let (_, config) = layout.read_config(&manifest.config)?;
            let mut layers = Vec::new();
            for (i, layer) in manifest.layers.iter().enumerate() {
                let Some(current) = Compression::of_layer(&layer.media_type) else {
                    // Foreign or unknown layers are kept as they are.
                    layers.push(layer.clone());
                    continue;
                };
                let wanted = options.compression.unwrap_or(current);
                // Before any blob is written: a conversion refused leaves the layout as it was.
                let wanted_type = layer_type(to, wanted)?;
                let mut out = layer.clone();
                if wanted != current {
                    let diff_id = config
                        .rootfs
                        .diff_ids
                        .get(i)
                        .ok_or_else(|| Error::Invalid {
                            what: format!("config {}", manifest.config.digest),
                            reason: format!("no diff_id for layer {i}"),
                        })?;
                    let written = recompress(layout, layer, current, wanted, options.level)?;
                    if written.diff_id.to_string() != *diff_id {
                        return Err(Error::LayerStream {
                            layer: layer.digest.clone(),
                            reason: format!(
                                "its content is {} but the config says diff_id {diff_id}",
                                written.diff_id
                            ),
                        });
                    }
                    out.digest = written.blob.digest.to_string();
                    out.size = written.blob.size as i64;
                    report.layers.push(written);
                }
                out.media_type = wanted_type.to_owned();
                layers.push(out);
            }
            value["layers"] = serde_json::to_value(&layers).expect("descriptors serialise");
            let config_type = match to {
                Format::Oci => media_type::CONFIG,
                Format::Docker => media_type::DOCKER_CONFIG,
            };
            if matches!(
                manifest.config.media_type.as_str(),
                media_type::CONFIG | media_type::DOCKER_CONFIG
            ) {
                value["config"]["mediaType"] = config_type.into();
            }
            match to {
                Format::Oci => media_type::MANIFEST,
                Format::Docker => media_type::DOCKER_MANIFEST,
            }
        }
    };
    value["mediaType"] = doc_type.into();
    if options.format == Some(Format::Docker) {
        let mut here = Vec::new();
        docker_fields(
            &mut value,
            doc_type == media_type::DOCKER_MANIFEST_LIST,
            &mut here,
        );
        report
            .dropped
            .extend(here.into_iter().map(|f| format!("{}: {f}", entry.digest)));
    }
    let bytes = to_canonical_json(&value);
    let unchanged = value == serde_json::from_slice::<serde_json::Value>(&raw).unwrap_or_default();
    if unchanged {
        return Ok(entry.clone());
    }
    let stored = layout.put_blob(&bytes)?;
    let mut desc = entry.clone();
    desc.media_type = doc_type.to_owned();
    desc.digest = stored.digest.to_string();
    desc.size = stored.size as i64;
    Ok(desc)
}

/// One layer decompressed and compressed again, verified as it is read: the stored blob
/// is read to its last byte (past the compressed stream's end) before the new one is kept.
fn recompress(
    layout: &Layout,
    layer: &Descriptor,
    from: Compression,
    to: Compression,
    level: Option<u32>,
) -> Result<crate::layer::write::WrittenLayer> {
    let blob = blob_ref(layer, &format!("layer {}", layer.digest))?;
    let mut reader = layout.open_blob(&blob)?;
    let digest = layer.digest.clone();
    write_layer_to_sink(layout, to, level, &mut |_| {}, move |sink| {
        let stream_error = |e: std::io::Error| Error::LayerStream {
            layer: digest.clone(),
            reason: e.to_string(),
        };
        {
            let mut decoder = from.decoder(&mut reader).map_err(stream_error)?;
            sink.read_from(&mut decoder).map_err(stream_error)?;
        }
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(stream_error)?;
        Ok(())
    })
}
