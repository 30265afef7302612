//! `meldkluis backup` and `meldkluis restore`: a consistent copy of the live
//! database with `VACUUM INTO` (the server keeps running), and
//! the way back into a data directory, checked and migrated before it
//! replaces anything.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::config::UPLOADS_DIR;
use super::store::{Store, StoreError};

/// Tables every Meldkluis schema has had since version 1.
const TABLES: [&str; 4] = ["cases", "case_counsellors", "messages", "counsellor_sync"];
/// How long a copy waits for a moment the database is not locked.
const BUSY_LIMIT: Duration = Duration::from_secs(60);

/// What a database holds, for the operator's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseInfo {
    pub schema_version: i64,
    pub cases: i64,
    pub messages: i64,
    pub bytes: u64,
}

impl fmt::Display for DatabaseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "schema version {}, {} case(s), {} message(s), {} bytes",
            self.schema_version, self.cases, self.messages, self.bytes
        )
    }
}

/// Why a backup or restore did not happen. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The data directory holds no database.
    #[error("there is no database at {0} (check --data or data_dir)")]
    NoDatabase(PathBuf),
    /// The target exists and `--force` was not given.
    #[error("{0} already exists: choose another name, or add --force to replace it")]
    Exists(PathBuf),
    /// The data directory already holds a database and `--force` was not given.
    #[error(
        "the data directory already holds a database, {0}: add --force to replace it (the old \
         one is then kept beside it, renamed)"
    )]
    LiveDatabase(PathBuf),
    /// A running server has the database open.
    #[error("the database {0} is in use by a running server: stop the server first")]
    InUse(PathBuf),
    /// Running as another user than the database's owner would leave files
    /// the server cannot open.
    #[error(
        "{path} belongs to user id {owner}, but this command runs as user id {me}: run it as the \
         database's owner (for example: sudo -u meldkluis meldkluis …), or files SQLite makes \
         next to the database would lock the server out"
    )]
    WrongUser { path: PathBuf, owner: u32, me: u32 },
    /// The file is not a database this program made.
    #[error("{path} is not a Meldkluis database: {reason}")]
    NotMeldkluis { path: PathBuf, reason: String },
    /// The copy does not open with this version (for example: too new).
    #[error("the backup {path} cannot be used by this version of meldkluis: {source}")]
    Store { path: PathBuf, source: StoreError },
    #[error("the database stayed locked for {0:?}; try again")]
    Busy(Duration),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sql(path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError + '_ {
    move |source| BackupError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks that `path` is a whole, undamaged Meldkluis database and counts
/// what it holds. Opens it read-only; never creates it.
pub fn inspect(path: &Path) -> Result<DatabaseInfo, BackupError> {
    let not_ours = |reason: &str| BackupError::NotMeldkluis {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let metadata = std::fs::metadata(path).map_err(io(path))?;
    if !metadata.is_file() {
        return Err(not_ours("it is not a file"));
    }
    let mut header = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    if std::io::Read::read_exact(&mut file, &mut header).is_err() || &header != b"SQLite format 3\0"
    {
        return Err(not_ours("it is not an SQLite database"));
    }
    let connection = open_read_only(path)?;
    let check: String = connection
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| not_ours(&format!("it is damaged ({e})")))?;
    if check != "ok" {
        return Err(not_ours(&format!("it is damaged ({check})")));
    }
    let schema_version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sql(path))?;
    if schema_version < 1 {
        return Err(not_ours("it has no Meldkluis schema version"));
    }
    for table in TABLES {
        let present: bool = connection
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
                [table],
                |row| row.get(0),
            )
            .map_err(sql(path))?;
        if !present {
            return Err(not_ours(&format!("it has no {table} table")));
        }
    }
    let count = |table: &str| -> Result<i64, BackupError> {
        connection
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .map_err(sql(path))
    };
    Ok(DatabaseInfo {
        schema_version,
        cases: count("cases")?,
        messages: count("messages")?,
        bytes: metadata.len(),
    })
}

