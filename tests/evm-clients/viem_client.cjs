// viem 2.57.20, unchanged, with signward as the transport of a wallet client whose account is a
// JSON-RPC account (the address alone: the server holds the key) and of a public client (reads
// forwarded by signward to its node): a transfer of ether, an ERC-20 deployed and transferred,
// a signed (unsent) transaction, a personal message and EIP-712 typed data; every effect checked
// on the node directly, every signature recovered.
//
//   SIGNWARD_URL=http://127.0.0.1:9000/ SIGNWARD_TOKEN=... NODE_URL=http://127.0.0.1:8545 \
//   ACCOUNT=0x... RECIPIENT=0x... [CHAIN_ID=1337] NODE_PATH=<evm-clients>/node_modules \
//   node tests/evm-clients/viem_client.cjs
// Prints one JSON line; exits non-zero with the reason on any failure.
"use strict";
const viem = require("viem");
const { inputs, check, run, token, typedData } = require("./common.cjs");

const C = "viem";
const env = inputs(C);
const {
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  parseEther,
  parseGwei,
  parseUnits,
  parseTransaction,
  recoverTransactionAddress,
  verifyMessage,
  verifyTypedData,
  getAddress,
} = viem;

run(C, 150, async () => {
  const version = require("fs").readFileSync(require.resolve("viem").replace(/_cjs[\\/].*$/, "package.json"), "utf8");
  check(C, JSON.parse(version).version === "2.57.20", `viem ${JSON.parse(version).version} is not 2.57.20`);
  const chain = defineChain({
    id: env.chainId,
    name: "signward test chain",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [env.signwardUrl] } },
  });
  const transport = http(env.signwardUrl, {
    fetchOptions: { headers: { Authorization: `Bearer ${env.token}` } },
    timeout: 30000,
    retryCount: 0,
  });
  const wallet = createWalletClient({ account: env.account, chain, transport });
  const reader = createPublicClient({ chain, transport, pollingInterval: 250 });
  const node = createPublicClient({ chain, transport: http(env.nodeUrl, { retryCount: 0 }) });

  check(C, wallet.account.type === "json-rpc", `account type ${wallet.account.type}`);
  const chainId = await reader.getChainId();
  check(C, chainId === env.chainId, `eth_chainId said ${chainId}, want ${env.chainId}`);
  const addresses = await wallet.getAddresses();
  check(C, addresses.map(getAddress).includes(env.account), `eth_accounts lacks the account: ${addresses}`);

  // Ether: eth_sendTransaction through signward, the receipt through signward, the balance on
  // the node.
  const value = parseEther("2.25");
  const before = await node.getBalance({ address: env.recipient });
  const hash = await wallet.sendTransaction({ to: env.recipient, value });
  const receipt = await reader.waitForTransactionReceipt({ hash, timeout: 60000 });
  check(C, receipt.status === "success", `transfer ${hash} failed: ${receipt.status}`);
  check(C, getAddress(receipt.from) === env.account, `transfer came from ${receipt.from}`);
  const after = await node.getBalance({ address: env.recipient });
  check(C, after - before === value, `recipient got ${after - before} wei, want ${value}`);

  // An ERC-20 deployed, then transferred with writeContract.
  const { abi, bytecode } = token();
  const supply = parseUnits("1000000", 18);
  const deployHash = await wallet.deployContract({ abi, bytecode, args: ["Signward Viem", "SWV", supply] });
  const deployed = await reader.waitForTransactionReceipt({ hash: deployHash, timeout: 60000 });
  check(C, deployed.status === "success" && deployed.contractAddress, `deployment ${deployHash} failed`);
  const tokenAddress = getAddress(deployed.contractAddress);
  const code = await node.getCode({ address: tokenAddress });
  check(C, code && code.length > 2, "no code at the token's address");
  const amount = parseUnits("77.7", 18);
  const transferHash = await wallet.writeContract({
    address: tokenAddress,
    abi,
    functionName: "transfer",
    args: [env.recipient, amount],
  });
  const transferred = await reader.waitForTransactionReceipt({ hash: transferHash, timeout: 60000 });
  check(C, transferred.status === "success", `token transfer ${transferHash} failed`);
  const got = await node.readContract({ address: tokenAddress, abi, functionName: "balanceOf", args: [env.recipient] });
  check(C, got === amount, `token balance of recipient is ${got}, want ${amount}`);
  const viaSignward = await reader.readContract({ address: tokenAddress, abi, functionName: "balanceOf", args: [env.account] });
  check(C, viaSignward === supply - amount, `eth_call through signward says ${viaSignward}`);

  // eth_signTransaction with every field given: viem returns the result as it is, so it must be
  // the raw hex string; recovered and parsed here.
  const nonce = await node.getTransactionCount({ address: env.account, blockTag: "pending" });
  const request = {
    to: env.recipient,
    value: 9n,
    nonce,
    gas: 21000n,
    maxFeePerGas: parseGwei("30"),
    maxPriorityFeePerGas: parseGwei("1"),
    chainId: env.chainId,
    type: "eip1559",
  };
  const raw = await wallet.signTransaction(request);
  check(C, typeof raw === "string" && /^0x[0-9a-f]+$/i.test(raw), `eth_signTransaction gave ${JSON.stringify(raw)}, not a raw hex string`);
  const signer = await recoverTransactionAddress({ serializedTransaction: raw });
  check(C, signer === env.account, `signed transaction recovers to ${signer}`);
  const parsed = parseTransaction(raw);
  check(
    C,
    parsed.type === "eip1559" && getAddress(parsed.to) === env.recipient && parsed.value === 9n &&
      parsed.nonce === nonce && parsed.gas === 21000n && parsed.chainId === env.chainId &&
      parsed.maxFeePerGas === request.maxFeePerGas && parsed.maxPriorityFeePerGas === request.maxPriorityFeePerGas,
    `signed transaction differs from the request: ${JSON.stringify(parsed, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`,
  );

  // personal_sign and EIP-712, verified here.
  const message = "hello from viem";
  const msgSig = await wallet.signMessage({ message });
  check(C, await verifyMessage({ address: env.account, message, signature: msgSig }), "signMessage does not verify");
  const td = typedData(env.chainId, env.mail);
  const tdSig = await wallet.signTypedData(td);
  check(C, await verifyTypedData({ address: env.account, ...td, signature: tdSig }), "signTypedData does not verify");

  return {
    version: JSON.parse(version).version,
    chainId,
    transfer: hash,
    token: tokenAddress,
    deploy: deployHash,
    tokenTransfer: transferHash,
    signedTransaction: viem.keccak256(raw),
  };
});
