//! Two `meldkluis serve` processes on one PostgreSQL (docs/postgresql.md),
//! as two nodes behind a proxy: a report, its upload, its follow-up and the
//! courier hop between them; the same outbox sent to both at once is
//! applied once; one node SIGKILLed again and again under load loses no
//! acknowledged submission. Needs the PostgreSQL of tests/postgres.sh
//! (`MELDKLUIS_TEST_POSTGRES_URL`); without it each test says so and
//! passes, unless `MELDKLUIS_REQUIRE_POSTGRES=1` (tests/run-all.sh).

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Melder, PgDatabase, Server, make_vault, seal_attachment};
use meldkluis::format::envelope::{Attachment, Kind};
use meldkluis::review::commands;
use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;

/// A new database on the test PostgreSQL, dropped at the end, and how a
/// node reaches it: a URL without the password, and the password file.
struct Database {
    /// Holds the nodes' shared proof-of-work key file.
    secrets: tempfile::TempDir,
    db: PgDatabase,
    url: String,
    password_file: String,
}

impl Database {
    fn create() -> Option<Database> {
        let db = PgDatabase::create("n")?;
        let password_file = std::env::var("MELDKLUIS_TEST_POSTGRES_PASSWORD_FILE").unwrap();
        // postgres://meldkluis:PASSWORD@host:port/postgres → without the
        // password, which the nodes read from their _FILE setting.
        let (scheme, rest) = db.admin.split_once("://").unwrap();
        let (user_part, host_part) = rest.split_once('@').unwrap();
        let user = user_part.split(':').next().unwrap();
        let server = host_part.rsplit_once('/').unwrap().0;
        let url = format!("{scheme}://{user}@{server}/{}", db.name);
        let secrets = tempfile::tempdir().unwrap();
        std::fs::write(
            secrets.path().join("pow-key"),
            hex::encode(rand::random::<[u8; 32]>()),
        )
        .unwrap();
        std::fs::write(
            secrets.path().join("inbox-key"),
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                rand::random::<[u8; 32]>(),
            ),
        )
        .unwrap();
        Some(Database {
            secrets,
            db,
            url,
            password_file,
        })
    }

    /// A node: its own data directory, the same cards, this database, the
    /// same proof-of-work key.
    fn node(&self, card: &str, dir: Option<tempfile::TempDir>) -> Server {
        let pow_key = self.secrets.path().join("pow-key");
        // Every node signs inboxes with one key, or a laptop that pinned one
        // node's would refuse the other's (protocol.md §6).
        let inbox_key = self.secrets.path().join("inbox-key");
        let dir = dir.unwrap_or_else(|| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("keys")).unwrap();
            std::fs::write(dir.path().join("keys/vp-test.json"), card).unwrap();
            dir
        });
        Server::start_in_env(
            dir,
            &[],
            &[
                ("MELDKLUIS_DATABASE_URL", &self.url),
                ("MELDKLUIS_DATABASE_PASSWORD_FILE", &self.password_file),
                ("MELDKLUIS_POW_KEY_FILE", pow_key.to_str().unwrap()),
                ("MELDKLUIS_INBOX_KEY_FILE", inbox_key.to_str().unwrap()),
            ],
        )
    }

    /// Runs `sql` on this database as the test's administrator.
    fn execute(&self, sql: &str) {
        let (server, _) = self.db.admin.rsplit_once('/').unwrap();
        postgres::Client::connect(&format!("{server}/{}", self.db.name), postgres::NoTls)
            .unwrap()
            .batch_execute(sql)
            .unwrap();
    }

    fn count(&self, sql: &str) -> i64 {
        let (server, _) = self.db.admin.rsplit_once('/').unwrap();
        postgres::Client::connect(&format!("{server}/{}", self.db.name), postgres::NoTls)
            .unwrap()
            .query_one(sql, &[])
            .unwrap()
            .get(0)
    }
}

/// Sends the same body to both nodes at the same moment; both answers.
fn at_once(a: &Server, b: &Server, outbox: &[u8]) -> [common::Response; 2] {
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let runs = [a, b].map(|node| {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                node.sync(outbox)
            })
        });
        runs.map(|run| run.join().unwrap())
    })
}

