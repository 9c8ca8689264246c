//! `ebb ls`: list the selected nodes, as text (one per line) or JSON (one object per line).

use clap::Args;
use serde_json::json;

use super::compile::compile_project;
use super::settings::Settings;
use super::{ProjectArgs, RevArgs};
use crate::error::Error;
use crate::graph::{select, Node, ResourceType};
use crate::output::{Format, Printer};

/// Flags of `ebb ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub rev: RevArgs,
    /// Only list nodes of this type: model, seed, source or test
    #[arg(long, value_name = "TYPE")]
    pub resource_type: Option<String>,
}

fn line(node: &Node) -> String {
    match node.resource_type {
        ResourceType::Source => format!("source:{}", node.fqn.join(".")),
        ResourceType::Sync => format!("sync:{}", node.fqn.join(".")),
        ResourceType::Destination => format!("destination:{}.{}", node.package_name, node.name),
        _ => node.fqn.join("."),
    }
}

fn object(node: &Node) -> serde_json::Value {
    json!({
        "name": node.name,
        "resource_type": node.resource_type,
        "unique_id": node.unique_id,
        "package_name": node.package_name,
        "original_file_path": node.original_file_path,
        "fqn": node.fqn,
        "relation_name": node.relation.as_ref().filter(|r| r.cte.is_none()).map(ToString::to_string),
        "depends_on": {"nodes": node.depends_on_nodes},
        "config": {
            "materialized": node.config.str("materialized"),
            "tags": node.config.tags(),
            "schema": node.config.str("schema"),
            "alias": node.config.str("alias"),
            "enabled": node.config.enabled(),
        },
    })
}

/// Runs `ebb ls`.
pub(super) fn run(args: &LsArgs, printer: &Printer) -> Result<(), Error> {
    let wanted = match &args.resource_type {
        None => None,
        Some(t) => Some(ResourceType::parse(t).ok_or_else(|| {
            Error::usage(
                format!("unknown resource type `{t}`"),
                "use one of: model, seed, source, test",
            )
        })?),
    };
    let settings = Settings::resolve(&args.project)?.at_revision(args.rev.rev.as_deref())?;
    let compilation = compile_project(&settings, printer)?;
    let Some(graph) = &compilation.graph else {
        return Err(Error::Io("compilation produced no graph".into()));
    };
    let selected = select::select(graph, &settings.select, &settings.exclude)?;
    let mut nodes: Vec<&Node> = selected
        .iter()
        .filter_map(|id| graph.nodes.get(id))
        .filter(|n| wanted.is_none_or(|w| n.resource_type == w))
        .collect();
    nodes.sort_by_key(|n| (n.resource_type, n.fqn.join(".")));
    for node in nodes {
        match printer.format {
            Format::Text => printer.data(&line(node)),
            Format::Json => printer.json(&object(node)),
        }
    }
    Ok(())
}
