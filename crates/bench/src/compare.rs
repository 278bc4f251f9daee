//! `signward-bench compare`: signward beside the reference signer under one load generator, in
//! one run. Every server and the load generator are separate processes (this binary's
//! `serve-signward`, `serve-reference` and `load-gen`), started fresh for each measurement, on the
//! same machine; the reference and signward alternate within each round so drift on a noisy
//! machine hits both.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use crate::loadgen::{fresh_epoch, Mode, Outcome};

/// The comparison's knobs.
#[derive(Clone, Debug, clap::Args)]
pub struct CompareArgs {
    /// Keys every server holds.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// Rounds; each measures every figure for the reference and for signward.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Seconds per throughput and rate measurement.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Connections for the throughput figure.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Requests per second for the latency figure.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Validators per slot burst.
    #[arg(long, default_value_t = 320)]
    pub burst: usize,
    /// Slot bursts measured per run.
    #[arg(long, default_value_t = 20)]
    pub slots: usize,
    /// Also measure signward on PostgreSQL: slot burst, and two instances sharing it. A scratch
    /// database `signward_bench_cmp_<pid>` is created through this URL (which must reach a
    /// superuser) and dropped at the end.
    #[arg(long)]
    pub pg_url: Option<String>,
    /// Only these figures (default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Figure>,
    /// Requests per second for the group's latency figure (a group signature costs about three
    /// partial signatures and a pairing check on the same cores).
    #[arg(long, default_value_t = 200)]
    pub group_rate: u64,
}

/// One figure of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Figure {
    Throughput,
    Latency,
    Burst,
    PgBurst,
    PgTwo,
    /// A 2-of-3 signing group (three peer processes, pinned mTLS) beside one signward.
    Group,
}

const SEED: u64 = 1;

/// A server process, killed when dropped.
struct Running {
    child: Child,
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Target<'a> {
    Reference,
    Signward {
        db_url: Option<&'a str>,
        data_dir: &'a Path,
        instance: usize,
    },
    GroupPeer {
        db_url: &'a str,
        data_dir: &'a Path,
        group_dir: &'a Path,
        index: u32,
    },
}

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("find the bench binary")
}

