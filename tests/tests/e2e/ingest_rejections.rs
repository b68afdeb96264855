//! Bad input against the real server binary: each gets its 4xx with a machine-readable reason,
//! and storage stays unchanged.

use std::io::Write;

use anyhow::{Context, Result, ensure};
use replay_e2e::{Browser, Server};
use replay_protocol::encode_batch;
use replay_protocol::test_util::click_batch;

/// One click of the one session of these tests.
fn batch(seq: u32) -> Vec<u8> {
    encode_batch(&click_batch("e2e-session", "e2e-page", seq, 1_700_000_000_000, 1)).expect("encodes")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("in memory");
    e.finish().expect("in memory")
}

/// A valid batch's array with one more element: 100,000 nested arrays.
fn nested_inside(good: &[u8]) -> Vec<u8> {
    let mut out = good.to_vec();
    out[0] += 1; // fixarray length + 1
    out.extend(std::iter::repeat_n(0x91, 100_000));
    out.push(0xc0);
    out
}

/// A batch of `n` `Visibility` events (6 bytes each on the wire, about 240 decoded), built
/// from the bytes of a batch of none and a batch of one.
fn events_batch(n: u32) -> Vec<u8> {
    let with = |count: usize| {
        let mut b = replay_protocol::Batch::new("e2e-session", "e2e-page", 0, 1_700_000_000_000);
        b.events = vec![replay_protocol::test_util::at(0, replay_protocol::EventData::Visibility(true)); count];
        encode_batch(&b).expect("encodes")
    };
    let (none, one) = (with(0), with(1));
    let at = none.iter().zip(&one).position(|(a, b)| a != b).expect("the events array");
    let event = &one[at + 1..at + 1 + one.len() - none.len()];
    let mut out = none[..at].to_vec();
    out.push(0xdd);
    out.extend_from_slice(&n.to_be_bytes());
    for _ in 0..n {
        out.extend_from_slice(event);
    }
    out.extend_from_slice(&none[at + 1..]);
    out
}

/// name, key, body, content encoding, expected status, expected reason.
type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, Option<&'a str>, u16, &'a str);

