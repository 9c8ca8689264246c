//! The lineage artifacts: `lineage.json` (node and column edges, documented in
//! docs/lineage.md), and the same graph as Mermaid and Graphviz DOT.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::{json, Value};

use super::columns::{Indirect, Transformation};
use super::project::ProjectLineage;
use crate::graph::{Graph, Node, ResourceType};

/// One column-level edge.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ColumnEdge {
    pub from_node: String,
    pub from_column: String,
    pub to_node: String,
    /// A model column, or `<object>.<field>` of a destination.
    pub to_column: String,
    /// DIRECT (the value flows) or INDIRECT (the column decides which rows or how they join).
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub subtype: &'static str,
    /// The sync that carries a destination edge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// True when the value is masked or hashed on the way.
    pub masked: bool,
}

fn transformation(t: Transformation) -> &'static str {
    match t {
        Transformation::Identity => "IDENTITY",
        Transformation::Transformation => "TRANSFORMATION",
        Transformation::Aggregation => "AGGREGATION",
    }
}

fn indirect(i: Indirect) -> &'static str {
    match i {
        Indirect::Join => "JOIN",
        Indirect::Filter => "FILTER",
        Indirect::GroupBy => "GROUP_BY",
    }
}

/// Lists every column edge of the project: through models (from their SQL) and from model
/// columns to destination fields (from sync mappings).
pub fn column_edges(graph: &Graph, lineage: &ProjectLineage) -> Vec<ColumnEdge> {
    let mut edges = BTreeSet::new();
    for (id, l) in &lineage.models {
        for col in l.columns.iter().flatten() {
            for (n, c) in &col.inputs {
                edges.insert(ColumnEdge {
                    from_node: n.clone(),
                    from_column: c.clone(),
                    to_node: id.clone(),
                    to_column: col.name.clone(),
                    kind: "DIRECT",
                    subtype: transformation(col.transformation),
                    via: None,
                    masked: false,
                });
            }
        }
        for ((n, c), why) in &l.indirect {
            edges.insert(ColumnEdge {
                from_node: n.clone(),
                from_column: c.clone(),
                to_node: id.clone(),
                to_column: "*".into(),
                kind: "INDIRECT",
                subtype: indirect(*why),
                via: None,
                masked: false,
            });
        }
    }
    for node in graph.nodes.values() {
        let Some(spec) = &node.sync else { continue };
        let Some(model) = node
            .depends_on_nodes
            .iter()
            .find(|d| d.starts_with("model.") || d.starts_with("seed."))
        else {
            continue;
        };
        let dest = format!("destination.{}.{}", node.package_name, spec.destination);
        for m in &spec.mapping {
            let masked = m
                .filters()
                .iter()
                .any(|f| crate::compile::MASKING_FILTERS.contains(&f.as_str()));
            for c in m.columns() {
                edges.insert(ColumnEdge {
                    from_node: model.clone(),
                    from_column: c.to_lowercase(),
                    to_node: dest.clone(),
                    to_column: format!("{}.{}", spec.object, m.field),
                    kind: "DIRECT",
                    subtype: if m.is_expression() {
                        "TRANSFORMATION"
                    } else {
                        "IDENTITY"
                    },
                    via: Some(node.unique_id.clone()),
                    masked,
                });
            }
        }
    }
    edges.into_iter().collect()
}

fn shown(node: &Node) -> bool {
    node.resource_type != ResourceType::Test
}

/// Builds lineage.json.
pub fn lineage_json(graph: &Graph, lineage: &ProjectLineage, metadata: Value) -> Value {
    let nodes: Vec<Value> = graph
        .nodes
        .values()
        .filter(|n| shown(n))
        .map(|n| {
            let columns = lineage.known_columns(graph, &n.unique_id).unwrap_or_default();
            json!({
                "id": n.unique_id,
                "name": n.display_name(),
                "resource_type": n.resource_type,
                "relation": n.relation.as_ref().filter(|r| r.cte.is_none()).map(ToString::to_string),
                "columns": columns,
            })
        })
        .collect();
    let edges: Vec<Value> = graph
        .nodes
        .values()
        .filter(|n| shown(n))
        .flat_map(|n| {
            n.depends_on_nodes
                .iter()
                .filter(|p| graph.nodes.get(*p).is_some_and(shown))
                .map(move |p| json!({"from": p, "to": n.unique_id}))
        })
        .collect();
    let unresolved: BTreeMap<&String, Vec<&String>> = lineage
        .models
        .iter()
        .filter(|(_, l)| !l.unresolved.is_empty())
        .map(|(id, l)| (id, l.unresolved.iter().collect()))
        .collect();
    json!({
        "metadata": metadata,
        "nodes": nodes,
        "edges": edges,
        "column_edges": column_edges(graph, lineage),
        "unresolved": unresolved,
        "unparsed": lineage.errors,
    })
}

fn short_id(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Renders the node graph as a Mermaid flowchart (tests left out).
pub fn mermaid(graph: &Graph) -> String {
    let mut out = String::from("flowchart LR\n");
    for n in graph.nodes.values().filter(|n| shown(n)) {
        let label = n.display_name().replace('"', "'");
        let id = short_id(&n.unique_id);
        let _ = match n.resource_type {
            ResourceType::Source | ResourceType::Seed => writeln!(out, "    {id}[(\"{label}\")]"),
            ResourceType::Sync => writeln!(out, "    {id}{{{{\"{label}\"}}}}"),
            ResourceType::Destination => writeln!(out, "    {id}[/\"{label}\"/]"),
            _ => writeln!(out, "    {id}[\"{label}\"]"),
        };
    }
    for n in graph.nodes.values().filter(|n| shown(n)) {
        for p in n
            .depends_on_nodes
            .iter()
            .filter(|p| graph.nodes.get(*p).is_some_and(shown))
        {
            let _ = writeln!(out, "    {} --> {}", short_id(p), short_id(&n.unique_id));
        }
    }
    for (kind, class) in [
        (ResourceType::Sync, "sync"),
        (ResourceType::Destination, "destination"),
    ] {
        let ids: Vec<String> = graph
            .nodes
            .values()
            .filter(|n| n.resource_type == kind)
            .map(|n| short_id(&n.unique_id))
            .collect();
        if !ids.is_empty() {
            let _ = writeln!(out, "    class {} {class}", ids.join(","));
        }
    }
    out.push_str("    classDef sync fill:#fde68a,stroke:#b45309\n    classDef destination fill:#bfdbfe,stroke:#1d4ed8\n");
    out
}

/// Renders the node graph as Graphviz DOT (tests left out).
pub fn dot(graph: &Graph) -> String {
    let mut out =
        String::from("digraph ebb {\n    rankdir=LR;\n    node [fontname=\"Helvetica\"];\n");
    for n in graph.nodes.values().filter(|n| shown(n)) {
        let shape = match n.resource_type {
            ResourceType::Source | ResourceType::Seed => "cylinder",
            ResourceType::Sync => "hexagon",
            ResourceType::Destination => "parallelogram",
            _ => "box",
        };
        let _ = writeln!(
            out,
            "    \"{}\" [label=\"{}\", shape={shape}];",
            n.unique_id,
            n.display_name().replace('"', "'")
        );
    }
    for n in graph.nodes.values().filter(|n| shown(n)) {
        for p in n
            .depends_on_nodes
            .iter()
            .filter(|p| graph.nodes.get(*p).is_some_and(shown))
        {
            let _ = writeln!(out, "    \"{p}\" -> \"{}\";", n.unique_id);
        }
    }
    out.push_str("}\n");
    out
}