fn start(target: &Target, keys: usize, scratch: &Path) -> anyhow::Result<Running> {
    static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let addr_file = scratch.join(format!("addr-{n}"));
    let mut cmd = Command::new(exe()?);
    match target {
        Target::Reference => {
            cmd.arg("serve-reference");
        }
        Target::Signward {
            db_url,
            data_dir,
            instance,
        } => {
            cmd.arg("serve-signward")
                .arg("--data-dir")
                .arg(data_dir)
                .arg("--instance")
                .arg(instance.to_string());
            if let Some(u) = db_url {
                cmd.arg("--slashing-protection-db-url").arg(u);
            }
        }
        Target::GroupPeer {
            db_url,
            data_dir,
            group_dir,
            index,
        } => {
            cmd.arg("serve-group-peer")
                .arg("--data-dir")
                .arg(data_dir)
                .arg("--group-dir")
                .arg(group_dir)
                .arg("--index")
                .arg(index.to_string())
                .arg("--slashing-protection-db-url")
                .arg(db_url);
        }
    }
    cmd.arg("--keys")
        .arg(keys.to_string())
        .arg("--seed")
        .arg(SEED.to_string())
        .arg("--addr-file")
        .arg(&addr_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut child = cmd.spawn().context("start a server")?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(addr) = std::fs::read_to_string(&addr_file) {
            return Ok(Running {
                child,
                addr: format!("http://{}", addr.trim()),
            });
        }
        if let Some(status) = child.try_wait()? {
            bail!("the server exited before listening: {status}");
        }
        ensure!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CPU time (user + system) a process has used, in seconds, from `/proc` (USER_HZ = 100).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn servers_cpu(servers: &[&Running]) -> Option<f64> {
    servers.iter().map(|s| cpu_secs(s.child.id())).sum()
}

/// Run the load generator against `servers`; the outcome carries the servers' own CPU time per
/// answered request, which a noisy machine disturbs far less than a rate.
fn load(
    args: &CompareArgs,
    servers: &[&Running],
    token: Option<&Path>,
    mode: Mode,
) -> anyhow::Result<Outcome> {
    let urls: Vec<&str> = servers.iter().map(|s| s.addr.as_str()).collect();
    let cpu_before = servers_cpu(servers);
    let mut cmd = Command::new(exe()?);
    cmd.arg("load-gen")
        .arg("--url")
        .arg(urls.join(","))
        .arg("--keys")
        .arg(args.keys.to_string())
        .arg("--seed")
        .arg(SEED.to_string())
        .arg("--mode")
        .arg(match mode {
            Mode::Throughput => "throughput",
            Mode::Rate => "rate",
            Mode::Burst => "burst",
        })
        .arg("--duration-secs")
        .arg(args.duration_secs.to_string())
        .arg("--concurrency")
        .arg(args.concurrency.to_string())
        .arg("--rate")
        .arg(args.rate.to_string())
        .arg("--burst")
        .arg(args.burst.to_string())
        .arg("--slots")
        .arg(args.slots.to_string())
        .arg("--first-epoch")
        .arg(fresh_epoch().to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(t) = token {
        cmd.arg("--token-file").arg(t);
    }
    let out = cmd.output().context("run the load generator")?;
    ensure!(out.status.success(), "the load generator failed");
    let line = String::from_utf8(out.stdout)?;
    let mut outcome: Outcome =
        serde_json::from_str(line.trim()).context("load generator output")?;
    if let (Some(a), Some(b)) = (cpu_before, servers_cpu(servers)) {
        outcome.server_cpu_us = 1e6 * (b - a) / (outcome.ok + 1) as f64;
    }
    ensure!(
        outcome.errors == 0,
        "{} of {} requests failed",
        outcome.errors,
        outcome.errors + outcome.ok
    );
    Ok(outcome)
}

/// The reference alone under `mode`.
fn reference(args: &CompareArgs, scratch: &Path, mode: Mode) -> anyhow::Result<Outcome> {
    let s = start(&Target::Reference, args.keys, scratch)?;
    load(args, &[&s], None, mode)
}

/// One signward instance on `db_url` (SQLite in `data_dir` when `None`) under `mode`.
fn signward(
    args: &CompareArgs,
    scratch: &Path,
    db_url: Option<&str>,
    data_dir: &Path,
    token: &Path,
    mode: Mode,
) -> anyhow::Result<Outcome> {
    let target = Target::Signward {
        db_url,
        data_dir,
        instance: 0,
    };
    let s = start(&target, args.keys, scratch)?;
    load(args, &[&s], Some(token), mode)
}

fn median(v: &[u64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2] as f64
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

/// A line of the final summary: the ratio per round.
struct Row {
    figure: &'static str,
    target: &'static str,
    /// signward / reference (throughput) or signward / reference (times).
    ratios: Vec<f64>,
}

fn record(rows: &mut Vec<Row>, figure: &'static str, target: &'static str, ratio: f64) {
    match rows.iter_mut().find(|r| r.figure == figure) {
        Some(r) => r.ratios.push(ratio),
        None => rows.push(Row {
            figure,
            target,
            ratios: vec![ratio],
        }),
    }
}

/// PostgreSQL's own counts for the scratch database: committed transactions, and check
/// statements, each one round trip: calls of `signward_check_batch` (a batch) and of
/// `signward_check` (a check alone), counted because the database is set to
/// `track_functions = pl`.
struct PgCounts {
    xacts: i64,
    checks: i64,
}

async fn pg_counts(admin_url: &str) -> anyhow::Result<PgCounts> {
    let (client, conn) = tokio_postgres::connect(&scratch_url(admin_url)?, tokio_postgres::NoTls)
        .await
        .context("connect to the scratch database")?;
    let task = tokio::spawn(conn);
    let xacts: i64 = client
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?
        .get(0);
    let checks: i64 = client
        .query_opt(
            "SELECT sum(calls)::int8 FROM pg_stat_user_functions
             WHERE funcname IN ('signward_check', 'signward_check_batch')",
            &[],
        )
        .await?
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .unwrap_or(0);
    drop(client);
    let _ = task.await;
    Ok(PgCounts { xacts, checks })
}

/// The scratch database: one per bench process, so two runs never drop each other's.
fn scratch_db() -> String {
    format!("signward_bench_cmp_{}", std::process::id())
}

/// The same server and credentials, with the scratch database's name.
fn scratch_url(admin_url: &str) -> anyhow::Result<String> {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let rest = base
        .strip_prefix("postgres://")
        .or_else(|| base.strip_prefix("postgresql://"))
        .context("a postgres:// URL")?;
    let host = rest.split('/').next().unwrap_or(rest);
    Ok(match query {
        Some(q) => format!("postgres://{host}/{}?{q}", scratch_db()),
        None => format!("postgres://{host}/{}", scratch_db()),
    })
}

async fn fresh_scratch_db(admin_url: &str) -> anyhow::Result<String> {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .context("connect to PostgreSQL")?;
    let task = tokio::spawn(conn);
    for sql in [
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", scratch_db()),
        format!("CREATE DATABASE {}", scratch_db()),
        format!("ALTER DATABASE {} SET track_functions = 'pl'", scratch_db()),
    ] {
        client
            .batch_execute(&sql)
            .await
            .context("create the scratch database")?;
    }
    drop(client);
    let _ = task.await;
    scratch_url(admin_url)
}

async fn drop_scratch_db(admin_url: &str) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .context("connect to PostgreSQL")?;
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            scratch_db()
        ))
        .await
        .context("drop the scratch database")?;
    drop(client);
    let _ = task.await;
    Ok(())
}

pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    ensure!(
        args.rounds > 0 && args.keys >= args.burst,
        "rounds must be positive and keys at least the burst"
    );
    crate::figures::header();
    let want = |f: Figure| args.only.is_empty() || args.only.contains(&f);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!(
        "\n## signward beside the reference signer: {} keys, {} round(s); servers and the load generator in separate processes",
        args.keys, args.rounds
    );
    println!("signward: SQLite protection (group commit, fsync), token auth, audit log, metrics — as `serve` runs by default");
    println!("reference: parse, signing root, BLS sign; nothing else");
    let mut rows = Vec::new();
    for round in 1..=args.rounds {
        println!("\n### round {round}");
        println!("| figure | reference | signward | ratio |\n|---|---|---|---|");
        let scratch = tempfile::tempdir()?;
        let token = scratch.path().join("token");
        crate::fleet::issue_token(&scratch.path().join("data"), &token)?;
        // A fresh data directory (and SQLite file) for each signward start, sharing the token.
        let fresh_dir = |name: &str| -> anyhow::Result<PathBuf> {
            let d = scratch.path().join(name);
            copy_dir(&scratch.path().join("data"), &d)?;
            Ok(d)
        };
        if want(Figure::Throughput) {
            let r = reference(&args, scratch.path(), Mode::Throughput)?;
            let dir = fresh_dir("tp")?;
            let w = signward(&args, scratch.path(), None, &dir, &token, Mode::Throughput)?;
            let ratio = w.rate / r.rate;
            println!(
                "| throughput, {} connections (sig/s; p50 / p99) | {:.0} ({} / {}) | {:.0} ({} / {}) | {ratio:.2} |",
                args.concurrency,
                r.rate,
                ms(r.p50_us as f64),
                ms(r.p99_us as f64),
                w.rate,
                ms(w.p50_us as f64),
                ms(w.p99_us as f64)
            );
            let cpu = r.server_cpu_us / w.server_cpu_us.max(1.0);
            println!(
                "| server CPU per signature (µs) | {:.0} | {:.0} | {cpu:.2} |",
                r.server_cpu_us, w.server_cpu_us
            );
            record(
                &mut rows,
                "throughput (signward / reference)",
                ">= 0.90",
                ratio,
            );
            record(
                &mut rows,
                "server CPU per signature (reference / signward)",
                "(steadier than rates on a noisy machine)",
                cpu,
            );
        }
        if want(Figure::Latency) {
            let r = reference(&args, scratch.path(), Mode::Rate)?;
            let dir = fresh_dir("lat")?;
            let w = signward(&args, scratch.path(), None, &dir, &token, Mode::Rate)?;
            let ratio = w.p99_us as f64 / r.p99_us.max(1) as f64;
            println!(
                "| steady {}/s: p50 / p99 / p99.9 | {} / {} / {} | {} / {} / {} | p99 {ratio:.2}x |",
                args.rate,
                ms(r.p50_us as f64),
                ms(r.p99_us as f64),
                ms(r.p999_us as f64),
                ms(w.p50_us as f64),
                ms(w.p99_us as f64),
                ms(w.p999_us as f64)
            );
            record(
                &mut rows,
                "p99 at a steady rate (signward / reference)",
                "<= 2.00",
                ratio,
            );
        }
        let mut reference_burst = None;
        if want(Figure::Burst) || want(Figure::PgBurst) {
            let r = reference(&args, scratch.path(), Mode::Burst)?;
            reference_burst = Some(r);
        }
        if want(Figure::Burst) {
            let r = reference_burst.as_ref().context("reference burst")?;
            let dir = fresh_dir("burst")?;
            let w = signward(&args, scratch.path(), None, &dir, &token, Mode::Burst)?;
            burst_row(&mut rows, &args, "SQLite", r, &w);
        }
        if let Some(admin) = &args.pg_url {
            if want(Figure::PgBurst) {
                let r = reference_burst.as_ref().context("reference burst")?;
                let url = runtime.block_on(fresh_scratch_db(admin))?;
                let dir = fresh_dir("pgburst")?;
                let w = signward(&args, scratch.path(), Some(&url), &dir, &token, Mode::Burst)?;
                burst_row(&mut rows, &args, "PostgreSQL", r, &w);
            }
            if want(Figure::PgTwo) {
                let r = reference(&args, scratch.path(), Mode::Throughput)?;
                let url = runtime.block_on(fresh_scratch_db(admin))?;
                let dir = fresh_dir("pgtwo")?;
                let (w, before) = {
                    let a = start(
                        &Target::Signward {
                            db_url: Some(&url),
                            data_dir: &dir,
                            instance: 0,
                        },
                        args.keys,
                        scratch.path(),
                    )?;
                    let b = start(
                        &Target::Signward {
                            db_url: Some(&url),
                            data_dir: &dir,
                            instance: 1,
                        },
                        args.keys,
                        scratch.path(),
                    )?;
                    // Closing a backend flushes its statistics; the servers' connections are
                    // still open, so what they did is counted after they stop.
                    let before = runtime.block_on(pg_counts(admin))?;
                    (
                        load(&args, &[&a, &b], Some(&token), Mode::Throughput)?,
                        before,
                    )
                };
                std::thread::sleep(Duration::from_secs(2));
                let after = runtime.block_on(pg_counts(admin))?;
                let requests = (w.ok + 1) as f64;
                let ratio = w.rate / r.rate;
                println!(
                    "| two instances on PostgreSQL, {} connections (sig/s) | {:.0} | {:.0} ({} / {}) | {ratio:.2} |",
                    args.concurrency,
                    r.rate,
                    w.rate,
                    ms(w.p50_us as f64),
                    ms(w.p99_us as f64)
                );
                println!(
                    "| server CPU per signature, both instances (µs; PostgreSQL's not counted) | {:.0} | {:.0} | |",
                    r.server_cpu_us, w.server_cpu_us
                );
                println!(
                    "| PostgreSQL's own counts per signed request: transactions committed, check statements (one round trip each) | | {:.2}, {:.2} | |",
                    (after.xacts - before.xacts) as f64 / requests,
                    (after.checks - before.checks) as f64 / requests,
                );
                record(
                    &mut rows,
                    "two instances on PostgreSQL (signward / reference)",
                    ">= 0.80",
                    ratio,
                );
            }
        }
        if want(Figure::Group) {
            group_rows(&args, scratch.path(), &token, &fresh_dir, &mut rows)?;
        }
    }
    if let Some(admin) = &args.pg_url {
        runtime.block_on(drop_scratch_db(admin))?;
    }
    println!("\n### summary over {} round(s)", args.rounds);
    println!("| figure | target | ratio per round |\n|---|---|---|");
    for r in rows {
        let list: Vec<String> = r.ratios.iter().map(|x| format!("{x:.2}")).collect();
        println!("| {} | {} | {} |", r.figure, r.target, list.join(", "));
    }
    Ok(())
}

