//! Server and reviewer benchmarks. Every figure is printed next to a
//! baseline measured in the same run, on the same machine, and as a ratio
//! (docs/performance.md records one run). Run: `cargo bench --bench server`
//! (or `bash benches/run.sh`, which also runs the browser benchmark).
//!
//! - durable small submissions/s against a bare rusqlite insert loop with the
//!   same durability settings (WAL, synchronous=FULL);
//! - thread look-ups/s against a trivial axum handler behind the same client;
//! - look-up latency p50/p99 with 1,000,000 stored cases against 1,000;
//! - reviewer import-and-decrypt throughput against `rage -d` (or `age -d`)
//!   on the same files.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use age::secrecy::SecretString;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use meldkluis::format::card::CounsellorKind;
use meldkluis::format::code::RetrievalCode;
use meldkluis::format::derive::Derived;
use meldkluis::format::envelope::{Envelope, Kind};
use meldkluis::review::vault::NewCounsellor;
use meldkluis::review::{Vault, commands};
use meldkluis::server::config::Config;
use meldkluis::server::handlers::v1::thread::THREAD_FLOOR;
use meldkluis::server::{self, AppState};
use serde_json::{Value, json};

/// Client threads for the throughput figures (`MELDKLUIS_BENCH_CLIENTS`).
fn clients() -> usize {
    std::env::var("MELDKLUIS_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    println!(
        "# Meldkluis benchmarks ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if run("submit") {
        submissions(&runtime);
    }
    if run("lookup") {
        look_ups(&runtime);
    }
    if run("latency") {
        latency_by_size(&runtime);
    }
    if run("review") {
        reviewer_throughput();
    }
}

