//! The warehouse: one sqlx pool per run for SQLite, Postgres or MySQL, and the few operations
//! ebb needs of it: run a statement, count rows, see whether a relation is a table or a view,
//! read its columns, create schemas. Materializations and seeds build on these.
//!
//! SQLite has no schemas; ebb maps a schema other than `main` to a database file beside the main
//! one (`retail.db` → `retail.main_marts.db`), attached on every connection.

pub mod connection;
pub mod materialize;
pub mod rows;
pub mod seed;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use sqlx::Row;

use crate::sync::value::Value;

use crate::render::relation::Relation;
pub use connection::Connection;

/// What can go wrong talking to the warehouse.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The warehouse could not be reached or refused the login.
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    /// A statement failed. `line` is the 1-based line of the statement the database blamed.
    #[error("{message}")]
    Query {
        message: String,
        line: Option<usize>,
    },
}

/// The kind of an existing relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    Table,
    View,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    Mysql(sqlx::MySqlPool),
}

/// A connected warehouse.
#[derive(Debug, Clone)]
pub struct Warehouse {
    pool: Pool,
    connection: Connection,
}

/// Returns the file a SQLite schema lives in.
pub fn sqlite_schema_file(main: &std::path::Path, schema: &str) -> PathBuf {
    if schema == "main" {
        return main.to_path_buf();
    }
    let stem = main
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ebb".into());
    main.with_file_name(format!("{stem}.{schema}.db"))
}

impl Warehouse {
    /// Connects with at most `threads` connections. For SQLite, `schemas` are attached on each
    /// connection (their files are created on first use).
    pub async fn connect(
        connection: &Connection,
        threads: usize,
        schemas: &BTreeSet<String>,
    ) -> Result<Warehouse, Error> {
        let fail = |e: sqlx::Error| Error::Connect {
            target: connection.describe(),
            message: redact(connection, &e.to_string()),
        };
        let max = u32::try_from(threads.max(1)).unwrap_or(4);
        let pool = match connection {
            Connection::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs_err::create_dir_all(dir).map_err(|e| Error::Connect {
                        target: connection.describe(),
                        message: e.to_string(),
                    })?;
                }
                let attach: Vec<(String, String)> = schemas
                    .iter()
                    .filter(|s| s.as_str() != "main")
                    .map(|s| (s.clone(), sqlite_schema_file(path, s).display().to_string()))
                    .collect();
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(60));
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(max)
                    .after_connect(move |conn, _meta| {
                        let attach = attach.clone();
                        Box::pin(async move {
                            for (schema, file) in attach {
                                let sql = format!(
                                    "attach database '{}' as \"{}\"",
                                    file.replace('\'', "''"),
                                    schema.replace('"', "\"\"")
                                );
                                sqlx::Executor::execute(&mut *conn, sql.as_str()).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(fail)?;
                Pool::Sqlite(pool)
            }
            Connection::Postgres {
                host,
                port,
                user,
                password,
                dbname,
            } => {
                let mut options = sqlx::postgres::PgConnectOptions::new()
                    .host(host)
                    .port(*port)
                    .username(user)
                    .database(dbname);
                if !password.expose().is_empty() {
                    options = options.password(password.expose());
                }
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(fail)?;
                Pool::Postgres(pool)
            }
            Connection::Mysql {
                host,
                port,
                user,
                password,
                ..
            } => {
                // No default database: every relation is qualified with its schema, and the
                // schemas are created by the run.
                let mut options = sqlx::mysql::MySqlConnectOptions::new()
                    .host(host)
                    .port(*port)
                    .username(user);
                if !password.expose().is_empty() {
                    options = options.password(password.expose());
                }
                let pool = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(fail)?;
                Pool::Mysql(pool)
            }
        };
        Ok(Warehouse {
            pool,
            connection: connection.clone(),
        })
    }

    /// Returns the adapter type: sqlite, postgres or mysql.
    pub fn adapter(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
            Pool::Mysql(_) => "mysql",
        }
    }

    fn query_error(&self, e: sqlx::Error, sql: &str) -> Error {
        if matches!(
            e,
            sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed
        ) {
            return Error::Connect {
                target: self.connection.describe(),
                message: redact(&self.connection, &e.to_string()),
            };
        }
        let message = match &e {
            sqlx::Error::Database(db) => db.message().to_string(),
            other => other.to_string(),
        };
        let line = error_line(&e, &message, sql);
        Error::Query {
            message: redact(&self.connection, &message),
            line,
        }
    }

    /// Runs one or more statements as they are (no parameters); returns rows affected.
    pub async fn execute(&self, sql: &str) -> Result<u64, Error> {
        let q = sqlx::raw_sql(sql);
        let done = match &self.pool {
            Pool::Sqlite(p) => q.execute(p).await.map(|r| r.rows_affected()),
            Pool::Postgres(p) => q.execute(p).await.map(|r| r.rows_affected()),
            Pool::Mysql(p) => q.execute(p).await.map(|r| r.rows_affected()),
        };
        done.map_err(|e| self.query_error(e, sql))
    }

    /// Runs a query that returns one integer (a count).
    pub async fn count(&self, sql: &str) -> Result<i64, Error> {
        let done = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(sql)
                .fetch_one(p)
                .await
                .map(|r| r.try_get::<i64, _>(0)),
            Pool::Postgres(p) => sqlx::query(sql)
                .fetch_one(p)
                .await
                .map(|r| r.try_get::<i64, _>(0)),
            Pool::Mysql(p) => sqlx::query(sql)
                .fetch_one(p)
                .await
                .map(|r| r.try_get::<i64, _>(0)),
        };
        done.and_then(|r| r).map_err(|e| self.query_error(e, sql))
    }