/// Opens a database read-only without creating anything beside it. A
/// read-only connection to a WAL database makes `-wal` and `-shm` files when
/// they are missing, owned by whoever runs the command (root, say), which
/// would lock the server out. With no `-wal` file the database was closed
/// cleanly and is opened as immutable; otherwise the files exist already.
fn open_read_only(path: &Path) -> Result<Connection, BackupError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = if sibling(path, "-wal").exists() {
        Connection::open_with_flags(path, flags)
    } else {
        let absolute = std::path::absolute(path).map_err(io(path))?;
        let uri = format!("file:{}?immutable=1", uri_path(&absolute));
        Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
    };
    connection.map_err(sql(path))
}

/// A path for an SQLite `file:` URI: everything but unreserved characters
/// and `/` percent-encoded.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(*byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// True when another connection (a running server) has the database open:
/// an exclusive lock is then refused at once.
pub fn in_use(path: &Path) -> Result<bool, BackupError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(path))?;
    connection.busy_timeout(Duration::ZERO).map_err(sql(path))?;
    // In exclusive locking mode a WAL database is opened without shared
    // memory, which needs every other connection to be closed.
    let probe =
        connection.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;");
    match probe {
        Ok(()) => Ok(false),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            Ok(true)
        }
        Err(e) => Err(sql(path)(e)),
    }
}

/// Where a backup into a directory goes: a name with the time in UTC.
pub fn dated_name() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "meldkluis-{:04}{:02}{:02}T{:02}{:02}{:02}Z.sqlite",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Copies the live database `database` to `target` (a file, or a directory
/// to put a dated file in). The copy is one consistent snapshot, a single
/// self-contained file (no WAL), readable only by its owner. Returns where
/// it went and what it holds.
pub fn backup(
    database: &Path,
    target: &Path,
    force: bool,
) -> Result<(PathBuf, DatabaseInfo), BackupError> {
    if !database.is_file() {
        return Err(BackupError::NoDatabase(database.to_path_buf()));
    }
    let target = if target.is_dir() {
        target.join(dated_name())
    } else {
        target.to_path_buf()
    };
    if target.exists() && !force {
        return Err(BackupError::Exists(target));
    }
    let directory = parent_dir(&target);
    let partial = TempFile::create(&directory, ".meldkluis-backup")?;
    check_owner(database, &partial.path)?;
    // Read-write (never create): as the owner, checked above, SQLite may then
    // make and remove its side files as the server itself would.
    let source = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(database))?;
    copy_database(&source, database, &partial.path)?;
    drop(source);
    let info = inspect(&partial.path)?;
    // Attachments are in the database since schema version 4: the copy is
    // one file, holding exactly what the database references.
    partial.persist(&target)?;
    Ok((target, info))
}

/// Deletes the dated backups (`meldkluis-YYYYMMDDTHHMMSSZ.sqlite`, as
/// `dated_name` makes them) in `directory` taken more than `keep_days`
/// days before `now`, with the attachment folders older versions kept
/// beside them (`<backup>.uploads/`). The date is read from the name, not
/// from the file's times, which a copy or restore of the folder changes.
/// Other files are left alone. Returns what was deleted.
pub fn rotate(
    directory: &Path,
    keep_days: u32,
    now: time::OffsetDateTime,
) -> Result<Vec<PathBuf>, BackupError> {
    let cutoff = now - time::Duration::days(i64::from(keep_days));
    let mut deleted = Vec::new();
    for entry in std::fs::read_dir(directory).map_err(io(directory))? {
        let path = entry.map_err(io(directory))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(taken) = dated_name_time(name) else {
            continue;
        };
        if taken >= cutoff {
            continue;
        }
        let attachments = attachments_dir(&path);
        if attachments.is_dir() {
            std::fs::remove_dir_all(&attachments).map_err(io(&attachments))?;
        }
        std::fs::remove_file(&path).map_err(io(&path))?;
        deleted.push(path);
    }
    // Attachment folders whose database is gone already (deleted by hand,
    // or by the `find` of an older backup unit).
    for entry in std::fs::read_dir(directory).map_err(io(directory))? {
        let path = entry.map_err(io(directory))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(database) = name.strip_suffix(".uploads")
            && dated_name_time(database).is_some()
            && !directory.join(database).exists()
            && path.is_dir()
        {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
            deleted.push(path);
        }
    }
    #[cfg(unix)]
    std::fs::File::open(directory)
        .and_then(|d| d.sync_all())
        .map_err(io(directory))?;
    Ok(deleted)
}

