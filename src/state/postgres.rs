//! The PostgreSQL backend: one workspace's state in tables (`workspaces` with the lineage,
//! serial and plan in progress, `topology`, `journal`), written one transaction per update,
//! and its lock a session-level advisory lock held on a connection of its own for the whole
//! run. A berth that dies drops that connection, and PostgreSQL releases the lock at once;
//! the `locks` row still names the holder (who, where, pid, since when, which plan) for the
//! refusal message and for `force-unlock`.
//!
//! berth creates its schema itself: numbered migrations, recorded in `<schema>.migrations`,
//! applied under a transaction-level advisory lock so that many runners starting at once on
//! an empty database do not trip over each other.
//!
//! The driver is the synchronous `postgres` crate, which runs its own small tokio runtime: a
//! call made from inside berth's runtime (the executor saves from an async task) runs on a
//! short-lived thread of its own ([`off_runtime`]). TLS, with libpq's `sslmode` and
//! `sslrootcert`, is [`super::pg_tls`]'s; the connection string's libpq-only parameters are
//! taken out by [`super::pg_url`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::error::SqlState;
use postgres::{Client, IsolationLevel};
use sha2::{Digest, Sha256};

use super::backend::Backend;
use super::error::StateError;
use super::lock::{LockGuard, LockInfo};
use super::model::{FORMAT_VERSION, GuestRecord, InProgress, JournalEntry, State};
use super::pg_tls::PgTls;
use super::pg_url::{shown_url, split_tls_params};
use crate::config::PostgresSettings;

/// The migrations, in order; `{s}` is the schema. Never edit one that shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: the first layout.
    r#"
    CREATE TABLE {s}.workspaces (
        name           text PRIMARY KEY,
        lineage        uuid NOT NULL,
        serial         bigint NOT NULL,
        format_version integer NOT NULL,
        berth_version  text NOT NULL,
        updated_at     timestamptz NOT NULL,
        in_progress    jsonb,
        last_writer    text
    );
    CREATE TABLE {s}.topology (
        workspace text NOT NULL REFERENCES {s}.workspaces (name) ON DELETE CASCADE,
        guest     text NOT NULL,
        record    jsonb NOT NULL,
        PRIMARY KEY (workspace, guest)
    );
    CREATE TABLE {s}.journal (
        workspace   text NOT NULL REFERENCES {s}.workspaces (name) ON DELETE CASCADE,
        position    integer NOT NULL,
        plan_id     text NOT NULL,
        step_id     text NOT NULL,
        kind        text NOT NULL,
        guest       text NOT NULL,
        from_host   text NOT NULL,
        to_host     text NOT NULL,
        status      text NOT NULL,
        started_at  timestamptz,
        finished_at timestamptz,
        error       text,
        PRIMARY KEY (workspace, position)
    );
    CREATE INDEX journal_by_step ON {s}.journal (workspace, plan_id, step_id);
    CREATE TABLE {s}.locks (
        workspace   text PRIMARY KEY,
        id          text NOT NULL,
        owner       text NOT NULL,
        host        text NOT NULL,
        pid         bigint NOT NULL,
        operation   text NOT NULL,
        plan        text,
        created     timestamptz NOT NULL,
        backend_pid integer NOT NULL
    );
    "#,
    // 2: es.xml refreshes (`berth refresh`) recorded with the state.
    r#"
    ALTER TABLE {s}.workspaces ADD COLUMN refreshes jsonb NOT NULL DEFAULT '[]'::jsonb;
    "#,
    // 3: the boot id a rolling maintenance's HOST_COMMAND journals with its start.
    r#"
    ALTER TABLE {s}.journal ADD COLUMN boot_id text;
    "#,
    // 4: the hosts rolling maintenances serviced.
    r#"
    ALTER TABLE {s}.workspaces ADD COLUMN serviced jsonb NOT NULL DEFAULT '[]'::jsonb;
    "#,
    // 5: the start marker a rolling maintenance's HOST_COMMAND journals with its start.
    r#"
    ALTER TABLE {s}.journal ADD COLUMN once_marker text;
    "#,
];