struct Site {
    _dir: tempfile::TempDir,
    vault: Vault,
    address: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A real server on 127.0.0.1 with one counsellor, in this process.
fn start(runtime: &tokio::runtime::Runtime, data: Option<&Path>) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::init(
        &dir.path().join("vault"),
        SecretString::from("benchmark passphrase".to_owned()),
        NewCounsellor {
            id: "vp-bench".into(),
            name: "Bench".into(),
            organisation: "Bench".into(),
            org: None,
            kind: CounsellorKind::Internal,
            description: String::new(),
        },
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/vp-bench.json"), vault.card.to_json()).unwrap();
    let config = Config {
        data_dir: data
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("data")),
        keys_dir: dir.path().join("keys"),
        ..Config::default()
    };
    let state = AppState::open(&config).unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(async move {
        server::serve(listener, state, &config, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Site {
        _dir: dir,
        vault,
        address,
        _stop: stop,
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections_per_host(clients() * 2)
        .build()
        .into()
}

/// Posts every body from `CLIENTS` threads; returns requests per second.
fn blast(url: &str, bodies: Arc<Vec<String>>) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients())
        .map(|_| {
            let (url, bodies, next) = (url.to_string(), bodies.clone(), next.clone());
            std::thread::spawn(move || {
                let agent = agent();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let response = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(body.as_str())
                        .unwrap();
                    assert!(response.status().is_success(), "{}", response.status());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    bodies.len() as f64 / started.elapsed().as_secs_f64()
}

/// Posts `body` from `clients` threads for `seconds`; returns requests per second.
fn hammer(url: &str, body: &str, seconds: f64, clients: usize) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (url, body) = (url.to_string(), body.to_string());
            let (stop, count, errors) = (stop.clone(), count.clone(), errors.clone());
            std::thread::spawn(move || {
                let agent = agent();
                while !stop.load(Ordering::Relaxed) {
                    let sent = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(body.as_str());
                    match sent {
                        Ok(response) => {
                            assert!(response.status().as_u16() < 500);
                            let _ = response.into_body().read_to_vec();
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        // A pooled connection the server had closed: count it.
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let errors = errors.load(Ordering::Relaxed);
    if errors > 0 {
        eprintln!("  {url}: {errors} requests failed on a closed connection");
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn report_bodies(recipient: &age::x25519::Recipient, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let derived = Derived::from_code(&RetrievalCode::generate());
            let mut envelope = Envelope::new(Kind::Report, format!("Benchmark report {i}"));
            envelope.reply_recipient = Some(derived.reply_recipient().to_string());
            envelope.counsellors = vec!["vp-bench".into()];
            let sealed = envelope
                .seal(&[recipient.clone(), derived.reply_recipient()])
                .unwrap();
            json!({
                "counsellors": ["vp-bench"],
                "lookup_key": derived.lookup_key.to_hex(),
                "message": STANDARD.encode(sealed),
            })
            .to_string()
        })
        .collect()
}

fn submissions(runtime: &tokio::runtime::Runtime) {
    const N: usize = 4000;
    let site = start(runtime, None);
    let bodies = Arc::new(report_bodies(&site.vault.recipient(), N));
    let ours = blast(
        &format!("http://{}/api/v1/reports", site.address),
        bodies.clone(),
    );

    // Baseline: the same rows, one durable transaction each, no HTTP.
    let dir = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(dir.path().join("bare.sqlite")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE m (id INTEGER PRIMARY KEY, lookup BLOB UNIQUE, body BLOB);",
    )
    .unwrap();
    let body = vec![7u8; 4096 + 300];
    let started = Instant::now();
    for i in 0..N {
        let tx = db.unchecked_transaction().unwrap();
        tx.execute(
            "INSERT INTO m (lookup, body) VALUES (?1, ?2)",
            rusqlite::params![(i as u64).to_le_bytes().to_vec(), body],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let bare = N as f64 / started.elapsed().as_secs_f64();
    println!(
        "durable small submissions: {ours:.0}/s over HTTP with {} clients; bare rusqlite insert loop {bare:.0}/s; ratio {:.2}",
        clients(),
        ours / bare
    );
}

/// Look-up clients: every thread answer waits out `THREAD_FLOOR` (issue 5,
/// docs/security.md §4), so a client that waits for each answer sends at
/// most one look-up per floor. Enough clients to carry 15,000 look-ups/s
/// through the floor (Little's law) measure the server, not the floor; the
/// baseline gets as many.
fn look_up_clients() -> usize {
    let per_client = 1.0 / (THREAD_FLOOR + Duration::from_millis(1)).as_secs_f64();
    clients().max((15_000.0 / per_client).ceil() as usize)
}

fn look_ups(runtime: &tokio::runtime::Runtime) {
    let clients = look_up_clients();
    let site = start(runtime, None);
    let bodies = report_bodies(&site.vault.recipient(), 1);
    let request: Value = serde_json::from_str(&bodies[0]).unwrap();
    let response = agent()
        .post(&format!("http://{}/api/v1/reports", site.address))
        .header("content-type", "application/json")
        .send(bodies[0].as_str())
        .unwrap();
    assert!(response.status().is_success());
    let look_up = json!({"lookup_key": request["lookup_key"]}).to_string();
    let ours = hammer(
        &format!("http://{}/api/v1/thread", site.address),
        &look_up,
        5.0,
        clients,
    );
    let unknown = json!({"lookup_key": "ab".repeat(32)}).to_string();
    let refused = hammer(
        &format!("http://{}/api/v1/thread", site.address),
        &unknown,
        3.0,
        clients,
    );
    let nothing = hammer(
        &format!("http://{}/api/v1/nothing", site.address),
        &unknown,
        3.0,
        clients,
    );
    eprintln!("  (unknown key {refused:.0}/s; a 404 route {nothing:.0}/s)");

    // Baseline: a trivial axum handler behind the same client and runtime.
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/x",
        axum::routing::post(|| async { axum::Json(json!({"ok": true})) }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    let bare = hammer(&format!("http://{address}/x"), &look_up, 5.0, clients);
    println!(
        "thread look-ups: {ours:.0}/s with {clients} clients; trivial axum handler {bare:.0}/s; ratio {:.2}",
        ours / bare
    );
}

/// Fills a database with `n` cases of one small message each, straight
/// through SQL (the look-up cost depends on the index, not on the bodies).
fn fill(path: &Path, n: usize) -> Vec<String> {
    drop(meldkluis::server::store::Store::open(path).unwrap());
    let mut db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")
        .unwrap();
    let tx = db.transaction().unwrap();
    let mut keys = Vec::new();
    {
        let mut case = tx
            .prepare("INSERT INTO cases (id, lookup_hash, day) VALUES (?1, ?2, '2026-11-22')")
            .unwrap();
        let mut message = tx
            .prepare("INSERT INTO messages (id, case_id, author, kind, day, size, body_sha256, body) VALUES (?1, ?2, 'melder', 'report', '2026-11-22', 512, ?3, ?4)")
            .unwrap();
        let mut counsellor = tx
            .prepare("INSERT INTO case_counsellors (case_id, counsellor) VALUES (?1, 'vp-bench')")
            .unwrap();
        let body = vec![1u8; 512];
        for i in 0..n {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            key[8..16].copy_from_slice(&(n as u64).to_le_bytes());
            let lookup = meldkluis::format::derive::LookupKey::from_hex(&hex::encode(key)).unwrap();
            let id: [u8; 16] = rand::random();
            case.execute(rusqlite::params![id.to_vec(), lookup.hash().0.to_vec()])
                .unwrap();
            let message_id: [u8; 16] = rand::random();
            message
                .execute(rusqlite::params![
                    message_id.to_vec(),
                    id.to_vec(),
                    message_id.to_vec(),
                    body
                ])
                .unwrap();
            counsellor.execute([id.to_vec()]).unwrap();
            if i % (n / 1000).max(1) == 0 {
                keys.push(hex::encode(key));
            }
        }
    }
    tx.commit().unwrap();
    keys
}

fn latency(runtime: &tokio::runtime::Runtime, n: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let keys = fill(&dir.path().join("meldkluis.sqlite"), n);
    eprintln!("  filled {n} cases in {:.1?}", started.elapsed());
    let site = start(runtime, Some(dir.path()));
    let agent = agent();
    let url = format!("http://{}/api/v1/thread", site.address);
    let mut times = Vec::new();
    for round in 0..4000 {
        let key = &keys[(round * 7919) % keys.len()];
        let body = json!({ "lookup_key": key }).to_string();
        let t = Instant::now();
        let response = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body.as_str())
            .unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.into_body().read_to_vec();
        if round >= 200 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

fn latency_by_size(runtime: &tokio::runtime::Runtime) {
    let (small50, small99) = latency(runtime, 1_000);
    let (large50, large99) = latency(runtime, 1_000_000);
    println!(
        "look-up latency: 1,000 cases p50 {small50:.2?} p99 {small99:.2?}; 1,000,000 cases p50 {large50:.2?} p99 {large99:.2?}; p99 ratio {:.2}",
        large99.as_secs_f64() / small99.as_secs_f64()
    );
}

fn reviewer_throughput() {
    const FILES: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut site = start(&runtime, None);
    // Reports of ~8 MiB each: a 6 MiB attachment, padded to the 8 MiB bucket.
    // They are also encrypted to a second key, whose identity file the
    // command-line tool gets (the vault never hands out its own).
    let tool_identity = age::x25519::Identity::generate();
    let mut files = Vec::new();
    for i in 0..FILES {
        let derived = Derived::from_code(&RetrievalCode::generate());
        let mut envelope = Envelope::new(Kind::Report, format!("Report {i}"));
        envelope.reply_recipient = Some(derived.reply_recipient().to_string());
        envelope.counsellors = vec!["vp-bench".into()];
        envelope
            .attachments
            .push(meldkluis::format::envelope::Attachment::inline(
                "scan.bin",
                "application/octet-stream",
                &vec![i as u8; 6 * 1024 * 1024],
            ));
        let sealed = envelope
            .seal(&[
                site.vault.recipient(),
                derived.reply_recipient(),
                tool_identity.to_public(),
            ])
            .unwrap();
        let path = dir.path().join(format!("{i}.age"));
        std::fs::write(&path, &sealed).unwrap();
        files.push(path);
        let body = json!({"counsellors": ["vp-bench"], "lookup_key": derived.lookup_key.to_hex(), "message": STANDARD.encode(&sealed)}).to_string();
        let response = agent()
            .post(&format!("http://{}/api/v1/reports", site.address))
            .header("content-type", "application/json")
            .send(body.as_str())
            .unwrap();
        assert!(response.status().is_success());
    }
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    // An inbox stays under the laptop's 64 MiB limit, so this takes more
    // than one sync; only the imports are timed.
    let mut imported = 0;
    let mut importing = Duration::ZERO;
    while imported < FILES {
        let outbox = commands::outbox(&mut site.vault).unwrap();
        let inbox = agent()
            .post(&format!("http://{}/api/v1/courier/sync", site.address))
            .header("content-type", "application/octet-stream")
            .send(&outbox[..])
            .unwrap()
            .into_body()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap();
        let started = Instant::now();
        let summary = commands::import(&mut site.vault, &inbox).unwrap();
        importing += started.elapsed();
        assert!(summary.new_messages > 0);
        imported += summary.new_messages;
    }
    let started = Instant::now();
    for id in site.vault.state.cases.keys().copied().collect::<Vec<_>>() {
        commands::show(&site.vault, &id, meldkluis::format::day::Day::today()).unwrap();
    }
    let elapsed = importing + started.elapsed();
    let ours = bytes as f64 / elapsed.as_secs_f64() / 1e6;

    let identity = dir.path().join("identity.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(
            &identity,
            format!("{}\n", tool_identity.to_string().expose_secret()),
        )
        .unwrap();
    }
    let tool = ["rage", "age"].into_iter().find(|t| {
        std::process::Command::new(t)
            .arg("--version")
            .output()
            .is_ok()
    });
    match tool {
        Some(tool) => {
            let started = Instant::now();
            for file in &files {
                let status = std::process::Command::new(tool)
                    .args(["-d", "-i"])
                    .arg(&identity)
                    .arg("-o")
                    .arg(dir.path().join("out"))
                    .arg(file)
                    .status()
                    .unwrap();
                assert!(status.success());
            }
            let baseline = bytes as f64 / started.elapsed().as_secs_f64() / 1e6;
            println!(
                "reviewer import-and-decrypt: {ours:.0} MB/s (import, then show every case: decrypted twice) ; `{tool} -d` on the same {FILES} files {baseline:.0} MB/s; ratio {:.2}",
                ours / baseline
            );
        }
        None => println!(
            "reviewer import-and-decrypt: {ours:.0} MB/s; no rage/age tool found for the baseline"
        ),
    }
}
