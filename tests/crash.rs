//! Crash safety (issue 5, DESIGN §6 "nothing acknowledged is lost"): the real
//! server binary is killed with SIGKILL at random moments while clients
//! submit over real HTTP, then restarted on the same data directory.
//!
//! - Every acknowledged (201/200) report and follow-up is there and
//!   decrypts; every unacknowledged one, sent again, is stored exactly once.
//! - No half-written record is visible: SQLite's integrity check passes,
//!   every case has its counsellors and exactly one report, every message
//!   is a padded age file whose stored size and hash match.
//! - A courier sync killed mid-way leaves the server before or after the
//!   whole outbox, never in between; retrying the same bundle, or making a
//!   new one, converges: each reply stored once, every item confirmed.
//!
//! Rounds: `MELDKLUIS_CRASH_ROUNDS` (default 30 submission rounds, and a
//! third of that for the courier); each test also stops starting rounds
//! after 50 s, and fails if fewer than a third of the rounds ran. The
//! figures are printed (`cargo test --test crash -- --nocapture`) and
//! recorded in docs/security.md.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Melder, Server, make_vault};
use meldkluis::format::agefile::AgeBlob;
use meldkluis::format::day::Day;
use meldkluis::format::envelope::Kind;
use meldkluis::review::commands;
use rand::Rng;
use serde_json::Value;
use sha2::{Digest, Sha256};

const CLIENTS: usize = 4;
const TIME_BUDGET: Duration = Duration::from_secs(50);

fn rounds() -> usize {
    std::env::var("MELDKLUIS_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(30)
}

/// One HTTP/1.1 request that, unlike `Server::request`, survives the server
/// dying under it: `None` when there was no complete answer.
fn try_post(port: u16, path: &str, content_type: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let pow = if common::needs_pow("POST", path) {
        format!("Meldkluis-Pow: {}\r\n", common::pow_for_port(port)?)
    } else {
        String::new()
    };
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {content_type}\r\n{pow}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().ok())
        })
        .flatten()?;
    let body = raw[split + 4..].to_vec();
    // A body cut short by the kill is no answer.
    (body.len() == length).then_some((status, body))
}

fn post_json(port: u16, path: &str, value: &Value) -> Option<(u16, Vec<u8>)> {
    try_post(port, path, "application/json", value.to_string().as_bytes())
}

/// Kills the server with SIGKILL and starts a new one on the same data and
/// keys directories.
fn kill_and_restart(server: &mut Server) {
    server.kill();
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    *server = Server::start_in(dir);
}

/// Sends a request until it gets a definite answer (the server may shed
/// load with 429/503 while it is busy).
fn until_answered(port: u16, path: &str, value: &Value) -> u16 {
    for _ in 0..50 {
        match post_json(port, path, value) {
            Some((429 | 503, _)) | None => std::thread::sleep(Duration::from_millis(100)),
            Some((status, _)) => return status,
        }
    }
    panic!("no answer from {path}");
}

