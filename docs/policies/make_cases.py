"""Write the `policy test` case files of this directory (the calldata is ABI-encoded here with
eth_abi, so the cases are reproducible): run with the test venv's Python,

    .venv-test/bin/python docs/policies/make_cases.py

and commit the *.cases.toml files it writes. Each case names the decision it must get and, for a
refusal, the rule that must make it."""

import json
import pathlib

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

HERE = pathlib.Path(__file__).parent
NOW = 1_800_000_000
BOT = "0x7e57000000000000000000000000000000000001"
ATTACKER = "0x4444444444444444444444444444444444444444"
ZERO = "0x0000000000000000000000000000000000000000"
MAX = 2**256 - 1


def call(sig, types, args):
    return "0x" + (function_signature_to_4byte_selector(sig) + encode(types, args)).hex()


def transfer(to, amount):
    return call("transfer(address,uint256)", ["address", "uint256"], [to, amount])


def approve(spender, amount):
    return call("approve(address,uint256)", ["address", "uint256"], [spender, amount])


def swap(amount_in, path, to, deadline):
    return call(
        "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
        ["uint256", "uint256", "address[]", "address", "uint256"],
        [amount_in, 0, path, to, deadline],
    )


def tx(chain, to, data="0x", value=0, gas=100_000, nonce=0):
    t = {
        "from": BOT,
        "to": to,
        "value": hex(value),
        "gas": hex(gas),
        "maxFeePerGas": hex(10**9),
        "maxPriorityFeePerGas": hex(10**8),
        "nonce": hex(nonce),
        "chainId": hex(chain),
    }
    if to is None:
        del t["to"]
    if data != "0x":
        t["data"] = data
    return {"method": "eth_signTransaction", "params": [t]}


def typed(domain, primary, types, message):
    fields = {"name": "string", "version": "string", "chainId": "uint256", "verifyingContract": "address"}
    eip712 = [{"name": k, "type": v} for k, v in fields.items() if k in domain]
    return {
        "method": "eth_signTypedData_v4",
        "params": [BOT, {"types": {"EIP712Domain": eip712, **types}, "domain": domain, "primaryType": primary, "message": message}],
    }


def toml_value(v):
    return json.dumps(v)


def write(name, header, cases):
    out = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    out += ["# Written by make_cases.py; edit that and run it again.", "", f"now = {NOW}", ""]
    for c in cases:
        out.append("[[case]]")
        out.append(f"name = {toml_value(c['name'])}")
        if "token" in c:
            out.append(f"token = {toml_value(c['token'])}")
        out.append(f"expect = {toml_value(c['expect'])}")
        if "rule" in c:
            out.append(f"rule = {toml_value(c['rule'])}")
        out.append(f"request_json = '''{json.dumps(c['request'])}'''")
        out.append("")
    (HERE / f"{name}.cases.toml").write_text("\n".join(out))


def allow(name, request, **kw):
    return {"name": name, "expect": "allow", "request": request, **kw}


def refuse(name, rule, request, **kw):
    return {"name": name, "expect": "refuse", "rule": rule, "request": request, **kw}


# --- market maker (Polygon) ---
USDCE = "0x2791bca1f2de4661ed88a30c99a7a9449aa84174"
EXCHANGE = "0x4bfb41d5b3570defd03c39a9a4d8de6bd8b8982e"
CLOB = {"name": "ClobAuthDomain", "version": "1", "chainId": 137}
CLOB_TYPES = {"ClobAuth": [{"name": "address", "type": "address"}, {"name": "timestamp", "type": "string"}, {"name": "nonce", "type": "uint256"}, {"name": "message", "type": "string"}]}
ORDER_DOMAIN = {"name": "Polymarket CTF Exchange", "version": "1", "chainId": 137, "verifyingContract": EXCHANGE}
ORDER_TYPES = {"Order": [{"name": n, "type": t} for n, t in [
    ("salt", "uint256"), ("maker", "address"), ("signer", "address"), ("taker", "address"), ("tokenId", "uint256"),
    ("makerAmount", "uint256"), ("takerAmount", "uint256"), ("expiration", "uint256"), ("nonce", "uint256"),
    ("feeRateBps", "uint256"), ("side", "uint8"), ("signatureType", "uint8")]]}


def clob(who):
    return typed(CLOB, "ClobAuth", CLOB_TYPES, {"address": who, "timestamp": str(NOW), "nonce": 0, "message": "This message attests that I control the given wallet"})


