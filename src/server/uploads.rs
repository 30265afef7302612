//! Streamed attachments on disk (protocol.md §3a, api.md "Uploads").
//!
//! Each upload is one file in the data directory's `uploads/`: `<id>.part`
//! while bytes arrive, `<id>.age` once every byte arrived and passed the
//! check. The store's `uploads` table says which state each is in; a file
//! the table does not vouch for is removed at start-up, so a crash never
//! leaves a half-written attachment visible.
//!
//! Nothing here holds a whole file in memory: chunks are written frame by
//! frame as they arrive, and the final check reads only the head.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::format::agefile::{self, AgeFileError};
use crate::format::day::Day;
use crate::format::ids::UploadId;
use crate::server::config::Config;
use crate::server::error::AppError;
use crate::server::store::{Store, UploadState};

/// The most bytes one chunk request may carry. Small enough that a slow
/// phone sends one well inside the 60-second request limit at ~70 KB/s.
pub const CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// Room for an attachment's header and nonce: the header check stops at
/// 64 KiB, far more than eleven X25519 stanzas need.
const HEAD_ALLOWANCE: u64 = 64 * 1024 + 16;

/// How many bytes the final check reads: the whole head always fits.
const HEAD_READ: usize = 64 * 1024 + 16;

/// The uploads folder, its limits, and which uploads a request is writing.
pub struct Uploads {
    dir: PathBuf,
    max_attachment_bytes: u64,
    quota: u64,
    min_free: u64,
    /// Uploads a chunk request is writing right now: one writer each.
    busy: Mutex<HashSet<UploadId>>,
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

/// What a finished chunk request reports.
pub struct Progress {
    pub received: u64,
    pub complete: bool,
}

impl Uploads {
    /// Opens (and creates) the uploads folder, then sweeps it: every file
    /// is either vouched for by the store or removed.
    pub fn open(config: &Config, store: &Store) -> io::Result<Self> {
        let dir = config.uploads_dir();
        std::fs::create_dir_all(&dir)?;
        let uploads = Uploads {
            dir,
            max_attachment_bytes: config.max_attachment_bytes,
            quota: config.upload_quota_bytes,
            min_free: config.min_free_bytes,
            busy: Mutex::new(HashSet::new()),
        };
        uploads.sweep(store)?;
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

    fn part_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    fn done_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.age"))
    }

    /// Opens a complete (or claimed) upload's age file for reading.
    pub fn open_file(&self, id: &UploadId) -> io::Result<File> {
        File::open(self.done_path(id))
    }

    /// Start-up: completes a rename a crash interrupted, and removes every
    /// file without a row (or whose row says something else). Blocking.
    fn sweep(&self, store: &Store) -> io::Result<()> {
        let rows = store.uploads().map_err(io::Error::other)?;
        let mut keep = HashSet::new();
        for row in rows {
            let (part, done) = (self.part_path(&row.id), self.done_path(&row.id));
            match row.state {
                UploadState::Pending if part.exists() => {
                    keep.insert(part);
                }
                UploadState::Pending => {
                    // Its file is gone (a restore, a hand-cleaned folder):
                    // it can never complete.
                    store.delete_upload(row.id).map_err(io::Error::other)?;
                }
                UploadState::Complete | UploadState::Claimed => {
                    // Marked complete after the file was made durable, renamed
                    // after that: finish the rename.
                    if !done.exists() && part.exists() {
                        std::fs::rename(&part, &done)?;
                        sync_dir(&self.dir)?;
                    }
                    keep.insert(done);
                }
            }
        }
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if !keep.contains(&path) {
                tracing::warn!(
                    "uploads: removing {} (no upload in the database)",
                    path.display()
                );
                remove_if_present(&path)?;
            }
        }
        Ok(())
    }

    /// A new pending upload of `length` bytes: checks the limit, the quota
    /// and the free space, then reserves the space on disk, so a later chunk
    /// does not find the disk full. On any refusal nothing is left behind.
    /// Blocking.
    pub fn create(&self, store: &Store, length: u64) -> Result<UploadId, AppError> {
        if length > self.max_length() {
            return Err(AppError::TooLarge);
        }
        if length == 0 {
            return Err(AppError::BadUpload);
        }
        let free = free_bytes(&self.dir).map_err(|e| AppError::Internal(e.to_string()))?;
        if free.saturating_sub(self.min_free) < length {
            return Err(AppError::StorageFull);
        }
        let id = UploadId::random();
        if !store.create_upload(id, length, self.quota)? {
            return Err(AppError::StorageFull);
        }
        match self.reserve(&id, length) {
            Ok(()) => Ok(id),
            Err(e) => {
                remove_if_present(&self.part_path(&id)).ok();
                store.delete_upload(id)?;
                if is_disk_full(&e) {
                    Err(AppError::StorageFull)
                } else {
                    Err(AppError::Internal(format!(
                        "uploads: cannot create a file: {e}"
                    )))
                }
            }
        }
    }

