// Regenerate Token.json (ABI and creation bytecode) from Token.sol with solc-js 0.8.37, pinned in
// package.json. evmVersion "shanghai" is ganache 7.9.2's default hardfork (it has PUSH0, nothing
// later). The output is deterministic: running this again must leave Token.json unchanged.
//
//   DIR=$(scripts/ensure-evm-clients.sh)
//   NODE_PATH=$DIR/node_modules node tests/evm-clients/compile.cjs
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const WANT = "0.8.37";
if (!solc.version().startsWith(WANT + "+")) {
  console.error(`compile.cjs: solc ${solc.version()} is not ${WANT}`);
  process.exit(1);
}
const src = path.join(__dirname, "Token.sol");
const input = {
  language: "Solidity",
  sources: { "Token.sol": { content: fs.readFileSync(src, "utf8") } },
  settings: {
    evmVersion: "shanghai",
    optimizer: { enabled: true, runs: 200 },
    // No metadata hash: the bytecode then depends on the source alone, not on file paths.
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { Token: ["abi", "evm.bytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === "error");
for (const e of out.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);
const c = out.contracts["Token.sol"].Token;
const artifact = {
  contractName: "Token",
  compiler: solc.version(),
  evmVersion: "shanghai",
  abi: c.abi,
  bytecode: "0x" + c.evm.bytecode.object,
};
fs.writeFileSync(path.join(__dirname, "Token.json"), JSON.stringify(artifact, null, 2) + "\n");
console.log(`Token.json: ${c.abi.length} ABI entries, ${c.evm.bytecode.object.length / 2} bytes of creation code`);
