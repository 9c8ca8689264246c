//! The static docs site under `target/docs/`: an index of models, syncs and destinations with an
//! interactive lineage graph, and a page per node. Rendered from templates/docs/ with minijinja;
//! everything (CSS, JS) is local, so it works from `file://` with no network.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use minijinja::{context, Environment};
use serde_json::{json, Value};

use super::export::ColumnEdge;
use super::project::ProjectLineage;
use crate::artifacts::WriteError;
use crate::graph::{Graph, Node, ResourceType};

const LAYOUT: &str = include_str!("../../templates/docs/layout.html");
const INDEX: &str = include_str!("../../templates/docs/index.html");
const NODE: &str = include_str!("../../templates/docs/node.html");
const CSS: &str = include_str!("../../templates/docs/site.css");
const JS: &str = include_str!("../../templates/docs/lineage.js");

const NODE_W: usize = 190;
const NODE_H: usize = 40;
const GAP_X: usize = 70;
const GAP_Y: usize = 14;

/// What the pages say about the build.
pub struct SiteInfo<'a> {
    pub project: &'a str,
    pub generated_at: &'a str,
    pub commit: Option<&'a str>,
    pub dirty: bool,
}

fn shown(n: &Node) -> bool {
    n.resource_type != ResourceType::Test
}

fn file_name(id: &str) -> String {
    format!("nodes/{}.html", id.replace(['/', '\\'], "_"))
}

/// Places every shown node in a column by its depth (longest path from a root) and returns the
/// layout for the SVG.
fn layout(graph: &Graph) -> Value {
    let mut depth: HashMap<&str, usize> = HashMap::new();
    for id in graph.topological_order() {
        let node = &graph.nodes[id];
        if !shown(node) {
            continue;
        }
        let d = node
            .depends_on_nodes
            .iter()
            .filter_map(|p| depth.get(p.as_str()))
            .map(|d| d + 1)
            .max()
            .unwrap_or(0);
        depth.insert(id, d);
    }
    let mut columns: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (id, d) in &depth {
        columns.entry(*d).or_default().push(id);
    }
    let mut pos: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut height = 0;
    for (d, ids) in columns.iter_mut() {
        ids.sort_by_key(|id| (graph.nodes[*id].resource_type, *id));
        for (i, id) in ids.iter().enumerate() {
            let (x, y) = (16 + d * (NODE_W + GAP_X), 16 + i * (NODE_H + GAP_Y));
            pos.insert(id, (x, y));
            height = height.max(y + NODE_H + 16);
        }
    }
    let width = 16 + columns.len() * (NODE_W + GAP_X);
    let nodes: Vec<Value> = pos
        .iter()
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .map(|(id, (x, y))| {
            let n = &graph.nodes[*id];
            let mut label = n.display_name();
            if label.chars().count() > 26 {
                label = format!("{}…", label.chars().take(25).collect::<String>());
            }
            json!({"id": id, "kind": n.resource_type, "label": label, "x": x, "y": y, "href": file_name(id)})
        })
        .collect();
    let mut edges = Vec::new();
    for (id, (x, y)) in &pos {
        for p in &graph.nodes[*id].depends_on_nodes {
            let Some((px, py)) = pos.get(p.as_str()) else {
                continue;
            };
            let (sx, sy, ex, ey) = (px + NODE_W, py + NODE_H / 2, *x, y + NODE_H / 2);
            let mid = (sx + ex) / 2;
            edges.push(json!({"from": p, "to": id, "path": format!("M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}")}));
        }
    }
    edges.sort_by_key(ToString::to_string);
    json!({"width": width, "height": height.max(80), "node_width": NODE_W, "node_height": NODE_H, "nodes": nodes, "edges": edges})
}

fn summary(graph: &Graph, id: &str, root: &str) -> Value {
    let n = &graph.nodes[id];
    json!({"name": n.display_name(), "resource_type": n.resource_type, "href": format!("{root}{}", file_name(id))})
}

