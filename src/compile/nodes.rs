//! Creates model, seed and source nodes: names and fqns from paths, configuration from the
//! project file and schema YAML, documentation patches, and the first render of each model.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use super::{model_value, Built};
use crate::diag::{Code, Diagnostic, Span};
use crate::graph::config::{self, MATERIALIZATIONS};
use crate::graph::node::{Column, SourceInfo};
use crate::graph::{Node, ResourceType};
use crate::project::{Project, SourceFile};
use crate::render::relation::Relation;
use crate::render::{Renderer, Request};
use crate::spec::profiles::Target;
use crate::spec::schema::{ColumnSpec, NodePatch};

/// A documentation patch and where it was written.
pub(crate) struct Patch<'a> {
    pub path: &'a str,
    pub line: usize,
    pub patch: &'a NodePatch,
}

/// Collects the `models:` or `seeds:` patches of every schema file by name.
pub(crate) fn patches<'a>(project: &'a Project, seeds: bool) -> BTreeMap<&'a str, Patch<'a>> {
    let mut out = BTreeMap::new();
    for (file, parsed) in &project.schema_files {
        let (list, key) = if seeds {
            (&parsed.value.seeds, "seeds")
        } else {
            (&parsed.value.models, "models")
        };
        for (i, patch) in list.iter().enumerate() {
            let line = parsed.locator.find(&format!("{key}.{i}")).line;
            out.entry(patch.name.as_str()).or_insert(Patch {
                path: &file.path,
                line,
                patch,
            });
        }
    }
    out
}

/// Splits a file path under one of the resource directories into (dirs, stem): for
/// `models/staging/stg_orders.sql` that is (`["staging"]`, `stg_orders`) and the path
/// relative to the resource directory.
fn split_path(file_path: &str, roots: &[String]) -> (Vec<String>, String, String) {
    let rel = roots
        .iter()
        .find_map(|r| file_path.strip_prefix(&format!("{}/", r.trim_end_matches('/'))))
        .unwrap_or(file_path);
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file
        .rsplit_once('.')
        .map_or(file.as_str(), |(s, _)| s)
        .to_string();
    (parts, stem, rel.to_string())
}

fn columns(specs: &[ColumnSpec]) -> BTreeMap<String, Column> {
    specs
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                Column {
                    name: c.name.clone(),
                    description: c.description.clone().unwrap_or_default(),
                    data_type: c.data_type.clone(),
                    meta: config::from_yaml(&c.meta).into_iter().collect(),
                    tags: c.tags.clone(),
                },
            )
        })
        .collect()
}

/// Applies a schema YAML patch's config, tags, meta, description and columns to a node.
fn apply_patch(node: &mut Node, patch: &Patch<'_>) {
    let p = patch.patch;
    node.config.merge(&config::from_yaml(&p.config));
    if !p.tags.is_empty() {
        node.config.merge(&BTreeMap::from([(
            "tags".to_string(),
            serde_json::json!(p.tags),
        )]));
    }
    if !p.meta.is_empty() {
        let meta = serde_json::to_value(&p.meta).unwrap_or_default();
        node.config
            .merge(&BTreeMap::from([("meta".to_string(), meta)]));
    }
    node.description = p.description.clone().unwrap_or_default();
    let documented = columns(&p.columns);
    for (name, col) in documented {
        node.columns.insert(name, col);
    }
    node.patch_path = Some(patch.path.to_string());
}

