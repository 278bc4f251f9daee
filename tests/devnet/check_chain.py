"""Check a devnet's canonical chain against signward's audit log (run by scripts/devnet-test.sh).

For every block from slot 1 to the head, and every attestation included in it:
  * the signing root is computed here, independently of Lodestar and signward: remerkleable for
    the SSZ containers (AttestationData, ForkData, SigningData), the block root from the beacon
    API, the fork version that config.yaml schedules for the message's epoch, and the genesis
    validators root from the beacon API;
  * that signing root must be recorded as `signed` in signward's audit log for the proposer's
    public key (BLOCK/BLOCK_V2), or for keys of the attestation (ATTESTATION), as many as its
    aggregation bits;
  * the BLS signature on chain must verify under that key (an aggregate under those keys), with
    milagro-bls-binding (Apache Milagro, not blst, which signward signs with); the first block
    and the first attestation of each fork are verified again with py_ecc (pure Python, about a
    second per signature on these machines, too slow for all of them).
signward's audit log records the signing root of each signing, not the signature; a valid
signature over a root that signward recorded signing with that key, where only signward holds the
key, is the check that the chain carries signatures signward released.

Also: no block includes a proposer or attester slashing, no validator is slashed, every fork has
blocks, the doppelganger was refused at least once (audit `refused`, reason of slashing
protection), and the first validator client kept signing after the doppelganger started.

usage: check_chain.py --beacon URL --config config.yaml --audit audit.jsonl
                      --doppelganger-since UNIX --auth token|source
"""
import argparse
import itertools
import json
import sys
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from multiprocessing import Pool

import os

import milagro_bls_binding as bls
from py_ecc.bls import G2ProofOfPossession as py_ecc_bls
from remerkleable.byte_arrays import Bytes4, Bytes32

# The spec containers are the ones the signature cross-checks use (tests/py/verify_signatures.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
from verify_signatures import PRESETS, ForkData, SigningData, types  # noqa: E402

SLOTS_PER_EPOCH = 8  # minimal preset
DOMAIN_BEACON_PROPOSER = bytes.fromhex("00000000")
DOMAIN_BEACON_ATTESTER = bytes.fromhex("01000000")
FORKS = ("ALTAIR", "BELLATRIX", "CAPELLA")
_SPEC = types(PRESETS["minimal"])
Checkpoint, AttestationData = _SPEC["Checkpoint"], _SPEC["AttestationData"]


def get(base, path):
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def unhex(s):
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


def norm(h):
    """Hex as signward's audit log and the beacon API may write it: compared without 0x, lowercase."""
    return (h or "").lower().removeprefix("0x")


def read_config(path):
    cfg = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if ":" in line and not line.startswith((" ", "#", "-")):
                k, v = line.split(":", 1)
                cfg[k.strip()] = v.strip().strip("'\"")
    assert cfg.get("PRESET_BASE") == "minimal", "the devnet runs the minimal preset"
    schedule = [(0, unhex(cfg["GENESIS_FORK_VERSION"]), "PHASE0")]
    for fork in FORKS:
        schedule.append((int(cfg[f"{fork}_FORK_EPOCH"]), unhex(cfg[f"{fork}_FORK_VERSION"]), fork))
    schedule.sort()
    return schedule


def fork_at(schedule, epoch):
    return [f for f in schedule if f[0] <= epoch][-1]


def signing_root(object_root, domain_type, version, gvr):
    fork_data_root = ForkData(current_version=version, genesis_validators_root=gvr).hash_tree_root()
    domain = domain_type + bytes(fork_data_root)[:28]
    return bytes(SigningData(object_root=object_root, domain=domain).hash_tree_root())


def bits_set(bitlist_hex):
    """Indices of set bits of an SSZ bitlist (the highest set bit marks its length)."""
    raw = unhex(bitlist_hex)
    bits = [(b >> i) & 1 for b in raw for i in range(8)]
    length = max(i for i, b in enumerate(bits) if b)
    return [i for i in range(length) if bits[i]]


def verify(job, impl=bls):
    kind, pubkeys, root, sig = job
    if kind == "one":
        return impl.Verify(pubkeys[0], root, sig)
    return impl.FastAggregateVerify(pubkeys, root, sig)


