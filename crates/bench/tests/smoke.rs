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
