//! Shared server state: the loaded keys and the load status behind readiness.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use signward_core::bytes::PublicKeyBytes;
use signward_core::network::NetworkConfig;
use signward_keys::BlsKeypair;

/// The keys the server can sign with, in load order.
#[derive(Default)]
pub struct KeyRegistry {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    order: Vec<PublicKeyBytes>,
    map: HashMap<PublicKeyBytes, Arc<BlsKeypair>>,
}

impl KeyRegistry {
    /// Add keys; a public key already present is kept as it was. Returns how many were added.
    pub fn insert_all(&self, keys: impl IntoIterator<Item = BlsKeypair>) -> usize {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let mut added = 0;
        for k in keys {
            let pk = *k.public_key();
            if let std::collections::hash_map::Entry::Vacant(e) = g.map.entry(pk) {
                e.insert(Arc::new(k));
                g.order.push(pk);
                added += 1;
            }
        }
        added
    }

    pub fn get(&self, pk: &PublicKeyBytes) -> Option<Arc<BlsKeypair>> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.map.get(pk).cloned()
    }

    pub fn public_keys(&self) -> Vec<PublicKeyBytes> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.order.clone()
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .order
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where key loading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStatus {
    /// Loading `total` configured keys.
    Loading { total: usize },
    /// Every configured key has loaded or failed.
    Done { loaded: usize, failed: usize },
}

/// Everything a request handler can see.
pub struct AppState {
    pub network: NetworkConfig,
    pub keys: KeyRegistry,
    status: RwLock<LoadStatus>,
}

impl AppState {
    pub fn new(network: NetworkConfig) -> Self {
        AppState {
            network,
            keys: KeyRegistry::default(),
            status: RwLock::new(LoadStatus::Loading { total: 0 }),
        }
    }

    pub fn load_status(&self) -> LoadStatus {
        *self.status.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_load_status(&self, s: LoadStatus) {
        *self.status.write().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Ready to sign: key loading has finished (with or without failures).
    pub fn is_ready(&self) -> bool {
        matches!(self.load_status(), LoadStatus::Done { .. })
    }
}
