//! The options several commands share but not all act on (`--threads`, `--layout`). Each
//! command that acts on one adds it with `#[command(arg = shared::threads())]`, so `--help`,
//! the man pages and the parser offer it exactly there, under its own heading; `main` reads
//! the value from whichever command was chosen, since the code that uses it (the layer
//! writer, the REF parser) is shared too.
//!
//! The older spelling before the command (`strata --layout DIR inspect :v1`) is still
//! accepted, hidden, and refused for a command the option does not act on.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Arg, ArgMatches};

/// The heading these options are shown under, apart from a command's own.
const HEADING: &str = "Global options";

/// Argument ids, apart from the names of commands' own arguments (gc's positional LAYOUT has
/// the id `layout`).
const THREADS: &str = "global_threads";
const LAYOUT: &str = "global_layout";

/// The environment variable --threads defaults to.
const THREADS_VAR: &str = "STRATA_THREADS";

/// `--threads N`, for commands that compress layers or hash blobs on several threads.
pub fn threads() -> Arg {
    Arg::new(THREADS)
        .long("threads")
        .value_name("N")
        .value_parser(thread_count)
        .help(
            "Threads for compressing layers and hashing blobs (default: STRATA_THREADS, else \
             one per CPU). Outputs are the same whatever the number.",
        )
        .help_heading(HEADING)
}

/// `--layout DIR`, for commands that take a REF.
pub fn layout() -> Arg {
    Arg::new(LAYOUT)
        .long("layout")
        .value_name("DIR")
        .value_parser(clap::value_parser!(PathBuf))
        .help(
            "The layout that references without one (`:TAG`, `@sha256:HEX`, or empty) name: \
             the spelling for a layout whose path has a `:`.",
        )
        .help_heading(HEADING)
}

/// The hidden spellings before the command name. `STRATA_THREADS` is read only for a
/// command that takes --threads: set in the environment, it must not make every command
/// that ignores it fail.
pub fn before_command(cmd: clap::Command) -> clap::Command {
    cmd.arg(
        Arg::new(THREADS)
            .long("threads")
            .value_name("N")
            .value_parser(thread_count)
            .hide(true),
    )
    .arg(
        Arg::new(LAYOUT)
            .long("layout")
            .value_name("DIR")
            .value_parser(clap::value_parser!(PathBuf))
            .hide(true),
    )
}

/// The shared options' values for the command chosen on this command line.
pub struct Shared {
    pub threads: Option<NonZeroUsize>,
    pub layout: Option<PathBuf>,
}

/// Reads the shared options from the chosen command, or from before it; an option given
/// before a command that does not act on it is an invocation error (exit 2).
pub fn read(cmd: &mut clap::Command, matches: &ArgMatches) -> Result<Shared, clap::Error> {
    let (leaf_cmd, leaf, path) = leaf(cmd, matches);
    // ArgMatches cannot be asked whether a command defines an id (release builds answer
    // "not given"), so ask the command.
    let takes = |id: &str| leaf_cmd.get_arguments().any(|a| a.get_id() == id);
    let (takes_threads, takes_layout) = (takes(THREADS), takes(LAYOUT));
    let path = path.join(" ");
    let threads = value::<NonZeroUsize>(cmd, matches, leaf, THREADS, takes_threads, &path)?;
    let threads = match threads {
        None if takes_threads => threads_from_env(cmd)?,
        given => given,
    };
    let layout = value::<PathBuf>(cmd, matches, leaf, LAYOUT, takes_layout, &path)?;
    Ok(Shared { threads, layout })
}

/// The most threads strata starts for one job: more only cost memory and thread slots
/// (and a count near 2^64 overflowed the work queue's size).
const MAX_THREADS: usize = 1024;

/// A thread count: 1 to [`MAX_THREADS`].
fn thread_count(text: &str) -> Result<NonZeroUsize, String> {
    text.trim()
        .parse::<NonZeroUsize>()
        .ok()
        .filter(|n| n.get() <= MAX_THREADS)
        .ok_or_else(|| format!("not a number of threads (1 to {MAX_THREADS})"))
}

/// `STRATA_THREADS`, --threads's default. Read here rather than by clap's `env`: clap
/// would blame a bad value on `--threads`, which the user did not type.
fn threads_from_env(cmd: &mut clap::Command) -> Result<Option<NonZeroUsize>, clap::Error> {
    let Some(value) = std::env::var_os(THREADS_VAR).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match value.to_str().map(thread_count) {
        Some(Ok(n)) => Ok(Some(n)),
        Some(Err(reason)) => Err(cmd.error(
            clap::error::ErrorKind::ValueValidation,
            format!("{THREADS_VAR}={}: {reason}", value.to_string_lossy()),
        )),
        None => Err(cmd.error(
            clap::error::ErrorKind::ValueValidation,
            format!(
                "{THREADS_VAR}={}: not a number of threads (1 to {MAX_THREADS})",
                strata::words::printable(&value.to_string_lossy(), usize::MAX)
            ),
        )),
    }
}

/// The command chosen at the deepest level (`artifact push`), its matches, and its path as
/// typed (`strata artifact push`).
pub fn leaf<'c, 'm>(
    cmd: &'c clap::Command,
    matches: &'m ArgMatches,
) -> (&'c clap::Command, &'m ArgMatches, Vec<String>) {
    let (mut leaf, mut leaf_cmd) = (matches, cmd);
    let mut path = vec![cmd.get_name().to_owned()];
    while let Some((name, sub)) = leaf.subcommand() {
        path.push(name.to_owned());
        leaf = sub;
        leaf_cmd = leaf_cmd
            .find_subcommand(name)
            .expect("clap matched a subcommand it defines");
    }
    (leaf_cmd, leaf, path)
}

/// The command's own value of `id`, else the one given before the command, which only a
/// command taking `id` accepts.
fn value<T: Clone + Send + Sync + 'static>(
    cmd: &mut clap::Command,
    top: &ArgMatches,
    leaf: &ArgMatches,
    id: &str,
    takes: bool,
    path: &str,
) -> Result<Option<T>, clap::Error> {
    let name = id.trim_start_matches("global_");
    let before = top.get_one::<T>(id).cloned();
    if !takes {
        return match before {
            None => Ok(None),
            Some(_) => Err(cmd.error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("`{path}` does not take --{name}"),
            )),
        };
    }
    Ok(leaf.get_one::<T>(id).cloned().or(before))
}