#[test]
fn a_case_its_upload_and_the_courier_hop_between_two_nodes() {
    let Some(database) = Database::create() else {
        return;
    };
    let vault_dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(vault_dir.path(), "vp-test");
    let card = vault.card.to_json();
    let (a, b) = (database.node(&card, None), database.node(&card, None));
    for node in [&a, &b] {
        let health = node.get("/healthz");
        assert_eq!((health.status, &health.body[..]), (200, &b"ok\n"[..]));
    }

    // An upload started on one node is resumed on the other.
    let melder = Melder::new();
    let plaintext: Vec<u8> = (0..(2 * MIB + 777)).map(|i| (i % 251) as u8).collect();
    let (file, mut streamed) = seal_attachment(
        &plaintext,
        &[vault.recipient(), melder.derived.reply_recipient().into()],
    );
    let id = a.create_upload(file.len()).json()["upload"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a.send_chunk(&id, 0, &file[..MIB]).status, 200);
    let status = b.post_json("/api/v1/uploads/status", &json!({ "upload": id }));
    assert_eq!(status.json()["received"], MIB, "node b sees what a stored");
    for (offset, piece) in file.chunks(MIB).enumerate().skip(1) {
        let answer = b.send_chunk(&id, offset * MIB, piece);
        assert_eq!(answer.status, 200, "{}", answer.error());
    }
    let status = a.post_json("/api/v1/uploads/status", &json!({ "upload": id }));
    assert_eq!(status.json()["complete"], true);

    // The report through b claims it; a retry through a is the same report.
    streamed.upload = meldkluis::format::ids::UploadId::parse(&id).unwrap();
    let mut envelope = melder.report_envelope("Er verdwijnt geld uit de kas.", &["vp-test"]);
    envelope.attachments.push(Attachment::streamed(
        "kas.bin",
        "application/octet-stream",
        streamed,
    ));
    let sealed = envelope
        .seal(&[vault.recipient(), melder.derived.reply_recipient().into()])
        .unwrap();
    let report: Value = json!({
        "counsellors": ["vp-test"],
        "lookup_key": melder.derived.lookup_key.to_hex(),
        "message": STANDARD.encode(sealed),
        "uploads": [id],
    });
    // Its proof of work comes from a's challenge (one key on both nodes).
    let pow = a.pow();
    let body = serde_json::to_vec(&report).unwrap();
    let headers = [
        ("Content-Type", "application/json"),
        ("Meldkluis-Pow", &pow),
    ];
    let created = b.request_with("POST", "/api/v1/reports", &headers, &body);
    assert_eq!(created.status, 201, "{}", created.error());
    assert_eq!(a.post_json("/api/v1/reports", &report).status, 200);

    // Read on a, followed up on a, read on b.
    let thread = a
        .post_json("/api/v1/thread", &melder.thread_request())
        .json();
    assert_eq!(melder.read_thread(&thread).len(), 1);
    let follow = melder.follow_up_request("Ook in december.", &[vault.recipient()]);
    assert_eq!(a.post_json("/api/v1/thread/messages", &follow).status, 201);
    let thread = b
        .post_json("/api/v1/thread", &melder.thread_request())
        .json();
    let envelopes = melder.read_thread(&thread);
    assert_eq!(
        envelopes.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [Kind::Report, Kind::FollowUp]
    );

    // The same sync request to both nodes at once: both answer with the
    // inbox, which holds the report (with its attachment) and the follow-up.
    let outbox = commands::outbox(&mut vault).unwrap();
    let answers = at_once(&a, &b, &outbox);
    for answer in &answers {
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    let summary = commands::import(&mut vault, &answers[0].body).unwrap();
    assert_eq!((summary.new_cases, summary.new_messages), (1, 2));
    assert_eq!(
        commands::import(&mut vault, &answers[1].body)
            .unwrap()
            .new_messages,
        0
    );

    // A reply in an outbox sent to both at once is stored once.
    let case = *vault.state.cases.keys().next().unwrap();
    commands::send(
        &mut vault,
        &case,
        "Dank u; wij zoeken het uit.",
        None,
        meldkluis::format::day::Day::today(),
    )
    .unwrap();
    let outbox = commands::outbox(&mut vault).unwrap();
    let answers = at_once(&a, &b, &outbox);
    for answer in &answers {
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    assert_eq!(
        database.count("SELECT count(*) FROM messages WHERE kind = 'reply'"),
        1
    );
    let summary = commands::import(&mut vault, &answers[1].body).unwrap();
    assert_eq!(summary.confirmed, 1);
    let thread = a
        .post_json("/api/v1/thread", &melder.thread_request())
        .json();
    let envelopes = melder.read_thread(&thread);
    assert_eq!(envelopes.len(), 3);
    assert_eq!(envelopes[2].text, "Dank u; wij zoeken het uit.");
}

#[test]
fn a_node_killed_again_and_again_loses_no_acknowledged_report() {
    let Some(database) = Database::create() else {
        return;
    };
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-test");
    let card = vault.card.to_json();
    let mut a = database.node(&card, None);
    let b = database.node(&card, None);
    let recipient = vault.recipient();
    let mut acknowledged: Vec<Melder> = Vec::new();
    let mut refused_in_flight = 0;
    for round in 0..5u64 {
        // Reports to a, as fast as they are accepted, until it dies (at
        // most 40 a round); then a starts again on the same database.
        let port = a.port;
        let recipient = recipient.clone();
        let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = progress.clone();
        let submitter = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut lost = 0;
            for _ in 0..40 {
                let melder = Melder::new();
                let envelope = melder.report_envelope("Melding onder belasting.", &["vp-test"]);
                let request = melder.report_request(&envelope, std::slice::from_ref(&recipient));
                match post_or_none(port, "/api/v1/reports", &request) {
                    Some(201) => {
                        acked.push(melder);
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Some(_) | None => {
                        lost += 1;
                        break;
                    }
                }
            }
            (acked, lost)
        });
        // Killed after at least two acknowledgements this round (however
        // slow the machine), at a moment that differs per round.
        let waiting = std::time::Instant::now();
        while progress.load(std::sync::atomic::Ordering::SeqCst) < 2
            && waiting.elapsed() < std::time::Duration::from_secs(60)
            && !submitter.is_finished()
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(97 * round % 300));
        a.signal("KILL");
        let (acked, lost) = submitter.join().unwrap();
        acknowledged.extend(acked);
        refused_in_flight += lost;
        let dir = std::mem::replace(&mut a.dir, tempfile::tempdir().unwrap());
        a.kill();
        a = database.node(&card, Some(dir));
    }
    assert!(
        acknowledged.len() >= 5,
        "the load was real: {}",
        acknowledged.len()
    );
    // Every acknowledged report is there, through either node, and decrypts.
    for (i, melder) in acknowledged.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        let thread = node.post_json("/api/v1/thread", &melder.thread_request());
        assert_eq!(thread.status, 200, "acknowledged report {i} is missing");
        let envelopes = melder.read_thread(&thread.json());
        assert_eq!(envelopes[0].text, "Melding onder belasting.");
    }
    println!(
        "5 kills of one node: {} acknowledged reports all present and readable on both \
         nodes; {refused_in_flight} request(s) cut by a kill",
        acknowledged.len()
    );
}

