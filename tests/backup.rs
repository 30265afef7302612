//! `meldkluis backup` and `restore` against a real server under load:
//! melders submit reports and follow-ups over HTTP from several threads
//! while backups are taken. Each backup is restored into a new data
//! directory, a new server is started on it, and every submission that was
//! acknowledged before the backup began is found there, byte for byte;
//! nothing sent after it ended is. Then the refusals: not a Meldkluis file,
//! a database in use, an existing database without `--force`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Melder, Server, make_vault};
use serde_json::Value;

const COUNSELLOR: &str = "vp-backup";
const WORKERS: usize = 4;

/// One message a melder sent and the server acknowledged.
#[derive(Clone)]
struct Sent {
    /// The base64 age file as sent.
    message: String,
    sent_at: Instant,
    acked_at: Instant,
}

/// One melder's case as the melder knows it.
#[derive(Clone)]
struct Case {
    thread_request: Value,
    messages: Vec<Sent>,
}

fn meldkluis(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meldkluis"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("MELDKLUIS_CONFIG")
        .output()
        .unwrap()
}

fn words(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Submits reports (and, every third round, a follow-up on the worker's
/// previous case) until `stop`; records what was acknowledged.
fn worker(
    server: Arc<Server>,
    recipients: Vec<meldkluis::format::keys::Recipient>,
    stop: Arc<AtomicBool>,
    cases: Arc<Mutex<Vec<Case>>>,
    failures: Arc<Mutex<Vec<String>>>,
) {
    let mut round = 0usize;
    let mut mine: Option<(Melder, usize)> = None;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        if round % 3 == 0
            && let Some((melder, index)) = &mine
        {
            let request = melder.follow_up_request(&format!("aanvulling {round}"), &recipients);
            let sent_at = Instant::now();
            let answer = server.post_json("/api/v1/thread/messages", &request);
            if answer.status != 201 {
                failures
                    .lock()
                    .unwrap()
                    .push(format!("follow-up: {}", answer.status));
                continue;
            }
            cases.lock().unwrap()[*index].messages.push(Sent {
                message: request["message"].as_str().unwrap().to_string(),
                sent_at,
                acked_at: Instant::now(),
            });
            continue;
        }
        let melder = Melder::new();
        let envelope = melder.report_envelope(&format!("melding {round}"), &[COUNSELLOR]);
        let request = melder.report_request(&envelope, &recipients);
        let sent_at = Instant::now();
        let answer = server.post_json("/api/v1/reports", &request);
        if answer.status != 201 {
            failures
                .lock()
                .unwrap()
                .push(format!("report: {}", answer.status));
            continue;
        }
        let acked_at = Instant::now();
        let mut all = cases.lock().unwrap();
        all.push(Case {
            thread_request: melder.thread_request(),
            messages: vec![Sent {
                message: request["message"].as_str().unwrap().to_string(),
                sent_at,
                acked_at,
            }],
        });
        let index = all.len() - 1;
        drop(all);
        mine = Some((melder, index));
    }
}

/// The messages of a case on `server`, as base64 strings; `None` if unknown.
fn served(server: &Server, case: &Case) -> Option<Vec<String>> {
    let answer = server.post_json("/api/v1/thread", &case.thread_request);
    match answer.status {
        200 => Some(
            answer.json()["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["message"].as_str().unwrap().to_string())
                .collect(),
        ),
        404 => None,
        other => panic!("thread: {other}"),
    }
}

/// A new site directory with the card and the backup restored into `data/`.
fn restored_site(backup: &Path, card: &str) -> tempfile::TempDir {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("keys")).unwrap();
    std::fs::write(
        site.path().join("keys").join(format!("{COUNSELLOR}.json")),
        card,
    )
    .unwrap();
    let output = meldkluis(
        &["restore", backup.to_str().unwrap()],
        &site.path().join("data"),
    );
    assert!(output.status.success(), "{}", words(&output));
    site
}

/// Every message acknowledged before `began` is served, in order; nothing
/// sent after `ended` is; what is served is exactly what was sent.
fn check_snapshot(server: &Server, cases: &[Case], began: Instant, ended: Instant) -> usize {
    let mut found = 0;
    for case in cases {
        let must: Vec<&Sent> = case
            .messages
            .iter()
            .filter(|m| m.acked_at < began)
            .collect();
        let may_not: Vec<&Sent> = case.messages.iter().filter(|m| m.sent_at > ended).collect();
        match served(server, case) {
            None => assert!(must.is_empty(), "an acknowledged report is missing"),
            Some(messages) => {
                assert!(
                    messages.len() >= must.len(),
                    "an acknowledged follow-up is missing"
                );
                for (served, sent) in messages.iter().zip(&case.messages) {
                    assert_eq!(served, &sent.message, "a message changed");
                }
                assert!(messages.len() <= case.messages.len(), "unknown messages");
                for late in may_not {
                    assert!(
                        !messages.contains(&late.message),
                        "a message from after the backup"
                    );
                }
                found += messages.len();
            }
        }
    }
    found
}

#[test]
fn backups_under_load_restore_every_acknowledged_submission() {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), COUNSELLOR);
    let card = vault.card.to_json();
    let server = Arc::new(Server::start_with_cards(&[(COUNSELLOR, card.clone())]));
    let recipients = vec![vault.recipient()];
    let stop = Arc::new(AtomicBool::new(false));
    let cases: Arc<Mutex<Vec<Case>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (server, recipients, stop, cases, failures) = (
                server.clone(),
                recipients.clone(),
                stop.clone(),
                cases.clone(),
                failures.clone(),
            );
            std::thread::spawn(move || worker(server, recipients, stop, cases, failures))
        })
        .collect();

    let backups = tempfile::tempdir().unwrap();
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while cases.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "the load did not get going");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // Three backups while the workers keep submitting.
    let mut taken = Vec::new();
    for (i, wanted) in [40, 80, 120].into_iter().enumerate() {
        wait_for(wanted);
        let file = backups.path().join(format!("under-load-{i}.sqlite"));
        let began = Instant::now();
        let output = meldkluis(&["backup", file.to_str().unwrap()], &server.data_dir());
        let ended = Instant::now();
        assert!(output.status.success(), "{}", words(&output));
        assert!(
            words(&output).contains("Backup written"),
            "{}",
            words(&output)
        );
        taken.push((file, began, ended));
    }
    wait_for(140);
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.join().unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "the backups disturbed the server: {failures:?}"
    );
    let cases = cases.lock().unwrap().clone();

    // The backups really ran under load: a submission was in flight while
    // one of them was taken.
    assert!(
        taken.iter().any(|(_, began, ended)| cases
            .iter()
            .flat_map(|c| &c.messages)
            .any(|m| m.sent_at < *ended && m.acked_at > *began)),
        "no submission overlapped a backup"
    );

    for (file, began, ended) in &taken {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "a backup must be private to its owner");
        }
        let site = restored_site(file, &card);
        let restored = Server::start_in(site);
        let found = check_snapshot(&restored, &cases, *began, *ended);
        assert!(found >= 40, "only {found} messages in a backup");
        drop(restored);
    }

    // After the load: a backup holds every acknowledged submission.
    let last = backups.path().join("after-load.sqlite");
    let output = meldkluis(&["backup", last.to_str().unwrap()], &server.data_dir());
    assert!(output.status.success(), "{}", words(&output));
    let site = restored_site(&last, &card);
    let restored = Server::start_in(site);
    let everything = Instant::now();
    let total: usize = cases.iter().map(|c| c.messages.len()).sum();
    assert_eq!(
        check_snapshot(&restored, &cases, everything, everything),
        total
    );

    // The restored server takes new reports.
    let melder = Melder::new();
    let request = melder.report_request(
        &melder.report_envelope("na herstel", &[COUNSELLOR]),
        &recipients,
    );
    assert_eq!(restored.post_json("/api/v1/reports", &request).status, 201);
}

