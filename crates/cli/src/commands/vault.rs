//! `signward init | unseal | seal | status | rekey | rotate`: the vault ceremonies.

use signward_os::DataDir;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};
use signward_vault::share::{self, KdfCost, Protection};
use signward_vault::{SharePayload, VaultError, VaultStore};
use zeroize::Zeroizing;

use super::client::{read_secret, AdminClient};
use crate::cli::{
    CeremonyArgs, ClientArgs, InitArgs, ShareInput, ShareOutput, SlashingDbArgs, UnsealArgs,
};

/// Shortest passphrase accepted for a new share file.
const MIN_PASSPHRASE_CHARS: usize = 12;

/// The vault lives beside the slashing database: in the same PostgreSQL database when that is
/// shared, else in `<data-dir>/vault.sqlite`.
pub fn vault_url(slashing: &SlashingDbArgs, data_dir: &Path) -> anyhow::Result<String> {
    let url = super::slashing::db_url(slashing, data_dir)?;
    Ok(signward_engine::stores::vault_url(
        &url,
        &DataDir::new(data_dir),
    )?)
}

fn prompt(label: &str) -> anyhow::Result<SecretString> {
    let p = rpassword::prompt_password(label).context("reading a passphrase from the terminal")?;
    Ok(SecretString::from(p))
}

fn passphrase_from(src: &str, label: &str, confirm: bool) -> anyhow::Result<SecretString> {
    if src == "prompt" {
        let first = prompt(&format!("{label}: "))?;
        if confirm {
            let again = prompt(&format!("{label} (again): "))?;
            if first.expose_secret() != again.expose_secret() {
                bail!("the passphrases differ");
            }
        }
        return Ok(first);
    }
    let s = read_secret(src, label)?;
    Ok(SecretString::from(s.as_str()))
}

/// One protection per new share, from `--share-to`.
fn protections(out: &ShareOutput) -> anyhow::Result<Vec<Protection>> {
    let specs: Vec<String> = if out.share_to.is_empty() {
        vec!["passphrase:prompt".to_string(); out.shares as usize]
    } else {
        out.share_to.clone()
    };
    if specs.len() != out.shares as usize {
        bail!(
            "--share-to given {} times for {} shares: name one protection per share",
            specs.len(),
            out.shares
        );
    }
    let mut v = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        if spec.starts_with("age1") {
            v.push(Protection::age(spec)?);
        } else if let Some(src) = spec.strip_prefix("passphrase:") {
            let p = passphrase_from(src, &format!("passphrase for share {}", i + 1), true)?;
            if p.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
                bail!(
                    "the passphrase for share {} is shorter than {MIN_PASSPHRASE_CHARS} characters",
                    i + 1
                );
            }
            v.push(Protection::Passphrase(p));
        } else {
            bail!("--share-to must be an age recipient (age1…) or passphrase:file:PATH, passphrase:env:VAR, passphrase:prompt");
        }
    }
    Ok(v)
}

fn persist(
    out: &ShareOutput,
    protections: &[Protection],
    shares: &[SharePayload],
) -> Result<(), VaultError> {
    let cost = KdfCost {
        memory_kib: out.kdf_memory_kib,
        ..KdfCost::default()
    };
    let paths = share::write_share_files(&out.out, shares, protections, cost)?;
    for p in paths {
        println!("{}", p.display());
    }
    Ok(())
}

