//! Attachment uploads: created, filled chunk by chunk, completed, claimed
//! by a report or follow-up, expired or deleted (the bytes live in
//! `upload_chunks`).

use super::PostgresStore;
use super::pool::{Cached, Session, Tx};
use crate::format::day::Day;
use crate::format::ids::{MessageId, UploadId};
use crate::server::store::{
    Append, MAX_PENDING_UPLOADS, StoreError, UploadRow, UploadState, blob16,
};

impl PostgresStore {
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
            let row = match Append::check(
                upload_row(tx, &id, UPLOAD_ROW_LOCKED)?,
                start,
                data.len() as u64,
            ) {
                Ok(row) => row,
                Err(answer) => return Ok((false, answer)),
            };
            let end = start + data.len() as u64;
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
            .cached()
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
            .cached()
            .query_opt(
                "SELECT data FROM upload_chunks WHERE upload_id = $1 AND start = $2",
                &[&&id.0[..], &(start as i64)],
            )?
            .map(|row| row.get(0)))
    }

    pub fn upload(&self, id: &UploadId) -> Result<Option<UploadRow>, StoreError> {
        upload_row(&mut self.lend()?.cached(), id, UPLOAD_ROW_BY_ID)
    }

    pub fn uploads(&self) -> Result<Vec<UploadRow>, StoreError> {
        Ok(self
            .lend()?
            .cached()
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
}

const UPLOAD_ROW: &str = "SELECT id, length, received, state FROM uploads";
const UPLOAD_ROW_BY_ID: &str = "SELECT id, length, received, state FROM uploads WHERE id = $1";
const UPLOAD_ROW_LOCKED: &str =
    "SELECT id, length, received, state FROM uploads WHERE id = $1 FOR UPDATE";

/// One upload's row, read with `UPLOAD_ROW_BY_ID` or `UPLOAD_ROW_LOCKED`.
fn upload_row(
    client: &mut Cached<'_, impl Session>,
    id: &UploadId,
    sql: &'static str,
) -> Result<Option<UploadRow>, StoreError> {
    Ok(client
        .query_opt(sql, &[&&id.0[..]])?
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

pub(super) fn claim_uploads(
    tx: &mut Tx<'_, '_>,
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
