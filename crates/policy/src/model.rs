//! The policy document.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use alloy_primitives::{Address, U256};
use serde::Deserialize;

use crate::args::{parties, ArgsFile, Constraint, FieldRule, FunctionRule, Party};

/// A policy that cannot be used; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid TOML or has an unknown or missing field: {0}")]
    /// Not TOML, or an unknown or missing field.
    Syntax(String),
    #[error("policy value {field}: {reason}")]
    /// A field whose value cannot be used.
    Value {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
}

pub(crate) fn bad(field: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError::Value {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A wei amount written as a decimal string, a `0x` hex string, or a TOML integer.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Amount {
    Int(u64),
    Text(String),
}

impl Amount {
    pub(crate) fn to_u256(&self, field: &str) -> Result<U256, PolicyError> {
        match self {
            Amount::Int(v) => Ok(U256::from(*v)),
            Amount::Text(s) => {
                U256::from_str(s.trim()).map_err(|_| bad(field, "not a decimal or 0x integer"))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSetFile {
    /// Only in a credential's section: fields left out are inherited from the key's rule set.
    #[serde(default)]
    inherit: bool,
    #[serde(default)]
    chain_ids: Option<Vec<u64>>,
    #[serde(default)]
    recipients: Option<Vec<String>>,
    #[serde(default)]
    max_value_wei: Option<Amount>,
    #[serde(default)]
    max_gas: Option<u64>,
    #[serde(default)]
    max_fee_per_gas_wei: Option<Amount>,
    #[serde(default)]
    max_priority_fee_per_gas_wei: Option<Amount>,
    #[serde(default)]
    max_gas_price_wei: Option<Amount>,
    #[serde(default)]
    max_calldata_bytes: Option<usize>,
    #[serde(default)]
    allow_contract_creation: Option<bool>,
    #[serde(default)]
    allow_personal_sign: Option<bool>,
    #[serde(default)]
    personal_sign_prefixes: Option<Vec<String>>,
    #[serde(default)]
    personal_sign_patterns: Option<Vec<String>>,
    #[serde(default)]
    require_intent: Option<bool>,
    #[serde(default)]
    payees: Vec<PayeeFile>,
    #[serde(default)]
    contracts: Option<Vec<ContractFile>>,
    #[serde(default)]
    erc20: Option<Vec<Erc20File>>,
    #[serde(default)]
    typed_data_domains: Option<Vec<DomainFile>>,
    #[serde(default)]
    permits: Option<Vec<PermitFile>>,
    #[serde(default)]
    permit2: Option<Vec<Permit2File>>,
    #[serde(default)]
    spend_window: Option<SpendWindowFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayeeFile {
    address: String,
    max_value_wei: Amount,
    #[serde(default)]
    chain_ids: Option<Vec<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractFile {
    address: String,
    #[serde(default)]
    chain_ids: Option<Vec<u64>>,
    #[serde(default)]
    selectors: Vec<String>,
    #[serde(default)]
    functions: Vec<FunctionFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionFile {
    signature: String,
    #[serde(default)]
    args: ArgsFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Erc20File {
    token: String,
    #[serde(default)]
    chain_ids: Option<Vec<u64>>,
    #[serde(default)]
    transfer_to: Vec<String>,
    #[serde(default)]
    max_transfer: Option<Amount>,
    #[serde(default)]
    approve: Vec<String>,
    #[serde(default)]
    max_approval: Option<Amount>,
    /// A rolling window on the amounts `transfer` and `transferFrom` move.
    #[serde(default)]
    window: Option<TokenWindowFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    chain_id: Option<u64>,
    #[serde(default)]
    verifying_contract: Option<String>,
    /// The message types (`primaryType`) that may be signed under this domain, each by name:
    /// there is no wildcard, so nothing (a permit, an approval) is signed by omission.
    primary_types: Vec<String>,
    #[serde(default)]
    fields: ArgsFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PermitFile {
    token: String,
    #[serde(default)]
    chain_ids: Option<Vec<u64>>,
    spenders: Vec<String>,
    max_value: Amount,
    max_deadline_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Permit2File {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    chain_ids: Option<Vec<u64>>,
    tokens: Vec<String>,
    spenders: Vec<String>,
    max_amount: Amount,
    max_deadline_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendWindowFile {
    window_secs: u64,
    max_total_wei: Amount,
    max_count: u64,
    /// Count each transaction's gas cost (gas limit × fee cap) with its value.
    #[serde(default)]
    count_gas: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenWindowFile {
    window_secs: u64,
    /// In the token's own base units.
    max_total: Amount,
    max_count: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    defaults: Option<RuleSetFile>,
    #[serde(default)]
    keys: BTreeMap<String, RuleSetFile>,
    #[serde(default)]
    tokens: BTreeMap<String, RuleSetFile>,
}

/// Uniswap's Permit2, at the same address on every chain it is deployed to.
pub const PERMIT2: Address = alloy_primitives::address!("000000000022D473030F116dDEE9F6B43aC78BA3");

/// Where a rule came from: declared directly, or expanded from built-in knowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `contracts` or `typed_data_domains`.
    Declared,
    /// `erc20`: ERC-20 `transfer`, `transferFrom`, `approve`.
    Erc20,
    /// `permits`: EIP-2612 `Permit`.
    Permit,
    /// `permit2`: Uniswap Permit2 typed data.
    Permit2,
}

/// Functions that may be called on one contract (on some chains).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRule {
    /// The contract.
    pub address: Address,
    /// Only on these chains (`None`: every chain of the rule set).
    pub chains: Option<BTreeSet<u64>>,
    /// Declared or built in.
    pub origin: Origin,
    /// `"*"`: any function, arguments unchecked.
    pub any_function: bool,
    /// Functions allowed by selector alone, arguments unchecked.
    pub selectors: BTreeSet<[u8; 4]>,
    /// Functions allowed with rules on their arguments.
    pub functions: Vec<FunctionRule>,
    /// `erc20` only: the window on the amounts `transfer` and `transferFrom` move.
    pub window: Option<SpendWindow>,
}

impl CallRule {
    /// Applies to a transaction to `to` on `chain`.
    pub fn applies(&self, to: &Address, chain: u64) -> bool {
        self.address == *to && self.chains.as_ref().is_none_or(|c| c.contains(&chain))
    }
}

/// EIP-712 messages that may be signed: a domain (any subset of its fields; the others may be
/// anything), the message types allowed under it, and constraints on their fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedRule {
    /// The domain's `name`.
    pub name: Option<String>,
    /// The domain's `version`.
    pub version: Option<String>,
    /// The domain's `chainId`, one of these.
    pub chains: Option<BTreeSet<u64>>,
    /// The domain's `verifyingContract`.
    pub verifying_contract: Option<Address>,
    /// Message types that may be signed under it.
    pub primary_types: BTreeSet<String>,
    /// Constraints on the message's fields.
    pub fields: Vec<FieldRule>,
    /// Declared or built in.
    pub origin: Origin,
}

/// Total amount and number of transactions a key may sign per rolling window: of ether (wei;
/// `spend_window`) or of one token (its base units; an `erc20` entry's `window`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendWindow {
    /// The rolling window, in seconds.
    pub window_secs: u64,
    /// Most in one window, in the window's unit.
    pub max_total: U256,
    /// Most transactions in one window.
    pub max_count: u64,
    /// Ether windows only: each transaction's gas cost (gas limit × fee cap) counts too.
    pub count_gas: bool,
}

/// A recipient that may be paid more (or less) than the rule set's `max_value_wei`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payee {
    /// The recipient.
    pub address: Address,
    /// On these chains only (`None`: every chain of the rule set).
    pub chains: Option<BTreeSet<u64>>,
    /// Most wei one transaction may send it.
    pub max_value_wei: U256,
}

/// Who may receive transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// `"*"`.
    Any,
    /// These addresses (and the contracts and payees the rule set names).
    Only(BTreeSet<Address>),
}

/// One rule set. Allow-lists are explicit: an empty list allows nothing; `"*"` in `recipients`
/// or `selectors` allows any. In a credential's overlay every field is optional: a field left
/// out is inherited (the key's rule set decides it alone), a field given narrows, since both
/// rule sets must allow a request. `None` below means "left out of an overlay".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    /// Chains the key may sign for.
    pub chain_ids: Option<BTreeSet<u64>>,
    /// Recipients of transactions.
    pub recipients: Option<Recipients>,
    /// Per-recipient value caps (each payee is also an allowed recipient).
    pub payees: Vec<Payee>,
    /// Most wei one transaction may send (to a recipient that is not a payee).
    pub max_value_wei: Option<U256>,
    /// Highest gas limit.
    pub max_gas: Option<u64>,
    /// Highest EIP-1559 fee cap.
    pub max_fee_per_gas_wei: Option<U256>,
    /// Highest EIP-1559 tip cap.
    pub max_priority_fee_per_gas_wei: Option<U256>,
    /// Cap on a legacy or EIP-2930 `gasPrice` (defaults to `max_fee_per_gas_wei`).
    pub max_gas_price_wei: Option<U256>,
    /// Largest calldata, in bytes.
    pub max_calldata_bytes: Option<usize>,
    /// Contract creation is allowed.
    pub allow_contract_creation: Option<bool>,
    /// `eth_sign` and `personal_sign` are allowed.
    pub allow_personal_sign: Option<bool>,
    /// When not empty, a personal message must be UTF-8 text starting with one of these.
    pub personal_sign_prefixes: Vec<String>,
    /// When not empty, a personal message must be UTF-8 text matching one of these (`*` matches
    /// any run of characters, everything else itself).
    pub personal_sign_patterns: Vec<String>,
    /// Every transaction must carry a declared intent that matches it.
    pub require_intent: Option<bool>,
    /// Contracts and their functions that calldata may call (`contracts` and `erc20`).
    pub calls: Option<Vec<CallRule>>,
    /// EIP-712 messages that may be signed (`typed_data_domains`, `permits`, `permit2`).
    pub typed: Option<Vec<TypedRule>>,
    /// A spend window, when the key has one.
    pub spend_window: Option<SpendWindow>,
}

fn address(field: &str, s: &str) -> Result<Address, PolicyError> {
    crate::parse_address(s).map_err(|e| bad(field, format!("{s:?}: {e}")))
}

fn chains(
    field: &str,
    given: Option<Vec<u64>>,
    outer: Option<&BTreeSet<u64>>,
) -> Result<Option<BTreeSet<u64>>, PolicyError> {
    let Some(list) = given else { return Ok(None) };
    let set: BTreeSet<u64> = list.into_iter().collect();
    if set.is_empty() {
        return Err(bad(
            field,
            "an empty chain list allows nothing; remove the entry instead",
        ));
    }
    if let Some(outer) = outer {
        if let Some(c) = set.iter().find(|c| !outer.contains(c)) {
            return Err(bad(
                field,
                format!("chain {c} is not in the rule set's chain_ids"),
            ));
        }
    }
    Ok(Some(set))
}

fn overlap(a: &Option<BTreeSet<u64>>, b: &Option<BTreeSet<u64>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => !a.is_disjoint(b),
        _ => true,
    }
}

fn constraints(
    field: &str,
    args: &ArgsFile,
    code: &'static str,
) -> Result<Vec<(String, &'static str, Constraint)>, PolicyError> {
    args.iter()
        .map(|(name, c)| {
            Ok((
                name.clone(),
                code,
                Constraint::from_file(&format!("{field}.{name}"), c)?,
            ))
        })
        .collect()
}

fn erc20_calls(
    field: &str,
    e: &Erc20File,
    outer: Option<&BTreeSet<u64>>,
) -> Result<CallRule, PolicyError> {
    let token = address(&format!("{field}.token"), &e.token)?;
    let mut functions = Vec::new();
    if !e.transfer_to.is_empty() {
        let to = parties(&format!("{field}.transfer_to"), &e.transfer_to)?;
        let rules = |to_arg: &str| {
            let mut v = vec![(
                to_arg.to_string(),
                "token_recipient_not_allowed",
                Constraint::In(to.clone()),
            )];
            if let Some(m) = &e.max_transfer {
                v.push((
                    "amount".to_string(),
                    "token_amount_too_high",
                    Constraint::Max(m.to_u256(&format!("{field}.max_transfer"))?),
                ));
            }
            Ok::<_, PolicyError>(v)
        };
        functions.push(FunctionRule::new(
            field,
            "transfer(address to, uint256 amount)",
            rules("to")?,
        )?);
        functions.push(FunctionRule::new(
            field,
            "transferFrom(address from, address to, uint256 amount)",
            rules("to")?,
        )?);
    } else if e.max_transfer.is_some() {
        return Err(bad(format!("{field}.max_transfer"), "needs transfer_to"));
    }
    if !e.approve.is_empty() {
        let spenders = parties(&format!("{field}.approve"), &e.approve)?;
        let max = e
            .max_approval
            .as_ref()
            .ok_or_else(|| {
                bad(
                    format!("{field}.max_approval"),
                    "an approval needs a cap (an unlimited approval is never allowed by default)",
                )
            })?
            .to_u256(&format!("{field}.max_approval"))?;
        // `approve` only: it sets the allowance, so its cap is the allowance's. (The
        // non-standard `increaseAllowance` adds to an allowance the policy cannot see, so
        // repeated calls would pass any cap: it is not allowed by an erc20 entry.)
        functions.push(FunctionRule::new(
            field,
            "approve(address spender, uint256 amount)",
            vec![
                (
                    "spender".into(),
                    "approval_spender_not_allowed",
                    Constraint::In(spenders),
                ),
                ("amount".into(), "approval_too_high", Constraint::Max(max)),
            ],
        )?);
    } else if e.max_approval.is_some() {
        return Err(bad(format!("{field}.max_approval"), "needs approve"));
    }
    if functions.is_empty() {
        return Err(bad(field, "allows nothing: give transfer_to or approve"));
    }
    let window = match &e.window {
        None => None,
        Some(w) => {
            if e.transfer_to.is_empty() {
                return Err(bad(
                    format!("{field}.window"),
                    "counts transfers, so needs transfer_to",
                ));
            }
            if w.window_secs == 0 {
                return Err(bad(
                    format!("{field}.window.window_secs"),
                    "must be positive",
                ));
            }
            Some(SpendWindow {
                window_secs: w.window_secs,
                max_total: w.max_total.to_u256(&format!("{field}.window.max_total"))?,
                max_count: w.max_count,
                count_gas: false,
            })
        }
    };
    Ok(CallRule {
        address: token,
        chains: chains(&format!("{field}.chain_ids"), e.chain_ids.clone(), outer)?,
        origin: Origin::Erc20,
        any_function: false,
        selectors: BTreeSet::new(),
        functions,
        window,
    })
}

fn contract_calls(
    field: &str,
    c: ContractFile,
    outer: Option<&BTreeSet<u64>>,
) -> Result<CallRule, PolicyError> {
    let a = address(&format!("{field}.address"), &c.address)?;
    let mut sels = BTreeSet::new();
    let mut any_function = false;
    for s in &c.selectors {
        if s.trim() == "*" {
            any_function = true;
            continue;
        }
        let b = hex::decode(s.trim().trim_start_matches("0x"))
            .map_err(|_| bad(format!("{field}.selectors"), format!("{s:?} is not hex")))?;
        let sel: [u8; 4] = b.try_into().map_err(|_| {
            bad(
                format!("{field}.selectors"),
                format!("{s:?} is not 4 bytes"),
            )
        })?;
        if !sels.insert(sel) {
            return Err(bad(
                format!("{field}.selectors"),
                format!("{s:?} is listed twice"),
            ));
        }
    }
    let mut functions: Vec<FunctionRule> = Vec::new();
    for f in &c.functions {
        let ff = format!("{field}.functions");
        let rule = FunctionRule::new(
            &ff,
            &f.signature,
            constraints(&ff, &f.args, "argument_not_allowed")?,
        )?;
        if sels.contains(&rule.selector) || functions.iter().any(|x| x.selector == rule.selector) {
            return Err(bad(
                ff,
                format!(
                    "{} (0x{}) is allowed twice",
                    rule.signature,
                    hex::encode(rule.selector)
                ),
            ));
        }
        functions.push(rule);
    }
    if any_function && (!sels.is_empty() || !functions.is_empty()) {
        return Err(bad(
            format!("{field}.selectors"),
            "\"*\" allows every function: list nothing else for this contract",
        ));
    }
    if !any_function && sels.is_empty() && functions.is_empty() {
        return Err(bad(
            field,
            "allows nothing: list selectors, functions or \"*\"",
        ));
    }
    Ok(CallRule {
        address: a,
        chains: chains(&format!("{field}.chain_ids"), c.chain_ids, outer)?,
        origin: Origin::Declared,
        any_function,
        selectors: sels,
        functions,
        window: None,
    })
}

fn selectors_of(c: &CallRule) -> BTreeSet<[u8; 4]> {
    let mut s = c.selectors.clone();
    s.extend(c.functions.iter().map(|f| f.selector));
    s
}

fn typed_rule(
    field: &str,
    d: &DomainFile,
    outer: Option<&BTreeSet<u64>>,
) -> Result<TypedRule, PolicyError> {
    let verifying_contract = d
        .verifying_contract
        .as_deref()
        .map(|v| address(&format!("{field}.verifying_contract"), v))
        .transpose()?;
    if d.name.is_none()
        && d.version.is_none()
        && d.chain_id.is_none()
        && verifying_contract.is_none()
    {
        return Err(bad(
            field,
            "pin at least one of name, version, chain_id, verifying_contract",
        ));
    }
    if d.primary_types.is_empty() {
        return Err(bad(
            format!("{field}.primary_types"),
            "name the message types (primaryType) that may be signed",
        ));
    }
    if let Some(t) = d
        .primary_types
        .iter()
        .find(|t| t.is_empty() || t.contains('*') || t.trim() != t.as_str())
    {
        return Err(bad(
            format!("{field}.primary_types"),
            format!("{t:?}: each message type is named; there is no wildcard for typed data"),
        ));
    }
    let fields = constraints(
        &format!("{field}.fields"),
        &d.fields,
        "typed_data_field_not_allowed",
    )?
    .into_iter()
    .map(|(p, code, c)| FieldRule::new(&p, code, c))
    .collect();
    Ok(TypedRule {
        name: d.name.clone(),
        version: d.version.clone(),
        chains: chains(
            &format!("{field}.chain_id"),
            d.chain_id.map(|c| vec![c]),
            outer,
        )?,
        verifying_contract,
        primary_types: d.primary_types.iter().cloned().collect(),
        fields,
        origin: Origin::Declared,
    })
}

fn permit_rule(
    field: &str,
    p: &PermitFile,
    outer: Option<&BTreeSet<u64>>,
) -> Result<TypedRule, PolicyError> {
    let token = address(&format!("{field}.token"), &p.token)?;
    let spenders = parties(&format!("{field}.spenders"), &p.spenders)?;
    if spenders.is_empty() {
        return Err(bad(
            format!("{field}.spenders"),
            "an empty list allows nothing",
        ));
    }
    let max = p.max_value.to_u256(&format!("{field}.max_value"))?;
    Ok(TypedRule {
        name: None,
        version: None,
        chains: chains(&format!("{field}.chain_ids"), p.chain_ids.clone(), outer)?,
        verifying_contract: Some(token),
        primary_types: BTreeSet::from(["Permit".to_string()]),
        fields: vec![
            FieldRule::new(
                "owner",
                "permit_owner_not_self",
                Constraint::In(BTreeSet::from([Party::Signer])),
            ),
            FieldRule::new(
                "spender",
                "permit_spender_not_allowed",
                Constraint::In(spenders),
            ),
            FieldRule::new("value", "permit_amount_too_high", Constraint::Max(max)),
            FieldRule::new(
                "deadline",
                "permit_deadline_too_far",
                Constraint::MaxFromNow(p.max_deadline_secs),
            ),
        ],
        origin: Origin::Permit,
    })
}

/// Permit2's four message types, each with its fields' paths.
fn permit2_rules(
    field: &str,
    p: &Permit2File,
    outer: Option<&BTreeSet<u64>>,
) -> Result<Vec<TypedRule>, PolicyError> {
    let at = match &p.address {
        Some(a) => address(&format!("{field}.address"), a)?,
        None => PERMIT2,
    };
    let tokens = parties(&format!("{field}.tokens"), &p.tokens)?;
    let spenders = parties(&format!("{field}.spenders"), &p.spenders)?;
    if tokens.is_empty() || spenders.is_empty() {
        return Err(bad(
            field,
            "tokens and spenders must each name at least one address",
        ));
    }
    let max = p.max_amount.to_u256(&format!("{field}.max_amount"))?;
    let ch = chains(&format!("{field}.chain_ids"), p.chain_ids.clone(), outer)?;
    let secs = p.max_deadline_secs;
    let tok = |path: &str| {
        FieldRule::new(
            path,
            "permit_token_not_allowed",
            Constraint::In(tokens.clone()),
        )
    };
    let amt = |path: &str| FieldRule::new(path, "permit_amount_too_high", Constraint::Max(max));
    let time = |path: &str| {
        FieldRule::new(
            path,
            "permit_deadline_too_far",
            Constraint::MaxFromNow(secs),
        )
    };
    let spender = FieldRule::new(
        "spender",
        "permit_spender_not_allowed",
        Constraint::In(spenders.clone()),
    );
    let kinds = [
        (
            "PermitSingle",
            vec![
                tok("details.token"),
                amt("details.amount"),
                time("details.expiration"),
                spender.clone(),
                time("sigDeadline"),
            ],
        ),
        (
            "PermitBatch",
            vec![
                tok("details[].token"),
                amt("details[].amount"),
                time("details[].expiration"),
                spender.clone(),
                time("sigDeadline"),
            ],
        ),
        (
            "PermitTransferFrom",
            vec![
                tok("permitted.token"),
                amt("permitted.amount"),
                spender.clone(),
                time("deadline"),
            ],
        ),
        (
            "PermitBatchTransferFrom",
            vec![
                tok("permitted[].token"),
                amt("permitted[].amount"),
                spender,
                time("deadline"),
            ],
        ),
    ];
    Ok(kinds
        .into_iter()
        .map(|(t, fields)| TypedRule {
            name: None,
            version: None,
            chains: ch.clone(),
            verifying_contract: Some(at),
            primary_types: BTreeSet::from([t.to_string()]),
            fields,
            origin: Origin::Permit2,
        })
        .collect())
}

const REQUIRED: &str =
    "is required (only a credential's overlay, with inherit = true, may leave fields out)";

impl RuleSet {
    /// `credential`: a `[tokens."NAME"]` section, which may inherit (`inherit = true`).
    fn from_file(name: &str, f: RuleSetFile, credential: bool) -> Result<Self, PolicyError> {
        let field = |x: &str| format!("{name}.{x}");
        if f.inherit && !credential {
            return Err(bad(
                field("inherit"),
                "only a credential's section inherits (from the key's rule set)",
            ));
        }
        // Without `inherit = true` a credential's section is complete, as a key's is: what it
        // leaves out is not allowed (so a policy written before overlays existed keeps its
        // meaning).
        let overlay = f.inherit;
        let need = |present: bool, x: &str| -> Result<(), PolicyError> {
            if present || overlay {
                Ok(())
            } else {
                Err(bad(field(x), REQUIRED))
            }
        };
        need(f.chain_ids.is_some(), "chain_ids")?;
        need(f.recipients.is_some(), "recipients")?;
        need(f.max_value_wei.is_some(), "max_value_wei")?;
        need(f.max_gas.is_some(), "max_gas")?;
        need(f.max_fee_per_gas_wei.is_some(), "max_fee_per_gas_wei")?;
        need(
            f.max_priority_fee_per_gas_wei.is_some(),
            "max_priority_fee_per_gas_wei",
        )?;
        need(f.max_calldata_bytes.is_some(), "max_calldata_bytes")?;
        let chain_ids: Option<BTreeSet<u64>> = f.chain_ids.map(|c| c.into_iter().collect());
        let outer = chain_ids.as_ref();
        let recipients = match f.recipients {
            None => None,
            Some(r) if r.iter().any(|r| r == "*") => {
                if r.len() > 1 {
                    return Err(bad(
                        field("recipients"),
                        "\"*\" allows every recipient: list nothing else",
                    ));
                }
                Some(Recipients::Any)
            }
            Some(r) => Some(Recipients::Only(
                r.iter()
                    .map(|x| address(&field("recipients"), x))
                    .collect::<Result<_, _>>()?,
            )),
        };
        let mut payees: Vec<Payee> = Vec::new();
        for p in f.payees {
            let a = address(&field("payees.address"), &p.address)?;
            let ch = chains(&field("payees.chain_ids"), p.chain_ids, outer)?;
            if payees
                .iter()
                .any(|x| x.address == a && overlap(&x.chains, &ch))
            {
                return Err(bad(
                    field("payees"),
                    format!("{a} is listed twice for one chain"),
                ));
            }
            payees.push(Payee {
                address: a,
                chains: ch,
                max_value_wei: p.max_value_wei.to_u256(&field("payees.max_value_wei"))?,
            });
        }
        let calls = if f.contracts.is_none() && f.erc20.is_none() && overlay {
            None
        } else {
            let mut calls: Vec<CallRule> = Vec::new();
            for c in f.contracts.unwrap_or_default() {
                calls.push(contract_calls(&field("contracts"), c, outer)?);
            }
            for e in f.erc20.unwrap_or_default() {
                calls.push(erc20_calls(&field("erc20"), &e, outer)?);
            }
            for (i, a) in calls.iter().enumerate() {
                for b in &calls[..i] {
                    if a.address == b.address
                        && overlap(&a.chains, &b.chains)
                        && (a.any_function
                            || b.any_function
                            || !selectors_of(a).is_disjoint(&selectors_of(b)))
                    {
                        return Err(bad(
                            field("contracts"),
                            format!(
                                "{} has two rules for one function on one chain; keep one",
                                a.address
                            ),
                        ));
                    }
                }
            }
            Some(calls)
        };
        let typed = if f.typed_data_domains.is_none()
            && f.permits.is_none()
            && f.permit2.is_none()
            && overlay
        {
            None
        } else {
            let mut typed: Vec<TypedRule> = Vec::new();
            for d in f.typed_data_domains.as_deref().unwrap_or_default() {
                typed.push(typed_rule(&field("typed_data_domains"), d, outer)?);
            }
            for p in f.permits.as_deref().unwrap_or_default() {
                typed.push(permit_rule(&field("permits"), p, outer)?);
            }
            for p in f.permit2.as_deref().unwrap_or_default() {
                typed.extend(permit2_rules(&field("permit2"), p, outer)?);
            }
            for (i, a) in typed.iter().enumerate() {
                for b in &typed[..i] {
                    if a.name == b.name
                        && a.version == b.version
                        && a.verifying_contract == b.verifying_contract
                        && overlap(&a.chains, &b.chains)
                        && !a.primary_types.is_disjoint(&b.primary_types)
                    {
                        return Err(bad(
                            field("typed_data_domains"),
                            "one domain and message type is listed twice; keep one",
                        ));
                    }
                }
            }
            Some(typed)
        };
        let prefixes = f.personal_sign_prefixes.unwrap_or_default();
        let patterns = f.personal_sign_patterns.unwrap_or_default();
        if prefixes.iter().chain(&patterns).any(|p| p.is_empty()) {
            return Err(bad(
                field("personal_sign_prefixes"),
                "an empty prefix or pattern matches everything; remove it",
            ));
        }
        if (!prefixes.is_empty() || !patterns.is_empty()) && f.allow_personal_sign != Some(true) {
            return Err(bad(
                field("personal_sign_prefixes"),
                "limits personal messages, so needs allow_personal_sign = true",
            ));
        }
        let max_fee = f
            .max_fee_per_gas_wei
            .map(|a| a.to_u256(&field("max_fee_per_gas_wei")))
            .transpose()?;
        let spend_window = match f.spend_window {
            None => None,
            Some(w) => {
                if w.window_secs == 0 {
                    return Err(bad(field("spend_window.window_secs"), "must be positive"));
                }
                Some(SpendWindow {
                    window_secs: w.window_secs,
                    max_total: w
                        .max_total_wei
                        .to_u256(&field("spend_window.max_total_wei"))?,
                    max_count: w.max_count,
                    count_gas: w.count_gas,
                })
            }
        };
        let opt = |a: Option<Amount>, x: &str| a.map(|a| a.to_u256(&field(x))).transpose();
        Ok(RuleSet {
            chain_ids,
            recipients,
            payees,
            max_value_wei: opt(f.max_value_wei, "max_value_wei")?,
            max_gas: f.max_gas,
            max_priority_fee_per_gas_wei: opt(
                f.max_priority_fee_per_gas_wei,
                "max_priority_fee_per_gas_wei",
            )?,
            max_gas_price_wei: match f.max_gas_price_wei {
                Some(a) => Some(a.to_u256(&field("max_gas_price_wei"))?),
                None => max_fee,
            },
            max_fee_per_gas_wei: max_fee,
            max_calldata_bytes: f.max_calldata_bytes,
            allow_contract_creation: f.allow_contract_creation.or((!overlay).then_some(false)),
            allow_personal_sign: f.allow_personal_sign.or((!overlay).then_some(false)),
            personal_sign_prefixes: prefixes,
            personal_sign_patterns: patterns,
            require_intent: f.require_intent.or((!overlay).then_some(false)),
            calls,
            typed,
            spend_window,
        })
    }
}

/// Where a TOML document failed and why, without any of its content (a config file may hold a
/// password; its text never goes into an error).
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    // A message may quote a value (`invalid type: string "..."`): quoted text is elided. (Key
    // names, in backticks, are kept: they name the setting.)
    let mut message = String::new();
    let first = e.message().lines().next().unwrap_or("invalid TOML");
    for (i, part) in first.split('"').enumerate() {
        message.push_str(if i % 2 == 1 { "\"…\"" } else { part });
    }
    let Some(span) = e.span() else {
        return message;
    };
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    format!("line {line}, column {column}: {message}")
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// The rule set for keys without one of their own.
    pub defaults: Option<RuleSet>,
    /// Rule sets per key.
    pub keys: BTreeMap<Address, RuleSet>,
    /// Rule sets per credential name; they apply on top of the key's.
    pub tokens: BTreeMap<String, RuleSet>,
}

impl Policy {
    /// Parse and check a policy file.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let f: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyError::Syntax(toml_error(text, &e)))?;
        let defaults = f
            .defaults
            .map(|d| RuleSet::from_file("defaults", d, false))
            .transpose()?;
        let mut keys = BTreeMap::new();
        for (k, v) in f.keys {
            let a = address(&format!("keys.{k}"), &k)?;
            let rs = RuleSet::from_file(&format!("keys.\"{k}\""), v, false)?;
            // The same address under two spellings would silently replace one section.
            if keys.insert(a, rs).is_some() {
                return Err(bad(
                    format!("keys.\"{k}\""),
                    "another section names the same address (in another letter case)",
                ));
            }
        }
        let mut tokens = BTreeMap::new();
        for (k, v) in f.tokens {
            let rs = RuleSet::from_file(&format!("tokens.\"{k}\""), v, true)?;
            tokens.insert(k, rs);
        }
        Ok(Policy {
            defaults,
            keys,
            tokens,
        })
    }

    /// The rule set for `key`: its own section, else the defaults, else none (refuse all).
    pub fn for_key(&self, key: &Address) -> Option<&RuleSet> {
        self.keys.get(key).or(self.defaults.as_ref())
    }

    /// The rule set for credential `name`, if it has one.
    pub fn for_token(&self, name: &str) -> Option<&RuleSet> {
        self.tokens.get(name)
    }
}