fn burst_row(
    rows: &mut Vec<Row>,
    args: &CompareArgs,
    backend: &'static str,
    r: &Outcome,
    w: &Outcome,
) {
    let (rm, wm) = (median(&r.bursts_us), median(&w.bursts_us));
    let ratio = wm / rm.max(1.0);
    println!(
        "| slot burst on {backend}: {} validators at once, median (max) of {} slots to the last answer | {} ({}) | {} ({}) | {ratio:.2}x |",
        args.burst,
        w.bursts_us.len(),
        ms(rm),
        ms(r.bursts_us.iter().copied().max().unwrap_or(0) as f64),
        ms(wm),
        ms(w.bursts_us.iter().copied().max().unwrap_or(0) as f64),
    );
    record(
        rows,
        if backend == "SQLite" {
            "slot burst on SQLite (signward / reference)"
        } else {
            "slot burst on PostgreSQL (signward / reference)"
        },
        "<= 1.25",
        ratio,
    );
}

/// Copy a flat directory (the data directory's secret and token store), keeping modes.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    signward_os::DataDir::new(to).ensure_private()?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// The group figure: one signward holding the fleet's keys whole, then a 2-of-3 signing group
/// of three peer processes holding shares of the same keys (each with its own SQLite database,
/// audit and token gate, talking pinned mTLS), under the same load generator. Requests go
/// round-robin to the three peers, so each coordinates a third. Throughput and CPU first, then a
/// steady `group_rate` for latency.
fn group_rows(
    args: &CompareArgs,
    scratch: &Path,
    token: &Path,
    fresh_dir: &dyn Fn(&str) -> anyhow::Result<PathBuf>,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let rate_args = CompareArgs {
        rate: args.group_rate,
        ..args.clone()
    };
    let single_dir = fresh_dir("group-single")?;
    let (single_tp, single_rate) = {
        let s = start(
            &Target::Signward {
                db_url: None,
                data_dir: &single_dir,
                instance: 0,
            },
            args.keys,
            scratch,
        )?;
        (
            load(args, &[&s], Some(token), Mode::Throughput)?,
            load(&rate_args, &[&s], Some(token), Mode::Rate)?,
        )
    };
    let group_dir = scratch.join("group-setup");
    crate::group::setup(&group_dir, SEED, args.keys)?;
    let data = fresh_dir("group-peers")?;
    let urls: Vec<String> = (1..=crate::group::N)
        .map(|i| format!("sqlite:{}", data.join(format!("peer-{i}.sqlite")).display()))
        .collect();
    let peers = (1..=crate::group::N)
        .map(|i| {
            start(
                &Target::GroupPeer {
                    db_url: &urls[i as usize - 1],
                    data_dir: &data,
                    group_dir: &group_dir,
                    index: i,
                },
                args.keys,
                scratch,
            )
        })
        .collect::<anyhow::Result<Vec<Running>>>()?;
    let refs: Vec<&Running> = peers.iter().collect();
    let group_tp = load(args, &refs, Some(token), Mode::Throughput)?;
    let group_rate = load(&rate_args, &refs, Some(token), Mode::Rate)?;
    let ratio = group_tp.rate / single_tp.rate;
    println!(
        "| 2-of-3 group (3 peer processes) beside one signward: throughput, {} connections (sig/s; p50 / p99) | {:.0} ({} / {}) | {:.0} ({} / {}) | {ratio:.2} |",
        args.concurrency,
        single_tp.rate,
        ms(single_tp.p50_us as f64),
        ms(single_tp.p99_us as f64),
        group_tp.rate,
        ms(group_tp.p50_us as f64),
        ms(group_tp.p99_us as f64)
    );
    println!(
        "| server CPU per signature, one signward / all three peers (µs) | {:.0} | {:.0} | {:.2} |",
        single_tp.server_cpu_us,
        group_tp.server_cpu_us,
        single_tp.server_cpu_us / group_tp.server_cpu_us.max(1.0)
    );
    let lat = group_rate.p99_us as f64 / single_rate.p99_us.max(1) as f64;
    println!(
        "| steady {}/s: p50 / p99 / p99.9, one signward / the group | {} / {} / {} | {} / {} / {} | p99 {lat:.2}x |",
        args.group_rate,
        ms(single_rate.p50_us as f64),
        ms(single_rate.p99_us as f64),
        ms(single_rate.p999_us as f64),
        ms(group_rate.p50_us as f64),
        ms(group_rate.p99_us as f64),
        ms(group_rate.p999_us as f64)
    );
    record(
        rows,
        "2-of-3 group throughput (group / one signward)",
        "(reported)",
        ratio,
    );
    record(
        rows,
        "2-of-3 group p99 at a steady rate (group / one signward)",
        "(reported)",
        lat,
    );
    Ok(())
}
