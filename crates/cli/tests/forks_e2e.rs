//! Every message type at every fork from phase0 to Fulu, on a network that schedules one fork per
//! epoch, in the forms real clients send: the deprecated BLOCK and AGGREGATE_AND_PROOF (which
//! Lighthouse still sends after Electra) read by the fork of their slot, the versioned forms, and
//! Lodestar's `fork_info` (whose `fork.epoch` is the signing slot's epoch, not the fork's).
//! Every signature is checked by the independent verifier (py_ecc + remerkleable, with the
//! containers written from the specs in tests/py/verify_signatures.py); what signward must
//! refuse, it refuses with a stable code and signs nothing.

mod common;

use common::*;
use serde_json::{json, Value};

const GVR: &str = "0x9143aa7c615a7f7115e2b6aac319c03529df8242ae705fba9df39b79c59fa8b1";
/// (fork, version, activation epoch): one fork per epoch.
const FORKS: [(&str, &str, u64); 7] = [
    ("PHASE0", "0x00000001", 0),
    ("ALTAIR", "0x01000001", 1),
    ("BELLATRIX", "0x02000001", 2),
    ("CAPELLA", "0x03000001", 3),
    ("DENEB", "0x04000001", 4),
    ("ELECTRA", "0x05000001", 5),
    ("FULU", "0x06000001", 6),
];
/// Minimal preset.
const SLOTS_PER_EPOCH: u64 = 8;

