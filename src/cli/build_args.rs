//! Flag groups shared by the commands that build or edit images.

use strata::image::mutate::{ClearField, ConfigEdits, HistoryOptions};
use strata::layer::Compression;

/// History flags.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// History entry author (default: the image author).
    #[arg(long, value_name = "AUTHOR")]
    history_author: Option<String>,
    /// History entry comment.
    #[arg(long, value_name = "TEXT")]
    history_comment: Option<String>,
    /// History entry time, RFC 3339 (default: now, or SOURCE_DATE_EPOCH).
    #[arg(long, value_name = "TIME", value_parser = super::values::time)]
    history_created: Option<String>,
    /// History entry created_by (default: the strata command).
    #[arg(long, value_name = "TEXT")]
    history_created_by: Option<String>,
    /// Add no history entry.
    #[arg(long, conflicts_with_all = ["history_author", "history_comment", "history_created", "history_created_by"])]
    no_history: bool,
}

impl HistoryArgs {
    pub fn options(&self) -> HistoryOptions {
        HistoryOptions {
            author: self.history_author.clone(),
            comment: self.history_comment.clone(),
            created: self.history_created.clone(),
            created_by: self.history_created_by.clone(),
            omit: self.no_history,
        }
    }
}

/// Layer compression.
#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum CompressArg {
    /// The compression of the image's last compressed layer (gzip if none).
    #[default]
    Auto,
    /// gzip (level 3: as small as docker's and umoci's layers, faster than level 6).
    Gzip,
    /// zstd (level 3).
    Zstd,
    /// An uncompressed tar.
    None,
}

impl CompressArg {
    pub fn pick(self, auto: Compression) -> Compression {
        match self {
            CompressArg::Auto => auto,
            CompressArg::Gzip => Compression::Gzip,
            CompressArg::Zstd => Compression::Zstd,
            CompressArg::None => Compression::None,
        }
    }
}

/// Config edit flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Entrypoint, one argument per flag (repeat for more).
    #[arg(long, value_name = "ARG")]
    entrypoint: Vec<String>,
    /// Default arguments, one per flag (repeat for more).
    #[arg(long, value_name = "ARG")]
    cmd: Vec<String>,
    /// Environment variable NAME=VALUE (repeatable; replaces NAME if set).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// Label KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_pair)]
    label: Vec<(String, String)>,
    /// Remove an environment variable (repeatable; before --env sets any).
    #[arg(long, value_name = "NAME")]
    unset_env: Vec<String>,
    /// Remove a label (repeatable; before --label sets any).
    #[arg(long, value_name = "KEY")]
    unset_label: Vec<String>,
    /// Exposed port, PORT[/PROTO], PROTO tcp (default), udp or sctp (repeatable).
    #[arg(long, value_name = "PORT[/PROTO]", value_parser = super::values::port)]
    expose: Vec<String>,
    /// Volume, an absolute path (repeatable).
    #[arg(long, value_name = "PATH", value_parser = super::values::volume)]
    volume: Vec<String>,
    /// The user the container runs as: USER, UID, USER:GROUP or UID:GID (names resolved in
    /// the image's /etc/passwd and /etc/group when it is unpacked); '' removes the field, so
    /// it runs as root.
    #[arg(long, value_name = "USER[:GROUP]", value_parser = super::values::user)]
    user: Option<String>,
    /// Working directory, an absolute path.
    #[arg(long, value_name = "DIR", value_parser = super::values::workdir)]
    workdir: Option<String>,
    /// Stop signal: a name (SIGTERM, TERM) or a number from 1 to 64.
    #[arg(long, value_name = "SIGNAL", value_parser = super::values::stop_signal)]
    stop_signal: Option<String>,
    /// Image author.
    #[arg(long)]
    author: Option<String>,
    /// Image creation time, RFC 3339.
    #[arg(long, value_name = "TIME", value_parser = super::values::time)]
    created: Option<String>,
    /// Set the image's OS/ARCH[/VARIANT].
    #[arg(long = "set-platform", value_name = "OS/ARCH[/VARIANT]", value_parser = super::values::platform)]
    set_platform: Option<String>,
    /// Manifest annotation KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_pair)]
    annotation: Vec<(String, String)>,
    /// Empty a field first: entrypoint, cmd, env, labels, exposed-ports, volumes,
    /// annotations (repeatable).
    #[arg(long, value_name = "FIELD", value_parser = super::values::clear_field)]
    clear: Vec<ClearField>,
}

impl ConfigArgs {
    pub fn edits(&self) -> anyhow::Result<ConfigEdits> {
        Ok(ConfigEdits {
            entrypoint: (!self.entrypoint.is_empty()).then(|| self.entrypoint.clone()),
            cmd: (!self.cmd.is_empty()).then(|| self.cmd.clone()),
            env: self.env.clone(),
            labels: self.label.clone(),
            unset_env: self.unset_env.clone(),
            unset_labels: self.unset_label.clone(),
            expose: self.expose.clone(),
            volumes: self.volume.clone(),
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            stop_signal: self.stop_signal.clone(),
            author: self.author.clone(),
            created: self.created.clone(),
            platform: self.set_platform.as_deref().map(str::parse).transpose()?,
            annotations: self.annotation.clone(),
            clear: self.clear.clone(),
        })
    }
}

