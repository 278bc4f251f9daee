//! `signward audit verify|query`.

use std::path::Path;

use anyhow::bail;
use signward_audit::{AuditKey, Filter, Verdict};
use signward_auth::secret::ServerSecret;

use crate::cli::AuditCommand;

/// The audit chain key, from the server secret in `data_dir`.
pub fn key(data_dir: &Path) -> anyhow::Result<AuditKey> {
    super::ensure_private_dir(data_dir)?;
    let secret = ServerSecret::load_or_create(&data_dir.join("server.key"))?;
    Ok(AuditKey::derive(secret.bytes()))
}

pub fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { data_dir } => match signward_audit::verify(&data_dir, &key(&data_dir)?)? {
            Verdict::Intact { records } => {
                println!("audit log intact: {records} records");
                Ok(())
            }
            Verdict::Altered { seq } => bail!("audit log TAMPERED: record {seq} was altered or records were reordered"),
            Verdict::Missing { seq } => bail!("audit log TAMPERED: record {seq} is missing"),
            Verdict::Truncated { head_seq, last_seq } => bail!(
                "audit log TAMPERED: it ends at record {last_seq} but the head says {head_seq} (records cut off, or the head was edited)"
            ),
        },
        AuditCommand::Query { key, caller, decision, since, until, limit, data_dir } => {
            let f = Filter {
                key,
                caller,
                decision,
                since_ms: since.map(|s| s * 1000),
                until_ms: until.map(|u| u * 1000),
                limit,
            };
            for (seq, r) in signward_audit::query(&data_dir, &f)? {
                let mut v = serde_json::to_value(&r)?;
                v["seq"] = seq.into();
                println!("{v}");
            }
            Ok(())
        }
    }
}
