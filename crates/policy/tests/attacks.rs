//! Adversarial review of policy v2: a compromised bot holding a credential tries to get
//! something signed that the policy, as documented in docs/policy.md, should refuse.
//!
//! Every test asserts the SAFE behaviour: a failing test is a hole. `regression_*`: holes this
//! review found (batches past 256 entries unchecked, an order that never expires,
//! `increaseAllowance` accumulating, a more specific typed-data rule dropping built-in limits),
//! now closed; `held_*`: attacks that were tried and held. Typed data goes through the same steps as the engine
//! (alloy's `TypedData` parsed from the JSON, the policy on its facts, then the EIP-712 hash):
//! a request counts as "signed" only when the policy allows it AND the hash can be computed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;

use alloy_dyn_abi::{DynSolValue, JsonAbiExt, TypedData};
use alloy_json_abi::Function;
use alloy_primitives::{Address, U256};
use serde_json::{json, Value};
use signward_policy::{evaluate, Policy, Request, TxFacts, TypedFacts};

const MARKET_MAKER: &str = include_str!("../../../docs/policies/market-maker.toml");
const TREASURY: &str = include_str!("../../../docs/policies/treasury-payout.toml");
const DEX: &str = include_str!("../../../docs/policies/dex-arbitrage.toml");

/// The signing key of the worked examples.
const KEY: &str = "0x7e57000000000000000000000000000000000001";
const STRANGER: &str = "0x4444444444444444444444444444444444444444";
const NOW: u64 = 1_800_000_000;

// Market maker (Polygon).
const USDCE: &str = "0x2791bca1f2de4661ed88a30c99a7a9449aa84174";
const EXCHANGE: &str = "0x4bfb41d5b3570defd03c39a9a4d8de6bd8b8982e";
// Treasury.
const USDC_MAINNET: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";
const PAYROLL: &str = "0x1000000000000000000000000000000000000001";
const COLD: &str = "0x2000000000000000000000000000000000000002";
// DEX arbitrage (Base).
const USDC_BASE: &str = "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913";
const WETH_BASE: &str = "0x4200000000000000000000000000000000000006";
const ROUTER: &str = "0x4752ba5dbc23f44d87826276bf6fd6b1c372ad24";
const PERMIT2: &str = "0x000000000022d473030f116ddee9f6b43ac78ba3";

fn a(s: &str) -> Address {
    Address::from_str(s).unwrap()
}

fn addr(s: &str) -> DynSolValue {
    DynSolValue::Address(a(s))
}

fn uint(v: u128) -> DynSolValue {
    DynSolValue::Uint(U256::from(v), 256)
}

fn call(sig: &str, args: Vec<DynSolValue>) -> Vec<u8> {
    Function::parse(sig)
        .unwrap()
        .abi_encode_input(&args)
        .unwrap()
}

fn tx(chain_id: u64, to: &str, value: u128, data: Vec<u8>) -> TxFacts {
    TxFacts {
        chain_id,
        to: Some(a(to)),
        value: U256::from(value),
        gas: 100_000,
        gas_price: None,
        max_fee_per_gas: Some(1_000_000_000),
        max_priority_fee_per_gas: Some(100_000_000),
        data,
    }
}

/// The refusal's rule, or `None` when every rule passed.
fn refusal(p: &Policy, token: Option<&str>, t: &TxFacts) -> Option<&'static str> {
    evaluate(p, &a(KEY), token, &Request::Transaction(t), None, NOW)
        .refusal()
        .map(|c| c.rule)
}

fn message(p: &Policy, token: Option<&str>, m: &[u8]) -> Option<&'static str> {
    evaluate(p, &a(KEY), token, &Request::PersonalMessage(m), None, NOW)
        .refusal()
        .map(|c| c.rule)
}

/// What the engine does with `eth_signTypedData_v4`: parse with alloy, ask the policy, hash.
/// `Ok(())` means a signature would be released; `Err` names why not.
fn typed_signed(p: &Policy, token: Option<&str>, v: &Value) -> Result<(), String> {
    let data: TypedData = serde_json::from_value(v.clone()).map_err(|e| format!("parse: {e}"))?;
    let chain_id = match data.domain.chain_id {
        Some(c) => Some(u64::try_from(c).map_err(|_| "chainId too large".to_string())?),
        None => None,
    };
    let facts = TypedFacts {
        name: data.domain.name.as_deref(),
        version: data.domain.version.as_deref(),
        chain_id,
        verifying_contract: data.domain.verifying_contract,
        primary_type: &data.primary_type,
        message: &data.message,
        approval: false,
    };
    let ev = evaluate(p, &a(KEY), token, &Request::TypedData(facts), None, NOW);
    if let Some(c) = ev.refusal() {
        return Err(c.rule.to_string());
    }
    data.eip712_signing_hash()
        .map_err(|e| format!("hash: {e}"))?;
    Ok(())
}

fn polymarket_order(overrides: Value) -> Value {
    let mut msg = json!({
        "salt": "1", "maker": KEY, "signer": KEY,
        "taker": "0x0000000000000000000000000000000000000000", "tokenId": "1234",
        "makerAmount": "5000000000", "takerAmount": "1", "expiration": "1800003600",
        "nonce": "0", "feeRateBps": "0", "side": 0, "signatureType": 0
    });
    for (k, v) in overrides.as_object().unwrap() {
        msg[k] = v.clone();
    }
    json!({
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"}, {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Order": [{"name": "salt", "type": "uint256"}, {"name": "maker", "type": "address"}, {"name": "signer", "type": "address"}, {"name": "taker", "type": "address"}, {"name": "tokenId", "type": "uint256"}, {"name": "makerAmount", "type": "uint256"}, {"name": "takerAmount", "type": "uint256"}, {"name": "expiration", "type": "uint256"}, {"name": "nonce", "type": "uint256"}, {"name": "feeRateBps", "type": "uint256"}, {"name": "side", "type": "uint8"}, {"name": "signatureType", "type": "uint8"}]
        },
        "domain": {"name": "Polymarket CTF Exchange", "version": "1", "chainId": 137, "verifyingContract": EXCHANGE},
        "primaryType": "Order",
        "message": msg
    })
}

