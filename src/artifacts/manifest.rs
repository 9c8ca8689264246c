//! `target/manifest.json`: every node with its SQL, config, columns and dependencies, the
//! macros, the parent and child maps, and metadata naming the invocation and git commit. It
//! follows dbt's manifest wherever the concepts are the same; docs/manifest.md is its reference.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use crate::compile::Compilation;
use crate::graph::{Graph, Node, ResourceType};
use crate::project::git::GitInfo;
use petgraph::Direction;

/// Version of the manifest format; bumped on any incompatible change (see docs/manifest.md).
pub const SCHEMA_VERSION: u32 = 1;

/// Who built the manifest and when.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    pub invocation_id: String,
    /// RFC 3339 UTC time.
    pub generated_at: String,
    pub git: Option<GitInfo>,
}

fn node_json(node: &Node, macro_ids: &BTreeMap<String, String>, target_path: &str) -> Value {
    let rel = node.relation.as_ref();
    let mut v = json!({
        "unique_id": node.unique_id,
        "resource_type": node.resource_type,
        "package_name": node.package_name,
        "name": node.name,
        "path": node.path,
        "original_file_path": node.original_file_path,
        "fqn": node.fqn,
        "database": rel.map(|r| r.database.as_str()),
        "schema": rel.map(|r| r.schema.as_str()),
        "alias": rel.map(|r| r.identifier.as_str()),
        "relation_name": rel.filter(|r| r.cte.is_none()).map(|r| {
            let mut plain = r.clone();
            plain.cte = None;
            plain.to_string()
        }),
        "description": node.description,
        "columns": node.columns,
        "config": node.config,
        "tags": node.config.tags(),
        "meta": node.config.0.get("meta").cloned().unwrap_or_else(|| json!({})),
        "checksum": {"name": "sha256", "checksum": node.checksum},
        "patch_path": node.patch_path,
    });
    let obj = v.as_object_mut().expect("a json! object is an object");
    if node.resource_type == ResourceType::Source {
        if let Some(s) = &node.source_info {
            obj.insert("source_name".into(), json!(s.source_name));
            obj.insert("source_description".into(), json!(s.source_description));
            obj.insert("identifier".into(), json!(s.identifier));
        }
        return v;
    }
    if let Some(spec) = &node.sync {
        obj.insert("sync".into(), json!(spec));
        obj.insert(
            "depends_on".into(),
            json!({"macros": [], "nodes": node.depends_on_nodes}),
        );
        return v;
    }
    if let Some(spec) = &node.destination {
        // Settings as written: a secret is the env_var() call, never its value.
        obj.insert("destination".into(), json!(spec));
        obj.insert(
            "depends_on".into(),
            json!({"macros": [], "nodes": node.depends_on_nodes}),
        );
        return v;
    }
    let macros: Vec<&str> = node
        .depends_on_macros
        .iter()
        .map(|m| macro_ids.get(m).map_or(m.as_str(), String::as_str))
        .collect();
    obj.insert("language".into(), json!("sql"));
    obj.insert("raw_code".into(), json!(node.raw_code));
    obj.insert("compiled".into(), json!(node.compiled_code.is_some()));
    obj.insert("compiled_code".into(), json!(node.compiled_code));
    obj.insert(
        "compiled_path".into(),
        json!(crate::artifacts::compiled_path(node).map(|p| format!("{target_path}/{p}"))),
    );
    obj.insert(
        "depends_on".into(),
        json!({"macros": macros, "nodes": node.depends_on_nodes}),
    );
    obj.insert(
        "refs".into(),
        json!(node
            .refs
            .iter()
            .map(|r| json!({"name": r.name, "package": r.package, "version": null}))
            .collect::<Vec<_>>()),
    );
    obj.insert(
        "sources".into(),
        json!(node.sources.iter().map(|(s, t)| [s, t]).collect::<Vec<_>>()),
    );
    obj.insert("vars".into(), json!(node.vars));
    obj.insert("env_vars".into(), json!(node.env_vars));
    if let Some(t) = &node.test_metadata {
        obj.insert(
            "test_metadata".into(),
            json!({"name": t.name, "kwargs": t.kwargs, "namespace": null}),
        );
        obj.insert("column_name".into(), json!(t.column_name));
        obj.insert("attached_node".into(), json!(t.attached_node));
    }
    v
}

