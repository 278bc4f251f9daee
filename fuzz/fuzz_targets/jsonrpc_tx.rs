//! The EVM JSON-RPC signing inputs (`POST /rpc`): a JSON-RPC request body dispatched by method as
//! the server does, or a bare transaction object / typed-data document.
//!
//! * `eth_signTransaction`: `signward_evm::tx::parse` (and the optional `intent` in the second
//!   parameter), then the pure next steps: `signward_policy::evaluate` under a fixed policy and
//!   `TxRequest::sign` with a fixed key (EIP-2718 encoding and hashing by alloy).
//! * `eth_signTypedData_v4` / `eth_signTypedData`: `signward_evm::message::parse_typed`, then
//!   `evaluate` and `Typed::sign` (EIP-712 type resolution and hashing by alloy-dyn-abi).
//! * `eth_sign` / `personal_sign`: the hex data parameter, `evaluate`, `sign_personal`.
//!
//! A body without `method` is fed to both `tx::parse` and `parse_typed`.
//!
//! First, as the server does, integers beyond `u64` are quoted (`signward_evm::json`): the
//! rewrite must keep valid JSON valid and invalid JSON invalid, and be idempotent.
#![no_main]
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use signward_evm::message::{parse_typed, sign_personal};
use signward_evm::{tx, EvmKey};
use signward_policy::{evaluate, Intent, Policy, Request};

/// The time deadline rules are evaluated at.
const NOW: u64 = 1_800_000_000;

const POLICY: &str = r#"
[defaults]
chain_ids = [1, 8453]
recipients = ["0x2222222222222222222222222222222222222222", "0x3333333333333333333333333333333333333333"]
max_value_wei = "1000000000000000000"
max_gas = 300000
max_fee_per_gas_wei = "100000000000"
max_priority_fee_per_gas_wei = 2000000000
max_gas_price_wei = "50000000000"
max_calldata_bytes = 68
allow_personal_sign = true
contracts = [{ address = "0x2222222222222222222222222222222222222222", selectors = ["0xa9059cbb"] }]
typed_data_domains = [{ chain_id = 1, verifying_contract = "0x2222222222222222222222222222222222222222", primary_types = ["Mail", "Permit", "PermitSingle"] }]
spend_window = { window_secs = 3600, max_total_wei = "3000000000000000000", max_count = 10 }

[tokens.bot]
chain_ids = [1]
recipients = ["*"]
max_value_wei = "500000000000000000"
max_gas = 300000
max_fee_per_gas_wei = "100000000000"
max_priority_fee_per_gas_wei = "2000000000"
max_calldata_bytes = 68
require_intent = true
contracts = [{ address = "0x2222222222222222222222222222222222222222", selectors = ["0xa9059cbb"] }]
"#;

struct Fixed {
    policy: Policy,
    key: EvmKey,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| Fixed {
        policy: Policy::from_toml(POLICY).expect("the fixed policy parses"),
        key: EvmKey::from_secret_bytes(&[0x11; 32]).expect("a valid secp256k1 scalar"),
    })
}

fn transaction(value: &Value, extra: Option<&Value>) {
    let f = fixed();
    let Ok((req, mut intent)) = tx::parse(value) else {
        return;
    };
    // The server lets an `intent` in the second parameter replace the one in the object.
    if let Some(i) = extra.and_then(|e| e.get("intent")) {
        match serde_json::from_value::<Intent>(i.clone()) {
            Ok(i) => intent = Some(i),
            Err(_) => return,
        }
    }
    let from = req.from.unwrap_or(f.key.address());
    for token in [None, Some("bot")] {
        let ev = evaluate(
            &f.policy,
            &from,
            token,
            &Request::Transaction(&req.facts),
            intent.as_ref(),
            NOW,
        );
        if ev.allowed() {
            assert!(ev.refusal().is_none());
        }
    }
    if let Ok(signed) = req.sign(&f.key) {
        assert!(!signed.raw.is_empty());
    }
}

fn typed(value: &Value) {
    let f = fixed();
    let Ok(t) = parse_typed(value) else {
        return;
    };
    let ev = evaluate(
        &f.policy,
        &f.key.address(),
        None,
        &Request::TypedData(t.facts()),
        None,
        NOW,
    );
    let _ = ev.allowed();
    let _ = t.sign(&f.key);
}

fn personal(addr: Option<&Value>, data: Option<&Value>) {
    let f = fixed();
    let Some(a) = addr.and_then(Value::as_str) else {
        return;
    };
    let Ok(a) = signward_policy::parse_address(a) else {
        return;
    };
    let Some(d) = data.and_then(Value::as_str) else {
        return;
    };
    let bytes = match d.strip_prefix("0x") {
        Some(h) => match hex_decode(h) {
            Some(b) => b,
            None => return,
        },
        None => d.as_bytes().to_vec(),
    };
    let _ = evaluate(
        &f.policy,
        &a,
        None,
        &Request::PersonalMessage(&bytes),
        None,
        NOW,
    )
    .allowed();
    let _ = sign_personal(&f.key, &bytes);
}

fn hex_decode(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let quoted = signward_evm::json::quote_big_integers(data);
    assert_eq!(
        serde_json::from_slice::<Value>(data).is_ok(),
        serde_json::from_slice::<Value>(&quoted).is_ok(),
        "quoting big integers changed whether the body is JSON"
    );
    assert_eq!(signward_evm::json::quote_big_integers(&quoted), quoted);
    let Ok(v) = serde_json::from_slice::<Value>(&quoted) else {
        return;
    };
    let params: &[Value] = v
        .get("params")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    match v.get("method").and_then(Value::as_str) {
        Some("eth_signTransaction") => {
            if let Some(t) = params.first() {
                transaction(t, params.get(1));
            }
        }
        Some("eth_signTypedData" | "eth_signTypedData_v4") => {
            if let Some(t) = params.get(1) {
                typed(t);
            }
        }
        Some("eth_sign") => personal(params.first(), params.get(1)),
        Some("personal_sign") => personal(params.get(1), params.first()),
        Some(_) => {}
        None => {
            transaction(&v, None);
            typed(&v);
        }
    }
});
