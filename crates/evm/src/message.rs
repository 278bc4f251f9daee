//! EIP-191 personal messages and EIP-712 typed data: hashed here, never taken as a hash.

use alloy_dyn_abi::TypedData;
use alloy_primitives::{eip191_hash_message, Address};
use serde::Deserialize;

use crate::key::rsv;
use crate::{EvmError, EvmKey};

/// Sign `message` as an EIP-191 personal message (`"\x19Ethereum Signed Message:\n" ‖ len ‖ m`).
pub fn sign_personal(key: &EvmKey, message: &[u8]) -> Result<[u8; 65], EvmError> {
    Ok(rsv(&key.sign_digest(&eip191_hash_message(message))?))
}

/// Parsed EIP-712 typed data with the facts the policy looks at.
pub struct Typed {
    data: TypedData,
    /// The domain's chain id, when it names one.
    pub chain_id: Option<u64>,
    /// The domain's verifying contract, when it names one.
    pub verifying_contract: Option<Address>,
    /// True when the message grants an allowance (see [`grants_allowance`]).
    pub approval: bool,
}

/// Words that mark a message type, or a field of it, as granting an allowance, an authority or
/// funds (matched anywhere in the name, case-insensitively).
const APPROVAL_TYPE_WORDS: [&str; 6] = [
    "permit",
    "approv",
    "allowance",
    "authoriz",
    "delegat",
    "withsig",
];
const APPROVAL_FIELDS: [&str; 8] = [
    "spender",
    "allowance",
    "allowed",
    "approved",
    "operator",
    "manager",
    "delegatee",
    "authoriz",
];

/// Does this typed data look like it grants someone an allowance or an authority? EIP-2612 and
/// DAI `Permit`, Permit2's `PermitSingle`/`PermitBatch`/`PermitTransferFrom`…, EIP-3009
/// `TransferWithAuthorization`, delegations by signature, and anything whose primary type is
/// named like one or carries (directly or in a nested struct) a field named like `spender`,
/// `allowance`, `allowed`, `approved`, `operator`, `manager` or `delegatee`. A policy must name
/// every type anyway; this only picks the reason code of a refusal.
pub fn grants_allowance(types: &serde_json::Value, primary_type: &str) -> bool {
    let lower = primary_type.to_ascii_lowercase();
    if APPROVAL_TYPE_WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![primary_type.to_string()];
    while let Some(t) = todo.pop() {
        if !seen.insert(t.clone()) || seen.len() > 64 {
            continue;
        }
        let Some(fields) = types.get(&t).and_then(|f| f.as_array()) else {
            continue;
        };
        for f in fields {
            let name = f
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            if APPROVAL_FIELDS.iter().any(|w| name.contains(w)) {
                return true;
            }
            if let Some(ty) = f.get("type").and_then(|t| t.as_str()) {
                let base = ty.split('[').next().unwrap_or(ty);
                if types.get(base).is_some() {
                    todo.push(base.to_string());
                }
            }
        }
    }
    false
}

/// Parse `eth_signTypedData_v4` data (a JSON object, or a string holding one).
pub fn parse_typed(value: &serde_json::Value) -> Result<Typed, EvmError> {
    let parsed;
    let value = match value {
        serde_json::Value::String(s) => {
            parsed = serde_json::from_str::<serde_json::Value>(s)
                .map_err(|e| EvmError::InvalidTypedData(e.to_string()))?;
            &parsed
        }
        other => other,
    };
    let data =
        TypedData::deserialize(value).map_err(|e| EvmError::InvalidTypedData(e.to_string()))?;
    let approval = grants_allowance(&value["types"], &data.primary_type);
    let chain_id = match data.domain.chain_id {
        Some(c) => Some(
            u64::try_from(c).map_err(|_| EvmError::InvalidTypedData("chainId too large".into()))?,
        ),
        None => None,
    };
    let verifying_contract = data.domain.verifying_contract;
    Ok(Typed {
        data,
        chain_id,
        verifying_contract,
        approval,
    })
}

impl Typed {
    /// The message type being signed.
    pub fn primary_type(&self) -> &str {
        &self.data.primary_type
    }

    /// What the policy looks at: the domain's fields, the message type and the message.
    pub fn facts(&self) -> signward_policy::TypedFacts<'_> {
        signward_policy::TypedFacts {
            name: self.data.domain.name.as_deref(),
            version: self.data.domain.version.as_deref(),
            chain_id: self.chain_id,
            verifying_contract: self.verifying_contract,
            primary_type: &self.data.primary_type,
            message: &self.data.message,
            approval: self.approval,
        }
    }

    /// The EIP-712 signature (`r ‖ s ‖ v`, `v` 27 or 28).
    pub fn sign(&self, key: &EvmKey) -> Result<[u8; 65], EvmError> {
        let hash = self
            .data
            .eip712_signing_hash()
            .map_err(|e| EvmError::InvalidTypedData(e.to_string()))?;
        Ok(rsv(&key.sign_digest(&hash)?))
    }
}

#[cfg(test)]
mod tests {
    use super::grants_allowance;
    use serde_json::json;

    #[test]
    fn allowances_are_recognised() {
        let eip712 = json!([{"name": "name", "type": "string"}]);
        let cases = [
            // EIP-2612
            (
                json!({"EIP712Domain": eip712, "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}]}),
                "Permit",
                true,
            ),
            // Permit2: the spender is in the primary type, the amount in a nested one.
            (
                json!({"PermitSingle": [{"name": "details", "type": "PermitDetails"}, {"name": "spender", "type": "address"}], "PermitDetails": [{"name": "token", "type": "address"}]}),
                "PermitSingle",
                true,
            ),
            // Renamed, but a nested struct names an operator.
            (
                json!({"Grant": [{"name": "inner", "type": "Inner[]"}], "Inner": [{"name": "operator", "type": "address"}]}),
                "Grant",
                true,
            ),
            (
                json!({"TransferWithAuthorization": [{"name": "from", "type": "address"}, {"name": "to", "type": "address"}]}),
                "TransferWithAuthorization",
                true,
            ),
            (
                json!({"Authorization": [{"name": "owner", "type": "address"}, {"name": "manager", "type": "address"}, {"name": "isAllowed", "type": "bool"}]}),
                "Authorization",
                true,
            ),
            (
                json!({"X": [{"name": "spenderAddress", "type": "address"}]}),
                "X",
                true,
            ),
            // Polymarket's ClobAuth and the EIP-712 example mail grant nothing.
            (
                json!({"ClobAuth": [{"name": "address", "type": "address"}, {"name": "timestamp", "type": "string"}, {"name": "nonce", "type": "uint256"}, {"name": "message", "type": "string"}]}),
                "ClobAuth",
                false,
            ),
            (
                json!({"Mail": [{"name": "from", "type": "Person"}, {"name": "contents", "type": "string"}], "Person": [{"name": "wallet", "type": "address"}]}),
                "Mail",
                false,
            ),
        ];
        for (types, primary, expect) in cases {
            assert_eq!(grants_allowance(&types, primary), expect, "{primary}");
        }
        // Cycles in the type graph end.
        let cyclic = json!({"A": [{"name": "b", "type": "B"}], "B": [{"name": "a", "type": "A"}]});
        assert!(!grants_allowance(&cyclic, "A"));
    }
}
