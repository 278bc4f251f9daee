//! Consensus-layer `config.yaml` for custom networks (`--network FILE`):
//! `NetworkConfig::from_config_yaml`, then the pure lookups the signer makes with it.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use signward_core::network::NetworkConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
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