/// The time in a name `dated_name` made, or `None`.
fn dated_name_time(name: &str) -> Option<time::OffsetDateTime> {
    let stamp = name.strip_prefix("meldkluis-")?.strip_suffix("Z.sqlite")?;
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]");
    time::PrimitiveDateTime::parse(stamp, &format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// Where a version-3 backup file's attachments were: `<backup>.uploads/`.
pub fn attachments_dir(backup: &Path) -> PathBuf {
    sibling(backup, ".uploads")
}

/// Copies the complete attachment files the database `database` names from
/// `from` into `to` (made if needed), skipping those already there with the
/// right length. Returns how many it copied.
fn copy_attachments(database: &Path, from: &Path, to: &Path) -> Result<usize, BackupError> {
    let connection = open_read_only(database)?;
    let has_uploads: bool = connection
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'uploads')",
            [],
            |row| row.get(0),
        )
        .map_err(sql(database))?;
    if !has_uploads {
        return Ok(0);
    }
    let files: Vec<(Vec<u8>, i64)> = connection
        .prepare("SELECT id, length FROM uploads WHERE state <> 'pending'")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(sql(database))?;
    drop(connection);
    if files.is_empty() {
        return Ok(0);
    }
    std::fs::create_dir_all(to).map_err(io(to))?;
    let mut copied = 0;
    for (id, length) in files {
        let name = format!("{}.age", hex::encode(&id));
        let (source, target) = (from.join(&name), to.join(&name));
        if std::fs::metadata(&target).is_ok_and(|m| m.len() == length as u64) {
            continue;
        }
        if !source.exists() {
            continue;
        }
        let partial = sibling(&target, ".partial");
        std::fs::copy(&source, &partial).map_err(io(&source))?;
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(io(&partial))?;
        std::fs::rename(&partial, &target).map_err(io(&target))?;
        copied += 1;
    }
    Ok(copied)
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub info: DatabaseInfo,
    /// The database that was there before, moved aside (with `--force`).
    pub previous: Option<PathBuf>,
}

/// Puts the backup `source` in place as `database`. Refuses a file that is
/// not a Meldkluis database, one this version cannot open, a database in
/// use, and (without `force`) any existing database. The copy is migrated to
/// this version before it replaces anything.
pub fn restore(source: &Path, database: &Path, force: bool) -> Result<Restored, BackupError> {
    inspect(source)?;
    let directory = parent_dir(database);
    std::fs::create_dir_all(&directory).map_err(io(&directory))?;
    let partial = TempFile::create(&directory, ".meldkluis-restore")?;
    if database.exists() {
        check_owner(database, &partial.path)?;
        if in_use(database)? {
            return Err(BackupError::InUse(database.to_path_buf()));
        }
        if !force {
            return Err(BackupError::LiveDatabase(database.to_path_buf()));
        }
    }
    let from = open_read_only(source)?;
    copy_database(&from, source, &partial.path)?;
    drop(from);
    // Open it as the server would: this runs the migrations to this
    // version, and refuses a backup from a newer one.
    let store = Store::open(&partial.path).map_err(|error| BackupError::Store {
        path: source.to_path_buf(),
        source: error,
    })?;
    drop(store);
    renumber_unacknowledged(&partial.path)?;
    forget_pending_uploads(&partial.path)?;
    let info = inspect(&partial.path)?;
    // A version-3 backup kept its attachments beside it: they come back
    // before the database that names them, and the server moves them into
    // the database when it starts.
    let saved = attachments_dir(source);
    if saved.is_dir() {
        copy_attachments(&partial.path, &saved, &directory.join(UPLOADS_DIR))?;
    }

    let previous = if database.exists() {
        let aside = sibling(database, &format!(".before-restore-{}", dated_name_stem()));
        for suffix in ["", "-wal", "-shm"] {
            let from = sibling(database, suffix);
            if from.exists() {
                let to = sibling(&aside, suffix);
                std::fs::rename(&from, &to).map_err(io(&from))?;
            }
        }
        Some(aside)
    } else {
        None
    };
    partial.persist(database)?;
    Ok(Restored { info, previous })
}

