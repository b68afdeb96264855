//! `hostile-bench`: do legitimate recording sessions keep their ingest latency, and does the
//! server keep its memory bounded, while an attacker floods it?
//!
//! Starts the real `replay-server` (fresh data dir, default limits, `--trusted-proxies
//! 127.0.0.1/32` so that every simulated client presents its own address in
//! `X-Forwarded-For`, as behind a load balancer), then runs, one after the other, for `--seconds`
//! each: a baseline phase (the legitimate sessions alone), and the same sessions while an
//! attacker process (see [`attacker`]) attacks from four addresses, then from a new address per
//! request. Prints, per phase, the sessions' p50/p99/max latency and non-2xx answers, the
//! server's CPU and memory (VmRSS peak and end, VmHWM, sampled every 100 ms), what the attacker
//! got by status, and at the end the server's `/metrics` rejection counters. Run with
//! `cargo xtask bench-hostile [--sessions N] [--seconds S] [--attack errors|keys|big|passwords|all]
//! [--addresses few|many|both] [--conns N] [--nice N]`.

mod attacker;
mod batches;
mod probe;
mod sessions;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncBufReadExt;

use crate::attacker::{Attack, Plan};
use crate::probe::{Memory, MemoryWindow, cpu_time, mib, percentile_ms, read_memory};

/// The server's default body cap (`--max-body-bytes`).
const DEFAULT_BODY_CAP: usize = 8 * 1024 * 1024;
/// The latency every legitimate session's ingest must stay under at p99.
const P99_TARGET_MS: f64 = 100.0;

struct Args {
    sessions: usize,
    seconds: u64,
    attacks: Vec<Attack>,
    few: bool,
    many: bool,
    conns: usize,
    nice: i32,
    body_cap: usize,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut out = Args {
        sessions: 100,
        seconds: 30,
        attacks: Attack::ALL.to_vec(),
        few: true,
        many: true,
        conns: 8,
        nice: 10,
        body_cap: DEFAULT_BODY_CAP,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--sessions" => out.sessions = value("--sessions")?.parse()?,
            "--seconds" => out.seconds = value("--seconds")?.parse()?,
            "--attack" => out.attacks = Attack::parse_list(value("--attack")?)?,
            "--addresses" => match value("--addresses")?.as_str() {
                "few" => (out.few, out.many) = (true, false),
                "many" => (out.few, out.many) = (false, true),
                "both" => (out.few, out.many) = (true, true),
                other => bail!("--addresses few|many|both, not {other:?}"),
            },
            "--conns" => out.conns = value("--conns")?.parse::<usize>()?.max(1),
            "--nice" => out.nice = value("--nice")?.parse()?,
            "--max-body-bytes" => out.body_cap = value("--max-body-bytes")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(out)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--attacker") {
        return attacker::main(Plan::from_args(&args[1..])?);
    }
    let args = parse_args(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

/// Starts the server and reads its address and ingest key from what it prints.
fn start_server(bin: &str, data: &std::path::Path, body_cap: usize) -> Result<(Child, String, String)> {
    let logs = if std::env::var_os("BENCH_SERVER_LOG").is_some() { Stdio::inherit() } else { Stdio::null() };
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--trusted-proxies", "127.0.0.1/32", "--data-dir"])
        .arg(data)
        .args(["--max-body-bytes", &body_cap.to_string()])
        .env("REPLAY_LOG", std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .env("REPLAY_ADMIN_TOKEN", "bench-token")
        .env("REPLAY_ADMIN_PASSWORD", "bench-password-not-guessed")
        .stdout(Stdio::piped())
        .stderr(logs)
        .spawn()
        .with_context(|| format!("starting {bin}"))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut base, mut key) = (String::new(), String::new());
    while base.is_empty() || key.is_empty() {
        let line = lines.next().ok_or_else(|| anyhow!("replay-server exited early"))??;
        if let Some(rest) = line.split("listening on ").nth(1) {
            base = rest.trim().to_owned();
        } else if let Some(rest) = line.trim().strip_prefix("ingest key: ") {
            key = rest.split_whitespace().next().unwrap_or_default().to_owned();
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok((child, base, key))
}

/// The server under test: where it listens, its ingest key, its process and memory record.
struct Target {
    base: String,
    key: String,
    pid: u32,
    memory: Memory,
}

/// What one phase measured.
struct Phase {
    name: String,
    legit: sessions::Outcome,
    elapsed: Duration,
    server_cpu: Option<Duration>,
    /// CPU time of the attacker process (its body builders and connections) meanwhile.
    attacker_cpu: Option<Duration>,
    memory: Option<MemoryWindow>,
    /// RSS a few seconds after the attacker stopped, KiB.
    settled_kib: Option<u64>,
    /// Answers the attacker got: (attack, status) → count.
    attacker: BTreeMap<(String, String), u64>,
}

/// Runs the legitimate sessions for one phase, with the attacker of `plan` when given; `label`
/// starts the phase's session ids (letters only), so no phase resends another's batches.
async fn phase(name: &str, label: &str, args: &Args, target: &Target, plan: Option<Plan>) -> Result<Phase> {
    let Target { base, key, pid: server, memory } = target;
    let server = *server;
    let mut attacker = None;
    if let Some(plan) = &plan {
        let mut cmd = tokio::process::Command::new("nice");
        cmd.args(["-n", &args.nice.to_string()])
            .arg(std::env::current_exe()?)
            .args(plan.to_args())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting the attacker (needs `nice`)")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no attacker stdout"))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(180), lines.next_line())
                .await
                .context("the attacker took 3 minutes to get ready")??
                .ok_or_else(|| anyhow!("the attacker exited before it was ready"))?;
            if line == "ready" {
                break;
            }
        }
        attacker = Some((child, lines));
    }
    let attacker_pid = attacker.as_ref().and_then(|(c, _)| c.id());
    let started = Instant::now();
    let cpu_before = cpu_time(server);
    let attacker_cpu_before = attacker_pid.and_then(cpu_time);
    let legit = sessions::run(base, key, args.sessions, args.seconds, label).await?;
    let elapsed = started.elapsed();
    let server_cpu = cpu_time(server).zip(cpu_before).map(|(a, b)| a.saturating_sub(b));
    let attacker_cpu = attacker_pid.and_then(cpu_time).zip(attacker_cpu_before).map(|(a, b)| a.saturating_sub(b));
    let mut tally = BTreeMap::new();
    if let Some((mut child, mut lines)) = attacker {
        while let Some(line) = lines.next_line().await? {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["count", attack, status, n] => {
                    tally.insert((attack.to_string(), status.to_string()), n.parse().unwrap_or(0));
                }
                ["made", ..] => eprintln!("attacker {line}"),
                ["done"] => break,
                _ => {}
            }
        }
        let _ = child.wait().await;
    }
    let ended = Instant::now();
    // Let the server finish what the attacker left in flight, then see what memory it keeps.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(Phase {
        name: name.to_owned(),
        legit,
        elapsed,
        server_cpu,
        attacker_cpu,
        memory: memory.window(started, ended),
        settled_kib: read_memory(server).map(|(rss, _, _)| rss),
        attacker: tally,
    })
}

