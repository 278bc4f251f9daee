//! What a caller may do: scopes, keys, operations, source networks, expiry. Deny by default.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use signward_core::bytes::PublicKeyBytes;
use signward_core::request::MessageType;

use crate::AuthError;

/// API areas a credential can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `POST /api/v1/eth2/sign/{pubkey}`.
    Sign,
    /// `GET /api/v1/eth2/publicKeys`.
    PublicKeys,
    /// The Keymanager API.
    Keymanager,
    /// Administrative endpoints (halt, seal, unseal, ...).
    Admin,
    /// `GET /healthcheck` and metrics.
    Metrics,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Sign,
        Scope::PublicKeys,
        Scope::Keymanager,
        Scope::Admin,
        Scope::Metrics,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Sign => "sign",
            Scope::PublicKeys => "public_keys",
            Scope::Keymanager => "keymanager",
            Scope::Admin => "admin",
            Scope::Metrics => "metrics",
        }
    }
}

impl FromStr for Scope {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s.trim())
            .ok_or_else(|| AuthError::InvalidPolicy(format!("unknown scope {s:?}")))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IPv4 or IPv6 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // Compare IPv4-mapped IPv6 peers as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        let bad = || AuthError::InvalidPolicy(format!("invalid CIDR {s:?}"));
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn op_name(t: &MessageType) -> String {
    t.as_str().to_string()
}

mod ops_serde {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &BTreeSet<String>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeSet<String>, D::Error> {
        let v = BTreeSet::<String>::deserialize(d)?;
        for op in &v {
            op.parse::<MessageType>()
                .map_err(|_| serde::de::Error::custom(format!("unknown operation {op:?}")))?;
        }
        Ok(v)
    }
}

/// Why a valid credential was refused (HTTP 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Scope,
    Key,
    Operation,
    Network,
    Expired,
}

impl Denied {
    pub fn code(&self) -> &'static str {
        match self {
            Denied::Scope => "scope_denied",
            Denied::Key => "key_denied",
            Denied::Operation => "operation_denied",
            Denied::Network => "network_denied",
            Denied::Expired => "credential_expired",
        }
    }
}

/// A credential's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub scopes: BTreeSet<Scope>,
    /// When set, only these keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<BTreeSet<PublicKeyBytes>>,
    /// When set, only these operations (sign request types).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ops")]
    pub allow_ops: Option<BTreeSet<String>>,
    /// Never these operations.
    #[serde(
        default,
        skip_serializing_if = "BTreeSet::is_empty",
        with = "ops_serde"
    )]
    pub deny_ops: BTreeSet<String>,
    /// When non-empty, the peer address must be in one of these networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<Cidr>,
    /// Unix seconds after which the credential is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

mod opt_ops {
    use super::*;
    pub fn serialize<S: serde::Serializer>(
        v: &Option<BTreeSet<String>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<BTreeSet<String>>, D::Error> {
        let v = Option::<BTreeSet<String>>::deserialize(d)?;
        if let Some(v) = &v {
            for op in v {
                op.parse::<MessageType>()
                    .map_err(|_| serde::de::Error::custom(format!("unknown operation {op:?}")))?;
            }
        }
        Ok(v)
    }
}

impl Policy {
    /// May this credential use `scope` from `peer` at `now` (Unix seconds)?
    pub fn check_access(&self, scope: Scope, peer: IpAddr, now: u64) -> Result<(), Denied> {
        if self.expires_at.is_some_and(|t| now >= t) {
            return Err(Denied::Expired);
        }
        if !self.cidrs.is_empty() && !self.cidrs.iter().any(|c| c.contains(peer)) {
            return Err(Denied::Network);
        }
        if !self.scopes.contains(&scope) {
            return Err(Denied::Scope);
        }
        Ok(())
    }

    /// May this credential sign `op` with `key`? (After [`Self::check_access`] for `Sign`.)
    pub fn check_sign(&self, key: &PublicKeyBytes, op: MessageType) -> Result<(), Denied> {
        if let Some(keys) = &self.keys {
            if !keys.contains(key) {
                return Err(Denied::Key);
            }
        }
        let name = op_name(&op);
        if self.deny_ops.contains(&name) {
            return Err(Denied::Operation);
        }
        if let Some(allow) = &self.allow_ops {
            if !allow.contains(&name) {
                return Err(Denied::Operation);
            }
        }
        Ok(())
    }

    /// May this credential see `key` (public key listing)?
    pub fn may_see_key(&self, key: &PublicKeyBytes) -> bool {
        self.keys.as_ref().is_none_or(|k| k.contains(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.9.9".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "::/129", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
