//! `signward slashing import|export|prune`, and opening the database from flags.

use signward_os::DataDir;
use std::path::Path;

use anyhow::Context;
use signward_engine::stores;
use signward_slashing::{SlashingDb, SlashingStore};

use crate::cli::{SlashingCommand, SlashingDbArgs};

/// The database URL: the flag (or `env:VAR` indirection), else SQLite in the data dir.
pub fn db_url(args: &SlashingDbArgs, data_dir: &Path) -> anyhow::Result<String> {
    Ok(stores::slashing_url(
        args.slashing_protection_db_url.as_deref(),
        &DataDir::new(data_dir),
    )?)
}

/// Open the database without the audit chain (the slashing commands).
pub async fn open(args: &SlashingDbArgs, data_dir: &Path) -> anyhow::Result<SlashingDb> {
    let url = db_url(args, data_dir)?;
    Ok(stores::open_slashing(&url, &DataDir::new(data_dir), false).await?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn run(command: SlashingCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match command {
            SlashingCommand::Import { file, data_dir, db } => {
                let store = open(&db, &data_dir).await?;
                let f = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
                let r = store.import(f).await.context("import failed")?;
                println!(
                    "imported {} validators: {} blocks, {} attestations ({} already present, {} conflicting records made stricter)",
                    r.validators, r.blocks, r.attestations, r.duplicates, r.conflicts
                );
                Ok(())
            }
            SlashingCommand::Export { file, minimal, data_dir, db } => {
                let store = open(&db, &data_dir).await?;
                // Streamed beside the target, then renamed over it durably: a failed export
                // leaves no partial file, and a finished one survives a crash.
                let staged = signward_os::fs::Staged::new(&file).with_context(|| format!("writing {}", file.display()))?;
                let out = std::io::BufWriter::new(staged.file().try_clone()?);
                let r = store.export(out, minimal).await.context("export failed")?;
                staged.commit().with_context(|| format!("writing {}", file.display()))?;
                println!(
                    "exported {} validators: {} blocks, {} attestations{}",
                    r.validators,
                    r.blocks,
                    r.attestations,
                    if minimal { " (minimal)" } else { "" }
                );
                Ok(())
            }
            SlashingCommand::Disabled { data_dir, db } => {
                let store = open(&db, &data_dir).await?;
                for pk in store.disabled().await.context("reading disabled validators")? {
                    println!("{}", pk.to_hex());
                }
                Ok(())
            }
            SlashingCommand::Enable { pubkey, data_dir, db } => {
                let keys = pubkey
                    .iter()
                    .map(|k| k.parse::<signward_core::bytes::PublicKeyBytes>().map_err(|_| anyhow::anyhow!("{k:?} is not a 48-byte BLS public key")))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let n = keys.len();
                store_enable(&open(&db, &data_dir).await?, keys).await?;
                println!("enabled {n} validators");
                Ok(())
            }
            SlashingCommand::Prune { epochs_to_keep, network, data_dir, db } => {
                let net = super::serve::network(&network)?;
                let store = open(&db, &data_dir).await?;
                let r = store
                    .prune(epochs_to_keep, net.preset.slots_per_epoch)
                    .await
                    .context("prune failed")?;
                println!(
                    "pruned {} blocks and {} attestations (kept {epochs_to_keep} epochs per validator)",
                    r.blocks_deleted, r.attestations_deleted
                );
                Ok(())
            }
        }
    })
}

async fn store_enable(
    store: &SlashingDb,
    keys: Vec<signward_core::bytes::PublicKeyBytes>,
) -> anyhow::Result<()> {
    store
        .set_enabled(keys, true, true)
        .await
        .context("enabling validators")
}
