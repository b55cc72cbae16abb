//! Editing images: a [`Draft`] holds a manifest and its config (parsed with every unknown
//! field kept), takes layers, history and config edits, and is committed as new blobs and a
//! moved tag. Documents are written as canonical JSON; nothing is changed in place.

use crate::words::plural;
use std::collections::BTreeMap;

use super::platform::PlatformSpec;
use super::resolve::resolve_image;
use super::tags::Tagged;
use super::time::{build_time, rfc3339, validate_rfc3339};
use crate::error::{Error, Result};
use crate::layer::write::WrittenLayer;
use crate::layer::Compression;
use crate::layout::reference::{validate_tag, Target};
use crate::layout::walk::blob_ref;
use crate::layout::{Layout, LayoutLock, LockMode};
use crate::spec::{
    media_type, to_canonical_json, ContainerConfig, Descriptor, History, ImageConfig, Kind,
    Manifest, Platform, RootFs, ANNOTATION_REF_NAME,
};

/// History flags: what the entry for this change says, or that there is none.
#[derive(Debug, Clone, Default)]
pub struct HistoryOptions {
    /// `author`.
    pub author: Option<String>,
    /// `comment`.
    pub comment: Option<String>,
    /// `created` (RFC 3339); default the build time.
    pub created: Option<String>,
    /// `created_by`; default names the strata command.
    pub created_by: Option<String>,
    /// Add no history entry.
    pub omit: bool,
}

/// Edits to an image config and manifest, as `strata config` flags give them.
#[derive(Debug, Clone, Default)]
pub struct ConfigEdits {
    /// Replace the entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Replace the default arguments.
    pub cmd: Option<Vec<String>>,
    /// Set environment variables (replacing a variable of the same name in place).
    pub env: Vec<(String, String)>,
    /// Set labels.
    pub labels: Vec<(String, String)>,
    /// Remove environment variables by name (before `env` sets any).
    pub unset_env: Vec<String>,
    /// Remove labels by key (before `labels` sets any).
    pub unset_labels: Vec<String>,
    /// Add exposed ports (`80/tcp`; a bare number means tcp).
    pub expose: Vec<String>,
    /// Add volumes.
    pub volumes: Vec<String>,
    /// Set the user (`USER`, `UID`, `USER:GROUP` or `UID:GID`); empty removes it (root).
    pub user: Option<String>,
    /// Set the working directory.
    pub workdir: Option<String>,
    /// Set the stop signal.
    pub stop_signal: Option<String>,
    /// Set the image author.
    pub author: Option<String>,
    /// Set the image creation time (RFC 3339).
    pub created: Option<String>,
    /// Set os/architecture/variant.
    pub platform: Option<PlatformSpec>,
    /// Set manifest annotations.
    pub annotations: Vec<(String, String)>,
    /// Fields to empty before the edits apply.
    pub clear: Vec<ClearField>,
}

/// A config or manifest field an edit can empty before it sets values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearField {
    /// `config.Entrypoint`.
    Entrypoint,
    /// `config.Cmd`.
    Cmd,
    /// `config.Env`.
    Env,
    /// `config.Labels`.
    Labels,
    /// `config.ExposedPorts`.
    ExposedPorts,
    /// `config.Volumes`.
    Volumes,
    /// Manifest annotations.
    Annotations,
}

impl std::str::FromStr for ClearField {
    type Err = Error;

    fn from_str(s: &str) -> Result<ClearField> {
        Ok(match s {
            "entrypoint" => ClearField::Entrypoint,
            "cmd" => ClearField::Cmd,
            "env" => ClearField::Env,
            "labels" => ClearField::Labels,
            "exposed-ports" => ClearField::ExposedPorts,
            "volumes" => ClearField::Volumes,
            "annotations" => ClearField::Annotations,
            other => {
                return Err(Error::Invalid {
                    what: format!("the field to clear {other:?}"),
                    reason: "expected one of entrypoint, cmd, env, labels, exposed-ports, volumes, annotations".into(),
                })
            }
        })
    }
}

