//! Server and reviewer benchmarks. Every figure is printed next to a
//! baseline measured in the same run, on the same machine, and as a ratio
//! (docs/performance.md records one run). Run: `cargo bench --bench server`,
//! or one part: `cargo bench --bench server -- submit|lookup|latency|review|upload`.
//! The browser benchmark is `node benches/browser.mjs`.
//!
//! - durable small submissions/s against a bare rusqlite insert loop with the
//!   same durability settings (WAL, synchronous=FULL);
//! - thread look-ups/s against a trivial axum handler behind the same client;
//! - look-up latency p50/p99 with 1,000,000 stored cases against 1,000;
//! - reviewer import-and-decrypt throughput on an inbox with streamed
//!   attachments against `rage -d` and `age -d` on the same files;
//! - the server's peak memory while it receives a 500 MiB attachment and
//!   sends it on in an inbox, against its own idle memory and the 64 MiB
//!   target (`MELDKLUIS_BENCH_UPLOAD_MIB` changes the size).

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
    env_number("MELDKLUIS_BENCH_CLIENTS", 16) as usize
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
    if run("upload") {
        upload_memory();
    }
    if run("pq") {
        hybrid_import();
    }
}

struct Site {
    _dir: tempfile::TempDir,
    vault: Vault,
    address: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn passphrase() -> SecretString {
    SecretString::from("benchmark passphrase".to_owned())
}

/// The counsellor `vp-bench`: a vault in `dir/vault`, its card in `dir/keys`.
/// Classical keys: the reviewer figure compares against the `age` tool, and
/// Debian's (1.1.1) cannot read post-quantum files; `hybrid_import` measures
/// those against classical ones.
fn bench_counsellor(dir: &Path) -> Vault {
    bench_counsellor_with(dir, meldkluis::review::vault::KeyKind::Classical)
}

fn bench_counsellor_with(dir: &Path, keys: meldkluis::review::vault::KeyKind) -> Vault {
    let vault = Vault::init_with_keys(
        &dir.join("vault"),
        passphrase(),
        NewCounsellor {
            id: "vp-bench".into(),
            name: "Bench".into(),
            organisation: "Bench".into(),
            org: None,
            kind: CounsellorKind::Internal,
            description: String::new(),
        },
        keys,
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("keys/vp-bench.json"), vault.card.to_json()).unwrap();
    vault
}

/// A whole-number setting from the environment, or its default.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A real server on 127.0.0.1 with one counsellor, in this process.
fn start(runtime: &tokio::runtime::Runtime, data: Option<&Path>) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let vault = bench_counsellor(dir.path());
    let config = Config {
        data_dir: data
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("data")),
        keys_dir: dir.path().join("keys"),
        ..Config::default()
    };
    let state = AppState::open(&config).unwrap();
    // The benchmarks measure the server's own work: the proof of work is
    // the clients' (docs/performance.md has its figures separately).
    state.pow.set_required(false);
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

/// CPU seconds this process (server and clients) has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which ends with ')'): utime is the
    // 14th field of the line, stime the 15th, in clock ticks (100/s).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// What `hammer` measured: requests answered per second, and the CPU time
/// the whole process (clients and server) spent per request.
struct Rate {
    per_second: f64,
    cpu_per_request: Duration,
}

