//! A fingerprint per node: one digest for each way the node can change ([`Change`]), computed
//! from a compilation alone, so two revisions compare without any stored manifest.
//!
//! - body: the file checksum (models, seeds, singular tests), a generic test's arguments, a
//!   source table's relation, a sync's or destination's spec without its line numbers;
//! - configs: the resolved config;
//! - macros: the text of every macro the render called (calls inside macros are recorded too);
//! - vars: the value of every var the render read (`--vars` included);
//! - schema: description, columns and the data tests attached to the node.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::compile::Compilation;
use crate::graph::state::Change;
use crate::graph::{Graph, Node, ResourceType};

/// The digests of one node, in [`Change::ALL`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint([[u8; 32]; 5]);

impl Fingerprint {
    /// Returns the ways `self` differs from `other`.
    pub fn changes(&self, other: &Fingerprint) -> BTreeSet<Change> {
        Change::ALL
            .into_iter()
            .zip(self.0.iter().zip(&other.0))
            .filter(|(_, (a, b))| a != b)
            .map(|(c, _)| c)
            .collect()
    }
}

/// What fingerprints read besides the nodes: macro texts and var values.
struct Inputs {
    macros: BTreeMap<String, [u8; 32]>,
    vars: BTreeMap<String, String>,
    /// Attached data tests by the node they test: (test id, body digest).
    tests: BTreeMap<String, Vec<(String, String)>>,
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Returns the fingerprint of every node of a compilation. `cli_vars` are the `--vars` given
/// to the command, which take precedence over the project's vars as they do when rendering.
pub fn fingerprints(
    compilation: &Compilation,
    cli_vars: &serde_yaml::Mapping,
) -> BTreeMap<String, Fingerprint> {
    use rayon::prelude::*;
    let Some(graph) = &compilation.graph else {
        return BTreeMap::new();
    };
    let inputs = inputs(compilation, graph, cli_vars);
    graph
        .nodes
        .par_iter()
        .map(|(id, node)| (id.clone(), fingerprint(node, &inputs)))
        .collect()
}

fn inputs(compilation: &Compilation, graph: &Graph, cli_vars: &serde_yaml::Mapping) -> Inputs {
    let mut vars: BTreeMap<String, serde_yaml::Value> = compilation
        .project
        .as_ref()
        .map(|p| crate::spec::project::project_vars(&p.file))
        .unwrap_or_default();
    for (k, v) in cli_vars {
        if let Some(k) = k.as_str() {
            vars.insert(k.to_string(), v.clone());
        }
    }
    let vars = vars
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_string(&v).unwrap_or_default()))
        .collect();

    // A macro's text is its own definition plus whatever its file has before the first
    // definition (file-level `{% set %}`s and imports every macro of the file sees).
    let texts: BTreeMap<&str, &str> = compilation
        .project
        .iter()
        .flat_map(|p| &p.macros)
        .map(|f| (f.path.as_str(), f.text.as_str()))
        .collect();
    let mut by_file: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
    for m in &compilation.macros {
        by_file
            .entry(m.path.as_str())
            .or_default()
            .push((m.offset, m.name.as_str()));
    }
    let mut macros = BTreeMap::new();
    for (path, mut defs) in by_file {
        defs.sort();
        // Built-in macros come with ebb and have no project text.
        let text = texts.get(path).copied().unwrap_or(path);
        let preamble = defs
            .first()
            .map_or("", |(o, _)| text.get(..*o).unwrap_or(""));
        for (i, (offset, name)) in defs.iter().enumerate() {
            let end = defs.get(i + 1).map_or(text.len(), |(o, _)| *o);
            let own = text.get(*offset..end).unwrap_or("");
            macros.insert(
                name.to_string(),
                digest(&[preamble.as_bytes(), own.as_bytes()]),
            );
        }
    }

    let mut tests: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for node in graph.nodes.values() {
        if let Some(attached) = node
            .test_metadata
            .as_ref()
            .and_then(|t| t.attached_node.as_ref())
        {
            let config = serde_json::to_string(&node.config).unwrap_or_default();
            tests.entry(attached.clone()).or_default().push((
                node.unique_id.clone(),
                format!("{}|{config}", node.checksum),
            ));
        }
    }
    Inputs {
        macros,
        vars,
        tests,
    }
}

/// Returns a sync's spec as JSON without the line and column of each mapping, which move when
/// unrelated lines are edited.
fn sync_body(node: &Node) -> String {
    let Some(spec) = &node.sync else {
        return String::new();
    };
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    if let Some(items) = value.get_mut("mapping").and_then(|m| m.as_array_mut()) {
        for item in items {
            if let Some(obj) = item.as_object_mut() {
                obj.remove("line");
                obj.remove("column");
            }
        }
    }
    value.to_string()
}

fn fingerprint(node: &Node, inputs: &Inputs) -> Fingerprint {
    let body = match node.resource_type {
        ResourceType::Sync => sync_body(node),
        ResourceType::Destination => node
            .destination
            .as_ref()
            .map(|d| serde_json::to_string(d).unwrap_or_default())
            .unwrap_or_default(),
        ResourceType::Source => format!(
            "{}|{}",
            node.relation
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            node.source_info
                .as_ref()
                .map(|s| s.identifier.as_str())
                .unwrap_or_default()
        ),
        _ => node.checksum.clone(),
    };
    let config = serde_json::to_string(&node.config).unwrap_or_default();
    let mut macros: Vec<u8> = Vec::new();
    for name in &node.depends_on_macros {
        macros.extend_from_slice(name.as_bytes());
        macros.push(b'=');
        if let Some(d) = inputs.macros.get(name) {
            macros.extend_from_slice(d);
        }
        macros.push(b'\n');
    }
    let mut vars = String::new();
    for name in &node.vars {
        vars.push_str(name);
        vars.push('=');
        // An unset var is rendered from its default, which is part of the body.
        vars.push_str(inputs.vars.get(name).map_or("<unset>", String::as_str));
        vars.push('\n');
    }
    let columns = serde_json::to_string(&node.columns).unwrap_or_default();
    let mut tests = inputs
        .tests
        .get(&node.unique_id)
        .cloned()
        .unwrap_or_default();
    tests.sort();
    let tests = serde_json::to_string(&tests).unwrap_or_default();
    Fingerprint([
        digest(&[body.as_bytes()]),
        digest(&[config.as_bytes()]),
        digest(&[&macros]),
        digest(&[vars.as_bytes()]),
        digest(&[
            node.description.as_bytes(),
            columns.as_bytes(),
            tests.as_bytes(),
        ]),
    ])
}
