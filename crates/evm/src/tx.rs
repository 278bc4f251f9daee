//! Transactions as `eth_signTransaction` receives them: parsed strictly (unknown fields refused,
//! so nothing we do not understand is signed), checked, and signed into the raw EIP-2718 bytes.

use std::str::FromStr;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::eip2930::{AccessList, AccessListItem};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use serde::Deserialize;
use signward_policy::{Intent, TxFacts};

use crate::{EvmError, EvmKey};

/// A quantity as clients send it: `0x` hex, decimal string, or a JSON number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Quantity {
    Num(u64),
    Text(String),
}

impl Quantity {
    fn u256(&self, field: &str) -> Result<U256, EvmError> {
        match self {
            Quantity::Num(n) => Ok(U256::from(*n)),
            Quantity::Text(s) => {
                let s = s.trim();
                let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some("") => Ok(U256::ZERO),
                    Some(h) => U256::from_str_radix(h, 16),
                    None => U256::from_str_radix(s, 10),
                };
                v.map_err(|_| EvmError::InvalidTransaction(format!("{field} is not a quantity")))
            }
        }
    }

    fn u64(&self, field: &str) -> Result<u64, EvmError> {
        u64::try_from(self.u256(field)?)
            .map_err(|_| EvmError::InvalidTransaction(format!("{field} is too large")))
    }

    fn u128(&self, field: &str) -> Result<u128, EvmError> {
        u128::try_from(self.u256(field)?)
            .map_err(|_| EvmError::InvalidTransaction(format!("{field} is too large")))
    }
}

/// A quantity (`0x` hex, decimal string or JSON number) of at most 128 bits.
pub fn quantity(v: &serde_json::Value) -> Result<u128, EvmError> {
    Quantity::deserialize(v)
        .map_err(|_| EvmError::InvalidTransaction("not a quantity".into()))?
        .u128("quantity")
}

/// A quantity (`0x` hex, decimal string or JSON number) of at most 256 bits, read as the
/// transaction parser reads one (the one reading of a quantity for every caller).
pub fn quantity_u256(v: &serde_json::Value) -> Option<U256> {
    Quantity::deserialize(v).ok()?.u256("quantity").ok()
}

/// A field the transaction must carry.
fn required<'a>(q: &'a Option<Quantity>, field: &str) -> Result<&'a Quantity, EvmError> {
    q.as_ref()
        .ok_or_else(|| EvmError::InvalidTransaction(format!("{field} is required")))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AccessListJson {
    address: String,
    storage_keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TxJson {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default, alias = "gasLimit")]
    gas: Option<Quantity>,
    #[serde(default)]
    gas_price: Option<Quantity>,
    #[serde(default)]
    max_fee_per_gas: Option<Quantity>,
    #[serde(default)]
    max_priority_fee_per_gas: Option<Quantity>,
    #[serde(default)]
    value: Option<Quantity>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    nonce: Option<Quantity>,
    #[serde(default)]
    chain_id: Option<Quantity>,
    #[serde(default, rename = "type")]
    kind: Option<Quantity>,
    #[serde(default)]
    access_list: Option<Vec<AccessListJson>>,
    /// signward's extension: the declared intent.
    #[serde(default)]
    intent: Option<Intent>,
}

/// The transaction envelope type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxType {
    /// Type 0.
    Legacy,
    /// Type 1 (access list).
    Eip2930,
    /// Type 2 (fee market).
    Eip1559,
}

/// A checked transaction, ready for policy and signing.
#[derive(Debug, Clone)]
pub struct TxRequest {
    /// The signing account, when the request named it.
    pub from: Option<Address>,
    /// The envelope type.
    pub kind: TxType,
    /// The nonce.
    pub nonce: u64,
    /// What the policy sees of it.
    pub facts: TxFacts,
    access_list: AccessList,
}

fn addr(field: &str, s: &str) -> Result<Address, EvmError> {
    signward_policy::parse_address(s)
        .map_err(|e| EvmError::InvalidTransaction(format!("{field}: {e}")))
}

fn bytes(field: &str, s: &str) -> Result<Vec<u8>, EvmError> {
    let h = s.trim().strip_prefix("0x").unwrap_or(s.trim());
    hex::decode(h).map_err(|_| EvmError::InvalidTransaction(format!("{field} is not hex")))
}

