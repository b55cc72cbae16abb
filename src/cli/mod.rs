//! Argument definitions and dispatch. Each command lives in its own module with its `Args`
//! and a `run` that only calls the library and the output layer.

mod add_layer;
mod artifact;
mod blob;
mod build;
mod build_args;
mod complete_bash;
mod complete_ref;
mod completions;
mod config;
mod convert;
mod copy;
mod export;
mod files;
mod flatten;
mod fsck;
mod gc;
mod import;
mod index;
mod init;
mod insert;
mod inspect;
mod login;
mod ls;
mod man;
mod manifest;
mod new;
mod out_file;
mod output;
mod platform_pick;
mod pull;
mod push;
mod rebase;
mod referrers;
mod registry;
mod repack;
mod runtime_config;
mod shared;
mod tag;
mod unpack;
mod untag;
mod values;

use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

pub use output::Status;

/// strata: build, unpack, verify and move OCI image layouts, without a daemon.
///
/// A LAYOUT is an OCI image-layout directory. A REF is LAYOUT, LAYOUT:TAG or
/// LAYOUT@sha256:HEX: the first `:` ends the layout (the tag may hold more), whatever exists
/// on disk. For a layout whose path has a `:`, give `--layout DIR` and write the REF as
/// `:TAG`, `@sha256:HEX` or an empty string.
#[derive(Debug, Parser)]
#[command(name = "strata", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command takes (the shared ones only some act on are in [`shared`]).
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print what is being done on stderr: a line per layer or blob moved; -vv adds detail.
    #[arg(
        short,
        long,
        global = true,
        action = clap::ArgAction::Count,
        conflicts_with = "quiet",
        help_heading = "Global options"
    )]
    verbose: u8,
    /// Print nothing but results and errors.
    #[arg(short, long, global = true, help_heading = "Global options")]
    quiet: bool,
}

/// `--layout`, set once at start; commands read it only through [`parse_reference`].
static DEFAULT_LAYOUT: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();

/// Whether a REF took its layout from `--layout`: when none did, the flag did nothing, and
/// the user is told (each REF that names a layout uses its own).
static DEFAULT_LAYOUT_USED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Checks that `dir`, where a file is about to be written through a temp file, is a
/// directory: said of the path the user gave, before the temp file's error could name
/// the temp file instead.
pub fn writable_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => anyhow::bail!("{}: not a directory", dir.display()),
        Err(source) => Err(strata::Error::Io {
            path: dir.to_owned(),
            source,
        }
        .into()),
    }
}

