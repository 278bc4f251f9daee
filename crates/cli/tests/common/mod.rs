//! Shared helpers for the end-to-end tests: run the real `signward` binary, talk raw HTTP/1.1 to
//! it, and reach the independent Python verifiers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn vectors() -> PathBuf {
    repo().join("tests/vectors")
}

/// The Python with py_ecc, remerkleable and ethstaker-deposit (set by scripts/test.sh).
/// Required in CI and under scripts/test.sh; a bare `cargo test` outside CI skips these checks
/// with a notice.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("SIGNWARD_TEST_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("SIGNWARD_REQUIRE_PY").is_some()
            || std::env::var_os("CI").is_some() =>
        {
            panic!("SIGNWARD_TEST_PYTHON is not set: run scripts/test.sh")
        }
        None => {
            eprintln!("note: Python cross-checks skipped; run scripts/test.sh to include them");
            None
        }
    }
}

/// chmod 600: keystores, like passwords, must be owner-only.
pub fn owner_only(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `--allow-root` when the tests run as root (CI does); signward refuses root otherwise.
pub fn root_flag() -> Option<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("1");
    (euid == "0").then_some("--allow-root")
}

pub fn write_secret(path: &Path, contents: &[u8]) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `signward serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    /// Start with authentication disabled (loopback only), for tests about other things.
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        let mut all = vec!["--insecure-disable-auth"];
        all.extend_from_slice(args);
        Self::start_with_auth(dir, &all)
    }

    /// Start with the default: authentication on.
    pub fn start_with_auth(dir: &Path, args: &[&str]) -> Server {
        Self::start_wrapped(dir, &[], args)
    }

    /// Start with authentication on, under `wrapper` (e.g. `prlimit --nofile=256:256`).
    pub fn start_wrapped(dir: &Path, wrapper: &[&str], args: &[&str]) -> Server {
        let port = free_port();
        let log = dir.join(format!("signward-{port}.log"));
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(env!("CARGO_BIN_EXE_signward"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_signward")),
        };
        let child = cmd
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--http-listen-port")
            .arg(port.to_string())
            .args(root_flag())
            .args(args)
            .env("SIGNWARD_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut s = Server { child, port, log };
        s.wait_until_loaded();
        s
    }

    fn wait_until_loaded(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if self.log_text().contains("key loading finished") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "signward exited ({status}) while starting:\n{}",
                    self.log_text()
                );
            }
            assert!(Instant::now() < deadline, "server did not finish loading");
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        try_request(self.port, method, path, headers, body).unwrap()
    }

    pub fn sign(&self, pubkey: &str, body: &serde_json::Value) -> Response {
        self.request(
            "POST",
            &format!("/api/v1/eth2/sign/{pubkey}"),
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            &serde_json::to_vec(body).unwrap(),
        )
    }

    pub fn public_keys(&self) -> Vec<String> {
        let r = self.request("GET", "/api/v1/eth2/publicKeys", &[], b"");
        serde_json::from_slice(&r.body).unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send a signal with the `kill` command (no unsafe code in tests either).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn raw_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

pub fn read_response(mut stream: TcpStream) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> std::io::Result<Response> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad response");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = std::str::from_utf8(&buf[..split]).map_err(|_| bad())?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
            let size = usize::from_str_radix(
                std::str::from_utf8(&rest[..nl]).map_err(|_| bad())?.trim(),
                16,
            )
            .map_err(|_| bad())?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(&raw_request(method, path, headers, body))?;
    read_response(s)
}

/// Run a Python script with JSON on stdin; returns (exit success, parsed stdout).
pub fn run_python(
    python: &Path,
    script: &str,
    args: &[&str],
    stdin: &serde_json::Value,
) -> (bool, serde_json::Value) {
    let mut child = Command::new(python)
        .arg(repo().join("tests/py").join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(stdin).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.success(), v)
}

/// Nimbus' cheap keystores (PBKDF2 c=1) copied into `dir/keys`, with their password file.
pub fn nimbus_keys(dir: &Path, count: usize) -> (PathBuf, PathBuf, Vec<String>) {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let exp: serde_json::Value = serde_json::from_slice(
        &std::fs::read(vectors().join("eip2335/nimbus-eth2/expected.json")).unwrap(),
    )
    .unwrap();
    let mut pubkeys = Vec::new();
    let mut password = String::new();
    for case in exp["cases"].as_array().unwrap().iter().take(count) {
        let file = case["keystore_file"].as_str().unwrap();
        std::fs::copy(
            vectors().join("eip2335/nimbus-eth2").join(file),
            keys.join(file),
        )
        .unwrap();
        owner_only(&keys.join(file));
        pubkeys.push(case["pubkey"].as_str().unwrap().to_string());
        password = case["password"].as_str().unwrap().to_string();
    }
    let pw = dir.join("password.txt");
    write_secret(&pw, password.as_bytes());
    (keys, pw, pubkeys)
}

/// Borrow a list of owned arguments.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `--network NET --keystores-path KEYS --keystores-password-file PW`, then `extra`.
pub fn keystore_args(net: &Path, keys: &Path, pw: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--network",
        net.to_str().unwrap(),
        "--keystores-path",
        keys.to_str().unwrap(),
        "--keystores-password-file",
        pw.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// A server on the minimal test network with `count` Nimbus keystores and `extra` flags;
/// returns the server and the loaded public keys.
pub fn start_with_nimbus(dir: &Path, count: usize, extra: &[&str]) -> (Server, Vec<String>) {
    let (keys, pw, pubkeys) = nimbus_keys(dir, count);
    let net = minimal_network(dir);
    let mut args = vec![
        "--network".to_string(),
        net.display().to_string(),
        "--keystores-path".to_string(),
        keys.display().to_string(),
        "--keystores-password-file".to_string(),
        pw.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Server::start(dir, &args), pubkeys)
}

/// A consensus config.yaml for the minimal preset with GENESIS_FORK_VERSION 0x00000001, the
/// setting Web3Signer's request examples were made with.
pub fn minimal_network(dir: &Path) -> PathBuf {
    let p = dir.join("minimal-config.yaml");
    std::fs::write(
        &p,
        "PRESET_BASE: 'minimal'\nCONFIG_NAME: 'signward-test'\nGENESIS_FORK_VERSION: 0x00000001\n",
    )
    .unwrap();
    p
}

pub fn examples() -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(vectors().join("signing-roots/web3signer/sign_request_examples.json"))
            .unwrap(),
    )
    .unwrap();
    v["cases"].as_array().unwrap().clone()
}

/// Run `signward ARGS --data-dir DATA_DIR` to completion.
pub fn run_signward(args: &[&str], data_dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

/// `signward ARGS` must fail and say `needle` on stderr.
pub fn expect_refusal(args: &[&str], data_dir: &Path, needle: &str) {
    let out = run_signward(args, data_dir);
    assert!(!out.status.success(), "signward {args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

/// `signward token create ARGS` in `dir/data`; returns what it printed (the token, if any).
pub fn credential(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let out = run_signward(&all, &dir.join("data"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The PostgreSQL server of scripts/test.sh; required in CI, skipped with a notice otherwise.
pub fn pg_admin() -> Option<String> {
    match std::env::var("SIGNWARD_TEST_PG_URL") {
        Ok(u) => Some(u),
        Err(_)
            if std::env::var_os("SIGNWARD_REQUIRE_PG").is_some()
                || std::env::var_os("CI").is_some() =>
        {
            panic!("SIGNWARD_TEST_PG_URL is not set: run scripts/test.sh")
        }
        Err(_) => {
            eprintln!("note: PostgreSQL tests skipped; run scripts/test.sh to include them");
            None
        }
    }
}

/// Create a database for this test; returns its URL and a closure-free name for dropping.
pub fn pg_create(admin: &str, tag: &str) -> (String, String) {
    let name = format!("signward_e2e_{tag}_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    });
    let base = admin.rsplit_once('/').unwrap().0;
    (format!("{base}/{name}"), name)
}

pub fn pg_drop(admin: &str, name: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
    });
}

// ---- The sealed vault from the command line (shared by the vault and delete tests). ----

/// `signward ARGS` (no data dir appended), with extra environment.
pub fn sw(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signward"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("SIGNWARD_URL")
        .env_remove("SIGNWARD_TOKEN_FILE")
        .output()
        .unwrap()
}

pub fn sw_ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = sw(args, env);
    assert!(
        out.status.success(),
        "signward {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Must fail and say `needle`; returns everything it printed.
pub fn sw_err(args: &[&str], env: &[(&str, &str)], needle: &str) -> String {
    let out = sw(args, env);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "signward {args:?} succeeded:\n{all}");
    assert!(all.contains(needle), "expected {needle:?} in:\n{all}");
    all
}

/// The `age` CLI (Debian package `age`, installed by scripts/test.sh) is required in CI.
pub fn age_cli() -> bool {
    let ok = Command::new("age")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok
        && (std::env::var_os("CI").is_some() || std::env::var_os("SIGNWARD_REQUIRE_PY").is_some())
    {
        panic!("the age CLI is missing: run scripts/test.sh");
    }
    ok
}

/// An age identity file (0600) and its recipient, made with `age-keygen` when present.
pub fn age_identity(path: &Path) -> String {
    let id = age::x25519::Identity::generate();
    use secrecy::ExposeSecret;
    let text = format!("# test identity\n{}\n", id.to_string().expose_secret());
    write_secret(path, text.as_bytes());
    id.to_public().to_string()
}

pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub struct Admin {
    pub url: String,
    pub token_file: PathBuf,
}

impl Admin {
    pub fn new(d: &Path, server: &Server) -> Admin {
        let tok = credential(d, &["--name", "ops", "--scope", "admin"]);
        let token_file = d.join("admin.token");
        write_secret(&token_file, tok.as_bytes());
        // Credentials reach a running server within a second.
        std::thread::sleep(Duration::from_millis(1200));
        Admin {
            url: format!("http://127.0.0.1:{}", server.port),
            token_file,
        }
    }

    pub fn args<'a>(&'a self, cmd: &[&'a str]) -> Vec<&'a str> {
        let mut v = cmd.to_vec();
        v.extend(["--url", &self.url, "--token-file", s(&self.token_file)]);
        v
    }
}

/// init with `n` age shares to one test identity; returns the identity file and the shares.
pub fn init_age(d: &Path, data: &Path, t: u8, n: u8) -> (PathBuf, Vec<PathBuf>) {
    let id = d.join("ops.key");
    let r = if id.exists() {
        let text = std::fs::read_to_string(&id).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY"))
            .unwrap()
            .to_string();
        use std::str::FromStr;
        age::x25519::Identity::from_str(&line)
            .unwrap()
            .to_public()
            .to_string()
    } else {
        age_identity(&id)
    };
    let mut args = vec![
        "init".to_string(),
        "--data-dir".into(),
        s(data).into(),
        "--out".into(),
        s(&d.join("shares")).into(),
        "--shares".into(),
        n.to_string(),
        "--threshold".into(),
        t.to_string(),
    ];
    for _ in 0..n {
        args.push("--share-to".into());
        args.push(r.clone());
    }
    let out = sw_ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    (id, out.lines().map(PathBuf::from).collect())
}

pub fn unattended(id: &Path, shares: &[PathBuf]) -> Vec<String> {
    let mut v = Vec::new();
    for sh in shares {
        v.push("--unseal-shares-from".to_string());
        v.push(s(sh).to_string());
    }
    v.push("--identity".into());
    v.push(s(id).into());
    v
}

/// `count` fresh EIP-2335 keystores (PBKDF2 with 2,048 iterations: cheap, for test speed) in
/// `d/<name>`, with the password `password` in `d/<name>.pass`. Returns the keystore files.
pub fn pbkdf2_keystores(d: &Path, name: &str, password: &[u8], count: usize) -> Vec<PathBuf> {
    let pass = d.join(format!("{name}.pass"));
    write_secret(&pass, password);
    let count = count.to_string();
    sw_ok(
        &[
            "keystore",
            "create",
            "--out",
            s(&d.join(name)),
            "--password-file",
            s(&pass),
            "--count",
            &count,
            "--kdf",
            "pbkdf2",
            "--pbkdf2-iterations",
            "2048",
        ],
        &[],
    );
    files(&d.join(name))
}

/// `signward init` of a 2-of-2 vault in the PostgreSQL database `db_url`, both shares to one
/// new age identity `d/ops.key`. Returns the identity file and the share files.
pub fn init_age_pg(d: &Path, data: &Path, db_url: &str) -> (PathBuf, Vec<PathBuf>) {
    let id = d.join("ops.key");
    let r = age_identity(&id);
    let out = sw_ok(
        &[
            "init",
            "--data-dir",
            s(data),
            "--slashing-protection-db-url",
            "env:SW_PG_URL",
            "--out",
            s(&d.join("shares")),
            "--shares",
            "2",
            "--threshold",
            "2",
            "--share-to",
            &r,
            "--share-to",
            &r,
        ],
        &[("SW_PG_URL", db_url)],
    );
    (id, out.lines().map(PathBuf::from).collect())
}

/// POST a sign request with a credential, asking for JSON.
pub fn sign_with(server: &Server, auth: &str, pk: &str, body: &serde_json::Value) -> Response {
    server.request(
        "POST",
        &format!("/api/v1/eth2/sign/{pk}"),
        &[
            ("authorization", auth),
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ],
        &serde_json::to_vec(body).unwrap(),
    )
}

/// An ATTESTATION sign request on the minimal test network (fork version 0x00000001) for chain
/// `gvr`: source and target epochs, and a byte that varies the block root (so two requests for
/// one target can conflict).
pub fn attestation_at(
    gvr: &str,
    source: u64,
    target: u64,
    block_root_byte: u64,
) -> serde_json::Value {
    serde_json::json!({"type": "ATTESTATION",
           "fork_info": {"fork": {"previous_version": "0x00000001", "current_version": "0x00000001", "epoch": "0"},
                         "genesis_validators_root": gvr},
           "attestation": {"slot": (target * 8).to_string(), "index": "0",
               "beacon_block_root": format!("0x{:064x}", block_root_byte),
               "source": {"epoch": source.to_string(), "root": format!("0x{}", "00".repeat(32))},
               "target": {"epoch": target.to_string(), "root": format!("0x{}", "00".repeat(32))}}})
}
