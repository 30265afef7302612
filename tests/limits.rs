//! Resource limits against a real server: slow clients are cut off, and a
//! flood of submissions or idle connections does not stop look-ups. (Body
//! size limits are in tests/api.rs.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Melder, Server, make_vault};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn slowloris_connections_are_closed_and_do_not_block_look_ups() {
    let dir = tempfile::tempdir().unwrap();
    let vault = make_vault(dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let melder = Melder::new();
    let report = melder.report_envelope("Melding.", &["vp-a"]);
    assert_eq!(
        server
            .submit_report(&melder, &report, &[vault.recipient()])
            .status,
        201
    );

    // 200 clients that send half a request header and then nothing.
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            s.write_all(b"POST /api/v1/thread HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // Look-ups still answer, at once.
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            server
                .post_json("/api/v1/thread", &melder.thread_request())
                .status,
            200
        );
    }
    let per_look_up = started.elapsed() / 20;
    println!("look-up with 200 slow clients attached: {per_look_up:?} each");
    assert!(per_look_up < Duration::from_millis(500));

    // The server closes them once the header timeout has passed.
    let deadline = meldkluis::server::HEADER_READ_TIMEOUT + Duration::from_secs(5);
    let started = Instant::now();
    let mut closed = 0;
    for stream in &mut slow {
        stream
            .set_read_timeout(Some(
                deadline
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_millis(10)),
            ))
            .unwrap();
        let mut buffer = [0u8; 512];
        // Either an error answer then EOF, or EOF, or a reset: all mean closed.
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        if started.elapsed() < deadline {
            closed += 1;
        }
    }
    println!(
        "slow clients closed by the server: {closed} of 200 within {:?}",
        started.elapsed()
    );
    assert_eq!(closed, 200);
}

#[test]
fn look_ups_stay_fast_while_one_client_floods_submissions() {
    let dir = tempfile::tempdir().unwrap();
    let vault = make_vault(dir.path(), "vp-a");
    let server = Arc::new(Server::start_with_cards(&[("vp-a", vault.card.to_json())]));
    let melder = Melder::new();
    let report = melder.report_envelope("Melding.", &["vp-a"]);
    assert_eq!(
        server
            .submit_report(&melder, &report, &[vault.recipient()])
            .status,
        201
    );

    // One look-up, answered 200, and its time.
    let look_up = || {
        let t = Instant::now();
        assert_eq!(
            server
                .post_json("/api/v1/thread", &melder.thread_request())
                .status,
            200
        );
        t.elapsed()
    };
    // Quiet baseline.
    let mut quiet: Vec<Duration> = (0..50).map(|_| look_up()).collect();
    quiet.sort();

    // The flood: 6 threads submitting prepared reports as fast as they can.
    let requests: Vec<serde_json::Value> = (0..600)
        .map(|_| {
            let m = Melder::new();
            m.report_request(
                &m.report_envelope("Vloed.", &["vp-a"]),
                &[vault.recipient()],
            )
        })
        .collect();
    let requests = Arc::new(requests);
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let flooders: Vec<_> = (0..6)
        .map(|_| {
            let (server, requests, stop, next) =
                (server.clone(), requests.clone(), stop.clone(), next.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        break;
                    };
                    server.post_json("/api/v1/reports", request);
                }
            })
        })
        .collect();
    let mut loaded = Vec::new();
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until && next.load(Ordering::Relaxed) < requests.len() {
        loaded.push(look_up());
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    loaded.sort();
    println!(
        "look-up p50/p99: quiet {:?}/{:?}, during a flood of {} submissions {:?}/{:?} ({} look-ups)",
        percentile(&quiet, 0.5),
        percentile(&quiet, 0.99),
        next.load(Ordering::Relaxed).min(requests.len()),
        percentile(&loaded, 0.5),
        percentile(&loaded, 0.99),
        loaded.len()
    );
    assert!(loaded.len() >= 10, "look-ups were starved");
    assert!(
        percentile(&loaded, 0.99) < Duration::from_secs(1),
        "a look-up took a second or more"
    );
}