pub(super) fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Runs `work` on the layout of `reference`, created when it does not exist yet; when
/// `work` fails, a layout created for it is taken back, so a failed command leaves the file
/// system as it found it.
pub fn in_layout<T>(
    reference: &strata::layout::reference::Reference,
    work: impl FnOnce(&strata::Layout) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let creation = strata::Layout::open_or_create(&reference.layout)?;
    let result = work(creation.layout());
    creation.settle(result)
}

/// The tag a command with `--tag` writes: `--tag` when given, else the reference's own tag.
pub fn output_tag(
    reference: &strata::layout::reference::Reference,
    tag: Option<&str>,
) -> anyhow::Result<String> {
    use strata::layout::reference::Target;
    match (tag, &reference.target) {
        (Some(t), _) => Ok(t.to_owned()),
        (None, Target::Tag(t)) => Ok(t.clone()),
        (None, _) => {
            super::output::usage!("{reference} names no tag to move: give LAYOUT:TAG or --tag NAME")
        }
    }
}

/// The tag a command without `--tag` writes: the reference's own (its message must not
/// point at a flag the command lacks).
pub fn reference_tag(reference: &strata::layout::reference::Reference) -> anyhow::Result<String> {
    use strata::layout::reference::Target;
    match &reference.target {
        Target::Tag(t) => Ok(t.clone()),
        _ => super::output::usage!("{reference} names no tag to write: give LAYOUT:TAG"),
    }
}

/// How a layer made from a host tree (build, insert) records owners and modes: as 0:0 by
/// default, so that who checked the tree out does not change the layer.
#[derive(Debug, Clone, clap::Args)]
pub struct OwnershipArgs {
    /// Record the files' own owners (uid:gid on this machine) instead of 0:0.
    #[arg(long, conflicts_with = "owner")]
    keep_owners: bool,
    /// Record every file as owned by UID:GID (default 0:0).
    #[arg(long, value_name = "UID:GID", value_parser = super::values::owner)]
    owner: Option<(u32, u32)>,
    /// Record modes a umask cannot change: directories 0755, files 0755 if any execute bit
    /// is set, else 0644 (setuid, setgid and sticky bits dropped).
    #[arg(long)]
    normalize_modes: bool,
}

impl OwnershipArgs {
    /// Sets the writer's owner and mode options.
    pub fn apply(&self, options: &mut strata::layer::build::TarOptions) {
        options.owner = if self.keep_owners {
            None
        } else {
            Some(self.owner.unwrap_or((0, 0)))
        };
        options.normalize_modes = self.normalize_modes;
    }
}

/// The flags of the commands that edit an image and commit it under a tag (add-layer,
/// insert, flatten, rebase).
#[derive(Debug, clap::Args)]
#[command(arg = super::shared::layout())]
pub struct ImageEditArgs {
    /// Tag the result with this tag instead of moving REF's.
    #[arg(long, value_parser = super::values::tag)]
    pub tag: Option<String>,
    #[command(flatten)]
    pub platform: super::PlatformArg,
    #[command(flatten)]
    pub history: HistoryArgs,
    #[command(flatten)]
    pub json: super::JsonArg,
}

impl ImageEditArgs {
    /// Checks the inputs, then loads the image `reference` names: the draft and the tag the
    /// result goes to.
    pub fn open(&self, reference: &str) -> anyhow::Result<(strata::image::mutate::Draft, String)> {
        strata::image::mutate::check_inputs(self.tag.as_deref(), &self.history.options(), None)?;
        edit_image(reference, self.tag.as_deref(), &self.platform)
    }
}

/// [`ImageEditArgs`] and the compression of the layer the command writes (add-layer,
/// insert, flatten; rebase writes none).
#[derive(Debug, clap::Args)]
pub struct LayerEditArgs {
    #[command(flatten)]
    pub image: ImageEditArgs,
    /// Layer compression.
    #[arg(long, value_enum, default_value_t = CompressArg::Auto)]
    pub compress: CompressArg,
}

impl LayerEditArgs {
    /// [`ImageEditArgs::open`], and the compression for the new layer.
    pub fn open(
        &self,
        reference: &str,
    ) -> anyhow::Result<(strata::image::mutate::Draft, String, Compression)> {
        let (draft, tag) = self.image.open(reference)?;
        let compression = self.compress.pick(draft.auto_compression());
        Ok((draft, tag, compression))
    }
}

/// The image a command edits, and the tag its result goes to (`--tag`, else REF's own).
pub fn edit_image(
    reference: &str,
    tag: Option<&str>,
    platform: &super::PlatformArg,
) -> anyhow::Result<(strata::image::mutate::Draft, String)> {
    let reference = super::parse_reference(reference)?;
    let tag = output_tag(&reference, tag)?;
    let layout = strata::Layout::open(&reference.layout)?;
    let draft = strata::image::mutate::Draft::load(
        &layout,
        &layout,
        &reference.target,
        &platform.resolve()?,
    )?;
    Ok((draft, tag))
}