fn permit2_types() -> Value {
    json!({
        "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
        "PermitSingle": [{"name": "details", "type": "PermitDetails"}, {"name": "spender", "type": "address"}, {"name": "sigDeadline", "type": "uint256"}],
        "PermitBatch": [{"name": "details", "type": "PermitDetails[]"}, {"name": "spender", "type": "address"}, {"name": "sigDeadline", "type": "uint256"}],
        "PermitDetails": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint160"}, {"name": "expiration", "type": "uint48"}, {"name": "nonce", "type": "uint48"}]
    })
}

fn permit2(primary: &str, message: Value) -> Value {
    json!({
        "types": permit2_types(),
        "domain": {"name": "Permit2", "chainId": 8453, "verifyingContract": PERMIT2},
        "primaryType": primary,
        "message": message
    })
}

fn good_detail() -> Value {
    json!({"token": USDC_BASE, "amount": "1000", "expiration": "1800000600", "nonce": "0"})
}

fn evil_detail() -> Value {
    // Any token, the largest uint160 amount, the largest uint48 expiration.
    json!({"token": STRANGER, "amount": "1461501637330902918203684832716283019655932542975",
           "expiration": "281474976710655", "nonce": "0"})
}

// ------------------------------------------------------------------------------------------
// HOLES (these fail: each is something signed that the documented policy refuses)
// ------------------------------------------------------------------------------------------

/// `details[].token` etc. are collected into at most 257 values (`collect` stops at 256): the
/// 258th and later elements of a Permit2 `PermitBatch` are never looked at, but are signed.
#[test]
fn regression_permit2_batch_entries_past_the_256th_are_not_checked() {
    let p = Policy::from_toml(DEX).unwrap();
    // Sanity: one evil element alone is refused.
    let alone = permit2(
        "PermitBatch",
        json!({"details": [evil_detail()], "spender": ROUTER, "sigDeadline": "1800000600"}),
    );
    assert!(typed_signed(&p, None, &alone).is_err());
    // 299 harmless elements, then an unlimited allowance on any token, never expiring.
    let mut details: Vec<Value> = (0..299).map(|_| good_detail()).collect();
    details.push(evil_detail());
    let batch = permit2(
        "PermitBatch",
        json!({"details": details, "spender": ROUTER, "sigDeadline": "1800000600"}),
    );
    assert!(
        typed_signed(&p, None, &batch).is_err(),
        "a PermitBatch whose 300th entry grants an unlimited allowance on an unlisted token is signed"
    );
}

/// The same truncation on a declared `fields = { "orders[].maker" = ... }` rule.
#[test]
fn regression_declared_array_field_entries_past_the_256th_are_not_checked() {
    let policy = format!(
        "{MARKET_MAKER}\n[[defaults.typed_data_domains]]\nname = \"Batcher\"\nchain_id = 137\nprimary_types = [\"Batch\"]\nfields = {{ \"orders[].maker\" = {{ equals = \"self\" }}, \"orders[].amount\" = {{ max = \"100\" }} }}\n"
    );
    // (TOML lets this array-of-tables element follow the `[tokens."clob-login"]` section.)
    let p = Policy::from_toml(&policy).unwrap();
    let typed = |orders: Vec<Value>| {
        json!({
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
                "Batch": [{"name": "orders", "type": "Item[]"}],
                "Item": [{"name": "maker", "type": "address"}, {"name": "amount", "type": "uint256"}]
            },
            "domain": {"name": "Batcher", "chainId": 137},
            "primaryType": "Batch",
            "message": {"orders": orders}
        })
    };
    let good = json!({"maker": KEY, "amount": "1"});
    let evil = json!({"maker": STRANGER, "amount": "999999999999999999999"});
    assert!(typed_signed(&p, None, &typed(vec![good.clone(), evil.clone()])).is_err());
    let mut orders: Vec<Value> = (0..300).map(|_| good.clone()).collect();
    orders.push(evil);
    assert!(
        typed_signed(&p, None, &typed(orders)).is_err(),
        "an order list whose 301st element has another maker and a huge amount is signed"
    );
}

/// market-maker.toml reads "expiring within a day" (`expiration = { max_from_now = 86400 }`),
/// but the CTF Exchange treats `expiration = 0` as "never expires"
/// (`if (order.expiration > 0 && order.expiration < block.timestamp) revert OrderExpired()`),
/// and 0 <= now + 86400 passes.
#[test]
fn regression_market_maker_order_that_never_expires() {
    let p = Policy::from_toml(MARKET_MAKER).unwrap();
    assert_eq!(typed_signed(&p, None, &polymarket_order(json!({}))), Ok(()));
    assert!(
        typed_signed(&p, None, &polymarket_order(json!({"expiration": "0"}))).is_err(),
        "an order with expiration 0 (never expires on the CTF Exchange) is signed"
    );
}

