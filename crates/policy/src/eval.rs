//! Evaluation: every rule of every applicable rule set, each with a reason code.

use alloy_primitives::{Address, U256};

use crate::intent::Intent;
use crate::model::{CallRule, Policy, Recipients, RuleSet, SpendWindow, TypedRule};

/// What a transaction decodes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFacts {
    /// The EIP-155 chain id.
    pub chain_id: u64,
    /// `None`: contract creation.
    pub to: Option<Address>,
    /// Wei sent.
    pub value: U256,
    /// The gas limit.
    pub gas: u64,
    /// Legacy and EIP-2930.
    pub gas_price: Option<u128>,
    /// EIP-1559.
    pub max_fee_per_gas: Option<u128>,
    /// EIP-1559 tip cap.
    pub max_priority_fee_per_gas: Option<u128>,
    /// Calldata.
    pub data: Vec<u8>,
}

/// What is to be signed.
#[derive(Debug, Clone)]
pub enum Request<'a> {
    /// A transaction.
    Transaction(&'a TxFacts),
    /// An EIP-191 personal message (`eth_sign`, `personal_sign`), its bytes.
    PersonalMessage(&'a [u8]),
    /// EIP-712 typed data.
    TypedData(TypedFacts<'a>),
}

/// What EIP-712 typed data is: its domain, message type and message.
#[derive(Debug, Clone)]
pub struct TypedFacts<'a> {
    /// The domain's `name`, when it has one.
    pub name: Option<&'a str>,
    /// The domain's `version`, when it has one.
    pub version: Option<&'a str>,
    /// The domain's chain id, when it names one.
    pub chain_id: Option<u64>,
    /// The domain's verifying contract, when it names one.
    pub verifying_contract: Option<Address>,
    /// The message's primary type.
    pub primary_type: &'a str,
    /// The message (fields by name; addresses and integers as JSON strings or numbers).
    pub message: &'a serde_json::Value,
    /// The message looks like it grants an allowance (a permit, an approval): only changes
    /// the reason code of a refusal; every type must be named anyway.
    pub approval: bool,
}

/// One rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Which rule set: `key`, `defaults` or `token NAME`.
    pub source: String,
    /// The rule, named by the reason code it refuses with.
    pub rule: &'static str,
    /// The check passed.
    pub passed: bool,
    /// What the rule saw (bounded; no request text beyond values it checked).
    pub detail: String,
}

/// One spend window's charge for a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The ledger bucket: `key:ADDRESS` (ether) or `key:ADDRESS:erc20:CHAIN:TOKEN`, and for a
    /// credential's rule set the same after `token:NAME:` instead of `key:`.
    pub bucket: String,
    /// The window.
    pub window: SpendWindow,
    /// What this transaction counts: wei (value, plus gas × fee cap with `count_gas`) or the
    /// token amount moved.
    pub amount: U256,
    /// The unit, for explanations: `wei` or `TOKEN on chain N`.
    pub unit: String,
}

/// Every check made, and the spend windows that must also hold.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Every check made, in order.
    pub checks: Vec<Check>,
    /// What the transaction charges to each spend window; each must admit its charge (the
    /// caller's shared ledger decides).
    pub spend_windows: Vec<Charge>,
}

impl Evaluation {
    /// Every check passed.
    pub fn allowed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The first failed check: the reason code of a refusal.
    pub fn refusal(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.passed)
    }
}

struct Out<'a> {
    source: &'a str,
    checks: &'a mut Vec<Check>,
}

impl Out<'_> {
    /// An explanation that decides nothing (shown by `policy check`).
    fn note(&mut self, detail: String) {
        self.checks.push(Check {
            source: self.source.to_string(),
            rule: "note",
            passed: true,
            detail,
        });
    }

    fn rule(&mut self, rule: &'static str, passed: bool, detail: impl FnOnce() -> String) {
        self.checks.push(Check {
            source: self.source.to_string(),
            rule,
            passed,
            detail: detail(),
        });
    }
}

fn cap(out: &mut Out<'_>, rule: &'static str, what: &str, v: Option<U256>, max: Option<U256>) {
    if let (Some(v), Some(max)) = (v, max) {
        out.rule(rule, v <= max, || format!("{what} {v} (limit {max})"));
    }
}