/// POSTs `body` with a fresh proof of work; the status, or `None` when the
/// node is gone (killed between or during the requests).
fn post_or_none(port: u16, path: &str, body: &Value) -> Option<u16> {
    use std::io::{Read, Write};
    let pow = common::pow_for_port(port)?;
    let body = serde_json::to_vec(body).unwrap();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nMeldkluis-Pow: {pow}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(&body).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let line = String::from_utf8_lossy(&answer[..answer.len().min(16)]).into_owned();
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A SQLite store in `data` (`meldkluis.sqlite`) with 1,000 cases (lookup
/// hashes made up, counsellor `vp-a`), 100 follow-ups, 20 attachments of
/// 1.5 MiB in two pieces each, delivery numbers, a sync row and a reply
/// that closed a case; the cases' lookup hashes and the uploads.
fn thousand_cases(
    data: &std::path::Path,
) -> (
    Vec<meldkluis::format::derive::LookupHash>,
    Vec<meldkluis::format::ids::UploadId>,
) {
    use meldkluis::format::agefile::AgeBlob;
    use meldkluis::format::derive::LookupHash;
    use meldkluis::format::ids::UploadId;
    use meldkluis::server::store::{OutboxWrite, Store};
    std::fs::create_dir_all(data).unwrap();
    let sqlite = Store::open(&data.join("meldkluis.sqlite")).unwrap();
    let recipient = age::x25519::Identity::generate().to_public();
    let blob = |n: u32| {
        // Padded as a browser pads (the store accepts nothing else).
        let text = format!("{:<4096}", format!("melding {n}"));
        AgeBlob::parse_message(age::encrypt(&recipient, text.as_bytes()).unwrap()).unwrap()
    };
    // 20 attachments of 1.5 MiB, in two pieces each.
    let uploads: Vec<UploadId> = (0..20u8)
        .map(|n| {
            let id = UploadId::random();
            let bytes: Vec<u8> = (0..3 * MIB / 2).map(|i| (i as u8) ^ n).collect();
            assert!(sqlite.create_upload(id, bytes.len() as u64).unwrap());
            for (i, piece) in bytes.chunks(MIB).enumerate() {
                sqlite
                    .append_chunk(id, (i * MIB) as u64, piece.to_vec(), u64::MAX)
                    .unwrap();
            }
            assert!(sqlite.complete_upload(id).unwrap());
            id
        })
        .collect();
    let lookups: Vec<LookupHash> = (0..1000u32)
        .map(|n| {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&n.to_be_bytes());
            hash[4] = 0x5a;
            LookupHash(hash)
        })
        .collect();
    // Eight writers at once: the SQLite store commits them in groups.
    std::thread::scope(|scope| {
        for part in 0..8 {
            let (sqlite, lookups, uploads, blob) = (&sqlite, &lookups, &uploads, &blob);
            scope.spawn(move || {
                for (n, lookup) in lookups.iter().enumerate().skip(part).step_by(8) {
                    let claimed = if n < 20 { vec![uploads[n]] } else { vec![] };
                    sqlite
                        .create_case(*lookup, vec!["vp-a".into()], blob(n as u32), claimed)
                        .unwrap();
                    if n % 10 == 0 {
                        sqlite
                            .add_follow_up(*lookup, blob(100_000 + n as u32), vec![])
                            .unwrap();
                    }
                }
            });
        }
    });
    sqlite.assign_deliveries("vp-a").unwrap();
    let first = sqlite.inbox("vp-a", 0, |_| true).unwrap();
    let reply = OutboxWrite {
        id: meldkluis::format::ids::MessageId::random(),
        case: first[0].case,
        body: blob(999_999),
        kind: meldkluis::format::bundle::OutboxKind::Close,
        introduce: Vec::new(),
    };
    sqlite
        .apply_outbox("vp-a", 7, &[7; 32], 3, vec![reply])
        .unwrap();
    (lookups, uploads)
}

/// `meldkluis migrate-store ARGS… --data DATA`, with the test database's
/// password file.
fn migrate_store(
    database: &Database,
    args: &[&str],
    data: &std::path::Path,
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_meldkluis"))
        .arg("migrate-store")
        .args(args)
        .arg("--data")
        .arg(data)
        .env("MELDKLUIS_DATABASE_PASSWORD_FILE", &database.password_file)
        .output()
        .unwrap()
}

#[test]
fn migrate_store_moves_a_thousand_cases_with_attachments_and_proves_it() {
    use meldkluis::server::store::Store;
    let Some(database) = Database::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (lookups, uploads) = thousand_cases(&data);

    let migrate = |url: &str| migrate_store(&database, &["--to", url], &data);
    let started = std::time::Instant::now();
    let output = migrate(&database.url);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (table, rows) in [("cases", 1000), ("messages", 1101), ("uploads", 20)] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(table))
            .unwrap();
        assert!(line.contains(&format!(" {rows} row(s)")), "{line}");
    }
    assert!(stdout.contains("upload_chunks") && stdout.contains("sha256"));
    println!("migrate-store: {took:?}\n{stdout}");

    // Every thread, inbox entry and attachment reads the same from both.
    let password = std::fs::read_to_string(&database.password_file).unwrap();
    let postgres = Store::open_postgres(&database.url, Some(password.trim())).unwrap();
    let sqlite = Store::open(&data.join("meldkluis.sqlite")).unwrap();
    for lookup in &lookups {
        let (a, b) = (
            sqlite.thread(lookup).unwrap().unwrap(),
            postgres.thread(lookup).unwrap().unwrap(),
        );
        assert_eq!(a.counsellors, b.counsellors);
        let ids = |t: &meldkluis::server::store::Thread| {
            t.messages
                .iter()
                .map(|m| (m.id, m.body.clone(), m.day))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
    }
    let inbox = |store: &Store| {
        store
            .inbox("vp-a", 0, |_| true)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.id, e.attachments))
            .collect::<Vec<_>>()
    };
    assert_eq!(inbox(&sqlite), inbox(&postgres));
    for id in &uploads {
        for start in [0, MIB as u64] {
            assert_eq!(
                sqlite.upload_chunk(id, start).unwrap(),
                postgres.upload_chunk(id, start).unwrap()
            );
        }
    }
    assert_eq!(
        sqlite
            .closed_day(
                &lookups
                    .iter()
                    .find(|l| sqlite.closed_day(l).unwrap().is_some())
                    .copied()
                    .unwrap()
            )
            .unwrap(),
        postgres
            .closed_day(
                &lookups
                    .iter()
                    .find(|l| postgres.closed_day(l).unwrap().is_some())
                    .copied()
                    .unwrap()
            )
            .unwrap()
    );
    drop(postgres);

    // A second copy into the same database is refused and changes nothing.
    let again = migrate(&database.url);
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("already holds"), "{error}");
    assert_eq!(database.count("SELECT count(*) FROM cases"), 1000);
}