/// What a restarted server shows must be whole: checked on the database
/// file itself, read-only, while the server runs. Messages up to
/// in `checked` passed before (the integrity check covers them since) and
/// are added to it; returns the number of messages. (Messages have no
/// arrival order to resume from: protocol.md §7a.)
fn assert_no_half_written_record(
    server: &Server,
    checked: &mut std::collections::HashSet<Vec<u8>>,
) -> usize {
    use rusqlite::{Connection, OpenFlags};
    let db = Connection::open_with_flags(
        server.data_dir().join("meldkluis.sqlite"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let orphans: i64 = db
        .query_row(
            "SELECT count(*) FROM messages WHERE case_id NOT IN (SELECT id FROM cases)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0, "messages without their case");
    let incomplete: i64 = db
        .query_row(
            "SELECT count(*) FROM cases c WHERE
               (SELECT count(*) FROM messages m WHERE m.case_id = c.id AND m.kind = 'report') <> 1
               OR NOT EXISTS (SELECT 1 FROM case_counsellors k WHERE k.case_id = c.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        incomplete, 0,
        "cases without exactly one report or without counsellors"
    );
    let mut statement = db
        .prepare("SELECT id, size, body_sha256, body FROM messages")
        .unwrap();
    let rows = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (id, size, sha, body) = row.unwrap();
        if !checked.insert(id) {
            continue;
        }
        assert_eq!(
            size as usize,
            body.len(),
            "stored size differs from the body"
        );
        assert_eq!(sha, Sha256::digest(&body).to_vec(), "stored hash differs");
        AgeBlob::parse_message(body).expect("a stored message is a padded age file");
    }
    let messages: i64 = db
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    messages as usize
}

/// A melder's submissions and which of them the server acknowledged.
struct Submitted {
    melder: Melder,
    report_text: String,
    report: Value,
    report_acked: bool,
    follow_ups: Vec<(String, Value, bool)>,
}

#[test]
fn acknowledged_submissions_survive_sigkill() {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-jansen");
    let recipient = vault.card.recipient().unwrap();
    let mut server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let all: Arc<Mutex<Vec<Submitted>>> = Arc::default();
    let started = Instant::now();
    let mut rng = rand::thread_rng();
    let (mut rounds_run, mut retried_stored, mut retried_lost, mut killed_in_flight) = (0, 0, 0, 0);
    let counter = Arc::new(AtomicUsize::new(0));
    let mut checked = std::collections::HashSet::new();
    while rounds_run < rounds() && started.elapsed() < TIME_BUDGET {
        rounds_run += 1;
        let stop = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(Mutex::new(0usize));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (all, stop, in_flight, recipient, counter) = (
                    all.clone(),
                    stop.clone(),
                    in_flight.clone(),
                    recipient.clone(),
                    counter.clone(),
                );
                let port = server.port;
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let melder = Melder::new();
                        let text = format!("Melding {n}: {}", "x".repeat(n * 37 % 5000));
                        let envelope = melder.report_envelope(&text, &["vp-jansen"]);
                        let report =
                            melder.report_request(&envelope, std::slice::from_ref(&recipient));
                        let answer = post_json(port, "/api/v1/reports", &report);
                        let mut cut = answer.is_none();
                        let mut submitted = Submitted {
                            melder,
                            report_text: text,
                            report,
                            report_acked: matches!(answer, Some((200 | 201, _))),
                            follow_ups: Vec::new(),
                        };
                        if submitted.report_acked && n % 2 == 0 {
                            let text = format!("Aanvulling {n}");
                            let request = submitted
                                .melder
                                .follow_up_request(&text, std::slice::from_ref(&recipient));
                            let answer = post_json(port, "/api/v1/thread/messages", &request);
                            cut |= answer.is_none();
                            let acked = matches!(answer, Some((201, _)));
                            submitted.follow_ups.push((text, request, acked));
                        }
                        all.lock().unwrap().push(submitted);
                        if cut {
                            *in_flight.lock().unwrap() += 1;
                            break;
                        }
                    }
                })
            })
            .collect();
        // The kill lands anywhere: before the first request, between
        // requests, or inside a transaction's fsync.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..400)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
        killed_in_flight += *in_flight.lock().unwrap();
        kill_and_restart(&mut server);
        assert_no_half_written_record(&server, &mut checked);

        // Every acknowledged submission is there; every other one, sent
        // again as a browser would, is stored (once) now.
        let mut all = all.lock().unwrap();
        for submitted in all.iter_mut() {
            if !submitted.report_acked {
                let status = until_answered(server.port, "/api/v1/reports", &submitted.report);
                match status {
                    200 => retried_stored += 1,
                    201 => retried_lost += 1,
                    other => panic!("retried report answered {other}"),
                }
                submitted.report_acked = true;
            }
            for (_, request, acked) in submitted.follow_ups.iter_mut() {
                if !*acked {
                    assert_eq!(
                        until_answered(server.port, "/api/v1/thread/messages", request),
                        201
                    );
                    *acked = true;
                }
            }
        }
    }

    // The final check: everything, after the last restart.
    let messages = assert_no_half_written_record(&server, &mut Default::default());
    let all = all.lock().unwrap();
    let mut follow_ups = 0;
    for submitted in all.iter() {
        let answer = server.post_json("/api/v1/thread", &submitted.melder.thread_request());
        assert_eq!(answer.status, 200, "an acknowledged report is missing");
        let thread = submitted.melder.read_thread(&answer.json());
        assert_eq!(thread[0].kind, Kind::Report);
        assert_eq!(thread[0].text, submitted.report_text);
        let texts: Vec<&str> = thread[1..].iter().map(|e| e.text.as_str()).collect();
        let expected: Vec<&str> = submitted
            .follow_ups
            .iter()
            .map(|(t, _, _)| t.as_str())
            .collect();
        assert_eq!(texts, expected, "follow-ups lost or stored twice");
        follow_ups += expected.len();
    }
    assert_eq!(
        messages,
        all.len() + follow_ups,
        "a stray message is stored"
    );
    println!(
        "crash: {rounds_run} SIGKILL rounds in {:.1} s; {} reports and {follow_ups} follow-ups \
         acknowledged and present; {killed_in_flight} requests cut by a kill; retried after \
         restart: {retried_stored} had been stored, {retried_lost} had not; nothing lost",
        started.elapsed().as_secs_f64(),
        all.len(),
    );
    assert!(
        rounds_run >= rounds().div_ceil(3),
        "only {rounds_run} rounds ran"
    );
    assert!(
        all.len() > rounds_run,
        "too few submissions to mean anything"
    );
}

