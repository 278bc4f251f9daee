//! From a sign request to a [`SigningJob`]: the domain, the object root and the signing root the
//! server computes itself, plus the facts slashing protection checks (block slot, attestation
//! source/target) and the genesis validators root the request was made for.

use crate::bytes::{FixedBytes, Root, Version};
use crate::containers::{self, BeaconBlock, ForkInfo, HashTreeRoot};
use crate::network::NetworkConfig;
use crate::request::{
    AggregateAndProofElectra, AggregateAndProofPhase0, ForkName, MessageType, SignRequest,
    VersionedAggregateAndProof,
};
use crate::ssz::{self, Chunk};
use crate::CoreError;

/// Domain types (consensus specs; builder specs for APPLICATION_BUILDER), by the specs' names.
#[allow(missing_docs)]
pub mod domain {
    pub const BEACON_PROPOSER: [u8; 4] = [0, 0, 0, 0];
    pub const BEACON_ATTESTER: [u8; 4] = [1, 0, 0, 0];
    pub const RANDAO: [u8; 4] = [2, 0, 0, 0];
    pub const DEPOSIT: [u8; 4] = [3, 0, 0, 0];
    pub const VOLUNTARY_EXIT: [u8; 4] = [4, 0, 0, 0];
    pub const SELECTION_PROOF: [u8; 4] = [5, 0, 0, 0];
    pub const AGGREGATE_AND_PROOF: [u8; 4] = [6, 0, 0, 0];
    pub const SYNC_COMMITTEE: [u8; 4] = [7, 0, 0, 0];
    pub const SYNC_COMMITTEE_SELECTION_PROOF: [u8; 4] = [8, 0, 0, 0];
    pub const CONTRIBUTION_AND_PROOF: [u8; 4] = [9, 0, 0, 0];
    pub const APPLICATION_BUILDER: [u8; 4] = [0, 0, 0, 1];
}

/// A slashable message: what slashing protection must check and record before it is signed.
/// The one type both the signing job and slashing protection use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slashable {
    /// A block proposal at `slot`.
    Block {
        /// The block's slot.
        slot: u64,
    },
    /// An attestation vote from `source_epoch` to `target_epoch`.
    Attestation {
        /// The source checkpoint's epoch.
        source_epoch: u64,
        /// The target checkpoint's epoch.
        target_epoch: u64,
    },
}

/// Everything the signer needs to decide and then sign, computed by us, never taken from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningJob {
    /// The message type.
    pub kind: MessageType,
    /// The root the signature is over, computed by the server.
    pub signing_root: Root,
    /// `None` for messages that are not slashable (RANDAO, aggregation duties, sync committee,
    /// exits, deposits, registrations).
    pub slashable: Option<Slashable>,
    /// From `fork_info`; `None` for DEPOSIT and VALIDATOR_REGISTRATION, which carry none.
    pub genesis_validators_root: Option<Root>,
}

/// `compute_domain(domain_type, fork_version, genesis_validators_root)`.
pub fn compute_domain(domain_type: [u8; 4], fork_version: &Version, gvr: &Root) -> Chunk {
    let fork_data = containers::fork_data_root(fork_version, gvr);
    let mut d = [0u8; 32];
    d[..4].copy_from_slice(&domain_type);
    d[4..].copy_from_slice(&fork_data[..28]);
    d
}

/// The domain for a message signed at `epoch` under `fork_info`
/// (`previous_version` before `fork.epoch`, `current_version` from it on).
pub fn domain_at(domain_type: [u8; 4], fork_info: &ForkInfo, epoch: u64) -> Chunk {
    let version = if epoch < fork_info.fork.epoch.0 {
        &fork_info.fork.previous_version
    } else {
        &fork_info.fork.current_version
    };
    compute_domain(domain_type, version, &fork_info.genesis_validators_root)
}

fn missing(field: &'static str) -> CoreError {
    CoreError::InvalidRequest(field)
}

/// Decode a payload kept raw until its container is known. A field the container does not have
/// is [`CoreError::UnexpectedField`]; anything else wrong is [`CoreError::InvalidRequest`].
pub fn parse_payload<T: serde::de::DeserializeOwned>(
    raw: &serde_json::value::RawValue,
    field: &'static str,
) -> Result<T, CoreError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        if is_unknown_field(&e) {
            CoreError::UnexpectedField(field)
        } else {
            CoreError::InvalidRequest(field)
        }
    })
}

