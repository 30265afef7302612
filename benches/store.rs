//! The store's throughput on SQLite and on PostgreSQL in the same run
//! (docs/performance.md, docs/postgresql.md): durable report submissions
//! per second and thread look-ups per second through the store interface
//! (`Store`), from 16 threads at once; PostgreSQL as one node (one pool)
//! and as two nodes (two pools on one database, 8 threads each), and one
//! node over TLS (`sslmode=verify-full`, when tests/postgres.sh gives its
//! CA in `MELDKLUIS_TEST_POSTGRES_CA`). HTTP,
//! JSON and the proof of work are the same on both backends and left out
//! (benches/server.rs measures them). Needs a PostgreSQL:
//! `bash tests/postgres.sh cargo bench --bench store`.

use std::time::Instant;

use meldkluis::format::agefile::AgeBlob;
use meldkluis::format::derive::LookupHash;
use meldkluis::server::store::Store;

const THREADS: usize = 16;
const REPORTS: usize = 1600;
const LOOKUPS: usize = 16_000;

fn main() {
    let Ok(admin) = std::env::var("MELDKLUIS_TEST_POSTGRES_URL") else {
        println!(
            "store benchmark: needs MELDKLUIS_TEST_POSTGRES_URL (bash tests/postgres.sh cargo bench --bench store)"
        );
        return;
    };
    let recipient = age::x25519::Identity::generate().to_public();
    // Bodies made before the clock starts: a 4 KiB padded report each.
    let bodies: Vec<AgeBlob> = (0..REPORTS)
        .map(|n| {
            let text = format!("{:<4096}", format!("melding {n}"));
            AgeBlob::parse_message(age::encrypt(&recipient, text.as_bytes()).unwrap()).unwrap()
        })
        .collect();
    println!(
        "# Store throughput ({} cores, {THREADS} threads, {REPORTS} reports of 4 KiB, {LOOKUPS} look-ups)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| store | durable submissions/s | look-ups/s |");
    println!("|---|---|---|");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&dir.path().join("bench.sqlite")).unwrap();
    report("SQLite, one node (baseline)", &[&sqlite], &bodies);
    drop(sqlite);
    // (nodes, URL options, label)
    let mut runs = vec![
        (1, String::new(), "1 node(s)".to_string()),
        (2, String::new(), "2 node(s)".to_string()),
    ];
    if let Ok(ca) = std::env::var("MELDKLUIS_TEST_POSTGRES_CA") {
        runs.push((
            1,
            format!("?sslmode=verify-full&sslrootcert={ca}"),
            "1 node(s), TLS verify-full".to_string(),
        ));
    }
    for (nodes, options, label) in runs {
        let name = format!("b_{}", hex::encode(rand::random::<[u8; 6]>()));
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        let url = format!("{}/{name}{options}", admin.rsplit_once('/').unwrap().0);
        let stores: Vec<Store> = (0..nodes)
            .map(|_| Store::open_postgres(&url, None).unwrap())
            .collect();
        let refs: Vec<&Store> = stores.iter().collect();
        report(&format!("PostgreSQL 15, {label}"), &refs, &bodies);
        drop(stores);
        client
            .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .unwrap();
    }
}

fn lookup(n: usize) -> LookupHash {
    let mut hash = [0x42u8; 32];
    hash[..8].copy_from_slice(&(n as u64).to_be_bytes());
    LookupHash(hash)
}

fn report(label: &str, nodes: &[&Store], bodies: &[AgeBlob]) {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let store = nodes[t % nodes.len()];
            scope.spawn(move || {
                for n in (t..REPORTS).step_by(THREADS) {
                    store
                        .create_case(lookup(n), vec!["vp-a".into()], bodies[n].clone(), vec![])
                        .unwrap();
                }
            });
        }
    });
    let submissions = REPORTS as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let store = nodes[t % nodes.len()];
            scope.spawn(move || {
                for i in 0..LOOKUPS / THREADS {
                    let n = (i * 7919 + t * 104_729) % REPORTS;
                    assert!(store.thread(&lookup(n)).unwrap().is_some());
                }
            });
        }
    });
    let lookups = LOOKUPS as f64 / started.elapsed().as_secs_f64();
    println!("| {label} | {submissions:.0} | {lookups:.0} |");
}