/// Every row of every table of a SQLite store, in key order, and its
/// schema: what two stores must share to be the same.
fn sqlite_contents(path: &std::path::Path) -> Vec<(String, Vec<Vec<rusqlite::types::Value>>)> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut contents = Vec::new();
    let schema: Vec<Vec<rusqlite::types::Value>> = db
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name")
        .unwrap()
        .query_map([], |row| (0..4).map(|i| row.get(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    contents.push(("schema".to_string(), schema));
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    contents.push((format!("version {version}, {mode}"), vec![]));
    for (table, key) in [
        ("cases", "id"),
        ("case_counsellors", "case_id, counsellor"),
        ("messages", "id"),
        ("deliveries", "counsellor, seq"),
        ("counsellor_sync", "counsellor"),
        ("uploads", "id"),
        ("upload_chunks", "upload_id, start"),
    ] {
        let mut statement = db
            .prepare(&format!("SELECT * FROM {table} ORDER BY {key}"))
            .unwrap();
        let width = statement.column_count();
        let rows = statement
            .query_map([], |row| (0..width).map(|i| row.get(i)).collect())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        contents.push((table.to_string(), rows));
    }
    contents
}

/// The table lines `migrate-store` printed (name, rows, hash).
fn copied_tables(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.contains(" row(s)  sha256 "))
        .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn migrate_store_back_gives_the_same_sqlite_store_that_a_server_then_serves() {
    use meldkluis::review::commands;
    let Some(database) = Database::create() else {
        return;
    };
    let vault_dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(vault_dir.path(), "vp-test");
    let card = vault.card.to_json();
    let with_card = || {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/vp-test.json"), &card).unwrap();
        dir
    };

    // The original: 1,000 cases through the store, then a real report with
    // a streamed attachment and a follow-up through a server on it.
    let original = with_card();
    let data = original.path().join("data");
    thousand_cases(&data);
    let mut server = Server::start_in(original);
    let melder = Melder::new();
    let plaintext: Vec<u8> = (0..(MIB + 4321)).map(|i| (i % 253) as u8).collect();
    let (file, mut streamed) = seal_attachment(
        &plaintext,
        &[vault.recipient(), melder.derived.reply_recipient().into()],
    );
    let id = server.upload(&file, MIB / 2);
    streamed.upload = meldkluis::format::ids::UploadId::parse(&id).unwrap();
    let mut envelope = melder.report_envelope("De offertes zijn vooraf gedeeld.", &["vp-test"]);
    envelope.attachments.push(Attachment::streamed(
        "offertes.pdf",
        "application/pdf",
        streamed,
    ));
    let sealed = envelope
        .seal(&[vault.recipient(), melder.derived.reply_recipient().into()])
        .unwrap();
    let report = json!({
        "counsellors": ["vp-test"],
        "lookup_key": melder.derived.lookup_key.to_hex(),
        "message": STANDARD.encode(sealed),
        "uploads": [id],
    });
    assert_eq!(server.post_json("/api/v1/reports", &report).status, 201);
    let follow = melder.follow_up_request("Ook bij de tweede aanbesteding.", &[vault.recipient()]);
    assert_eq!(
        server.post_json("/api/v1/thread/messages", &follow).status,
        201
    );
    let original = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    server.kill();

    // There: SQLite → PostgreSQL.
    let there = migrate_store(&database, &["--to", &database.url], &data);
    assert!(
        there.status.success(),
        "{}",
        String::from_utf8_lossy(&there.stderr)
    );

    // And back, into a data directory that does not exist yet.
    let back_dir = with_card();
    let back = back_dir.path().join("data");
    let started = std::time::Instant::now();
    let output = migrate_store(&database, &["--from", &database.url], &back);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("migrate-store --from (1,000 cases, 21 attachments): {took:?}\n{stdout}");
    // The same counts and hashes on the way there and back, and the same
    // rows, schema, version and journal mode as the original file.
    assert_eq!(copied_tables(&there.stdout), copied_tables(&output.stdout));
    assert_eq!(copied_tables(&output.stdout).len(), 7);
    assert!(
        stdout.contains("cases                   1001 row(s)"),
        "{stdout}"
    );
    let new_file = back.join("meldkluis.sqlite");
    let leftovers: Vec<_> = std::fs::read_dir(&back)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        leftovers,
        ["meldkluis.sqlite"],
        "nothing else is left beside it"
    );

    // Hostile: a second copy back into the now filled store is refused and
    // leaves it byte for byte as it was.
    let before = std::fs::read(&new_file).unwrap();
    let again = migrate_store(&database, &["--from", &database.url], &back);
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(error.contains("already exists and is not empty"), "{error}");
    assert!(std::fs::read(&new_file).unwrap() == before);
    assert_eq!(std::fs::read_dir(&back).unwrap().count(), 1);

    let contents = sqlite_contents(&new_file);
    assert_eq!(contents[1].0, "version 4, wal");
    assert!(
        contents == sqlite_contents(&data.join("meldkluis.sqlite")),
        "the copy back differs"
    );

    // A real server on the copy: the melder's thread, and the attachment
    // through the courier to the counsellor, byte for byte.
    let server = Server::start_in(back_dir);
    let thread = server.post_json("/api/v1/thread", &melder.thread_request());
    assert_eq!(thread.status, 200);
    let envelopes = melder.read_thread(&thread.json());
    assert_eq!(
        envelopes
            .iter()
            .map(|e| e.text.as_str())
            .collect::<Vec<_>>(),
        [
            "De offertes zijn vooraf gedeeld.",
            "Ook bij de tweede aanbesteding."
        ]
    );
    let summary = common::sync(&server, &mut vault);
    assert_eq!((summary.new_cases, summary.new_messages), (1, 2));
    let case = *vault.state.cases.keys().next().unwrap();
    let export = tempfile::tempdir().unwrap();
    let exported = commands::export(&vault, &case, &export.path().join("out")).unwrap();
    assert_eq!(exported.written.len(), 1, "{:?}", exported.refused.len());
    assert!(std::fs::read(&exported.written[0]).unwrap() == plaintext);
    drop(server);
    drop(original);

    // Hostile: an unreachable database is a clear error and leaves no file.
    let nowhere = tempfile::tempdir().unwrap();
    let output = migrate_store(
        &database,
        &["--from", "postgres://meldkluis@127.0.0.1:1/meldkluis"],
        &nowhere.path().join("data"),
    );
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        error.contains(
            "cannot use the PostgreSQL database postgres://meldkluis@127.0.0.1:1/meldkluis"
        ),
        "{error}"
    );
    assert!(!nowhere.path().join("data/meldkluis.sqlite").exists());
    assert_eq!(
        std::fs::read_dir(nowhere.path()).unwrap().count(),
        0,
        "no file, no directory"
    );

    // Hostile: a database without Meldkluis rows (a wrong URL) is refused
    // and leaves no file.
    let empty = Database::create().unwrap();
    let output = migrate_store(
        &empty,
        &["--from", &empty.url],
        &nowhere.path().join("data"),
    );
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(error.contains("holds no Meldkluis data"), "{error}");
    assert_eq!(
        std::fs::read_dir(nowhere.path().join("data"))
            .unwrap()
            .count(),
        0
    );

    // Hostile: a copy that fails half-way leaves no half file behind. Here
    // the last table shows one attachment piece twice, which the new
    // file's key refuses after six tables were written.
    database.execute(
        "ALTER TABLE upload_chunks RENAME TO upload_chunks_real;
         CREATE VIEW upload_chunks AS
           SELECT * FROM upload_chunks_real
           UNION ALL (SELECT * FROM upload_chunks_real ORDER BY upload_id, start LIMIT 1)",
    );
    let half = tempfile::tempdir().unwrap();
    let output = migrate_store(
        &database,
        &["--from", &database.url],
        &half.path().join("data"),
    );
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        error.contains("UNIQUE constraint failed: upload_chunks"),
        "{error}"
    );
    println!("a copy back that failed half-way: {error}");
    assert_eq!(
        std::fs::read_dir(half.path().join("data")).unwrap().count(),
        0,
        "the partial file and its journal are gone"
    );
}

