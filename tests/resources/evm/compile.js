// Compiles the Solidity sources named on the command line with the solc package's bundled compiler
// (no download) and prints {"ContractName": {"abi": [...], "bytecode": "0x...", "methods": {"f(uint256)":
// "selector hex"}}} as JSON on stdout.
// Usage: node compile.js NODE_MODULES_DIR FILE.sol...
"use strict";
const fs = require("fs");
const path = require("path");

const [nodeModules, ...files] = process.argv.slice(2);
const solc = require(path.join(path.resolve(nodeModules), "solc"));

const sources = {};
for (const file of files) {
  sources[path.basename(file)] = { content: fs.readFileSync(file, "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: "cancun",
    optimizer: { enabled: false },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.methodIdentifiers"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) process.stderr.write(e.formattedMessage + "\n");
  process.exit(1);
}
const contracts = {};
for (const file of Object.keys(output.contracts || {})) {
  for (const [name, c] of Object.entries(output.contracts[file])) {
    contracts[name] = { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object, methods: c.evm.methodIdentifiers };
  }
}
process.stdout.write(JSON.stringify(contracts));
