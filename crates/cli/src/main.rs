//! `signward`: parse the command line, set up logging, run the command.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod logging;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format, cli.log_level.as_deref());
    match commands::run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("signward: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
