//! The database connector: a table in Postgres, MySQL or SQLite. Rows are upserted with
//! `ON CONFLICT` / `ON DUPLICATE KEY UPDATE` on the match field, inserted without overwriting
//! (`insert` mode), updated by match value, or deleted (mirror). The table is created when
//! absent, with column types from the model. A batch is one transaction; when the database
//! refuses a batch, its rows are tried one by one so only the bad rows are rejected.

use std::path::Path;

use tokio::sync::OnceCell;

use super::{setting_number, Answer, Batch, Connector, Failure, Op, Settings, Shape};
use crate::secret::Secret;
use crate::spec::sync::Mode;
use crate::sync::value::Value;
use crate::warehouse::{Connection, Error, Warehouse};

/// Writes to a table.
pub struct DatabaseConnector {
    wh: Warehouse,
    dialect: Dialect,
    schema: Option<String>,
    created: OnceCell<()>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Postgres,
    Mysql,
    Sqlite,
}

impl DatabaseConnector {
    /// Connects with the destination's settings: `host`, `port`, `user`, `password`, `dbname`
    /// and `schema` (Postgres); `host`, `port`, `user`, `password`, `schema` (MySQL); `path`
    /// (SQLite).
    pub async fn connect(
        kind: &str,
        settings: &Settings,
        project_dir: &Path,
    ) -> Result<Self, String> {
        let get = |k: &str| settings.get(k).cloned().unwrap_or_default();
        let port = |default: u16| -> Result<u16, String> {
            Ok(setting_number(settings, "port")?.map_or(default, |p| p as u16))
        };
        let (connection, dialect, schema) = match kind {
            "postgres" => (
                Connection::Postgres {
                    host: get("host"),
                    port: port(5432)?,
                    user: settings
                        .get("user")
                        .cloned()
                        .unwrap_or_else(|| "postgres".into()),
                    password: Secret::new(get("password")),
                    dbname: get("dbname"),
                },
                Dialect::Postgres,
                Some(get("schema")),
            ),
            "mysql" => (
                Connection::Mysql {
                    host: get("host"),
                    port: port(3306)?,
                    user: settings
                        .get("user")
                        .cloned()
                        .unwrap_or_else(|| "root".into()),
                    password: Secret::new(get("password")),
                    database: get("schema"),
                },
                Dialect::Mysql,
                Some(get("schema")),
            ),
            _ => {
                let file = std::path::PathBuf::from(get("path"));
                let path = if file.is_absolute() {
                    file
                } else {
                    project_dir.join(file)
                };
                (Connection::Sqlite { path }, Dialect::Sqlite, None)
            }
        };
        let wh = Warehouse::connect(&connection, 4, &Default::default())
            .await
            .map_err(|e| e.to_string())?;
        if let Some(schema) = &schema {
            wh.ensure_schema(schema).await.map_err(|e| e.to_string())?;
        }
        Ok(DatabaseConnector {
            wh,
            dialect,
            schema,
            created: OnceCell::new(),
        })
    }

    fn quote(&self, name: &str) -> String {
        match self.dialect {
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
            _ => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    fn table(&self, shape: &Shape) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", self.quote(s), self.quote(&shape.object)),
            None => self.quote(&shape.object),
        }
    }

    fn placeholder(&self, n: usize) -> String {
        match self.dialect {
            Dialect::Postgres => format!("${n}"),
            _ => "?".into(),
        }
    }

