//! The attacker process (this binary re-executed with `--attacker`, run under `nice` so that,
//! as on a real network, the attacker's own CPU does not come out of the server's share).
//!
//! Attacks, each from `conns` connections at once, until the deadline:
//! - `errors`: batches of ~200k distinct errors (as many as fit the body cap), real key;
//! - `keys`: small valid batches under random made-up ingest keys;
//! - `big`: into one session with the real key, in turn: a batch just under the body cap
//!   (stored), a body one byte over it with its length announced, and one streamed (chunked)
//!   without a length;
//! - `passwords`: `POST /login` guesses for `admin` and for made-up names, with a matching
//!   `Origin` and form token (so the cross-site checks pass and the password is checked).
//!
//! Addresses: `few` presents four fixed client addresses (203.0.113.1-4) in `X-Forwarded-For`,
//! `many` a random address of 10.0.0.0/8 on every request (a botnet). Counts of answers by
//! status are printed on stdout as `count ATTACK STATUS N` lines (`STATUS` is `failed` when no
//! answer came), then `done`.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::batches::{Rng, big_batch, error_batch, small_batch};

/// One kind of attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attack {
    Errors,
    Keys,
    Big,
    Passwords,
}

impl Attack {
    pub const ALL: [Attack; 4] = [Attack::Errors, Attack::Keys, Attack::Big, Attack::Passwords];

    pub fn name(self) -> &'static str {
        match self {
            Attack::Errors => "errors",
            Attack::Keys => "keys",
            Attack::Big => "big",
            Attack::Passwords => "passwords",
        }
    }

    /// `all`, or a comma-separated list of attack names.
    pub fn parse_list(s: &str) -> Result<Vec<Attack>> {
        if s == "all" {
            return Ok(Attack::ALL.to_vec());
        }
        s.split(',')
            .map(|n| {
                Attack::ALL.into_iter().find(|a| a.name() == n.trim()).with_context(|| {
                    format!("unknown attack {n:?} (errors, keys, big, passwords, all or a comma-separated list)")
                })
            })
            .collect()
    }
}

/// What the attacker is told to do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub base: String,
    pub key: String,
    pub attacks: Vec<Attack>,
    /// A new random address per request (instead of four fixed ones).
    pub many: bool,
    pub seconds: u64,
    pub conns: usize,
    /// The server's body cap (`--max-body-bytes`, 8 MiB by default).
    pub body_cap: usize,
}

impl Plan {
    /// The command-line arguments that give this plan to the attacker process.
    pub fn to_args(&self) -> Vec<String> {
        let attacks: Vec<&str> = self.attacks.iter().map(|a| a.name()).collect();
        vec![
            "--attacker".into(),
            self.base.clone(),
            self.key.clone(),
            attacks.join(","),
            if self.many { "many" } else { "few" }.into(),
            self.seconds.to_string(),
            self.conns.to_string(),
            self.body_cap.to_string(),
        ]
    }

    pub fn from_args(args: &[String]) -> Result<Plan> {
        let [base, key, attacks, addresses, seconds, conns, body_cap] = args else {
            bail!("--attacker BASE KEY ATTACKS few|many SECONDS CONNS BODY_CAP");
        };
        Ok(Plan {
            base: base.clone(),
            key: key.clone(),
            attacks: Attack::parse_list(attacks)?,
            many: addresses == "many",
            seconds: seconds.parse()?,
            conns: conns.parse()?,
            body_cap: body_cap.parse()?,
        })
    }
}

/// Bodies made by a producer thread while the attack runs: each is sent once as new, then
/// resent (a duplicate, which the server still decodes whole) until a new one is ready.
struct Pool {
    fresh: Mutex<VecDeque<Bytes>>,
    used: Mutex<Vec<Bytes>>,
    /// Number of bodies the producer made.
    made: AtomicU64,
}

impl Pool {
    fn new() -> Arc<Pool> {
        Arc::new(Pool { fresh: Mutex::new(VecDeque::new()), used: Mutex::new(Vec::new()), made: AtomicU64::new(0) })
    }

