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