/// "an unlimited approval is never allowed": but `increaseAllowance(spender, max_approval)` is
/// allowed on its own, each time, and adds up (USDC.e has it). After one `approve` of 50,000
/// and N increases the exchange may pull (N+1) x 50,000. Nothing counts approvals.
#[test]
fn regression_increase_allowance_accumulates_past_max_approval() {
    let p = Policy::from_toml(MARKET_MAKER).unwrap();
    let approve = call(
        "approve(address,uint256)",
        vec![addr(EXCHANGE), uint(50_000_000_000)],
    );
    assert_eq!(refusal(&p, None, &tx(137, USDCE, 0, approve)), None);
    let increase = call(
        "increaseAllowance(address,uint256)",
        vec![addr(EXCHANGE), uint(50_000_000_000)],
    );
    // Signed every time it is asked: the allowance grows without bound.
    for _ in 0..3 {
        assert_ne!(
            refusal(&p, None, &tx(137, USDCE, 0, increase.clone())),
            None,
            "increaseAllowance(exchange, max_approval) is signed repeatedly: the allowance accumulates past max_approval"
        );
    }
}

/// "The one pinning the most domain fields decides": an operator who adds a declared rule for
/// the Permit2 domain (here, only to require the router as spender) silently drops the
/// built-in `permit2` token, amount and deadline limits, since the declared rule pins 3 domain
/// fields and the built-in one 2. The declared rule reads as a narrowing; it is a widening.
#[test]
fn regression_more_specific_typed_rule_drops_permit2_limits() {
    let policy = format!(
        "{DEX}\n[[defaults.typed_data_domains]]\nname = \"Permit2\"\nchain_id = 8453\nverifying_contract = \"{PERMIT2}\"\nprimary_types = [\"PermitSingle\"]\nfields = {{ spender = {{ equals = \"{ROUTER}\" }} }}\n"
    );
    let p = Policy::from_toml(&policy).unwrap();
    let single = permit2(
        "PermitSingle",
        json!({"details": evil_detail(), "spender": ROUTER, "sigDeadline": "281474976710655"}),
    );
    // Without the extra rule this is refused.
    assert!(typed_signed(&Policy::from_toml(DEX).unwrap(), None, &single).is_err());
    assert!(
        typed_signed(&p, None, &single).is_err(),
        "an unlimited, never-expiring Permit2 allowance on an unlisted token is signed"
    );
}

// ------------------------------------------------------------------------------------------
// HELD (attacks tried that the policy refuses)
// ------------------------------------------------------------------------------------------

fn good_swap() -> Vec<u8> {
    call(
        "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
        vec![
            uint(1_000_000_000),
            uint(0),
            DynSolValue::Array(vec![addr(USDC_BASE), addr(WETH_BASE)]),
            addr(KEY),
            uint(u128::from(NOW + 60)),
        ],
    )
}

#[test]
fn held_non_canonical_calldata_is_refused() {
    let p = Policy::from_toml(DEX).unwrap();
    let send = |d: Vec<u8>| refusal(&p, None, &tx(8453, ROUTER, 0, d));
    let good = good_swap();
    assert_eq!(send(good.clone()), None);

    // Trailing bytes.
    let mut t = good.clone();
    t.push(0);
    assert_eq!(send(t), Some("calldata_not_decodable"));
    let mut t = good.clone();
    t.extend([0u8; 32]);
    assert_eq!(send(t), Some("calldata_not_decodable"));

    // Dirty padding on `to` (word 3): the high bytes set, low 20 bytes = self.
    let mut t = good.clone();
    t[4 + 3 * 32] = 0x01;
    assert_eq!(send(t), Some("calldata_not_decodable"));
    // Dirty padding on a path element.
    let mut t = good.clone();
    let first_elem = 4 + 5 * 32 + 32; // after the head and the array length
    t[first_elem] = 0xff;
    assert_eq!(send(t), Some("calldata_not_decodable"));

    // The path offset pointing at a second, evil array appended after the good one: a
    // contract reads the evil path. Canonical re-encoding differs, so refused.
    let mut t = good.clone();
    let evil_at = (t.len() - 4) as u64;
    t.extend(U256::from(2u64).to_be_bytes::<32>());
    t.extend([0u8; 12]);
    t.extend(a(STRANGER).as_slice());
    t.extend([0u8; 12]);
    t.extend(a(WETH_BASE).as_slice());
    t[4 + 2 * 32..4 + 3 * 32].copy_from_slice(&U256::from(evil_at).to_be_bytes::<32>());
    assert_eq!(send(t), Some("calldata_not_decodable"));

    // Truncated, selector only, shorter than a selector.
    assert_eq!(
        send(good[..good.len() - 32].to_vec()),
        Some("calldata_not_decodable")
    );
    assert_eq!(send(good[..4].to_vec()), Some("calldata_not_decodable"));
    assert_eq!(send(good[..3].to_vec()), Some("selector_not_allowed"));

    // A path through a token not listed, and paying someone else.
    let bad = call(
        "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
        vec![
            uint(1),
            uint(0),
            DynSolValue::Array(vec![addr(USDC_BASE), addr(STRANGER)]),
            addr(KEY),
            uint(u128::from(NOW)),
        ],
    );
    assert_eq!(send(bad), Some("argument_not_allowed"));

    // The same router on Arbitrum (not its chain), and ether to it.
    assert_eq!(
        refusal(&p, None, &tx(42161, ROUTER, 0, good_swap())),
        Some("recipient_not_allowed")
    );
    assert_eq!(
        refusal(&p, None, &tx(8453, ROUTER, 1, good_swap())),
        Some("value_too_high")
    );
}

