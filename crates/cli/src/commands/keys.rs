//! `signward keys …`: key management in a running server's vault, over the admin API.

use std::io::Write;

use anyhow::{bail, Context};
use signward_keys::fsutil::{read_secret_file, FileKind};
use zeroize::Zeroizing;

use super::client::AdminClient;
use crate::cli::KeysCommand;

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Import {
            client,
            keystores_path,
            keystores_passwords_path,
            keystores_password_file,
            batch,
        } => import(
            &AdminClient::new(&client)?,
            &keystores_path,
            keystores_passwords_path.as_deref(),
            keystores_password_file.as_deref(),
            batch.max(1),
        ),
        KeysCommand::Generate {
            client,
            kind,
            count,
            backup_to,
            backup_dir,
        } => generate(
            &AdminClient::new(&client)?,
            &kind,
            count,
            backup_to,
            backup_dir,
        ),
        KeysCommand::List { client } => {
            let v = AdminClient::new(&client)?.expect_ok("GET", "/admin/v1/keys", None)?;
            for k in v["keys"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<9} {:<10} {:<8} {}",
                    k["pubkey"].as_str().unwrap_or("?"),
                    k["kind"].as_str().unwrap_or("?"),
                    k["origin"].as_str().unwrap_or("?"),
                    if k["enabled"].as_bool() == Some(true) {
                        "enabled"
                    } else {
                        "disabled"
                    },
                    if k["loaded"].as_bool() == Some(true) {
                        "loaded"
                    } else {
                        "-"
                    },
                );
            }
            Ok(())
        }
        KeysCommand::Disable { client, pubkey } => {
            AdminClient::new(&client)?.expect_ok(
                "POST",
                &format!("/admin/v1/keys/{pubkey}/disable"),
                None,
            )?;
            println!("{pubkey} disabled");
            Ok(())
        }
        KeysCommand::Enable { client, pubkey } => {
            AdminClient::new(&client)?.expect_ok(
                "POST",
                &format!("/admin/v1/keys/{pubkey}/enable"),
                None,
            )?;
            println!("{pubkey} enabled");
            Ok(())
        }
        KeysCommand::Delete {
            client,
            pubkey,
            slashing_out,
        } => {
            if slashing_out.exists() {
                bail!(
                    "{} exists; choose a new file for the slashing history",
                    slashing_out.display()
                );
            }
            let v = AdminClient::new(&client)?.expect_ok(
                "DELETE",
                &format!("/admin/v1/keys/{pubkey}"),
                None,
            )?;
            let doc = v["slashing_protection"]
                .as_str()
                .context("the server returned no slashing history")?;
            signward_os::fs::write_new(&slashing_out, doc.as_bytes())?;
            println!(
                "{pubkey} deleted; slashing history in {}",
                slashing_out.display()
            );
            Ok(())
        }
    }
}

fn import(
    client: &AdminClient,
    dir: &std::path::Path,
    passwords_dir: Option<&std::path::Path>,
    password_file: Option<&std::path::Path>,
    batch: usize,
) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no keystore files (*.json) in {}", dir.display());
    }
    let shared = match (passwords_dir, password_file) {
        (None, Some(f)) => Some(read_secret_file(f, FileKind::Password)?),
        (Some(_), None) => None,
        _ => bail!("give --keystores-passwords-path or --keystores-password-file"),
    };
    let total = files.len();
    let (mut imported, mut duplicate, mut failed) = (0usize, 0usize, 0usize);
    let started = std::time::Instant::now();
    for chunk in files.chunks(batch) {
        let mut keystores = Vec::with_capacity(chunk.len());
        let mut passwords: Vec<Zeroizing<String>> = Vec::with_capacity(chunk.len());
        for f in chunk {
            keystores.push(
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            );
            let pw = match (&shared, passwords_dir) {
                (Some(p), _) => p.clone(),
                (None, Some(d)) => {
                    let stem = f.file_stem().context("keystore file name")?;
                    read_secret_file(&d.join(stem).with_extension("txt"), FileKind::Password)
                        .with_context(|| format!("password for {}", f.display()))?
                }
                _ => unreachable!("checked above"),
            };
            let s = std::str::from_utf8(&pw).context("password is not UTF-8")?;
            passwords.push(Zeroizing::new(s.to_string()));
        }
        let body = Zeroizing::new(serde_json::to_vec(&serde_json::json!({
            "keystores": keystores,
            "passwords": passwords.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        }))?);
        let v = client.expect_ok("POST", "/admin/v1/keys/import", Some(body))?;
        for (o, f) in v["data"].as_array().into_iter().flatten().zip(chunk) {
            match o["status"].as_str() {
                Some("imported") => imported += 1,
                Some("duplicate") => duplicate += 1,
                _ => {
                    failed += 1;
                    eprintln!(
                        "\n{}: {}",
                        f.display(),
                        o["message"].as_str().unwrap_or("error")
                    );
                }
            }
        }
        let done = imported + duplicate + failed;
        let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
        eprint!("\rimporting: {done}/{total} ({rate:.1}/s)   ");
        let _ = std::io::stderr().flush();
    }
    eprintln!();
    println!("{imported} imported, {duplicate} already present, {failed} failed");
    if failed > 0 {
        bail!("{failed} keystores failed to import");
    }
    Ok(())
}

fn generate(
    client: &AdminClient,
    kind: &str,
    count: usize,
    backup_to: Option<String>,
    backup_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    if let Some(d) = &backup_dir {
        super::ensure_private_dir(d)?;
    }
    let body = serde_json::to_vec(
        &serde_json::json!({"type": kind, "count": count, "backup_to": backup_to}),
    )?;
    let v = client.expect_ok(
        "POST",
        "/admin/v1/keys/generate",
        Some(Zeroizing::new(body)),
    )?;
    for k in v["keys"].as_array().into_iter().flatten() {
        let pk = k["pubkey"].as_str().unwrap_or("?");
        match (&backup_dir, k["backup"].as_str()) {
            (Some(d), Some(b)) => {
                let path = d.join(format!("{pk}.age"));
                signward_os::fs::write_new(&path, b.as_bytes())?;
                println!("{pk}  backup: {}", path.display());
            }
            _ => println!("{pk}"),
        }
    }
    Ok(())
}
