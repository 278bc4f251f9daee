//! EIP-2335 keystores (`--keystores-path`, the key-manager import API):
//! `Keystore::from_json`, `declared_pubkey`, `kdf`, and `decrypt` with a fixed password under tiny
//! KDF limits, so that no input costs more than a few microseconds of KDF work. The password is
//! the one of the Nimbus test keystores in the seed corpus (PBKDF2 c=1), so those decrypt fully
//! (checksum, AES-128-CTR, BLS secret and public-key checks).
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use signward_keys::keystore::{KdfLimits, Keystore};

const PASSWORD: &str = "1331CE70907C1F64745D47447CE378EEA6A95DB271CDA7E54D9D7AB52EE0E0A2";

/// scrypt: at most 16 KiB and n·r·p ≤ 2^10; PBKDF2: at most 16 iterations.
const LIMITS: KdfLimits = KdfLimits {
    scrypt_max_memory: 16 * 1024,
    scrypt_max_work: 1 << 10,
    pbkdf2_max_iterations: 16,
};

fuzz_target!(|data: &[u8]| {
    let Ok(ks) = Keystore::from_json(data) else {
        return;
    };
    let declared = ks.declared_pubkey();
    let _ = ks.kdf(&LIMITS);
    if let Ok(kp) = ks.decrypt(&SecretString::from(PASSWORD), &LIMITS) {
        // A keystore that decrypts either declares no public key or declares this one.
        if let Ok(Some(pk)) = declared {
            assert_eq!(&pk, kp.public_key());
        }
    }
});
