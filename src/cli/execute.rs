//! The shared body of `seed`, `run`, `test` and `build`: compile, select, read seeds, connect,
//! run the chosen nodes in DAG order, then write run_results.json (and JUnit XML) and decide
//! the exit code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use super::compile::{compile_project, settings_target, write_artifacts, write_json};
use super::connect::{connect, report, runtime, summarize, WarehouseArgs};
use super::settings::Settings;
use super::syncs;
use crate::error::Error;
use crate::exec::{self, tasks};
use crate::graph::{select, Graph, ResourceType};
use crate::output::Printer;
use crate::project::ProjectSource;
use crate::render::relation::Relation;
use crate::sync::engine::Options as SyncOptions;
use crate::warehouse::seed::SeedData;
use std::sync::atomic::{AtomicBool, Ordering};

/// Flags of `ebb test` and `ebb build`.
#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// Keep each failing test's rows in a table of `<schema>_dbt_test__audit`
    #[arg(long)]
    pub store_failures: bool,
    /// Also write the test results as JUnit XML to FILE, for CI systems
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Flags of commands that deliver syncs (`run`, `build`).
#[derive(Debug, Args, Clone, Default)]
pub struct SyncArgs {
    /// Send every row of the selected syncs again, whatever was delivered before
    #[arg(long)]
    pub full_refresh: bool,
    /// Stop starting new nodes after the first error (nodes running finish)
    #[arg(long)]
    pub fail_fast: bool,
    /// Lift the guards (max_deletes, max_changes) of these syncs for this run
    #[arg(long, num_args = 1.., value_name = "SYNC")]
    pub skip_guards: Vec<String>,
}

/// Flags of `ebb run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Flags of `ebb build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub test: TestArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Which kinds of nodes a command runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kinds {
    pub seeds: bool,
    pub models: bool,
    pub tests: bool,
}

fn chosen(
    graph: &Graph,
    selected: &BTreeSet<String>,
    kinds: Kinds,
    deliver: bool,
) -> BTreeSet<String> {
    selected
        .iter()
        .filter(|id| {
            let n = &graph.nodes[*id];
            match n.resource_type {
                ResourceType::Seed => kinds.seeds,
                ResourceType::Model => kinds.models && tasks::is_built_model(n),
                ResourceType::Test => kinds.tests,
                // A sync is delivered by run and build; test checks its contract.
                ResourceType::Sync => kinds.tests || deliver,
                ResourceType::Source | ResourceType::Destination => false,
            }
        })
        .cloned()
        .collect()
}

/// A node waits for its parents; when tests run too, a node also waits for the tests of its
/// parents, so a failing test stops what is built on bad data (as `dbt build` does).
fn dependencies(graph: &Graph, ids: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut parents = tasks::parents_within(graph, ids);
    // Generic tests by the node they are attached to.
    let mut tests_of: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for id in ids {
        let attached = graph.nodes[id]
            .test_metadata
            .as_ref()
            .and_then(|t| t.attached_node.as_deref());
        if let Some(attached) = attached {
            tests_of.entry(attached).or_default().push(id);
        }
    }
    let extra: Vec<(String, Vec<String>)> = parents
        .iter()
        .filter(|(id, _)| graph.nodes[*id].resource_type != ResourceType::Test)
        .map(|(id, ps)| {
            let tests = ps
                .iter()
                .flat_map(|p| tests_of.get(p.as_str()).cloned().unwrap_or_default())
                // A test that also reads this node (a relationships test pointing down) would
                // make a cycle; it runs after this node instead.
                .filter(|t| !graph.nodes[*t].depends_on_nodes.contains(id))
                .cloned()
                .collect();
            (id.clone(), tests)
        })
        .collect();
    for (id, tests) in extra {
        parents.entry(id).or_default().extend(tests);
    }
    parents
}