/// An image being edited. Holds the layout's gc lock (shared) from load to commit, so gc
/// cannot sweep the new blobs before the tag points at them.
pub struct Draft {
    layout: Layout,
    _lock: LayoutLock,
    /// The manifest as it will be written.
    pub manifest: Manifest,
    /// The config as it will be written.
    pub config: ImageConfig,
    time: i64,
    /// The manifest the draft was loaded from; none for a new image.
    source: Option<String>,
}

impl Draft {
    /// A new image with no layers, for `platform`.
    pub fn empty(layout: &Layout, platform: &PlatformSpec) -> Result<Draft> {
        let time = build_time()?;
        let lock = layout.lock_gc(LockMode::Shared)?;
        let config = ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            created: Some(rfc3339(time)),
            author: None,
            config: Some(ContainerConfig::default()),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: Vec::new(),
                extra: Default::default(),
            },
            history: Some(Vec::new()),
            extra: Default::default(),
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_type::MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(
                media_type::CONFIG,
                &crate::digest::Digest::of_bytes(crate::digest::Algorithm::Sha256, b""),
                0,
            ),
            layers: Vec::new(),
            subject: None,
            annotations: None,
            extra: Default::default(),
        };
        Ok(Draft {
            layout: layout.clone(),
            _lock: lock,
            manifest,
            config,
            time,
            source: None,
        })
    }

    /// The image `target` names in `source` (picking `platform` through an index), to be
    /// committed into `layout`. When the two layouts differ, the image's blobs are copied
    /// (verified) into `layout` first.
    pub fn load(
        layout: &Layout,
        source: &Layout,
        target: &Target,
        platform: &PlatformSpec,
    ) -> Result<Draft> {
        // The time is checked before anything (the base's blobs) is copied into `layout`.
        let time = build_time()?;
        let lock = layout.lock_gc(LockMode::Shared)?;
        let resolved = resolve_image(source, target, platform)?;
        let mut manifest = resolved.manifest;
        if Kind::of(&manifest.config.media_type) != Kind::Config {
            return Err(Error::Invalid {
                what: format!("manifest {}", resolved.descriptor.digest),
                reason: format!(
                    "its config is {:?}: an artifact, not an image to build on",
                    manifest.config.media_type
                ),
            });
        }
        let (_, config) = source.read_config(&manifest.config)?;
        if source.root() != layout.root() {
            for desc in manifest
                .layers
                .iter()
                .chain(std::iter::once(&manifest.config))
            {
                copy_blob(source, layout, desc)?;
            }
        }
        // Docker schema 2 bases become OCI images: strata writes OCI media types.
        if manifest.media_type.as_deref() == Some(media_type::DOCKER_MANIFEST) {
            manifest.media_type = Some(media_type::MANIFEST.into());
        }
        Ok(Draft {
            layout: layout.clone(),
            _lock: lock,
            manifest,
            config,
            time,
            source: Some(resolved.descriptor.digest),
        })
    }

    /// The digest of the manifest the draft was loaded from; none for a new image.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The layout the draft will be committed to.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The compression `auto` means: that of the last compressed layer, else gzip.
    pub fn auto_compression(&self) -> Compression {
        self.manifest
            .layers
            .iter()
            .rev()
            .filter_map(|l| Compression::of_layer(&l.media_type))
            .find(|c| *c != Compression::None)
            .unwrap_or(Compression::Gzip)
    }

    /// The history entry for a change, or none when history is left out.
    fn history(
        &self,
        options: &HistoryOptions,
        default_created_by: &str,
        empty_layer: bool,
    ) -> Result<Option<History>> {
        if options.omit {
            return Ok(None);
        }
        if let Some(created) = &options.created {
            validate_rfc3339(created)?;
        }
        Ok(Some(History {
            created: Some(
                options
                    .created
                    .clone()
                    .unwrap_or_else(|| rfc3339(self.time)),
            ),
            author: options
                .author
                .clone()
                .or_else(|| self.config.author.clone()),
            created_by: Some(
                options
                    .created_by
                    .clone()
                    .unwrap_or_else(|| default_created_by.to_owned()),
            ),
            comment: options.comment.clone(),
            empty_layer: empty_layer.then_some(true),
            extra: Default::default(),
        }))
    }

    /// Appends a layer (and its history entry).
    pub fn append_layer(
        &mut self,
        layer: &WrittenLayer,
        history: &HistoryOptions,
        created_by: &str,
    ) -> Result<()> {
        let entry = self.history(history, created_by, false)?;
        self.manifest.layers.push(Descriptor::new(
            layer.media_type,
            &layer.blob.digest,
            layer.blob.size,
        ));
        self.config.rootfs.diff_ids.push(layer.diff_id.to_string());
        self.push_history(entry);
        Ok(())
    }

    /// Replaces every layer with `layer` (the image's merged filesystem): the diff_ids are
    /// `layer`'s alone, and the history one entry for it (the old entries described layers
    /// that are gone; their text is not carried into a layer they no longer match).
    pub fn replace_layers(
        &mut self,
        layer: &WrittenLayer,
        history: &HistoryOptions,
        created_by: &str,
    ) -> Result<()> {
        self.manifest.layers.clear();
        self.config.rootfs.diff_ids.clear();
        self.config.history = None;
        self.append_layer(layer, history, created_by)
    }

    /// Moves this image's layers above `old`'s onto `new`'s: `old`'s layers (digests and
    /// diff_ids) must be the first of this image's, or nothing is changed and the error says
    /// where they part. The config's other fields (platform, environment, entrypoint...)
    /// stay this image's; the history is `new`'s followed by this image's entries after
    /// `old`'s, then an entry of its own (`empty_layer`) naming `onto`, `new`'s manifest
    /// digest, unless `history` leaves it out. `new`'s blobs must be in this draft's layout
    /// (load it with [`Draft::load`]).
    pub fn rebase(
        &mut self,
        old: (&Manifest, &ImageConfig),
        new: (&Manifest, &ImageConfig),
        onto: &str,
        history: &HistoryOptions,
    ) -> Result<()> {
        // Checked before anything changes: a refused rebase leaves the draft as it was.
        let mut noted = history.clone();
        noted
            .comment
            .get_or_insert_with(|| format!("rebased onto {onto}"));
        let entry = self.history(&noted, &format!("strata rebase onto {onto}"), true)?;
        let (old_manifest, old_config) = old;
        let (new_manifest, new_config) = new;
        let not_a_base = |reason: String| Error::Invalid {
            what: "the old base".into(),
            reason,
        };
        let ours = &self.manifest.layers;
        if old_manifest.layers.len() > ours.len() {
            return Err(not_a_base(format!(
                "it has {} and the image only {}: it is not the image's base",
                plural(old_manifest.layers.len(), "layer", "layers"),
                ours.len()
            )));
        }
        for (i, (base, mine)) in old_manifest.layers.iter().zip(ours).enumerate() {
            let same_diff = old_config.rootfs.diff_ids.get(i) == self.config.rootfs.diff_ids.get(i);
            if base.digest != mine.digest || !same_diff {
                return Err(not_a_base(format!(
                    "its layer {i} is {} and the image's is {}: it is not the image's base",
                    base.digest, mine.digest
                )));
            }
        }
        let keep = old_manifest.layers.len();
        let mut layers = new_manifest.layers.clone();
        layers.extend(self.manifest.layers[keep..].iter().cloned());
        let mut diff_ids = new_config.rootfs.diff_ids.clone();
        diff_ids.extend(
            self.config.rootfs.diff_ids[keep.min(self.config.rootfs.diff_ids.len())..]
                .iter()
                .cloned(),
        );
        let old_history = old_config.history.as_ref().map_or(0, Vec::len);
        let mut history = new_config.history.clone().unwrap_or_default();
        if let Some(mine) = &self.config.history {
            history.extend(mine.iter().skip(old_history).cloned());
        }
        self.manifest.layers = layers;
        self.config.rootfs.diff_ids = diff_ids;
        self.config.history = (!history.is_empty()).then_some(history);
        self.push_history(entry);
        Ok(())
    }

    /// Records a change that made no layer (config edits, an empty repack).
    pub fn note_empty_change(&mut self, history: &HistoryOptions, created_by: &str) -> Result<()> {
        let entry = self.history(history, created_by, true)?;
        self.push_history(entry);
        Ok(())
    }

    fn push_history(&mut self, entry: Option<History>) {
        if let Some(entry) = entry {
            self.config.history.get_or_insert_with(Vec::new).push(entry);
        }
        self.config.created = Some(rfc3339(self.time));
    }

    /// Applies `strata config` edits.
    pub fn edit_config(&mut self, edits: &ConfigEdits) -> Result<()> {
        let c = self
            .config
            .config
            .get_or_insert_with(ContainerConfig::default);
        for field in &edits.clear {
            match field {
                ClearField::Entrypoint => c.entrypoint = None,
                ClearField::Cmd => c.cmd = None,
                ClearField::Env => c.env = None,
                ClearField::Labels => c.labels = None,
                ClearField::ExposedPorts => c.exposed_ports = None,
                ClearField::Volumes => c.volumes = None,
                ClearField::Annotations => self.manifest.annotations = None,
            }
        }
        for name in &edits.unset_env {
            if let Some(env) = &mut c.env {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != name);
            }
        }
        for key in &edits.unset_labels {
            if let Some(labels) = &mut c.labels {
                labels.remove(key);
            }
        }
        if let Some(v) = &edits.entrypoint {
            c.entrypoint = Some(v.clone());
        }
        if let Some(v) = &edits.cmd {
            c.cmd = Some(v.clone());
        }
        for (name, value) in &edits.env {
            let env = c.env.get_or_insert_with(Vec::new);
            let line = format!("{name}={value}");
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == name)
            {
                Some(existing) => *existing = line,
                None => env.push(line),
            }
        }
        for (k, v) in &edits.labels {
            c.labels
                .get_or_insert_with(BTreeMap::new)
                .insert(k.clone(), v.clone());
        }
        for port in &edits.expose {
            let port = super::config_values::exposed_port(port)?;
            c.exposed_ports
                .get_or_insert_with(BTreeMap::new)
                .insert(port, serde_json::json!({}));
        }
        for v in &edits.volumes {
            super::config_values::absolute_path(super::config_values::VOLUME, v)?;
            c.volumes
                .get_or_insert_with(BTreeMap::new)
                .insert(v.clone(), serde_json::json!({}));
        }
        if let Some(u) = &edits.user {
            super::config_values::user(u)?;
            // Empty is root, as unpack reads an absent User: dropped, as Docker omits it.
            c.user = Some(u.clone()).filter(|u| !u.is_empty());
        }
        if let Some(w) = &edits.workdir {
            super::config_values::absolute_path(super::config_values::WORKDIR, w)?;
            c.working_dir = Some(w.clone());
        }
        if let Some(s) = &edits.stop_signal {
            super::config_values::stop_signal(s)?;
            c.stop_signal = Some(s.clone());
        }
        if let Some(a) = &edits.author {
            self.config.author = Some(a.clone());
        }
        if let Some(p) = &edits.platform {
            self.config.os = p.os.clone();
            self.config.architecture = p.architecture.clone();
            self.config.variant = p.variant.clone();
        }
        for (k, v) in &edits.annotations {
            self.manifest
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(k.clone(), v.clone());
        }
        if let Some(created) = &edits.created {
            validate_rfc3339(created)?;
        }
        Ok(())
    }

    /// Writes the config and manifest blobs and points `tag` at the manifest (replacing
    /// whatever it named). `created` from the edits wins over the build time.
    pub fn commit(self, tag: &str, created: Option<&str>) -> Result<Descriptor> {
        self.commit_moving(tag, created)
            .map(|tagged| tagged.descriptor())
    }

    /// [`Draft::commit`], also saying which image `tag` named before when it named another
    /// one (see [`move_tag`]).
    pub fn commit_moving(mut self, tag: &str, created: Option<&str>) -> Result<Tagged> {
        validate_tag(tag)?;
        let desc = self.write_blobs(created)?;
        move_tag(&self.layout, tag, &desc)
    }

    /// Writes the config and manifest blobs and records the manifest as an untagged
    /// `index.json` entry (so gc keeps it until it is untagged by digest), for callers that
    /// name images by digest or tag them later.
    pub fn commit_untagged(mut self, created: Option<&str>) -> Result<Descriptor> {
        let desc = self.write_blobs(created)?;
        self.layout.update_index(|index| {
            if index.manifests.iter().any(|d| d.digest == desc.digest) {
                return Ok((false, ()));
            }
            index.manifests.push(desc.clone());
            Ok((true, ()))
        })?;
        Ok(desc)
    }

    fn write_blobs(&mut self, created: Option<&str>) -> Result<Descriptor> {
        if let Some(created) = created {
            self.config.created = Some(created.to_owned());
        }
        let config_bytes = to_canonical_json(&self.config);
        let config_blob = self.layout.put_blob(&config_bytes)?;
        // Docker configs are OCI configs with extra fields, which are kept.
        self.manifest.config.media_type = media_type::CONFIG.into();
        self.manifest.config.digest = config_blob.digest.to_string();
        self.manifest.config.size = config_blob.size as i64;
        self.manifest.config.data = None;
        let manifest_bytes = to_canonical_json(&self.manifest);
        let manifest_blob = self.layout.put_blob(&manifest_bytes)?;
        let mut desc = Descriptor::new(
            media_type::MANIFEST,
            &manifest_blob.digest,
            manifest_blob.size,
        );
        desc.platform = Some(Platform {
            architecture: self.config.architecture.clone(),
            os: self.config.os.clone(),
            variant: self.config.variant.clone(),
            ..Platform::default()
        });
        Ok(desc)
    }
}

