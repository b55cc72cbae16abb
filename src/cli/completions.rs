//! `strata completions`.

use super::output::Output;
use super::Status;

/// Print a static shell completion script (commands and flags).
///
/// For completions that know the layout (directories, `LAYOUT:`, then LAYOUT's tags), have
/// the shell ask strata at each TAB instead: `source <(COMPLETE=bash strata)` (zsh, fish,
/// elvish and powershell alike; see the README).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell.
    shell: Shell,
}

/// clap_complete's shells, and nushell, whose generator is a separate crate.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Shell {
    Bash,
    Elvish,
    Fish,
    Powershell,
    Zsh,
    Nushell,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    use clap_complete::Shell as S;
    let mut buf = Vec::new();
    let mut cmd = super::command();
    match args.shell {
        Shell::Bash => clap_complete::generate(S::Bash, &mut cmd, "strata", &mut buf),
        Shell::Elvish => clap_complete::generate(S::Elvish, &mut cmd, "strata", &mut buf),
        Shell::Fish => clap_complete::generate(S::Fish, &mut cmd, "strata", &mut buf),
        Shell::Powershell => clap_complete::generate(S::PowerShell, &mut cmd, "strata", &mut buf),
        Shell::Zsh => clap_complete::generate(S::Zsh, &mut cmd, "strata", &mut buf),
        Shell::Nushell => {
            clap_complete::generate(clap_complete_nushell::Nushell, &mut cmd, "strata", &mut buf)
        }
    }
    out.raw(&buf)?;
    Ok(Status::Success)
}