/// A node's retention round settles the days before today at start
/// (docs/postgresql.md, "Row order: settling"): yesterday's rows, written
/// one transaction each, end with one transaction id.
#[test]
fn a_node_settles_the_days_before_today_when_it_starts() {
    let Some(database) = Database::create() else {
        return;
    };
    let password = std::fs::read_to_string(&database.password_file).unwrap();
    drop(
        meldkluis::server::store::Store::open_postgres(&database.url, Some(password.trim()))
            .unwrap(),
    );
    let today = meldkluis::format::day::Day::today();
    let yesterday = meldkluis::format::day::Day(today.0.previous_day().unwrap()).to_string();
    for _ in 0..40 {
        // One transaction a case: its own xmin.
        database.execute(&format!(
            "WITH c AS (INSERT INTO cases (id, lookup_hash, day)
                        VALUES (decode(md5(random()::text), 'hex'),
                                sha256(random()::text::bytea), '{yesterday}') RETURNING id),
                  b AS (SELECT decode(repeat(md5(random()::text), 256), 'hex') AS body)
             INSERT INTO messages (id, case_id, position, author, kind, day, size,
                                   body_sha256, body)
             SELECT decode(md5(random()::text), 'hex'), c.id, 0, 'melder', 'report',
                    '{yesterday}', 4096, sha256(b.body), b.body FROM c, b"
        ));
    }
    let xmins = || {
        database.count(&format!(
            "SELECT count(DISTINCT x) FROM (SELECT xmin::text FROM cases WHERE day = '{yesterday}'
               UNION ALL SELECT xmin::text FROM messages WHERE day = '{yesterday}') s(x)"
        ))
    };
    assert_eq!(xmins(), 40);
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-test");
    let node = database.node(&vault.card.to_json(), None);
    let waiting = std::time::Instant::now();
    while xmins() != 1 && waiting.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(xmins(), 1, "{}", node.log_text());
    assert_eq!(database.count("SELECT count(*) FROM messages"), 40);
}

