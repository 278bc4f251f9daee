//! A threshold signing group of three real `signward serve` processes, t = 2, each with its own
//! data directory and slashing database, talking pinned mTLS: a dealer split of a keystore, every
//! duty signed through any peer (the group's signature is byte-for-byte the whole key's, signed by
//! an ordinary signward), one peer killed (duties continue), two killed (nothing signed), and a
//! compromised peer asking the honest ones for a slashable message (refused by each); key
//! generation and refresh with no whole key; 3-of-4 against a compromised peer; and shares kept in
//! each peer's sealed vault, refreshed there, with `group status`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use signward_engine::group::{PeerClient, PeerFailure};
use signward_server::peers::{GroupTls, Peer};

const GVR: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";

fn attestation(source: u64, target: u64, block_root_byte: u64) -> Value {
    attestation_at(GVR, source, target, block_root_byte)
}

struct Identity {
    dir: PathBuf,
    name: String,
    pin: String,
    recipient: String,
}

impl Identity {
    fn new(d: &Path, name: &str) -> Identity {
        let dir = d.join(name);
        let out = sw_ok(
            &["group", "identity", "--out-dir", s(&dir), "--name", name],
            &[],
        );
        let field = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
                .and_then(|v| v.strip_suffix('"'))
                .unwrap()
                .to_string()
        };
        Identity {
            pin: field("cert_sha256"),
            recipient: field("age_recipient"),
            name: name.to_string(),
            dir,
        }
    }

    fn cert(&self) -> PathBuf {
        self.dir.join(format!("{}.crt", self.name))
    }

    fn key(&self) -> PathBuf {
        self.dir.join(format!("{}.key", self.name))
    }

    fn agekey(&self) -> PathBuf {
        self.dir.join(format!("{}.agekey", self.name))
    }

    /// The real peer client, with this identity, pinned to `peers`: what a (compromised) peer
    /// would send.
    fn client(&self, peers: &[(u32, u16, &str)]) -> signward_server::peers::HttpPeers {
        let peers = peers
            .iter()
            .map(|(index, port, pin)| Peer {
                index: *index,
                addr: format!("127.0.0.1:{port}"),
                cert_sha256: pin.to_string(),
            })
            .collect();
        GroupTls::load(&self.cert(), &self.key(), peers)
            .unwrap()
            .client(Duration::from_secs(5))
            .unwrap()
    }
}

/// A peer's group configuration; `share` is a share file, or `None` for shares in the vault.
fn group_config(
    d: &Path,
    me: u32,
    id: &Identity,
    listen: u16,
    share: Option<&Path>,
    others: &[(u32, u16, &str)],
) -> PathBuf {
    let mut text = format!(
        "index = {me}\nlisten = \"127.0.0.1:{listen}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntimeout_ms = 2000\n",
        s(&id.cert()),
        s(&id.key()),
    );
    if let Some(share) = share {
        text.push_str(&format!(
            "age_identity = \"{}\"\nshares = [\"{}\"]\n",
            s(&id.agekey()),
            s(share)
        ));
    }
    for (index, port, pin) in others {
        text.push_str(&format!(
            "\n[[peers]]\nindex = {index}\naddr = \"127.0.0.1:{port}\"\ncert_sha256 = \"{pin}\"\n"
        ));
    }
    let p = d.join(format!("group-{me}.toml"));
    write_secret(&p, text.as_bytes());
    p
}

fn code(r: &Response) -> String {
    r.json()["code"].as_str().unwrap_or_default().to_string()
}

fn signature(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["signature"].as_str().unwrap().to_string()
}

fn partial(
    rt: &tokio::runtime::Runtime,
    client: &signward_server::peers::HttpPeers,
    peer: u32,
    key: &str,
    body: &Value,
) -> Result<signward_engine::group::PartialSignature, PeerFailure> {
    let key: signward_core::bytes::PublicKeyBytes = key.parse().unwrap();
    let body: Arc<[u8]> = serde_json::to_vec(body).unwrap().into();
    rt.block_on(client.partial(peer, key, body))
}

