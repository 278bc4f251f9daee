//! Each rule just inside and just outside its limit.

use std::str::FromStr;

use super::*;
use crate::Policy;

const KEY: &str = "0x1111111111111111111111111111111111111111";
const DEX: &str = "0x2222222222222222222222222222222222222222";
const FRIEND: &str = "0x3333333333333333333333333333333333333333";
const STRANGER: &str = "0x4444444444444444444444444444444444444444";
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
contracts = [{ address = "0x2222222222222222222222222222222222222222", selectors = ["0xa9059cbb"] }]
typed_data_domains = [{ chain_id = 1, verifying_contract = "0x2222222222222222222222222222222222222222", primary_types = ["Order", "PermitSingle"] }]
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

fn a(s: &str) -> Address {
    Address::from_str(s).unwrap()
}

fn tx() -> TxFacts {
    TxFacts {
        chain_id: 1,
        to: Some(a(FRIEND)),
        value: U256::from(1_000_000_000_000_000_000u64),
        gas: 300_000,
        gas_price: None,
        max_fee_per_gas: Some(100_000_000_000),
        max_priority_fee_per_gas: Some(2_000_000_000),
        data: vec![],
    }
}

fn code(
    p: &Policy,
    t: &TxFacts,
    token: Option<&str>,
    intent: Option<&Intent>,
) -> Option<&'static str> {
    evaluate(p, &a(KEY), token, &Request::Transaction(t), intent, NOW)
        .refusal()
        .map(|c| c.rule)
}

fn transfer_data(to: &str, amount: u64) -> Vec<u8> {
    let mut d = vec![0xa9, 0x05, 0x9c, 0xbb];
    d.extend([0u8; 12]);
    d.extend(a(to).as_slice());
    d.extend(U256::from(amount).to_be_bytes::<32>());
    d
}

#[test]
fn every_limit_inside_and_outside() {
    let p = Policy::from_toml(POLICY).unwrap();
    assert_eq!(
        code(&p, &tx(), None, None),
        None,
        "exactly at every limit is allowed"
    );
    type Edit = Box<dyn Fn(&mut TxFacts)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("chain_id_not_allowed", Box::new(|t| t.chain_id = 5)),
        (
            "recipient_not_allowed",
            Box::new(|t| t.to = Some(a(STRANGER))),
        ),
        ("contract_creation_not_allowed", Box::new(|t| t.to = None)),
        ("value_too_high", Box::new(|t| t.value += U256::from(1))),
        ("gas_too_high", Box::new(|t| t.gas += 1)),
        (
            "max_fee_too_high",
            Box::new(|t| t.max_fee_per_gas = Some(100_000_000_001)),
        ),
        (
            "priority_fee_too_high",
            Box::new(|t| t.max_priority_fee_per_gas = Some(2_000_000_001)),
        ),
        (
            "selector_not_allowed",
            Box::new(|t| t.data = vec![0xde, 0xad, 0xbe, 0xef]),
        ),
        ("selector_not_allowed", Box::new(|t| t.data = vec![0xa9])),
        (
            "gas_price_too_high",
            Box::new(|t| {
                t.max_fee_per_gas = None;
                t.max_priority_fee_per_gas = None;
                t.gas_price = Some(50_000_000_001);
            }),
        ),
    ];
    for (want, f) in cases {
        let mut t = tx();
        f(&mut t);
        assert_eq!(code(&p, &t, None, None), Some(want));
    }
    // Just inside for the ones whose boundary is not the baseline.
    let mut t = tx();
    t.max_fee_per_gas = None;
    t.max_priority_fee_per_gas = None;
    t.gas_price = Some(50_000_000_000);
    assert_eq!(code(&p, &t, None, None), None);
    // Selectors: allowed on the listed contract, refused on another allowed recipient.
    let mut t = tx();
    t.value = U256::ZERO;
    t.to = Some(a(DEX));
    t.data = transfer_data(FRIEND, 5);
    assert_eq!(code(&p, &t, None, None), None);
    t.to = Some(a(FRIEND));
    assert_eq!(code(&p, &t, None, None), Some("selector_not_allowed"));
    // Calldata size: 68 allowed, 69 refused.
    t.to = Some(a(DEX));
    t.data.push(0);
    assert_eq!(code(&p, &t, None, None), Some("calldata_too_large"));
}

