//! The work one node does against the warehouse: load a seed, build a model, run a data test.
//! Each returns an [`Outcome`]; errors become an `error` status with a message that names the
//! file, never a failure of the whole run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::{Outcome, Status};
use crate::graph::{Graph, Node, ResourceType};
use crate::render::relation::Relation;
use crate::warehouse::materialize::{materialize, Materialization};
use crate::warehouse::seed::{self, SeedData};
use crate::warehouse::{Error, Warehouse};

fn now() -> (SystemTime, Instant) {
    (SystemTime::now(), Instant::now())
}

/// Tells whether a node is a model that is built (ephemeral models are inlined instead).
pub fn is_built_model(node: &Node) -> bool {
    node.resource_type == ResourceType::Model && !node.is_ephemeral()
}

/// Returns, for each id in `ids`, its parents within `ids`, looking through ephemeral models
/// (which have no relation of their own) to what they read. A source whose table is loaded by
/// a seed of the same run counts as that seed.
pub fn parents_within(graph: &Graph, ids: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let seeded: BTreeMap<String, &String> = ids
        .iter()
        .filter(|id| graph.nodes[*id].resource_type == ResourceType::Seed)
        .filter_map(|id| Some((graph.nodes[id].relation.as_ref()?.to_string(), id)))
        .collect();
    ids.iter()
        .map(|id| {
            let mut found = BTreeSet::new();
            let mut stack: Vec<&String> = graph.nodes[id].depends_on_nodes.iter().collect();
            while let Some(p) = stack.pop() {
                let Some(n) = graph.nodes.get(p) else {
                    continue;
                };
                if ids.contains(p) {
                    found.insert(p.clone());
                } else if let Some(seed) =
                    n.relation.as_ref().and_then(|r| seeded.get(&r.to_string()))
                {
                    found.insert((*seed).clone());
                } else if n.is_ephemeral() {
                    stack.extend(n.depends_on_nodes.iter());
                }
            }
            (id.clone(), found)
        })
        .collect()
}

/// Loads one seed.
pub async fn load_seed(wh: Warehouse, node: Node, data: Arc<SeedData>) -> Outcome {
    let start = now();
    let Some(rel) = &node.relation else {
        return Outcome::finished(
            Status::Error,
            start,
            None,
            Some("seed has no relation".into()),
        );
    };
    match seed::load(&wh, rel, &data).await {
        Ok(n) => Outcome::finished(Status::Success, start, Some(n), None),
        Err(e) => Outcome::finished(
            Status::Error,
            start,
            None,
            Some(format!("loading `{}`: {e}", node.original_file_path)),
        ),
    }
}

/// Formats a database error on a model: the file, the compiled SQL line the database blamed,
/// and the message.
fn model_error(node: &Node, err: &Error) -> String {
    match err {
        Error::Query {
            message,
            line: Some(line),
        } => {
            let compiled = crate::artifacts::compiled_path(node)
                .map_or(String::new(), |p| format!(" (target/{p}:{line})"));
            format!(
                "database error in `{}`{compiled}: {message}",
                node.original_file_path
            )
        }
        other => format!("database error in `{}`: {other}", node.original_file_path),
    }
}

/// Builds one model as a view or a table.
pub async fn build_model(wh: Warehouse, node: Node) -> Outcome {
    let start = now();
    let (Some(rel), Some(sql)) = (&node.relation, &node.compiled_code) else {
        return Outcome::finished(
            Status::Error,
            start,
            None,
            Some("model was not compiled".into()),
        );
    };
    let how = if node.config.materialized() == "view" {
        Materialization::View
    } else {
        Materialization::Table
    };
    match materialize(&wh, how, rel, sql).await {
        Ok(rows) => Outcome::finished(
            Status::Success,
            start,
            (how == Materialization::Table).then_some(rows),
            None,
        ),
        Err(e) => Outcome::finished(Status::Error, start, None, Some(model_error(&node, &e))),
    }
}

