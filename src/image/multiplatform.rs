//! Multi-platform image indexes built from images in the layout: each entry's platform is
//! taken from its image's config.

use std::collections::BTreeMap;

use super::mutate::move_tag;
use super::resolve::resolve_entry;
use super::tags::Tagged;
use super::PlatformSpec;
use crate::error::{Error, Result};
use crate::layout::reference::{validate_tag, Target};
use crate::layout::walk::decode_index;
use crate::layout::{Layout, LockMode, JSON_LIMIT};
use crate::spec::{media_type, to_canonical_json, Descriptor, Index, Kind, Platform};

/// The descriptor of the image manifest `target` names, with its platform from its config.
pub fn platform_entry(layout: &Layout, target: &Target) -> Result<Descriptor> {
    let entry = resolve_entry(layout, target)?;
    if Kind::of(&entry.media_type) != Kind::Manifest {
        return Err(Error::Invalid {
            what: format!("{} ({})", entry.digest, entry.media_type),
            reason: "not an image manifest: an index entry must be one platform's image".into(),
        });
    }
    let Some((blob, _, crate::layout::walk::Node::Manifest(manifest))) =
        layout.read_node(&entry)?
    else {
        return Err(Error::Invalid {
            what: entry.digest.clone(),
            reason: "could not be read as an image manifest".into(),
        });
    };
    if Kind::of(&manifest.config.media_type) != Kind::Config {
        return Err(Error::Invalid {
            what: format!("manifest {}", blob.digest),
            reason: "its config is not an image config, so it has no platform".into(),
        });
    }
    let (_, config) = layout.read_config(&manifest.config)?;
    let os_version = config
        .extra
        .get("os.version")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let os_features = config
        .extra
        .get("os.features")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        });
    let mut desc = Descriptor::new(&entry.media_type, &blob.digest, blob.size);
    desc.platform = Some(Platform {
        architecture: config.architecture,
        os: config.os,
        os_version,
        os_features,
        variant: config.variant,
        ..Platform::default()
    });
    Ok(desc)
}

/// Writes an index over the images `members` name in `layout` (each entry's platform from
/// its image's config), with `annotations`, and tags it `tag`.
pub fn create(
    layout: &Layout,
    members: &[Target],
    annotations: &BTreeMap<String, String>,
    tag: &str,
) -> Result<Tagged> {
    store_tagged(layout, tag, || {
        let entries = members
            .iter()
            .map(|m| platform_entry(layout, m))
            .collect::<Result<Vec<_>>>()?;
        refuse_shared_platforms(&entries)?;
        write_index(layout, entries, annotations)
    })
}

/// Two entries for one platform make an index where every consumer picks the first and the
/// second is never run: a mistake in what was listed, not a choice (`add` replaces instead).
fn refuse_shared_platforms(entries: &[Descriptor]) -> Result<()> {
    for (i, entry) in entries.iter().enumerate() {
        let same = |e: &&Descriptor| match (&e.platform, &entry.platform) {
            (Some(a), Some(b)) => super::platform::same_platform(a, b),
            (a, b) => a == b,
        };
        if let Some(earlier) = entries[..i].iter().find(same) {
            if earlier.digest == entry.digest {
                return Err(Error::Invalid {
                    what: format!("image {}", entry.digest),
                    reason: "is listed twice: an index holds each image once".into(),
                });
            }
            let platform = entry
                .platform
                .as_ref()
                .map_or("-".into(), |p| p.to_string());
            return Err(Error::Invalid {
                what: format!("images {} and {}", earlier.digest, entry.digest),
                reason: format!("both are for {platform}: an index holds one image per platform"),
            });
        }
    }
    Ok(())
}

/// Adds the image `member` names to the index `index` names (replacing the entry of the
/// same platform) and tags the new index `tag`.
pub fn add(layout: &Layout, index: &Target, member: &Target, tag: &str) -> Result<Tagged> {
    store_tagged(layout, tag, || {
        let entry = platform_entry(layout, member)?;
        store_index(layout, &add_entry(read_index_at(layout, index)?, entry))
    })
}

/// Removes the entries of `platform` from the index `index` names and tags the new index
/// `tag`; an error when no entry has that platform.
pub fn remove(
    layout: &Layout,
    index: &Target,
    platform: &PlatformSpec,
    tag: &str,
) -> Result<Tagged> {
    store_tagged(layout, tag, || {
        store_index(
            layout,
            &remove_platform(read_index_at(layout, index)?, platform)?,
        )
    })
}

/// Runs `write` (which stores an index) and tags what it wrote, holding the gc lock shared
/// from the first blob to the tag, so a gc meanwhile cannot sweep the new index.
fn store_tagged(
    layout: &Layout,
    tag: &str,
    write: impl FnOnce() -> Result<Descriptor>,
) -> Result<Tagged> {
    validate_tag(tag)?;
    let _lock = layout.lock_gc(LockMode::Shared)?;
    let desc = write()?;
    move_tag(layout, tag, &desc)
}

/// Writes a new index over `entries` (with `annotations`) and returns its descriptor.
fn write_index(
    layout: &Layout,
    entries: Vec<Descriptor>,
    annotations: &BTreeMap<String, String>,
) -> Result<Descriptor> {
    let mut index = Index::empty();
    index.manifests = entries;
    if !annotations.is_empty() {
        index.annotations = Some(annotations.clone());
    }
    store_index(layout, &index)
}

/// The index `target` names, parsed.
fn read_index_at(layout: &Layout, target: &Target) -> Result<Index> {
    let entry = resolve_entry(layout, target)?;
    if Kind::of(&entry.media_type) != Kind::Index {
        return Err(Error::Invalid {
            what: format!("{} ({})", entry.digest, entry.media_type),
            reason: "not an image index".into(),
        });
    }
    let blob = crate::layout::walk::blob_ref(&entry, "index descriptor")?;
    let raw = layout.read_blob(&blob, JSON_LIMIT, "index")?;
    decode_index(&raw, &entry.media_type, &format!("index {}", blob.digest))
}

/// `index` with `entry` added, replacing an entry of the same platform (so the index never
/// holds two images for one platform, where only the first would ever be picked).
fn add_entry(mut index: Index, entry: Descriptor) -> Index {
    // The same platform as create counts it: implied variants too (arm64 is arm64/v8).
    if let Some(platform) = &entry.platform {
        index.manifests.retain(|d| {
            !d.platform
                .as_ref()
                .is_some_and(|p| super::platform::same_platform(p, platform))
        });
    }
    index.manifests.push(entry);
    index
}

/// `index` without the entries matching `platform`; an error when none does.
fn remove_platform(mut index: Index, platform: &PlatformSpec) -> Result<Index> {
    let before = index.manifests.len();
    index
        .manifests
        .retain(|d| !d.platform.as_ref().is_some_and(|p| platform.matches(p)));
    if index.manifests.len() == before {
        return Err(Error::Invalid {
            what: format!("platform {platform}"),
            reason: "no entry of the index has it".into(),
        });
    }
    Ok(index)
}

/// Writes an index document as a blob (canonical JSON; unknown fields kept).
fn store_index(layout: &Layout, index: &Index) -> Result<Descriptor> {
    let blob = layout.put_blob(&to_canonical_json(index))?;
    Ok(Descriptor::new(media_type::INDEX, &blob.digest, blob.size))
}
