//! `signward group identity|split`, and reading a peer's `--group-config` for `serve`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use signward_engine::group::{GroupShare, Groups};
use signward_keys::fsutil::write_secret_file;
use signward_server::peers::{GroupTls, Peer};
use signward_threshold::{Commitments, SecretShare};
use zeroize::Zeroizing;

use crate::cli::{GroupCommand, GroupMembers};

pub fn run(command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Identity { out_dir, name } => identity(&out_dir, &name),
        GroupCommand::Split {
            keystore,
            password_file,
            members,
            out_dir,
        } => split(&keystore, &password_file, &members, &out_dir),
        GroupCommand::Init {
            index,
            members,
            out_dir,
        } => init(index, &members, &out_dir),
        GroupCommand::Join {
            index,
            identity,
            recipient,
            dealings,
            own_dealing_sha256,
            out,
        } => join(
            index,
            &identity,
            &recipient,
            &dealings,
            own_dealing_sha256.as_deref(),
            &out,
        ),
        GroupCommand::Import {
            client,
            share,
            identity,
            slashing_protection,
            new_key,
        } => import(
            &client,
            &share,
            &identity,
            slashing_protection.as_deref(),
            new_key,
        ),
        GroupCommand::Status { client } => status(&client),
        GroupCommand::SplitVaultKey {
            client,
            pubkey,
            members,
            out_dir,
        } => split_vault_key(&client, &pubkey, &members, &out_dir),
        GroupCommand::Reshare {
            client,
            group_public_key,
            members,
            out_dir,
        } => reshare(&client, &group_public_key, &members, &out_dir),
        GroupCommand::Refresh {
            share,
            identity,
            members,
            out_dir,
        } => refresh(&share, &identity, &members, &out_dir),
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("--name must be 1 to 64 letters, digits, '-' or '_'");
    }
    Ok(())
}

fn identity(out_dir: &Path, name: &str) -> anyhow::Result<()> {
    check_name(name)?;
    super::ensure_private_dir(out_dir)?;
    let crt = out_dir.join(format!("{name}.crt"));
    let key = out_dir.join(format!("{name}.key"));
    let age_key = out_dir.join(format!("{name}.agekey"));
    for p in [&crt, &key, &age_key] {
        if p.exists() {
            bail!("{} exists; an identity is never overwritten", p.display());
        }
    }
    let mut params = rcgen::CertificateParams::new(vec!["peer.signward.invalid".to_string()])
        .context("certificate parameters")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("signward peer {name}"));
    // Pinned by fingerprint, not by a CA or dates: valid for long, replaced by changing the pin.
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let signing_key = rcgen::KeyPair::generate().context("generating the TLS key")?;
    let cert = params
        .self_signed(&signing_key)
        .context("signing the certificate")?;
    let key_pem = Zeroizing::new(signing_key.serialize_pem());
    write_secret_file(&key, key_pem.as_bytes())
        .with_context(|| format!("writing {}", key.display()))?;
    std::fs::write(&crt, cert.pem()).with_context(|| format!("writing {}", crt.display()))?;
    let age_identity = age::x25519::Identity::generate();
    let recipient = age_identity.to_public();
    {
        use secrecy::ExposeSecret;
        let secret = age_identity.to_string();
        let text = Zeroizing::new(format!(
            "# signward peer {name}: decrypts this peer's share files\n# public key: {recipient}\n{}\n",
            secret.expose_secret()
        ));
        write_secret_file(&age_key, text.as_bytes())
            .with_context(|| format!("writing {}", age_key.display()))?;
    }
    println!(
        "cert_sha256 = \"{}\"",
        signward_server::tls::fingerprint(cert.der())
    );
    println!("age_recipient = \"{recipient}\"");
    Ok(())
}

/// Parse `--peer <index>=<age recipient>` arguments: indexes exactly 1..=n, and a threshold that
/// is at least 2 and a majority.
fn recipients(
    members: &GroupMembers,
) -> anyhow::Result<std::collections::BTreeMap<u32, age::x25519::Recipient>> {
    let (peers, threshold, f) = (
        &members.peers,
        members.threshold,
        members.tolerate_compromised,
    );
    let mut recipients = std::collections::BTreeMap::new();
    for p in peers {
        let (index, recipient) = p
            .split_once('=')
            .context("--peer must be <index>=<age recipient>")?;
        let index: u32 = index
            .trim()
            .parse()
            .context("a peer index is not a number")?;
        let recipient = age::x25519::Recipient::from_str(recipient.trim())
            .map_err(|e| anyhow::anyhow!("peer {index}: not an age recipient (age1…): {e}"))?;
        if recipients.insert(index, recipient).is_some() {
            bail!("peer {index} is given twice");
        }
    }
    let indexes: Vec<u32> = recipients.keys().copied().collect();
    signward_engine::group::check_members(threshold, f, &indexes)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(recipients)
}

