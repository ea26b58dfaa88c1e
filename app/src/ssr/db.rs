//! The storage layer: one [`Db`] over SQLite (default, a file) or PostgreSQL (several
//! instances), chosen at run time from the URL.
//!
//! Both backends go through sqlx's `Any` driver so that every query is written once, in the
//! portable subset: `$1` parameters (SQLite maps `$N` to the N-th argument), lower-case SQL,
//! explicit columns, TEXT ids, BIGINT unix-millisecond timestamps and BIGINT flags. Where the
//! backends differ (DDL), the migrations are split per backend under `migrations/`.
//!
//! SQLite allows one writer at a time, so it gets a single-connection writer pool (no
//! `SQLITE_BUSY` storms) plus a reader pool; WAL lets readers run beside the writer. On
//! PostgreSQL both handles are the same pool.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a connection (a transaction's, say) talks to.
    pub fn of(connection: &sqlx::AnyConnection) -> Backend {
        match connection.backend_name() {
            "PostgreSQL" => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

/// A row that a lock-order rule names (docs/architecture.md, "Concurrency on PostgreSQL").
#[derive(Clone, Copy, Debug)]
pub enum LockedRow<'a> {
    /// An organization's row: its role lock (the access domain's `roles::lock`).
    Organization(&'a str),
    /// An account's row.
    User(&'a str),
}

/// How strongly [`lock_row`] takes a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLock {
    /// `for no key update`: excludes other writers of the row, leaves free the key share lock
    /// that an insert referencing the row takes (a foreign key check).
    NoKeyUpdate,
    /// `for update`: excludes those inserts too (the row is about to go, or its key change).
    Update,
}

/// Takes a row lock in the caller's transaction, until it ends. On PostgreSQL only: SQLite
/// has one writer, so a writing transaction there excludes every other one already. A row that
/// does not exist is no error (there is nothing for anyone else to change either).
pub async fn lock_row(
    connection: &mut sqlx::AnyConnection,
    row: LockedRow<'_>,
    mode: RowLock,
) -> Result<(), sqlx::Error> {
    if Backend::of(connection) != Backend::Postgres {
        return Ok(());
    }
    let (table, column, id) = match row {
        LockedRow::Organization(id) => ("organization", "organization_id", id),
        LockedRow::User(id) => ("app_user", "user_id", id),
    };
    let strength = match mode {
        RowLock::NoKeyUpdate => "no key update",
        RowLock::Update => "update",
    };
    sqlx::query(&format!(
        "select {column} from {table} where {column} = $1 for {strength}"
    ))
    .bind(id)
    .fetch_optional(connection)
    .await?;
    Ok(())
}

/// Takes an account's row lock (`for no key update`, see [`lock_row`]): what is counted or
/// checked per account (sign-in failures, mail caps, recovery codes) is serialised by it.
pub async fn lock_user(
    connection: &mut sqlx::AnyConnection,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    lock_row(connection, LockedRow::User(user_id), RowLock::NoKeyUpdate).await
}

/// Reader connections of a SQLite database.
const READERS: u32 = 6;

/// The database handles. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    /// Use for every statement that writes, and for transactions.
    pub writer: AnyPool,
    /// Use for plain reads.
    pub reader: AnyPool,
    pub backend: Backend,
    /// The URL it was opened with (PostgreSQL's `LISTEN` needs its own connection). Never
    /// logged: it may hold a password.
    pub url: String,
    /// Caches that domains keep beside this database (one of each type), dropped with it:
    /// tests that open several databases in one process never share them.
    pub caches: std::sync::Arc<Caches>,
}

/// One value of each type, made on first use (a domain's cache of what it reads often).
#[derive(Default)]
pub struct Caches(
    std::sync::Mutex<
        std::collections::HashMap<
            std::any::TypeId,
            std::sync::Arc<dyn std::any::Any + Send + Sync>,
        >,
    >,
);

impl Caches {
    /// The cache of type `T`, made with `T::default()` the first time.
    pub fn get<T: Default + Send + Sync + 'static>(&self) -> std::sync::Arc<T> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let any = map
            .entry(std::any::TypeId::of::<T>())
            .or_insert_with(|| std::sync::Arc::new(T::default()))
            .clone();
        any.downcast::<T>().expect("one value per type id")
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`). Creates the SQLite file
    /// and its folder when missing.
    pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            ensure_sqlite_dir(url)?;
            let url = with_create_mode(url);
            let options = AnyConnectOptions::from_str(&url)?;
            let writer = sqlite_pool(1, WRITER_CACHE_KIB)
                .connect_with(options.clone())
                .await?;
            // Six readers. Reports read in turns (`usage::stats`): up to three long raw-log
            // reads (two shared turns and the system organization's) and four rollup reads;
            // a report holds its rollup turn while it reads the raw log, so most of the time
            // the turns leave connections for key lookups and sessions.
            let reader = sqlite_pool(READERS, 0).connect_with(options).await?;
            Ok(Db {
                writer,
                reader,
                backend: Backend::Sqlite,
                url,
                caches: Default::default(),
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Db {
                writer: pool.clone(),
                reader: pool,
                backend: Backend::Postgres,
                url: url.to_string(),
                caches: Default::default(),
            })
        } else {
            Err(sqlx::Error::Configuration(
                "KEYWARD_DATABASE_URL must start with sqlite: or postgres:".into(),
            ))
        }
    }

    /// Applies the pending migrations of this backend. Start-up fails when this fails.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.writer).await,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.writer).await,
        }
    }

    /// Applies the migrations older than `version` only: what a test of a data migration
    /// starts from (it writes rows as they were, then runs [`Db::migrate`]).
    pub async fn migrate_before(&self, version: i64) -> Result<(), sqlx::migrate::MigrateError> {
        let all = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let mut older = sqlx::migrate::Migrator::DEFAULT;
        older.migrations = all
            .iter()
            .filter(|m| m.version < version)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        older.run(&self.writer).await
    }

    /// A cheap round trip, for `/healthz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("select 1")
            .execute(&self.reader)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// The writer's page cache (SQLite's default is 2 MiB): the request log's batches touch the
/// same index pages again and again, and re-reading them cost the writer a third of its time.
const WRITER_CACHE_KIB: u32 = 16_384;

/// A SQLite pool; `cache_kib` above 0 sets its connections' page cache.
fn sqlite_pool(max: u32, cache_kib: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                // WAL: readers never block the writer. busy_timeout: wait instead of failing
                // when the file is locked. foreign_keys: SQLite leaves them off by default.
                conn.execute("pragma journal_mode = wal").await?;
                conn.execute("pragma busy_timeout = 5000").await?;
                conn.execute("pragma foreign_keys = on").await?;
                conn.execute("pragma synchronous = normal").await?;
                if cache_kib > 0 {
                    conn.execute(format!("pragma cache_size = -{cache_kib}").as_str())
                        .await?;
                }
                Ok(())
            })
        })
}

/// `sqlite://data/keyward.db` → adds `mode=rwc` so the file is created on first start.
fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

fn ensure_sqlite_dir(url: &str) -> Result<(), sqlx::Error> {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, UTC: the unit of every `*_at` column.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Unix milliseconds as RFC 3339 UTC (`2026-11-25T21:19:01.123Z`): every time on the wire.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A new public id: `<prefix>_` + 20 base62 characters (≈119 random bits), Stripe style.
pub fn new_id(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let body: String = (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}_{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        assert_eq!(
            with_create_mode("sqlite://data/k.db"),
            "sqlite://data/k.db?mode=rwc"
        );
        assert_eq!(
            with_create_mode("sqlite://k.db?x=1"),
            "sqlite://k.db?x=1&mode=rwc"
        );
        assert_eq!(
            with_create_mode("sqlite://k.db?mode=ro"),
            "sqlite://k.db?mode=ro"
        );
    }

    #[test]
    fn ids_are_prefixed_and_random() {
        let a = new_id("usr");
        assert!(a.starts_with("usr_") && a.len() == 24);
        assert_ne!(a, new_id("usr"));
    }
}
