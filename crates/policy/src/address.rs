//! Addresses as signward reads them wherever they come from (policy files, credentials,
//! requests): all lowercase, all uppercase, or mixed case with a valid EIP-55 checksum. A
//! mixed-case address whose checksum is wrong is a typo, and refused.

use alloy_primitives::Address;

/// Parse a `0x`-prefixed (or bare) 20-byte hex address, checking the EIP-55 checksum when the
/// letters are of mixed case.
pub fn parse_address(s: &str) -> Result<Address, AddressError> {
    let t = s.trim();
    let hex = t.strip_prefix("0x").unwrap_or(t);
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AddressError::NotAnAddress);
    }
    let mixed =
        hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
    if mixed {
        return Address::parse_checksummed(format!("0x{hex}"), None)
            .map_err(|_| AddressError::BadChecksum);
    }
    hex.parse().map_err(|_| AddressError::NotAnAddress)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
/// Why a string is not an EVM address.
pub enum AddressError {
    #[error("not a 20-byte hex address")]
    /// Not 20 bytes of hex.
    NotAnAddress,
    #[error("invalid EIP-55 checksum (mixed case that does not match the address)")]
    /// Mixed case that is not the EIP-55 checksum.
    BadChecksum,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_checked_when_case_is_mixed() {
        let good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert!(parse_address(good).is_ok());
        assert!(parse_address(&good.to_ascii_lowercase()).is_ok());
        assert!(parse_address(&format!("0x{}", good[2..].to_ascii_uppercase())).is_ok());
        assert_eq!(
            parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),
            Err(AddressError::BadChecksum)
        );
        assert_eq!(
            parse_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae"),
            Err(AddressError::NotAnAddress)
        );
    }
}