/// Writes the site into `dir` (replacing what was there); returns the number of pages.
pub fn generate(
    dir: &Path,
    graph: &Graph,
    lineage: &ProjectLineage,
    edges: &[ColumnEdge],
    info: &SiteInfo<'_>,
) -> Result<usize, WriteError> {
    let wrap = |path: &Path| {
        let path = path.to_path_buf();
        move |e| WriteError { path, source: e }
    };
    if dir.exists() {
        fs_err::remove_dir_all(dir).map_err(wrap(dir))?;
    }
    fs_err::create_dir_all(dir.join("nodes")).map_err(wrap(dir))?;
    let mut env = Environment::new();
    env.add_template("layout.html", LAYOUT)
        .expect("the built-in layout template parses");
    env.add_template("index.html", INDEX)
        .expect("the built-in index template parses");
    env.add_template("node.html", NODE)
        .expect("the built-in node template parses");
    let render_err = |e: minijinja::Error| WriteError {
        path: dir.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let base = |root: &str| context! { project => info.project, generated_at => info.generated_at, commit => info.commit, dirty => info.dirty, root => root };

    let graph_json = json!({
        "nodes": graph.nodes.values().filter(|n| shown(n)).map(|n| json!({"id": n.unique_id, "type": n.resource_type})).collect::<Vec<_>>(),
        "edges": graph.nodes.values().filter(|n| shown(n)).flat_map(|n| n.depends_on_nodes.iter().filter(|p| graph.nodes.get(*p).is_some_and(shown)).map(move |p| json!({"from": p, "to": n.unique_id}))).collect::<Vec<_>>(),
    });
    let group = |kind: ResourceType, title: &str, detail: &str| {
        let nodes: Vec<Value> = graph
            .nodes
            .values()
            .filter(|n| n.resource_type == kind)
            .map(|n| {
                let d = match (&n.sync, &n.destination) {
                    (Some(s), _) => format!("{} → {}.{} ({})", s.model, s.destination, s.object, s.mode.as_str()),
                    (_, Some(d)) => d.kind.clone(),
                    _ => n.config.str("materialized").map_or_else(|| n.relation.as_ref().map(ToString::to_string).unwrap_or_default(), str::to_string),
                };
                json!({"name": n.display_name(), "href": file_name(&n.unique_id), "detail": d, "description": n.description})
            })
            .collect();
        json!({"title": title, "detail": detail, "nodes": nodes})
    };
    let groups = vec![
        group(
            ResourceType::Sync,
            "Syncs",
            "model → destination.object (mode)",
        ),
        group(ResourceType::Destination, "Destinations", "type"),
        group(ResourceType::Model, "Models", "materialized"),
        group(ResourceType::Seed, "Seeds", "materialized"),
        group(ResourceType::Source, "Sources", "relation"),
    ];
    let index = env
        .get_template("index.html")
        .and_then(|t| t.render(context! { layout => layout(graph), groups => groups, graph_json => graph_json.to_string().replace("</", "<\\/"), ..base("") }))
        .map_err(render_err)?;
    fs_err::write(dir.join("index.html"), index).map_err(wrap(dir))?;
    fs_err::write(dir.join("site.css"), CSS).map_err(wrap(dir))?;
    fs_err::write(dir.join("lineage.js"), JS).map_err(wrap(dir))?;

    let mut upstream_of: BTreeMap<(&str, &str), BTreeSet<String>> = BTreeMap::new();
    for e in edges.iter().filter(|e| e.kind == "DIRECT") {
        let from = graph
            .nodes
            .get(&e.from_node)
            .map_or(e.from_node.clone(), |n| n.display_name());
        upstream_of
            .entry((e.to_node.as_str(), e.to_column.as_str()))
            .or_default()
            .insert(format!("{from}.{}", e.from_column));
    }
    let template = env.get_template("node.html").map_err(render_err)?;
    let mut pages = 1;
    for (id, n) in graph.nodes.iter().filter(|(_, n)| shown(n)) {
        let known = lineage.known_columns(graph, id).unwrap_or_default();
        let mut names: Vec<String> = n.columns.keys().cloned().collect();
        for k in known {
            if !names.iter().any(|c| c.eq_ignore_ascii_case(&k)) {
                names.push(k);
            }
        }
        let columns: Vec<Value> = names
            .iter()
            .map(|c| {
                let doc = n.columns.get(c);
                let pii = doc.and_then(|d| d.meta.get("pii")).and_then(Value::as_bool).unwrap_or(false);
                let lower = c.to_lowercase();
                let up: Vec<&String> = upstream_of.get(&(id.as_str(), lower.as_str())).map(|s| s.iter().collect()).unwrap_or_default();
                json!({"name": c, "description": doc.map(|d| d.description.as_str()).unwrap_or(""), "pii": pii, "upstream": up})
            })
            .collect();
        let mapping: Vec<Value> = n
            .sync
            .iter()
            .flat_map(|s| s.mapping.iter())
            .map(|m| {
                let masked = m.filters().iter().any(|f| crate::compile::MASKING_FILTERS.contains(&f.as_str()));
                json!({"field": m.field, "source": m.source, "columns": m.columns(), "kind": if m.is_expression() { "expression" } else { "column" }, "masked": masked})
            })
            .collect();
        let up: Vec<Value> = graph
            .neighbors(id, petgraph::Direction::Incoming)
            .into_iter()
            .filter(|p| shown(&graph.nodes[*p]))
            .map(|p| summary(graph, p, "../"))
            .collect();
        let down: Vec<Value> = graph
            .neighbors(id, petgraph::Direction::Outgoing)
            .into_iter()
            .filter(|c| shown(&graph.nodes[*c]))
            .map(|c| summary(graph, c, "../"))
            .collect();
        let node = json!({
            "unique_id": id,
            "name": n.display_name(),
            "resource_type": n.resource_type,
            "description": n.description,
            "original_file_path": n.original_file_path,
            "relation": n.relation.as_ref().filter(|r| r.cte.is_none()).map(ToString::to_string),
            "materialized": if n.resource_type == ResourceType::Model { n.config.str("materialized") } else { None },
            "tags": n.config.tags(),
            "compiled_code": n.compiled_code,
        });
        let page = template
            .render(context! { node => node, columns => columns, mapping => mapping, sync => n.sync, destination => n.destination, upstream => up, downstream => down, ..base("../") })
            .map_err(render_err)?;
        let path = dir.join(file_name(id));
        fs_err::write(&path, page).map_err(wrap(&path))?;
        pages += 1;
    }
    Ok(pages)
}
