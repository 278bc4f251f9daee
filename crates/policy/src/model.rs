//! The policy document.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use alloy_primitives::{Address, U256};
use serde::Deserialize;

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

fn bad(field: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError::Value {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A wei amount written as a decimal string, a `0x` hex string, or a TOML integer.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Amount {
    Int(u64),
    Text(String),
}

impl Amount {
    fn to_u256(&self, field: &str) -> Result<U256, PolicyError> {
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
    chain_ids: Vec<u64>,
    recipients: Vec<String>,
    max_value_wei: Amount,
    max_gas: u64,
    max_fee_per_gas_wei: Amount,
    max_priority_fee_per_gas_wei: Amount,
    #[serde(default)]
    max_gas_price_wei: Option<Amount>,
    max_calldata_bytes: usize,
    #[serde(default)]
    allow_contract_creation: bool,
    #[serde(default)]
    allow_personal_sign: bool,
    #[serde(default)]
    require_intent: bool,
    #[serde(default)]
    contracts: Vec<ContractFile>,
    #[serde(default)]
    typed_data_domains: Vec<DomainFile>,
    #[serde(default)]
    spend_window: Option<SpendWindowFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractFile {
    address: String,
    selectors: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainFile {
    chain_id: u64,
    verifying_contract: String,
    /// The message types (`primaryType`) that may be signed under this domain, each by name:
    /// there is no wildcard, so nothing (a permit, an approval) is signed by omission.
    primary_types: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendWindowFile {
    window_secs: u64,
    max_total_wei: Amount,
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

/// An EIP-712 domain that may be signed for, and the message types allowed under it, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedDataDomain {
    /// The domain's chain id.
    pub chain_id: u64,
    /// The domain's verifying contract.
    pub verifying_contract: Address,
    /// Message types that may be signed under it.
    pub primary_types: BTreeSet<String>,
}

/// Total value and number of transactions a key may sign per rolling window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendWindow {
    /// The rolling window, in seconds.
    pub window_secs: u64,
    /// Most wei in one window.
    pub max_total_wei: U256,
    /// Most transactions in one window.
    pub max_count: u64,
}

/// One rule set. Allow-lists are explicit: an empty list allows nothing; `"*"` in `recipients`
/// allows any recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    /// Chains the key may sign for.
    pub chain_ids: BTreeSet<u64>,
    /// `None`: any recipient (`"*"`).
    pub recipients: Option<BTreeSet<Address>>,
    /// Most wei one transaction may send.
    pub max_value_wei: U256,
    /// Highest gas limit.
    pub max_gas: u64,
    /// Highest EIP-1559 fee cap.
    pub max_fee_per_gas_wei: U256,
    /// Highest EIP-1559 tip cap.
    pub max_priority_fee_per_gas_wei: U256,
    /// Cap on a legacy or EIP-2930 `gasPrice` (defaults to `max_fee_per_gas_wei`).
    pub max_gas_price_wei: U256,
    /// Largest calldata, in bytes.
    pub max_calldata_bytes: usize,
    /// Contract creation is allowed.
    pub allow_contract_creation: bool,
    /// `eth_sign` and `personal_sign` are allowed.
    pub allow_personal_sign: bool,
    /// Every transaction must carry a declared intent that matches it.
    pub require_intent: bool,
    /// Function selectors allowed per recipient; calldata to any other recipient is refused.
    pub contracts: BTreeMap<Address, BTreeSet<[u8; 4]>>,
    /// EIP-712 domains that may be signed for.
    pub typed_data_domains: Vec<TypedDataDomain>,
    /// A spend window, when the key has one.
    pub spend_window: Option<SpendWindow>,
}

fn address(field: &str, s: &str) -> Result<Address, PolicyError> {
    crate::parse_address(s).map_err(|e| bad(field, format!("{s:?}: {e}")))
}

impl RuleSet {
    fn from_file(name: &str, f: RuleSetFile) -> Result<Self, PolicyError> {
        let field = |x: &str| format!("{name}.{x}");
        let recipients = if f.recipients.iter().any(|r| r == "*") {
            None
        } else {
            Some(
                f.recipients
                    .iter()
                    .map(|r| address(&field("recipients"), r))
                    .collect::<Result<_, _>>()?,
            )
        };
        let mut contracts = BTreeMap::new();
        for c in f.contracts {
            let a = address(&field("contracts.address"), &c.address)?;
            let mut sels = BTreeSet::new();
            for s in &c.selectors {
                let b = hex::decode(s.trim().trim_start_matches("0x"))
                    .map_err(|_| bad(field("contracts.selectors"), format!("{s:?} is not hex")))?;
                let sel: [u8; 4] = b.try_into().map_err(|_| {
                    bad(
                        field("contracts.selectors"),
                        format!("{s:?} is not 4 bytes"),
                    )
                })?;
                sels.insert(sel);
            }
            contracts.insert(a, sels);
        }
        let mut typed_data_domains: Vec<TypedDataDomain> = Vec::new();
        for d in &f.typed_data_domains {
            let verifying_contract = address(
                &field("typed_data_domains.verifying_contract"),
                &d.verifying_contract,
            )?;
            if typed_data_domains
                .iter()
                .any(|x| x.chain_id == d.chain_id && x.verifying_contract == verifying_contract)
            {
                return Err(bad(
                    field("typed_data_domains"),
                    format!(
                        "domain {} on chain {} is listed twice",
                        verifying_contract, d.chain_id
                    ),
                ));
            }
            if d.primary_types.is_empty() {
                return Err(bad(
                    field("typed_data_domains.primary_types"),
                    "name the message types (primaryType) that may be signed",
                ));
            }
            if let Some(t) = d
                .primary_types
                .iter()
                .find(|t| t.is_empty() || t.contains('*') || t.trim() != t.as_str())
            {
                return Err(bad(
                    field("typed_data_domains.primary_types"),
                    format!(
                        "{t:?}: each message type is named; there is no wildcard for typed data"
                    ),
                ));
            }
            typed_data_domains.push(TypedDataDomain {
                chain_id: d.chain_id,
                verifying_contract,
                primary_types: d.primary_types.iter().cloned().collect(),
            });
        }
        let max_fee = f
            .max_fee_per_gas_wei
            .to_u256(&field("max_fee_per_gas_wei"))?;
        let spend_window = match f.spend_window {
            None => None,
            Some(w) => {
                if w.window_secs == 0 {
                    return Err(bad(field("spend_window.window_secs"), "must be positive"));
                }
                Some(SpendWindow {
                    window_secs: w.window_secs,
                    max_total_wei: w
                        .max_total_wei
                        .to_u256(&field("spend_window.max_total_wei"))?,
                    max_count: w.max_count,
                })
            }
        };
        Ok(RuleSet {
            chain_ids: f.chain_ids.into_iter().collect(),
            recipients,
            max_value_wei: f.max_value_wei.to_u256(&field("max_value_wei"))?,
            max_gas: f.max_gas,
            max_priority_fee_per_gas_wei: f
                .max_priority_fee_per_gas_wei
                .to_u256(&field("max_priority_fee_per_gas_wei"))?,
            max_gas_price_wei: match &f.max_gas_price_wei {
                Some(a) => a.to_u256(&field("max_gas_price_wei"))?,
                None => max_fee,
            },
            max_fee_per_gas_wei: max_fee,
            max_calldata_bytes: f.max_calldata_bytes,
            allow_contract_creation: f.allow_contract_creation,
            allow_personal_sign: f.allow_personal_sign,
            require_intent: f.require_intent,
            contracts,
            typed_data_domains,
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
            .map(|d| RuleSet::from_file("defaults", d))
            .transpose()?;
        let mut keys = BTreeMap::new();
        for (k, v) in f.keys {
            let a = address(&format!("keys.{k}"), &k)?;
            let rs = RuleSet::from_file(&format!("keys.\"{k}\""), v)?;
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
            let rs = RuleSet::from_file(&format!("tokens.\"{k}\""), v)?;
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
