//! Renders Jinja SQL with minijinja the way dbt does: project macros as globals, `ref`,
//! `source`, `var`, `env_var`, `config`, `this`, `target`, `log`, `exceptions`, `return`.
//!
//! Rendering is pure: inputs (vars, environment, target) are passed in, and what a template
//! called is recorded in a [`scope::Scope`] and returned with the text. Relations print as
//! placeholders in the first pass (see [`relation`]); the graph names them afterwards.

pub mod functions;
pub mod macros;
pub mod relation;
pub mod scope;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

use crate::diag::{Code, Diagnostic, Span};
use crate::project::SourceFile;
use crate::spec::profiles::Target;
pub use functions::Inputs;
use macros::MacroDef;
use relation::{RelationKey, RelationValue, Resolver};
use scope::{RefCall, Scope};

/// The rendering environment of one project: macros registered, functions installed.
pub struct Renderer {
    env: Environment<'static>,
    pub macros: Vec<MacroDef>,
    /// Macro files (original text and rewrite), by path, to map error positions back.
    macro_texts: BTreeMap<String, (String, macros::Rewritten)>,
}

/// What to render and what the template may know about the node.
pub struct Request<'a> {
    pub path: &'a str,
    pub text: &'a str,
    /// `model` in the template: name, unique_id, resource_type and path.
    pub model: Value,
    pub base_config: BTreeMap<String, serde_json::Value>,
    /// Real relation names, from a previous pass; `None` for the first pass.
    pub resolved: Option<Resolver>,
    /// More variables for the template (a generic test's arguments).
    pub extra: BTreeMap<String, Value>,
}

/// The outcome of rendering one template.
#[derive(Debug, Default)]
pub struct Rendered {
    pub sql: String,
    pub refs: Vec<RefCall>,
    pub sources: Vec<(String, String)>,
    pub config: BTreeMap<String, serde_json::Value>,
    pub vars: BTreeSet<String>,
    pub env_vars: BTreeSet<String>,
    pub macros: BTreeSet<String>,
    pub logs: Vec<String>,
    pub warnings: Vec<String>,
    /// The template read parts of a relation and must be rendered again once names are known.
    pub needs_resolve: bool,
    pub error: Option<Diagnostic>,
}