/// Open share files: age ones with the identities, passphrase ones with `--passphrase` sources
/// in order (prompting when they run out).
pub fn read_shares(paths: &[PathBuf], input: &ShareInput) -> anyhow::Result<Vec<SharePayload>> {
    let mut identities = Vec::new();
    for id in &input.identity {
        identities.extend(
            share::read_identities(id).with_context(|| format!("age identity {}", id.display()))?,
        );
    }
    let mut sources = input.passphrase.iter();
    let mut out = Vec::new();
    for path in paths {
        let p = share::open_file(
            path,
            || {
                let label = format!("passphrase for {}", path.display());
                passphrase_from(
                    sources.next().map(String::as_str).unwrap_or("prompt"),
                    &label,
                    false,
                )
                .map_err(|e| VaultError::InvalidParameters(e.to_string()))
            },
            (!identities.is_empty()).then_some(&identities[..]),
        )
        .with_context(|| format!("share file {}", path.display()))?;
        out.push(p);
    }
    Ok(out)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn init(args: InitArgs) -> anyhow::Result<()> {
    signward_vault::master::check_parameters(args.output.threshold, args.output.shares)?;
    let prots = protections(&args.output)?;
    let url = vault_url(&args.slashing, &args.data_dir)?;
    runtime()?.block_on(async {
        let store = VaultStore::open(&url).await.context("opening the vault database")?;
        let meta = signward_vault::vault::init(&store, args.output.threshold, args.output.shares, |s| {
            persist(&args.output, &prots, s)
        })
        .await?;
        eprintln!(
            "vault {} created: {} shares, {} needed to unseal. Give each operator their file; the master key was not written anywhere.",
            meta.vault_id, meta.share_count, meta.threshold
        );
        audit(&args.data_dir, signward_audit::Outcome::Initialized, format!("vault {} {}-of-{}", meta.vault_id, meta.threshold, meta.share_count));
        Ok(())
    })
}

pub fn rekey(args: CeremonyArgs) -> anyhow::Result<()> {
    ceremony(args, false)
}

pub fn rotate(args: CeremonyArgs) -> anyhow::Result<()> {
    ceremony(args, true)
}

fn ceremony(args: CeremonyArgs, rotate: bool) -> anyhow::Result<()> {
    signward_vault::master::check_parameters(args.output.threshold, args.output.shares)?;
    let current = read_shares(&args.current, &args.input)?;
    let prots = protections(&args.output)?;
    let url = vault_url(&args.slashing, &args.data_dir)?;
    runtime()?.block_on(async {
        let store = VaultStore::open(&url)
            .await
            .context("opening the vault database")?;
        let persist_fn = |s: &[SharePayload]| persist(&args.output, &prots, s);
        let meta = if rotate {
            signward_vault::vault::rotate(
                &store,
                &current,
                args.output.threshold,
                args.output.shares,
                persist_fn,
            )
            .await?
        } else {
            signward_vault::vault::rekey(
                &store,
                &current,
                args.output.threshold,
                args.output.shares,
                persist_fn,
            )
            .await?
        };
        let what = if rotate { "rotated" } else { "rekeyed" };
        eprintln!(
            "vault {what}: {} new shares, {} needed; the old shares no longer unseal it{}",
            meta.share_count,
            meta.threshold,
            if rotate {
                ". Running servers seal themselves; unseal them with the new shares."
            } else {
                "."
            }
        );
        audit(
            &args.data_dir,
            if rotate {
                signward_audit::Outcome::Rotated
            } else {
                signward_audit::Outcome::Rekeyed
            },
            format!(
                "generation {} {}-of-{}",
                meta.generation, meta.threshold, meta.share_count
            ),
        );
        Ok(())
    })
}

fn audit(data_dir: &Path, decision: signward_audit::Outcome, reason: String) {
    let record = signward_audit::Record {
        event: signward_audit::Event::Vault.into(),
        caller: Some("cli".into()),
        decision: decision.into(),
        reason: Some(reason),
        ..Default::default()
    };
    if let Err(e) = super::audit::append_event(data_dir, record) {
        eprintln!("warning: the audit record could not be written: {e:#}");
    }
}

fn print_progress(v: &serde_json::Value) {
    let state = v.get("state").and_then(|s| s.as_str()).unwrap_or("?");
    let k = v.get("submitted").and_then(|s| s.as_u64()).unwrap_or(0);
    let t = v.get("threshold").and_then(|s| s.as_u64()).unwrap_or(0);
    match state {
        "unsealed" => println!(
            "unsealed; {} keys loaded",
            v.get("keys_loaded").and_then(|s| s.as_u64()).unwrap_or(0)
        ),
        "sealed" => println!("sealed: {k} of {t} shares submitted"),
        other => println!("{other}"),
    }
}

pub fn unseal(args: UnsealArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.client)?;
    if args.reset {
        client.expect_ok("POST", "/admin/v1/vault/unseal/reset", None)?;
        println!("unseal progress reset");
        return Ok(());
    }
    let path = args.share.context("--share is required")?;
    let share = read_shares(std::slice::from_ref(&path), &args.input)?
        .pop()
        .context("no share read")?;
    let body: Zeroizing<Vec<u8>> = share.to_json();
    let v = client.expect_ok("POST", "/admin/v1/vault/unseal", Some(body))?;
    print_progress(&v);
    Ok(())
}

pub fn seal(client: ClientArgs) -> anyhow::Result<()> {
    AdminClient::new(&client)?.expect_ok("POST", "/admin/v1/vault/seal", None)?;
    println!("sealed: the master key and every vault key were wiped from the server's memory");
    Ok(())
}

pub fn status(client: ClientArgs) -> anyhow::Result<()> {
    let v = AdminClient::new(&client)?.expect_ok("GET", "/admin/v1/vault", None)?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

pub fn halt(client: ClientArgs, reason: Option<String>) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&serde_json::json!({ "reason": reason }))?;
    AdminClient::new(&client)?.expect_ok("POST", "/admin/v1/halt", Some(Zeroizing::new(body)))?;
    println!("halted: every signing request is refused until `signward resume`");
    Ok(())
}

pub fn resume(client: ClientArgs) -> anyhow::Result<()> {
    AdminClient::new(&client)?.expect_ok("POST", "/admin/v1/resume", None)?;
    println!("resumed");
    Ok(())
}
