//! `signward keystore create`.

use std::path::Path;

use anyhow::Context;
use rayon::prelude::*;
use signward_keys::bls::BlsKeypair;
use signward_keys::fsutil::write_secret_file;
use signward_keys::keystore::{Kdf, Keystore};
use signward_keys::password::read_password_file;

use crate::cli::KdfChoice;

pub fn create(
    out: &Path,
    password_file: &Path,
    count: usize,
    kdf: KdfChoice,
    iterations: u32,
) -> anyhow::Result<()> {
    let password = read_password_file(password_file)
        .with_context(|| format!("password file {}", password_file.display()))?;
    super::ensure_private_dir(out)?;
    let written: Vec<String> = (0..count)
        .into_par_iter()
        .map(|_| -> anyhow::Result<String> {
            let key = BlsKeypair::generate();
            let kdf = match kdf {
                KdfChoice::Scrypt => Kdf::scrypt_default(),
                KdfChoice::Pbkdf2 => Kdf::pbkdf2(iterations),
            };
            let ks = Keystore::encrypt(&key, &password, kdf, "")?;
            let hex = key.public_key().to_hex();
            let path = out.join(format!("keystore-{}.json", &hex[2..18]));
            write_secret_file(&path, &serde_json::to_vec_pretty(&ks)?)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(hex)
        })
        .collect::<anyhow::Result<_>>()?;
    for pk in written {
        println!("{pk}");
    }
    Ok(())
}
