//! Materializations: a model's compiled SELECT becomes a view or a table. Tables are built under
//! a temporary name and swapped in, so a failing query leaves the old table in place.

use super::{Error, RelationKind, Warehouse};
use crate::render::relation::Relation;

/// How a model is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Materialization {
    View,
    Table,
}

/// Strips trailing semicolons and whitespace, which would break `create ... as (<sql>)`.
fn body(sql: &str) -> &str {
    sql.trim_end().trim_end_matches(';').trim_end()
}

fn drop_sql(wh: &Warehouse, kind: RelationKind, rel: &Relation) -> String {
    let what = match kind {
        RelationKind::Table => "table",
        RelationKind::View => "view",
    };
    // Postgres refuses to drop a relation other views depend on; dbt drops them with it and
    // rebuilds them later in the same run, in DAG order. ebb does the same.
    let cascade = if wh.adapter() == "postgres" {
        " cascade"
    } else {
        ""
    };
    format!("drop {what} if exists {rel}{cascade}")
}

fn rename_sql(wh: &Warehouse, from: &Relation, to: &Relation) -> String {
    match wh.adapter() {
        "mysql" => format!("rename table {from} to {to}"),
        _ => format!(
            "alter table {from} rename to \"{}\"",
            to.identifier.replace('"', "\"\"")
        ),
    }
}

/// Builds `rel` from `sql`; returns the number of rows of a table (0 for a view).
pub async fn materialize(
    wh: &Warehouse,
    how: Materialization,
    rel: &Relation,
    sql: &str,
) -> Result<u64, Error> {
    let existing = wh.relation_kind(rel).await?;
    match how {
        Materialization::View => {
            if let Some(kind) = existing {
                wh.execute(&drop_sql(wh, kind, rel)).await?;
            }
            wh.execute(&format!("create view {rel} as {}", body(sql)))
                .await?;
            if wh.adapter() == "sqlite" {
                // SQLite resolves a view's columns only when it is read: read it now, so the
                // error belongs to this model and not to the first model that selects from it.
                if let Err(e) = wh.execute(&format!("select * from {rel} limit 0")).await {
                    wh.execute(&format!("drop view if exists {rel}")).await?;
                    return Err(e);
                }
            }
            Ok(0)
        }
        Materialization::Table => {
            let mut tmp = rel.clone();
            tmp.identifier = format!("{}__ebb_tmp", rel.identifier);
            if let Some(kind) = wh.relation_kind(&tmp).await? {
                wh.execute(&drop_sql(wh, kind, &tmp)).await?;
            }
            let create = match wh.adapter() {
                "postgres" => format!("create table {tmp} as (\n{}\n)", body(sql)),
                _ => format!("create table {tmp} as\n{}", body(sql)),
            };
            let mut rows = wh.execute(&create).await?;
            // The swap runs on one connection, in one transaction. SQLite checks a rename's
            // target name against the connection's cached schema when the statement is
            // prepared, so a pooled connection that has not seen the drop made elsewhere would
            // refuse it: reading sqlite_master first refreshes that cache.
            let mut swap = Vec::new();
            if wh.adapter() == "sqlite" {
                let master = format!(
                    "select count(*) from \"{}\".sqlite_master",
                    rel.schema.replace('"', "\"\"")
                );
                swap.push((master, Vec::new()));
            }
            if let Some(kind) = existing {
                swap.push((drop_sql(wh, kind, rel), Vec::new()));
            }
            swap.push((rename_sql(wh, &tmp, rel), Vec::new()));
            wh.execute_batch(&swap).await?;
            // SQLite does not count the rows of `create table as` (it reports whatever the
            // connection's last insert changed): count them.
            if rows == 0 || wh.adapter() == "sqlite" {
                let n = wh.count(&format!("select count(*) from {rel}")).await?;
                rows = u64::try_from(n).unwrap_or(0);
            }
            Ok(rows)
        }
    }
}
