//! One module per subcommand.

mod audit;
mod client;
mod doctor;
pub(crate) mod group;
mod keys;
mod keystore;
pub(crate) mod policy;
mod serve;
mod slashing;
mod token;
pub(crate) mod vault;

use crate::cli::{Command, KeystoreCommand};

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(*args),
        Command::Keystore {
            command:
                KeystoreCommand::Create {
                    out,
                    password_file,
                    count,
                    kdf,
                    pbkdf2_iterations,
                },
        } => keystore::create(&out, &password_file, count, kdf, pbkdf2_iterations),
        Command::Slashing { command } => slashing::run(command),
        Command::Token { command } => token::run(command),
        Command::Audit { command } => audit::run(command),
        Command::Init(args) => vault::init(args),
        Command::Unseal(args) => vault::unseal(args),
        Command::Seal { client } => vault::seal(client),
        Command::Status { client } => vault::status(client),
        Command::Halt { client, reason } => vault::halt(client, reason),
        Command::Resume { client } => vault::resume(client),
        Command::Rekey(args) => vault::rekey(args),
        Command::Rotate(args) => vault::rotate(args),
        Command::Keys { command } => keys::run(command),
        Command::Policy { command } => policy::run(command),
        Command::Config {
            command: crate::cli::ConfigCommand::Check { config },
        } => crate::config::check(&config),
        Command::Doctor(args) => doctor::run(*args),
        Command::Group { command } => group::run(command),
    }
}

/// Create a directory (and parents) with mode 0700 if it does not exist.
pub(crate) fn ensure_private_dir(path: &std::path::Path) -> anyhow::Result<()> {
    signward_os::DataDir::new(path)
        .ensure_private()
        .map_err(|e| anyhow::anyhow!("cannot create directory {}: {e}", path.display()))
}
