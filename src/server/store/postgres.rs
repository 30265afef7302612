//! The PostgreSQL store: the same interface and promises as the SQLite one
//! (store.rs), for several server nodes on one database (docs/postgresql.md).
//!
//! Every write is one SERIALIZABLE transaction, retried when PostgreSQL
//! says it conflicted with another node's: two nodes that apply the same
//! outbox at once, number the same counsellor's deliveries or append to
//! the same case end as if one ran after the other. A commit returns only
//! when it is durable (`synchronous_commit = on` for every session).
//! Reads of more than one statement run in one REPEATABLE READ snapshot.
//!
//! The schema mirrors SQLite's version 4: random keys only, positions
//! within a case, delivery numbers given at delivery, attachments in
//! `upload_chunks`, days without times. What PostgreSQL itself still keeps
//! about order and time (row versions, the WAL) is in docs/postgresql.md.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, IsolationLevel, NoTls, Transaction};
use sha2::{Digest, Sha256};

use super::{
    Append, FollowUp, MAX_CASE_BYTES, MAX_CASE_MESSAGES, MAX_PENDING_UPLOADS, NewCase, OutboxWrite,
    Purged, StoreError, StoredMessage, SyncOutcome, Thread, UploadRow, UploadState, blob_u64,
    blob16, parse_day, u64_blob,
};
use crate::format::agefile::AgeBlob;
use crate::format::bundle::{EntryAttachment, InboxEntry, MAX_ENTRIES, OutboxKind};
use crate::format::day::Day;
use crate::format::derive::LookupHash;
use crate::format::ids::{CaseId, MessageId, UploadId};

/// The PostgreSQL schema this program writes. It starts at 4 to say that it
/// keeps SQLite's version-4 rules; there never were 1 to 3 here.
pub const SCHEMA_VERSION: i32 = 4;

/// Version 4. Never edit it once released: add a step instead.
const SCHEMA_V4: &str = "
CREATE TABLE meldkluis_schema (
    version     integer NOT NULL
);
CREATE TABLE cases (
    id          bytea PRIMARY KEY CHECK (length(id) = 16),  -- random
    lookup_hash bytea NOT NULL UNIQUE,      -- SHA-256 of the lookup key
    day         text NOT NULL,              -- YYYY-MM-DD of arrival, no time
    closed_day  text                        -- YYYY-MM-DD, set by a 'close' outbox item
);
CREATE INDEX cases_by_closed_day ON cases(closed_day) WHERE closed_day IS NOT NULL;
CREATE TABLE case_counsellors (
    case_id     bytea NOT NULL REFERENCES cases(id),
    counsellor  text NOT NULL,
    PRIMARY KEY (case_id, counsellor)
);
CREATE INDEX case_counsellors_by_counsellor ON case_counsellors(counsellor, case_id);
CREATE TABLE messages (
    id          bytea PRIMARY KEY CHECK (length(id) = 16),  -- random
    case_id     bytea NOT NULL REFERENCES cases(id),
    position    integer NOT NULL,           -- 0, 1, 2 … within its case only
    author      text NOT NULL,              -- 'melder' or a counsellor id
    kind        text NOT NULL,              -- report, follow-up, reply
    day         text NOT NULL,
    size        bigint NOT NULL,            -- ciphertext bytes (padded)
    body_sha256 bytea NOT NULL UNIQUE,      -- makes retries idempotent
    body        bytea NOT NULL,             -- the age file
    UNIQUE (case_id, position)
);
CREATE TABLE deliveries (
    counsellor  text NOT NULL,
    seq         bigint NOT NULL,            -- this counsellor's inbox order, given at delivery
    message_id  bytea NOT NULL REFERENCES messages(id),
    PRIMARY KEY (counsellor, seq),
    UNIQUE (counsellor, message_id)
);
CREATE TABLE counsellor_sync (
    counsellor    text PRIMARY KEY,
    counter       bytea NOT NULL,           -- 8 bytes big-endian: all of u64
    manifest_hash bytea NOT NULL,
    inbox_ack     bytea NOT NULL            -- 8 bytes big-endian
);
CREATE TABLE uploads (
    id          bytea PRIMARY KEY CHECK (length(id) = 16),  -- random
    length      bigint NOT NULL,            -- declared ciphertext bytes
    received    bigint NOT NULL,            -- bytes stored in upload_chunks
    day         text NOT NULL,              -- YYYY-MM-DD created, for expiry
    state       text NOT NULL CHECK (state IN ('pending', 'complete', 'claimed')),
    message_id  bytea REFERENCES messages(id),
    position    integer                     -- order within the message
);
CREATE INDEX uploads_by_message ON uploads(message_id, position) WHERE message_id IS NOT NULL;
CREATE TABLE upload_chunks (
    upload_id   bytea NOT NULL REFERENCES uploads(id),
    start       bigint NOT NULL,            -- offset of the first byte
    data        bytea NOT NULL,
    PRIMARY KEY (upload_id, start)
);
-- Ciphertext does not compress: store it out of line as it is, without
-- trying (pglz would spend CPU on every body for nothing).
ALTER TABLE messages ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE upload_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
INSERT INTO meldkluis_schema (version) VALUES (4);
";

