//! State in the warehouse (`state: warehouse`, Postgres or MySQL): tables `ebb_delivered`,
//! `ebb_targets`, `ebb_rejected` and `ebb_runs` in a schema of their own (`ebb_state` unless
//! `state: {backend: warehouse, schema: ...}` says otherwise). The diff is one SQL query the
//! warehouse runs: a fingerprint per model row (md5 over the mapped columns and the mapping),
//! joined to what was delivered, so only changed rows leave the warehouse.

use super::{Delivered, RunRecord};
use crate::render::relation::Relation;
use crate::spec::sync::Mode;
use crate::sync::value::Value;
use crate::warehouse::Warehouse;

/// State tables in a warehouse schema.
#[derive(Debug, Clone)]
pub struct WarehouseState {
    wh: Warehouse,
    schema: String,
    postgres: bool,
}

/// The SQL of one sync's diff.
pub struct DiffSql {
    /// One row: inserts, updates, rows, duplicate keys.
    pub counts: String,
    /// The changed rows: the model columns (cast as `kinds` says), then `ebb_key`, `ebb_fp` and
    /// `ebb_op` (0 insert, 1 update).
    pub changes: String,
    /// Keys delivered that left the model: `row_key`, `match_value`.
    pub deletes: String,
}

impl WarehouseState {
    /// Creates the schema and tables when missing. Postgres and MySQL only: SQLite has no
    /// schemas to keep them apart from the models (use the default state file there).
    pub async fn open(wh: Warehouse, schema: &str) -> Result<WarehouseState, String> {
        let postgres = match wh.adapter() {
            "postgres" => true,
            "mysql" => false,
            other => {
                return Err(format!(
                    "`state: warehouse` needs a Postgres or MySQL warehouse, and this target is {other}; remove `state:` from ebb_project.yml to keep state in .ebb/state.db"
                ))
            }
        };
        let state = WarehouseState {
            wh,
            schema: schema.to_string(),
            postgres,
        };
        state
            .wh
            .ensure_schema(schema)
            .await
            .map_err(|e| e.to_string())?;
        let (id, real) = if postgres {
            ("varchar(40) primary key", "double precision")
        } else {
            ("varchar(40) primary key", "double")
        };
        let t = |name: &str| state.table(name);
        let ddl = [
            format!("create table if not exists {} (sync_name varchar(255) not null, row_key varchar(500) not null, fingerprint bigint not null, match_value text, primary key (sync_name, row_key))", t("ebb_delivered")),
            format!("create table if not exists {} (sync_name varchar(255) primary key, target text not null)", t("ebb_targets")),
            format!("create table if not exists {} (sync_name varchar(255) not null, row_key varchar(500) not null, reason text not null, at varchar(40) not null, primary key (sync_name, row_key))", t("ebb_rejected")),
            format!("create table if not exists {} (run_id {id}, invocation_id varchar(64) not null, sync_name varchar(255) not null, started_at varchar(40) not null, finished_at varchar(40), git_commit varchar(64), dirty integer, status varchar(20) not null, inserted bigint not null default 0, updated bigint not null default 0, deleted bigint not null default 0, rejected bigint not null default 0, requests bigint not null default 0, duration {real} not null default 0, error text)", t("ebb_runs")),
        ];
        for sql in ddl {
            let sql = if postgres {
                sql
            } else {
                format!("{sql} character set utf8mb4 collate utf8mb4_bin")
            };
            state.wh.execute(&sql).await.map_err(|e| e.to_string())?;
        }
        Ok(state)
    }

