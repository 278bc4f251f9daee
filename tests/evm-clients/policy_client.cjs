// ethers 6.17.0 against signward under policy v2 (docs/policy.md), with ganache behind it:
// tokens A, B and C and the test Router deployed through signward; the router funded with B;
// A approved for the router; a swap A -> B through the router signed, mined and its effect
// checked on the node. Then what the policy must refuse, each with its rule named: an approval
// to another spender, an unlimited approval, a swap whose path leaves the allowlist (A -> C), a
// swap paying someone else, a token transfer above its cap, above its daily window or to a
// stranger, and an EIP-2612
// Permit to an unknown spender (a Permit to the router is signed and recovers). None of the
// refused ones reaches the node: its nonce rises by exactly the allowed transactions.
//
//   SIGNWARD_URL=... SIGNWARD_TOKEN=... NODE_URL=... ACCOUNT=0x... RECIPIENT=0x... \
//   ATTACKER=0x... TOKEN_A=0x... TOKEN_B=0x... TOKEN_C=0x... ROUTER=0x... \
//   NODE_PATH=<evm-clients>/node_modules node tests/evm-clients/policy_client.cjs
// Prints one JSON line; exits non-zero with the reason on any failure.
"use strict";
const fs = require("fs");
const path = require("path");
const { ethers } = require("ethers");
const { inputs, check, fail, run } = require("./common.cjs");

const C = "policy";
const env = inputs(C);
for (const k of ["ATTACKER", "TOKEN_A", "TOKEN_B", "TOKEN_C", "ROUTER"]) {
  if (!process.env[k]) fail(C, `missing environment: ${k}`);
}
const artifact = (name) => JSON.parse(fs.readFileSync(path.join(__dirname, `${name}.json`), "utf8"));

// The refusal must come from signward, name `rule`, and leave the node untouched.
async function refused(what, rule, attempt) {
  try {
    await attempt();
  } catch (e) {
    const text = JSON.stringify(e, (_, v) => (typeof v === "bigint" ? v.toString() : v)) + String(e);
    check(C, text.includes(rule), `${what}: refused, but not by ${rule}: ${text.slice(0, 600)}`);
    return rule;
  }
  fail(C, `${what}: was signed; the policy must refuse it with ${rule}`);
}