#[test]
fn restore_refuses_what_it_must_not_overwrite_or_load() {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), COUNSELLOR);
    let card = vault.card.to_json();
    let server = Server::start_with_cards(&[(COUNSELLOR, card.clone())]);
    let melder = Melder::new();
    let request = melder.report_request(
        &melder.report_envelope("eerste", &[COUNSELLOR]),
        &[vault.recipient()],
    );
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("meldkluis.backup");
    let output = meldkluis(&["backup", backup.to_str().unwrap()], &server.data_dir());
    assert!(output.status.success(), "{}", words(&output));

    // Backing up to an existing file needs --force.
    let output = meldkluis(&["backup", backup.to_str().unwrap()], &server.data_dir());
    assert!(!output.status.success());
    assert!(
        words(&output).contains("already exists"),
        "{}",
        words(&output)
    );
    let output = meldkluis(
        &["backup", "--force", backup.to_str().unwrap()],
        &server.data_dir(),
    );
    assert!(output.status.success(), "{}", words(&output));

    // A backup of a directory without a database makes none.
    let empty = scratch.path().join("empty");
    let output = meldkluis(
        &["backup", scratch.path().join("x").to_str().unwrap()],
        &empty,
    );
    assert!(!output.status.success());
    assert!(
        words(&output).contains("there is no database"),
        "{}",
        words(&output)
    );
    assert!(!empty.exists());

    // Files that are not Meldkluis databases.
    let junk = scratch.path().join("junk.sqlite");
    let foreign = scratch.path().join("foreign.sqlite");
    std::fs::write(&junk, b"SQLite format 3\0 and then garbage").unwrap();
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE notes(x); PRAGMA user_version = 7;")
        .unwrap();
    let target = scratch.path().join("target");
    for bad in [&junk, &foreign, &scratch.path().join("missing.sqlite")] {
        let output = meldkluis(&["restore", "--force", bad.to_str().unwrap()], &target);
        assert!(!output.status.success(), "{bad:?}");
        let text = words(&output);
        assert!(
            text.contains("not a Meldkluis database") || text.contains("No such file"),
            "{text}"
        );
        let left: Vec<PathBuf> = std::fs::read_dir(&target)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "a refused restore left {left:?}");
    }

    // A database newer than this program.
    let newer = scratch.path().join("newer.sqlite");
    std::fs::copy(&backup, &newer).unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999;")
        .unwrap();
    let output = meldkluis(&["restore", newer.to_str().unwrap()], &target);
    assert!(!output.status.success());
    assert!(
        words(&output).contains("newer than this program"),
        "{}",
        words(&output)
    );
    assert!(!target.join("meldkluis.sqlite").exists());

    // The live database of a running server: never, not even with --force.
    let before = server.table_counts();
    for args in [
        &["restore", backup.to_str().unwrap()][..],
        &["restore", "--force", backup.to_str().unwrap()],
    ] {
        let output = meldkluis(args, &server.data_dir());
        assert!(!output.status.success());
        assert!(
            words(&output).contains("in use by a running server"),
            "{}",
            words(&output)
        );
    }
    assert_eq!(server.table_counts(), before);

    // Stopped (killed: its WAL is left behind): refused without --force,
    // done with it, the old database kept with its WAL.
    let mut server = server;
    server.kill();
    let data = server.data_dir();
    let output = meldkluis(&["restore", backup.to_str().unwrap()], &data);
    assert!(!output.status.success());
    assert!(words(&output).contains("add --force"), "{}", words(&output));
    let output = meldkluis(&["restore", "--force", backup.to_str().unwrap()], &data);
    assert!(output.status.success(), "{}", words(&output));
    assert!(words(&output).contains("is kept as"), "{}", words(&output));
    let kept: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("meldkluis.sqlite.before-restore-"))
        .collect();
    assert!(kept.len() == 1 || kept.len() == 2, "{kept:?}");
    assert!(
        kept.iter()
            .any(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
    );
}