/// Sends only the headers of a POST announcing `len` bytes and returns the server's answer.
fn raw_post(server: &Server, key: &str, len: usize) -> Result<String> {
    use std::io::Read;
    let addr = server.base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        s,
        "POST /api/v1/ingest HTTP/1.1\r\nHost: {addr}\r\nX-Replay-Key: {key}\r\nContent-Type: application/msgpack\r\nContent-Length: {len}\r\n\r\n"
    )?;
    s.write_all(&[0x90; 1024])?;
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn bad_requests_get_4xx_and_store_nothing() -> Result<()> {
    let server = Server::start()?;
    let key = server.key.clone();
    let good = batch(0);
    let cases: Vec<Case<'_>> = vec![
        ("missing key", None, good.clone(), None, 401, "missing_key"),
        ("wrong key", Some("0123456789abcdef0123456789abcdef"), good.clone(), None, 401, "unknown_key"),
        ("random bytes", Some(&key), b"\xc1\xff\x00garbage".to_vec(), None, 400, "malformed_batch"),
        ("truncated batch", Some(&key), good[..good.len() / 2].to_vec(), None, 400, "malformed_batch"),
        ("zip bomb", Some(&key), gzip(&vec![0u8; 200 * 1024 * 1024]), Some("gzip"), 413, "decompressed_too_large"),
        ("broken gzip", Some(&key), b"\x1f\x8b\x08\x00broken".to_vec(), Some("gzip"), 400, "bad_encoding"),
        ("unknown encoding", Some(&key), good.clone(), Some("br"), 415, "unsupported_encoding"),
        ("empty body", Some(&key), vec![], None, 400, "empty_body"),
        ("deeply nested arrays", Some(&key), vec![0x91; 200_000], None, 400, "malformed_batch"),
        ("nesting inside a batch", Some(&key), nested_inside(&good), None, 400, "malformed_batch"),
        // 44 KB of gzip, 30 MB raw, 5 million events: refused from the events array's length,
        // before any is decoded (decoded, they held 1.1 GB).
        ("event bomb", Some(&key), gzip(&events_batch(5_000_000)), Some("gzip"), 400, "limit_exceeded"),
        // A small body that inflates far: decoded off the async workers, then refused the same way.
        ("small event bomb", Some(&key), gzip(&events_batch(460_000)), Some("gzip"), 400, "limit_exceeded"),
    ];
    for (name, k, body, enc, status, reason) in cases {
        let (got, answer) = server.ingest(k, &body, enc)?;
        if name.contains("event bomb") {
            // Refused before its events were decoded: decoded, 5 million held 1.1 GB.
            let peak = server.peak_memory()?;
            println!("{name}: server peak memory {} MB", peak >> 20);
            ensure!(peak < 400 << 20, "{name}: the server's memory peaked at {} MB", peak >> 20);
        }
        ensure!(got == status, "{name}: expected {status}, got {got} {answer}");
        ensure!(answer["error"]["reason"] == reason, "{name}: expected reason {reason}, got {answer}");
        ensure!(server.sessions()?.is_empty(), "{name}: something was stored");
    }
    // An oversized body is refused from its Content-Length, before it is read.
    let answer = raw_post(&server, &key, 9 * 1024 * 1024)?;
    ensure!(answer.starts_with("HTTP/1.1 413"), "oversized body: {answer}");
    ensure!(answer.contains("body_too_large"), "oversized body: {answer}");
    ensure!(server.sessions()?.is_empty(), "oversized body: something was stored");
    ensure!(server.get_text("/healthz")? == "ok", "server unhealthy after bad input");

    // The good batch is stored once, even when resent.
    let (status, ack) = server.ingest(Some(&key), &gzip(&good), Some("gzip"))?;
    ensure!(status == 200 && ack["duplicate"] == false, "good batch refused: {status} {ack}");
    let (status, ack) = server.ingest(Some(&key), &good, None)?;
    ensure!(status == 200 && ack["duplicate"] == true, "resent batch not acknowledged as duplicate: {ack}");
    let sessions = server.sessions()?;
    ensure!(sessions.len() == 1 && sessions[0]["batches"] == 1, "expected one batch stored once: {sessions:?}");

    let metrics = server.get_text("/metrics")?;
    ensure!(
        metrics.contains("replay_ingest_rejected_total{reason=\"malformed_batch\"} 4"),
        "rejections not counted:\n{metrics}"
    );
    ensure!(
        metrics.contains("replay_ingest_rejected_total{reason=\"limit_exceeded\"} 2"),
        "rejections not counted:\n{metrics}"
    );
    // The session list above flushed the index: nothing waits, nothing is held.
    ensure!(
        metrics.contains("replay_index_backlog_batches{state=\"pending\"} 0")
            && metrics.contains("replay_index_backlog_batches{state=\"held\"} 0"),
        "index backlog not reported:\n{metrics}"
    );
    Ok(())
}

#[test]
fn acknowledged_batches_survive_a_kill() -> Result<()> {
    let server = Server::start()?;
    let key = server.key.clone();
    for seq in 0..20 {
        let (status, _) = server.ingest(Some(&key), &batch(seq), None)?;
        ensure!(status == 200, "batch {seq} refused");
    }
    let dir = server.kill();
    let server = Server::start_in(dir)?;
    ensure!(server.key == key, "the project must survive a restart");
    let sessions = server.sessions()?;
    ensure!(sessions.len() == 1 && sessions[0]["batches"] == 20, "acknowledged batches lost: {sessions:?}");
    Ok(())
}

