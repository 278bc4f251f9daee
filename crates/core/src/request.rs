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
    Block,
    BlockV2,
    Attestation,
    AggregationSlot,
    AggregateAndProof,
    AggregateAndProofV2,
    RandaoReveal,
    VoluntaryExit,
    Deposit,
    SyncCommitteeMessage,
    SyncCommitteeSelectionProof,
    SyncCommitteeContributionAndProof,
    ValidatorRegistration,
}

impl MessageType {
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
    #[serde(alias = "phase0", alias = "PHASE_0")]
    #[serde(rename = "PHASE0")]
    Phase0,
    #[serde(rename = "ALTAIR", alias = "altair")]
    Altair,
    #[serde(rename = "BELLATRIX", alias = "bellatrix")]
    Bellatrix,
    #[serde(rename = "CAPELLA", alias = "capella")]
    Capella,
    #[serde(rename = "DENEB", alias = "deneb")]
    Deneb,
    #[serde(rename = "ELECTRA", alias = "electra")]
    Electra,
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
pub struct SlotBody {
    pub slot: Uint64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochBody {
    pub epoch: Uint64,
}

/// BLOCK_V2's `beacon_block`: a full block up to Altair, a header from Bellatrix on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockV2 {
    pub version: ForkName,
    #[serde(default)]
    pub block: Option<BeaconBlock>,
    #[serde(default)]
    pub block_header: Option<BeaconBlockHeader>,
}

/// AGGREGATE_AND_PROOF_V2's `aggregate_and_proof`: `{version, data}`; `data` is decoded once the
/// version is known (Electra changed the attestation's shape).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionedAggregateAndProof {
    pub version: ForkName,
    pub data: Box<RawValue>,
}

pub type AggregateAndProofPhase0 = AggregateAndProof<Attestation>;
pub type AggregateAndProofElectra = AggregateAndProof<AttestationElectra>;

/// A sign request body.
#[derive(Debug, Deserialize)]
pub struct SignRequest {
    #[serde(rename = "type")]
    pub kind: MessageType,
    #[serde(default, alias = "forkInfo")]
    pub fork_info: Option<ForkInfo>,
    /// The client's signing root, checked against ours when present.
    #[serde(default, rename = "signingRoot", alias = "signing_root")]
    pub signing_root: Option<Root>,

    /// The deprecated BLOCK's full block, decoded once the fork of its slot is known.
    #[serde(default)]
    pub block: Option<Box<RawValue>>,
    #[serde(default)]
    pub beacon_block: Option<BlockV2>,
    #[serde(default)]
    pub attestation: Option<AttestationData>,
    #[serde(default)]
    pub aggregation_slot: Option<SlotBody>,
    #[serde(default)]
    pub aggregate_and_proof: Option<Box<RawValue>>,
    #[serde(default)]
    pub randao_reveal: Option<EpochBody>,
    #[serde(default)]
    pub voluntary_exit: Option<VoluntaryExit>,
    #[serde(default)]
    pub deposit: Option<DepositRequest>,
    #[serde(default)]
    pub sync_committee_message: Option<SyncCommitteeMessage>,
    #[serde(default)]
    pub sync_aggregator_selection_data: Option<SyncAggregatorSelectionData>,
    #[serde(default)]
    pub contribution_and_proof: Option<ContributionAndProof>,
    #[serde(default)]
    pub validator_registration: Option<ValidatorRegistration>,
}

impl SignRequest {
    /// Parse a JSON body. The error is deliberately opaque: callers map it to a stable code.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
