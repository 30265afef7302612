//! The server's storage. `Store` (backend.rs) is the one narrow interface
//! the server uses, over two backends: this file's SQLite store, one file
//! in WAL mode with `synchronous=FULL`, so a commit has reached the disk
//! before a request is acknowledged (the default); and PostgreSQL
//! (postgres.rs) for several nodes on one database.
//!
//! It holds only what protocol.md §7 lists. All calls block: handlers run
//! them through `spawn_blocking`, and thread look-ups on the read pool
//! (`read_pool.rs`). The tests at the bottom run against both backends.

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

mod backend;
#[cfg(feature = "postgres")]
pub mod migrate;
#[cfg(feature = "postgres")]
pub mod postgres;
pub use backend::Store;

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

/// Version 4: no identifier, row order or file time follows arrival within
/// a day (protocol.md §7a). Every table is `WITHOUT ROWID`, keyed by random
/// ids, so no hidden rowid counts arrivals; messages are ordered within
/// their case only (`position`); the inbox order of each counsellor is
/// given when the messages are delivered (`deliveries`), not when they
/// arrive; attachment bytes live in `upload_chunks`, not in one file per
/// upload whose times would date it. The old `seq` of each message is kept
/// as its delivery number for every counsellor of its case, so laptops that
/// imported up to some `seq` go on from there. Attachment files of version 3
/// are moved in by `Uploads::open`.
const MIGRATE_V3_TO_V4: &str = "
ALTER TABLE cases RENAME TO v3_cases;
ALTER TABLE case_counsellors RENAME TO v3_case_counsellors;
ALTER TABLE messages RENAME TO v3_messages;
ALTER TABLE counsellor_sync RENAME TO v3_counsellor_sync;
ALTER TABLE uploads RENAME TO v3_uploads;
DROP INDEX IF EXISTS cases_by_closed_day;
DROP INDEX IF EXISTS case_counsellors_by_counsellor;
DROP INDEX IF EXISTS messages_by_case;
DROP INDEX IF EXISTS uploads_by_message;
CREATE TABLE cases (
    id          BLOB PRIMARY KEY,           -- random 128-bit case id
    lookup_hash BLOB NOT NULL UNIQUE,       -- SHA-256 of the lookup key
    day         TEXT NOT NULL,              -- YYYY-MM-DD of arrival, no time
    closed_day  TEXT                        -- YYYY-MM-DD, set by a 'close' outbox item
) STRICT, WITHOUT ROWID;
CREATE INDEX cases_by_closed_day ON cases(closed_day) WHERE closed_day IS NOT NULL;
CREATE TABLE case_counsellors (
    case_id     BLOB NOT NULL REFERENCES cases(id),
    counsellor  TEXT NOT NULL,
    PRIMARY KEY (case_id, counsellor)
) STRICT, WITHOUT ROWID;
CREATE INDEX case_counsellors_by_counsellor ON case_counsellors(counsellor, case_id);
CREATE TABLE messages (
    id          BLOB PRIMARY KEY,           -- random 128-bit message id
    case_id     BLOB NOT NULL REFERENCES cases(id),
    position    INTEGER NOT NULL,           -- 0, 1, 2 … within its case only
    author      TEXT NOT NULL,              -- 'melder' or a counsellor id
    kind        TEXT NOT NULL,              -- report, follow-up, reply
    day         TEXT NOT NULL,
    size        INTEGER NOT NULL,           -- ciphertext bytes (padded)
    body_sha256 BLOB NOT NULL UNIQUE,       -- makes retries idempotent
    body        BLOB NOT NULL,              -- the age file
    UNIQUE (case_id, position)
) STRICT, WITHOUT ROWID;
CREATE TABLE deliveries (
    counsellor  TEXT NOT NULL,
    seq         INTEGER NOT NULL,           -- this counsellor's inbox order, given at delivery
    message_id  BLOB NOT NULL REFERENCES messages(id),
    PRIMARY KEY (counsellor, seq),
    UNIQUE (counsellor, message_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE counsellor_sync (
    counsellor    TEXT PRIMARY KEY,
    counter       BLOB NOT NULL,            -- 8 bytes big-endian: all of u64
    manifest_hash BLOB NOT NULL,
    inbox_ack     BLOB NOT NULL             -- 8 bytes big-endian
) STRICT, WITHOUT ROWID;
CREATE TABLE uploads (
    id          BLOB PRIMARY KEY,           -- random 128-bit upload id
    length      INTEGER NOT NULL,           -- declared ciphertext bytes
    received    INTEGER NOT NULL,           -- bytes stored in upload_chunks
    day         TEXT NOT NULL,              -- YYYY-MM-DD created, for expiry
    state       TEXT NOT NULL,              -- pending, complete, claimed
    message_id  BLOB REFERENCES messages(id),
    position    INTEGER                     -- order within the message
) STRICT, WITHOUT ROWID;
CREATE INDEX uploads_by_message ON uploads(message_id, position) WHERE message_id IS NOT NULL;
CREATE TABLE upload_chunks (
    upload_id   BLOB NOT NULL REFERENCES uploads(id),
    start       INTEGER NOT NULL,           -- offset of the first byte
    data        BLOB NOT NULL,
    PRIMARY KEY (upload_id, start)
) STRICT, WITHOUT ROWID;

INSERT INTO cases (id, lookup_hash, day, closed_day)
    SELECT id, lookup_hash, day, closed_day FROM v3_cases;
INSERT INTO case_counsellors (case_id, counsellor)
    SELECT case_id, counsellor FROM v3_case_counsellors;
INSERT INTO messages (id, case_id, position, author, kind, day, size, body_sha256, body)
    SELECT id, case_id, ROW_NUMBER() OVER (PARTITION BY case_id ORDER BY seq) - 1,
           author, kind, day, size, body_sha256, body
      FROM v3_messages;
INSERT INTO deliveries (counsellor, seq, message_id)
    SELECT c.counsellor, m.seq, m.id
      FROM v3_messages m JOIN v3_case_counsellors c ON c.case_id = m.case_id
     WHERE m.author <> c.counsellor;
-- Pending uploads of version 3 cannot resume (their bytes were files);
-- complete ones are moved in by Uploads::open, received = 0 until then.
INSERT INTO uploads (id, length, received, day, state, message_id, position)
    SELECT id, length, 0, day, state, message_id, position FROM v3_uploads
     WHERE state <> 'pending';
";

/// After `counsellor_sync` is copied (in Rust: 8-byte big-endian counters).
const MIGRATE_V3_TO_V4_END: &str = "
DROP TABLE v3_uploads;
DROP TABLE v3_counsellor_sync;
DROP TABLE v3_messages;
DROP TABLE v3_case_counsellors;
DROP TABLE v3_cases;
";

/// The schema version this program writes.
pub const SCHEMA_VERSION: i64 = 4;

/// Most messages one case holds, and most bytes of them (attachments not
/// counted: they have their own limits). A thread is read whole for the
/// melder's page, so one case must not grow without bound (api.md).
pub const MAX_CASE_MESSAGES: i64 = 500;
pub const MAX_CASE_BYTES: i64 = 96 * 1024 * 1024;
// THREAD_MESSAGES reads at most one message more than a case holds.
const _: () = assert!(MAX_CASE_MESSAGES == 500);

/// What went wrong in the store. Handlers turn it into a bare 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database schema version {0} is newer than this program")]
    TooNew(i64),
    #[error("writer: {0}")]
    Writer(String),
    #[error("the database could not be upgraded: {0}")]
    Migration(String),
    /// A stored value this module never writes.
    #[error("the database holds a value this program never writes: {0}")]
    Damaged(String),
    /// PostgreSQL refused or failed: its SQLSTATE and one-line message
    /// (never its DETAIL, which can quote a key).
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL: {message}{}", if code.is_empty() { String::new() } else { format!(" ({code})") })]
    Postgres { code: String, message: String },
    /// `database_url` cannot be used as it is (its TLS settings, its CA
    /// file); found before any connection.
    #[cfg(feature = "postgres")]
    #[error("database_url: {0}")]
    DatabaseUrl(String),
    /// `database_url` names PostgreSQL, and this build has no support for it.
    #[error("this build of meldkluis has no PostgreSQL support (feature `postgres`)")]
    NoPostgres,
}

impl StoreError {
    /// SQLite could not write because the disk (or a quota) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Writer(text) => text.contains("database or disk is full"),
            #[cfg(feature = "postgres")]
            StoreError::Postgres { code, .. } => postgres::is_disk_full_code(code),
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
    /// The case holds `MAX_CASE_MESSAGES` messages or `MAX_CASE_BYTES`.
    CaseFull,
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
    /// Bytes stored so far.
    pub received: u64,
    pub state: UploadState,
}

/// What became of a piece of an upload (`Store::append_chunk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Append {
    /// Stored durably; the row as it is now.
    Stored(UploadRow),
    /// No pending upload has this id (never, cancelled, expired, complete).
    Unknown,
    /// The upload's bytes end elsewhere (here).
    WrongOffset(u64),
    /// It would run past the declared length.
    PastLength,
    /// The quota cannot hold it; nothing was stored.
    QuotaFull,
}

