//! `signward token create|list|revoke`.

use signward_os::DataDir;
use std::collections::BTreeSet;

use anyhow::{bail, Context};
use signward_auth::secret::ServerSecret;
use signward_auth::store::CredentialFile;
use signward_auth::{parse_operations, Cidr, EvmKeys, Operation, Policy, Scope};
use signward_core::bytes::PublicKeyBytes;

use crate::cli::TokenCommand;

/// Parse `90d`, `12h`, `30m`, `45s` into seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = n
        .parse()
        .with_context(|| format!("invalid duration {s:?}"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("invalid duration {s:?}: use a number with s, m, h or d"),
    };
    n.checked_mul(mult).context("duration too long")
}

/// Split `--keys` into BLS public keys and EVM addresses (`evm:*`: every EVM key).
fn split_keys(list: &[String]) -> anyhow::Result<(Option<BTreeSet<PublicKeyBytes>>, EvmKeys)> {
    let mut bls = BTreeSet::new();
    let mut evm = BTreeSet::new();
    let mut all_evm = false;
    for k in list {
        let k = k.trim();
        if k == "evm:*" {
            all_evm = true;
        } else if let Ok(pk) = k.parse::<PublicKeyBytes>() {
            bls.insert(pk);
        } else if k.trim_start_matches("0x").len() == 40 {
            evm.insert(signward_auth::parse_address(k)?);
        } else {
            bail!("--keys {k:?} is neither a 48-byte BLS public key nor a 20-byte EVM address");
        }
    }
    let evm_keys = match (all_evm, evm.is_empty()) {
        (true, true) => EvmKeys::All,
        (true, false) => bail!("--keys: evm:* together with EVM addresses is ambiguous"),
        (false, true) => EvmKeys::None,
        (false, false) => EvmKeys::Only(evm),
    };
    Ok(((!bls.is_empty()).then_some(bls), evm_keys))
}

/// Record a credential event in the audit log (never the token).
fn audit_event(
    data_dir: &std::path::Path,
    name: &str,
    decision: signward_audit::Outcome,
    detail: Option<String>,
) -> anyhow::Result<()> {
    let record = signward_audit::Record {
        event: signward_audit::Event::Token.into(),
        caller: Some(name.to_string()),
        decision: decision.into(),
        reason: detail,
        ..Default::default()
    };
    super::audit::append_event(data_dir, record)
}

fn credential_kind(c: &signward_auth::store::Credential) -> &'static str {
    if c.source_bound {
        "source"
    } else if c.cert_sha256.is_some() {
        "certificate"
    } else {
        "token"
    }
}

pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            scope,
            keys,
            allow_op,
            deny_op,
            fee_recipient,
            cidr,
            expires,
            cert_sha256,
            source,
            evm_tx_result,
            data_dir,
        } => {
            let source_bound = !source.is_empty();
            let cidr = if source_bound { source } else { cidr };
            super::ensure_private_dir(&data_dir)?;
            let scopes = scope
                .iter()
                .map(|s| s.parse::<Scope>())
                .collect::<Result<_, _>>()?;
            let (keys, evm_keys) = split_keys(&keys)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let policy = Policy {
                scopes,
                keys,
                evm_keys,
                allow_ops: if allow_op.is_empty() {
                    None
                } else {
                    Some(parse_operations(&allow_op)?)
                },
                deny_ops: parse_operations(&deny_op)?,
                fee_recipients: if fee_recipient.is_empty() {
                    None
                } else {
                    Some(
                        fee_recipient
                            .iter()
                            .map(|a| signward_auth::parse_address(a))
                            .collect::<Result<_, _>>()?,
                    )
                },
                cidrs: cidr
                    .iter()
                    .map(|c| c.parse::<Cidr>())
                    .collect::<Result<_, _>>()?,
                expires_at: expires
                    .map(|e| parse_duration(&e).map(|d| now + d))
                    .transpose()?,
                evm_tx_result: evm_tx_result.parse()?,
            };
            if policy.scopes.contains(&Scope::Evm) {
                if policy.evm_keys.is_none() {
                    bail!("an evm credential must name its EVM keys: --keys 0xADDRESS,... (or evm:* for every EVM key)");
                }
                if !signward_auth::authorizer::grants_any(
                    &policy,
                    Operation::ALL.iter().copied().filter(Operation::is_evm),
                ) {
                    bail!("an evm credential must name the EVM methods it may call: --allow-op eth_signTransaction,eth_sign,eth_signTypedData (any of them)");
                }
            }
            let scopes: Vec<String> = policy.scopes.iter().map(|s| s.to_string()).collect();
            if let Some(fp) = cert_sha256 {
                CredentialFile::new(&data_dir).create_cert(&name, &fp, policy)?;
                audit_event(
                    &data_dir,
                    &name,
                    signward_audit::Outcome::Created,
                    Some(format!("certificate; {}", scopes.join(","))),
                )?;
                eprintln!("created certificate credential {name}");
                return Ok(());
            }
            if source_bound {
                let ranges: Vec<String> = policy.cidrs.iter().map(|c| c.to_string()).collect();
                CredentialFile::new(&data_dir).create_source(&name, policy)?;
                audit_event(
                    &data_dir,
                    &name,
                    signward_audit::Outcome::Created,
                    Some(format!("source {}; {}", ranges.join(","), scopes.join(","))),
                )?;
                eprintln!(
                    "created source credential {name}: requests without a credential from {} act as {name}",
                    ranges.join(", ")
                );
                return Ok(());
            }
            let secret = ServerSecret::load_or_create(&DataDir::new(&data_dir).server_key())?;
            let token = CredentialFile::new(&data_dir).create(&secret, &name, policy)?;
            audit_event(
                &data_dir,
                &name,
                signward_audit::Outcome::Created,
                Some(scopes.join(",")),
            )?;
            println!("{}", token.0.as_str());
            Ok(())
        }
        TokenCommand::List { data_dir } => {
            for c in CredentialFile::new(&data_dir).list()? {
                println!(
                    "{}",
                    serde_json::json!({"name": c.name, "kind": credential_kind(&c), "created_at": c.created_at, "policy": c.policy, "suspended": c.suspended.map(|s| serde_json::json!({"at": s.at, "reason": s.reason}))})
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { name, data_dir } => {
            CredentialFile::new(&data_dir).revoke(&name)?;
            audit_event(&data_dir, &name, signward_audit::Outcome::Revoked, None)?;
            eprintln!("revoked {name}");
            Ok(())
        }
        TokenCommand::Reinstate { name, data_dir } => {
            if CredentialFile::new(&data_dir).set_suspended(&name, None)? {
                audit_event(&data_dir, &name, signward_audit::Outcome::Reinstated, None)?;
                eprintln!("reinstated {name}; a running server accepts it again within a second");
            } else {
                eprintln!("{name} was not suspended");
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d").unwrap(), 90 * 86_400);
        assert_eq!(parse_duration("45s").unwrap(), 45);
        assert!(parse_duration("10w").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("").is_err());
    }
}
