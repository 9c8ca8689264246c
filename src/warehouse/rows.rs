//! Streams the rows of a relation, in chunks, without holding the relation in memory. SQLite is
//! read with rusqlite on a blocking thread (several times faster than going through the async
//! pool for a million rows); Postgres and MySQL through the pool, with each column cast to a
//! type ebb can carry (integer, float, boolean or text).

use tokio::sync::mpsc;

use super::{sqlite_schema_file, Error, Warehouse};
use crate::render::relation::Relation;
use crate::sync::value::Value;

/// Rows per chunk sent down the channel.
pub const CHUNK: usize = 2048;

/// A chunk of rows, each aligned to the requested columns.
pub type Chunk = Vec<Vec<Value>>;

/// The type family of a database column type: `integer`, `float`, `boolean` or `text`.
pub fn family(db_type: &str) -> &'static str {
    let t = db_type.to_ascii_lowercase();
    if t.contains("int") && !t.contains("interval") && !t.contains("point") {
        "integer"
    } else if ["real", "floa", "doub", "numeric", "decimal", "number"]
        .iter()
        .any(|p| t.contains(p))
    {
        "float"
    } else if t.starts_with("bool") {
        "boolean"
    } else {
        "text"
    }
}

impl Warehouse {
    /// Reads `columns` of `rel` and sends them down `tx` in chunks. `types` are the columns'
    /// database types (from [`Warehouse::columns`]), used to cast on Postgres and MySQL.
    /// Returns the number of rows read; stops early when the receiver is dropped.
    pub async fn stream_rows(
        &self,
        rel: &Relation,
        columns: &[String],
        types: &[&'static str],
        tx: mpsc::Sender<Chunk>,
    ) -> Result<u64, Error> {
        if let Some(main) = self.sqlite_path() {
            let file = sqlite_schema_file(main, &rel.schema);
            let sql = format!(
                "select {} from \"{}\"",
                columns
                    .iter()
                    .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
                    .collect::<Vec<_>>()
                    .join(", "),
                rel.identifier.replace('"', "\"\"")
            );
            let width = columns.len();
            return tokio::task::spawn_blocking(move || read_sqlite(&file, &sql, width, &tx))
                .await
                .map_err(|e| Error::Query {
                    message: e.to_string(),
                    line: None,
                })?;
        }
        let postgres = self.adapter() == "postgres";
        let q = |c: &str| {
            if postgres {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                format!("`{}`", c.replace('`', "``"))
            }
        };
        let select: Vec<String> = columns
            .iter()
            .zip(types)
            .map(|(c, t)| match (*t, postgres) {
                ("integer", true) => format!("cast({} as bigint)", q(c)),
                ("integer", false) => format!("cast({} as signed)", q(c)),
                ("float", true) => format!("cast({} as double precision)", q(c)),
                ("float", false) => format!("cast({} as double)", q(c)),
                ("boolean", _) if postgres => q(c),
                (_, true) => format!("cast({} as text)", q(c)),
                (_, false) => format!("cast({} as char)", q(c)),
            })
            .collect();
        let table = format!("{}.{}", q(&rel.schema), q(&rel.identifier));
        let sql = format!("select {} from {table}", select.join(", "));
        let kinds: Vec<&'static str> = types
            .iter()
            .map(|t| {
                if *t == "boolean" && !postgres {
                    "integer"
                } else {
                    t
                }
            })
            .collect();
        self.stream_query(&sql, &kinds, tx).await
    }

    /// Runs `sql` and sends its rows down `tx` in chunks, each column read as `kinds` says
    /// (`integer`, `float`, `boolean`, else text).
    pub async fn stream_query(
        &self,
        sql: &str,
        kinds: &[&'static str],
        tx: mpsc::Sender<Chunk>,
    ) -> Result<u64, Error> {
        use futures_util::TryStreamExt;
        use sqlx::Row;
        macro_rules! pump {
            ($pool:expr) => {{
                let mut rows = sqlx::query(sql).fetch($pool);
                let mut chunk = Vec::with_capacity(CHUNK);
                let mut n = 0u64;
                while let Some(row) = rows
                    .try_next()
                    .await
                    .map_err(|e| self.query_error(e, sql))?
                {
                    let mut out = Vec::with_capacity(kinds.len());
                    for (i, kind) in kinds.iter().enumerate() {
                        let v = match *kind {
                            "integer" => {
                                row.try_get::<Option<i64>, _>(i).map(|v| v.map(Value::Int))
                            }
                            "float" => row
                                .try_get::<Option<f64>, _>(i)
                                .map(|v| v.map(Value::Float)),
                            "boolean" => row
                                .try_get::<Option<bool>, _>(i)
                                .map(|v| v.map(Value::Bool)),
                            // Text, or bytes (MySQL reports a binary-collated cast as a blob).
                            _ => row
                                .try_get::<Option<String>, _>(i)
                                .map(|v| v.map(Value::Text))
                                .or_else(|_| {
                                    row.try_get::<Option<Vec<u8>>, _>(i).map(|v| {
                                        v.map(|b| {
                                            Value::Text(String::from_utf8_lossy(&b).into_owned())
                                        })
                                    })
                                }),
                        }
                        .map_err(|e| self.query_error(e, sql))?;
                        out.push(v.unwrap_or(Value::Null));
                    }
                    chunk.push(out);
                    n += 1;
                    if chunk.len() == CHUNK {
                        if tx.send(std::mem::take(&mut chunk)).await.is_err() {
                            return Ok(n);
                        }
                        chunk.reserve(CHUNK);
                    }
                }
                if !chunk.is_empty() {
                    let _ = tx.send(chunk).await;
                }
                Ok(n)
            }};
        }
        match &self.pool {
            super::Pool::Postgres(p) => pump!(p),
            super::Pool::Mysql(p) => pump!(p),
            super::Pool::Sqlite(p) => pump!(p),
        }
    }
}

impl Warehouse {
    /// Runs a small query and returns all its rows.
    pub async fn query_rows(
        &self,
        sql: &str,
        kinds: &[&'static str],
    ) -> Result<Vec<Vec<Value>>, Error> {
        let (tx, mut rx) = mpsc::channel(16);
        let collect = async {
            let mut rows = Vec::new();
            while let Some(chunk) = rx.recv().await {
                rows.extend(chunk);
            }
            rows
        };
        let (done, rows) = tokio::join!(self.stream_query(sql, kinds, tx), collect);
        done.map(|_| rows)
    }
}

fn read_sqlite(
    file: &std::path::Path,
    sql: &str,
    width: usize,
    tx: &mpsc::Sender<Chunk>,
) -> Result<u64, Error> {
    let fail = |e: rusqlite::Error| Error::Query {
        message: e.to_string(),
        line: None,
    };
    let conn = rusqlite::Connection::open_with_flags(
        file,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::Connect {
        target: format!("sqlite file `{}`", file.display()),
        message: e.to_string(),
    })?;
    let mut stmt = conn.prepare(sql).map_err(fail)?;
    let mut rows = stmt.query([]).map_err(fail)?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut n = 0u64;
    while let Some(r) = rows.next().map_err(fail)? {
        let mut out = Vec::with_capacity(width);
        for i in 0..width {
            use rusqlite::types::ValueRef;
            out.push(match r.get_ref(i).map_err(fail)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Int(i),
                ValueRef::Real(f) => Value::Float(f),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Text(String::from_utf8_lossy(b).into_owned()),
            });
        }
        chunk.push(out);
        n += 1;
        if chunk.len() == CHUNK {
            if tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                return Ok(n);
            }
            chunk.reserve(CHUNK);
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(chunk);
    }
    Ok(n)
}
