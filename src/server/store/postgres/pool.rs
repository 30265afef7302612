//! The connection pool and each connection's prepared statements, the
//! transactions that writes (SERIALIZABLE, retried on a conflict) and
//! reads run in, and how PostgreSQL's errors become `StoreError`s.

use std::collections::HashMap;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, NoTls, Row, Statement, Transaction};

use super::{ATTEMPTS, PostgresStore, tls};
use crate::server::store::StoreError;

/// Connections each node keeps at most. Each is a PostgreSQL backend
/// process; 8 per node keeps a few nodes well inside the default
/// `max_connections` of 100.
const CONNECTIONS: usize = 8;

pub(super) struct Pool {
    pub(super) idle: Vec<Conn>,
    /// Connections open now, idle or lent.
    pub(super) open: usize,
}

/// A connection and the statements prepared on it. Preparing is a round
/// trip of its own (Parse and Describe), as long as running the statement:
/// a look-up that prepares its statements anew waits twice as long. The
/// statements go with the connection: a connection that broke is dropped
/// with them, and a new one starts with none.
pub(super) struct Conn {
    client: Client,
    statements: Statements,
}

/// Prepared statements by their SQL text, which is always a constant of
/// the store's code: the cache cannot grow past the statements the code has.
/// A statement prepared inside a transaction stays after its commit or
/// rollback (a protocol-level prepared statement lives as long as the
/// session), so it serves every later transaction on the connection —
/// the retries of `write` included.
#[derive(Default)]
struct Statements(HashMap<&'static str, Statement>);

impl Statements {
    fn get(
        &mut self,
        client: &mut impl Session,
        sql: &'static str,
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare_statement(sql)?;
        self.0.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// What `Cached` needs of a client or a transaction (the `postgres`
/// crate's `GenericClient` is sealed and not implemented for `&mut Client`).
pub(super) trait Session {
    fn prepare_statement(&mut self, sql: &str) -> Result<Statement, postgres::Error>;
    fn run(
        &mut self,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, postgres::Error>;
    fn change(
        &mut self,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<u64, postgres::Error>;
}

type Param<'a> = &'a (dyn ToSql + Sync);

impl Session for &mut Client {
    fn prepare_statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        self.prepare(sql)
    }
    fn run(
        &mut self,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, postgres::Error> {
        self.query(statement, params)
    }
    fn change(
        &mut self,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<u64, postgres::Error> {
        self.execute(statement, params)
    }
}

impl Session for Transaction<'_> {
    fn prepare_statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        self.prepare(sql)
    }
    fn run(
        &mut self,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, postgres::Error> {
        self.query(statement, params)
    }
    fn change(
        &mut self,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<u64, postgres::Error> {
        self.execute(statement, params)
    }
}

/// A client or a transaction with its connection's statements: `query`,
/// `query_one`, `query_opt` and `execute` take the SQL as a constant and
/// run the statement prepared for it (preparing it the first time). SQL
/// made at run time (`format!`) goes to `client` itself, unprepared.
pub(super) struct Cached<'s, C> {
    pub(super) client: C,
    statements: &'s mut Statements,
}

/// The transaction a `write` or a `snapshot` hands to its work.
pub(super) type Tx<'s, 'c> = Cached<'s, Transaction<'c>>;

impl<C: Session> Cached<'_, C> {
    pub(super) fn query(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statements.get(&mut self.client, sql)?;
        self.client.run(&statement, params)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, StoreError> {
        let mut rows = self.query(sql, params)?;
        if rows.len() > 1 {
            return Err(StoreError::Postgres {
                code: String::new(),
                message: "a query for one row returned more".into(),
            });
        }
        Ok(rows.pop())
    }

    pub(super) fn query_one(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Row, StoreError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::Postgres {
                code: String::new(),
                message: "a query for one row returned none".into(),
            })
    }

    pub(super) fn execute(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<u64, postgres::Error> {
        let statement = self.statements.get(&mut self.client, sql)?;
        self.client.change(&statement, params)
    }
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
pub(super) struct Lent<'a> {
    store: &'a PostgresStore,
    conn: Option<Conn>,
}

impl Lent<'_> {
    /// The connection with its prepared statements, outside a transaction
    /// (a single statement reads one consistent snapshot by itself).
    pub(super) fn cached(&mut self) -> Cached<'_, &mut Client> {
        let conn = self.conn.as_mut().expect("present until drop");
        Cached {
            client: &mut conn.client,
            statements: &mut conn.statements,
        }
    }

    /// A transaction on the connection, with its prepared statements.
    fn cached_transaction(
        &mut self,
        isolation: IsolationLevel,
        read_only: bool,
    ) -> Result<Tx<'_, '_>, StoreError> {
        let conn = self.conn.as_mut().expect("present until drop");
        let tx = conn
            .client
            .build_transaction()
            .isolation_level(isolation)
            .read_only(read_only)
            .start()?;
        Ok(Cached {
            client: tx,
            statements: &mut conn.statements,
        })
    }
}

impl std::ops::Deref for Lent<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.conn.as_ref().expect("present until drop").client
    }
}

impl std::ops::DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.conn.as_mut().expect("present until drop").client
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut pool = self.store.pool.lock().unwrap_or_else(|p| p.into_inner());
        match self.conn.take() {
            // A transaction left open (a panic) rolls back when its
            // `Transaction` drops; a closed connection is not given back.
            Some(conn) if !conn.client.is_closed() => pool.idle.push(conn),
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
        // With its causes: "error performing TLS handshake" alone would
        // not say which certificate problem it was.
        tls::describe(error)
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
    pub(super) fn is_conflict(&self) -> bool {
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
pub(in crate::server::store) fn is_disk_full_code(code: &str) -> bool {
    code == SqlState::DISK_FULL.code()
}

impl PostgresStore {
    fn connect(&self) -> Result<Client, StoreError> {
        let mut client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone())?,
            None => self.config.connect(NoTls)?,
        };
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
    pub(super) fn lend(&self) -> Result<Lent<'_>, StoreError> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Lent {
                    store: self,
                    conn: Some(conn),
                });
            }
            if pool.open < CONNECTIONS {
                pool.open += 1;
                drop(pool);
                return match self.connect() {
                    Ok(client) => Ok(Lent {
                        store: self,
                        conn: Some(Conn {
                            client,
                            statements: Statements::default(),
                        }),
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

    /// Runs `work` in a SERIALIZABLE transaction and commits it if `work`
    /// says to keep its changes; tries again, from the start, when it
    /// conflicted with another transaction (on this node or another).
    pub(super) fn write<T>(
        &self,
        mut work: impl FnMut(&mut Tx<'_, '_>) -> Result<(bool, T), StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = (|| -> Result<T, StoreError> {
                let mut conn = self.lend()?;
                let mut tx = conn.cached_transaction(IsolationLevel::Serializable, false)?;
                let (keep, value) = work(&mut tx)?;
                if keep {
                    tx.client.commit()?;
                } else {
                    tx.client.rollback()?;
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
    pub(in crate::server::store) fn with_transaction<T>(
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
    pub(super) fn snapshot<T>(
        &self,
        work: impl FnOnce(&mut Tx<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lend()?;
        let mut tx = conn.cached_transaction(IsolationLevel::RepeatableRead, true)?;
        let value = work(&mut tx)?;
        tx.client.commit()?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::agefile::AgeBlob;
    use crate::format::derive::LookupHash;
    use crate::server::store::NewCase;
    use crate::server::store::tests::postgres_test_database;

    /// The statements a session has prepared (whose text contains
    /// `like`), as PostgreSQL counts them.
    fn prepared_on_server(conn: &mut Lent<'_>, like: &str) -> i64 {
        conn.simple_query(&format!(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%{like}%'"
        ))
        .unwrap()
        .into_iter()
        .find_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => row.get(0).map(|n| n.parse().unwrap()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn statements_are_prepared_once_per_connection_and_survive_rollbacks_and_retries() {
        let Some(database) = postgres_test_database() else {
            return;
        };
        let store = PostgresStore::open(&database.url(), None).unwrap();
        let lookup = LookupHash([7; 32]);
        let recipient = age::x25519::Identity::generate().to_public();
        let report =
            AgeBlob::parse_message(age::encrypt(&recipient, &[b' '; 4096]).unwrap()).unwrap();
        assert!(matches!(
            store
                .create_case(lookup, vec!["vp-a".into()], report, vec![])
                .unwrap(),
            NewCase::Created(_)
        ));
        // One connection is open (the pool makes no second one while the
        // first is idle); every look-up reuses its statements.
        for _ in 0..20 {
            assert_eq!(store.thread(&lookup).unwrap().unwrap().messages.len(), 1);
            assert!(store.thread(&LookupHash([8; 32])).unwrap().is_none());
        }
        let mut conn = store.lend().unwrap();
        let cached = conn.conn.as_ref().unwrap().statements.0.len() as i64;
        assert_eq!(prepared_on_server(&mut conn, ""), cached);
        // The look-up's statement once, kept (without the cache it would be
        // closed after each use: none), for 40 look-ups.
        assert_eq!(prepared_on_server(&mut conn, "ARRAY(SELECT counsellor"), 1);
        assert!(
            cached >= 5,
            "create_case's statements are cached too: {cached}"
        );
        drop(conn);

        // A statement first prepared in a transaction that rolls back, on
        // a conflict, still exists in the retry (the cache hands it out
        // again; had the rollback deallocated it, running it would fail
        // with "prepared statement … does not exist") and afterwards.
        const PROBE: &str = "SELECT count(*) FROM cases WHERE day <> $1";
        let mut attempts = 0;
        let counted = store
            .write(|tx| {
                attempts += 1;
                let n: i64 = tx.query_one(PROBE, &[&"none"])?.get(0);
                if attempts == 1 {
                    return Err(StoreError::Postgres {
                        code: SqlState::T_R_SERIALIZATION_FAILURE.code().into(),
                        message: "a conflict, made up by the test".into(),
                    });
                }
                Ok((false, n))
            })
            .unwrap();
        assert_eq!((attempts, counted), (2, 1));
        let mut conn = store.lend().unwrap();
        let n: i64 = conn.cached().query_one(PROBE, &[&"none"]).unwrap().get(0);
        assert_eq!(n, 1);
        let cached = conn.conn.as_ref().unwrap().statements.0.len() as i64;
        assert_eq!(prepared_on_server(&mut conn, ""), cached);
        assert_eq!(prepared_on_server(&mut conn, PROBE), 1);
    }
}