#[test]
fn held_erc20_dirty_padding_and_semantics() {
    let mm = Policy::from_toml(MARKET_MAKER).unwrap();
    // approve with dirty high bytes on the spender.
    let mut d = call("approve(address,uint256)", vec![addr(EXCHANGE), uint(1)]);
    d[4] = 0x01;
    assert_eq!(
        refusal(&mm, None, &tx(137, USDCE, 0, d)),
        Some("calldata_not_decodable")
    );
    // approve above the cap, to someone else; transfer and transferFrom not allowed at all.
    let over = call(
        "approve(address,uint256)",
        vec![addr(EXCHANGE), uint(50_000_000_001)],
    );
    assert_eq!(
        refusal(&mm, None, &tx(137, USDCE, 0, over)),
        Some("approval_too_high")
    );
    let other = call("approve(address,uint256)", vec![addr(STRANGER), uint(1)]);
    assert_eq!(
        refusal(&mm, None, &tx(137, USDCE, 0, other)),
        Some("approval_spender_not_allowed")
    );
    let tf = call(
        "transferFrom(address,address,uint256)",
        vec![addr(KEY), addr(STRANGER), uint(1)],
    );
    assert_eq!(
        refusal(&mm, None, &tx(137, USDCE, 0, tf)),
        Some("selector_not_allowed")
    );
    let dec = call(
        "decreaseAllowance(address,uint256)",
        vec![addr(EXCHANGE), uint(1)],
    );
    assert_eq!(
        refusal(&mm, None, &tx(137, USDCE, 0, dec)),
        Some("selector_not_allowed")
    );

    // Treasury: transferFrom (100 bytes) is stopped by max_calldata_bytes = 68; transfer
    // to a stranger or above the cap is refused; a window charge is made per chain.
    let tr = Policy::from_toml(TREASURY).unwrap();
    let tf = call(
        "transferFrom(address,address,uint256)",
        vec![addr(STRANGER), addr(PAYROLL), uint(1)],
    );
    assert_eq!(
        refusal(&tr, None, &tx(1, USDC_MAINNET, 0, tf)),
        Some("calldata_too_large")
    );
    let ok = call(
        "transfer(address,uint256)",
        vec![addr(PAYROLL), uint(10_000_000_000)],
    );
    let t = tx(1, USDC_MAINNET, 0, ok);
    assert_eq!(refusal(&tr, None, &t), None);
    let ev = evaluate(&tr, &a(KEY), None, &Request::Transaction(&t), None, NOW);
    assert!(ev
        .spend_windows
        .iter()
        .any(|c| c.bucket.ends_with(&format!(":erc20:1:{USDC_MAINNET}"))
            && c.amount == U256::from(10_000_000_000u64)));
    // transferFrom is counted in the token window too (policy with room for it).
    let roomy = TREASURY.replace("max_calldata_bytes = 68", "max_calldata_bytes = 100");
    let roomy = Policy::from_toml(&roomy).unwrap();
    let tf = call(
        "transferFrom(address,address,uint256)",
        vec![addr(KEY), addr(PAYROLL), uint(7)],
    );
    let t = tx(1, USDC_MAINNET, 0, tf);
    assert_eq!(refusal(&roomy, None, &t), None);
    let ev = evaluate(&roomy, &a(KEY), None, &Request::Transaction(&t), None, NOW);
    assert!(ev
        .spend_windows
        .iter()
        .any(|c| c.amount == U256::from(7u64) && c.bucket.contains(":erc20:1:")));
}

#[test]
fn held_dotted_tuple_paths() {
    let base = |extra: &str| {
        format!(
            "[defaults]\nchain_ids = [1]\nrecipients = []\nmax_value_wei = \"0\"\nmax_gas = 1000000\nmax_fee_per_gas_wei = \"100000000000\"\nmax_priority_fee_per_gas_wei = \"100000000000\"\nmax_calldata_bytes = 4096\n{extra}"
        )
    };
    // alloy's signature parser takes no names inside a tuple, so the documented
    // `params.recipient` cannot be written (a loud parse error); `params.3` can.
    let sig = "exactInputSingle((address,address,uint24,address,uint256,uint256,uint160) params)";
    let named = |arg: &str| {
        base(&format!(
            "contracts = [{{ address = \"{ROUTER}\", functions = [{{ signature = \"{sig}\", args = {{ \"{arg}\" = {{ equals = \"self\" }} }} }}] }}]\n"
        ))
    };
    assert!(Policy::from_toml(&named("params.recipient")).is_err());
    assert!(Policy::from_toml(&named("params.9")).is_err());
    assert!(Policy::from_toml(&named("params.2")).is_err()); // uint24: `equals` does not fit
    let p = Policy::from_toml(&named("params.3")).unwrap();
    let enc = |recipient: &str| {
        call(
            "exactInputSingle((address,address,uint24,address,uint256,uint256,uint160))",
            vec![DynSolValue::Tuple(vec![
                addr(USDC_BASE),
                addr(WETH_BASE),
                DynSolValue::Uint(U256::from(500), 24),
                addr(recipient),
                uint(1),
                uint(0),
                DynSolValue::Uint(U256::ZERO, 160),
            ])],
        )
    };
    assert_eq!(refusal(&p, None, &tx(1, ROUTER, 0, enc(KEY))), None);
    assert_eq!(
        refusal(&p, None, &tx(1, ROUTER, 0, enc(STRANGER))),
        Some("argument_not_allowed")
    );
    // A dotted path into an array of tuples: either a parse error or refused (fail closed).
    let legs = "pay((address,uint256)[] legs)";
    if let Ok(p) = Policy::from_toml(&base(&format!(
        "contracts = [{{ address = \"{ROUTER}\", functions = [{{ signature = \"{legs}\", args = {{ \"legs.0\" = {{ equals = \"self\" }} }} }}] }}]\n"
    ))) {
        let d = call(
            "pay((address,uint256)[])",
            vec![DynSolValue::Array(vec![DynSolValue::Tuple(vec![addr(STRANGER), uint(1)])])],
        );
        assert_ne!(refusal(&p, None, &tx(1, ROUTER, 0, d)), None);
    }
    // Selector collisions / duplicates are parse errors.
    for extra in [
        format!("erc20 = [{{ token = \"{USDCE}\", approve = [\"{EXCHANGE}\"], max_approval = \"1\" }}]\ncontracts = [{{ address = \"{USDCE}\", selectors = [\"0x095ea7b3\"] }}]\n"),
        format!("contracts = [{{ address = \"{ROUTER}\", selectors = [\"0xa9059cbb\"], functions = [{{ signature = \"transfer(address x, uint256 y)\" }}] }}]\n"),
        format!("contracts = [{{ address = \"{ROUTER}\", selectors = [\"*\", \"0xa9059cbb\"] }}]\n"),
        format!("contracts = [{{ address = \"{ROUTER}\", selectors = [\"0xa9059cbb\"] }}, {{ address = \"{ROUTER}\", chain_ids = [1], selectors = [\"*\"] }}]\n"),
    ] {
        assert!(Policy::from_toml(&base(&extra)).is_err(), "{extra}");
    }
}

