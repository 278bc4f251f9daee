//! What a caller may do: scopes, keys, operations, source networks, expiry. Deny by default.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};
use signward_core::bytes::PublicKeyBytes;
use signward_core::request::MessageType;

use crate::AuthError;

/// API areas a credential can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `POST /api/v1/eth2/sign/{pubkey}`, for the BLS keys and operations granted.
    Sign,
    /// `GET /api/v1/eth2/publicKeys`.
    PublicKeys,
    /// The Keymanager API.
    Keymanager,
    /// Administrative endpoints (halt, seal, unseal, ...).
    Admin,
    /// `GET /healthcheck` and metrics.
    Metrics,
    /// The EVM JSON-RPC endpoint (`POST /`), for the EVM keys and methods granted.
    Evm,
}

impl Scope {
    /// Every scope, in a fixed order.
    pub const ALL: [Scope; 6] = [
        Scope::Sign,
        Scope::PublicKeys,
        Scope::Keymanager,
        Scope::Admin,
        Scope::Metrics,
        Scope::Evm,
    ];

    /// The name in `tokens.json` and on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Sign => "sign",
            Scope::PublicKeys => "public_keys",
            Scope::Keymanager => "keymanager",
            Scope::Admin => "admin",
            Scope::Metrics => "metrics",
            Scope::Evm => "evm",
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
    /// `ip` lies in this network.
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

impl Cidr {
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// An IPv4 network.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether the range holds the unspecified, a multicast or the broadcast address.
    pub fn is_unspecified_or_multicast(&self) -> bool {
        let probe = |ip: IpAddr| self.contains(ip);
        self.addr.is_unspecified()
            || self.addr.is_multicast()
            || probe(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
            || probe(IpAddr::V4(std::net::Ipv4Addr::BROADCAST))
            || probe(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
    }

    /// How many addresses past one host the range spans, as a power of two (0 for one host).
    pub fn host_bits(&self) -> u8 {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        max - self.prefix
    }

    /// Whether the whole range is loopback.
    pub fn is_loopback(&self) -> bool {
        match self.addr {
            IpAddr::V4(a) => a.is_loopback() && self.prefix >= 8,
            IpAddr::V6(a) => a.is_loopback() && self.prefix == 128,
        }
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let (wide, narrow) = if self.prefix <= other.prefix {
            (self, other)
        } else {
            (other, self)
        };
        wide.contains(narrow.addr)
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

/// What a credential may be granted, by family: a grant or denial of `BLOCK_V2` is one of
/// `BLOCK` too (both sign the same kind of message), and the same for the aggregate forms and for
/// the EVM methods that differ only in wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// `BLOCK` and `BLOCK_V2`.
    Block,
    /// `ATTESTATION`.
    Attestation,
    /// `AGGREGATE_AND_PROOF` (every version).
    AggregateAndProof,
    /// `AGGREGATION_SLOT`.
    AggregationSlot,
    /// `RANDAO_REVEAL`.
    RandaoReveal,
    /// `SYNC_COMMITTEE_MESSAGE`.
    SyncCommitteeMessage,
    /// `SYNC_COMMITTEE_SELECTION_PROOF`.
    SyncCommitteeSelectionProof,
    /// `SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF`.
    SyncCommitteeContributionAndProof,
    /// `VALIDATOR_REGISTRATION`.
    ValidatorRegistration,
    /// Signs a deposit to any withdrawal credentials: granted only by name.
    Deposit,
    /// Exits the validator for good: granted only by name.
    VoluntaryExit,
    /// `eth_signTransaction`.
    EvmTransaction,
    /// `eth_sign`, `personal_sign` (EIP-191).
    EvmMessage,
    /// `eth_signTypedData`, `eth_signTypedData_v4` (EIP-712).
    EvmTypedData,
}

impl Operation {
    /// Every operation, in a fixed order.
    pub const ALL: [Operation; 14] = [
        Operation::Block,
        Operation::Attestation,
        Operation::AggregateAndProof,
        Operation::AggregationSlot,
        Operation::RandaoReveal,
        Operation::SyncCommitteeMessage,
        Operation::SyncCommitteeSelectionProof,
        Operation::SyncCommitteeContributionAndProof,
        Operation::ValidatorRegistration,
        Operation::Deposit,
        Operation::VoluntaryExit,
        Operation::EvmTransaction,
        Operation::EvmMessage,
        Operation::EvmTypedData,
    ];

    /// A validator client's duties: what a credential without an operation list may sign.
    /// Deposits, exits and every EVM method must be granted by name.
    pub const DUTIES: [Operation; 9] = [
        Operation::Block,
        Operation::Attestation,
        Operation::AggregateAndProof,
        Operation::AggregationSlot,
        Operation::RandaoReveal,
        Operation::SyncCommitteeMessage,
        Operation::SyncCommitteeSelectionProof,
        Operation::SyncCommitteeContributionAndProof,
        Operation::ValidatorRegistration,
    ];

    /// The canonical name (stored in `tokens.json`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Block => "BLOCK",
            Operation::Attestation => "ATTESTATION",
            Operation::AggregateAndProof => "AGGREGATE_AND_PROOF",
            Operation::AggregationSlot => "AGGREGATION_SLOT",
            Operation::RandaoReveal => "RANDAO_REVEAL",
            Operation::SyncCommitteeMessage => "SYNC_COMMITTEE_MESSAGE",
            Operation::SyncCommitteeSelectionProof => "SYNC_COMMITTEE_SELECTION_PROOF",
            Operation::SyncCommitteeContributionAndProof => "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF",
            Operation::ValidatorRegistration => "VALIDATOR_REGISTRATION",
            Operation::Deposit => "DEPOSIT",
            Operation::VoluntaryExit => "VOLUNTARY_EXIT",
            Operation::EvmTransaction => "eth_signTransaction",
            Operation::EvmMessage => "eth_sign",
            Operation::EvmTypedData => "eth_signTypedData",
        }
    }

    /// The family of an eth2 sign request type.
    pub fn of_message(t: MessageType) -> Operation {
        match t {
            MessageType::Block | MessageType::BlockV2 => Operation::Block,
            MessageType::Attestation => Operation::Attestation,
            MessageType::AggregateAndProof | MessageType::AggregateAndProofV2 => {
                Operation::AggregateAndProof
            }
            MessageType::AggregationSlot => Operation::AggregationSlot,
            MessageType::RandaoReveal => Operation::RandaoReveal,
            MessageType::SyncCommitteeMessage => Operation::SyncCommitteeMessage,
            MessageType::SyncCommitteeSelectionProof => Operation::SyncCommitteeSelectionProof,
            MessageType::SyncCommitteeContributionAndProof => {
                Operation::SyncCommitteeContributionAndProof
            }
            MessageType::ValidatorRegistration => Operation::ValidatorRegistration,
            MessageType::Deposit => Operation::Deposit,
            MessageType::VoluntaryExit => Operation::VoluntaryExit,
        }
    }

    /// The family of a JSON-RPC signing method (exact spelling, as JSON-RPC is case-sensitive).
    pub fn of_evm_method(method: &str) -> Option<Operation> {
        match method {
            "eth_signTransaction" | "eth_sendTransaction" => Some(Operation::EvmTransaction),
            "eth_sign" | "personal_sign" => Some(Operation::EvmMessage),
            "eth_signTypedData" | "eth_signTypedData_v4" => Some(Operation::EvmTypedData),
            _ => None,
        }
    }

    /// One of the EVM families.
    pub fn is_evm(&self) -> bool {
        matches!(
            self,
            Operation::EvmTransaction | Operation::EvmMessage | Operation::EvmTypedData
        )
    }
}

impl FromStr for Operation {
    type Err = AuthError;
    /// Any sign request type or family name (any case), or an EVM method name.
    fn from_str(s: &str) -> Result<Self, AuthError> {
        let s = s.trim();
        if let Ok(t) = s.parse::<MessageType>() {
            return Ok(Operation::of_message(t));
        }
        if let Some(op) = Operation::ALL
            .into_iter()
            .find(|o| o.as_str().eq_ignore_ascii_case(s))
        {
            return Ok(op);
        }
        let lower = s.to_ascii_lowercase();
        [
            "eth_signtransaction",
            "eth_sign",
            "personal_sign",
            "eth_signtypeddata",
            "eth_signtypeddata_v4",
        ]
        .iter()
        .position(|m| *m == lower)
        .map(|i| {
            [
                Operation::EvmTransaction,
                Operation::EvmMessage,
                Operation::EvmMessage,
                Operation::EvmTypedData,
                Operation::EvmTypedData,
            ][i]
        })
        .ok_or_else(|| AuthError::InvalidPolicy(format!("unknown operation {s:?}")))
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operation {
    /// Names are normalised on load: `block_v2` and `BLOCK` are the same grant.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parse a list of operation names; `duties` stands for [`Operation::DUTIES`].
pub fn parse_operations<S: AsRef<str>>(names: &[S]) -> Result<BTreeSet<Operation>, AuthError> {
    let mut out = BTreeSet::new();
    for n in names {
        let n = n.as_ref().trim();
        if n.eq_ignore_ascii_case("duties") {
            out.extend(Operation::DUTIES);
        } else {
            out.insert(n.parse()?);
        }
    }
    Ok(out)
}

/// Which EVM keys a credential may use. None unless granted: a credential made for a validator
/// client never reaches an EVM key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EvmKeys {
    #[default]
    /// No EVM key (the default).
    None,
    /// Every EVM key (`"*"` in the file: an explicit choice).
    All,
    /// Only these addresses.
    Only(BTreeSet<Address>),
}

impl EvmKeys {
    /// No EVM key is granted.
    pub fn is_none(&self) -> bool {
        matches!(self, EvmKeys::None)
    }

    /// The key at `a` is granted.
    pub fn contains(&self, a: &Address) -> bool {
        match self {
            EvmKeys::None => false,
            EvmKeys::All => true,
            EvmKeys::Only(set) => set.contains(a),
        }
    }
}

impl Serialize for EvmKeys {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EvmKeys::None => s.serialize_none(),
            EvmKeys::All => s.serialize_str("*"),
            EvmKeys::Only(set) => {
                let v: Vec<String> = set.iter().map(|a| a.to_checksum(None)).collect();
                v.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for EvmKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            All(String),
            Only(Vec<String>),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(EvmKeys::None),
            Some(Raw::All(s)) if s == "*" => Ok(EvmKeys::All),
            Some(Raw::All(s)) => Err(serde::de::Error::custom(format!(
                "evm_keys must be \"*\" or a list of addresses, not {s:?}"
            ))),
            Some(Raw::Only(v)) => v
                .iter()
                .map(|a| parse_address(a).map_err(serde::de::Error::custom))
                .collect::<Result<_, _>>()
                .map(EvmKeys::Only),
        }
    }
}

/// A 20-byte address, read as every signward input is (see [`signward_policy::parse_address`]).
pub fn parse_address(s: &str) -> Result<Address, AuthError> {
    signward_policy::parse_address(s).map_err(|e| AuthError::InvalidPolicy(format!("{s:?}: {e}")))
}

/// An optional set of addresses, written checksummed and read with [`parse_address`].
mod address_set {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        v: &Option<BTreeSet<Address>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_ref()
            .map(|set| set.iter().map(|a| a.to_checksum(None)).collect::<Vec<_>>())
            .serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<BTreeSet<Address>>, D::Error> {
        Option::<Vec<String>>::deserialize(d)?
            .map(|v| {
                v.iter()
                    .map(|a| parse_address(a).map_err(serde::de::Error::custom))
                    .collect()
            })
            .transpose()
    }
}

/// Why a valid credential was refused (HTTP 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The route's scope is not granted.
    Scope,
    /// The key is not granted.
    Key,
    /// The message family or EVM method is not granted.
    Operation,
    /// The caller's address is outside the credential's networks.
    Network,
    /// The credential has expired.
    Expired,
    /// A validator registration for a fee recipient the credential is not granted.
    FeeRecipient,
    /// The credential was suspended (it asked for a canary key); `signward token reinstate`.
    Suspended,
}

impl Denied {
    /// The stable code answered to the client.
    pub fn code(&self) -> &'static str {
        match self {
            Denied::Scope => "scope_denied",
            Denied::Key => "key_denied",
            Denied::Operation => "operation_denied",
            Denied::Network => "network_denied",
            Denied::Expired => "credential_expired",
            Denied::FeeRecipient => "fee_recipient_denied",
            Denied::Suspended => "credential_suspended",
        }
    }
}

/// A key as the authorizer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyId<'a> {
    /// A BLS key, by public key.
    Bls(&'a PublicKeyBytes),
    /// An EVM key, by address.
    Evm(&'a Address),
}

/// A credential's policy: everything it may do. Deny by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The scope groups of routes it may reach.
    pub scopes: BTreeSet<Scope>,
    /// BLS keys; when absent, every BLS key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<BTreeSet<PublicKeyBytes>>,
    /// EVM keys; when absent, none.
    #[serde(default, skip_serializing_if = "EvmKeys::is_none")]
    pub evm_keys: EvmKeys,
    /// When set, only these operations; when absent, a validator client's duties
    /// ([`Operation::DUTIES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_ops: Option<BTreeSet<Operation>>,
    /// Never these operations.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub deny_ops: BTreeSet<Operation>,
    /// When set, validator registrations only for these fee recipients.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "address_set")]
    pub fee_recipients: Option<BTreeSet<Address>>,
    /// When non-empty, the peer address must be in one of these networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<Cidr>,
    /// Unix seconds after which the credential is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The shape of this credential's `eth_signTransaction` results (not a permission: how the
    /// answer is written for the client behind the credential).
    #[serde(default, skip_serializing_if = "EvmTxResult::is_default")]
    pub evm_tx_result: EvmTxResult,
}

/// How `eth_signTransaction` answers: the execution-apis spec, ethers, viem and alloy expect the
/// raw signed transaction as a hex string (the default); geth's Clef and web3.py's
/// `sign_transaction` expect geth's `{"raw", "tx"}` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvmTxResult {
    /// `"0x…"`: the raw EIP-2718 bytes.
    #[default]
    Raw,
    /// `{"raw": "0x…", "tx": {…}}`, as geth answers.
    Geth,
}