/// Parses a REF argument by the one grammar, an empty layout part naming `--layout`.
pub fn parse_reference(text: &str) -> anyhow::Result<strata::layout::reference::Reference> {
    let default = DEFAULT_LAYOUT.get().and_then(Option::as_deref);
    if default.is_some() && (text.is_empty() || text.starts_with([':', '@'])) {
        DEFAULT_LAYOUT_USED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    refuse_transport_prefix(text)?;
    strata::layout::reference::Reference::parse_in(text, default).map_err(|e| {
        let names_no_layout = text.is_empty() || text.starts_with([':', '@']);
        let hint = if default.is_none() && names_no_layout {
            "; --layout DIR gives the layout such a reference names"
        } else {
            ""
        };
        anyhow::Error::new(output::Usage(format!("{e}{hint}")))
    })
}

/// skopeo's and podman's transport names: `oci:lay:app` typed from habit would read as tag
/// `lay:app` of a layout `oci` (and a writer would create that layout). Refused unless such
/// a directory exists; `./oci:TAG` names a layout called `oci` on purpose.
fn refuse_transport_prefix(text: &str) -> anyhow::Result<()> {
    let Some((prefix, rest)) = transport_prefix(text) else {
        return Ok(());
    };
    let hint = match prefix {
        "oci" => format!("; strata references are LAYOUT:TAG, here {rest}"),
        "oci-archive" | "docker-archive" => {
            "; an archive is read with strata import and written with strata export".into()
        }
        "docker" => "; a registry is reached with strata pull and strata push".into(),
        _ => String::new(),
    };
    output::usage!(
        "{}: \"{prefix}:\" is a skopeo transport, not a layout{hint} (./{prefix}:TAG names a \
         layout called {prefix})",
        text
    );
}

/// `text` split at a skopeo transport name that begins it, when no directory of that name
/// exists (then it is a layout's name after all).
pub(crate) fn transport_prefix(text: &str) -> Option<(&str, &str)> {
    const TRANSPORTS: &[&str] = &[
        "oci",
        "oci-archive",
        "docker",
        "docker-archive",
        "docker-daemon",
        "containers-storage",
        "dir",
        "ostree",
        "sif",
        "tarball",
    ];
    let (prefix, rest) = text.split_once(':')?;
    (TRANSPORTS.contains(&prefix) && !std::path::Path::new(prefix).exists())
        .then_some((prefix, rest))
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(init::Args),
    Ls(ls::Args),
    Inspect(inspect::Args),
    Tag(tag::Args),
    Untag(untag::Args),
    Gc(gc::Args),
    Fsck(fsck::Args),
    Unpack(unpack::Args),
    New(new::Args),
    Build(build::Args),
    Config(config::Args),
    AddLayer(add_layer::Args),
    Insert(insert::Args),
    Repack(repack::Args),
    Export(export::Args),
    Import(import::Args),
    Copy(copy::Args),
    Pull(pull::Args),
    Push(push::Args),
    Login(login::LoginArgs),
    Logout(login::LogoutArgs),
    #[command(subcommand)]
    Artifact(artifact::Command),
    Referrers(referrers::Args),
    #[command(subcommand)]
    Index(index::Command),
    Blob(blob::Args),
    Cat(files::CatArgs),
    Files(files::FilesArgs),
    Diff(files::DiffArgs),
    Flatten(flatten::Args),
    Rebase(rebase::Args),
    Convert(convert::Args),
    RuntimeConfig(runtime_config::Args),
    #[command(subcommand)]
    Manifest(manifest::Command),
    Man(man::Args),
    Completions(completions::Args),
}

/// The `--json` flag, shared by every command that prints results.
#[derive(Debug, Args, Clone, Copy)]
pub struct JsonArg {
    /// Print the result as one JSON document (schemaVersion 1) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The `--platform` flag, shared by commands that pick an image from an index.
#[derive(Debug, Args, Clone)]
pub struct PlatformArg {
    /// Platform to pick from a multi-platform index, as OS/ARCH[/VARIANT] (default: this
    /// machine's). The first matching entry wins.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = values::platform)]
    platform: Option<String>,
}

impl PlatformArg {
    /// The platform given on the command line, if any.
    fn given(&self) -> anyhow::Result<Option<strata::image::PlatformSpec>> {
        Ok(self.platform.as_deref().map(str::parse).transpose()?)
    }

    fn resolve(&self) -> anyhow::Result<strata::image::PlatformSpec> {
        Ok(match &self.platform {
            Some(p) => p.parse()?,
            None => strata::image::host_platform(),
        })
    }
}

/// The clap command tree, for man pages and completions.
pub fn command() -> clap::Command {
    complete_ref::attach(shared::before_command(Cli::command()))
}

/// Parses the command line, runs, and returns the exit code.
pub fn main() -> ExitCode {
    // With COMPLETE=SHELL set, the shell is asking for candidates (or the script that asks):
    // answer and exit before anything else runs.
    clap_complete::CompleteEnv::with_factory(command)
        .shells(complete_bash::SHELLS)
        .complete();
    let mut parser = shared::before_command(Cli::command());
    let matches = parser
        .try_get_matches_from_mut(std::env::args_os())
        .unwrap_or_else(|e| escape_echoed_values(e).exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let shared = shared::read(&mut parser, &matches).unwrap_or_else(|e| e.exit());
    let (leaf_cmd, leaf_matches, _) = shared::leaf(&parser, &matches);
    let out = output::Output::new(cli.global.verbose, cli.global.quiet)
        .with_platform_flag(platform_pick::takes(leaf_cmd));
    strata::threads::set(shared.threads);
    // The library reads no environment: what the environment says is passed in here.
    strata::image::time::set_source_date_epoch(
        std::env::var_os("SOURCE_DATE_EPOCH").map(|v| v.to_string_lossy().into_owned()),
    );
    strata::layer::force_userspace_resolution(
        std::env::var_os("STRATA_RESOLVE").is_some_and(|v| v == "userspace"),
    );
    platform_pick::warn_unpicked(leaf_cmd, leaf_matches, shared.layout.as_deref(), &out);
    DEFAULT_LAYOUT
        .set(shared.layout)
        .expect("set once, at start");
    let result = match cli.command {
        Command::Init(a) => init::run(a, &out),
        Command::Ls(a) => ls::run(a, &out),
        Command::Inspect(a) => inspect::run(a, &out),
        Command::Tag(a) => tag::run(a, &out),
        Command::Untag(a) => untag::run(a, &out),
        Command::Gc(a) => gc::run(a, &out),
        Command::Fsck(a) => fsck::run(a, &out),
        Command::Unpack(a) => unpack::run(a, &out),
        Command::New(a) => new::run(a, &out),
        Command::Build(a) => build::run(a, &out),
        Command::Config(a) => config::run(a, &out),
        Command::AddLayer(a) => add_layer::run(a, &out),
        Command::Insert(a) => insert::run(a, &out),
        Command::Repack(a) => repack::run(a, &out),
        Command::Export(a) => export::run(a, &out),
        Command::Import(a) => import::run(a, &out),
        Command::Copy(a) => copy::run(a, &out),
        Command::Pull(a) => pull::run(a, &out),
        Command::Push(a) => push::run(a, &out),
        Command::Login(a) => login::login(a, &out),
        Command::Logout(a) => login::logout(a, &out),
        Command::Artifact(c) => artifact::run(c, &out),
        Command::Referrers(a) => referrers::run(a, &out),
        Command::Index(c) => index::run(c, &out),
        Command::Blob(a) => blob::run(a, &out),
        Command::Cat(a) => files::cat(a, &out),
        Command::Files(a) => files::files(a, &out),
        Command::Diff(a) => files::diff(a, &out),
        Command::Flatten(a) => flatten::run(a, &out),
        Command::Rebase(a) => rebase::run(a, &out),
        Command::Convert(a) => convert::run(a, &out),
        Command::RuntimeConfig(a) => runtime_config::run(a, &out),
        Command::Manifest(c) => manifest::run(c, &out),
        Command::Man(a) => man::run(a, &out),
        Command::Completions(a) => completions::run(a, &out),
    };
    if let Some(Some(layout)) = DEFAULT_LAYOUT.get() {
        if result.is_ok() && !DEFAULT_LAYOUT_USED.load(std::sync::atomic::Ordering::Relaxed) {
            out.warn(format_args!(
                "--layout {} was not used: every reference named its own layout",
                layout.display()
            ));
        }
    }
    out.finish(result)
}

/// clap echoes what the user typed (a value it refused, an unknown option or subcommand)
/// byte for byte: a tag with a newline or an ESC sequence would forge lines or drive the
/// terminal, as text from an image would, so it gets the same escaping.
fn escape_echoed_values(mut error: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue};
    let printable = |s: &str| strata::words::printable(s, usize::MAX);
    for kind in [
        ContextKind::InvalidValue,
        ContextKind::InvalidArg,
        ContextKind::InvalidSubcommand,
    ] {
        let escaped = match error.get(kind) {
            Some(ContextValue::String(s)) => ContextValue::String(printable(s)),
            Some(ContextValue::Strings(list)) => {
                ContextValue::Strings(list.iter().map(|s| printable(s)).collect())
            }
            _ => continue,
        };
        error.insert(kind, escaped);
    }
    // Tips quote the typed text too ("to pass '--x' as a value..."); they lose their colour
    // only when there is something to escape.
    if let Some(ContextValue::StyledStrs(tips)) = error.get(ContextKind::Suggested) {
        let plain: Vec<String> = tips.iter().map(|t| t.to_string()).collect();
        if plain.iter().any(|t| t.chars().any(char::is_control)) {
            let escaped = plain.iter().map(|t| printable(t).into()).collect();
            error.insert(ContextKind::Suggested, ContextValue::StyledStrs(escaped));
        }
    }
    error
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        super::command().debug_assert();
    }

    #[test]
    fn every_command_has_help_text() {
        for sub in super::command().get_subcommands() {
            assert!(
                sub.get_about().is_some(),
                "{} has no help text",
                sub.get_name()
            );
        }
    }
}
