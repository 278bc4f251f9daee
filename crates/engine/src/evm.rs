//! EVM keys as the server holds them, the policy in force, the spend ledger, and the signing
//! pipeline behind the JSON-RPC methods: parse → key → policy (key and credential rule sets,
//! declared intent) → spend windows reserved durably → sign → audit → answer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use alloy_primitives::Address;
use signward_evm::ledger::SpendLedger;
use signward_evm::EvmKey;
use signward_policy::{evaluate, Evaluation, Policy, Request};

use crate::state::KeyOrigin;

/// Where an EVM key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvmOrigin {
    /// A V3 keyfile.
    File,
    /// The vault.
    Vault,
    /// `--dev-evm-key`: a raw key from the environment, development only.
    Dev,
}

impl From<KeyOrigin> for EvmOrigin {
    fn from(o: KeyOrigin) -> Self {
        match o {
            KeyOrigin::File => EvmOrigin::File,
            KeyOrigin::Vault => EvmOrigin::Vault,
        }
    }
}

/// EVM state of a running server.
#[derive(Default)]
pub struct EvmState {
    keys: RwLock<HashMap<Address, (Arc<EvmKey>, EvmOrigin)>>,
    policy: RwLock<Option<Arc<Policy>>>,
    pub ledger: Option<SpendLedger>,
    /// Development mode (`--dev`): reported as unsafe by the health check.
    pub dev: bool,
}

impl EvmState {
    pub fn new(policy: Option<Policy>, ledger: Option<SpendLedger>, dev: bool) -> Self {
        EvmState {
            keys: RwLock::default(),
            policy: RwLock::new(policy.map(Arc::new)),
            ledger,
            dev,
        }
    }

    pub fn insert(&self, origin: EvmOrigin, keys: impl IntoIterator<Item = EvmKey>) -> usize {
        let mut g = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        for k in keys {
            if let std::collections::hash_map::Entry::Vacant(e) = g.entry(k.address()) {
                e.insert((Arc::new(k), origin));
                n += 1;
            }
        }
        n
    }

    pub fn remove_all(&self, addrs: &HashSet<Address>) -> usize {
        let mut g = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let before = g.len();
        g.retain(|a, _| !addrs.contains(a));
        before - g.len()
    }

    pub fn remove_origin(&self, origin: EvmOrigin) -> usize {
        let mut g = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let before = g.len();
        g.retain(|_, (_, o)| *o != origin);
        before - g.len()
    }

    pub fn get(&self, a: &Address) -> Option<Arc<EvmKey>> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(a)
            .map(|(k, _)| k.clone())
    }

    pub fn origin(&self, a: &Address) -> Option<EvmOrigin> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(a)
            .map(|(_, o)| *o)
    }

    /// Addresses and origins, sorted by address.
    pub fn entries(&self) -> Vec<(Address, EvmOrigin)> {
        let mut v: Vec<_> = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(a, (_, o))| (*a, *o))
            .collect();
        v.sort_by_key(|(a, _)| *a);
        v
    }

    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replace the policy (SIGHUP reload).
    pub fn set_policy(&self, p: Policy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(p));
    }

    /// Evaluate `req` for `key` and credential `token` under the policy in force. Without a
    /// policy, everything is refused (`no_policy`).
    pub fn evaluate(
        &self,
        key: &Address,
        token: Option<&str>,
        req: &Request<'_>,
        intent: Option<&signward_policy::Intent>,
    ) -> Evaluation {
        match self.policy() {
            Some(p) => evaluate(&p, key, token, req, intent),
            None => Evaluation {
                checks: vec![signward_policy::Check {
                    source: "server".into(),
                    rule: "no_policy",
                    passed: false,
                    detail: "no EVM policy is configured (--evm-policy)".into(),
                }],
                spend_windows: Vec::new(),
            },
        }
    }
}
