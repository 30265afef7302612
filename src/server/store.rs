//! The server's storage: one SQLite file in WAL mode with `synchronous=FULL`,
//! so a commit has reached the disk before a request is acknowledged.
//!
//! It holds only what protocol.md §7 lists. This is the one narrow interface a
//! replicated backend would have to implement. All calls block: handlers run
//! them through `spawn_blocking`, and thread look-ups on the read pool
//! (`read_pool.rs`).

use std::path::Path;
use std::sync::{Condvar, Mutex};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::format::agefile::AgeBlob;
use crate::format::bundle::InboxEntry;
use crate::format::bundle::{EntryAttachment, OutboxKind};
use crate::format::day::Day;
use crate::format::derive::LookupHash;
use crate::format::ids::{CaseId, MessageId, UploadId};

/// Schema version 1, the first released schema. Never edit it: add a
/// migration step below instead (tests/migration.rs opens a version-1 file).
const SCHEMA_V1: &str = "
CREATE TABLE cases (
    id          BLOB PRIMARY KEY,           -- random 128-bit case id
    lookup_hash BLOB NOT NULL UNIQUE,       -- SHA-256 of the lookup key
    day         TEXT NOT NULL               -- YYYY-MM-DD of arrival, no time
) STRICT;
CREATE TABLE case_counsellors (
    case_id     BLOB NOT NULL REFERENCES cases(id),
    counsellor  TEXT NOT NULL,
    PRIMARY KEY (case_id, counsellor)
) STRICT;
CREATE INDEX case_counsellors_by_counsellor ON case_counsellors(counsellor, case_id);
CREATE TABLE messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          BLOB NOT NULL UNIQUE,       -- random 128-bit message id
    case_id     BLOB NOT NULL REFERENCES cases(id),
    author      TEXT NOT NULL,              -- 'melder' or a counsellor id
    kind        TEXT NOT NULL,              -- report, follow-up, reply
    day         TEXT NOT NULL,
    size        INTEGER NOT NULL,           -- ciphertext bytes (padded)
    body_sha256 BLOB NOT NULL UNIQUE,       -- makes retries idempotent
    body        BLOB NOT NULL               -- the age file
) STRICT;
CREATE INDEX messages_by_case ON messages(case_id, seq);
CREATE TABLE counsellor_sync (
    counsellor    TEXT PRIMARY KEY,
    counter       INTEGER NOT NULL,
    manifest_hash BLOB NOT NULL,
    inbox_ack     INTEGER NOT NULL
) STRICT;
";

/// Version 2: the day a counsellor closed a case, for retention.
const MIGRATE_V1_TO_V2: &str = "
ALTER TABLE cases ADD COLUMN closed_day TEXT;   -- YYYY-MM-DD, set by a 'close' outbox item
CREATE INDEX cases_by_closed_day ON cases(closed_day) WHERE closed_day IS NOT NULL;
";

/// Version 3: streamed attachments (protocol.md §3a). Their bytes are files
/// in the data directory's `uploads/`; a row here says what state each is in.
const MIGRATE_V2_TO_V3: &str = "
CREATE TABLE uploads (
    id          BLOB PRIMARY KEY,           -- random 128-bit upload id
    length      INTEGER NOT NULL,           -- declared ciphertext bytes
    day         TEXT NOT NULL,              -- YYYY-MM-DD created, for expiry
    state       TEXT NOT NULL,              -- pending, complete, claimed
    message_id  BLOB REFERENCES messages(id),
    position    INTEGER                     -- order within the message
) STRICT;
CREATE INDEX uploads_by_message ON uploads(message_id, position) WHERE message_id IS NOT NULL;
";

/// The schema version this program writes.
pub const SCHEMA_VERSION: i64 = 3;

/// What went wrong in the store. Handlers turn it into a bare 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database schema version {0} is newer than this program")]
    TooNew(i64),
    #[error("writer: {0}")]
    Writer(String),
}

impl StoreError {
    /// SQLite could not write because the disk (or a quota) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Writer(text) => text.contains("database or disk is full"),
            _ => false,
        }
    }
}

/// One stored message as the melder's thread shows it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: MessageId,
    pub author: String,
    pub kind: String,
    pub day: Day,
    pub body: Vec<u8>,
}

pub struct Thread {
    pub counsellors: Vec<String>,
    pub messages: Vec<StoredMessage>,
}