/// Runs one data test: counts the rows its query returns. With `store_in` (a relation in the
/// audit schema; its identifier is replaced by the test's name), failing rows are kept there.
pub async fn run_test(wh: Warehouse, node: Node, store_in: Option<Relation>) -> Outcome {
    let start = now();
    let Some(sql) = node.compiled_code.as_deref() else {
        return Outcome::finished(
            Status::Error,
            start,
            None,
            Some("test was not compiled".into()),
        );
    };
    let body = sql.trim_end().trim_end_matches(';');
    let count = match wh
        .count(&format!("select count(*) from (\n{body}\n) ebb_test"))
        .await
    {
        Ok(n) => u64::try_from(n).unwrap_or(0),
        Err(e) => {
            let msg = format!(
                "test `{}` ({}) could not run: {e}",
                node.name, node.original_file_path
            );
            return Outcome::finished(Status::Error, start, None, Some(msg));
        }
    };
    if count == 0 {
        return Outcome::finished(Status::Pass, start, Some(0), None);
    }
    let mut message = format!(
        "got {count} failing row(s) from `{}`",
        node.original_file_path
    );
    if let Some(mut rel) = store_in {
        rel.identifier = node.name.chars().take(60).collect();
        let stored = match wh.ensure_schema(&rel.schema).await {
            Ok(()) => materialize(&wh, Materialization::Table, &rel, body)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match stored {
            Ok(()) => message.push_str(&format!("; stored in {rel}")),
            Err(e) => message.push_str(&format!("; could not store them: {e}")),
        }
    }
    let warn = node
        .config
        .str("severity")
        .is_some_and(|s| s.eq_ignore_ascii_case("warn"));
    Outcome::finished(
        if warn { Status::Warn } else { Status::Fail },
        start,
        Some(count),
        Some(message),
    )
}

/// Checks a sync's contract against the warehouse: its model's relation exists, holds the
/// primary key and every mapped column, and the key is unique and never null.
pub async fn check_sync(wh: Warehouse, sync: Node, model: Option<Node>) -> Outcome {
    let start = now();
    let fail =
        |msg: String, rows: Option<u64>| Outcome::finished(Status::Fail, start, rows, Some(msg));
    let Some(spec) = &sync.sync else {
        return Outcome::finished(Status::Error, start, None, Some("not a sync".into()));
    };
    let Some(rel) = model
        .as_ref()
        .and_then(|m| m.relation.clone())
        .filter(|r| r.cte.is_none())
    else {
        return fail(
            format!(
                "sync `{}` reads `{}`, which has no table or view to read (an ephemeral model?)",
                spec.name, spec.model
            ),
            None,
        );
    };
    let columns = match wh.columns(&rel).await {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            return fail(
                format!(
                    "`{rel}` does not exist in the warehouse: run `ebb run` (or `ebb build`) first"
                ),
                None,
            )
        }
        Err(e) => {
            return Outcome::finished(
                Status::Error,
                start,
                None,
                Some(format!("reading the columns of `{rel}`: {e}")),
            )
        }
    };
    let has = |c: &str| columns.iter().any(|(name, _)| name.eq_ignore_ascii_case(c));
    let mut wanted: Vec<String> = vec![spec.primary_key.clone()];
    wanted.extend(spec.mapping.iter().flat_map(|m| m.columns()));
    wanted.sort();
    wanted.dedup();
    let missing: Vec<&String> = wanted.iter().filter(|c| !has(c)).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|c| format!("`{c}`")).collect();
        return fail(
            format!(
                "sync `{}` ({}) maps column(s) {} that `{rel}` does not have",
                spec.name,
                sync.original_file_path,
                list.join(", ")
            ),
            Some(missing.len() as u64),
        );
    }
    let pk = &spec.primary_key;
    let quoted = if wh.adapter() == "mysql" {
        format!("`{pk}`")
    } else {
        format!("\"{pk}\"")
    };
    let nulls = wh
        .count(&format!(
            "select count(*) from {rel} where {quoted} is null"
        ))
        .await;
    let dups = wh.count(&format!("select count(*) from (select {quoted} from {rel} group by {quoted} having count(*) > 1) ebb_dups")).await;
    match (nulls, dups) {
        (Ok(0), Ok(0)) => Outcome::finished(Status::Pass, start, Some(0), None),
        (Ok(n), Ok(d)) => {
            let bad = u64::try_from(n + d).unwrap_or(0);
            fail(format!("primary key `{pk}` of sync `{}` must be unique and not null in `{rel}`: {n} null, {d} duplicated", spec.name), Some(bad))
        }
        (Err(e), _) | (_, Err(e)) => Outcome::finished(
            Status::Error,
            start,
            None,
            Some(format!("checking `{pk}` in `{rel}`: {e}")),
        ),
    }
}