def order(maker=BOT, amount=5_000_000_000, taker=ZERO, expiration=NOW + 3600, domain=ORDER_DOMAIN):
    return typed(domain, "Order", ORDER_TYPES, {"salt": "1", "maker": maker, "signer": maker, "taker": taker, "tokenId": "1234", "makerAmount": str(amount), "takerAmount": "1", "expiration": str(expiration), "nonce": "0", "feeRateBps": "0", "side": 0, "signatureType": 0})


write("market-maker", """Cases for market-maker.toml: what the market-making bot may sign, and what it may not.""", [
    allow("log in to the CLOB as itself", clob(BOT)),
    refuse("log in as another wallet", "typed_data_field_not_allowed", clob(ATTACKER)),
    allow("an order at the 5,000 USDC.e cap", order()),
    refuse("an order over the cap by one unit", "typed_data_field_not_allowed", order(amount=5_000_000_001)),
    refuse("an order whose maker is someone else", "typed_data_field_not_allowed", order(maker=ATTACKER)),
    refuse("a private order for one taker", "typed_data_field_not_allowed", order(taker=ATTACKER)),
    refuse("an order expiring in more than a day", "typed_data_field_not_allowed", order(expiration=NOW + 86401)),
    refuse("an order that never expires (expiration 0)", "typed_data_field_not_allowed", order(expiration=0)),
    refuse("an order for a look-alike exchange", "typed_data_domain_not_allowed", order(domain={**ORDER_DOMAIN, "verifyingContract": ATTACKER})),
    allow("approve the exchange for 50,000 USDC.e", tx(137, USDCE, approve(EXCHANGE, 50_000_000_000))),
    refuse("an unlimited approval", "approval_too_high", tx(137, USDCE, approve(EXCHANGE, MAX))),
    refuse("approve another spender", "approval_spender_not_allowed", tx(137, USDCE, approve(ATTACKER, 1))),
    refuse("move USDC.e out", "selector_not_allowed", tx(137, USDCE, transfer(ATTACKER, 1))),
    refuse("send POL", "recipient_not_allowed", tx(137, ATTACKER, value=1)),
    refuse("sign a personal message", "message_signing_not_allowed", {"method": "personal_sign", "params": ["hello", BOT]}),
    allow("the login credential logs in", clob(BOT), token="clob-login"),
    refuse("the login credential cannot approve", "selector_not_allowed", tx(137, USDCE, approve(EXCHANGE, 1)), token="clob-login"),
    refuse("the login credential cannot place orders", "typed_data_domain_not_allowed", order(), token="clob-login"),
])

# --- treasury payout (mainnet, Base) ---
PAYROLL = "0x1000000000000000000000000000000000000001"
COLD = "0x2000000000000000000000000000000000000002"
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
USDC_BASE = "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"
ETH = 10**18
write("treasury-payout", """Cases for treasury-payout.toml: payees with their own caps, USDC only to payees, nothing else.""", [
    allow("2 ETH to payroll", tx(1, PAYROLL, value=2 * ETH, gas=21000)),
    refuse("2 ETH and 1 wei to payroll", "value_too_high", tx(1, PAYROLL, value=2 * ETH + 1, gas=21000)),
    allow("2 ETH to payroll on Base", tx(8453, PAYROLL, value=2 * ETH, gas=21000)),
    allow("50 ETH to cold storage", tx(1, COLD, value=50 * ETH, gas=21000)),
    refuse("cold storage is a payee on mainnet only", "recipient_not_allowed", tx(8453, COLD, value=1, gas=21000)),
    refuse("1 wei to anyone else", "recipient_not_allowed", tx(1, ATTACKER, value=1, gas=21000)),
    refuse("another chain", "chain_id_not_allowed", tx(10, PAYROLL, value=1, gas=21000)),
    allow("10,000 USDC to payroll", tx(1, USDC, transfer(PAYROLL, 10_000_000_000))),
    refuse("10,000.000001 USDC to payroll", "token_amount_too_high", tx(1, USDC, transfer(PAYROLL, 10_000_000_001))),
    refuse("USDC to a stranger", "token_recipient_not_allowed", tx(1, USDC, transfer(ATTACKER, 1))),
    refuse("USDC on Base to cold storage", "token_recipient_not_allowed", tx(8453, USDC_BASE, transfer(COLD, 1))),
    refuse("approve anyone", "selector_not_allowed", tx(1, USDC, approve(ATTACKER, 1))),
    refuse("ether with a token transfer", "value_too_high", tx(1, USDC, transfer(PAYROLL, 1), value=1)),
    refuse("a deployment", "contract_creation_not_allowed", tx(1, None, "0x6000")),
    refuse("gas above the cap", "gas_too_high", tx(1, PAYROLL, value=1, gas=120_001)),
])