/// Whether serde refused a field the target does not have (`deny_unknown_fields`).
pub fn is_unknown_field(e: &serde_json::Error) -> bool {
    e.is_data() && e.to_string().starts_with("unknown field")
}

/// The fork whose container a message at `epoch` is read with: the fork the network schedules
/// at that epoch, as Web3Signer reads its deprecated forms. When `fork_info` names, for that
/// epoch, a version this network gives to another fork, the two disagree about what is being
/// signed and nothing is.
fn fork_of_message(
    network: &NetworkConfig,
    fork_info: &ForkInfo,
    epoch: u64,
) -> Result<ForkName, CoreError> {
    let scheduled = network.fork_at(epoch);
    match network.fork_of_version(version_at(fork_info, epoch)) {
        Some(claimed) if claimed != scheduled => Err(CoreError::ForkMismatch),
        _ => Ok(scheduled),
    }
}

/// The version `fork_info` gives a message signed at `epoch`.
fn version_at(fork_info: &ForkInfo, epoch: u64) -> &Version {
    if epoch < fork_info.fork.epoch.0 {
        &fork_info.fork.previous_version
    } else {
        &fork_info.fork.current_version
    }
}

/// The phase0 container before Electra, the Electra one (with `committee_bits`) from it on.
fn aggregate_root(
    raw: &serde_json::value::RawValue,
    fork: ForkName,
    p: &crate::network::Preset,
) -> Result<Chunk, CoreError> {
    if fork >= ForkName::Electra {
        parse_payload::<AggregateAndProofElectra>(raw, "aggregate_and_proof")?.hash_tree_root(p)
    } else {
        parse_payload::<AggregateAndProofPhase0>(raw, "aggregate_and_proof")?.hash_tree_root(p)
    }
}

/// The slot of an aggregate, read before its container is chosen.
#[derive(serde::Deserialize)]
struct AggregateSlot {
    aggregate: AggregateSlotData,
}
#[derive(serde::Deserialize)]
struct AggregateSlotData {
    data: SlotOnly,
}
#[derive(serde::Deserialize)]
struct SlotOnly {
    slot: crate::bytes::Uint64,
}