/// Serializes migrations of every berth on one database (a transaction-level advisory lock).
const MIGRATION_LOCK: i64 = 0x6265_7274_685f_6d67; // "berth_mg"

/// How long the lock session may take to answer before each write.
const LOCK_PING: Duration = Duration::from_secs(10);

/// How long connecting may take when the URL does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Rounds every time in `state` down to the microsecond `timestamptz` keeps, so that the
/// state in memory is exactly what the database holds.
pub fn to_microseconds(state: &mut State) {
    use chrono::SubsecRound;
    state.updated_at = state.updated_at.trunc_subsecs(6);
    for e in &mut state.journal {
        e.started_at = e.started_at.map(|t| t.trunc_subsecs(6));
        e.finished_at = e.finished_at.map(|t| t.trunc_subsecs(6));
    }
}

/// Runs `f` where the synchronous driver may block: on a thread of its own when called from
/// inside a tokio runtime (the driver's own runtime cannot start there), directly otherwise.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// What can go wrong inside one database exchange.
enum Failure {
    Pg(postgres::Error),
    State(StateError),
}

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        Failure::State(e)
    }
}

/// The driver's message with the server's own detail (code, message, detail).
pub(super) fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                m.push_str(": ");
                m.push_str(detail);
            }
            m
        }
        None => {
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                m.push_str(": ");
                m.push_str(&s.to_string());
                source = s.source();
            }
            m
        }
    }
}

/// One workspace in one PostgreSQL database.
pub struct PgBackend {
    config: postgres::Config,
    tls: PgTls,
    /// The connection as a URL for messages (never with the password).
    url: String,
    workspace: String,
    /// Quoted schema name, for SQL.
    schema: String,
    /// Host, database, workspace: for messages (never the password).
    target: String,
    /// The advisory lock key of this workspace.
    key: i64,
    recovery: PathBuf,
    /// The connection state goes through (opened on first use, again after it broke).
    data: Mutex<Option<Client>>,
    /// The state as last read or written here: a write sends only the rows that changed.
    cache: Mutex<Option<State>>,
    /// The lock this backend holds (shared with the guard, which clears it on release).
    held: Arc<Mutex<Option<HeldSession>>>,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        // Closing a client blocks on the driver's runtime: not from inside berth's.
        let client = self.data.get_mut().ok().and_then(Option::take);
        if let Some(client) = client {
            off_runtime(move || drop(client));
        }
    }
}

/// The lock's own connection and the id its row carries.
struct HeldSession {
    id: String,
    client: Option<Client>,
}

