//! `ebb_project.yml` (or an unmodified `dbt_project.yml`): name, paths, vars and folder-level
//! configuration.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The file names a project root may hold, in the order they are looked for.
pub const PROJECT_FILES: [&str; 2] = ["ebb_project.yml", "dbt_project.yml"];

/// Keys ebb understands in `ebb_project.yml`. dbt_project.yml is read leniently: dbt has keys
/// ebb has no use for (`clean-targets`, `require-dbt-version`, ...), and they are ignored there.
pub const KNOWN_KEYS: &[&str] = &[
    "name",
    "version",
    "config-version",
    "profile",
    "model-paths",
    "source-paths",
    "data-paths",
    "macro-paths",
    "seed-paths",
    "test-paths",
    "sync-paths",
    "target-path",
    "state",
    "vars",
    "models",
    "seeds",
    "tests",
    "data_tests",
];

/// The project file as written.
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectFile {
    pub name: String,
    #[serde(default, deserialize_with = "string_or_number")]
    pub version: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(
        rename = "model-paths",
        alias = "source-paths",
        default = "default_models"
    )]
    pub model_paths: Vec<String>,
    #[serde(rename = "macro-paths", default = "default_macros")]
    pub macro_paths: Vec<String>,
    #[serde(rename = "seed-paths", alias = "data-paths", default = "default_seeds")]
    pub seed_paths: Vec<String>,
    #[serde(rename = "test-paths", default = "default_tests")]
    pub test_paths: Vec<String>,
    #[serde(rename = "sync-paths", default = "default_syncs")]
    pub sync_paths: Vec<String>,
    #[serde(rename = "target-path", default = "default_target")]
    pub target_path: String,
    #[serde(default)]
    pub vars: serde_yaml::Mapping,
    #[serde(default)]
    pub models: serde_yaml::Mapping,
    #[serde(default)]
    pub seeds: serde_yaml::Mapping,
    #[serde(default, alias = "data_tests")]
    pub tests: serde_yaml::Mapping,
    /// Where sync state lives: `state: warehouse`, or `state: {path: .ebb/state.db}`.
    #[serde(default)]
    pub state: StateConfig,
}

/// Where sync state lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum StateConfig {
    /// An embedded SQLite file, relative to the project directory.
    File { path: String },
    /// Tables in a schema of the warehouse (Postgres or MySQL); the diff runs there.
    Warehouse { schema: String },
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig::File {
            path: ".ebb/state.db".into(),
        }
    }
}

impl<'de> Deserialize<'de> for StateConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default)]
            backend: Option<String>,
            #[serde(default)]
            path: Option<String>,
            #[serde(default)]
            schema: Option<String>,
        }
        let raw = match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Raw {
                backend: Some(s),
                path: None,
                schema: None,
            },
            serde_yaml::Value::Null => return Ok(StateConfig::default()),
            other => Raw::deserialize(other).map_err(D::Error::custom)?,
        };
        match raw.backend.as_deref().unwrap_or(if raw.schema.is_some() {
            "warehouse"
        } else {
            "file"
        }) {
            "file" | "sqlite" => Ok(StateConfig::File {
                path: raw.path.unwrap_or_else(|| ".ebb/state.db".into()),
            }),
            "warehouse" => Ok(StateConfig::Warehouse {
                schema: raw.schema.unwrap_or_else(|| "ebb_state".into()),
            }),
            other => Err(D::Error::custom(format!(
                "`state` must be `file` (an embedded SQLite file) or `warehouse`, not `{other}`"
            ))),
        }
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_yaml::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_yaml::Value::String(s)) => Some(s),
        Some(serde_yaml::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn default_models() -> Vec<String> {
    vec!["models".into()]
}
fn default_macros() -> Vec<String> {
    vec!["macros".into()]
}
fn default_seeds() -> Vec<String> {
    vec!["seeds".into()]
}
fn default_tests() -> Vec<String> {
    vec!["tests".into()]
}
fn default_syncs() -> Vec<String> {
    vec!["syncs".into()]
}
fn default_target() -> String {
    "target".into()
}

/// Returns the project-level vars that apply to this project: global keys plus the keys under a
/// mapping named after the project (dbt's package-scoped vars), the latter winning.
pub fn project_vars(file: &ProjectFile) -> BTreeMap<String, serde_yaml::Value> {
    let mut vars = BTreeMap::new();
    let mut scoped = None;
    for (k, v) in &file.vars {
        let Some(k) = k.as_str() else { continue };
        if k == file.name && v.is_mapping() {
            scoped = v.as_mapping();
        } else {
            vars.insert(k.to_string(), v.clone());
        }
    }
    for (k, v) in scoped.into_iter().flatten() {
        if let Some(k) = k.as_str() {
            vars.insert(k.to_string(), v.clone());
        }
    }
    vars
}
