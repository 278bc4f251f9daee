// ethers 6.17.0, unchanged, with signward as its JSON-RPC provider and signer: a transfer of
// ether, an ERC-20 deployed and transferred, a personal message, EIP-712 typed data and a signed
// (unsent) transaction; every effect checked on the node directly, every signature recovered.
//
//   SIGNWARD_URL=http://127.0.0.1:9000/ SIGNWARD_TOKEN=... NODE_URL=http://127.0.0.1:8545 \
//   ACCOUNT=0x... RECIPIENT=0x... [CHAIN_ID=1337] NODE_PATH=<evm-clients>/node_modules \
//   node tests/evm-clients/ethers_client.cjs
// Prints one JSON line; exits non-zero with the reason on any failure.
"use strict";
const { ethers } = require("ethers");
const { inputs, check, run, token, typedData } = require("./common.cjs");

const C = "ethers";
const env = inputs(C);

run(C, 150, async () => {
  check(C, ethers.version === "6.17.0", `ethers ${ethers.version} is not 6.17.0`);
  // The ordinary way: a FetchRequest carrying the Authorization header, the network detected
  // with eth_chainId, and ethers' default JSON-RPC batching left on.
  const req = new ethers.FetchRequest(env.signwardUrl);
  req.setHeader("Authorization", `Bearer ${env.token}`);
  req.timeout = 30000;
  const provider = new ethers.JsonRpcProvider(req);
  const node = new ethers.JsonRpcProvider(env.nodeUrl, undefined, { staticNetwork: true });

  const network = await provider.getNetwork();
  check(C, network.chainId === BigInt(env.chainId), `eth_chainId said ${network.chainId}, want ${env.chainId}`);
  const signer = await provider.getSigner(env.account); // checks eth_accounts lists it
  check(C, signer.address === env.account, `signer ${signer.address} is not ${env.account}`);

  // Ether: eth_sendTransaction through signward, the receipt, the balance on the node.
  const value = ethers.parseEther("1.5");
  // Balances are read at explicit blocks: ethers answers an identical request from a 250 ms
  // cache, so two reads of "latest" around a fast send would return the same value.
  const startBlock = await node.getBlockNumber();
  const before = await node.getBalance(env.recipient, startBlock);
  const sent = await signer.sendTransaction({ to: env.recipient, value });
  const receipt = await sent.wait(1, 60000);
  check(C, receipt && receipt.status === 1, `transfer ${sent.hash} failed: ${JSON.stringify(receipt)}`);
  check(C, receipt.from === env.account, `transfer came from ${receipt.from}`);
  const after = await node.getBalance(env.recipient, receipt.blockNumber);
  check(C, after - before === value, `recipient got ${after - before} wei, want ${value}`);
  const mined = await node.getTransaction(sent.hash);
  check(C, mined && mined.from === env.account && mined.value === value, `node has ${JSON.stringify(mined)}`);

  // An ERC-20 deployed with ContractFactory, then transferred.
  const { abi, bytecode } = token();
  const supply = ethers.parseUnits("1000000", 18);
  const factory = new ethers.ContractFactory(abi, bytecode, signer);
  const contract = await factory.deploy("Signward Test", "SWT", supply);
  const deployReceipt = await contract.deploymentTransaction().wait(1, 60000);
  check(C, deployReceipt.status === 1 && deployReceipt.contractAddress, "deployment failed");
  await contract.waitForDeployment();
  const tokenAddress = await contract.getAddress();
  const amount = ethers.parseUnits("1234.5", 18);
  const transfer = await contract.transfer(env.recipient, amount);
  const transferReceipt = await transfer.wait(1, 60000);
  check(C, transferReceipt.status === 1, `token transfer ${transfer.hash} failed`);
  const onNode = new ethers.Contract(tokenAddress, abi, node);
  const got = await onNode.balanceOf(env.recipient);
  check(C, got === amount, `token balance of recipient is ${got}, want ${amount}`);
  const left = await onNode.balanceOf(env.account);
  check(C, left === supply - amount, `token balance of account is ${left}`);

  // personal_sign and EIP-712, recovered here.
  const message = "hello";
  const msgSig = await signer.signMessage(message);
  check(C, ethers.verifyMessage(message, msgSig) === env.account, "signMessage does not recover to the account");
  const td = typedData(env.chainId, env.mail);
  const tdSig = await signer.signTypedData(td.domain, td.types, td.message);
  check(
    C,
    ethers.verifyTypedData(td.domain, td.types, td.message, tdSig) === env.account,
    "signTypedData does not recover to the account",
  );

  // eth_signTransaction: ethers returns the result as it is, so it must be the raw hex string.
  const nonce = await node.getTransactionCount(env.account, "pending");
  const unsent = {
    to: env.recipient,
    value: 7n,
    nonce,
    gasLimit: 21000n,
    maxFeePerGas: ethers.parseUnits("30", "gwei"),
    maxPriorityFeePerGas: ethers.parseUnits("1", "gwei"),
    chainId: BigInt(env.chainId),
  };
  const raw = await signer.signTransaction(unsent);
  check(C, typeof raw === "string" && /^0x[0-9a-f]+$/i.test(raw), `eth_signTransaction gave ${JSON.stringify(raw)}, not a raw hex string`);
  const parsed = ethers.Transaction.from(raw);
  check(C, parsed.from === env.account, `signed transaction recovers to ${parsed.from}`);
  check(
    C,
    parsed.type === 2 && parsed.to === env.recipient && parsed.value === 7n && parsed.nonce === nonce &&
      parsed.gasLimit === 21000n && parsed.chainId === BigInt(env.chainId) &&
      parsed.maxFeePerGas === unsent.maxFeePerGas && parsed.maxPriorityFeePerGas === unsent.maxPriorityFeePerGas,
    `signed transaction differs from the request: ${JSON.stringify(parsed.toJSON())}`,
  );

  return {
    version: ethers.version,
    chainId: Number(network.chainId),
    transfer: sent.hash,
    token: tokenAddress,
    deploy: deployReceipt.hash,
    tokenTransfer: transfer.hash,
    signedTransaction: parsed.hash,
  };
});