pub enum NewCase {
    Created(Day),
    /// The identical report was stored before (a retried request).
    AlreadyStored(Day),
    /// A different report holds this lookup key.
    CodeInUse,
    /// An upload it names is not complete, or already claimed.
    UnknownUpload,
}

pub enum FollowUp {
    Stored(Day),
    /// No case has this lookup key.
    UnknownCode,
    /// An upload it names is not complete, or already claimed.
    UnknownUpload,
}

/// Where an upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    /// Bytes are arriving (`<id>.part`).
    Pending,
    /// Every byte arrived and passed the check (`<id>.age`); no message yet.
    Complete,
    /// A message names it; it lives and dies with that message.
    Claimed,
}

impl UploadState {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(UploadState::Pending),
            "complete" => Some(UploadState::Complete),
            "claimed" => Some(UploadState::Claimed),
            _ => None,
        }
    }
}

/// One upload's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadRow {
    pub id: UploadId,
    pub length: u64,
    pub state: UploadState,
}

/// What a purge deleted: cases, and the uploads whose files must go too.
#[derive(Debug, Default)]
pub struct Purged {
    pub cases: usize,
    pub uploads: Vec<UploadId>,
}

/// An outbox item ready to apply.
pub struct OutboxWrite {
    pub id: MessageId,
    pub case: CaseId,
    pub body: AgeBlob,
    /// A plain reply, or one that closes or reopens the case.
    pub kind: OutboxKind,
}

pub enum SyncOutcome {
    /// Applied now (`Retried`: the same bundle was applied before); the ids
    /// of the outbox items the server holds.
    Applied(Vec<MessageId>),
    Retried(Vec<MessageId>),
    Replayed,
    UnknownCase(CaseId),
}

/// One unit of work for the writer thread: runs inside the shared
/// transaction (in its own savepoint) and says whether to keep its changes;
/// the reply runs after the commit, with the commit's outcome.
type Job = Box<dyn FnOnce(&rusqlite::Transaction<'_>) -> (bool, Reply) + Send>;
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Read connections, opened with the store and kept open. A read waits for
/// a free one rather than opening another: opening a connection reads and
/// parses the schema, which cost more than the look-up itself and, with
/// hundreds of look-ups at once, most of the server's CPU (docs/performance.md).
const READERS: usize = 8;

/// A pooled read connection, given back when dropped.
struct Reader<'a> {
    store: &'a Store,
    connection: Option<Connection>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.connection.as_ref().expect("present until drop")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        // A read that stopped inside its transaction (a panic) must not
        // hand the next reader an old snapshot: end it, or open a new
        // connection in its place.
        if !connection.is_autocommit() && connection.execute_batch("ROLLBACK").is_err() {
            match open_connection(&self.store.path) {
                Ok(fresh) => connection = fresh,
                Err(e) => {
                    tracing::error!("store: a read connection is lost: {e}");
                    return;
                }
            }
        }
        let mut pool = self.store.readers.lock().unwrap_or_else(|p| p.into_inner());
        pool.push(connection);
        self.store.reader_free.notify_one();
    }
}

/// A thread's counsellors and messages, in order (`Store::thread`).
const THREAD_COUNSELLORS: &str =
    "SELECT counsellor FROM case_counsellors WHERE case_id = ?1 ORDER BY counsellor";
const THREAD_MESSAGES: &str =
    "SELECT id, author, kind, day, body FROM messages WHERE case_id = ?1 ORDER BY seq";

/// Most jobs one commit carries.
const MAX_BATCH: usize = 256;

pub struct Store {
    /// Writes go to one thread that owns the write connection and commits
    /// whatever jobs are waiting in one transaction (group commit): one fsync
    /// acknowledges many submissions, none before it is durable.
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Read connections, taken and given back per look-up, so look-ups run
    /// in parallel with each other and with the writer (WAL).
    readers: Mutex<Vec<Connection>>,
    /// Signalled when a read connection is given back.
    reader_free: Condvar,
    path: std::path::PathBuf,
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    // Plans that do not depend on bound values. Without this, SQLite marks
    // `WHERE case_id = ?1 ORDER BY seq` as "re-plan when ?1 changes" and
    // parses the statement again on every run: most of a look-up's CPU
    // (docs/performance.md). There are no statistics to plan by anyway.
    connection.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // WAL with FULL sync: a commit is on disk when it returns (DESIGN §6).
    // secure_delete: deleted cases are overwritten, not left in free pages.
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA temp_store = MEMORY;",
    )?;
    Ok(connection)
}

