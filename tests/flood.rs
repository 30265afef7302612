//! A bounded flood on 127.0.0.1 (issue 14): one client sends junk reports
//! and upload declarations, five a second, each with a solved
//! `Meldkluis-Pow` (solved beforehand, as on an attacker's own machines). During
//! it a real melder's report with a 10 MiB attachment goes through, look-ups
//! stay within twice their quiet p99, the difficulty rises, and the bytes
//! counted for uploads never exceed the bytes received, nor does the data
//! directory grow by more than what arrived.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Melder, Server, make_vault, seal_attachment};
use meldkluis::format::envelope::Attachment;
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn max_number(server: &Server) -> u64 {
    server.get("/api/v1/pow").json()["maxnumber"]
        .as_u64()
        .unwrap()
}

/// Bytes the file system gives the data directory (allocated blocks, so a
/// reservation made with fallocate would count in full).
fn allocated(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum()
}

/// Bytes counted for uploads, and bytes actually stored, in the database.
fn upload_accounting(server: &Server) -> (i64, i64) {
    let db = rusqlite::Connection::open(server.data_dir().join("meldkluis.sqlite")).unwrap();
    db.query_row(
        "SELECT (SELECT coalesce(sum(received), 0) FROM uploads),
                (SELECT coalesce(sum(length(data)), 0) FROM upload_chunks)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn a_flood_neither_stops_a_real_report_nor_slows_look_ups() {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-a");
    let server = Arc::new(Server::start_with_cards(&[("vp-a", vault.card.to_json())]));
    let melder = Melder::new();
    let envelope = melder.report_envelope("Bestaande melding.", &["vp-a"]);
    assert_eq!(
        server
            .submit_report(&melder, &envelope, &[vault.recipient()])
            .status,
        201
    );
    let look_up = || {
        let t = Instant::now();
        let answer = server.post_json("/api/v1/thread", &melder.thread_request());
        assert_eq!(answer.status, 200);
        t.elapsed()
    };
    let mut quiet: Vec<Duration> = (0..100).map(|_| look_up()).collect();
    quiet.sort();
    let quiet_difficulty = max_number(&server);
    let disk_before = allocated(&server.data_dir());

    // The flood: one client, junk reports and upload declarations by turns,
    // five a second, each with a proof of work. The client solves its
    // proofs before it starts, as an attacker would on its own machines
    // (challenges stay valid for ten minutes): solving them here, during
    // the flood, would put the attacker's work on the server's two cores
    // and measure that instead of the server.
    let rate = 5;
    let tokens: Vec<String> = (0..100).map(|_| server.pow()).collect();
    let junk: Arc<Vec<serde_json::Value>> = Arc::new(
        (0..tokens.len())
            .map(|_| {
                let m = Melder::new();
                m.report_request(
                    &m.report_envelope("Rommel.", &["vp-a"]),
                    &[vault.recipient()],
                )
            })
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicBool::new(false));
    let (reports, declarations) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flooder = {
        let (server, junk, stop) = (server.clone(), junk.clone(), stop.clone());
        let (reports, declarations) = (reports.clone(), declarations.clone());
        let paused = paused.clone();
        std::thread::spawn(move || {
            let mut tokens = tokens.into_iter().enumerate();
            while !stop.load(Ordering::Relaxed) {
                if paused.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                let Some((i, token)) = tokens.next() else {
                    break;
                };
                let next = Instant::now() + Duration::from_millis(1000 / rate);
                let pow = [
                    ("Content-Type", "application/json"),
                    ("Meldkluis-Pow", &token[..]),
                ];
                if i % 2 == 0 {
                    let body = serde_json::to_vec(&junk[i]).unwrap();
                    if server
                        .request_with("POST", "/api/v1/reports", &pow, &body)
                        .status
                        == 201
                    {
                        reports.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    let body = serde_json::to_vec(&json!({ "length": 500 * 1024 * 1024 })).unwrap();
                    if server
                        .request_with("POST", "/api/v1/uploads", &pow, &body)
                        .status
                        == 201
                    {
                        declarations.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
    };
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(5));

    // A real melder with a 10 MiB attachment, during the flood.
    let real = Melder::new();
    let (file, mut streamed) = seal_attachment(
        &vec![0x42; 10 << 20],
        &[vault.recipient(), real.derived.reply_recipient()],
    );
    let real_started = Instant::now();
    let upload = server.upload(&file, 4 << 20);
    streamed.upload = meldkluis::format::ids::UploadId::parse(&upload).unwrap();
    let mut envelope = real.report_envelope("Echte melding met bijlage.", &["vp-a"]);
    envelope.attachments.push(Attachment::streamed(
        "scan.pdf",
        "application/pdf",
        streamed,
    ));
    let mut request = real.report_request(&envelope, &[vault.recipient()]);
    request["uploads"] = json!([upload]);
    let answer = server.post_json("/api/v1/reports", &request);
    assert_eq!(answer.status, 201, "{}", answer.error());
    let real_took = real_started.elapsed();

    // Look-ups in alternating two-second windows, the flood paused and
    // running: whatever else runs on the machine (other builds on a shared
    // CI runner) then weighs on both alike, and the comparison is the
    // flood's own effect.
    let (mut between, mut loaded) = (Vec::new(), Vec::new());
    let mut worst_accounting = (0, 0);
    let mut most_counted_beyond_stored = 0;
    for window in 0..10 {
        let flooding = window % 2 == 1;
        paused.store(!flooding, Ordering::Relaxed);
        let opened = Instant::now();
        let mut taken = 0;
        while opened.elapsed() < Duration::from_secs(2) {
            let took = look_up();
            taken += 1;
            if flooding {
                loaded.push(took);
            } else {
                between.push(took);
            }
            if taken % 20 != 0 {
                continue;
            }
            let (counted, stored) = upload_accounting(&server);
            assert!(
                counted <= stored,
                "{counted} bytes counted, {stored} stored"
            );
            worst_accounting = worst_accounting.max((counted, stored));
            most_counted_beyond_stored = most_counted_beyond_stored.max(counted - stored);
        }
    }
    let flood_difficulty = max_number(&server);
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    let flood_seconds = started.elapsed().as_secs_f64();
    let disk_growth = allocated(&server.data_dir()).saturating_sub(disk_before);
    loaded.sort();
    between.sort();
    let (reports, declarations) = (
        reports.load(Ordering::Relaxed),
        declarations.load(Ordering::Relaxed),
    );
    println!(
        "flood of {reports} junk reports and {declarations} upload declarations of 500 MiB \
         at {rate}/s over {flood_seconds:.0} s (paused in half of the last 20 s); proof-of-work \
         maxnumber {quiet_difficulty} quiet → {flood_difficulty} under the flood"
    );
    println!(
        "look-up p50/p99: before the flood {:?}/{:?} ({} look-ups); in the windows with the \
         flood paused {:?}/{:?} ({}), running {:?}/{:?} ({}); p99 ratio {:.2}",
        percentile(&quiet, 0.5),
        percentile(&quiet, 0.99),
        quiet.len(),
        percentile(&between, 0.5),
        percentile(&between, 0.99),
        between.len(),
        percentile(&loaded, 0.5),
        percentile(&loaded, 0.99),
        loaded.len(),
        percentile(&loaded, 0.99).as_secs_f64() / percentile(&between, 0.99).as_secs_f64()
    );
    println!(
        "the real report with a 10 MiB attachment took {real_took:?}; upload bytes counted \
         {} ≤ stored {}, at most {most_counted_beyond_stored} counted beyond what was stored \
         (declared: {} MiB)",
        worst_accounting.0,
        worst_accounting.1,
        declarations * 500
    );
    // What a reservation would show on disk: the data directory grew by the
    // bytes received and the junk reports' rows, not by what was declared.
    let bound = file.len() as u64 + reports as u64 * 16 * 1024 + 8 * 1024 * 1024;
    println!(
        "the data directory grew by {:.1} MiB during the flood: {:.1} MiB received, {reports} \
         junk reports (bound: received + 16 KiB a report + 8 MiB = {:.1} MiB)",
        disk_growth as f64 / 1048576.0,
        file.len() as f64 / 1048576.0,
        bound as f64 / 1048576.0
    );
    assert!(
        disk_growth <= bound,
        "the data directory grew by {disk_growth} bytes, more than {bound}"
    );
    assert!(reports + declarations > 20, "the flood did not run");
    assert!(
        flood_difficulty > quiet_difficulty,
        "difficulty did not rise"
    );
    assert!(
        percentile(&loaded, 0.99) <= 2 * percentile(&between, 0.99),
        "look-ups slowed more than twofold"
    );
    let (counted, stored) = upload_accounting(&server);
    assert_eq!(counted, stored);
    assert_eq!(
        stored as usize,
        file.len(),
        "only the real attachment's bytes"
    );
}