/// One node ready to write: its section, id, and its JSON, parents and children, serialized.
type Entry<'a> = (usize, &'a String, Vec<u8>, Vec<u8>, Vec<u8>);

/// Writes the manifest of a successful compilation to `path` (atomically). Nodes are
/// serialized in parallel and streamed into the file section by section, so a large project
/// never holds the whole document as a JSON tree; the output is compact JSON with keys in a
/// fixed order.
pub fn write(
    path: &std::path::Path,
    compilation: &Compilation,
    graph: &Graph,
    invocation: &Invocation,
) -> std::io::Result<()> {
    use rayon::prelude::*;
    use std::io::Write;

    let project = compilation.project.as_ref();
    let target = compilation.target.as_ref();
    let project_name = project.map(|p| p.file.name.as_str()).unwrap_or_default();
    let target_path = project.map_or("target", |p| p.file.target_path.as_str());
    let mut macro_ids = BTreeMap::new();
    let mut macros = BTreeMap::new();
    for m in &compilation.macros {
        let package = if m.path.starts_with('<') {
            "ebb"
        } else {
            project_name
        };
        let uid = format!("macro.{package}.{}", m.name);
        macro_ids.insert(m.name.clone(), uid.clone());
        macros.insert(uid.clone(), json!({"unique_id": uid, "name": m.name, "package_name": package, "original_file_path": m.path, "line": m.line}));
    }
    let section = |t: &ResourceType| match t {
        ResourceType::Source => 1,
        ResourceType::Sync => 2,
        ResourceType::Destination => 3,
        _ => 0,
    };
    // (section, id, serialized node, parents, children), in id order.
    let entries: Vec<Entry<'_>> = graph
        .nodes
        .par_iter()
        .map(|(id, node)| {
            let body =
                serde_json::to_vec(&node_json(node, &macro_ids, target_path)).unwrap_or_default();
            let parents =
                serde_json::to_vec(&graph.neighbors(id, Direction::Incoming)).unwrap_or_default();
            let children =
                serde_json::to_vec(&graph.neighbors(id, Direction::Outgoing)).unwrap_or_default();
            (section(&node.resource_type), id, body, parents, children)
        })
        .collect();
    let metadata = json!({
        "ebb_schema_version": SCHEMA_VERSION,
        "ebb_version": env!("CARGO_PKG_VERSION"),
        "generated_at": invocation.generated_at,
        "invocation_id": invocation.invocation_id,
        "project_name": project_name,
        "project_version": project.and_then(|p| p.file.version.clone()),
        "adapter_type": target.map(|t| t.adapter_type.as_str()),
        "target_name": target.map(|t| t.name.as_str()),
        "git": invocation.git,
    });

    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, fs_err::File::create(&tmp)?);
    let key = |out: &mut std::io::BufWriter<fs_err::File>,
               first: &mut bool,
               k: &str|
     -> std::io::Result<()> {
        if !std::mem::take(first) {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, k)?;
        out.write_all(b":")
    };
    let mut first = true;
    out.write_all(b"{")?;
    key(&mut out, &mut first, "metadata")?;
    serde_json::to_writer(&mut out, &metadata)?;
    for (name, which) in [
        ("nodes", 0),
        ("sources", 1),
        ("syncs", 2),
        ("destinations", 3),
    ] {
        key(&mut out, &mut first, name)?;
        out.write_all(b"{")?;
        let mut inner = true;
        for (s, id, body, _, _) in &entries {
            if *s == which {
                key(&mut out, &mut inner, id)?;
                out.write_all(body)?;
            }
        }
        out.write_all(b"}")?;
    }
    key(&mut out, &mut first, "macros")?;
    serde_json::to_writer(&mut out, &macros)?;
    for (name, parents) in [("parent_map", true), ("child_map", false)] {
        key(&mut out, &mut first, name)?;
        out.write_all(b"{")?;
        let mut inner = true;
        for (_, id, _, p, c) in &entries {
            key(&mut out, &mut inner, id)?;
            out.write_all(if parents { p } else { c })?;
        }
        out.write_all(b"}")?;
    }
    out.write_all(b"}\n")?;
    out.flush()?;
    drop(out);
    fs_err::rename(&tmp, path)
}
