//! Streamed attachments (protocol.md §3a, api.md "Uploads").
//!
//! Their bytes live in the database (`upload_chunks`), written piece by
//! piece as they arrive and counted against the quota only then: a file
//! per upload would carry its upload time in its birth and change times,
//! which no one can reset (protocol.md §7a), and a declared length
//! reserved at once would let a hundred small requests hold the whole
//! quota. An upload that receives nothing for `IDLE_LIMIT` is forgotten;
//! when it was last active is kept in memory only.
//!
//! Nothing here holds a whole file in memory: a piece is at most
//! `PIECE_BYTES`, and the final check reads only the head.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::format::agefile;
use crate::format::day::Day;
use crate::format::ids::UploadId;
use crate::server::config::Config;
use crate::server::error::AppError;
use crate::server::store::{Append, Store, UploadState};

/// The most bytes one chunk request may carry. Small enough that a slow
/// phone sends one well inside the 60-second request limit at ~70 KB/s.
pub const CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// The most bytes one stored piece holds: one commit each.
pub const PIECE_BYTES: usize = 1024 * 1024;

/// Room for an attachment's header and nonce: the header check stops at
/// 64 KiB, far more than eleven X25519 stanzas need.
const HEAD_ALLOWANCE: u64 = 64 * 1024 + 16;

/// How many bytes the final check reads: the whole head always fits.
const HEAD_READ: usize = 64 * 1024 + 16;

/// A pending upload that received no byte for this long is forgotten with
/// what it holds. A melder's page sends the next chunk within seconds; a
/// page that sleeps longer starts the file again.
pub const IDLE_LIMIT: Duration = Duration::from_secs(10 * 60);

/// The limits, and which uploads a request is writing.
pub struct Uploads {
    max_attachment_bytes: u64,
    quota: u64,
    min_free: u64,
    data_dir: PathBuf,
    /// Uploads a chunk request is writing right now: one writer each.
    busy: Mutex<HashSet<UploadId>>,
    /// When each pending upload was last seen to receive bytes, and how
    /// many it held then. In memory only: it is a time of day, so it never
    /// reaches the disk. The count makes it work across nodes: an upload
    /// that grows through another node's chunk requests is active too.
    active: Mutex<HashMap<UploadId, (u64, Instant)>>,
}

/// Marks an upload busy until dropped.
pub struct Busy {
    uploads: Arc<Uploads>,
    id: UploadId,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.uploads
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Uploads {
    /// Sets the limits, and moves attachment files left by version 3 (one
    /// file per upload in `uploads/`) into the database. Blocking.
    pub fn open(config: &Config, store: &Store) -> io::Result<Self> {
        let uploads = Uploads {
            max_attachment_bytes: config.max_attachment_bytes,
            quota: config.upload_quota_bytes,
            min_free: config.min_free_bytes,
            data_dir: config.data_dir.clone(),
            busy: Mutex::new(HashSet::new()),
            active: Mutex::new(HashMap::new()),
        };
        adopt_legacy_files(&config.uploads_dir(), store)?;
        Ok(uploads)
    }

    /// The largest ciphertext an upload may declare.
    pub fn max_length(&self) -> u64 {
        HEAD_ALLOWANCE
            + agefile::payload_length(agefile::attachment_padded_length(self.max_attachment_bytes))
    }

    pub fn max_attachment_bytes(&self) -> u64 {
        self.max_attachment_bytes
    }

    /// A reader of a complete (or claimed) upload's age file.
    pub fn open_file<S: AsRef<Store>>(
        &self,
        store: S,
        id: &UploadId,
    ) -> io::Result<UploadReader<S>> {
        let row = store
            .as_ref()
            .upload(id)
            .map_err(io::Error::other)?
            .filter(|row| row.state != UploadState::Pending && row.received == row.length)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such complete upload"))?;
        Ok(UploadReader {
            store,
            id: *id,
            next: 0,
            length: row.length,
            piece: Vec::new(),
            at: 0,
        })
    }

    /// A new pending upload of `length` bytes. Nothing is reserved: the
    /// bytes count against the quota as they arrive. Blocking.
    pub fn create(&self, store: &Store, length: u64) -> Result<UploadId, AppError> {
        if length > self.max_length() {
            return Err(AppError::TooLarge);
        }
        if length == 0 {
            return Err(AppError::BadUpload);
        }
        // Refused at once when the file could not fit now (nothing is
        // reserved: the same checks run again as its bytes arrive).
        let free = free_bytes(&self.data_dir).map_err(|e| AppError::Internal(e.to_string()))?;
        if free.saturating_sub(self.min_free) < length
            || store.uploads_received()?.saturating_add(length) > self.quota
        {
            return Err(AppError::StorageFull);
        }
        let id = UploadId::random();
        if !store.create_upload(id, length)? {
            return Err(AppError::StorageFull);
        }
        self.touch(id, 0);
        Ok(id)
    }

    fn touch(&self, id: UploadId, received: u64) {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (received, Instant::now()));
    }

