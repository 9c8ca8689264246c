//! `ebb run`: materialize the selected models as views and tables, in DAG order, in parallel up
//! to `--threads`. A failing model skips its descendants; the rest of the run goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Instant, SystemTime};

use super::compile::{compile_project, settings_target, write_artifacts, write_json};
use super::connect::{connect, report, runtime, summarize, WarehouseArgs};
use super::settings::Settings;
use crate::error::Error;
use crate::exec::{self, Outcome, Status};
use crate::graph::{select, Node, ResourceType};
use crate::output::Printer;
use crate::warehouse::materialize::{materialize, Materialization};

/// Tells whether a node is a model that `run` builds (ephemeral models are inlined instead).
fn is_built(node: &Node) -> bool {
    node.resource_type == ResourceType::Model && !node.is_ephemeral()
}

/// Formats a database error on a model: the file, the compiled SQL line the database blamed,
/// and the message.
fn model_error(node: &Node, err: &crate::warehouse::Error) -> String {
    match err {
        crate::warehouse::Error::Query {
            message,
            line: Some(line),
        } => {
            let compiled = crate::artifacts::compiled_path(node)
                .map_or(String::new(), |p| format!(" (target/{p}:{line})"));
            format!(
                "database error in `{}`{compiled}: {message}",
                node.original_file_path
            )
        }
        other => format!("database error in `{}`: {other}", node.original_file_path),
    }
}

/// Runs `ebb run`.
pub(super) fn run(args: &WarehouseArgs, printer: &Printer) -> Result<(), Error> {
    let started = Instant::now();
    let settings = Settings::resolve(&args.project)?;
    let compilation = compile_project(&settings, printer)?;
    let graph = compilation
        .graph
        .as_ref()
        .ok_or_else(|| Error::Io("no graph".into()))?;
    let selected = select::select(graph, &settings.select, &settings.exclude)?;
    write_artifacts(
        settings_target(&settings, &compilation),
        &compilation,
        &settings,
        &selected,
    )?;
    let models: BTreeSet<String> = selected
        .iter()
        .filter(|id| is_built(&graph.nodes[*id]))
        .cloned()
        .collect();
    let threads = args
        .threads
        .or(compilation.target.as_ref().map(|t| t.threads))
        .unwrap_or(4);
    // Parents within the run: a model waits for the built models it depends on, looking
    // through ephemeral models, which have no relation of their own.
    let parents: BTreeMap<String, BTreeSet<String>> = models
        .iter()
        .map(|id| {
            let mut found = BTreeSet::new();
            let mut stack: Vec<&String> = graph.nodes[id].depends_on_nodes.iter().collect();
            while let Some(p) = stack.pop() {
                let Some(n) = graph.nodes.get(p) else {
                    continue;
                };
                if models.contains(p) {
                    found.insert(p.clone());
                } else if n.is_ephemeral() {
                    stack.extend(n.depends_on_nodes.iter());
                }
            }
            (id.clone(), found)
        })
        .collect();

    let rt = runtime()?;
    let outcomes = rt.block_on(async {
        let wh = connect(&settings, &compilation, printer, threads, &[]).await?;
        let schemas: BTreeSet<String> = models
            .iter()
            .filter_map(|id| graph.nodes[id].relation.as_ref())
            .map(|r| r.schema.clone())
            .collect();
        for schema in &schemas {
            wh.ensure_schema(schema).await?;
        }
        let results = exec::run(
            parents,
            threads,
            |id| {
                let wh = wh.clone();
                let node = graph.nodes[&id].clone();
                async move {
                    let start = (SystemTime::now(), Instant::now());
                    let (Some(rel), Some(sql)) = (&node.relation, &node.compiled_code) else {
                        return Outcome::finished(
                            Status::Error,
                            start,
                            None,
                            Some("model was not compiled".into()),
                        );
                    };
                    let how = if node.config.materialized() == "view" {
                        Materialization::View
                    } else {
                        Materialization::Table
                    };
                    match materialize(&wh, how, rel, sql).await {
                        Ok(rows) => Outcome::finished(
                            Status::Success,
                            start,
                            (how == Materialization::Table).then_some(rows),
                            None,
                        ),
                        Err(e) => Outcome::finished(
                            Status::Error,
                            start,
                            None,
                            Some(model_error(&node, &e)),
                        ),
                    }
                }
            },
            |id, outcome| report(printer, graph, id, outcome),
        )
        .await;
        wh.close().await;
        Ok::<_, Error>(results)
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let results = crate::artifacts::run_results::build(
        "run",
        graph,
        &outcomes,
        &settings.invocation,
        compilation.target.as_ref(),
        elapsed,
    );
    write_json(
        &settings_target(&settings, &compilation).join("run_results.json"),
        &results,
    )?;
    summarize(printer, &outcomes, elapsed)
}
