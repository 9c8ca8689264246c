//! Data test nodes: generic tests declared in schema YAML (`unique`, `not_null`, ..., and the
//! project's own `{% test %}` blocks) rendered through their macros, and singular tests from the
//! test paths rendered like models. Names follow dbt's scheme so manifests line up.

use std::collections::BTreeMap;

use minijinja::Value;
use rayon::prelude::*;

use super::{model_value, Built};
use crate::diag::{self, Code, Diagnostic, Span};
use crate::graph::config;
use crate::graph::node::TestMetadata;
use crate::graph::{Node, ResourceType};
use crate::project::Project;
use crate::render::{Renderer, Request};
use crate::spec::schema::TestSpec;

/// A test node and the context its template is rendered with.
type Prepared = (Node, BTreeMap<String, Value>);

/// What a generic test is attached to.
struct Attached {
    unique_id: String,
    /// Jinja that yields the relation: `ref(__ebb_ref)` or `source(__ebb_source, __ebb_table)`.
    relation_expr: &'static str,
    relation_args: BTreeMap<String, Value>,
    /// The part of the test name after the test type: the model name, or `source_table`.
    label: String,
    source: bool,
}

/// One declared generic test, before it is rendered.
struct Declared {
    file: String,
    line: usize,
    attached: usize,
    column: Option<String>,
    value: serde_yaml::Value,
}

/// Builds every test node and renders it.
pub(crate) fn build(
    project: &Project,
    renderer: &Renderer,
    built: &mut Built,
    diagnostics: &mut Vec<Diagnostic>,
    logs: &mut Vec<String>,
) {
    let name = built.project_name.clone();
    let mut attached: Vec<Attached> = Vec::new();
    let mut declared: Vec<Declared> = Vec::new();
    for (file, parsed) in &project.schema_files {
        let loc = &parsed.locator;
        let mut add = |attach: Attached,
                       base: &str,
                       tests: &[serde_yaml::Value],
                       cols: &[(String, &[serde_yaml::Value])],
                       declared: &mut Vec<Declared>| {
            let index = attached.len();
            attached.push(attach);
            let mut push = |at: String, column: Option<String>, value: &serde_yaml::Value| {
                declared.push(Declared {
                    file: file.path.clone(),
                    line: loc.find(&at).line,
                    attached: index,
                    column,
                    value: value.clone(),
                });
            };
            for (k, t) in tests.iter().enumerate() {
                push(format!("{base}.tests.{k}"), None, t);
            }
            for (c, (col, tests)) in cols.iter().enumerate() {
                for (k, t) in tests.iter().enumerate() {
                    push(
                        format!("{base}.columns.{c}.tests.{k}"),
                        Some(col.clone()),
                        t,
                    );
                }
            }
        };
        for (kind, list) in [
            ("models", &parsed.value.models),
            ("seeds", &parsed.value.seeds),
        ] {
            for (i, patch) in list.iter().enumerate() {
                let prefix = if kind == "models" { "model" } else { "seed" };
                let uid = format!("{prefix}.{name}.{}", patch.name);
                if !built.nodes.contains_key(&uid) {
                    continue;
                }
                let cols: Vec<(String, &[serde_yaml::Value])> = patch
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.tests.as_slice()))
                    .collect();
                let attach = Attached {
                    unique_id: uid,
                    relation_expr: "ref(__ebb_ref)",
                    relation_args: BTreeMap::from([(
                        "__ebb_ref".to_string(),
                        Value::from(patch.name.as_str()),
                    )]),
                    label: patch.name.clone(),
                    source: false,
                };
                add(
                    attach,
                    &format!("{kind}.{i}"),
                    &patch.tests,
                    &cols,
                    &mut declared,
                );
            }
        }
        for (i, source) in parsed.value.sources.iter().enumerate() {
            for (j, table) in source.tables.iter().enumerate() {
                let uid = format!("source.{name}.{}.{}", source.name, table.name);
                if !built.nodes.contains_key(&uid) {
                    continue;
                }
                let cols: Vec<(String, &[serde_yaml::Value])> = table
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.tests.as_slice()))
                    .collect();
                let attach = Attached {
                    unique_id: uid,
                    relation_expr: "source(__ebb_source, __ebb_table)",
                    relation_args: BTreeMap::from([
                        (
                            "__ebb_source".to_string(),
                            Value::from(source.name.as_str()),
                        ),
                        ("__ebb_table".to_string(), Value::from(table.name.as_str())),
                    ]),
                    label: format!("{}_{}", source.name, table.name),
                    source: true,
                };
                add(
                    attach,
                    &format!("sources.{i}.tables.{j}"),
                    &table.tests,
                    &cols,
                    &mut declared,
                );
            }
        }
    }

    let mut prepared = Vec::new();
    for d in &declared {
        match prepare(&name, project, renderer, &attached[d.attached], d) {
            Ok(Some(p)) => prepared.push(p),
            Ok(None) => {}
            Err(diagnostic) => diagnostics.push(diagnostic),
        }
    }
    for file in &project.singular_tests {
        let stem = file
            .path
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".sql")
            .to_string();
        let mut node = Node::new(
            ResourceType::Test,
            &name,
            &stem,
            format!("test.{name}.{stem}"),
        );
        node.original_file_path = file.path.clone();
        node.path = file
            .path
            .split_once('/')
            .map_or(file.path.clone(), |(_, r)| r.to_string());
        node.fqn = vec![name.clone(), stem.clone()];
        node.config = test_config(project, &node.fqn, &serde_yaml::Mapping::new());
        node.raw_code = file.text.clone();
        node.checksum = crate::artifacts::checksum(file.text.as_bytes());
        prepared.push((node, BTreeMap::new()));
    }

    let rendered: Vec<_> = prepared
        .into_par_iter()
        .map(|(node, extra)| {
            let out = renderer.render(Request {
                path: &node.original_file_path,
                text: &node.raw_code,
                model: model_value(&node),
                base_config: node.config.0.clone(),
                resolved: None,
                extra,
            });
            (node, out)
        })
        .collect();
    for (mut node, out) in rendered {
        node.config.merge(&out.config);
        if let Some(s) = node.config.str("severity").map(str::to_uppercase) {
            node.config.0.insert("severity".into(), s.into());
        }
        if !node.config.enabled() {
            continue;
        }
        logs.extend(out.logs.iter().map(|l| format!("{}: {l}", node.name)));
        if let Some(mut d) = out.error {
            if node.test_metadata.is_some() {
                // The generated template is not the user's text: point at the YAML entry.
                d.span = Span::at(&node.original_file_path, node.line, 1);
            }
            diagnostics.push(d);
        }
        node.rendered = out.sql;
        node.refs = out.refs;
        node.sources = out.sources;
        node.vars = out.vars;
        node.env_vars = out.env_vars;
        node.depends_on_macros = out.macros;
        node.needs_resolve = out.needs_resolve;
        if let Some(existing) = built.nodes.get(&node.unique_id) {
            diagnostics.push(
                Diagnostic::new(
                    Code::DuplicateName,
                    Span::at(&node.original_file_path, node.line, 1),
                    format!(
                        "two tests are named `{}`: in `{}` and `{}`",
                        node.name, existing.original_file_path, node.original_file_path
                    ),
                )
                .hint("give one of them a `name:`, or remove the duplicate"),
            );
            continue;
        }
        built.nodes.insert(node.unique_id.clone(), node);
    }
}