    /// Returns whether `rel` exists and if so whether it is a table or a view.
    pub async fn relation_kind(&self, rel: &Relation) -> Result<Option<RelationKind>, Error> {
        let kind: Option<String> = match &self.pool {
            Pool::Sqlite(p) => {
                let sql = format!("select type from \"{}\".sqlite_master where name = ? and type in ('table', 'view')", rel.schema);
                sqlx::query_scalar(&sql)
                    .bind(&rel.identifier)
                    .fetch_optional(p)
                    .await
                    .map_err(|e| self.query_error(e, &sql))?
            }
            Pool::Postgres(p) => {
                let sql = "select table_type::text from information_schema.tables where table_schema = $1 and table_name = $2";
                sqlx::query_scalar(sql)
                    .bind(&rel.schema)
                    .bind(&rel.identifier)
                    .fetch_optional(p)
                    .await
                    .map_err(|e| self.query_error(e, sql))?
            }
            Pool::Mysql(p) => {
                let sql = "select cast(table_type as char) from information_schema.tables where table_schema = ? and table_name = ?";
                sqlx::query_scalar(sql)
                    .bind(&rel.schema)
                    .bind(&rel.identifier)
                    .fetch_optional(p)
                    .await
                    .map_err(|e| self.query_error(e, sql))?
            }
        };
        Ok(kind.map(|k| {
            if k.to_ascii_lowercase().contains("view") {
                RelationKind::View
            } else {
                RelationKind::Table
            }
        }))
    }