/// Posts `body` from `clients` threads for `seconds`.
fn hammer(url: &str, body: &str, seconds: f64, clients: usize) -> Rate {
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
    // Measure from the moment every client is running, not while threads
    // are still being started.
    std::thread::sleep(Duration::from_millis(300));
    let (started, cpu, counted) = (Instant::now(), cpu_seconds(), count.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (elapsed, cpu, counted) = (
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu,
        count.load(Ordering::Relaxed) - counted,
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let errors = errors.load(Ordering::Relaxed);
    if errors > 0 {
        eprintln!("  {url}: {errors} requests failed on a closed connection");
    }
    Rate {
        per_second: counted as f64 / elapsed,
        cpu_per_request: Duration::from_secs_f64(cpu / counted.max(1) as f64),
    }
}

fn report_bodies(recipient: &meldkluis::format::keys::Recipient, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let derived = Derived::from_code(&RetrievalCode::generate());
            let mut envelope = Envelope::new(Kind::Report, format!("Benchmark report {i}"));
            let reply = derived.reply_recipient_for(std::slice::from_ref(recipient));
            envelope.reply_recipient = Some(reply.to_string());
            envelope.counsellors = vec!["vp-bench".into()];
            let sealed = envelope.seal(&[recipient.clone(), reply]).unwrap();
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
/// most one look-up per floor. Enough clients to carry 25,000 look-ups/s
/// through the floor (Little's law), well above what the server answers,
/// measure the server, not the floor; the baseline gets as many. (With 390,
/// enough for 15,000/s, the clients were the limit: the cores were not
/// fully busy.)
fn look_up_clients() -> usize {
    let per_client = 1.0 / (THREAD_FLOOR + Duration::from_millis(1)).as_secs_f64();
    clients().max((25_000.0 / per_client).ceil() as usize)
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

    // Rounds of ours then the baseline, so both meet the same moments of
    // the machine's load; the median round is reported.
    let thread_url = format!("http://{}/api/v1/thread", site.address);
    let mut rounds: Vec<(Rate, Rate)> = (0..LOOK_UP_ROUNDS)
        .map(|_| {
            let ours = hammer(&thread_url, &look_up, 3.0, clients);
            let bare = hammer(&format!("http://{address}/x"), &look_up, 3.0, clients);
            eprintln!(
                "  round: look-ups {:.0}/s, trivial {:.0}/s, ratio {:.2}",
                ours.per_second,
                bare.per_second,
                ours.per_second / bare.per_second
            );
            (ours, bare)
        })
        .collect();
    rounds.sort_by(|a, b| {
        (a.0.per_second / a.1.per_second).total_cmp(&(b.0.per_second / b.1.per_second))
    });
    let (ours, bare) = &rounds[rounds.len() / 2];
    let unknown = json!({"lookup_key": "ab".repeat(32)}).to_string();
    let refused = hammer(&thread_url, &unknown, 3.0, clients);
    let nothing = hammer(
        &format!("http://{}/api/v1/nothing", site.address),
        &unknown,
        3.0,
        clients,
    );
    let micros = |rate: &Rate| rate.cpu_per_request.as_secs_f64() * 1e6;
    eprintln!(
        "  (unknown key {:.0}/s; a 404 route {:.0}/s; CPU per request, clients and server: \
         look-up {:.0} µs, unknown key {:.0} µs, 404 {:.0} µs, trivial handler {:.0} µs)",
        refused.per_second,
        nothing.per_second,
        micros(ours),
        micros(&refused),
        micros(&nothing),
        micros(bare)
    );
    println!(
        "thread look-ups: {:.0}/s with {clients} clients; trivial axum handler {:.0}/s; ratio {:.2} (median of {LOOK_UP_ROUNDS} rounds)",
        ours.per_second,
        bare.per_second,
        ours.per_second / bare.per_second
    );
}

/// Rounds of the look-up benchmark (each 3 s of ours, 3 s of the baseline).
const LOOK_UP_ROUNDS: usize = 5;

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
            .prepare("INSERT INTO messages (id, case_id, position, author, kind, day, size, body_sha256, body) VALUES (?1, ?2, 0, 'melder', 'report', '2026-11-22', 512, ?3, ?4)")
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

/// p50 and p99 of sorted times.
fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

/// Look-up latency with `n` stored cases: over HTTP (which includes the
/// 25 ms answer floor of issue 5, docs/security.md §4) and of the store's
/// own read, which is what grows, if anything, with the database.
fn latency(
    runtime: &tokio::runtime::Runtime,
    n: usize,
) -> ((Duration, Duration), (Duration, Duration)) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let database = dir.path().join("meldkluis.sqlite");
    let keys = fill(&database, n);
    eprintln!("  filled {n} cases in {:.1?}", started.elapsed());
    let store = meldkluis::server::store::Store::open(&database).unwrap();
    let mut reads = Vec::new();
    for round in 0..20_000 {
        let key = &keys[(round * 7919) % keys.len()];
        let hash = meldkluis::format::derive::LookupKey::from_hex(key)
            .unwrap()
            .hash();
        let t = Instant::now();
        assert!(store.thread(&hash).unwrap().is_some());
        if round >= 1000 {
            reads.push(t.elapsed());
        }
    }
    drop(store);
    let site = start(runtime, Some(dir.path()));
    let agent = agent();
    let url = format!("http://{}/api/v1/thread", site.address);
    let mut times = Vec::new();
    for round in 0..1200 {
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
    (percentiles(times), percentiles(reads))
}

fn latency_by_size(runtime: &tokio::runtime::Runtime) {
    let ((small50, small99), (small_read50, small_read99)) = latency(runtime, 1_000);
    let ((large50, large99), (large_read50, large_read99)) = latency(runtime, 1_000_000);
    println!(
        "look-up latency over HTTP (25 ms floor included): 1,000 cases p50 {small50:.2?} p99 {small99:.2?}; 1,000,000 cases p50 {large50:.2?} p99 {large99:.2?}; p99 ratio {:.2}",
        large99.as_secs_f64() / small99.as_secs_f64()
    );
    println!(
        "store read of a thread: 1,000 cases p50 {small_read50:.2?} p99 {small_read99:.2?}; 1,000,000 cases p50 {large_read50:.2?} p99 {large_read99:.2?}; p99 ratio {:.2}",
        large_read99.as_secs_f64() / small_read99.as_secs_f64()
    );
}

/// Reviewer import-and-decrypt on an inbox with streamed attachments
/// (protocol.md §3a, §6) against `rage -d` and `age -d` doing the same
/// cryptographic work on the same files: the inbox decrypted to a file, then
/// every attachment decrypted to a file, each output fsynced as the reviewer
/// fsyncs what it writes. Ours: `import_from` (the inbox streamed into the
/// vault, attachments kept encrypted) and `export` (every attachment
/// decrypted as a stream and checked). Neither side pays the passphrase:
/// the vault is open before the clock starts, and the tool reads a plain
/// identity file. The inbox is made with `Inbox::seal_to`, as the server's
/// courier makes it. `MELDKLUIS_BENCH_ATTACHMENTS` (default 3) attachments
/// of `MELDKLUIS_BENCH_ATTACHMENT_MIB` (default 200) MiB.
fn reviewer_throughput() {
    use std::io::{BufWriter, Read, Write};

    use meldkluis::format::agefile::{attachment_padded_length, check_attachment};
    use meldkluis::format::bundle::{EntryAttachment, Inbox, InboxEntry};
    use meldkluis::format::day::Day;
    use meldkluis::format::envelope::{Attachment, StreamedFile};
    use meldkluis::format::ids::{CaseId, MessageId, UploadId};
    use sha2::{Digest, Sha256};

    const MIB: u64 = 1024 * 1024;
    let count = env_number("MELDKLUIS_BENCH_ATTACHMENTS", 3) as usize;
    // A Padmé bucket, so the tool's output (which keeps the padding) has
    // exactly the bytes of ours.
    let size = attachment_padded_length(env_number("MELDKLUIS_BENCH_ATTACHMENT_MIB", 200) * MIB);
    let dir = tempfile::tempdir().unwrap();
    let mut vault = bench_counsellor(dir.path());
    let melder = age::x25519::Identity::generate();

    // The uploads, encrypted as the web page does: streamed, padded.
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let upload_path = |upload: &UploadId| uploads.join(format!("{upload}.age"));
    let mut entries = Vec::new();
    let mut block = vec![0u8; MIB as usize];
    for i in 0..count {
        let upload = UploadId::random();
        let path = upload_path(&upload);
        let recipients = {
            let m: meldkluis::format::keys::Recipient = melder.to_public().into();
            [vault.own_recipient_beside(&m).unwrap(), m]
        };
        let mut writer = age::Encryptor::with_recipients(recipients.iter().map(|r| r as _))
            .unwrap()
            .wrap_output(BufWriter::new(std::fs::File::create(&path).unwrap()))
            .unwrap();
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut block);
        for n in 0..size / MIB {
            block[..8].copy_from_slice(&n.to_le_bytes());
            writer.write_all(&block).unwrap();
        }
        writer.finish().unwrap().flush().unwrap();
        let length = std::fs::metadata(&path).unwrap().len();
        let mut prefix = vec![0u8; 65_536];
        std::fs::File::open(&path)
            .unwrap()
            .read_exact(&mut prefix)
            .unwrap();
        let shape = check_attachment(&prefix, length).unwrap();
        let file = StreamedFile {
            size,
            upload,
            head_sha256: Sha256::digest(&prefix[..shape.head_len]).into(),
        };
        let mut envelope = Envelope::new(Kind::Report, format!("Report {i}"));
        envelope.reply_recipient = Some(melder.to_public().to_string());
        envelope.counsellors = vec!["vp-bench".into()];
        envelope.attachments.push(Attachment::streamed(
            "opname.bin",
            "application/octet-stream",
            file,
        ));
        entries.push(InboxEntry {
            seq: i as u64 + 1,
            id: MessageId::random(),
            case: CaseId::random(),
            author: "melder".into(),
            kind: "report".into(),
            day: Day::today(),
            body: envelope
                .seal(&{
                    let m: meldkluis::format::keys::Recipient = melder.to_public().into();
                    [vault.own_recipient_beside(&m).unwrap(), m]
                })
                .unwrap(),
            attachments: vec![EntryAttachment { upload, length }],
        });
    }
    let inbox = dir.path().join("inbox.age");
    let mut open = |upload: &UploadId| -> std::io::Result<Box<dyn Read>> {
        Ok(Box::new(std::fs::File::open(upload_path(upload))?))
    };
    Inbox::seal_to(
        BufWriter::new(std::fs::File::create(&inbox).unwrap()),
        "vp-bench",
        0,
        &[],
        &entries,
        &vault.recipient(),
        &mut open,
    )
    .unwrap()
    .flush()
    .unwrap();
    let bytes = size * count as u64;

    // The tool gets the vault's identity as a plain file (the vault never
    // hands it out; the benchmark knows the passphrase).
    let identity = dir.path().join("identity.txt");
    let sealed_identity = std::fs::read(dir.path().join("vault/identity.age")).unwrap();
    let plain_identity =
        age::decrypt(&age::scrypt::Identity::new(passphrase()), &sealed_identity).unwrap();
    std::fs::write(&identity, plain_identity).unwrap();
    let tools: Vec<&str> = ["rage", "age"]
        .into_iter()
        .filter(|t| {
            std::process::Command::new(t)
                .arg("--version")
                .output()
                .is_ok()
        })
        .collect();
    // Each side starts with no dirty pages left by the other (or by making
    // the files above) being written back behind its back.
    let settle = || {
        let _ = std::process::Command::new("sync").status();
    };

    let mut ours = || {
        // A vault that has not seen this inbox yet.
        vault.state.cases.clear();
        vault.state.inbox_ack = 0;
        for sub in ["attachments", "messages"] {
            let _ = std::fs::remove_dir_all(dir.path().join("vault").join(sub));
        }
        let out = dir.path().join("export");
        let _ = std::fs::remove_dir_all(&out);
        settle();
        let started = Instant::now();
        let summary =
            commands::import_from(&mut vault, std::fs::File::open(&inbox).unwrap()).unwrap();
        assert_eq!(summary.attachments, count);
        let mut written = 0;
        for case in vault.state.cases.keys().copied().collect::<Vec<_>>() {
            let report = commands::export(&vault, &case, &out).unwrap();
            assert!(report.refused.is_empty());
            written += report.written.len();
        }
        let elapsed = started.elapsed();
        assert_eq!(written, count);
        elapsed
    };
    let theirs = |tool: &str| {
        let out = dir.path().join("tool");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let decrypt = |from: &Path, to: &Path| {
            let status = std::process::Command::new(tool)
                .args(["-d", "-i"])
                .arg(&identity)
                .arg("-o")
                .arg(to)
                .arg(from)
                .status()
                .unwrap();
            assert!(status.success());
            std::fs::File::open(to).unwrap().sync_all().unwrap();
        };
        settle();
        let started = Instant::now();
        decrypt(&inbox, &out.join("inbox.tar"));
        for entry in &entries {
            let upload = entry.attachments[0].upload;
            decrypt(&upload_path(&upload), &out.join(upload.to_hex()));
        }
        started.elapsed()
    };
    let mb_s = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    // Alternate, three rounds, and keep each side's best: all see the same
    // page cache and the same neighbours.
    let mut ours_best = Duration::MAX;
    let mut theirs_best = vec![Duration::MAX; tools.len()];
    for round in 1..=3 {
        let o = ours();
        ours_best = ours_best.min(o);
        eprint!("  round {round}: Meldkluis {:.0} MB/s", mb_s(o));
        for (tool, best) in tools.iter().zip(&mut theirs_best) {
            let t = theirs(tool);
            *best = (*best).min(t);
            eprint!(", {tool} -d {:.0} MB/s", mb_s(t));
        }
        eprintln!();
    }
    let ours = mb_s(ours_best);
    let baselines: Vec<String> = tools
        .iter()
        .zip(&theirs_best)
        .map(|(tool, best)| {
            let baseline = mb_s(*best);
            format!(
                "`{tool} -d` on the same inbox and attachment files {baseline:.0} MB/s, ratio {:.2}",
                ours / baseline
            )
        })
        .collect();
    if baselines.is_empty() {
        println!(
            "reviewer import-and-decrypt: {ours:.0} MB/s; no rage/age tool found for the baseline"
        );
    } else {
        println!(
            "reviewer import-and-decrypt: {ours:.0} MB/s ({count} streamed attachments of {} MiB: inbox imported, attachments exported and checked); {}",
            size / MIB,
            baselines.join("; ")
        );
    }
}

/// A kernel memory figure of a process, in KiB (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

/// The server as its own process (so its memory is its own), receiving a
/// 500 MiB attachment in 4 MiB chunks and then streaming it to a counsellor
/// in an inbox.
fn upload_memory() {
    use std::io::{BufRead, Read, Write};
    const MIB: u64 = 1024 * 1024;
    let size_mib = env_number("MELDKLUIS_BENCH_UPLOAD_MIB", 500);
    let dir = tempfile::tempdir().unwrap();
    let mut vault = bench_counsellor(dir.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meldkluis"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--keys")
        .arg(dir.path().join("keys"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first
        .trim()
        .strip_prefix("Meldkluis listening on ")
        .expect("the server starts")
        .to_string();
    let agent = agent();
    let _ = agent.get(format!("{base}/api/v1/limits")).call().unwrap();
    // `meldkluis serve` asks for a proof of work on the declaration and the
    // report: solved here, before any clock starts (its cost is the
    // client's, benches/pow.mjs).
    let pow = || {
        let challenge: meldkluis::server::pow::Challenge = serde_json::from_str(
            &agent
                .get(format!("{base}/api/v1/pow"))
                .call()
                .unwrap()
                .into_body()
                .read_to_string()
                .unwrap(),
        )
        .unwrap();
        meldkluis::server::pow::solve(&challenge).unwrap()
    };
    let (pow_upload, pow_report) = (pow(), pow());
    let idle_kib = proc_kib(pid, "VmHWM");

    // The attachment, encrypted as the browser does, to a file.
    let derived = Derived::from_code(&RetrievalCode::generate());
    let size = size_mib * MIB;
    let padded = meldkluis::format::agefile::attachment_padded_length(size);
    let path = dir.path().join("attachment.age");
    let recipients = [
        vault.recipient(),
        derived.reply_recipient_for(&[vault.recipient()]),
    ];
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .unwrap();
    let mut writer = encryptor
        .wrap_output(std::io::BufWriter::new(
            std::fs::File::create(&path).unwrap(),
        ))
        .unwrap();
    let block: Vec<u8> = (0..MIB).map(|i| (i * 31 % 251) as u8).collect();
    let mut written = 0;
    while written < padded {
        let n = (padded - written).min(MIB);
        let piece = if written + n <= size {
            &block[..n as usize]
        } else {
            &vec![0u8; n as usize][..]
        };
        writer.write_all(piece).unwrap();
        written += n;
    }
    writer.finish().unwrap().flush().unwrap();
    let length = std::fs::metadata(&path).unwrap().len();
    let mut head = vec![0u8; 70_000.min(length as usize)];
    std::fs::File::open(&path)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    let shape = meldkluis::format::agefile::check_attachment(&head, length).unwrap();

    // Upload it, sampling the server's resident memory as it goes.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(proc_kib(pid, "VmRSS"));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let started = Instant::now();
    let created: Value = serde_json::from_str(
        &agent
            .post(format!("{base}/api/v1/uploads"))
            .header("content-type", "application/json")
            .header(meldkluis::server::pow::HEADER, &pow_upload)
            .send(json!({ "length": length }).to_string())
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let upload = created["upload"].as_str().unwrap().to_string();
    let chunk = created["chunk_bytes"].as_u64().unwrap();
    let mut file = std::fs::File::open(&path).unwrap();
    let mut buffer = vec![0u8; chunk as usize];
    let mut offset = 0u64;
    while offset < length {
        let n = (length - offset).min(chunk) as usize;
        file.read_exact(&mut buffer[..n]).unwrap();
        let answer: Value = serde_json::from_str(
            &agent
                .post(format!("{base}/api/v1/uploads/chunk"))
                .header("content-type", "application/octet-stream")
                .header("upload-id", &upload)
                .header("upload-offset", &offset.to_string())
                .send(&buffer[..n])
                .unwrap()
                .into_body()
                .read_to_string()
                .unwrap(),
        )
        .unwrap();
        offset = answer["received"].as_u64().unwrap();
    }
    let upload_seconds = started.elapsed().as_secs_f64();
    let after_upload_kib = proc_kib(pid, "VmHWM");

    // A report claims it; the counsellor's inbox carries it.
    let mut envelope = Envelope::new(Kind::Report, "Met een grote bijlage.");
    envelope.reply_recipient = Some(derived.reply_recipient().to_string());
    envelope.counsellors = vec!["vp-bench".into()];
    envelope
        .attachments
        .push(meldkluis::format::envelope::Attachment::streamed(
            "video.mp4",
            "video/mp4",
            meldkluis::format::envelope::StreamedFile {
                size,
                upload: meldkluis::format::ids::UploadId::parse(&upload).unwrap(),
                head_sha256: sha2::Digest::finalize(
                    <sha2::Sha256 as sha2::Digest>::new_with_prefix(&head[..shape.head_len]),
                )
                .into(),
            },
        ));
    let report = json!({
        "counsellors": ["vp-bench"],
        "lookup_key": derived.lookup_key.to_hex(),
        "message": STANDARD.encode(envelope.seal(&recipients).unwrap()),
        "uploads": [upload],
    });
    let stored = agent
        .post(format!("{base}/api/v1/reports"))
        .header("content-type", "application/json")
        .header(meldkluis::server::pow::HEADER, &pow_report)
        .send(report.to_string())
        .unwrap();
    assert_eq!(stored.status().as_u16(), 201);
    let started = Instant::now();
    let outbox = commands::outbox(&mut vault).unwrap();
    let response = agent
        .post(format!("{base}/api/v1/courier/sync"))
        .header("content-type", "application/octet-stream")
        .send(&outbox[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let inbox_bytes = std::io::copy(
        &mut response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader(),
        &mut std::io::sink(),
    )
    .unwrap();
    let inbox_seconds = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let sampled_kib = sampler.join().unwrap();
    let peak_kib = proc_kib(pid, "VmHWM");
    let _ = child.kill();
    let _ = child.wait();

    // Baseline for the throughput: the same bytes in the same chunks written
    // to one plain file on the same disk, each chunk fsynced (what the server
    // did before attachments moved into the database).
    let baseline_seconds = {
        let started = Instant::now();
        let mut source = std::fs::File::open(&path).unwrap();
        let mut target = std::fs::File::create(dir.path().join("baseline.age")).unwrap();
        let mut copied = 0u64;
        while copied < length {
            let n = (length - copied).min(chunk) as usize;
            source.read_exact(&mut buffer[..n]).unwrap();
            target.write_all(&buffer[..n]).unwrap();
            target.sync_data().unwrap();
            copied += n as u64;
        }
        started.elapsed().as_secs_f64()
    };

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("\n## Server memory with a {size_mib} MiB attachment (server as its own process)");
    println!(
        "  idle server (after start-up)     VmHWM {:7.1} MiB",
        mib(idle_kib)
    );
    println!(
        "  after receiving the upload       VmHWM {:7.1} MiB  ({:.1} s, {:.0} MB/s over {} chunks of {} MiB)",
        mib(after_upload_kib),
        upload_seconds,
        length as f64 / 1e6 / upload_seconds,
        length.div_ceil(chunk),
        chunk / MIB
    );
    println!(
        "  after streaming it in an inbox   VmHWM {:7.1} MiB  ({:.1} s, {:.0} MB/s, inbox {} MiB)",
        mib(peak_kib),
        inbox_seconds,
        inbox_bytes as f64 / 1e6 / inbox_seconds,
        inbox_bytes / MIB
    );
    println!(
        "  upload throughput {:.0} MB/s; the same chunks appended to a plain file with an fsync each {:.0} MB/s; ratio {:.2}",
        length as f64 / 1e6 / upload_seconds,
        length as f64 / 1e6 / baseline_seconds,
        baseline_seconds / upload_seconds
    );
    println!(
        "  highest VmRSS sampled every 20 ms      {:7.1} MiB",
        mib(sampled_kib)
    );
    println!(
        "  peak / idle = {:.2}×; peak / file size = {:.3}; peak / 64 MiB target = {:.2} ({})",
        peak_kib as f64 / idle_kib.max(1) as f64,
        peak_kib as f64 * 1024.0 / length as f64,
        mib(peak_kib) / 64.0,
        if mib(peak_kib) <= 64.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}

/// The reviewer's import of an inbox of `MELDKLUIS_BENCH_PQ_REPORTS` (200)
/// reports, each made as the page makes it (a signed v2 envelope, padded,
/// to the counsellor and the melder's reply key), into a vault with post-quantum
/// hybrid keys against one with classical keys, same run, interleaved, best
/// of three each. The difference is the ML-KEM decapsulations (one per
/// message and one for the inbox) and the larger headers.
fn hybrid_import() {
    use meldkluis::format::bundle::{Inbox, InboxEntry};
    use meldkluis::format::day::Day;
    use meldkluis::format::ids::{CaseId, MessageId};
    use meldkluis::review::vault::KeyKind;

    let reports = env_number("MELDKLUIS_BENCH_PQ_REPORTS", 200) as usize;
    let mut sides = Vec::new();
    for keys in [KeyKind::Classical, KeyKind::Hybrid] {
        let dir = tempfile::tempdir().unwrap();
        let vault = bench_counsellor_with(dir.path(), keys);
        let entries: Vec<InboxEntry> = (0..reports)
            .map(|i| {
                let derived = Derived::from_code(&RetrievalCode::generate());
                let reply = derived.reply_recipient_for(&[vault.recipient()]);
                // Protocol v2, as the page now writes it: signed, pinned.
                let mut envelope = Envelope::new(Kind::Report, format!("Benchmark report {i}"));
                envelope.v = 2;
                envelope.reply_recipient = Some(reply.to_string());
                envelope.counsellors = vec!["vp-bench".into()];
                envelope.cards = vec![vault.card.clone()];
                envelope.thread = Some(derived.thread());
                envelope.seq = Some(1);
                envelope.prev = Some(None);
                InboxEntry {
                    seq: i as u64 + 1,
                    id: MessageId::random(),
                    case: CaseId::random(),
                    author: "melder".into(),
                    kind: "report".into(),
                    day: Day::today(),
                    body: envelope
                        .seal_signed(&[vault.recipient(), reply], &derived.melder_signing_key())
                        .unwrap(),
                    attachments: vec![],
                }
            })
            .collect();
        // Answers no outbox (this vault made none): the laptop refuses an
        // inbox that claims to answer one it never made.
        let inbox = Inbox::seal("vp-bench", 0, vec![], &entries, &vault.recipient()).unwrap();
        sides.push((keys, dir, vault, inbox, Duration::MAX));
    }
    for _ in 0..3 {
        for (_, dir, vault, inbox, best) in sides.iter_mut() {
            vault.state.cases.clear();
            vault.state.inbox_ack = 0;
            vault.state.inbox_answers = 0;
            let _ = std::fs::remove_dir_all(dir.path().join("vault/messages"));
            let started = Instant::now();
            let summary = commands::import(vault, inbox).unwrap();
            *best = (*best).min(started.elapsed());
            assert_eq!(summary.new_cases, reports);
            assert_eq!(summary.not_genuine, 0, "every signed report verifies");
        }
    }
    let classical = sides[0].4;
    let hybrid = sides[1].4;
    println!(
        "reviewer import of {reports} reports: classical {:.0} ms, hybrid {:.0} ms (ratio {:.2}); inbox {} vs {} bytes",
        classical.as_secs_f64() * 1000.0,
        hybrid.as_secs_f64() * 1000.0,
        hybrid.as_secs_f64() / classical.as_secs_f64(),
        sides[0].3.len(),
        sides[1].3.len(),
    );
}
