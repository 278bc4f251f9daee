//! The EVM node behind signward (`--evm-upstream-url`): which reads are forwarded to it, the
//! chain it serves, and what `eth_sendTransaction` asks of it (chain id, gas, fees, the pending
//! nonce, submission). Every answer of the node is treated as untrusted input: numbers are
//! parsed and bounded, and nothing it says can widen what the policy allows, because the policy
//! decides on the transaction as filled, after the node has spoken.

use std::collections::BTreeSet;

use serde_json::{json, Value};
pub use signward_node::{Node, NodeConfig, NodeError};

/// How long an allocated nonce may go without news before it is handed out again
/// (`signward_evm::nonces::STALE_MS`).
pub const NONCE_STALE_MS: i64 = signward_evm::nonces::STALE_MS;

/// The reads forwarded by default: state and chain queries that sign nothing and cost the
/// caller nothing. `eth_sendRawTransaction` is not among them (it relays what was signed
/// elsewhere); an operator may add it.
pub const DEFAULT_FORWARD: [&str; 20] = [
    "eth_blockNumber",
    "eth_getBalance",
    "eth_call",
    "eth_estimateGas",
    "eth_getTransactionReceipt",
    "eth_getTransactionByHash",
    "eth_getTransactionCount",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_feeHistory",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_getLogs",
    "eth_syncing",
    "net_version",
    "web3_clientVersion",
    "eth_blobBaseFee",
    "eth_getProof",
];

/// The node and what may be forwarded to it.
pub struct Upstream {
    node: Node,
    forward: BTreeSet<String>,
    /// The chain the operator said this node serves (`CHAIN_ID=URL`), if they did.
    declared: Option<u64>,
    /// The chain id the node reported, once it has.
    chain: tokio::sync::OnceCell<u64>,
}

impl Upstream {
    /// The node `node` for chain `declared` (when the operator named one), forwarding
    /// `forward` (method names).
    pub fn new(
        node: Node,
        declared: Option<u64>,
        forward: impl IntoIterator<Item = String>,
    ) -> Self {
        Upstream {
            node,
            forward: forward.into_iter().collect(),
            declared,
            chain: tokio::sync::OnceCell::new(),
        }
    }

    /// The chain the operator declared for this node.
    pub fn declared(&self) -> Option<u64> {
        self.declared
    }

    /// The node's client.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Whether `method` is forwarded; returns our own copy of the name so that only configured
    /// names ever reach a log or a metric.
    pub fn forwarded(&self, method: &str) -> Option<&str> {
        self.forward.get(method).map(String::as_str)
    }

    /// The node's chain id (asked once, then remembered). A node that serves another chain
    /// than the one declared for it is refused.
    pub async fn chain_id(&self) -> Result<u64, NodeError> {
        self.chain
            .get_or_try_init(|| async {
                let id = self.node.quantity("eth_chainId", json!([])).await?;
                let id =
                    u64::try_from(id).map_err(|_| NodeError::BadAnswer("chain id out of range"))?;
                match self.declared {
                    Some(d) if d != id => Err(NodeError::BadAnswer(
                        "the node serves another chain than the one declared for it",
                    )),
                    _ => Ok(id),
                }
            })
            .await
            .copied()
    }

    /// `from`'s pending nonce.
    pub async fn pending_nonce(&self, from: &str) -> Result<u64, NodeError> {
        let n = self
            .node
            .quantity("eth_getTransactionCount", json!([from, "pending"]))
            .await?;
        u64::try_from(n)
            .ok()
            .filter(|n| *n <= signward_evm::nonces::MAX_NODE_NONCE)
            .ok_or(NodeError::BadAnswer("pending nonce out of range"))
    }

