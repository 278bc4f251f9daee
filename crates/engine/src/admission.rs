//! The admission step every signing request passes first, eth2 and EVM alike, in one order:
//! canary (so every request for one is caught, whoever asks) → sealed → halted.

use std::sync::Arc;

use signward_auth::store::Caller;

use crate::state::AppState;

/// A key named by a signing request.
#[derive(Debug, Clone, Copy)]
pub enum Requested<'a> {
    /// A BLS key, by public key.
    Bls(&'a signward_core::bytes::PublicKeyBytes),
    /// An EVM key, by address.
    Evm(&'a alloy_primitives::Address),
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A canary key: refused, and the alarm raised.
    Canary,
    /// The vault is sealed.
    Sealed,
    /// An operator (or a canary) halted signing.
    Halted,
}

/// Admit a request for `key` by `caller` (`operation` names it in the alarm), or say why not.
pub async fn admit(
    state: &Arc<AppState>,
    caller: Option<&Caller>,
    key: Requested<'_>,
    operation: &'static str,
) -> Result<(), Refused> {
    let canary = match key {
        Requested::Bls(pk) => state.canaries.bls.contains(pk).then(|| pk.to_hex()),
        Requested::Evm(a) => state
            .canaries
            .evm
            .contains(a)
            .then(|| crate::keyops::evm_key_id(a)),
    };
    if let Some(id) = canary {
        crate::controls::canary_hit(state, caller, &id, operation).await;
        return Err(Refused::Canary);
    }
    if state.is_sealed() {
        return Err(Refused::Sealed);
    }
    if state.halt.is_halted() {
        return Err(Refused::Halted);
    }
    Ok(())
}
