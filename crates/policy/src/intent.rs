//! Declared intent: what the caller says a transaction does. With `require_intent`, a
//! transaction is signed only when what it decodes to agrees with the declaration.

use std::str::FromStr;

use alloy_primitives::{Address, U256};
use serde::Deserialize;

use crate::eval::TxFacts;

/// ERC-20 `transfer(address,uint256)`.
pub const ERC20_TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];

/// What the caller declares. `action` is one of `transfer` (plain value transfer),
/// `contract_call`, `erc20_transfer` or `deploy`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// `transfer`, `contract_call`, `erc20_transfer` or `deploy`.
    pub action: String,
    #[serde(default)]
    /// Who should receive the value or tokens.
    pub recipient: Option<String>,
    #[serde(default)]
    /// The most wei the transaction may send, decimal.
    pub max_value_wei: Option<String>,
    #[serde(default)]
    /// The chain it is meant for.
    pub chain_id: Option<u64>,
    #[serde(default)]
    /// For `contract_call`: the function selector, `0x` and 4 bytes.
    pub selector: Option<String>,
    /// For `erc20_transfer`: the token contract.
    #[serde(default)]
    pub token: Option<String>,
    /// For `erc20_transfer`: the most tokens (base units) it may move.
    #[serde(default)]
    pub max_amount: Option<String>,
}

fn addr(field: &str, v: &Option<String>) -> Result<Option<Address>, String> {
    v.as_deref()
        .map(|s| crate::parse_address(s).map_err(|e| format!("intent.{field}: {e}")))
        .transpose()
}

fn amount(field: &str, v: &Option<String>) -> Result<Option<U256>, String> {
    v.as_deref()
        .map(|s| U256::from_str(s).map_err(|_| format!("intent.{field} is not an integer")))
        .transpose()
}

impl Intent {
    /// `Ok` when the transaction is what the intent says; otherwise what differs.
    pub fn check(&self, tx: &TxFacts) -> Result<(), String> {
        let recipient = addr("recipient", &self.recipient)?;
        let max_value = amount("max_value_wei", &self.max_value_wei)?;
        if let Some(c) = self.chain_id {
            if c != tx.chain_id {
                return Err(format!(
                    "declared chain {c}, transaction is for chain {}",
                    tx.chain_id
                ));
            }
        }
        if let Some(m) = max_value {
            if tx.value > m {
                return Err(format!(
                    "declared at most {m} wei, transaction sends {}",
                    tx.value
                ));
            }
        }
        let selector = tx.data.get(..4);
        match self.action.as_str() {
            "transfer" => {
                let r = recipient.ok_or("a transfer intent needs recipient")?;
                if tx.to != Some(r) {
                    return Err(
                        "the transaction goes to another address than the declared recipient"
                            .into(),
                    );
                }
                if !tx.data.is_empty() {
                    return Err(
                        "declared a plain transfer, but the transaction carries calldata".into(),
                    );
                }
            }
            "contract_call" => {
                let r = recipient.ok_or("a contract_call intent needs recipient")?;
                if tx.to != Some(r) {
                    return Err("the transaction calls another contract than declared".into());
                }
                if let Some(s) = &self.selector {
                    let want = hex::decode(s.trim_start_matches("0x"))
                        .map_err(|_| "intent.selector is not hex")?;
                    if selector != Some(&want[..]) {
                        return Err("the transaction calls another function than declared".into());
                    }
                }
            }
            "erc20_transfer" => {
                let token =
                    addr("token", &self.token)?.ok_or("an erc20_transfer intent needs token")?;
                let r = recipient.ok_or("an erc20_transfer intent needs recipient")?;
                let max = amount("max_amount", &self.max_amount)?
                    .ok_or("an erc20_transfer intent needs max_amount")?;
                if tx.to != Some(token) {
                    return Err(
                        "the transaction goes to another contract than the declared token".into(),
                    );
                }
                if selector != Some(&ERC20_TRANSFER[..]) || tx.data.len() != 4 + 64 {
                    return Err("the transaction is not an ERC-20 transfer(address,uint256)".into());
                }
                let arg = &tx.data[4..36];
                if arg[..12].iter().any(|b| *b != 0) || Address::from_slice(&arg[12..]) != r {
                    return Err(
                        "the tokens go to another address than the declared recipient".into(),
                    );
                }
                let moved = U256::from_be_slice(&tx.data[36..68]);
                if moved > max {
                    return Err(format!(
                        "declared at most {max} tokens, transaction moves {moved}"
                    ));
                }
                if !tx.value.is_zero() {
                    return Err("an ERC-20 transfer must not also send ether".into());
                }
            }
            "deploy" => {
                if tx.to.is_some() {
                    return Err("declared a deployment, but the transaction has a recipient".into());
                }
            }
            other => return Err(format!("unknown intent action {other:?}")),
        }
        Ok(())
    }
}
