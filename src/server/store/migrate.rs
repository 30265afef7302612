//! `meldkluis migrate-store`: copies a SQLite store (schema 4, its
//! attachments included) into an empty PostgreSQL database in one
//! transaction, and proves the copy: for every table, the number of rows
//! and a SHA-256 over all of them in key order, computed on both sides,
//! must agree before the transaction commits. Any difference rolls it
//! back, so the target is either a whole, verified copy or untouched.

use std::path::Path;

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
        // Reading back gigabytes of attachments is one statement: no
        // server-side limit for this one transaction.
        tx.batch_execute("SET LOCAL statement_timeout = 0")?;
        let mut present = 0i64;
        for (table, _, _) in TABLES {
            present += tx
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
                .get::<_, i64>(0);
        }
        if present > 0 {
            return Ok((false, Err(MigrateError::TargetNotEmpty(present))));
        }
        let mut copies = Vec::new();
        for (table, columns, key) in TABLES {
            let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
            let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let insert = tx.prepare(&format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                placeholders.join(", ")
            ))?;
            let mut statement = match source.prepare(&format!(
                "SELECT {} FROM {table} ORDER BY {key}",
                names.join(", ")
            )) {
                Ok(statement) => statement,
                Err(e) => return Ok((false, Err(e.into()))),
            };
            let mut rows = match statement.query([]) {
                Ok(rows) => rows,
                Err(e) => return Ok((false, Err(e.into()))),
            };
            let mut hasher = Sha256::new();
            let mut count = 0u64;
            loop {
                let row = match rows.next() {
                    Ok(Some(row)) => row,
                    Ok(None) => break,
                    Err(e) => return Ok((false, Err(e.into()))),
                };
                let values = match sqlite_values(row, columns) {
                    Ok(values) => values,
                    Err(e) => return Ok((false, Err(e.into()))),
                };
                for value in &values {
                    value.hash_into(&mut hasher);
                }
                let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(Value::param).collect();
                tx.execute(&insert, &params)?;
                count += 1;
            }
            let sha256: [u8; 32] = hasher.finalize().into();
            // Read back in the same order (bytes and C collation order as
            // SQLite does) and compare.
            let order: Vec<String> = key
                .split(", ")
                .map(|k| match columns.iter().find(|(n, _)| *n == k) {
                    Some((_, Column::Text)) => format!("{k} COLLATE \"C\""),
                    _ => k.to_string(),
                })
                .collect();
            let mut hasher = Sha256::new();
            let mut back = 0u64;
            let read = tx.query_raw(
                &format!(
                    "SELECT {} FROM {table} ORDER BY {}",
                    names.join(", "),
                    order.join(", ")
                ),
                std::iter::empty::<i32>(),
            )?;
            use postgres::fallible_iterator::FallibleIterator;
            let mut read = read;
            while let Some(row) = read.next()? {
                for (i, (_, column)) in columns.iter().enumerate() {
                    postgres_value(&row, i, *column).hash_into(&mut hasher);
                }
                back += 1;
            }
            let copied: [u8; 32] = hasher.finalize().into();
            if back != count || copied != sha256 {
                return Ok((
                    false,
                    Err(MigrateError::Differs {
                        table,
                        detail: format!("{count} row(s) read, {back} stored"),
                    }),
                ));
            }
            copies.push(TableCopy {
                table,
                rows: count,
                sha256,
            });
        }
        Ok((true, Ok(copies)))
    })??;
    source.execute_batch("COMMIT")?;
    Ok(copies)
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
