//! The consensus containers a validator signs, as they arrive in Web3Signer request bodies,
//! each with its SSZ `hash_tree_root`.
//!
//! Field names follow the consensus JSON (snake_case). Web3Signer's deprecated BLOCK request uses
//! camelCase, so multi-word fields also accept their camelCase alias. Every container but the
//! fork info refuses a field it does not have: a field that would change the root is never
//! dropped.
//!
//! Each container and field is the consensus specs' own, by the specs' name; documenting them
//! again here would only copy the specs, so this module alone is exempt from `missing_docs`.
#![allow(missing_docs)]

use serde::Deserialize;

use crate::bytes::{Address, HexBytes, PublicKeyBytes, Root, SignatureBytes, Uint64, Version};
use crate::network::Preset;
use crate::ssz::{self, Chunk};
use crate::CoreError;

/// `hash_tree_root` under a preset (which fixes bitvector sizes and list limits).
pub trait HashTreeRoot {
    fn hash_tree_root(&self, preset: &Preset) -> Result<Chunk, CoreError>;
}

fn r(x: &Root) -> Chunk {
    x.0
}
fn u(x: Uint64) -> Chunk {
    ssz::uint64(x.0)
}
fn sig(x: &SignatureBytes) -> Chunk {
    ssz::byte_vector(&x.0)
}
fn pk(x: &PublicKeyBytes) -> Chunk {
    ssz::byte_vector(&x.0)
}

fn roots<T: HashTreeRoot>(items: &[T], p: &Preset) -> Result<Vec<Chunk>, CoreError> {
    items.iter().map(|i| i.hash_tree_root(p)).collect()
}

#[derive(Debug, Clone, Deserialize)]
pub struct Fork {
    #[serde(alias = "previousVersion")]
    pub previous_version: Version,
    #[serde(alias = "currentVersion")]
    pub current_version: Version,
    pub epoch: Uint64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ForkInfo {
    pub fork: Fork,
    #[serde(alias = "genesisValidatorsRoot")]
    pub genesis_validators_root: Root,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub epoch: Uint64,
    pub root: Root,
}

impl HashTreeRoot for Checkpoint {
    fn hash_tree_root(&self, _: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[u(self.epoch), r(&self.root)]))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationData {
    pub slot: Uint64,
    pub index: Uint64,
    #[serde(alias = "beaconBlockRoot")]
    pub beacon_block_root: Root,
    pub source: Checkpoint,
    pub target: Checkpoint,
}

impl HashTreeRoot for AttestationData {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            u(self.slot),
            u(self.index),
            r(&self.beacon_block_root),
            self.source.hash_tree_root(p)?,
            self.target.hash_tree_root(p)?,
        ]))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeaconBlockHeader {
    pub slot: Uint64,
    #[serde(alias = "proposerIndex")]
    pub proposer_index: Uint64,
    #[serde(alias = "parentRoot")]
    pub parent_root: Root,
    #[serde(alias = "stateRoot")]
    pub state_root: Root,
    #[serde(alias = "bodyRoot")]
    pub body_root: Root,
}

impl HashTreeRoot for BeaconBlockHeader {
    fn hash_tree_root(&self, _: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            u(self.slot),
            u(self.proposer_index),
            r(&self.parent_root),
            r(&self.state_root),
            r(&self.body_root),
        ]))
    }
}

/// A message with its BLS signature (`SignedBeaconBlockHeader`, `SignedVoluntaryExit`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed<M> {
    pub message: M,
    pub signature: SignatureBytes,
}

impl<M: HashTreeRoot> HashTreeRoot for Signed<M> {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            self.message.hash_tree_root(p)?,
            sig(&self.signature),
        ]))
    }
}

pub type SignedBeaconBlockHeader = Signed<BeaconBlockHeader>;
pub type SignedVoluntaryExit = Signed<VoluntaryExit>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eth1Data {
    #[serde(alias = "depositRoot")]
    pub deposit_root: Root,
    #[serde(alias = "depositCount")]
    pub deposit_count: Uint64,
    #[serde(alias = "blockHash")]
    pub block_hash: Root,
}

impl HashTreeRoot for Eth1Data {
    fn hash_tree_root(&self, _: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            r(&self.deposit_root),
            u(self.deposit_count),
            r(&self.block_hash),
        ]))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposerSlashing {
    #[serde(alias = "signedHeader1")]
    pub signed_header_1: SignedBeaconBlockHeader,
    #[serde(alias = "signedHeader2")]
    pub signed_header_2: SignedBeaconBlockHeader,
}

impl HashTreeRoot for ProposerSlashing {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            self.signed_header_1.hash_tree_root(p)?,
            self.signed_header_2.hash_tree_root(p)?,
        ]))
    }
}

/// Phase0 `IndexedAttestation` (`attesting_indices` bounded by MAX_VALIDATORS_PER_COMMITTEE).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexedAttestation {
    #[serde(alias = "attestingIndices")]
    pub attesting_indices: Vec<Uint64>,
    pub data: AttestationData,
    pub signature: SignatureBytes,
}