/// Runs `replay-server --data-dir DIR project ARGS` next to the running server; its output.
fn project_command(server: &Server, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(replay_e2e::server::server_bin()?)
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .arg("project")
        .args(args)
        .output()?;
    ensure!(out.status.success(), "project {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_rotated_key_works_during_its_grace_period_and_a_revoked_one_is_refused() -> Result<()> {
    let server = Server::start()?;
    let old = server.key.clone();
    ensure!(server.ingest(Some(&old), &batch(0), None)?.0 == 200, "the first key works");
    let printed = project_command(&server, &["rotate-key", "--project", "1", "--grace", "1h"])?;
    let new = printed
        .lines()
        .find_map(|l| l.split("new ingest key: ").nth(1))
        .map(|k| k.trim().to_owned())
        .ok_or_else(|| anyhow::anyhow!("no key printed: {printed}"))?;
    ensure!(new != old && new.len() >= 32, "a fresh key: {new}");
    ensure!(server.ingest(Some(&new), &batch(1), None)?.0 == 200, "the new key works at once");
    ensure!(server.ingest(Some(&old), &batch(2), None)?.0 == 200, "the old key works during the grace period");
    let keys = project_command(&server, &["keys", "--project", "1"])?;
    ensure!(keys.contains(&format!("{new}\tlive")) && keys.contains(&format!("{old}\tends in")), "{keys}");

    project_command(&server, &["revoke-key", "--project", "1", &old])?;
    // Another process revoked it: the server's cache of projects by key trusts an entry for
    // 30 s (replay_store::KEY_CACHE_TTL), so the refusal comes within that.
    let deadline = std::time::Instant::now() + replay_store::KEY_CACHE_TTL + std::time::Duration::from_secs(5);
    let mut seq = 3;
    let answer = loop {
        let (status, answer) = server.ingest(Some(&old), &batch(seq), None)?;
        if status != 200 || std::time::Instant::now() > deadline {
            break (status, answer);
        }
        seq += 1;
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    ensure!(answer.0 == 401 && answer.1["error"]["reason"] == "unknown_key", "revoked key still accepted: {answer:?}");
    ensure!(server.ingest(Some(&new), &batch(seq + 1), None)?.0 == 200, "the new key still works");
    Ok(())
}

#[test]
fn a_full_session_and_a_spent_daily_quota_are_refused_counted_and_lose_nothing() -> Result<()> {
    let one = batch(0).len();
    // Room for two batches of the session; one new session per day.
    let cap = (2 * one + one / 2).to_string();
    let env = [("REPLAY_MAX_SESSION_BYTES", cap.as_str()), ("REPLAY_QUOTA_SESSIONS_PER_DAY", "1")];
    let server = Server::start_with(tempfile::tempdir()?, "127.0.0.1:0", &env)?;
    let key = server.key.clone();
    for seq in 0..2 {
        ensure!(server.ingest(Some(&key), &batch(seq), None)?.0 == 200, "batch {seq} refused");
    }
    let (status, answer) = server.ingest(Some(&key), &batch(2), None)?;
    ensure!(status == 413 && answer["error"]["reason"] == "session_full", "{status} {answer}");
    let (status, answer) = server.ingest(Some(&key), &batch(0), None)?;
    ensure!(status == 200 && answer["duplicate"] == true, "a resend is still acknowledged: {status} {answer}");

    let other = encode_batch(&click_batch("e2e-other", "e2e-page", 0, 1_700_000_000_000, 1))?;
    let (status, answer) = server.ingest(Some(&key), &other, None)?;
    ensure!(status == 429 && answer["error"]["reason"] == "quota_exceeded", "{status} {answer}");

    let sessions = server.sessions()?;
    ensure!(sessions.len() == 1 && sessions[0]["batches"] == 2, "the session keeps its two batches: {sessions:?}");
    let metrics = server.get_text("/metrics")?;
    for label in ["session_full", "quota_sessions"] {
        ensure!(
            metrics.contains(&format!("replay_ingest_rejected_total{{reason=\"{label}\"}} 1")),
            "{label}:\n{metrics}"
        );
    }
    Ok(())
}

/// The count of `replay_ingest_rejected_total{reason="session_full"}`.
fn session_full_count(server: &Server) -> Result<u64> {
    let metrics = server.get_text("/metrics")?;
    Ok(metrics
        .lines()
        .find_map(|l| l.strip_prefix("replay_ingest_rejected_total{reason=\"session_full\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_whose_session_the_server_refuses_stops_sending() -> Result<()> {
    // No batch fits: the first answer is 413 session_full, and so would every later one be.
    let server = Server::start_with(tempfile::tempdir()?, "127.0.0.1:0", &[("REPLAY_MAX_SESSION_BYTES", "1")])?;
    let browser = Browser::start().await?;
    let result = async {
        browser.client.goto(&server.url("/demo?n=200")).await?;
        browser.wait_for("return !!window.Replay", std::time::Duration::from_secs(10)).await?;
        // `Replay.flush()` resolves with the recorder's delivery figures.
        let flush = "const d = arguments[arguments.length - 1];
                     window.Replay.flush().then(d, (e) => d({ error: String(e) }));";
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while browser.eval_async(flush).await?["rejected"].as_u64().unwrap_or(0) == 0 {
            ensure!(std::time::Instant::now() < deadline, "the server's refusal never reached the recorder");
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        // Whatever was queued before the answer arrived drains (and is refused) first.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let before = browser.eval_async(flush).await?["rejected"].clone();
        let counted = session_full_count(&server)?;
        ensure!(counted >= 1, "the refusal was not counted");
        // The page goes on changing; the recorder sends nothing more.
        browser
            .eval(
                "for (let i = 0; i < 200; i++) document.body.appendChild(document.createElement('p')).textContent = 'more ' + i;
                 document.body.click(); return true;",
            )
            .await?;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let after = browser.eval_async(flush).await?;
        ensure!(after["rejected"] == before, "batches were still sent after the refusal: {before} then {after}");
        ensure!(
            after["error"].as_str().is_some_and(|e| e.contains("session_full")),
            "the page can tell why: {after}"
        );
        ensure!(session_full_count(&server)? == counted, "the server saw more refused batches");
        ensure!(server.sessions()?.is_empty(), "nothing was stored");
        Ok(())
    }
    .await;
    browser.close().await?;
    result
}

/// A session deleted on request (issue 14 item 5) while its tab still records: the tab's next
/// batches are refused (`410 session_deleted`), the recorder stops, and the session stays gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_deleted_while_its_tab_records_stays_deleted_and_the_recorder_stops() -> Result<()> {
    let server = Server::start()?;
    let browser = Browser::start().await?;
    let result = async {
        browser.client.goto(&server.url("/demo?n=50")).await?;
        browser.wait_for("return !!window.Replay", std::time::Duration::from_secs(10)).await?;
        let flush = "const d = arguments[arguments.length - 1];
                     window.Replay.flush().then(d, (e) => d({ error: String(e) }));";
        let first = browser.eval_async(flush).await?;
        ensure!(first["acked"].as_u64().unwrap_or(0) >= 1, "recorded: {first}");
        let id = server.only_session_id()?;
        let project = server.get_json("/api/v1/projects")?["projects"][0]["id"].as_i64().context("a project")?;
        ureq::delete(&server.url(&format!("/api/v1/projects/{project}/sessions/{id}")))
            .set("authorization", &format!("Bearer {}", replay_e2e::ADMIN_TOKEN))
            .call()?;
        ensure!(server.sessions()?.is_empty(), "deleted");
        let change = "for (let i = 0; i < 50; i++) document.body.appendChild(document.createElement('p')).textContent = 'more ' + i;
                      document.body.click(); return true;";
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            browser.eval(change).await?;
            if browser.eval_async(flush).await?["rejected"].as_u64().unwrap_or(0) > 0 {
                break;
            }
            ensure!(std::time::Instant::now() < deadline, "the refusal never reached the recorder");
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let before = browser.eval_async(flush).await?;
        ensure!(before["error"].as_str().is_some_and(|e| e.contains("session_deleted")), "the page can tell why: {before}");
        browser.eval(change).await?;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let after = browser.eval_async(flush).await?;
        ensure!(after["rejected"] == before["rejected"], "batches were still sent: {before} then {after}");
        ensure!(server.sessions()?.is_empty(), "the tab did not bring the session back");
        Ok(())
    }
    .await;
    browser.close().await?;
    result
}

/// A body that trickles in (a byte now and then, from a client that announced a large one) is
/// cut off once it comes slower than the server waits for, with 408 `body_too_slow`: such
/// clients held connections and the in-flight byte budget for as long as they liked.
#[test]
fn a_body_that_trickles_in_is_cut_off_with_408() -> Result<()> {
    use std::io::{Read, Write as _};
    let server = Server::start()?;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut s = std::net::TcpStream::connect(&addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
    write!(
        s,
        "POST /api/v1/ingest HTTP/1.1\r\nHost: {addr}\r\nX-Replay-Key: {}\r\nContent-Type: application/msgpack\r\nContent-Length: 1048576\r\n\r\n",
        server.key
    )?;
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // A byte every 500 ms for up to 40 s: the answer must come before the body is complete.
    while started.elapsed() < std::time::Duration::from_secs(40) {
        if s.write_all(&[0x90]).is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(300)),
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    println!("a trickling body was answered after {:.1} s", started.elapsed().as_secs_f64());
    ensure!(answer.starts_with("HTTP/1.1 408") && answer.contains("body_too_slow"), "trickling body: {answer:?}");
    ensure!(server.sessions()?.is_empty(), "something was stored");
    Ok(())
}
