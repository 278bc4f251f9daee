"""A trading bot's remote signer client, the protocol of ReadyTrader-Crypto's `SIGNER_TYPE=remote`
(written here from its description, not from its code), against signward.

Inputs from the environment: SIGNWARD_URL (the signer's base URL: the protocol's paths /address and
/sign_transaction are appended), SIGNWARD_TOKEN (bearer token), NODE_URL (the node: this client
reads nonce and fees there and submits the signed transactions itself), ACCOUNT (the signer's
checksummed address), RECIPIENT, CHAIN_ID (default 1337).

The protocol: `GET /address` -> {"address": "0x..."}; `POST /sign_transaction` with
{"tx": {web3-style dict}, "chain_id": N, "intent": {"intent_type": "evm_transaction", "chain_id",
"to", "value_wei", "data_hex", "gas", "gas_price_wei", "nonce"}} -> {"rawTransactionHex": "0x..."},
both with `Authorization: Bearer <token>`. Quantities in "tx" are JSON integers (web3.py's
build_transaction dicts), so 100 ether is an integer above 2**64.

Checks: the address; a legacy transfer of 100 ether (value a JSON integer > 2**64, data "0x", no
"from") and an EIP-1559 transfer (with "from", no data, the intent's value a decimal string and its
gas price null), each signed by signward, recovered here, submitted to the node with
eth_sendRawTransaction and mined with the recipient's balance up by the value; a request whose
intent names another recipient is refused with HTTP 400; one without the token gets 401. Prints one
JSON line; exits 1 with the reason on any failure. Standard library and web3/eth-account only.

    SIGNWARD_URL=http://127.0.0.1:9000 SIGNWARD_TOKEN=... NODE_URL=http://127.0.0.1:8545 \
    ACCOUNT=0x... RECIPIENT=0x... .venv-test/bin/python tests/py/readytrader_client.py
"""
import json
import os
import sys
import traceback
import urllib.error
import urllib.request

from eth_account import Account
from web3 import Web3

TIMEOUT = 30


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


def call(method, url, token=None, body=None):
    """(HTTP status, parsed JSON body or the text) of one request; no redirects followed."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with opener.open(req, timeout=TIMEOUT) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def intent_of(tx, chain_id, value_as_string=False):
    """The declared intent, derived from the tx dict the way the protocol describes it."""
    value = tx.get("value")
    return {
        "intent_type": "evm_transaction",
        "chain_id": chain_id,
        "to": tx.get("to"),
        "value_wei": str(value) if value_as_string and value is not None else value,
        "data_hex": tx.get("data"),
        "gas": tx.get("gas"),
        "gas_price_wei": tx.get("gasPrice"),
        "nonce": tx.get("nonce"),
    }


def main():
    missing = [k for k in ("SIGNWARD_URL", "SIGNWARD_TOKEN", "NODE_URL", "ACCOUNT", "RECIPIENT") if not os.environ.get(k)]
    check(not missing, f"missing environment: {', '.join(missing)}")
    env = os.environ
    base = env["SIGNWARD_URL"].rstrip("/")
    token, account, recipient = env["SIGNWARD_TOKEN"], env["ACCOUNT"], env["RECIPIENT"]
    chain_id = int(env.get("CHAIN_ID", "1337"))
    node = Web3(Web3.HTTPProvider(env["NODE_URL"], request_kwargs={"timeout": TIMEOUT}))
    check(node.eth.chain_id == chain_id, f"the node's chain is {node.eth.chain_id}, not {chain_id}")

    status, body = call("GET", f"{base}/address", token)
    check(status == 200 and isinstance(body, dict), f"GET /address: HTTP {status}: {body}")
    check(Web3.to_checksum_address(body.get("address", "")) == account, f"GET /address said {body}, want {account}")
    status, body = call("GET", f"{base}/address")
    check(status == 401, f"GET /address without the token: HTTP {status}, want 401: {body}")

    def sign(tx, intent):
        status, body = call("POST", f"{base}/sign_transaction", token,
                            {"tx": tx, "chain_id": chain_id, "intent": intent})
        check(status == 200 and isinstance(body, dict) and isinstance(body.get("rawTransactionHex"), str),
              f"POST /sign_transaction: HTTP {status}: {body}")
        raw = bytes.fromhex(body["rawTransactionHex"].removeprefix("0x"))
        check(Account.recover_transaction(raw) == account, "the signed transaction does not recover to the account")
        return raw

    def submit(raw, value):
        before = node.eth.get_balance(recipient)
        tx_hash = node.eth.send_raw_transaction(raw)
        receipt = node.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.2)
        check(receipt["status"] == 1, f"{tx_hash.to_0x_hex()} failed on chain")
        check(receipt["from"] == account, f"{tx_hash.to_0x_hex()} came from {receipt['from']}")
        after = node.eth.get_balance(recipient)
        check(after - before == value, f"recipient got {after - before} wei, want {value}")
        return tx_hash.to_0x_hex()

    # Legacy, 100 ether: a JSON integer above 2**64, as Python's json writes it.
    value = 100 * 10**18
    check(value > 2**64, "the value must not fit in 64 bits")
    legacy = {"to": recipient, "value": value, "gas": 21000, "gasPrice": node.eth.gas_price,
              "nonce": node.eth.get_transaction_count(account, "pending"), "data": "0x", "chainId": chain_id}
    raw = sign(legacy, intent_of(legacy, chain_id))
    decoded = Account.recover_transaction(raw)
    legacy_hash = submit(raw, value)
    mined = node.eth.get_transaction(legacy_hash)
    check(mined["nonce"] == legacy["nonce"] and mined["gasPrice"] == legacy["gasPrice"] and mined["value"] == value,
          f"the node has {dict(mined)}")

    # EIP-1559 with "from" and no data; the intent's value as a decimal string.
    latest = node.eth.get_block("latest")
    tip = 10**9
    dynamic = {"from": account, "to": recipient, "value": 12345678901234567890, "gas": 21000,
               "maxFeePerGas": 2 * latest["baseFeePerGas"] + tip, "maxPriorityFeePerGas": tip,
               "nonce": node.eth.get_transaction_count(account, "pending"), "chainId": chain_id}
    raw = sign(dynamic, intent_of(dynamic, chain_id, value_as_string=True))
    check(raw[0] == 2, f"an EIP-1559 request gave a type {raw[0]} transaction")
    dynamic_hash = submit(raw, dynamic["value"])

    # The intent must agree with the transaction: another recipient is refused.
    lying = dict(legacy, nonce=node.eth.get_transaction_count(account, "pending"))
    intent = intent_of(lying, chain_id)
    intent["to"] = "0x" + "44" * 20
    status, body = call("POST", f"{base}/sign_transaction", token, {"tx": lying, "chain_id": chain_id, "intent": intent})
    check(status == 400, f"an intent naming another recipient: HTTP {status}, want 400: {body}")
    # No token, no signature.
    status, body = call("POST", f"{base}/sign_transaction", None,
                        {"tx": lying, "chain_id": chain_id, "intent": intent_of(lying, chain_id)})
    check(status == 401, f"POST /sign_transaction without the token: HTTP {status}, want 401: {body}")

    print(json.dumps({"client": "readytrader", "ok": True, "address": account, "signer": decoded,
                      "legacy": legacy_hash, "eip1559": dynamic_hash}))


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print(f"readytrader: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception:  # noqa: BLE001 - any error is a failure, with its trace
        print(f"readytrader: FAILED: {traceback.format_exc()}", file=sys.stderr)
        sys.exit(1)
