//! The storage trait both backends implement, and [`SlashingDb`], the handle the server holds.

use std::future::Future;
use std::io::{Read, Write};

use signward_core::bytes::Root;

use crate::decision::{Check, Decision, Refusal};
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::SlashingError;
use signward_core::bytes::PublicKeyBytes;

/// The newest SQLite schema this build understands (PostgreSQL's is
/// [`crate::postgres::PG_SCHEMA_VERSION`]). Older schemas are migrated on open; newer ones are
/// refused.
pub const SCHEMA_VERSION: i64 = 2;

/// Outcome of an interchange import.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Validators in the file.
    pub validators: u64,
    /// Blocks newly recorded.
    pub blocks: u64,
    /// Attestations newly recorded.
    pub attestations: u64,
    /// Identical records already present.
    pub duplicates: u64,
    /// Records that conflict with stored ones at the same slot/target. The stored record is kept
    /// and its signing root cleared, so nothing more is signed at that slot/target.
    pub conflicts: u64,
    /// Records below a floor (an earlier import's or this file's own lowest record) that a
    /// watermark now covers instead.
    pub below_floor: u64,
}

impl ImportReport {
    pub(crate) fn add(&mut self, m: &crate::history::MergeReport) {
        self.blocks += m.blocks_added;
        self.attestations += m.attestations_added;
        self.duplicates += m.duplicates;
        self.conflicts += m.conflicts;
        self.below_floor += m.below_floor;
    }

    /// Add what one committed import batch did.
    pub(crate) fn absorb(&mut self, batch: &ImportReport) {
        self.validators += batch.validators;
        self.blocks += batch.blocks;
        self.attestations += batch.attestations;
        self.duplicates += batch.duplicates;
        self.conflicts += batch.conflicts;
        self.below_floor += batch.below_floor;
    }
}

/// Outcome of an export.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Validators written.
    pub validators: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Attestations written.
    pub attestations: u64,
}

/// Outcome of pruning.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Block records deleted.
    pub blocks_deleted: u64,
    /// Attestation records deleted.
    pub attestations_deleted: u64,
}

/// A slashing protection database.
///
/// `check_and_record` is the only way to obtain permission to sign a slashable message: it
/// checks the EIP-3076 rules and, when the message is allowed, records it and commits durably
/// before it returns.
pub trait SlashingStore: Send + Sync {
    /// Check `check` against EIP-3076 and, when allowed, record it and commit durably before returning.
    fn check_and_record(
        &self,
        check: Check,
    ) -> impl Future<Output = Result<Decision, SlashingError>> + Send;

    /// The pinned genesis validators root, if any.
    fn genesis_validators_root(
        &self,
    ) -> impl Future<Output = Result<Option<Root>, SlashingError>> + Send;

    /// Pin the database to `gvr` if it is not pinned yet; fail if it is pinned to another root.
    fn pin_genesis_validators_root(
        &self,
        gvr: Root,
    ) -> impl Future<Output = Result<(), SlashingError>> + Send;

    /// Import an EIP-3076 interchange document (streamed).
    fn import<R: Read + Send + 'static>(
        &self,
        reader: R,
    ) -> impl Future<Output = Result<ImportReport, SlashingError>> + Send;

    /// Export everything as an EIP-3076 document (complete, or minimal: one block and one
    /// attestation per validator at the watermarks).
    fn export<W: Write + Send + 'static>(
        &self,
        writer: W,
        minimal: bool,
    ) -> impl Future<Output = Result<ExportReport, SlashingError>> + Send;

    /// Export these validators only, as a complete EIP-3076 document.
    fn export_validators<W: Write + Send + 'static>(
        &self,
        writer: W,
        pubkeys: Vec<PublicKeyBytes>,
    ) -> impl Future<Output = Result<ExportReport, SlashingError>> + Send;

    /// Refuse (`enabled = false`) or allow again every message of these validators, durably,
    /// across every instance sharing the database. A check that commits after this has committed
    /// sees it: a disabled validator's history cannot grow, so an export taken afterwards covers
    /// every signature ever released. With `only_known`, validators the database has never seen
    /// are left alone; otherwise they are recorded (as disabled or enabled).
    fn set_enabled(
        &self,
        pubkeys: Vec<PublicKeyBytes>,
        enabled: bool,
        only_known: bool,
    ) -> impl Future<Output = Result<(), SlashingError>> + Send;

    /// For a message that is not slashable (and so is not recorded): may this validator sign
    /// for the chain `gvr`? `Some(refusal)` when the validator is disabled, or when the database
    /// is pinned to another chain.
    fn may_sign(
        &self,
        pubkey: PublicKeyBytes,
        gvr: Option<Root>,
    ) -> impl Future<Output = Result<Option<Refusal>, SlashingError>> + Send;

    /// The validators that are disabled.
    fn disabled(&self) -> impl Future<Output = Result<Vec<PublicKeyBytes>, SlashingError>> + Send;

    /// Delete history older than `keep_epochs` epochs behind each validator's newest record,
    /// raising the validator's low watermarks first so that protection never weakens.
    fn prune(
        &self,
        keep_epochs: u64,
        slots_per_epoch: u64,
    ) -> impl Future<Output = Result<PruneReport, SlashingError>> + Send;
}