fn dated_name_stem() -> String {
    dated_name()
        .trim_start_matches("meldkluis-")
        .trim_end_matches(".sqlite")
        .to_string()
}

/// Uploads in progress when the backup was taken cannot be resumed: the
/// melder's page that held their bytes is long gone.
fn forget_pending_uploads(path: &Path) -> Result<(), BackupError> {
    let connection = Connection::open(path).map_err(sql(path))?;
    connection
        .execute_batch(
            "DELETE FROM upload_chunks WHERE upload_id IN
               (SELECT id FROM uploads WHERE state = 'pending');
             DELETE FROM uploads WHERE state = 'pending';",
        )
        .map_err(sql(path))?;
    connection.close().map_err(|(_, e)| sql(path)(e))
}

/// Messages delivered after the backup was taken may have been imported by
/// a laptop whose `inbox_ack` (protocol.md §6) is now above every number
/// the restored database gave. So every delivery number above what the
/// counsellor acknowledged before the backup is taken back: those messages
/// are numbered again at the next sync, after whatever that laptop then
/// acknowledges, and a laptop that had them already knows them by id.
fn renumber_unacknowledged(path: &Path) -> Result<(), BackupError> {
    let connection = Connection::open(path).map_err(sql(path))?;
    let acknowledged: Vec<(String, Vec<u8>)> = connection
        .prepare("SELECT counsellor, inbox_ack FROM counsellor_sync")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(sql(path))?;
    connection
        .execute(
            "DELETE FROM deliveries
              WHERE counsellor NOT IN (SELECT counsellor FROM counsellor_sync)",
            [],
        )
        .map_err(sql(path))?;
    for (counsellor, ack) in acknowledged {
        let ack = <[u8; 8]>::try_from(ack.as_slice())
            .map(u64::from_be_bytes)
            .unwrap_or(0)
            .min(i64::MAX as u64) as i64;
        connection
            .execute(
                "DELETE FROM deliveries WHERE counsellor = ?1 AND seq > ?2",
                rusqlite::params![counsellor, ack],
            )
            .map_err(sql(path))?;
    }
    connection.close().map_err(|(_, e)| sql(path)(e))
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn parent_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Copies all of `source` into the (empty) file `target` with `VACUUM
/// INTO`: one read transaction, so one consistent snapshot, which in WAL
/// mode holds no lock the server's writes wait for. Not the page-by-page
/// backup API: that keeps every page where it lies, and in the live file
/// rows (their overflow pages above all) lie in the order they arrived;
/// `VACUUM INTO` writes every table anew in the order of its key, random
/// ids (protocol.md §7a, `tests/metadata.rs`). Then makes the copy
/// self-contained.
fn copy_database(
    source: &Connection,
    source_path: &Path,
    target: &Path,
) -> Result<(), BackupError> {
    let target_name = target.to_str().ok_or_else(|| BackupError::Io {
        path: target.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path is not valid UTF-8",
        ),
    })?;
    source.busy_timeout(BUSY_LIMIT).map_err(sql(source_path))?;
    match source.execute("VACUUM INTO ?1", [target_name]) {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            return Err(BackupError::Busy(BUSY_LIMIT));
        }
        Err(e) => return Err(sql(source_path)(e)),
    }
    let destination = Connection::open(target).map_err(sql(target))?;
    // The copy carries the source's WAL flag; a backup is one plain file.
    destination
        .execute_batch("PRAGMA journal_mode = DELETE;")
        .map_err(sql(target))?;
    let check: String = destination
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(sql(target))?;
    if check != "ok" {
        return Err(BackupError::NotMeldkluis {
            path: source_path.to_path_buf(),
            reason: format!("the copy is damaged ({check})"),
        });
    }
    destination.close().map_err(|(_, e)| sql(target)(e))?;
    Ok(())
}

