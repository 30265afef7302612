//! The server's storage: one SQLite file in WAL mode with `synchronous=FULL`,
//! so a commit has reached the disk before a request is acknowledged.
//!
//! It holds only what protocol.md §7 lists. This is the one narrow interface a
//! replicated backend would have to implement. All calls block: handlers run
//! them through `spawn_blocking`.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::format::agefile::AgeBlob;
use crate::format::bundle::InboxEntry;
use crate::format::day::Day;
use crate::format::derive::LookupHash;
use crate::format::ids::{CaseId, MessageId};

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

/// The schema version this program writes.
pub const SCHEMA_VERSION: i64 = 2;

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
}

/// An outbox item ready to apply.
pub struct OutboxWrite {
    pub id: MessageId,
    pub case: CaseId,
    pub body: AgeBlob,
    /// This item closes the case.
    pub closes: bool,
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

/// Read connections kept open; more are opened when all are busy.
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
        if let Some(connection) = self.connection.take() {
            let mut pool = self.store.readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < READERS {
                pool.push(connection);
            }
        }
    }
}

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
    path: std::path::PathBuf,
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
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

    /// A read connection for the duration of the guard.
    fn read(&self) -> Result<Reader<'_>, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => open_connection(&self.path)?,
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
    ) -> Result<NewCase, StoreError> {
        self.write(move |tx| create_case(tx, &lookup, &counsellors, &report).map(|n| (true, n)))
    }

    /// The thread for a lookup key, or `None`.
    pub fn thread(&self, lookup: &LookupHash) -> Result<Option<Thread>, StoreError> {
        let connection = self.read()?;
        let Some(case) = case_by_lookup(&connection, lookup)? else {
            return Ok(None);
        };
        let mut statement = connection.prepare_cached(
            "SELECT counsellor FROM case_counsellors WHERE case_id = ?1 ORDER BY counsellor",
        )?;
        let counsellors = statement
            .query_map([&case.0[..]], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        let mut statement = connection.prepare_cached(
            "SELECT id, author, kind, day, body FROM messages WHERE case_id = ?1 ORDER BY seq",
        )?;
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

    /// Adds a melder's follow-up; `None` when no case has this lookup key.
    /// The identical message again (a retry) is stored once.
    pub fn add_follow_up(
        &self,
        lookup: LookupHash,
        message: AgeBlob,
    ) -> Result<Option<Day>, StoreError> {
        self.write(move |tx| add_follow_up(tx, &lookup, &message).map(|d| (true, d)))
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
        Ok(entries)
    }
}

impl Store {
    /// Deletes every case closed on or before `closed_by`, with its
    /// messages, for real: `secure_delete` overwrites the freed pages and a
    /// truncating checkpoint empties the WAL, so no byte of the ciphertext is
    /// left in the data directory. Returns the number of cases deleted.
    pub fn purge_closed(&self, closed_by: Day) -> Result<usize, StoreError> {
        let cutoff = closed_by.to_string();
        let deleted = self.write(move |tx| {
            let doomed = "SELECT id FROM cases WHERE closed_day IS NOT NULL AND closed_day <= ?1";
            tx.execute(
                &format!("DELETE FROM messages WHERE case_id IN ({doomed})"),
                [&cutoff],
            )?;
            tx.execute(
                &format!("DELETE FROM case_counsellors WHERE case_id IN ({doomed})"),
                [&cutoff],
            )?;
            let deleted = tx.execute(
                "DELETE FROM cases WHERE closed_day IS NOT NULL AND closed_day <= ?1",
                [&cutoff],
            )?;
            Ok((true, deleted))
        })?;
        if deleted > 0 {
            // Copy the WAL into the database and empty it, so the deleted
            // pages (already zeroed by secure_delete) leave no copy behind.
            let connection = open_connection(&self.path)?;
            connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(deleted)
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
    insert_message(
        tx,
        MessageId::random(),
        case,
        "melder",
        "report",
        day,
        report,
    )?;
    Ok(NewCase::Created(day))
}

fn add_follow_up(
    tx: &rusqlite::Transaction<'_>,
    lookup: &LookupHash,
    message: &AgeBlob,
) -> Result<Option<Day>, StoreError> {
    let Some(case) = case_by_lookup(tx, lookup)? else {
        return Ok(None);
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
        return Ok(Some(parse_day(&day)));
    }
    let day = Day::today();
    insert_message(
        tx,
        MessageId::random(),
        case,
        "melder",
        "follow-up",
        day,
        message,
    )?;
    Ok(Some(day))
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
        closes,
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
        if *closes {
            tx.execute(
                "UPDATE cases SET closed_day = ?2 WHERE id = ?1 AND closed_day IS NULL",
                params![&case.0[..], day.to_string()],
            )?;
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
                .create_case(lookup, counsellors.clone(), report.clone())
                .unwrap(),
            NewCase::Created(_)
        ));
        assert!(matches!(
            store
                .create_case(lookup, counsellors.clone(), report.clone())
                .unwrap(),
            NewCase::AlreadyStored(_)
        ));
        assert!(matches!(
            store
                .create_case(lookup, counsellors.clone(), message())
                .unwrap(),
            NewCase::CodeInUse
        ));
        store.add_follow_up(lookup, message()).unwrap().unwrap();
        let thread = store.thread(&lookup).unwrap().unwrap();
        assert_eq!(thread.counsellors, counsellors);
        assert_eq!(thread.messages.len(), 2);
        let unknown = LookupKey::from_hex(&"cd".repeat(32)).unwrap().hash();
        assert!(store.thread(&unknown).unwrap().is_none());
        assert!(store.add_follow_up(unknown, message()).unwrap().is_none());
        assert_eq!(store.inbox("vp-a", 0).unwrap().len(), 2);
        assert_eq!(store.inbox("vp-b", 0).unwrap().len(), 0);
    }
}
