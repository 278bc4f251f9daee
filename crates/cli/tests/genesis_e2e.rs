//! Genesis time through the real binary (issue 12, item 3): mainnet's published config.yaml has
//! no genesis time (MIN_GENESIS_TIME + GENESIS_DELAY is not one), so the chain clock is reported
//! off until `--genesis-time` gives it; genesis.ssz beside config.yaml gives time and root and
//! pins the slashing database; disagreeing sources refuse to start; `/healthcheck` and `doctor`
//! say when the clock is off and why.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

const MAINNET_GENESIS: u64 = 1_606_824_023;
const MAINNET_GVR: &str = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";
const TEST_GVR: &str = "0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn attestation(gvr: &str, fork: Value, source: u64, target: u64, slots_per_epoch: u64) -> Value {
    json!({"type": "ATTESTATION",
           "fork_info": {"fork": fork, "genesis_validators_root": gvr},
           "attestation": {"slot": (target * slots_per_epoch).to_string(), "index": "0",
               "beacon_block_root": format!("0x{}", "01".repeat(32)),
               "source": {"epoch": source.to_string(), "root": format!("0x{}", "00".repeat(32))},
               "target": {"epoch": target.to_string(), "root": format!("0x{}", "00".repeat(32))}}})
}

fn code(r: &Response) -> String {
    r.json()["code"].as_str().unwrap_or_default().to_string()
}

/// The `chain-clock-check` object of `/healthcheck`.
fn clock(server: &Server) -> Value {
    let h = server.request("GET", "/healthcheck", &[], b"").json();
    let s = &h["checks"][1];
    assert_eq!(s["id"], "slashing-protection-check");
    s["data"]["chain-clock-check"].clone()
}

/// mainnet's published config.yaml (tests/vectors/networks/mainnet) alone in a directory.
fn mainnet_config(dir: &Path) -> PathBuf {
    let net = dir.join("net");
    std::fs::create_dir_all(&net).unwrap();
    let p = net.join("config.yaml");
    std::fs::copy(vectors().join("networks/mainnet/config.yaml"), &p).unwrap();
    p
}

/// A genesis.ssz: the fixed prefix of a BeaconState (genesis_time, genesis_validators_root), then
/// filler standing for the rest of the state.
fn genesis_ssz(path: &Path, time: u64, gvr: &str, len: usize) {
    let mut b = time.to_le_bytes().to_vec();
    b.extend_from_slice(&hex::decode(gvr.trim_start_matches("0x")).unwrap());
    b.resize(len, 0xab);
    std::fs::write(path, b).unwrap();
}

