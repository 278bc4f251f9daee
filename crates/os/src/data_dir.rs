//! Where signward keeps its files: the one place that names them. Every command, the server and
//! `doctor` ask a [`DataDir`] for a path instead of joining a file name of their own.

use std::path::{Path, PathBuf};

/// The server secret (credential MACs and the audit key are derived from it). 0600.
pub const SERVER_KEY: &str = "server.key";
/// Credentials: only their MACs, scopes and grants. 0600.
pub const TOKENS: &str = "tokens.json";
/// The sealed key vault (SQLite; with PostgreSQL, its tables live in that database).
pub const VAULT_DB: &str = "vault.sqlite";
/// Slashing protection (the default SQLite database), with the audit chain in it.
pub const SLASHING_DB: &str = "slashing.sqlite";
/// The EVM spend ledger (the default SQLite database).
pub const EVM_LEDGER: &str = "evm.sqlite";
/// The audit chain when slashing protection is on PostgreSQL.
pub const AUDIT_DB: &str = "audit.sqlite";

/// Every file of a data directory, in the order `doctor` reports them.
pub const FILES: [&str; 6] = [
    SERVER_KEY,
    TOKENS,
    VAULT_DB,
    SLASHING_DB,
    EVM_LEDGER,
    AUDIT_DB,
];

/// A data directory (`--data-path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir(PathBuf);

impl DataDir {
    /// The data directory at `path` (nothing is created until [`DataDir::ensure_private`]).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataDir(path.into())
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Create the directory (and parents) owner-only (0700) if it does not exist.
    pub fn ensure_private(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        if self.0.exists() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.0)
    }

    /// The server secret.
    pub fn server_key(&self) -> PathBuf {
        self.0.join(SERVER_KEY)
    }

    /// The credential file.
    pub fn tokens(&self) -> PathBuf {
        self.0.join(TOKENS)
    }

    /// The vault's SQLite database.
    pub fn vault_db(&self) -> PathBuf {
        self.0.join(VAULT_DB)
    }

    /// The default slashing protection database.
    pub fn slashing_db(&self) -> PathBuf {
        self.0.join(SLASHING_DB)
    }

    /// The default EVM spend ledger.
    pub fn evm_ledger(&self) -> PathBuf {
        self.0.join(EVM_LEDGER)
    }

    /// The audit chain's own file (used when slashing protection is on PostgreSQL).
    pub fn audit_db(&self) -> PathBuf {
        self.0.join(AUDIT_DB)
    }

    /// `sqlite:<path>` for a file of this directory.
    pub fn sqlite_url(path: &Path) -> String {
        format!("sqlite:{}", path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_file_once() {
        let d = DataDir::new("/x");
        let paths = [
            d.server_key(),
            d.tokens(),
            d.vault_db(),
            d.slashing_db(),
            d.evm_ledger(),
            d.audit_db(),
        ];
        for (p, name) in paths.iter().zip(FILES) {
            assert_eq!(p, &Path::new("/x").join(name));
        }
        let mut unique = FILES.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), FILES.len());
    }

    #[test]
    fn created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = std::env::temp_dir().join(format!("signward-dd-{}", std::process::id()));
        let d = DataDir::new(tmp.join("a/b"));
        d.ensure_private().unwrap();
        let mode = std::fs::metadata(d.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
