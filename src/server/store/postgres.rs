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

use sha2::{Digest, Sha256};

use super::{
    FollowUp, MAX_CASE_BYTES, MAX_CASE_MESSAGES, NewCase, OutboxWrite, StoreError, StoredMessage,
    SyncOutcome, Thread, blob_u64, blob16, parse_day, u64_blob,
};
use crate::format::agefile::AgeBlob;
use crate::format::bundle::{EntryAttachment, InboxEntry, MAX_ENTRIES, OutboxKind};
use crate::format::day::Day;
use crate::format::derive::LookupHash;
use crate::format::ids::{CaseId, MessageId, UploadId};

mod pool;
mod retention;
mod settle;
mod uploads;
pub(super) use pool::is_disk_full_code;
use pool::{Cached, Pool, Session, Tx};
pub use settle::Settled;
pub mod tls;
use uploads::claim_uploads;

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

/// How often a write that conflicted with another transaction is tried.
const ATTEMPTS: u32 = 30;

pub struct PostgresStore {
    config: postgres::Config,
    /// `database_url`'s `sslmode` and `sslrootcert` (tls.rs).
    link: tls::Settings,
    /// The rustls connector, `None` for `sslmode=disable`.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    pool: Mutex<Pool>,
    free: Condvar,
}

impl PostgresStore {
    /// Connects, creates the schema if the database has none (or checks
    /// its version), and keeps the connection for the pool. `password`,
    /// when given, replaces any in the URL (`database_password_FILE`).
    pub fn open(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        // Settings first, the CA file next, the network last: a bad
        // `sslmode` is refused before any connection is tried.
        let (mut config, link) = tls::parse_url(url).map_err(StoreError::DatabaseUrl)?;
        let tls = link.connector().map_err(StoreError::DatabaseUrl)?;
        if let Some(password) = password {
            config.password(password);
        }
        config.connect_timeout(Duration::from_secs(10));
        let store = PostgresStore {
            config,
            link,
            tls,
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            free: Condvar::new(),
        };
        store.migrate()?;
        Ok(store)
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

    /// One statement, so one snapshot without a transaction (no BEGIN and
    /// COMMIT round trips): the case's counsellors ride along on each row
    /// of its messages. A case with no message yet (it always has its
    /// report) gives one row of NULLs.
    pub fn thread(&self, lookup: &LookupHash) -> Result<Option<Thread>, StoreError> {
        let rows = self.lend()?.cached().query(
            "SELECT ARRAY(SELECT counsellor FROM case_counsellors WHERE case_id = c.id
                           ORDER BY counsellor),
                    m.id, m.author, m.kind, m.day, m.body
               FROM cases c
               LEFT JOIN LATERAL (SELECT id, author, kind, day, body, position FROM messages
                                   WHERE case_id = c.id ORDER BY position LIMIT 501) m ON true
              WHERE c.lookup_hash = $1
              ORDER BY m.position",
            &[&&lookup.0[..]],
        )?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let counsellors: Vec<String> = first.get(0);
        let messages = rows
            .iter()
            .filter(|row| row.get::<_, Option<&[u8]>>(1).is_some())
            .map(|row| StoredMessage {
                id: MessageId(blob16(row.get(1))),
                author: row.get(2),
                kind: row.get(3),
                day: parse_day(row.get(4)),
                body: row.get(5),
            })
            .collect();
        Ok(Some(Thread {
            counsellors,
            messages,
        }))
    }

    pub fn add_follow_up(
        &self,
        lookup: LookupHash,
        message: AgeBlob,
        uploads: Vec<UploadId>,
    ) -> Result<FollowUp, StoreError> {
        // Made-up keys are answered from a plain read, without a
        // serializable transaction that could conflict with real writes.
        if case_by_lookup(&mut self.lend()?.cached(), &lookup)?.is_none() {
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

    /// The link's TLS settings, as `database_url` gives them.
    pub fn link(&self) -> &tls::Settings {
        &self.link
    }

    /// What PostgreSQL says of this connection (`pg_stat_ssl`): the TLS
    /// version and cipher, or `None` when it is not encrypted.
    pub fn encryption(&self) -> Result<Option<String>, StoreError> {
        let row = self.lend()?.query_one(
            "SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )?;
        Ok(row.get::<_, bool>(0).then(|| {
            format!(
                "{} {}",
                row.get::<_, Option<String>>(1).unwrap_or_default(),
                row.get::<_, Option<String>>(2).unwrap_or_default()
            )
        }))
    }

    /// Whether the database answers (`GET /healthz`).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.lend()?.simple_query("SELECT 1")?;
        Ok(())
    }

    pub fn closed_day(&self, lookup: &LookupHash) -> Result<Option<Day>, StoreError> {
        let row = self.lend()?.cached().query_opt(
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
    client: &mut Cached<'_, impl Session>,
    lookup: &LookupHash,
) -> Result<Option<CaseId>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT id FROM cases WHERE lookup_hash = $1",
            &[&&lookup.0[..]],
        )?
        .map(|row| CaseId(blob16(row.get(0)))))
}

fn insert_message(
    tx: &mut Tx<'_, '_>,
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
    tx: &mut Tx<'_, '_>,
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
        introduce,
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
            // The introduced join the case with the reply that introduces
            // them, never without it.
            for newcomer in introduce {
                tx.execute(
                    "INSERT INTO case_counsellors (case_id, counsellor) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&&case.0[..], newcomer],
                )?;
            }
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
