//! `signward policy validate|check|test`: the policy engine offline, explaining every rule.

use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;
use signward_policy::{evaluate, Evaluation, Policy, Request};

use crate::cli::PolicyCommand;

/// Read and parse a policy file.
pub fn load(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the policy {}", path.display()))?;
    Policy::from_toml(&text).with_context(|| format!("policy {}", path.display()))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Evaluate one JSON-RPC signing request (`{"method", "params"}`) as the server would, without
/// the spend windows (they need the shared ledger): the signing key and every check.
fn decide(
    p: &Policy,
    req: &serde_json::Value,
    token: Option<&str>,
    now: u64,
) -> anyhow::Result<(String, alloy_primitives::Address, Evaluation)> {
    let method = req["method"]
        .as_str()
        .context("the request has no method")?
        .to_string();
    let params = req["params"].as_array().cloned().unwrap_or_default();
    let addr = |v: Option<&serde_json::Value>| -> anyhow::Result<alloy_primitives::Address> {
        let s = v.and_then(|v| v.as_str()).context("missing address")?;
        signward_policy::parse_address(s).context("not an address")
    };
    let message = |v: Option<&serde_json::Value>| -> anyhow::Result<Vec<u8>> {
        let s = v.and_then(|v| v.as_str()).context("missing message")?;
        // As the server reads it: 0x-hex is bytes, anything else is UTF-8 text.
        Ok(match s.strip_prefix("0x") {
            Some(h) => hex::decode(h).context("the message is 0x but not hex")?,
            None => s.as_bytes().to_vec(),
        })
    };
    let (key, ev) = match method.as_str() {
        "eth_signTransaction" | "eth_sendTransaction" => {
            let mut t = params.first().context("missing transaction")?.clone();
            // eth_sendTransaction has its nonce allocated after the policy: a stand-in here.
            if let Some(o) = t.as_object_mut() {
                o.entry("nonce").or_insert(serde_json::json!("0x0"));
            }
            let (tx, mut intent) = signward_evm::tx::parse(&t)?;
            if let Some(i) = params.get(1).and_then(|x| x.get("intent")) {
                intent = Some(serde_json::from_value(i.clone())?);
            }
            let from = tx.from.context("the transaction has no from")?;
            let ev = evaluate(
                p,
                &from,
                token,
                &Request::Transaction(&tx.facts),
                intent.as_ref(),
                now,
            );
            (from, ev)
        }
        "eth_sign" => {
            let a = addr(params.first())?;
            let m = message(params.get(1))?;
            (
                a,
                evaluate(p, &a, token, &Request::PersonalMessage(&m), None, now),
            )
        }
        "personal_sign" => {
            let a = addr(params.get(1))?;
            let m = message(params.first())?;
            (
                a,
                evaluate(p, &a, token, &Request::PersonalMessage(&m), None, now),
            )
        }
        "eth_signTypedData" | "eth_signTypedData_v4" => {
            let a = addr(params.first())?;
            let t =
                signward_evm::message::parse_typed(params.get(1).context("missing typed data")?)?;
            (
                a,
                evaluate(p, &a, token, &Request::TypedData(t.facts()), None, now),
            )
        }
        other => bail!("{other} is not a signing method"),
    };
    Ok((method, key, ev))
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).context("the request is not JSON")
}

/// A file of example requests with the decisions they must get (`signward policy test`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    /// The time the cases are evaluated at (unix seconds), so deadline rules are reproducible.
    #[serde(default)]
    now: Option<u64>,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    token: Option<String>,
    /// The JSON-RPC request, as a TOML table…
    #[serde(default)]
    request: Option<toml::Value>,
    /// …or as JSON text.
    #[serde(default)]
    request_json: Option<String>,
    /// `allow` or `refuse`.
    expect: String,
    /// With `refuse`: the rule that must refuse it.
    #[serde(default)]
    rule: Option<String>,
}

fn run_cases(p: &Policy, path: &Path) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cases: Cases = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {}",
            path.display(),
            signward_policy::toml_error(&text, &e)
        )
    })?;
    let now = cases.now.unwrap_or_else(now_secs);
    let (mut passed, mut failed) = (0, 0);
    for c in &cases.cases {
        let req = match (&c.request, &c.request_json) {
            (Some(t), None) => serde_json::to_value(t)?,
            (None, Some(j)) => serde_json::from_str(j)
                .with_context(|| format!("case {:?}: request_json is not JSON", c.name))?,
            _ => bail!(
                "case {:?}: give exactly one of request, request_json",
                c.name
            ),
        };
        let want_allow = match c.expect.as_str() {
            "allow" => true,
            "refuse" => false,
            other => bail!(
                "case {:?}: expect is allow or refuse, not {other:?}",
                c.name
            ),
        };
        if want_allow && c.rule.is_some() {
            bail!(
                "case {:?}: a rule is named only with expect = \"refuse\"",
                c.name
            );
        }
        let got = decide(p, &req, c.token.as_deref(), now);
        let (ok, said) = match &got {
            Err(e) => (false, format!("not evaluated: {e:#}")),
            Ok((_, _, ev)) => match ev.refusal() {
                None => (want_allow, "allowed".to_string()),
                Some(r) => (
                    !want_allow && c.rule.as_deref().is_none_or(|w| w == r.rule),
                    format!("refused by {} ({}: {})", r.rule, r.source, r.detail),
                ),
            },
        };
        if ok {
            passed += 1;
            println!("ok    {}: {said}", c.name);
        } else {
            failed += 1;
            let want = match (&c.rule, want_allow) {
                (_, true) => "allow".to_string(),
                (Some(r), false) => format!("refuse by {r}"),
                (None, false) => "refuse".to_string(),
            };
            println!("FAIL  {}: expected {want}, got {said}", c.name);
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
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
        PolicyCommand::Test { policy, cases } => {
            let p = load(&policy)?;
            if !run_cases(&p, &cases)? {
                std::process::exit(1);
            }
            Ok(())
        }
        PolicyCommand::Check {
            policy,
            request,
            token,
            now,
        } => {
            let p = load(&policy)?;
            let req = read_json(&request)?;
            let now = now.unwrap_or_else(now_secs);
            let (method, key, ev) = decide(&p, &req, token.as_deref(), now)?;
            println!(
                "{method} by {key}{}",
                token
                    .as_deref()
                    .map(|t| format!(" as credential {t}"))
                    .unwrap_or_default()
            );
            for c in &ev.checks {
                let verdict = match (c.rule, c.passed) {
                    ("note", _) => "    ",
                    (_, true) => "pass",
                    (_, false) => "FAIL",
                };
                println!("  {verdict}  {:<32} {:<28} {}", c.rule, c.source, c.detail);
            }
            for c in &ev.spend_windows {
                println!(
                    "  ----  spend window {}: charges {} ({}); at most {} and {} transactions per {} s (enforced when signing, against the shared ledger)",
                    c.bucket, c.amount, c.unit, c.window.max_total, c.window.max_count, c.window.window_secs
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