/// `signward doctor ARGS`: its output, and the `chain clock` row.
fn doctor_clock(args: &[&str]) -> (String, String) {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let out = sw(&all, &[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("chain clock"))
        .unwrap_or_else(|| panic!("no chain clock row in:\n{text}"))
        .to_string();
    (text, row)
}

#[test]
fn mainnet_published_config_needs_a_genesis_time_and_then_signs_today() {
    let dir = tempfile::tempdir().unwrap();
    let config = mainnet_config(dir.path());
    let (keys, pw, pks) = nimbus_keys(&dir.path().join("k"), 1);
    let config_s = config.to_str().unwrap();
    let data = dir.path().join("doctor-data");
    let data_s = data.to_str().unwrap();

    // Without a genesis time: the clock is OFF, said at start, in /healthcheck and by doctor.
    // (The old code took MIN_GENESIS_TIME + GENESIS_DELAY = 1607428800 as genesis, 1,575 epochs
    // late, and refused today's attestations as too_far_in_future.)
    let off_dir = dir.path().join("off");
    std::fs::create_dir_all(&off_dir).unwrap();
    let server = Server::start(&off_dir, &strs(&keystore_args(&config, &keys, &pw, &[])));
    let c = clock(&server);
    assert_eq!(c["state"], "off", "{c}");
    assert_eq!(c["reason"], "genesis_time_unknown", "{c}");
    assert_eq!(c["genesis-time"], Value::Null, "{c}");
    assert!(
        c["detail"].as_str().unwrap().contains("--genesis-time"),
        "{c}"
    );
    let log = server.log_text();
    assert!(
        log.contains("WARN")
            && log.contains("chain-clock check OFF")
            && log.contains("genesis.ssz"),
        "{log}"
    );
    drop(server);
    let (text, row) = doctor_clock(&["--data-dir", data_s, "--network", config_s]);
    assert!(
        row.contains("WARN") && row.contains("OFF: genesis time of"),
        "{text}"
    );
    assert!(text.contains("fix: pass --genesis-time"), "{text}");

    // With --genesis-time 1606824023 (mainnet's real genesis): today's epoch signs, the window
    // refuses what is far ahead.
    let on_dir = dir.path().join("on");
    std::fs::create_dir_all(&on_dir).unwrap();
    let genesis = MAINNET_GENESIS.to_string();
    let server = Server::start(
        &on_dir,
        &strs(&keystore_args(
            &config,
            &keys,
            &pw,
            &["--genesis-time", &genesis],
        )),
    );
    let c = clock(&server);
    assert_eq!(c["state"], "on", "{c}");
    assert_eq!(c["reason"], Value::Null, "{c}");
    assert_eq!(c["genesis-time"], MAINNET_GENESIS, "{c}");
    assert_eq!(c["genesis-time-source"], "flag", "{c}");
    assert_eq!(c["max-future-epochs"], 2, "{c}");
    let today = (now() - MAINNET_GENESIS) / 384;
    let fork = json!({"previous_version": "0x04000000", "current_version": "0x05000000", "epoch": "364032"});
    let a = attestation(MAINNET_GVR, fork.clone(), today - 1, today, 32);
    let r = server.sign(&pks[0], &a);
    assert_eq!(
        r.status,
        200,
        "today's epoch {today} must sign: {}",
        r.text()
    );
    let far = attestation(MAINNET_GVR, fork, today, today + 1000, 32);
    let r = server.sign(&pks[0], &far);
    assert_eq!((r.status, code(&r)), (412, "too_far_in_future".into()));
    drop(server);
    let (text, row) = doctor_clock(&[
        "--data-dir",
        data_s,
        "--network",
        config_s,
        "--genesis-time",
        &genesis,
    ]);
    assert!(
        row.contains("pass") && row.contains("genesis time 1606824023 from flag"),
        "{text}"
    );

    // The same from the config file (`genesis-time`), as every serve flag maps there.
    let cfg = dir.path().join("signward.toml");
    std::fs::write(
        &cfg,
        format!("network = \"{config_s}\"\ngenesis-time = {MAINNET_GENESIS}\n"),
    )
    .unwrap();
    owner_only(&cfg);
    let (text, row) = doctor_clock(&["--data-dir", data_s, "--config", cfg.to_str().unwrap()]);
    assert!(row.contains("pass") && row.contains("1606824023"), "{text}");

    // A flag that contradicts a built-in network's constant refuses to start.
    let port = free_port().to_string();
    let mut args = vec![
        "serve",
        "--network",
        "mainnet",
        "--genesis-time",
        "1607428800",
    ];
    args.extend(["--http-listen-port", port.as_str()]);
    args.extend(root_flag());
    expect_refusal(&args, &dir.path().join("refused"), "genesis time disagrees");
}

#[test]
fn genesis_ssz_beside_config_yaml_sets_the_clock_and_pins_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    std::fs::create_dir_all(&net).unwrap();
    // The minimal preset: 8 slots of 6 s, an epoch of 48 s. Genesis 1,000 epochs ago.
    let config = minimal_network(&net);
    let genesis = now() - 48 * 1000;
    genesis_ssz(&net.join("genesis.ssz"), genesis, TEST_GVR, 4096);
    let (keys, pw, pks) = nimbus_keys(&dir.path().join("k"), 1);
    let args = keystore_args(&config, &keys, &pw, &[]);
    let server = Server::start(dir.path(), &strs(&args));
    let c = clock(&server);
    assert_eq!(c["state"], "on", "{c}");
    assert_eq!(c["genesis-time"], genesis, "{c}");
    assert_eq!(c["genesis-time-source"], "genesis.ssz", "{c}");
    let h = server.request("GET", "/healthcheck", &[], b"").json();
    assert_eq!(
        h["checks"][1]["data"]["genesis-validators-root"], TEST_GVR,
        "pinned: {h}"
    );
    let fork =
        json!({"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"});
    let today = (now() - genesis) / 48;
    let r = server.sign(
        &pks[0],
        &attestation(TEST_GVR, fork.clone(), today - 1, today, 8),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = server.sign(&pks[0], &attestation(TEST_GVR, fork, today, today + 100, 8));
    assert_eq!((r.status, code(&r)), (412, "too_far_in_future".into()));
    drop(server);

    let data = dir.path().join("data");
    let port = free_port().to_string();
    let serve = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "serve".to_string(),
            "--http-listen-port".into(),
            port.clone(),
        ];
        v.extend(root_flag().map(String::from));
        v.extend(keystore_args(&config, &keys, &pw, extra));
        v
    };
    // A flag that disagrees with genesis.ssz.
    let wrong = (genesis + 1).to_string();
    expect_refusal(
        &strs(&serve(&["--genesis-time", &wrong])),
        &data,
        "genesis time disagrees: flag says",
    );
    // A beacon genesis.json that disagrees with genesis.ssz (bare `data` object).
    let json_path = net.join("genesis.json");
    std::fs::write(
        &json_path,
        json!({"genesis_time": (genesis + 12).to_string(), "genesis_validators_root": TEST_GVR,
               "genesis_fork_version": "0x00000001"})
        .to_string(),
    )
    .unwrap();
    expect_refusal(&strs(&serve(&[])), &data, "genesis.ssz says");
    let (text, row) = doctor_clock(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--network",
        config.to_str().unwrap(),
    ]);
    assert!(
        row.contains("FAIL") && row.contains("genesis time disagrees"),
        "{text}"
    );
    // An agreeing one, in the API response shape, is accepted (checked in the run below).
    std::fs::write(
        &json_path,
        json!({"data": {"genesis_time": genesis.to_string(), "genesis_validators_root": TEST_GVR,
               "genesis_fork_version": "0x00000001"}})
        .to_string(),
    )
    .unwrap();
    let (text, row) = doctor_clock(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--network",
        config.to_str().unwrap(),
    ]);
    assert!(
        row.contains("pass") && row.contains("from genesis.ssz"),
        "{text}"
    );
    // A genesis.ssz for another chain cannot open this (pinned) slashing database.
    let other = format!("0x{}", "22".repeat(32));
    std::fs::remove_file(&json_path).unwrap();
    genesis_ssz(&net.join("genesis.ssz"), genesis, &other, 40);
    expect_refusal(&strs(&serve(&[])), &data, "another network");
    // A genesis.ssz shorter than its fixed prefix.
    genesis_ssz(&net.join("genesis.ssz"), genesis, TEST_GVR, 40);
    let truncated = std::fs::read(net.join("genesis.ssz")).unwrap()[..39].to_vec();
    std::fs::write(net.join("genesis.ssz"), truncated).unwrap();
    expect_refusal(&strs(&serve(&[])), &data, "genesis.ssz is 39 bytes");
}