#[test]
fn check_config_connects_and_never_shows_the_password() {
    let Some(database) = Database::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let vault = make_vault(dir.path(), "vp-test");
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/vp-test.json"), vault.card.to_json()).unwrap();
    let check = |password_file: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_meldkluis"))
            .args(["check-config", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .arg("--keys")
            .arg(dir.path().join("keys"))
            .env("MELDKLUIS_DATABASE_URL", &database.url)
            .env("MELDKLUIS_DATABASE_PASSWORD_FILE", password_file)
            .output()
            .unwrap()
    };
    let output = check(&database.password_file);
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("PostgreSQL (schema version 4)"), "{text}");
    assert!(
        text.contains(&database.url),
        "the URL, which holds no password: {text}"
    );
    let password = std::fs::read_to_string(&database.password_file).unwrap();
    assert!(!text.contains(password.trim()), "{text}");
    // The test server runs with the settings docs/postgresql.md asks for:
    // no warning about PostgreSQL's logging.
    assert!(
        !text.contains("PostgreSQL has") && !text.contains("PostgreSQL logs"),
        "{text}"
    );

    // A wrong password is a problem, named without the password.
    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "niet-het-wachtwoord\n").unwrap();
    let output = check(wrong.to_str().unwrap());
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("database_url: cannot use the PostgreSQL database"),
        "{text}"
    );
    assert!(!text.contains("niet-het-wachtwoord"), "{text}");
}

#[test]
fn healthz_says_unavailable_when_the_database_is_gone() {
    let Some(database) = Database::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let vault = make_vault(dir.path(), "vp-test");
    let node = database.node(&vault.card.to_json(), None);
    assert_eq!(node.get("/healthz").status, 200);
    database
        .db
        .admin_client()
        .batch_execute(&format!(
            "DROP DATABASE \"{}\" WITH (FORCE)",
            database.db.name
        ))
        .unwrap();
    for _ in 0..2 {
        let health = node.get("/healthz");
        assert_eq!(
            (health.status, &health.body[..]),
            (503, &b"unavailable\n"[..])
        );
    }
}