fn test_config(project: &Project, fqn: &[String], own: &serde_yaml::Mapping) -> config::NodeConfig {
    let mut c = config::NodeConfig::default();
    c.0.insert("materialized".into(), "test".into());
    c.0.insert("severity".into(), "ERROR".into());
    for layer in config::folder_layers(&project.file.tests, fqn) {
        c.merge(&layer);
    }
    c.merge(&config::from_yaml(own));
    if let Some(s) = c.str("severity").map(str::to_uppercase) {
        c.0.insert("severity".into(), s.into());
    }
    c
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Makes the node and template context for one declared generic test; `Err` for a test that
/// cannot be understood.
fn prepare(
    project_name: &str,
    project: &Project,
    renderer: &Renderer,
    attached: &Attached,
    d: &Declared,
) -> Result<Option<Prepared>, Diagnostic> {
    let span = Span::at(&d.file, d.line, 1);
    let spec = TestSpec::from_yaml(&d.value).map_err(|e| {
        Diagnostic::new(
            Code::TestInvalid,
            span.clone(),
            format!("cannot read this test: {e}"),
        )
        .hint("write a test as `- unique` or `- accepted_values: {values: [a, b]}`")
    })?;
    let macro_name = format!("test_{}", spec.test_name);
    if !renderer.has_macro(&macro_name) {
        let known: Vec<&str> = renderer
            .macros
            .iter()
            .filter_map(|m| m.name.strip_prefix("test_"))
            .collect();
        let hint = diag::did_you_mean(&diag::closest(&spec.test_name, known.iter().copied())).unwrap_or_else(|| {
            format!("define it with `{{% test {}(model, column_name) %}}` in the macro paths or tests/generic/", spec.test_name)
        });
        return Err(Diagnostic::new(
            Code::TestInvalid,
            span,
            format!("unknown generic test `{}`", spec.test_name),
        )
        .label("no test macro with this name")
        .hint(hint));
    }
    let mut args: BTreeMap<String, serde_yaml::Value> = BTreeMap::new();
    for (k, v) in &spec.args {
        let Some(k) = k.as_str() else { continue };
        if !is_identifier(k) {
            return Err(Diagnostic::new(
                Code::TestInvalid,
                span,
                format!("test argument `{k}` is not a valid name"),
            )
            .hint("argument names are letters, digits and underscores"));
        }
        args.insert(k.to_string(), v.clone());
    }
    if let Some(col) = &d.column {
        args.insert("column_name".into(), serde_yaml::Value::from(col.as_str()));
    }

    let name = spec
        .custom_name
        .clone()
        .unwrap_or_else(|| test_name(&spec.test_name, attached, &args));
    let digest =
        crate::artifacts::checksum(format!("{name}|{}|{:?}", attached.unique_id, args).as_bytes());
    let mut node = Node::new(
        ResourceType::Test,
        project_name,
        &name,
        format!("test.{project_name}.{name}.{}", &digest[..10]),
    );
    node.original_file_path = d.file.clone();
    node.path = d
        .file
        .split_once('/')
        .map_or(d.file.clone(), |(_, r)| r.to_string());
    node.line = d.line;
    let dirs: Vec<String> = node
        .path
        .split('/')
        .rev()
        .skip(1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(str::to_string)
        .collect();
    node.fqn = std::iter::once(project_name.to_string())
        .chain(dirs)
        .chain([name.clone()])
        .collect();
    node.config = test_config(project, &node.fqn, &spec.config);
    node.checksum = digest;

    let mut extra = attached.relation_args.clone();
    let mut template = format!("{{% set __ebb_model = {} %}}", attached.relation_expr);
    if let Some(w) = node.config.str("where") {
        extra.insert("__ebb_where".into(), Value::from(w));
        template.push_str("{% set __ebb_model = \"(select * from \" ~ __ebb_model ~ \" where \" ~ __ebb_where ~ \") dbt_subquery\" %}");
    }
    let mut call = format!("{{{{ {macro_name}(model=__ebb_model");
    for (k, v) in &args {
        let var = format!("__ebb_arg_{k}");
        match v.as_str().map(str::trim) {
            Some(expr)
                if k != "column_name"
                    && (expr.starts_with("ref(") || expr.starts_with("source(")) =>
            {
                template.push_str(&format!("{{% set {var} = {expr} %}}"));
            }
            _ => {
                extra.insert(var.clone(), Value::from_serialize(v));
            }
        }
        call.push_str(&format!(", {k}={var}"));
    }
    call.push_str(") }}");
    template.push_str(&call);
    node.raw_code = template;
    node.test_metadata = Some(TestMetadata {
        name: spec.test_name.clone(),
        kwargs: args
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), serde_json::to_value(v).ok()?)))
            .collect(),
        column_name: d.column.clone(),
        attached_node: Some(attached.unique_id.clone()),
    });
    Ok(Some((node, extra)))
}