/// Counts the counsellor's messages on each melder's thread, as the
/// server hands them out (decrypting them all each round would dominate
/// the test's time in a debug build; the end of the test decrypts).
fn replies(server: &Server, melders: &[Melder]) -> Vec<usize> {
    melders
        .iter()
        .map(|m| {
            let answer = server.post_json("/api/v1/thread", &m.thread_request());
            assert_eq!(answer.status, 200);
            answer.json()["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["author"] == "vp-jansen")
                .count()
        })
        .collect()
}

#[test]
fn a_courier_sync_killed_midway_is_all_or_nothing() {
    const CASES: usize = 8;
    let vault_dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(vault_dir.path(), "vp-jansen");
    let recipient = vault.card.recipient().unwrap();
    let mut server = Server::start_with_cards(&[("vp-jansen", vault.card.to_json())]);
    let melders: Vec<Melder> = (0..CASES).map(|_| Melder::new()).collect();
    for (i, melder) in melders.iter().enumerate() {
        let report = melder.report_request(
            &melder.report_envelope(&format!("Melding {i}"), &["vp-jansen"]),
            std::slice::from_ref(&recipient),
        );
        assert_eq!(server.post_json("/api/v1/reports", &report).status, 201);
    }
    let outbox = commands::outbox(&mut vault).unwrap();
    let answer = server.sync(&outbox);
    assert_eq!(answer.status, 200);
    commands::import(&mut vault, &answer.body).unwrap();
    let cases: Vec<_> = vault.state.cases.keys().copied().collect();
    assert_eq!(cases.len(), CASES);

    let started = Instant::now();
    let mut rng = rand::thread_rng();
    let mut window = Duration::from_millis(100);
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rounds_run = 0;
    let mut checked = std::collections::HashSet::new();
    let wanted = rounds().div_ceil(3).max(3);
    while rounds_run < wanted && started.elapsed() < TIME_BUDGET {
        rounds_run += 1;
        // Larger replies (32 KiB each) widen the window in which the kill
        // can land inside the server's one transaction.
        for case in &cases {
            let text = format!("Antwoord {rounds_run}: {}", "y".repeat(20_000));
            commands::send(&mut vault, case, &text, None, Day::today()).unwrap();
        }
        let before = replies(&server, &melders);
        let bundle = commands::outbox(&mut vault).unwrap();
        let port = server.port;
        let sender = {
            let bundle = bundle.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let answer = try_post(
                    port,
                    "/api/v1/courier/sync",
                    "application/octet-stream",
                    &bundle,
                );
                (answer, start.elapsed())
            })
        };
        std::thread::sleep(window.mul_f64(rng.gen_range(0.2..1.3)));
        server.kill();
        let (answer, _) = sender.join().unwrap();
        kill_and_restart(&mut server);
        assert_no_half_written_record(&server, &mut checked);

        let after = replies(&server, &melders);
        let none = after == before;
        let every = after.iter().zip(&before).all(|(a, b)| *a == b + 1);
        assert!(
            none || every,
            "a sync was half applied: {before:?} → {after:?}"
        );
        if let Some((status, _)) = &answer {
            assert_eq!(*status, 200);
            assert!(every, "an answered sync is not applied");
        }
        *outcomes
            .entry(match (&answer, every) {
                (Some(_), _) => "answered before the kill",
                (None, true) => "applied, answer lost",
                (None, false) => "not applied",
            })
            .or_default() += 1;

        // Converge: the courier retries the same bundle, or the counsellor
        // makes a new one (its items are still queued).
        let retry = if rounds_run % 2 == 0 {
            bundle
        } else {
            commands::outbox(&mut vault).unwrap()
        };
        let start = Instant::now();
        let answer = server.sync(&retry);
        window = start.elapsed().max(Duration::from_millis(5));
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        commands::import(&mut vault, &answer.body).unwrap();
        assert!(vault.state.pending.is_empty(), "a reply was not confirmed");
        let converged = replies(&server, &melders);
        assert!(
            converged.iter().zip(&before).all(|(a, b)| *a == b + 1),
            "after the re-sync: {before:?} → {converged:?}"
        );
    }
    assert_no_half_written_record(&server, &mut Default::default());
    // Every reply decrypts for its melder, in the order it was sent.
    for melder in &melders {
        let answer = server.post_json("/api/v1/thread", &melder.thread_request());
        let thread = melder.read_thread(&answer.json());
        let replies: Vec<&str> = thread
            .iter()
            .filter(|e| e.kind == Kind::Reply)
            .map(|e| e.text.split(':').next().unwrap())
            .collect();
        let expected: Vec<String> = (1..=rounds_run).map(|r| format!("Antwoord {r}")).collect();
        assert_eq!(replies, expected);
    }
    println!(
        "courier crash: {rounds_run} syncs of {CASES} replies (256 KiB) killed at random in {:.1} s: \
         {outcomes:?}; each converged on re-sync, every reply stored once",
        started.elapsed().as_secs_f64()
    );
    assert!(
        rounds_run >= wanted.div_ceil(2),
        "only {rounds_run} rounds ran"
    );
}
