//! Test backends: a fresh SQLite file, or a fresh PostgreSQL database per test.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use signward_slashing::postgres::PgStore;
use signward_slashing::sqlite::SqliteStore;

pub fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/slashing-interchange")
}

/// The PostgreSQL server tests use (scripts/test.sh makes sure it runs). Required when
/// SIGNWARD_REQUIRE_PG or CI is set; otherwise PostgreSQL tests are skipped with a notice.
pub fn pg_admin_url() -> Option<String> {
    match std::env::var("SIGNWARD_TEST_PG_URL") {
        Ok(u) => Some(u),
        Err(_)
            if std::env::var_os("SIGNWARD_REQUIRE_PG").is_some()
                || std::env::var_os("CI").is_some() =>
        {
            panic!("SIGNWARD_TEST_PG_URL is not set: run scripts/test.sh")
        }
        Err(_) => {
            eprintln!("note: PostgreSQL tests skipped; run scripts/test.sh to include them");
            None
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A database created for one test and dropped by [`TestDb::drop_db`].
pub struct TestDb {
    pub url: String,
    admin: String,
    name: String,
}

impl TestDb {
    pub async fn create(admin: &str) -> TestDb {
        let name = format!(
            "signward_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("admin URL needs a database path"),
        };
        TestDb {
            url,
            admin: admin.to_string(),
            name,
        }
    }

    /// Drop the scratch database: cleanup, bounded (30 s) so that it can never hold a test.
    pub async fn drop_db(self) {
        let drop = async {
            let (client, conn) = tokio_postgres::connect(&self.admin, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        };
        if tokio::time::timeout(std::time::Duration::from_secs(30), drop)
            .await
            .is_err()
        {
            eprintln!(
                "dropping the scratch database {} took over 30 s; left behind",
                self.name
            );
        }
    }
}

pub async fn pg_store(db: &TestDb) -> PgStore {
    PgStore::connect(&db.url).await.unwrap()
}

pub fn sqlite_store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join(format!(
        "s{}.sqlite",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )))
    .unwrap()
}

/// Every answer the EIP-3076 rules give (besides the refusals a test adds with `extra`) was
/// reached: a comparison that never met one would prove nothing about it.
pub fn assert_every_answer_reached<S>(seen: &std::collections::HashSet<S>, extra: &[&str])
where
    S: std::borrow::Borrow<str> + std::hash::Hash + Eq + std::fmt::Debug,
{
    let rules = [
        "allowed",
        "repeat",
        "double_proposal",
        "double_vote",
        "surround_vote",
        "below_watermark",
        "source_after_target",
    ];
    for want in rules.iter().chain(extra) {
        assert!(
            seen.contains(*want),
            "nothing was answered {want}: {seen:?}"
        );
    }
}