/// What every check needs besides the request: the signing key and the time.
struct Ctx<'a> {
    key: &'a Address,
    now_secs: u64,
}

fn on_chain(chains: &Option<std::collections::BTreeSet<u64>>, chain: u64) -> bool {
    chains.as_ref().is_none_or(|c| c.contains(&chain))
}

fn evaluate_set(
    rs: &RuleSet,
    out: &mut Out<'_>,
    req: &Request<'_>,
    intent: Option<&Intent>,
    ctx: &Ctx<'_>,
) {
    match req {
        Request::Transaction(tx) => transaction(rs, out, tx, intent, ctx),
        Request::PersonalMessage(m) => {
            if let Some(allow) = rs.allow_personal_sign {
                out.rule("message_signing_not_allowed", allow, || {
                    "EIP-191 personal message".into()
                });
            }
            if !rs.personal_sign_prefixes.is_empty() || !rs.personal_sign_patterns.is_empty() {
                let text = std::str::from_utf8(m).ok();
                let ok = text.is_some_and(|t| {
                    rs.personal_sign_prefixes
                        .iter()
                        .any(|p| t.starts_with(p.as_str()))
                        || rs.personal_sign_patterns.iter().any(|p| glob(p, t))
                });
                out.rule("message_not_allowed", ok, || match text {
                    None => "the message is not UTF-8 text".into(),
                    Some(t) => format!("message {:?}… matches no prefix or pattern", bounded(t)),
                });
            }
        }
        Request::TypedData(t) => typed(rs, out, t, ctx),
    }
}

fn transaction(
    rs: &RuleSet,
    out: &mut Out<'_>,
    tx: &TxFacts,
    intent: Option<&Intent>,
    ctx: &Ctx<'_>,
) {
    if let Some(chains) = &rs.chain_ids {
        out.rule(
            "chain_id_not_allowed",
            chains.contains(&tx.chain_id),
            || format!("chain id {}", tx.chain_id),
        );
    }
    let payee = tx.to.and_then(|to| {
        rs.payees
            .iter()
            .find(|p| p.address == to && on_chain(&p.chains, tx.chain_id))
    });
    match tx.to {
        None => {
            if let Some(allow) = rs.allow_contract_creation {
                out.rule("contract_creation_not_allowed", allow, || {
                    "contract creation".into()
                });
            }
        }
        Some(to) => {
            let calls = rs.calls.as_ref().map(|c| {
                c.iter()
                    .filter(|c| c.applies(&to, tx.chain_id))
                    .collect::<Vec<_>>()
            });
            if let Some(r) = &rs.recipients {
                // A contract the rule set lets calldata call, and a payee, are recipients too.
                let called = !tx.data.is_empty() && calls.as_ref().is_some_and(|c| !c.is_empty());
                let ok = match r {
                    Recipients::Any => true,
                    Recipients::Only(set) => set.contains(&to) || payee.is_some() || called,
                };
                out.rule("recipient_not_allowed", ok, || format!("recipient {to}"));
            }
            if let (false, Some(calls)) = (tx.data.is_empty(), calls) {
                calldata(out, &to, tx, &calls, ctx);
            }
        }
    }
    match payee {
        Some(p) => out.rule("value_too_high", tx.value <= p.max_value_wei, || {
            format!(
                "value {} (limit {} for payee {})",
                tx.value, p.max_value_wei, p.address
            )
        }),
        None => cap(
            out,
            "value_too_high",
            "value",
            Some(tx.value),
            rs.max_value_wei,
        ),
    }
    if let Some(max) = rs.max_gas {
        out.rule("gas_too_high", tx.gas <= max, || {
            format!("gas {} (limit {max})", tx.gas)
        });
    }
    cap(
        out,
        "gas_price_too_high",
        "gas price",
        tx.gas_price.map(U256::from),
        rs.max_gas_price_wei,
    );
    cap(
        out,
        "max_fee_too_high",
        "max fee per gas",
        tx.max_fee_per_gas.map(U256::from),
        rs.max_fee_per_gas_wei,
    );
    cap(
        out,
        "priority_fee_too_high",
        "max priority fee per gas",
        tx.max_priority_fee_per_gas.map(U256::from),
        rs.max_priority_fee_per_gas_wei,
    );
    if let Some(max) = rs.max_calldata_bytes {
        out.rule("calldata_too_large", tx.data.len() <= max, || {
            format!("{} calldata bytes (limit {max})", tx.data.len())
        });
    }
    match intent {
        Some(i) => {
            let r = i.check(tx);
            let detail = r
                .as_ref()
                .err()
                .cloned()
                .unwrap_or_else(|| format!("declared {}", i.action));
            out.rule("intent_mismatch", r.is_ok(), || detail);
        }
        None => {
            if let Some(required) = rs.require_intent {
                out.rule("intent_required", !required, || "no intent declared".into());
            }
        }
    }
}

