//! `ebb seed`: load the selected seeds' CSV files into the warehouse, replacing their tables.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::compile::{compile_project, settings_target, write_artifacts, write_json};
use super::connect::{connect, report, runtime, summarize, WarehouseArgs};
use super::settings::Settings;
use crate::error::Error;
use crate::exec::{self, Outcome, Status};
use crate::graph::{select, ResourceType};
use crate::output::Printer;
use crate::project::ProjectSource;
use crate::warehouse::seed;

/// Runs `ebb seed`.
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
    let seeds: Vec<String> = selected
        .iter()
        .filter(|id| graph.nodes[*id].resource_type == ResourceType::Seed)
        .cloned()
        .collect();
    let threads = args
        .threads
        .or(compilation.target.as_ref().map(|t| t.threads))
        .unwrap_or(4);

    // Read every CSV before connecting: a broken file is reported without touching the warehouse.
    let mut data = BTreeMap::new();
    for id in &seeds {
        let node = &graph.nodes[id];
        let bytes = settings
            .source
            .read(&node.original_file_path)
            .map_err(|e| Error::Io(format!("reading `{}`: {e}", node.original_file_path)))?
            .unwrap_or_default();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes.as_slice());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| Error::Io(format!("reading `{}`: {e}", node.original_file_path)))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| {
                Error::Io(format!("`{}` line {}: {e}", node.original_file_path, i + 2))
            })?;
            rows.push(record.iter().map(str::to_string).collect::<Vec<_>>());
        }
        let overrides: BTreeMap<String, String> = node
            .config
            .0
            .get("column_types")
            .and_then(|v| v.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        data.insert(id.clone(), Arc::new((header, rows, overrides)));
    }

    let rt = runtime()?;
    let outcomes = rt.block_on(async {
        let wh = connect(&settings, &compilation, printer, threads, &[]).await?;
        // Concurrent `create schema if not exists` can race on Postgres: create them first.
        let schemas: BTreeSet<String> = seeds
            .iter()
            .filter_map(|id| graph.nodes[id].relation.as_ref())
            .map(|r| r.schema.clone())
            .collect();
        for schema in &schemas {
            wh.ensure_schema(schema).await?;
        }
        let parents: BTreeMap<String, BTreeSet<String>> = seeds
            .iter()
            .map(|id| (id.clone(), BTreeSet::new()))
            .collect();
        let results = exec::run(
            parents,
            threads,
            |id| {
                let wh = wh.clone();
                let rel = graph.nodes[&id].relation.clone();
                let data = data[&id].clone();
                async move {
                    let start = (SystemTime::now(), Instant::now());
                    let Some(rel) = rel else {
                        return Outcome::finished(
                            Status::Error,
                            start,
                            None,
                            Some("seed has no relation".into()),
                        );
                    };
                    match seed::load(&wh, &rel, &data.0, &data.1, &data.2).await {
                        Ok(n) => Outcome::finished(Status::Success, start, Some(n), None),
                        Err(e) => {
                            Outcome::finished(Status::Error, start, None, Some(e.to_string()))
                        }
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
        "seed",
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