/// Advisory lock keys (`pg_advisory_xact_lock`): one for creating the
/// schema (two nodes starting at once), one for the retention task (one
/// node at a time deletes closed cases).
const LOCK_SCHEMA: i64 = 0x6d65_6c64_0000_0001;
const LOCK_RETENTION: i64 = 0x6d65_6c64_0000_0002;

/// Connections each node keeps at most. Each is a PostgreSQL backend
/// process; 8 per node keeps a few nodes well inside the default
/// `max_connections` of 100.
const CONNECTIONS: usize = 8;

/// How often a write that conflicted with another transaction is tried.
const ATTEMPTS: u32 = 30;

/// The tables, for VACUUM after a purge (their TOAST tables come along).
const TABLES: &str = "cases, case_counsellors, messages, deliveries, uploads, upload_chunks";

pub struct PostgresStore {
    config: postgres::Config,
    pool: Mutex<Pool>,
    free: Condvar,
}

struct Pool {
    idle: Vec<Client>,
    /// Connections open now, idle or lent.
    open: usize,
}

impl Drop for PostgresStore {
    /// Closes the idle connections on a thread of their own: closing one
    /// blocks on the client's small runtime, which cannot run on a thread
    /// that drives tokio tasks (where the server's state may be dropped).
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.pool.get_mut().unwrap_or_else(|p| p.into_inner()).idle);
        let _ = std::thread::spawn(move || drop(idle)).join();
    }
}

/// A pooled connection, given back when dropped (unless it broke).
struct Lent<'a> {
    store: &'a PostgresStore,
    client: Option<Client>,
}

impl std::ops::Deref for Lent<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut pool = self.store.pool.lock().unwrap_or_else(|p| p.into_inner());
        match self.client.take() {
            // A transaction left open (a panic) rolls back when its
            // `Transaction` drops; a closed connection is not given back.
            Some(client) if !client.is_closed() => pool.idle.push(client),
            Some(broken) => {
                pool.open -= 1;
                // Dropping a client blocks (see `Drop for PostgresStore`).
                std::thread::spawn(move || drop(broken));
            }
            None => pool.open -= 1,
        }
        self.store.free.notify_one();
    }
}

impl From<postgres::Error> for StoreError {
    /// Keeps the SQLSTATE and PostgreSQL's one-line message, never its
    /// DETAIL: for a unique key that would quote the key (a lookup hash)
    /// into the server's log.
    fn from(error: postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => StoreError::Postgres {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None => StoreError::Postgres {
                code: String::new(),
                message: match error.code() {
                    Some(code) => format!("{} ({})", plain_kind(&error), code.code()),
                    None => plain_kind(&error),
                },
            },
        }
    }
}

/// A client-side error in words (I/O, closed connection, bad reply); these
/// carry no values from the database.
fn plain_kind(error: &postgres::Error) -> String {
    if error.is_closed() {
        "the connection to PostgreSQL is closed".into()
    } else {
        error.to_string()
    }
}