impl EvmTxResult {
    /// The default shape.
    pub fn is_default(&self) -> bool {
        *self == EvmTxResult::Raw
    }
}

impl FromStr for EvmTxResult {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        match s.trim() {
            "raw" => Ok(EvmTxResult::Raw),
            "geth" => Ok(EvmTxResult::Geth),
            _ => Err(AuthError::InvalidPolicy(format!(
                "evm_tx_result must be raw or geth, not {s:?}"
            ))),
        }
    }
}

/// The rules of a policy, applied only by [`crate::authorizer::authorize`].
impl Policy {
    /// May this credential use `scope` from `peer` at `now` (Unix seconds)?
    pub(crate) fn check_access(&self, scope: Scope, peer: IpAddr, now: u64) -> Result<(), Denied> {
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

    /// May this credential use `key`? (Checked before the key is looked up, so a restricted
    /// credential learns nothing about keys it is not granted.)
    pub(crate) fn check_key(&self, key: KeyId<'_>) -> Result<(), Denied> {
        let granted = match key {
            KeyId::Bls(pk) => self.keys.as_ref().is_none_or(|k| k.contains(pk)),
            KeyId::Evm(a) => self.evm_keys.contains(a),
        };
        granted.then_some(()).ok_or(Denied::Key)
    }

    /// May this credential sign operations of this family?
    pub(crate) fn check_operation(&self, op: Operation) -> Result<(), Denied> {
        let allowed = match &self.allow_ops {
            Some(allow) => allow.contains(&op),
            None => Operation::DUTIES.contains(&op),
        };
        (allowed && !self.deny_ops.contains(&op))
            .then_some(())
            .ok_or(Denied::Operation)
    }

    /// May this credential sign a validator registration for `fee_recipient`?
    pub(crate) fn check_fee_recipient(&self, fee_recipient: &Address) -> Result<(), Denied> {
        self.fee_recipients
            .as_ref()
            .is_none_or(|set| set.contains(fee_recipient))
            .then_some(())
            .ok_or(Denied::FeeRecipient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bls(n: u8) -> PublicKeyBytes {
        PublicKeyBytes::from([n; 48])
    }

    #[test]
    fn operations_are_granted_by_family_and_deposits_and_exits_by_name() {
        let vc = Policy {
            scopes: [Scope::Sign].into(),
            ..Default::default()
        };
        for t in MessageType::ALL {
            let op = Operation::of_message(t);
            let expect = !matches!(t, MessageType::Deposit | MessageType::VoluntaryExit);
            assert_eq!(vc.check_operation(op).is_ok(), expect, "{t}");
        }
        for op in [
            Operation::EvmTransaction,
            Operation::EvmMessage,
            Operation::EvmTypedData,
        ] {
            assert_eq!(vc.check_operation(op), Err(Denied::Operation));
        }
        // Denying BLOCK_V2 denies BLOCK too; names are normalised whatever their case.
        let p = Policy {
            deny_ops: parse_operations(&["block_v2", "Aggregate_And_Proof"]).unwrap(),
            ..vc.clone()
        };
        for t in [
            MessageType::Block,
            MessageType::BlockV2,
            MessageType::AggregateAndProof,
            MessageType::AggregateAndProofV2,
        ] {
            assert_eq!(
                p.check_operation(Operation::of_message(t)),
                Err(Denied::Operation),
                "{t}"
            );
        }
        let exit = Policy {
            allow_ops: Some(parse_operations(&["duties", "voluntary_exit"]).unwrap()),
            ..vc.clone()
        };
        assert!(exit.check_operation(Operation::VoluntaryExit).is_ok());
        assert!(exit.check_operation(Operation::Deposit).is_err());
        // Stored names are canonical, and a stored name in any case loads to the same grant.
        let json = serde_json::to_string(&exit).unwrap();
        assert!(json.contains("\"VOLUNTARY_EXIT\""), "{json}");
        let lower = json.replace("VOLUNTARY_EXIT", "voluntary_exit");
        assert_eq!(serde_json::from_str::<Policy>(&lower).unwrap(), exit);
        assert!(serde_json::from_str::<Policy>(&json.replace("VOLUNTARY_EXIT", "NOPE")).is_err());
        assert!("eth_SIGNTRANSACTION".parse::<Operation>().is_ok());
        assert_eq!(
            Operation::of_evm_method("personal_sign"),
            Some(Operation::EvmMessage)
        );
        assert_eq!(Operation::of_evm_method("eth_SIGN"), None);
    }

    #[test]
    fn evm_keys_are_denied_unless_granted() {
        let a: Address = "0x00000000000000000000000000000000000000aa"
            .parse()
            .unwrap();
        let b: Address = "0x00000000000000000000000000000000000000bb"
            .parse()
            .unwrap();
        let vc = Policy {
            scopes: [Scope::Sign, Scope::Evm].into(),
            ..Default::default()
        };
        assert_eq!(vc.check_key(KeyId::Evm(&a)), Err(Denied::Key));
        assert!(vc.check_key(KeyId::Bls(&bls(1))).is_ok());
        let one = Policy {
            evm_keys: EvmKeys::Only([a].into()),
            keys: Some([bls(1)].into()),
            ..vc.clone()
        };
        assert!(one.check_key(KeyId::Evm(&a)).is_ok());
        assert_eq!(one.check_key(KeyId::Evm(&b)), Err(Denied::Key));
        assert_eq!(one.check_key(KeyId::Bls(&bls(2))), Err(Denied::Key));
        let all = Policy {
            evm_keys: EvmKeys::All,
            ..vc
        };
        assert!(all.check_key(KeyId::Evm(&b)).is_ok());
        for p in [one, all] {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
        }
        assert!(serde_json::from_str::<Policy>(r#"{"scopes":["evm"],"evm_keys":"all"}"#).is_err());
    }

    #[test]
    fn fee_recipients_restrict_registrations() {
        let a: Address = "0x00000000000000000000000000000000000000aa"
            .parse()
            .unwrap();
        let b: Address = "0x00000000000000000000000000000000000000bb"
            .parse()
            .unwrap();
        let p = Policy {
            fee_recipients: Some([a].into()),
            ..Default::default()
        };
        assert!(p.check_fee_recipient(&a).is_ok());
        assert_eq!(p.check_fee_recipient(&b), Err(Denied::FeeRecipient));
        assert!(Policy::default().check_fee_recipient(&b).is_ok());
    }

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
        assert_eq!(one.host_bits(), 0);
        assert_eq!(c.host_bits(), 16);
        assert!(one.is_loopback() && !c.is_loopback());
        assert!(c.overlaps(&"10.1.7.7".parse().unwrap()));
        assert!("10.1.7.7".parse::<Cidr>().unwrap().overlaps(&c));
        assert!(!c.overlaps(&"10.2.0.0/16".parse().unwrap()));
        assert!(!one.overlaps(&v6));
    }
}
