//! `meldkluis migrate-store`: copies a store between its two backends and
//! proves the copy: for every table, the number of rows and a SHA-256 over
//! all of them in key order, computed on both sides, must agree before the
//! copy counts. One description of the tables (`TABLES`) and one hash serve
//! both directions.
//!
//! - SQLite → PostgreSQL (`sqlite_to_postgres`): into an empty database, in
//!   one transaction that any difference rolls back.
//! - PostgreSQL → SQLite (`postgres_to_sqlite`, for a rollback): from one
//!   snapshot into a new file beside the target, put in place only when
//!   every table agrees; any failure removes it. So the target is either a
//!   whole, verified copy or untouched.

use std::path::{Path, PathBuf};

use postgres::Transaction;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use sha2::{Digest, Sha256};

use super::postgres::PostgresStore;
use super::{SqliteStore, StoreError};

/// How a column is stored on each side.
#[derive(Clone, Copy)]
enum Column {
    Bytes,
    Text,
    /// bigint in PostgreSQL.
    Big,
    /// integer in PostgreSQL (positions).
    Small,
}

/// A table's name, its columns in order, and its key (the hash's order).
type Table = (
    &'static str,
    &'static [(&'static str, Column)],
    &'static str,
);

/// Every table of schema 4.
const TABLES: [Table; 7] = {
    use Column::*;
    [
        (
            "cases",
            &[
                ("id", Bytes),
                ("lookup_hash", Bytes),
                ("day", Text),
                ("closed_day", Text),
            ],
            "id",
        ),
        (
            "case_counsellors",
            &[("case_id", Bytes), ("counsellor", Text)],
            "case_id, counsellor",
        ),
        (
            "messages",
            &[
                ("id", Bytes),
                ("case_id", Bytes),
                ("position", Small),
                ("author", Text),
                ("kind", Text),
                ("day", Text),
                ("size", Big),
                ("body_sha256", Bytes),
                ("body", Bytes),
            ],
            "id",
        ),
        (
            "deliveries",
            &[("counsellor", Text), ("seq", Big), ("message_id", Bytes)],
            "counsellor, seq",
        ),
        (
            "counsellor_sync",
            &[
                ("counsellor", Text),
                ("counter", Bytes),
                ("manifest_hash", Bytes),
                ("inbox_ack", Bytes),
            ],
            "counsellor",
        ),
        (
            "uploads",
            &[
                ("id", Bytes),
                ("length", Big),
                ("received", Big),
                ("day", Text),
                ("state", Text),
                ("message_id", Bytes),
                ("position", Small),
            ],
            "id",
        ),
        (
            "upload_chunks",
            &[("upload_id", Bytes), ("start", Big), ("data", Bytes)],
            "upload_id, start",
        ),
    ]
};

/// One value, as both sides hold it.
enum Value {
    Bytes(Option<Vec<u8>>),
    Text(Option<String>),
    Big(Option<i64>),
    Small(Option<i32>),
}

impl Value {
    /// Into the table's hash: a tag, then a length-prefixed form, so no two
    /// different rows hash alike.
    fn hash_into(&self, hasher: &mut Sha256) {
        let bytes: Option<Vec<u8>> = match self {
            Value::Bytes(v) => v.clone(),
            Value::Text(v) => v.as_ref().map(|t| t.as_bytes().to_vec()),
            Value::Big(v) => v.map(|n| n.to_be_bytes().to_vec()),
            Value::Small(v) => v.map(|n| i64::from(n).to_be_bytes().to_vec()),
        };
        match bytes {
            None => hasher.update([0u8]),
            Some(bytes) => {
                hasher.update([1u8]);
                hasher.update((bytes.len() as u64).to_be_bytes());
                hasher.update(&bytes);
            }
        }
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::Bytes(v) => v,
            Value::Text(v) => v,
            Value::Big(v) => v,
            Value::Small(v) => v,
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Value::Bytes(v) => rusqlite::ToSql::to_sql(v),
            Value::Text(v) => rusqlite::ToSql::to_sql(v),
            Value::Big(v) => rusqlite::ToSql::to_sql(v),
            Value::Small(v) => rusqlite::ToSql::to_sql(v),
        }
    }
}

