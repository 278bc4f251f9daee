//! The audit chain kept in the SQLite slashing database: each check's record is written in the
//! check's own transaction, so one commit (one fsync) covers the decision and its record, and a
//! decision whose record cannot be written is rolled back. Slashing protection carries the
//! records without knowing what they are ([`signward_slashing::sqlite::TxJournal`]); this module
//! is where a slashing decision becomes an audit record.

use signward_audit::{AuditKey, Outcome, Record, WITH_SLASHING};
use signward_slashing::sqlite::{JournalEntry, TxJournal};
use signward_slashing::Decision;

/// The one mapping from a slashing decision to the audit vocabulary.
pub fn stamp(record: &mut Record, decision: Decision) {
    match decision {
        Decision::Allowed | Decision::Repeat => record.decision = Outcome::Signed.into(),
        Decision::Refused(r) => {
            record.decision = Outcome::Refused.into();
            record.reason = Some(r.code().into());
        }
    }
}

/// The audit chain as a journal of the slashing database (tables `audit_records`/`audit_head`).
pub struct AuditInSlashingDb {
    key: AuditKey,
}

impl AuditInSlashingDb {
    /// A journal that chains records under `key`.
    pub fn new(key: AuditKey) -> Self {
        AuditInSlashingDb { key }
    }

    /// Boxed, as `SlashingDb::open_with_journal` takes it.
    pub fn boxed(key: AuditKey) -> Box<dyn TxJournal> {
        Box::new(Self::new(key))
    }
}

impl TxJournal for AuditInSlashingDb {
    fn create(&self, conn: &rusqlite::Connection) -> Result<(), String> {
        signward_audit::create_tables(conn, WITH_SLASHING).map_err(|e| e.to_string())
    }

    fn write(
        &mut self,
        conn: &rusqlite::Connection,
        entries: Vec<(JournalEntry, Option<Decision>)>,
    ) -> Result<(), String> {
        let mut records = Vec::with_capacity(entries.len());
        for (entry, decision) in entries {
            let mut record = *entry
                .downcast::<Record>()
                .map_err(|_| "a journal entry that is not an audit record".to_string())?;
            if let Some(d) = decision {
                stamp(&mut record, d);
            }
            records.push(record);
        }
        signward_audit::append_batch(conn, &self.key, WITH_SLASHING, &mut records)
            .map_err(|e| e.to_string())
    }
}
