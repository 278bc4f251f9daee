//! The EVM policy file (`--evm-policy`): `signward_policy::Policy::from_toml`, then, on success,
//! `signward_policy::evaluate` for a fixed key and a fixed transaction (with and without a
//! credential and a declared intent), a personal message and typed data.
#![no_main]
#![forbid(unsafe_code)]

use std::str::FromStr;

use alloy_primitives::{Address, U256};
use libfuzzer_sys::fuzz_target;
use signward_policy::{evaluate, Intent, Policy, Request, TxFacts, TypedFacts};

/// The time deadline rules are evaluated at.
const NOW: u64 = 1_800_000_000;

const KEY: &str = "0x1111111111111111111111111111111111111111";
const TO: &str = "0x2222222222222222222222222222222222222222";

fn transfer_data() -> Vec<u8> {
    let mut d = vec![0xa9, 0x05, 0x9c, 0xbb];
    d.extend([0u8; 12]);
    d.extend([0x33u8; 20]);
    d.extend(U256::from(1000u64).to_be_bytes::<32>());
    d
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::from_toml(text) else {
        return;
    };
    let key = Address::from_str(KEY).unwrap();
    let to = Address::from_str(TO).unwrap();
    let txs = [
        TxFacts {
            chain_id: 1,
            to: Some(to),
            value: U256::from(1_000_000_000_000_000_000u64),
            gas: 300_000,
            gas_price: None,
            max_fee_per_gas: Some(100_000_000_000),
            max_priority_fee_per_gas: Some(2_000_000_000),
            data: vec![],
        },
        TxFacts {
            chain_id: 8453,
            to: Some(to),
            value: U256::ZERO,
            gas: 60_000,
            gas_price: Some(1_000_000_000),
            max_fee_per_gas: None,
            max_priority_fee_per_gas: None,
            data: transfer_data(),
        },
    ];
    let intent = Intent {
        action: "erc20_transfer".into(),
        recipient: Some("0x3333333333333333333333333333333333333333".into()),
        max_value_wei: None,
        chain_id: Some(8453),
        selector: None,
        token: Some(TO.into()),
        max_amount: Some("1000".into()),
    };
    let tokens: Vec<Option<&str>> = std::iter::once(None)
        .chain(policy.tokens.keys().take(4).map(|t| Some(t.as_str())))
        .collect();
    let keys: Vec<Address> = std::iter::once(key)
        .chain(policy.keys.keys().take(2).copied())
        .collect();
    for key in &keys {
        for token in &tokens {
            for tx in &txs {
                for i in [None, Some(&intent)] {
                    let ev = evaluate(&policy, key, *token, &Request::Transaction(tx), i, NOW);
                    assert_eq!(ev.allowed(), ev.refusal().is_none());
                }
            }
            let message = b"Sign in to example.com";
            let _ = evaluate(
                &policy,
                key,
                *token,
                &Request::PersonalMessage(message),
                None,
                NOW,
            )
            .allowed();
            let permit = serde_json::json!({"details": {"token": TO, "amount": "1000", "expiration": NOW + 60, "nonce": 0}, "spender": TO, "sigDeadline": NOW + 60});
            for approval in [false, true] {
                let req = Request::TypedData(TypedFacts {
                    name: Some("Permit2"),
                    version: None,
                    chain_id: Some(1),
                    verifying_contract: Some(to),
                    primary_type: "PermitSingle",
                    message: &permit,
                    approval,
                });
                let _ = evaluate(&policy, key, *token, &req, None, NOW).allowed();
            }
        }
    }
});
