"""signward's JSON-RPC endpoint used, unchanged, by web3.py (PyPI `web3`).

Usage: web3_client.py URL TOKEN
Reads {"to": "0x..", "typed_data": {...}} from stdin. With web3.py's HTTPProvider (Bearer token
in the headers) it lists accounts, signs an EIP-1559 and a legacy transaction, an eth_sign message
and EIP-712 typed data, then checks every result with eth-account. Prints {"ok": bool, ...}.
"""
import json
import sys

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from web3 import Web3


def main():
    url, token = sys.argv[1], sys.argv[2]
    inp = json.load(sys.stdin)
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"headers": {"Authorization": f"Bearer {token}"}}))
    accounts = w3.eth.accounts
    sender = accounts[0]
    out = {"accounts": accounts, "checks": []}

    def record(name, ok, detail=""):
        out["checks"].append({"name": name, "ok": bool(ok), "detail": detail})

    tx1559 = {"from": sender, "to": Web3.to_checksum_address(inp["to"]), "value": 1000, "gas": 21000,
              "maxFeePerGas": 2_000_000_000, "maxPriorityFeePerGas": 1_000_000_000, "nonce": 4, "chainId": 1}
    signed = w3.eth.sign_transaction(tx1559)
    record("1559 recovers", Account.recover_transaction(signed["raw"]) == sender, str(signed["tx"].get("hash")))
    record("1559 tx fields", signed["tx"]["nonce"] == 4 and signed["tx"]["value"] == 1000)
    legacy = {"from": sender, "to": Web3.to_checksum_address(inp["to"]), "value": 1, "gas": 21000,
              "gasPrice": 1_000_000_000, "nonce": 5, "chainId": 1}
    signed = w3.eth.sign_transaction(legacy)
    record("legacy recovers", Account.recover_transaction(signed["raw"]) == sender)
    sig = w3.eth.sign(sender, data=b"signward")
    record("eth_sign recovers", Account.recover_message(encode_defunct(primitive=b"signward"), signature=sig) == sender)
    sig = w3.eth.sign_typed_data(sender, inp["typed_data"])
    record("typed data recovers", Account.recover_message(encode_typed_data(full_message=inp["typed_data"]), signature=sig) == sender)
    out["ok"] = all(c["ok"] for c in out["checks"])
    json.dump(out, sys.stdout, default=str)
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
