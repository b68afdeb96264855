//! The scale-out storage (PostgreSQL + S3-compatible object store) against real services: the
//! storage conformance suite, and two `replay-server` instances sharing one store while
//! sessions stream to both and one of them is killed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use replay_e2e::services::{ObjectStoreServer, Postgres};
use replay_e2e::{Acked, Server, check_acknowledged, stream_session};
use replay_protocol::{Batch, Click, Event, EventData, encode_batch};
use replay_store::object_store::ObjectStore;
use replay_store::testsuite::{self, StorageExt};
use replay_store::{BatchSummary, PostgresOptions, PostgresStorage, Storage};

fn object_store(s3: &ObjectStoreServer, prefix: &str) -> Result<(Arc<dyn ObjectStore>, String)> {
    let url = format!("s3://{}/{prefix}", ObjectStoreServer::BUCKET);
    let options = s3.env().into_iter().map(|(k, v)| (k.to_lowercase(), v));
    let (store, path) = replay_store::open_object_store(&url, options)?;
    Ok((store, path.to_string()))
}

#[test]
fn postgres_and_s3_pass_the_storage_conformance_suite() -> Result<()> {
    let pg = Postgres::start()?;
    let s3 = ObjectStoreServer::start()?;
    s3.wait_ready()?;
    let n = AtomicUsize::new(0);
    testsuite::run(|| {
        // Every check gets its own schema and key prefix: a fresh, empty store.
        let i = n.fetch_add(1, Ordering::Relaxed);
        let (store, prefix) = object_store(&s3, &format!("conformance-{i}")).expect("object store");
        PostgresStorage::connect(PostgresOptions {
            url: pg.url(),
            schema: Some(format!("conformance_{i}")),
            store,
            prefix: prefix.as_str().into(),
            max_connections: 4,
            ca_file: None,
        })
        .expect("connect to postgres")
    });
    ensure!(n.load(Ordering::Relaxed) >= 9, "every conformance check ran");
    // Retention deleted the bodies of the deleted sessions, not just their rows.
    let stored: usize =
        (0..n.load(Ordering::Relaxed)).map(|i| s3.objects_under(&format!("conformance-{i}")).unwrap_or(0)).sum();
    ensure!(stored > 0, "bodies are in the object store");
    Ok(())
}

#[test]
fn deleting_a_session_deletes_its_objects_and_only_its() -> Result<()> {
    let pg = Postgres::start()?;
    let s3 = ObjectStoreServer::start()?;
    s3.wait_ready()?;
    let (store, prefix) = object_store(&s3, "deletion")?;
    let db = PostgresStorage::connect(PostgresOptions {
        url: pg.url(),
        schema: None,
        store,
        prefix: prefix.as_str().into(),
        max_connections: 4,
        ca_file: None,
    })?;
    let p = db.create_project("p")?;
    for (session, user) in [("gone", "ada"), ("erased", "ada"), ("kept", "bob")] {
        for seq in 0..3 {
            let s = BatchSummary {
                session: session.into(),
                page: "page".into(),
                seq,
                start_ms: 1_000 + u64::from(seq),
                end_ms: 1_000 + u64::from(seq),
                received_ms: 1_000,
                user: Some(user.into()),
                ..BatchSummary::default()
            };
            db.put_batch_blocking(p.id, &s, b"body")?;
        }
    }
    let objects = |session: &str| s3.objects_under(&format!("deletion/p{}/{session}", p.id));
    ensure!(objects("gone")? == 3 && objects("kept")? == 3, "bodies are in the object store");
    ensure!(db.delete_sessions(p.id, &["gone".into()])? == 1);
    ensure!(objects("gone")? == 0, "the deleted session's objects are gone");
    // An erasure of ada takes her other session, and nothing of bob's.
    let erased = db.delete_user_sessions(p.id, "ada")?;
    ensure!(erased == vec!["erased".to_string()], "{erased:?}");
    ensure!(objects("erased")? == 0 && objects("kept")? == 3, "only the erased user's objects go");
    ensure!(db.batches(p.id, "kept")?.len() == 3);
    Ok(())
}

