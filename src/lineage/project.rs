//! Column lineage across the project: every model's SQL analyzed in dependency order, each
//! model's output columns becoming the schema its children see.

use std::collections::{BTreeMap, BTreeSet};

use super::columns::{self, MapCatalog, QueryLineage};
use crate::graph::{Graph, Node, ResourceType};

/// The lineage of the analyzed models, and why the others could not be analyzed.
#[derive(Debug, Default)]
pub struct ProjectLineage {
    pub models: BTreeMap<String, QueryLineage>,
    pub errors: BTreeMap<String, String>,
    catalog: MapCatalog,
}

fn declared(node: &Node) -> Option<Vec<String>> {
    (!node.columns.is_empty()).then(|| node.columns.keys().map(|c| c.to_lowercase()).collect())
}

impl ProjectLineage {
    /// Analyzes `wanted` models (all models when `None`) and every model upstream of them.
    pub fn compute(
        graph: &Graph,
        adapter: &str,
        wanted: Option<&BTreeSet<String>>,
    ) -> ProjectLineage {
        let mut catalog = MapCatalog::default();
        for (id, node) in &graph.nodes {
            if let Some(rel) = &node.relation {
                let lower = |s: &str| s.to_lowercase();
                catalog.names.insert(
                    format!("{}.{}", lower(&rel.schema), lower(&rel.identifier)),
                    id.clone(),
                );
                catalog.names.insert(
                    format!(
                        "{}.{}.{}",
                        lower(&rel.database),
                        lower(&rel.schema),
                        lower(&rel.identifier)
                    ),
                    id.clone(),
                );
                if node.is_ephemeral() {
                    catalog
                        .names
                        .insert(format!("__dbt__cte__{}", lower(&node.name)), id.clone());
                }
            }
            if matches!(
                node.resource_type,
                ResourceType::Seed | ResourceType::Source | ResourceType::Model
            ) {
                if let Some(cols) = declared(node) {
                    catalog.columns.insert(id.clone(), cols);
                }
            }
        }
        let needed: BTreeSet<String> = match wanted {
            None => graph.nodes.keys().cloned().collect(),
            Some(w) => {
                let mut all = w.clone();
                for id in w {
                    all.extend(graph.walk(id, petgraph::Direction::Incoming, None));
                }
                all
            }
        };
        let mut out = ProjectLineage::default();
        for id in graph.topological_order() {
            let node = &graph.nodes[id];
            if node.resource_type != ResourceType::Model || !needed.contains(id) {
                continue;
            }
            let Some(sql) = &node.compiled_code else {
                continue;
            };
            match columns::analyze(sql, adapter, &catalog) {
                Ok(lineage) => {
                    if let Some(cols) = &lineage.columns {
                        catalog.columns.insert(
                            id.to_string(),
                            cols.iter().map(|c| c.name.clone()).collect(),
                        );
                    }
                    out.models.insert(id.to_string(), lineage);
                }
                Err(e) => {
                    out.errors.insert(id.to_string(), e);
                }
            }
        }
        out.catalog = catalog;
        out
    }

    /// Returns the columns of a node as far as they are known: read from its SQL when the
    /// select list is explicit (the SQL is the truth; YAML often documents only some columns),
    /// else declared in YAML or a seed's header.
    pub fn known_columns(&self, graph: &Graph, id: &str) -> Option<Vec<String>> {
        let computed = self
            .models
            .get(id)
            .and_then(|l| l.columns.as_ref())
            .map(|cols| cols.iter().map(|c| c.name.clone()).collect());
        computed.or_else(|| graph.nodes.get(id).and_then(declared))
    }
}