/// The database the server uses, chosen by URL.
pub enum SlashingDb {
    /// SQLite with its group-commit writer.
    Sqlite(SqliteStore),
    /// PostgreSQL, shared by every instance.
    Postgres(PgStore),
}

impl SlashingDb {
    /// Open `sqlite:PATH` or `postgres://...` (also `postgresql://`), migrating the schema.
    pub async fn open(url: &str) -> Result<Self, SlashingError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(SlashingError::BadUrl);
            }
            let path = std::path::PathBuf::from(path);
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|_| SlashingError::WriterGone)??;
            Ok(SlashingDb::Sqlite(store))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(SlashingDb::Postgres(PgStore::connect(url).await?))
        } else {
            Err(SlashingError::BadUrl)
        }
    }

    /// Open as [`Self::open`]; for SQLite with `journal`, the journal (the audit chain) is kept
    /// in the same database and committed with the checks (PostgreSQL ignores it: the caller
    /// keeps its journal elsewhere).
    pub async fn open_with_journal(
        url: &str,
        journal: Option<Box<dyn crate::sqlite::TxJournal>>,
    ) -> Result<Self, SlashingError> {
        match (url.strip_prefix("sqlite:"), journal) {
            (Some(path), Some(journal)) => {
                let path = path.strip_prefix("//").unwrap_or(path);
                if path.is_empty() {
                    return Err(SlashingError::BadUrl);
                }
                let path = std::path::PathBuf::from(path);
                let store = tokio::task::spawn_blocking(move || {
                    SqliteStore::open_with_journal(&path, Some(journal))
                })
                .await
                .map_err(|_| SlashingError::WriterGone)??;
                Ok(SlashingDb::Sqlite(store))
            }
            _ => Self::open(url).await,
        }
    }

    /// The SQLite store when it carries a journal.
    pub fn journal_store(&self) -> Option<&SqliteStore> {
        match self {
            SlashingDb::Sqlite(s) if s.journals() => Some(s),
            _ => None,
        }
    }

    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            SlashingDb::Sqlite(_) => "sqlite",
            SlashingDb::Postgres(_) => "postgres",
        }
    }
}

impl SlashingStore for SlashingDb {
    async fn check_and_record(&self, check: Check) -> Result<Decision, SlashingError> {
        match self {
            SlashingDb::Sqlite(s) => s.check_and_record(check).await,
            SlashingDb::Postgres(s) => s.check_and_record(check).await,
        }
    }

    async fn genesis_validators_root(&self) -> Result<Option<Root>, SlashingError> {
        match self {
            SlashingDb::Sqlite(s) => s.genesis_validators_root().await,
            SlashingDb::Postgres(s) => s.genesis_validators_root().await,
        }
    }

    async fn pin_genesis_validators_root(&self, gvr: Root) -> Result<(), SlashingError> {
        match self {
            SlashingDb::Sqlite(s) => s.pin_genesis_validators_root(gvr).await,
            SlashingDb::Postgres(s) => s.pin_genesis_validators_root(gvr).await,
        }
    }