    /// Marks `id` busy for one chunk request; `None` if another request is
    /// writing it.
    pub fn claim(self: &Arc<Self>, id: UploadId) -> Option<Busy> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.insert(id).then(|| Busy {
            uploads: self.clone(),
            id,
        })
    }

    /// Stores one piece at `start` (durably). Blocking.
    pub fn append(
        &self,
        store: &Store,
        id: UploadId,
        start: u64,
        piece: Vec<u8>,
    ) -> Result<u64, AppError> {
        if !piece.is_empty() {
            let free = free_bytes(&self.data_dir).map_err(|e| AppError::Internal(e.to_string()))?;
            if free.saturating_sub(self.min_free) < piece.len() as u64 {
                return Err(AppError::StorageFull);
            }
        }
        match store.append_chunk(id, start, piece, self.quota)? {
            Append::Stored(row) => {
                self.touch(id, row.received);
                Ok(row.received)
            }
            Append::Unknown => Err(AppError::UnknownUpload),
            Append::WrongOffset(_) => Err(AppError::WrongOffset),
            Append::PastLength => Err(AppError::BadUpload),
            Append::QuotaFull => Err(AppError::StorageFull),
        }
    }

    /// Every byte arrived: checks the head (protocol.md §3a) and marks the
    /// upload complete. One that fails the check is deleted. Blocking.
    pub fn finish(&self, store: &Store, id: UploadId, length: u64) -> Result<(), AppError> {
        let mut head = Vec::with_capacity(HEAD_READ);
        let mut start = 0u64;
        while head.len() < HEAD_READ && start < length {
            let Some(piece) = store.upload_chunk(&id, start)? else {
                // Cancelled or expired while its last bytes arrived.
                return Err(AppError::UnknownUpload);
            };
            start += piece.len() as u64;
            head.extend_from_slice(&piece);
        }
        head.truncate(HEAD_READ);
        if let Err(refusal) = agefile::check_attachment(&head, length).map(|_| ()) {
            self.forget(store, id)?;
            return Err(AppError::Age(refusal));
        }
        if !store.complete_upload(id)? {
            // Cancelled (or expired) while its last bytes arrived.
            return Err(AppError::UnknownUpload);
        }
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        Ok(())
    }

    /// Undoes a chunk that cannot be kept (too long, past the length, no
    /// room): the upload holds its first `start` bytes again. Blocking.
    pub fn cut(&self, store: &Store, id: UploadId, start: u64) -> Result<(), AppError> {
        store.cut_upload(id, start)?;
        Ok(())
    }

    fn forget(&self, store: &Store, id: UploadId) -> Result<bool, AppError> {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        Ok(store.delete_upload(id)?)
    }

    /// Deletes an upload no message claimed, with its bytes. `false` if
    /// there was none. A chunk request writing it at the same time ends
    /// with `unknown_upload`. Blocking.
    pub fn cancel(&self, store: &Store, id: UploadId) -> Result<bool, AppError> {
        self.forget(store, id)
    }

    /// Deletes unclaimed uploads older than a day (complete ones no
    /// message named), and pending ones idle for `IDLE_LIMIT`. Blocking.
    pub fn expire(&self, store: &Store, today: Day) -> Result<usize, AppError> {
        let two_days_ago = Day(today.0 - time::Duration::days(2));
        let expired = store.expire_uploads(two_days_ago)?.len();
        Ok(expired + self.expire_idle(store, IDLE_LIMIT)?)
    }

    /// Deletes pending uploads that received nothing for `idle` (and that no
    /// request is writing). One seen for the first time (after a restart)
    /// starts its clock now. Blocking.
    pub fn expire_idle(&self, store: &Store, idle: Duration) -> Result<usize, AppError> {
        let pending: Vec<(UploadId, u64)> = store
            .uploads()?
            .into_iter()
            .filter(|row| row.state == UploadState::Pending)
            .map(|row| (row.id, row.received))
            .collect();
        let now = Instant::now();
        let pending_set: HashSet<UploadId> = pending.iter().map(|(id, _)| *id).collect();
        let idle_ones: Vec<UploadId> = {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            active.retain(|id, _| pending_set.contains(id));
            pending
                .iter()
                .filter(|(id, received)| {
                    let seen = active.entry(*id).or_insert((*received, now));
                    if seen.0 != *received {
                        // It grew since: through another node, or a
                        // request this node has not touched it for.
                        *seen = (*received, now);
                    }
                    now.duration_since(seen.1) >= idle && !busy.contains(id)
                })
                .map(|(id, _)| *id)
                .collect()
        };
        let mut forgotten = 0;
        for id in idle_ones {
            if self.forget(store, id)? {
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }
}

/// Reads an upload's bytes from the database one piece at a time.
pub struct UploadReader<S> {
    store: S,
    id: UploadId,
    next: u64,
    length: u64,
    piece: Vec<u8>,
    at: usize,
}

impl<S: AsRef<Store>> Read for UploadReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.piece.len() {
            if self.next >= self.length {
                return Ok(0);
            }
            let piece = self
                .store
                .as_ref()
                .upload_chunk(&self.id, self.next)
                .map_err(io::Error::other)?
                .filter(|piece| !piece.is_empty())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "an attachment lost bytes")
                })?;
            self.next += piece.len() as u64;
            self.piece = piece;
            self.at = 0;
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Version 3 kept each complete attachment in `uploads/<id>.age`: its
/// bytes move into the database, piece by piece (a crash resumes where the
/// database says), and the file goes. Pending uploads of version 3 were
/// dropped by the migration; their `.part` files go too. The folder goes
/// when it is empty.
fn adopt_legacy_files(dir: &Path, store: &Store) -> io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for row in store.uploads().map_err(io::Error::other)? {
        if row.state == UploadState::Pending || row.received == row.length {
            continue;
        }
        let path = dir.join(format!("{}.age", row.id));
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::error!("uploads: the file of an attachment is missing; it cannot be sent");
                continue;
            }
            Err(e) => return Err(e),
        };
        io::Seek::seek(&mut file, io::SeekFrom::Start(row.received))?;
        let mut start = row.received;
        while start < row.length {
            let mut piece = Vec::with_capacity(PIECE_BYTES);
            (&mut file)
                .take(PIECE_BYTES.min((row.length - start) as usize) as u64)
                .read_to_end(&mut piece)?;
            if piece.is_empty() {
                tracing::error!("uploads: an attachment file is shorter than its upload");
                break;
            }
            let len = piece.len() as u64;
            store
                .adopt_chunk(row.id, start, piece)
                .map_err(io::Error::other)?;
            start += len;
        }
    }
    let unfinished: HashSet<String> = store
        .uploads()
        .map_err(io::Error::other)?
        .into_iter()
        .filter(|row| row.received < row.length && row.state != UploadState::Pending)
        .map(|row| format!("{}.age", row.id))
        .collect();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !unfinished.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    if std::fs::read_dir(dir)?.next().is_none() {
        std::fs::remove_dir(dir)?;
    }
    Ok(())
}

