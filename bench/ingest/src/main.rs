//! `ingest-bench`: how fast does the real server ingest realistic batches from many concurrent
//! recording sessions, compared with a no-op axum endpoint that only reads the same bodies?
//!
//! Both targets run as separate processes on loopback (the no-op is this binary re-executed
//! with `--noop`), and are loaded one after the other by the same generator with the same
//! bodies. Prints batches/s, MB/s, p50/p99 latency and the ratio. Run with
//! `cargo xtask bench-ingest [--sessions N] [--seconds S] [--rounds R]`.
//!
//! With `--postgres`, each round also loads two server instances sharing one private
//! PostgreSQL cluster and one S3-compatible object store (`replay_e2e::services`, on loopback;
//! the object store runs in this process, so its CPU shows under "client µs"), the sessions'
//! requests spread over both as a load balancer would: the scale-out deployment's ratio to the
//! no-op, printed next to the embedded SQLite's.
//!
//! The saturated comparison runs in `R` rounds (3 by default), each the no-op then the real
//! server, back to back: every round gives a ratio, and the median of those is the figure, so
//! one moment of load from elsewhere on a shared machine does not decide it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use replay_protocol::test_util::{at, click, document, el, page_meta, snapshot, text};
use replay_protocol::{
    AddedSubtree, Batch, Environment, EventData, Input, MousePoint, Mutation, PageMeta, Viewport, encode_batch,
};

struct Args {
    sessions: usize,
    seconds: u64,
    rounds: usize,
    postgres: bool,
}

fn parse_args() -> Result<(Args, bool)> {
    let mut args = Args { sessions: 1000, seconds: 10, rounds: 3, postgres: false };
    let mut noop = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--noop" => noop = true,
            "--postgres" => args.postgres = true,
            "--sessions" => args.sessions = it.next().context("--sessions N")?.parse()?,
            "--seconds" => args.seconds = it.next().context("--seconds S")?.parse()?,
            "--rounds" => args.rounds = it.next().context("--rounds R")?.parse::<usize>()?.max(1),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok((args, noop))
}

fn main() -> Result<()> {
    let (args, noop) = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if noop {
        return runtime.block_on(noop_server());
    }
    runtime.block_on(run(args))
}