fn config_yaml(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = String::from(
        "PRESET_BASE: 'minimal'\nCONFIG_NAME: 'signward-forks'\nGENESIS_FORK_VERSION: 0x00000001\n",
    );
    for (name, version, epoch) in &FORKS[1..] {
        text.push_str(&format!(
            "{name}_FORK_VERSION: {version}\n{name}_FORK_EPOCH: {epoch}\n"
        ));
    }
    let p = dir.join("config.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn z(n: usize) -> String {
    format!("0x{}", "00".repeat(n))
}

/// The fork object a consensus node reports for fork `i` (previous fork's version, this one's,
/// its activation epoch).
fn fork_info(i: usize) -> Value {
    let prev = FORKS[i.saturating_sub(1)].1;
    json!({"fork": {"previous_version": prev, "current_version": FORKS[i].1,
                    "epoch": FORKS[i].2.to_string()},
           "genesis_validators_root": GVR})
}

/// What Lodestar sends: `fork.epoch` is the epoch of the slot being signed.
fn lodestar_fork_info(i: usize, epoch: u64) -> Value {
    let mut f = fork_info(i);
    f["fork"]["epoch"] = json!(epoch.to_string());
    f
}

fn attestation_data(slot: u64, source: u64, target: u64) -> Value {
    json!({"slot": slot.to_string(), "index": "0", "beacon_block_root": z(32),
           "source": {"epoch": source.to_string(), "root": z(32)},
           "target": {"epoch": target.to_string(), "root": z(32)}})
}

/// An aggregate in the phase0 container, or with `committee_bits` (Electra on).
fn aggregate_and_proof(slot: u64, electra: bool) -> Value {
    let epoch = slot / SLOTS_PER_EPOCH;
    let mut aggregate = json!({"aggregation_bits": "0x0501", "signature": format!("0x{}", "22".repeat(96)),
                               "data": attestation_data(slot, epoch.saturating_sub(1), epoch)});
    if electra {
        aggregate["committee_bits"] = json!("0x03");
    }
    json!({"aggregator_index": "1", "selection_proof": format!("0x{}", "11".repeat(96)),
           "aggregate": aggregate})
}

/// A full phase0 or Altair block.
fn full_block(slot: u64, altair: bool) -> Value {
    let mut body = json!({"randao_reveal": format!("0x{}", "33".repeat(96)),
        "eth1_data": {"deposit_root": z(32), "deposit_count": "4", "block_hash": z(32)},
        "graffiti": z(32), "proposer_slashings": [], "attester_slashings": [], "attestations": [],
        "deposits": [], "voluntary_exits": []});
    if altair {
        body["sync_aggregate"] = json!({"sync_committee_bits": "0xffffffff",
            "sync_committee_signature": format!("0x{}", "44".repeat(96))});
    }
    json!({"slot": slot.to_string(), "proposer_index": "2", "parent_root": z(32),
           "state_root": z(32), "body": body})
}

/// Every message type for fork `i`, at its first epoch.
fn requests_for_fork(i: usize) -> Vec<(String, Value)> {
    let (name, _, epoch) = FORKS[i];
    let slot = epoch * SLOTS_PER_EPOCH;
    let fi = fork_info(i);
    let lfi = lodestar_fork_info(i, epoch);
    let electra = i >= 5;
    let mut v = vec![
        (
            format!("{name} BLOCK_V2"),
            if i <= 1 {
                json!({"type": "BLOCK_V2", "fork_info": fi, "beacon_block": {"version": name,
                       "block": full_block(slot + 2, i == 1)}})
            } else {
                json!({"type": "BLOCK_V2", "fork_info": fi, "beacon_block": {"version": name,
                       "block_header": {"slot": (slot + 2).to_string(), "proposer_index": "2",
                                        "parent_root": z(32), "state_root": z(32), "body_root": z(32)}}})
            },
        ),
        (
            format!("{name} ATTESTATION"),
            json!({"type": "ATTESTATION", "fork_info": lfi,
                   "attestation": attestation_data(slot + 3, epoch.saturating_sub(1), epoch)}),
        ),
        (
            format!("{name} AGGREGATION_SLOT"),
            json!({"type": "AGGREGATION_SLOT", "fork_info": lfi, "aggregation_slot": {"slot": (slot + 3).to_string()}}),
        ),
        (
            format!("{name} AGGREGATE_AND_PROOF (deprecated form)"),
            json!({"type": "AGGREGATE_AND_PROOF", "fork_info": fi,
                   "aggregate_and_proof": aggregate_and_proof(slot + 3, electra)}),
        ),
        (
            format!("{name} AGGREGATE_AND_PROOF_V2"),
            json!({"type": "AGGREGATE_AND_PROOF_V2", "fork_info": lfi,
                   "aggregate_and_proof": {"version": name, "data": aggregate_and_proof(slot + 3, electra)}}),
        ),
        (
            format!("{name} RANDAO_REVEAL"),
            json!({"type": "RANDAO_REVEAL", "fork_info": lfi, "randao_reveal": {"epoch": epoch.to_string()}}),
        ),
        (
            format!("{name} VOLUNTARY_EXIT"),
            json!({"type": "VOLUNTARY_EXIT", "fork_info": fi,
                   "voluntary_exit": {"epoch": epoch.to_string(), "validator_index": "2"}}),
        ),
        (
            format!("{name} SYNC_COMMITTEE_MESSAGE"),
            json!({"type": "SYNC_COMMITTEE_MESSAGE", "fork_info": lfi,
                   "sync_committee_message": {"beacon_block_root": z(32), "slot": (slot + 4).to_string()}}),
        ),
        (
            format!("{name} SYNC_COMMITTEE_SELECTION_PROOF"),
            json!({"type": "SYNC_COMMITTEE_SELECTION_PROOF", "fork_info": fi,
                   "sync_aggregator_selection_data": {"slot": (slot + 4).to_string(), "subcommittee_index": "1"}}),
        ),
        (
            format!("{name} SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF"),
            json!({"type": "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", "fork_info": fi,
                   "contribution_and_proof": {"aggregator_index": "1", "selection_proof": format!("0x{}", "11".repeat(96)),
                       "contribution": {"slot": (slot + 4).to_string(), "beacon_block_root": z(32),
                           "subcommittee_index": "1", "aggregation_bits": "0xff",
                           "signature": format!("0x{}", "22".repeat(96))}}}),
        ),
        (
            format!("{name} VALIDATOR_REGISTRATION"),
            json!({"type": "VALIDATOR_REGISTRATION", "validator_registration": {
                "fee_recipient": format!("0x{}", "ab".repeat(20)), "gas_limit": "30000000",
                "timestamp": (1_700_000_000 + epoch).to_string(), "pubkey": format!("0x{}", "a1".repeat(48))}}),
        ),
    ];
    if i <= 1 {
        // The deprecated BLOCK exists for the full-block forks only.
        v.insert(
            0,
            (
                format!("{name} BLOCK (deprecated form)"),
                json!({"type": "BLOCK", "fork_info": fi, "block": full_block(slot + 1, i == 1)}),
            ),
        );
    }
    v
}

fn sign_expecting(server: &Server, pk: &str, name: &str, req: &Value, status: u16) -> Value {
    let r = server.sign(pk, req);
    assert_eq!(r.status, status, "{name}: {}", r.text());
    r.json()
}

#[test]
fn every_type_at_every_fork_signs_what_the_specs_say() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (keys, pw, pubkeys) = nimbus_keys(dir.path(), 1);
    let net = config_yaml(dir.path());
    let server = Server::start(dir.path(), &strs(&keystore_args(&net, &keys, &pw, &[])));
    let pk = &pubkeys[0];

    let mut cases = Vec::new();
    let mut signed = std::collections::HashSet::new();
    for i in 0..FORKS.len() {
        for (name, req) in requests_for_fork(i) {
            let out = sign_expecting(&server, pk, &name, &req, 200);
            signed.insert((req["type"].as_str().unwrap().to_string(), i));
            cases.push(
                json!({"name": name, "pubkey": pk, "request": req, "signature": out["signature"]}),
            );
        }
    }
    // DEPOSIT takes no fork_info: once.
    let deposit = json!({"type": "DEPOSIT", "deposit": {"pubkey": pk, "withdrawal_credentials": z(32),
        "amount": "32000000000", "genesis_fork_version": "0x00000001"}});
    let out = sign_expecting(&server, pk, "DEPOSIT", &deposit, 200);
    cases.push(
        json!({"name": "DEPOSIT", "pubkey": pk, "request": deposit, "signature": out["signature"]}),
    );
    assert_eq!(
        signed.len(),
        11 * FORKS.len() + 2,
        "11 fork-bound types at 7 forks, BLOCK at 2"
    );

    let forks: serde_json::Map<String, Value> = FORKS[1..]
        .iter()
        .map(|(n, _, e)| (n.to_string(), json!(e)))
        .collect();
    let (ok, out) = run_python(
        &python,
        "verify_signatures.py",
        &[],
        &json!({"preset": "minimal", "genesis_fork_version": "0x00000001", "forks": forks, "cases": cases}),
    );
    let results = out["results"].as_array().expect("verifier output");
    let failed: Vec<_> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(ok && failed.is_empty(), "failed: {failed:#?}");
    assert_eq!(results.len(), cases.len());

    // Lighthouse sends the deprecated aggregate with its own signingRoot: at Electra and Fulu
    // the root of the Electra container is accepted (and gives the same signature), any other
    // root is refused.
    for i in [5usize, 6] {
        let name = format!("{} AGGREGATE_AND_PROOF (deprecated form)", FORKS[i].0);
        let root =
            results.iter().find(|r| r["name"] == name.as_str()).unwrap()["signing_root"].clone();
        let case = cases.iter().find(|c| c["name"] == name.as_str()).unwrap();
        let mut req = case["request"].clone();
        req["signingRoot"] = root;
        let again = sign_expecting(&server, pk, &name, &req, 200);
        assert_eq!(again["signature"], case["signature"]);
        req["signingRoot"] = json!(format!("0x{}", "5a".repeat(32)));
        let e = sign_expecting(&server, pk, &name, &req, 400);
        assert_eq!(e["code"], "signing_root_mismatch");
    }
}

