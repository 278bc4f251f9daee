//! The one authorizer: every permission a request needs is decided by [`authorize`], from the
//! caller and the action it asks for. The HTTP gate asks it for the route's scope group, the
//! signing pipelines for the key and the message family, the listings for each key they show,
//! key management for each key it touches. The rules themselves are the [`Policy`]'s.

use std::net::IpAddr;

use alloy_primitives::Address;

use crate::policy::{Denied, KeyId, Operation, Policy, Scope};
use crate::store::Caller;

/// What a caller asks to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Reach a route of `scope` (every route is declared in one scope group) from `peer` at
    /// `now` (Unix seconds).
    Enter {
        /// The route's scope group.
        scope: Scope,
        /// The caller's address as the gate resolved it.
        peer: IpAddr,
        /// The time of the request, Unix seconds.
        now: u64,
    },
    /// Name `key` in a request: sign with it or manage it. Asked before the key is looked up,
    /// so a restricted credential learns nothing about keys it is not granted.
    UseKey(KeyId<'a>),
    /// See `key` in a listing.
    SeeKey(KeyId<'a>),
    /// Sign an eth2 message of `operation`'s family; for a validator registration, for
    /// `fee_recipient`.
    SignEth2 {
        /// The message's family.
        operation: Operation,
        /// The registration's fee recipient, when the message is one.
        fee_recipient: Option<&'a Address>,
    },
    /// Sign with EVM `account` by a method of `operation`'s family.
    SignEvm {
        /// The signing account.
        account: &'a Address,
        /// The method's family.
        operation: Operation,
    },
}

/// May `caller` do `action`? `None` is the caller of a server running without authentication
/// (loopback only): it may do everything. A suspended credential may do nothing.
pub fn authorize(caller: Option<&Caller>, action: Action<'_>) -> Result<(), Denied> {
    let Some(caller) = caller else {
        return Ok(());
    };
    if caller.suspended {
        return Err(Denied::Suspended);
    }
    let p = &caller.policy;
    match action {
        Action::Enter { scope, peer, now } => p.check_access(scope, peer, now),
        Action::UseKey(key) | Action::SeeKey(key) => p.check_key(key),
        Action::SignEth2 {
            operation,
            fee_recipient,
        } => {
            p.check_operation(operation)?;
            match fee_recipient {
                Some(f) => p.check_fee_recipient(f),
                None => Ok(()),
            }
        }
        Action::SignEvm { account, operation } => p
            .check_key(KeyId::Evm(account))
            .and_then(|()| p.check_operation(operation)),
    }
}

/// Whether a policy grants any operation of the families `ops` (for `signward token create`,
/// which refuses an EVM credential that could sign nothing). The same rule as [`authorize`].
pub fn grants_any(policy: &Policy, ops: impl IntoIterator<Item = Operation>) -> bool {
    ops.into_iter().any(|op| policy.check_operation(op).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use signward_core::bytes::PublicKeyBytes;

    fn caller(policy: Policy, suspended: bool) -> Caller {
        Caller {
            name: "c".into(),
            policy,
            suspended,
        }
    }

    #[test]
    fn no_caller_may_do_everything_and_a_suspended_one_nothing() {
        let pk = PublicKeyBytes::from([1; 48]);
        let every: [Action; 3] = [
            Action::Enter {
                scope: Scope::Admin,
                peer: "127.0.0.1".parse().unwrap(),
                now: 0,
            },
            Action::UseKey(KeyId::Bls(&pk)),
            Action::SignEth2 {
                operation: Operation::Block,
                fee_recipient: None,
            },
        ];
        let open = Policy {
            scopes: [Scope::Admin, Scope::Sign].into(),
            ..Default::default()
        };
        for a in every {
            assert_eq!(authorize(None, a), Ok(()));
            assert_eq!(
                authorize(Some(&caller(open.clone(), true)), a),
                Err(Denied::Suspended)
            );
            assert_eq!(authorize(Some(&caller(open.clone(), false)), a), Ok(()));
        }
    }

    #[test]
    fn evm_signing_needs_the_account_and_the_family() {
        let a = Address::repeat_byte(7);
        let b = Address::repeat_byte(8);
        let p = Policy {
            scopes: [Scope::Evm].into(),
            evm_keys: crate::policy::EvmKeys::Only([a].into()),
            allow_ops: Some([Operation::EvmMessage].into()),
            ..Default::default()
        };
        let c = caller(p, false);
        let sign = |account, operation| authorize(Some(&c), Action::SignEvm { account, operation });
        assert_eq!(sign(&a, Operation::EvmMessage), Ok(()));
        assert_eq!(sign(&b, Operation::EvmMessage), Err(Denied::Key));
        assert_eq!(sign(&a, Operation::EvmTransaction), Err(Denied::Operation));
    }
}