/// The baseline: reads the whole body and answers a small JSON acknowledgement.
async fn noop_server() -> Result<()> {
    let app = axum::Router::new().route(
        "/api/v1/ingest",
        axum::routing::post(|body: Bytes| async move {
            let _ = body.len();
            ([("content-type", "application/json")], r#"{"ok":true,"duplicate":false}"#)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("noop listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    axum::serve(listener, app.layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))).await?;
    Ok(())
}

/// The batches one simulated session sends: a page start with a 2,000-node snapshot and the
/// environment facts, then small batches of mutations, input and mouse movement, like a user
/// working in an app.
fn session_batches(session: &str, count: u32) -> Vec<Bytes> {
    let start = 1_800_000_000_000u64;
    (0..count)
        .map(|seq| {
            let mut b = Batch::new(session, "page", seq, start + u64::from(seq) * 5000);
            if seq == 0 {
                let mut nodes = vec![document(1), el(2, 1, "html", &[("class", "")])];
                nodes.push(el(3, 2, "body", &[("class", "app")]));
                let mut id = 4;
                for row in 0..500 {
                    nodes.push(el(id, 3, "div", &[("class", "row")]));
                    nodes.push(text(id + 1, id, format!("Product {row} · {}", row * 7919 % 10007)));
                    id += 2;
                }
                b.events.push(at(
                    0,
                    EventData::Meta(PageMeta {
                        title: "Catalog".into(),
                        viewport: Viewport { width: 1280, height: 800 },
                        user_agent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/156".into(),
                        ..page_meta("https://shop.example/catalog")
                    }),
                ));
                b.events.push(at(0, snapshot(nodes)));
                // What every recorder sends on a page start: the session's environment facts.
                b.events.push(at(
                    0,
                    EventData::Environment(Environment {
                        browser: "Chrome".into(),
                        browser_version: "156.0.7000.1".into(),
                        os: "Linux".into(),
                        device_pixel_ratio: 1.0,
                        device_memory: 8.0,
                        cpu_cores: 8,
                        connection: "4g".into(),
                        language: "en-US".into(),
                        timezone: "Europe/Berlin".into(),
                    }),
                ));
            } else {
                let base = 10_000 + seq * 100;
                for i in 0..20u32 {
                    b.events.push(at(
                        i * 200,
                        EventData::MouseMove(
                            (0..5)
                                .map(|k| MousePoint { x: (i * 13 + k) as i32, y: (i * 7) as i32, dt: k * 50 })
                                .collect(),
                        ),
                    ));
                }
                b.events.push(at(1000, EventData::Input(Input { id: 7, value: "*****".into(), checked: None })));
                b.events.push(at(1100, click(9, 200, 300)));
                let adds = (0..10)
                    .map(|r| AddedSubtree {
                        parent: 3,
                        next: 0,
                        nodes: vec![
                            el(base + r * 2, 3, "div", &[("class", "row new")]),
                            text(base + r * 2 + 1, base + r * 2, format!("Result {r}")),
                        ],
                    })
                    .collect();
                b.events.push(at(1200, EventData::Mutation(Mutation { adds, ..Mutation::default() })));
            }
            b.end = b.start + u64::from(b.events.last().map_or(0, |e| e.t));
            let raw = encode_batch(&b).unwrap_or_default();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = gz.write_all(&raw);
            Bytes::from(gz.finish().unwrap_or_default())
        })
        .collect()
}

/// Upper bound of batches one session sends in a run (a recorder sends one every few seconds;
/// here sessions send back to back, so this is far more than a real session's rate).
const BATCHES_PER_SESSION: u32 = 120;

struct Outcome {
    batches: u64,
    bytes: u64,
    errors: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
    /// CPU time (user + system, all threads) the target and this generator spent during the
    /// run: unlike throughput, it hardly depends on what else the machine is doing.
    target_cpu: Option<Duration>,
    generator_cpu: Option<Duration>,
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat` (Linux only).
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may contain spaces) start at state, field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// One process loaded: its address and pid (several: requests spread over them in turn).
struct Target {
    base: String,
    pid: u32,
}

/// CPU time of all `targets` together.
fn targets_cpu(targets: &[Target]) -> Option<Duration> {
    targets.iter().map(|t| cpu_time(Some(t.pid))).sum()
}

async fn load(targets: &[Target], key: &str, args: &Args, label: &str, pace: Option<Duration>) -> Result<Outcome> {
    let urls: Vec<hyper::Uri> =
        targets.iter().map(|t| format!("{}/api/v1/ingest", t.base).parse()).collect::<Result<_, _>>()?;
    anyhow::ensure!(!urls.is_empty(), "no target to load");
    // Bodies are built before the clock starts: the generator must not compete with the target.
    let all: Vec<Arc<Vec<Bytes>>> =
        (0..args.sessions).map(|s| Arc::new(session_batches(&format!("{label}-{s}"), BATCHES_PER_SESSION))).collect();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let cpu_before = (targets_cpu(targets), cpu_time(None));
    let mut tasks = Vec::new();
    let sessions = all.len().max(1) as u32;
    for (i, bodies) in all.into_iter().enumerate() {
        let (urls, key) = (urls.clone(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            // One client (one keep-alive connection) per session, like one browser tab each;
            // a shared pool of 1,000 connections would measure the pool, not the server.
            let client: Client<_, Full<Bytes>> =
                Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1).build_http();
            let mut out = (0u64, 0u64, 0u64, Vec::new());
            let mut seq = 0usize;
            // Paced sessions start spread over one interval, like real tabs do.
            let mut next = pace.map(|p| Instant::now() + p * i as u32 / sessions);
            while Instant::now() < deadline && seq < bodies.len() {
                if let (Some(p), Some(at)) = (pace, next.as_mut()) {
                    tokio::time::sleep_until((*at).into()).await;
                    *at += p;
                }
                let body = bodies[seq].clone();
                let len = body.len() as u64;
                // Each request to the next instance, as a round-robin load balancer sends them.
                let req = hyper::Request::post(urls[(i + seq) % urls.len()].clone())
                    .header("x-replay-key", &key)
                    .header("content-type", "application/msgpack")
                    .header("content-encoding", "gzip")
                    .body(Full::new(body));
                let Ok(req) = req else { break };
                let t = Instant::now();
                match client.request(req).await {
                    Ok(res) => {
                        let ok = res.status().is_success();
                        let _ = res.into_body().collect().await;
                        out.3.push(t.elapsed().as_micros() as u64);
                        if ok {
                            out.0 += 1;
                            out.1 += len;
                            seq += 1;
                        } else {
                            out.2 += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    Err(_) => {
                        out.2 += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            out
        }));
    }
    let mut o = Outcome {
        batches: 0,
        bytes: 0,
        errors: 0,
        latencies_us: Vec::new(),
        elapsed: Duration::ZERO,
        target_cpu: None,
        generator_cpu: None,
    };
    for t in tasks {
        let (b, by, e, l) = t.await?;
        o.batches += b;
        o.bytes += by;
        o.errors += e;
        o.latencies_us.extend(l);
    }
    o.elapsed = started.elapsed();
    o.target_cpu = targets_cpu(targets).zip(cpu_before.0).map(|(after, before)| after.saturating_sub(before));
    o.generator_cpu = cpu_time(None).zip(cpu_before.1).map(|(after, before)| after.saturating_sub(before));
    o.latencies_us.sort_unstable();
    Ok(o)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// The server under load, on a free loopback port with its data in `dir`: every rate limit
/// lifted (all sessions come from one address), fixed admin credentials, logs as asked.
fn server_command(server_bin: &str, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(server_bin);
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("REPLAY_LOG", std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .env("REPLAY_ADMIN_TOKEN", "bench-token")
        .env("REPLAY_ADMIN_PASSWORD", "bench-password")
        .env("REPLAY_CLIENT_RATE", "1000000")
        .env("REPLAY_CLIENT_BURST", "1000000")
        .env("REPLAY_PROJECT_RATE", "1000000")
        .env("REPLAY_CLIENT_BYTES_PER_SECOND", "0");
    cmd
}

fn spawn_and_read(mut cmd: Command, prefix: &str, key_line: bool) -> Result<(Child, String, String)> {
    // With `BENCH_SERVER_LOG` set (a `REPLAY_LOG` filter), the server's logs go to stderr.
    let logs = if std::env::var_os("BENCH_SERVER_LOG").is_some() { Stdio::inherit() } else { Stdio::null() };
    let mut child = cmd.stdout(Stdio::piped()).stderr(logs).spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut base, mut key) = (String::new(), String::new());
    while base.is_empty() || (key_line && key.is_empty()) {
        let line = lines.next().ok_or_else(|| anyhow!("{prefix} exited early"))??;
        if let Some(rest) = line.split("listening on ").nth(1) {
            base = rest.trim().to_owned();
        } else if let Some(rest) = line.trim().strip_prefix("ingest key: ") {
            key = rest.split_whitespace().next().unwrap_or_default().to_owned();
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok((child, base, key))
}

fn row(name: &str, o: &Outcome) -> String {
    let secs = o.elapsed.as_secs_f64();
    let per_batch = |cpu: Option<Duration>| {
        cpu.filter(|_| o.batches > 0)
            .map_or_else(|| "-".to_owned(), |c| format!("{:.0}", c.as_secs_f64() * 1e6 / o.batches as f64))
    };
    format!(
        "{name:<34} {:>10.0} {:>8.1} {:>9.2} {:>9.2} {:>8} {:>10} {:>10}",
        o.batches as f64 / secs,
        o.bytes as f64 / secs / 1e6,
        percentile(&o.latencies_us, 0.5),
        percentile(&o.latencies_us, 0.99),
        o.errors,
        per_batch(o.target_cpu),
        per_batch(o.generator_cpu),
    )
}

async fn run(args: Args) -> Result<()> {
    let server_bin =
        std::env::var("REPLAY_SERVER_BIN").context("REPLAY_SERVER_BIN: run through `cargo xtask bench-ingest`")?;
    let dir = tempfile::tempdir()?;
    let (mut server, server_base, key) =
        spawn_and_read(server_command(&server_bin, dir.path()), "replay-server", true)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--noop");
    let (mut noop, noop_base, _) = spawn_and_read(cmd, "noop", false)?;
    let sqlite = [Target { base: server_base, pid: server.id() }];
    let noop_target = [Target { base: noop_base, pid: noop.id() }];
    let scale_out = if args.postgres { Some(ScaleOut::start(&server_bin)?) } else { None };

    let bodies = session_batches("probe", 3);
    println!(
        "ingest benchmark: {} concurrent sessions, {} s per target; batch sizes (gzip): page start {} B, then {} B",
        args.sessions,
        args.seconds,
        bodies[0].len(),
        bodies[1].len()
    );
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        let baseline = load(&noop_target, "unused", &args, &format!("noop{round}"), None).await?;
        let real = load(&sqlite, &key, &args, &format!("real{round}"), None).await?;
        let pg = match &scale_out {
            Some(so) => Some(load(&so.targets, &so.key, &args, &format!("pg{round}"), None).await?),
            None => None,
        };
        rounds.push((baseline, real, pg));
    }
    // Realistic load: every session uploads once a second (a recorder uploads every 5 s).
    let paced = load(&sqlite, &key, &args, "paced", Some(Duration::from_secs(1))).await?;
    let paced_pg = match &scale_out {
        Some(so) => Some(load(&so.targets, &so.key, &args, "paced-pg", Some(Duration::from_secs(1))).await?),
        None => None,
    };
    let _ = server.kill();
    let _ = noop.kill();
    drop(scale_out);
    println!(
        "{:<34} {:>10} {:>8} {:>9} {:>9} {:>8} {:>10} {:>10}",
        "target", "batches/s", "MB/s", "p50 ms", "p99 ms", "errors", "target µs", "client µs"
    );
    let rate = |o: &Outcome| o.batches as f64 / o.elapsed.as_secs_f64();
    let mut ratios = Vec::new();
    let mut pg_ratios = Vec::new();
    for (round, (baseline, real, pg)) in rounds.iter().enumerate() {
        println!("{}", row(&format!("round {}: no-op axum (reads body)", round + 1), baseline));
        println!("{}", row(&format!("round {}: replay-server (durable)", round + 1), real));
        ratios.push(rate(real) / rate(baseline));
        if let Some(pg) = pg {
            println!("{}", row(&format!("round {}: 2 × server, PostgreSQL + S3", round + 1), pg));
            pg_ratios.push(rate(pg) / rate(baseline));
        }
    }
    println!("{}", row("replay-server, 1 batch/s/session", &paced));
    if let Some(p) = &paced_pg {
        println!("{}", row("2 × server on PG + S3, 1 batch/s/s.", p));
    }
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!(
        "throughput ratio replay/no-op (saturated): median {median:.2} of rounds [{}] (target >= 0.5); p99 at {} \
         sessions x 1 batch/s: {:.1} ms (target < 50 ms)",
        shown.join(", "),
        args.sessions,
        percentile(&paced.latencies_us, 0.99)
    );
    if let Some(p) = &paced_pg {
        let shown: Vec<String> = pg_ratios.iter().map(|r| format!("{r:.2}")).collect();
        pg_ratios.sort_by(f64::total_cmp);
        println!(
            "scale-out (two instances on PostgreSQL + S3) ratio to the no-op: median {:.2} of rounds [{}]; p99 at {} \
             sessions x 1 batch/s: {:.1} ms",
            pg_ratios.get(pg_ratios.len() / 2).copied().unwrap_or(f64::NAN),
            shown.join(", "),
            args.sessions,
            percentile(&p.latencies_us, 0.99)
        );
    }
    println!(
        "(target µs, client µs: CPU time per acknowledged batch of the target process and of this load generator, \
         all threads, user + system)"
    );
    Ok(())
}

/// The scale-out deployment under load: a private PostgreSQL cluster, an S3-compatible object
/// store and two server instances sharing them. Everything stops when dropped.
struct ScaleOut {
    targets: Vec<Target>,
    key: String,
    children: Vec<Child>,
    _dirs: Vec<tempfile::TempDir>,
    _s3: replay_e2e::services::ObjectStoreServer,
    _pg: replay_e2e::services::Postgres,
}

impl ScaleOut {
    fn start(server_bin: &str) -> Result<ScaleOut> {
        use replay_e2e::services::{ObjectStoreServer, Postgres};
        let pg = Postgres::start()?;
        let s3 = ObjectStoreServer::start()?;
        s3.wait_ready()?;
        let (mut targets, mut children, mut dirs, mut key) = (Vec::new(), Vec::new(), Vec::new(), String::new());
        for _ in 0..2 {
            let dir = tempfile::tempdir()?;
            let mut cmd = server_command(server_bin, dir.path());
            cmd.envs(s3.env())
                .env("REPLAY_POSTGRES_URL", pg.url())
                .env("REPLAY_OBJECT_STORE_URL", format!("s3://{}/bench", ObjectStoreServer::BUCKET));
            // One at a time: the first creates the schema and the default project.
            let (child, base, k) = spawn_and_read(cmd, "replay-server (PostgreSQL)", true)?;
            targets.push(Target { base, pid: child.id() });
            children.push(child);
            dirs.push(dir);
            key = k;
        }
        Ok(ScaleOut { targets, key, children, _dirs: dirs, _s3: s3, _pg: pg })
    }
}

impl Drop for ScaleOut {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
