//! The worked examples of docs/policy.md (docs/policies/*.toml) pass their own `policy test`
//! files, so the documentation cannot drift from what signward decides; and `policy test` fails
//! when a case does not get its decision (a test that can fail).

mod common;

use std::process::Command;

use common::*;

fn policy_test(policy: &std::path::Path, cases: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(["policy", "test", "--policy"])
        .arg(policy)
        .arg("--cases")
        .arg(cases)
        .output()
        .unwrap()
}

#[test]
fn every_worked_example_passes_its_cases() {
    let dir = repo().join("docs/policies");
    for name in ["market-maker", "treasury-payout", "dex-arbitrage"] {
        let out = policy_test(
            &dir.join(format!("{name}.toml")),
            &dir.join(format!("{name}.cases.toml")),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}:\n{text}");
        assert!(text.contains(" 0 failed"), "{name}:\n{text}");
        // Each example shows both sides: allowed requests and refusals by rule.
        assert!(
            text.contains(": allowed") && text.contains(": refused by "),
            "{text}"
        );
    }
}

#[test]
fn a_case_that_does_not_get_its_decision_fails_the_run() {
    let dir = repo().join("docs/policies");
    let cases = std::fs::read_to_string(dir.join("treasury-payout.cases.toml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (from, to, why) in [
        // A refusal expected by another rule.
        (
            "rule = \"value_too_high\"",
            "rule = \"gas_too_high\"",
            "expected refuse by gas_too_high",
        ),
        // An allowed request expected to be refused.
        (
            "name = \"2 ETH to payroll\"\nexpect = \"allow\"",
            "name = \"2 ETH to payroll\"\nexpect = \"refuse\"",
            "expected refuse, got allowed",
        ),
    ] {
        assert!(cases.contains(from), "{from}");
        let path = tmp.path().join("cases.toml");
        std::fs::write(&path, cases.replacen(from, to, 1)).unwrap();
        let out = policy_test(&dir.join("treasury-payout.toml"), &path);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("FAIL") && text.contains(why), "{text}");
    }
    // A case file that is not what it should be is an error, not a pass.
    let path = tmp.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[case]]\nname = \"x\"\nexpect = \"maybe\"\nrequest_json = '{}'\n",
    )
    .unwrap();
    let out = policy_test(&dir.join("treasury-payout.toml"), &path);
    assert!(!out.status.success());
}
