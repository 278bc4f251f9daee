//! Tamper evidence: every kind of tampering is reported, and a failing store fails the append.

use rusqlite::Connection;
use signward_audit::{append_now, query, verify, AuditKey, AuditLog, Filter, Record, Verdict};

fn key() -> AuditKey {
    AuditKey::derive(&[9u8; 32])
}

fn rec(i: u64) -> Record {
    Record {
        event: "sign".into(),
        caller: Some(if i.is_multiple_of(2) { "even" } else { "odd" }.into()),
        key: Some(format!("0x{i:02x}")),
        operation: Some("ATTESTATION".into()),
        target_epoch: Some(i),
        decision: if i.is_multiple_of(3) {
            "refused"
        } else {
            "signed"
        }
        .into(),
        ..Default::default()
    }
}

async fn filled(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), key()).unwrap();
    let mut tasks = Vec::new();
    let log = std::sync::Arc::new(log);
    for i in 1..=n {
        let log = log.clone();
        tasks.push(tokio::spawn(
            async move { log.append(rec(i)).await.unwrap() },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    dir
}

fn db(dir: &tempfile::TempDir) -> Connection {
    Connection::open(dir.path().join("audit.sqlite")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intact_log_verifies_and_queries() {
    let dir = filled(50).await;
    assert_eq!(
        verify(dir.path(), &key()).unwrap(),
        Verdict::Intact { records: 50 }
    );
    // Another key does not verify it.
    assert!(matches!(
        verify(dir.path(), &AuditKey::derive(&[8u8; 32])).unwrap(),
        Verdict::Altered { seq: 1 }
    ));
    // Appends from a command continue the chain.
    append_now(
        dir.path(),
        &key(),
        Record {
            event: "token".into(),
            decision: "created".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        verify(dir.path(), &key()).unwrap(),
        Verdict::Intact { records: 51 }
    );
    let refused = query(
        dir.path(),
        &Filter {
            decision: Some("refused".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(refused.len(), 16);
    let odd = query(
        dir.path(),
        &Filter {
            caller: Some("odd".into()),
            limit: 5,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(odd.len(), 5);
    assert!(odd.iter().all(|(_, r)| r.caller.as_deref() == Some("odd")));
    let one = query(
        dir.path(),
        &Filter {
            key: Some("0x07".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(one.len(), 1);
    assert!(query(
        dir.path(),
        &Filter {
            since_ms: Some(u64::MAX / 2),
            ..Default::default()
        }
    )
    .unwrap()
    .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_record_is_detected() {
    let dir = filled(20).await;
    db(&dir)
        .execute(
            // Appends are concurrent, so which record lands at seq 9 varies: edit a field every
            // record has.
            "UPDATE records SET body = replace(body, '\"sign\"', '\"SIGN\"') WHERE seq = 9",
            [],
        )
        .unwrap();
    assert_eq!(
        verify(dir.path(), &key()).unwrap(),
        Verdict::Altered { seq: 9 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_record_is_detected() {
    let dir = filled(20).await;
    db(&dir)
        .execute("DELETE FROM records WHERE seq = 7", [])
        .unwrap();
    assert_eq!(
        verify(dir.path(), &key()).unwrap(),
        Verdict::Missing { seq: 7 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_records_are_detected() {
    let dir = filled(20).await;
    let c = db(&dir);
    c.execute_batch(
        "UPDATE records SET seq = -1 WHERE seq = 4;
         UPDATE records SET seq = 4 WHERE seq = 5;
         UPDATE records SET seq = 5 WHERE seq = -1;",
    )
    .unwrap();
    assert_eq!(
        verify(dir.path(), &key()).unwrap(),
        Verdict::Altered { seq: 4 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_is_detected_even_with_a_rewritten_head() {
    let dir = filled(20).await;
    let c = db(&dir);
    c.execute("DELETE FROM records WHERE seq > 17", []).unwrap();
    assert_eq!(
        verify(dir.path(), &key()).unwrap(),
        Verdict::Truncated {
            head_seq: 20,
            last_seq: 17
        }
    );
    // Pointing the head at the new last record does not help without the key.
    c.execute(
        "UPDATE head SET seq = 17, mac = (SELECT mac FROM records WHERE seq = 17)",
        [],
    )
    .unwrap();
    assert_eq!(
        verify(dir.path(), &key()).unwrap(),
        Verdict::Truncated {
            head_seq: 17,
            last_seq: 17
        }
    );
    // Nor does deleting the head.
    c.execute("DELETE FROM head", []).unwrap();
    assert!(matches!(
        verify(dir.path(), &key()).unwrap(),
        Verdict::Truncated { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_fails_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), key()).unwrap();
    log.append(rec(1)).await.unwrap();
    db(&dir)
        .execute_batch("CREATE TRIGGER full BEFORE INSERT ON records BEGIN SELECT RAISE(ABORT, 'disk full'); END;")
        .unwrap();
    assert!(log.append(rec(2)).await.is_err());
    db(&dir).execute_batch("DROP TRIGGER full").unwrap();
    log.append(rec(3)).await.unwrap();
    assert_eq!(
        verify(dir.path(), &key()).unwrap(),
        Verdict::Intact { records: 2 }
    );
}

#[test]
fn audit_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    append_now(dir.path(), &key(), rec(1)).unwrap();
    let mode = std::fs::metadata(dir.path().join("audit.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_from_requests_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), key()).unwrap();
    log.append(Record {
        event: "access".into(),
        operation: Some(format!("GET /{}", "a".repeat(60_000))),
        key: Some("k\n\u{1b}[31m".into()),
        decision: "denied".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let got = query(dir.path(), &Filter::default()).unwrap();
    let r = &got[0].1;
    let op = r.operation.as_deref().unwrap();
    assert!(
        op.chars().count() <= signward_audit::MAX_FIELD_CHARS + 1,
        "{}",
        op.len()
    );
    assert_eq!(r.key.as_deref(), Some("k??[31m"));
    assert_eq!(
        verify(dir.path(), &key()).unwrap(),
        Verdict::Intact { records: 1 }
    );
}
