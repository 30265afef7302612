//! `Store`: the one storage interface the server uses, over its backends.
//! An enum, not a trait object: the set of backends is closed, calls stay
//! static, and `inbox` keeps its generic budget closure. Each method is the
//! same promise on every backend; the conformance tests in store.rs hold
//! both to it.

use std::path::Path;

use super::{
    Append, FollowUp, NewCase, OutboxWrite, Purged, SqliteStore, StoreError, SyncOutcome, Thread,
    UploadRow,
};
use crate::format::agefile::AgeBlob;
use crate::format::bundle::InboxEntry;
use crate::format::day::Day;
use crate::format::derive::LookupHash;
use crate::format::ids::UploadId;
use crate::server::config::Config;

/// The server's store: SQLite (the default, one node) or PostgreSQL
/// (`database_url`, several nodes).
pub enum Store {
    Sqlite(SqliteStore),
    /// Boxed: its pool is larger than SQLite's handles, and a store is
    /// made once.
    #[cfg(feature = "postgres")]
    Postgres(Box<super::postgres::PostgresStore>),
}

/// Runs the same call on whichever backend this is.
macro_rules! each {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            #[cfg(feature = "postgres")]
            Store::Postgres($store) => $call,
        }
    };
}

impl AsRef<Store> for Store {
    fn as_ref(&self) -> &Store {
        self
    }
}

