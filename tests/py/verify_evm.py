"""Independent check of signward's EVM signatures with eth-account (PyPI).

Reads from stdin: {"private_key": "0x..", "address": "0x..", "cases": [
  {"name", "kind": "tx", "request": {eth_signTransaction object}, "raw": "0x.."},
  {"name", "kind": "personal", "message": "0x..", "signature": "0x.."},
  {"name", "kind": "typed", "typed_data": {...}, "signature": "0x.."}]}

For a transaction it recovers the signer from the raw bytes, decodes the fields and compares them
with the request, and signs the same transaction with eth-account: the raw bytes must be
identical (both use RFC 6979 deterministic nonces). Messages are recovered with eth-account's
EIP-191 and EIP-712 encoders. Nothing here imports signward's code.

Prints {"results": [{"name", "ok", "error"?}]}; exits 0 when every case passes.
"""
import json
import sys

import rlp
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes


def q(v):
    if v is None:
        return 0
    if isinstance(v, int):
        return v
    return int(v, 16) if v.startswith("0x") else int(v)


def tx_dict(req):
    d = {
        "nonce": q(req["nonce"]),
        "gas": q(req["gas"]),
        "value": q(req.get("value", 0)),
        "data": req.get("data", req.get("input", "0x")),
        "chainId": q(req["chainId"]),
    }
    if req.get("to"):
        d["to"] = req["to"]
    if "maxFeePerGas" in req:
        d["maxFeePerGas"] = q(req["maxFeePerGas"])
        d["maxPriorityFeePerGas"] = q(req["maxPriorityFeePerGas"])
        d["type"] = 2
    else:
        d["gasPrice"] = q(req["gasPrice"])
        if "accessList" in req:
            d["type"] = 1
    if "accessList" in req:
        d["accessList"] = req["accessList"]
    return d


def decode_fields(raw):
    if raw[0] >= 0xC0:
        nonce, gas_price, gas, to, value, data, v, r, s = rlp.decode(raw)
        i = lambda b: int.from_bytes(b, "big")
        return {"nonce": i(nonce), "gas": i(gas), "value": i(value), "to": "0x" + to.hex() if to else None,
                "data": "0x" + data.hex(), "gasPrice": i(gas_price), "chainId": (i(v) - 35) // 2}
    d = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    out = {"nonce": d["nonce"], "gas": d["gas"], "value": d["value"], "chainId": d["chainId"],
           "to": ("0x" + bytes(d["to"]).hex()) if d.get("to") else None, "data": "0x" + bytes(d["data"]).hex()}
    for k in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas"):
        if k in d:
            out[k] = d[k]
    return out


def check(case, key, address):
    kind = case["kind"]
    if kind == "tx":
        raw = bytes.fromhex(case["raw"][2:])
        signer = Account.recover_transaction(raw)
        if signer.lower() != address.lower():
            return f"recovered {signer}, expected {address}"
        want = tx_dict(case["request"])
        got = decode_fields(raw)
        for k in ("nonce", "gas", "value", "chainId", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas"):
            if k in want and got.get(k) != want[k]:
                return f"field {k}: decoded {got.get(k)}, requested {want[k]}"
        if (got["to"] or "").lower() != (want.get("to") or "").lower():
            return f"to: decoded {got['to']}, requested {want.get('to')}"
        if got["data"].lower() != (want["data"] or "0x").lower():
            return "calldata differs"
        mine = Account.sign_transaction(want, key).raw_transaction
        if bytes(mine) != raw:
            return "eth-account signs the same transaction to different bytes"
        return None
    if kind == "personal":
        msg = encode_defunct(primitive=bytes.fromhex(case["message"][2:]))
        signer = Account.recover_message(msg, signature=case["signature"])
    elif kind == "typed":
        msg = encode_typed_data(full_message=case["typed_data"])
        signer = Account.recover_message(msg, signature=case["signature"])
    else:
        return f"unknown kind {kind}"
    if signer.lower() != address.lower():
        return f"recovered {signer}, expected {address}"
    return None


def main():
    req = json.load(sys.stdin)
    results = []
    for case in req["cases"]:
        try:
            err = check(case, req["private_key"], req["address"])
        except Exception as e:  # report, don't crash: the test prints what failed
            err = f"{type(e).__name__}: {e}"
        results.append({"name": case["name"], "ok": err is None, **({"error": err} if err else {})})
    json.dump({"results": results}, sys.stdout)
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