impl HashTreeRoot for IndexedAttestation {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        let idx: Vec<u64> = self.attesting_indices.iter().map(|i| i.0).collect();
        Ok(ssz::container(&[
            ssz::uint64_list(&idx, p.max_validators_per_committee)?,
            self.data.hash_tree_root(p)?,
            sig(&self.signature),
        ]))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttesterSlashing {
    #[serde(alias = "attestation1")]
    pub attestation_1: IndexedAttestation,
    #[serde(alias = "attestation2")]
    pub attestation_2: IndexedAttestation,
}

impl HashTreeRoot for AttesterSlashing {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            self.attestation_1.hash_tree_root(p)?,
            self.attestation_2.hash_tree_root(p)?,
        ]))
    }
}

/// Phase0..Deneb `Attestation`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    #[serde(alias = "aggregationBits")]
    pub aggregation_bits: HexBytes,
    pub data: AttestationData,
    pub signature: SignatureBytes,
}

impl HashTreeRoot for Attestation {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            ssz::bitlist(&self.aggregation_bits.0, p.max_validators_per_committee)?,
            self.data.hash_tree_root(p)?,
            sig(&self.signature),
        ]))
    }
}

/// Electra (and later) `Attestation`, with `committee_bits`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationElectra {
    pub aggregation_bits: HexBytes,
    pub data: AttestationData,
    pub signature: SignatureBytes,
    pub committee_bits: HexBytes,
}

impl HashTreeRoot for AttestationElectra {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            ssz::bitlist(
                &self.aggregation_bits.0,
                p.max_validators_per_committee * p.max_committees_per_slot,
            )?,
            self.data.hash_tree_root(p)?,
            sig(&self.signature),
            ssz::bitvector(&self.committee_bits.0, p.max_committees_per_slot)?,
        ]))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositData {
    pub pubkey: PublicKeyBytes,
    #[serde(alias = "withdrawalCredentials")]
    pub withdrawal_credentials: Root,
    pub amount: Uint64,
    pub signature: SignatureBytes,
}

impl HashTreeRoot for DepositData {
    fn hash_tree_root(&self, _: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            pk(&self.pubkey),
            r(&self.withdrawal_credentials),
            u(self.amount),
            sig(&self.signature),
        ]))
    }
}

/// Depth of the deposit contract tree plus one (the length mix-in).
pub const DEPOSIT_PROOF_LENGTH: usize = 33;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deposit {
    pub proof: Vec<Root>,
    pub data: DepositData,
}

impl HashTreeRoot for Deposit {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        if self.proof.len() != DEPOSIT_PROOF_LENGTH {
            return Err(CoreError::SszBounds("deposit proof must have 33 roots"));
        }
        let proof: Vec<Chunk> = self.proof.iter().map(r).collect();
        Ok(ssz::container(&[
            ssz::root_vector(&proof),
            self.data.hash_tree_root(p)?,
        ]))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoluntaryExit {
    pub epoch: Uint64,
    #[serde(alias = "validatorIndex")]
    pub validator_index: Uint64,
}

impl HashTreeRoot for VoluntaryExit {
    fn hash_tree_root(&self, _: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[u(self.epoch), u(self.validator_index)]))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncAggregate {
    #[serde(alias = "syncCommitteeBits")]
    pub sync_committee_bits: HexBytes,
    #[serde(alias = "syncCommitteeSignature")]
    pub sync_committee_signature: SignatureBytes,
}

impl HashTreeRoot for SyncAggregate {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            ssz::bitvector(&self.sync_committee_bits.0, p.sync_committee_size)?,
            sig(&self.sync_committee_signature),
        ]))
    }
}

/// Phase0 and Altair `BeaconBlockBody`; Altair adds `sync_aggregate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeaconBlockBody {
    #[serde(alias = "randaoReveal")]
    pub randao_reveal: SignatureBytes,
    #[serde(alias = "eth1Data")]
    pub eth1_data: Eth1Data,
    pub graffiti: Root,
    #[serde(alias = "proposerSlashings")]
    pub proposer_slashings: Vec<ProposerSlashing>,
    #[serde(alias = "attesterSlashings")]
    pub attester_slashings: Vec<AttesterSlashing>,
    pub attestations: Vec<Attestation>,
    pub deposits: Vec<Deposit>,
    #[serde(alias = "voluntaryExits")]
    pub voluntary_exits: Vec<SignedVoluntaryExit>,
    #[serde(default, alias = "syncAggregate")]
    pub sync_aggregate: Option<SyncAggregate>,
}

