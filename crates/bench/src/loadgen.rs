//! The load generator: its own process on one thread, so its cost is told apart from the
//! server's and is the same whichever server it drives. It sends Web3Signer ATTESTATION requests
//! for the fleet's keys (see [`crate::fleet`]) in one of three shapes and prints one JSON line.
//!
//! - `throughput`: `concurrency` connections, each sending its next request when the last one is
//!   answered, for `duration`.
//! - `rate`: an open loop at `rate` requests per second for `duration`; each latency counts from
//!   when the request was due, so a server that falls behind cannot hide it (no coordinated
//!   omission).
//! - `burst`: a validator client's slot: `burst` different validators' attestations released at
//!   once, `slots` times, `gap` apart; the figure is the time to the last answer of each slot.
//!   The first slot opens the connections and is not counted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

/// The shape of the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Closed loop on `concurrency` connections.
    Throughput,
    /// Open loop at `rate` requests per second.
    Rate,
    /// `burst` validators at once, `slots` times.
    Burst,
}

/// What to send, and where.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// Base URLs (`http://127.0.0.1:PORT`), comma-separated; requests go round-robin.
    #[arg(long, value_delimiter = ',', required = true)]
    pub url: Vec<String>,
    /// A file holding a bearer token (none: no Authorization header).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Keys in the fleet.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// The fleet's seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, value_enum)]
    pub mode: Mode,
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    #[arg(long, default_value_t = 320)]
    pub burst: usize,
    #[arg(long, default_value_t = 20)]
    pub slots: usize,
    #[arg(long, default_value_t = 250)]
    pub gap_ms: u64,
    /// The first target epoch; every request gets a fresh one, so every request is checked,
    /// recorded and committed before it is signed (0: derived from the clock).
    #[arg(long, default_value_t = 0)]
    pub first_epoch: u64,
}

/// One run's result, as the load generator prints it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    /// Answered requests per second over the run.
    pub rate: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Burst mode: time to the last answer of each counted slot, in µs.
    pub bursts_us: Vec<u64>,
    /// Filled in by `compare`: the servers' CPU time per answered request, in µs.
    #[serde(default)]
    pub server_cpu_us: f64,
}

/// Target epochs no earlier run can have used: ten million per second of the clock.
pub fn fresh_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        * 10_000_000
}

struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
    urls: Vec<String>,
    pubkeys: Vec<String>,
    bearer: Option<String>,
}

impl Sender {
    /// Send request `n` for validator `v` with target epoch `target`; whether it was signed.
    async fn send(&self, n: u64, v: usize, target: u64) -> bool {
        let url = &self.urls[(n % self.urls.len() as u64) as usize];
        let mut req = hyper::Request::post(format!(
            "{url}/api/v1/eth2/sign/{}",
            self.pubkeys[v % self.pubkeys.len()]
        ))
        .header("content-type", "application/json")
        .header("accept", "application/json");
        if let Some(b) = &self.bearer {
            req = req.header("authorization", b);
        }
        let Ok(req) = req.body(Full::new(Bytes::from(crate::figures::attestation_body(
            target,
        )))) else {
            return false;
        };
        match self.client.request(req).await {
            Ok(resp) => {
                let ok = resp.status().is_success();
                let body = resp.into_body().collect().await;
                ok && body.is_ok()
            }
            Err(_) => false,
        }
    }
}

/// Run the load and print its [`Outcome`] as one JSON line.
pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    ensure!(
        args.keys > 0 && args.concurrency > 0 && args.burst > 0 && args.rate > 0,
        "counts must be positive"
    );
    let bearer = match &args.token_file {
        Some(f) => Some(format!(
            "Bearer {}",
            std::fs::read_to_string(f)
                .context("read the token file")?
                .trim()
        )),
        None => None,
    };
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let sender = Arc::new(Sender {
        client: Client::builder(TokioExecutor::new()).build(http),
        urls: args
            .url
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect(),
        pubkeys: crate::fleet::pubkeys(args.seed, args.keys)?,
        bearer,
    });
    let first = if args.first_epoch == 0 {
        fresh_epoch()
    } else {
        args.first_epoch
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dur = Duration::from_secs(args.duration_secs);
    let outcome = runtime.block_on(async move {
        // Every key answers before the clock starts: one warm-up request.
        ensure!(
            sender.send(0, 0, first).await,
            "the warm-up request was not signed"
        );
        let first = first + 1;
        match args.mode {
            Mode::Throughput => Ok(throughput(sender, args.concurrency, dur, first).await),
            Mode::Rate => Ok(open_loop(sender, args.rate, dur, first).await),
            Mode::Burst => Ok(bursts(sender, args.burst, args.slots, args.gap_ms, first).await),
        }
    })?;
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

fn summarize(mut lat: Vec<u64>, errors: u64, elapsed: Duration) -> Outcome {
    lat.sort_unstable();
    let pick = |p: f64| -> u64 {
        if lat.is_empty() {
            return 0;
        }
        lat[(((lat.len() - 1) as f64) * p).round() as usize]
    };
    Outcome {
        ok: lat.len() as u64,
        errors,
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_us: pick(0.5),
        p99_us: pick(0.99),
        p999_us: pick(0.999),
        max_us: lat.last().copied().unwrap_or(0),
        bursts_us: Vec::new(),
        server_cpu_us: 0.0,
    }
}

async fn throughput(sender: Arc<Sender>, concurrency: usize, dur: Duration, first: u64) -> Outcome {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (sender, next) = (sender.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let t0 = Instant::now();
                if sender.send(n, n as usize, first + n).await {
                    lat.push(t0.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            all.extend(lat);
            errors += e;
        } else {
            errors += 1;
        }
    }
    summarize(all, errors, start.elapsed())
}

async fn open_loop(sender: Arc<Sender>, rate: u64, dur: Duration, first: u64) -> Outcome {
    let total = rate * dur.as_secs();
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = start + Duration::from_nanos(n * 1_000_000_000 / rate);
        tokio::time::sleep_until(due).await;
        let sender = sender.clone();
        tasks.push(tokio::spawn(async move {
            let ok = sender.send(n, n as usize, first + n).await;
            (ok, due.elapsed().as_micros() as u64)
        }));
    }
    let (mut lat, mut errors) = (Vec::with_capacity(tasks.len()), 0);
    for t in tasks {
        match t.await {
            Ok((true, us)) => lat.push(us),
            _ => errors += 1,
        }
    }
    summarize(lat, errors, start.elapsed())
}

async fn bursts(
    sender: Arc<Sender>,
    burst: usize,
    slots: usize,
    gap_ms: u64,
    first: u64,
) -> Outcome {
    let mut times = Vec::new();
    let (mut lat, mut errors) = (Vec::new(), 0);
    let mut counted = Duration::ZERO;
    for slot in 0..=slots {
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..burst)
            .map(|j| {
                let sender = sender.clone();
                let n = (slot * burst + j) as u64;
                tokio::spawn(async move {
                    let ok = sender.send(n, n as usize, first + slot as u64).await;
                    (ok, t0.elapsed().as_micros() as u64)
                })
            })
            .collect();
        let mut last = 0;
        for t in tasks {
            match t.await {
                Ok((ok, us)) => {
                    last = last.max(us);
                    if slot > 0 {
                        if ok {
                            lat.push(us);
                        } else {
                            errors += 1;
                        }
                    }
                }
                Err(_) => errors += 1,
            }
        }
        if slot > 0 {
            times.push(last);
            counted += t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(gap_ms)).await;
    }
    let mut out = summarize(lat, errors, counted);
    out.bursts_us = times;
    out
}
