//! Settings for `serve` and `doctor` from three places, in this precedence: command-line flag,
//! then a `SIGNWARD_<FLAG>` environment variable, then the TOML file named by `--config` (or
//! `SIGNWARD_CONFIG`). The file's keys are the flag names (`http-listen-port` or
//! `http_listen_port`); an unknown key is an error. The layers are folded into the argument list
//! in memory before clap parses it, so every flag's validation applies to every source.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Context};
use clap::{ArgAction, CommandFactory};

/// Where a setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File,
}

struct FlagInfo {
    long: String,
    switch: bool,
}

fn serve_flags() -> Vec<FlagInfo> {
    let cmd = crate::cli::Cli::command();
    let Some(serve) = cmd.find_subcommand("serve") else {
        return Vec::new();
    };
    serve
        .get_arguments()
        .filter_map(|a| {
            a.get_long().map(|l| FlagInfo {
                long: l.to_string(),
                switch: matches!(a.get_action(), ArgAction::SetTrue),
            })
        })
        .filter(|f| f.long != "help" && f.long != "config")
        .collect()
}

fn env_name(long: &str) -> String {
    format!("SIGNWARD_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// Refuse a config file others can read or write; and one that holds a secret (a database URL
/// with a password) and that its group can read.
pub fn check_permissions(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        bail!(
            "{} is accessible by others (mode {:o}); run: chmod o-rwx {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let holds_secret = text.lines().any(|l| {
        let l = l.trim();
        !l.starts_with('#')
            && l.contains("://")
            && l.split("://").nth(1).is_some_and(|rest| {
                rest.split('@').next().is_some_and(|u| u.contains(':')) && rest.contains('@')
            })
    });
    if holds_secret && mode & 0o077 != 0 {
        bail!(
            "{} holds a password (in a database URL) and its group can read it; run: chmod 600 {} (or use env:VAR for the URL)",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

fn toml_values(key: &str, v: &toml::Value, switch: bool) -> anyhow::Result<Vec<String>> {
    Ok(match v {
        toml::Value::Boolean(b) if switch => {
            if *b {
                vec![String::new()]
            } else {
                vec![]
            }
        }
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Integer(i) => vec![i.to_string()],
        toml::Value::Float(f) => vec![f.to_string()],
        toml::Value::Array(a) => a
            .iter()
            .map(|x| match x {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                _ => bail!("setting {key}: list items must be strings or integers"),
            })
            .collect::<anyhow::Result<_>>()?,
        _ => bail!("setting {key} has a value of the wrong type"),
    })
}

/// Fold env and file settings into `argv` for `serve` and `doctor`; other commands pass through.
/// Returns the new argv and, per flag, where its value came from.
pub fn expand(argv: Vec<OsString>) -> anyhow::Result<(Vec<OsString>, BTreeMap<String, Source>)> {
    let strs: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some(pos) = strs.iter().position(|a| a == "serve" || a == "doctor") else {
        return Ok((argv, BTreeMap::new()));
    };
    let on_cli = |long: &str| {
        strs[pos..]
            .iter()
            .any(|a| a == &format!("--{long}") || a.starts_with(&format!("--{long}=")))
    };
    let flags = serve_flags();
    let mut sources = BTreeMap::new();
    let mut extra: Vec<String> = Vec::new();
    let mut from_env = std::collections::HashSet::new();
    for f in &flags {
        if on_cli(&f.long) {
            sources.insert(f.long.clone(), Source::Flag);
            continue;
        }
        let Ok(v) = std::env::var(env_name(&f.long)) else {
            continue;
        };
        if f.switch {
            match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => extra.push(format!("--{}", f.long)),
                "0" | "false" | "no" | "" => {}
                _ => bail!("{} must be true or false", env_name(&f.long)),
            }
        } else {
            for item in v.split(',').filter(|s| !s.is_empty()) {
                extra.push(format!("--{}", f.long));
                extra.push(item.to_string());
            }
        }
        from_env.insert(f.long.clone());
        sources.insert(f.long.clone(), Source::Env);
    }
    // The config file: --config on the command line, else SIGNWARD_CONFIG.
    let config = strs[pos..]
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| strs.get(pos + i + 1).cloned())
        .or_else(|| {
            strs[pos..]
                .iter()
                .find_map(|a| a.strip_prefix("--config=").map(String::from))
        })
        .or_else(|| std::env::var("SIGNWARD_CONFIG").ok());
    if let Some(path) = config {
        let path = Path::new(&path);
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        // `doctor` reports a bad file as a finding instead of refusing to look at it.
        if strs[pos] != "doctor" {
            check_permissions(path, &text)?;
        }
        // The error names the line and column only: the file may hold a password.
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "config file {}: {}",
                path.display(),
                signward_policy::toml_error(&text, &e)
            )
        })?;
        for (key, v) in &table {
            let long = key.replace('_', "-");
            let Some(f) = flags.iter().find(|f| f.long == long) else {
                bail!("config file {}: unknown setting {key:?}", path.display());
            };
            if on_cli(&long) || from_env.contains(&long) {
                continue;
            }
            for value in toml_values(key, v, f.switch)? {
                extra.push(format!("--{long}"));
                if !value.is_empty() || !f.switch {
                    extra.push(value);
                }
            }
            sources.insert(long, Source::File);
        }
    }
    let mut out = argv;
    // Appended after the subcommand's own arguments; clap treats them as flags of `serve`.
    out.extend(extra.into_iter().map(OsString::from));
    Ok((out, sources))
}

/// `signward config check`: load the layers, parse them as `serve` would, and print the result.
pub fn check(config: &Path) -> anyhow::Result<()> {
    let argv: Vec<OsString> = ["signward", "serve", "--config"]
        .iter()
        .map(OsString::from)
        .chain([config.as_os_str().to_owned()])
        .collect();
    let (argv, sources) = expand(argv)?;
    let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(argv)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let crate::cli::Command::Serve(mut args) = cli.command else {
        bail!("not a serve configuration")
    };
    // A raw key given where an `env:VAR` belongs is refused by `serve`; never print it here.
    if args
        .dev_evm_key
        .as_deref()
        .is_some_and(|k| !k.starts_with("env:"))
    {
        args.dev_evm_key = Some("<redacted: must be env:VAR>".into());
    }
    println!("config OK: {}", config.display());
    for (k, s) in &sources {
        println!(
            "  {k:<44} from {}",
            match s {
                Source::Flag => "flag",
                Source::Env => "environment",
                Source::File => "file",
            }
        );
    }
    println!("effective settings (secrets redacted):\n{args:#?}");
    Ok(())
}