#[test]
fn held_typed_data_number_and_address_encodings() {
    let p = Policy::from_toml(MARKET_MAKER).unwrap();
    let over: Vec<Value> = vec![
        json!("5000000001"),
        json!("0x12a05f201"),
        json!("0X12A05F201"),
        json!("0b100101010000001011111001000000001"),
        json!("0o45201371001"),
        json!(5_000_000_001u64),
        json!(u64::MAX),
        json!(1e30),
        json!(5.0e9),
        json!("-1"),
        json!(-1),
        json!(" 5000000001"),
        json!("5000000001 "),
        json!("+5000000001"),
        json!("5_000_000_001"),
        json!("5000000001.0"),
        json!("5e9"),
        json!("5 gwei"),
        json!("115792089237316195423570985008687907853269984665640564039457584007913129639936"),
        json!(null),
        json!(true),
        json!(["1"]),
    ];
    for v in over {
        let req = polymarket_order(json!({ "makerAmount": v.clone() }));
        assert!(
            typed_signed(&p, None, &req).is_err(),
            "makerAmount {v} is signed"
        );
    }
    // Representations of an allowed amount may be signed (same value either way).
    assert_eq!(
        typed_signed(
            &p,
            None,
            &polymarket_order(json!({"makerAmount": 5_000_000_000u64}))
        ),
        Ok(())
    );
    // Another maker, in every spelling, and a bad checksum.
    for m in [
        STRANGER.to_string(),
        STRANGER.to_uppercase().replace("0X", "0x"),
        "0x7E57000000000000000000000000000000000002".into(),
        STRANGER.trim_start_matches("0x").to_string(),
        format!(
            "0x000000000000000000000000{}",
            STRANGER.trim_start_matches("0x")
        ),
        "0x7e5700000000000000000000000000000000001".into(),
    ] {
        let req = polymarket_order(json!({ "maker": m.clone() }));
        assert!(typed_signed(&p, None, &req).is_err(), "maker {m} is signed");
    }
    // Self in upper case or wrong-checksum mixed case: same address or refused, never another.
    let up = format!("0x{}", KEY.trim_start_matches("0x").to_uppercase());
    assert_eq!(
        typed_signed(&p, None, &polymarket_order(json!({ "maker": up }))),
        Ok(())
    );

    // Duplicate keys in a typed-data string: one parse (last wins) feeds policy and hash.
    let text = serde_json::to_string(&polymarket_order(json!({})))
        .unwrap()
        .replacen(
            "\"makerAmount\":\"5000000000\"",
            "\"makerAmount\":\"1\",\"makerAmount\":\"9000000000\"",
            1,
        );
    assert!(text.contains("9000000000"));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(typed_signed(&p, None, &v).is_err());
    // A taker other than zero, an expiry beyond a day.
    assert!(typed_signed(&p, None, &polymarket_order(json!({"taker": STRANGER}))).is_err());
    assert!(typed_signed(
        &p,
        None,
        &polymarket_order(json!({"expiration": "1800086401"}))
    )
    .is_err());
}