/// Run as another user than the database's owner, SQLite's side files would
/// lock the server out: refused. Needs root to hand the file to another user.
#[cfg(unix)]
#[test]
fn backup_refuses_to_run_as_another_user() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let database = data.join("meldkluis.sqlite");
    drop(meldkluis::server::store::Store::open(&database).unwrap());
    if std::os::unix::fs::chown(&database, Some(4242), Some(4242)).is_err() {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let target = scratch.path().join("copy.sqlite");
    let output = meldkluis(&["backup", target.to_str().unwrap()], &data);
    assert!(!output.status.success());
    assert!(
        words(&output).contains("run it as the database's owner"),
        "{}",
        words(&output)
    );
    assert!(!target.exists());
    let files: Vec<_> = std::fs::read_dir(&data).unwrap().collect();
    assert_eq!(files.len(), 1, "nothing may be created beside the database");
}

/// After a restore from an older backup, a counsellor's laptop has already
/// imported messages the server no longer has; new messages must still
/// reach it (their sequence numbers continue beyond the laptop's).
#[test]
fn new_messages_reach_a_laptop_that_is_ahead_of_a_restored_backup() {
    use meldkluis::review::commands;
    let vault_dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(vault_dir.path(), COUNSELLOR);
    let card = vault.card.to_json();
    let recipients = [vault.recipient()];
    let report = |server: &Server, text: &str| {
        let melder = Melder::new();
        let request =
            melder.report_request(&melder.report_envelope(text, &[COUNSELLOR]), &recipients);
        assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);
    };
    let server = Server::start_with_cards(&[(COUNSELLOR, card.clone())]);
    report(&server, "voor de backup");
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("old.sqlite");
    let output = meldkluis(&["backup", backup.to_str().unwrap()], &server.data_dir());
    assert!(output.status.success(), "{}", words(&output));
    // Two more reports, which the laptop imports; then the server is lost.
    report(&server, "na de backup 1");
    report(&server, "na de backup 2");
    let answer = server.sync(&commands::outbox(&mut vault).unwrap());
    assert_eq!(answer.status, 200);
    assert_eq!(
        commands::import(&mut vault, &answer.body)
            .unwrap()
            .new_messages,
        3
    );
    // The operator keeps the inbox key with the server's other secrets
    // (docs/deploy.md) and puts it back with the database: the laptop
    // pinned it and refuses inboxes signed with any other.
    let inbox_key = std::fs::read(server.data_dir().join("inbox-signing.key")).unwrap();
    drop(server);

    let site = restored_site(&backup, &card);
    std::fs::write(site.path().join("data/inbox-signing.key"), &inbox_key).unwrap();
    let restored = Server::start_in(site);
    report(&restored, "na het herstel");
    let answer = restored.sync(&commands::outbox(&mut vault).unwrap());
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let summary = commands::import(&mut vault, &answer.body).unwrap();
    assert_eq!(
        summary.new_messages, 1,
        "the report made after the restore must arrive"
    );
    assert_eq!(vault.state.cases.len(), 4);
}