impl Append {
    /// The rules every backend applies to a chunk of `length` bytes at
    /// `start` before it looks at the quota: `Err` is the answer already
    /// (no pending upload, another offset, past the declared length, or an
    /// empty chunk, stored as it is); `Ok` is the row to store it in.
    pub(crate) fn check(
        row: Option<UploadRow>,
        start: u64,
        length: u64,
    ) -> Result<UploadRow, Append> {
        let row = row
            .filter(|row| row.state == UploadState::Pending)
            .ok_or(Append::Unknown)?;
        if row.received != start {
            return Err(Append::WrongOffset(row.received));
        }
        if start + length > row.length {
            return Err(Append::PastLength);
        }
        if length == 0 {
            return Err(Append::Stored(row));
        }
        Ok(row)
    }
}

/// Most uploads waiting for bytes at once; abandoned ones expire soon
/// (`Uploads::expire_idle`), so a real melder finds room.
pub const MAX_PENDING_UPLOADS: i64 = 10_000;

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
    /// Counsellors this reply introduces to the case (protocol.md §10.5):
    /// they join the case, and its messages are delivered to them too.
    pub introduce: Vec<String>,
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
    store: &'a SqliteStore,
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
/// The limit is the case limit plus one: a case never holds more, and the
/// read stops there whatever the table holds.
const THREAD_MESSAGES: &str = "SELECT id, author, kind, day, body FROM messages WHERE case_id = ?1
     ORDER BY position LIMIT 501";

/// Most jobs one commit carries.
const MAX_BATCH: usize = 256;

pub struct SqliteStore {
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

impl Drop for SqliteStore {
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
        // Durable now (the log is synced): answer first.
        for reply in replies {
            reply(committed.clone());
        }
        if committed.is_ok() {
            // Then copy the commit into the database file, not whenever the
            // log reaches its size: a checkpoint at a later write would
            // give the database file the time of that write, an earlier
            // one than the most recent (protocol.md §7a). Readers keep
            // their snapshots (PASSIVE); what they hold is copied next time.
            if let Err(e) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::error!("store: checkpoint: {e}");
            }
        }
    }
}

impl SqliteStore {
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
        Ok(SqliteStore {
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

    /// Records a new pending upload of `length` bytes. Nothing is reserved:
    /// space is counted as bytes arrive (`append_chunk`). `false` when
    /// `MAX_PENDING_UPLOADS` are already waiting.
    pub fn create_upload(&self, id: UploadId, length: u64) -> Result<bool, StoreError> {
        self.write(move |tx| {
            let pending: i64 = tx.query_row(
                "SELECT COUNT(*) FROM uploads WHERE state = 'pending'",
                [],
                |row| row.get(0),
            )?;
            if pending >= MAX_PENDING_UPLOADS {
                return Ok((false, false));
            }
            tx.execute(
                "INSERT INTO uploads (id, length, received, day, state)
                 VALUES (?1, ?2, 0, ?3, 'pending')",
                params![&id.0[..], length as i64, Day::today().to_string()],
            )?;
            Ok((true, true))
        })
    }

    /// Stores `data` as the bytes of a pending upload from `start`, which
    /// must be where its bytes end, if the quota (every upload's received
    /// bytes) still holds them. Durable when it returns `Stored`.
    pub fn append_chunk(
        &self,
        id: UploadId,
        start: u64,
        data: Vec<u8>,
        quota: u64,
    ) -> Result<Append, StoreError> {
        self.write(move |tx| {
            let row = match Append::check(upload_row(tx, &id)?, start, data.len() as u64) {
                Ok(row) => row,
                Err(answer) => return Ok((false, answer)),
            };
            let end = start + data.len() as u64;
            let used: i64 = tx
                .prepare_cached("SELECT COALESCE(SUM(received), 0) FROM uploads")?
                .query_row([], |row| row.get(0))?;
            if (used as u64).saturating_add(data.len() as u64) > quota {
                return Ok((false, Append::QuotaFull));
            }
            tx.prepare_cached(
                "INSERT INTO upload_chunks (upload_id, start, data) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&id.0[..], start as i64, data])?;
            tx.prepare_cached("UPDATE uploads SET received = ?2 WHERE id = ?1")?
                .execute(params![&id.0[..], end as i64])?;
            Ok((
                true,
                Append::Stored(UploadRow {
                    received: end,
                    ..row
                }),
            ))
        })
    }

    /// Drops the bytes of a pending upload from `start` on (a refused
    /// chunk): the upload holds exactly its first `start` bytes again.
    pub fn cut_upload(&self, id: UploadId, start: u64) -> Result<(), StoreError> {
        self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE uploads SET received = ?2
                  WHERE id = ?1 AND state = 'pending' AND received > ?2",
                params![&id.0[..], start as i64],
            )?;
            if changed == 1 {
                tx.execute(
                    "DELETE FROM upload_chunks WHERE upload_id = ?1 AND start >= ?2",
                    params![&id.0[..], start as i64],
                )?;
                tx.execute(
                    "UPDATE upload_chunks SET data = substr(data, 1, ?2 - start)
                      WHERE upload_id = ?1 AND start < ?2 AND start + length(data) > ?2",
                    params![&id.0[..], start as i64],
                )?;
            }
            Ok((true, ()))
        })
    }

    /// The bytes every upload holds so far (what counts against the quota).
    pub fn uploads_received(&self) -> Result<u64, StoreError> {
        let connection = self.read()?;
        let used: i64 = connection
            .prepare_cached("SELECT COALESCE(SUM(received), 0) FROM uploads")?
            .query_row([], |row| row.get(0))?;
        Ok(used as u64)
    }

