//! Evaluation: every rule of every applicable rule set, each with a reason code.

use alloy_primitives::{Address, U256};

use crate::intent::Intent;
use crate::model::{Policy, RuleSet, SpendWindow};

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
    /// An EIP-191 personal message (`eth_sign`, `personal_sign`).
    PersonalMessage,
    /// EIP-712 typed data, by its domain and message type.
    TypedData {
        /// The domain's chain id, when it names one.
        chain_id: Option<u64>,
        /// The domain's verifying contract, when it names one.
        verifying_contract: Option<Address>,
        /// The message's primary type.
        primary_type: &'a str,
        /// The message looks like it grants an allowance (a permit, an approval): only changes
        /// the reason code of a refusal; every type must be named anyway.
        approval: bool,
    },
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

/// Every check made, and the spend windows that must also hold.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Every check made, in order.
    pub checks: Vec<Check>,
    /// `(ledger bucket, window)`: each must admit the transaction's value (the caller's shared
    /// ledger decides). Buckets: `key:ADDRESS` and `token:NAME:ADDRESS`.
    pub spend_windows: Vec<(String, SpendWindow)>,
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
    fn rule(&mut self, rule: &'static str, passed: bool, detail: impl FnOnce() -> String) {
        self.checks.push(Check {
            source: self.source.to_string(),
            rule,
            passed,
            detail: detail(),
        });
    }
}

fn cap(out: &mut Out<'_>, rule: &'static str, what: &str, v: Option<U256>, max: U256) {
    if let Some(v) = v {
        out.rule(rule, v <= max, || format!("{what} {v} (limit {max})"));
    }
}

fn evaluate_set(rs: &RuleSet, out: &mut Out<'_>, req: &Request<'_>, intent: Option<&Intent>) {
    match req {
        Request::Transaction(tx) => {
            out.rule(
                "chain_id_not_allowed",
                rs.chain_ids.contains(&tx.chain_id),
                || format!("chain id {}", tx.chain_id),
            );
            match tx.to {
                None => out.rule(
                    "contract_creation_not_allowed",
                    rs.allow_contract_creation,
                    || "contract creation".into(),
                ),
                Some(to) => {
                    let ok = rs.recipients.as_ref().is_none_or(|r| r.contains(&to));
                    out.rule("recipient_not_allowed", ok, || format!("recipient {to}"));
                    if !tx.data.is_empty() {
                        let sel = tx.data.get(..4).and_then(|s| <[u8; 4]>::try_from(s).ok());
                        let ok = sel.is_some_and(|s| {
                            rs.contracts.get(&to).is_some_and(|set| set.contains(&s))
                        });
                        out.rule("selector_not_allowed", ok, || match sel {
                            Some(s) => format!("function 0x{} on {to}", hex::encode(s)),
                            None => "calldata shorter than a selector".into(),
                        });
                    }
                }
            }
            cap(
                out,
                "value_too_high",
                "value",
                Some(tx.value),
                rs.max_value_wei,
            );
            out.rule("gas_too_high", tx.gas <= rs.max_gas, || {
                format!("gas {} (limit {})", tx.gas, rs.max_gas)
            });
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
            out.rule(
                "calldata_too_large",
                tx.data.len() <= rs.max_calldata_bytes,
                || {
                    format!(
                        "{} calldata bytes (limit {})",
                        tx.data.len(),
                        rs.max_calldata_bytes
                    )
                },
            );
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
                None => out.rule("intent_required", !rs.require_intent, || {
                    "no intent declared".into()
                }),
            }
        }
        Request::PersonalMessage => out.rule(
            "message_signing_not_allowed",
            rs.allow_personal_sign,
            || "EIP-191 personal message".into(),
        ),
        Request::TypedData {
            chain_id,
            verifying_contract,
            primary_type,
            approval,
        } => {
            let domain = match (chain_id, verifying_contract) {
                (Some(c), Some(v)) => rs
                    .typed_data_domains
                    .iter()
                    .find(|d| d.chain_id == *c && d.verifying_contract == *v),
                _ => None,
            };
            out.rule("typed_data_domain_not_allowed", domain.is_some(), || {
                format!(
                    "domain chainId {} verifyingContract {}",
                    chain_id
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "absent".into()),
                    verifying_contract
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "absent".into())
                )
            });
            if let Some(d) = domain {
                // Only the types a rule names; an unnamed one that looks like an allowance is
                // refused under a reason code of its own.
                let named = d.primary_types.contains(*primary_type);
                let rule = if *approval {
                    "typed_data_approval_not_allowed"
                } else {
                    "typed_data_type_not_allowed"
                };
                out.rule(rule, named, || {
                    format!(
                        "primaryType {} is not named for this domain",
                        bounded(primary_type)
                    )
                });
            }
        }
    }
}

/// A name from a request, cut for a detail message.
fn bounded(s: &str) -> String {
    s.chars().take(64).filter(|c| !c.is_control()).collect()
}

/// Evaluate `req` for `key`, asked by credential `token`. The key's rule set (its own section,
/// else the defaults) always applies; a credential's section applies in addition.
pub fn evaluate(
    policy: &Policy,
    key: &Address,
    token: Option<&str>,
    req: &Request<'_>,
    intent: Option<&Intent>,
) -> Evaluation {
    let mut ev = Evaluation::default();
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
            );
            if let (Some(w), Request::Transaction(_)) = (&rs.spend_window, req) {
                ev.spend_windows.push((format!("key:{key}"), w.clone()));
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
        );
        if let (Some(w), Request::Transaction(_)) = (&rs.spend_window, req) {
            ev.spend_windows
                .push((format!("token:{name}:{key}"), w.clone()));
        }
    }
    ev
}

#[cfg(test)]
mod tests;