#[test]
fn attachments_travel_with_the_backup_and_come_back_with_the_restore() {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), COUNSELLOR);
    let card = vault.card.to_json();
    let server = Server::start_with_cards(&[(COUNSELLOR, card.clone())]);
    let melder = Melder::new();
    let plaintext: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (file, mut streamed) = common::seal_attachment(
        &plaintext,
        &[vault.recipient(), melder.derived.reply_recipient().into()],
    );
    let id = server.upload(&file, 100_000);
    // A second upload left unfinished: a restore cannot resume it.
    let pending = server.create_upload(file.len()).json()["upload"]
        .as_str()
        .unwrap()
        .to_string();
    server.send_chunk(&pending, 0, &file[..1000]);
    streamed.upload = meldkluis::format::ids::UploadId::parse(&id).unwrap();
    let mut envelope = melder.report_envelope("Met bijlage.", &[COUNSELLOR]);
    envelope
        .attachments
        .push(meldkluis::format::envelope::Attachment::streamed(
            "scan.pdf",
            "application/pdf",
            streamed,
        ));
    let mut request = melder.report_request(&envelope, &[vault.recipient()]);
    request["uploads"] = serde_json::json!([id]);
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);

    let backups = tempfile::tempdir().unwrap();
    let target = backups.path().join("b.sqlite");
    let made = meldkluis(&["backup", target.to_str().unwrap()], &server.data_dir());
    assert!(made.status.success(), "{}", words(&made));
    // One self-contained file: the attachment is inside it, nothing beside.
    let beside: Vec<_> = std::fs::read_dir(backups.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(beside, vec!["b.sqlite".to_string()]);
    drop(server);

    let site = restored_site(&target, &card);
    let server = Server::start_in(site);
    let status = |upload: &str| {
        server.post_json(
            "/api/v1/uploads/status",
            &serde_json::json!({ "upload": upload }),
        )
    };
    assert_eq!(status(&id).json()["complete"], true);
    assert_eq!(status(&pending).error(), "unknown_upload");
    let restored = server.stored_upload(&id);
    assert_eq!(restored, file);
    assert_eq!(server.upload_files(), vec![format!("{id}.age")]);
}