    /// The stored piece of an upload that starts at `start`, or `None`.
    pub fn upload_chunk(&self, id: &UploadId, start: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let connection = self.read()?;
        Ok(connection
            .prepare_cached("SELECT data FROM upload_chunks WHERE upload_id = ?1 AND start = ?2")?
            .query_row(params![&id.0[..], start as i64], |row| row.get(0))
            .optional()?)
    }

    /// One upload's row, or `None`.
    pub fn upload(&self, id: &UploadId) -> Result<Option<UploadRow>, StoreError> {
        let connection = self.read()?;
        upload_row(&connection, id)
    }

    /// Every upload's row.
    pub fn uploads(&self) -> Result<Vec<UploadRow>, StoreError> {
        let connection = self.read()?;
        let mut statement = connection.prepare(UPLOAD_ROW)?;
        let rows = statement
            .query_map([], read_upload_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Marks a pending upload whose every byte is stored complete (its head
    /// passed the check).
    pub fn complete_upload(&self, id: UploadId) -> Result<bool, StoreError> {
        self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE uploads SET state = 'complete'
                  WHERE id = ?1 AND state = 'pending' AND received = length",
                [&id.0[..]],
            )?;
            Ok((true, changed == 1))
        })
    }

    /// Forgets an upload that no message claimed, with its bytes; `false`
    /// if there is none.
    pub fn delete_upload(&self, id: UploadId) -> Result<bool, StoreError> {
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM upload_chunks WHERE upload_id =
                   (SELECT id FROM uploads WHERE id = ?1 AND state <> 'claimed')",
                [&id.0[..]],
            )?;
            let changed = tx.execute(
                "DELETE FROM uploads WHERE id = ?1 AND state <> 'claimed'",
                [&id.0[..]],
            )?;
            Ok((true, changed == 1))
        })
    }

    /// Forgets every unclaimed upload created on or before `day`, with its
    /// bytes; returns their ids.
    pub fn expire_uploads(&self, day: Day) -> Result<Vec<UploadId>, StoreError> {
        let cutoff = day.to_string();
        self.write(move |tx| {
            let ids = tx
                .prepare("SELECT id FROM uploads WHERE state <> 'claimed' AND day <= ?1")?
                .query_map([&cutoff], |row| Ok(UploadId(blob16(row.get(0)?))))?
                .collect::<Result<Vec<_>, _>>()?;
            tx.execute(
                "DELETE FROM upload_chunks WHERE upload_id IN
                   (SELECT id FROM uploads WHERE state <> 'claimed' AND day <= ?1)",
                [&cutoff],
            )?;
            tx.execute(
                "DELETE FROM uploads WHERE state <> 'claimed' AND day <= ?1",
                [&cutoff],
            )?;
            Ok((true, ids))
        })
    }

    /// Moves a version-3 attachment file's bytes in (`Uploads::open`): the
    /// piece at `start` of a complete or claimed upload, outside the quota
    /// (the bytes were already counted on disk).
    pub fn adopt_chunk(&self, id: UploadId, start: u64, data: Vec<u8>) -> Result<(), StoreError> {
        self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE uploads SET received = ?2 + ?3
                  WHERE id = ?1 AND state <> 'pending' AND received = ?2",
                params![&id.0[..], start as i64, data.len() as i64],
            )?;
            if changed == 1 {
                tx.execute(
                    "INSERT INTO upload_chunks (upload_id, start, data) VALUES (?1, ?2, ?3)",
                    params![&id.0[..], start as i64, data],
                )?;
            }
            Ok((true, ()))
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

    /// Gives every message on this counsellor's cases that was written by
    /// someone else and not yet given to this counsellor its delivery
    /// number (protocol.md §7a): after the highest number given or
    /// acknowledged so far, ordered by case id (random) and by position
    /// within the case. So the order says which messages came between two
    /// syncs, never which came first among them. One statement: a sync
    /// with 100,000 waiting messages holds none of them in memory.
    pub fn assign_deliveries(&self, counsellor: &str) -> Result<usize, StoreError> {
        let counsellor = counsellor.to_string();
        self.write(move |tx| {
            let acknowledged: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT inbox_ack FROM counsellor_sync WHERE counsellor = ?1",
                    [&counsellor],
                    |row| row.get(0),
                )
                .optional()?;
            let acknowledged = acknowledged.map(blob_u64).transpose()?.unwrap_or(0);
            let given: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM deliveries WHERE counsellor = ?1",
                [&counsellor],
                |row| row.get(0),
            )?;
            // Numbers stay below 2^63 (SQLite's integers); a laptop that
            // acknowledged more is answered from there on.
            let base = (given as u64).max(acknowledged).min(i64::MAX as u64 / 2) as i64;
            let added = tx.execute(
                "INSERT INTO deliveries (counsellor, seq, message_id)
                 SELECT ?1, ?2 + ROW_NUMBER() OVER (ORDER BY m.case_id, m.position), m.id
                   FROM case_counsellors c JOIN messages m ON m.case_id = c.case_id
                  WHERE c.counsellor = ?1 AND m.author <> ?1
                    AND NOT EXISTS (SELECT 1 FROM deliveries d
                                     WHERE d.counsellor = ?1 AND d.message_id = m.id)",
                params![counsellor, base],
            )?;
            Ok((true, added))
        })
    }

    /// This counsellor's delivered messages after `after_seq`, in delivery
    /// order, while `fits` says the next one still fits (the first always
    /// comes). Rows are read one at a time and at most `MAX_ENTRIES`: the
    /// read stops where the answer is full, whatever is waiting.
    pub fn inbox(
        &self,
        counsellor: &str,
        after_seq: u64,
        mut fits: impl FnMut(&InboxEntry) -> bool,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let connection = self.read()?;
        connection.prepare_cached("BEGIN")?.execute([])?;
        let read = (|| {
            let mut statement = connection.prepare_cached(
                "SELECT d.seq, m.id, m.case_id, m.author, m.kind, m.day, m.body
                   FROM deliveries d JOIN messages m ON m.id = d.message_id
                  WHERE d.counsellor = ?1 AND d.seq > ?2
                  ORDER BY d.seq LIMIT ?3",
            )?;
            let mut attachments = connection.prepare_cached(
                "SELECT id, length FROM uploads WHERE message_id = ?1 ORDER BY position",
            )?;
            let after = after_seq.min(i64::MAX as u64) as i64;
            let mut rows = statement.query(params![
                counsellor,
                after,
                crate::format::bundle::MAX_ENTRIES as i64
            ])?;
            let mut entries = Vec::new();
            while let Some(row) = rows.next()? {
                let mut entry = InboxEntry {
                    seq: row.get::<_, i64>(0)? as u64,
                    id: MessageId(blob16(row.get(1)?)),
                    case: CaseId(blob16(row.get(2)?)),
                    author: row.get(3)?,
                    kind: row.get(4)?,
                    day: parse_day(&row.get::<_, String>(5)?),
                    body: row.get(6)?,
                    attachments: Vec::new(),
                };
                entry.attachments = attachments
                    .query_map([&entry.id.0[..]], |row| {
                        Ok(EntryAttachment {
                            upload: UploadId(blob16(row.get(0)?)),
                            length: row.get::<_, i64>(1)? as u64,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                if !entries.is_empty() && !fits(&entry) {
                    break;
                }
                if entries.is_empty() {
                    fits(&entry);
                }
                entries.push(entry);
            }
            Ok::<_, StoreError>(entries)
        })();
        let ended = connection
            .prepare_cached("COMMIT")
            .and_then(|mut commit| commit.execute([]));
        let entries = read?;
        ended?;
        Ok(entries)
    }
}

impl SqliteStore {
    /// Deletes every case closed on or before `closed_by`, with its
    /// messages, for real: `secure_delete` overwrites the freed pages and a
    /// truncating checkpoint empties the WAL, so no byte of the ciphertext is
    /// left in the database. Returns what was deleted; the caller removes
    /// the deleted uploads' files.
    pub fn purge_closed(&self, closed_by: Day) -> Result<Purged, StoreError> {
        let cutoff = closed_by.to_string();
        self.purge(move |tx| {
            delete_cases(
                tx,
                "SELECT id FROM cases WHERE closed_day IS NOT NULL AND closed_day <= ?1",
                &[cutoff],
            )
        })
    }

    /// Deletes, as `purge_closed` does, every closed case whose retention
    /// has passed on `today`: a case is kept `retention[counsellor]` days
    /// after closure (its organisation's period; the longest when its
    /// counsellors' differ), or `default_days` for a counsellor not listed.
    pub fn purge_expired(
        &self,
        today: Day,
        retention: std::collections::BTreeMap<String, u32>,
        default_days: u32,
    ) -> Result<Purged, StoreError> {
        self.purge(move |tx| {
            let mut closed: std::collections::BTreeMap<Vec<u8>, (String, u32)> =
                std::collections::BTreeMap::new();
            {
                let mut rows = tx.prepare(
                    "SELECT c.id, c.closed_day, cc.counsellor FROM cases c
                     LEFT JOIN case_counsellors cc ON cc.case_id = c.id
                     WHERE c.closed_day IS NOT NULL",
                )?;
                let rows = rows.query_map([], |row| {
                    Ok((
                        row.get::<_, Vec<u8>>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Option<String>>(2)?,
                    ))
                })?;
                for row in rows {
                    let (id, day, counsellor) = row?;
                    let days = counsellor
                        .and_then(|c| retention.get(&c).copied())
                        .unwrap_or(default_days);
                    let entry = closed.entry(id).or_insert((day, 0));
                    entry.1 = entry.1.max(days);
                }
            }
            tx.execute(
                "CREATE TEMP TABLE IF NOT EXISTS purge_doomed (id BLOB PRIMARY KEY)",
                [],
            )?;
            tx.execute("DELETE FROM temp.purge_doomed", [])?;
            for (id, (day, days)) in &closed {
                let cutoff = crate::format::day::retention_cutoff(today, *days);
                // Days are ISO dates, so text order is date order.
                if day.as_str() <= cutoff.to_string().as_str() {
                    tx.execute("INSERT INTO temp.purge_doomed (id) VALUES (?1)", [id])?;
                }
            }
            let purged = delete_cases(tx, "SELECT id FROM temp.purge_doomed", &[]);
            tx.execute("DELETE FROM temp.purge_doomed", [])?;
            purged
        })
    }

    /// Runs a deletion on the writer and, when it deleted a case, empties
    /// the WAL so no deleted page survives there.
    fn purge(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<Purged, StoreError> + Send + 'static,
    ) -> Result<Purged, StoreError> {
        let purged = self.write(move |tx| Ok((true, work(tx)?)))?;
        if purged.cases > 0 {
            // Copy the WAL into the database and empty it, so the deleted
            // pages (already zeroed by secure_delete) leave no copy behind.
            let connection = open_connection(&self.path)?;
            connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(purged)
    }

    /// Whether the database answers (`GET /healthz`).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.read()?.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
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

/// Deletes the cases `doomed` (an SQL query of case ids, with `params`)
/// with their messages, deliveries and uploads, for real (`secure_delete`).
/// Returns what was deleted; the caller removes the uploads' files.
fn delete_cases(
    tx: &rusqlite::Transaction<'_>,
    doomed: &str,
    params: &[String],
) -> Result<Purged, StoreError> {
    let params = || rusqlite::params_from_iter(params.iter());
    let doomed_messages = format!("SELECT id FROM messages WHERE case_id IN ({doomed})");
    let uploads = tx
        .prepare(&format!(
            "SELECT id FROM uploads WHERE message_id IN ({doomed_messages})"
        ))?
        .query_map(params(), |row| Ok(UploadId(blob16(row.get(0)?))))?
        .collect::<Result<Vec<_>, _>>()?;
    tx.execute(
        &format!(
            "DELETE FROM upload_chunks WHERE upload_id IN
               (SELECT id FROM uploads WHERE message_id IN ({doomed_messages}))"
        ),
        params(),
    )?;
    tx.execute(
        &format!("DELETE FROM uploads WHERE message_id IN ({doomed_messages})"),
        params(),
    )?;
    tx.execute(
        &format!("DELETE FROM deliveries WHERE message_id IN ({doomed_messages})"),
        params(),
    )?;
    tx.execute(
        &format!("DELETE FROM messages WHERE case_id IN ({doomed})"),
        params(),
    )?;
    tx.execute(
        &format!("DELETE FROM case_counsellors WHERE case_id IN ({doomed})"),
        params(),
    )?;
    let cases = tx.execute(
        &format!("DELETE FROM cases WHERE id IN ({doomed})"),
        params(),
    )?;
    Ok(Purged { cases, uploads })
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
    let (count, bytes): (i64, i64) = tx
        .prepare_cached("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages WHERE case_id = ?1")?
        .query_row([&case.0[..]], |row| Ok((row.get(0)?, row.get(1)?)))?;
    if count >= MAX_CASE_MESSAGES || bytes.saturating_add(message.len() as i64) > MAX_CASE_BYTES {
        return Ok(FollowUp::CaseFull);
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

const UPLOAD_ROW: &str = "SELECT id, length, received, state FROM uploads";

fn upload_row(connection: &Connection, id: &UploadId) -> Result<Option<UploadRow>, StoreError> {
    Ok(connection
        .prepare_cached(&format!("{UPLOAD_ROW} WHERE id = ?1"))?
        .query_row([&id.0[..]], read_upload_row)
        .optional()?)
}

fn read_upload_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRow> {
    let state: String = row.get(3)?;
    Ok(UploadRow {
        id: UploadId(blob16(row.get(0)?)),
        length: row.get::<_, i64>(1)? as u64,
        received: row.get::<_, i64>(2)? as u64,
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
    let last: Option<(Vec<u8>, Vec<u8>)> = tx
        .query_row(
            "SELECT counter, manifest_hash FROM counsellor_sync WHERE counsellor = ?1",
            [counsellor],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if let Some((last_counter, last_hash)) = last {
        let last_counter = blob_u64(last_counter)?;
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
        introduce,
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
            // The introduced join the case with the reply that introduces
            // them, never without it.
            for newcomer in introduce {
                tx.execute(
                    "INSERT OR IGNORE INTO case_counsellors (case_id, counsellor) VALUES (?1, ?2)",
                    params![&case.0[..], newcomer],
                )?;
            }
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
            params![counsellor, u64_blob(counter), &manifest_hash[..], u64_blob(inbox_ack)],
        )?;
    Ok(SyncOutcome::Applied(ids))
}

/// Adds a message at the end of its case: its position counts within the
/// case only, so it says nothing about other cases' messages.
fn insert_message(
    tx: &rusqlite::Transaction<'_>,
    id: MessageId,
    case: CaseId,
    author: &str,
    kind: &str,
    day: Day,
    body: &AgeBlob,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO messages (id, case_id, position, author, kind, day, size, body_sha256, body)
         VALUES (?1, ?2, (SELECT COALESCE(MAX(position) + 1, 0) FROM messages WHERE case_id = ?2),
                 ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        &id.0[..],
        &case.0[..],
        author,
        kind,
        day.to_string(),
        body.len() as i64,
        Sha256::digest(body.as_bytes()).to_vec(),
        body.as_bytes()
    ])?;
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
    // Tables are rebuilt (version 4): references are checked once at the
    // end, not while a table is moved (this pragma is ignored inside a
    // transaction, so it is set before).
    connection.execute_batch("PRAGMA foreign_keys = OFF")?;
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
    if version < 4 {
        tx.execute_batch(MIGRATE_V3_TO_V4)?;
        let rows = tx
            .prepare(
                "SELECT counsellor, counter, manifest_hash, inbox_ack FROM v3_counsellor_sync",
            )?
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (counsellor, counter, hash, ack) in rows {
            // Version 3 kept u64 values as i64 (2^64−1 read −1): the same
            // 64 bits, now written as what they mean.
            tx.execute(
                "INSERT INTO counsellor_sync (counsellor, counter, manifest_hash, inbox_ack)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    counsellor,
                    u64_blob(counter as u64),
                    hash,
                    u64_blob(ack as u64)
                ],
            )?;
        }
        tx.execute_batch(MIGRATE_V3_TO_V4_END)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    let broken: Option<String> = tx
        .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
        .optional()?;
    if let Some(table) = broken {
        return Err(StoreError::Migration(format!(
            "a reference in {table} points at nothing"
        )));
    }
    tx.commit()?;
    connection.execute_batch("PRAGMA foreign_keys = ON")?;
    Ok(())
}

/// A u64 as 8 big-endian bytes: SQLite's integers stop at 2^63−1.
fn u64_blob(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

fn blob_u64(bytes: Vec<u8>) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Damaged("a counter is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::format::bundle::OutboxKind;
    use crate::format::derive::LookupKey;
    use std::collections::BTreeMap;

    fn message() -> AgeBlob {
        let recipient = age::x25519::Identity::generate().to_public();
        AgeBlob::parse_message(age::encrypt(&recipient, &[b' '; 4096]).unwrap()).unwrap()
    }

    #[test]
    fn case_life_cycle() {
        each_backend(|store| {
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
            store.assign_deliveries("vp-a").unwrap();
            store.assign_deliveries("vp-b").unwrap();
            assert_eq!(store.inbox("vp-a", 0, |_| true).unwrap().len(), 2);
            assert_eq!(store.inbox("vp-b", 0, |_| true).unwrap().len(), 0);
        });
    }

    #[test]
    fn each_organisation_keeps_closed_cases_for_its_own_period() {
        each_backend(each_organisation_keeps_its_period);
    }

    fn each_organisation_keeps_its_period(store: &Store) {
        let mut cases = Vec::new();
        for (n, counsellor) in [(1u8, "vp-short"), (2, "vp-default")] {
            let lookup = LookupKey::from_hex(&format!("{n:02x}").repeat(32))
                .unwrap()
                .hash();
            store
                .create_case(lookup, vec![counsellor.into()], message(), vec![])
                .unwrap();
            store.assign_deliveries(counsellor).unwrap();
            let case = store.inbox(counsellor, 0, |_| true).unwrap()[0].case;
            let outcome = store
                .apply_outbox(
                    counsellor,
                    1,
                    &[n; 32],
                    0,
                    vec![OutboxWrite {
                        id: MessageId::random(),
                        case,
                        body: message(),
                        kind: OutboxKind::Close,
                        introduce: Vec::new(),
                    }],
                )
                .unwrap();
            assert!(matches!(outcome, SyncOutcome::Applied(_)));
            cases.push(lookup);
        }
        let closed = Day::today();
        let day = |n: i64| Day(closed.0 + time::Duration::days(n));
        let rules = || BTreeMap::from([("vp-short".to_string(), 10)]);
        assert_eq!(store.purge_expired(day(9), rules(), 30).unwrap().cases, 0);
        assert_eq!(store.purge_expired(day(10), rules(), 30).unwrap().cases, 1);
        assert!(
            store.thread(&cases[0]).unwrap().is_none(),
            "the short one went"
        );
        assert!(store.thread(&cases[1]).unwrap().is_some());
        assert_eq!(store.purge_expired(day(29), rules(), 30).unwrap().cases, 0);
        assert_eq!(store.purge_expired(day(30), rules(), 30).unwrap().cases, 1);
        assert!(store.thread(&cases[1]).unwrap().is_none());
    }

    #[test]
    fn look_ups_reuse_their_prepared_statements() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
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

    /// Runs `test` on a SQLite store in a new directory, then on a
    /// PostgreSQL store in a new database of the server that
    /// `MELDKLUIS_TEST_POSTGRES_URL` names (tests/postgres.sh starts one).
    /// Without it the PostgreSQL half is skipped, with a note, unless
    /// `MELDKLUIS_REQUIRE_POSTGRES=1` (tests/run-all.sh) makes that a failure.
    pub(crate) fn each_backend(test: impl Fn(&Store)) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        test(&store);
        drop(store);
        if let Some(database) = postgres_test_database() {
            let store = database.open();
            test(&store);
        }
    }

    /// A new, empty database on the test PostgreSQL, dropped afterwards.
    pub(crate) struct TestDatabase {
        admin: String,
        name: String,
    }

    impl TestDatabase {
        pub(crate) fn url(&self) -> String {
            let (server, _) = self.admin.rsplit_once('/').expect("a URL with a database");
            format!("{server}/{}", self.name)
        }

        /// A store (a node) on this database; open several for several nodes.
        pub(crate) fn open(&self) -> Store {
            Store::open_postgres(&self.url(), None).unwrap()
        }
    }

    #[cfg(feature = "postgres")]
    impl Drop for TestDatabase {
        fn drop(&mut self) {
            if let Ok(mut client) = ::postgres::Client::connect(&self.admin, ::postgres::NoTls) {
                let _ = client.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ));
            }
        }
    }

    pub(crate) fn postgres_test_database() -> Option<TestDatabase> {
        let required = std::env::var("MELDKLUIS_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let Ok(admin) = std::env::var("MELDKLUIS_TEST_POSTGRES_URL") else {
            assert!(
                !required,
                "MELDKLUIS_REQUIRE_POSTGRES=1 but MELDKLUIS_TEST_POSTGRES_URL is not set: \
                 run the tests through tests/postgres.sh"
            );
            eprintln!("PostgreSQL half skipped: MELDKLUIS_TEST_POSTGRES_URL is not set");
            return None;
        };
        #[cfg(feature = "postgres")]
        {
            let name = format!("t_{}", hex::encode(rand::random::<[u8; 8]>()));
            let mut client = ::postgres::Client::connect(&admin, ::postgres::NoTls)
                .expect("the test PostgreSQL answers");
            client
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .unwrap();
            Some(TestDatabase { admin, name })
        }
        #[cfg(not(feature = "postgres"))]
        {
            assert!(!required, "this build has no PostgreSQL support");
            let _ = admin;
            None
        }
    }

    /// Stores `bytes` as a whole upload of that length, complete.
    fn complete_upload(store: &Store, bytes: &[u8]) -> UploadId {
        let id = UploadId::random();
        assert!(store.create_upload(id, bytes.len() as u64).unwrap());
        assert!(matches!(
            store.append_chunk(id, 0, bytes.to_vec(), u64::MAX).unwrap(),
            Append::Stored(_)
        ));
        assert!(store.complete_upload(id).unwrap());
        id
    }

    #[test]
    fn uploads_are_claimed_once_counted_in_the_quota_and_expire_unless_claimed() {
        each_backend(|store| {
            let (a, b, c) = (UploadId::random(), UploadId::random(), UploadId::random());
            // Declaring reserves nothing: both fit, whatever their lengths.
            assert!(store.create_upload(a, 600).unwrap());
            assert!(store.create_upload(b, 900).unwrap());
            assert!(store.upload(&c).unwrap().is_none());
            // Bytes count as they arrive, against every upload's received bytes.
            let quota = 1000;
            assert!(matches!(
                store.append_chunk(a, 0, vec![1; 600], quota).unwrap(),
                Append::Stored(UploadRow { received: 600, .. })
            ));
            assert_eq!(
                store.append_chunk(b, 0, vec![2; 500], quota).unwrap(),
                Append::QuotaFull
            );
            assert_eq!(
                store.append_chunk(b, 10, vec![2; 5], quota).unwrap(),
                Append::WrongOffset(0)
            );
            assert_eq!(
                store.append_chunk(b, 0, vec![2; 901], u64::MAX).unwrap(),
                Append::PastLength
            );
            assert!(matches!(
                store.append_chunk(b, 0, vec![2; 400], quota).unwrap(),
                Append::Stored(_)
            ));
            // A refused chunk is cut back to where it started.
            store.cut_upload(b, 100).unwrap();
            assert_eq!(store.upload(&b).unwrap().unwrap().received, 100);
            assert_eq!(store.upload_chunk(&b, 0).unwrap(), Some(vec![2; 100]));
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
            store.assign_deliveries("vp-a").unwrap();
            let inbox = store.inbox("vp-a", 0, |_| true).unwrap();
            assert_eq!(inbox[0].attachments[0].upload, a);
            // Expiry takes the unclaimed one only.
            assert_eq!(store.expire_uploads(Day::today()).unwrap(), vec![b]);
            assert!(store.upload(&b).unwrap().is_none());
            assert!(store.upload(&a).unwrap().is_some());
        });
    }

    #[test]
    fn deliveries_are_numbered_once_per_counsellor_in_case_order() {
        each_backend(|store| {
            let mut lookups = Vec::new();
            for byte in ["ab", "cd", "ef"] {
                let lookup = LookupKey::from_hex(&byte.repeat(32)).unwrap().hash();
                store
                    .create_case(
                        lookup,
                        vec!["vp-a".into(), "vp-b".into()],
                        message(),
                        vec![],
                    )
                    .unwrap();
                store.add_follow_up(lookup, message(), vec![]).unwrap();
                lookups.push(lookup);
            }
            assert_eq!(store.assign_deliveries("vp-a").unwrap(), 6);
            assert_eq!(store.assign_deliveries("vp-a").unwrap(), 0, "once");
            let first = store.inbox("vp-a", 0, |_| true).unwrap();
            let seqs: Vec<u64> = first.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
            // Each case's report comes before its follow-up; cases in id order.
            for pair in first.chunks(2) {
                assert_eq!(pair[0].case, pair[1].case);
                assert_eq!(
                    (pair[0].kind.as_str(), pair[1].kind.as_str()),
                    ("report", "follow-up")
                );
            }
            let cases: Vec<_> = first.chunks(2).map(|p| p[0].case).collect();
            let mut sorted = cases.clone();
            sorted.sort();
            assert_eq!(cases, sorted);
            // The budget stops the read; the first entry always comes.
            assert_eq!(store.inbox("vp-a", 0, |_| false).unwrap().len(), 1);
            assert_eq!(store.inbox("vp-a", 4, |_| true).unwrap().len(), 2);
            // A new message comes after everything given so far.
            store.add_follow_up(lookups[0], message(), vec![]).unwrap();
            assert_eq!(store.assign_deliveries("vp-a").unwrap(), 1);
            assert_eq!(store.inbox("vp-a", 6, |_| true).unwrap()[0].seq, 7);
            // Another counsellor has its own numbers.
            assert_eq!(store.assign_deliveries("vp-b").unwrap(), 7);
            assert_eq!(store.inbox("vp-b", 0, |_| true).unwrap().len(), 7);
        });
    }

    #[test]
    fn a_case_stops_at_its_limit_with_a_clear_outcome() {
        each_backend(|store| {
            let lookup = LookupKey::from_hex(&"ab".repeat(32)).unwrap().hash();
            store
                .create_case(lookup, vec!["vp-a".into()], message(), vec![])
                .unwrap();
            for _ in 1..MAX_CASE_MESSAGES {
                assert!(matches!(
                    store.add_follow_up(lookup, message(), vec![]).unwrap(),
                    FollowUp::Stored(_)
                ));
            }
            assert!(matches!(
                store.add_follow_up(lookup, message(), vec![]).unwrap(),
                FollowUp::CaseFull
            ));
            assert_eq!(
                store.thread(&lookup).unwrap().unwrap().messages.len() as i64,
                MAX_CASE_MESSAGES
            );
        });
    }

    /// A version-3 database with two cases, messages in arrival order
    /// (`seq`), a counsellor that acknowledged up to seq 2 with counter
    /// 2^64−1 (stored then as −1), and a claimed and a pending upload.
    pub(crate) fn version_3_database(path: &Path) -> (UploadId, UploadId) {
        let db = Connection::open(path).unwrap();
        db.execute_batch(SCHEMA_V1).unwrap();
        db.execute_batch(MIGRATE_V1_TO_V2).unwrap();
        db.execute_batch(MIGRATE_V2_TO_V3).unwrap();
        db.execute_batch("PRAGMA user_version = 3").unwrap();
        let (a, b) = ([0xaau8; 16], [0xbbu8; 16]);
        for (case, hash) in [(a, [1u8; 32]), (b, [2u8; 32])] {
            db.execute(
                "INSERT INTO cases (id, lookup_hash, day) VALUES (?1, ?2, '2026-11-30')",
                params![&case[..], &hash[..]],
            )
            .unwrap();
            db.execute(
                "INSERT INTO case_counsellors (case_id, counsellor) VALUES (?1, 'vp-a')",
                params![&case[..]],
            )
            .unwrap();
        }
        // seq 1: case a report; 2: case b report; 3: a reply on a; 4: a
        // follow-up on a.
        for (n, case, author, kind) in [
            (1u8, a, "melder", "report"),
            (2, b, "melder", "report"),
            (3, a, "vp-a", "reply"),
            (4, a, "melder", "follow-up"),
        ] {
            db.execute(
                "INSERT INTO messages (id, case_id, author, kind, day, size, body_sha256, body)
                 VALUES (?1, ?2, ?3, ?4, '2026-11-30', 3, ?5, x'010203')",
                params![&[n; 16][..], &case[..], author, kind, &[n; 32][..]],
            )
            .unwrap();
        }
        db.execute(
            "INSERT INTO counsellor_sync VALUES ('vp-a', -1, x'00', 2)",
            [],
        )
        .unwrap();
        let (claimed, pending) = (UploadId([0xcc; 16]), UploadId([0xdd; 16]));
        db.execute(
            "INSERT INTO uploads VALUES (?1, 3000, '2026-11-30', 'claimed', ?2, 0)",
            params![&claimed.0[..], &[4u8; 16][..]],
        )
        .unwrap();
        db.execute(
            "INSERT INTO uploads VALUES (?1, 3000, '2026-11-30', 'pending', NULL, NULL)",
            params![&pending.0[..]],
        )
        .unwrap();
        (claimed, pending)
    }

    #[test]
    fn version_3_is_rebuilt_without_rowids_and_keeps_every_delivery_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let (claimed, pending) = version_3_database(&path);
        let store = SqliteStore::open(&path).unwrap();
        let connection = store.read().unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        for table in [
            "cases",
            "case_counsellors",
            "messages",
            "uploads",
            "counsellor_sync",
        ] {
            assert!(
                connection
                    .prepare(&format!("SELECT rowid FROM {table}"))
                    .is_err(),
                "{table} has no rowid"
            );
        }
        // Positions within each case follow the old order there.
        let positions: Vec<(u8, i64)> = connection
            .prepare("SELECT id, position FROM messages ORDER BY case_id, position")
            .unwrap()
            .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?[0], r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(positions, vec![(1, 0), (3, 1), (4, 2), (2, 0)]);
        let counter: Vec<u8> = connection
            .query_row("SELECT counter FROM counsellor_sync", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blob_u64(counter).unwrap(), u64::MAX, "no longer −1");
        drop(connection);
        // The laptop acknowledged seq 2: it gets 4 (its own reply, 3, never).
        assert_eq!(store.assign_deliveries("vp-a").unwrap(), 0);
        let inbox = store.inbox("vp-a", 2, |_| true).unwrap();
        assert_eq!(inbox.len(), 1);
        assert_eq!((inbox[0].seq, inbox[0].id.0[0]), (4, 4));
        assert_eq!(inbox[0].attachments[0].upload, claimed);
        // The pending upload could not resume; the claimed one waits for
        // its file (Uploads::open).
        assert!(store.upload(&pending).unwrap().is_none());
        let row = store.upload(&claimed).unwrap().unwrap();
        assert_eq!((row.state, row.received), (UploadState::Claimed, 0));
        // New messages come after everything numbered so far.
        let lookup = LookupHash([2u8; 32]);
        store.add_follow_up(lookup, message(), vec![]).unwrap();
        assert_eq!(store.assign_deliveries("vp-a").unwrap(), 1);
        assert_eq!(store.inbox("vp-a", 4, |_| true).unwrap()[0].seq, 5);
    }

    #[test]
    fn an_attachment_is_read_back_piece_by_piece() {
        each_backend(|store| {
            let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
            let id = complete_upload(store, &bytes);
            assert_eq!(store.upload_chunk(&id, 0).unwrap().unwrap(), bytes);
        });
    }

    /// Two stores on one database, as two server nodes: two SQLite stores
    /// on one file, two PostgreSQL pools on one database.
    fn each_backend_pair(test: impl Fn(&Store, &Store)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let (a, b) = (Store::open(&path).unwrap(), Store::open(&path).unwrap());
        test(&a, &b);
        drop((a, b));
        if let Some(database) = postgres_test_database() {
            let (a, b) = (database.open(), database.open());
            test(&a, &b);
        }
    }

    /// A case for vp-a with its report; returns its lookup hash and id.
    fn case_for_vp_a(store: &Store, byte: u8) -> (LookupHash, CaseId) {
        let lookup = LookupHash([byte; 32]);
        store
            .create_case(lookup, vec!["vp-a".into()], message(), vec![])
            .unwrap();
        store.assign_deliveries("vp-a").unwrap();
        let case = store
            .inbox("vp-a", 0, |_| true)
            .unwrap()
            .into_iter()
            .rev()
            .find(|entry| store.thread(&lookup).unwrap().unwrap().messages[0].id == entry.id)
            .unwrap()
            .case;
        (lookup, case)
    }

    fn reply(case: CaseId, kind: OutboxKind) -> OutboxWrite {
        OutboxWrite {
            id: MessageId::random(),
            case,
            body: message(),
            kind,
            introduce: Vec::new(),
        }
    }

    /// An introduction (protocol.md §10.5) makes the colleague one of the
    /// case's counsellors in the same transaction as the reply: their next
    /// inbox holds the whole case, the introduction last; applying the same
    /// outbox again adds nothing.
    #[test]
    fn an_introduced_counsellor_receives_the_whole_case() {
        each_backend(|store| {
            let (lookup, case) = case_for_vp_a(store, 0x21);
            assert!(store.inbox("vp-b", 0, |_| true).unwrap().is_empty());
            let introduction = OutboxWrite {
                introduce: vec!["vp-b".into()],
                ..reply(case, OutboxKind::Reply)
            };
            let id = introduction.id;
            let applied = store
                .apply_outbox("vp-a", 1, &[0x21; 32], 0, vec![introduction])
                .unwrap();
            assert!(matches!(applied, SyncOutcome::Applied(_)));
            store.assign_deliveries("vp-b").unwrap();
            let inbox = store.inbox("vp-b", 0, |_| true).unwrap();
            let ids: Vec<MessageId> = inbox.iter().map(|e| e.id).collect();
            let thread = store.thread(&lookup).unwrap().unwrap();
            assert_eq!(ids, vec![thread.messages[0].id, id]);
            assert_eq!(thread.counsellors, vec!["vp-a".to_string(), "vp-b".into()]);
            let again = OutboxWrite {
                id,
                introduce: vec!["vp-b".into()],
                ..reply(case, OutboxKind::Reply)
            };
            store
                .apply_outbox("vp-a", 2, &[0x22; 32], 0, vec![again])
                .unwrap();
            store.assign_deliveries("vp-b").unwrap();
            assert_eq!(store.inbox("vp-b", 0, |_| true).unwrap().len(), 2);
        });
    }

    #[test]
    fn the_same_outbox_through_two_nodes_at_once_is_applied_once() {
        each_backend_pair(|a, b| {
            let (lookup, case) = case_for_vp_a(a, 0x11);
            let rounds = 8u64;
            for counter in 1..=rounds {
                let item = reply(case, OutboxKind::Reply);
                let hash = [counter as u8; 32];
                let barrier = std::sync::Barrier::new(2);
                let outcomes: Vec<SyncOutcome> = std::thread::scope(|scope| {
                    let runs: Vec<_> = [a, b]
                        .into_iter()
                        .map(|node| {
                            let items = vec![OutboxWrite {
                                id: item.id,
                                case,
                                body: item.body.clone(),
                                kind: OutboxKind::Reply,
                                introduce: Vec::new(),
                            }];
                            let barrier = &barrier;
                            scope.spawn(move || {
                                barrier.wait();
                                node.apply_outbox("vp-a", counter, &hash, 0, items).unwrap()
                            })
                        })
                        .collect();
                    runs.into_iter().map(|run| run.join().unwrap()).collect()
                });
                let applied = outcomes
                    .iter()
                    .filter(|o| matches!(o, SyncOutcome::Applied(_)))
                    .count();
                let retried = outcomes
                    .iter()
                    .filter(|o| matches!(o, SyncOutcome::Retried(_)))
                    .count();
                assert_eq!((applied, retried), (1, 1), "round {counter}");
            }
            let thread = b.thread(&lookup).unwrap().unwrap();
            assert_eq!(thread.messages.len() as u64, 1 + rounds, "each reply once");
        });
    }

    #[test]
    fn an_outbox_is_all_or_nothing_and_a_replay_changes_nothing() {
        each_backend(|store| {
            let (lookup, case) = case_for_vp_a(store, 0x22);
            let stranger = CaseId::random();
            let items = vec![
                reply(case, OutboxKind::Reply),
                reply(stranger, OutboxKind::Reply),
            ];
            let outcome = store.apply_outbox("vp-a", 1, &[1; 32], 0, items).unwrap();
            assert!(matches!(outcome, SyncOutcome::UnknownCase(c) if c == stranger));
            assert_eq!(store.thread(&lookup).unwrap().unwrap().messages.len(), 1);
            // The counter did not move: the same counter applies now.
            let outcome = store
                .apply_outbox("vp-a", 1, &[2; 32], 0, vec![reply(case, OutboxKind::Close)])
                .unwrap();
            assert!(matches!(outcome, SyncOutcome::Applied(_)));
            assert_eq!(store.closed_day(&lookup).unwrap(), Some(Day::today()));
            // An older or equal counter with other contents is a replay.
            for (counter, hash) in [(1, [3; 32]), (0, [2; 32])] {
                let outcome = store
                    .apply_outbox(
                        "vp-a",
                        counter,
                        &hash,
                        0,
                        vec![reply(case, OutboxKind::Reopen)],
                    )
                    .unwrap();
                assert!(matches!(outcome, SyncOutcome::Replayed));
            }
            assert_eq!(store.closed_day(&lookup).unwrap(), Some(Day::today()));
            assert_eq!(store.thread(&lookup).unwrap().unwrap().messages.len(), 2);
            // Another counsellor cannot write to vp-a's case.
            let outcome = store
                .apply_outbox("vp-b", 1, &[4; 32], 0, vec![reply(case, OutboxKind::Reply)])
                .unwrap();
            assert!(matches!(outcome, SyncOutcome::UnknownCase(_)));
        });
    }

    #[test]
    fn a_purge_deletes_the_case_its_messages_and_its_attachments() {
        each_backend(|store| {
            let bytes = vec![7u8; 5000];
            let upload = complete_upload(store, &bytes);
            let lookup = LookupHash([0x33; 32]);
            store
                .create_case(lookup, vec!["vp-a".into()], message(), vec![upload])
                .unwrap();
            let (kept, _) = case_for_vp_a(store, 0x34);
            store.assign_deliveries("vp-a").unwrap();
            let case = store
                .inbox("vp-a", 0, |_| true)
                .unwrap()
                .into_iter()
                .find(|e| !e.attachments.is_empty())
                .unwrap()
                .case;
            store
                .apply_outbox("vp-a", 1, &[1; 32], 0, vec![reply(case, OutboxKind::Close)])
                .unwrap();
            // Not yet: closed today, retention up to yesterday.
            let yesterday = Day(Day::today().0 - time::Duration::days(1));
            assert_eq!(store.purge_closed(yesterday).unwrap().cases, 0);
            let purged = store.purge_closed(Day::today()).unwrap();
            assert_eq!((purged.cases, purged.uploads), (1, vec![upload]));
            assert!(store.thread(&lookup).unwrap().is_none());
            assert!(store.upload(&upload).unwrap().is_none());
            assert!(store.upload_chunk(&upload, 0).unwrap().is_none());
            assert_eq!(store.uploads_received().unwrap(), 0);
            assert!(
                store.thread(&kept).unwrap().is_some(),
                "the open case stays"
            );
            assert_eq!(store.purge_closed(Day::today()).unwrap().cases, 0);
        });
    }

    #[test]
    fn follow_ups_through_two_nodes_at_once_all_land_in_one_order() {
        each_backend_pair(|a, b| {
            let (lookup, _) = case_for_vp_a(a, 0x44);
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|scope| {
                for node in [a, b] {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        for _ in 0..6 {
                            assert!(matches!(
                                node.add_follow_up(lookup, message(), vec![]).unwrap(),
                                FollowUp::Stored(_)
                            ));
                        }
                    });
                }
            });
            let from_a = a.thread(&lookup).unwrap().unwrap().messages;
            let from_b = b.thread(&lookup).unwrap().unwrap().messages;
            assert_eq!(from_a.len(), 13);
            let ids = |m: &[StoredMessage]| m.iter().map(|m| m.id).collect::<Vec<_>>();
            assert_eq!(ids(&from_a), ids(&from_b), "one order, seen from both");
            // Delivered once each, numbered 1…13 whichever node numbers.
            std::thread::scope(|scope| {
                scope.spawn(|| a.assign_deliveries("vp-a").unwrap());
                scope.spawn(|| b.assign_deliveries("vp-a").unwrap());
            });
            let seqs: Vec<u64> = a
                .inbox("vp-a", 0, |_| true)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(seqs, (1..=13).collect::<Vec<_>>());
        });
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_retention_runs_on_one_node_at_a_time() {
        let Some(database) = postgres_test_database() else {
            return;
        };
        let store = database.open();
        let (lookup, case) = case_for_vp_a(&store, 0x55);
        store
            .apply_outbox("vp-a", 1, &[1; 32], 0, vec![reply(case, OutboxKind::Close)])
            .unwrap();
        // Another node holds the retention lock: this one deletes nothing.
        let mut other = ::postgres::Client::connect(&database.url(), ::postgres::NoTls).unwrap();
        other
            .execute("SELECT pg_advisory_lock($1)", &[&0x6d65_6c64_0000_0002i64])
            .unwrap();
        assert_eq!(store.purge_closed(Day::today()).unwrap().cases, 0);
        assert!(store.thread(&lookup).unwrap().is_some());
        other
            .execute(
                "SELECT pg_advisory_unlock($1)",
                &[&0x6d65_6c64_0000_0002i64],
            )
            .unwrap();
        assert_eq!(store.purge_closed(Day::today()).unwrap().cases, 1);
        assert!(store.thread(&lookup).unwrap().is_none());
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_schema_has_no_time_and_no_arrival_counter() {
        let Some(database) = postgres_test_database() else {
            return;
        };
        let store = database.open();
        case_for_vp_a(&store, 0x66);
        let mut client = ::postgres::Client::connect(&database.url(), ::postgres::NoTls).unwrap();
        let timed: i64 = client
            .query_one(
                "SELECT count(*) FROM information_schema.columns
                  WHERE table_schema = 'public'
                    AND (data_type LIKE 'time%' OR data_type = 'date' OR data_type = 'interval'
                         OR column_default IS NOT NULL OR is_identity = 'YES')",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(timed, 0, "no time, default or identity column");
        let sequences: i64 = client
            .query_one("SELECT count(*) FROM pg_sequences", &[])
            .unwrap()
            .get(0);
        assert_eq!(sequences, 0, "no sequence counts arrivals");
        let commit_times: String = client
            .query_one("SHOW track_commit_timestamp", &[])
            .unwrap()
            .get(0);
        assert_eq!(commit_times, "off");
        assert!(
            match &store {
                Store::Postgres(pg) => pg.metadata_findings().unwrap(),
                _ => unreachable!(),
            }
            .is_empty(),
            "tests/postgres.sh starts PostgreSQL with the settings docs/postgresql.md asks"
        );
    }
}