/// Parse an `eth_signTransaction` transaction object (and its optional `intent`).
pub fn parse(value: &serde_json::Value) -> Result<(TxRequest, Option<Intent>), EvmError> {
    let t = TxJson::deserialize(value).map_err(|e| EvmError::InvalidTransaction(e.to_string()))?;
    let data = match (&t.data, &t.input) {
        (Some(d), Some(i)) if bytes("data", d)? != bytes("input", i)? => {
            return Err(EvmError::InvalidTransaction("data and input differ".into()))
        }
        (Some(d), _) => bytes("data", d)?,
        (None, Some(i)) => bytes("input", i)?,
        (None, None) => Vec::new(),
    };
    let chain_id = required(&t.chain_id, "chainId")?.u64("chainId")?;
    // EIP-2294's bound: EIP-155's `v` (chainId·2 + 35 + parity) must fit in 64 bits.
    if chain_id > u64::MAX / 2 - 36 {
        return Err(EvmError::InvalidTransaction("chainId is too large".into()));
    }
    let nonce = required(&t.nonce, "nonce")?.u64("nonce")?;
    let gas = required(&t.gas, "gas")?.u64("gas")?;
    let to = match t.to.as_deref() {
        None | Some("") => None,
        Some(s) => Some(addr("to", s)?),
    };
    let value = t
        .value
        .as_ref()
        .map(|v| v.u256("value"))
        .transpose()?
        .unwrap_or(U256::ZERO);
    let kind = match t.kind.as_ref().map(|k| k.u64("type")).transpose()? {
        Some(0) => TxType::Legacy,
        Some(1) => TxType::Eip2930,
        Some(2) => TxType::Eip1559,
        Some(other) => return Err(EvmError::UnsupportedType(format!("0x{other:x}"))),
        None if t.max_fee_per_gas.is_some() || t.max_priority_fee_per_gas.is_some() => {
            TxType::Eip1559
        }
        None if t.access_list.is_some() => TxType::Eip2930,
        None => TxType::Legacy,
    };
    let (gas_price, max_fee, max_prio) = match kind {
        TxType::Legacy | TxType::Eip2930 => {
            if t.max_fee_per_gas.is_some() || t.max_priority_fee_per_gas.is_some() {
                return Err(EvmError::InvalidTransaction(
                    "maxFeePerGas on a non-EIP-1559 transaction".into(),
                ));
            }
            let gp = required(&t.gas_price, "gasPrice")?.u128("gasPrice")?;
            (Some(gp), None, None)
        }
        TxType::Eip1559 => {
            if t.gas_price.is_some() {
                return Err(EvmError::InvalidTransaction(
                    "gasPrice on an EIP-1559 transaction".into(),
                ));
            }
            let mf = required(&t.max_fee_per_gas, "maxFeePerGas")?.u128("maxFeePerGas")?;
            let mp = required(&t.max_priority_fee_per_gas, "maxPriorityFeePerGas")?
                .u128("maxPriorityFeePerGas")?;
            if mp > mf {
                return Err(EvmError::InvalidTransaction(
                    "maxPriorityFeePerGas exceeds maxFeePerGas".into(),
                ));
            }
            (None, Some(mf), Some(mp))
        }
    };
    if kind == TxType::Legacy && t.access_list.is_some() {
        return Err(EvmError::InvalidTransaction(
            "accessList on a legacy transaction".into(),
        ));
    }
    let mut items = Vec::new();
    for item in t.access_list.unwrap_or_default() {
        let keys = item
            .storage_keys
            .iter()
            .map(|k| {
                B256::from_str(k)
                    .map_err(|_| EvmError::InvalidTransaction("storage key is not 32 bytes".into()))
            })
            .collect::<Result<_, _>>()?;
        items.push(AccessListItem {
            address: addr("accessList.address", &item.address)?,
            storage_keys: keys,
        });
    }
    let from = t.from.as_deref().map(|f| addr("from", f)).transpose()?;
    Ok((
        TxRequest {
            from,
            kind,
            nonce,
            facts: TxFacts {
                chain_id,
                to,
                value,
                gas,
                gas_price,
                max_fee_per_gas: max_fee,
                max_priority_fee_per_gas: max_prio,
                data,
            },
            access_list: AccessList(items),
        },
        t.intent,
    ))
}

