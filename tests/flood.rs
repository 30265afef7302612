//! A bounded flood on 127.0.0.1 (issue 14): one client sends junk reports
//! and upload declarations as fast as the proof of work lets it, each with a
//! solved `Meldkluis-Pow` (solved natively, faster than any browser). During
//! it a real melder's report with a 10 MiB attachment goes through, look-ups
//! stay within twice their quiet p99, the difficulty rises, and the bytes
//! counted for uploads never exceed the bytes received.

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

    // The flood: one client, junk reports and upload declarations by turns,
    // for at most 40 seconds.
    let junk: Arc<Vec<serde_json::Value>> = Arc::new(
        (0..2000)
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
    let (reports, declarations) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flooder = {
        let (server, junk, stop) = (server.clone(), junk.clone(), stop.clone());
        let (reports, declarations) = (reports.clone(), declarations.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < junk.len() {
                if i % 2 == 0 {
                    if server.post_json("/api/v1/reports", &junk[i]).status == 201 {
                        reports.fetch_add(1, Ordering::Relaxed);
                    }
                } else if server.create_upload(500 * 1024 * 1024).status == 201 {
                    declarations.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        })
    };
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(5));

    // A real melder with a 10 MiB attachment, during the flood.
    let real = Melder::new();
    let (file, mut streamed) = seal_attachment(
        &vec![0x42; 10 << 20],
        &[vault.recipient(), real.derived.reply_recipient().into()],
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

    let mut loaded = Vec::new();
    let mut worst_accounting = (0, 0);
    while started.elapsed() < Duration::from_secs(25) {
        loaded.push(look_up());
        if loaded.len() % 20 == 0 {
            let (counted, stored) = upload_accounting(&server);
            assert!(
                counted <= stored,
                "{counted} bytes counted, {stored} stored"
            );
            worst_accounting = worst_accounting.max((counted, stored));
        }
    }
    let flood_difficulty = max_number(&server);
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    let flood_seconds = started.elapsed().as_secs_f64();
    loaded.sort();
    let (reports, declarations) = (
        reports.load(Ordering::Relaxed),
        declarations.load(Ordering::Relaxed),
    );
    println!(
        "flood of {reports} junk reports and {declarations} upload declarations of 500 MiB \
         in {flood_seconds:.0} s ({:.1} accepted/s); proof-of-work maxnumber {quiet_difficulty} \
         quiet → {flood_difficulty} under the flood",
        (reports + declarations) as f64 / flood_seconds
    );
    println!(
        "look-up p50/p99: quiet {:?}/{:?}, during the flood {:?}/{:?} ({} look-ups)",
        percentile(&quiet, 0.5),
        percentile(&quiet, 0.99),
        percentile(&loaded, 0.5),
        percentile(&loaded, 0.99),
        loaded.len()
    );
    println!(
        "the real report with a 10 MiB attachment took {real_took:?}; upload bytes counted \
         {} ≤ stored {} (declared: {} MiB, reserved: 0)",
        worst_accounting.0,
        worst_accounting.1,
        declarations * 500
    );
    assert!(reports + declarations > 20, "the flood did not run");
    assert!(
        flood_difficulty > quiet_difficulty,
        "difficulty did not rise"
    );
    assert!(
        percentile(&loaded, 0.99) <= 2 * percentile(&quiet, 0.99),
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