#[test]
fn three_peers_two_of_three_sign_every_duty_and_refuse_what_is_slashable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let net = minimal_network(d);
    let keystores = pbkdf2_keystores(d, "whole", b"group test password", 2);
    let (keystore, other_keystore) = (&keystores[0], &keystores[1]);
    let pass = d.join("whole.pass");

    // The reference: the same key held whole by an ordinary signward.
    let whole_dir = d.join("whole-only");
    std::fs::create_dir_all(whole_dir.join("keys")).unwrap();
    std::fs::copy(keystore, whole_dir.join("keys/k.json")).unwrap();
    let whole = Server::start(
        &whole_dir,
        &[
            "--network",
            s(&net),
            "--keystores-path",
            s(&whole_dir.join("keys")),
            "--keystores-password-file",
            s(&pass),
        ],
    );
    let gpk = whole.public_keys()[0].clone();
    let reference = |b: &Value| signature(&whole.sign(&gpk, b));

    // Identities, and the dealer split to the three peers' age recipients.
    let ids: Vec<Identity> = (1..=3)
        .map(|i| Identity::new(d, &format!("p{i}")))
        .collect();
    let shares = d.join("shares");
    let printed = sw_ok(
        &[
            "group",
            "split",
            "--keystore",
            s(keystore),
            "--password-file",
            s(&pass),
            "--threshold",
            "2",
            "--peer",
            &format!("1={}", ids[0].recipient),
            "--peer",
            &format!("2={}", ids[1].recipient),
            "--peer",
            &format!("3={}", ids[2].recipient),
            "--out-dir",
            s(&shares),
        ],
        &[],
    );
    assert_eq!(
        printed.trim(),
        gpk,
        "the group key is the keystore's own key"
    );
    // A share file opens only with its own peer's identity, and holds no plaintext secret.
    let sealed = std::fs::read_to_string(shares.join("share-1.age")).unwrap();
    assert!(sealed.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));

    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peer_dirs: Vec<PathBuf> = (1..=3).map(|i| d.join(format!("peer{i}"))).collect();
    let mut servers: Vec<Option<Server>> = Vec::new();
    for i in 0..3 {
        let others: Vec<(u32, u16, &str)> = (0..3)
            .filter(|&j| j != i)
            .map(|j| (j as u32 + 1, ports[j], ids[j].pin.as_str()))
            .collect();
        let cfg = group_config(
            d,
            i as u32 + 1,
            &ids[i],
            ports[i],
            Some(&shares.join(format!("share-{}.age", i + 1))),
            &others,
        );
        std::fs::create_dir_all(&peer_dirs[i]).unwrap();
        let mut args = vec!["--network", s(&net), "--group-config", s(&cfg)];
        // Peer 2 also holds another key whole: peers must never get signatures with it.
        let other_keys = peer_dirs[i].join("keys");
        if i == 1 {
            std::fs::create_dir_all(&other_keys).unwrap();
            std::fs::copy(other_keystore, other_keys.join("k.json")).unwrap();
            args.extend([
                "--keystores-path",
                s(&other_keys),
                "--keystores-password-file",
                s(&pass),
            ]);
        }
        servers.push(Some(Server::start(&peer_dirs[i], &args)));
    }
    fn up(servers: &[Option<Server>], i: usize) -> &Server {
        servers[i].as_ref().unwrap()
    }
    assert!(up(&servers, 0).public_keys().contains(&gpk));

    // Every duty through any peer is the whole key's signature, and verifies under the group
    // key with an independent implementation (signing root from the specs, py_ecc).
    let mut cases = Vec::new();
    for (n, coordinator) in [0usize, 1, 2, 0, 1, 2].into_iter().enumerate() {
        let n = n as u64;
        let body = attestation(10 + n, 20 + n, 1);
        let started = Instant::now();
        let sig = signature(&up(&servers, coordinator).sign(&gpk, &body));
        assert_eq!(
            sig,
            reference(&body),
            "duty {n} through peer {}",
            coordinator + 1
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        cases.push(
            json!({"name": format!("duty {n}"), "pubkey": gpk, "request": body, "signature": sig}),
        );
    }
    if let Some(python) = python() {
        let (ok, out) = run_python(
            &python,
            "verify_signatures.py",
            &[],
            &json!({"preset": "minimal", "genesis_fork_version": "0x00000001", "cases": cases}),
        );
        assert!(ok, "py_ecc: {out}");
        assert_eq!(
            out["results"].as_array().map(|r| r.len()),
            Some(cases.len())
        );
    }

    // Conflicting votes for one target, all at once, through every peer: at most one signature
    // (2t > n: any two sets of signers share a peer, whose database refuses the second).
    let signed: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12u64)
            .map(|k| {
                let server = up(&servers, (k % 3) as usize);
                let gpk = &gpk;
                scope.spawn(move || server.sign(gpk, &attestation(200, 210, 100 + k)).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        signed.iter().filter(|&&st| st == 200).count() <= 1,
        "conflicting votes signed: {signed:?}"
    );
    assert!(
        signed.iter().all(|&st| st == 200 || st == 412 || st == 503),
        "{signed:?}"
    );
    // The group still signs the next duty.
    let body = attestation(211, 212, 1);
    assert_eq!(
        signature(&up(&servers, 2).sign(&gpk, &body)),
        reference(&body)
    );

    // A double vote through a coordinator that signed the first: refused by its own database.
    let r = up(&servers, 0).sign(&gpk, &attestation(10, 20, 2));
    assert_eq!((r.status, code(&r).as_str()), (412, "double_vote"));
    // A surround vote through another: every peer that took part refuses it.
    let r = up(&servers, 1).sign(&gpk, &attestation(9, 30, 1));
    assert_eq!(r.status, 412, "{}", r.text());

    // A compromised peer 1 (its own certificate and key) asks the honest peers directly.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let evil = ids[0].client(&[(2, ports[1], &ids[1].pin), (3, ports[2], &ids[2].pin)]);
    let fresh = attestation(40, 50, 1);
    for p in [2u32, 3] {
        assert!(
            partial(&rt, &evil, p, &gpk, &fresh).is_ok(),
            "an honest request is served"
        );
    }
    let conflicting = attestation(40, 50, 7);
    for p in [2u32, 3] {
        assert_eq!(
            partial(&rt, &evil, p, &gpk, &conflicting).err(),
            Some(PeerFailure::Refused("double_vote".into())),
            "peer {p} refuses a slashable message from a compromised coordinator"
        );
    }
    // Exits and registrations are not duties: the honest peers refuse them to a peer unless
    // their group configuration grants them (a compromised peer would exit the validator or
    // redirect its fees).
    for name in ["VOLUNTARY_EXIT", "VALIDATOR_REGISTRATION"] {
        let body = examples().into_iter().find(|c| c["name"] == name).unwrap()["request"].clone();
        for p in [2u32, 3] {
            assert_eq!(
                partial(&rt, &evil, p, &gpk, &body).err(),
                Some(PeerFailure::Refused("operation_denied".into())),
                "{name} from peer {p}"
            );
        }
    }
    // Peer 2's whole key is not served to peers.
    let other_pk = up(&servers, 1)
        .public_keys()
        .into_iter()
        .find(|k| *k != gpk)
        .unwrap();
    assert_eq!(
        partial(&rt, &evil, 2, &other_pk, &attestation(1, 2, 1)).err(),
        Some(PeerFailure::Refused("unknown_key".into()))
    );
    // An identity that is not pinned gets no handshake, with either honest peer.
    let stranger = Identity::new(d, "p4");
    let outsider = stranger.client(&[(2, ports[1], &ids[1].pin)]);
    assert_eq!(
        partial(&rt, &outsider, 2, &gpk, &attestation(60, 70, 1)).err(),
        Some(PeerFailure::Unreachable)
    );
    // A peer that pins the wrong certificate for peer 2 refuses to talk to it.
    let misled = ids[0].client(&[(2, ports[1], &ids[2].pin)]);
    assert_eq!(
        partial(&rt, &misled, 2, &gpk, &attestation(60, 70, 1)).err(),
        Some(PeerFailure::Unreachable)
    );

    // Peer 3 killed: duties continue through peers 1 and 2.
    drop(servers[2].take());
    for coordinator in [0usize, 1] {
        let body = attestation(80 + coordinator as u64, 90 + coordinator as u64, 1);
        assert_eq!(
            signature(&up(&servers, coordinator).sign(&gpk, &body)),
            reference(&body)
        );
    }
    // Peer 1's health check names peer 3 as failing, and counts what it coordinated.
    let health = up(&servers, 0)
        .request("GET", "/healthcheck", &[], b"")
        .json();
    let group = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "group-check")
        .unwrap()
        .clone();
    assert_eq!(group["status"], "UP", "{group}");
    assert!(group["data"]["signed"].as_u64().unwrap() >= 2, "{group}");
    let third = group["data"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["index"] == 3)
        .unwrap()
        .clone();
    assert!(third["failures"].as_u64().unwrap() >= 1, "{group}");
    assert_eq!(third["last-failure"], "unreachable", "{group}");

    // Peer 3's address now accepts connections and never answers (a hung peer, half-open
    // connections): duties still complete through peer 2, within the group's timeout.
    let black_hole = std::net::TcpListener::bind(("127.0.0.1", ports[2])).unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let held = held.clone();
        std::thread::spawn(move || {
            for c in black_hole.incoming().flatten() {
                held.lock().unwrap().push(c);
            }
        });
    }
    for k in 0..3u64 {
        let body = attestation(95 + k, 100 + k, 1);
        let started = Instant::now();
        assert_eq!(
            signature(&up(&servers, 0).sign(&gpk, &body)),
            reference(&body)
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
    // Peer 2 killed as well: nothing is signed, within the group's timeout.
    drop(servers[1].take());
    let started = Instant::now();
    let r = up(&servers, 0).sign(&gpk, &attestation(120, 130, 1));
    assert_eq!((r.status, code(&r).as_str()), (503, "group_unavailable"));
    assert!(started.elapsed() < Duration::from_secs(8));

    // Peer 2's audit log holds what the compromised peer 1 asked of it, and what it decided.
    let out = sw_ok(
        &[
            "audit",
            "query",
            "--caller",
            "peer-1",
            "--data-dir",
            s(&peer_dirs[1].join("data")),
        ],
        &[],
    );
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["event"].as_str().unwrap_or_default().to_string(),
                r["decision"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for expected in ["signed", "refused"] {
        assert!(
            seen.contains(&("partial_sign".to_string(), expected.to_string())),
            "{seen:?}"
        );
    }
    assert!(
        records
            .iter()
            .any(|r| r.to_string().contains("double_vote")),
        "{records:?}"
    );
    let verify = run_signward(&["audit", "verify"], &peer_dirs[1].join("data"));
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn group_setup_refuses_what_would_weaken_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keystores = pbkdf2_keystores(d, "k", b"pw", 1);
    let pass = d.join("k.pass");
    let id = Identity::new(d, "p1");
    // `group split` of the keystore with `threshold`, to one recipient per index in `indexes`.
    let split = |threshold: &str, indexes: &[u32], out: &str, needle: &str| {
        let peers: Vec<String> = indexes
            .iter()
            .flat_map(|i| ["--peer".to_string(), format!("{i}={}", id.recipient)])
            .collect();
        let mut args = vec![
            "group",
            "split",
            "--keystore",
            s(&keystores[0]),
            "--password-file",
            s(&pass),
            "--threshold",
            threshold,
        ];
        args.extend(strs(&peers));
        let out = d.join(out);
        args.extend(["--out-dir", s(&out)]);
        sw_err(&args, &[], needle);
    };
    // A threshold of 1 would give each peer the whole key.
    split("1", &[1, 2], "s1", "invalid threshold");
    // A threshold that is not a majority: two halves could sign conflicting messages.
    split(
        "2",
        &[1, 2, 3, 4],
        "s0",
        "does not keep slashing protection",
    );
    // Indexes must be 1..=n.
    split("2", &[1, 3], "s2", "indexes must be");
    // An identity is never overwritten.
    sw_err(
        &["group", "identity", "--out-dir", s(&id.dir), "--name", "p1"],
        &[],
        "never overwritten",
    );
    // The TLS key is owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(id.key()).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0);
}

/// Distributed key generation with no dealer (`group init` by every peer, then `group join`),
/// three peers serving the group key no process ever held, then a refresh by two of them: the
/// key is unchanged, the refreshed group signs, and an old share beside new ones signs nothing.
#[test]
fn key_generation_and_refresh_without_any_whole_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let net = minimal_network(d);
    let ids: Vec<Identity> = (1..=3)
        .map(|i| Identity::new(d, &format!("p{i}")))
        .collect();
    let peer_args: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("{}={}", i + 1, id.recipient))
        .collect();
    let agekey = |i: usize| ids[i].dir.join(format!("{}.agekey", ids[i].name));

    // Step 1: every peer deals.
    let deal_dir = |i: usize| d.join(format!("dkg-{}", i + 1));
    let mut own_hashes = Vec::new();
    for i in 0..3 {
        let index = (i + 1).to_string();
        let mut args = vec!["group", "init", "--index", &index, "--threshold", "2"];
        for p in &peer_args {
            args.extend(["--peer", p.as_str()]);
        }
        let out = deal_dir(i);
        args.extend(["--out-dir", s(&out)]);
        let printed = sw_ok(&args, &[]);
        own_hashes.push(
            printed
                .lines()
                .find_map(|l| l.strip_prefix("dealing_sha256 = \""))
                .and_then(|v| v.strip_suffix('"'))
                .unwrap()
                .to_string(),
        );
    }
    // Step 2: every peer joins with all three dealings; all see the same group.
    // `group join` as peer `index` (1-based) with the identity of peer `identity`, its own
    // dealing's hash when given, the dealings and the share file to write.
    let join_args = |index: usize,
                     identity: usize,
                     own: Option<&str>,
                     dealings: &[&PathBuf],
                     out: &str|
     -> Vec<String> {
        let mut args: Vec<String> = vec![
            "group".into(),
            "join".into(),
            "--index".into(),
            index.to_string(),
            "--identity".into(),
            s(&agekey(identity - 1)).into(),
            "--recipient".into(),
            ids[index - 1].recipient.clone(),
            "--out".into(),
            s(&d.join(out)).into(),
        ];
        if let Some(own) = own {
            args.extend(["--own-dealing-sha256".into(), own.to_string()]);
        }
        for dd in dealings {
            args.extend(["--dealing".into(), s(dd).into()]);
        }
        args
    };
    let join = |i: usize, dealings: &[PathBuf], out: &str| -> String {
        let dealings: Vec<&PathBuf> = dealings.iter().collect();
        let own = own_hashes.get(i).map(String::as_str);
        sw_ok(&strs(&join_args(i + 1, i + 1, own, &dealings, out)), &[])
    };
    let dkg: Vec<PathBuf> = (0..3).map(deal_dir).collect();
    let shares: Vec<PathBuf> = (0..3)
        .map(|i| d.join(format!("dkg-share-{}.age", i + 1)))
        .collect();
    let printed: Vec<String> = (0..3)
        .map(|i| join(i, &dkg, &format!("dkg-share-{}.age", i + 1)))
        .collect();
    assert!(printed.iter().all(|p| *p == printed[0]), "{printed:?}");
    let gpk = printed[0]
        .lines()
        .find_map(|l| l.strip_prefix("group_public_key = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap()
        .to_string();
    // Whoever handles the exchanged files cannot swap a peer's own dealing for one it made
    // (it would then know every contribution, and so the key): the peer checks its own.
    let forged = d.join("forged");
    {
        let mut args = vec!["group", "init", "--index", "1", "--threshold", "2"];
        for p in &peer_args {
            args.extend(["--peer", p.as_str()]);
        }
        args.extend(["--out-dir", s(&forged)]);
        sw_ok(&args, &[]);
    }
    sw_err(
        &strs(&join_args(
            1,
            1,
            Some(&own_hashes[0]),
            &[&forged, &dkg[1], &dkg[2]],
            "w.age",
        )),
        &[],
        "not the dealing this peer made",
    );
    sw_err(
        &strs(&join_args(
            1,
            1,
            None,
            &[&dkg[0], &dkg[1], &dkg[2]],
            "v.age",
        )),
        &[],
        "--own-dealing-sha256",
    );
    // A peer cannot join with another peer's identity, nor with a dealing missing.
    sw_err(
        &strs(&join_args(
            1,
            2,
            Some(&own_hashes[0]),
            &[&dkg[0], &dkg[1], &dkg[2]],
            "x.age",
        )),
        &[],
        "to-1.age",
    );
    sw_err(
        &strs(&join_args(
            1,
            1,
            Some(&own_hashes[0]),
            &[&dkg[0], &dkg[1]],
            "y.age",
        )),
        &[],
        "every peer's dealing",
    );

    let start = |shares: &[PathBuf], tag: &str| -> Vec<Server> {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        (0..3)
            .map(|i| {
                let others: Vec<(u32, u16, &str)> = (0..3)
                    .filter(|&j| j != i)
                    .map(|j| (j as u32 + 1, ports[j], ids[j].pin.as_str()))
                    .collect();
                let peer_dir = d.join(format!("{tag}-peer{}", i + 1));
                std::fs::create_dir_all(&peer_dir).unwrap();
                let cfg = group_config(
                    &peer_dir,
                    i as u32 + 1,
                    &ids[i],
                    ports[i],
                    Some(&shares[i]),
                    &others,
                );
                Server::start(
                    &peer_dir,
                    &["--network", s(&net), "--group-config", s(&cfg)],
                )
            })
            .collect()
    };
    let verify = |cases: Vec<Value>| {
        if let Some(python) = python() {
            let (ok, out) = run_python(
                &python,
                "verify_signatures.py",
                &[],
                &json!({"preset": "minimal", "genesis_fork_version": "0x00000001", "cases": cases}),
            );
            assert!(ok, "py_ecc: {out}");
        }
    };
    let mut cases = Vec::new();
    {
        let peers = start(&shares, "dkg");
        assert!(peers[0].public_keys().contains(&gpk));
        for (k, p) in peers.iter().enumerate() {
            let body = attestation(1 + k as u64, 2 + k as u64, 1);
            let sig = signature(&p.sign(&gpk, &body));
            cases.push(json!({"name": format!("dkg {k}"), "pubkey": gpk, "request": body, "signature": sig}));
        }
    }
    verify(cases);

    // Refresh by peers 1 and 3 (t = 2 of the old group) to the same three peers.
    let refresh_dir = |i: usize| d.join(format!("refresh-{}", i + 1));
    for i in [0usize, 2] {
        let key = agekey(i);
        let mut args = vec![
            "group",
            "refresh",
            "--share",
            s(&shares[i]),
            "--identity",
            s(&key),
            "--threshold",
            "2",
        ];
        for p in &peer_args {
            args.extend(["--peer", p.as_str()]);
        }
        let out = refresh_dir(i);
        args.extend(["--out-dir", s(&out)]);
        sw_ok(&args, &[]);
    }
    let refreshed: Vec<PathBuf> = vec![refresh_dir(0), refresh_dir(2)];
    let new_shares: Vec<PathBuf> = (0..3)
        .map(|i| d.join(format!("new-share-{}.age", i + 1)))
        .collect();
    let printed_new: Vec<String> = (0..3)
        .map(|i| join(i, &refreshed, &format!("new-share-{}.age", i + 1)))
        .collect();
    assert!(printed_new.iter().all(|p| *p == printed_new[0]));
    assert!(
        printed_new[0].contains(&gpk),
        "the group key is unchanged: {}",
        printed_new[0]
    );
    assert_ne!(printed_new[0], printed[0], "new commitments");
    // A refresh needs exactly the old threshold of holders.
    sw_err(
        &strs(&join_args(2, 2, None, &[&refreshed[0]], "z.age")),
        &[],
        "dealers given",
    );

    let mut cases = Vec::new();
    {
        // The refreshed group signs.
        let peers = start(&new_shares, "new");
        let body = attestation(10, 11, 1);
        let sig = signature(&peers[1].sign(&gpk, &body));
        cases.push(json!({"name": "refreshed", "pubkey": gpk, "request": body, "signature": sig}));
    }
    verify(cases);
    {
        // New shares for peers 1 and 2, the old one for peer 3; peer 2 down: peer 1's new
        // share and peer 3's old one make no signature.
        let mixed = vec![
            new_shares[0].clone(),
            new_shares[1].clone(),
            shares[2].clone(),
        ];
        let mut peers = start(&mixed, "mixed");
        drop(peers.remove(1));
        let r = peers[0].sign(&gpk, &attestation(20, 21, 1));
        assert_eq!(
            (r.status, code(&r).as_str()),
            (503, "group_unavailable"),
            "{}",
            r.text()
        );
        let r = peers[1].sign(&gpk, &attestation(22, 23, 1));
        assert_eq!(
            (r.status, code(&r).as_str()),
            (503, "group_unavailable"),
            "{}",
            r.text()
        );
    }
}

/// With 3-of-4 and `tolerate_compromised = 1`, a compromised peer that sends one attestation to
/// some honest peers and a conflicting one to the others cannot collect enough partials for both:
/// each needs t - 1 = 2 honest partials, and only three honest peers exist, each refusing the
/// second message it sees. (With 2-of-3 it could: docs/threshold.md.)
#[test]
fn one_compromised_peer_of_four_cannot_get_a_slashable_pair() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let net = minimal_network(d);
    let keystores = pbkdf2_keystores(d, "k", b"pw", 1);
    let pass = d.join("k.pass");
    let ids: Vec<Identity> = (1..=4)
        .map(|i| Identity::new(d, &format!("q{i}")))
        .collect();
    let shares = d.join("shares");
    let mut args: Vec<String> = [
        "group",
        "split",
        "--keystore",
        s(&keystores[0]),
        "--password-file",
        s(&pass),
        "--threshold",
        "3",
        "--tolerate-compromised",
        "1",
        "--out-dir",
        s(&shares),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    for (i, id) in ids.iter().enumerate() {
        args.push("--peer".into());
        args.push(format!("{}={}", i + 1, id.recipient));
    }
    let gpk = sw_ok(&strs(&args), &[]).trim().to_string();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let servers: Vec<Server> = (0..4)
        .map(|i| {
            let others: Vec<(u32, u16, &str)> = (0..4)
                .filter(|&j| j != i)
                .map(|j| (j as u32 + 1, ports[j], ids[j].pin.as_str()))
                .collect();
            let peer_dir = d.join(format!("peer{}", i + 1));
            std::fs::create_dir_all(&peer_dir).unwrap();
            let cfg = group_config(
                &peer_dir,
                i as u32 + 1,
                &ids[i],
                ports[i],
                Some(&shares.join(format!("share-{}.age", i + 1))),
                &others,
            );
            let mut text = std::fs::read_to_string(&cfg).unwrap();
            text = text.replacen(
                "timeout_ms = 2000\n",
                "timeout_ms = 2000\ntolerate_compromised = 1\n",
                1,
            );
            write_secret(&cfg, text.as_bytes());
            Server::start(
                &peer_dir,
                &["--network", s(&net), "--group-config", s(&cfg)],
            )
        })
        .collect();
    // An honest duty through any peer.
    let r = servers[1].sign(&gpk, &attestation(1, 2, 1));
    assert_eq!(r.status, 200, "{}", r.text());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let evil = ids[0].client(&[
        (2, ports[1], &ids[1].pin),
        (3, ports[2], &ids[2].pin),
        (4, ports[3], &ids[3].pin),
    ]);
    let a = attestation(5, 6, 1);
    let b = attestation(5, 6, 2);
    // The best split for the attacker: A to peers 2 and 3, B to peer 4.
    let mut honest_a = 0;
    let mut honest_b = 0;
    for p in [2u32, 3] {
        honest_a += partial(&rt, &evil, p, &gpk, &a).is_ok() as u32;
    }
    honest_b += partial(&rt, &evil, 4, &gpk, &b).is_ok() as u32;
    // Then each message to the peers that have the other.
    for p in [2u32, 3] {
        let r = partial(&rt, &evil, p, &gpk, &b);
        assert_eq!(
            r.clone().err(),
            Some(PeerFailure::Refused("double_vote".into()))
        );
        honest_b += r.is_ok() as u32;
    }
    let r = partial(&rt, &evil, 4, &gpk, &a);
    assert_eq!(
        r.clone().err(),
        Some(PeerFailure::Refused("double_vote".into()))
    );
    honest_a += r.is_ok() as u32;
    // With its own partial the attacker has t = 3 for A and 2 for B: at most one signature.
    assert_eq!((honest_a, honest_b), (2, 1));
    assert!(honest_a.min(honest_b) + 1 < 3);
}

/// Shares kept in each peer's sealed vault: `group import` seals a peer's share there (its own
/// share only, by an admin only), the peer signs with it once unsealed and again after a restart
/// with the share file gone, sealing wipes it (the group goes on with the others, then stops),
/// a refreshed share replaces the old one, and `group status` shows every peer as it is.
#[test]
fn shares_in_the_sealed_vault_with_group_status() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let net = minimal_network(d);
    let keystores = pbkdf2_keystores(d, "whole", b"group vault password", 1);
    let pass = d.join("whole.pass");
    let ids: Vec<Identity> = (1..=3)
        .map(|i| Identity::new(d, &format!("p{i}")))
        .collect();
    let peer_args: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("{}={}", i + 1, id.recipient))
        .collect();
    let split_dir = d.join("split");
    let mut args = vec![
        "group",
        "split",
        "--keystore",
        s(&keystores[0]),
        "--password-file",
        s(&pass),
        "--threshold",
        "2",
        "--out-dir",
        s(&split_dir),
    ];
    for p in &peer_args {
        args.extend(["--peer", p.as_str()]);
    }
    let gpk = sw_ok(&args, &[]).trim().to_string();
    let share_file = |i: usize| split_dir.join(format!("share-{}.age", i + 1));

    // Three peers, each with its own vault (unsealed at start from its operators' shares) and
    // no share in its group configuration.
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peer_dirs: Vec<PathBuf> = (1..=3).map(|i| d.join(format!("vpeer{i}"))).collect();
    let mut unseal_args = Vec::new();
    let mut configs = Vec::new();
    for i in 0..3 {
        std::fs::create_dir_all(&peer_dirs[i]).unwrap();
        let (vid, vshares) = init_age(&peer_dirs[i], &peer_dirs[i].join("data"), 2, 2);
        unseal_args.push((vid, vshares));
        let others: Vec<(u32, u16, &str)> = (0..3)
            .filter(|&j| j != i)
            .map(|j| (j as u32 + 1, ports[j], ids[j].pin.as_str()))
            .collect();
        let cfg = group_config(
            &peer_dirs[i],
            i as u32 + 1,
            &ids[i],
            ports[i],
            None,
            &others,
        );
        // Where this peer may deal shares (split, reshare): the three peers' recipients.
        let pinned: Vec<String> = ids
            .iter()
            .map(|id| format!("\"{}\"", id.recipient))
            .collect();
        let text = std::fs::read_to_string(&cfg).unwrap().replacen(
            "\n[[peers]]",
            &format!("share_recipients = [{}]\n\n[[peers]]", pinned.join(", ")),
            1,
        );
        write_secret(&cfg, text.as_bytes());
        configs.push(cfg);
    }
    let start = |i: usize| -> Server {
        let mut args = vec![
            "--network".to_string(),
            s(&net).into(),
            "--group-config".into(),
            s(&configs[i]).into(),
        ];
        args.extend(unattended(&unseal_args[i].0, &unseal_args[i].1));
        Server::start_with_auth(&peer_dirs[i], &strs(&args))
    };
    let mut servers: Vec<Server> = (0..3).map(start).collect();
    let mut admins: Vec<Admin> = (0..3)
        .map(|i| Admin::new(&peer_dirs[i], &servers[i]))
        .collect();
    let vc: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "Bearer {}",
                credential(&peer_dirs[i], &["--name", "vc", "--scope", "sign"])
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1200));
    let sign = |servers: &[Server], i: usize, b: &Value| sign_with(&servers[i], &vc[i], &gpk, b);
    // `group import` of `file` opened with peer `identity`'s age identity, with `extra` flags
    // (`--new-key`, `--slashing-protection FILE`).
    let import_with = |a: &Admin, file: &Path, identity: usize, extra: &[&str]| {
        let agekey = ids[identity].agekey();
        let mut args = a.args(&[
            "group",
            "import",
            "--share",
            s(file),
            "--identity",
            s(&agekey),
        ]);
        args.extend(extra);
        sw(&args, &[])
    };
    let import = |a: &Admin, file: &Path, identity: usize| -> std::process::Output {
        import_with(a, file, identity, &["--new-key"])
    };
    let status = |a: &Admin| -> (bool, Value) {
        let out = sw(&a.args(&["group", "status"]), &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        let json_end = text.rfind('}').map_or(0, |e| e + 1);
        (
            out.status.success(),
            serde_json::from_str(&text[..json_end]).unwrap_or(Value::Null),
        )
    };

    // Before any import the group key is unknown here.
    let r = sign(&servers, 0, &attestation(1, 2, 1));
    assert_eq!(
        (r.status, code(&r).as_str()),
        (404, "unknown_key"),
        "{}",
        r.text()
    );
    let (ok, st) = status(&admins[0]);
    assert!(
        ok && st["keys"] == json!([]),
        "every peer reachable, no key yet: {st}"
    );

    // Attacks on the import: another peer's share (opened with that peer's identity), a file
    // this identity cannot open, a credential without the admin scope, junk.
    let out = import(&admins[0], &share_file(1), 1);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("share_refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = import(&admins[0], &share_file(1), 0);
    assert!(!out.status.success());
    for (auth, want) in [(vc[0].as_str(), 403u16), ("Bearer nonsense", 401)] {
        let r = servers[0].request(
            "POST",
            "/admin/v1/group/shares",
            &[
                ("authorization", auth),
                ("content-type", "application/json"),
            ],
            b"{\"share\":{}}",
        );
        assert_eq!(r.status, want, "{}", r.text());
    }
    let admin_token = std::fs::read_to_string(&admins[0].token_file).unwrap();
    let admin_auth = format!("Bearer {}", admin_token.trim());
    for (body, want) in [
        (&b"{\"share\":{}}"[..], "invalid_share"),
        (b"{\"share\":\"0x00\"}", "invalid_share"),
        (b"[]", "malformed_body"),
    ] {
        let r = servers[0].request(
            "POST",
            "/admin/v1/group/shares",
            &[
                ("authorization", &admin_auth),
                ("content-type", "application/json"),
            ],
            body,
        );
        assert_eq!((r.status, code(&r).as_str()), (400, want), "{}", r.text());
    }

    // A key new to the vault needs its slashing history, or the word that it has none.
    let out = import_with(&admins[0], &share_file(0), 0, &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("history_required"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each peer imports its own share: into the vault, signing at once.
    for (i, admin) in admins.iter().enumerate() {
        let out = import(admin, &share_file(i), i);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (
                v["status"].as_str(),
                v["group_public_key"].as_str(),
                v["index"].as_u64()
            ),
            (Some("imported"), Some(gpk.as_str()), Some(i as u64 + 1))
        );
    }
    let out = import(&admins[2], &share_file(2), 2);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "duplicate");
    let mut cases = Vec::new();
    for (k, i) in [0usize, 1, 2].into_iter().enumerate() {
        let body = attestation(1 + k as u64, 2 + k as u64, 1);
        let r = sign(&servers, i, &body);
        let sig = signature(&r);
        cases.push(
            json!({"name": format!("vault {k}"), "pubkey": gpk, "request": body, "signature": sig}),
        );
    }
    let (ok, st) = status(&admins[0]);
    assert!(ok, "{st}");
    assert_eq!(st["keys"][0]["source"], "vault");
    assert_eq!(st["keys"][0]["threshold"], 2);
    for p in st["peers"].as_array().unwrap() {
        assert_eq!(
            (p["reachable"].as_bool(), p["keys_matching"].as_u64()),
            (Some(true), Some(1)),
            "{p}"
        );
    }
    // The vault record is sealed: neither the share nor any part of it is in the database file.
    let mut vault_db = std::fs::read(peer_dirs[0].join("data/vault.sqlite")).unwrap();
    vault_db.extend(std::fs::read(peer_dirs[0].join("data/vault.sqlite-wal")).unwrap_or_default());
    let text = String::from_utf8_lossy(&vault_db);
    assert!(text.contains("bls_share") && !text.contains("signward-threshold-share"));

    // The share files are deleted; a restarted peer signs from its vault alone.
    for i in 0..3 {
        std::fs::remove_file(share_file(i)).unwrap();
    }
    drop(servers.remove(2));
    servers.push(start(2));
    admins[2].url = format!("http://127.0.0.1:{}", servers[2].port);
    let body = attestation(10, 11, 1);
    cases.push(json!({"name": "after restart", "pubkey": gpk, "request": body, "signature": signature(&sign(&servers, 2, &body))}));

    // Sealing peer 2 wipes its share: the group goes on with peers 1 and 3, and status says
    // what peer 2 lacks.
    sw_ok(&admins[1].args(&["seal"]), &[]);
    let body = attestation(12, 13, 1);
    cases.push(json!({"name": "one sealed", "pubkey": gpk, "request": body, "signature": signature(&sign(&servers, 0, &body))}));
    let (ok, st) = status(&admins[0]);
    assert!(!ok, "{st}");
    let p2 = st["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["index"] == 2)
        .unwrap()
        .clone();
    assert_eq!(p2["reachable"], true, "{p2}");
    assert_eq!(p2["keys_missing"], json!([gpk]), "{p2}");
    // Peer 3 sealed too: nothing is signed.
    sw_ok(&admins[2].args(&["seal"]), &[]);
    let r = sign(&servers, 0, &attestation(14, 15, 1));
    assert_eq!(
        (r.status, code(&r).as_str()),
        (503, "group_unavailable"),
        "{}",
        r.text()
    );
    // Peer 2 unsealed again by its operators: its share is back.
    for sh in &unseal_args[1].1 {
        sw_ok(
            &admins[1].args(&[
                "unseal",
                "--share",
                s(sh),
                "--identity",
                s(&unseal_args[1].0),
            ]),
            &[],
        );
    }
    let body = attestation(16, 17, 1);
    cases.push(json!({"name": "unsealed again", "pubkey": gpk, "request": body, "signature": signature(&sign(&servers, 1, &body))}));
    let unseal = |i: usize| {
        for sh in &unseal_args[i].1 {
            sw_ok(
                &admins[i].args(&[
                    "unseal",
                    "--share",
                    s(sh),
                    "--identity",
                    s(&unseal_args[i].0),
                ]),
                &[],
            );
        }
    };
    unseal(2);

    // Refresh from the vault: peers 1 and 3 deal their vault shares (which never leave their
    // servers) to the same three peers; each peer joins and imports its new share.
    let reshare = |i: usize, threshold: &str, out: &Path| -> std::process::Output {
        let mut args = admins[i].args(&[
            "group",
            "reshare",
            "--group-public-key",
            &gpk,
            "--threshold",
            threshold,
            "--out-dir",
            s(out),
        ]);
        for p in &peer_args {
            args.extend(["--peer", p.as_str()]);
        }
        sw(&args, &[])
    };
    let dealings: Vec<PathBuf> = [0usize, 2]
        .iter()
        .map(|&i| {
            let out = d.join(format!("reshare-{}", i + 1));
            let o = reshare(i, "2", &out);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            out
        })
        .collect();
    // The server checks the new group itself: a threshold of 1 (every peer would hold the
    // whole key), a sign-scope credential, a key it holds no share of. (Also for a split.)
    let other_key = format!("0x{}", "a".repeat(96));
    let refused_deals = |path: &str, key: &str| {
        let peers: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| json!({"index": i + 1, "age_recipient": id.recipient}))
            .collect();
        let body = |t: u32, key: &str| {
            serde_json::to_vec(&json!({"group_public_key": key, "threshold": t, "peers": peers}))
                .unwrap()
        };
        for (auth, body, want) in [
            (
                admin_auth.as_str(),
                body(1, key),
                (400, "invalid_parameters"),
            ),
            (vc[0].as_str(), body(2, key), (403, "")),
            (
                admin_auth.as_str(),
                body(2, &other_key),
                (404, "key_not_found"),
            ),
        ] {
            let r = servers[0].request(
                "POST",
                path,
                &[
                    ("authorization", auth),
                    ("content-type", "application/json"),
                ],
                &body,
            );
            assert_eq!(r.status, want.0, "{path}: {}", r.text());
            if !want.1.is_empty() {
                assert_eq!(code(&r), want.1, "{path}: {}", r.text());
            }
            assert!(!r.text().contains("BEGIN AGE"), "{}", r.text());
        }
    };
    refused_deals("/admin/v1/group/refresh", &gpk);
    // An admin credential cannot send a share anywhere the group configuration does not pin:
    // a stranger's recipient, or one peer's recipient twice (two shares in one hand).
    let stranger = age_identity(&d.join("stranger.agekey"));
    let unpinned = |path: &str, key: &str| {
        for recipients in [
            [
                ids[0].recipient.clone(),
                ids[1].recipient.clone(),
                stranger.clone(),
            ],
            [
                ids[0].recipient.clone(),
                ids[1].recipient.clone(),
                ids[1].recipient.clone(),
            ],
        ] {
            let peers: Vec<Value> = recipients
                .iter()
                .enumerate()
                .map(|(i, r)| json!({"index": i + 1, "age_recipient": r}))
                .collect();
            {
                let r = servers[0].request(
                    "POST",
                    path,
                    &[
                        ("authorization", &admin_auth),
                        ("content-type", "application/json"),
                    ],
                    &serde_json::to_vec(
                        &json!({"group_public_key": key, "threshold": 2, "peers": peers}),
                    )
                    .unwrap(),
                );
                assert_eq!(
                    (r.status, code(&r).as_str()),
                    (400, "recipient_not_pinned"),
                    "{path}: {}",
                    r.text()
                );
            }
        }
    };
    unpinned("/admin/v1/group/refresh", &gpk);
    let new_share = |i: usize| d.join(format!("refreshed-{}.age", i + 1));
    for (i, id) in ids.iter().enumerate() {
        let mut args = vec![
            "group".to_string(),
            "join".into(),
            "--index".into(),
            (i + 1).to_string(),
            "--identity".into(),
            s(&id.agekey()).into(),
            "--recipient".into(),
            id.recipient.clone(),
            "--out".into(),
            s(&new_share(i)).into(),
        ];
        for dd in &dealings {
            args.extend(["--dealing".into(), s(dd).into()]);
        }
        let printed = sw_ok(&strs(&args), &[]);
        assert!(
            printed.contains(&gpk),
            "the group key is unchanged: {printed}"
        );
    }
    let out = import(&admins[0], &new_share(0), 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "refreshed", "{v}");
    // Peer 1 now holds other commitments than peers 2 and 3, and says so.
    let (ok, st) = status(&admins[0]);
    assert!(!ok, "{st}");
    for p in st["peers"].as_array().unwrap() {
        assert_eq!(p["keys_with_other_commitments"], json!([gpk]), "{p}");
    }
    // Peer 1's new share and peer 2's old one (peer 3 sealed) sign nothing.
    sw_ok(&admins[2].args(&["seal"]), &[]);
    let r = sign(&servers, 0, &attestation(18, 19, 1));
    assert_eq!(
        (r.status, code(&r).as_str()),
        (503, "group_unavailable"),
        "{}",
        r.text()
    );
    // Peer 2 refreshed too: the group signs again, under the same key.
    let out = import(&admins[1], &new_share(1), 1);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = attestation(20, 21, 1);
    cases.push(json!({"name": "refreshed", "pubkey": gpk, "request": body, "signature": signature(&sign(&servers, 0, &body))}));
    // Peer 3 unsealed (its vault still holds its old share) and refreshed: all agree.
    unseal(2);
    let out = import(&admins[2], &new_share(2), 2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, st) = status(&admins[1]);
    assert!(ok, "{st}");
    let body = attestation(22, 23, 1);
    cases.push(json!({"name": "all refreshed", "pubkey": gpk, "request": body, "signature": signature(&sign(&servers, 2, &body))}));
    // Deleting the share from peer 3's vault returns its slashing history and stops its partials
    // at once (the validator is disabled in its slashing database); peers 1 and 2 sign on.
    let r = servers[2].request(
        "DELETE",
        &format!("/admin/v1/keys/{gpk}"),
        &[(
            "authorization",
            &format!(
                "Bearer {}",
                std::fs::read_to_string(&admins[2].token_file)
                    .unwrap()
                    .trim()
            ),
        )],
        b"",
    );
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (200, Some("deleted")),
        "{}",
        r.text()
    );
    assert!(r.json()["slashing_protection"]
        .as_str()
        .unwrap()
        .contains(&gpk));
    let r = sign(&servers, 2, &attestation(24, 25, 1));
    assert_ne!(r.status, 200, "{}", r.text());
    let body = attestation(26, 27, 1);
    cases.push(json!({"name": "one deleted", "pubkey": gpk, "request": body, "signature": signature(&sign(&servers, 0, &body))}));
    std::thread::sleep(Duration::from_millis(1500));
    let (ok, st) = status(&admins[0]);
    assert!(!ok, "{st}");
    let p3 = st["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["index"] == 3)
        .unwrap()
        .clone();
    assert_eq!(p3["keys_missing"], json!([gpk]), "{p3}");

    // A key held whole in peer 1's vault, with history, split into the group from there: the
    // shares come back encrypted to their peers (and are kept under split-keys/), the whole key
    // is deleted with its history exported, and the group signs for it.
    let r = servers[0].request(
        "POST",
        "/admin/v1/keys/generate",
        &[
            ("authorization", &admin_auth),
            ("content-type", "application/json"),
        ],
        b"{\"type\":\"bls\",\"count\":1}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let held = r.json()["keys"][0]["pubkey"].as_str().unwrap().to_string();
    let whole_vote = attestation(30, 31, 1);
    assert_eq!(
        sign_with(&servers[0], &vc[0], &held, &whole_vote).status,
        200
    );
    refused_deals("/admin/v1/group/split", &held);
    unpinned("/admin/v1/group/split", &held);
    let split_out = d.join("vault-split");
    let mut args = admins[0].args(&[
        "group",
        "split-vault-key",
        "--pubkey",
        &held,
        "--threshold",
        "2",
        "--out-dir",
        s(&split_out),
    ]);
    for p in &peer_args {
        args.extend(["--peer", p.as_str()]);
    }
    assert_eq!(sw_ok(&args, &[]).trim(), held);
    let history = std::fs::read_to_string(split_out.join("slashing-protection.json")).unwrap();
    assert!(
        history.contains(&held) && history.contains("31"),
        "{history}"
    );
    let kept = files(&peer_dirs[0].join("data/split-keys"));
    assert_eq!(
        files(&kept[0]).len(),
        3,
        "the split's share files are kept, encrypted"
    );
    // The whole key is gone from peer 1's vault.
    let r = sign_with(&servers[0], &vc[0], &held, &attestation(32, 33, 1));
    assert_eq!(
        (r.status, code(&r).as_str()),
        (404, "unknown_key"),
        "{}",
        r.text()
    );
    let history_file = split_out.join("slashing-protection.json");
    for (i, admin) in admins.iter().enumerate() {
        let out = import_with(
            admin,
            &split_out.join(format!("share-{}.age", i + 1)),
            i,
            &["--slashing-protection", s(&history_file)],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let body = attestation(34, 35, 1);
    let r = sign_with(&servers[1], &vc[1], &held, &body);
    cases.push(json!({"name": "split from the vault", "pubkey": held, "request": body, "signature": signature(&r)}));
    // Every peer imported the key's history: a vote conflicting with the one the whole key
    // signed is refused through any of them.
    for (i, server) in servers.iter().enumerate() {
        let r = sign_with(server, &vc[i], &held, &attestation(30, 31, 2));
        assert_eq!(
            (r.status, code(&r).as_str()),
            (412, "double_vote"),
            "{}",
            r.text()
        );
    }
    if let Some(python) = python() {
        let (ok, out) = run_python(
            &python,
            "verify_signatures.py",
            &[],
            &json!({"preset": "minimal", "genesis_fork_version": "0x00000001", "cases": cases}),
        );
        assert!(ok, "py_ecc: {out}");
    }

    // The audit records name the import, the refresh and the dealing, and never the share.
    let audit = run_signward(&["audit", "query"], &peer_dirs[0].join("data"));
    let audit = String::from_utf8_lossy(&audit.stdout);
    for want in [
        "group share 1, threshold 2",
        "replaces the earlier share",
        "share_dealt",
    ] {
        assert!(audit.contains(want), "{want}");
    }
    assert!(!audit.contains("signward-threshold-share") && !audit.contains("BEGIN AGE"));
}
