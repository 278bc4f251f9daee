// What every client script of this directory shares: its inputs from the environment, the test
// token's artifact, the EIP-712 message it signs, and how it fails.
"use strict";
const fs = require("fs");
const path = require("path");

// The caller's environment: signward's JSON-RPC URL and bearer token, the node (ganache) URL used
// only to check effects independently, the signer's checksummed address, a recipient, the chain.
function inputs(client) {
  const need = ["SIGNWARD_URL", "SIGNWARD_TOKEN", "NODE_URL", "ACCOUNT", "RECIPIENT"];
  const missing = need.filter((k) => !process.env[k]);
  if (missing.length) fail(client, `missing environment: ${missing.join(", ")}`);
  return {
    signwardUrl: process.env.SIGNWARD_URL,
    token: process.env.SIGNWARD_TOKEN,
    nodeUrl: process.env.NODE_URL,
    account: process.env.ACCOUNT,
    recipient: process.env.RECIPIENT,
    chainId: Number(process.env.CHAIN_ID || "1337"),
    // EIP-712's verifying contract (the policy lists it with chain id and primary type Mail).
    mail: process.env.TYPED_DATA_CONTRACT || "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
  };
}

function fail(client, msg) {
  console.error(`${client}: FAILED: ${msg}`);
  process.exit(1);
}

function check(client, cond, msg) {
  if (!cond) fail(client, msg);
}

// A hang fails fast: the whole script has `secs` seconds.
function watchdog(client, secs) {
  setTimeout(() => fail(client, `did not finish within ${secs} s`), secs * 1000).unref();
}

// What a failed call said, with the JSON-RPC error when the library kept it.
function describe(e) {
  const parts = [e && e.stack ? e.stack : String(e)];
  for (const k of ["info", "error", "payload", "cause", "details"]) {
    if (e && e[k] !== undefined) {
      try {
        parts.push(`${k}: ${JSON.stringify(e[k], (_, v) => (typeof v === "bigint" ? v.toString() : v))}`);
      } catch (_) {
        parts.push(`${k}: ${String(e[k])}`);
      }
    }
  }
  return parts.join("\n");
}

function run(client, secs, main) {
  watchdog(client, secs);
  main().then(
    (out) => {
      console.log(JSON.stringify({ client, ok: true, ...out }, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
      process.exit(0);
    },
    (e) => fail(client, describe(e)),
  );
}

function token() {
  const t = JSON.parse(fs.readFileSync(path.join(__dirname, "Token.json"), "utf8"));
  return { abi: t.abi, bytecode: t.bytecode };
}

// EIP-712 Mail (the example of the EIP) under a domain on the test chain.
function typedData(chainId, mail) {
  return {
    domain: { name: "Ether Mail", version: "1", chainId, verifyingContract: mail },
    types: {
      Person: [
        { name: "name", type: "string" },
        { name: "wallet", type: "address" },
      ],
      Mail: [
        { name: "from", type: "Person" },
        { name: "to", type: "Person" },
        { name: "contents", type: "string" },
      ],
    },
    primaryType: "Mail",
    message: {
      from: { name: "Cow", wallet: "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" },
      to: { name: "Bob", wallet: "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB" },
      contents: "Hello, Bob!",
    },
  };
}

module.exports = { inputs, fail, check, run, token, typedData };
