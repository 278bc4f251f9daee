//! `signward policy check|validate`: the policy engine offline, explaining every rule.

use std::path::Path;

use anyhow::{bail, Context};
use signward_policy::{evaluate, Policy, Request};

use crate::cli::PolicyCommand;

/// Read and parse a policy file.
pub fn load(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the policy {}", path.display()))?;
    Policy::from_toml(&text).with_context(|| format!("policy {}", path.display()))
}

pub fn run(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Validate { policy } => {
            let p = load(&policy)?;
            println!(
                "policy OK: {} defaults, {} key sections, {} credential sections",
                if p.defaults.is_some() { "with" } else { "no" },
                p.keys.len(),
                p.tokens.len()
            );
            Ok(())
        }
        PolicyCommand::Check {
            policy,
            request,
            token,
        } => {
            let p = load(&policy)?;
            let text = std::fs::read_to_string(&request)
                .with_context(|| format!("reading {}", request.display()))?;
            let req: serde_json::Value =
                serde_json::from_str(&text).context("the request is not JSON")?;
            let method = req["method"]
                .as_str()
                .context("the request has no method")?;
            let params = req["params"].as_array().cloned().unwrap_or_default();
            let addr =
                |v: Option<&serde_json::Value>| -> anyhow::Result<alloy_primitives::Address> {
                    v.and_then(|v| v.as_str())
                        .context("missing address")?
                        .parse()
                        .context("not an address")
                };
            let (key, ev) = match method {
                "eth_signTransaction" => {
                    let (tx, mut intent) =
                        signward_evm::tx::parse(params.first().context("missing transaction")?)?;
                    if let Some(i) = params.get(1).and_then(|x| x.get("intent")) {
                        intent = Some(serde_json::from_value(i.clone())?);
                    }
                    let from = tx.from.context("the transaction has no from")?;
                    (
                        from,
                        evaluate(
                            &p,
                            &from,
                            token.as_deref(),
                            &Request::Transaction(&tx.facts),
                            intent.as_ref(),
                        ),
                    )
                }
                "eth_sign" => {
                    let a = addr(params.first())?;
                    (
                        a,
                        evaluate(&p, &a, token.as_deref(), &Request::PersonalMessage, None),
                    )
                }
                "personal_sign" => {
                    let a = addr(params.get(1))?;
                    (
                        a,
                        evaluate(&p, &a, token.as_deref(), &Request::PersonalMessage, None),
                    )
                }
                "eth_signTypedData" | "eth_signTypedData_v4" => {
                    let a = addr(params.first())?;
                    let t = signward_evm::message::parse_typed(
                        params.get(1).context("missing typed data")?,
                    )?;
                    (
                        a,
                        evaluate(
                            &p,
                            &a,
                            token.as_deref(),
                            &Request::TypedData {
                                chain_id: t.chain_id,
                                verifying_contract: t.verifying_contract,
                                primary_type: t.primary_type(),
                                approval: t.approval,
                            },
                            None,
                        ),
                    )
                }
                other => bail!("{other} is not a signing method"),
            };
            println!(
                "{method} by {key}{}",
                token
                    .as_deref()
                    .map(|t| format!(" as credential {t}"))
                    .unwrap_or_default()
            );
            for c in &ev.checks {
                println!(
                    "  {}  {:<32} {:<28} {}",
                    if c.passed { "pass" } else { "FAIL" },
                    c.rule,
                    c.source,
                    c.detail
                );
            }
            for (bucket, w) in &ev.spend_windows {
                println!(
                    "  ----  spend window {bucket}: at most {} wei and {} transactions per {} s (enforced when signing, against the shared ledger)",
                    w.max_total_wei, w.max_count, w.window_secs
                );
            }
            match ev.refusal() {
                None => {
                    println!("decision: allowed");
                    Ok(())
                }
                Some(c) => {
                    println!("decision: refused ({} from {})", c.rule, c.source);
                    std::process::exit(1);
                }
            }
        }
    }
}