def verify_py_ecc(job):
    return verify(job, py_ecc_bls)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--beacon", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--audit", required=True)
    ap.add_argument("--doppelganger-since", type=int, required=True)
    ap.add_argument("--auth", choices=("token", "source"), required=True)
    args = ap.parse_args()
    failures = []

    schedule = read_config(args.config)
    genesis = get(args.beacon, "/eth/v1/beacon/genesis")["data"]
    gvr = unhex(genesis["genesis_validators_root"])
    vals = get(args.beacon, "/eth/v1/beacon/states/head/validators")["data"]
    pubkey_of = {int(v["index"]): norm(v["validator"]["pubkey"]) for v in vals}
    assert len(pubkey_of) == 8, f"expected 8 validators, found {len(pubkey_of)}"
    slashed = [v["index"] for v in vals if v["validator"]["slashed"]]
    if slashed:
        failures.append(f"slashed validators: {slashed}")

    # signward's audit log: (root, operation) -> keys recorded as signed.
    signed = defaultdict(set)
    records = []
    with open(args.audit, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    for r in records:
        if r.get("decision") == "signed" and r.get("signing_root"):
            op = r.get("operation") or ""
            family = "BLOCK" if op.startswith("BLOCK") else op
            signed[(norm(r["signing_root"]), family)].add(norm(r.get("key")))

    head = int(get(args.beacon, "/eth/v1/beacon/headers/head")["data"]["header"]["message"]["slot"])
    jobs, where, sample = [], [], {}
    per_fork = Counter()
    attestations = 0
    for slot in range(1, head + 1):
        blk = get(args.beacon, f"/eth/v2/beacon/blocks/{slot}")
        if blk is None:
            continue
        msg = blk["data"]["message"]
        if int(msg["slot"]) != slot:
            continue  # an empty slot answered with an earlier block
        epoch = slot // SLOTS_PER_EPOCH
        fork_epoch, version, fork_name = fork_at(schedule, epoch)
        if blk["version"].upper() != fork_name:
            failures.append(f"slot {slot}: block is {blk['version']}, config.yaml says {fork_name}")
        per_fork[fork_name] += 1
        body = msg["body"]
        for k in ("proposer_slashings", "attester_slashings"):
            if body.get(k):
                failures.append(f"slot {slot}: block includes {k}")
        root = unhex(get(args.beacon, f"/eth/v1/beacon/blocks/{slot}/root")["data"]["root"])
        sroot = signing_root(root, DOMAIN_BEACON_PROPOSER, version, gvr)
        proposer = pubkey_of[int(msg["proposer_index"])]
        if proposer not in signed[(sroot.hex(), "BLOCK")]:
            failures.append(f"slot {slot}: block signing root 0x{sroot.hex()} not signed by signward for {proposer}")
        else:
            jobs.append(("one", [unhex(proposer)], sroot, unhex(blk["data"]["signature"])))
            where.append(f"slot {slot} block")
            sample.setdefault((fork_name, "block"), len(jobs) - 1)
        for i, att in enumerate(body["attestations"]):
            attestations += 1
            d = att["data"]
            data = AttestationData(
                slot=int(d["slot"]),
                index=int(d["index"]),
                beacon_block_root=unhex(d["beacon_block_root"]),
                source=Checkpoint(epoch=int(d["source"]["epoch"]), root=unhex(d["source"]["root"])),
                target=Checkpoint(epoch=int(d["target"]["epoch"]), root=unhex(d["target"]["root"])),
            )
            _, aversion, _ = fork_at(schedule, int(d["target"]["epoch"]))
            aroot = signing_root(bytes(data.hash_tree_root()), DOMAIN_BEACON_ATTESTER, aversion, gvr)
            n = len(bits_set(att["aggregation_bits"]))
            keys = sorted(signed[(aroot.hex(), "ATTESTATION")])
            if len(keys) < n:
                failures.append(
                    f"slot {slot} attestation {i}: {n} signers on chain, signward recorded "
                    f"{len(keys)} for signing root 0x{aroot.hex()}"
                )
                continue
            if len(keys) == n:
                jobs.append(("agg", [unhex(k) for k in keys], aroot, unhex(att["signature"])))
                where.append(f"slot {slot} attestation {i}")
                sample.setdefault((fork_name, "attestation"), len(jobs) - 1)
            else:
                # More keys signed this root than the aggregate holds: one subset must verify.
                ok = any(
                    bls.FastAggregateVerify([unhex(k) for k in c], aroot, unhex(att["signature"]))
                    for c in itertools.combinations(keys, n)
                )
                if not ok:
                    failures.append(f"slot {slot} attestation {i}: no {n} of {keys} verify")

    for job, w in zip(jobs, where):
        if not verify(job):
            failures.append(f"{w}: BLS signature does not verify under the key signward recorded")
    picked = sorted(sample.values())
    with Pool(2) as pool:
        again = pool.map(verify_py_ecc, [jobs[i] for i in picked])
    for ok, i in zip(again, picked):
        if not ok:
            failures.append(f"{where[i]}: py_ecc does not verify the signature")

    for fork in ("PHASE0",) + FORKS:
        if per_fork[fork] == 0:
            failures.append(f"no {fork} block on the chain")

    since_ms = args.doppelganger_since * 1000
    refused = [
        r for r in records
        if r.get("decision") == "refused" and r.get("time_ms", 0) >= since_ms
    ]
    if not refused:
        failures.append("signward refused nothing after the doppelganger started")
    vc1_after = [
        r for r in records
        if r.get("decision") == "signed" and r.get("time_ms", 0) >= since_ms
        and (args.auth == "source" or r.get("caller") == "lodestar")
    ]
    if len(vc1_after) < SLOTS_PER_EPOCH:
        failures.append(f"VC 1 signed only {len(vc1_after)} messages after the doppelganger started")

    print(
        f"chain to slot {head}: blocks per fork {dict(per_fork)}, {attestations} attestations, "
        f"{len(jobs)} BLS signatures verified against signward's audit log "
        f"({len(picked)} also with py_ecc); "
        f"{len(refused)} refusals after the doppelganger started "
        f"({dict(Counter((r.get('caller'), r.get('operation'), r.get('reason')) for r in refused))}), "
        f"{len(vc1_after)} signings by VC 1 after it"
    )
    if failures:
        for f in failures[:50]:
            print("FAIL:", f, file=sys.stderr)
        print(f"{len(failures)} failures", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
