//! Turns what templates called into graph edges and names: `ref`/`source` calls become
//! `depends_on`, each model and seed gets its relation (dbt's custom schema rule, aliases, or the
//! project's own `generate_*_name` macros), and templates that read relation parts are
//! rendered again with the real names.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use minijinja::Value;
use rayon::prelude::*;

use super::{model_value, Built};
use crate::diag::{self, Code, Diagnostic, Span};
use crate::graph::{Graph, Node, ResourceType};
use crate::render::relation::{Relation, RelationKey, Resolver};
use crate::render::{Renderer, Request};
use crate::spec::profiles::Target;

/// Finds where a call like `ref('name')` is written in a node's text, for pointing at it.
fn call_site(node: &Node, function: &str, args: &[&str]) -> Span {
    if node.test_metadata.is_none() {
        let text = &node.raw_code;
        let open = format!("{function}(");
        let mut from = 0;
        while let Some(i) = text[from..].find(&open) {
            let start = from + i;
            let end = text[start..]
                .find(')')
                .map_or(text.len(), |e| start + e + 1);
            let inner = &text[start..end];
            let quoted =
                |a: &str| inner.contains(&format!("'{a}'")) || inner.contains(&format!("\"{a}\""));
            let preceded_by_word = text[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
            if !preceded_by_word && args.iter().all(|a| quoted(a)) {
                return Span::from_range(&node.original_file_path, text, (start, end));
            }
            from = start + open.len();
        }
    }
    Span::at(&node.original_file_path, node.line, 1)
}

fn what(node: &Node) -> String {
    format!("{} `{}`", node.resource_type, node.name)
}

/// Resolves every node's `ref` and `source` calls to unique ids, reporting the ones that name
/// nothing (with the closest names), a disabled node, or another package.
pub(crate) fn dependencies(built: &mut Built, diagnostics: &mut Vec<Diagnostic>) {
    let mut by_name: HashMap<String, String> = HashMap::new();
    let mut sources: HashMap<(String, String), String> = HashMap::new();
    for node in built.nodes.values() {
        match node.resource_type {
            ResourceType::Model | ResourceType::Seed => {
                by_name.insert(node.name.clone(), node.unique_id.clone());
            }
            ResourceType::Source => {
                if let Some(s) = &node.source_info {
                    sources.insert(
                        (s.source_name.clone(), node.name.clone()),
                        node.unique_id.clone(),
                    );
                }
            }
            ResourceType::Test | ResourceType::Sync | ResourceType::Destination => {}
        }
    }
    let names: Vec<String> = by_name.keys().cloned().collect();
    let source_names: Vec<String> = sources.keys().map(|(s, t)| format!("{s}.{t}")).collect();
    let project = built.project_name.clone();
    for node in built.nodes.values_mut() {
        for call in node.refs.clone() {
            if let Some(package) = &call.package {
                if *package != project {
                    diagnostics.push(
                        Diagnostic::new(
                            Code::RefNotFound,
                            call_site(node, "ref", &[package, &call.name]),
                            format!(
                                "{} refers to `{}` in package `{package}`, which is not installed",
                                what(node),
                                call.name
                            ),
                        )
                        .label(format!("no package named `{package}`"))
                        .hint(format!(
                            "ebb compiles one project; use ref('{}') for a node of this project",
                            call.name
                        )),
                    );
                    continue;
                }
            }
            match by_name.get(&call.name) {
                Some(id) => {
                    node.depends_on_nodes.insert(id.clone());
                }
                None if built.disabled.contains_key(&call.name) => diagnostics.push(
                    Diagnostic::new(
                        Code::RefDisabled,
                        call_site(node, "ref", &[&call.name]),
                        format!(
                            "{} refers to `{}`, which is disabled",
                            what(node),
                            call.name
                        ),
                    )
                    .label("disabled in its config")
                    .hint(format!(
                        "enable `{}` (in `{}`) or disable this node too",
                        call.name, built.disabled[&call.name]
                    )),
                ),
                None => {
                    // Never suggest the node to itself.
                    let close = diag::closest(
                        &call.name,
                        names.iter().map(String::as_str).filter(|n| *n != node.name),
                    );
                    let d = Diagnostic::new(
                        Code::RefNotFound,
                        call_site(node, "ref", &[&call.name]),
                        format!(
                            "{} refers to `{}`, which does not exist",
                            what(node),
                            call.name
                        ),
                    )
                    .label(format!("no model or seed named `{}`", call.name));
                    diagnostics.push(match diag::did_you_mean(&close) {
                        Some(h) => d.hint(h),
                        None => d.hint(format!(
                            "create `models/{}.sql`, or fix the name",
                            call.name
                        )),
                    });
                }
            }
        }
        for (s, t) in node.sources.clone() {
            match sources.get(&(s.clone(), t.clone())) {
                Some(id) => {
                    node.depends_on_nodes.insert(id.clone());
                }
                None => {
                    let full = format!("{s}.{t}");
                    let close = diag::closest(&full, source_names.iter().map(String::as_str));
                    let d = Diagnostic::new(
                        Code::SourceNotFound,
                        call_site(node, "source", &[&s, &t]),
                        format!("{} uses source `{full}`, which is not declared", what(node)),
                    )
                    .label(format!("no source table `{full}`"));
                    diagnostics.push(match diag::did_you_mean(&close) {
                        Some(h) => d.hint(h),
                        None => d.hint(format!("declare it under `sources:` in a schema YAML file: name `{s}`, table `{t}`")),
                    });
                }
            }
        }
    }
}

/// Names the relation of every model and seed.
pub(crate) fn relations(
    graph: &mut Graph,
    renderer: &Renderer,
    target: &Target,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let custom = [
        "generate_schema_name",
        "generate_alias_name",
        "generate_database_name",
    ]
    .map(|m| renderer.has_macro(m));
    let named: Vec<(String, Relation, Vec<Diagnostic>)> = graph
        .nodes
        .par_iter()
        .filter(|(_, n)| matches!(n.resource_type, ResourceType::Model | ResourceType::Seed))
        .map(|(id, n)| {
            let (rel, errors) = name_relation(n, renderer, target, custom);
            (id.clone(), rel, errors)
        })
        .collect();
    for (id, rel, errors) in named {
        diagnostics.extend(errors);
        if let Some(n) = graph.nodes.get_mut(&id) {
            n.relation = Some(rel);
        }
    }
}

/// Names one node's relation: dbt's default rule (`<target schema>_<custom schema>`, alias or
/// name), or the project's `generate_schema_name`/`generate_alias_name`/`generate_database_name`
/// macros when it defines them (`custom` says which).
fn name_relation(
    n: &Node,
    renderer: &Renderer,
    target: &Target,
    custom: [bool; 3],
) -> (Relation, Vec<Diagnostic>) {
    let custom_schema = n.config.str("schema");
    let mut schema = match custom_schema {
        Some(c) => format!("{}_{}", target.schema, c.trim()),
        None => target.schema.clone(),
    };
    let mut identifier = n.config.str("alias").unwrap_or(&n.name).to_string();
    let mut database = n
        .config
        .str("database")
        .unwrap_or(&target.database)
        .to_string();
    let mut errors = Vec::new();
    let mut apply = |enabled: bool, m: &str, arg: Option<&str>, slot: &mut String| {
        if !enabled {
            return;
        }
        let out = renderer.render(Request {
            path: &n.original_file_path,
            text: &format!("{{{{ {m}(__ebb_custom, __ebb_node) }}}}"),
            model: model_value(n),
            base_config: n.config.0.clone(),
            resolved: None,
            extra: BTreeMap::from([
                (
                    "__ebb_custom".into(),
                    arg.map_or(Value::from(()), Value::from),
                ),
                ("__ebb_node".into(), model_value(n)),
            ]),
        });
        match out.error {
            Some(d) => errors.push(d),
            None => *slot = out.sql.trim().to_string(),
        }
    };
    apply(
        custom[0],
        "generate_schema_name",
        custom_schema,
        &mut schema,
    );
    apply(
        custom[1],
        "generate_alias_name",
        n.config.str("alias"),
        &mut identifier,
    );
    apply(
        custom[2],
        "generate_database_name",
        n.config.str("database"),
        &mut database,
    );
    let cte = n.is_ephemeral().then(|| format!("__dbt__cte__{}", n.name));
    (
        Relation {
            database,
            schema,
            identifier,
            adapter: target.adapter_type.clone(),
            cte,
        },
        errors,
    )
}

/// Returns a resolver for one node's placeholders: refs and sources through its dependencies,
/// `this` to its own relation.
pub(crate) fn resolver(graph: &Graph, node: &Node) -> Resolver {
    let mut map: HashMap<RelationKey, Relation> = HashMap::new();
    for dep in &node.depends_on_nodes {
        let Some(d) = graph.nodes.get(dep) else {
            continue;
        };
        let Some(rel) = &d.relation else { continue };
        let key = match &d.source_info {
            Some(s) => RelationKey::Source(s.source_name.clone(), d.name.clone()),
            None => RelationKey::Ref(d.name.clone()),
        };
        map.insert(key, rel.clone());
    }
    if let Some(rel) = &node.relation {
        map.insert(RelationKey::This, rel.clone());
    }
    Arc::new(move |k: &RelationKey| map.get(k).cloned())
}

/// Renders again, with real relation names, every node whose template read a relation's parts.
pub(crate) fn second_pass(
    graph: &mut Graph,
    renderer: &Renderer,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let ids: Vec<String> = graph
        .nodes
        .values()
        .filter(|n| n.needs_resolve && n.test_metadata.is_none())
        .map(|n| n.unique_id.clone())
        .collect();
    let outputs: Vec<(String, crate::render::Rendered)> = ids
        .par_iter()
        .map(|id| {
            let node = &graph.nodes[id];
            let out = renderer.render(Request {
                path: &node.original_file_path,
                text: &node.raw_code,
                model: model_value(node),
                base_config: node.config.0.clone(),
                resolved: Some(resolver(graph, node)),
                extra: BTreeMap::new(),
            });
            (id.clone(), out)
        })
        .collect();
    for (id, out) in outputs {
        if let Some(d) = out.error {
            diagnostics.push(d);
        }
        if let Some(node) = graph.nodes.get_mut(&id) {
            node.rendered = out.sql;
        }
    }
}