/// dbt's generic test name: `<test>_<model>_<args flattened>`, shortened with a hash past 63.
fn test_name(
    test: &str,
    attached: &Attached,
    args: &BTreeMap<String, serde_yaml::Value>,
) -> String {
    let mut flat: Vec<String> = Vec::new();
    for v in args.values() {
        match v {
            serde_yaml::Value::Sequence(items) => flat.extend(items.iter().map(scalar)),
            serde_yaml::Value::Mapping(m) => flat.extend(m.values().map(scalar)),
            other => flat.push(scalar(other)),
        }
    }
    let clean: Vec<String> = flat.iter().map(|s| clean(s)).collect();
    let prefix = if attached.source {
        format!("source_{test}_{}", attached.label)
    } else {
        format!("{test}_{}", attached.label)
    };
    let full = format!("{prefix}_{}", clean.join("__"));
    if full.len() < 64 {
        return full;
    }
    let short: String = prefix.chars().take(30).collect();
    format!(
        "{short}_{}",
        &crate::artifacts::checksum(full.as_bytes())[..32]
    )
}

fn scalar(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Null => "None".into(),
        serde_yaml::Value::Bool(b) => {
            if *b {
                "True".into()
            } else {
                "False".into()
            }
        }
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_sub = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            last_sub = false;
        } else if !last_sub {
            out.push('_');
            last_sub = true;
        }
    }
    out
}
