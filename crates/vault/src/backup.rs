//! age encryption: key backups to an operator's recipient, and age share files. Output is
//! ASCII-armored so it survives copy and paste, and opens with the standard `age -d`.

use std::io::{Read, Write};
use std::str::FromStr;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use zeroize::Zeroizing;

use crate::VaultError;

/// Parse an `age1…` X25519 recipient.
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, VaultError> {
    age::x25519::Recipient::from_str(s.trim())
        .map_err(|e| VaultError::InvalidParameters(format!("not an age recipient (age1…): {e}")))
}

/// Encrypt `plaintext` to `recipient`, ASCII-armored.
pub fn encrypt_armored(
    recipient: &age::x25519::Recipient,
    plaintext: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
        .map_err(|e| VaultError::Age(e.to_string()))?;
    let mut out = Vec::new();
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor)?;
    let mut w = enc.wrap_output(armor)?;
    w.write_all(plaintext)?;
    w.finish()?.finish()?;
    Ok(out)
}

/// Decrypt an age file (armored or binary) with any of `identities`.
pub fn decrypt_armored(
    bytes: &[u8],
    identities: &[Box<dyn age::Identity>],
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let dec = age::Decryptor::new(ArmoredReader::new(bytes))
        .map_err(|e| VaultError::ShareMalformed(format!("not an age file: {e}")))?;
    let mut r = dec
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => VaultError::WrongIdentity,
            other => VaultError::Age(other.to_string()),
        })?;
    let mut out = Zeroizing::new(Vec::new());
    r.read_to_end(&mut out)
        .map_err(|e| VaultError::Age(format!("age payload: {e}")))?;
    Ok(out)
}

/// The plaintext of a key backup: a Web3Signer `file-raw` key configuration (`key_type` `BLS` or
/// `SECP256K1`), which signward (with `--allow-raw-keys`) and Web3Signer load as they are.
pub fn raw_key_config(key_type: &str, id: &str, secret: &[u8]) -> Zeroizing<Vec<u8>> {
    let secret_hex = Zeroizing::new(hex::encode(secret));
    Zeroizing::new(
        format!(
            "# signward key backup for {id}\n# Plaintext secret key: keep this file encrypted.\ntype: file-raw\nkeyType: {key_type}\nprivateKey: \"0x{}\"\n",
            secret_hex.as_str()
        )
        .into_bytes(),
    )
}
