//! Serde types for every YAML file of a project, and the one way they are parsed: serde_yaml for
//! values, [`locate::Locator`] for positions, unknown keys reported with the closest valid key.
//!
//! Parsing never fails hard: a broken file becomes diagnostics and a `None`, so one run reports
//! every problem in the project.

pub mod locate;
pub mod profiles;
pub mod project;
pub mod schema;
pub mod sync;

use serde::de::DeserializeOwned;

use crate::diag::{self, Code, Diagnostic, Span};
use locate::Locator;

/// A parsed YAML file with the positions of its items.
#[derive(Debug)]
pub struct Parsed<T> {
    pub value: T,
    pub locator: Locator,
}

/// Parses `source` (the content of `path`) into `T`, reporting a syntax error or a type error as
/// a diagnostic at the line serde_yaml names.
pub fn parse<T: DeserializeOwned>(
    path: &str,
    source: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Parsed<T>> {
    let raw: serde_yaml::Value = match serde_yaml::from_str(source) {
        Ok(v) => v,
        Err(e) => {
            diagnostics.push(yaml_error(
                path,
                &e,
                Code::YamlSyntax,
                "check the indentation (spaces, not tabs), closing brackets and quotes around this line",
            ));
            return None;
        }
    };
    let raw = if raw.is_null() {
        serde_yaml::Value::Mapping(Default::default())
    } else {
        raw
    };
    match serde_yaml::from_value::<T>(raw) {
        Ok(value) => Some(Parsed {
            value,
            locator: Locator::new(source),
        }),
        Err(_) => {
            // from_value loses positions; parse again from text to get the line of the error.
            let err = match serde_yaml::from_str::<T>(source) {
                Err(e) => e,
                Ok(value) => {
                    return Some(Parsed {
                        value,
                        locator: Locator::new(source),
                    })
                }
            };
            diagnostics.push(yaml_error(
                path,
                &err,
                Code::YamlInvalid,
                "fix the value to the type shown in the message",
            ));
            None
        }
    }
}

fn yaml_error(path: &str, err: &serde_yaml::Error, code: Code, hint: &str) -> Diagnostic {
    let span = match err.location() {
        Some(loc) => Span::at(path, loc.line(), loc.column()),
        None => Span::file(path),
    };
    // serde_yaml appends " at line N column M" to its message; the span already says where.
    let text = err.to_string();
    let text = match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    Diagnostic::new(code, span, format!("invalid YAML in `{path}`: {text}")).hint(hint)
}

/// Reports keys of the mapping at `at` (a locator path) that are not in `known`, each with the
/// closest valid key. `what` names the item in the message ("sync", "project file").
pub fn check_keys(
    path: &str,
    mapping: &serde_yaml::Mapping,
    known: &[&str],
    at: &str,
    what: &str,
    locator: &Locator,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for key in mapping.keys() {
        let Some(key) = key.as_str() else { continue };
        if known.contains(&key) {
            continue;
        }
        let key_path = if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        };
        let pos = locator.find(&key_path);
        let close = diag::closest(key, known.iter().copied());
        let mut d = Diagnostic::new(
            Code::YamlInvalid,
            Span::at(path, pos.line, pos.column),
            format!("unknown key `{key}` in {what}"),
        )
        .label("not a valid key here");
        d = match diag::did_you_mean(&close) {
            Some(h) => d.hint(h),
            None => d.hint(format!("valid keys are: {}", known.join(", "))),
        };
        diagnostics.push(d);
    }
}