# --- DEX arbitrage (Base, Arbitrum) ---
WETH = "0x4200000000000000000000000000000000000006"
CBBTC = "0xcbb7c0000ab88b473b1f5afd9ef808440eed33bf"
ROUTER = "0x4752ba5dbc23f44d87826276bf6fd6b1c372ad24"
AGG = "0x111111125421ca6dc452d289314280a0f8842a65"
PERMIT2 = "0x000000000022d473030f116ddee9f6b43ac78ba3"
P2_TYPES = {
    "PermitSingle": [{"name": "details", "type": "PermitDetails"}, {"name": "spender", "type": "address"}, {"name": "sigDeadline", "type": "uint256"}],
    "PermitDetails": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint160"}, {"name": "expiration", "type": "uint48"}, {"name": "nonce", "type": "uint48"}],
}


def permit2(token=USDC_BASE, amount=100_000_000_000, spender=ROUTER, deadline=NOW + 1800):
    return typed({"name": "Permit2", "chainId": 8453, "verifyingContract": PERMIT2}, "PermitSingle", P2_TYPES,
                 {"details": {"token": token, "amount": str(amount), "expiration": str(deadline), "nonce": "0"}, "spender": spender, "sigDeadline": str(deadline)})


write("dex-arbitrage", """Cases for dex-arbitrage.toml: swaps along allowed paths to itself, bounded approvals and permits.""", [
    allow("swap USDC to WETH to itself", tx(8453, ROUTER, swap(10**9, [USDC_BASE, WETH], BOT, NOW + 120), gas=300_000)),
    allow("swap along three allowed tokens", tx(8453, ROUTER, swap(10**9, [USDC_BASE, WETH, CBBTC], BOT, NOW + 60), gas=300_000)),
    refuse("a path through an unknown token", "argument_not_allowed", tx(8453, ROUTER, swap(10**9, [USDC_BASE, ATTACKER, WETH], BOT, NOW), gas=300_000)),
    refuse("a swap paying someone else", "argument_not_allowed", tx(8453, ROUTER, swap(10**9, [USDC_BASE, WETH], ATTACKER, NOW), gas=300_000)),
    refuse("a deadline 121 s ahead", "argument_not_allowed", tx(8453, ROUTER, swap(10**9, [USDC_BASE, WETH], BOT, NOW + 121), gas=300_000)),
    refuse("the router on Arbitrum", "recipient_not_allowed", tx(42161, ROUTER, swap(10**9, [USDC_BASE, WETH], BOT, NOW), gas=300_000)),
    refuse("ether sent with a swap", "value_too_high", tx(8453, ROUTER, swap(10**9, [USDC_BASE, WETH], BOT, NOW), value=1, gas=300_000)),
    allow("approve the router for 100,000 USDC", tx(8453, USDC_BASE, approve(ROUTER, 100_000_000_000))),
    refuse("an unlimited approval", "approval_too_high", tx(8453, USDC_BASE, approve(ROUTER, MAX))),
    refuse("approve another spender", "approval_spender_not_allowed", tx(8453, WETH, approve(ATTACKER, 1))),
    allow("any call to the aggregator on Arbitrum", tx(42161, AGG, "0x12aa3caf" + "00" * 64, gas=500_000)),
    refuse("the aggregator on Base", "recipient_not_allowed", tx(8453, AGG, "0x12aa3caf" + "00" * 64, gas=500_000)),
    allow("a Permit2 permit for the router", permit2()),
    refuse("a Permit2 permit for someone else", "permit_spender_not_allowed", permit2(spender=ATTACKER)),
    refuse("a Permit2 permit for another token", "permit_token_not_allowed", permit2(token=CBBTC)),
    refuse("a Permit2 permit over the cap", "permit_amount_too_high", permit2(amount=100_000_000_001)),
    refuse("a Permit2 permit valid too long", "permit_deadline_too_far", permit2(deadline=NOW + 1801)),
])