impl StoreError {
    fn sql_state(&self) -> Option<&str> {
        match self {
            StoreError::Postgres { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }

    /// How often a write that failed so is tried: a unique key that stays
    /// taken is not another node's work in progress but a real refusal.
    fn attempts(&self) -> u32 {
        if self.sql_state() == Some(SqlState::UNIQUE_VIOLATION.code()) {
            3
        } else {
            ATTEMPTS
        }
    }

    /// Another transaction got in the way; the same work again will do.
    fn is_conflict(&self) -> bool {
        [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            // Two nodes inserting the same key at once: the one that lost
            // sees the winner's row when it tries again.
            SqlState::UNIQUE_VIOLATION,
        ]
        .iter()
        .any(|state| self.sql_state() == Some(state.code()))
    }
}

/// PostgreSQL's SQLSTATE for a full disk (`53100`).
pub(super) fn is_disk_full_code(code: &str) -> bool {
    code == SqlState::DISK_FULL.code()
}

impl PostgresStore {
    /// Connects, creates the schema if the database has none (or checks
    /// its version), and keeps the connection for the pool. `password`,
    /// when given, replaces any in the URL (`database_password_FILE`).
    pub fn open(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        let mut config: postgres::Config = url.parse().map_err(|_| {
            StoreError::Migration(
                "database_url is not a PostgreSQL connection URL (postgres://user@host/db)".into(),
            )
        })?;
        if let Some(password) = password {
            config.password(password);
        }
        config.connect_timeout(Duration::from_secs(10));
        let store = PostgresStore {
            config,
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            free: Condvar::new(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self.config.connect(NoTls)?;
        // A commit is durable when it returns, whatever the database's
        // default (DESIGN §7). No statement or idle transaction may hold
        // locks for long if a node hangs.
        client.batch_execute(
            "SET synchronous_commit = on;
             SET statement_timeout = '120s';
             SET idle_in_transaction_session_timeout = '120s';
             SET lock_timeout = '60s'",
        )?;
        Ok(client)
    }

    /// A connection for the duration of the guard: an idle one, a new one
    /// while fewer than `CONNECTIONS` are open, or the next given back.
    fn lend(&self) -> Result<Lent<'_>, StoreError> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(client) = pool.idle.pop() {
                return Ok(Lent {
                    store: self,
                    client: Some(client),
                });
            }
            if pool.open < CONNECTIONS {
                pool.open += 1;
                drop(pool);
                return match self.connect() {
                    Ok(client) => Ok(Lent {
                        store: self,
                        client: Some(client),
                    }),
                    Err(e) => {
                        self.pool.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
                        self.free.notify_one();
                        Err(e)
                    }
                };
            }
            pool = self.free.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.lend()?;
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_SCHEMA])?;
        let exists: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables
                                 WHERE tablename = 'meldkluis_schema'
                                   AND schemaname = ANY (current_schemas(false)))",
                &[],
            )?
            .get(0);
        if !exists {
            tx.batch_execute(SCHEMA_V4)?;
        }
        let version: i32 = tx
            .query_one("SELECT max(version) FROM meldkluis_schema", &[])?
            .get(0);
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew(i64::from(version)));
        }
        tx.commit()?;
        Ok(())
    }

    /// Runs `work` in a SERIALIZABLE transaction and commits it if `work`
    /// says to keep its changes; tries again, from the start, when it
    /// conflicted with another transaction (on this node or another).
    fn write<T>(
        &self,
        mut work: impl FnMut(&mut Transaction<'_>) -> Result<(bool, T), StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = (|| -> Result<T, StoreError> {
                let mut client = self.lend()?;
                let mut tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()?;
                let (keep, value) = work(&mut tx)?;
                if keep {
                    tx.commit()?;
                } else {
                    tx.rollback()?;
                }
                Ok(value)
            })();
            match result {
                Err(e) if e.is_conflict() && attempt < e.attempts() => {
                    // Apart, so the same two do not meet again at once.
                    let spread = u64::from(rand::random::<u8>()) % (5 * u64::from(attempt));
                    std::thread::sleep(Duration::from_millis(1 + spread));
                }
                other => return other,
            }
        }
    }

    /// Runs `work` in one transaction, committed only if it says to keep
    /// its changes (for `migrate-store`, which runs alone: no retries).
    pub(super) fn with_transaction<T>(
        &self,
        work: impl FnOnce(&mut Transaction<'_>) -> Result<(bool, T), StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = self.lend()?;
        let mut tx = client.transaction()?;
        let (keep, value) = work(&mut tx)?;
        if keep {
            tx.commit()?;
        } else {
            tx.rollback()?;
        }
        Ok(value)
    }

    /// Runs `work` in one read-only snapshot.
    fn snapshot<T>(
        &self,
        work: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = self.lend()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let value = work(&mut tx)?;
        tx.commit()?;
        Ok(value)
    }

    pub fn create_case(
        &self,
        lookup: LookupHash,
        counsellors: Vec<String>,
        report: AgeBlob,
        uploads: Vec<UploadId>,
    ) -> Result<NewCase, StoreError> {
        let body_hash = Sha256::digest(report.as_bytes()).to_vec();
        self.write(|tx| {
            let existing = tx.query_opt(
                "SELECT id, day FROM cases WHERE lookup_hash = $1",
                &[&&lookup.0[..]],
            )?;
            if let Some(row) = existing {
                let case_id: Vec<u8> = row.get(0);
                let day: String = row.get(1);
                let same: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM messages
                                         WHERE case_id = $1 AND body_sha256 = $2)",
                        &[&case_id, &body_hash],
                    )?
                    .get(0);
                let outcome = if same {
                    NewCase::AlreadyStored(parse_day(&day))
                } else {
                    NewCase::CodeInUse
                };
                return Ok((false, outcome));
            }
            let case = CaseId::random();
            let day = Day::today();
            tx.execute(
                "INSERT INTO cases (id, lookup_hash, day) VALUES ($1, $2, $3)",
                &[&&case.0[..], &&lookup.0[..], &day.to_string()],
            )?;
            for counsellor in &counsellors {
                tx.execute(
                    "INSERT INTO case_counsellors (case_id, counsellor) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&&case.0[..], counsellor],
                )?;
            }
            let message = MessageId::random();
            insert_message(tx, message, case, "melder", "report", day, &report)?;
            if !claim_uploads(tx, message, &uploads)? {
                return Ok((false, NewCase::UnknownUpload));
            }
            Ok((true, NewCase::Created(day)))
        })
    }

    pub fn thread(&self, lookup: &LookupHash) -> Result<Option<Thread>, StoreError> {
        self.snapshot(|tx| {
            let Some(case) = case_by_lookup(tx, lookup)? else {
                return Ok(None);
            };
            let counsellors = tx
                .query(
                    "SELECT counsellor FROM case_counsellors WHERE case_id = $1
                      ORDER BY counsellor",
                    &[&&case.0[..]],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let messages = tx
                .query(
                    "SELECT id, author, kind, day, body FROM messages WHERE case_id = $1
                      ORDER BY position LIMIT 501",
                    &[&&case.0[..]],
                )?
                .into_iter()
                .map(|row| StoredMessage {
                    id: MessageId(blob16(row.get(0))),
                    author: row.get(1),
                    kind: row.get(2),
                    day: parse_day(row.get(3)),
                    body: row.get(4),
                })
                .collect();
            Ok(Some(Thread {
                counsellors,
                messages,
            }))
        })
    }

    pub fn add_follow_up(
        &self,
        lookup: LookupHash,
        message: AgeBlob,
        uploads: Vec<UploadId>,
    ) -> Result<FollowUp, StoreError> {
        // Made-up keys are answered from a plain read, without a
        // serializable transaction that could conflict with real writes.
        if case_by_lookup(&mut *self.lend()?, &lookup)?.is_none() {
            return Ok(FollowUp::UnknownCode);
        }
        let body_hash = Sha256::digest(message.as_bytes()).to_vec();
        self.write(|tx| {
            let Some(case) = case_by_lookup(tx, &lookup)? else {
                return Ok((false, FollowUp::UnknownCode));
            };
            let earlier = tx.query_opt(
                "SELECT day FROM messages WHERE body_sha256 = $1 AND case_id = $2",
                &[&body_hash, &&case.0[..]],
            )?;
            if let Some(row) = earlier {
                return Ok((false, FollowUp::Stored(parse_day(row.get(0)))));
            }
            let row = tx.query_one(
                "SELECT count(*), COALESCE(sum(size), 0)::bigint FROM messages WHERE case_id = $1",
                &[&&case.0[..]],
            )?;
            let (count, bytes): (i64, i64) = (row.get(0), row.get(1));
            if count >= MAX_CASE_MESSAGES
                || bytes.saturating_add(message.len() as i64) > MAX_CASE_BYTES
            {
                return Ok((false, FollowUp::CaseFull));
            }
            let day = Day::today();
            let id = MessageId::random();
            insert_message(tx, id, case, "melder", "follow-up", day, &message)?;
            if !claim_uploads(tx, id, &uploads)? {
                return Ok((false, FollowUp::UnknownUpload));
            }
            Ok((true, FollowUp::Stored(day)))
        })
    }

    pub fn create_upload(&self, id: UploadId, length: u64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let pending: i64 = tx
                .query_one("SELECT count(*) FROM uploads WHERE state = 'pending'", &[])?
                .get(0);
            if pending >= MAX_PENDING_UPLOADS {
                return Ok((false, false));
            }
            tx.execute(
                "INSERT INTO uploads (id, length, received, day, state)
                 VALUES ($1, $2, 0, $3, 'pending')",
                &[&&id.0[..], &(length as i64), &Day::today().to_string()],
            )?;
            Ok((true, true))
        })
    }

    pub fn append_chunk(
        &self,
        id: UploadId,
        start: u64,
        data: Vec<u8>,
        quota: u64,
    ) -> Result<Append, StoreError> {
        self.write(|tx| {
            // The row is locked: a chunk for the same upload through
            // another node waits here, then finds the offset moved on.
            let Some(row) = upload_row(tx, &id, " FOR UPDATE")? else {
                return Ok((false, Append::Unknown));
            };
            if row.state != UploadState::Pending {
                return Ok((false, Append::Unknown));
            }
            if row.received != start {
                return Ok((false, Append::WrongOffset(row.received)));
            }
            let end = start + data.len() as u64;
            if end > row.length {
                return Ok((false, Append::PastLength));
            }
            if data.is_empty() {
                return Ok((false, Append::Stored(row)));
            }
            let used: i64 = tx
                .query_one(
                    "SELECT COALESCE(sum(received), 0)::bigint FROM uploads",
                    &[],
                )?
                .get(0);
            if (used as u64).saturating_add(data.len() as u64) > quota {
                return Ok((false, Append::QuotaFull));
            }
            tx.execute(
                "INSERT INTO upload_chunks (upload_id, start, data) VALUES ($1, $2, $3)",
                &[&&id.0[..], &(start as i64), &data],
            )?;
            tx.execute(
                "UPDATE uploads SET received = $2 WHERE id = $1",
                &[&&id.0[..], &(end as i64)],
            )?;
            Ok((
                true,
                Append::Stored(UploadRow {
                    received: end,
                    ..row
                }),
            ))
        })
    }

    pub fn cut_upload(&self, id: UploadId, start: u64) -> Result<(), StoreError> {
        let start = start as i64;
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE uploads SET received = $2
                  WHERE id = $1 AND state = 'pending' AND received > $2",
                &[&&id.0[..], &start],
            )?;
            if changed == 1 {
                tx.execute(
                    "DELETE FROM upload_chunks WHERE upload_id = $1 AND start >= $2",
                    &[&&id.0[..], &start],
                )?;
                tx.execute(
                    "UPDATE upload_chunks SET data = substring(data FROM 1 FOR ($2 - start)::integer)
                      WHERE upload_id = $1 AND start < $2 AND start + length(data) > $2",
                    &[&&id.0[..], &start],
                )?;
            }
            Ok((true, ()))
        })
    }

    pub fn uploads_received(&self) -> Result<u64, StoreError> {
        let used: i64 = self
            .lend()?
            .query_one(
                "SELECT COALESCE(sum(received), 0)::bigint FROM uploads",
                &[],
            )?
            .get(0);
        Ok(used as u64)
    }

    pub fn upload_chunk(&self, id: &UploadId, start: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lend()?
            .query_opt(
                "SELECT data FROM upload_chunks WHERE upload_id = $1 AND start = $2",
                &[&&id.0[..], &(start as i64)],
            )?
            .map(|row| row.get(0)))
    }

    pub fn upload(&self, id: &UploadId) -> Result<Option<UploadRow>, StoreError> {
        upload_row(&mut *self.lend()?, id, "")
    }

    pub fn uploads(&self) -> Result<Vec<UploadRow>, StoreError> {
        Ok(self
            .lend()?
            .query(UPLOAD_ROW, &[])?
            .iter()
            .map(read_upload_row)
            .collect())
    }

    pub fn complete_upload(&self, id: UploadId) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE uploads SET state = 'complete'
                  WHERE id = $1 AND state = 'pending' AND received = length",
                &[&&id.0[..]],
            )?;
            Ok((true, changed == 1))
        })
    }

    pub fn delete_upload(&self, id: UploadId) -> Result<bool, StoreError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM upload_chunks WHERE upload_id =
                   (SELECT id FROM uploads WHERE id = $1 AND state <> 'claimed')",
                &[&&id.0[..]],
            )?;
            let changed = tx.execute(
                "DELETE FROM uploads WHERE id = $1 AND state <> 'claimed'",
                &[&&id.0[..]],
            )?;
            Ok((true, changed == 1))
        })
    }

    pub fn expire_uploads(&self, day: Day) -> Result<Vec<UploadId>, StoreError> {
        let cutoff = day.to_string();
        self.write(|tx| {
            let ids = tx
                .query(
                    "SELECT id FROM uploads WHERE state <> 'claimed' AND day <= $1",
                    &[&cutoff],
                )?
                .iter()
                .map(|row| UploadId(blob16(row.get(0))))
                .collect();
            tx.execute(
                "DELETE FROM upload_chunks WHERE upload_id IN
                   (SELECT id FROM uploads WHERE state <> 'claimed' AND day <= $1)",
                &[&cutoff],
            )?;
            tx.execute(
                "DELETE FROM uploads WHERE state <> 'claimed' AND day <= $1",
                &[&cutoff],
            )?;
            Ok((true, ids))
        })
    }

    /// A version-3 attachment file's piece (`Uploads::open`), outside the
    /// quota; `migrate-store` uses it too.
    pub fn adopt_chunk(&self, id: UploadId, start: u64, data: Vec<u8>) -> Result<(), StoreError> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE uploads SET received = $2 + $3
                  WHERE id = $1 AND state <> 'pending' AND received = $2",
                &[&&id.0[..], &(start as i64), &(data.len() as i64)],
            )?;
            if changed == 1 {
                tx.execute(
                    "INSERT INTO upload_chunks (upload_id, start, data) VALUES ($1, $2, $3)",
                    &[&&id.0[..], &(start as i64), &data],
                )?;
            }
            Ok((true, ()))
        })
    }

    /// Applies a verified outbox: the counter check and every item in one
    /// SERIALIZABLE transaction. Two nodes given the same outbox at once
    /// both read "not applied yet"; PostgreSQL lets one commit and fails
    /// the other, which tries again and finds it applied (`Retried`).
    pub fn apply_outbox(
        &self,
        counsellor: &str,
        counter: u64,
        manifest_hash: &[u8; 32],
        inbox_ack: u64,
        items: Vec<OutboxWrite>,
    ) -> Result<SyncOutcome, StoreError> {
        self.write(|tx| {
            let outcome = apply_outbox(tx, counsellor, counter, manifest_hash, inbox_ack, &items)?;
            Ok((matches!(outcome, SyncOutcome::Applied(_)), outcome))
        })
    }

    /// As the SQLite store's: numbers after the highest given or
    /// acknowledged, by case id (random) and position within the case.
    pub fn assign_deliveries(&self, counsellor: &str) -> Result<usize, StoreError> {
        self.write(|tx| {
            let acknowledged = tx
                .query_opt(
                    "SELECT inbox_ack FROM counsellor_sync WHERE counsellor = $1",
                    &[&counsellor],
                )?
                .map(|row| blob_u64(row.get(0)))
                .transpose()?
                .unwrap_or(0);
            let given: i64 = tx
                .query_one(
                    "SELECT COALESCE(max(seq), 0) FROM deliveries WHERE counsellor = $1",
                    &[&counsellor],
                )?
                .get(0);
            let base = (given as u64).max(acknowledged).min(i64::MAX as u64 / 2) as i64;
            let added = tx.execute(
                "INSERT INTO deliveries (counsellor, seq, message_id)
                 SELECT $1, $2 + row_number() OVER (ORDER BY m.case_id, m.position), m.id
                   FROM case_counsellors c JOIN messages m ON m.case_id = c.case_id
                  WHERE c.counsellor = $1 AND m.author <> $1
                    AND NOT EXISTS (SELECT 1 FROM deliveries d
                                     WHERE d.counsellor = $1 AND d.message_id = m.id)",
                &[&counsellor, &base],
            )?;
            Ok((true, added as usize))
        })
    }

    /// As the SQLite store's. The list is read first without bodies, then
    /// each body as it is added, so memory holds only what fits.
    pub fn inbox(
        &self,
        counsellor: &str,
        after_seq: u64,
        mut fits: impl FnMut(&InboxEntry) -> bool,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        self.snapshot(|tx| {
            let after = after_seq.min(i64::MAX as u64) as i64;
            let listed = tx.query(
                "SELECT d.seq, m.id, m.case_id, m.author, m.kind, m.day
                   FROM deliveries d JOIN messages m ON m.id = d.message_id
                  WHERE d.counsellor = $1 AND d.seq > $2
                  ORDER BY d.seq LIMIT $3",
                &[&counsellor, &after, &(MAX_ENTRIES as i64)],
            )?;
            let mut entries = Vec::new();
            for row in listed {
                let id = MessageId(blob16(row.get(1)));
                let body: Vec<u8> = tx
                    .query_one("SELECT body FROM messages WHERE id = $1", &[&&id.0[..]])?
                    .get(0);
                let attachments = tx
                    .query(
                        "SELECT id, length FROM uploads WHERE message_id = $1 ORDER BY position",
                        &[&&id.0[..]],
                    )?
                    .iter()
                    .map(|row| EntryAttachment {
                        upload: UploadId(blob16(row.get(0))),
                        length: row.get::<_, i64>(1) as u64,
                    })
                    .collect();
                let entry = InboxEntry {
                    seq: row.get::<_, i64>(0) as u64,
                    id,
                    case: CaseId(blob16(row.get(2))),
                    author: row.get(3),
                    kind: row.get(4),
                    day: parse_day(row.get(5)),
                    body,
                    attachments,
                };
                if !entries.is_empty() && !fits(&entry) {
                    break;
                }
                if entries.is_empty() {
                    fits(&entry);
                }
                entries.push(entry);
            }
            Ok(entries)
        })
    }

    /// Deletes every case closed on or before `closed_by`, with its
    /// messages and attachments, then VACUUMs the tables so the space is
    /// reused (docs/postgresql.md says what that does and does not
    /// overwrite). One node at a time: a node that finds the retention lock
    /// taken deletes nothing this round (another is doing it).
    pub fn purge_closed(&self, closed_by: Day) -> Result<Purged, StoreError> {
        let cutoff = closed_by.to_string();
        self.purge(|tx| {
            Ok(tx
                .query(
                    "SELECT id FROM cases WHERE closed_day IS NOT NULL AND closed_day <= $1",
                    &[&cutoff],
                )?
                .iter()
                .map(|row| row.get::<_, Vec<u8>>(0))
                .collect())
        })
    }

    /// Deletes, as `purge_closed` does, every closed case whose retention
    /// has passed on `today`: a case is kept `retention[counsellor]` days
    /// after closure (its organisation's period; the longest when its
    /// counsellors' differ), or `default_days` for a counsellor not listed —
    /// the rule of `SqliteStore::purge_expired`.
    pub fn purge_expired(
        &self,
        today: Day,
        retention: &std::collections::BTreeMap<String, u32>,
        default_days: u32,
    ) -> Result<Purged, StoreError> {
        self.purge(|tx| {
            let mut closed: std::collections::BTreeMap<Vec<u8>, (String, u32)> =
                std::collections::BTreeMap::new();
            for row in tx.query(
                "SELECT c.id, c.closed_day, cc.counsellor FROM cases c
                 LEFT JOIN case_counsellors cc ON cc.case_id = c.id
                 WHERE c.closed_day IS NOT NULL",
                &[],
            )? {
                let days = row
                    .get::<_, Option<String>>(2)
                    .and_then(|c| retention.get(&c).copied())
                    .unwrap_or(default_days);
                let entry = closed.entry(row.get(0)).or_insert_with(|| (row.get(1), 0));
                entry.1 = entry.1.max(days);
            }
            // Days are ISO dates, so text order is date order.
            Ok(closed
                .into_iter()
                .filter(|(_, (day, days))| {
                    day.as_str()
                        <= crate::format::day::retention_cutoff(today, *days)
                            .to_string()
                            .as_str()
                })
                .map(|(id, _)| id)
                .collect())
        })
    }

    /// Deletes the cases `doomed` names (run inside the transaction), with
    /// their messages, deliveries and attachments, under the retention lock.
    fn purge(
        &self,
        mut doomed: impl FnMut(&mut Transaction<'_>) -> Result<Vec<Vec<u8>>, StoreError>,
    ) -> Result<Purged, StoreError> {
        let purged = self.write(|tx| {
            let locked: bool = tx
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_RETENTION])?
                .get(0);
            if !locked {
                return Ok((false, Purged::default()));
            }
            let ids = doomed(tx)?;
            if ids.is_empty() {
                return Ok((false, Purged::default()));
            }
            let doomed_messages = "SELECT id FROM messages WHERE case_id = ANY($1)";
            let uploads = tx
                .query(
                    &format!("SELECT id FROM uploads WHERE message_id IN ({doomed_messages})"),
                    &[&ids],
                )?
                .iter()
                .map(|row| UploadId(blob16(row.get(0))))
                .collect();
            tx.execute(
                &format!(
                    "DELETE FROM upload_chunks WHERE upload_id IN
                       (SELECT id FROM uploads WHERE message_id IN ({doomed_messages}))"
                ),
                &[&ids],
            )?;
            for table in ["uploads", "deliveries"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE message_id IN ({doomed_messages})"),
                    &[&ids],
                )?;
            }
            tx.execute("DELETE FROM messages WHERE case_id = ANY($1)", &[&ids])?;
            tx.execute(
                "DELETE FROM case_counsellors WHERE case_id = ANY($1)",
                &[&ids],
            )?;
            let cases = tx.execute("DELETE FROM cases WHERE id = ANY($1)", &[&ids])? as usize;
            Ok((true, Purged { cases, uploads }))
        })?;
        if purged.cases > 0 {
            self.vacuum()?;
        }
        Ok(purged)
    }

    /// VACUUM the tables (outside a transaction, as it must be).
    pub fn vacuum(&self) -> Result<(), StoreError> {
        self.lend()?.batch_execute(&format!("VACUUM {TABLES}"))?;
        Ok(())
    }

    /// Whether the database answers (`GET /healthz`).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.lend()?.simple_query("SELECT 1")?;
        Ok(())
    }

    pub fn closed_day(&self, lookup: &LookupHash) -> Result<Option<Day>, StoreError> {
        let row = self.lend()?.query_opt(
            "SELECT closed_day FROM cases WHERE lookup_hash = $1",
            &[&&lookup.0[..]],
        )?;
        Ok(row
            .and_then(|row| row.get::<_, Option<String>>(0))
            .map(|day| parse_day(&day)))
    }

    /// Server settings that would write a melder's metadata to
    /// PostgreSQL's log or its tables (docs/postgresql.md), as warnings for
    /// `check-config`.
    pub fn metadata_findings(&self) -> Result<Vec<String>, StoreError> {
        let mut client = self.lend()?;
        let mut show = |name: &str| -> Result<String, StoreError> {
            Ok(client.query_one(&format!("SHOW {name}"), &[])?.get(0))
        };
        let mut findings = Vec::new();
        if show("track_commit_timestamp")? == "on" {
            findings.push(
                "PostgreSQL keeps the time of every commit (track_commit_timestamp = on): \
                 that dates each submission to the second; turn it off"
                    .to_string(),
            );
        }
        let statement = show("log_statement")?;
        if statement == "all" || statement == "mod" {
            findings.push(format!(
                "PostgreSQL logs statements (log_statement = {statement}): with their times \
                 and values; set it to none for the meldkluis role"
            ));
        }
        if show("log_min_duration_statement")? != "-1" {
            findings.push(
                "PostgreSQL logs statements by duration (log_min_duration_statement is not -1): \
                 with their times and bound values; set it to -1 for the meldkluis role"
                    .to_string(),
            );
        }
        for setting in ["log_connections", "log_disconnections", "log_duration"] {
            if show(setting)? == "on" {
                findings.push(format!(
                    "PostgreSQL has {setting} = on: each line dates the server's work; \
                     set it off for the meldkluis role"
                ));
            }
        }
        if show("log_error_verbosity")? != "terse" {
            findings.push(
                "PostgreSQL's log_error_verbosity is not terse: an error's DETAIL can quote \
                 a key (a lookup hash); set it to terse for the meldkluis role"
                    .to_string(),
            );
        }
        Ok(findings)
    }
}