impl Drop for Store {
    /// Lets the writer finish what it holds and close its connection before
    /// the store is gone, so a backup or restore right after sees it closed.
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: takes the first waiting job, then every job that is
/// already waiting (up to MAX_BATCH), runs them in one transaction, commits
/// once, then answers each. It ends when the store is dropped.
fn writer_loop(mut connection: Connection, jobs: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let tx = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                // Nothing ran; every job in the batch fails, none is lost silently.
                for job in batch {
                    drop(job);
                }
                tracing::error!("store: cannot begin a transaction: {e}");
                continue;
            }
        };
        let mut replies = Vec::with_capacity(batch.len());
        for job in batch {
            let _ = tx.execute_batch("SAVEPOINT job");
            let (keep, reply) = job(&tx);
            if !keep {
                let _ = tx.execute_batch("ROLLBACK TO job");
            }
            let _ = tx.execute_batch("RELEASE job");
            replies.push(reply);
        }
        let committed = tx.commit().map_err(|e| e.to_string());
        for reply in replies {
            reply(committed.clone());
        }
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut writer = open_connection(path)?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| open_connection(path))
            .collect::<Result<Vec<_>, _>>()?;
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("meldkluis-store-writer".into())
            .spawn(move || writer_loop(writer, receiver))
            .map_err(|e| StoreError::Writer(e.to_string()))?;
        Ok(Store {
            jobs: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(thread)),
            readers: Mutex::new(readers),
            reader_free: Condvar::new(),
            path: path.to_path_buf(),
        })
    }

    /// Runs `work` on the writer thread and waits until its transaction is
    /// committed (durable) or failed. `work` returns whether to keep its
    /// changes, and its answer.
    fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(bool, T), StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |tx| {
            let outcome = work(tx);
            let keep = matches!(outcome, Ok((true, _)));
            let reply: Reply = Box::new(move |committed| {
                let result = match (outcome, committed) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(StoreError::Writer(e)),
                    (Ok((_, value)), Ok(())) => Ok(value),
                };
                let _ = answer.send(result);
            });
            (keep, reply)
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .ok_or_else(|| StoreError::Writer("the store is closing".into()))?
            .send(job)
            .map_err(|_| StoreError::Writer("the writer thread has stopped".into()))?;
        answered
            .recv()
            .map_err(|_| StoreError::Writer("the writer thread dropped a job".into()))?
    }

    /// A read connection for the duration of the guard; waits while all
    /// `READERS` are in use.
    fn read(&self) -> Result<Reader<'_>, StoreError> {
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        let connection = loop {
            match pool.pop() {
                Some(connection) => break connection,
                None => {
                    pool = self
                        .reader_free
                        .wait(pool)
                        .unwrap_or_else(|p| p.into_inner())
                }
            }
        };
        Ok(Reader {
            store: self,
            connection: Some(connection),
        })
    }

    /// Stores a new case and its report, durably. Takes the report by value:
    /// it moves to the writer thread without a copy.
    pub fn create_case(
        &self,
        lookup: LookupHash,
        counsellors: Vec<String>,
        report: AgeBlob,
        uploads: Vec<UploadId>,
    ) -> Result<NewCase, StoreError> {
        self.write(move |tx| {
            let outcome = create_case(tx, &lookup, &counsellors, &report, &uploads)?;
            Ok((!matches!(outcome, NewCase::UnknownUpload), outcome))
        })
    }

    /// The thread for a lookup key, or `None`.
    pub fn thread(&self, lookup: &LookupHash) -> Result<Option<Thread>, StoreError> {
        let connection = self.read()?;
        // One read transaction for the three reads: one snapshot (a purge
        // in between cannot leave a case without messages), and one round
        // of WAL locks (fcntl calls) instead of three.
        connection.prepare_cached("BEGIN")?.execute([])?;
        let thread = read_thread(&connection, lookup);
        let ended = connection
            .prepare_cached("COMMIT")
            .and_then(|mut commit| commit.execute([]));
        let thread = thread?;
        ended?;
        Ok(thread)
    }

    /// Adds a melder's follow-up; `UnknownCode` when no case has this lookup
    /// key. The identical message again (a retry) is stored once.
    pub fn add_follow_up(
        &self,
        lookup: LookupHash,
        message: AgeBlob,
        uploads: Vec<UploadId>,
    ) -> Result<FollowUp, StoreError> {
        // An unknown key is answered from a read connection: follow-ups with
        // made-up keys never queue for the writer, so they cannot delay real
        // commits, nor wait for them. The writer checks again (the case may
        // be purged in between).
        if case_by_lookup(&*self.read()?, &lookup)?.is_none() {
            return Ok(FollowUp::UnknownCode);
        }
        self.write(move |tx| {
            let outcome = add_follow_up(tx, &lookup, &message, &uploads)?;
            Ok((matches!(outcome, FollowUp::Stored(_)), outcome))
        })
    }

    /// Records a new pending upload of `length` bytes if the quota holds
    /// it (all uploads in any state count); `false` when it does not.
    pub fn create_upload(&self, id: UploadId, length: u64, quota: u64) -> Result<bool, StoreError> {
        self.write(move |tx| {
            let used: i64 =
                tx.query_row("SELECT COALESCE(SUM(length), 0) FROM uploads", [], |row| {
                    row.get(0)
                })?;
            if (used as u64).saturating_add(length) > quota {
                return Ok((false, false));
            }
            tx.execute(
                "INSERT INTO uploads (id, length, day, state) VALUES (?1, ?2, ?3, 'pending')",
                params![&id.0[..], length as i64, Day::today().to_string()],
            )?;
            Ok((true, true))
        })
    }

    /// One upload's row, or `None`.
    pub fn upload(&self, id: &UploadId) -> Result<Option<UploadRow>, StoreError> {
        let connection = self.read()?;
        upload_row(&connection, id)
    }

    /// Every upload's row (for the start-up sweep of the uploads folder).
    pub fn uploads(&self) -> Result<Vec<UploadRow>, StoreError> {
        let connection = self.read()?;
        let mut statement = connection.prepare("SELECT id, length, state FROM uploads")?;
        let rows = statement
            .query_map([], read_upload_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Marks a pending upload complete (its file is durable and checked).
    pub fn complete_upload(&self, id: UploadId) -> Result<bool, StoreError> {
        self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE uploads SET state = 'complete' WHERE id = ?1 AND state = 'pending'",
                [&id.0[..]],
            )?;
            Ok((true, changed == 1))
        })
    }

    /// Forgets an upload that no message claimed; `false` if there is none.
    pub fn delete_upload(&self, id: UploadId) -> Result<bool, StoreError> {
        self.write(move |tx| {
            let changed = tx.execute(
                "DELETE FROM uploads WHERE id = ?1 AND state <> 'claimed'",
                [&id.0[..]],
            )?;
            Ok((true, changed == 1))
        })
    }

    /// Forgets every unclaimed upload created on or before `day`; returns
    /// their ids, whose files must go too.
    pub fn expire_uploads(&self, day: Day) -> Result<Vec<UploadId>, StoreError> {
        let cutoff = day.to_string();
        self.write(move |tx| {
            let ids = tx
                .prepare("SELECT id FROM uploads WHERE state <> 'claimed' AND day <= ?1")?
                .query_map([&cutoff], |row| Ok(UploadId(blob16(row.get(0)?))))?
                .collect::<Result<Vec<_>, _>>()?;
            tx.execute(
                "DELETE FROM uploads WHERE state <> 'claimed' AND day <= ?1",
                [&cutoff],
            )?;
            Ok((true, ids))
        })
    }

    /// Applies a verified outbox in one transaction (protocol.md §6): all
    /// items or none.
    pub fn apply_outbox(
        &self,
        counsellor: &str,
        counter: u64,
        manifest_hash: &[u8; 32],
        inbox_ack: u64,
        items: Vec<OutboxWrite>,
    ) -> Result<SyncOutcome, StoreError> {
        let counsellor = counsellor.to_string();
        let manifest_hash = *manifest_hash;
        self.write(move |tx| {
            let outcome =
                apply_outbox(tx, &counsellor, counter, &manifest_hash, inbox_ack, &items)?;
            Ok((matches!(outcome, SyncOutcome::Applied(_)), outcome))
        })
    }

    /// Everything newer than `after_seq` on this counsellor's cases, written
    /// by someone else.
    pub fn inbox(&self, counsellor: &str, after_seq: u64) -> Result<Vec<InboxEntry>, StoreError> {
        let connection = self.read()?;
        let mut statement = connection.prepare_cached(
            "SELECT m.seq, m.id, m.case_id, m.author, m.kind, m.day, m.body
               FROM messages m JOIN case_counsellors c ON c.case_id = m.case_id
              WHERE c.counsellor = ?1 AND m.seq > ?2 AND m.author <> ?1
              ORDER BY m.seq",
        )?;
        let entries = statement
            .query_map(params![counsellor, after_seq as i64], |row| {
                Ok(InboxEntry {
                    seq: row.get::<_, i64>(0)? as u64,
                    id: MessageId(blob16(row.get(1)?)),
                    case: CaseId(blob16(row.get(2)?)),
                    author: row.get(3)?,
                    kind: row.get(4)?,
                    day: parse_day(&row.get::<_, String>(5)?),
                    body: row.get(6)?,
                    attachments: Vec::new(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut entries = entries;
        let mut statement = connection.prepare_cached(
            "SELECT id, length FROM uploads WHERE message_id = ?1 ORDER BY position",
        )?;
        for entry in &mut entries {
            entry.attachments = statement
                .query_map([&entry.id.0[..]], |row| {
                    Ok(EntryAttachment {
                        upload: UploadId(blob16(row.get(0)?)),
                        length: row.get::<_, i64>(1)? as u64,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
        }
        Ok(entries)
    }
}

impl Store {
    /// Deletes every case closed on or before `closed_by`, with its
    /// messages, for real: `secure_delete` overwrites the freed pages and a
    /// truncating checkpoint empties the WAL, so no byte of the ciphertext is
    /// left in the database. Returns what was deleted; the caller removes
    /// the deleted uploads' files.
    pub fn purge_closed(&self, closed_by: Day) -> Result<Purged, StoreError> {
        let cutoff = closed_by.to_string();
        let purged = self.write(move |tx| {
            let doomed = "SELECT id FROM cases WHERE closed_day IS NOT NULL AND closed_day <= ?1";
            let doomed_messages = format!("SELECT id FROM messages WHERE case_id IN ({doomed})");
            let uploads = tx
                .prepare(&format!(
                    "SELECT id FROM uploads WHERE message_id IN ({doomed_messages})"
                ))?
                .query_map([&cutoff], |row| Ok(UploadId(blob16(row.get(0)?))))?
                .collect::<Result<Vec<_>, _>>()?;
            tx.execute(
                &format!("DELETE FROM uploads WHERE message_id IN ({doomed_messages})"),
                [&cutoff],
            )?;
            tx.execute(
                &format!("DELETE FROM messages WHERE case_id IN ({doomed})"),
                [&cutoff],
            )?;
            tx.execute(
                &format!("DELETE FROM case_counsellors WHERE case_id IN ({doomed})"),
                [&cutoff],
            )?;
            let cases = tx.execute(
                "DELETE FROM cases WHERE closed_day IS NOT NULL AND closed_day <= ?1",
                [&cutoff],
            )?;
            Ok((true, Purged { cases, uploads }))
        })?;
        if purged.cases > 0 {
            // Copy the WAL into the database and empty it, so the deleted
            // pages (already zeroed by secure_delete) leave no copy behind.
            let connection = open_connection(&self.path)?;
            connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(purged)
    }

    /// The day a case was closed, if it was (for tests and operators).
    pub fn closed_day(&self, lookup: &LookupHash) -> Result<Option<Day>, StoreError> {
        let connection = self.read()?;
        let day: Option<Option<String>> = connection
            .query_row(
                "SELECT closed_day FROM cases WHERE lookup_hash = ?1",
                [&lookup.0[..]],
                |row| row.get(0),
            )
            .optional()?;
        Ok(day.flatten().map(|d| parse_day(&d)))
    }
}

fn create_case(
    tx: &rusqlite::Transaction<'_>,
    lookup: &LookupHash,
    counsellors: &[String],
    report: &AgeBlob,
    uploads: &[UploadId],
) -> Result<NewCase, StoreError> {
    let body_hash = Sha256::digest(report.as_bytes()).to_vec();
    let existing: Option<(Vec<u8>, String)> = tx
        .query_row(
            "SELECT id, day FROM cases WHERE lookup_hash = ?1",
            [&lookup.0[..]],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if let Some((case_id, day)) = existing {
        let same: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM messages WHERE case_id = ?1 AND body_sha256 = ?2)",
            params![case_id, body_hash],
            |row| row.get(0),
        )?;
        return Ok(if same {
            NewCase::AlreadyStored(parse_day(&day))
        } else {
            NewCase::CodeInUse
        });
    }
    let case = CaseId::random();
    let day = Day::today();
    tx.execute(
        "INSERT INTO cases (id, lookup_hash, day) VALUES (?1, ?2, ?3)",
        params![&case.0[..], &lookup.0[..], day.to_string()],
    )?;
    for counsellor in counsellors {
        tx.execute(
            "INSERT OR IGNORE INTO case_counsellors (case_id, counsellor) VALUES (?1, ?2)",
            params![&case.0[..], counsellor],
        )?;
    }
    let message = MessageId::random();
    insert_message(tx, message, case, "melder", "report", day, report)?;
    if !claim_uploads(tx, message, uploads)? {
        return Ok(NewCase::UnknownUpload);
    }
    Ok(NewCase::Created(day))
}

fn add_follow_up(
    tx: &rusqlite::Transaction<'_>,
    lookup: &LookupHash,
    message: &AgeBlob,
    uploads: &[UploadId],
) -> Result<FollowUp, StoreError> {
    let Some(case) = case_by_lookup(tx, lookup)? else {
        return Ok(FollowUp::UnknownCode);
    };
    let body_hash = Sha256::digest(message.as_bytes()).to_vec();
    let earlier: Option<String> = tx
        .query_row(
            "SELECT day FROM messages WHERE body_sha256 = ?1 AND case_id = ?2",
            params![body_hash, &case.0[..]],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(day) = earlier {
        return Ok(FollowUp::Stored(parse_day(&day)));
    }
    let day = Day::today();
    let id = MessageId::random();
    insert_message(tx, id, case, "melder", "follow-up", day, message)?;
    if !claim_uploads(tx, id, uploads)? {
        return Ok(FollowUp::UnknownUpload);
    }
    Ok(FollowUp::Stored(day))
}

/// Gives each upload to `message`, in order; `false` (and the caller rolls
/// back) if any is not complete or already claimed.
fn claim_uploads(
    tx: &rusqlite::Transaction<'_>,
    message: MessageId,
    uploads: &[UploadId],
) -> Result<bool, StoreError> {
    for (position, upload) in uploads.iter().enumerate() {
        let claimed = tx.execute(
            "UPDATE uploads SET state = 'claimed', message_id = ?2, position = ?3
              WHERE id = ?1 AND state = 'complete'",
            params![&upload.0[..], &message.0[..], position as i64],
        )?;
        if claimed != 1 {
            return Ok(false);
        }
    }
    Ok(true)
}

fn upload_row(connection: &Connection, id: &UploadId) -> Result<Option<UploadRow>, StoreError> {
    Ok(connection
        .prepare_cached("SELECT id, length, state FROM uploads WHERE id = ?1")?
        .query_row([&id.0[..]], read_upload_row)
        .optional()?)
}

fn read_upload_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRow> {
    let state: String = row.get(2)?;
    Ok(UploadRow {
        id: UploadId(blob16(row.get(0)?)),
        length: row.get::<_, i64>(1)? as u64,
        // Only this module writes the column; an unknown value is a
        // pending upload that expiry will clear.
        state: UploadState::parse(&state).unwrap_or(UploadState::Pending),
    })
}

fn apply_outbox(
    tx: &rusqlite::Transaction<'_>,
    counsellor: &str,
    counter: u64,
    manifest_hash: &[u8; 32],
    inbox_ack: u64,
    items: &[OutboxWrite],
) -> Result<SyncOutcome, StoreError> {
    let ids: Vec<MessageId> = items.iter().map(|i| i.id).collect();
    let last: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT counter, manifest_hash FROM counsellor_sync WHERE counsellor = ?1",
            [counsellor],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if let Some((last_counter, last_hash)) = last {
        let last_counter = last_counter as u64;
        if counter == last_counter && last_hash == manifest_hash {
            return Ok(SyncOutcome::Retried(ids));
        }
        if counter <= last_counter {
            return Ok(SyncOutcome::Replayed);
        }
    }
    let day = Day::today();
    for OutboxWrite {
        id,
        case,
        body,
        kind,
    } in items
    {
        let assigned: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM case_counsellors WHERE case_id = ?1 AND counsellor = ?2)",
            params![&case.0[..], counsellor],
            |row| row.get(0),
        )?;
        if !assigned {
            return Ok(SyncOutcome::UnknownCase(*case));
        }
        let known: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM messages WHERE id = ?1)",
            [&id.0[..]],
            |row| row.get(0),
        )?;
        if !known {
            insert_message(tx, *id, *case, counsellor, "reply", day, body)?;
        }
        match kind {
            OutboxKind::Reply => {}
            OutboxKind::Close => {
                tx.execute(
                    "UPDATE cases SET closed_day = ?2 WHERE id = ?1 AND closed_day IS NULL",
                    params![&case.0[..], day.to_string()],
                )?;
            }
            OutboxKind::Reopen => {
                tx.execute(
                    "UPDATE cases SET closed_day = NULL WHERE id = ?1",
                    [&case.0[..]],
                )?;
            }
        }
    }
    tx.execute(
            "INSERT INTO counsellor_sync (counsellor, counter, manifest_hash, inbox_ack)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(counsellor) DO UPDATE SET counter = ?2, manifest_hash = ?3, inbox_ack = ?4",
            params![counsellor, counter as i64, &manifest_hash[..], inbox_ack as i64],
        )?;
    Ok(SyncOutcome::Applied(ids))
}

fn insert_message(
    tx: &rusqlite::Transaction<'_>,
    id: MessageId,
    case: CaseId,
    author: &str,
    kind: &str,
    day: Day,
    body: &AgeBlob,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO messages (id, case_id, author, kind, day, size, body_sha256, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            &id.0[..],
            &case.0[..],
            author,
            kind,
            day.to_string(),
            body.len() as i64,
            Sha256::digest(body.as_bytes()).to_vec(),
            body.as_bytes()
        ],
    )?;
    Ok(())
}

/// The reads of `Store::thread`, inside its transaction.
fn read_thread(connection: &Connection, lookup: &LookupHash) -> Result<Option<Thread>, StoreError> {
    let Some(case) = case_by_lookup(connection, lookup)? else {
        return Ok(None);
    };
    let mut statement = connection.prepare_cached(THREAD_COUNSELLORS)?;
    let counsellors = statement
        .query_map([&case.0[..]], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    let mut statement = connection.prepare_cached(THREAD_MESSAGES)?;
    let messages = statement
        .query_map([&case.0[..]], |row| {
            Ok(StoredMessage {
                id: MessageId(blob16(row.get(0)?)),
                author: row.get(1)?,
                kind: row.get(2)?,
                day: parse_day(&row.get::<_, String>(3)?),
                body: row.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Thread {
        counsellors,
        messages,
    }))
}

fn case_by_lookup(
    connection: &Connection,
    lookup: &LookupHash,
) -> Result<Option<CaseId>, StoreError> {
    Ok(connection
        .prepare_cached("SELECT id FROM cases WHERE lookup_hash = ?1")?
        .query_row([&lookup.0[..]], |row| row.get::<_, Vec<u8>>(0))
        .optional()?
        .map(|bytes| CaseId(blob16(bytes))))
}

/// Ids are written by this module only, always 16 bytes.
fn blob16(bytes: Vec<u8>) -> [u8; 16] {
    bytes.try_into().unwrap_or([0; 16])
}

fn parse_day(text: &str) -> Day {
    Day::parse(text).unwrap_or_else(Day::today)
}

/// Brings the schema to the current version inside one transaction.
fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew(version));
    }
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
    }
    if version < 2 {
        tx.execute_batch(MIGRATE_V1_TO_V2)?;
    }
    if version < 3 {
        tx.execute_batch(MIGRATE_V2_TO_V3)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::derive::LookupKey;

    fn message() -> AgeBlob {
        let recipient = age::x25519::Identity::generate().to_public();
        AgeBlob::parse_message(age::encrypt(&recipient, &[b' '; 4096]).unwrap()).unwrap()
    }

    #[test]
    fn case_life_cycle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let lookup = LookupKey::from_hex(&"ab".repeat(32)).unwrap().hash();
        let report = message();
        let counsellors = vec!["vp-a".to_string()];
        assert!(matches!(
            store
                .create_case(lookup, counsellors.clone(), report.clone(), vec![])
                .unwrap(),
            NewCase::Created(_)
        ));
        assert!(matches!(
            store
                .create_case(lookup, counsellors.clone(), report.clone(), vec![])
                .unwrap(),
            NewCase::AlreadyStored(_)
        ));
        assert!(matches!(
            store
                .create_case(lookup, counsellors.clone(), message(), vec![])
                .unwrap(),
            NewCase::CodeInUse
        ));
        assert!(matches!(
            store.add_follow_up(lookup, message(), vec![]).unwrap(),
            FollowUp::Stored(_)
        ));
        let thread = store.thread(&lookup).unwrap().unwrap();
        assert_eq!(thread.counsellors, counsellors);
        assert_eq!(thread.messages.len(), 2);
        let unknown = LookupKey::from_hex(&"cd".repeat(32)).unwrap().hash();
        assert!(store.thread(&unknown).unwrap().is_none());
        assert!(matches!(
            store.add_follow_up(unknown, message(), vec![]).unwrap(),
            FollowUp::UnknownCode
        ));
        assert_eq!(store.inbox("vp-a", 0).unwrap().len(), 2);
        assert_eq!(store.inbox("vp-b", 0).unwrap().len(), 0);
    }

    #[test]
    fn look_ups_reuse_their_prepared_statements() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let mut lookups = Vec::new();
        for byte in ["ab", "cd", "ef"] {
            let lookup = LookupKey::from_hex(&byte.repeat(32)).unwrap().hash();
            store
                .create_case(lookup, vec!["vp-a".into()], message(), vec![])
                .unwrap();
            lookups.push(lookup);
        }
        for lookup in lookups.iter().cycle().take(9) {
            assert_eq!(store.thread(lookup).unwrap().unwrap().messages.len(), 1);
        }
        // The pool hands out the connection given back last: the one that
        // ran all nine look-ups, with its cached statements.
        let connection = store.read().unwrap();
        for sql in [THREAD_COUNSELLORS, THREAD_MESSAGES] {
            let statement = connection.prepare_cached(sql).unwrap();
            assert_eq!(
                statement.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql} was parsed again on a later run"
            );
        }
    }

    #[test]
    fn uploads_are_claimed_once_counted_in_the_quota_and_expire_unless_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let (a, b, c) = (UploadId::random(), UploadId::random(), UploadId::random());
        assert!(store.create_upload(a, 600, 1000).unwrap());
        assert!(
            !store.create_upload(b, 500, 1000).unwrap(),
            "over the quota"
        );
        assert!(store.create_upload(b, 400, 1000).unwrap());
        assert!(store.upload(&c).unwrap().is_none());
        // Only complete uploads can be claimed, and all or none of a message's.
        let lookup = LookupKey::from_hex(&"ab".repeat(32)).unwrap().hash();
        let refused = store
            .create_case(lookup, vec!["vp-a".into()], message(), vec![a])
            .unwrap();
        assert!(matches!(refused, NewCase::UnknownUpload));
        assert!(store.thread(&lookup).unwrap().is_none(), "rolled back");
        assert!(store.complete_upload(a).unwrap());
        let refused = store
            .create_case(lookup, vec!["vp-a".into()], message(), vec![a, b])
            .unwrap();
        assert!(matches!(refused, NewCase::UnknownUpload));
        assert_eq!(
            store.upload(&a).unwrap().unwrap().state,
            UploadState::Complete
        );
        let stored = store
            .create_case(lookup, vec!["vp-a".into()], message(), vec![a])
            .unwrap();
        assert!(matches!(stored, NewCase::Created(_)));
        assert_eq!(
            store.upload(&a).unwrap().unwrap().state,
            UploadState::Claimed
        );
        assert!(!store.delete_upload(a).unwrap(), "a claimed upload stays");
        let inbox = store.inbox("vp-a", 0).unwrap();
        assert_eq!(inbox[0].attachments[0].upload, a);
        // Expiry takes the unclaimed one only.
        assert_eq!(store.expire_uploads(Day::today()).unwrap(), vec![b]);
        assert!(store.upload(&b).unwrap().is_none());
        assert!(store.upload(&a).unwrap().is_some());
    }
}