/// Sign a transaction of any envelope type over the signing hash alloy computes for it.
fn sign_envelope<T>(tx: T, key: &EvmKey) -> Result<TxEnvelope, EvmError>
where
    T: SignableTransaction<alloy_primitives::Signature>,
    alloy_consensus::Signed<T>: Into<TxEnvelope>,
{
    let sig = key.sign_digest(&tx.signature_hash())?;
    Ok(tx.into_signed(sig).into())
}

/// A signed transaction: the raw bytes and what clients show of it.
#[derive(Debug, Clone)]
pub struct SignedTx {
    /// EIP-2718 encoding (legacy: plain RLP with EIP-155 `v`).
    pub raw: Vec<u8>,
    /// The transaction hash.
    pub hash: B256,
    /// The signature's `r`.
    pub r: U256,
    /// The signature's `s`.
    pub s: U256,
    /// The signature's y parity.
    pub y_parity: bool,
    /// `v` as the envelope carries it: `chainId·2 + 35 + parity` for legacy, the parity otherwise.
    pub v: u64,
}

impl TxRequest {
    /// Sign and return the raw transaction (EIP-2718 encoding; legacy is plain RLP with EIP-155).
    pub fn sign(&self, key: &EvmKey) -> Result<SignedTx, EvmError> {
        let f = &self.facts;
        let to = match f.to {
            Some(a) => TxKind::Call(a),
            None => TxKind::Create,
        };
        let input = Bytes::from(f.data.clone());
        let envelope: TxEnvelope = match self.kind {
            TxType::Legacy => {
                let tx = TxLegacy {
                    chain_id: Some(f.chain_id),
                    nonce: self.nonce,
                    gas_price: f.gas_price.unwrap_or_default(),
                    gas_limit: f.gas,
                    to,
                    value: f.value,
                    input,
                };
                sign_envelope(tx, key)?
            }
            TxType::Eip2930 => {
                let tx = TxEip2930 {
                    chain_id: f.chain_id,
                    nonce: self.nonce,
                    gas_price: f.gas_price.unwrap_or_default(),
                    gas_limit: f.gas,
                    to,
                    value: f.value,
                    access_list: self.access_list.clone(),
                    input,
                };
                sign_envelope(tx, key)?
            }
            TxType::Eip1559 => {
                let tx = TxEip1559 {
                    chain_id: f.chain_id,
                    nonce: self.nonce,
                    gas_limit: f.gas,
                    max_fee_per_gas: f.max_fee_per_gas.unwrap_or_default(),
                    max_priority_fee_per_gas: f.max_priority_fee_per_gas.unwrap_or_default(),
                    to,
                    value: f.value,
                    access_list: self.access_list.clone(),
                    input,
                };
                sign_envelope(tx, key)?
            }
        };
        let sig = *envelope.signature();
        let parity = sig.v();
        Ok(SignedTx {
            hash: *envelope.hash(),
            raw: envelope.encoded_2718(),
            r: sig.r(),
            s: sig.s(),
            y_parity: parity,
            v: match self.kind {
                TxType::Legacy => self.facts.chain_id * 2 + 35 + parity as u64,
                _ => parity as u64,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_is_bounded_so_eip155_v_fits() {
        // Reached through fuzz/fuzz_targets/jsonrpc_tx.rs: chainId·2 + 35 overflowed in `sign`
        // (a panic with overflow checks, a wrapped `v` without).
        let key = EvmKey::from_secret_bytes(&[0x11; 32]).unwrap();
        let tx = |chain_id: u64| {
            let id = format!("{chain_id:#x}");
            serde_json::json!({"gas": 21000, "gasPrice": 1, "nonce": 0, "chainId": id})
        };
        for too_large in [u64::MAX, u64::MAX / 2 - 35] {
            assert!(matches!(
                parse(&tx(too_large)),
                Err(EvmError::InvalidTransaction(_))
            ));
        }
        let max = u64::MAX / 2 - 36;
        let (req, _) = parse(&tx(max)).unwrap();
        let signed = req.sign(&key).unwrap();
        assert_eq!(signed.v, max * 2 + 35 + signed.y_parity as u64);
    }
}