fn case_by_lookup(
    client: &mut impl postgres::GenericClient,
    lookup: &LookupHash,
) -> Result<Option<CaseId>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT id FROM cases WHERE lookup_hash = $1",
            &[&&lookup.0[..]],
        )?
        .map(|row| CaseId(blob16(row.get(0)))))
}

const UPLOAD_ROW: &str = "SELECT id, length, received, state FROM uploads";

fn upload_row(
    client: &mut impl postgres::GenericClient,
    id: &UploadId,
    lock: &str,
) -> Result<Option<UploadRow>, StoreError> {
    Ok(client
        .query_opt(&format!("{UPLOAD_ROW} WHERE id = $1{lock}"), &[&&id.0[..]])?
        .map(|row| read_upload_row(&row)))
}

fn read_upload_row(row: &postgres::Row) -> UploadRow {
    let state: &str = row.get(3);
    UploadRow {
        id: UploadId(blob16(row.get(0))),
        length: row.get::<_, i64>(1) as u64,
        received: row.get::<_, i64>(2) as u64,
        // The column's CHECK allows only the three.
        state: UploadState::parse(state).unwrap_or(UploadState::Pending),
    }
}

fn claim_uploads(
    tx: &mut Transaction<'_>,
    message: MessageId,
    uploads: &[UploadId],
) -> Result<bool, StoreError> {
    for (position, upload) in uploads.iter().enumerate() {
        let claimed = tx.execute(
            "UPDATE uploads SET state = 'claimed', message_id = $2, position = $3
              WHERE id = $1 AND state = 'complete'",
            &[&&upload.0[..], &&message.0[..], &(position as i32)],
        )?;
        if claimed != 1 {
            return Ok(false);
        }
    }
    Ok(true)
}

