"""Independent check of signward's eth2 signatures.

Reads from stdin a JSON object:
  {"preset": "mainnet"|"minimal", "genesis_fork_version": "0x..", "forks": {"ALTAIR": epoch, ...}?,
   "cases": [{"name": str, "pubkey": "0x..", "request": {...sign request body...}, "signature": "0x.."}]}
"forks" is the network's fork schedule (absent: phase0 throughout). The deprecated BLOCK and
AGGREGATE_AND_PROOF forms carry no version: their container is the one of the fork of their slot.
For each case it computes the signing root from the request with its own SSZ containers
(remerkleable) and the consensus rules written here from the specs, then verifies the BLS
signature with py_ecc. Nothing here imports or mirrors signward's code.

Prints {"results": [{"name", "ok", "signing_root", "error"?}]} and exits 0 when every case verifies.
"""
import json
import re
import sys

from py_ecc.bls import G2ProofOfPossession as bls
from remerkleable.basic import uint64
from remerkleable.bitfields import Bitlist, Bitvector
from remerkleable.byte_arrays import Bytes4, Bytes32, Bytes48, Bytes96, ByteVector
from remerkleable.complex import Container, List, Vector

PRESETS = {
    "mainnet": dict(SLOTS_PER_EPOCH=32, SYNC_COMMITTEE_SIZE=512, MAX_COMMITTEES_PER_SLOT=64),
    "minimal": dict(SLOTS_PER_EPOCH=8, SYNC_COMMITTEE_SIZE=32, MAX_COMMITTEES_PER_SLOT=4),
}
MAX_VALIDATORS_PER_COMMITTEE = 2048
SYNC_COMMITTEE_SUBNET_COUNT = 4

DOMAIN = {
    "BEACON_PROPOSER": "00000000",
    "BEACON_ATTESTER": "01000000",
    "RANDAO": "02000000",
    "DEPOSIT": "03000000",
    "VOLUNTARY_EXIT": "04000000",
    "SELECTION_PROOF": "05000000",
    "AGGREGATE_AND_PROOF": "06000000",
    "SYNC_COMMITTEE": "07000000",
    "SYNC_COMMITTEE_SELECTION_PROOF": "08000000",
    "CONTRIBUTION_AND_PROOF": "09000000",
    "APPLICATION_BUILDER": "00000001",
}


class Bytes20(ByteVector[20]):
    pass