/// `GET /metrics` of the server, as text.
async fn metrics(base: &str) -> Result<String> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let res = client.get(format!("{base}/metrics").parse()?).await?;
    let body = res.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Bytes of the files under `dir`.
fn disk_usage(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn run(args: Args) -> Result<()> {
    let server_bin =
        std::env::var("REPLAY_SERVER_BIN").context("REPLAY_SERVER_BIN: run through `cargo xtask bench-hostile`")?;
    let dir = tempfile::tempdir()?;
    let (mut server, base, key) = start_server(&server_bin, dir.path(), args.body_cap)?;
    let pid = server.id();
    let target = Target { base: base.clone(), key: key.clone(), pid, memory: Memory::start(pid) };
    let attacks: Vec<&str> = args.attacks.iter().map(|a| a.name()).collect();
    println!(
        "hostile-client benchmark: {} legitimate sessions (page start, then 1 batch/s each, own addresses), {} s per \
         phase; attacks [{}], {} connections each, attacker under nice {}; body cap {} bytes",
        args.sessions,
        args.seconds,
        attacks.join(", "),
        args.conns,
        args.nice,
        args.body_cap
    );
    let plan = |many: bool| Plan {
        base: base.clone(),
        key: key.clone(),
        attacks: args.attacks.clone(),
        many,
        seconds: args.seconds,
        conns: args.conns,
        body_cap: args.body_cap,
    };
    let mut phases = vec![phase("baseline (no attacker)", "base", &args, &target, None).await?];
    if args.few {
        phases.push(phase("attacked, 4 addresses", "few", &args, &target, Some(plan(false))).await?);
    }
    if args.many {
        phases.push(phase("attacked, 1 address/request", "many", &args, &target, Some(plan(true))).await?);
    }
    let text = metrics(&base).await.unwrap_or_default();
    // What the server keeps once idle: its allocator returns freed memory after a while.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = read_memory(pid);
    let hwm = idle.map(|(_, hwm, _)| hwm);
    let stored = disk_usage(dir.path());
    let _ = server.kill();
    let _ = server.wait();

    println!();
    println!(
        "{:<30} {:>8} {:>7} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>28} {:>9} {:>8}",
        "legitimate sessions",
        "requests",
        "non-2xx",
        "failed",
        "p50 ms",
        "p99 ms",
        "max ms",
        "start p99",
        "small p99",
        "srv CPU",
        "RSS MiB start/peak/end/settled",
        "anon peak",
        "HWM MiB"
    );
    for p in &phases {
        let l = &p.legit;
        let cpu = p.server_cpu.map_or_else(
            || "-".to_owned(),
            |c| format!("{:.0}%", 100.0 * c.as_secs_f64() / p.elapsed.as_secs_f64().max(0.001)),
        );
        let (rss, anon, hwm) = p.memory.map_or_else(
            || ("-".to_owned(), "-".to_owned(), "-".to_owned()),
            |m| {
                (
                    format!(
                        "{:.0}/{:.0}/{:.0}/{}",
                        mib(m.start_kib),
                        mib(m.peak_kib),
                        mib(m.end_kib),
                        p.settled_kib.map_or_else(|| "-".to_owned(), |s| format!("{:.0}", mib(s)))
                    ),
                    format!("{:.0}", mib(m.peak_anon_kib)),
                    format!("{:.0}", mib(m.hwm_kib)),
                )
            },
        );
        println!(
            "{:<30} {:>8} {:>7} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>7} {:>28} {:>9} {:>8}",
            p.name,
            l.latencies_us.len(),
            l.refused(),
            l.failed,
            percentile_ms(&l.latencies_us, 0.5),
            percentile_ms(&l.latencies_us, 0.99),
            percentile_ms(&l.latencies_us, 1.0),
            percentile_ms(&l.page_start_us, 0.99),
            percentile_ms(&l.small_us, 0.99),
            cpu,
            rss,
            anon,
            hwm
        );
        if l.refused() > 0 {
            let s: Vec<String> = l.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
            println!("{:<30} answers by status: {}", "", s.join(", "));
        }
    }
    println!(
        "(start p99: the page starts alone, ~7.7 KB gzip, decoded in the blocking pool behind the server's decode \
         slots; small p99: the other batches, ~0.5 KB, decoded inline;\n srv CPU: of the server process, 200% = \
         both cores; settled: 3 s after the attacker stopped; anon peak: the anonymous part of the RSS, heap and \
         stacks)"
    );
    for p in phases.iter().filter(|p| !p.attacker.is_empty()) {
        println!();
        println!(
            "attacker during \"{}\" (answers by status, per second over {:.0} s; attacker CPU {}):",
            p.name,
            p.elapsed.as_secs_f64(),
            p.attacker_cpu.map_or_else(
                || "-".to_owned(),
                |c| format!("{:.0}%", 100.0 * c.as_secs_f64() / p.elapsed.as_secs_f64().max(0.001))
            )
        );
        for attack in Attack::ALL {
            let rows: Vec<(&String, &u64)> =
                p.attacker.iter().filter(|((a, _), _)| a == attack.name()).map(|((_, s), n)| (s, n)).collect();
            if rows.is_empty() {
                continue;
            }
            let total: u64 = rows.iter().map(|(_, n)| **n).sum();
            let s: Vec<String> = rows.iter().map(|(s, n)| format!("{s}: {n}")).collect();
            println!(
                "  {:<10} {:>8} requests ({:>7.1}/s)  {}",
                attack.name(),
                total,
                total as f64 / p.elapsed.as_secs_f64().max(0.001),
                s.join(", ")
            );
        }
    }
    println!();
    println!("server /metrics at the end:");
    for line in text.lines().filter(|l| {
        l.starts_with("replay_ingest_rejected_total")
            || l.starts_with("replay_ingest_batches_total")
            || l.starts_with("replay_ingest_error_sightings_dropped_total")
            || l.starts_with("replay_index_backlog")
            || l.starts_with("replay_storage_errors_total")
    }) {
        println!("  {line}");
    }
    println!("data dir at the end: {:.0} MiB", stored as f64 / 1048576.0);
    if let Some((rss, _, anon)) = idle {
        println!("server RSS after 10 s idle: {:.0} MiB ({:.0} MiB anonymous)", mib(rss), mib(anon));
    }
    let worst = phases.iter().skip(1).map(|p| percentile_ms(&p.legit.latencies_us, 0.99)).fold(0.0, f64::max);
    let peak = phases.iter().filter_map(|p| p.memory.map(|m| m.peak_kib)).max().unwrap_or(0);
    println!(
        "verdict: attacked p99 {worst:.1} ms (target < {P99_TARGET_MS:.0} ms: {}); server peak RSS {:.0} MiB, VmHWM {:.0} MiB",
        if worst < P99_TARGET_MS { "met" } else { "MISSED" },
        mib(peak),
        mib(hwm.unwrap_or(0))
    );
    Ok(())
}
