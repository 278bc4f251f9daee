//! The EVM figure runs end to end and every request in it is signed (not a measurement: the
//! figures are taken from release builds, see docs/benchmarks.md). It once stopped at its own
//! sanity check when the endpoint's result shape changed, unnoticed until a benchmark run.

use std::process::Command;

fn evm(extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_signward-bench"))
        .args(["evm", "--duration-secs", "1", "--concurrency", "2"])
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_evm_figure_signs_every_request_with_and_without_a_window() {
    for extra in [&[][..], &["--without-spend-window"][..]] {
        let text = evm(extra);
        let line = text
            .lines()
            .find(|l| l.starts_with("requests:"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.ends_with("errors: 0"), "{line}");
        assert!(!line.starts_with("requests: 0 "), "{line}");
    }
}

/// `compare` starts the reference, signward and the load generator as separate processes and
/// fails if any request is not signed; every figure it prints must appear. PostgreSQL's figures
/// run when the test database is configured.
#[test]
fn the_comparison_runs_every_figure_and_signs_every_request() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signward-bench"));
    cmd.args([
        "compare",
        "--keys",
        "64",
        "--rounds",
        "1",
        "--duration-secs",
        "1",
        "--concurrency",
        "4",
        "--rate",
        "50",
        "--burst",
        "16",
        "--slots",
        "2",
    ]);
    let pg = std::env::var("SIGNWARD_TEST_PG_URL").ok();
    if let Some(url) = &pg {
        cmd.args(["--pg-url", url]);
    } else {
        assert!(
            std::env::var_os("SIGNWARD_REQUIRE_PG").is_none(),
            "SIGNWARD_REQUIRE_PG is set but SIGNWARD_TEST_PG_URL is not"
        );
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = vec![
        "| throughput (signward / reference) |",
        "| server CPU per signature (reference / signward) |",
        "| p99 at a steady rate (signward / reference) |",
        "| slot burst on SQLite (signward / reference) |",
    ];
    if pg.is_some() {
        rows.push("| slot burst on PostgreSQL (signward / reference) |");
        rows.push("| two instances on PostgreSQL (signward / reference) |");
    }
    for row in rows {
        assert!(text.contains(row), "missing {row}:\n{text}");
    }
}