    /// The schema holding the state tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn q(&self, name: &str) -> String {
        if self.postgres {
            format!("\"{}\"", name.replace('"', "\"\""))
        } else {
            format!("`{}`", name.replace('`', "``"))
        }
    }

    fn table(&self, name: &str) -> String {
        format!("{}.{}", self.q(&self.schema), self.q(name))
    }

    /// A string literal (MySQL also treats backslashes as escapes).
    fn lit(&self, s: &str) -> String {
        let s = s.replace('\'', "''");
        if self.postgres {
            format!("'{s}'")
        } else {
            format!("'{}'", s.replace('\\', "\\\\"))
        }
    }

    fn mark(&self, n: usize) -> String {
        if self.postgres {
            format!("${n}")
        } else {
            "?".into()
        }
    }

    fn text(&self, expr: &str) -> String {
        if self.postgres {
            format!("cast({expr} as text)")
        } else {
            // Keys compare byte for byte (`A` and `a` are two keys), as in Postgres.
            format!("cast({expr} as char character set utf8mb4) collate utf8mb4_bin")
        }
    }

    async fn rows(&self, sql: &str, kinds: &[&'static str]) -> Result<Vec<Vec<Value>>, String> {
        self.wh
            .query_rows(sql, kinds)
            .await
            .map_err(|e| format!("state in {}: {e}", self.schema))
    }

    async fn run(&self, statements: Vec<(String, Vec<Value>)>) -> Result<(), String> {
        self.wh
            .execute_batch(&statements)
            .await
            .map(|_| ())
            .map_err(|e| format!("state in {}: {e}", self.schema))
    }

    pub async fn target(&self, sync: &str) -> Result<Option<String>, String> {
        let sql = format!(
            "select target from {} where sync_name = {}",
            self.table("ebb_targets"),
            self.lit(sync)
        );
        Ok(self
            .rows(&sql, &["text"])
            .await?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .map(|v| v.to_text()))
    }

    pub async fn load(&self, sync: &str) -> Result<Delivered, String> {
        let count = |table: &str| {
            format!(
                "select count(*) from {} where sync_name = {}",
                self.table(table),
                self.lit(sync)
            )
        };
        let n = |rows: Vec<Vec<Value>>| match rows.first().and_then(|r| r.first()) {
            Some(Value::Int(i)) => *i as u64,
            _ => 0,
        };
        Ok(Delivered {
            rows: Default::default(),
            count: n(self.rows(&count("ebb_delivered"), &["integer"]).await?),
            rejected: n(self.rows(&count("ebb_rejected"), &["integer"]).await?) as usize,
        })
    }

    pub async fn retarget(&self, sync: &str, target: &str) -> Result<(), String> {
        let s = Value::Text(sync.into());
        self.run(vec![
            (
                format!(
                    "delete from {} where sync_name = {}",
                    self.table("ebb_delivered"),
                    self.mark(1)
                ),
                vec![s.clone()],
            ),
            (
                format!(
                    "delete from {} where sync_name = {}",
                    self.table("ebb_rejected"),
                    self.mark(1)
                ),
                vec![s],
            ),
        ])
        .await?;
        self.set_target(sync, target).await
    }

    pub async fn set_target(&self, sync: &str, target: &str) -> Result<(), String> {
        let t = self.table("ebb_targets");
        let sql = if self.postgres {
            format!("insert into {t} (sync_name, target) values ($1, $2) on conflict (sync_name) do update set target = excluded.target")
        } else {
            format!("insert into {t} (sync_name, target) values (?, ?) on duplicate key update target = values(target)")
        };
        self.run(vec![(
            sql,
            vec![Value::Text(sync.into()), Value::Text(target.into())],
        )])
        .await
    }

    pub async fn commit(
        &self,
        sync: &str,
        acked: &[(String, Option<u64>)],
        matches: &[Option<String>],
        rejected: &[(String, String)],
        clear_rejects: bool,
    ) -> Result<(), String> {
        let mut statements = Vec::new();
        let d = self.table("ebb_delivered");
        let put: Vec<(usize, &(String, Option<u64>))> = acked
            .iter()
            .enumerate()
            .filter(|(_, (_, fp))| fp.is_some())
            .collect();
        for chunk in put.chunks(1000) {
            let mut params = Vec::new();
            let mut rows = Vec::new();
            for (i, (key, fp)) in chunk {
                let n = params.len();
                rows.push(format!(
                    "({}, {}, {}, {})",
                    self.mark(n + 1),
                    self.mark(n + 2),
                    self.mark(n + 3),
                    self.mark(n + 4)
                ));
                params.push(Value::Text(sync.into()));
                params.push(Value::Text(key.clone()));
                params.push(Value::Int(fp.unwrap_or(0) as i64));
                params.push(
                    matches
                        .get(*i)
                        .cloned()
                        .flatten()
                        .map_or(Value::Null, Value::Text),
                );
            }
            let tail = if self.postgres {
                " on conflict (sync_name, row_key) do update set fingerprint = excluded.fingerprint, match_value = excluded.match_value"
            } else {
                " on duplicate key update fingerprint = values(fingerprint), match_value = values(match_value)"
            };
            statements.push((
                format!(
                    "insert into {d} (sync_name, row_key, fingerprint, match_value) values {}{tail}",
                    rows.join(", ")
                ),
                params,
            ));
        }
        let mut gone: Vec<&String> = acked
            .iter()
            .filter(|(_, fp)| fp.is_none())
            .map(|(k, _)| k)
            .collect();
        if clear_rejects {
            gone.clear();
            gone.extend(acked.iter().map(|(k, _)| k));
        }
        let deleted: Vec<&String> = acked
            .iter()
            .filter(|(_, fp)| fp.is_none())
            .map(|(k, _)| k)
            .collect();
        for (table, keys) in [("ebb_delivered", &deleted), ("ebb_rejected", &gone)] {
            if table == "ebb_rejected" && !clear_rejects {
                continue;
            }
            for chunk in keys.chunks(1000) {
                let mut params = vec![Value::Text(sync.into())];
                let marks: Vec<String> = chunk
                    .iter()
                    .map(|k| {
                        params.push(Value::Text((*k).clone()));
                        self.mark(params.len())
                    })
                    .collect();
                statements.push((
                    format!(
                        "delete from {} where sync_name = {} and row_key in ({})",
                        self.table(table),
                        self.mark(1),
                        marks.join(", ")
                    ),
                    params,
                ));
            }
        }
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let r = self.table("ebb_rejected");
        for (key, reason) in rejected {
            let sql = if self.postgres {
                format!("insert into {r} (sync_name, row_key, reason, at) values ($1, $2, $3, $4) on conflict (sync_name, row_key) do update set reason = excluded.reason, at = excluded.at")
            } else {
                format!("insert into {r} (sync_name, row_key, reason, at) values (?, ?, ?, ?) on duplicate key update reason = values(reason), at = values(at)")
            };
            statements.push((
                sql,
                vec![
                    Value::Text(sync.into()),
                    Value::Text(key.clone()),
                    Value::Text(reason.clone()),
                    Value::Text(now.clone()),
                ],
            ));
        }
        if statements.is_empty() {
            return Ok(());
        }
        self.run(statements).await
    }

    pub async fn rejections(
        &self,
        sync: &str,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, String> {
        let sql = format!(
            "select row_key, reason, at from {} where sync_name = {} order by row_key limit {limit}",
            self.table("ebb_rejected"),
            self.lit(sync)
        );
        Ok(self
            .rows(&sql, &["text", "text", "text"])
            .await?
            .into_iter()
            .map(|r| (r[0].to_text(), r[1].to_text(), r[2].to_text()))
            .collect())
    }

    pub async fn start_run(&self, run: &RunRecord) -> Result<String, String> {
        let id = uuid::Uuid::new_v4().to_string();
        let marks: Vec<String> = (1..=5).map(|n| self.mark(n)).collect();
        // A typed NULL for `dirty` (a bound NULL is text to Postgres).
        let dirty = run
            .dirty
            .map_or_else(|| "null".to_string(), |d| i64::from(d).to_string());
        self.run(vec![(
            format!(
                "insert into {} (run_id, invocation_id, sync_name, started_at, git_commit, dirty, status) values ({}, {dirty}, 'running')",
                self.table("ebb_runs"),
                marks.join(", ")
            ),
            vec![
                Value::Text(id.clone()),
                Value::Text(run.invocation_id.clone()),
                Value::Text(run.sync.clone()),
                Value::Text(run.started_at.clone()),
                run.commit.clone().map_or(Value::Null, Value::Text),
            ],
        )])
        .await?;
        Ok(id)
    }

    pub async fn finish_run(&self, id: &str, run: &RunRecord) -> Result<(), String> {
        let cols = [
            "finished_at",
            "status",
            "inserted",
            "updated",
            "deleted",
            "rejected",
            "requests",
            "duration",
            "error",
        ];
        let sets: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = {}", self.mark(i + 1)))
            .collect();
        self.run(vec![(
            format!(
                "update {} set {} where run_id = {}",
                self.table("ebb_runs"),
                sets.join(", "),
                self.mark(cols.len() + 1)
            ),
            vec![
                run.finished_at.clone().map_or(Value::Null, Value::Text),
                Value::Text(run.status.clone()),
                Value::Int(run.inserted as i64),
                Value::Int(run.updated as i64),
                Value::Int(run.deleted as i64),
                Value::Int(run.rejected as i64),
                Value::Int(run.requests as i64),
                Value::Float(run.duration),
                run.error.clone().map_or(Value::Null, Value::Text),
                Value::Text(id.into()),
            ],
        )])
        .await
    }

    pub async fn history(&self, limit: usize) -> Result<Vec<RunRecord>, String> {
        let sql = format!(
            "select invocation_id, sync_name, started_at, finished_at, git_commit, dirty, status, inserted, updated, deleted, rejected, requests, duration, error
             from (select r.*, row_number() over (partition by sync_name order by started_at desc, run_id) as n from {} r) x
             where n <= {limit} order by sync_name, started_at desc",
            self.table("ebb_runs")
        );
        let kinds = [
            "text", "text", "text", "text", "text", "integer", "text", "integer", "integer",
            "integer", "integer", "integer", "float", "text",
        ];
        let opt = |v: &Value| (*v != Value::Null).then(|| v.to_text());
        let int = |v: &Value| match v {
            Value::Int(i) => *i as u64,
            _ => 0,
        };
        Ok(self
            .rows(&sql, &kinds)
            .await?
            .into_iter()
            .map(|r| RunRecord {
                invocation_id: r[0].to_text(),
                sync: r[1].to_text(),
                started_at: r[2].to_text(),
                finished_at: opt(&r[3]),
                commit: opt(&r[4]),
                dirty: match r[5] {
                    Value::Int(i) => Some(i != 0),
                    _ => None,
                },
                status: r[6].to_text(),
                inserted: int(&r[7]),
                updated: int(&r[8]),
                deleted: int(&r[9]),
                rejected: int(&r[10]),
                requests: int(&r[11]),
                duration: match r[12] {
                    Value::Float(f) => f,
                    _ => 0.0,
                },
                error: opt(&r[13]),
            })
            .collect())
    }

    /// The diff of one sync as SQL. `columns` are the model columns the mapping reads (the
    /// primary key first) with their type families; `mapping` is a hash of the mapping, so a
    /// changed mapping changes every fingerprint. With `fresh`, state is ignored (every row is
    /// an insert: a new destination).
    #[allow(clippy::too_many_arguments)]
    pub fn diff_sql(
        &self,
        sync: &str,
        model: &Relation,
        columns: &[String],
        families: &[&'static str],
        mode: Mode,
        mapping: &str,
        full_refresh: bool,
        fresh: bool,
    ) -> DiffSql {
        let rel = format!("{}.{}", self.q(&model.schema), self.q(&model.identifier));
        let key = self.text(&self.q(&columns[0]));
        let parts: Vec<String> = columns
            .iter()
            .map(|c| format!("coalesce({}, '~')", self.text(&self.q(c))))
            .collect();
        let concat = format!(
            "concat_ws('|', {}, {})",
            self.lit(mapping),
            parts.join(", ")
        );
        let fp = if self.postgres {
            format!("('x' || substr(md5({concat}), 1, 15))::bit(60)::bigint")
        } else {
            format!("cast(conv(substr(md5({concat}), 1, 15), 16, 10) as signed)")
        };
        let inner = format!(
            "select {}, {key} as ebb_key, {fp} as ebb_fp from {rel}",
            columns
                .iter()
                .map(|c| self.q(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let join = format!(
            "left join {} d on d.sync_name = {} and d.row_key = m.ebb_key{}",
            self.table("ebb_delivered"),
            self.lit(sync),
            if fresh { " and 1 = 0" } else { "" }
        );
        let changed = if full_refresh {
            "1 = 1".to_string()
        } else {
            "d.fingerprint <> m.ebb_fp".to_string()
        };
        let is_insert = "d.row_key is null".to_string();
        let is_update = format!("(d.row_key is not null and {changed})");
        let filter = match mode {
            Mode::Insert => is_insert.clone(),
            Mode::Update => is_update.clone(),
            Mode::Upsert | Mode::Mirror => format!("({is_insert} or {is_update})"),
        };
        let int = |e: &str| {
            if self.postgres {
                format!("cast({e} as bigint)")
            } else {
                format!("cast({e} as signed)")
            }
        };
        let counts = format!(
            "select {}, {}, {}, {} from ({inner}) m {join}",
            int(&format!(
                "coalesce(sum(case when {is_insert} then 1 else 0 end), 0)"
            )),
            int(&format!(
                "coalesce(sum(case when {is_update} then 1 else 0 end), 0)"
            )),
            int("count(*)"),
            int("count(*) - count(distinct m.ebb_key)"),
        );
        let select: Vec<String> = columns
            .iter()
            .zip(families)
            .map(|(c, f)| {
                let col = format!("m.{}", self.q(c));
                match (*f, self.postgres) {
                    ("integer", _) => int(&col),
                    ("float", true) => format!("cast({col} as double precision)"),
                    ("float", false) => format!("cast({col} as double)"),
                    ("boolean", true) => col,
                    ("boolean", false) => int(&col),
                    _ => self.text(&col),
                }
            })
            .collect();
        let changes = format!(
            "select {}, m.ebb_key, m.ebb_fp, {} from ({inner}) m {join} where {filter}",
            select.join(", "),
            int("case when d.row_key is null then 0 else 1 end")
        );
        let deletes = format!(
            "select d.row_key, d.match_value from {} d where d.sync_name = {} and not exists (select 1 from {rel} r where {} = d.row_key) order by d.row_key",
            self.table("ebb_delivered"),
            self.lit(sync),
            self.text(&format!("r.{}", self.q(&columns[0])))
        );
        DiffSql {
            counts,
            changes,
            deletes,
        }
    }

    /// The warehouse the state lives in.
    pub fn warehouse(&self) -> &Warehouse {
        &self.wh
    }
}
