//! Retention: deleting closed cases with their messages, deliveries and
//! attachments (one node at a time, under the retention lock), and the
//! VACUUM after.

use super::pool::Tx;
use super::{LOCK_RETENTION, PostgresStore};
use crate::format::day::Day;
use crate::format::ids::UploadId;
use crate::server::store::{Purged, StoreError, blob16};

/// The tables, for VACUUM after a purge (their TOAST tables come along).
const TABLES: &str = "cases, case_counsellors, messages, deliveries, uploads, upload_chunks";

impl PostgresStore {
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
        mut doomed: impl FnMut(&mut Tx<'_, '_>) -> Result<Vec<Vec<u8>>, StoreError>,
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
                .client
                .query(
                    &format!("SELECT id FROM uploads WHERE message_id IN ({doomed_messages})"),
                    &[&ids],
                )?
                .iter()
                .map(|row| UploadId(blob16(row.get(0))))
                .collect();
            // Made at run time, so run unprepared (`Cached` takes constants).
            tx.client.execute(
                &format!(
                    "DELETE FROM upload_chunks WHERE upload_id IN
                       (SELECT id FROM uploads WHERE message_id IN ({doomed_messages}))"
                ),
                &[&ids],
            )?;
            for table in ["uploads", "deliveries"] {
                tx.client.execute(
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
}
