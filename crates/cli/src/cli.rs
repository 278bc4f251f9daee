//! Command-line definitions. Flag names follow Web3Signer's so operators can migrate unchanged.
//! No flag takes a secret value: passwords come from files.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "signward",
    version,
    about = "A hardened Ethereum remote signer"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter (e.g. `info`, `debug`); overrides SIGNWARD_LOG.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the signer (Web3Signer-compatible eth2 HTTP API).
    Serve(Box<ServeArgs>),
    /// Create EIP-2335 keystores for fresh random keys (for tests, demos and migrations).
    Keystore {
        #[command(subcommand)]
        command: KeystoreCommand,
    },
    /// Credentials: create, list and revoke scoped tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit log: verify its chain, query its records.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Slashing protection database: EIP-3076 import and export, pruning.
    Slashing {
        #[command(subcommand)]
        command: SlashingCommand,
    },
    /// Create the sealed key vault: a new master key split into share files, one per operator.
    Init(InitArgs),
    /// Submit one unseal share to a running server (admin scope); reports progress k of T.
    Unseal(UnsealArgs),
    /// Seal a running server: wipe the master key and every vault key from its memory.
    Seal {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Emergency stop: a running server refuses every signing request until `resume` (persisted).
    Halt {
        #[command(flatten)]
        client: ClientArgs,
        /// Why (kept in the audit log and the health check).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a halt.
    Resume {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show the vault's state and unseal progress on a running server.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// New shares (and optionally a new quorum) for the same master key; old shares stop working.
    Rekey(CeremonyArgs),
    /// A new master key: every key record re-encrypted, new shares; old shares stop working.
    Rotate(CeremonyArgs),
    /// Keys in the vault of a running server: import, generate, list, enable/disable, delete.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Configuration files: check one.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check the host and the configuration for operational security; exit 1 on any failure.
    Doctor(Box<DoctorArgs>),
    /// Threshold signing groups: peer identities, and shares of a validator key (docs/threshold.md).
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// The EVM policy: explain what it decides for a request, without signing.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file of settings named like these flags; flags and SIGNWARD_* environment
    /// variables take precedence over it. Must not be accessible by others.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory for signward's own state.
    #[arg(long, default_value = "./signward-data")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub http_listen_host: IpAddr,
    /// Serve HTTPS with this PEM certificate chain (reloaded on SIGHUP).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert (must be owner-only).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates issued by this PEM CA (mTLS). A certificate's SHA-256 maps
    /// to a credential made with `token create --cert-sha256`.
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Required to listen on a non-loopback address without TLS: tokens and signing requests
    /// then cross the network in plaintext.
    #[arg(long)]
    pub insecure_allow_plaintext_non_loopback: bool,
    /// Serve without authentication. Accepted only on a loopback listener.
    #[arg(long)]
    pub insecure_disable_auth: bool,
    /// A reverse proxy whose `X-Forwarded-For` is believed (CIDR; repeatable). Without it the
    /// socket's peer address is the caller's address.
    #[arg(long, value_delimiter = ',')]
    pub trusted_proxy: Vec<String>,
    /// Failed authentication attempts allowed per source address per minute.
    #[arg(long, default_value_t = 20)]
    pub auth_failure_limit: u32,
    /// Port to listen on.
    #[arg(long, default_value_t = 9000)]
    pub http_listen_port: u16,
    /// `mainnet`, `hoodi`, `sepolia`, or the path of a consensus `config.yaml`. Beside a
    /// config.yaml, `genesis.ssz` (the genesis BeaconState) and a beacon API `genesis.json` are
    /// read for the genesis time and genesis validators root.
    #[arg(long, default_value = "mainnet")]
    pub network: String,
    /// The network's genesis time in Unix seconds (the chain-clock window needs it). Takes
    /// precedence over genesis.ssz and genesis.json beside config.yaml; any source that
    /// disagrees with it is an error. config.yaml's MIN_GENESIS_TIME + GENESIS_DELAY is not
    /// genesis time.
    #[arg(long)]
    pub genesis_time: Option<u64>,
    /// Directory of EIP-2335 keystore files (`*.json`).
    #[arg(long)]
    pub keystores_path: Option<PathBuf>,
    /// Directory of password files, `<keystore name>.txt` for `<keystore name>.json`.
    #[arg(long, conflicts_with = "keystores_password_file")]
    pub keystores_passwords_path: Option<PathBuf>,
    /// One password file for every keystore in --keystores-path.
    #[arg(long)]
    pub keystores_password_file: Option<PathBuf>,
    /// Directory of Web3Signer key-config YAML files.
    #[arg(long)]
    pub key_config_path: Option<PathBuf>,
    /// Load `type: file-raw` configs, whose private key is in plaintext. Unsafe.
    #[arg(long)]
    pub allow_raw_keys: bool,
    /// Threads for decrypting keystores (default: all cores).
    #[arg(long)]
    pub key_loader_threads: Option<usize>,
    /// Unseal at start from these share files (unattended start: whoever can read them and the
    /// passphrases or identities can unseal; see docs/operations.md). Repeatable.
    #[arg(long)]
    pub unseal_shares_from: Vec<PathBuf>,
    #[command(flatten)]
    pub unseal_input: ShareInput,
    /// Refuse to start when process memory cannot be locked against swapping.
    #[arg(long)]
    pub require_memory_lock: bool,
    /// Run even as root. A signer should run as its own unprivileged user (see
    /// packaging/signward.service); this flag exists for containers that insist.
    #[arg(long)]
    pub allow_root: bool,
    /// A canary key (BLS public key or EVM address): listed like a real key, never signed with;
    /// any request for it is refused, audited, counted and triggers --canary-action. Repeatable.
    #[arg(long)]
    pub canary_key: Vec<String>,
    /// What a canary request does besides refusing and alerting.
    #[arg(long, value_enum, default_value_t = CanaryActionArg::Suspend)]
    pub canary_action: CanaryActionArg,
    /// Serve Prometheus metrics on their own listener (`metrics` scope).
    #[arg(long)]
    pub metrics_enabled: bool,
    /// Address of the metrics listener.
    #[arg(long, default_value = "127.0.0.1")]
    pub metrics_host: IpAddr,
    /// Port of the metrics listener.
    #[arg(long, default_value_t = 9001)]
    pub metrics_port: u16,
    /// Directory of V3 (Web3 Secret Storage) keyfiles (`*.json`) for EVM signing.
    #[arg(long, requires = "evm_keyfiles_password_file")]
    pub evm_keyfiles_path: Option<PathBuf>,
    /// One password file (owner-only) for every keyfile in --evm-keyfiles-path.
    #[arg(long)]
    pub evm_keyfiles_password_file: Option<PathBuf>,
    /// The EVM signing policy (TOML, see docs/policy.md); reloaded on SIGHUP. Without one, every
    /// EVM signing request is refused.
    #[arg(long)]
    pub evm_policy: Option<PathBuf>,
    /// Join a threshold signing group (TOML, see docs/threshold.md): this peer's index, its peer
    /// listener and TLS identity, its share files and the other peers' pinned certificates.
    #[arg(long)]
    pub group_config: Option<PathBuf>,
    /// An EVM node behind signward: listed reads are forwarded to it, and
    /// `eth_sendTransaction` is filled (chain id, gas, fees, a durably allocated nonce), checked,
    /// signed and submitted through it. `https://…`, or `http://` on loopback; `env:VAR` reads
    /// the URL from the environment (for a URL that carries a provider's API key). Repeatable
    /// as `CHAIN_ID=URL`, one node per chain; `POST /chain/{id}` then serves chain `id`.
    #[arg(long)]
    pub evm_upstream_url: Vec<String>,
    /// PEM certificates to trust for the upstream node besides the system's roots.
    #[arg(long)]
    pub evm_upstream_ca: Option<PathBuf>,
    /// Methods forwarded to the upstream node (comma-separated), replacing the default list of
    /// reads (see docs/evm-clients.md).
    #[arg(long, value_delimiter = ',')]
    pub evm_upstream_forward: Vec<String>,
    /// Permit plaintext http to an upstream node that is not on loopback.
    #[arg(long)]
    pub evm_upstream_allow_plaintext: bool,
    /// The chain `eth_chainId` answers without an upstream node; with one, the node must serve
    /// this chain or every send is refused.
    #[arg(long)]
    pub evm_chain_id: Option<u64>,
    /// Development mode: permits --dev-evm-key. Loopback only; reported as unsafe by /healthcheck.
    #[arg(long)]
    pub dev: bool,
    /// `env:VAR` naming an environment variable that holds a raw hex secp256k1 key. Development
    /// only: refused without --dev.
    #[arg(long)]
    pub dev_evm_key: Option<String>,
    #[command(flatten)]
    pub slashing: SlashingDbArgs,
    /// Refuse blocks and attestations more than this many epochs ahead of the chain clock
    /// (needs the network's genesis time).
    #[arg(long, default_value_t = 2)]
    pub slashing_protection_max_future_epochs: u64,
    /// Turn the chain-clock check off (tests only; /healthcheck and `doctor` report it off).
    #[arg(long)]
    pub slashing_protection_disable_clock_check: bool,
    /// Prune old slashing history periodically (never weakens protection).
    #[arg(long)]
    pub slashing_protection_pruning_enabled: bool,
    /// Epochs of history kept per validator when pruning.
    #[arg(long, default_value_t = 10_000)]
    pub slashing_protection_pruning_epochs_to_keep: u64,
    /// Hours between pruning runs.
    #[arg(long, default_value_t = 24)]
    pub slashing_protection_pruning_interval: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_request_body_bytes: usize,
    /// Whole-request deadline, in seconds.
    #[arg(long, default_value_t = 10)]
    pub request_timeout_secs: u64,
    /// Requests in flight at once; more are shed with 503 `overloaded` and Retry-After.
    #[arg(long, default_value_t = 1024)]
    pub max_concurrent_requests: usize,
    /// Connections open at once (lowered to fit the descriptor limit, RLIMIT_NOFILE). At the
    /// cap, the longest-idle connection is closed to make room.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Connections open at once from one source address.
    #[arg(long, default_value_t = 512)]
    pub max_connections_per_ip: usize,
    /// Seconds from the first byte of a request head to its end.
    #[arg(long, default_value_t = 10)]
    pub http_header_timeout_secs: u64,
    /// Seconds a connection may wait without a request before it is closed.
    #[arg(long, default_value_t = 60)]
    pub http_idle_timeout_secs: u64,
}

/// How `signward` reaches a running server's admin API.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the server.
    #[arg(long, env = "SIGNWARD_URL", default_value = "http://127.0.0.1:9000")]
    pub url: String,
    /// File holding an admin-scope token (owner-only), or `env:VAR`.
    #[arg(long, env = "SIGNWARD_TOKEN_FILE")]
    pub token_file: String,
    /// PEM CA certificate to trust for an https:// URL.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
}

/// Where the share files come from and how each opens.
#[derive(Debug, Clone, Args)]
pub struct ShareInput {
    /// age identity file (from `age-keygen`) for age share files; repeatable.
    #[arg(long)]
    pub identity: Vec<PathBuf>,
    /// Passphrase for a passphrase share file: `file:PATH`, `env:VAR` or `prompt`; repeatable,
    /// used in order by the passphrase shares. Default: prompt.
    #[arg(long)]
    pub passphrase: Vec<String>,
}

/// Who receives the new shares.
#[derive(Debug, Clone, Args)]
pub struct ShareOutput {
    /// Number of shares.
    #[arg(long)]
    pub shares: u8,
    /// Shares needed to unseal (at least 2).
    #[arg(long)]
    pub threshold: u8,
    /// Directory the share files are written to (created 0700; files 0600, never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// How each share is protected, in order, one per share: an age recipient `age1…`, or
    /// `passphrase:file:PATH`, `passphrase:env:VAR`, `passphrase:prompt`. Default: prompt.
    #[arg(long)]
    pub share_to: Vec<String>,
    /// argon2id memory cost of passphrase shares, in KiB.
    #[arg(long, default_value_t = 65536)]
    pub kdf_memory_kib: u32,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[arg(long, default_value = "./signward-data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub slashing: SlashingDbArgs,
    #[command(flatten)]
    pub output: ShareOutput,
}

#[derive(Debug, Args)]
pub struct UnsealArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The operator's share file.
    #[arg(long, required_unless_present = "reset")]
    pub share: Option<PathBuf>,
    #[command(flatten)]
    pub input: ShareInput,
    /// Discard the shares submitted so far instead.
    #[arg(long)]
    pub reset: bool,
}

#[derive(Debug, Args)]
pub struct CeremonyArgs {
    #[arg(long, default_value = "./signward-data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub slashing: SlashingDbArgs,
    /// Current share files (a quorum); repeatable.
    #[arg(long = "share", required = true)]
    pub current: Vec<PathBuf>,
    #[command(flatten)]
    pub input: ShareInput,
    #[command(flatten)]
    pub output: ShareOutput,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse a config file as `serve` would (with the environment applied) and print the result.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The systemd unit to check for hardening options.
    #[arg(long)]
    pub unit: Option<PathBuf>,
    /// The serve settings to check (the same flags, environment and --config as `serve`).
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CanaryActionArg {
    /// Suspend the credential that asked (persisted in tokens.json); everyone else signs on.
    Suspend,
    /// Suspend that credential and halt all signing (persisted) at once.
    Halt,
    /// Suspend that credential and seal the vault at once.
    Seal,
    /// Only refuse, audit and count.
    Alert,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Evaluate a JSON-RPC request file against a policy file and print every rule's verdict.
    /// Exit status 0 when allowed, 1 when refused. Spend windows need the shared ledger and are
    /// listed, not evaluated.
    Check {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        request: PathBuf,
        /// Evaluate as this credential (its `[tokens."NAME"]` rules apply in addition).
        #[arg(long)]
        token: Option<String>,
        /// Evaluate at this unix time (deadline rules) instead of now.
        #[arg(long)]
        now: Option<u64>,
    },
    /// Parse a policy file and report errors.
    Validate {
        #[arg(long)]
        policy: PathBuf,
    },
    /// Run a file of example requests with their expected decisions (`[[case]]` with `name`,
    /// `request` or `request_json`, `expect = "allow"|"refuse"`, optional `rule` and `token`;
    /// optional top-level `now`). Exit status 0 when every case gets its decision, 1 otherwise.
    Test {
        #[arg(long)]
        policy: PathBuf,
        /// The cases file (TOML).
        #[arg(long)]
        cases: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Import EIP-2335 keystores into the vault (decrypted once, inside the server).
    Import {
        #[command(flatten)]
        client: ClientArgs,
        /// Directory of keystore files (`*.json`).
        #[arg(long)]
        keystores_path: PathBuf,
        /// Directory of password files named like the keystores (`.txt`).
        #[arg(long, conflicts_with = "keystores_password_file")]
        keystores_passwords_path: Option<PathBuf>,
        /// One password file for every keystore.
        #[arg(long)]
        keystores_password_file: Option<PathBuf>,
        /// Keystores per request (each scrypt keystore costs the server about a second of CPU).
        #[arg(long, default_value_t = 16)]
        batch: usize,
    },
    /// Generate keys inside the server, optionally with age-encrypted backups.
    Generate {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long = "type", default_value = "bls")]
        kind: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// age recipient (`age1…`) for backups; each key's backup is written to --backup-dir.
        #[arg(long, requires = "backup_dir")]
        backup_to: Option<String>,
        #[arg(long)]
        backup_dir: Option<PathBuf>,
    },
    /// List the vault's keys and the file-loaded keys.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop signing with a key without deleting it.
    Disable {
        #[command(flatten)]
        client: ClientArgs,
        pubkey: String,
    },
    /// Sign with a disabled key again.
    Enable {
        #[command(flatten)]
        client: ClientArgs,
        pubkey: String,
    },
    /// Delete a key; its EIP-3076 slashing history is exported to --slashing-out first.
    Delete {
        #[command(flatten)]
        client: ClientArgs,
        pubkey: String,
        #[arg(long)]
        slashing_out: PathBuf,
    },
}

/// Where the slashing protection database is. `Debug` is written by hand: the URL may hold a
/// password.
#[derive(Clone, Args)]
pub struct SlashingDbArgs {
    /// `sqlite:PATH` or `postgres://...`, or `env:VAR` to read the URL from an environment
    /// variable (use that when the URL holds a password). Default: sqlite:<data-dir>/slashing.sqlite
    #[arg(long)]
    pub slashing_protection_db_url: Option<String>,
}

impl std::fmt::Debug for SlashingDbArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.slashing_protection_db_url.as_deref().map(|u| {
            if u.starts_with("env:") || u.starts_with("sqlite:") {
                u.to_string()
            } else {
                "<redacted>".to_string()
            }
        });
        f.debug_struct("SlashingDbArgs")
            .field("slashing_protection_db_url", &url)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum SlashingCommand {
    /// Import an EIP-3076 interchange file (safe while the server runs).
    Import {
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value = "./signward-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        db: SlashingDbArgs,
    },
    /// Export the database as an EIP-3076 interchange file.
    Export {
        #[arg(long)]
        file: PathBuf,
        /// Minimal form: one block and one attestation per validator, at the watermarks.
        #[arg(long)]
        minimal: bool,
        #[arg(long, default_value = "./signward-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        db: SlashingDbArgs,
    },
    /// Delete history older than N epochs behind each validator's newest record.
    Prune {
        #[arg(long, default_value_t = 10_000)]
        epochs_to_keep: u64,
        /// Network (for slots per epoch).
        #[arg(long, default_value = "mainnet")]
        network: String,
        #[arg(long, default_value = "./signward-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        db: SlashingDbArgs,
    },
    /// List the validators that are disabled (deleted keys): nothing is signed for them.
    Disabled {
        #[arg(long, default_value = "./signward-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        db: SlashingDbArgs,
    },
    /// Let disabled validators sign again, on every instance sharing the database. Only for keys
    /// this signer cluster owns again (their history here is complete); a Keymanager or
    /// `keys import` does this by itself.
    Enable {
        /// BLS public keys (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        pubkey: Vec<String>,
        #[arg(long, default_value = "./signward-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        db: SlashingDbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's MAC chain and the head; exits non-zero on any tampering.
    Verify {
        #[arg(long, default_value = "./signward-data")]
        data_dir: PathBuf,
    },
    /// Print matching records as JSON lines, oldest first.
    Query {
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        caller: Option<String>,
        /// signed, refused, denied, error, created, revoked
        #[arg(long)]
        decision: Option<String>,
        /// Unix seconds.
        #[arg(long)]
        since: Option<u64>,
        /// Unix seconds.
        #[arg(long)]
        until: Option<u64>,
        #[arg(long, default_value_t = 0)]
        limit: usize,
        #[arg(long, default_value = "./signward-data")]
        data_dir: PathBuf,
    },
}

// Parsed once per run: the size of the Create variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a credential; prints the token once, alone on its line.
    Create {
        #[arg(long)]
        name: String,
        /// sign, public_keys, keymanager, admin, metrics, evm (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        scope: Vec<String>,
        /// Only these keys (comma-separated): BLS public keys (without any, every BLS key) and
        /// EVM addresses (without any, no EVM key; `evm:*` for every EVM key).
        #[arg(long, value_delimiter = ',')]
        keys: Vec<String>,
        /// Only these operations, by family (BLOCK covers BLOCK_V2): sign request types,
        /// `duties` (every validator-client duty), DEPOSIT, VOLUNTARY_EXIT, and the EVM methods
        /// eth_signTransaction, eth_sign (and personal_sign), eth_signTypedData. Without it, a
        /// credential may sign duties only: deposits, exits and EVM methods must be named.
        #[arg(long, value_delimiter = ',')]
        allow_op: Vec<String>,
        /// Never these operations (by family), e.g. VOLUNTARY_EXIT.
        #[arg(long, value_delimiter = ',')]
        deny_op: Vec<String>,
        /// Validator registrations only for these fee recipients (comma-separated addresses).
        #[arg(long, value_delimiter = ',')]
        fee_recipient: Vec<String>,
        /// Only from these networks (CIDR, comma-separated).
        #[arg(long, value_delimiter = ',')]
        cidr: Vec<String>,
        /// Lifetime, e.g. 90d, 12h, 30m, 45s.
        #[arg(long)]
        expires: Option<String>,
        /// Make a certificate credential (mTLS) for the client certificate with this SHA-256
        /// fingerprint instead of a token.
        #[arg(long, conflicts_with = "source")]
        cert_sha256: Option<String>,
        /// Make a source credential instead of a token, for validator clients that cannot send
        /// one (Lodestar >= 1.10): a request that presents no credential from one of these
        /// address ranges (CIDR, comma-separated, at most a /24 or an IPv6 /64) acts as this
        /// credential. Only the sign, public_keys and metrics scopes; no EVM keys. Prefer a
        /// single loopback address; `signward doctor` flags anything wider.
        #[arg(long, value_delimiter = ',', conflicts_with = "cidr")]
        source: Vec<String>,
        /// What `eth_signTransaction` answers this credential: `raw` (the signed transaction as
        /// hex, as the spec, ethers, viem and alloy expect) or `geth` (geth's `{raw, tx}`
        /// object, for web3.py's `sign_transaction` and former Clef users).
        #[arg(long, default_value = "raw")]
        evm_tx_result: String,
        #[arg(long, default_value = "./signward-data")]
        data_dir: PathBuf,
    },
    /// List credentials (never the tokens).
    List {
        #[arg(long, default_value = "./signward-data")]
        data_dir: PathBuf,
    },
    /// Revoke a credential; a running server stops accepting it within a second.
    Revoke {
        name: String,
        #[arg(long, default_value = "./signward-data")]
        data_dir: PathBuf,
    },
    /// Lift the suspension of a credential (after a canary hit, once investigated).
    Reinstate {
        name: String,
        #[arg(long, default_value = "./signward-data")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KdfChoice {
    Scrypt,
    Pbkdf2,
}

#[derive(Debug, Subcommand)]
pub enum KeystoreCommand {
    /// Generate random BLS keys and write each as an EIP-2335 keystore (mode 0600).
    Create {
        /// Output directory (created 0700 if missing).
        #[arg(long)]
        out: PathBuf,
        /// File holding the password for the new keystores (must be owner-only).
        #[arg(long)]
        password_file: PathBuf,
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, value_enum, default_value_t = KdfChoice::Scrypt)]
        kdf: KdfChoice,
        /// PBKDF2 iterations (pbkdf2 only).
        #[arg(long, default_value_t = 262_144)]
        pbkdf2_iterations: u32,
    },
}

/// The peers of a (new) group, each with the age recipient its shares are encrypted to, and the
/// threshold.
#[derive(Debug, Args)]
pub struct GroupMembers {
    /// How many peers must take part in each signature: at least 2, and 2t > n + f (below), so
    /// that any two sets of signers share an honest peer, whose slashing database refuses the
    /// second of two conflicting messages.
    #[arg(long)]
    pub threshold: u32,
    /// Compromised peers the group's slashing protection must withstand (docs/threshold.md). With
    /// 0, conflicting requests from clients are refused, but a compromised peer coordinating can
    /// get two conflicting messages signed by different honest peers.
    #[arg(long, default_value_t = 0)]
    pub tolerate_compromised: u32,
    /// One per peer (of the new group, for a refresh): `<index>=<age recipient>`, indexes 1..=n.
    #[arg(long = "peer", value_name = "INDEX=AGE1…", required = true)]
    pub peers: Vec<String>,
}

/// `signward group …`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Make a peer's identity in `--out-dir`: `<name>.crt` and `<name>.key` (a self-signed TLS
    /// certificate and its key, for the peer listener; the certificate's SHA-256 is the pin the
    /// other peers configure) and `<name>.agekey` (the age identity its share files are
    /// encrypted to). Prints the pin and the age recipient.
    Identity {
        /// Where to write the files (created 0700).
        #[arg(long)]
        out_dir: PathBuf,
        /// The peer's name (file names and the certificate's subject).
        #[arg(long)]
        name: String,
    },
    /// Dealer split: split an existing validator key (an EIP-2335 keystore) into one share per
    /// peer, any `--threshold` of which sign, with Feldman commitments each peer checks its
    /// share against. Each share is written encrypted to its peer's age recipient
    /// (`share-<index>.age`); the whole key is wiped from memory afterwards. Prints the group
    /// public key, which is the keystore's own public key.
    Split {
        /// The keystore of the key to split.
        #[arg(long)]
        keystore: PathBuf,
        /// The file holding its password.
        #[arg(long)]
        password_file: PathBuf,
        #[command(flatten)]
        members: GroupMembers,
        /// Where to write the share files (created 0700).
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Dealer split of a key held whole in a running server's vault: the server splits it into
    /// one share per peer (any `--threshold` of which sign), writes each encrypted to its peer's
    /// age recipient under its `<data-dir>/split-keys/` and into `--out-dir` as
    /// `share-<index>.age`, then deletes the whole key from its vault. Its slashing history comes
    /// back as `--out-dir/slashing-protection.json`: import it into every peer.
    SplitVaultKey {
        #[command(flatten)]
        client: ClientArgs,
        /// The key to split (its public key becomes the group public key).
        #[arg(long)]
        pubkey: String,
        #[command(flatten)]
        members: GroupMembers,
        /// Where to write the share files and the slashing history (created 0700).
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Distributed key generation, step 1, run by every peer: deal a fresh random secret to the
    /// group. Writes `--out-dir/dealing.json` (public commitments, for everyone) and
    /// `to-<index>.age` (each peer's share of this dealing, encrypted to it). No one, this peer
    /// included, learns the group's key, which is the sum of every dealer's secret.
    Init {
        /// This peer's index (1..=n).
        #[arg(long)]
        index: u32,
        #[command(flatten)]
        members: GroupMembers,
        /// Where to write the dealing (created 0700; never overwritten).
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Step 2, run by every peer on the dealings of step 1 (`group init`) or of a refresh
    /// (`group refresh`): check each share it was dealt against its dealer's commitments, and
    /// write its own share file of the group, encrypted to `--recipient`. Prints the group public
    /// key and a digest of the group's commitments, which every peer must see identical.
    Join {
        /// This peer's index in the (new) group.
        #[arg(long)]
        index: u32,
        /// This peer's age identity file (from `group identity`).
        #[arg(long)]
        identity: PathBuf,
        /// This peer's age recipient, which the share file is encrypted to.
        #[arg(long)]
        recipient: String,
        /// A dealer's output directory; one per dealer (every peer for key generation, exactly
        /// the old threshold of old holders for a refresh).
        #[arg(long = "dealing", required = true)]
        dealings: Vec<PathBuf>,
        /// Key generation: the `dealing_sha256` this peer's own `group init` printed. Its own
        /// dealing must be among those combined, unaltered: a random secret no one else knows
        /// then keeps the group key unknown to whoever handled the exchanged files.
        #[arg(long)]
        own_dealing_sha256: Option<String>,
        /// The share file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Store this peer's share in the sealed vault of its running server: the share file (from
    /// `split` or `join`) is opened here with the peer's age identity and sent over the admin
    /// API, where the server checks it (this peer's index, its commitments, the group's
    /// threshold rule), seals it in the vault and signs with it from then on. A share of a group
    /// key the vault already holds replaces the old one (a refresh). Delete the share file and
    /// keep the age identity offline afterwards: the vault's quorum now guards the share.
    Import {
        #[command(flatten)]
        client: ClientArgs,
        /// The share file.
        #[arg(long)]
        share: PathBuf,
        /// The age identity file that opens it.
        #[arg(long)]
        identity: PathBuf,
        /// The validator's EIP-3076 slashing history (from its old signer, or the
        /// `slashing-protection.json` of `split-vault-key`): required for a key new to this
        /// peer, so that it refuses what the key already signed.
        #[arg(long, conflicts_with = "new_key")]
        slashing_protection: Option<PathBuf>,
        /// The key has never signed (distributed key generation): there is no history.
        #[arg(long)]
        new_key: bool,
    },
    /// A running peer's signing group: its group keys (threshold, where each share is kept, the
    /// digest of the commitments) and every other peer, asked now: reachable or not, and whether
    /// it holds each group key with the same commitments. Exits non-zero when a peer is
    /// unreachable or disagrees.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Proactive refresh as `refresh` does, from the share a running peer holds (in its sealed
    /// vault, or from a share file): the server deals it, and only the public dealing and each
    /// new peer's part, encrypted to that peer, come back to `--out-dir`. The new peers then
    /// `group join` these dealings and `group import` the result.
    Reshare {
        #[command(flatten)]
        client: ClientArgs,
        /// The group (validator) public key.
        #[arg(long)]
        group_public_key: String,
        #[command(flatten)]
        members: GroupMembers,
        /// Where to write the dealing (created 0700; never overwritten).
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Proactive refresh, run by `t` holders of the current group: deal this peer's own share to
    /// a new group (the same peers, a replacement for a lost one, or another `n` and `t`). The
    /// new peers then `group join` these dealings. The group key stays; old shares do not
    /// combine with new ones, so delete them once the new ones serve.
    Refresh {
        /// This peer's current share file.
        #[arg(long)]
        share: PathBuf,
        /// This peer's age identity file, which opens it.
        #[arg(long)]
        identity: PathBuf,
        #[command(flatten)]
        members: GroupMembers,
        /// Where to write the dealing (created 0700; never overwritten).
        #[arg(long)]
        out_dir: PathBuf,
    },
}
