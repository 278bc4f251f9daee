// Regenerate Token.json and Router.json (ABI and creation bytecode) from Token.sol and Router.sol
// with solc-js 0.8.37, pinned in package.json. evmVersion "shanghai" is ganache 7.9.2's default
// hardfork (it has PUSH0, nothing later). Each file is compiled on its own, with the same settings.
// The output is deterministic: running this again must leave both JSON files unchanged.
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

// Compile <name>.sol's contract <name> into <name>.json.
function build(name) {
  const file = `${name}.sol`;
  const input = {
    language: "Solidity",
    sources: { [file]: { content: fs.readFileSync(path.join(__dirname, file), "utf8") } },
    settings: {
      evmVersion: "shanghai",
      optimizer: { enabled: true, runs: 200 },
      // No metadata hash: the bytecode then depends on the source alone, not on file paths.
      metadata: { bytecodeHash: "none" },
      outputSelection: { "*": { [name]: ["abi", "evm.bytecode.object"] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors || []).filter((e) => e.severity === "error");
  for (const e of out.errors || []) console.error(e.formattedMessage);
  if (errors.length) process.exit(1);
  const c = out.contracts[file][name];
  const artifact = {
    contractName: name,
    compiler: solc.version(),
    evmVersion: "shanghai",
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
  };
  fs.writeFileSync(path.join(__dirname, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
  console.log(`${name}.json: ${c.abi.length} ABI entries, ${c.evm.bytecode.object.length / 2} bytes of creation code`);
}

build("Token");
build("Router");