/// Runs `command` over the selected nodes of `kinds`.
pub(super) fn execute(
    command: &str,
    args: &WarehouseArgs,
    kinds: Kinds,
    store_failures: bool,
    junit: Option<&std::path::Path>,
    deliver: Option<&SyncArgs>,
    printer: &Printer,
) -> Result<(), Error> {
    let started = Instant::now();
    let settings = Settings::resolve(&args.project)?;
    if args.require_clean {
        settings.require_clean()?;
    }
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
    let target_dir = settings_target(&settings, &compilation);
    write_artifacts(target_dir.clone(), &compilation, &settings, &selected)?;
    let mut ids = chosen(graph, &selected, kinds, deliver.is_some());
    let delivered = syncs::sync_ids(graph, &ids);
    if deliver.is_some() && !kinds.tests {
        // A failing test on a sync's model stops the sync, in `run` too.
        ids.extend(syncs::gate_tests(graph, &delivered));
    }
    let state_config = compilation
        .project
        .as_ref()
        .map(|p| p.file.state.clone())
        .unwrap_or_default();
    let threads = args.threads.unwrap_or(target.threads).max(1);

    // Read every seed before connecting: a broken CSV is reported with nothing touched.
    let mut seeds: BTreeMap<String, Arc<SeedData>> = BTreeMap::new();
    for id in ids
        .iter()
        .filter(|id| graph.nodes[*id].resource_type == ResourceType::Seed)
    {
        let node = &graph.nodes[id];
        let path = &node.original_file_path;
        let bytes = settings
            .source
            .read(path)
            .map_err(|e| Error::Io(format!("reading `{path}`: {e}")))?
            .unwrap_or_default();
        let overrides = node
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
        let data = SeedData::read(&bytes, overrides)
            .map_err(|e| Error::Io(format!("reading `{path}`: {e}")))?;
        seeds.insert(id.clone(), Arc::new(data));
    }
    let audit = Relation {
        database: target.database.clone(),
        schema: format!("{}_dbt_test__audit", target.schema),
        identifier: String::new(),
        adapter: target.adapter_type.clone(),
        cte: None,
    };
    let parents = dependencies(graph, &ids);

    // The audit schema is only made (for SQLite: attached as a file) when failures are kept.
    let keeps_failures = |id: &String| {
        graph.nodes[id]
            .config
            .0
            .get("store_failures")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    };
    let audit_schemas = if store_failures || ids.iter().any(keeps_failures) {
        vec![audit.schema.clone()]
    } else {
        Vec::new()
    };

    let control = exec::Control {
        stop: Arc::new(AtomicBool::new(false)),
        fail_fast: deliver.is_some_and(|d| d.fail_fast),
    };
    let rt = runtime()?;
    let outcomes = rt.block_on(async {
        let wh = connect(&settings, &compilation, printer, threads, &audit_schemas).await?;
        let stop = control.stop.clone();
        let interrupt = printer.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
                interrupt.message("interrupted: finishing the batches in flight, then stopping (Ctrl-C again to kill)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let state = match deliver {
            Some(_) if !delivered.is_empty() => {
                Some(syncs::open_state(&settings, &state_config, Some(&wh)).await?)
            }
            _ => None,
        };
        let sync_run = match (deliver, state) {
            (Some(args), Some(state)) => Some(
                syncs::prepare(
                    &settings,
                    graph,
                    &delivered,
                    wh.clone(),
                    state,
                    SyncOptions {
                        plan: false,
                        full_refresh: args.full_refresh,
                        skip_guards: args.skip_guards.iter().cloned().collect(),
                    },
                    control.stop.clone(),
                    printer,
                )
                .await,
            ),
            _ => None,
        };
        // Concurrent `create schema if not exists` can race on Postgres: create them first.
        let schemas: BTreeSet<&str> = ids
            .iter()
            .filter_map(|id| graph.nodes[id].relation.as_ref())
            .map(|r| r.schema.as_str())
            .collect();
        for schema in schemas {
            wh.ensure_schema(schema).await?;
        }
        let results = exec::run_with(
            parents,
            threads,
            &control,
            |id| {
                let wh = wh.clone();
                let node = graph.nodes[&id].clone();
                let seed = seeds.get(&id).cloned();
                let model = node
                    .depends_on_nodes
                    .iter()
                    .filter_map(|d| graph.nodes.get(d))
                    .find(|n| matches!(n.resource_type, ResourceType::Model | ResourceType::Seed))
                    .cloned();
                let store = (store_failures
                    || node
                        .config
                        .0
                        .get("store_failures")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false))
                .then(|| audit.clone());
                let job = sync_run
                    .as_ref()
                    .filter(|_| node.resource_type == ResourceType::Sync)
                    .map(|s| (s.cx.clone(), s.job(graph, &id)));
                async move {
                    if let Some((cx, job)) = job {
                        let start = (std::time::SystemTime::now(), Instant::now());
                        let report = match job {
                            Ok((job, lane)) => crate::sync::engine::run(cx, job, lane).await,
                            Err(report) => {
                                crate::sync::engine::record_failure(&cx, &report).await;
                                report
                            }
                        };
                        return syncs::outcome(&report, start);
                    }
                    match node.resource_type {
                        ResourceType::Seed => {
                            tasks::load_seed(wh, node, seed.unwrap_or_default()).await
                        }
                        ResourceType::Test => tasks::run_test(wh, node, store).await,
                        ResourceType::Sync => tasks::check_sync(wh, node, model).await,
                        _ => tasks::build_model(wh, node).await,
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
        command,
        graph,
        &outcomes,
        &settings.invocation,
        Some(&target),
        elapsed,
    );
    write_json(&target_dir.join("run_results.json"), &results)?;
    if let Some(path) = junit {
        let tests: BTreeMap<String, exec::Outcome> = outcomes
            .iter()
            .filter(|(id, _)| {
                matches!(
                    graph.nodes[*id].resource_type,
                    ResourceType::Test | ResourceType::Sync
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let xml = crate::artifacts::junit::render(graph, &tests, elapsed);
        fs_err::write(path, xml).map_err(|e| Error::Io(e.to_string()))?;
    }
    let summary = summarize(printer, &outcomes, elapsed);
    if control.stop.load(Ordering::Relaxed) && !control.fail_fast {
        return Err(Error::Interrupted);
    }
    summary
}