#[test]
fn clock_off_by_flag_and_implausible_genesis_times_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start_with_nimbus(
        dir.path(),
        1,
        &[
            "--genesis-time",
            &now().to_string(),
            "--slashing-protection-disable-clock-check",
        ],
    );
    let c = clock(&server);
    assert_eq!(c["state"], "off", "{c}");
    assert_eq!(c["reason"], "disabled_by_flag", "{c}");
    assert_eq!(c["genesis-time-source"], "flag", "{c}");
    assert!(server.log_text().contains("chain-clock check OFF"));
    drop(server);
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let net = minimal_network(dir.path());
    let net_s = net.to_str().unwrap();
    let (text, row) = doctor_clock(&[
        "--data-dir",
        data_s,
        "--network",
        net_s,
        "--slashing-protection-disable-clock-check",
    ]);
    assert!(row.contains("WARN") && row.contains("disabled"), "{text}");
    // Genesis time 0 (or anything before 2020) on a custom network: a placeholder.
    let (text, row) = doctor_clock(&[
        "--data-dir",
        data_s,
        "--network",
        net_s,
        "--genesis-time",
        "0",
    ]);
    assert!(
        row.contains("WARN") && row.contains("before 2020-01-01"),
        "{text}"
    );
    // A chain that has not started yet is fine.
    let later = (now() + 30 * 86_400).to_string();
    let (text, row) = doctor_clock(&[
        "--data-dir",
        data_s,
        "--network",
        net_s,
        "--genesis-time",
        &later,
    ]);
    assert!(
        row.contains("pass") && row.contains("not started yet"),
        "{text}"
    );
    // Built-in networks keep their constants.
    let (text, row) = doctor_clock(&["--data-dir", data_s, "--network", "mainnet"]);
    assert!(
        row.contains("pass") && row.contains("1606824023 from built-in"),
        "{text}"
    );
}
