//! Schema YAML files in dbt's format: `sources:`, `models:` and `seeds:` with descriptions,
//! columns, data tests, meta, tags and config. Keys dbt knows but ebb does not use (exposures,
//! metrics, semantic models, unit tests, ...) are accepted and ignored so dbt projects load as-is.

use serde::Deserialize;

/// One schema file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SchemaFile {
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    #[serde(default)]
    pub models: Vec<NodePatch>,
    #[serde(default)]
    pub seeds: Vec<NodePatch>,
}

/// A source: a schema of tables loaded by something other than ebb.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub meta: serde_yaml::Mapping,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub config: serde_yaml::Mapping,
    #[serde(default)]
    pub tables: Vec<SourceTable>,
}

/// One table of a source.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceTable {
    pub name: String,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,
    #[serde(default, alias = "data_tests")]
    pub tests: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub meta: serde_yaml::Mapping,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub config: serde_yaml::Mapping,
}

/// Properties of a model or seed declared in YAML ("a patch" in dbt's words).
#[derive(Debug, Clone, Deserialize)]
pub struct NodePatch {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,
    #[serde(default, alias = "data_tests")]
    pub tests: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub meta: serde_yaml::Mapping,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub config: serde_yaml::Mapping,
}

/// A column of a model, seed or source table.
#[derive(Debug, Clone, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub data_type: Option<String>,
    #[serde(default)]
    pub meta: serde_yaml::Mapping,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, alias = "data_tests")]
    pub tests: Vec<serde_yaml::Value>,
}

/// A data test as declared under `tests:`/`data_tests:`: the test's name, its arguments and its
/// config, whichever of dbt's spellings was used.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSpec {
    pub test_name: String,
    pub custom_name: Option<String>,
    pub args: serde_yaml::Mapping,
    pub config: serde_yaml::Mapping,
}

impl TestSpec {
    /// Reads one entry of a tests list: `unique`, `{accepted_values: {values: [...]}}`,
    /// `{relationships: {arguments: {...}, config: {...}}}` or `{test_name: x, name: y, ...}`.
    pub fn from_yaml(value: &serde_yaml::Value) -> Result<TestSpec, String> {
        use serde_yaml::Value;
        match value {
            Value::String(name) => Ok(TestSpec {
                test_name: name.clone(),
                custom_name: None,
                args: Default::default(),
                config: Default::default(),
            }),
            Value::Mapping(map) => {
                let (test_name, mut body) = if let Some(Value::String(t)) = map.get("test_name") {
                    (t.clone(), map.clone())
                } else if map.len() == 1 {
                    let (k, v) = map
                        .iter()
                        .next()
                        .expect("a mapping of length one has an entry");
                    let name = k
                        .as_str()
                        .ok_or("a test's name must be a string")?
                        .to_string();
                    let body = match v {
                        Value::Mapping(m) => m.clone(),
                        Value::Null => Default::default(),
                        _ => {
                            return Err(format!("the arguments of test `{name}` must be a mapping"))
                        }
                    };
                    (name, body)
                } else {
                    return Err(
                        "a test is a name or a mapping with one key, the test's name".into(),
                    );
                };
                let custom_name = body
                    .remove("name")
                    .and_then(|v| v.as_str().map(str::to_string));
                body.remove("test_name");
                body.remove("description");
                let mut config = match body.remove("config") {
                    Some(Value::Mapping(m)) => m,
                    _ => Default::default(),
                };
                for key in [
                    "severity",
                    "where",
                    "limit",
                    "warn_if",
                    "error_if",
                    "store_failures",
                    "enabled",
                    "tags",
                    "meta",
                ] {
                    if let Some(v) = body.remove(key) {
                        config.insert(key.into(), v);
                    }
                }
                if let Some(Value::Mapping(arguments)) = body.remove("arguments") {
                    body.extend(arguments);
                }
                Ok(TestSpec {
                    test_name,
                    custom_name,
                    args: body,
                    config,
                })
            }
            _ => Err("a test is a name or a mapping with one key, the test's name".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> TestSpec {
        TestSpec::from_yaml(&serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn reads_every_test_spelling() {
        assert_eq!(spec("unique").test_name, "unique");
        let t = spec("accepted_values: {values: [a, b], severity: warn}");
        assert_eq!(t.test_name, "accepted_values");
        assert!(t.args.contains_key("values"));
        assert_eq!(
            t.config.get("severity").and_then(|v| v.as_str()),
            Some("warn")
        );
        let t = spec(
            "relationships: {arguments: {to: \"ref('x')\", field: id}, config: {where: 'a > 1'}}",
        );
        assert_eq!(t.args.get("field").and_then(|v| v.as_str()), Some("id"));
        assert!(t.config.contains_key("where"));
        let t = spec("{test_name: not_null, name: my_check}");
        assert_eq!(
            (t.test_name.as_str(), t.custom_name.as_deref()),
            ("not_null", Some("my_check"))
        );
    }
}
