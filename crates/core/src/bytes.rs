//! Byte strings and integers in the consensus JSON encoding: `0x`-prefixed hex for bytes,
//! decimal strings for `uint64` (numbers are accepted too, for Web3Signer's deprecated forms).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Decode `0x`-prefixed (or bare) hex. Returns `None` on odd length or a non-hex digit.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    hex::decode(s).ok()
}

/// Encode as lowercase `0x`-prefixed hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("0x");
    out.push_str(&hex::encode(bytes));
    out
}

/// A fixed-length public byte string (roots, versions, public keys, signatures, addresses).
/// Never use it for secret bytes: it derives `Debug` and prints itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FixedBytes<const N: usize>(pub [u8; N]);

impl<const N: usize> FixedBytes<N> {
    /// All zero bytes.
    pub const ZERO: Self = FixedBytes([0u8; N]);

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }

    /// `0x`-prefixed lowercase hex.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// The value of exactly `N` bytes, or `None`.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; N]>::try_from(bytes).ok().map(FixedBytes)
    }
}

impl<const N: usize> From<[u8; N]> for FixedBytes<N> {
    fn from(x: [u8; N]) -> Self {
        FixedBytes(x)
    }
}

impl<const N: usize> Default for FixedBytes<N> {
    fn default() -> Self {
        Self::ZERO
    }
}

impl<const N: usize> fmt::Debug for FixedBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> fmt::Display for FixedBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Error parsing a [`FixedBytes`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} bytes of hex")]
pub struct HexLengthError {
    /// How many bytes were expected.
    pub expected: usize,
}

impl<const N: usize> FromStr for FixedBytes<N> {
    type Err = HexLengthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_hex(s.trim())
            .and_then(|v| Self::from_slice(&v))
            .ok_or(HexLengthError { expected: N })
    }
}

impl<const N: usize> Serialize for FixedBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de, const N: usize> Deserialize<'de> for FixedBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<const N: usize> Visitor<'_> for V<N> {
            type Value = FixedBytes<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a hex string of {N} bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse()
                    .map_err(|_| E::custom(format_args!("expected {N} bytes of hex")))
            }
        }
        d.deserialize_str(V::<N>)
    }
}

/// 32-byte root (hash tree root, block root, signing root).
pub type Root = FixedBytes<32>;
/// 4-byte fork version.
pub type Version = FixedBytes<4>;
/// 4-byte domain type.
pub type DomainType = FixedBytes<4>;
/// 32-byte signature domain.
pub type Domain = FixedBytes<32>;
/// Compressed BLS12-381 G1 public key.
pub type PublicKeyBytes = FixedBytes<48>;
/// Compressed BLS12-381 G2 signature.
pub type SignatureBytes = FixedBytes<96>;
/// 20-byte execution address.
pub type Address = FixedBytes<20>;

/// Variable-length public bytes (SSZ bitlists and bitvectors in hex).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct HexBytes(pub Vec<u8>);

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HexBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a hex string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                decode_hex(v)
                    .map(HexBytes)
                    .ok_or_else(|| E::custom("expected hex"))
            }
        }
        d.deserialize_str(V)
    }
}

/// A consensus `uint64`: a decimal string on the wire; a JSON number is accepted too
/// (Web3Signer's deprecated BLOCK body uses one for `depositCount`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uint64(pub u64);

impl fmt::Debug for Uint64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Uint64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for Uint64 {
    fn from(v: u64) -> Self {
        Uint64(v)
    }
}

impl Serialize for Uint64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Uint64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Uint64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a uint64 as a decimal string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Uint64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(Uint64)
                    .map_err(|_| E::custom("negative uint64"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                // Strict decimal: no sign, no whitespace, no hex.
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom("expected a decimal uint64"));
                }
                v.parse::<u64>()
                    .map(Uint64)
                    .map_err(|_| E::custom("uint64 out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_bytes_round_trip_and_bounds() {
        let r: Root = serde_json::from_str(
            "\"0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673\"",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            "\"0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673\""
        );
        assert!(serde_json::from_str::<Root>("\"0x0470\"").is_err());
        assert!(serde_json::from_str::<Version>("\"0xzz000000\"").is_err());
        assert!(serde_json::from_str::<Version>("12").is_err());
    }

    #[test]
    fn uint64_accepts_strings_and_numbers_only_in_range() {
        assert_eq!(serde_json::from_str::<Uint64>("\"42\"").unwrap().0, 42);
        assert_eq!(serde_json::from_str::<Uint64>("42").unwrap().0, 42);
        assert_eq!(
            serde_json::from_str::<Uint64>("\"18446744073709551615\"")
                .unwrap()
                .0,
            u64::MAX
        );
        for bad in [
            "\"18446744073709551616\"",
            "\"-1\"",
            "-1",
            "\"0x10\"",
            "\" 1\"",
            "\"\"",
            "1.5",
        ] {
            assert!(serde_json::from_str::<Uint64>(bad).is_err(), "{bad}");
        }
    }
}
