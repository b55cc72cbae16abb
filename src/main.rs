//! The `strata` binary: parses arguments, runs one command through the library, prints, and
//! maps the outcome to an exit code (0 success, 1 failure, 2 usage).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
