"""web3.py (PyPI `web3` 8.0.0), unchanged, sending through signward as its node and its signer.

Inputs from the environment: SIGNWARD_URL (signward's JSON-RPC URL), SIGNWARD_TOKEN (bearer token),
NODE_URL (the node, used only to check effects independently), ACCOUNT (the signer's checksummed
address), RECIPIENT, CHAIN_ID (default 1337).

With an HTTPProvider pointed at signward (the token in the request headers) it sends ether with
eth_sendTransaction (signward fills nonce, gas and fees from its node, signs and submits), waits
for the receipt, deploys the test ERC-20 (tests/evm-clients/Token.json) with a contract
constructor's transact(), transfers tokens with a contract function's transact(), and signs one
transaction with sign_transaction (the credential must answer geth's {raw, tx}, the shape web3.py's
result formatter reads); the effects are checked on NODE_URL with a second Web3, the signed
transaction is recovered with eth-account. Prints one JSON line; exits 1 with the reason on any
failure.

    SIGNWARD_URL=http://127.0.0.1:9000/ SIGNWARD_TOKEN=... NODE_URL=http://127.0.0.1:8545 \
    ACCOUNT=0x... RECIPIENT=0x... .venv-test/bin/python tests/py/web3_send_client.py
"""
import json
import os
import pathlib
import sys
import traceback

from eth_account import Account
from web3 import Web3

TOKEN_JSON = pathlib.Path(__file__).resolve().parents[1] / "evm-clients" / "Token.json"
TIMEOUT = 60


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


def main():
    missing = [k for k in ("SIGNWARD_URL", "SIGNWARD_TOKEN", "NODE_URL", "ACCOUNT", "RECIPIENT") if not os.environ.get(k)]
    check(not missing, f"missing environment: {', '.join(missing)}")
    env = os.environ
    account, recipient = env["ACCOUNT"], env["RECIPIENT"]
    chain_id = int(env.get("CHAIN_ID", "1337"))
    w3 = Web3(Web3.HTTPProvider(env["SIGNWARD_URL"], request_kwargs={
        "headers": {"Authorization": f"Bearer {env['SIGNWARD_TOKEN']}"}, "timeout": 30}))
    node = Web3(Web3.HTTPProvider(env["NODE_URL"], request_kwargs={"timeout": 30}))
    check(w3.eth.chain_id == chain_id, f"eth_chainId said {w3.eth.chain_id}, want {chain_id}")
    check(account in w3.eth.accounts, f"eth_accounts lacks {account}: {w3.eth.accounts}")

    # Ether through eth_sendTransaction, the receipt through signward, the balance on the node.
    value = Web3.to_wei(3, "ether")
    before = node.eth.get_balance(recipient)
    tx_hash = w3.eth.send_transaction({"from": account, "to": recipient, "value": value})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=TIMEOUT, poll_latency=0.2)
    check(receipt["status"] == 1, f"transfer {tx_hash.hex()} failed")
    check(receipt["from"] == account, f"transfer came from {receipt['from']}")
    after = node.eth.get_balance(recipient)
    check(after - before == value, f"recipient got {after - before} wei, want {value}")

    # The ERC-20: deployed with the constructor's transact(), then transferred.
    artifact = json.loads(TOKEN_JSON.read_text())
    supply = 10**6 * 10**18
    Token = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    deploy_hash = Token.constructor("Signward Web3", "SW3", supply).transact({"from": account})
    deployed = w3.eth.wait_for_transaction_receipt(deploy_hash, timeout=TIMEOUT, poll_latency=0.2)
    check(deployed["status"] == 1 and deployed["contractAddress"], f"deployment {deploy_hash.hex()} failed")
    address = deployed["contractAddress"]
    token = w3.eth.contract(address=address, abi=artifact["abi"])
    amount = 4242 * 10**15
    transfer_hash = token.functions.transfer(recipient, amount).transact({"from": account})
    transferred = w3.eth.wait_for_transaction_receipt(transfer_hash, timeout=TIMEOUT, poll_latency=0.2)
    check(transferred["status"] == 1, f"token transfer {transfer_hash.hex()} failed")
    on_node = node.eth.contract(address=address, abi=artifact["abi"])
    got = on_node.functions.balanceOf(recipient).call()
    check(got == amount, f"token balance of recipient is {got}, want {amount}")
    check(token.functions.balanceOf(account).call() == supply - amount, "eth_call through signward disagrees")

    # sign_transaction: geth's {raw, tx}, recovered here; not sent.
    nonce = node.eth.get_transaction_count(account, "pending")
    signed = w3.eth.sign_transaction({"from": account, "to": recipient, "value": 5, "gas": 21000,
                                      "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 10**9,
                                      "nonce": nonce, "chainId": chain_id})
    raw = bytes(signed["raw"])
    check(Account.recover_transaction(raw) == account, "signed transaction does not recover to the account")
    check(signed["tx"]["nonce"] == nonce and signed["tx"]["value"] == 5, f"tx fields: {dict(signed['tx'])}")

    print(json.dumps({"client": "web3.py", "ok": True, "version": __import__("web3").__version__,
                      "chainId": chain_id, "transfer": tx_hash.to_0x_hex(), "token": address,
                      "deploy": deploy_hash.to_0x_hex(), "tokenTransfer": transfer_hash.to_0x_hex(),
                      "signedTransaction": Web3.keccak(raw).to_0x_hex()}))


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print(f"web3.py: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception:  # noqa: BLE001 - any library error is a failure, with its trace
        print(f"web3.py: FAILED: {traceback.format_exc()}", file=sys.stderr)
        sys.exit(1)
