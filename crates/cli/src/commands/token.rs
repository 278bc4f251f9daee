//! `signward token create|list|revoke`.

use std::collections::BTreeSet;

use anyhow::{bail, Context};
use signward_auth::secret::ServerSecret;
use signward_auth::store::CredentialFile;
use signward_auth::{Cidr, Policy, Scope};
use signward_core::bytes::PublicKeyBytes;
use signward_core::request::MessageType;

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

fn ops(list: &[String]) -> anyhow::Result<BTreeSet<String>> {
    list.iter()
        .map(|o| {
            o.parse::<MessageType>()
                .map(|t| t.as_str().to_string())
                .map_err(|_| anyhow::anyhow!("unknown operation {o:?}"))
        })
        .collect()
}

/// Record a credential event in the audit log (never the token).
fn audit_event(
    data_dir: &std::path::Path,
    name: &str,
    decision: &str,
    detail: Option<String>,
) -> anyhow::Result<()> {
    let record = signward_audit::Record {
        event: "token".into(),
        caller: Some(name.to_string()),
        decision: decision.into(),
        reason: detail,
        ..Default::default()
    };
    super::audit::append_event(data_dir, record)
}

pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            scope,
            keys,
            allow_op,
            deny_op,
            cidr,
            expires,
            cert_sha256,
            data_dir,
        } => {
            super::ensure_private_dir(&data_dir)?;
            let scopes = scope
                .iter()
                .map(|s| s.parse::<Scope>())
                .collect::<Result<_, _>>()?;
            let keys = if keys.is_empty() {
                None
            } else {
                Some(
                    keys.iter()
                        .map(|k| {
                            k.parse::<PublicKeyBytes>()
                                .map_err(|_| anyhow::anyhow!("invalid public key {k:?}"))
                        })
                        .collect::<anyhow::Result<_>>()?,
                )
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let policy = Policy {
                scopes,
                keys,
                allow_ops: if allow_op.is_empty() {
                    None
                } else {
                    Some(ops(&allow_op)?)
                },
                deny_ops: ops(&deny_op)?,
                cidrs: cidr
                    .iter()
                    .map(|c| c.parse::<Cidr>())
                    .collect::<Result<_, _>>()?,
                expires_at: expires
                    .map(|e| parse_duration(&e).map(|d| now + d))
                    .transpose()?,
            };
            let scopes: Vec<String> = policy.scopes.iter().map(|s| s.to_string()).collect();
            if let Some(fp) = cert_sha256 {
                CredentialFile::new(&data_dir).create_cert(&name, &fp, policy)?;
                audit_event(
                    &data_dir,
                    &name,
                    "created",
                    Some(format!("certificate; {}", scopes.join(","))),
                )?;
                eprintln!("created certificate credential {name}");
                return Ok(());
            }
            let secret = ServerSecret::load_or_create(&data_dir.join("server.key"))?;
            let token = CredentialFile::new(&data_dir).create(&secret, &name, policy)?;
            audit_event(&data_dir, &name, "created", Some(scopes.join(",")))?;
            println!("{}", token.0.as_str());
            Ok(())
        }
        TokenCommand::List { data_dir } => {
            for c in CredentialFile::new(&data_dir).list()? {
                println!(
                    "{}",
                    serde_json::json!({"name": c.name, "created_at": c.created_at, "policy": c.policy})
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { name, data_dir } => {
            CredentialFile::new(&data_dir).revoke(&name)?;
            audit_event(&data_dir, &name, "revoked", None)?;
            eprintln!("revoked {name}");
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