#[test]
fn two_instances_share_one_store_and_one_survives_the_other_being_killed() -> Result<()> {
    let pg = Postgres::start()?;
    let s3 = ObjectStoreServer::start()?;
    s3.wait_ready()?;
    let mut env: Vec<(String, String)> = s3.env();
    env.push(("REPLAY_POSTGRES_URL".into(), pg.url()));
    env.push(("REPLAY_OBJECT_STORE_URL".into(), format!("s3://{}/shared", ObjectStoreServer::BUCKET)));
    env.push(("REPLAY_CLIENT_RATE".into(), "100000".into()));
    env.push(("REPLAY_CLIENT_BURST".into(), "100000".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = Server::start_with(tempfile::tempdir()?, "127.0.0.1:0", &env)?;
    let b = Server::start_with(tempfile::tempdir()?, "127.0.0.1:0", &env)?;
    ensure!(a.key == b.key, "both instances serve the one default project");

    let acked: Acked = Arc::default();
    let stop = Instant::now() + Duration::from_secs(5);
    let bases = vec![a.base.clone(), b.base.clone()];
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let (bases, key, acked) = (bases.clone(), a.key.clone(), Arc::clone(&acked));
            std::thread::spawn(move || stream_session(&bases, &key, &format!("shared-{i}"), &acked, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2000));
    drop(a.kill());
    for t in threads {
        let _ = t.join();
    }
    let acked = acked.lock().map(|m| m.clone()).unwrap_or_default();
    ensure!(acked.len() == 20, "every session delivered something");

    // Everything acknowledged by either instance is readable from the survivor, once.
    let total = check_acknowledged(&b, &acked)?;
    eprintln!("scale-out: {total} batches acknowledged by two instances (one killed), all readable from the other");

    // A resend of an acknowledged batch is a duplicate, whichever instance gets it.
    let mut again = Batch::new("shared-0", "page-1", 0, 1_700_000_000_000);
    again.events.push(Event {
        t: 0,
        data: EventData::Click(Click {
            id: 0,
            x: 1,
            y: 2,
            button: 0,
            label: String::new(),
            path: String::new(),
            interactive: None,
        }),
    });
    let (status, answer) = b.ingest(Some(&b.key), &encode_batch(&again)?, None)?;
    ensure!(status == 200 && answer["duplicate"] == true, "resend: {status} {answer}");

    // A third instance started now sees the same sessions (nothing lived in the killed one).
    let c = Server::start_with(tempfile::tempdir()?, "127.0.0.1:0", &env)?;
    let listed = c.sessions().context("session list from a new instance")?;
    ensure!(listed.len() == 20, "a new instance lists every session: {}", listed.len());
    let objects = s3.objects_under("shared")?;
    ensure!(objects >= total, "every body is an object: {objects} objects for {total} batches");
    Ok(())
}

#[test]
fn postgres_over_tls_verifies_the_server_certificate() -> Result<()> {
    let pg = Postgres::start_tls()?;
    let s3 = ObjectStoreServer::start()?;
    s3.wait_ready()?;
    let connect = |url: String, ca_file: Option<std::path::PathBuf>| {
        let (store, prefix) = object_store(&s3, "tls")?;
        PostgresStorage::connect(PostgresOptions {
            url,
            schema: None,
            store,
            prefix: prefix.as_str().into(),
            max_connections: 2,
            ca_file,
        })
        .map_err(anyhow::Error::from)
    };
    // The cluster refuses unencrypted clients...
    let plain = connect(pg.url(), None).err().map(|e| e.to_string()).unwrap_or_default();
    ensure!(plain.contains("no encryption") || plain.contains("pg_hba"), "plain TCP must be refused: {plain:?}");
    // ...and a certificate from an unknown CA is not trusted, even with sslmode=require.
    let unknown = connect(format!("{}?sslmode=require", pg.url()), None).err().map(|e| format!("{e:#}"));
    let unknown = unknown.unwrap_or_default();
    ensure!(unknown.contains("certificate") || unknown.contains("Issuer"), "unknown CA must be refused: {unknown:?}");
    // With the CA, the engine works over TLS.
    let db = connect(pg.url(), Some(pg.ca_file()))?;
    let p = db.create_project("tls")?;
    let s = BatchSummary { session: "s".into(), page: "p".into(), ..Default::default() };
    db.put_batch_blocking(p.id, &s, b"body")?;
    ensure!(db.batches(p.id, "s")? == vec![b"body".to_vec()]);
    Ok(())
}
