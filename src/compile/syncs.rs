//! Sync and destination nodes: parsed from `syncs/**/*.yml` and `destinations.yml`, wired into
//! the graph (model → sync → destination, sync → sync), then checked offline: the model and
//! its columns exist, the destination supports the mode, keys and schedules make sense, no two
//! syncs write one field, and PII is not sent unmasked.

use std::collections::{BTreeMap, BTreeSet};

use super::Built;
use crate::diag::{self, Code, Diagnostic, Span};
use crate::graph::{Graph, Node, ResourceType};
use crate::lineage::project::ProjectLineage;
use crate::project::Project;
use crate::render::Renderer;
use crate::spec::sync::{self, Mode, DESTINATION_TYPES};

/// Filters that hide a value well enough to send PII.
pub const MASKING_FILTERS: &[&str] = &["mask", "sha256", "hash", "redact"];

/// Tells whether `model` documents `column` as PII (`meta: {pii: true}` in its schema YAML).
pub fn is_pii(model: &Node, column: &str) -> bool {
    model
        .columns
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(column))
        .and_then(|(_, col)| col.meta.get("pii"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// Tells whether a mapping hides its value with one of the [`MASKING_FILTERS`].
pub fn is_masked(mapping: &sync::Mapping) -> bool {
    mapping
        .filters()
        .iter()
        .any(|f| MASKING_FILTERS.contains(&f.as_str()))
}

fn at(node: &Node, key: &str) -> Span {
    let (line, column) = node
        .sync
        .as_ref()
        .and_then(|s| s.lines.get(key).copied())
        .unwrap_or((node.line, 1));
    Span::at(&node.original_file_path, line, column)
}

/// Creates sync and destination nodes and their edges.
/// Names written in the files, valid or not: a reference to one that failed its own checks is
/// not reported again (its own error says what is wrong).
fn written_names(project: &Project) -> (BTreeSet<String>, BTreeSet<String>) {
    let keys = |text: &str, list: &str| -> BTreeSet<String> {
        let value: serde_yaml::Value = serde_yaml::from_str(text).unwrap_or_default();
        match value.get(list) {
            Some(serde_yaml::Value::Mapping(m)) => m
                .keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect(),
            Some(serde_yaml::Value::Sequence(s)) => s
                .iter()
                .filter_map(|i| i.get("name")?.as_str().map(str::to_string))
                .collect(),
            _ => BTreeSet::new(),
        }
    };
    let destinations = project
        .destinations
        .as_ref()
        .map(|f| keys(&f.text, "destinations"))
        .unwrap_or_default();
    let syncs = project
        .sync_files
        .iter()
        .flat_map(|f| keys(&f.text, "syncs"))
        .collect();
    (destinations, syncs)
}

pub(crate) fn build(project: &Project, built: &mut Built, diagnostics: &mut Vec<Diagnostic>) {
    let name = built.project_name.clone();
    let (written_destinations, written_syncs) = written_names(project);
    let destinations = project
        .destinations
        .as_ref()
        .map(|f| sync::parse_destinations(&f.path, &f.text, diagnostics))
        .unwrap_or_default();
    for d in destinations {
        let mut node = Node::new(
            ResourceType::Destination,
            &name,
            &d.name,
            format!("destination.{name}.{}", d.name),
        );
        node.original_file_path = d.path.clone();
        node.path = d.path.clone();
        node.line = d.line;
        node.fqn = vec![name.clone(), "destinations".into(), d.name.clone()];
        node.checksum = crate::artifacts::checksum(format!("{d:?}").as_bytes());
        node.destination = Some(d);
        built.nodes.insert(node.unique_id.clone(), node);
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for file in &project.sync_files {
        for spec in sync::parse_syncs(&file.path, &file.text, diagnostics) {
            if !spec.enabled {
                continue;
            }
            let uid = format!("sync.{name}.{}", spec.name);
            if let Some(first) = seen.get(&spec.name) {
                diagnostics.push(
                    Diagnostic::new(
                        Code::DuplicateName,
                        Span::at(&file.path, spec.line, 1),
                        format!(
                            "two syncs are named `{}`: in `{first}` and `{}`",
                            spec.name, file.path
                        ),
                    )
                    .hint("rename one of them"),
                );
                continue;
            }
            seen.insert(spec.name.clone(), file.path.clone());
            let mut node = Node::new(ResourceType::Sync, &name, &spec.name, uid);
            node.original_file_path = file.path.clone();
            node.path = file.path.clone();
            node.line = spec.line;
            let dirs: Vec<String> = file
                .path
                .split('/')
                .skip(1)
                .collect::<Vec<_>>()
                .split_last()
                .map(|(_, d)| d.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default();
            node.fqn = std::iter::once(name.clone())
                .chain(dirs)
                .chain([spec.name.clone()])
                .collect();
            node.description = spec.description.clone();
            node.config
                .0
                .insert("tags".into(), serde_json::json!(spec.tags));
            node.config.0.insert("meta".into(), spec.meta.clone());
            node.config.0.insert("enabled".into(), true.into());
            node.checksum = crate::artifacts::checksum(
                serde_json::to_string(&spec).unwrap_or_default().as_bytes(),
            );
            node.sync = Some(spec);
            built.nodes.insert(node.unique_id.clone(), node);
        }
    }

    // Edges and the checks that need only names.
    let models: BTreeMap<String, String> = built
        .nodes
        .values()
        .filter(|n| matches!(n.resource_type, ResourceType::Model | ResourceType::Seed))
        .map(|n| (n.name.clone(), n.unique_id.clone()))
        .collect();
    let sync_ids: BTreeMap<String, String> = built
        .nodes
        .values()
        .filter(|n| n.resource_type == ResourceType::Sync)
        .map(|n| (n.name.clone(), n.unique_id.clone()))
        .collect();
    let dest_ids: BTreeMap<String, String> = built
        .nodes
        .values()
        .filter(|n| n.resource_type == ResourceType::Destination)
        .map(|n| (n.name.clone(), n.unique_id.clone()))
        .collect();
    let mut dest_parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in built
        .nodes
        .values_mut()
        .filter(|n| n.resource_type == ResourceType::Sync)
    {
        let Some(spec) = node.sync.clone() else {
            continue;
        };
        match models.get(&spec.model) {
            Some(id) => {
                node.depends_on_nodes.insert(id.clone());
            }
            None => {
                let d = Diagnostic::new(
                    Code::SyncModelNotFound,
                    at(node, "model"),
                    format!(
                        "sync `{}` reads model `{}`, which does not exist",
                        spec.name, spec.model
                    ),
                )
                .label(format!("no model named `{}`", spec.model));
                let hint = if built.disabled.contains_key(&spec.model) {
                    format!(
                        "`{}` is disabled; enable it or disable this sync",
                        spec.model
                    )
                } else {
                    diag::did_you_mean(&diag::closest(
                        &spec.model,
                        models.keys().map(String::as_str),
                    ))
                    .unwrap_or_else(|| "point `model:` at a model of the project".into())
                };
                diagnostics.push(d.hint(hint));
            }
        }
        for dep in &spec.depends_on {
            match sync_ids.get(dep) {
                Some(id) => {
                    node.depends_on_nodes.insert(id.clone());
                }
                None if written_syncs.contains(dep) => {}
                None => {
                    let hint = diag::did_you_mean(&diag::closest(
                        dep,
                        sync_ids
                            .keys()
                            .map(String::as_str)
                            .filter(|s| *s != spec.name),
                    ))
                    .unwrap_or_else(|| "name another sync of the project".into());
                    diagnostics.push(
                        Diagnostic::new(
                            Code::SyncDependsOnNotFound,
                            at(node, "depends_on"),
                            format!(
                                "sync `{}` depends on `{dep}`, which is not a sync",
                                spec.name
                            ),
                        )
                        .hint(hint),
                    );
                }
            }
        }
        let Some(dest_id) = dest_ids.get(&spec.destination) else {
            if written_destinations.contains(&spec.destination) {
                continue;
            }
            let names: Vec<&str> = dest_ids.keys().map(String::as_str).collect();
            let hint = diag::did_you_mean(&diag::closest(&spec.destination, names.iter().copied()))
                .unwrap_or_else(|| {
                    format!(
                        "declare it under `destinations:` in destinations.yml (declared: {})",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    )
                });
            diagnostics.push(
                Diagnostic::new(
                    Code::DestinationNotFound,
                    at(node, "destination"),
                    format!(
                        "sync `{}` writes to destination `{}`, which is not declared",
                        spec.name, spec.destination
                    ),
                )
                .label("no such destination")
                .hint(hint),
            );
            continue;
        };
        dest_parents
            .entry(dest_id.clone())
            .or_default()
            .insert(node.unique_id.clone());
        if matches!(spec.mode, Mode::Update | Mode::Upsert | Mode::Mirror)
            && spec.match_on.is_none()
        {
            diagnostics.push(
                Diagnostic::new(
                    Code::MatchOnMissing,
                    at(node, "mode"),
                    format!(
                        "sync `{}` uses mode `{}` but has no `match_on`",
                        spec.name,
                        spec.mode.as_str()
                    ),
                )
                .hint(
                    "name the destination field the primary key is matched on: `match_on: email`",
                ),
            );
        }
    }
    for (dest, parents) in dest_parents {
        let Some(d) = built.nodes.get_mut(&dest) else {
            continue;
        };
        let kind = d
            .destination
            .as_ref()
            .map(|x| x.kind.clone())
            .unwrap_or_default();
        d.depends_on_nodes.extend(parents.iter().cloned());
        let modes = DESTINATION_TYPES
            .iter()
            .find(|t| t.name == kind)
            .map(|t| t.modes)
            .unwrap_or(&[]);
        for p in parents {
            let Some(s) = built.nodes.get(&p) else {
                continue;
            };
            let Some(spec) = &s.sync else { continue };
            if !modes.contains(&spec.mode) {
                let names: Vec<&str> = modes.iter().map(|m| m.as_str()).collect();
                diagnostics.push(
                    Diagnostic::new(
                        Code::ModeUnsupported,
                        at(s, "mode"),
                        format!(
                            "destination `{}` ({kind}) does not support mode `{}`",
                            spec.destination,
                            spec.mode.as_str()
                        ),
                    )
                    .label("not supported by this destination")
                    .hint(format!("use one of: {}", names.join(", "))),
                );
            }
        }
    }
}

/// Checks what needs the compiled models: mapped columns exist, no field is written twice,
/// PII is masked or allowed, mapping templates are valid.
pub(crate) fn validate(
    graph: &Graph,
    adapter: &str,
    renderer: &Renderer,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let syncs: Vec<&Node> = graph
        .nodes
        .values()
        .filter(|n| n.resource_type == ResourceType::Sync)
        .collect();
    if syncs.is_empty() {
        return;
    }
    let wanted: BTreeSet<String> = syncs
        .iter()
        .flat_map(|s| s.depends_on_nodes.iter().cloned())
        .collect();
    let lineage = ProjectLineage::compute(graph, adapter, Some(&wanted));
    let mut writers: BTreeMap<(String, String, String), &Node> = BTreeMap::new();
    for node in syncs {
        let Some(spec) = &node.sync else { continue };
        let model_id = node
            .depends_on_nodes
            .iter()
            .find(|d| d.starts_with("model.") || d.starts_with("seed."));
        let model = model_id.and_then(|id| graph.nodes.get(id));
        let columns = model_id.and_then(|id| lineage.known_columns(graph, id));
        let dest = graph
            .nodes
            .values()
            .find(|n| n.resource_type == ResourceType::Destination && n.name == spec.destination)
            .and_then(|n| n.destination.as_ref());
        let pk_at = spec
            .lines
            .get("primary_key")
            .copied()
            .unwrap_or((node.line, 1));
        let mut wanted_cols: Vec<(String, String, (usize, usize))> =
            vec![(spec.primary_key.clone(), "primary_key".into(), pk_at)];
        for m in &spec.mapping {
            if m.is_expression() {
                if let Err(e) = renderer.check_template(&m.source) {
                    diagnostics.push(
                        Diagnostic::new(
                            Code::MappingInvalid,
                            Span::at(&node.original_file_path, m.line, m.column),
                            format!(
                                "the mapping of `{}` in sync `{}` is not a valid template: {e}",
                                m.field, spec.name
                            ),
                        )
                        .hint("write an expression over `row`, like `\"{{ row.email | lower }}\"`"),
                    );
                }
                for f in m.filters() {
                    if !renderer.has_filter(&f) {
                        diagnostics.push(
                            Diagnostic::new(
                                Code::MappingInvalid,
                                Span::at(&node.original_file_path, m.line, m.column),
                                format!("the mapping of `{}` uses unknown filter `{f}`", m.field),
                            )
                            .hint(format!(
                                "filters for masking and hashing: {}",
                                MASKING_FILTERS.join(", ")
                            )),
                        );
                    }
                }
            }
            for c in m.columns() {
                wanted_cols.push((c, format!("mapping.{}", m.field), (m.line, m.column)));
            }
            let key = (
                spec.destination.clone(),
                spec.object.clone(),
                m.field.clone(),
            );
            // The match key is written by every sync that matches on it: not a conflict.
            let is_match_key = |s: &Node| {
                s.sync.as_ref().and_then(|x| x.match_on.as_deref()) == Some(m.field.as_str())
            };
            if let Some(first) = writers
                .get(&key)
                .filter(|first| !(is_match_key(first) && is_match_key(node)))
            {
                diagnostics.push(
                    Diagnostic::new(
                        Code::FieldConflict,
                        Span::at(&node.original_file_path, m.line, m.column),
                        format!(
                            "syncs `{}` and `{}` both write field `{}` of `{}` in destination `{}`",
                            first.name, spec.name, m.field, spec.object, spec.destination
                        ),
                    )
                    .label("written twice")
                    .hint("map the field in one sync only, or write to different fields"),
                );
            } else {
                writers.insert(key, node);
            }
            // PII must be masked unless the destination allows it.
            if let (Some(model), Some(dest)) = (model, dest) {
                if dest.allow_pii {
                    continue;
                }
                let masked = is_masked(m);
                for c in m.columns() {
                    if is_pii(model, &c) && !masked {
                        diagnostics.push(
                            Diagnostic::new(Code::PiiUnmasked, Span::at(&node.original_file_path, m.line, m.column), format!("sync `{}` sends PII column `{c}` unmasked to destination `{}`", spec.name, spec.destination))
                                .label(format!("`{c}` has `meta: {{pii: true}}`"))
                                .hint(format!("mask it (`\"{{{{ row.{c} | sha256 }}}}\"` or `| mask`), or set `allow_pii: true` on destination `{}`", spec.destination)),
                        );
                    }
                }
            }
        }
        match (&columns, model) {
            (Some(cols), Some(model)) => {
                for (c, what, line) in wanted_cols {
                    if !cols.iter().any(|x| x.eq_ignore_ascii_case(&c)) {
                        let hint = diag::did_you_mean(&diag::closest(&c, cols.iter().map(String::as_str))).unwrap_or_else(|| format!("columns of `{}`: {}", model.name, cols.join(", ")));
                        diagnostics.push(
                            Diagnostic::new(Code::SyncColumnNotFound, Span::at(&node.original_file_path, line.0, line.1), format!("`{what}` of sync `{}` reads column `{c}`, which model `{}` does not have", spec.name, model.name))
                                .label(format!("no column `{c}`"))
                                .hint(hint),
                        );
                    }
                }
            }
            (None, Some(model)) => diagnostics.push(
                Diagnostic::new(Code::SyncColumnsDeferred, Span::at(&node.original_file_path, node.line, 1), format!("the columns of model `{}` are not known offline; sync `{}` will have its columns checked by `ebb test`", model.name, spec.name))
                    .hint(format!("declare the columns of `{}` in its schema YAML, or select them by name instead of `*`", model.name)),
            ),
            _ => {}
        }
    }
}