impl HashTreeRoot for BeaconBlockBody {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        let mut fields = vec![
            sig(&self.randao_reveal),
            self.eth1_data.hash_tree_root(p)?,
            r(&self.graffiti),
            ssz::list_of_roots(
                &roots(&self.proposer_slashings, p)?,
                p.max_proposer_slashings,
            )?,
            ssz::list_of_roots(
                &roots(&self.attester_slashings, p)?,
                p.max_attester_slashings,
            )?,
            ssz::list_of_roots(&roots(&self.attestations, p)?, p.max_attestations)?,
            ssz::list_of_roots(&roots(&self.deposits, p)?, p.max_deposits)?,
            ssz::list_of_roots(&roots(&self.voluntary_exits, p)?, p.max_voluntary_exits)?,
        ];
        if let Some(sa) = &self.sync_aggregate {
            fields.push(sa.hash_tree_root(p)?);
        }
        Ok(ssz::container(&fields))
    }
}

/// A full Phase0/Altair `BeaconBlock`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeaconBlock {
    pub slot: Uint64,
    #[serde(alias = "proposerIndex")]
    pub proposer_index: Uint64,
    #[serde(alias = "parentRoot")]
    pub parent_root: Root,
    #[serde(alias = "stateRoot")]
    pub state_root: Root,
    pub body: BeaconBlockBody,
}

impl BeaconBlock {
    /// The header of this block (same hash tree root as the block itself).
    pub fn header(&self, p: &Preset) -> Result<BeaconBlockHeader, CoreError> {
        Ok(BeaconBlockHeader {
            slot: self.slot,
            proposer_index: self.proposer_index,
            parent_root: self.parent_root,
            state_root: self.state_root,
            body_root: crate::bytes::FixedBytes(self.body.hash_tree_root(p)?),
        })
    }
}

impl HashTreeRoot for BeaconBlock {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        self.header(p)?.hash_tree_root(p)
    }
}

/// `AggregateAndProof` over a Phase0..Deneb or an Electra+ attestation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateAndProof<A> {
    pub aggregator_index: Uint64,
    pub aggregate: A,
    pub selection_proof: SignatureBytes,
}

impl<A: HashTreeRoot> HashTreeRoot for AggregateAndProof<A> {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            u(self.aggregator_index),
            self.aggregate.hash_tree_root(p)?,
            sig(&self.selection_proof),
        ]))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncCommitteeMessage {
    pub beacon_block_root: Root,
    pub slot: Uint64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncAggregatorSelectionData {
    pub slot: Uint64,
    pub subcommittee_index: Uint64,
}

impl HashTreeRoot for SyncAggregatorSelectionData {
    fn hash_tree_root(&self, _: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[u(self.slot), u(self.subcommittee_index)]))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncCommitteeContribution {
    pub slot: Uint64,
    pub beacon_block_root: Root,
    pub subcommittee_index: Uint64,
    pub aggregation_bits: HexBytes,
    pub signature: SignatureBytes,
}

impl HashTreeRoot for SyncCommitteeContribution {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            u(self.slot),
            r(&self.beacon_block_root),
            u(self.subcommittee_index),
            ssz::bitvector(&self.aggregation_bits.0, p.sync_subcommittee_size())?,
            sig(&self.signature),
        ]))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContributionAndProof {
    pub aggregator_index: Uint64,
    pub contribution: SyncCommitteeContribution,
    pub selection_proof: SignatureBytes,
}

impl HashTreeRoot for ContributionAndProof {
    fn hash_tree_root(&self, p: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            u(self.aggregator_index),
            self.contribution.hash_tree_root(p)?,
            sig(&self.selection_proof),
        ]))
    }
}

/// Builder-API `ValidatorRegistrationV1`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorRegistration {
    pub fee_recipient: Address,
    pub gas_limit: Uint64,
    pub timestamp: Uint64,
    pub pubkey: PublicKeyBytes,
}

impl HashTreeRoot for ValidatorRegistration {
    fn hash_tree_root(&self, _: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            ssz::byte_vector(&self.fee_recipient.0),
            u(self.gas_limit),
            u(self.timestamp),
            pk(&self.pubkey),
        ]))
    }
}

/// The DEPOSIT request body: a `DepositMessage` plus the fork version its domain uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositRequest {
    pub pubkey: PublicKeyBytes,
    pub withdrawal_credentials: Root,
    pub amount: Uint64,
    pub genesis_fork_version: Version,
}

impl HashTreeRoot for DepositRequest {
    /// Root of the `DepositMessage(pubkey, withdrawal_credentials, amount)`.
    fn hash_tree_root(&self, _: &Preset) -> Result<Chunk, CoreError> {
        Ok(ssz::container(&[
            pk(&self.pubkey),
            r(&self.withdrawal_credentials),
            u(self.amount),
        ]))
    }
}

/// `ForkData` root: the input of `compute_fork_data_root`.
pub fn fork_data_root(current_version: &Version, genesis_validators_root: &Root) -> Chunk {
    ssz::container(&[
        ssz::byte_vector(&current_version.0),
        genesis_validators_root.0,
    ])
}

/// `SigningData` root: the message a validator's BLS key signs.
pub fn signing_root(object_root: &Chunk, domain: &Chunk) -> Chunk {
    ssz::container(&[*object_root, *domain])
}