/// Retention reaches the backups (issue 14): a backup holds only what the
/// database still references, attachments included, and a rotation with
/// `--keep-days` removes the older copies (and the attachment folders older
/// versions kept beside them) once their period has passed. The period is
/// read from the backup's dated name, so the test moves a copy back in time
/// by renaming it, as fifteen days of waiting would.
#[test]
fn a_deleted_case_leaves_the_newest_backup_and_the_rotation_after_its_period() {
    use base64::Engine;
    use meldkluis::format::day::Day;
    use meldkluis::format::envelope::Status;
    use meldkluis::review::commands;

    let vault_dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(vault_dir.path(), COUNSELLOR);
    let mut server = Server::start_with_cards(&[(COUNSELLOR, vault.card.to_json())]);
    let (closed, kept) = (Melder::new(), Melder::new());
    // The closed case carries an attachment: its bytes must go too.
    let (file, mut streamed) = common::seal_attachment(
        &vec![0x5a; 200_000],
        &[vault.recipient(), closed.derived.reply_recipient().into()],
    );
    let upload = server.upload(&file, 65_536);
    streamed.upload = meldkluis::format::ids::UploadId::parse(&upload).unwrap();
    let mut envelope = closed.report_envelope("Gaat weg.", &[COUNSELLOR]);
    envelope
        .attachments
        .push(meldkluis::format::envelope::Attachment::streamed(
            "scan.pdf",
            "application/pdf",
            streamed,
        ));
    let mut request = closed.report_request(&envelope, &[vault.recipient()]);
    request["uploads"] = serde_json::json!([upload]);
    let report = base64::engine::general_purpose::STANDARD
        .decode(request["message"].as_str().unwrap())
        .unwrap();
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);
    let envelope = kept.report_envelope("Blijft.", &[COUNSELLOR]);
    assert_eq!(
        server
            .submit_report(&kept, &envelope, &[vault.recipient()])
            .status,
        201
    );
    let needles: Vec<&[u8]> = vec![
        &report[200..264],
        &file[1000..1064],
        &file[150_000..150_064],
    ];
    let holds = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        needles
            .iter()
            .any(|n| bytes.windows(n.len()).any(|w| w == *n))
    };

    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().to_str().unwrap();
    let made = meldkluis(&["backup", "--keep-days", "14", dir], &server.data_dir());
    assert!(made.status.success(), "{}", words(&made));
    let listing = || -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = std::fs::read_dir(backups.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        all.sort();
        all
    };
    let first = listing();
    assert_eq!(first.len(), 1, "one file, attachments inside: {first:?}");
    assert!(holds(&first[0]), "the case is in the backup taken before");

    // The counsellor closes the case; its retention period passes.
    let answer = server.sync(&commands::outbox(&mut vault).unwrap());
    commands::import(&mut vault, &answer.body).unwrap();
    let case = *vault
        .state
        .cases
        .iter()
        .find(|(_, c)| !c.messages[0].attachments.is_empty())
        .unwrap()
        .0;
    commands::send(
        &mut vault,
        &case,
        "Afgesloten.",
        Some(Status::Closed),
        Day::today(),
    )
    .unwrap();
    let answer = server.sync(&commands::outbox(&mut vault).unwrap());
    assert_eq!(answer.status, 200);
    server.kill();
    let store =
        meldkluis::server::store::Store::open(&server.data_dir().join("meldkluis.sqlite")).unwrap();
    assert_eq!(store.purge_closed(Day::today()).unwrap().cases, 1);
    drop(store);

    // The newest backup holds nothing of it.
    std::thread::sleep(Duration::from_millis(1100));
    let made = meldkluis(&["backup", "--keep-days", "14", dir], &server.data_dir());
    assert!(made.status.success(), "{}", words(&made));
    let second = listing();
    assert_eq!(second.len(), 2);
    let newest = second.iter().find(|p| !first.contains(p)).unwrap();
    assert!(!holds(newest), "the deleted case is in the newest backup");
    assert!(meldkluis::server::backup::inspect(newest).unwrap().cases == 1);

    // Fifteen days later: the first copy (and a folder an older version
    // kept beside it) is rotated away; nothing holds the case any more.
    let old = backups.path().join(format!("meldkluis-{}Z.sqlite", {
        let then = time::OffsetDateTime::now_utc() - time::Duration::days(15);
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}",
            then.year(),
            u8::from(then.month()),
            then.day(),
            then.hour(),
            then.minute(),
            then.second()
        )
    }));
    std::fs::rename(&first[0], &old).unwrap();
    let legacy = backups.path().join(format!(
        "{}.uploads",
        old.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::create_dir(&legacy).unwrap();
    std::fs::write(legacy.join(format!("{upload}.age")), &file).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let made = meldkluis(&["backup", "--keep-days", "14", dir], &server.data_dir());
    assert!(made.status.success(), "{}", words(&made));
    assert!(
        words(&made).contains("Deleted 1 backup"),
        "{}",
        words(&made)
    );
    let third = listing();
    assert_eq!(third.len(), 2, "{third:?}");
    assert!(!old.exists() && !legacy.exists());
    for path in &third {
        assert!(!holds(path), "{} still holds the case", path.display());
    }
    // --keep-days needs a directory.
    let refused = meldkluis(
        &["backup", "--keep-days", "14", &format!("{dir}/one.sqlite")],
        &server.data_dir(),
    );
    assert!(!refused.status.success());
    assert!(
        words(&refused).contains("needs a directory"),
        "{}",
        words(&refused)
    );
}
