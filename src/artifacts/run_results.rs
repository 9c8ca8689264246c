//! `target/run_results.json`: one entry per node a command ran (seed, run, test) with its
//! status, timing, rows and error; documented in docs/warehouse.md (syncs: docs/syncs.md).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::manifest::Invocation;
use crate::exec::Outcome;
use crate::graph::Graph;

/// Builds run_results.json for `command` from the outcomes of a run.
pub fn build(
    command: &str,
    graph: &Graph,
    outcomes: &BTreeMap<String, Outcome>,
    invocation: &Invocation,
    target: Option<&crate::spec::profiles::Target>,
    elapsed: f64,
) -> Value {
    let results: Vec<Value> = outcomes
        .iter()
        .map(|(id, o)| {
            let node = graph.nodes.get(id);
            json!({
                "unique_id": id,
                "resource_type": node.map(|n| n.resource_type),
                "name": node.map(|n| n.name.as_str()),
                "original_file_path": node.map(|n| n.original_file_path.as_str()),
                "relation_name": node.and_then(|n| n.relation.as_ref()).filter(|r| r.cte.is_none()).map(ToString::to_string),
                "status": o.status,
                "message": o.message,
                "rows_affected": if node.is_some_and(|n| n.resource_type == crate::graph::ResourceType::Test) { None } else { o.rows },
                "failures": if node.is_some_and(|n| n.resource_type == crate::graph::ResourceType::Test) { o.rows } else { None },
                "timing": [{"name": "execute", "started_at": o.started_at, "completed_at": o.completed_at}],
                "execution_time": o.execution_time,
                "detail": o.detail,
            })
        })
        .collect();
    json!({
        "metadata": {
            "ebb_schema_version": 1,
            "ebb_version": env!("CARGO_PKG_VERSION"),
            "generated_at": invocation.generated_at,
            "invocation_id": invocation.invocation_id,
            "command": command,
            "target_name": target.map(|t| t.name.as_str()),
            "adapter_type": target.map(|t| t.adapter_type.as_str()),
            "git": invocation.git,
        },
        "elapsed_time": elapsed,
        "results": results,
    })
}
