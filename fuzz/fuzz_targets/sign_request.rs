//! `POST /api/v1/eth2/sign/{identifier}` bodies: `SignRequest::from_json`, then, on success, the
//! pure next step the server takes, `signing::prepare` (domain, object root, signing root), on
//! mainnet (the target the brief names), Hoodi, and the minimal-preset network with genesis fork
//! version 0x00000001 that the Web3Signer request examples in the seed corpus were made for (so
//! their stated `signingRoot`s match and the success path is covered too).
#![no_main]
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signward_core::network::NetworkConfig;
use signward_core::request::SignRequest;
use signward_core::signing;

fn networks() -> &'static [NetworkConfig; 3] {
    static N: OnceLock<[NetworkConfig; 3]> = OnceLock::new();
    N.get_or_init(|| {
        let minimal = NetworkConfig::from_config_yaml(
            "web3signer-examples",
            "PRESET_BASE: minimal\nGENESIS_FORK_VERSION: 0x00000001\n",
        )
        .expect("a valid network config");
        [NetworkConfig::mainnet(), NetworkConfig::hoodi(), minimal]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(req) = SignRequest::from_json(data) else {
        return;
    };
    for network in networks() {
        if let Ok(job) = signing::prepare(&req, network) {
            assert_eq!(job.kind, req.kind);
            // A slashable job always carries the genesis validators root it was made for.
            if job.slashable.is_some() {
                assert!(job.genesis_validators_root.is_some());
            }
            if let Some(client) = req.signing_root {
                assert_eq!(client, job.signing_root);
            }
        }
    }
});
