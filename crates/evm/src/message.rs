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

/// Parsed EIP-712 typed data with the domain facts the policy looks at.
pub struct Typed {
    data: TypedData,
    pub chain_id: Option<u64>,
    pub verifying_contract: Option<Address>,
}

/// Parse `eth_signTypedData_v4` data (a JSON object, or a string holding one).
pub fn parse_typed(value: &serde_json::Value) -> Result<Typed, EvmError> {
    let data: TypedData = match value {
        serde_json::Value::String(s) => serde_json::from_str(s),
        other => TypedData::deserialize(other),
    }
    .map_err(|e| EvmError::InvalidTypedData(e.to_string()))?;
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
    })
}

impl Typed {
    pub fn sign(&self, key: &EvmKey) -> Result<[u8; 65], EvmError> {
        let hash = self
            .data
            .eip712_signing_hash()
            .map_err(|e| EvmError::InvalidTypedData(e.to_string()))?;
        Ok(rsv(&key.sign_digest(&hash)?))
    }
}
