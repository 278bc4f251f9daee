//! Consensus-layer `config.yaml` for custom networks (`--network FILE`):
//! `NetworkConfig::from_config_yaml`, then the pure lookups the signer makes with it; and the
//! genesis sources beside it (`genesis.ssz` prefix, beacon `genesis.json`) applied to it.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use signward_core::network::{GenesisFacts, NetworkConfig};

fuzz_target!(|data: &[u8]| {
    let ssz = GenesisFacts::from_state_ssz(data);
    assert_eq!(ssz.is_ok(), data.len() >= 40);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(facts)) = GenesisFacts::from_beacon_json(text) {
        let mut m = NetworkConfig::mainnet();
        if m.apply_genesis(vec![facts.clone()]).is_ok() {
            assert_eq!(m.genesis_time, Some(facts.genesis_time));
        }
        let _ = m.genesis_time_warning();
    }
    let Ok(n) = NetworkConfig::from_config_yaml("fuzz", text) else {
        return;
    };
    assert!(n.seconds_per_slot > 0);
    assert!(n.forks.windows(2).all(|w| w[0].epoch <= w[1].epoch));
    for epoch in [0, 1, u64::MAX / 2, u64::MAX] {
        let _ = n.fork_version_at(epoch);
    }
    for slot in [0, 31, u64::MAX] {
        let _ = n.epoch_at_slot(slot);
    }
    for f in &n.forks {
        let _ = n.fork_version_at(f.epoch);
    }
});
