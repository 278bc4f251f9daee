//! The body of `POST /api/v1/eth2/sign/{identifier}` as Web3Signer defines it.
//!
//! One flat struct: `type` names the message, and the payload field that type uses must be
//! present. Unknown top-level fields are ignored, as Web3Signer does, so newer clients keep
//! working; inside a payload, every container refuses a field it does not have, so signward signs
//! exactly what it was sent or nothing (an Electra `committee_bits` is never dropped silently).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::bytes::{Root, Uint64};
use crate::containers::{
    AggregateAndProof, Attestation, AttestationData, AttestationElectra, BeaconBlock,
    BeaconBlockHeader, ContributionAndProof, DepositRequest, ForkInfo, SyncAggregatorSelectionData,
    SyncCommitteeMessage, ValidatorRegistration, VoluntaryExit,
};

/// The 13 message types of the Web3Signer eth2 signing API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    /// `BLOCK` (deprecated: a full block, read by the fork of its slot).
    Block,
    /// `BLOCK_V2`: a full block up to Altair, a header from Bellatrix on.
    BlockV2,
    /// `ATTESTATION`.
    Attestation,
    /// `AGGREGATION_SLOT`: the selection proof for a slot.
    AggregationSlot,
    /// `AGGREGATE_AND_PROOF` (deprecated: read by the fork of its slot).
    AggregateAndProof,
    /// `AGGREGATE_AND_PROOF_V2`: versioned.
    AggregateAndProofV2,
    /// `RANDAO_REVEAL`.
    RandaoReveal,
    /// `VOLUNTARY_EXIT`.
    VoluntaryExit,
    /// `DEPOSIT`.
    Deposit,
    /// `SYNC_COMMITTEE_MESSAGE`.
    SyncCommitteeMessage,
    /// `SYNC_COMMITTEE_SELECTION_PROOF`.
    SyncCommitteeSelectionProof,
    /// `SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF`.
    SyncCommitteeContributionAndProof,
    /// `VALIDATOR_REGISTRATION` (builder API).
    ValidatorRegistration,
}

impl MessageType {
    /// Every type, in a fixed order.
    pub const ALL: [MessageType; 13] = [
        MessageType::Block,
        MessageType::BlockV2,
        MessageType::Attestation,
        MessageType::AggregationSlot,
        MessageType::AggregateAndProof,
        MessageType::AggregateAndProofV2,
        MessageType::RandaoReveal,
        MessageType::VoluntaryExit,
        MessageType::Deposit,
        MessageType::SyncCommitteeMessage,
        MessageType::SyncCommitteeSelectionProof,
        MessageType::SyncCommitteeContributionAndProof,
        MessageType::ValidatorRegistration,
    ];

    /// The wire name, e.g. `BLOCK_V2`.
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageType::Block => "BLOCK",
            MessageType::BlockV2 => "BLOCK_V2",
            MessageType::Attestation => "ATTESTATION",
            MessageType::AggregationSlot => "AGGREGATION_SLOT",
            MessageType::AggregateAndProof => "AGGREGATE_AND_PROOF",
            MessageType::AggregateAndProofV2 => "AGGREGATE_AND_PROOF_V2",
            MessageType::RandaoReveal => "RANDAO_REVEAL",
            MessageType::VoluntaryExit => "VOLUNTARY_EXIT",
            MessageType::Deposit => "DEPOSIT",
            MessageType::SyncCommitteeMessage => "SYNC_COMMITTEE_MESSAGE",
            MessageType::SyncCommitteeSelectionProof => "SYNC_COMMITTEE_SELECTION_PROOF",
            MessageType::SyncCommitteeContributionAndProof => {
                "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF"
            }
            MessageType::ValidatorRegistration => "VALIDATOR_REGISTRATION",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        MessageType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or(())
    }
}

/// Consensus fork names, as used in `version` discriminators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum ForkName {
    /// Phase0.
    #[serde(alias = "phase0", alias = "PHASE_0")]
    #[serde(rename = "PHASE0")]
    Phase0,
    /// Altair.
    #[serde(rename = "ALTAIR", alias = "altair")]
    Altair,
    /// Bellatrix.
    #[serde(rename = "BELLATRIX", alias = "bellatrix")]
    Bellatrix,
    /// Capella.
    #[serde(rename = "CAPELLA", alias = "capella")]
    Capella,
    /// Deneb.
    #[serde(rename = "DENEB", alias = "deneb")]
    Deneb,
    /// Electra.
    #[serde(rename = "ELECTRA", alias = "electra")]
    Electra,
    /// Fulu.
    #[serde(rename = "FULU", alias = "fulu")]
    Fulu,
}