/// Free bytes an unprivileged user may still write on `dir`'s file system.
fn free_bytes(dir: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uploads(dir: &std::path::Path) -> Uploads {
        Uploads {
            max_attachment_bytes: 1 << 20,
            quota: 1 << 30,
            min_free: 0,
            data_dir: dir.to_path_buf(),
            busy: Mutex::new(HashSet::new()),
            active: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn an_idle_upload_is_forgotten_with_its_bytes_a_busy_or_active_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let uploads = Arc::new(uploads(dir.path()));
        let (idle, busy, fresh) = (
            uploads.create(&store, 5000).unwrap(),
            uploads.create(&store, 5000).unwrap(),
            uploads.create(&store, 5000).unwrap(),
        );
        uploads.append(&store, idle, 0, vec![1; 100]).unwrap();
        let _writing = uploads.claim(busy).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        uploads.append(&store, fresh, 0, vec![1; 100]).unwrap();
        assert_eq!(
            uploads
                .expire_idle(&store, Duration::from_millis(40))
                .unwrap(),
            1
        );
        assert!(store.upload(&idle).unwrap().is_none());
        assert_eq!(
            store.upload_chunk(&idle, 0).unwrap(),
            None,
            "its bytes went too"
        );
        assert!(
            store.upload(&busy).unwrap().is_some(),
            "a request is writing it"
        );
        assert!(
            store.upload(&fresh).unwrap().is_some(),
            "it just received bytes"
        );
        // After a restart (no clock in memory) every pending upload starts
        // its clock at the first sweep.
        let restarted = Arc::new(self::uploads(dir.path()));
        assert_eq!(
            restarted
                .expire_idle(&store, Duration::from_millis(40))
                .unwrap(),
            0
        );
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            restarted
                .expire_idle(&store, Duration::from_millis(40))
                .unwrap(),
            2
        );
    }

    #[test]
    fn version_3_attachment_files_move_into_the_database_and_the_folder_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let (claimed, pending) = crate::server::store::tests::version_3_database(&path);
        let store = Store::open(&path).unwrap();
        let folder = dir.path().join("uploads");
        std::fs::create_dir(&folder).unwrap();
        let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(folder.join(format!("{claimed}.age")), &bytes).unwrap();
        std::fs::write(folder.join(format!("{pending}.part")), b"half").unwrap();
        std::fs::write(folder.join("stray"), b"?").unwrap();
        adopt_legacy_files(&folder, &store).unwrap();
        assert!(!folder.exists(), "the folder is gone");
        let row = store.upload(&claimed).unwrap().unwrap();
        assert_eq!(row.received, 3000);
        let mut read = Vec::new();
        uploads(dir.path())
            .open_file(&store, &claimed)
            .unwrap()
            .read_to_end(&mut read)
            .unwrap();
        assert_eq!(read, bytes);
        // Again (a restart): nothing to do, nothing changes.
        adopt_legacy_files(&folder, &store).unwrap();
        assert_eq!(store.upload(&claimed).unwrap().unwrap().received, 3000);
    }
}