/// Builds every model, seed and source node, rendering models in parallel.
pub(crate) fn build(
    project: &Project,
    renderer: &Renderer,
    target: &Target,
    diagnostics: &mut Vec<Diagnostic>,
    logs: &mut Vec<String>,
) -> Built {
    let name = project.file.name.clone();
    let mut built = Built {
        nodes: BTreeMap::new(),
        disabled: BTreeMap::new(),
        project_name: name.clone(),
    };
    let model_patches = patches(project, false);
    let seed_patches = patches(project, true);
    let mut by_name: HashMap<String, String> = HashMap::new();

    // Models: configure, skip the disabled, render the rest in parallel.
    let prepared: Vec<(Node, &SourceFile)> = project
        .models
        .iter()
        .map(|file| {
            let (dirs, stem, rel) = split_path(&file.path, &project.file.model_paths);
            let mut node = Node::new(
                ResourceType::Model,
                &name,
                &stem,
                format!("model.{name}.{stem}"),
            );
            node.path = rel;
            node.original_file_path = file.path.clone();
            node.fqn = std::iter::once(name.clone())
                .chain(dirs)
                .chain([stem.clone()])
                .collect();
            node.config.0.insert("materialized".into(), "view".into());
            for layer in config::folder_layers(&project.file.models, &node.fqn) {
                node.config.merge(&layer);
            }
            if let Some(patch) = model_patches.get(stem.as_str()) {
                apply_patch(&mut node, patch);
            }
            node.raw_code = file.text.clone();
            node.checksum = crate::artifacts::checksum(file.text.as_bytes());
            (node, file)
        })
        .collect();
    let rendered: Vec<(Node, crate::render::Rendered)> = prepared
        .into_par_iter()
        .map(|(node, file)| {
            if !node.config.enabled() {
                return (node, Default::default());
            }
            let out = renderer.render(Request {
                path: &file.path,
                text: &file.text,
                model: model_value(&node),
                base_config: node.config.0.clone(),
                resolved: None,
                extra: Default::default(),
            });
            (node, out)
        })
        .collect();
    for (mut node, out) in rendered {
        node.config.merge(&out.config);
        if !node.config.enabled() {
            built
                .disabled
                .insert(node.name.clone(), node.original_file_path.clone());
            continue;
        }
        logs.extend(out.logs.iter().map(|l| format!("{}: {l}", node.name)));
        diagnostics.extend(out.warnings.iter().map(|w| {
            Diagnostic::new(
                Code::CompilerError,
                Span::file(&node.original_file_path),
                w.clone(),
            )
            .warning()
        }));
        if let Some(d) = out.error {
            diagnostics.push(d);
        }
        check_materialization(&node, diagnostics);
        node.rendered = out.sql;
        node.refs = out.refs;
        node.sources = out.sources;
        node.vars = out.vars;
        node.env_vars = out.env_vars;
        node.depends_on_macros = out.macros;
        node.needs_resolve = out.needs_resolve;
        insert_unique(&mut built, &mut by_name, node, diagnostics);
    }

    // Seeds: columns from the CSV header, documentation from YAML.
    for seed in &project.seeds {
        let (dirs, stem, rel) = split_path(&seed.path, &project.file.seed_paths);
        let mut node = Node::new(
            ResourceType::Seed,
            &name,
            &stem,
            format!("seed.{name}.{stem}"),
        );
        node.path = rel;
        node.original_file_path = seed.path.clone();
        node.fqn = std::iter::once(name.clone())
            .chain(dirs)
            .chain([stem.clone()])
            .collect();
        node.checksum = seed.checksum.clone();
        node.config.0.insert("materialized".into(), "seed".into());
        for layer in config::folder_layers(&project.file.seeds, &node.fqn) {
            node.config.merge(&layer);
        }
        node.columns = seed
            .columns
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    Column {
                        name: c.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect();
        if let Some(patch) = seed_patches.get(stem.as_str()) {
            apply_patch(&mut node, patch);
        }
        if !node.config.enabled() {
            built
                .disabled
                .insert(node.name.clone(), node.original_file_path.clone());
            continue;
        }
        insert_unique(&mut built, &mut by_name, node, diagnostics);
    }

    // Patches for nodes that do not exist.
    for (patches, what) in [(&model_patches, "model"), (&seed_patches, "seed")] {
        for (patch_name, patch) in patches {
            let uid = format!("{what}.{name}.{patch_name}");
            let exists = built.nodes.contains_key(&uid) || built.disabled.contains_key(*patch_name);
            if !exists {
                let names: Vec<&str> = built
                    .nodes
                    .values()
                    .filter(|n| n.resource_type.as_str() == what)
                    .map(|n| n.name.as_str())
                    .collect();
                let mut d = Diagnostic::new(
                    Code::PatchWithoutNode,
                    Span::at(patch.path, patch.line, 1),
                    format!(
                        "`{}` documents {what} `{patch_name}`, which does not exist",
                        patch.path
                    ),
                )
                .label(format!("no {what} named `{patch_name}`"));
                d = match crate::diag::did_you_mean(&crate::diag::closest(patch_name, names)) {
                    Some(h) => d.hint(h),
                    None => d.hint(format!("rename the entry or create the {what}")),
                };
                diagnostics.push(d);
            }
        }
    }

    sources(project, renderer, target, &mut built, diagnostics);
    built
}

fn check_materialization(node: &Node, diagnostics: &mut Vec<Diagnostic>) {
    let m = node.config.materialized();
    if MATERIALIZATIONS.contains(&m) {
        return;
    }
    let span = match node.raw_code.find("materialized") {
        Some(i) => Span::from_range(
            &node.original_file_path,
            &node.raw_code,
            (i, i + "materialized".len()),
        ),
        None => Span::file(&node.original_file_path),
    };
    let close = crate::diag::closest(m, MATERIALIZATIONS.iter().copied());
    diagnostics.push(
        Diagnostic::new(
            Code::ConfigInvalid,
            span,
            format!("model `{}` has unknown materialization `{m}`", node.name),
        )
        .label("set here or in the project file")
        .hint(
            crate::diag::did_you_mean(&close)
                .unwrap_or_else(|| format!("use one of: {}", MATERIALIZATIONS.join(", "))),
        ),
    );
}

/// Adds a model or seed, reporting a name that is already taken (refs would be ambiguous).
fn insert_unique(
    built: &mut Built,
    by_name: &mut HashMap<String, String>,
    node: Node,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if let Some(first) = by_name.get(&node.name) {
        diagnostics.push(
            Diagnostic::new(
                Code::DuplicateName,
                Span::file(&node.original_file_path),
                format!(
                    "two resources are named `{}`: `{first}` and `{}`",
                    node.name, node.original_file_path
                ),
            )
            .hint("ref() finds resources by name: rename one of the files"),
        );
        return;
    }
    by_name.insert(node.name.clone(), node.original_file_path.clone());
    built.nodes.insert(node.unique_id.clone(), node);
}

/// Builds source nodes from every schema file's `sources:`, naming their relations.
fn sources(
    project: &Project,
    renderer: &Renderer,
    target: &Target,
    built: &mut Built,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let name = &built.project_name.clone();
    for (file, parsed) in &project.schema_files {
        for (i, source) in parsed.value.sources.iter().enumerate() {
            for (j, table) in source.tables.iter().enumerate() {
                let uid = format!("source.{name}.{}.{}", source.name, table.name);
                let line = parsed.locator.find(&format!("sources.{i}.tables.{j}")).line;
                if let Some(existing) = built.nodes.get(&uid) {
                    diagnostics.push(
                        Diagnostic::new(
                            Code::DuplicateName,
                            Span::at(&file.path, line, 1),
                            format!(
                                "source table `{}.{}` is declared twice: in `{}` and `{}`",
                                source.name, table.name, existing.original_file_path, file.path
                            ),
                        )
                        .hint("remove one of the declarations"),
                    );
                    continue;
                }
                let mut node = Node::new(ResourceType::Source, name, &table.name, uid);
                node.original_file_path = file.path.clone();
                node.path = file.path.clone();
                node.line = line;
                node.fqn = vec![name.clone(), source.name.clone(), table.name.clone()];
                node.config.merge(&config::from_yaml(&source.config));
                node.config.merge(&config::from_yaml(&table.config));
                let tags: Vec<&String> = source.tags.iter().chain(&table.tags).collect();
                if !tags.is_empty() {
                    node.config.merge(&BTreeMap::from([(
                        "tags".to_string(),
                        serde_json::json!(tags),
                    )]));
                }
                let mut meta = config::from_yaml(&source.meta);
                meta.extend(config::from_yaml(&table.meta));
                if !meta.is_empty() {
                    node.config.merge(&BTreeMap::from([(
                        "meta".to_string(),
                        serde_json::json!(meta),
                    )]));
                }
                if !node.config.enabled() {
                    continue;
                }
                node.description = table.description.clone().unwrap_or_default();
                node.columns = columns(&table.columns);
                node.checksum = crate::artifacts::checksum(
                    format!("{}.{}", source.name, table.name).as_bytes(),
                );
                let identifier = table
                    .identifier
                    .clone()
                    .unwrap_or_else(|| table.name.clone());
                // dbt renders these fields, so `schema: "{{ target.schema }}"` works.
                let mut render = |value: &str, key: &str| match renderer.render_str(value) {
                    Ok(v) => v,
                    Err(e) => {
                        let pos = parsed.locator.find(&format!("sources.{i}.{key}"));
                        diagnostics.push(
                            Diagnostic::new(
                                Code::JinjaRender,
                                Span::at(&file.path, pos.line, pos.column),
                                format!("cannot render `{key}` of source `{}`: {e}", source.name),
                            )
                            .hint("fix the template in this field"),
                        );
                        value.to_string()
                    }
                };
                let database = match &source.database {
                    Some(d) => render(d, "database"),
                    None => target.database.clone(),
                };
                let schema = render(source.schema.as_deref().unwrap_or(&source.name), "schema");
                let identifier = render(&identifier, "identifier");
                node.relation = Some(Relation {
                    database,
                    schema,
                    identifier: identifier.clone(),
                    adapter: target.adapter_type.clone(),
                    cte: None,
                });
                node.source_info = Some(SourceInfo {
                    source_name: source.name.clone(),
                    source_description: source.description.clone().unwrap_or_default(),
                    identifier,
                });
                built.nodes.insert(node.unique_id.clone(), node);
            }
        }
    }
}