    /// Starts a thread that keeps two fresh bodies ready until `stop`.
    fn produce(
        self: &Arc<Pool>,
        stop: Arc<AtomicBool>,
        mut make: impl FnMut(u64) -> Result<Bytes> + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let pool = Arc::clone(self);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if pool.fresh.lock().map_or(0, |f| f.len()) >= 2 {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                let n = pool.made.fetch_add(1, Ordering::Relaxed);
                match make(n) {
                    Ok(b) => {
                        if let Ok(mut f) = pool.fresh.lock() {
                            f.push_back(b);
                        }
                    }
                    Err(e) => {
                        eprintln!("attacker: cannot build a body: {e:#}");
                        return;
                    }
                }
            }
        })
    }

    /// Waits (up to a minute) until the producer made its first body.
    fn wait_ready(&self) -> Result<()> {
        let until = Instant::now() + Duration::from_secs(60);
        while self.fresh.lock().map_or(0, |f| f.len()) == 0 {
            if Instant::now() > until {
                bail!("the attacker's bodies took more than a minute to build");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn take(&self, i: usize) -> Option<Bytes> {
        if let Some(b) = self.fresh.lock().ok()?.pop_front() {
            let mut used = self.used.lock().ok()?;
            if used.len() >= 4 {
                used.remove(0);
            }
            used.push(b.clone());
            return Some(b);
        }
        let used = self.used.lock().ok()?;
        (!used.is_empty()).then(|| used[i % used.len()].clone())
    }
}

/// A body streamed in 256 KiB chunks without announcing its length (chunked encoding).
struct Chunked {
    data: Bytes,
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.data.len().min(256 * 1024);
        Poll::Ready(Some(Ok(Frame::data(self.data.split_to(n)))))
    }
}

type Tally = BTreeMap<(Attack, String), u64>;

/// The client address of the next request.
fn address(many: bool, rng: &mut Rng, counter: &AtomicU64) -> String {
    if many {
        Ipv4Addr::from(0x0a00_0000 | (rng.next_u64() as u32 & 0x00ff_ffff)).to_string()
    } else {
        Ipv4Addr::new(203, 0, 113, 1 + (counter.fetch_add(1, Ordering::Relaxed) % 4) as u8).to_string()
    }
}

/// Runs the plan and prints the tally (the attacker process's `main`).
pub fn main(plan: Plan) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Pool::new();
    let bigs = Pool::new();
    let mut producers = Vec::new();
    let cap = plan.body_cap;
    if plan.attacks.contains(&Attack::Errors) {
        let mut rng = Rng::from_time(1);
        let stamp = rng.next_u64() % 1_000_000;
        producers.push(errors.produce(Arc::clone(&stop), move |n| {
            let (body, count) = error_batch(&format!("atk-err-{stamp}-{n}"), 200_000, cap, &mut rng)?;
            if n == 0 {
                eprintln!("attacker: error batches of {count} distinct errors, {} bytes gzip", body.len());
            }
            Ok(body)
        }));
        errors.wait_ready()?;
    }
    if plan.attacks.contains(&Attack::Big) {
        let mut rng = Rng::from_time(2);
        let session = format!("atk-big-{}", rng.next_u64() % 1_000_000);
        producers.push(bigs.produce(Arc::clone(&stop), move |n| {
            let body = big_batch(&session, n as u32, cap, &mut rng)?;
            if n == 0 {
                eprintln!("attacker: big batches of {} bytes gzip (cap {cap})", body.len());
            }
            Ok(body)
        }));
        bigs.wait_ready()?;
    }
    let small = small_batch("atk-keys")?;
    // One byte over the cap (its content does not matter: it is refused for its size).
    let over = Bytes::from(vec![b'x'; cap + 1]);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    println!("ready");
    let tally = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(plan.seconds);
        let counter = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for &attack in &plan.attacks {
            for w in 0..plan.conns {
                let plan = plan.clone();
                let (errors, bigs, small, over, counter) =
                    (Arc::clone(&errors), Arc::clone(&bigs), small.clone(), over.clone(), Arc::clone(&counter));
                tasks.push(tokio::spawn(async move {
                    let client: Client<_, BoxBody<Bytes, Infallible>> =
                        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1).build_http();
                    let mut rng = Rng::from_time(100 + w as u64 + 1000 * attack as u64);
                    let mut tally = Tally::new();
                    let ingest = format!("{}/api/v1/ingest", plan.base);
                    let mut i = w;
                    while Instant::now() < deadline {
                        i += 1;
                        let from = address(plan.many, &mut rng, &counter);
                        let ingest_req = |key: &str, body: BoxBody<Bytes, Infallible>| {
                            hyper::Request::post(&ingest)
                                .header("x-replay-key", key)
                                .header("x-forwarded-for", &from)
                                .header("origin", "https://shop.example")
                                .header("content-type", "application/msgpack")
                                .header("content-encoding", "gzip")
                                .body(body)
                        };
                        let req = match attack {
                            Attack::Errors => {
                                let Some(b) = errors.take(i) else { break };
                                ingest_req(&plan.key, Full::new(b).boxed())
                            }
                            Attack::Keys => {
                                let key = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
                                ingest_req(&key, Full::new(small.clone()).boxed())
                            }
                            Attack::Big => match i % 3 {
                                0 => {
                                    let Some(b) = bigs.take(i) else { break };
                                    ingest_req(&plan.key, Full::new(b).boxed())
                                }
                                1 => ingest_req(&plan.key, Full::new(over.clone()).boxed()),
                                _ => ingest_req(&plan.key, Chunked { data: over.clone() }.boxed()),
                            },
                            Attack::Passwords => {
                                let user =
                                    if i % 2 == 0 { "admin".to_owned() } else { format!("u{}", rng.letters(10)) };
                                // The form token is a double submit (it guards against other
                                // sites, not against a client of its own): any value sent as both
                                // the form cookie and the field passes, and the password is checked.
                                let token = format!(
                                    "{:016x}{:016x}{:016x}{:016x}",
                                    rng.next_u64(),
                                    rng.next_u64(),
                                    rng.next_u64(),
                                    rng.next_u64()
                                );
                                let form = format!(
                                    "username={user}&password=guess-{}&next=%2Fviewer%2F&form_token={token}",
                                    rng.letters(12)
                                );
                                hyper::Request::post(format!("{}/login", plan.base))
                                    .header("x-forwarded-for", &from)
                                    .header("origin", &plan.base)
                                    .header("cookie", format!("replay_form={token}"))
                                    .header("content-type", "application/x-www-form-urlencoded")
                                    .body(Full::new(Bytes::from(form)).boxed())
                            }
                        };
                        let Ok(req) = req else { break };
                        let answer =
                            tokio::time::timeout_at((deadline + Duration::from_secs(10)).into(), client.request(req))
                                .await;
                        let status = match answer {
                            Ok(Ok(res)) => {
                                let s = res.status().as_u16().to_string();
                                let _ = res.into_body().collect().await;
                                s
                            }
                            _ => "failed".to_owned(),
                        };
                        *tally.entry((attack, status)).or_default() += 1;
                    }
                    tally
                }));
            }
        }
        let mut all = Tally::new();
        for t in tasks {
            if let Ok(tally) = t.await {
                for (k, n) in tally {
                    *all.entry(k).or_default() += n;
                }
            }
        }
        all
    });
    stop.store(true, Ordering::Relaxed);
    for ((attack, status), n) in &tally {
        println!("count {} {status} {n}", attack.name());
    }
    println!("made errors {} big {}", errors.made.load(Ordering::Relaxed), bigs.made.load(Ordering::Relaxed));
    println!("done");
    for p in producers {
        let _ = p.join();
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_reaches_the_attacker_process_whole() {
        let plan = Plan {
            base: "http://127.0.0.1:1".into(),
            key: "k".into(),
            attacks: Attack::parse_list("keys,big").expect("list"),
            many: true,
            seconds: 3,
            conns: 2,
            body_cap: 1024,
        };
        let args = plan.to_args();
        assert_eq!(args[0], "--attacker");
        let back = Plan::from_args(&args[1..]).expect("parses");
        assert_eq!((back.attacks, back.many, back.seconds, back.conns), (vec![Attack::Keys, Attack::Big], true, 3, 2));
        assert_eq!(Attack::parse_list("all").expect("all").len(), 4);
        assert!(Attack::parse_list("keys,nope").is_err());
    }

    #[test]
    fn a_botnet_rotates_addresses_and_a_few_stay_few() {
        let (mut rng, counter) = (Rng::new(1), AtomicU64::new(0));
        let few: std::collections::HashSet<String> = (0..20).map(|_| address(false, &mut rng, &counter)).collect();
        assert_eq!(few.len(), 4);
        let many: std::collections::HashSet<String> = (0..1000).map(|_| address(true, &mut rng, &counter)).collect();
        assert!(many.len() > 990 && many.iter().all(|a| a.starts_with("10.")));
    }
}
