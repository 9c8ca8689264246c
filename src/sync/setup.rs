//! What a run resolves before a sync starts: destination settings with `env_var()` rendered
//! (a missing variable stops the sync before anything is sent), the identity of where a sync's
//! rows go, and the template environment for mappings.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::Environment;

use super::connector::Settings;
use crate::render::functions::{self, Inputs};
use crate::spec::sync::{DestinationSpec, SyncSpec};

/// The template environment mappings are evaluated in: ebb's functions and filters (`mask`,
/// `sha256`, `env_var`, ...), strict about undefined names.
pub fn templates(env: BTreeMap<String, String>) -> Environment<'static> {
    let mut e = Environment::new();
    e.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    e.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    functions::register(
        &mut e,
        Arc::new(Inputs {
            vars: BTreeMap::new(),
            env,
        }),
    );
    e
}

/// Renders every setting of `dest` (`env_var()` resolved), except `body`, which the HTTP
/// connector renders per request. Nested settings (`headers:`) are rendered value by value.
/// The error names the file, line, setting and what to do.
pub fn resolve(dest: &DestinationSpec, env: &Environment<'static>) -> Result<Settings, String> {
    let render = |key: &str, text: &str| -> Result<String, String> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        // `{{ key }}` (a per-row URL) is left for the connector to fill in per request.
        env.render_str(text, minijinja::context! { key => "{{ key }}" }).map_err(|e| {
            let detail = e.detail().map_or_else(|| e.kind().to_string(), str::to_string);
            let top = key.split('.').next().unwrap_or(key);
            let line = dest.setting_lines.get(top).copied().unwrap_or(dest.line);
            format!(
                "{}:{line}: destination `{}`: cannot read `{key}`: {detail}; set the variable where ebb runs (nothing was sent)",
                dest.path, dest.name
            )
        })
    };
    let mut out = Settings::new();
    for (key, text) in &dest.settings {
        if key == "body" {
            // Rendered per request over the rows (`rows`, `row`, `keys`, `operation`, ...).
            out.insert(key.clone(), text.clone());
            continue;
        }
        let value = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map)) if text.trim_start().starts_with('{') => {
                let mut rendered = serde_json::Map::new();
                for (k, v) in map {
                    let v = match v {
                        serde_json::Value::String(s) => {
                            serde_json::Value::String(render(&format!("{key}.{k}"), &s)?)
                        }
                        other => other,
                    };
                    rendered.insert(k, v);
                }
                serde_json::Value::Object(rendered).to_string()
            }
            _ => render(key, text)?,
        };
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// Where a sync's rows go, as one string: destination, type, object, mode and match field. When
/// it changes, nothing was delivered to the new place yet and everything is sent again.
pub fn target(spec: &SyncSpec, dest: &DestinationSpec) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        dest.name,
        dest.kind,
        spec.object,
        spec.mode.as_str(),
        spec.match_on.as_deref().unwrap_or(&spec.primary_key)
    )
}
