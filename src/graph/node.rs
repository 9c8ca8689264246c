//! The nodes of a project: models, seeds, sources and data tests, with everything the manifest
//! and later stages need to know about each.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::config::NodeConfig;
use crate::render::relation::Relation;
use crate::render::scope::RefCall;

/// What kind of node this is; the first part of its unique id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    Model,
    Seed,
    Source,
    Test,
    Sync,
    Destination,
}

impl ResourceType {
    /// Returns the name used in unique ids and `resource_type:` selectors.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Model => "model",
            ResourceType::Seed => "seed",
            ResourceType::Source => "source",
            ResourceType::Test => "test",
            ResourceType::Sync => "sync",
            ResourceType::Destination => "destination",
        }
    }

    /// Parses a `resource_type:` selector value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "model" => ResourceType::Model,
            "seed" => ResourceType::Seed,
            "source" => ResourceType::Source,
            "test" | "data_test" => ResourceType::Test,
            "sync" => ResourceType::Sync,
            "destination" => ResourceType::Destination,
            _ => return None,
        })
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A column as documented in schema YAML (or read from a seed's header).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    pub description: String,
    pub data_type: Option<String>,
    pub meta: BTreeMap<String, serde_json::Value>,
    pub tags: Vec<String>,
}

/// What a generic data test checks, for tests generated from schema YAML.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestMetadata {
    pub name: String,
    pub kwargs: BTreeMap<String, serde_json::Value>,
    pub column_name: Option<String>,
    /// The unique id of the model, seed or source the test is attached to.
    pub attached_node: Option<String>,
}

/// A source's own fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceInfo {
    pub source_name: String,
    pub source_description: String,
    pub identifier: String,
}

/// One node of the project graph.
#[derive(Debug, Clone)]
pub struct Node {
    pub unique_id: String,
    pub resource_type: ResourceType,
    pub name: String,
    pub package_name: String,
    /// Path of the defining file relative to its resource directory (dbt's `path`).
    pub path: String,
    /// Path of the defining file relative to the project root.
    pub original_file_path: String,
    /// 1-based line of the definition in its file (YAML-defined nodes); 1 for SQL files.
    pub line: usize,
    pub fqn: Vec<String>,
    pub config: NodeConfig,
    pub description: String,
    pub columns: BTreeMap<String, Column>,
    /// Schema YAML file that documented this node, if any.
    pub patch_path: Option<String>,
    pub raw_code: String,
    /// First-pass render, relations still as placeholders.
    pub rendered: String,
    pub compiled_code: Option<String>,
    pub refs: Vec<RefCall>,
    pub sources: Vec<(String, String)>,
    pub depends_on_nodes: BTreeSet<String>,
    pub depends_on_macros: BTreeSet<String>,
    pub vars: BTreeSet<String>,
    pub env_vars: BTreeSet<String>,
    pub relation: Option<Relation>,
    pub checksum: String,
    pub source_info: Option<SourceInfo>,
    pub test_metadata: Option<TestMetadata>,
    /// The template reads parts of a relation and needs a second render with real names.
    pub needs_resolve: bool,
    /// For a sync node: its spec.
    pub sync: Option<crate::spec::sync::SyncSpec>,
    /// For a destination node: its spec (settings unrendered).
    pub destination: Option<crate::spec::sync::DestinationSpec>,
}

impl Node {
    /// Returns a node with the identity fields set and everything else empty.
    pub fn new(resource_type: ResourceType, package: &str, name: &str, unique_id: String) -> Node {
        Node {
            unique_id,
            resource_type,
            name: name.to_string(),
            package_name: package.to_string(),
            path: String::new(),
            original_file_path: String::new(),
            line: 1,
            fqn: Vec::new(),
            config: NodeConfig::default(),
            description: String::new(),
            columns: BTreeMap::new(),
            patch_path: None,
            raw_code: String::new(),
            rendered: String::new(),
            compiled_code: None,
            refs: Vec::new(),
            sources: Vec::new(),
            depends_on_nodes: BTreeSet::new(),
            depends_on_macros: BTreeSet::new(),
            vars: BTreeSet::new(),
            env_vars: BTreeSet::new(),
            relation: None,
            checksum: String::new(),
            source_info: None,
            test_metadata: None,
            needs_resolve: false,
            sync: None,
            destination: None,
        }
    }

    /// Tells whether the node is an ephemeral model, inlined as a CTE where it is used.
    pub fn is_ephemeral(&self) -> bool {
        self.resource_type == ResourceType::Model && self.config.materialized() == "ephemeral"
    }

    /// Returns the name selection and `ls` use: `source_name.table` for sources.
    pub fn display_name(&self) -> String {
        match &self.source_info {
            Some(s) => format!("{}.{}", s.source_name, self.name),
            None => self.name.clone(),
        }
    }
}