/// Compute the signing job for `req` on `network`. Fails when the body lacks the payload of its
/// type, a value breaks an SSZ bound, or the client's `signingRoot` differs from ours.
pub fn prepare(req: &SignRequest, network: &NetworkConfig) -> Result<SigningJob, CoreError> {
    let p = &network.preset;
    let fork_info = || req.fork_info.as_ref().ok_or(missing("fork_info"));
    let (object_root, domain, slashable): (Chunk, Chunk, Option<Slashable>) = match req.kind {
        MessageType::Block => {
            // Web3Signer's deprecated form: the full block, read by the fork of its slot
            // (phase0 or Altair; later blocks carry an execution payload: use BLOCK_V2).
            let raw = req.block.as_ref().ok_or(missing("block"))?;
            let slot = parse_payload::<SlotOnly>(raw, "block")?.slot.0;
            let epoch = network.epoch_at_slot(slot);
            let fi = fork_info()?;
            let block: BeaconBlock = match fork_of_message(network, fi, epoch)? {
                fork @ (ForkName::Phase0 | ForkName::Altair) => {
                    let block: BeaconBlock = parse_payload(raw, "block")?;
                    if block.body.sync_aggregate.is_some() != (fork == ForkName::Altair) {
                        return Err(CoreError::UnsupportedBlockFormat(
                            "block body does not match the fork of its slot",
                        ));
                    }
                    block
                }
                _ => {
                    return Err(CoreError::UnsupportedBlockFormat(
                        "from BELLATRIX on, BLOCK cannot carry the block: use BLOCK_V2",
                    ))
                }
            };
            let d = domain_at(domain::BEACON_PROPOSER, fi, epoch);
            (block.hash_tree_root(p)?, d, Some(Slashable::Block { slot }))
        }
        MessageType::BlockV2 => {
            let bb = req.beacon_block.as_ref().ok_or(missing("beacon_block"))?;
            let header = match (&bb.block, &bb.block_header) {
                (Some(_), Some(_)) => {
                    return Err(CoreError::InvalidRequest(
                        "beacon_block has both block and block_header",
                    ))
                }
                (None, Some(h)) => h.clone(),
                (Some(block), None) => {
                    let has_sync = block.body.sync_aggregate.is_some();
                    match bb.version {
                        ForkName::Phase0 if !has_sync => block.header(p)?,
                        ForkName::Altair if has_sync => block.header(p)?,
                        ForkName::Phase0 | ForkName::Altair => {
                            return Err(CoreError::UnsupportedBlockFormat(
                                "block body does not match its version",
                            ))
                        }
                        _ => {
                            return Err(CoreError::UnsupportedBlockFormat(
                                "from BELLATRIX on, send block_header",
                            ))
                        }
                    }
                }
                (None, None) => return Err(missing("beacon_block.block_header")),
            };
            let slot = header.slot.0;
            let epoch = network.epoch_at_slot(slot);
            let d = domain_at(domain::BEACON_PROPOSER, fork_info()?, epoch);
            (
                header.hash_tree_root(p)?,
                d,
                Some(Slashable::Block { slot }),
            )
        }
        MessageType::Attestation => {
            let a = req.attestation.as_ref().ok_or(missing("attestation"))?;
            let d = domain_at(domain::BEACON_ATTESTER, fork_info()?, a.target.epoch.0);
            let s = Some(Slashable::Attestation {
                source_epoch: a.source.epoch.0,
                target_epoch: a.target.epoch.0,
            });
            (a.hash_tree_root(p)?, d, s)
        }
        MessageType::AggregationSlot => {
            let s = req
                .aggregation_slot
                .as_ref()
                .ok_or(missing("aggregation_slot"))?;
            let d = domain_at(
                domain::SELECTION_PROOF,
                fork_info()?,
                network.epoch_at_slot(s.slot.0),
            );
            (ssz::uint64(s.slot.0), d, None)
        }
        MessageType::AggregateAndProof => {
            // The deprecated form (Lighthouse sends it at every fork): the container is the one
            // of the fork of the aggregate's slot, as Web3Signer reads it.
            let raw = req
                .aggregate_and_proof
                .as_ref()
                .ok_or(missing("aggregate_and_proof"))?;
            let slot = parse_payload::<AggregateSlot>(raw, "aggregate_and_proof")?
                .aggregate
                .data
                .slot
                .0;
            let epoch = network.epoch_at_slot(slot);
            let fi = fork_info()?;
            let fork = fork_of_message(network, fi, epoch)?;
            let d = domain_at(domain::AGGREGATE_AND_PROOF, fi, epoch);
            (aggregate_root(raw, fork, p)?, d, None)
        }
        MessageType::AggregateAndProofV2 => {
            let raw = req
                .aggregate_and_proof
                .as_ref()
                .ok_or(missing("aggregate_and_proof"))?;
            let v: VersionedAggregateAndProof = parse_payload(raw, "aggregate_and_proof")?;
            let slot = parse_payload::<AggregateSlot>(&v.data, "aggregate_and_proof.data")?
                .aggregate
                .data
                .slot
                .0;
            let epoch = network.epoch_at_slot(slot);
            // The versioned form names its fork: its container is that fork's.
            let d = domain_at(domain::AGGREGATE_AND_PROOF, fork_info()?, epoch);
            (aggregate_root(&v.data, v.version, p)?, d, None)
        }
        MessageType::RandaoReveal => {
            let r = req.randao_reveal.as_ref().ok_or(missing("randao_reveal"))?;
            let d = domain_at(domain::RANDAO, fork_info()?, r.epoch.0);
            (ssz::uint64(r.epoch.0), d, None)
        }
        MessageType::VoluntaryExit => {
            // EIP-7044 pins exits to the Capella fork version from Deneb on; validator clients
            // express that in the fork_info they send, so the usual rule applies here.
            let e = req
                .voluntary_exit
                .as_ref()
                .ok_or(missing("voluntary_exit"))?;
            let d = domain_at(domain::VOLUNTARY_EXIT, fork_info()?, e.epoch.0);
            (e.hash_tree_root(p)?, d, None)
        }
        MessageType::Deposit => {
            // Deposits are signed before genesis: the domain uses the request's fork version and
            // a zero genesis validators root (compute_domain's defaults).
            let dep = req.deposit.as_ref().ok_or(missing("deposit"))?;
            let d = compute_domain(domain::DEPOSIT, &dep.genesis_fork_version, &Root::ZERO);
            (dep.hash_tree_root(p)?, d, None)
        }
        MessageType::SyncCommitteeMessage => {
            let m = req
                .sync_committee_message
                .as_ref()
                .ok_or(missing("sync_committee_message"))?;
            let d = domain_at(
                domain::SYNC_COMMITTEE,
                fork_info()?,
                network.epoch_at_slot(m.slot.0),
            );
            (m.beacon_block_root.0, d, None)
        }
        MessageType::SyncCommitteeSelectionProof => {
            let s = req
                .sync_aggregator_selection_data
                .as_ref()
                .ok_or(missing("sync_aggregator_selection_data"))?;
            let d = domain_at(
                domain::SYNC_COMMITTEE_SELECTION_PROOF,
                fork_info()?,
                network.epoch_at_slot(s.slot.0),
            );
            (s.hash_tree_root(p)?, d, None)
        }
        MessageType::SyncCommitteeContributionAndProof => {
            let c = req
                .contribution_and_proof
                .as_ref()
                .ok_or(missing("contribution_and_proof"))?;
            let d = domain_at(
                domain::CONTRIBUTION_AND_PROOF,
                fork_info()?,
                network.epoch_at_slot(c.contribution.slot.0),
            );
            (c.hash_tree_root(p)?, d, None)
        }
        MessageType::ValidatorRegistration => {
            let v = req
                .validator_registration
                .as_ref()
                .ok_or(missing("validator_registration"))?;
            let d = compute_domain(
                domain::APPLICATION_BUILDER,
                &network.genesis_fork_version,
                &Root::ZERO,
            );
            (v.hash_tree_root(p)?, d, None)
        }
    };
    let signing_root = FixedBytes(containers::signing_root(&object_root, &domain));
    if let Some(client) = req.signing_root {
        if client != signing_root {
            return Err(CoreError::SigningRootMismatch);
        }
    }
    let genesis_validators_root = match req.kind {
        MessageType::Deposit | MessageType::ValidatorRegistration => None,
        _ => req.fork_info.as_ref().map(|f| f.genesis_validators_root),
    };
    Ok(SigningJob {
        kind: req.kind,
        signing_root,
        slashable,
        genesis_validators_root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Uint64;
    use crate::containers::Fork;

    fn fi(prev: [u8; 4], cur: [u8; 4], epoch: u64) -> ForkInfo {
        ForkInfo {
            fork: Fork {
                previous_version: prev.into(),
                current_version: cur.into(),
                epoch: Uint64(epoch),
            },
            genesis_validators_root: Root::ZERO,
        }
    }

    #[test]
    fn fork_epoch_rule_picks_the_right_version() {
        let f = fi([1, 0, 0, 0], [2, 0, 0, 0], 10);
        let prev = compute_domain(domain::RANDAO, &[1, 0, 0, 0].into(), &Root::ZERO);
        let cur = compute_domain(domain::RANDAO, &[2, 0, 0, 0].into(), &Root::ZERO);
        assert_ne!(prev, cur);
        assert_eq!(domain_at(domain::RANDAO, &f, 9), prev);
        assert_eq!(domain_at(domain::RANDAO, &f, 10), cur);
        assert_eq!(domain_at(domain::RANDAO, &f, 11), cur);
    }

    #[test]
    fn deposit_domain_matches_known_value() {
        // From Web3Signer's Medalla deposit vector (shared/vectors/signing-roots).
        let d = compute_domain(domain::DEPOSIT, &[0, 0, 0, 1].into(), &Root::ZERO);
        assert_eq!(
            hex::encode(d),
            "0300000018ae4ccbda9538839d79bb18ca09e23e24ae8c1550f56cbb3d84b053"
        );
    }
}
