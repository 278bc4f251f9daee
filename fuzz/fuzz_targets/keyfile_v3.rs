//! Web3 Secret Storage (V3) keyfiles (EVM key import): `signward_evm::keyfile::decrypt`, which
//! parses, bounds the KDF, checks the MAC and decrypts, with a fixed password under tiny KDF
//! limits so that no input costs more than a few microseconds of KDF work.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use signward_keys::keystore::KdfLimits;

/// scrypt: at most 16 KiB and n·r·p ≤ 2^10; PBKDF2: at most 16 iterations.
const LIMITS: KdfLimits = KdfLimits {
    scrypt_max_memory: 16 * 1024,
    scrypt_max_work: 1 << 10,
    pbkdf2_max_iterations: 16,
};

fuzz_target!(|data: &[u8]| {
    let _ = signward_evm::keyfile::decrypt(data, &SecretString::from("testpassword"), &LIMITS);
});