/// Checks a command's tag and times (`SOURCE_DATE_EPOCH` too) before anything is written,
/// so a bad flag leaves no orphan blob or new layout behind.
pub fn check_inputs(
    tag: Option<&str>,
    history: &HistoryOptions,
    created: Option<&str>,
) -> Result<()> {
    if let Some(tag) = tag {
        validate_tag(tag)?;
    }
    build_time()?;
    for time in [history.created.as_deref(), created].into_iter().flatten() {
        validate_rfc3339(time)?;
    }
    Ok(())
}

/// Points `tag` at `desc` in `index.json` (in place of any entry that had it).
pub fn set_tag(layout: &Layout, tag: &str, desc: &Descriptor) -> Result<()> {
    move_tag(layout, tag, desc).map(drop)
}

/// [`set_tag`], saying which image the tag named before when it named another one. Read
/// under the index lock, so it is the image this write replaced, whatever another writer
/// did meanwhile.
pub fn move_tag(layout: &Layout, tag: &str, desc: &Descriptor) -> Result<Tagged> {
    let mut entry = desc.clone();
    entry.set_annotation(ANNOTATION_REF_NAME, Some(tag));
    let moved_from = layout.update_index(|index| Ok(super::tags::place_tag(index, &entry)))?;
    Ok(Tagged { entry, moved_from })
}