/// Calldata to `to`: its function must be allowed by one of the rules for `to` on this chain,
/// and every argument rule of that function must hold.
fn calldata(out: &mut Out<'_>, to: &Address, tx: &TxFacts, calls: &[&CallRule], ctx: &Ctx<'_>) {
    let Some(sel) = tx.data.get(..4).and_then(|s| <[u8; 4]>::try_from(s).ok()) else {
        out.rule("selector_not_allowed", false, || {
            "calldata shorter than a selector".into()
        });
        return;
    };
    let shown = format!("0x{}", hex::encode(sel));
    if let Some(f) = calls
        .iter()
        .flat_map(|c| c.functions.iter())
        .find(|f| f.selector == sel)
    {
        out.rule("selector_not_allowed", true, || {
            format!("{} ({shown}) on {to}, with argument rules", f.signature)
        });
        match f.check(&tx.data, ctx.key, ctx.now_secs) {
            Err(e) => out.rule("calldata_not_decodable", false, || e),
            Ok(results) => {
                for (rule, ok, detail) in results {
                    out.rule(rule.code, ok, || detail);
                }
                let free = f.unconstrained();
                if !free.is_empty() {
                    out.note(format!("arguments not constrained: {}", free.join(", ")));
                }
            }
        }
    } else if calls.iter().any(|c| c.selectors.contains(&sel)) {
        out.rule("selector_not_allowed", true, || {
            format!("function {shown} on {to} (by selector; arguments unchecked)")
        });
    } else if calls.iter().any(|c| c.any_function) {
        out.rule("selector_not_allowed", true, || {
            format!("function {shown} on {to} allowed by \"*\" (any function; arguments unchecked)")
        });
    } else {
        out.rule("selector_not_allowed", false, || {
            if calls.is_empty() {
                format!(
                    "function {shown} on {to}: no contract rule for {to} on chain {}",
                    tx.chain_id
                )
            } else {
                format!("function {shown} on {to}")
            }
        });
    }
}

fn typed(rs: &RuleSet, out: &mut Out<'_>, t: &TypedFacts<'_>, ctx: &Ctx<'_>) {
    let Some(rules) = &rs.typed else { return };
    let matches = |r: &&TypedRule| {
        r.name.as_deref().is_none_or(|n| t.name == Some(n))
            && r.version.as_deref().is_none_or(|v| t.version == Some(v))
            && r.chains
                .as_ref()
                .is_none_or(|c| t.chain_id.is_some_and(|id| c.contains(&id)))
            && r.verifying_contract
                .is_none_or(|v| t.verifying_contract == Some(v))
    };
    let candidates: Vec<&TypedRule> = rules.iter().filter(matches).collect();
    out.rule(
        "typed_data_domain_not_allowed",
        !candidates.is_empty(),
        || {
            format!(
                "domain name {} version {} chainId {} verifyingContract {}",
                t.name.map(bounded).unwrap_or_else(|| "absent".into()),
                t.version.map(bounded).unwrap_or_else(|| "absent".into()),
                t.chain_id
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "absent".into()),
                t.verifying_contract
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "absent".into())
            )
        },
    );
    if candidates.is_empty() {
        return;
    }
    // Every matching rule that names the message type applies, with all its field rules: a
    // rule pinning more of the domain never drops another's limits.
    let naming: Vec<&TypedRule> = candidates
        .into_iter()
        .filter(|r| r.primary_types.contains(t.primary_type))
        .collect();
    let rule = if t.approval {
        "typed_data_approval_not_allowed"
    } else {
        "typed_data_type_not_allowed"
    };
    out.rule(rule, !naming.is_empty(), || {
        format!(
            "primaryType {} is not named for this domain",
            bounded(t.primary_type)
        )
    });
    for r in &naming {
        for f in &r.fields {
            let (ok, detail) = f.check(t.message, ctx.key, ctx.now_secs);
            out.rule(f.code, ok, || detail);
        }
    }
}

