//! Keystore passwords: read from files, normalised as EIP-2335 requires, held in wiped buffers.

use std::path::Path;

use secrecy::{ExposeSecret, SecretBox, SecretString};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::fsutil::{read_secret_file, FileKind};
use crate::KeyError;

/// The password bytes a KDF consumes, after EIP-2335 normalisation.
pub type PasswordBytes = SecretBox<[u8]>;

/// EIP-2335 password processing: NFKD, then drop C0 (U+0000–U+001F), DEL (U+007F) and
/// C1 (U+0080–U+009F) control codes, then UTF-8. A trailing newline in a password file is a
/// control code, so it is dropped here too.
pub fn normalize(password: &SecretString) -> PasswordBytes {
    let kept: Zeroizing<String> = Zeroizing::new(
        password
            .expose_secret()
            .nfkd()
            .filter(|c| !matches!(*c as u32, 0x00..=0x1f | 0x7f..=0x9f))
            .collect(),
    );
    SecretBox::from(kept.as_bytes().to_vec().into_boxed_slice())
}

/// Read a password file (owner-only permissions required) into a secret string.
pub fn read_password_file(path: &Path) -> Result<SecretString, KeyError> {
    let bytes = read_secret_file(path, FileKind::Password).map_err(|e| match e {
        KeyError::Io(std::io::ErrorKind::NotFound) => KeyError::MissingPassword,
        other => other,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::PasswordNotUtf8)?;
    Ok(SecretString::from(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_controls_and_decomposes() {
        let p = SecretString::from("a\u{0}b\u{7f}c\u{85}d\n".to_string());
        assert_eq!(normalize(&p).expose_secret(), b"abcd");
        // NFKD: U+2126 OHM SIGN -> U+03A9
        let p = SecretString::from("\u{2126}".to_string());
        assert_eq!(normalize(&p).expose_secret(), "\u{3a9}".as_bytes());
        // spaces are kept
        let p = SecretString::from(" a b ".to_string());
        assert_eq!(normalize(&p).expose_secret(), b" a b ");
    }
}