    async fn import<R: Read + Send + 'static>(
        &self,
        reader: R,
    ) -> Result<ImportReport, SlashingError> {
        match self {
            SlashingDb::Sqlite(s) => s.import(reader).await,
            SlashingDb::Postgres(s) => s.import(reader).await,
        }
    }

    async fn export<W: Write + Send + 'static>(
        &self,
        writer: W,
        minimal: bool,
    ) -> Result<ExportReport, SlashingError> {
        match self {
            SlashingDb::Sqlite(s) => s.export(writer, minimal).await,
            SlashingDb::Postgres(s) => s.export(writer, minimal).await,
        }
    }

    async fn export_validators<W: Write + Send + 'static>(
        &self,
        writer: W,
        pubkeys: Vec<PublicKeyBytes>,
    ) -> Result<ExportReport, SlashingError> {
        match self {
            SlashingDb::Sqlite(s) => s.export_validators(writer, pubkeys).await,
            SlashingDb::Postgres(s) => s.export_validators(writer, pubkeys).await,
        }
    }

    async fn set_enabled(
        &self,
        pubkeys: Vec<PublicKeyBytes>,
        enabled: bool,
        only_known: bool,
    ) -> Result<(), SlashingError> {
        match self {
            SlashingDb::Sqlite(s) => s.set_enabled(pubkeys, enabled, only_known).await,
            SlashingDb::Postgres(s) => s.set_enabled(pubkeys, enabled, only_known).await,
        }
    }

    async fn may_sign(
        &self,
        pubkey: PublicKeyBytes,
        gvr: Option<Root>,
    ) -> Result<Option<Refusal>, SlashingError> {
        match self {
            SlashingDb::Sqlite(s) => s.may_sign(pubkey, gvr).await,
            SlashingDb::Postgres(s) => s.may_sign(pubkey, gvr).await,
        }
    }

    async fn disabled(&self) -> Result<Vec<PublicKeyBytes>, SlashingError> {
        match self {
            SlashingDb::Sqlite(s) => s.disabled().await,
            SlashingDb::Postgres(s) => s.disabled().await,
        }
    }

    async fn prune(
        &self,
        keep_epochs: u64,
        slots_per_epoch: u64,
    ) -> Result<PruneReport, SlashingError> {
        match self {
            SlashingDb::Sqlite(s) => s.prune(keep_epochs, slots_per_epoch).await,
            SlashingDb::Postgres(s) => s.prune(keep_epochs, slots_per_epoch).await,
        }
    }
}

/// Store a `u64` in a signed 64-bit column. Values above `i64::MAX` (far beyond any real slot or
/// epoch) are refused rather than wrapped.
pub fn to_i64(v: u64) -> Result<i64, SlashingError> {
    i64::try_from(v).map_err(|_| SlashingError::OutOfRange(v))
}

/// Write one validator's stored history: pruned history becomes root-less records at the
/// watermarks `(block slot, attestation source, attestation target)`, and the minimal form keeps
/// only the highest slot and the highest source and target. Counts go into `report`.
pub fn write_history<W: std::io::Write>(
    w: &mut crate::interchange::Writer<W>,
    pubkey: &signward_core::bytes::PublicKeyBytes,
    mut blocks: Vec<crate::interchange::SignedBlock>,
    mut atts: Vec<crate::interchange::SignedAttestation>,
    watermarks: (Option<i64>, Option<i64>, Option<i64>),
    minimal: bool,
    report: &mut ExportReport,
) -> Result<(), SlashingError> {
    use crate::interchange::{SignedAttestation, SignedBlock};
    use signward_core::bytes::Uint64;
    // A watermark is written as a root-less record, unless the lowest stored record already sits
    // on it (every stored record lies at or above the watermarks).
    if let Some(slot) = watermarks
        .0
        .filter(|w| blocks.first().map(|b| b.slot.0 as i64) != Some(*w))
    {
        blocks.insert(
            0,
            SignedBlock {
                slot: Uint64(slot as u64),
                signing_root: None,
            },
        );
    }
    let covered = |s: i64, t: i64| {
        atts.first().map(|a| a.target_epoch.0 as i64) == Some(t)
            && atts.iter().all(|a| a.source_epoch.0 as i64 >= s)
    };
    if let Some((s, t)) = watermarks
        .1
        .zip(watermarks.2)
        .filter(|(s, t)| !covered(*s, *t))
    {
        atts.insert(
            0,
            SignedAttestation {
                source_epoch: Uint64(s as u64),
                target_epoch: Uint64(t as u64),
                signing_root: None,
            },
        );
    }
    if minimal {
        let max_slot = blocks.iter().map(|b| b.slot).max();
        let max_source = atts.iter().map(|a| a.source_epoch).max();
        let max_target = atts.iter().map(|a| a.target_epoch).max();
        blocks = max_slot
            .map(|slot| {
                vec![SignedBlock {
                    slot,
                    signing_root: None,
                }]
            })
            .unwrap_or_default();
        atts = match (max_source, max_target) {
            (Some(source_epoch), Some(target_epoch)) => vec![SignedAttestation {
                source_epoch,
                target_epoch,
                signing_root: None,
            }],
            _ => vec![],
        };
    }
    report.validators += 1;
    report.blocks += blocks.len() as u64;
    report.attestations += atts.len() as u64;
    w.validator(pubkey, &blocks, &atts)
}
