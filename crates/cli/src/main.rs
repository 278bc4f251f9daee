//! `signward`: parse the command line, set up logging, run the command.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod commands;
mod config;
mod logging;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Flags win over SIGNWARD_* environment variables, which win over the --config file.
    let argv = match config::expand(std::env::args_os().collect()) {
        Ok((argv, _)) => argv,
        Err(e) => {
            eprintln!("signward: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cli = cli::Cli::parse_from(argv);
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
