//! `strata completions`.

use super::output::Output;
use super::Status;

/// Print a shell completion script.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell.
    shell: clap_complete::Shell,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut super::command(), "strata", &mut buf);
    out.raw(&buf)?;
    Ok(Status::Success)
}
