//! What the data directory tells about *when* things arrived (issue 14,
//! protocol.md §7a): file-system times and row orders, measured on a real
//! server after real submissions, not assumed.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{Melder, Server, make_vault, seal_attachment};
use meldkluis::format::envelope::Attachment;
use serde_json::json;

/// Every file and directory under `dir`, `dir` included.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(walk(&path));
        } else {
            all.push(path);
        }
    }
    all
}

/// mtime, ctime and (where the file system keeps it) birth time.
fn times(path: &Path) -> Vec<(&'static str, SystemTime)> {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let ctime =
        SystemTime::UNIX_EPOCH + Duration::new(meta.ctime() as u64, meta.ctime_nsec() as u32);
    let mut all = vec![("mtime", meta.modified().unwrap()), ("ctime", ctime)];
    if let Ok(birth) = meta.created() {
        all.push(("birth", birth));
    }
    all
}

/// One melder's report with a streamed attachment, as the page sends it.
fn report_with_attachment(server: &Server, vault: &meldkluis::review::Vault, n: usize) -> Melder {
    let melder = Melder::new();
    // Some large enough to fill SQLite's log past its checkpoint size.
    let plaintext = vec![
        n as u8;
        if n % 4 == 1 {
            5 << 20
        } else {
            20_000 + n * 1000
        }
    ];
    let (file, mut streamed) = seal_attachment(
        &plaintext,
        &[vault.recipient(), melder.derived.reply_recipient()],
    );
    let upload = server.upload(&file, 1 << 20);
    streamed.upload = meldkluis::format::ids::UploadId::parse(&upload).unwrap();
    let mut envelope = melder.report_envelope(&format!("Melding {n}."), &["vp-a"]);
    envelope.attachments.push(Attachment::streamed(
        "scan.pdf",
        "application/pdf",
        streamed,
    ));
    let mut request = melder.report_request(&envelope, &[vault.recipient()]);
    request["uploads"] = json!([upload]);
    let answer = server.post_json("/api/v1/reports", &request);
    assert_eq!(answer.status, 201, "{}", answer.error());
    melder
}

fn server() -> (Server, meldkluis::review::Vault, tempfile::TempDir) {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    (server, vault, vault_dir)
}

/// Submissions spread over a (compressed) day: reports with attachments
/// and follow-ups, 300 ms apart. Afterwards no time of any file or
/// directory under the data directory falls among them: each is from
/// before the first (start-up) or from the last write. So none of them
/// dates any one submission but the last, which the most recent write of
/// anything always dates.
#[test]
fn no_file_time_under_the_data_directory_dates_a_submission() {
    let (server, vault, _v) = server();
    std::thread::sleep(Duration::from_millis(50));
    let mut moments = Vec::new();
    let mut melders = Vec::new();
    for n in 0..8 {
        std::thread::sleep(Duration::from_millis(300));
        moments.push(SystemTime::now());
        melders.push(report_with_attachment(&server, &vault, n));
        // Look-ups in between (reads must leave no time either).
        std::thread::sleep(Duration::from_millis(100));
        let thread = server.post_json("/api/v1/thread", &melders[n].thread_request());
        assert_eq!(thread.status, 200);
        if n % 3 == 2 {
            std::thread::sleep(Duration::from_millis(300));
            moments.push(SystemTime::now());
            let follow_up = melders[n - 1].follow_up_request("Nog iets.", &[vault.recipient()]);
            let answer = server.post_json("/api/v1/thread/messages", &follow_up);
            assert_eq!(answer.status, 201, "{}", answer.error());
        }
    }
    let last = *moments.last().unwrap();
    let first = moments[0];
    let mut seen = Vec::new();
    for path in walk(&server.data_dir()) {
        for (kind, time) in times(&path) {
            seen.push(format!("{kind} {:?} {}", time, path.display()));
            assert!(
                time < first || time >= last,
                "{kind} of {} is {:?}: between the first submission ({first:?}) and the \
                 last ({last:?}), so it dates one of them",
                path.display(),
                time
            );
        }
    }
    // The test saw the files it must judge: the database and its log.
    let names: Vec<String> = walk(&server.data_dir())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "meldkluis.sqlite"), "{names:?}");
    assert!(names.iter().any(|n| n == "inbox-signing.key"), "{names:?}");
    assert_eq!(
        names.len(),
        5,
        "the directory, the database's three files and the inbox key (made at \
         first start), nothing per upload: {names:?}"
    );
    println!("{}", seen.join("\n"));
}

/// Kendall's tau between arrival order and the order of `values`
/// (arrival index → value): near 0 when unrelated, ±1 when one follows
/// the other.
fn tau<T: Ord>(values: &[T]) -> f64 {
    let n = values.len();
    let (mut concordant, mut discordant) = (0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            match values[i].cmp(&values[j]) {
                std::cmp::Ordering::Less => concordant += 1,
                std::cmp::Ordering::Greater => discordant += 1,
                std::cmp::Ordering::Equal => {}
            }
        }
    }
    (concordant - discordant) as f64 / ((n * (n - 1) / 2) as f64)
}