    /// Creates the empty `.part` file with `length` bytes allocated but not
    /// yet part of the file (its size stays 0 and grows as bytes arrive).
    fn reserve(&self, id: &UploadId, length: u64) -> io::Result<()> {
        let file = File::create_new(self.part_path(id))?;
        match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, length) {
            Ok(()) => {}
            // A file system without fallocate: the free-space check above is
            // all there is, and a full disk shows up as a write error.
            Err(rustix::io::Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
        file.sync_all()?;
        sync_dir(&self.dir)
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

    /// The bytes received so far of a pending upload.
    pub fn received(&self, id: &UploadId) -> io::Result<u64> {
        Ok(std::fs::metadata(self.part_path(id))?.len())
    }

    /// Opens a pending upload to append at `offset`, which must be where its
    /// bytes end. Blocking.
    pub fn append_at(&self, id: &UploadId, offset: u64) -> Result<File, AppError> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.part_path(id))
            .map_err(|e| AppError::Internal(format!("uploads: cannot open a file: {e}")))?;
        let len = file
            .metadata()
            .map_err(|e| AppError::Internal(e.to_string()))?
            .len();
        if len != offset {
            return Err(AppError::WrongOffset);
        }
        Ok(file)
    }

    /// Every byte arrived: checks the file (protocol.md §3a), makes it
    /// durable, marks it complete, and renames it. A file that fails the
    /// check is deleted with its row. Blocking.
    pub fn finish(&self, store: &Store, id: UploadId, length: u64) -> Result<(), AppError> {
        let part = self.part_path(&id);
        let checked = (|| -> io::Result<Result<(), AgeFileError>> {
            let mut file = File::open(&part)?;
            let mut head = Vec::with_capacity(HEAD_READ);
            (&mut file).take(HEAD_READ as u64).read_to_end(&mut head)?;
            let result = agefile::check_attachment(&head, length).map(|_| ());
            if result.is_ok() {
                file.sync_all()?;
            }
            Ok(result)
        })()
        .map_err(|e| AppError::Internal(format!("uploads: cannot read a file: {e}")))?;
        if let Err(refusal) = checked {
            remove_if_present(&part).map_err(|e| AppError::Internal(e.to_string()))?;
            store.delete_upload(id)?;
            return Err(AppError::Age(refusal));
        }
        // Durable first, then visible: a crash between the two is finished
        // by the start-up sweep.
        if !store.complete_upload(id)? {
            // Cancelled (or expired) while its last bytes arrived.
            remove_if_present(&part).map_err(|e| AppError::Internal(e.to_string()))?;
            return Err(AppError::UnknownUpload);
        }
        std::fs::rename(&part, self.done_path(&id))
            .and_then(|()| sync_dir(&self.dir))
            .map_err(|e| AppError::Internal(format!("uploads: cannot rename a file: {e}")))?;
        Ok(())
    }

    /// Undoes a chunk that cannot be kept (too long, disk full): the file
    /// goes back to `offset` bytes.
    pub fn truncate(&self, id: &UploadId, offset: u64) {
        let result = std::fs::OpenOptions::new()
            .write(true)
            .open(self.part_path(id))
            .and_then(|f| f.set_len(offset));
        if let Err(e) = result {
            tracing::error!("uploads: cannot cut back a refused chunk: {e}");
        }
    }

    /// Deletes an upload no message claimed, row and file. `false` if there
    /// was none. Blocking.
    pub fn cancel(&self, store: &Store, id: UploadId) -> Result<bool, AppError> {
        if !store.delete_upload(id)? {
            return Ok(false);
        }
        self.remove_files(&[id]);
        Ok(true)
    }

    /// Removes the files of uploads the store no longer holds.
    pub fn remove_files(&self, ids: &[UploadId]) {
        for id in ids {
            for path in [self.part_path(id), self.done_path(id)] {
                if let Err(e) = remove_if_present(&path) {
                    tracing::error!("uploads: cannot remove {}: {e}", path.display());
                }
            }
        }
    }

    /// Deletes unclaimed uploads older than a day. Blocking.
    pub fn expire(&self, store: &Store, today: Day) -> Result<usize, AppError> {
        let two_days_ago = Day(today.0 - time::Duration::days(2));
        let expired = store.expire_uploads(two_days_ago)?;
        self.remove_files(&expired);
        Ok(expired.len())
    }
}

/// Writes `bytes` and says whether the disk was full.
pub fn write_frame(file: &mut File, bytes: &[u8]) -> Result<(), AppError> {
    file.write_all(bytes).map_err(|e| {
        if is_disk_full(&e) {
            AppError::StorageFull
        } else {
            AppError::Internal(format!("uploads: cannot write: {e}"))
        }
    })
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

/// Free bytes an unprivileged user may still write on `dir`'s file system.
fn free_bytes(dir: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes a rename or a new file in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
