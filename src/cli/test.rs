//! `ebb test`: run the selected data tests. A test is a query returning failing rows; it passes
//! with none, and fails (severity `error`) or warns (severity `warn`) otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use clap::Args;

use super::compile::{compile_project, settings_target, write_artifacts, write_json};
use super::connect::{connect, report, runtime, summarize, WarehouseArgs};
use super::settings::Settings;
use crate::error::Error;
use crate::exec::{self, Outcome, Status};
use crate::graph::{select, ResourceType};
use crate::output::Printer;
use crate::warehouse::materialize::{materialize, Materialization};

/// Flags of `ebb test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// Keep each failing test's rows in a table of `<schema>_dbt_test__audit`
    #[arg(long)]
    pub store_failures: bool,
    /// Also write the results as JUnit XML to FILE, for CI systems
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Runs `ebb test`.
pub(super) fn run(args: &TestArgs, printer: &Printer) -> Result<(), Error> {
    let started = Instant::now();
    let settings = Settings::resolve(&args.warehouse.project)?;
    let compilation = compile_project(&settings, printer)?;
    let graph = compilation
        .graph
        .as_ref()
        .ok_or_else(|| Error::Io("no graph".into()))?;
    let target = compilation
        .target
        .clone()
        .ok_or_else(|| Error::Io("no target".into()))?;
    let selected = select::select(graph, &settings.select, &settings.exclude)?;
    write_artifacts(
        settings_target(&settings, &compilation),
        &compilation,
        &settings,
        &selected,
    )?;
    let tests: BTreeMap<String, BTreeSet<String>> = selected
        .iter()
        .filter(|id| graph.nodes[*id].resource_type == ResourceType::Test)
        .map(|id| (id.clone(), BTreeSet::new()))
        .collect();
    let threads = args.warehouse.threads.unwrap_or(target.threads);
    let store_all = args.store_failures;

    let rt = runtime()?;
    let outcomes = rt.block_on(async {
        let audit_schema = format!("{}_dbt_test__audit", target.schema);
        let wh = connect(
            &settings,
            &compilation,
            printer,
            threads,
            std::slice::from_ref(&audit_schema),
        )
        .await?;
        let results = exec::run(
            tests,
            threads,
            |id| {
                let wh = wh.clone();
                let node = graph.nodes[&id].clone();
                let audit_schema = audit_schema.clone();
                let database = target.database.clone();
                async move {
                    let start = (SystemTime::now(), Instant::now());
                    let Some(sql) = node.compiled_code.as_deref() else {
                        return Outcome::finished(
                            Status::Error,
                            start,
                            None,
                            Some("test was not compiled".into()),
                        );
                    };
                    let body = sql.trim_end().trim_end_matches(';');
                    let count = match wh
                        .count(&format!("select count(*) from (\n{body}\n) ebb_test"))
                        .await
                    {
                        Ok(n) => u64::try_from(n).unwrap_or(0),
                        Err(e) => {
                            let msg = format!(
                                "test `{}` ({}) could not run: {e}",
                                node.name, node.original_file_path
                            );
                            return Outcome::finished(Status::Error, start, None, Some(msg));
                        }
                    };
                    if count == 0 {
                        return Outcome::finished(Status::Pass, start, Some(0), None);
                    }
                    let warn = node
                        .config
                        .str("severity")
                        .is_some_and(|s| s.eq_ignore_ascii_case("warn"));
                    let mut message = format!(
                        "got {count} failing row(s) from `{}`",
                        node.original_file_path
                    );
                    let store = store_all
                        || node
                            .config
                            .0
                            .get("store_failures")
                            .and_then(|v| v.as_bool())
                            .unwrap_or(false);
                    if store {
                        let rel = crate::render::relation::Relation {
                            database: database.clone(),
                            schema: audit_schema.clone(),
                            identifier: node.name.chars().take(60).collect(),
                            adapter: wh.adapter().to_string(),
                            cte: None,
                        };
                        let stored = match wh.ensure_schema(&rel.schema).await {
                            Ok(()) => materialize(&wh, Materialization::Table, &rel, body)
                                .await
                                .map(|_| ()),
                            Err(e) => Err(e),
                        };
                        match stored {
                            Ok(()) => message.push_str(&format!("; stored in {rel}")),
                            Err(e) => message.push_str(&format!("; could not store them: {e}")),
                        }
                    }
                    let status = if warn { Status::Warn } else { Status::Fail };
                    Outcome::finished(status, start, Some(count), Some(message))
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
        "test",
        graph,
        &outcomes,
        &settings.invocation,
        Some(&target),
        elapsed,
    );
    write_json(
        &settings_target(&settings, &compilation).join("run_results.json"),
        &results,
    )?;
    if let Some(path) = &args.junit {
        let xml = crate::artifacts::junit::render(graph, &outcomes, elapsed);
        fs_err::write(path, xml).map_err(|e| Error::Io(e.to_string()))?;
    }
    summarize(printer, &outcomes, elapsed)
}
