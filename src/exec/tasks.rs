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