#[cfg(unix)]
fn check_owner(database: &Path, mine: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(database).map_err(io(database))?.uid();
    let me = std::fs::metadata(mine).map_err(io(mine))?.uid();
    if owner != me {
        return Err(BackupError::WrongUser {
            path: database.to_path_buf(),
            owner,
            me,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner(_database: &Path, _mine: &Path) -> Result<(), BackupError> {
    Ok(())
}

/// A file being written; removed (with any SQLite side files) unless
/// `persist` moved it into place.
struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl TempFile {
    fn create(directory: &Path, prefix: &str) -> Result<Self, BackupError> {
        let mut tag = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut tag);
        let path = directory.join(format!("{prefix}-{}.partial", hex::encode(tag)));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&path).map_err(io(&path))?;
        Ok(TempFile { path, kept: false })
    }

    /// Syncs the file and renames it to `target`, then syncs the directory,
    /// so the new name survives a crash.
    fn persist(mut self, target: &Path) -> Result<(), BackupError> {
        std::fs::File::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(io(&self.path))?;
        std::fs::rename(&self.path, target).map_err(io(target))?;
        self.kept = true;
        #[cfg(unix)]
        {
            let directory = parent_dir(target);
            std::fs::File::open(&directory)
                .and_then(|d| d.sync_all())
                .map_err(io(&directory))?;
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(sibling(&self.path, suffix));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &Path) -> PathBuf {
        let path = dir.join("meldkluis.sqlite");
        drop(Store::open(&path).unwrap());
        path
    }

    #[test]
    fn backup_and_restore_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let live = database(dir.path());
        let (copy, info) = backup(&live, dir.path(), false).unwrap();
        assert!(
            copy.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("meldkluis-")
        );
        assert_eq!(info.cases, 0);
        assert!(matches!(
            backup(&live, &copy, false),
            Err(BackupError::Exists(_))
        ));
        let other = dir.path().join("other").join("meldkluis.sqlite");
        let restored = restore(&copy, &other, false).unwrap();
        assert!(restored.previous.is_none());
        assert!(matches!(
            restore(&copy, &other, false),
            Err(BackupError::LiveDatabase(_))
        ));
        let restored = restore(&copy, &other, true).unwrap();
        let previous = restored.previous.unwrap();
        assert!(previous.exists());
        // Only the database and the kept one: no temporary files left.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("other"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn refuses_what_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"not a database at all").unwrap();
        assert!(matches!(
            inspect(&junk),
            Err(BackupError::NotMeldkluis { .. })
        ));
        let foreign = dir.path().join("foreign.sqlite");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t(x); PRAGMA user_version = 3;")
            .unwrap();
        assert!(matches!(
            inspect(&foreign),
            Err(BackupError::NotMeldkluis { .. })
        ));
        let target = dir.path().join("data").join("meldkluis.sqlite");
        assert!(restore(&foreign, &target, true).is_err());
        assert!(!target.exists());
        // A backup of a missing database does not create one.
        let missing = dir.path().join("missing.sqlite");
        assert!(matches!(
            backup(&missing, dir.path(), false),
            Err(BackupError::NoDatabase(_))
        ));
        assert!(!missing.exists());
    }

    #[test]
    fn an_open_database_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meldkluis.sqlite");
        let store = Store::open(&path).unwrap();
        assert!(in_use(&path).unwrap());
        drop(store);
        assert!(!in_use(&path).unwrap());
    }
}
