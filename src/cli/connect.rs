//! What the warehouse commands share: flags, connecting to the target of a compiled project,
//! and printing one line per node as it finishes.

use std::collections::BTreeSet;

use clap::Args;

use super::settings::Settings;
use super::ProjectArgs;
use crate::compile::Compilation;
use crate::error::Error;
use crate::exec::{Outcome, Status};
use crate::graph::Graph;
use crate::output::{Format, Printer};
use crate::render::{Inputs, Renderer};
use crate::warehouse::{Connection, Warehouse};

/// Flags of commands that talk to the warehouse.
#[derive(Debug, Args, Clone)]
pub struct WarehouseArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// How many nodes to run at once (default: the target's `threads`)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Refuse to run unless the project is in a git work tree with no uncommitted changes
    #[arg(long)]
    pub require_clean: bool,
}

/// Returns a multi-threaded tokio runtime for one command.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("starting the runtime: {e}")))
}

/// Connects to the target of `compilation`: renders its settings (resolving `env_var()`),
/// attaches or creates what the graph's relations need. A missing variable is printed as a
/// diagnostic (exit 1); an unreachable warehouse is `Error::Unavailable` (exit 2).
pub(super) async fn connect(
    settings: &Settings,
    compilation: &Compilation,
    printer: &Printer,
    threads: usize,
    extra_schemas: &[String],
) -> Result<Warehouse, Error> {
    let target = compilation
        .target
        .as_ref()
        .ok_or_else(|| Error::Io("no target".into()))?;
    let renderer = Renderer::new(
        &[],
        Inputs {
            vars: Default::default(),
            env: settings.options.env.clone(),
        },
        target,
        &mut Vec::new(),
    );
    let profiles = settings
        .options
        .profiles
        .as_ref()
        .map(|p| (p.path.as_str(), p.text.as_str()));
    let connection = Connection::from_target(target, &settings.project_dir, profiles, &|s| renderer.render_str(s)).map_err(|d| {
        let text = profiles.map(|(_, t)| t);
        printer.diagnostics(std::slice::from_ref(&d), &|_| text);
        if printer.format == Format::Json {
            printer.json(&serde_json::json!({"success": false, "diagnostics": crate::output::diagnostics_json(std::slice::from_ref(&d))}));
        }
        Error::Project { errors: 1 }
    })?;
    let schemas: BTreeSet<String> = compilation
        .graph
        .iter()
        .flat_map(|g| g.nodes.values())
        .filter_map(|n| n.relation.as_ref())
        .map(|r| r.schema.clone())
        .chain([target.schema.clone()])
        .chain(extra_schemas.iter().cloned())
        .collect();
    let wh = Warehouse::connect(&connection, threads, &schemas).await?;
    Ok(wh)
}

/// Prints one finished node: a line on stderr, or a JSON object on stdout.
pub(super) fn report(printer: &Printer, graph: &Graph, id: &str, outcome: &Outcome) {
    let node = graph.nodes.get(id);
    let name = node.map_or(id.to_string(), |n| n.name.clone());
    match printer.format {
        Format::Json => {
            printer.json(&serde_json::json!({"unique_id": id, "name": name, "outcome": outcome}))
        }
        Format::Text => {
            let label = match outcome.status {
                Status::Success => "OK",
                Status::Pass => "PASS",
                Status::Error => "ERROR",
                Status::Fail => "FAIL",
                Status::Warn => "WARN",
                Status::Skipped => "SKIP",
            };
            let what = node.map_or(String::new(), |n| match n.resource_type {
                crate::graph::ResourceType::Model => n.config.materialized().to_string(),
                other => other.to_string(),
            });
            let mut line = format!("{label:<5} {what:<5} {name}");
            if let Some(d) = &outcome.detail {
                let n = |k: &str| d.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
                let changed = n("to_insert") + n("to_update") + n("to_delete");
                if changed == 0 && outcome.status == Status::Success {
                    line.push_str(&format!(" (nothing changed in {} rows)", n("rows")));
                } else if changed > 0 {
                    line.push_str(&format!(
                        " ({} inserted, {} updated, {} deleted, {} rejected of {changed} changed; {} requests)",
                        n("inserted"),
                        n("updated"),
                        n("deleted"),
                        n("rejected"),
                        n("requests")
                    ));
                }
            } else if let Some(rows) = outcome
                .rows
                .filter(|r| *r > 0 || outcome.status == Status::Success)
            {
                let noun =
                    if node.is_some_and(|n| n.resource_type == crate::graph::ResourceType::Test) {
                        "failing rows"
                    } else {
                        "rows"
                    };
                line.push_str(&format!(" ({rows} {noun})"));
            }
            line.push_str(&format!(" in {:.2}s", outcome.execution_time));
            if let Some(m) = outcome
                .message
                .as_deref()
                .filter(|_| outcome.status != Status::Success && outcome.status != Status::Pass)
            {
                line.push_str(&format!("\n      {m}"));
            }
            printer.message(&line);
        }
    }
}

/// Prints the summary line and returns `Error::Failed` when any node failed with an error.
pub(super) fn summarize(
    printer: &Printer,
    outcomes: &std::collections::BTreeMap<String, Outcome>,
    elapsed: f64,
) -> Result<(), Error> {
    let count = |s: Status| outcomes.values().filter(|o| o.status == s).count();
    let ok = count(Status::Success) + count(Status::Pass);
    let (errors, fails, warns, skipped) = (
        count(Status::Error),
        count(Status::Fail),
        count(Status::Warn),
        count(Status::Skipped),
    );
    let summary = format!("done in {elapsed:.2}s: {ok} ok, {warns} warned, {fails} failed, {errors} errored, {skipped} skipped");
    match printer.format {
        Format::Json => printer.json(&serde_json::json!({
            "success": errors + fails == 0,
            "summary": {"ok": ok, "warn": warns, "fail": fails, "error": errors, "skipped": skipped, "elapsed": elapsed},
        })),
        Format::Text => printer.message(&summary),
    }
    if errors + fails > 0 {
        return Err(Error::Failed(format!("{} node(s) failed", errors + fails)));
    }
    Ok(())
}