/// Copies one blob between layouts, verified on the way.
pub fn copy_blob(from: &Layout, to: &Layout, desc: &Descriptor) -> Result<()> {
    let blob = blob_ref(desc, &format!("descriptor {}", desc.digest))?;
    if to.has_blob(&blob.digest) {
        return Ok(());
    }
    let mut reader = from.open_blob(&blob)?;
    let mut writer = to.blob_writer(blob.digest.algorithm())?;
    std::io::copy(&mut reader, &mut writer).map_err(|e| reader.explain(e))?;
    writer.finish_expecting(&blob)?;
    Ok(())
}

#[cfg(test)]
mod untagged_tests {
    use super::*;

    #[test]
    fn an_untagged_commit_is_kept_by_gc_and_resolves_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::init(dir.path().join("lay")).unwrap();
        let draft = Draft::empty(&layout, &crate::image::host_platform()).unwrap();
        let desc = draft.commit_untagged(None).unwrap();
        let index = layout.read_index().unwrap().index;
        assert_eq!(index.manifests.len(), 1);
        assert_eq!(index.manifests[0].ref_name(), None);
        let report = crate::layout::gc::gc(&layout, Default::default()).unwrap();
        assert!(report.removed.is_empty());
        let target = crate::layout::reference::Target::Digest(desc.digest().unwrap());
        let found = crate::image::resolve_entry(&layout, &target).unwrap();
        assert_eq!(found.digest, desc.digest);
    }
}
