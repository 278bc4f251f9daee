//! Where the engine's stores live and how they are opened: the one place that turns the
//! operator's settings and a data directory into database URLs and open stores.

use signward_audit::AuditKey;
use signward_auth::secret::ServerSecret;
use signward_os::DataDir;
use signward_slashing::SlashingDb;

use crate::audit_journal::AuditInSlashingDb;
use crate::EngineError;

/// The slashing database URL: `spec` (a URL, or `env:VAR` to read it from the environment, for a
/// URL that holds a password), else SQLite in the data directory.
pub fn slashing_url(spec: Option<&str>, data_dir: &DataDir) -> Result<String, EngineError> {
    match spec {
        Some(v) => match v.strip_prefix("env:") {
            Some(var) => std::env::var(var).map_err(|_| EngineError::MissingEnv {
                var: var.to_string(),
                setting: "--slashing-protection-db-url",
            }),
            None => {
                if has_inline_password(v) {
                    tracing::warn!("the slashing database URL on the command line contains a password; use env:VAR instead");
                }
                Ok(v.to_string())
            }
        },
        None => Ok(DataDir::sqlite_url(&data_dir.slashing_db())),
    }
}

/// True when a PostgreSQL URL carries a password (`postgres://user:pw@host`).
pub fn has_inline_password(url: &str) -> bool {
    url.starts_with("postgres")
        && url.contains('@')
        && url
            .split('@')
            .next()
            .is_some_and(|u| u.matches(':').count() > 1)
}

/// The audit chain's key, derived from the server secret in the data directory (created, with
/// the directory, when absent).
pub fn audit_key(data_dir: &DataDir) -> Result<AuditKey, EngineError> {
    ensure_private(data_dir)?;
    let secret = ServerSecret::load_or_create(&data_dir.server_key())?;
    Ok(AuditKey::derive(secret.dangerous_bytes()))
}

/// Create the data directory owner-only if it does not exist.
pub fn ensure_private(data_dir: &DataDir) -> Result<(), EngineError> {
    data_dir
        .ensure_private()
        .map_err(|source| EngineError::DataDir {
            path: data_dir.path().display().to_string(),
            source,
        })
}

/// The vault database: the slashing database when that is PostgreSQL, else `vault.sqlite` in
/// the data directory (created owner-only).
pub fn vault_url(slashing_url: &str, data_dir: &DataDir) -> Result<String, EngineError> {
    if slashing_url.starts_with("postgres") {
        return Ok(slashing_url.to_string());
    }
    ensure_private(data_dir)?;
    Ok(DataDir::sqlite_url(&data_dir.vault_db()))
}

/// The EVM ledger (spend windows and nonces): the vault's PostgreSQL database when it has one,
/// else the data directory's SQLite file for it (`DataDir::evm_ledger`).
pub fn ledger_url(vault_url: &str, data_dir: &DataDir) -> String {
    if vault_url.starts_with("postgres") {
        vault_url.to_string()
    } else {
        DataDir::sqlite_url(&data_dir.evm_ledger())
    }
}

/// Open the slashing protection database at `url`. With `audited`, a SQLite database also
/// carries the audit chain (committed with the checks; keyed from the server secret).
pub async fn open_slashing(
    url: &str,
    data_dir: &DataDir,
    audited: bool,
) -> Result<SlashingDb, EngineError> {
    if !url.starts_with("sqlite:") {
        return Ok(SlashingDb::open(url).await?);
    }
    ensure_private(data_dir)?;
    if audited {
        let journal = AuditInSlashingDb::boxed(audit_key(data_dir)?);
        return Ok(SlashingDb::open_with_journal(url, Some(journal)).await?);
    }
    Ok(SlashingDb::open(url).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let d = DataDir::new("/data");
        assert_eq!(
            slashing_url(None, &d).unwrap(),
            "sqlite:/data/slashing.sqlite"
        );
        assert_eq!(
            slashing_url(Some("postgres://h/db"), &d).unwrap(),
            "postgres://h/db"
        );
        assert!(matches!(
            slashing_url(Some("env:SIGNWARD_SURELY_UNSET_VAR"), &d),
            Err(EngineError::MissingEnv { .. })
        ));
        assert!(has_inline_password("postgres://u:pw@h/db"));
        assert!(!has_inline_password("postgres://u@h/db"));
        assert!(!has_inline_password("postgres://h:5432/db"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_audited_sqlite_database_carries_the_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let d = DataDir::new(tmp.path().join("data"));
        let url = slashing_url(None, &d).unwrap();
        let db = open_slashing(&url, &d, true).await.unwrap();
        assert!(db.journal_store().is_some());
        drop(db);
        let plain = open_slashing(&url, &d, false).await.unwrap();
        assert!(plain.journal_store().is_none());
    }
}