run(C, 150, async () => {
  check(C, ethers.version === "6.17.0", `ethers ${ethers.version} is not 6.17.0`);
  const req = new ethers.FetchRequest(env.signwardUrl);
  req.setHeader("Authorization", `Bearer ${env.token}`);
  req.timeout = 30000;
  const provider = new ethers.JsonRpcProvider(req);
  const node = new ethers.JsonRpcProvider(env.nodeUrl, undefined, { staticNetwork: true });
  const signer = await provider.getSigner(env.account);
  const startNonce = await node.getTransactionCount(env.account, "latest");

  const tokenArt = artifact("Token");
  const routerArt = artifact("Router");
  const SUPPLY = ethers.parseEther("1000");
  const AMOUNT = ethers.parseEther("10");
  const mined = async (p, what) => {
    const tx = await p;
    const r = await tx.wait(1, 60000);
    check(C, r && r.status === 1, `${what} ${tx.hash} failed`);
    return r;
  };
  const deploy = async (art, args, want, what) => {
    const c = await new ethers.ContractFactory(art.abi, art.bytecode, signer).deploy(...args);
    await mined(Promise.resolve(c.deploymentTransaction()), `deploying ${what}`);
    const at = await c.getAddress();
    check(C, at.toLowerCase() === want.toLowerCase(), `${what} deployed at ${at}, the policy names ${want}`);
    return c;
  };
  // In this order: the policy names the addresses these deployments get.
  const a = await deploy(tokenArt, ["Token A", "TKA", SUPPLY], process.env.TOKEN_A, "token A");
  const b = await deploy(tokenArt, ["Token B", "TKB", SUPPLY], process.env.TOKEN_B, "token B");
  await deploy(tokenArt, ["Token C", "TKC", SUPPLY], process.env.TOKEN_C, "token C");
  const router = await deploy(routerArt, [], process.env.ROUTER, "the router");
  const [A, B, CC, R] = [process.env.TOKEN_A, process.env.TOKEN_B, process.env.TOKEN_C, process.env.ROUTER];

  // Allowed: fund the router with B, approve it for A (bounded), swap A -> B to ourselves.
  await mined(b.transfer(R, ethers.parseEther("500")), "funding the router");
  await mined(a.approve(R, AMOUNT), "approving the router");
  const deadline = Math.floor(Date.now() / 1000) + 300;
  const onNodeB = new ethers.Contract(B, tokenArt.abi, node);
  const before = await onNodeB.balanceOf(env.account);
  const swap = await mined(router.swapExactTokensForTokens(AMOUNT, AMOUNT, [A, B], env.account, deadline), "the swap");
  const after = await onNodeB.balanceOf(env.account, { blockTag: swap.blockNumber });
  check(C, after - before === AMOUNT, `the swap paid ${after - before} B, want ${AMOUNT}`);
  // A payout at the token's per-transaction cap (100 A) to the treasury: inside its daily
  // window (150 A), so signed and mined.
  const onNodeA = new ethers.Contract(A, tokenArt.abi, node);
  const payout = await mined(a.transfer(env.recipient, ethers.parseEther("100")), "the payout");
  const paid = await onNodeA.balanceOf(env.recipient, { blockTag: payout.blockNumber });
  check(C, paid === ethers.parseEther("100"), `the treasury holds ${paid} A`);
  const allowedNonce = await node.getTransactionCount(env.account, "latest");
  check(C, allowedNonce === startNonce + 8, `node nonce ${allowedNonce}, want ${startNonce + 8}`);

  // Refused, each by its rule. A fixed gas limit: ethers would otherwise ask the node to
  // estimate first, and a swap the chain would revert never reaches signward's policy.
  const gas = { gasLimit: 300000 };
  const rules = [];
  rules.push(await refused("approve another spender", "approval_spender_not_allowed", () => a.approve(process.env.ATTACKER, 1n, gas)));
  rules.push(await refused("unlimited approval", "approval_too_high", () => a.approve(R, ethers.MaxUint256, gas)));
  rules.push(
    await refused("a swap whose path leaves the allowlist", "argument_not_allowed", () =>
      router.swapExactTokensForTokens(AMOUNT, 0n, [A, CC], env.account, deadline, gas),
    ),
  );
  rules.push(
    await refused("a swap paying someone else", "argument_not_allowed", () =>
      router.swapExactTokensForTokens(AMOUNT, 0n, [A, B], process.env.ATTACKER, deadline, gas),
    ),
  );
  rules.push(
    await refused("a token transfer above its cap", "token_amount_too_high", () =>
      a.transfer(env.recipient, ethers.parseEther("100") + 1n, gas),
    ),
  );
  rules.push(await refused("a token transfer to a stranger", "token_recipient_not_allowed", () => a.transfer(process.env.ATTACKER, 1n, gas)));
  // Another 51 A within the day would exceed the 150 A window (50 more still fits, below).
  rules.push(
    await refused("a token transfer above the daily window", "spend_window_value_exceeded", () =>
      a.transfer(env.recipient, ethers.parseEther("51"), gas),
    ),
  );

  // EIP-2612 Permit: signed for the router within bounds, refused for anyone else.
  const domain = { name: "Token A", version: "1", chainId: env.chainId, verifyingContract: A };
  const types = {
    Permit: [
      { name: "owner", type: "address" },
      { name: "spender", type: "address" },
      { name: "value", type: "uint256" },
      { name: "nonce", type: "uint256" },
      { name: "deadline", type: "uint256" },
    ],
  };
  const permit = (spender) => ({ owner: env.account, spender, value: AMOUNT, nonce: 0, deadline });
  const sig = await signer.signTypedData(domain, types, permit(R));
  check(C, ethers.verifyTypedData(domain, types, permit(R), sig) === env.account, "the Permit does not recover");
  rules.push(
    await refused("a Permit to an unknown spender", "permit_spender_not_allowed", () =>
      signer.signTypedData(domain, types, permit(process.env.ATTACKER)),
    ),
  );

  const endNonce = await node.getTransactionCount(env.account, "pending");
  check(C, endNonce === allowedNonce, `a refused transaction reached the node (nonce ${endNonce})`);
  return { version: ethers.version, swap: swap.hash, refused: rules };
});