fn insert_message(
    tx: &mut Transaction<'_>,
    id: MessageId,
    case: CaseId,
    author: &str,
    kind: &str,
    day: Day,
    body: &AgeBlob,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO messages (id, case_id, position, author, kind, day, size, body_sha256, body)
         VALUES ($1, $2, (SELECT COALESCE(max(position) + 1, 0) FROM messages WHERE case_id = $2),
                 $3, $4, $5, $6, $7, $8)",
        &[
            &&id.0[..],
            &&case.0[..],
            &author,
            &kind,
            &day.to_string(),
            &(body.len() as i64),
            &Sha256::digest(body.as_bytes()).to_vec(),
            &body.as_bytes(),
        ],
    )?;
    Ok(())
}

fn apply_outbox(
    tx: &mut Transaction<'_>,
    counsellor: &str,
    counter: u64,
    manifest_hash: &[u8; 32],
    inbox_ack: u64,
    items: &[OutboxWrite],
) -> Result<SyncOutcome, StoreError> {
    let ids: Vec<MessageId> = items.iter().map(|i| i.id).collect();
    let last = tx.query_opt(
        "SELECT counter, manifest_hash FROM counsellor_sync WHERE counsellor = $1",
        &[&counsellor],
    )?;
    if let Some(row) = last {
        let last_counter = blob_u64(row.get(0))?;
        let last_hash: Vec<u8> = row.get(1);
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
        let assigned: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM case_counsellors
                                 WHERE case_id = $1 AND counsellor = $2)",
                &[&&case.0[..], &counsellor],
            )?
            .get(0);
        if !assigned {
            return Ok(SyncOutcome::UnknownCase(*case));
        }
        let known: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1)",
                &[&&id.0[..]],
            )?
            .get(0);
        if !known {
            insert_message(tx, *id, *case, counsellor, "reply", day, body)?;
        }
        match kind {
            OutboxKind::Reply => {}
            OutboxKind::Close => {
                tx.execute(
                    "UPDATE cases SET closed_day = $2 WHERE id = $1 AND closed_day IS NULL",
                    &[&&case.0[..], &day.to_string()],
                )?;
            }
            OutboxKind::Reopen => {
                tx.execute(
                    "UPDATE cases SET closed_day = NULL WHERE id = $1",
                    &[&&case.0[..]],
                )?;
            }
        }
    }
    tx.execute(
        "INSERT INTO counsellor_sync (counsellor, counter, manifest_hash, inbox_ack)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (counsellor) DO UPDATE
            SET counter = $2, manifest_hash = $3, inbox_ack = $4",
        &[
            &counsellor,
            &&u64_blob(counter)[..],
            &&manifest_hash[..],
            &&u64_blob(inbox_ack)[..],
        ],
    )?;
    Ok(SyncOutcome::Applied(ids))
}
