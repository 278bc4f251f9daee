//! Web3Signer key-config YAML (`--key-config-path`): `config::parse_key_configs`, which reads
//! every document of a multi-document stream.
#![no_main]
#![forbid(unsafe_code)]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use signward_keys::config::{parse_key_configs, KeyConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for doc in parse_key_configs(text, Path::new("/etc/signward/keys")) {
        if let Ok(KeyConfig::FileKeystore {
            keystore_file,
            password_file,
        }) = doc
        {
            // Relative paths are resolved against the config's directory.
            assert!(keystore_file.is_absolute());
            assert!(password_file.is_absolute());
        }
    }
});