impl ForkName {
    /// Every fork, in activation order.
    pub const ALL: [ForkName; 7] = [
        ForkName::Phase0,
        ForkName::Altair,
        ForkName::Bellatrix,
        ForkName::Capella,
        ForkName::Deneb,
        ForkName::Electra,
        ForkName::Fulu,
    ];

    /// The lower-case name used in network configs (`altair`, `electra`, ...).
    pub fn config_name(&self) -> &'static str {
        match self {
            ForkName::Phase0 => "phase0",
            ForkName::Altair => "altair",
            ForkName::Bellatrix => "bellatrix",
            ForkName::Capella => "capella",
            ForkName::Deneb => "deneb",
            ForkName::Electra => "electra",
            ForkName::Fulu => "fulu",
        }
    }

    /// The fork a network config calls `name`.
    pub fn from_config_name(name: &str) -> Option<ForkName> {
        ForkName::ALL
            .into_iter()
            .find(|f| f.config_name().eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
/// `{slot}`.
pub struct SlotBody {
    /// The slot.
    pub slot: Uint64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
/// `{epoch}`.
pub struct EpochBody {
    /// The epoch.
    pub epoch: Uint64,
}

/// BLOCK_V2's `beacon_block`: a full block up to Altair, a header from Bellatrix on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockV2 {
    /// The block's fork.
    pub version: ForkName,
    /// The full block (up to Altair).
    #[serde(default)]
    pub block: Option<BeaconBlock>,
    /// The header (from Bellatrix on).
    #[serde(default)]
    pub block_header: Option<BeaconBlockHeader>,
}

/// AGGREGATE_AND_PROOF_V2's `aggregate_and_proof`: `{version, data}`; `data` is decoded once the
/// version is known (Electra changed the attestation's shape).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionedAggregateAndProof {
    /// The fork whose shape `data` has.
    pub version: ForkName,
    /// The aggregate and proof, undecoded until the version is known.
    pub data: Box<RawValue>,
}

/// An aggregate and proof before Electra.
pub type AggregateAndProofPhase0 = AggregateAndProof<Attestation>;
/// An aggregate and proof from Electra on.
pub type AggregateAndProofElectra = AggregateAndProof<AttestationElectra>;

/// A sign request body.
#[derive(Debug, Deserialize)]
pub struct SignRequest {
    /// `type`.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The fork and chain the message is for.
    #[serde(default, alias = "forkInfo")]
    pub fork_info: Option<ForkInfo>,
    /// The client's signing root, checked against ours when present.
    #[serde(default, rename = "signingRoot", alias = "signing_root")]
    pub signing_root: Option<Root>,

    /// The deprecated BLOCK's full block, decoded once the fork of its slot is known.
    #[serde(default)]
    pub block: Option<Box<RawValue>>,
    /// BLOCK_V2's payload.
    #[serde(default)]
    pub beacon_block: Option<BlockV2>,
    /// ATTESTATION's payload.
    #[serde(default)]
    pub attestation: Option<AttestationData>,
    /// AGGREGATION_SLOT's payload.
    #[serde(default)]
    pub aggregation_slot: Option<SlotBody>,
    /// The aggregate-and-proof payload (both versions), decoded by type and fork.
    #[serde(default)]
    pub aggregate_and_proof: Option<Box<RawValue>>,
    /// RANDAO_REVEAL's payload.
    #[serde(default)]
    pub randao_reveal: Option<EpochBody>,
    /// VOLUNTARY_EXIT's payload.
    #[serde(default)]
    pub voluntary_exit: Option<VoluntaryExit>,
    /// DEPOSIT's payload.
    #[serde(default)]
    pub deposit: Option<DepositRequest>,
    /// SYNC_COMMITTEE_MESSAGE's payload.
    #[serde(default)]
    pub sync_committee_message: Option<SyncCommitteeMessage>,
    /// SYNC_COMMITTEE_SELECTION_PROOF's payload.
    #[serde(default)]
    pub sync_aggregator_selection_data: Option<SyncAggregatorSelectionData>,
    /// SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF's payload.
    #[serde(default)]
    pub contribution_and_proof: Option<ContributionAndProof>,
    /// VALIDATOR_REGISTRATION's payload.
    #[serde(default)]
    pub validator_registration: Option<ValidatorRegistration>,
}

impl SignRequest {
    /// Parse a JSON body. The error is deliberately opaque: callers map it to a stable code.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
