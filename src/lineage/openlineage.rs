//! OpenLineage run events: one COMPLETE event per model (a job reading its parents, writing its
//! relation) and per sync (reading its model, writing the destination object), with the schema
//! and columnLineage dataset facets. Written as JSON Lines to `target/openlineage.jsonl`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::export::ColumnEdge;
use super::project::ProjectLineage;
use crate::graph::{Graph, Node, ResourceType};

/// Who produced the events.
pub const PRODUCER: &str = "https://github.com/ebb-dev/ebb";
const RUN_EVENT: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const SCHEMA_FACET: &str = "https://openlineage.io/spec/facets/1-0-0/SchemaDatasetFacet.json";
const LINEAGE_FACET: &str =
    "https://openlineage.io/spec/facets/1-0-1/ColumnLineageDatasetFacet.json";

/// Returns the (namespace, name) of the dataset a node stands for. Warehouse relations live in
/// `warehouse`'s namespace; a destination object in `<type>://<destination>`.
fn dataset(node: &Node, warehouse: &str, object: Option<&str>) -> (String, String) {
    if let Some(d) = &node.destination {
        return (
            format!("{}://{}", d.kind, d.name),
            object.unwrap_or_default().to_string(),
        );
    }
    match &node.relation {
        Some(rel) if rel.cte.is_none() => {
            let parts: Vec<&str> = [
                rel.database.as_str(),
                rel.schema.as_str(),
                rel.identifier.as_str(),
            ]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
            (warehouse.to_string(), parts.join("."))
        }
        _ => (warehouse.to_string(), format!("ephemeral.{}", node.name)),
    }
}

/// Returns a UUID derived from `seed`, so the same invocation gives the same run ids.
fn run_id(seed: &str) -> String {
    let hex = crate::artifacts::checksum(seed.as_bytes());
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap_or(0);
    }
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn facet_base(url: &str) -> Value {
    json!({"_producer": PRODUCER, "_schemaURL": url})
}

fn schema_facet(columns: &[String]) -> Value {
    let mut f = facet_base(SCHEMA_FACET);
    f["fields"] = json!(columns
        .iter()
        .map(|c| json!({"name": c}))
        .collect::<Vec<_>>());
    f
}

/// Builds the run events of the project's models and syncs.
pub fn events(
    graph: &Graph,
    lineage: &ProjectLineage,
    edges: &[ColumnEdge],
    warehouse: &str,
    job_namespace: &str,
    event_time: &str,
    invocation: &str,
) -> Vec<Value> {
    let mut out = Vec::new();
    for node in graph.nodes.values() {
        let (inputs, object) = match node.resource_type {
            ResourceType::Model => (
                node.depends_on_nodes.iter().cloned().collect::<Vec<_>>(),
                None,
            ),
            ResourceType::Sync => {
                let model: Vec<String> = node
                    .depends_on_nodes
                    .iter()
                    .filter(|d| d.starts_with("model.") || d.starts_with("seed."))
                    .cloned()
                    .collect();
                (model, node.sync.as_ref().map(|s| s.object.as_str()))
            }
            _ => continue,
        };
        let input_datasets: Vec<Value> = inputs
            .iter()
            .filter_map(|id| graph.nodes.get(id))
            .map(|n| {
                let (ns, name) = dataset(n, warehouse, None);
                let cols = lineage
                    .known_columns(graph, &n.unique_id)
                    .unwrap_or_default();
                json!({"namespace": ns, "name": name, "facets": {"schema": schema_facet(&cols)}})
            })
            .collect();
        // The output: the model's relation, or the destination object of a sync.
        let (target_node, out_columns, mine): (Option<&Node>, Vec<String>, Vec<&ColumnEdge>) =
            match &node.sync {
                Some(spec) => {
                    let dest = graph.nodes.get(&format!(
                        "destination.{}.{}",
                        node.package_name, spec.destination
                    ));
                    let mine: Vec<&ColumnEdge> = edges
                        .iter()
                        .filter(|e| e.via.as_deref() == Some(node.unique_id.as_str()))
                        .collect();
                    (
                        dest,
                        spec.mapping.iter().map(|m| m.field.clone()).collect(),
                        mine,
                    )
                }
                None => {
                    let cols = lineage
                        .known_columns(graph, &node.unique_id)
                        .unwrap_or_default();
                    let mine: Vec<&ColumnEdge> = edges
                        .iter()
                        .filter(|e| e.to_node == node.unique_id && e.via.is_none())
                        .collect();
                    (Some(node), cols, mine)
                }
            };
        let mut fields: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for e in &mine {
            let Some(from) = graph.nodes.get(&e.from_node) else {
                continue;
            };
            let (ns, name) = dataset(from, warehouse, None);
            let field = match &node.sync {
                Some(spec) => e
                    .to_column
                    .strip_prefix(&format!("{}.", spec.object))
                    .unwrap_or(&e.to_column)
                    .to_string(),
                None => e.to_column.clone(),
            };
            if field == "*" {
                continue;
            }
            fields.entry(field).or_default().push(json!({
                "namespace": ns,
                "name": name,
                "field": e.from_column,
                "transformations": [{"type": e.kind, "subtype": e.subtype, "masking": e.masked}],
            }));
        }
        let mut lineage_facet = facet_base(LINEAGE_FACET);
        lineage_facet["fields"] = json!(fields
            .into_iter()
            .map(|(k, v)| (k, json!({"inputFields": v})))
            .collect::<serde_json::Map<_, _>>());
        let outputs: Vec<Value> = target_node
            .map(|t| {
                let (ns, name) = dataset(t, warehouse, object);
                json!({"namespace": ns, "name": name, "facets": {"schema": schema_facet(&out_columns), "columnLineage": lineage_facet}})
            })
            .into_iter()
            .collect();
        out.push(json!({
            "eventType": "COMPLETE",
            "eventTime": event_time,
            "producer": PRODUCER,
            "schemaURL": RUN_EVENT,
            "run": {"runId": run_id(&format!("{invocation}/{}", node.unique_id))},
            "job": {"namespace": job_namespace, "name": node.unique_id},
            "inputs": input_datasets,
            "outputs": outputs,
        }));
    }
    out
}