    /// Fill what the caller left out of `tx` (a JSON-RPC transaction object): the chain id,
    /// the gas limit (`eth_estimateGas`) and the fees (EIP-1559 when the node reports a base
    /// fee: `maxFeePerGas = 2 × baseFee + tip`; `gasPrice` otherwise). The nonce is not
    /// filled here: it is allocated durably after the policy has passed.
    pub async fn fill(&self, tx: &mut serde_json::Map<String, Value>) -> Result<(), NodeError> {
        let chain = self.chain_id().await?;
        tx.entry("chainId")
            .or_insert_with(|| json!(format!("{chain:#x}")));
        if !tx.contains_key("gas") && !tx.contains_key("gasLimit") {
            let mut probe = serde_json::Map::new();
            for k in ["from", "to", "data", "input", "accessList"] {
                if let Some(v) = tx.get(k) {
                    probe.insert(k.into(), v.clone());
                }
            }
            // A value as the caller may give it (decimal, a JSON number), as nodes take it.
            if let Some(v) = tx.get("value").and_then(signward_evm::tx::quantity_u256) {
                probe.insert("value".into(), json!(format!("{v:#x}")));
            }
            let gas = self
                .node
                .quantity("eth_estimateGas", json!([Value::Object(probe)]))
                .await?;
            // The policy's max_gas decides on the value; one beyond 64 bits is the node's error.
            let gas = u64::try_from(gas).map_err(|_| NodeError::BadAnswer("gas out of range"))?;
            tx.insert("gas".into(), json!(format!("{gas:#x}")));
        }
        let legacy = tx.contains_key("gasPrice")
            || matches!(tx.get("type").and_then(Value::as_str), Some("0x0" | "0x1"));
        let has_1559 = tx.contains_key("maxFeePerGas") || tx.contains_key("maxPriorityFeePerGas");
        if legacy {
            if !tx.contains_key("gasPrice") {
                let gp = self.node.quantity("eth_gasPrice", json!([])).await?;
                tx.insert("gasPrice".into(), json!(format!("{gp:#x}")));
            }
            return Ok(());
        }
        let block = self
            .node
            .call("eth_getBlockByNumber", json!(["latest", false]))
            .await?;
        // No base fee (a chain before London) is a legacy chain; a base fee that is present but
        // unreadable is the node's error, never a reason to fall back to legacy fees.
        let base = match block.get("baseFeePerGas") {
            None | Some(Value::Null) => None,
            Some(b) => Some(
                signward_node::parse_quantity(b)
                    .ok_or(NodeError::BadAnswer("unreadable base fee"))?,
            ),
        };
        let Some(base) = base else {
            if has_1559 {
                return Err(NodeError::BadAnswer(
                    "the node reports no base fee, so EIP-1559 fees cannot be filled",
                ));
            }
            let gp = self.node.quantity("eth_gasPrice", json!([])).await?;
            tx.insert("gasPrice".into(), json!(format!("{gp:#x}")));
            return Ok(());
        };
        let given = |k: &str| tx.get(k).and_then(|v| signward_evm::tx::quantity(v).ok());
        let tip = match given("maxPriorityFeePerGas") {
            Some(t) => t,
            None => self
                .node
                .quantity("eth_maxPriorityFeePerGas", json!([]))
                .await
                .unwrap_or(1_000_000_000),
        };
        let max_fee = match given("maxFeePerGas") {
            Some(m) => m,
            None => base.saturating_mul(2).saturating_add(tip),
        };
        let tip = tip.min(max_fee);
        tx.insert("maxFeePerGas".into(), json!(format!("{max_fee:#x}")));
        tx.insert("maxPriorityFeePerGas".into(), json!(format!("{tip:#x}")));
        Ok(())
    }

    /// Submit a signed transaction; the node's hash for it.
    pub async fn submit(&self, raw: &[u8]) -> Result<String, NodeError> {
        let v = self
            .node
            .call(
                "eth_sendRawTransaction",
                json!([format!("0x{}", hex::encode(raw))]),
            )
            .await?;
        v.as_str()
            .filter(|h| h.len() == 66 && h.starts_with("0x"))
            .map(str::to_owned)
            .ok_or(NodeError::BadAnswer("not a transaction hash"))
    }
}