#[test]
fn held_typed_data_domain_and_type_tricks() {
    let p = Policy::from_toml(MARKET_MAKER).unwrap();
    let with_domain = |domain: Value, primary: &str| {
        // A message the exchange rule allows: only the domain or the type is the trick.
        let mut v = polymarket_order(json!({}));
        v["domain"] = domain;
        v["primaryType"] = json!(primary);
        v
    };
    // No verifying contract: the exchange rule does not match, nothing else names Order.
    let d = json!({"name": "Polymarket CTF Exchange", "version": "1", "chainId": 137});
    assert_eq!(
        typed_signed(&p, None, &with_domain(d, "Order")),
        Err("typed_data_domain_not_allowed".into())
    );
    // No chainId, another chain, a look-alike name, another version.
    for d in [
        json!({"name": "Polymarket CTF Exchange", "version": "1", "verifyingContract": EXCHANGE}),
        json!({"name": "Polymarket CTF Exchange", "version": "1", "chainId": 80002, "verifyingContract": EXCHANGE}),
        json!({"name": "Polymarket CTF Exchange ", "version": "1", "chainId": 137, "verifyingContract": EXCHANGE}),
        json!({"name": "Polymarket CTF Exchange", "version": "2", "chainId": 137, "verifyingContract": EXCHANGE}),
    ] {
        assert!(
            typed_signed(&p, None, &with_domain(d.clone(), "Order")).is_err(),
            "{d}"
        );
    }
    // An Order under the ClobAuth domain (no field rules there for Order): type not named.
    let d = json!({"name": "ClobAuthDomain", "version": "1", "chainId": 137});
    assert!(typed_signed(&p, None, &with_domain(d, "Order")).is_err());
    // The ClobAuth domain plus a verifying contract: the ClobAuth rule still applies, with its
    // field rule (documented: unpinned domain fields may be anything).
    let d = json!({"name": "ClobAuthDomain", "version": "1", "chainId": 137, "verifyingContract": EXCHANGE});
    assert!(typed_signed(&p, None, &with_domain(d, "Order")).is_err());
    // primaryType EIP712Domain, or a type that is not listed.
    let d = json!({"name": "Polymarket CTF Exchange", "version": "1", "chainId": 137, "verifyingContract": EXCHANGE});
    assert!(typed_signed(&p, None, &with_domain(d.clone(), "EIP712Domain")).is_err());
    let mut v = with_domain(d, "Order");
    v["types"]["Permit"] =
        json!([{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}]);
    v["primaryType"] = json!("Permit");
    v["message"] = json!({"owner": KEY, "spender": STRANGER});
    assert!(typed_signed(&p, None, &v).is_err());
    // The login-only credential cannot sign orders, even valid ones.
    assert!(typed_signed(&p, Some("clob-login"), &polymarket_order(json!({}))).is_err());
}

#[test]
fn held_typed_data_struct_shape_tricks() {
    let p = Policy::from_toml(DEX).unwrap();
    let ok = permit2(
        "PermitBatch",
        json!({"details": [good_detail()], "spender": ROUTER, "sigDeadline": "1800000600"}),
    );
    assert_eq!(typed_signed(&p, None, &ok), Ok(()));
    // An element given positionally (an array, invisible to `details[].token`), an element
    // missing its token, and a struct given as an array: alloy refuses to hash these.
    let positional = json!([
        STRANGER,
        "1461501637330902918203684832716283019655932542975",
        "281474976710655",
        "0"
    ]);
    let missing = json!({"amount": "1461501637330902918203684832716283019655932542975", "expiration": "1", "nonce": "0"});
    for extra in [positional.clone(), missing] {
        let v = permit2(
            "PermitBatch",
            json!({"details": [good_detail(), extra], "spender": ROUTER, "sigDeadline": "1800000600"}),
        );
        assert!(typed_signed(&p, None, &v).is_err());
    }
    let v = permit2(
        "PermitSingle",
        json!({"details": positional, "spender": ROUTER, "sigDeadline": "1800000600"}),
    );
    assert!(typed_signed(&p, None, &v).is_err());
    // An empty batch, another spender, too far a deadline.
    for m in [
        json!({"details": [], "spender": ROUTER, "sigDeadline": "1800000600"}),
        json!({"details": [good_detail()], "spender": STRANGER, "sigDeadline": "1800000600"}),
        json!({"details": [good_detail()], "spender": ROUTER, "sigDeadline": "1800001801"}),
    ] {
        assert!(
            typed_signed(&p, None, &permit2("PermitBatch", m.clone())).is_err(),
            "{m}"
        );
    }
    // Permit2 on another chain or another address.
    let mut v = ok.clone();
    v["domain"]["chainId"] = json!(42161);
    assert!(typed_signed(&p, None, &v).is_err());
    let mut v = ok;
    v["domain"]["verifyingContract"] = json!(STRANGER);
    assert!(typed_signed(&p, None, &v).is_err());
}

#[test]
fn held_personal_messages() {
    let base = |extra: &str| {
        format!(
            "[defaults]\nchain_ids = [1]\nrecipients = []\nmax_value_wei = \"0\"\nmax_gas = 1\nmax_fee_per_gas_wei = \"1\"\nmax_priority_fee_per_gas_wei = \"1\"\nmax_calldata_bytes = 0\n{extra}"
        )
    };
    let p = Policy::from_toml(&base(
        "allow_personal_sign = true\npersonal_sign_prefixes = [\"Sign in to example.com\"]\npersonal_sign_patterns = [\"Order * for *.\"]\n",
    ))
    .unwrap();
    assert_eq!(message(&p, None, b"Sign in to example.com"), None);
    assert_eq!(message(&p, None, "Order 1 for é.".as_bytes()), None);
    for m in [
        "Sign in to ex\u{0430}mple.com".as_bytes(), // Cyrillic a
        "\u{feff}Sign in to example.com".as_bytes(),
        b"sign in to example.com",
        b"Order 1 for 2",
        b"Order  for .x",
        b"",
        &[0xff, 0xfe, b'S'],
        b"Sign in to example.co\xff",
    ] {
        assert_eq!(message(&p, None, m), Some("message_not_allowed"), "{m:?}");
    }
    // Non-UTF-8 after a valid prefix.
    let mut m = b"Sign in to example.com".to_vec();
    m.push(0xc0);
    assert_eq!(message(&p, None, &m), Some("message_not_allowed"));
    // A pathological pattern against a large message: bounded time.
    let pat = format!("{}b", "a*".repeat(500));
    let q = Policy::from_toml(&base(&format!(
        "allow_personal_sign = true\npersonal_sign_patterns = [\"{pat}\"]\n"
    )))
    .unwrap();
    let big = vec![b'a'; 200_000];
    // (The match searches each segment once, from where the last one matched: no backtracking,
    // so a pathological pattern costs at most pattern × text. Not timed here: speed belongs in
    // benchmarks.)
    assert_eq!(message(&q, None, &big), Some("message_not_allowed"));
    // Empty patterns, patterns without allow_personal_sign: parse errors. Disallowed key.
    assert!(Policy::from_toml(&base(
        "allow_personal_sign = true\npersonal_sign_patterns = [\"\"]\n"
    ))
    .is_err());
    assert!(Policy::from_toml(&base("personal_sign_prefixes = [\"x\"]\n")).is_err());
    let none = Policy::from_toml(&base("")).unwrap();
    assert_eq!(
        message(&none, None, b"hi"),
        Some("message_signing_not_allowed")
    );
}

