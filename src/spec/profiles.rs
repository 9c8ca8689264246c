//! `profiles.yml` in dbt's shape (profile → target → outputs) and the active target resolved
//! from it. Compile reads only the names it needs (type, database, schema); connection settings
//! stay unrendered so that a password's `env_var()` is not needed until a connection is opened.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diag::{self, Code, Diagnostic, Span};
use crate::spec::locate::Locator;

/// One profile: the default target and its outputs.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    pub target: Option<String>,
    #[serde(default)]
    pub outputs: BTreeMap<String, serde_yaml::Mapping>,
}

/// The whole `profiles.yml`: profiles by name (dbt's top-level `config:` key is ignored).
pub type ProfilesFile = BTreeMap<String, serde_yaml::Value>;

/// The warehouse kinds ebb knows.
pub const ADAPTERS: &[&str] = &["sqlite", "postgres", "mysql"];

/// The active target: what `target` means in templates and how relations are named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub profile_name: String,
    pub name: String,
    #[serde(rename = "type")]
    pub adapter_type: String,
    pub database: String,
    pub schema: String,
    pub threads: usize,
    /// The output's settings as written, before any `env_var()` is resolved.
    #[serde(skip)]
    pub settings: serde_yaml::Mapping,
}

impl Target {
    /// Returns the target used when a project has no `profiles.yml`: a SQLite file `ebb.db` in
    /// the project directory, schema `main`.
    pub fn embedded_default(profile_name: &str) -> Self {
        let mut settings = serde_yaml::Mapping::new();
        settings.insert("type".into(), "sqlite".into());
        settings.insert("path".into(), "ebb.db".into());
        Target {
            profile_name: profile_name.to_string(),
            name: "dev".into(),
            adapter_type: "sqlite".into(),
            database: "main".into(),
            schema: "main".into(),
            threads: 4,
            settings,
        }
    }
}

/// Picks the profile and target, then renders the naming fields of the output with `render`
/// (which resolves `env_var()`); problems come back as diagnostics against `path`.
pub fn resolve(
    path: &str,
    file: &ProfilesFile,
    locator: &Locator,
    profile_name: &str,
    target_override: Option<&str>,
    render: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Target, Diagnostic> {
    let Some(raw) = file.get(profile_name) else {
        let names: Vec<&str> = file
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "config")
            .collect();
        let close = diag::closest(profile_name, names.iter().copied());
        let d = Diagnostic::new(
            Code::ProfileNotFound,
            Span::file(path),
            format!("profile `{profile_name}` is not defined in `{path}`"),
        );
        return Err(match diag::did_you_mean(&close) {
            Some(h) => d.hint(h),
            None => d.hint(format!(
                "add a `{profile_name}:` profile, or set `profile:` in the project file to one of: {}",
                names.join(", ")
            )),
        });
    };
    let profile: Profile = serde_yaml::from_value(raw.clone()).map_err(|e| {
        let pos = locator.find(profile_name);
        Diagnostic::new(
            Code::YamlInvalid,
            Span::at(path, pos.line, pos.column),
            format!("profile `{profile_name}` is malformed: {e}"),
        )
        .hint("a profile has `target:` and `outputs:` with one mapping per target")
    })?;
    let target_name = match (target_override, profile.target.as_deref()) {
        (Some(t), _) => t.to_string(),
        (None, Some(t)) => render(t).unwrap_or_else(|_| t.to_string()),
        (None, None) => "dev".to_string(),
    };
    let Some(settings) = profile.outputs.get(&target_name) else {
        let names: Vec<&str> = profile.outputs.keys().map(String::as_str).collect();
        let pos = locator.find(&format!("{profile_name}.outputs"));
        return Err(Diagnostic::new(
            Code::TargetNotFound,
            Span::at(path, pos.line, pos.column),
            format!("target `{target_name}` is not an output of profile `{profile_name}`"),
        )
        .hint(format!("use `--target` with one of: {}", names.join(", "))));
    };
    let at = |key: &str| {
        let pos = locator.find(&format!("{profile_name}.outputs.{target_name}.{key}"));
        Span::at(path, pos.line, pos.column)
    };
    let field = |key: &str| -> Result<Option<String>, Diagnostic> {
        match settings.get(key) {
            None | Some(serde_yaml::Value::Null) => Ok(None),
            Some(serde_yaml::Value::String(s)) => render(s).map(Some).map_err(|e| {
                Diagnostic::new(
                    Code::EnvVarMissing,
                    at(key),
                    format!("cannot read `{key}` of target `{target_name}`: {e}"),
                )
                .hint("set the environment variable or give `env_var()` a default")
            }),
            Some(other) => Ok(serde_yaml::to_string(other)
                .ok()
                .map(|s| s.trim().to_string())),
        }
    };
    let adapter_type = field("type")?.unwrap_or_default();
    if !ADAPTERS.contains(&adapter_type.as_str()) {
        let close = diag::closest(&adapter_type, ADAPTERS.iter().copied());
        let d = Diagnostic::new(
            Code::YamlInvalid,
            at("type"),
            format!("target `{target_name}` has unsupported type `{adapter_type}`"),
        );
        return Err(d.hint(
            diag::did_you_mean(&close)
                .unwrap_or_else(|| format!("supported types: {}", ADAPTERS.join(", "))),
        ));
    }
    let schema = field("schema")?;
    let database = match adapter_type.as_str() {
        "postgres" => field("dbname")?.or(field("database")?),
        "mysql" => None,
        _ => field("database")?,
    };
    let (database, schema) = match adapter_type.as_str() {
        "sqlite" => (
            database.unwrap_or_else(|| "main".into()),
            schema.unwrap_or_else(|| "main".into()),
        ),
        "mysql" => {
            let schema = schema.or(field("database")?).unwrap_or_default();
            (schema.clone(), schema)
        }
        _ => (
            database.unwrap_or_else(|| "postgres".into()),
            schema.unwrap_or_else(|| "public".into()),
        ),
    };
    let threads = settings
        .get("threads")
        .and_then(serde_yaml::Value::as_u64)
        .unwrap_or(4)
        .max(1);
    Ok(Target {
        profile_name: profile_name.to_string(),
        name: target_name,
        adapter_type,
        database,
        schema,
        threads: usize::try_from(threads).unwrap_or(4),
        settings: settings.clone(),
    })
}