/// Rows as (arrival index, an ordering key), as `check` takes them.
type Order = Vec<(usize, Vec<u8>)>;

/// Where in `file` each of `pieces` lies: the offset of its middle, found
/// by indexing every 8-byte window of up to 4 KiB from the middle of each
/// piece and scanning the file in 8-byte steps (so the 4-byte header of an
/// overflow page cannot hide a piece).
fn places_in_file(file: &[u8], pieces: &[&[u8]]) -> Vec<Option<usize>> {
    let mut windows = std::collections::HashMap::new();
    for (i, piece) in pieces.iter().enumerate() {
        let middle = piece.len() / 2;
        for k in middle..(middle + 4096).min(piece.len() - 8) {
            windows.insert(
                u64::from_le_bytes(piece[k..k + 8].try_into().unwrap()),
                (i, k - middle),
            );
        }
    }
    let mut places = vec![None; pieces.len()];
    for at in (0..file.len().saturating_sub(8)).step_by(8) {
        let window = u64::from_le_bytes(file[at..at + 8].try_into().unwrap());
        if let Some(&(i, past_middle)) = windows.get(&window) {
            places[i].get_or_insert(at - past_middle);
        }
    }
    places
}

/// Forty reports with attachments, in a known order. Then no stored order
/// of `cases`, `messages`, `uploads` or the inbox numbers follows it:
/// there is no rowid at all, the order a table is read in (its key) is
/// random, and every column either is the same for all (the day) or is
/// unrelated to arrival (|tau| < 0.45, about four standard deviations of
/// a random order of 40). The inbox still delivers every message once.
#[test]
fn no_column_or_row_order_follows_arrival_within_a_day() {
    let (server, mut vault, _v) = server();
    let count = 40;
    let melders: Vec<Melder> = (0..count)
        .map(|n| report_with_attachment(&server, &vault, n))
        .collect();
    // The lookup hash ties a stored case to the arrival order the test knows.
    let arrival: Vec<Vec<u8>> = melders
        .iter()
        .map(|m| m.derived.lookup_key.hash().0.to_vec())
        .collect();
    let index_of = |hash: &[u8]| arrival.iter().position(|h| h == hash).unwrap();

    // Sync once: inbox numbers are given now.
    let outbox = meldkluis::review::commands::outbox(&mut vault).unwrap();
    let answer = server.sync(&outbox);
    assert_eq!(answer.status, 200);
    let summary = meldkluis::review::commands::import(&mut vault, &answer.body).unwrap();
    assert_eq!(summary.new_messages, count, "every message once");
    assert_eq!(summary.attachments, count);

    let db = rusqlite::Connection::open(server.data_dir().join("meldkluis.sqlite")).unwrap();
    for table in [
        "cases",
        "messages",
        "uploads",
        "case_counsellors",
        "deliveries",
    ] {
        let error = db
            .prepare(&format!("SELECT rowid FROM {table}"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("no such column"), "{table} has a rowid");
    }
    // Each row as (arrival index, its columns), in the order SQLite reads
    // the table.
    let case_rows: Vec<(usize, Vec<u8>, String)> = db
        .prepare("SELECT lookup_hash, id, day FROM cases")
        .unwrap()
        .query_map([], |r| {
            Ok((index_of(&r.get::<_, Vec<u8>>(0)?), r.get(1)?, r.get(2)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let case_arrival = |case: &[u8]| {
        case_rows
            .iter()
            .find(|(_, id, _)| id == case)
            .map(|(i, _, _)| *i)
            .unwrap()
    };
    let mut report = Vec::new();
    let mut check = |what: &str, order: Vec<(usize, Vec<u8>)>| {
        // tau of the arrival index, read in this order.
        let mut sorted = order.clone();
        sorted.sort_by(|a, b| a.1.cmp(&b.1));
        let arrival_in_order: Vec<usize> = sorted.iter().map(|(i, _)| *i).collect();
        let t = tau(&arrival_in_order);
        report.push(format!("{what}: tau {t:+.2}"));
        assert!(t.abs() < 0.45, "{what} follows arrival: tau {t}");
    };
    let scan = |rows: Vec<usize>| -> Vec<(usize, Vec<u8>)> {
        rows.iter()
            .enumerate()
            .map(|(pos, i)| (*i, (pos as u64).to_be_bytes().to_vec()))
            .collect()
    };
    check(
        "cases, as read",
        scan(case_rows.iter().map(|r| r.0).collect()),
    );
    check(
        "cases.id",
        case_rows.iter().map(|r| (r.0, r.1.clone())).collect(),
    );
    assert!(case_rows.iter().all(|r| r.2 == case_rows[0].2), "one day");

    let message_rows: Vec<(usize, Vec<u8>, i64, Vec<u8>)> = db
        .prepare("SELECT case_id, id, position, body_sha256 FROM messages")
        .unwrap()
        .query_map([], |r| {
            Ok((
                case_arrival(&r.get::<_, Vec<u8>>(0)?),
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    check(
        "messages, as read",
        scan(message_rows.iter().map(|r| r.0).collect()),
    );
    check(
        "messages.id",
        message_rows.iter().map(|r| (r.0, r.1.clone())).collect(),
    );
    check(
        "messages.body_sha256",
        message_rows.iter().map(|r| (r.0, r.3.clone())).collect(),
    );
    assert!(
        message_rows.iter().all(|r| r.2 == 0),
        "position counts within a case only"
    );

    let upload_rows: Vec<(usize, Vec<u8>)> = db
        .prepare("SELECT m.case_id, u.id FROM uploads u JOIN messages m ON m.id = u.message_id")
        .unwrap()
        .query_map([], |r| {
            Ok((case_arrival(&r.get::<_, Vec<u8>>(0)?), r.get(1)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(upload_rows.len(), count);
    let plain_scan: Vec<Vec<u8>> = db
        .prepare("SELECT id FROM uploads")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    check(
        "uploads, as read",
        plain_scan
            .iter()
            .enumerate()
            .map(|(pos, id)| {
                let i = upload_rows.iter().find(|r| &r.1 == id).unwrap().0;
                (i, (pos as u64).to_be_bytes().to_vec())
            })
            .collect(),
    );
    check("uploads.id", upload_rows.clone());

    let delivery_rows: Vec<(usize, i64)> = db
        .prepare("SELECT m.case_id, d.seq FROM deliveries d JOIN messages m ON m.id = d.message_id")
        .unwrap()
        .query_map([], |r| {
            Ok((case_arrival(&r.get::<_, Vec<u8>>(0)?), r.get(1)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(delivery_rows.len(), count);
    check(
        "deliveries.seq",
        delivery_rows
            .iter()
            .map(|(i, seq)| (*i, (*seq as u64).to_be_bytes().to_vec()))
            .collect(),
    );
    // Where each message's body and each attachment's bytes lie in a file:
    // the live database, and a backup made by `meldkluis backup`.
    let backup_dir = tempfile::tempdir().unwrap();
    let backup = backup_dir.path().join("backup.sqlite");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_meldkluis"))
        .args(["backup", backup.to_str().unwrap(), "--data"])
        .arg(server.data_dir())
        .env_remove("MELDKLUIS_CONFIG")
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let placed = |file: &Path| -> Vec<(&'static str, Order)> {
        let db = rusqlite::Connection::open(file).unwrap();
        let rows = |sql: &str| -> Vec<(usize, Vec<u8>)> {
            db.prepare(sql)
                .unwrap()
                .query_map([], |r| {
                    Ok((case_arrival(&r.get::<_, Vec<u8>>(0)?), r.get(1)?))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let bodies = rows("SELECT case_id, body FROM messages");
        let chunks = rows(
            "SELECT m.case_id, c.data FROM upload_chunks c
               JOIN uploads u ON u.id = c.upload_id JOIN messages m ON m.id = u.message_id
              WHERE c.start = 0",
        );
        assert_eq!((bodies.len(), chunks.len()), (count, count));
        let bytes = std::fs::read(file).unwrap();
        [("messages.body", bodies), ("upload_chunks.data", chunks)]
            .into_iter()
            .map(|(what, pieces)| {
                let places =
                    places_in_file(&bytes, &pieces.iter().map(|p| &p.1[..]).collect::<Vec<_>>());
                let order = pieces
                    .iter()
                    .zip(places)
                    .map(|((i, _), at)| {
                        (
                            *i,
                            (at.expect("found in the file") as u64)
                                .to_be_bytes()
                                .to_vec(),
                        )
                    })
                    .collect();
                (what, order)
            })
            .collect()
    };
    // The live file: every commit appends its overflow pages where the file
    // ends (or in freed pages), so the place follows arrival (tau 1.00).
    // Known and open (protocol.md §7a): printed, not held.
    let mut live = Vec::new();
    for (what, order) in placed(&server.data_dir().join("meldkluis.sqlite")) {
        let mut sorted = order;
        sorted.sort_by(|a, b| a.1.cmp(&b.1));
        let arrival_in_order: Vec<usize> = sorted.iter().map(|(i, _)| *i).collect();
        live.push(format!(
            "{what}, place in the live file (known, open): tau {:+.2}",
            tau(&arrival_in_order)
        ));
    }
    // A backup is written anew in key order: there it must not follow.
    for (what, order) in placed(&backup) {
        check(&format!("{what}, place in a backup"), order);
    }
    report.extend(live);
    println!("{}", report.join("\n"));
    // A second sync brings nothing again.
    let outbox = meldkluis::review::commands::outbox(&mut vault).unwrap();
    let answer = server.sync(&outbox);
    let summary = meldkluis::review::commands::import(&mut vault, &answer.body).unwrap();
    assert_eq!(summary.new_messages, 0);
}