use signward_engine::group::{DealingDocument as DealingFile, DealtShare, DEALING_KIND};

fn write_dealing(
    dealer: u32,
    threshold: u32,
    dealing: &signward_threshold::Dealing,
    refresh_of: Option<Commitments>,
    recipients: &std::collections::BTreeMap<u32, age::x25519::Recipient>,
    out_dir: &Path,
) -> anyhow::Result<()> {
    if out_dir.join("dealing.json").exists() {
        bail!(
            "{} already holds a dealing; it is never overwritten",
            out_dir.display()
        );
    }
    let recipients: Vec<(u32, String)> = recipients
        .iter()
        .map(|(i, r)| (*i, r.to_string()))
        .collect();
    let sealed =
        signward_engine::group::seal_dealing(dealer, threshold, dealing, refresh_of, &recipients)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    write_sealed_dealing(&sealed, out_dir)
}

/// Write a sealed dealing: `to-<index>.age` for each peer (0600) and `dealing.json`, last.
fn write_sealed_dealing(
    sealed: &signward_engine::group::SealedDealing,
    out_dir: &Path,
) -> anyhow::Result<()> {
    if out_dir.join("dealing.json").exists() {
        bail!(
            "{} already holds a dealing; it is never overwritten",
            out_dir.display()
        );
    }
    super::ensure_private_dir(out_dir)?;
    for (index, armored) in &sealed.shares {
        let path = out_dir.join(format!("to-{index}.age"));
        write_secret_file(&path, armored).with_context(|| format!("writing {}", path.display()))?;
    }
    let path = out_dir.join("dealing.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&sealed.document)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn init(index: u32, members: &GroupMembers, out_dir: &Path) -> anyhow::Result<()> {
    let recipients = recipients(members)?;
    let threshold = members.threshold;
    if !recipients.contains_key(&index) {
        bail!("--index {index} is not one of the peers");
    }
    let n = recipients.len() as u32;
    let dealing = signward_threshold::deal(threshold, n).map_err(|e| anyhow::anyhow!("{e}"))?;
    write_dealing(index, threshold, &dealing, None, &recipients, out_dir)?;
    let raw = std::fs::read(out_dir.join("dealing.json"))?;
    println!("dealing_sha256 = \"{}\"", sha256_hex(&raw));
    Ok(())
}

/// Open a share file (from `split` or `join`) with an age identity file, and check the share
/// against its commitments.
fn open_share_file(path: &Path, identity: &Path) -> anyhow::Result<(SecretShare, Commitments)> {
    let identities = signward_vault::share::read_identities(identity)
        .map_err(|e| anyhow::anyhow!("{}: {e}", identity.display()))?;
    open_share_with(path, &identities)
}

/// Open a share file with `identities`: its kind and version, its share, its group key against
/// its commitments, and its share against them.
fn open_share_with(
    path: &Path,
    identities: &[Box<dyn age::Identity>],
) -> anyhow::Result<(SecretShare, Commitments)> {
    let json = decrypt_share_file(path, identities)?;
    let share =
        GroupShare::from_document(&json).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((share.share, share.commitments))
}

/// The share document inside a share file (secret: wiped on drop).
fn decrypt_share_file(
    path: &Path,
    identities: &[Box<dyn age::Identity>],
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let sealed = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    signward_vault::backup::decrypt_armored(&sealed, identities)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn import(
    client: &crate::cli::ClientArgs,
    share: &Path,
    identity: &Path,
    history: Option<&Path>,
    new_key: bool,
) -> anyhow::Result<()> {
    let history = history
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    let identities = signward_vault::share::read_identities(identity)
        .map_err(|e| anyhow::anyhow!("{}: {e}", identity.display()))?;
    let document = decrypt_share_file(share, &identities)?;
    // Checked here too, so that a wrong file is named before anything is sent.
    GroupShare::from_document(&document)
        .map_err(|e| anyhow::anyhow!("{}: {e}", share.display()))?;
    let mut body = Zeroizing::new(Vec::with_capacity(document.len() + 16));
    body.extend_from_slice(b"{\"share\":");
    body.extend_from_slice(&document);
    if let Some(h) = &history {
        body.extend_from_slice(b",\"slashing_protection\":");
        body.extend_from_slice(&serde_json::to_vec(h)?);
    }
    if new_key {
        body.extend_from_slice(b",\"new_key\":true");
    }
    body.push(b'}');
    let v = super::client::AdminClient::new(client)?.expect_ok(
        "POST",
        "/admin/v1/group/shares",
        Some(body),
    )?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// The JSON body of a split or a refresh asked of a server.
fn deal_body(key: &str, members: &GroupMembers) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let recipients = recipients(members)?;
    Ok(Zeroizing::new(serde_json::to_vec(&serde_json::json!({
        "group_public_key": key.trim(),
        "threshold": members.threshold,
        "tolerate_compromised": members.tolerate_compromised,
        "peers": recipients.iter().map(|(i, r)| serde_json::json!({
            "index": i, "age_recipient": r.to_string(),
        })).collect::<Vec<_>>(),
    }))?))
}

/// Each `{index, age}` of a server's answer, in index order 1..=n.
fn answered_shares(v: &serde_json::Value, n: usize) -> anyhow::Result<Vec<(u32, Vec<u8>)>> {
    let mut shares = Vec::new();
    for sh in v["shares"]
        .as_array()
        .context("the server's answer holds no shares")?
    {
        let index = sh["index"].as_u64().context("a share without an index")? as u32;
        let armored = sh["age"].as_str().context("a share without its age text")?;
        shares.push((index, armored.as_bytes().to_vec()));
    }
    if shares.iter().map(|(i, _)| *i).ne(1..=n as u32) {
        bail!("the server's answer does not hold one share per peer");
    }
    Ok(shares)
}

fn split_vault_key(
    client: &crate::cli::ClientArgs,
    pubkey: &str,
    members: &GroupMembers,
    out_dir: &Path,
) -> anyhow::Result<()> {
    let body = deal_body(pubkey, members)?;
    if out_dir.exists() && std::fs::read_dir(out_dir)?.next().is_some() {
        bail!(
            "{} is not empty; share files are never overwritten",
            out_dir.display()
        );
    }
    super::ensure_private_dir(out_dir)?;
    let v = super::client::AdminClient::new(client)?.expect_ok(
        "POST",
        "/admin/v1/group/split",
        Some(body),
    )?;
    for (index, armored) in answered_shares(&v, members.peers.len())? {
        let path = out_dir.join(format!("share-{index}.age"));
        write_secret_file(&path, &armored)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let history = out_dir.join("slashing-protection.json");
    std::fs::write(
        &history,
        v["slashing_protection"].as_str().unwrap_or_default(),
    )
    .with_context(|| format!("writing {}", history.display()))?;
    println!("{}", v["group_public_key"].as_str().unwrap_or_default());
    Ok(())
}

fn reshare(
    client: &crate::cli::ClientArgs,
    group_public_key: &str,
    members: &GroupMembers,
    out_dir: &Path,
) -> anyhow::Result<()> {
    let body = deal_body(group_public_key, members)?;
    if out_dir.join("dealing.json").exists() {
        bail!(
            "{} already holds a dealing; it is never overwritten",
            out_dir.display()
        );
    }
    let v = super::client::AdminClient::new(client)?.expect_ok(
        "POST",
        "/admin/v1/group/refresh",
        Some(body),
    )?;
    let document: DealingFile = serde_json::from_value(v["dealing"].clone())
        .context("the server's answer holds no dealing")?;
    let shares = answered_shares(&v, members.peers.len())?;
    if document.kind != DEALING_KIND || document.n as usize != shares.len() {
        bail!("the server's dealing does not match the group asked for");
    }
    write_sealed_dealing(
        &signward_engine::group::SealedDealing { document, shares },
        out_dir,
    )?;
    println!("{}", out_dir.display());
    Ok(())
}

fn status(client: &crate::cli::ClientArgs) -> anyhow::Result<()> {
    let v = super::client::AdminClient::new(client)?.expect_ok("GET", "/admin/v1/group", None)?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    let peers = v["peers"].as_array().cloned().unwrap_or_default();
    let unhealthy = peers.iter().filter(|p| {
        p["reachable"] != serde_json::Value::Bool(true)
            || p.get("error").is_some()
            || p["keys_with_other_commitments"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            || p["keys_missing"].as_array().is_some_and(|a| !a.is_empty())
            || p["keys_only_there"].as_u64().is_some_and(|n| n > 0)
    });
    let n = unhealthy.count();
    if n > 0 {
        bail!(
            "{n} of {} other peers are unreachable or hold other shares",
            peers.len()
        );
    }
    Ok(())
}

fn refresh(
    share: &Path,
    identity: &Path,
    members: &GroupMembers,
    out_dir: &Path,
) -> anyhow::Result<()> {
    let recipients = recipients(members)?;
    let threshold = members.threshold;
    let (share, commitments) = open_share_file(share, identity)?;
    let dealer = share.index();
    let key = signward_threshold::KeyShare { share, commitments };
    let dealing = signward_threshold::reshare(&key, threshold, recipients.len() as u32)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    write_dealing(
        dealer,
        threshold,
        &dealing,
        Some(key.commitments.clone()),
        &recipients,
        out_dir,
    )?;
    println!("{}", out_dir.display());
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn join(
    index: u32,
    identity: &Path,
    recipient: &str,
    dealings: &[PathBuf],
    own_dealing_sha256: Option<&str>,
    out: &Path,
) -> anyhow::Result<()> {
    let recipient = age::x25519::Recipient::from_str(recipient.trim())
        .map_err(|e| anyhow::anyhow!("--recipient is not an age recipient (age1…): {e}"))?;
    if out.exists() {
        bail!(
            "{} exists; a share file is never overwritten",
            out.display()
        );
    }
    let identities = signward_vault::share::read_identities(identity)
        .map_err(|e| anyhow::anyhow!("{}: {e}", identity.display()))?;
    let mut received = Vec::new();
    let mut own_seen = false;
    let mut shape: Option<(u32, u32, Option<Commitments>)> = None;
    for dir in dealings {
        let path = dir.join("dealing.json");
        let raw = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let public: DealingFile = serde_json::from_slice(&raw)
            .with_context(|| format!("{} is not a dealing", path.display()))?;
        if public.dealer == index && public.refresh_of.is_none() {
            let Some(own) = own_dealing_sha256 else {
                bail!("key generation: pass --own-dealing-sha256 (printed by this peer's `group init`)");
            };
            if !own
                .trim()
                .trim_start_matches("0x")
                .eq_ignore_ascii_case(&sha256_hex(&raw))
            {
                bail!(
                    "{}: this is not the dealing this peer made (its SHA-256 differs from --own-dealing-sha256)",
                    path.display()
                );
            }
            own_seen = true;
        }
        if public.kind != DEALING_KIND || public.version != 1 {
            bail!("{} is not a version-1 signward dealing", path.display());
        }
        let this = (public.threshold, public.n, public.refresh_of.clone());
        match &shape {
            None => shape = Some(this),
            Some(s) if *s == this => {}
            Some(_) => bail!(
                "{}: the dealings disagree on the threshold, the group size or the group refreshed",
                path.display()
            ),
        }
        let secret_path = dir.join(format!("to-{index}.age"));
        let sealed = std::fs::read(&secret_path)
            .with_context(|| format!("reading {}", secret_path.display()))?;
        let json = signward_vault::backup::decrypt_armored(&sealed, &identities)
            .map_err(|e| anyhow::anyhow!("{}: {e}", secret_path.display()))?;
        // As for share files: the parser's message may quote the decrypted text.
        let dealt: DealtShare = serde_json::from_slice(&json)
            .map_err(|_| anyhow::anyhow!("{} is not a dealt share", secret_path.display()))?;
        if dealt.dealer != public.dealer || dealt.index != index {
            bail!(
                "{}: dealt by {} for peer {}, expected dealer {} and peer {index}",
                secret_path.display(),
                dealt.dealer,
                dealt.index,
                public.dealer
            );
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(dealt.share.trim_start_matches("0x"), &mut bytes[..]).with_context(
            || {
                format!(
                    "{}: the share is not 32 bytes of hex",
                    secret_path.display()
                )
            },
        )?;
        received.push(signward_threshold::Received {
            dealer: public.dealer,
            commitments: public.commitments,
            share: SecretShare::from_bytes(index, &bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", secret_path.display()))?,
        });
    }
    let (threshold, n, refresh_of) = shape.context("no dealing given")?;
    if index == 0 || index > n {
        bail!("--index {index} is not in the group of {n}");
    }
    let key = match &refresh_of {
        None => {
            let dealers: std::collections::BTreeSet<u32> =
                received.iter().map(|r| r.dealer).collect();
            if received.len() != n as usize || dealers.iter().copied().ne(1..=n) {
                bail!(
                    "key generation needs every peer's dealing, dealers 1..={n} once each: {} given",
                    received.len()
                );
            }
            if !own_seen {
                bail!("key generation: this peer's own dealing (dealer {index}) is not among those given");
            }
            signward_threshold::combine_dealings(index, threshold, &received)
        }
        Some(old) => signward_threshold::combine_reshares(index, old, &received),
    }
    .map_err(|e| anyhow::anyhow!("{e} (code {})", e.code()))?;
    let share = GroupShare {
        share: key.share,
        commitments: key.commitments,
    };
    let sealed = signward_vault::backup::encrypt_armored(&recipient, &share.to_document())
        .map_err(|e| anyhow::anyhow!("encrypting the share file: {e}"))?;
    write_secret_file(out, &sealed).with_context(|| format!("writing {}", out.display()))?;
    println!("group_public_key = \"{}\"", share.group_key().to_hex());
    println!("commitments_digest = \"{}\"", share.commitments_digest());
    Ok(())
}

fn split(
    keystore: &Path,
    password_file: &Path,
    members: &GroupMembers,
    out_dir: &Path,
) -> anyhow::Result<()> {
    let recipients = recipients(members)?;
    let threshold = members.threshold;
    let n = recipients.len() as u32;
    let password = signward_keys::password::read_password_file(password_file)
        .with_context(|| format!("password file {}", password_file.display()))?;
    let bytes =
        std::fs::read(keystore).with_context(|| format!("reading {}", keystore.display()))?;
    let ks = signward_keys::keystore::Keystore::from_json(&bytes)
        .with_context(|| format!("{} is not an EIP-2335 keystore", keystore.display()))?;
    let dealing = {
        let key = ks
            .decrypt(&password, &Default::default())
            .with_context(|| format!("decrypting {}", keystore.display()))?;
        let secret = key.dangerous_secret_bytes();
        let dealing = signward_threshold::split(&secret, threshold, n)
            .map_err(|e| anyhow::anyhow!("splitting the key: {e}"))?;
        if dealing.commitments.group_public_key() != key.public_key().0 {
            bail!("the split does not commit to the keystore's public key");
        }
        dealing
        // `secret` and `key` are wiped here.
    };
    super::ensure_private_dir(out_dir)?;
    let group_key = format!("0x{}", hex::encode(dealing.commitments.group_public_key()));
    for (share, (index, recipient)) in dealing.shares.iter().zip(&recipients) {
        dealing
            .commitments
            .verify_share(share)
            .map_err(|e| anyhow::anyhow!("share {index}: {e}"))?;
        let doc = GroupShare {
            share: SecretShare::from_bytes(*index, &share.dangerous_bytes())
                .map_err(|e| anyhow::anyhow!("share {index}: {e}"))?,
            commitments: dealing.commitments.clone(),
        }
        .to_document();
        let sealed = signward_vault::backup::encrypt_armored(recipient, &doc)
            .map_err(|e| anyhow::anyhow!("encrypting share {index}: {e}"))?;
        let path = out_dir.join(format!("share-{index}.age"));
        if path.exists() {
            bail!("{} exists; shares are never overwritten", path.display());
        }
        write_secret_file(&path, &sealed).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{group_key}");
    Ok(())
}

/// `--group-config`: this peer in its signing group.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    index: u32,
    listen: std::net::SocketAddr,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    /// Share files (age) and the identity that opens them. Without them, the shares are in the
    /// sealed vault (`signward group import`) and load when it is unsealed.
    #[serde(default)]
    age_identity: Option<PathBuf>,
    #[serde(default)]
    shares: Vec<PathBuf>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    /// What the other peers may ask this peer to sign (operation names, `duties` for all of a
    /// validator's duties). Default: duties without validator registrations.
    #[serde(default)]
    peer_operations: Option<Vec<String>>,
    /// Fee recipients a peer may ask a validator registration for; required when
    /// `peer_operations` allows registrations.
    #[serde(default)]
    peer_fee_recipients: Option<Vec<String>>,
    /// Compromised peers the group's slashing protection must withstand: 2t > n + f.
    #[serde(default)]
    tolerate_compromised: u32,
    /// The age recipients this peer may deal shares to (`group split-vault-key`, `group
    /// reshare`): the peers of the group, and of a group it is being refreshed into. Nothing
    /// else: an API credential never chooses where a share goes.
    #[serde(default)]
    share_recipients: Vec<String>,
    peers: Vec<PeerFile>,
}

fn default_timeout_ms() -> u64 {
    2000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    index: u32,
    addr: String,
    cert_sha256: String,
}

/// A peer's group, read and checked before anything listens.
pub struct GroupSetup {
    /// Where the peer listener binds.
    pub listen: std::net::SocketAddr,
    /// The TLS identity and pins.
    pub tls: GroupTls,
    /// The engine's part.
    pub groups: Groups,
}

/// Read `--group-config`: the TOML, this peer's certificate and key, and its share files
/// (decrypted with its age identity, each checked against its commitments).
pub fn load(path: &Path) -> anyhow::Result<GroupSetup> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    crate::config::check_permissions(path, &text)?;
    let file: GroupFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a group configuration", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let rel = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let mut seen = std::collections::BTreeSet::from([file.index]);
    let mut peers = Vec::new();
    for p in &file.peers {
        if !seen.insert(p.index) {
            bail!("{}: peer index {} appears twice", path.display(), p.index);
        }
        let pin = p.cert_sha256.trim().to_ascii_lowercase();
        if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "{}: peer {}: cert_sha256 must be 64 hex digits",
                path.display(),
                p.index
            );
        }
        peers.push(Peer {
            index: p.index,
            addr: p.addr.clone(),
            cert_sha256: pin,
        });
    }
    let mut pins = std::collections::BTreeSet::new();
    for p in &peers {
        if !pins.insert(p.cert_sha256.clone()) {
            bail!(
                "{}: two peers share the pin {}",
                path.display(),
                p.cert_sha256
            );
        }
    }
    let tls = GroupTls::load(&rel(&file.tls_cert), &rel(&file.tls_key), peers)
        .context("the group's TLS identity")?;
    if tls.pins().contains_key(&tls.own_fingerprint()) {
        bail!(
            "{}: a peer is pinned to this peer's own certificate",
            path.display()
        );
    }
    let timeout = Duration::from_millis(file.timeout_ms.clamp(100, 60_000));
    let client = tls.client(timeout).context("the group's TLS client")?;
    let mut policy = signward_engine::group::default_peer_policy();
    if let Some(ops) = &file.peer_operations {
        policy.allow_ops = Some(
            signward_auth::parse_operations(ops)
                .map_err(|e| anyhow::anyhow!("{}: peer_operations: {e}", path.display()))?,
        );
    }
    if let Some(list) = &file.peer_fee_recipients {
        let mut set = std::collections::BTreeSet::new();
        for a in list {
            set.insert(
                signward_policy::parse_address(a)
                    .map_err(|e| anyhow::anyhow!("{}: peer_fee_recipients: {e}", path.display()))?,
            );
        }
        policy.fee_recipients = Some(set);
    }
    let registrations = policy
        .allow_ops
        .as_ref()
        .is_some_and(|o| o.contains(&signward_auth::Operation::ValidatorRegistration));
    if registrations && policy.fee_recipients.is_none() {
        bail!(
            "{}: peer_operations allows validator registrations: set peer_fee_recipients, or a \
             compromised peer could register the validator to its own fee recipient",
            path.display()
        );
    }
    let groups = Groups::new(
        file.index,
        file.peers.iter().map(|p| p.index).collect(),
        Arc::new(client),
        timeout,
    )
    .with_peer_policy(policy)
    .with_tolerated_compromise(file.tolerate_compromised)
    .with_share_recipients(
        file.share_recipients
            .iter()
            .map(|r| {
                age::x25519::Recipient::from_str(r.trim())
                    .map(|r| r.to_string())
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "{}: share_recipients: {r} is not an age recipient",
                            path.display()
                        )
                    })
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let identities = match (&file.age_identity, file.shares.is_empty()) {
        (_, true) => Vec::new(),
        (Some(identity), false) => signward_vault::share::read_identities(&rel(identity))
            .map_err(|e| anyhow::anyhow!("{}: {e}", identity.display()))?,
        (None, false) => bail!(
            "{}: share files need age_identity, the file that opens them",
            path.display()
        ),
    };
    for s in &file.shares {
        let p = rel(s);
        let (secret, commitments) = open_share_with(&p, &identities)?;
        let key = groups
            .add(
                GroupShare {
                    share: secret,
                    commitments,
                },
                signward_engine::state::KeyOrigin::File,
            )
            .with_context(|| p.display().to_string())?;
        tracing::info!(group_key = %key.to_hex(), index = file.index, "signing group: share loaded");
    }
    Ok(GroupSetup {
        listen: file.listen,
        tls,
        groups,
    })
}
