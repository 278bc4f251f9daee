//! `signward audit verify|query`.

use signward_os::DataDir;
use std::path::Path;

use anyhow::bail;
use signward_audit::{AuditKey, Filter, Tables, Verdict, OWN_FILE, WITH_SLASHING};

use crate::cli::AuditCommand;

/// The audit chain key, from the server secret in `data_dir`.
pub fn key(data_dir: &Path) -> anyhow::Result<AuditKey> {
    Ok(signward_engine::stores::audit_key(&DataDir::new(data_dir))?)
}

/// The audit chains kept in `data_dir`: in the SQLite slashing database (the default, committed
/// with the checks) and/or in `audit.sqlite` (used with a PostgreSQL slashing database).
fn logs(data_dir: &Path) -> anyhow::Result<Vec<(String, rusqlite::Connection, Tables)>> {
    let mut out = Vec::new();
    let shared = DataDir::new(data_dir).slashing_db();
    if shared.exists() {
        let c = signward_audit::open_existing(&shared)?;
        if signward_audit::has_tables(&c, WITH_SLASHING)? {
            out.push((shared.display().to_string(), c, WITH_SLASHING));
        }
    }
    let own = DataDir::new(data_dir).audit_db();
    if own.exists() {
        let c = signward_audit::open_existing(&own)?;
        if signward_audit::has_tables(&c, OWN_FILE)? {
            out.push((own.display().to_string(), c, OWN_FILE));
        }
    }
    Ok(out)
}

/// Verify every audit chain in `data_dir`: per log, `Ok(records)` or `Err(what is wrong)`.
pub fn verify_all(data_dir: &Path) -> anyhow::Result<Vec<(String, Result<u64, String>)>> {
    let key = key(data_dir)?;
    let mut out = Vec::new();
    for (name, c, t) in &logs(data_dir)? {
        let v = match signward_audit::verify_in(c, &key, *t)? {
            Verdict::Intact { records } => Ok(records),
            Verdict::Altered { seq } => Err(format!(
                "record {seq} was altered or records were reordered"
            )),
            Verdict::Missing { seq } => Err(format!("record {seq} is missing")),
            Verdict::Truncated { head_seq, last_seq } => Err(format!(
                "ends at record {last_seq} but the head says {head_seq}"
            )),
        };
        out.push((name.clone(), v));
    }
    Ok(out)
}

/// Append an event from a command to the chain the server writes to.
pub fn append_event(data_dir: &Path, record: signward_audit::Record) -> anyhow::Result<()> {
    let key = key(data_dir)?;
    let shared = DataDir::new(data_dir).slashing_db();
    let in_slashing = shared.exists()
        && signward_audit::has_tables(&signward_audit::open_existing(&shared)?, WITH_SLASHING)?;
    if in_slashing {
        signward_audit::append_now_in(&shared, &key, WITH_SLASHING, record)?;
    } else {
        signward_audit::append_now(data_dir, &key, record)?;
    }
    Ok(())
}

pub fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { data_dir } => {
            let key = key(&data_dir)?;
            let logs = logs(&data_dir)?;
            if logs.is_empty() {
                println!("no audit log in {}", data_dir.display());
                return Ok(());
            }
            let mut tampered = false;
            for (name, c, t) in &logs {
                match signward_audit::verify_in(c, &key, *t)? {
                    Verdict::Intact { records } => {
                        println!("{name}: audit log intact: {records} records")
                    }
                    Verdict::Altered { seq } => {
                        tampered = true;
                        eprintln!("{name}: audit log TAMPERED: record {seq} was altered or records were reordered");
                    }
                    Verdict::Missing { seq } => {
                        tampered = true;
                        eprintln!("{name}: audit log TAMPERED: record {seq} is missing");
                    }
                    Verdict::Truncated { head_seq, last_seq } => {
                        tampered = true;
                        eprintln!("{name}: audit log TAMPERED: it ends at record {last_seq} but the head says {head_seq} (records cut off, or the head was edited)");
                    }
                }
            }
            if tampered {
                bail!("audit log TAMPERED");
            }
            Ok(())
        }
        AuditCommand::Query {
            key,
            caller,
            decision,
            since,
            until,
            limit,
            data_dir,
        } => {
            let f = Filter {
                key,
                caller,
                decision,
                since_ms: since.map(|s| s * 1000),
                until_ms: until.map(|u| u * 1000),
                limit,
            };
            for (name, c, t) in logs(&data_dir)? {
                for (seq, r) in signward_audit::query_in(&c, t, &f)? {
                    let mut v = serde_json::to_value(&r)?;
                    v["seq"] = seq.into();
                    v["log"] = name.clone().into();
                    println!("{v}");
                }
            }
            Ok(())
        }
    }
}
