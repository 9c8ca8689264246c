//! The `ebb` binary: parse flags, run the command, print the error, return the exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = ebb::cli::Cli::parse();
    match ebb::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err((error, printer)) => {
            if !matches!(error, ebb::error::Error::Project { .. }) {
                printer.error(&error.to_string(), error.hint());
            }
            ExitCode::from(error.exit_code())
        }
    }
}