#[test]
fn held_overlays_cannot_widen() {
    let stranger_contract =
        format!("contracts = [{{ address = \"{STRANGER}\", selectors = [\"*\"] }}]\n");
    for inherit in ["inherit = true\n", ""] {
        let overlay = format!(
            "\n[tokens.bot]\n{inherit}chain_ids = [1, 8453, 10]\nrecipients = [\"*\"]\nmax_value_wei = \"1000000000000000000000\"\nmax_gas = 30000000\nmax_fee_per_gas_wei = \"1000000000000000\"\nmax_priority_fee_per_gas_wei = \"1000000000000000\"\nmax_calldata_bytes = 100000\nallow_contract_creation = true\nallow_personal_sign = true\npayees = [{{ address = \"{PAYROLL}\", max_value_wei = \"1000000000000000000000\" }}, {{ address = \"{STRANGER}\", max_value_wei = \"1000000000000000000000\" }}]\n{stranger_contract}typed_data_domains = [{{ name = \"X\", primary_types = [\"Y\"] }}]\nerc20 = [{{ token = \"{USDC_MAINNET}\", transfer_to = [\"{STRANGER}\"], approve = [\"{STRANGER}\"], max_approval = \"1000000000000000000000\" }}]\n"
        );
        let p = Policy::from_toml(&format!("{TREASURY}{overlay}")).unwrap();
        let bot = Some("bot");
        assert_eq!(
            refusal(&p, bot, &tx(1, STRANGER, 1, vec![])),
            Some("recipient_not_allowed")
        );
        assert_eq!(
            refusal(&p, bot, &tx(1, PAYROLL, 3_000_000_000_000_000_000, vec![])),
            Some("value_too_high")
        );
        assert_ne!(refusal(&p, bot, &tx(10, PAYROLL, 1, vec![])), None);
        assert_ne!(
            refusal(&p, bot, &tx(1, STRANGER, 0, vec![0xde, 0xad, 0xbe, 0xef])),
            None
        );
        let t = call("transfer(address,uint256)", vec![addr(STRANGER), uint(1)]);
        assert_ne!(refusal(&p, bot, &tx(1, USDC_MAINNET, 0, t)), None);
        let ap = call("approve(address,uint256)", vec![addr(STRANGER), uint(1)]);
        assert_ne!(refusal(&p, bot, &tx(1, USDC_MAINNET, 0, ap)), None);
        let mut deploy = tx(1, STRANGER, 0, vec![0x60, 0x00]);
        deploy.to = None;
        assert_ne!(refusal(&p, bot, &deploy), None);
        assert_eq!(message(&p, bot, b"hi"), Some("message_signing_not_allowed"));
        let v = json!({"types": {"EIP712Domain": [{"name": "name", "type": "string"}], "Y": [{"name": "a", "type": "uint256"}]},
                       "domain": {"name": "X"}, "primaryType": "Y", "message": {"a": "1"}});
        assert!(typed_signed(&p, bot, &v).is_err());
    }
    // The login overlay of the market maker: `erc20 = []` really means no calldata.
    let mm = Policy::from_toml(MARKET_MAKER).unwrap();
    let ap = call("approve(address,uint256)", vec![addr(EXCHANGE), uint(1)]);
    assert_eq!(refusal(&mm, None, &tx(137, USDCE, 0, ap.clone())), None);
    assert_eq!(
        refusal(&mm, Some("clob-login"), &tx(137, USDCE, 0, ap)),
        Some("selector_not_allowed")
    );
    // `inherit` outside a credential section is a parse error.
    assert!(
        Policy::from_toml(&TREASURY.replace("[defaults]", "[defaults]\ninherit = true")).is_err()
    );
}