impl std::fmt::Debug for HeldSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldSession").field("id", &self.id).finish()
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves plain data behind: still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PgBackend {
    /// The backend for `settings`; the URL comes from `settings.url` or `BERTH_PG_URL`.
    /// `recovery_dir` keeps the recovery file. Connects lazily.
    pub fn new(
        settings: &PostgresSettings,
        recovery_dir: &std::path::Path,
    ) -> Result<PgBackend, StateError> {
        let url = match &settings.url {
            Some(url) => url.clone(),
            None => std::env::var(PostgresSettings::URL_ENV)
                .ok()
                .filter(|u| !u.is_empty())
                .ok_or(StateError::NoPostgresUrl {
                    env: PostgresSettings::URL_ENV,
                })?,
        };
        // libpq's TLS parameters are berth's to handle (the driver knows few of them).
        let (url, tls_params) =
            split_tls_params(&url).map_err(|message| StateError::BadPostgresUrl { message })?;
        let mut config =
            postgres::Config::from_str(&url).map_err(|e| StateError::BadPostgresUrl {
                message: e.to_string(),
            })?;
        // Only `hostaddr`: the driver needs a host name for TLS; the address is that name
        // (libpq does the same: `verify-full` then checks the address in the certificate).
        if config.get_hosts().is_empty() {
            let addrs: Vec<String> = config
                .get_hostaddrs()
                .iter()
                .map(ToString::to_string)
                .collect();
            for addr in addrs {
                config.host(&addr);
            }
        }
        let tls =
            PgTls::resolve(&tls_params, &settings.tls, config.get_hosts()).map_err(|message| {
                StateError::PostgresTls {
                    url: shown_url(&config, &[]),
                    message,
                }
            })?;
        let url = shown_url(&config, &tls.shown_params());
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("berth");
        }
        let where_ = config
            .get_hosts()
            .iter()
            .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
            .map(|(h, port)| match h {
                postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                postgres::config::Host::Unix(dir) => format!("{}:{port}", dir.display()),
            })
            .collect::<Vec<_>>()
            .join(",");
        let target = format!(
            "PostgreSQL workspace `{}` (database `{}` on {}, schema `{}`)",
            settings.workspace,
            config.get_dbname().unwrap_or("?"),
            if where_.is_empty() {
                "localhost"
            } else {
                &where_
            },
            settings.schema
        );
        let digest = Sha256::digest(format!("{}\0{}", settings.schema, settings.workspace));
        let mut key = [0u8; 8];
        key.copy_from_slice(&digest[..8]);
        let file_name: String = settings
            .workspace
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(PgBackend {
            config,
            tls,
            url,
            workspace: settings.workspace.clone(),
            schema: format!("\"{}\"", settings.schema),
            target,
            key: i64::from_be_bytes(key),
            recovery: recovery_dir.join(format!("{file_name}.recovery.json")),
            data: Mutex::new(None),
            cache: Mutex::new(None),
            held: Arc::new(Mutex::new(None)),
        })
    }

    fn error(&self, action: &'static str, e: &postgres::Error) -> StateError {
        StateError::Postgres {
            action,
            target: self.target.clone(),
            message: pg_message(e),
        }
    }

    fn sql(&self, text: &str) -> String {
        text.replace("{s}", &self.schema)
    }

    /// A new connection, with the schema migrated.
    fn connect(&self) -> Result<Client, StateError> {
        let mut client =
            self.tls
                .connect(&self.config)
                .map_err(|reason| StateError::PostgresConnect {
                    url: self.url.clone(),
                    target: self.target.clone(),
                    reason,
                })?;
        self.migrate(&mut client)
            .map_err(|e| self.error("migrating berth's schema", &e))?;
        Ok(client)
    }

    /// Creates the schema and applies the migrations it lacks (idempotent).
    fn migrate(&self, client: &mut Client) -> Result<(), postgres::Error> {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(&self.sql(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        ))?;
        let done: i32 = tx
            .query_one(
                &self.sql("SELECT coalesce(max(version), 0) FROM {s}.migrations"),
                &[],
            )?
            .get(0);
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            let version = index as i32 + 1;
            if version > done {
                tx.batch_execute(&self.sql(migration))?;
                tx.execute(
                    &self.sql("INSERT INTO {s}.migrations (version) VALUES ($1)"),
                    &[&version],
                )?;
            }
        }
        tx.commit()
    }

    /// Runs `f` on the data connection (connecting first when there is none or it broke).
    /// Any failure drops the connection, so the next call starts on a fresh one.
    fn with_data<T: Send>(
        &self,
        action: &'static str,
        f: impl FnOnce(&mut Client) -> Result<T, Failure> + Send,
    ) -> Result<T, StateError> {
        off_runtime(|| {
            let mut slot = locked(&self.data);
            if slot.as_ref().is_none_or(|c| c.is_closed()) {
                *slot = Some(self.connect()?);
            }
            let Some(client) = slot.as_mut() else {
                unreachable!("connected just above")
            };
            match f(client) {
                Ok(v) => Ok(v),
                Err(failure) => {
                    *slot = None;
                    Err(match failure {
                        Failure::Pg(e) => self.error(action, &e),
                        Failure::State(e) => e,
                    })
                }
            }
        })
    }

    fn locked_error(&self, info: LockInfo) -> StateError {
        StateError::Locked {
            path: PathBuf::from(&self.target),
            info: Box::new(info),
        }
    }

    /// The lock row, with the database session that wrote it.
    fn lock_row(
        &self,
        client: &mut impl postgres::GenericClient,
    ) -> Result<Option<(LockInfo, i32)>, postgres::Error> {
        let row = client.query_opt(
            &self.sql(
                "SELECT id, owner, host, pid, operation, plan, created, backend_pid
                 FROM {s}.locks WHERE workspace = $1",
            ),
            &[&self.workspace],
        )?;
        Ok(row.map(|r| {
            let pid: i64 = r.get(3);
            (
                LockInfo {
                    id: r.get(0),
                    owner: r.get(1),
                    host: r.get(2),
                    pid: u32::try_from(pid).unwrap_or(0),
                    operation: r.get(4),
                    plan: r.get(5),
                    created: r.get(6),
                },
                r.get(7),
            )
        }))
    }

    /// Whether database session `backend_pid` holds this workspace's advisory lock.
    fn session_holds(
        &self,
        client: &mut impl postgres::GenericClient,
        backend_pid: i32,
    ) -> Result<bool, postgres::Error> {
        Ok(client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                   AND pid = $1 AND objsubid = 1
                   AND ((classid::bigint << 32) | objid::bigint) = $2)",
                &[&backend_pid, &self.key],
            )?
            .get(0))
    }

    /// Takes the advisory lock on `client`, waiting up to `wait`. `Ok(false)`: someone has it.
    fn take_advisory(&self, client: &mut Client, wait: Duration) -> Result<bool, postgres::Error> {
        if wait.is_zero() {
            return Ok(client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&self.key])?
                .get(0));
        }
        // lock_timeout bounds the wait of pg_advisory_lock (0 would mean no bound).
        let ms = wait.as_millis().clamp(1, i32::MAX as u128);
        client.batch_execute(&format!("SET lock_timeout = {ms}"))?;
        let got = match client.execute("SELECT pg_advisory_lock($1)", &[&self.key]) {
            Ok(_) => true,
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => false,
            Err(e) => return Err(e),
        };
        client.batch_execute("SET lock_timeout = 0")?;
        Ok(got)
    }

    /// Before a write under the lock: our lock session is still there, or (after the database
    /// came back) we take the lock again, or it is lost.
    fn check_lock_session(&self) -> Result<Option<String>, StateError> {
        let mut held = locked(&self.held);
        let Some(session) = held.as_mut() else {
            return Ok(None);
        };
        // A round trip on the lock's session: a server that restarted has dropped it (and the
        // lock with it) even if the client has not noticed yet.
        if let Some(client) = session.client.as_mut()
            && client.is_valid(LOCK_PING).is_ok()
        {
            return Ok(Some(session.id.clone()));
        }
        session.client = None;
        let lost = |why: String| StateError::LockLost {
            target: self.target.clone(),
            why,
        };
        let mut client = self.connect().map_err(|e| {
            lost(format!(
                "its database session ended and reconnecting failed: {e}"
            ))
        })?;
        let again = self
            .take_advisory(&mut client, Duration::ZERO)
            .map_err(|e| lost(pg_message(&e)))?;
        if !again {
            return Err(lost(
                "its database session ended and another session took the lock".into(),
            ));
        }
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .map_err(|e| lost(pg_message(&e)))?
            .get(0);
        client
            .execute(
                &self.sql("UPDATE {s}.locks SET backend_pid = $3 WHERE workspace = $1 AND id = $2"),
                &[&self.workspace, &session.id, &pid],
            )
            .map_err(|e| lost(pg_message(&e)))?;
        session.client = Some(client);
        Ok(Some(session.id.clone()))
    }

    fn load_in(&self, client: &mut Client) -> Result<Option<State>, Failure> {
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let Some(ws) = tx.query_opt(
            &self.sql(
                "SELECT lineage, serial, format_version, berth_version, updated_at, in_progress,
                        refreshes, serviced
                 FROM {s}.workspaces WHERE name = $1",
            ),
            &[&self.workspace],
        )?
        else {
            return Ok(None);
        };
        let bad = |what: &str, e: serde_json::Error| {
            Failure::State(StateError::Postgres {
                action: "reading the state",
                target: self.target.clone(),
                message: format!("{what} does not decode: {e}"),
            })
        };
        let version: i32 = ws.get(2);
        if version != FORMAT_VERSION as i32 {
            return Err(Failure::State(StateError::UnsupportedVersion {
                path: PathBuf::from(&self.target),
                found: u32::try_from(version).unwrap_or(0),
                supported: FORMAT_VERSION,
            }));
        }
        let serial: i64 = ws.get(1);
        let in_progress: Option<serde_json::Value> = ws.get(5);
        let in_progress: Option<InProgress> = in_progress
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| bad("the plan in progress", e))?;
        let refreshes: serde_json::Value = ws.get(6);
        let refreshes =
            serde_json::from_value(refreshes).map_err(|e| bad("the es.xml refreshes", e))?;
        let serviced: serde_json::Value = ws.get(7);
        let serviced = serde_json::from_value(serviced)
            .map_err(|e| bad("the hosts rolling maintenances serviced", e))?;
        let mut topology = BTreeMap::new();
        for row in tx.query(
            &self.sql("SELECT guest, record FROM {s}.topology WHERE workspace = $1"),
            &[&self.workspace],
        )? {
            let guest: String = row.get(0);
            let record: GuestRecord = serde_json::from_value(row.get(1))
                .map_err(|e| bad(&format!("the record of guest {guest}"), e))?;
            topology.insert(guest, record);
        }
        let mut journal = Vec::new();
        for row in tx.query(
            &self.sql(
                "SELECT plan_id, step_id, kind, guest, from_host, to_host, status, started_at,
                        finished_at, error, boot_id, once_marker
                 FROM {s}.journal WHERE workspace = $1 ORDER BY position",
            ),
            &[&self.workspace],
        )? {
            let kind: String = row.get(2);
            let status: String = row.get(6);
            journal.push(JournalEntry {
                plan_id: row.get(0),
                step_id: row.get(1),
                kind: serde_json::from_value(serde_json::Value::String(kind))
                    .map_err(|e| bad("a journal entry's kind", e))?,
                guest: row.get(3),
                from: row.get(4),
                to: row.get(5),
                status: serde_json::from_value(serde_json::Value::String(status))
                    .map_err(|e| bad("a journal entry's status", e))?,
                started_at: row.get(7),
                finished_at: row.get(8),
                error: row.get(9),
                boot_id: row.get(10),
                once_marker: row.get(11),
            });
        }
        tx.commit()?;
        Ok(Some(State {
            version: FORMAT_VERSION,
            serial: u64::try_from(serial).unwrap_or(0),
            lineage: ws.get(0),
            berth_version: ws.get(3),
            updated_at: ws.get(4),
            topology,
            journal,
            in_progress,
            refreshes,
            serviced,
        }))
    }

    /// Writes `next` (whose serial is the new one) over what the database holds, in one
    /// transaction; `ours` is the serial `next` was made from.
    fn save_in(
        &self,
        client: &mut Client,
        next: &State,
        ours: u64,
        lock_id: Option<&str>,
    ) -> Result<(), Failure> {
        let mut tx = client.transaction()?;
        if let Some(id) = lock_id {
            let holder: Option<String> = tx
                .query_opt(
                    &self.sql("SELECT id FROM {s}.locks WHERE workspace = $1"),
                    &[&self.workspace],
                )?
                .map(|r| r.get(0));
            if holder.as_deref() != Some(id) {
                return Err(Failure::State(StateError::LockLost {
                    target: self.target.clone(),
                    why: match holder {
                        Some(other) => format!("the lock row now names lock {other}"),
                        None => "its lock row was removed (force-unlock)".into(),
                    },
                }));
            }
        }
        let current = tx.query_opt(
            &self.sql("SELECT lineage, serial FROM {s}.workspaces WHERE name = $1 FOR UPDATE"),
            &[&self.workspace],
        )?;
        let mut on_db_serial = None;
        if let Some(row) = current {
            let lineage: uuid::Uuid = row.get(0);
            let serial = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
            if lineage != next.lineage {
                return Err(Failure::State(StateError::LineageMismatch {
                    path: PathBuf::from(&self.target),
                    found: lineage.to_string(),
                    expected: next.lineage.to_string(),
                }));
            }
            if serial > ours {
                return Err(Failure::State(StateError::Stale {
                    path: PathBuf::from(&self.target),
                    on_disk: serial,
                    ours,
                }));
            }
            on_db_serial = Some(serial);
        }
        let in_progress = next
            .in_progress
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| {
                Failure::State(StateError::Postgres {
                    action: "writing the state",
                    target: self.target.clone(),
                    message: e.to_string(),
                })
            })?;
        let encoded = |value: serde_json::Result<serde_json::Value>| {
            value.map_err(|e| {
                Failure::State(StateError::Postgres {
                    action: "writing the state",
                    target: self.target.clone(),
                    message: e.to_string(),
                })
            })
        };
        let refreshes = encoded(serde_json::to_value(&next.refreshes))?;
        let serviced = encoded(serde_json::to_value(&next.serviced))?;
        tx.execute(
            &self.sql(
                "INSERT INTO {s}.workspaces
                   (name, lineage, serial, format_version, berth_version, updated_at, in_progress, last_writer,
                    refreshes, serviced)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (name) DO UPDATE SET lineage = $2, serial = $3, format_version = $4,
                   berth_version = $5, updated_at = $6, in_progress = $7, last_writer = $8,
                   refreshes = $9, serviced = $10",
            ),
            &[
                &self.workspace,
                &next.lineage,
                &(next.serial as i64),
                &(next.version as i32),
                &next.berth_version,
                &next.updated_at,
                &in_progress,
                &lock_id,
                &refreshes,
                &serviced,
            ],
        )?;
        // What the database holds now, as far as this backend knows it: send only the rows
        // that differ from it (the whole state when it does not know).
        let cache = locked(&self.cache);
        let base = cache
            .as_ref()
            .filter(|c| Some(c.serial) == on_db_serial && c.lineage == next.lineage);
        let empty = State {
            topology: BTreeMap::new(),
            journal: Vec::new(),
            in_progress: None,
            ..next.clone()
        };
        if base.is_none() && on_db_serial.is_some() {
            tx.execute(
                &self.sql("DELETE FROM {s}.topology WHERE workspace = $1"),
                &[&self.workspace],
            )?;
            tx.execute(
                &self.sql("DELETE FROM {s}.journal WHERE workspace = $1"),
                &[&self.workspace],
            )?;
        }
        let base = base.unwrap_or(&empty);
        let encode = |r: &GuestRecord| {
            serde_json::to_value(r).map_err(|e| {
                Failure::State(StateError::Postgres {
                    action: "writing the state",
                    target: self.target.clone(),
                    message: e.to_string(),
                })
            })
        };
        for (guest, record) in &next.topology {
            if base.topology.get(guest) != Some(record) {
                tx.execute(
                    &self.sql(
                        "INSERT INTO {s}.topology (workspace, guest, record) VALUES ($1, $2, $3)
                         ON CONFLICT (workspace, guest) DO UPDATE SET record = $3",
                    ),
                    &[&self.workspace, guest, &encode(record)?],
                )?;
            }
        }
        for guest in base.topology.keys() {
            if !next.topology.contains_key(guest) {
                tx.execute(
                    &self.sql("DELETE FROM {s}.topology WHERE workspace = $1 AND guest = $2"),
                    &[&self.workspace, guest],
                )?;
            }
        }
        for (position, entry) in next.journal.iter().enumerate() {
            if base.journal.get(position) == Some(entry) {
                continue;
            }
            let text = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
            let kind = text(serde_json::to_value(entry.kind).unwrap_or_default());
            let status = text(serde_json::to_value(entry.status).unwrap_or_default());
            tx.execute(
                &self.sql(
                    "INSERT INTO {s}.journal (workspace, position, plan_id, step_id, kind, guest,
                       from_host, to_host, status, started_at, finished_at, error, boot_id,
                       once_marker)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                     ON CONFLICT (workspace, position) DO UPDATE SET plan_id = $3, step_id = $4,
                       kind = $5, guest = $6, from_host = $7, to_host = $8, status = $9,
                       started_at = $10, finished_at = $11, error = $12, boot_id = $13,
                       once_marker = $14",
                ),
                &[
                    &self.workspace,
                    &(position as i32),
                    &entry.plan_id,
                    &entry.step_id,
                    &kind,
                    &entry.guest,
                    &entry.from,
                    &entry.to,
                    &status,
                    &entry.started_at,
                    &entry.finished_at,
                    &entry.error,
                    &entry.boot_id,
                    &entry.once_marker,
                ],
            )?;
        }
        if base.journal.len() > next.journal.len() {
            tx.execute(
                &self.sql("DELETE FROM {s}.journal WHERE workspace = $1 AND position >= $2"),
                &[&self.workspace, &(next.journal.len() as i32)],
            )?;
        }
        let plan_of = |s: &State| s.in_progress.as_ref().map(|u| u.plan_id.clone());
        if let Some(id) = lock_id
            && plan_of(base) != plan_of(next)
        {
            tx.execute(
                &self.sql("UPDATE {s}.locks SET plan = $3 WHERE workspace = $1 AND id = $2"),
                &[&self.workspace, &id, &plan_of(next)],
            )?;
        }
        drop(cache);
        tx.commit()?;
        *locked(&self.cache) = Some(next.clone());
        Ok(())
    }
}

