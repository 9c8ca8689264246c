//! Node configuration and how its layers merge, as in dbt: the project file's folder-level
//! `models:`/`seeds:` tree, then `config:` in schema YAML, then `config()` in the file itself.
//! Later layers win, except `tags` (added together) and `meta` (merged key by key).

use std::collections::BTreeMap;

use serde_json::Value;

/// A node's configuration: every key as written, with typed accessors for the ones ebb uses.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct NodeConfig(pub BTreeMap<String, Value>);

/// Config keys dbt accepts without a `+` prefix in the project file's folder tree; any other
/// key without `+` names a sub-folder.
const PLAIN_KEYS: &[&str] = &[
    "materialized",
    "tags",
    "schema",
    "alias",
    "enabled",
    "meta",
    "database",
    "docs",
    "persist_docs",
    "pre-hook",
    "post-hook",
    "full_refresh",
    "on_schema_change",
    "unique_key",
    "incremental_strategy",
    "grants",
    "contract",
    "column_types",
    "quote_columns",
    "delimiter",
    "severity",
    "where",
    "store_failures",
    "group",
    "access",
];

/// The materializations a model may have.
pub const MATERIALIZATIONS: &[&str] = &["view", "table", "ephemeral", "incremental"];

impl NodeConfig {
    /// Merges `layer` over this configuration.
    pub fn merge(&mut self, layer: &BTreeMap<String, Value>) {
        for (key, value) in layer {
            let key = normalize(key);
            match key.as_str() {
                "tags" => {
                    let mut tags = self.tags();
                    for t in as_strings(value) {
                        if !tags.contains(&t) {
                            tags.push(t);
                        }
                    }
                    self.0.insert(key, Value::from(tags));
                }
                "meta" => {
                    let mut meta = match self.0.remove("meta") {
                        Some(Value::Object(m)) => m,
                        _ => Default::default(),
                    };
                    if let Value::Object(new) = value {
                        meta.extend(new.clone());
                    }
                    self.0.insert(key, Value::Object(meta));
                }
                _ => {
                    self.0.insert(key, value.clone());
                }
            }
        }
    }

    /// Returns the string value of `key`, if it is set to a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// Returns the node's tags, in the order they were added.
    pub fn tags(&self) -> Vec<String> {
        self.0.get("tags").map(as_strings).unwrap_or_default()
    }

    /// Tells whether the node is enabled (the default).
    pub fn enabled(&self) -> bool {
        match self.0.get("enabled") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => !s.eq_ignore_ascii_case("false"),
            _ => true,
        }
    }

    /// Returns the materialization, `view` when unset.
    pub fn materialized(&self) -> &str {
        self.str("materialized").unwrap_or("view")
    }
}

fn normalize(key: &str) -> String {
    key.trim_start_matches('+').to_string()
}

fn as_strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Converts a YAML mapping of config keys to JSON values.
pub fn from_yaml(mapping: &serde_yaml::Mapping) -> BTreeMap<String, Value> {
    mapping
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), serde_json::to_value(v).ok()?)))
        .collect()
}

/// Collects the folder-level config that applies to a node with this fqn (`[project, dir...,
/// name]`) from the project file's `models:` or `seeds:` tree, outermost first.
pub fn folder_layers(tree: &serde_yaml::Mapping, fqn: &[String]) -> Vec<BTreeMap<String, Value>> {
    let mut layers = Vec::new();
    let mut level = Some(tree);
    let mut depth = 0;
    while let Some(map) = level {
        let mut layer = BTreeMap::new();
        for (k, v) in map {
            let Some(k) = k.as_str() else { continue };
            let is_config = k.starts_with('+')
                || (PLAIN_KEYS.contains(&k) && !fqn[depth.min(fqn.len())..].iter().any(|p| p == k));
            if is_config {
                if let Ok(v) = serde_json::to_value(v) {
                    layer.insert(k.trim_start_matches('+').to_string(), v);
                }
            }
        }
        layers.push(layer);
        level = fqn
            .get(depth)
            .and_then(|part| map.get(part.as_str()))
            .and_then(serde_yaml::Value::as_mapping);
        depth += 1;
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_config_is_most_specific_last_and_tags_add_up() {
        let tree: serde_yaml::Mapping = serde_yaml::from_str(
            "+tags: [all]\nretail:\n  +materialized: view\n  marts:\n    +materialized: table\n    +tags: marts\n    schema: marts\n",
        )
        .unwrap();
        let fqn: Vec<String> = ["retail", "marts", "scores"].map(String::from).to_vec();
        let mut config = NodeConfig::default();
        for layer in folder_layers(&tree, &fqn) {
            config.merge(&layer);
        }
        assert_eq!(config.materialized(), "table");
        assert_eq!(config.str("schema"), Some("marts"));
        assert_eq!(config.tags(), vec!["all".to_string(), "marts".to_string()]);
    }

    #[test]
    fn meta_merges_key_by_key() {
        let mut c = NodeConfig::default();
        c.merge(&BTreeMap::from([(
            "meta".into(),
            serde_json::json!({"a": 1, "b": 1}),
        )]));
        c.merge(&BTreeMap::from([(
            "+meta".into(),
            serde_json::json!({"b": 2}),
        )]));
        assert_eq!(c.0["meta"], serde_json::json!({"a": 1, "b": 2}));
        assert!(c.enabled());
    }
}