    /// Returns the columns of `rel` with their database types, in table order.
    pub async fn columns(&self, rel: &Relation) -> Result<Vec<(String, String)>, Error> {
        let rows: Vec<(String, String)> = match &self.pool {
            Pool::Sqlite(p) => {
                let sql = format!(
                    "select name, type from pragma_table_info('{}', '{}')",
                    rel.identifier.replace('\'', "''"),
                    rel.schema.replace('\'', "''")
                );
                sqlx::query_as(&sql)
                    .fetch_all(p)
                    .await
                    .map_err(|e| self.query_error(e, &sql))?
            }
            Pool::Postgres(p) => {
                let sql = "select column_name::text, data_type::text from information_schema.columns where table_schema = $1 and table_name = $2 order by ordinal_position";
                sqlx::query_as(sql)
                    .bind(&rel.schema)
                    .bind(&rel.identifier)
                    .fetch_all(p)
                    .await
                    .map_err(|e| self.query_error(e, sql))?
            }
            Pool::Mysql(p) => {
                let sql = "select cast(column_name as char), cast(data_type as char) from information_schema.columns where table_schema = ? and table_name = ? order by ordinal_position";
                sqlx::query_as(sql)
                    .bind(&rel.schema)
                    .bind(&rel.identifier)
                    .fetch_all(p)
                    .await
                    .map_err(|e| self.query_error(e, sql))?
            }
        };
        Ok(rows)
    }

    /// Creates a schema when it does not exist (SQLite schemas are attached files).
    pub async fn ensure_schema(&self, schema: &str) -> Result<(), Error> {
        let sql = match self.pool {
            Pool::Sqlite(_) => return Ok(()),
            Pool::Postgres(_) => format!(
                "create schema if not exists \"{}\"",
                schema.replace('"', "\"\"")
            ),
            Pool::Mysql(_) => format!(
                "create database if not exists `{}`",
                schema.replace('`', "``")
            ),
        };
        self.execute(&sql).await.map(|_| ())
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
            Pool::Mysql(p) => p.close().await,
        }
    }
}

fn redact(connection: &Connection, text: &str) -> String {
    match connection.secret() {
        Some(s) => s.redact(text),
        None => text.to_string(),
    }
}

/// Finds the line of `sql` a database error points at: Postgres gives a character position,
/// MySQL says "at line N".
fn error_line(e: &sqlx::Error, message: &str, sql: &str) -> Option<usize> {
    if let sqlx::Error::Database(db) = e {
        if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            if let Some(sqlx::postgres::PgErrorPosition::Original(pos)) = pg.position() {
                let byte = sql
                    .char_indices()
                    .nth(pos.saturating_sub(1))
                    .map_or(sql.len(), |(i, _)| i);
                return Some(sql[..byte].matches('\n').count() + 1);
            }
        }
    }
    let at = message.rfind("at line ")?;
    message[at + 8..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Binds cells to a query, in order.
macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for v in $params {
            q = match v {
                Value::Null => q.bind(None::<String>),
                Value::Bool(b) => q.bind(*b),
                Value::Int(i) => q.bind(*i),
                Value::Float(f) => q.bind(*f),
                Value::Text(s) => q.bind(s.as_str()),
            };
        }
        q
    }};
}

impl Warehouse {
    /// Runs statements with parameters in one transaction: all of them or none.
    pub async fn execute_batch(&self, statements: &[(String, Vec<Value>)]) -> Result<u64, Error> {
        let mut affected = 0;
        macro_rules! run {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.map_err(|e| self.query_error(e, ""))?;
                for (sql, params) in statements {
                    let q = bind_all!(sqlx::query(sql), params);
                    affected += q
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.query_error(e, sql))?
                        .rows_affected();
                }
                tx.commit().await.map_err(|e| self.query_error(e, ""))?;
            }};
        }
        match &self.pool {
            Pool::Sqlite(p) => run!(p),
            Pool::Postgres(p) => run!(p),
            Pool::Mysql(p) => run!(p),
        }
        Ok(affected)
    }

    /// The SQLite file of the `main` schema, when the warehouse is SQLite.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &self.connection {
            Connection::Sqlite { path } => Some(path),
            _ => None,
        }
    }

    /// Tells whether an error is the connection's fault rather than the statement's.
    pub fn is_connection_error(e: &Error) -> bool {
        matches!(e, Error::Connect { .. })
    }
}