#[test]
fn held_payees_and_chain_scoping() {
    let p = Policy::from_toml(TREASURY).unwrap();
    // Cold storage is a payee on mainnet only.
    assert_eq!(
        refusal(&p, None, &tx(8453, COLD, 1, vec![])),
        Some("recipient_not_allowed")
    );
    assert_eq!(
        refusal(&p, None, &tx(1, COLD, 50_000_000_000_000_000_000, vec![])),
        None
    );
    assert_eq!(
        refusal(&p, None, &tx(1, COLD, 50_000_000_000_000_000_001, vec![])),
        Some("value_too_high")
    );
    // A payee is not a contract: calldata to it is refused, with or without ether.
    let d = call("transfer(address,uint256)", vec![addr(STRANGER), uint(1)]);
    assert_eq!(
        refusal(&p, None, &tx(1, PAYROLL, 1, d.clone())),
        Some("selector_not_allowed")
    );
    assert_eq!(
        refusal(&p, None, &tx(1, PAYROLL, 0, d)),
        Some("selector_not_allowed")
    );
    // USDC on Base to cold storage (a payee on mainnet only), ether with a token transfer.
    let t = call("transfer(address,uint256)", vec![addr(COLD), uint(1)]);
    assert_eq!(
        refusal(&p, None, &tx(8453, USDC_BASE, 0, t)),
        Some("token_recipient_not_allowed")
    );
    let t = call("transfer(address,uint256)", vec![addr(PAYROLL), uint(1)]);
    assert_eq!(
        refusal(&p, None, &tx(1, USDC_MAINNET, 1, t.clone())),
        Some("value_too_high")
    );
    // The mainnet USDC address on Base is not the token rule's.
    assert_eq!(
        refusal(&p, None, &tx(8453, USDC_MAINNET, 0, t)),
        Some("recipient_not_allowed")
    );
    // A payee's chain outside the rule set, a payee twice: parse errors.
    assert!(
        Policy::from_toml(&TREASURY.replace("chain_ids = [1] }", "chain_ids = [10] }")).is_err()
    );
    let twice = TREASURY.replace(
        "payees = [",
        &format!(
            "payees = [{{ address = \"{}\", max_value_wei = \"1\" }},",
            PAYROLL.to_uppercase().replace("0X", "0x")
        ),
    );
    assert!(Policy::from_toml(&twice).is_err());
}

#[test]
fn held_parse_tricks() {
    let base = |extra: &str| {
        format!(
            "[defaults]\nchain_ids = [1]\nrecipients = []\nmax_value_wei = \"0\"\nmax_gas = 1\nmax_fee_per_gas_wei = \"1\"\nmax_priority_fee_per_gas_wei = \"1\"\nmax_calldata_bytes = 0\n{extra}"
        )
    };
    let section = |name: &str| {
        format!(
            "\n[keys.\"{name}\"]\nchain_ids = [1]\nrecipients = [\"*\"]\nmax_value_wei = \"1000\"\nmax_gas = 1\nmax_fee_per_gas_wei = \"1\"\nmax_priority_fee_per_gas_wei = \"1\"\nmax_calldata_bytes = 0\n"
        )
    };
    let lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
    let check = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    let bare = "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
    for (x, y) in [
        (lower, check),
        (lower, bare),
        (lower, " 0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"),
    ] {
        let t = base(&format!("{}{}", section(x), section(y)));
        assert!(Policy::from_toml(&t).is_err(), "{x} / {y}");
    }
    for bad in [
        "recipients = [\"*\", \"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed\"]",
        "recipients = [\" *\"]",
        "recipients = [\"self\"]",
        "recipients = [\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD\"]", // bad checksum
        "recipients = [\"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae\"]",  // 19.5 bytes
    ] {
        let t = base("").replace("recipients = []", bad);
        assert!(Policy::from_toml(&t).is_err(), "{bad}");
    }
    for bad in [
        format!("erc20 = [{{ token = \"{USDCE}\", transfer_to = [\"*\"] }}]"),
        format!("erc20 = [{{ token = \"{USDCE}\", approve = [\"{EXCHANGE}\"] }}]"),
        format!("erc20 = [{{ token = \"{USDCE}\", max_approval = \"1\" }}]"),
        format!("contracts = [{{ address = \"{ROUTER}\", selectors = [\"0xa9059cbb\", \"0xA9059CBB\"] }}]"),
        format!("contracts = [{{ address = \"{ROUTER}\", chain_ids = [2], selectors = [\"*\"] }}]"),
        format!("contracts = [{{ address = \"{ROUTER}\" }}]"),
        "typed_data_domains = [{ name = \"A\", primary_types = [\"*\"] }]".into(),
        "typed_data_domains = [{ name = \"A\", primary_types = [\" Order\"] }]".into(),
        "typed_data_domains = [{ primary_types = [\"Order\"] }]".into(),
        "typed_data_domains = [{ name = \"A\", primary_types = [\"Order\"] }, { name = \"A\", primary_types = [\"Order\", \"X\"] }]".into(),
        format!("contracts = [{{ address = \"{ROUTER}\", functions = [{{ signature = \"f(address to)\", args = {{ to = {{ max = \"1\" }} }} }}] }}]"),
        format!("contracts = [{{ address = \"{ROUTER}\", functions = [{{ signature = \"f(address to)\", args = {{ to = {{ in = [] }} }} }}] }}]"),
        format!("contracts = [{{ address = \"{ROUTER}\", functions = [{{ signature = \"f(address to)\", args = {{ to = {{ equals = \"self\", in = [\"self\"] }} }} }}] }}]"),
        format!("contracts = [{{ address = \"{ROUTER}\", functions = [{{ signature = \"f(address to)\", args = {{ params.to = {{ equals = \"self\" }} }} }}] }}]"),
        "spend_window = { window_secs = 0, max_total_wei = \"1\", max_count = 1 }".into(),
        "max_value_wei = -1".into(),
        "unknown_field = 1".into(),
    ] {
        let t = base(&format!("{bad}\n"));
        let t = if bad.starts_with("max_value_wei") {
            t.replace("max_value_wei = \"0\"\n", "")
        } else {
            t
        };
        assert!(Policy::from_toml(&t).is_err(), "{bad}");
    }
    // A required field left out of a complete (non-inherit) credential section.
    let t = base("\n[tokens.bot]\nchain_ids = [1]\n");
    assert!(Policy::from_toml(&t).is_err());
}
