//! Tokens: `sw_` followed by 64 hex digits (256 random bits). Only their HMAC is stored.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::secret::ServerSecret;

/// Every token starts with this.
pub const PREFIX: &str = "sw_";

/// A freshly minted token, shown to the operator once. No `Debug`.
pub struct NewToken(pub Zeroizing<String>);

/// A new random token (256 bits from the OS).
pub fn generate() -> NewToken {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    NewToken(Zeroizing::new(format!(
        "{PREFIX}{}",
        hex::encode(raw.as_ref())
    )))
}

/// HMAC-SHA256 of a presented token under the server secret.
pub fn hmac(secret: &ServerSecret, token: &str) -> [u8; 32] {
    // new_from_slice accepts any key length for HMAC.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.dangerous_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Cheap shape check before any lookup.
pub fn well_formed(token: &str) -> bool {
    token.len() == PREFIX.len() + 64
        && token.starts_with(PREFIX)
        && token[PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}