    fn column_type(&self, shape: &Shape, field: &str, sample: Option<&Value>) -> &'static str {
        let family = shape.types.get(field).copied().unwrap_or(match sample {
            Some(Value::Int(_)) => "integer",
            Some(Value::Float(_)) => "float",
            Some(Value::Bool(_)) => "boolean",
            _ => "text",
        });
        let key = field == shape.match_field;
        match (self.dialect, family) {
            (Dialect::Postgres, "integer") => "bigint",
            (Dialect::Postgres, "float") => "double precision",
            (Dialect::Postgres, "boolean") => "boolean",
            (Dialect::Postgres, _) => "text",
            (Dialect::Mysql, "integer") => "bigint",
            (Dialect::Mysql, "float") => "double",
            (Dialect::Mysql, "boolean") => "boolean",
            (Dialect::Mysql, _) if key => "varchar(255)",
            (Dialect::Mysql, _) => "text",
            (Dialect::Sqlite, "integer" | "boolean") => "integer",
            (Dialect::Sqlite, "float") => "real",
            (Dialect::Sqlite, _) => "text",
        }
    }

    async fn create_table(&self, shape: &Shape, batch: &Batch) -> Result<(), Failure> {
        let columns: Vec<String> = shape
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let sample = batch
                    .records
                    .iter()
                    .map(|r| &r.payload[i])
                    .find(|v| **v != Value::Null);
                let not_null = if *f == shape.match_field {
                    " not null"
                } else {
                    ""
                };
                format!(
                    "{} {}{not_null}",
                    self.quote(f),
                    self.column_type(shape, f, sample)
                )
            })
            .collect();
        let sql = format!(
            "create table if not exists {} ({}, primary key ({}))",
            self.table(shape),
            columns.join(", "),
            self.quote(&shape.match_field)
        );
        self.wh
            .execute(&sql)
            .await
            .map(|_| ())
            .map_err(|e| self.failure(e))
    }

    fn failure(&self, e: Error) -> Failure {
        match e {
            Error::Connect { .. } => Failure::transient(e.to_string()),
            Error::Query { message, .. } => Failure::rejected(message),
        }
    }

    /// The statements of a batch.
    fn statements(&self, shape: &Shape, batch: &Batch) -> Vec<(String, Vec<Value>)> {
        let table = self.table(shape);
        let m = self.quote(&shape.match_field);
        let cols: Vec<String> = shape.fields.iter().map(|f| self.quote(f)).collect();
        match batch.op {
            Op::Delete => {
                let marks: Vec<String> = (1..=batch.records.len())
                    .map(|i| self.placeholder(i))
                    .collect();
                let params = batch
                    .records
                    .iter()
                    .map(|r| r.match_value.clone())
                    .collect();
                vec![(
                    format!("delete from {table} where {m} in ({})", marks.join(", ")),
                    params,
                )]
            }
            Op::Update if shape.mode == Mode::Update => batch
                .records
                .iter()
                .map(|r| {
                    let sets: Vec<String> = cols
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("{c} = {}", self.placeholder(i + 1)))
                        .collect();
                    let mut params = r.payload.clone();
                    params.push(r.match_value.clone());
                    (
                        format!(
                            "update {table} set {} where {m} = {}",
                            sets.join(", "),
                            self.placeholder(cols.len() + 1)
                        ),
                        params,
                    )
                })
                .collect(),
            Op::Insert | Op::Update => {
                let others: Vec<&String> = cols.iter().filter(|c| **c != m).collect();
                // Insert mode never overwrites: a key already there (a run killed after the
                // destination took the batch, before ebb recorded it) is left as it is.
                let overwrite = shape.mode != Mode::Insert && !others.is_empty();
                let tail = match (self.dialect, overwrite) {
                    (Dialect::Mysql, true) => format!(
                        " on duplicate key update {}",
                        others
                            .iter()
                            .map(|c| format!("{c} = values({c})"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    (Dialect::Mysql, false) => format!(" on duplicate key update {m} = {m}"),
                    (_, true) => format!(
                        " on conflict ({m}) do update set {}",
                        others
                            .iter()
                            .map(|c| format!("{c} = excluded.{c}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    (_, false) => format!(" on conflict ({m}) do nothing"),
                };
                // Postgres allows 65,535 parameters per statement: stay well under it.
                let per_statement = (30_000 / cols.len().max(1)).max(1);
                batch
                    .records
                    .chunks(per_statement)
                    .map(|chunk| {
                        let mut n = 0;
                        let mut params = Vec::with_capacity(chunk.len() * cols.len());
                        let rows: Vec<String> = chunk
                            .iter()
                            .map(|r| {
                                params.extend(r.payload.iter().cloned());
                                let marks: Vec<String> = r
                                    .payload
                                    .iter()
                                    .map(|_| {
                                        n += 1;
                                        self.placeholder(n)
                                    })
                                    .collect();
                                format!("({})", marks.join(", "))
                            })
                            .collect();
                        (
                            format!(
                                "insert into {table} ({}) values {}{tail}",
                                cols.join(", "),
                                rows.join(", ")
                            ),
                            params,
                        )
                    })
                    .collect()
            }
        }
    }
}

#[async_trait::async_trait]
impl Connector for DatabaseConnector {
    fn max_batch(&self) -> usize {
        10_000
    }

    fn default_batch(&self) -> usize {
        1_000
    }

    fn default_concurrency(&self) -> usize {
        2
    }

    async fn prepare(&self, _shape: &Shape) -> Result<(), Failure> {
        Ok(())
    }

    async fn send(&self, shape: &Shape, batch: &Batch) -> Result<Answer, Failure> {
        if shape.match_index().is_none() {
            return Err(Failure::fatal(format!(
                "the match field `{}` is not mapped; map it so the table can be keyed on it",
                shape.match_field
            )));
        }
        self.created
            .get_or_try_init(|| self.create_table(shape, batch))
            .await
            .map_err(|f| Failure::fatal(f.message))?;
        let whole = self.statements(shape, batch);
        match self.wh.execute_batch(&whole).await {
            Ok(_) => Ok(Answer::default()),
            Err(e @ Error::Connect { .. }) => Err(Failure::transient(e.to_string())),
            Err(Error::Query { message, .. }) if batch.records.len() == 1 => Ok(Answer {
                rejected: vec![(0, message)],
            }),
            Err(Error::Query { .. }) => {
                // Find the rows the database refuses, one at a time.
                let mut answer = Answer::default();
                for (i, r) in batch.records.iter().enumerate() {
                    let one = Batch {
                        op: batch.op,
                        records: vec![r.clone()],
                    };
                    match self.wh.execute_batch(&self.statements(shape, &one)).await {
                        Ok(_) => {}
                        Err(e @ Error::Connect { .. }) => {
                            return Err(Failure::transient(e.to_string()))
                        }
                        Err(Error::Query { message, .. }) => answer.rejected.push((i, message)),
                    }
                }
                Ok(answer)
            }
        }
    }
}
