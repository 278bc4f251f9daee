//! `signward-bench`: the figures in docs/benchmarks.md, each printed beside its reference measured
//! in the same run (raw blst, raw k256, standard keystores). Its own binary, so the signer's CLI
//! carries no benchmark rig; it builds the real server in-process, as `serve` does.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod compare;
mod figures;
mod fleet;
mod group;
mod loadgen;

use std::path::Path;

use clap::{Args, Parser, Subcommand};
use signward_os::DataDir;
use signward_slashing::SlashingDb;

/// Where the slashing protection database is. No `Debug` (nor on the commands that hold it):
/// the URL may carry a password, and nothing here needs to print it.
#[derive(Clone, Args)]
pub struct SlashingDbArgs {
    /// `sqlite:PATH` or `postgres://...`, or `env:VAR` to read the URL from an environment
    /// variable. Default: a temporary SQLite file.
    #[arg(long)]
    pub slashing_protection_db_url: Option<String>,
}

/// Open the slashing database the bench runs against, as `serve` opens it.
pub async fn open_db(
    args: &SlashingDbArgs,
    data_dir: &Path,
    audited: bool,
) -> anyhow::Result<SlashingDb> {
    let d = DataDir::new(data_dir);
    let url =
        signward_engine::stores::slashing_url(args.slashing_protection_db_url.as_deref(), &d)?;
    Ok(signward_engine::stores::open_slashing(&url, &d, audited).await?)
}

/// The bench fleet's keys, and where a server announces its address.
#[derive(Args)]
struct FleetArgs {
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Written with `IP:PORT` once the server listens.
    #[arg(long)]
    addr_file: std::path::PathBuf,
}

#[derive(Parser)]
#[command(
    name = "signward-bench",
    version,
    about = "signward's benchmarks, each beside its reference"
)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Signatures per second through the full HTTP path, beside raw blst on all cores.
    Signing {
        /// Number of keys to sign with (generated in memory).
        #[arg(long, default_value_t = 100)]
        keys: usize,
        /// Servers sharing the slashing database (use with PostgreSQL).
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// Concurrent client connections.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Slashing database for the protected run (default: a temporary SQLite file).
        #[command(flatten)]
        db: SlashingDbArgs,
        /// Turn on token authentication and the audit log, as `serve` runs by default.
        #[arg(long)]
        with_auth_audit: bool,
    },
    /// Import of a generated interchange file (validators × epochs), then pruning.
    Interchange {
        #[arg(long, default_value_t = 10_000)]
        validators: u64,
        #[arg(long, default_value_t = 250)]
        epochs: u64,
        #[command(flatten)]
        db: SlashingDbArgs,
    },
    /// EVM: signed transactions per second through the full JSON-RPC path with a realistic
    /// policy and spend window, beside raw k256 signing in the same run.
    Evm {
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Drop the policy's spend window (no ledger commit per transaction).
        #[arg(long)]
        without_spend_window: bool,
    },
    /// signward beside a minimal reference signer under one external load generator:
    /// throughput, p99 at a steady rate, slot bursts (SQLite and PostgreSQL), two instances on
    /// PostgreSQL. Starts every process itself.
    Compare(compare::CompareArgs),
    /// The load generator `compare` runs (its own process, one thread).
    LoadGen(loadgen::LoadArgs),
    /// A signward server as `serve` builds it, holding the bench fleet's keys (for `compare`).
    ServeSignward {
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        db: SlashingDbArgs,
        /// Holds the server secret and the token store; the instance's audit log goes under it.
        #[arg(long)]
        data_dir: std::path::PathBuf,
        #[arg(long, default_value_t = 0)]
        instance: usize,
        /// First issue a token with the sign scope into `data_dir` and write it to this file
        /// (to run the server by hand, e.g. under `perf`).
        #[arg(long)]
        issue_token: Option<std::path::PathBuf>,
    },
    /// Peer `index` of the bench's 2-of-3 signing group over the fleet's keys (for `compare
    /// --only group`); `group_dir` is made by `compare`.
    ServeGroupPeer {
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        db: SlashingDbArgs,
        #[arg(long)]
        data_dir: std::path::PathBuf,
        #[arg(long)]
        group_dir: std::path::PathBuf,
        #[arg(long)]
        index: u32,
    },
    /// The reference signer (parse, signing root, sign) with the fleet's keys (for `compare`).
    ServeReference {
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Time to decrypt N PBKDF2 keystores with 1 thread and with all cores.
    Load {
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 262_144)]
        pbkdf2_iterations: u32,
    },
    /// Unseal to ready-to-sign for N vault keys (the server's own path), beside decrypting a
    /// sample of standard scrypt keystores extrapolated to N.
    Unseal {
        #[arg(long, default_value_t = 10_000)]
        keys: usize,
        /// `sqlite` or a `postgres://` URL (a scratch database: the vault tables are created).
        #[arg(long, default_value = "sqlite")]
        db: String,
        /// scrypt keystores (n=262144, r=8, p=1) decrypted for the comparison.
        #[arg(long, default_value_t = 16)]
        scrypt_sample: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        BenchCommand::Signing {
            keys,
            instances,
            duration_secs,
            concurrency,
            db,
            with_auth_audit,
        } => figures::signing(
            keys,
            instances,
            duration_secs,
            concurrency,
            db,
            with_auth_audit,
        ),
        BenchCommand::Interchange {
            validators,
            epochs,
            db,
        } => figures::interchange(validators, epochs, db),
        BenchCommand::Compare(args) => compare::run(args),
        BenchCommand::LoadGen(args) => loadgen::run(args),
        BenchCommand::ServeSignward {
            fleet,
            db,
            data_dir,
            instance,
            issue_token,
        } => {
            if let Some(token_file) = issue_token {
                fleet::issue_token(&data_dir, &token_file)?;
            }
            fleet::run(
                fleet::Server::Signward {
                    db,
                    data_dir,
                    instance,
                },
                fleet.seed,
                fleet.keys,
                &fleet.addr_file,
            )
        }
        BenchCommand::ServeGroupPeer {
            fleet,
            db,
            data_dir,
            group_dir,
            index,
        } => fleet::run(
            fleet::Server::GroupPeer {
                db,
                data_dir,
                group_dir,
                index,
            },
            fleet.seed,
            fleet.keys,
            &fleet.addr_file,
        ),
        BenchCommand::ServeReference { fleet } => fleet::run(
            fleet::Server::Reference,
            fleet.seed,
            fleet.keys,
            &fleet.addr_file,
        ),
        BenchCommand::Load {
            count,
            pbkdf2_iterations,
        } => figures::load(count, pbkdf2_iterations),
        BenchCommand::Evm {
            duration_secs,
            concurrency,
            without_spend_window,
        } => figures::evm(duration_secs, concurrency, without_spend_window),
        BenchCommand::Unseal {
            keys,
            db,
            scrypt_sample,
        } => figures::unseal(keys, &db, scrypt_sample),
    }
}