impl Renderer {
    /// Builds the environment: functions, `target`, and every macro of `macro_files`. Problems in
    /// macro files (syntax errors, a macro defined twice) are added to `diagnostics`.
    pub fn new(
        macro_files: &[SourceFile],
        inputs: Inputs,
        target: &Target,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Renderer {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        // SQL is never escaped, whatever the file name (minijinja escapes `.yml` names as JSON).
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_recursion_limit(200);
        functions::register(&mut env, Arc::new(inputs));
        env.add_global(
            "target",
            Value::from_serialize(serde_json::json!({
                "name": target.name,
                "profile_name": target.profile_name,
                "type": target.adapter_type,
                "database": target.database,
                "schema": target.schema,
                "threads": target.threads,
            })),
        );
        let mut all: Vec<MacroDef> = Vec::new();
        let mut macro_texts = BTreeMap::new();
        for file in macro_files {
            let rewritten = macros::rewrite(&file.path, &file.text);
            if let Err(err) = env.add_template_owned(file.path.clone(), rewritten.text.clone()) {
                diagnostics.push(jinja_diagnostic(
                    &err,
                    None,
                    &file.path,
                    &file.text,
                    Some(&rewritten),
                ));
                continue;
            }
            let defs = rewritten.defs.clone();
            for def in &defs {
                // A project macro replaces a built-in one of the same name (as in dbt).
                all.retain(|d| !(d.name == def.name && d.path.starts_with('<')));
                if let Some(first) = all.iter().find(|d| d.name == def.name) {
                    diagnostics.push(
                        Diagnostic::new(
                            Code::DuplicateMacro,
                            Span::at(&def.path, def.line, 1),
                            format!(
                                "macro `{}` is defined twice: in `{}` and `{}`",
                                def.name, first.path, def.path
                            ),
                        )
                        .label("second definition")
                        .hint("rename or remove one of them"),
                    );
                }
            }
            macros::register(&mut env, &file.path, &defs);
            macro_texts.insert(file.path.clone(), (file.text.clone(), rewritten));
            all.extend(defs);
        }
        Renderer {
            env,
            macros: all,
            macro_texts,
        }
    }

    /// Tells whether a macro with this name exists (generic tests are `test_<name>`).
    pub fn has_macro(&self, name: &str) -> bool {
        self.macros.iter().any(|m| m.name == name)
    }

    /// Renders one template, recording what it called.
    pub fn render(&self, request: Request<'_>) -> Rendered {
        let this = match &request.resolved {
            Some(f) => RelationValue::value(RelationKey::This, f(&RelationKey::This)),
            None => RelationValue::value(RelationKey::This, None),
        };
        let scope = Scope {
            base_config: request.base_config,
            resolved: request.resolved,
            ..Scope::default()
        };
        let (result, scope) = scope::run(scope, || {
            let template = self
                .env
                .template_from_named_str(request.path, request.text)?;
            let extra = Value::from(request.extra);
            template.render(minijinja::context! { this => this, model => request.model, ..extra })
        });
        let mut rendered = Rendered {
            sql: String::new(),
            refs: scope.refs,
            sources: scope.sources,
            config: scope.config,
            vars: scope.vars,
            env_vars: scope.env_vars,
            macros: scope.macros,
            logs: scope.logs,
            warnings: scope.warnings,
            needs_resolve: scope.needs_resolve,
            error: None,
        };
        match result {
            Ok(sql) => rendered.sql = sql,
            Err(err) => {
                let (path, original, rewritten) = match err
                    .name()
                    .and_then(|n| self.macro_texts.get(n).map(|t| (n, t)))
                {
                    Some((name, (original, rewritten))) => {
                        (name, original.as_str(), Some(rewritten))
                    }
                    None => (request.path, request.text, None),
                };
                let mut d = jinja_diagnostic(&err, scope.pending, path, original, rewritten);
                if path != request.path {
                    d = d.hint(format!(
                        "the macro was called while rendering `{}`",
                        request.path
                    ));
                }
                rendered.error = Some(d);
            }
        }
        rendered
    }

    /// Checks that a template parses, without rendering it.
    pub fn check_template(&self, text: &str) -> Result<(), String> {
        self.env.template_from_str(text).map(|_| ()).map_err(|e| {
            e.detail()
                .map_or_else(|| e.kind().to_string(), str::to_string)
        })
    }

    /// Tells whether a filter of this name exists.
    pub fn has_filter(&self, name: &str) -> bool {
        self.env
            .render_str(&format!("{{{{ 1 | {name} }}}}"), ())
            .map_or_else(|e| e.kind() != ErrorKind::UnknownFilter, |_| true)
    }

    /// Renders a short template string (a value from a YAML file) with the same functions,
    /// returning the text or the error message.
    pub fn render_str(&self, text: &str) -> Result<String, String> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        let (result, scope) = scope::run(Scope::default(), || self.env.render_str(text, ()));
        result.map_err(|e| match scope.pending {
            Some(p) => p.message,
            None => e
                .detail()
                .map_or_else(|| e.kind().to_string(), str::to_string),
        })
    }
}

/// Turns a minijinja error into a diagnostic at the line and range it names. `rewritten` is what
/// minijinja saw when it differs from the file (macro files), to map positions back.
fn jinja_diagnostic(
    err: &minijinja::Error,
    pending: Option<scope::Pending>,
    path: &str,
    original: &str,
    rewritten: Option<&macros::Rewritten>,
) -> Diagnostic {
    let span = match (err.line(), err.range()) {
        (Some(_), Some(range)) => {
            let map = |p: usize| {
                rewritten
                    .map_or(p, |r| r.original_offset(p))
                    .min(original.len())
            };
            let start = map(range.start);
            let end = map(range.end).max(start);
            Span::from_range(path, original, (start, end))
        }
        (Some(line), None) => Span::at(path, line, 1),
        _ => Span::file(path),
    };
    if let Some(p) = pending {
        let mut d = Diagnostic::new(p.code, span, p.message);
        if let Some(h) = p.hint {
            d = d.hint(h);
        }
        return d;
    }
    let detail = err
        .detail()
        .map_or_else(|| err.kind().to_string(), str::to_string);
    let (code, label, hint) = match err.kind() {
        ErrorKind::SyntaxError => (
            Code::JinjaSyntax,
            "syntax error",
            "check that every `{{`, `{%` and block tag is closed and spelled right",
        ),
        ErrorKind::UndefinedError => (
            Code::JinjaRender,
            "undefined value",
            "check the spelling; variables come from var(), macros from the macro paths",
        ),
        ErrorKind::UnknownFunction => (
            Code::JinjaRender,
            "unknown function",
            "define it as a macro in the macro paths, or check the spelling",
        ),
        ErrorKind::UnknownTest | ErrorKind::UnknownFilter => (
            Code::JinjaRender,
            "unknown filter or test",
            "see the filters ebb provides in docs/project.md#templating",
        ),
        _ => (
            Code::JinjaRender,
            "while rendering",
            "fix the template expression at this line",
        ),
    };
    let what = if code == Code::JinjaSyntax {
        "template syntax error"
    } else {
        "template error"
    };
    Diagnostic::new(code, span, format!("{what} in `{path}`: {detail}"))
        .label(label)
        .hint(hint)
}
