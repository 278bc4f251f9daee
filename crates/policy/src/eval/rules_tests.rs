//! Policy v2: argument rules, built-in ERC-20 / EIP-2612 / Permit2 knowledge, per-chain scoping,
//! payees, selector wildcards, typed-data fields, message prefixes and overlays. Each rule just
//! inside and just outside its bound.

use std::str::FromStr;

use alloy_dyn_abi::{DynSolValue, JsonAbiExt};
use alloy_json_abi::Function;
use serde_json::json;

use super::*;
use crate::{Policy, PERMIT2};

const KEY: &str = "0x1111111111111111111111111111111111111111";
const USDC: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";
const WETH: &str = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2";
const ROUTER: &str = "0x2626664c2603336e57b271c5c0b26f421741e481";
const AGGREGATOR: &str = "0x1111111254eeb25477b68fb85ed929f73a960582";
const TREASURY: &str = "0x3333333333333333333333333333333333333333";
const ATTACKER: &str = "0x4444444444444444444444444444444444444444";
const EVIL_TOKEN: &str = "0x5555555555555555555555555555555555555555";
const NOW: u64 = 1_800_000_000;
const ONE_ETH: u64 = 1_000_000_000_000_000_000;

const POLICY: &str = r#"
[defaults]
chain_ids = [1, 8453, 137]
recipients = []
max_value_wei = "0"
max_gas = 500000
max_fee_per_gas_wei = "100000000000"
max_priority_fee_per_gas_wei = "2000000000"
max_calldata_bytes = 1024
allow_personal_sign = true
personal_sign_prefixes = ["Sign in to example.com"]
personal_sign_patterns = ["I agree to the terms, nonce *"]
payees = [{ address = "0x3333333333333333333333333333333333333333", max_value_wei = "1000000000000000000" }]
erc20 = [{ token = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", chain_ids = [1], transfer_to = ["0x3333333333333333333333333333333333333333", "self"], max_transfer = "10000000000", approve = ["0x2626664c2603336e57b271c5c0b26f421741e481"], max_approval = "1000000000" }]
permits = [{ token = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", chain_ids = [1], spenders = ["0x2626664c2603336e57b271c5c0b26f421741e481"], max_value = "1000000000", max_deadline_secs = 3600 }]
permit2 = [{ tokens = ["0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"], spenders = ["0x2626664c2603336e57b271c5c0b26f421741e481"], max_amount = "1000000000", max_deadline_secs = 3600 }]

[[defaults.contracts]]
address = "0x2626664c2603336e57b271c5c0b26f421741e481"
chain_ids = [8453]
functions = [{ signature = "swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] path, address to, uint256 deadline)", args = { path = { each_in = ["0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"] }, to = { equals = "self" }, amountIn = { max = "5000000000" }, deadline = { max_from_now = 600 } } }]

[[defaults.contracts]]
address = "0x1111111254eeb25477b68fb85ed929f73a960582"
selectors = ["*"]

[[defaults.typed_data_domains]]
name = "ClobAuthDomain"
version = "1"
chain_id = 137
primary_types = ["ClobAuth"]
fields = { address = { equals = "self" } }

[tokens.narrow]
inherit = true
erc20 = [{ token = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", transfer_to = ["0x3333333333333333333333333333333333333333"], max_transfer = "100" }]
"#;

fn a(s: &str) -> Address {
    Address::from_str(s).unwrap()
}

fn call(sig: &str, args: Vec<DynSolValue>) -> Vec<u8> {
    Function::parse(sig)
        .unwrap()
        .abi_encode_input(&args)
        .unwrap()
}

fn addr(s: &str) -> DynSolValue {
    DynSolValue::Address(a(s))
}

fn uint(v: u128) -> DynSolValue {
    DynSolValue::Uint(U256::from(v), 256)
}

fn tx(chain_id: u64, to: &str, value: u64, data: Vec<u8>) -> TxFacts {
    TxFacts {
        chain_id,
        to: Some(a(to)),
        value: U256::from(value),
        gas: 200_000,
        gas_price: None,
        max_fee_per_gas: Some(10_000_000_000),
        max_priority_fee_per_gas: Some(1_000_000_000),
        data,
    }
}

fn decide(p: &Policy, token: Option<&str>, req: &Request<'_>) -> Evaluation {
    evaluate(p, &a(KEY), token, req, None, NOW)
}

fn code(p: &Policy, token: Option<&str>, t: &TxFacts) -> Option<&'static str> {
    decide(p, token, &Request::Transaction(t))
        .refusal()
        .map(|c| c.rule)
}

fn transfer(to: &str, amount: u128) -> Vec<u8> {
    call("transfer(address,uint256)", vec![addr(to), uint(amount)])
}

fn approve(spender: &str, amount: U256) -> Vec<u8> {
    call(
        "approve(address,uint256)",
        vec![addr(spender), DynSolValue::Uint(amount, 256)],
    )
}

fn swap(amount_in: u128, path: &[&str], to: &str, deadline: u64) -> Vec<u8> {
    call(
        "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
        vec![
            uint(amount_in),
            uint(0),
            DynSolValue::Array(path.iter().map(|p| addr(p)).collect()),
            addr(to),
            uint(deadline.into()),
        ],
    )
}

#[test]
fn erc20_transfers_and_approvals_are_bounded() {
    let p = Policy::from_toml(POLICY).unwrap();
    let usdc = |data| tx(1, USDC, 0, data);
    assert_eq!(
        code(&p, None, &usdc(transfer(TREASURY, 10_000_000_000))),
        None
    );
    assert_eq!(code(&p, None, &usdc(transfer(KEY, 1))), None, "\"self\"");
    assert_eq!(
        code(&p, None, &usdc(transfer(TREASURY, 10_000_000_001))),
        Some("token_amount_too_high")
    );
    assert_eq!(
        code(&p, None, &usdc(transfer(ATTACKER, 1))),
        Some("token_recipient_not_allowed")
    );
    let from = call(
        "transferFrom(address,address,uint256)",
        vec![addr(ATTACKER), addr(ATTACKER), uint(1)],
    );
    assert_eq!(
        code(&p, None, &usdc(from)),
        Some("token_recipient_not_allowed")
    );
    assert_eq!(
        code(&p, None, &usdc(approve(ROUTER, U256::from(1_000_000_000)))),
        None
    );
    assert_eq!(
        code(&p, None, &usdc(approve(ROUTER, U256::from(1_000_000_001)))),
        Some("approval_too_high")
    );
    assert_eq!(
        code(&p, None, &usdc(approve(ROUTER, U256::MAX))),
        Some("approval_too_high"),
        "never unlimited"
    );
    assert_eq!(
        code(&p, None, &usdc(approve(ATTACKER, U256::from(1)))),
        Some("approval_spender_not_allowed")
    );
    // increaseAllowance would add up past any cap: an erc20 entry does not allow it.
    for spender in [ATTACKER, ROUTER] {
        let more = call(
            "increaseAllowance(address,uint256)",
            vec![addr(spender), uint(1)],
        );
        assert_eq!(code(&p, None, &usdc(more)), Some("selector_not_allowed"));
    }
    // The token rule is for chain 1 only.
    assert_eq!(
        code(&p, None, &tx(8453, USDC, 0, transfer(TREASURY, 1))),
        Some("recipient_not_allowed")
    );
    // Another function of the token, and calldata that is not the canonical encoding.
    let burn = call("burn(uint256)", vec![uint(1)]);
    assert_eq!(code(&p, None, &usdc(burn)), Some("selector_not_allowed"));
    let mut longer = transfer(TREASURY, 1);
    longer.push(0);
    assert_eq!(
        code(&p, None, &usdc(longer)),
        Some("calldata_not_decodable")
    );
    let mut dirty = transfer(TREASURY, 1);
    dirty[4] = 1; // high bytes of the address word
    assert_eq!(code(&p, None, &usdc(dirty)), Some("calldata_not_decodable"));
    // Ether alongside a token call is still capped (0 here).
    assert_eq!(
        code(&p, None, &tx(1, USDC, 1, transfer(TREASURY, 1))),
        Some("value_too_high")
    );
}

#[test]
fn router_arguments_chains_and_wildcards() {
    let p = Policy::from_toml(POLICY).unwrap();
    let ok = swap(5_000_000_000, &[USDC, WETH], KEY, NOW + 600);
    assert_eq!(code(&p, None, &tx(8453, ROUTER, 0, ok.clone())), None);
    for (data, why) in [
        (swap(5_000_000_001, &[USDC, WETH], KEY, NOW), "amountIn"),
        (swap(1, &[USDC, EVIL_TOKEN], KEY, NOW), "path"),
        (swap(1, &[USDC, WETH, EVIL_TOKEN], KEY, NOW), "path end"),
        (swap(1, &[USDC, WETH], ATTACKER, NOW), "to"),
        (swap(1, &[USDC, WETH], KEY, NOW + 601), "deadline"),
    ] {
        assert_eq!(
            code(&p, None, &tx(8453, ROUTER, 0, data)),
            Some("argument_not_allowed"),
            "{why}"
        );
    }
    // The router is allowed on Base only.
    assert_eq!(
        code(&p, None, &tx(1, ROUTER, 0, ok.clone())),
        Some("recipient_not_allowed")
    );
    // Every argument decision is explained, and so are the unconstrained ones.
    let ev = decide(&p, None, &Request::Transaction(&tx(8453, ROUTER, 0, ok)));
    let details: Vec<&str> = ev.checks.iter().map(|c| c.detail.as_str()).collect();
    assert!(
        details
            .iter()
            .any(|d| d.contains("swapExactTokensForTokens.path = [")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("not constrained: amountOutMin")),
        "{details:?}"
    );
    // "*" allows any function, and says so.
    let anything = call("doAnything(bytes)", vec![DynSolValue::Bytes(vec![1, 2])]);
    let ev = decide(
        &p,
        None,
        &Request::Transaction(&tx(1, AGGREGATOR, 0, anything)),
    );
    assert!(ev.allowed());
    assert!(ev.checks.iter().any(|c| c.detail.contains("\"*\"")));
    // A plain transfer to a contract is not a call: the contract is no payee.
    assert_eq!(
        code(&p, None, &tx(1, AGGREGATOR, 0, vec![])),
        Some("recipient_not_allowed")
    );
}

#[test]
fn payees_have_their_own_value_caps() {
    let p = Policy::from_toml(POLICY).unwrap();
    assert_eq!(code(&p, None, &tx(1, TREASURY, ONE_ETH, vec![])), None);
    assert_eq!(
        code(&p, None, &tx(1, TREASURY, ONE_ETH + 1, vec![])),
        Some("value_too_high")
    );
    // Everyone else: max_value_wei (0), and only listed recipients.
    assert_eq!(
        code(&p, None, &tx(1, ATTACKER, 1, vec![])),
        Some("recipient_not_allowed")
    );
    let swap_with_value = swap(1, &[USDC, WETH], KEY, NOW);
    assert_eq!(
        code(&p, None, &tx(8453, ROUTER, 1, swap_with_value)),
        Some("value_too_high")
    );
}

fn typed_rule(p: &Policy, t: TypedFacts<'_>) -> Option<&'static str> {
    decide(p, None, &Request::TypedData(t))
        .refusal()
        .map(|c| c.rule)
}

#[test]
fn typed_data_domains_fields_permits_and_permit2() {
    let p = Policy::from_toml(POLICY).unwrap();
    // Polymarket's ClobAuth: a domain without a verifying contract.
    let clob = |who: &str, chain| {
        let m = json!({"address": who, "timestamp": "1", "nonce": 0, "message": "hi"});
        let facts = TypedFacts {
            name: Some("ClobAuthDomain"),
            version: Some("1"),
            chain_id: Some(chain),
            verifying_contract: None,
            primary_type: "ClobAuth",
            message: &m,
            approval: false,
        };
        typed_rule(&p, facts)
    };
    assert_eq!(clob(KEY, 137), None);
    assert_eq!(clob(ATTACKER, 137), Some("typed_data_field_not_allowed"));
    assert_eq!(clob(KEY, 1), Some("typed_data_domain_not_allowed"));

    let permit = |owner: &str, spender: &str, value: u128, deadline: u64| {
        let m = json!({"owner": owner, "spender": spender, "value": value.to_string(), "nonce": 0, "deadline": deadline});
        typed_rule(
            &p,
            TypedFacts {
                name: Some("USD Coin"),
                version: Some("2"),
                chain_id: Some(1),
                verifying_contract: Some(a(USDC)),
                primary_type: "Permit",
                message: &m,
                approval: true,
            },
        )
    };
    assert_eq!(permit(KEY, ROUTER, 1_000_000_000, NOW + 3600), None);
    assert_eq!(
        permit(KEY, ATTACKER, 1, NOW),
        Some("permit_spender_not_allowed")
    );
    assert_eq!(
        permit(KEY, ROUTER, 1_000_000_001, NOW),
        Some("permit_amount_too_high")
    );
    assert_eq!(
        permit(KEY, ROUTER, 1, NOW + 3601),
        Some("permit_deadline_too_far")
    );
    assert_eq!(
        permit(ATTACKER, ROUTER, 1, NOW),
        Some("permit_owner_not_self")
    );

    let permit2 = |primary: &str, m: serde_json::Value| {
        typed_rule(
            &p,
            TypedFacts {
                name: Some("Permit2"),
                version: None,
                chain_id: Some(8453),
                verifying_contract: Some(PERMIT2),
                primary_type: primary,
                message: &m,
                approval: true,
            },
        )
    };
    let single = |token: &str, amount: &str, spender: &str| json!({"details": {"token": token, "amount": amount, "expiration": NOW + 60, "nonce": 0}, "spender": spender, "sigDeadline": NOW + 60});
    assert_eq!(
        permit2("PermitSingle", single(USDC, "1000000000", ROUTER)),
        None
    );
    assert_eq!(
        permit2("PermitSingle", single(EVIL_TOKEN, "1", ROUTER)),
        Some("permit_token_not_allowed")
    );
    assert_eq!(
        permit2("PermitSingle", single(USDC, "1000000001", ROUTER)),
        Some("permit_amount_too_high")
    );
    assert_eq!(
        permit2("PermitSingle", single(USDC, "1", ATTACKER)),
        Some("permit_spender_not_allowed")
    );
    // A batch is refused when any one of its entries is.
    let batch = |second: &str| json!({"details": [{"token": USDC, "amount": "1", "expiration": NOW, "nonce": 0}, {"token": second, "amount": "1", "expiration": NOW, "nonce": 0}], "spender": ROUTER, "sigDeadline": NOW});
    assert_eq!(permit2("PermitBatch", batch(USDC)), None);
    assert_eq!(
        permit2("PermitBatch", batch(EVIL_TOKEN)),
        Some("permit_token_not_allowed")
    );
    let transfer_from = json!({"permitted": {"token": USDC, "amount": "1"}, "spender": ROUTER, "nonce": 0, "deadline": NOW + 3601});
    assert_eq!(
        permit2("PermitTransferFrom", transfer_from),
        Some("permit_deadline_too_far")
    );
    // A field that is missing or of the wrong kind fails closed.
    assert_eq!(
        permit2(
            "PermitSingle",
            json!({"spender": ROUTER, "sigDeadline": NOW})
        ),
        Some("permit_token_not_allowed")
    );
}

#[test]
fn personal_messages_by_prefix_or_pattern() {
    let p = Policy::from_toml(POLICY).unwrap();
    let m = |text: &[u8]| {
        decide(&p, None, &Request::PersonalMessage(text))
            .refusal()
            .map(|c| c.rule)
    };
    assert_eq!(m(b"Sign in to example.com at 12:00"), None);
    assert_eq!(m(b"I agree to the terms, nonce 42"), None);
    assert_eq!(
        m(b"I agree to the terms, nonc"),
        Some("message_not_allowed")
    );
    assert_eq!(m(b"sign in to example.com"), Some("message_not_allowed"));
    assert_eq!(m(b"Transfer everything"), Some("message_not_allowed"));
    assert_eq!(m(&[0xff, 0xfe]), Some("message_not_allowed"));
}

#[test]
fn overlays_inherit_and_narrow() {
    let p = Policy::from_toml(POLICY).unwrap();
    let narrow = Some("narrow");
    // Inherited: the payee's cap, the chains.
    assert_eq!(code(&p, narrow, &tx(1, TREASURY, ONE_ETH, vec![])), None);
    assert_eq!(
        code(&p, narrow, &tx(10, TREASURY, 1, vec![])),
        Some("chain_id_not_allowed")
    );
    // Narrowed: a lower token cap, and no other contract.
    assert_eq!(
        code(&p, narrow, &tx(1, USDC, 0, transfer(TREASURY, 100))),
        None
    );
    assert_eq!(
        code(&p, narrow, &tx(1, USDC, 0, transfer(TREASURY, 101))),
        Some("token_amount_too_high")
    );
    assert_eq!(
        code(&p, narrow, &tx(1, USDC, 0, transfer(KEY, 1))),
        Some("token_recipient_not_allowed"),
        "the overlay did not list self"
    );
    let ok = swap(1, &[USDC, WETH], KEY, NOW);
    assert_eq!(code(&p, None, &tx(8453, ROUTER, 0, ok.clone())), None);
    assert_eq!(
        code(&p, narrow, &tx(8453, ROUTER, 0, ok)),
        Some("selector_not_allowed")
    );
    // An overlay cannot widen: what the key's rule set refuses stays refused.
    let wide = format!(
        "{POLICY}\n[tokens.wide]\ninherit = true\nrecipients = [\"*\"]\nmax_value_wei = \"{}\"\n",
        ONE_ETH * 10
    );
    let p = Policy::from_toml(&wide).unwrap();
    assert_eq!(
        code(&p, Some("wide"), &tx(1, ATTACKER, 1, vec![])),
        Some("recipient_not_allowed")
    );
}

#[test]
fn ambiguous_rules_are_parse_errors() {
    let err = |extra: &str| {
        Policy::from_toml(&format!("{POLICY}{extra}"))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    // The same function twice for one contract and chain (a declared rule and the ERC-20 one).
    let e = err("\n[[defaults.contracts]]\naddress = \"0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48\"\nselectors = [\"0xa9059cbb\"]\n");
    assert!(e.contains("two rules for one function"), "{e}");
    // On another chain it is not ambiguous.
    let ok = format!("{POLICY}\n[[defaults.contracts]]\naddress = \"0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48\"\nchain_ids = [8453]\nselectors = [\"0xa9059cbb\"]\n");
    assert!(Policy::from_toml(&ok).is_ok());
    let e = err("\n[[defaults.contracts]]\naddress = \"0x9999999999999999999999999999999999999999\"\nselectors = [\"*\", \"0x12345678\"]\n");
    assert!(e.contains("\"*\""), "{e}");
    let e = err("\n[[defaults.contracts]]\naddress = \"0x9999999999999999999999999999999999999999\"\nchain_ids = [10]\nselectors = [\"*\"]\n");
    assert!(e.contains("not in the rule set's chain_ids"), "{e}");
    let e = err("\n[[defaults.contracts]]\naddress = \"0x9999999999999999999999999999999999999999\"\nfunctions = [{ signature = \"f(address a)\", args = { a = { max = \"1\" } } }]\n");
    assert!(e.contains("does not apply"), "{e}");
    let e = err("\n[[defaults.contracts]]\naddress = \"0x9999999999999999999999999999999999999999\"\nfunctions = [{ signature = \"f(address a)\", args = { a = { in = [\"self\"], max = \"1\" } } }]\n");
    assert!(e.contains("exactly one"), "{e}");
    let e = err("\n[[defaults.typed_data_domains]]\nprimary_types = [\"Order\"]\n");
    assert!(e.contains("pin at least one"), "{e}");
    let e = err("\n[[defaults.typed_data_domains]]\nname = \"ClobAuthDomain\"\nversion = \"1\"\nchain_id = 137\nprimary_types = [\"ClobAuth\"]\n");
    assert!(e.contains("listed twice"), "{e}");
    // An approval without a cap.
    let bare = POLICY.replace(", max_approval = \"1000000000\"", "");
    let e = Policy::from_toml(&bare).unwrap_err().to_string();
    assert!(e.contains("max_approval"), "{e}");
    // A bad checksum anywhere.
    let typo = POLICY.replace(
        "\"0x2626664c2603336e57b271c5c0b26f421741e481\"]",
        "\"0x2626664C2603336E57B271c5C0b26F421741e481\"]",
    );
    let e = Policy::from_toml(&typo).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
    // A base section must give every limit; only an overlay may leave one out.
    let e = Policy::from_toml("[defaults]\nchain_ids = [1]\nrecipients = []\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("only a credential's overlay"), "{e}");
    // Only a credential's section inherits; without `inherit` it must be complete.
    let e = err("\n[keys.\"0x9999999999999999999999999999999999999999\"]\ninherit = true\n");
    assert!(e.contains("only a credential"), "{e}");
    let e = err("\n[tokens.partial]\nmax_value_wei = \"0\"\n");
    assert!(e.contains("only a credential's overlay"), "{e}");
    // Message limits without messages allowed.
    let e = Policy::from_toml(&POLICY.replace("allow_personal_sign = true\n", ""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("allow_personal_sign"), "{e}");
}

#[test]
fn token_windows_and_gas_are_charged() {
    let text = POLICY
        .replace(
            "max_approval = \"1000000000\" }]",
            "max_approval = \"1000000000\", window = { window_secs = 86400, max_total = \"10000000000\", max_count = 50 } }]",
        )
        .replace(
            "allow_personal_sign = true\n",
            "allow_personal_sign = true\nspend_window = { window_secs = 3600, max_total_wei = \"5000000000000000000\", max_count = 10, count_gas = true }\n",
        );
    let p = Policy::from_toml(&text).unwrap();
    let t = tx(1, USDC, 0, transfer(TREASURY, 1234));
    let ev = decide(&p, None, &Request::Transaction(&t));
    assert!(ev.allowed());
    let key = a(KEY);
    let buckets: Vec<(&str, U256)> = ev
        .spend_windows
        .iter()
        .map(|c| (c.bucket.as_str(), c.amount))
        .collect();
    assert_eq!(
        buckets,
        [
            // Ether: value 0 plus gas 200,000 × fee cap 10 gwei.
            (
                format!("key:{key}").as_str(),
                U256::from(2_000_000_000_000_000u64)
            ),
            (
                format!("key:{key}:erc20:1:{USDC}").as_str(),
                U256::from(1234)
            ),
        ]
    );
    // An approval moves nothing: only the ether window is charged. So does a credential's
    // overlay without windows of its own.
    let t = tx(1, USDC, 0, approve(ROUTER, U256::from(5)));
    let ev = decide(&p, Some("narrow"), &Request::Transaction(&t));
    assert_eq!(ev.spend_windows.len(), 1);
    // A window needs transfers to count.
    let bad = POLICY.replace(
        "max_approval = \"1000000000\" }]",
        "max_approval = \"1000000000\", window = { window_secs = 0, max_total = \"1\", max_count = 1 } }]",
    );
    assert!(Policy::from_toml(&bad).is_err());
}