#[test]
fn token_rules_apply_in_addition_and_intent_is_matched() {
    let p = Policy::from_toml(POLICY).unwrap();
    let mut t = tx();
    t.value = U256::from(500_000_000_000_000_000u64);
    // The bot credential must declare intent.
    assert_eq!(code(&p, &t, Some("bot"), None), Some("intent_required"));
    let intent = Intent {
        action: "transfer".into(),
        recipient: Some(FRIEND.into()),
        max_value_wei: Some("500000000000000000".into()),
        chain_id: Some(1),
        selector: None,
        token: None,
        max_amount: None,
    };
    assert_eq!(code(&p, &t, Some("bot"), Some(&intent)), None);
    // Over the token's own value cap (still inside the key's).
    t.value += U256::from(1);
    assert_eq!(
        code(&p, &t, Some("bot"), Some(&intent)),
        Some("intent_mismatch")
    );
    let mut wide = intent.clone();
    wide.max_value_wei = None;
    assert_eq!(
        code(&p, &t, Some("bot"), Some(&wide)),
        Some("value_too_high")
    );
    // Chain 8453 passes the defaults but not the token.
    let mut t = tx();
    t.value = U256::from(1);
    t.chain_id = 8453;
    let mut i2 = intent.clone();
    i2.chain_id = None;
    assert_eq!(
        code(&p, &t, Some("bot"), Some(&i2)),
        Some("chain_id_not_allowed")
    );
    // Intent disagreeing with the transaction: another recipient.
    let mut t = tx();
    t.value = U256::from(1);
    let mut other = intent.clone();
    other.recipient = Some(DEX.into());
    assert_eq!(
        code(&p, &t, Some("bot"), Some(&other)),
        Some("intent_mismatch")
    );
    // ERC-20 intent: token, recipient and amount are decoded from calldata.
    let mut t = tx();
    t.value = U256::ZERO;
    t.to = Some(a(DEX));
    t.data = transfer_data(FRIEND, 100);
    let erc = Intent {
        action: "erc20_transfer".into(),
        recipient: Some(FRIEND.into()),
        token: Some(DEX.into()),
        max_amount: Some("100".into()),
        max_value_wei: None,
        chain_id: None,
        selector: None,
    };
    assert_eq!(code(&p, &t, Some("bot"), Some(&erc)), None);
    t.data = transfer_data(FRIEND, 101);
    assert_eq!(
        code(&p, &t, Some("bot"), Some(&erc)),
        Some("intent_mismatch")
    );
    t.data = transfer_data(STRANGER, 1);
    assert_eq!(
        code(&p, &t, Some("bot"), Some(&erc)),
        Some("intent_mismatch")
    );
    // Spend windows: the key's and nothing from a token without one.
    let ev = evaluate(
        &p,
        &a(KEY),
        Some("bot"),
        &Request::Transaction(&tx()),
        Some(&intent),
        NOW,
    );
    assert_eq!(ev.spend_windows.len(), 1);
    assert_eq!(ev.spend_windows[0].bucket, format!("key:{}", a(KEY)));
    assert_eq!(ev.spend_windows[0].amount, tx().value);
}

#[test]
fn messages_and_typed_data() {
    let p = Policy::from_toml(POLICY).unwrap();
    let key = a(KEY);
    let r = evaluate(&p, &key, None, &Request::PersonalMessage(b"hi"), None, NOW);
    assert_eq!(
        r.refusal().map(|c| c.rule),
        Some("message_signing_not_allowed")
    );
    let msg = serde_json::json!({});
    let td = |chain_id, vc: &str, primary_type, approval| {
        Request::TypedData(TypedFacts {
            name: None,
            version: None,
            chain_id,
            verifying_contract: Some(a(vc)),
            primary_type,
            message: &msg,
            approval,
        })
    };
    assert!(evaluate(&p, &key, None, &td(Some(1), DEX, "Order", false), None, NOW).allowed());
    // Only named types; an unnamed permit is refused under a code of its own.
    assert!(evaluate(
        &p,
        &key,
        None,
        &td(Some(1), DEX, "PermitSingle", true),
        None,
        NOW
    )
    .allowed());
    let rule = |r: Request<'_>| {
        evaluate(&p, &key, None, &r, None, NOW)
            .refusal()
            .map(|c| c.rule)
    };
    assert_eq!(
        rule(td(Some(1), DEX, "Permit", true)),
        Some("typed_data_approval_not_allowed")
    );
    assert_eq!(
        rule(td(Some(1), DEX, "TransferWithAuthorization", false)),
        Some("typed_data_type_not_allowed")
    );
    for bad in [
        td(Some(8453), DEX, "Order", false),
        td(Some(1), FRIEND, "Order", false),
        td(None, DEX, "Order", false),
    ] {
        assert_eq!(rule(bad), Some("typed_data_domain_not_allowed"));
    }
    // There is no wildcard for typed data.
    for wild in ["\"*\"", "\"Order*\""] {
        let e = Policy::from_toml(&POLICY.replace("\"Order\", \"PermitSingle\"", wild))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no wildcard"), "{e}");
    }
    // No rule set at all: everything refused.
    let empty = Policy::from_toml("").unwrap();
    assert_eq!(code(&empty, &tx(), None, None), Some("no_policy_for_key"));
}

#[test]
fn malformed_policies_name_the_field() {
    let missing = POLICY.replace("max_gas = 300000\nmax_fee_per_gas_wei = \"100000000000\"\nmax_priority_fee_per_gas_wei = 2000000000", "");
    assert!(Policy::from_toml(&missing).is_err());
    let bad_addr = POLICY.replace("0x3333333333333333333333333333333333333333\"]", "0x33\"]");
    let e = Policy::from_toml(&bad_addr).unwrap_err().to_string();
    assert!(e.contains("defaults.recipients"), "{e}");
    let unknown = format!("{POLICY}\nmax_colour = 3\n");
    assert!(Policy::from_toml(&unknown).is_err());
}

#[test]
fn ambiguous_or_mistyped_policies_are_refused() {
    let section = POLICY.split("[tokens.bot]").nth(1).unwrap().to_string();
    // The same key under two spellings.
    let twice = format!(
        "{POLICY}\n[keys.\"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed\"]{section}\n[keys.\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\"]{section}"
    );
    let e = Policy::from_toml(&twice).unwrap_err().to_string();
    assert!(e.contains("same address"), "{e}");
    // A mixed-case address with a wrong checksum.
    let typo = POLICY.replace(
        "\"0x3333333333333333333333333333333333333333\"]",
        "\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD\"]",
    );
    let e = Policy::from_toml(&typo).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
    // A domain without primary types.
    let e = Policy::from_toml(&POLICY.replace("\"Order\", \"PermitSingle\"", ""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("primary_types"), "{e}");
    // A syntax error names the place, never the text.
    let secret = "max_gas = \"hunter2-secret\" oops\n";
    let e = Policy::from_toml(&format!("[defaults]\n{secret}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}
