//! Project macros, callable from every model like in dbt: `{{ cents_to_dollars('amount') }}`
//! with no import.
//!
//! Each macro file becomes a template in the environment, with its macros renamed so that even
//! calls between macros of the same file go through [`MacroFn`]. That wrapper evaluates the file,
//! calls the macro and implements dbt's `return()`: a macro that returns gives its value, not
//! its text. Generic test blocks (`{% test name(model, column_name) %}`) become macros named
//! `test_<name>`, as in dbt.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Object, Value};
use minijinja::{context, Environment, Error, ErrorKind, State};

use super::scope;

/// Prefix of the renamed macro definitions inside macro templates.
const LOCAL: &str = "__ebb_macro_";

/// One macro found in a macro file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroDef {
    /// The name models call it by (`test_unique` for a generic test named `unique`).
    pub name: String,
    pub path: String,
    /// 1-based line of its definition.
    pub line: usize,
    /// Byte offset of its definition.
    pub offset: usize,
}

/// A macro file as minijinja sees it, with the edits needed to map positions back.
#[derive(Debug, Clone)]
pub struct Rewritten {
    pub text: String,
    pub defs: Vec<MacroDef>,
    /// (end of an edit in `text`, total bytes added up to there), in order.
    edits: Vec<(usize, usize)>,
}

impl Rewritten {
    /// Maps a byte offset in the rewritten text back to the original file.
    pub fn original_offset(&self, offset: usize) -> usize {
        let added = self
            .edits
            .iter()
            .take_while(|(end, _)| *end <= offset)
            .last()
            .map_or(0, |(_, a)| *a);
        offset.saturating_sub(added)
    }
}

/// Rewrites the macro and test blocks of a macro file so that they can be registered as globals,
/// keeping every line where it was.
pub fn rewrite(path: &str, text: &str) -> Rewritten {
    let mut edits = Vec::new();
    let mut out = String::with_capacity(text.len() + 64);
    let mut defs = Vec::new();
    let mut rest = text;
    let mut consumed = 0;
    while let Some(open) = rest.find("{%") {
        let tag_start = open + 2;
        let after = &rest[tag_start..];
        let trimmed = after.trim_start_matches('-').trim_start_matches('+');
        let trimmed = trimmed.trim_start();
        let lead = after.len() - trimmed.len();
        let keyword_len = trimmed
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(trimmed.len());
        let keyword = &trimmed[..keyword_len];
        out.push_str(&rest[..tag_start + lead]);
        let mut cursor = tag_start + lead;
        match keyword {
            "macro" | "test" => {
                let after_kw = &trimmed[keyword_len..];
                let name_part = after_kw.trim_start();
                let ws = after_kw.len() - name_part.len();
                let name_len = name_part
                    .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .unwrap_or(name_part.len());
                let name = &name_part[..name_len];
                if !name.is_empty() && ws > 0 {
                    let public = if keyword == "test" {
                        format!("test_{name}")
                    } else {
                        name.to_string()
                    };
                    let offset = consumed + open;
                    defs.push(MacroDef {
                        line: text[..offset].matches('\n').count() + 1,
                        path: path.to_string(),
                        name: public.clone(),
                        offset,
                    });
                    out.push_str("macro ");
                    out.push_str(LOCAL);
                    out.push_str(&public);
                    cursor += keyword_len + ws + name_len;
                    let added = out.len() - (consumed + cursor);
                    edits.push((out.len(), added));
                }
            }
            "endtest" => {
                out.push_str("endmacro");
                cursor += keyword_len;
                edits.push((out.len(), out.len() - (consumed + cursor)));
            }
            _ => {}
        }
        consumed += cursor;
        rest = &rest[cursor..];
    }
    out.push_str(rest);
    Rewritten {
        text: out,
        defs,
        edits,
    }
}

/// Registers the macros of one rewritten file as global callables.
pub fn register(env: &mut Environment<'static>, template: &str, defs: &[MacroDef]) {
    for def in defs {
        env.add_global(
            def.name.clone(),
            Value::from_object(MacroFn {
                name: def.name.clone(),
                template: template.to_string(),
            }),
        );
    }
}

/// Returns the names of all macros by file, for the manifest's `macros` section.
pub fn by_name(defs: &[MacroDef]) -> BTreeMap<&str, &MacroDef> {
    defs.iter().map(|d| (d.name.as_str(), d)).collect()
}

/// A project macro as a global: evaluates its file and calls it.
#[derive(Debug)]
struct MacroFn {
    name: String,
    template: String,
}

impl Object for MacroFn {
    fn call(self: &Arc<Self>, state: &State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        scope::with(|s| s.macros.insert(self.name.clone()));
        let template = state.env().get_template(&self.template)?;
        let ctx = context! {
            this => state.lookup("this"),
            model => state.lookup("model"),
            target => state.lookup("target"),
        };
        let captured = template.render_captured(ctx)?;
        let local = format!("{LOCAL}{}", self.name);
        let Some(mac) = captured.state().lookup(&local) else {
            return Err(Error::new(
                ErrorKind::UnknownFunction,
                format!("macro `{}` is not defined", self.name),
            ));
        };
        scope::with(|s| s.returns.push(None));
        let result = mac.call(captured.state(), args);
        let returned = scope::with(|s| s.returns.pop().flatten());
        match (returned, result) {
            (Some(value), _) => Ok(value),
            (None, result) => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_macros_and_tests_keeping_lines() {
        let src = "{% macro a(x) %}{{ x }}{% endmacro %}\n{%- test positive(model, column_name) -%}\nselect 1\n{%- endtest %}";
        let rewritten = rewrite("macros/m.sql", src);
        let (out, defs) = (&rewritten.text, &rewritten.defs);
        let pos = out.find("{{ x }}").unwrap();
        assert_eq!(rewritten.original_offset(pos), src.find("{{ x }}").unwrap());
        assert_eq!(out.lines().count(), src.lines().count());
        assert!(out.contains("{% macro __ebb_macro_a(x) %}"), "{out}");
        assert!(
            out.contains("{%- macro __ebb_macro_test_positive(model, column_name) -%}"),
            "{out}"
        );
        assert!(out.contains("{%- endmacro %}"), "{out}");
        let names: Vec<_> = defs.iter().map(|d| (d.name.as_str(), d.line)).collect();
        assert_eq!(names, vec![("a", 1), ("test_positive", 2)]);
    }
}
