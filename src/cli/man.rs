//! `strata man`: man pages generated from the argument definitions, so they never drift
//! from `--help` (a test compares them with the copies kept in `man/`).

use std::path::PathBuf;

use anyhow::Context;

use super::output::Output;
use super::Status;

/// Write man pages (strata.1 and strata-COMMAND.1) into a directory.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write into (created if missing).
    dir: PathBuf,
}

pub fn run(args: Args, out: &Output) -> anyhow::Result<Status> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let root = super::command();
    let mut pages = vec![("strata.1".to_owned(), root.clone())];
    for sub in root.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("strata-{}", sub.get_name());
        pages.push((
            format!("{name}.1"),
            sub.clone()
                .name(name)
                .version(root.get_version().unwrap_or_default().to_owned()),
        ));
    }
    for (file, cmd) in pages {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf)?;
        let path = args.dir.join(&file);
        std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        out.info(format_args!("wrote {}", path.display()));
    }
    Ok(Status::Success)
}