/// One table's rows counted and hashed, in key order.
#[derive(Default)]
struct TableHash {
    hasher: Sha256,
    rows: u64,
}

impl TableHash {
    fn add(&mut self, row: &[Value]) {
        for value in row {
            value.hash_into(&mut self.hasher);
        }
        self.rows += 1;
    }
}

/// What was copied and checked, per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    pub rows: u64,
    /// SHA-256 over the rows in key order, the same on both sides.
    pub sha256: [u8; 32],
}

/// Why the copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the PostgreSQL database already holds {0} row(s) of Meldkluis data: copy only into an empty one"
    )]
    TargetNotEmpty(i64),
    #[error("{table}: the copy differs from the original ({detail}); nothing was committed")]
    Differs { table: &'static str, detail: String },
    /// The way back writes only a new file.
    #[error(
        "{0} already exists and is not empty: copy back only into a new file \
         (move the old one aside first, e.g. to meldkluis.sqlite.before-postgres)"
    )]
    FileExists(PathBuf),
    /// A journal beside the target would be read as part of the new file.
    #[error(
        "{0} exists: a journal of an earlier database lies beside the target \
         (is a server running there?); remove it or choose another directory"
    )]
    JournalBeside(PathBuf),
    #[error(
        "the PostgreSQL database holds no Meldkluis data: nothing to copy back (the wrong database?)"
    )]
    SourceEmpty,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<postgres::Error> for MigrateError {
    fn from(error: postgres::Error) -> Self {
        MigrateError::Store(error.into())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MigrateError + '_ {
    move |source| MigrateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Copies the SQLite store at `sqlite_path` into `target`, which must hold
/// no Meldkluis data; returns each table's rows and hash. The server must
/// be stopped (a write during the copy would be missed).
pub fn sqlite_to_postgres(
    sqlite_path: &Path,
    target: &PostgresStore,
) -> Result<Vec<TableCopy>, MigrateError> {
    // Opening brings an older SQLite schema to version 4 first.
    drop(SqliteStore::open(sqlite_path)?);
    let source = rusqlite::Connection::open_with_flags(
        sqlite_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    source.execute_batch("BEGIN")?;
    let copies = target.with_transaction(|tx| {
        let copied = copy_into_postgres(&source, tx);
        Ok((copied.is_ok(), copied))
    })??;
    source.execute_batch("COMMIT")?;
    Ok(copies)
}

fn copy_into_postgres(
    source: &rusqlite::Connection,
    tx: &mut Transaction<'_>,
) -> Result<Vec<TableCopy>, MigrateError> {
    // Reading back gigabytes of attachments is one statement: no
    // server-side limit for this one transaction.
    tx.batch_execute("SET LOCAL statement_timeout = 0")?;
    let present = postgres_rows_present(tx)?;
    if present > 0 {
        return Err(MigrateError::TargetNotEmpty(present));
    }
    let mut copies = Vec::new();
    for table in TABLES {
        let (name, columns, _) = table;
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let insert = tx.prepare(&format!(
            "INSERT INTO {name} ({}) VALUES ({})",
            column_list(columns),
            placeholders.join(", ")
        ))?;
        let mut original = TableHash::default();
        each_sqlite_row(source, table, |row| {
            original.add(&row);
            let params: Vec<&(dyn ToSql + Sync)> = row.iter().map(Value::param).collect();
            tx.execute(&insert, &params)?;
            Ok(())
        })?;
        let mut copy = TableHash::default();
        each_postgres_row(tx, table, |row| {
            copy.add(&row);
            Ok(())
        })?;
        copies.push(verified(name, original, copy)?);
    }
    Ok(copies)
}

/// Copies the PostgreSQL store `source` into a new SQLite store file at
/// `target` (absent, or an empty file), for a rollback: schema 4 as
/// `SqliteStore` makes it, attachments included; returns each table's rows
/// and hash. The file is written beside the target under another name and
/// put in place only when every table's count and hash agree with
/// PostgreSQL's; on any failure it is removed. The nodes must be stopped
/// (what one writes during the copy would not be in it).
pub fn postgres_to_sqlite(
    source: &PostgresStore,
    target: &Path,
) -> Result<Vec<TableCopy>, MigrateError> {
    check_new_file(target)?;
    let directory = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(directory).map_err(io(directory))?;
    let partial = PartialFile::beside(target);
    // The schema exactly as the server makes it (and leaves it: WAL).
    drop(SqliteStore::open(&partial.path)?);
    let copy = rusqlite::Connection::open(&partial.path)?;
    // A failed copy is thrown away whole, so the copy needs no journal and
    // no sync per statement; the finished file is synced before its rename.
    copy.execute_batch(
        "PRAGMA journal_mode = OFF;
         PRAGMA synchronous = OFF;
         PRAGMA foreign_keys = ON;",
    )?;
    // Read-only: there is nothing to commit on PostgreSQL's side.
    let copies = source.with_transaction(|tx| Ok((false, copy_into_sqlite(tx, &copy))))??;
    let mode: String = copy.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if mode != "wal" {
        return Err(
            StoreError::Migration(format!("the new file stays in journal mode {mode}")).into(),
        );
    }
    copy.close().map_err(|(_, e)| e)?;
    partial.persist(target)?;
    Ok(copies)
}

fn copy_into_sqlite(
    tx: &mut Transaction<'_>,
    copy: &rusqlite::Connection,
) -> Result<Vec<TableCopy>, MigrateError> {
    // One snapshot of every table, however long the copy takes: no limit
    // on a statement, nor on the pauses while SQLite reads a table back.
    tx.batch_execute(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;
         SET LOCAL statement_timeout = 0;
         SET LOCAL idle_in_transaction_session_timeout = 0",
    )?;
    if postgres_rows_present(tx)? == 0 {
        return Err(MigrateError::SourceEmpty);
    }
    copy.execute_batch("BEGIN")?;
    let mut copies = Vec::new();
    for table in TABLES {
        let (name, columns, _) = table;
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let mut insert = copy.prepare(&format!(
            "INSERT INTO {name} ({}) VALUES ({})",
            column_list(columns),
            placeholders.join(", ")
        ))?;
        // In key order (random ids), never PostgreSQL's physical order,
        // which follows arrival: the new file's B-trees tell nothing more
        // than the server's own (protocol.md §7a).
        let mut original = TableHash::default();
        each_postgres_row(tx, table, |row| {
            original.add(&row);
            insert.execute(rusqlite::params_from_iter(row.iter()))?;
            Ok(())
        })?;
        let mut written = TableHash::default();
        each_sqlite_row(copy, table, |row| {
            written.add(&row);
            Ok(())
        })?;
        copies.push(verified(name, original, written)?);
    }
    copy.execute_batch("COMMIT")?;
    Ok(copies)
}

/// The target of the way back must be new: absent or an empty file, with
/// no journal of an earlier database beside it.
fn check_new_file(target: &Path) -> Result<(), MigrateError> {
    match std::fs::metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(target)(e)),
        Ok(meta) if meta.is_file() && meta.len() == 0 => {}
        Ok(_) => return Err(MigrateError::FileExists(target.to_path_buf())),
    }
    for suffix in ["-wal", "-journal"] {
        let journal = with_suffix(target, suffix);
        if std::fs::symlink_metadata(&journal).is_ok() {
            return Err(MigrateError::JournalBeside(journal));
        }
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The new SQLite file while it is written: removed (with any journal)
/// unless it was put in place.
struct PartialFile {
    path: PathBuf,
    kept: bool,
}

impl PartialFile {
    fn beside(target: &Path) -> Self {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tag = hex::encode(rand::random::<[u8; 8]>());
        PartialFile {
            path: target.with_file_name(format!(".{name}.{tag}.partial")),
            kept: false,
        }
    }

    /// Syncs the file and links it in as `target`, which must not have
    /// appeared in the meantime (an empty file there is replaced), then
    /// syncs the directory, so the new name survives a crash.
    fn persist(mut self, target: &Path) -> Result<(), MigrateError> {
        std::fs::File::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(io(&self.path))?;
        check_new_file(target)?;
        if target.exists() {
            std::fs::remove_file(target).map_err(io(target))?;
        }
        // A link, not a rename: it fails rather than replace a file that
        // appeared since the check.
        std::fs::hard_link(&self.path, target).map_err(io(target))?;
        self.kept = true;
        std::fs::remove_file(&self.path).map_err(io(&self.path))?;
        #[cfg(unix)]
        if let Some(directory) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(directory)
                .and_then(|d| d.sync_all())
                .map_err(io(directory))?;
        }
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.kept {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(with_suffix(&self.path, suffix));
            }
        }
    }
}

/// Rows of Meldkluis data in the PostgreSQL database, all tables together.
fn postgres_rows_present(tx: &mut Transaction<'_>) -> Result<i64, MigrateError> {
    let mut present = 0i64;
    for (table, _, _) in TABLES {
        present += tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
            .get::<_, i64>(0);
    }
    Ok(present)
}

/// The copy is good when both sides counted and hashed the same rows.
fn verified(
    table: &'static str,
    original: TableHash,
    copy: TableHash,
) -> Result<TableCopy, MigrateError> {
    let (rows, copied) = (original.rows, copy.rows);
    let sha256: [u8; 32] = original.hasher.finalize().into();
    if copied != rows || copy.hasher.finalize()[..] != sha256[..] {
        return Err(MigrateError::Differs {
            table,
            detail: format!("{rows} row(s) read, {copied} stored"),
        });
    }
    Ok(TableCopy {
        table,
        rows,
        sha256,
    })
}

fn column_list(columns: &[(&str, Column)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

/// Each row of a SQLite table, in key order.
fn each_sqlite_row(
    connection: &rusqlite::Connection,
    (table, columns, key): Table,
    mut each: impl FnMut(Vec<Value>) -> Result<(), MigrateError>,
) -> Result<(), MigrateError> {
    let mut statement = connection.prepare(&format!(
        "SELECT {} FROM {table} ORDER BY {key}",
        column_list(columns)
    ))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        each(sqlite_values(row, columns)?)?;
    }
    Ok(())
}

/// Each row of a PostgreSQL table, in the order SQLite's keys have: bytes
/// compare alike, text in the C collation (bytes, as SQLite's BINARY).
fn each_postgres_row(
    tx: &mut Transaction<'_>,
    (table, columns, key): Table,
    mut each: impl FnMut(Vec<Value>) -> Result<(), MigrateError>,
) -> Result<(), MigrateError> {
    let order: Vec<String> = key
        .split(", ")
        .map(|k| match columns.iter().find(|(n, _)| *n == k) {
            Some((_, Column::Text)) => format!("{k} COLLATE \"C\""),
            _ => k.to_string(),
        })
        .collect();
    let mut rows = tx.query_raw(
        &format!(
            "SELECT {} FROM {table} ORDER BY {}",
            column_list(columns),
            order.join(", ")
        ),
        std::iter::empty::<i32>(),
    )?;
    while let Some(row) = rows.next()? {
        each(
            columns
                .iter()
                .enumerate()
                .map(|(i, (_, column))| postgres_value(&row, i, *column))
                .collect(),
        )?;
    }
    Ok(())
}

fn sqlite_values(
    row: &rusqlite::Row<'_>,
    columns: &[(&str, Column)],
) -> rusqlite::Result<Vec<Value>> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, column))| {
            Ok(match column {
                Column::Bytes => Value::Bytes(row.get(i)?),
                Column::Text => Value::Text(row.get(i)?),
                Column::Big => Value::Big(row.get(i)?),
                Column::Small => Value::Small(row.get::<_, Option<i64>>(i)?.map(|n| n as i32)),
            })
        })
        .collect()
}

fn postgres_value(row: &postgres::Row, i: usize, column: Column) -> Value {
    match column {
        Column::Bytes => Value::Bytes(row.get(i)),
        Column::Text => Value::Text(row.get(i)),
        Column::Big => Value::Big(row.get(i)),
        Column::Small => Value::Small(row.get(i)),
    }
}