impl Store {
    /// The SQLite store in the file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Store::Sqlite(SqliteStore::open(path)?))
    }

    /// The PostgreSQL store at `url`; `password`, when given, replaces any
    /// in the URL.
    pub fn open_postgres(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        #[cfg(feature = "postgres")]
        return Ok(Store::Postgres(Box::new(
            super::postgres::PostgresStore::open(url, password)?,
        )));
        #[cfg(not(feature = "postgres"))]
        {
            let _ = (url, password);
            Err(StoreError::NoPostgres)
        }
    }

    /// The store the configuration names: PostgreSQL when `database_url`
    /// is set, else SQLite in the data directory.
    pub fn open_configured(config: &Config) -> Result<Self, StoreError> {
        match &config.database_url {
            Some(url) => Self::open_postgres(
                url.expose(),
                config.database_password.as_ref().map(|p| p.expose()),
            ),
            None => Self::open(&config.database_path()),
        }
    }

    /// "sqlite" or "postgresql", for logs and the operator.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => "postgresql",
        }
    }

    /// Stores a new case and its report, durably.
    pub fn create_case(
        &self,
        lookup: LookupHash,
        counsellors: Vec<String>,
        report: AgeBlob,
        uploads: Vec<UploadId>,
    ) -> Result<NewCase, StoreError> {
        each!(self, s => s.create_case(lookup, counsellors, report, uploads))
    }

    /// The thread for a lookup key, or `None`, read in one snapshot.
    pub fn thread(&self, lookup: &LookupHash) -> Result<Option<Thread>, StoreError> {
        each!(self, s => s.thread(lookup))
    }

    /// Adds a melder's follow-up; the identical message again is stored once.
    pub fn add_follow_up(
        &self,
        lookup: LookupHash,
        message: AgeBlob,
        uploads: Vec<UploadId>,
    ) -> Result<FollowUp, StoreError> {
        each!(self, s => s.add_follow_up(lookup, message, uploads))
    }

    /// Records a new pending upload; `false` when too many are waiting.
    pub fn create_upload(&self, id: UploadId, length: u64) -> Result<bool, StoreError> {
        each!(self, s => s.create_upload(id, length))
    }

    /// Stores the next piece of a pending upload, within the quota.
    pub fn append_chunk(
        &self,
        id: UploadId,
        start: u64,
        data: Vec<u8>,
        quota: u64,
    ) -> Result<Append, StoreError> {
        each!(self, s => s.append_chunk(id, start, data, quota))
    }

    /// Drops a pending upload's bytes from `start` on.
    pub fn cut_upload(&self, id: UploadId, start: u64) -> Result<(), StoreError> {
        each!(self, s => s.cut_upload(id, start))
    }

    /// The bytes every upload holds so far.
    pub fn uploads_received(&self) -> Result<u64, StoreError> {
        each!(self, s => s.uploads_received())
    }

    /// The stored piece of an upload that starts at `start`.
    pub fn upload_chunk(&self, id: &UploadId, start: u64) -> Result<Option<Vec<u8>>, StoreError> {
        each!(self, s => s.upload_chunk(id, start))
    }

    /// One upload's row.
    pub fn upload(&self, id: &UploadId) -> Result<Option<UploadRow>, StoreError> {
        each!(self, s => s.upload(id))
    }

    /// Every upload's row.
    pub fn uploads(&self) -> Result<Vec<UploadRow>, StoreError> {
        each!(self, s => s.uploads())
    }

    /// Marks a pending upload whose every byte is stored complete.
    pub fn complete_upload(&self, id: UploadId) -> Result<bool, StoreError> {
        each!(self, s => s.complete_upload(id))
    }

    /// Forgets an unclaimed upload with its bytes.
    pub fn delete_upload(&self, id: UploadId) -> Result<bool, StoreError> {
        each!(self, s => s.delete_upload(id))
    }

    /// Forgets every unclaimed upload created on or before `day`.
    pub fn expire_uploads(&self, day: Day) -> Result<Vec<UploadId>, StoreError> {
        each!(self, s => s.expire_uploads(day))
    }

    /// Moves a piece of an attachment in from outside (version-3 files,
    /// `migrate-store`), outside the quota.
    pub fn adopt_chunk(&self, id: UploadId, start: u64, data: Vec<u8>) -> Result<(), StoreError> {
        each!(self, s => s.adopt_chunk(id, start, data))
    }

    /// Applies a verified outbox in one transaction: all items or none.
    pub fn apply_outbox(
        &self,
        counsellor: &str,
        counter: u64,
        manifest_hash: &[u8; 32],
        inbox_ack: u64,
        items: Vec<OutboxWrite>,
    ) -> Result<SyncOutcome, StoreError> {
        each!(self, s => s.apply_outbox(counsellor, counter, manifest_hash, inbox_ack, items))
    }

    /// Numbers this counsellor's undelivered messages (protocol.md §7a).
    pub fn assign_deliveries(&self, counsellor: &str) -> Result<usize, StoreError> {
        each!(self, s => s.assign_deliveries(counsellor))
    }

    /// This counsellor's delivered messages after `after_seq`, while they fit.
    pub fn inbox(
        &self,
        counsellor: &str,
        after_seq: u64,
        fits: impl FnMut(&InboxEntry) -> bool,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        each!(self, s => s.inbox(counsellor, after_seq, fits))
    }

    /// Deletes every case closed on or before `closed_by`, for real as far
    /// as the backend allows.
    pub fn purge_closed(&self, closed_by: Day) -> Result<Purged, StoreError> {
        each!(self, s => s.purge_closed(closed_by))
    }

    /// Deletes every closed case whose organisation's retention has passed
    /// on `today` (`SqliteStore::purge_expired`), on either backend.
    pub fn purge_expired(
        &self,
        today: Day,
        retention: std::collections::BTreeMap<String, u32>,
        default_days: u32,
    ) -> Result<Purged, StoreError> {
        match self {
            Store::Sqlite(s) => s.purge_expired(today, retention, default_days),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.purge_expired(today, &retention, default_days),
        }
    }

    /// Gives each finished day's rows one transaction id and a random
    /// physical order (PostgreSQL, `PostgresStore::settle`); the rows
    /// written. SQLite keeps neither (version 4: random keys, `WITHOUT
    /// ROWID`), so there it does nothing.
    pub fn settle(&self, today: Day) -> Result<usize, StoreError> {
        match self {
            Store::Sqlite(_) => {
                let _ = today;
                Ok(0)
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => Ok(s.settle(today)?.rows),
        }
    }

    /// The day a case was closed, if it was.
    pub fn closed_day(&self, lookup: &LookupHash) -> Result<Option<Day>, StoreError> {
        each!(self, s => s.closed_day(lookup))
    }

    /// Whether the database answers.
    pub fn ping(&self) -> Result<(), StoreError> {
        each!(self, s => s.ping())
    }
}