def types(p):
    """The spec containers under preset p."""

    class Checkpoint(Container):
        epoch: uint64
        root: Bytes32

    class AttestationData(Container):
        slot: uint64
        index: uint64
        beacon_block_root: Bytes32
        source: Checkpoint
        target: Checkpoint

    class BeaconBlockHeader(Container):
        slot: uint64
        proposer_index: uint64
        parent_root: Bytes32
        state_root: Bytes32
        body_root: Bytes32

    class SignedBeaconBlockHeader(Container):
        message: BeaconBlockHeader
        signature: Bytes96

    class ProposerSlashing(Container):
        signed_header_1: SignedBeaconBlockHeader
        signed_header_2: SignedBeaconBlockHeader

    class IndexedAttestation(Container):
        attesting_indices: List[uint64, MAX_VALIDATORS_PER_COMMITTEE]
        data: AttestationData
        signature: Bytes96

    class AttesterSlashing(Container):
        attestation_1: IndexedAttestation
        attestation_2: IndexedAttestation

    class Attestation(Container):
        aggregation_bits: Bitlist[MAX_VALIDATORS_PER_COMMITTEE]
        data: AttestationData
        signature: Bytes96

    class AttestationElectra(Container):
        aggregation_bits: Bitlist[MAX_VALIDATORS_PER_COMMITTEE * p["MAX_COMMITTEES_PER_SLOT"]]
        data: AttestationData
        signature: Bytes96
        committee_bits: Bitvector[p["MAX_COMMITTEES_PER_SLOT"]]

    class Eth1Data(Container):
        deposit_root: Bytes32
        deposit_count: uint64
        block_hash: Bytes32

    class DepositData(Container):
        pubkey: Bytes48
        withdrawal_credentials: Bytes32
        amount: uint64
        signature: Bytes96

    class Deposit(Container):
        proof: Vector[Bytes32, 33]
        data: DepositData

    class VoluntaryExit(Container):
        epoch: uint64
        validator_index: uint64

    class SignedVoluntaryExit(Container):
        message: VoluntaryExit
        signature: Bytes96

    class BeaconBlockBodyPhase0(Container):
        randao_reveal: Bytes96
        eth1_data: Eth1Data
        graffiti: Bytes32
        proposer_slashings: List[ProposerSlashing, 16]
        attester_slashings: List[AttesterSlashing, 2]
        attestations: List[Attestation, 128]
        deposits: List[Deposit, 16]
        voluntary_exits: List[SignedVoluntaryExit, 16]

    class SyncAggregate(Container):
        sync_committee_bits: Bitvector[p["SYNC_COMMITTEE_SIZE"]]
        sync_committee_signature: Bytes96

    class BeaconBlockBodyAltair(Container):
        randao_reveal: Bytes96
        eth1_data: Eth1Data
        graffiti: Bytes32
        proposer_slashings: List[ProposerSlashing, 16]
        attester_slashings: List[AttesterSlashing, 2]
        attestations: List[Attestation, 128]
        deposits: List[Deposit, 16]
        voluntary_exits: List[SignedVoluntaryExit, 16]
        sync_aggregate: SyncAggregate

    class BeaconBlockPhase0(Container):
        slot: uint64
        proposer_index: uint64
        parent_root: Bytes32
        state_root: Bytes32
        body: BeaconBlockBodyPhase0

    class BeaconBlockAltair(Container):
        slot: uint64
        proposer_index: uint64
        parent_root: Bytes32
        state_root: Bytes32
        body: BeaconBlockBodyAltair

    class AggregateAndProof(Container):
        aggregator_index: uint64
        aggregate: Attestation
        selection_proof: Bytes96

    class AggregateAndProofElectra(Container):
        aggregator_index: uint64
        aggregate: AttestationElectra
        selection_proof: Bytes96

    class SyncAggregatorSelectionData(Container):
        slot: uint64
        subcommittee_index: uint64

    class SyncCommitteeContribution(Container):
        slot: uint64
        beacon_block_root: Bytes32
        subcommittee_index: uint64
        aggregation_bits: Bitvector[p["SYNC_COMMITTEE_SIZE"] // SYNC_COMMITTEE_SUBNET_COUNT]
        signature: Bytes96

    class ContributionAndProof(Container):
        aggregator_index: uint64
        contribution: SyncCommitteeContribution
        selection_proof: Bytes96

    class ValidatorRegistration(Container):
        fee_recipient: Bytes20
        gas_limit: uint64
        timestamp: uint64
        pubkey: Bytes48

    class DepositMessage(Container):
        pubkey: Bytes48
        withdrawal_credentials: Bytes32
        amount: uint64

    return {k: v for k, v in locals().items() if isinstance(v, type)}


class ForkData(Container):
    current_version: Bytes4
    genesis_validators_root: Bytes32


class SigningData(Container):
    object_root: Bytes32
    domain: Bytes32


def unhex(s):
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


def build(typ, value):
    """Build an SSZ value of type typ from consensus-JSON value."""
    if issubclass(typ, uint64):
        return typ(int(value))
    if issubclass(typ, (Bitlist, Bitvector)):
        return typ.decode_bytes(unhex(value))
    if issubclass(typ, ByteVector):
        return typ(unhex(value))
    if issubclass(typ, (List, Vector)):
        elem = typ.element_cls()
        return typ(*[build(elem, v) for v in value])
    if issubclass(typ, Container):
        return typ(**{name: build(ftyp, value[name]) for name, ftyp in typ.fields().items()})
    raise TypeError(typ)


def compute_domain(domain_type_hex, fork_version, gvr):
    fork_data_root = ForkData(current_version=fork_version, genesis_validators_root=gvr).hash_tree_root()
    return Bytes32(bytes.fromhex(domain_type_hex) + bytes(fork_data_root)[:28])


def domain_at(domain_type, fork_info, epoch):
    fork = fork_info["fork"]
    version = fork["previous_version"] if epoch < int(fork["epoch"]) else fork["current_version"]
    return compute_domain(DOMAIN[domain_type], Bytes4(unhex(version)), Bytes32(unhex(fork_info["genesis_validators_root"])))


def snake(value):
    """Web3Signer's deprecated forms use camelCase keys; the specs use snake_case."""
    if isinstance(value, dict):
        return {re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", k).lower() if k != "signingRoot" else k: snake(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [snake(v) for v in value]
    return value


def fork_at(forks, epoch):
    """The fork the schedule gives `epoch` (phase0 before any)."""
    order = ["ALTAIR", "BELLATRIX", "CAPELLA", "DENEB", "ELECTRA", "FULU"]
    current = "PHASE0"
    for name in order:
        if name in forks and epoch >= int(forks[name]):
            current = name
    return current


def signing_root(req, preset, genesis_fork_version, forks=None):
    forks = forks or {}
    req = snake(req)
    p = PRESETS[preset]
    T = types(p)
    spe = p["SLOTS_PER_EPOCH"]
    kind = req["type"]
    fi = req.get("fork_info")
    if kind in ("BLOCK", "BLOCK_V2"):
        if kind == "BLOCK":
            fork = fork_at(forks, int(req["block"]["slot"]) // spe)
            if fork not in ("PHASE0", "ALTAIR"):
                raise ValueError(f"deprecated BLOCK has no {fork} form")
            obj = build(T["BeaconBlockPhase0" if fork == "PHASE0" else "BeaconBlockAltair"], req["block"])
        else:
            bb = req["beacon_block"]
            if "block_header" in bb:
                obj = build(T["BeaconBlockHeader"], bb["block_header"])
            elif bb["version"] == "PHASE0":
                obj = build(T["BeaconBlockPhase0"], bb["block"])
            else:
                obj = build(T["BeaconBlockAltair"], bb["block"])
        return obj.hash_tree_root(), domain_at("BEACON_PROPOSER", fi, int(obj.slot) // spe)
    if kind == "ATTESTATION":
        obj = build(T["AttestationData"], req["attestation"])
        return obj.hash_tree_root(), domain_at("BEACON_ATTESTER", fi, int(obj.target.epoch))
    if kind == "AGGREGATION_SLOT":
        slot = int(req["aggregation_slot"]["slot"])
        return uint64(slot).hash_tree_root(), domain_at("SELECTION_PROOF", fi, slot // spe)
    if kind in ("AGGREGATE_AND_PROOF", "AGGREGATE_AND_PROOF_V2"):
        ap = req["aggregate_and_proof"]
        if kind == "AGGREGATE_AND_PROOF":
            fork = fork_at(forks, int(ap["aggregate"]["data"]["slot"]) // spe)
            obj = build(T["AggregateAndProofElectra" if fork in ("ELECTRA", "FULU") else "AggregateAndProof"], ap)
        elif ap["version"] in ("ELECTRA", "FULU"):
            obj = build(T["AggregateAndProofElectra"], ap["data"])
        else:
            obj = build(T["AggregateAndProof"], ap["data"])
        return obj.hash_tree_root(), domain_at("AGGREGATE_AND_PROOF", fi, int(obj.aggregate.data.slot) // spe)
    if kind == "RANDAO_REVEAL":
        epoch = int(req["randao_reveal"]["epoch"])
        return uint64(epoch).hash_tree_root(), domain_at("RANDAO", fi, epoch)
    if kind == "VOLUNTARY_EXIT":
        obj = build(T["VoluntaryExit"], req["voluntary_exit"])
        return obj.hash_tree_root(), domain_at("VOLUNTARY_EXIT", fi, int(obj.epoch))
    if kind == "DEPOSIT":
        d = req["deposit"]
        obj = build(T["DepositMessage"], d)
        dom = compute_domain(DOMAIN["DEPOSIT"], Bytes4(unhex(d["genesis_fork_version"])), Bytes32())
        return obj.hash_tree_root(), dom
    if kind == "SYNC_COMMITTEE_MESSAGE":
        m = req["sync_committee_message"]
        return Bytes32(unhex(m["beacon_block_root"])), domain_at("SYNC_COMMITTEE", fi, int(m["slot"]) // spe)
    if kind == "SYNC_COMMITTEE_SELECTION_PROOF":
        obj = build(T["SyncAggregatorSelectionData"], req["sync_aggregator_selection_data"])
        return obj.hash_tree_root(), domain_at("SYNC_COMMITTEE_SELECTION_PROOF", fi, int(obj.slot) // spe)
    if kind == "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF":
        obj = build(T["ContributionAndProof"], req["contribution_and_proof"])
        return obj.hash_tree_root(), domain_at("CONTRIBUTION_AND_PROOF", fi, int(obj.contribution.slot) // spe)
    if kind == "VALIDATOR_REGISTRATION":
        obj = build(T["ValidatorRegistration"], req["validator_registration"])
        dom = compute_domain(DOMAIN["APPLICATION_BUILDER"], Bytes4(unhex(genesis_fork_version)), Bytes32())
        return obj.hash_tree_root(), dom
    raise ValueError(f"unknown type {kind}")


def main():
    doc = json.load(sys.stdin)
    results = []
    for case in doc["cases"]:
        try:
            obj_root, domain = signing_root(case["request"], doc["preset"], doc["genesis_fork_version"], doc.get("forks"))
            root = bytes(SigningData(object_root=Bytes32(bytes(obj_root)), domain=domain).hash_tree_root())
            ok = bls.Verify(unhex(case["pubkey"]), root, unhex(case["signature"]))
            results.append({"name": case["name"], "ok": bool(ok), "signing_root": "0x" + root.hex()})
        except Exception as e:  # reported per case; the Rust test fails on any
            results.append({"name": case["name"], "ok": False, "error": repr(e)})
    json.dump({"results": results}, sys.stdout)
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