/// A report flood leaves 100,000 messages waiting for one counsellor (420
/// MB of ciphertext). The next sync answers one inbox within its budget
/// and the server's memory stays far below what loading them all would
/// take: inbox numbers are given in one SQL statement and the read stops
/// at the budget (issue 14). Measured as the growth of the server's peak
/// resident memory (VmHWM) over the sync.
#[test]
fn a_sync_with_100000_waiting_messages_keeps_memory_bounded() {
    use meldkluis::review::commands;
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(dir.path(), "vp-a");
    let mut server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let melder = Melder::new();
    let report = melder.report_envelope("Melding.", &["vp-a"]);
    assert_eq!(
        server
            .submit_report(&melder, &report, &[vault.recipient()])
            .status,
        201
    );
    server.kill();
    // The flood, written straight into the database (a real one would take
    // hours through HTTP): every message a copy of the real report.
    let count = 100_000usize;
    let started = Instant::now();
    let body_size;
    {
        let mut db =
            rusqlite::Connection::open(server.data_dir().join("meldkluis.sqlite")).unwrap();
        let body: Vec<u8> = db
            .query_row("SELECT body FROM messages", [], |r| r.get(0))
            .unwrap();
        body_size = body.len();
        // Test-only speed: this flood need not survive a power cut.
        db.execute_batch("PRAGMA synchronous = OFF").unwrap();
        let tx = db.transaction().unwrap();
        {
            let mut case = tx
                .prepare("INSERT INTO cases (id, lookup_hash, day) VALUES (?1, ?2, '2026-12-01')")
                .unwrap();
            let mut counsellor = tx
                .prepare("INSERT INTO case_counsellors (case_id, counsellor) VALUES (?1, 'vp-a')")
                .unwrap();
            let mut message = tx
                .prepare(
                    "INSERT INTO messages (id, case_id, position, author, kind, day, size,
                                           body_sha256, body)
                     VALUES (?1, ?1, 0, 'melder', 'report', '2026-12-01', ?2, ?3, ?4)",
                )
                .unwrap();
            for _ in 0..count {
                let id: [u8; 16] = rand::random();
                let hash: [u8; 32] = rand::random();
                case.execute(rusqlite::params![&id[..], &hash[..]]).unwrap();
                counsellor.execute([&id[..]]).unwrap();
                message
                    .execute(rusqlite::params![
                        &id[..],
                        body.len() as i64,
                        &hash[..],
                        &body
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    println!(
        "{count} messages of {body_size} bytes written in {:?}",
        started.elapsed()
    );
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let server = Server::start_in(dir);
    // Warm: one look-up so the baseline includes the server's working set.
    assert_eq!(
        server
            .post_json("/api/v1/thread", &melder.thread_request())
            .status,
        200
    );
    server.reset_peak_rss();
    let baseline = server.peak_rss_kib();
    let started = Instant::now();
    let answer = server.sync(&commands::outbox(&mut vault).unwrap());
    assert_eq!(answer.status, 200);
    let took = started.elapsed();
    let peak = server.peak_rss_kib();
    let summary = commands::import(&mut vault, &answer.body).unwrap();
    let waiting_mib = (count * body_size) as f64 / 1048576.0;
    let growth_mib = (peak - baseline) as f64 / 1024.0;
    println!(
        "sync with {count} waiting ({waiting_mib:.0} MiB): {} delivered in {took:?}; server \
         peak memory {:.0} MiB → {:.0} MiB (+{growth_mib:.0} MiB)",
        summary.new_messages,
        baseline as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    assert!(summary.new_messages > 1000 && summary.new_messages < count);
    // Bounded by one inbox, not by what waits: the message files an inbox
    // holds in memory (60 MiB, courier.rs) and their copy on the way out;
    // the same for a million waiting.
    assert!(
        growth_mib < 2.0 * 64.0,
        "memory grew {growth_mib:.0} MiB for {waiting_mib:.0} MiB waiting"
    );
    // What waits comes with the next syncs: the numbers go on after the
    // acknowledged ones.
    let db = rusqlite::Connection::open(server.data_dir().join("meldkluis.sqlite")).unwrap();
    let (numbered, highest): (i64, i64) = db
        .query_row(
            "SELECT count(*), max(seq) FROM deliveries WHERE counsellor = 'vp-a'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((numbered, highest), (count as i64 + 1, count as i64 + 1));
    assert_eq!(vault.state.inbox_ack, summary.new_messages as u64);
}