impl Backend for PgBackend {
    fn describe(&self) -> String {
        self.target.clone()
    }

    fn load(&self) -> Result<Option<State>, StateError> {
        let state = self.with_data("reading the state", |c| self.load_in(c))?;
        *locked(&self.cache) = state.clone();
        Ok(state)
    }

    fn save(&self, state: &mut State) -> Result<(), StateError> {
        let lock_id = off_runtime(|| self.check_lock_session())?;
        let mut next = state.clone();
        next.serial += 1;
        next.updated_at = Utc::now();
        next.berth_version = env!("CARGO_PKG_VERSION").to_string();
        to_microseconds(&mut next);
        let ours = state.serial;
        // Like the state file, the database never holds a console password.
        let written = super::store::without_secrets(&next);
        self.with_data("writing the state", |c| {
            self.save_in(c, &written, ours, lock_id.as_deref())
        })?;
        *state = next;
        Ok(())
    }

    fn lock(&self, operation: &str, wait: Duration) -> Result<LockGuard, StateError> {
        let mut info = LockInfo::for_this_process(operation);
        off_runtime(|| {
            let mut client = self.connect()?;
            let err = |e: postgres::Error| self.error("taking the state lock", &e);
            if !self.take_advisory(&mut client, wait).map_err(err)? {
                // The holder writes its row right after taking the lock: a few tries cover
                // that instant.
                for _ in 0..20 {
                    if let Some((holder, pid)) = self.lock_row(&mut client).map_err(err)?
                        && self.session_holds(&mut client, pid).map_err(err)?
                    {
                        return Err(self.locked_error(holder));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                return Err(StateError::LockUnreadable {
                    path: PathBuf::from(&self.target),
                    reason: "another session holds the lock without naming itself".into(),
                });
            }
            let pid: i32 = client
                .query_one("SELECT pg_backend_pid()", &[])
                .map_err(err)?
                .get(0);
            info.created = client
                .query_one("SELECT now()", &[])
                .map_err(err)?
                .get::<_, DateTime<Utc>>(0);
            // A dead holder's row is stale now that we hold the lock: overwrite it.
            client
                .execute(
                    &self.sql(
                        "INSERT INTO {s}.locks
                           (workspace, id, owner, host, pid, operation, plan, created, backend_pid)
                         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8)
                         ON CONFLICT (workspace) DO UPDATE SET id = $2, owner = $3, host = $4,
                           pid = $5, operation = $6, plan = NULL, created = $7, backend_pid = $8",
                    ),
                    &[
                        &self.workspace,
                        &info.id,
                        &info.owner,
                        &info.host,
                        &i64::from(info.pid),
                        &info.operation,
                        &info.created,
                        &pid,
                    ],
                )
                .map_err(err)?;
            *locked(&self.held) = Some(HeldSession {
                id: info.id.clone(),
                client: Some(client),
            });
            Ok(())
        })?;
        let release = PgLockRelease {
            held: Arc::clone(&self.held),
            workspace: self.workspace.clone(),
            delete_row: self.sql("DELETE FROM {s}.locks WHERE workspace = $1 AND id = $2"),
            key: self.key,
        };
        Ok(LockGuard::new(info, Box::new(release)))
    }

    fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        self.with_data("reading the state lock", |c| {
            Ok(match self.lock_row(c)? {
                Some((info, pid)) if self.session_holds(c, pid)? => Some(info),
                _ => None,
            })
        })
    }

    fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError> {
        self.with_data("removing the state lock", |c| {
            let mut tx = c.transaction()?;
            let Some((holder, pid)) = self.lock_row(&mut tx)? else {
                return Err(StateError::NotLocked {
                    path: PathBuf::from(&self.target),
                }
                .into());
            };
            if holder.id != id {
                return Err(StateError::LockIdMismatch {
                    path: PathBuf::from(&self.target),
                    given: id.to_string(),
                    holder: Box::new(holder),
                }
                .into());
            }
            // A holder that still runs (hung) keeps the lock through its session: ending that
            // session is what frees it. Its next write then fails (its row is gone).
            if self.session_holds(&mut tx, pid)? {
                tx.execute("SELECT pg_terminate_backend($1)", &[&pid])?;
            }
            tx.execute(
                &self.sql("DELETE FROM {s}.locks WHERE workspace = $1 AND id = $2"),
                &[&self.workspace, &id],
            )?;
            tx.commit()?;
            Ok(holder)
        })
    }

    fn recovery_path(&self) -> PathBuf {
        self.recovery.clone()
    }

    fn lock_id(&self) -> Option<String> {
        locked(&self.held).as_ref().map(|h| h.id.clone())
    }

    fn last_writer(&self) -> Result<Option<String>, StateError> {
        self.with_data("reading the state", |c| {
            Ok(c.query_opt(
                &self.sql("SELECT last_writer FROM {s}.workspaces WHERE name = $1"),
                &[&self.workspace],
            )?
            .and_then(|r| r.get(0)))
        })
    }
}

/// Releases the advisory lock when the guard goes: removes our row, unlocks, disconnects.
struct PgLockRelease {
    held: Arc<Mutex<Option<HeldSession>>>,
    workspace: String,
    delete_row: String,
    key: i64,
}

impl std::fmt::Debug for PgLockRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLockRelease")
            .field("workspace", &self.workspace)
            .finish()
    }
}

impl Drop for PgLockRelease {
    fn drop(&mut self) {
        let Some(session) = locked(&self.held).take() else {
            return;
        };
        let Some(mut client) = session.client else {
            return;
        };
        off_runtime(move || {
            if client.is_closed() {
                return;
            }
            if let Err(e) = client.execute(&self.delete_row, &[&self.workspace, &session.id]) {
                tracing::warn!(error = %pg_message(&e), "could not remove the state lock row");
            }
            // Closing the session releases the advisory lock anyway; unlocking first makes it
            // visible to waiters without waiting for the disconnect.
            let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&self.key]);
            drop(client);
        });
    }
}