#[test]
fn a_field_the_forks_container_lacks_is_refused_never_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, pw, pubkeys) = nimbus_keys(dir.path(), 1);
    let net = config_yaml(dir.path());
    let server = Server::start(dir.path(), &strs(&keystore_args(&net, &keys, &pw, &[])));
    let pk = &pubkeys[0];
    let deneb = 4usize;
    let deneb_slot = FORKS[deneb].2 * SLOTS_PER_EPOCH + 3;
    let electra_slot = FORKS[5].2 * SLOTS_PER_EPOCH + 3;
    let mut attestation_extra = attestation_data(deneb_slot, 3, 4);
    attestation_extra["committee_index"] = json!("1");
    let mut header_extra = json!({"slot": (deneb_slot).to_string(), "proposer_index": "2",
        "parent_root": z(32), "state_root": z(32), "body_root": z(32)});
    header_extra["blob_kzg_commitments"] = json!([]);
    let electra_version_at_deneb = json!({"fork": {"previous_version": FORKS[4].1,
        "current_version": FORKS[5].1, "epoch": FORKS[4].2.to_string()}, "genesis_validators_root": GVR});
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "Electra aggregate (committee_bits) sent at a Deneb slot",
            json!({"type": "AGGREGATE_AND_PROOF", "fork_info": fork_info(deneb),
                   "aggregate_and_proof": aggregate_and_proof(deneb_slot, true)}),
            400,
            "unexpected_field",
        ),
        (
            "phase0 aggregate (no committee_bits) sent at an Electra slot",
            json!({"type": "AGGREGATE_AND_PROOF", "fork_info": fork_info(5),
                   "aggregate_and_proof": aggregate_and_proof(electra_slot, false)}),
            400,
            "invalid_request",
        ),
        (
            "AGGREGATE_AND_PROOF_V2 DENEB carrying committee_bits",
            json!({"type": "AGGREGATE_AND_PROOF_V2", "fork_info": fork_info(deneb),
                   "aggregate_and_proof": {"version": "DENEB", "data": aggregate_and_proof(deneb_slot, true)}}),
            400,
            "unexpected_field",
        ),
        (
            "fork_info names Electra's version for a Deneb slot",
            json!({"type": "AGGREGATE_AND_PROOF", "fork_info": electra_version_at_deneb,
                   "aggregate_and_proof": aggregate_and_proof(deneb_slot, false)}),
            400,
            "fork_mismatch",
        ),
        (
            "attestation data with a field it does not have",
            json!({"type": "ATTESTATION", "fork_info": fork_info(deneb), "attestation": attestation_extra}),
            400,
            "unexpected_field",
        ),
        (
            "block header with a body field",
            json!({"type": "BLOCK_V2", "fork_info": fork_info(deneb),
                   "beacon_block": {"version": "DENEB", "block_header": header_extra}}),
            400,
            "unexpected_field",
        ),
        (
            "Altair block (sync_aggregate) as the deprecated BLOCK at a phase0 slot",
            json!({"type": "BLOCK", "fork_info": fork_info(0), "block": full_block(3, true)}),
            400,
            "unsupported_block_format",
        ),
        (
            "phase0 block as the deprecated BLOCK at an Altair slot",
            json!({"type": "BLOCK", "fork_info": fork_info(1), "block": full_block(9, false)}),
            400,
            "unsupported_block_format",
        ),
        (
            "deprecated BLOCK at a Bellatrix slot",
            json!({"type": "BLOCK", "fork_info": fork_info(2), "block": full_block(17, true)}),
            400,
            "unsupported_block_format",
        ),
    ];
    for (name, req, status, code) in cases {
        let e = sign_expecting(&server, pk, name, &req, status);
        assert_eq!(e["code"], code, "{name}: {e}");
    }
    // Nothing above reached slashing protection: a block and an attestation at those slots
    // still sign.
    let ok = json!({"type": "ATTESTATION", "fork_info": fork_info(deneb),
                    "attestation": attestation_data(deneb_slot, 3, 4)});
    sign_expecting(&server, pk, "attestation after the refusals", &ok, 200);
    let ok = json!({"type": "BLOCK", "fork_info": fork_info(0), "block": full_block(3, false)});
    sign_expecting(&server, pk, "block after the refusals", &ok, 200);
}