/// `pattern` (where `*` matches any run of characters) matches all of `text`.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return text == pattern;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A name from a request, cut for a detail message.
fn bounded(s: &str) -> String {
    s.chars().take(64).filter(|c| !c.is_control()).collect()
}

/// The charges of `tx` to the windows of rule set `rs` (buckets under `prefix`): ether, and the
/// token amount a `transfer` or `transferFrom` moves on a token with a window.
fn charges(rs: &RuleSet, prefix: &str, tx: &TxFacts, out: &mut Vec<Charge>) {
    if let Some(w) = &rs.spend_window {
        let mut amount = tx.value;
        if w.count_gas {
            let fee = tx.max_fee_per_gas.or(tx.gas_price).unwrap_or(0);
            amount = amount.saturating_add(U256::from(tx.gas).saturating_mul(U256::from(fee)));
        }
        out.push(Charge {
            bucket: prefix.to_string(),
            window: w.clone(),
            amount,
            unit: "wei".into(),
        });
    }
    let (Some(to), Some(calls)) = (tx.to, &rs.calls) else {
        return;
    };
    for c in calls.iter().filter(|c| c.applies(&to, tx.chain_id)) {
        let Some(w) = &c.window else { continue };
        // Only calldata that passed its argument rules is signed, so it decodes.
        if let Some(amount) = c.functions.iter().find_map(|f| f.moved(&tx.data)) {
            out.push(Charge {
                bucket: format!("{prefix}:erc20:{}:{to:#x}", tx.chain_id),
                window: w.clone(),
                amount,
                unit: format!("{to} on chain {}", tx.chain_id),
            });
        }
    }
}

/// Evaluate `req` for `key`, asked by credential `token`, at `now_secs` (unix seconds, for
/// deadline rules). The key's rule set (its own section, else the defaults) always applies; a
/// credential's section applies in addition.
pub fn evaluate(
    policy: &Policy,
    key: &Address,
    token: Option<&str>,
    req: &Request<'_>,
    intent: Option<&Intent>,
    now_secs: u64,
) -> Evaluation {
    let mut ev = Evaluation::default();
    let ctx = Ctx { key, now_secs };
    let key_source = if policy.keys.contains_key(key) {
        format!("key {key}")
    } else {
        "defaults".to_string()
    };
    match policy.for_key(key) {
        None => ev.checks.push(Check {
            source: format!("key {key}"),
            rule: "no_policy_for_key",
            passed: false,
            detail: "no rule set for this key and no defaults".into(),
        }),
        Some(rs) => {
            evaluate_set(
                rs,
                &mut Out {
                    source: &key_source,
                    checks: &mut ev.checks,
                },
                req,
                intent,
                &ctx,
            );
            if let Request::Transaction(tx) = req {
                charges(rs, &format!("key:{key}"), tx, &mut ev.spend_windows);
            }
        }
    }
    if let Some((name, rs)) = token.and_then(|t| policy.for_token(t).map(|rs| (t, rs))) {
        let source = format!("token {name}");
        evaluate_set(
            rs,
            &mut Out {
                source: &source,
                checks: &mut ev.checks,
            },
            req,
            intent,
            &ctx,
        );
        if let Request::Transaction(tx) = req {
            charges(
                rs,
                &format!("token:{name}:{key}"),
                tx,
                &mut ev.spend_windows,
            );
        }
    }
    ev
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod rules_tests;
