//! What `run`, `build` and `plan` share for syncs: opening the state file, building one lane
//! per destination (its settings resolved, its connector made), turning each sync node into
//! an engine job, and reporting progress as bars, plain lines or JSON lines.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use super::settings::Settings;
use crate::error::Error;
use crate::exec::{Outcome, Status};
use crate::graph::{Graph, Node, ResourceType};
use crate::output::{Format, Printer};
use crate::spec::project::StateConfig;
use crate::sync::engine::{self, Context, Job, Lane, Options, Report};
use crate::sync::state::{FileState, StateStore, WarehouseState};
use crate::sync::{connector, setup};
use crate::warehouse::Warehouse;

/// The syncs of one run, ready to start.
pub(super) struct Syncs {
    pub cx: Arc<Context>,
    lanes: HashMap<String, Result<Arc<Lane>, String>>,
}

/// Opens the state store the project asks for: the state file, or the state tables in the
/// warehouse (`wh`, which must then be given).
pub(super) async fn open_state(
    settings: &Settings,
    config: &StateConfig,
    wh: Option<&Warehouse>,
) -> Result<StateStore, Error> {
    match (config, wh) {
        (StateConfig::File { path }, _) => {
            let path = settings.project_dir.join(path);
            FileState::open(&path)
                .map(StateStore::File)
                .map_err(Error::Io)
        }
        (StateConfig::Warehouse { schema }, Some(wh)) => WarehouseState::open(wh.clone(), schema)
            .await
            .map(StateStore::Warehouse)
            .map_err(|e| Error::usage(e, "see docs/syncs.md, \"State\"")),
        (StateConfig::Warehouse { .. }, None) => Err(Error::Io(
            "state in the warehouse needs a warehouse connection".into(),
        )),
    }
}

/// Finds the destination node a sync writes to.
fn destination_of<'g>(graph: &'g Graph, sync: &Node) -> Option<&'g Node> {
    let name = &sync.sync.as_ref()?.destination;
    graph
        .nodes
        .values()
        .find(|n| n.resource_type == ResourceType::Destination && n.name == *name)
}

/// Builds the context and, unless planning, one lane per destination the syncs write to. A
/// destination whose settings or connection fail gets an error lane: its syncs fail with that
/// message and nothing is sent; the other syncs go on.
#[allow(clippy::too_many_arguments)]
pub(super) async fn prepare(
    settings: &Settings,
    graph: &Graph,
    sync_ids: &BTreeSet<String>,
    wh: Warehouse,
    state: StateStore,
    options: Options,
    cancel: Arc<AtomicBool>,
    printer: &Printer,
) -> Syncs {
    let templates = setup::templates(settings.options.env.clone());
    let mut lanes = HashMap::new();
    if !options.plan {
        let destinations: BTreeMap<&str, &Node> = sync_ids
            .iter()
            .filter_map(|id| destination_of(graph, &graph.nodes[id]))
            .map(|n| (n.name.as_str(), n))
            .collect();
        for node in destinations.into_values() {
            let Some(dest) = &node.destination else {
                continue;
            };
            let lane = async {
                let resolved = setup::resolve(dest, &templates)?;
                let connector = connector::build(&dest.kind, &resolved, &settings.project_dir)
                    .await
                    .map_err(|e| {
                        format!(
                            "{}:{}: destination `{}`: {e} (nothing was sent)",
                            dest.path, dest.line, dest.name
                        )
                    })?;
                Ok::<_, String>(Arc::new(Lane::new(connector, dest)))
            }
            .await;
            lanes.insert(dest.name.clone(), lane);
        }
    }
    let git = settings.invocation.git.as_ref();
    let cx = Arc::new(Context {
        wh,
        state,
        templates,
        options,
        cancel,
        progress: Arc::new(ConsoleProgress::new(printer)),
        invocation: engine::Invocation {
            id: settings.invocation.invocation_id.clone(),
            commit: git.and_then(|g| g.commit.clone()),
            dirty: git.map(|g| g.dirty),
        },
    });
    Syncs { cx, lanes }
}

impl Syncs {
    /// The engine job of sync node `id`, and the lane it sends through (`None` for a plan);
    /// or, when it cannot start, the report that says why.
    pub fn job(&self, graph: &Graph, id: &str) -> Result<(Job, Option<Arc<Lane>>), Report> {
        let node = &graph.nodes[id];
        let (Some(spec), Some(dest)) = (
            node.sync.clone(),
            destination_of(graph, node).and_then(|d| d.destination.clone()),
        ) else {
            return Err(failed_report(
                node,
                "sync or destination missing from the graph",
            ));
        };
        let model = node
            .depends_on_nodes
            .iter()
            .filter_map(|d| graph.nodes.get(d))
            .find(|n| matches!(n.resource_type, ResourceType::Model | ResourceType::Seed))
            .and_then(|m| m.relation.clone())
            .filter(|r| r.cte.is_none());
        let Some(model) = model else {
            return Err(failed_report(
                node,
                "its model has no table or view to read (ephemeral?)",
            ));
        };
        let lane = if self.cx.options.plan {
            None
        } else {
            match self.lanes.get(&dest.name) {
                Some(Ok(lane)) => Some(lane.clone()),
                Some(Err(e)) => return Err(failed_report(node, e)),
                None => return Err(failed_report(node, "no lane for its destination")),
            }
        };
        let job = Job {
            target: setup::target(&spec, &dest),
            spec,
            destination: dest,
            model,
        };
        Ok((job, lane))
    }
}

fn failed_report(node: &Node, message: &str) -> Report {
    let mut r = Report::empty(&node.name, "");
    r.outcome = engine::Outcome::Error;
    r.message = Some(message.to_string());
    r
}

/// Turns a sync's report into the outcome the run prints and records.
pub(super) fn outcome(report: &Report, started: (SystemTime, Instant)) -> Outcome {
    let status = match report.outcome {
        engine::Outcome::Success => Status::Success,
        engine::Outcome::Partial => Status::Warn,
        engine::Outcome::Error | engine::Outcome::Guarded | engine::Outcome::Interrupted => {
            Status::Error
        }
    };
    let mut o = Outcome::finished(status, started, Some(report.sent()), report.message.clone());
    o.detail = serde_json::to_value(report).ok().map(|mut v| {
        if let Some(m) = v.as_object_mut() {
            m.remove("samples");
        }
        v
    });
    o
}

/// Progress of running syncs: a bar per sync on a terminal, a line every few seconds
/// otherwise, JSON lines with `--output json`.
pub(super) struct ConsoleProgress {
    printer: Printer,
    bars: Option<indicatif::MultiProgress>,
    running: Mutex<HashMap<String, Running>>,
}

struct Running {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    acked: u64,
    rejected: u64,
    last_line: Instant,
}

impl ConsoleProgress {
    pub fn new(printer: &Printer) -> Self {
        let bars =
            (printer.format == Format::Text && !printer.quiet && std::io::stderr().is_terminal())
                .then(indicatif::MultiProgress::new);
        ConsoleProgress {
            printer: printer.clone(),
            bars,
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl engine::Progress for ConsoleProgress {
    fn start(&self, sync: &str, total: u64) {
        let bar = self.bars.as_ref().filter(|_| total > 0).map(|m| {
            let bar = m.add(indicatif::ProgressBar::new(total));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>24} [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(sync.to_string());
            bar
        });
        match self.printer.format {
            Format::Json => self.printer.json(&serde_json::json!({
                "event": "sync_started", "sync": sync, "rows_to_send": total,
            })),
            Format::Text if bar.is_none() && total > 0 => self
                .printer
                .message(&format!("      sync {sync}: sending {total} changed rows")),
            Format::Text => {}
        }
        if let Ok(mut r) = self.running.lock() {
            r.insert(
                sync.to_string(),
                Running {
                    bar,
                    total,
                    acked: 0,
                    rejected: 0,
                    last_line: Instant::now(),
                },
            );
        }
    }

    fn advance(&self, sync: &str, acked: u64, rejected: u64) {
        let Ok(mut all) = self.running.lock() else {
            return;
        };
        let Some(r) = all.get_mut(sync) else { return };
        r.acked += acked;
        r.rejected += rejected;
        if let Some(bar) = &r.bar {
            bar.inc(acked + rejected);
            return;
        }
        match self.printer.format {
            Format::Json => self.printer.json(&serde_json::json!({
                "event": "sync_progress", "sync": sync, "acknowledged": r.acked,
                "rejected": r.rejected, "rows_to_send": r.total,
            })),
            Format::Text => {
                if r.last_line.elapsed().as_secs_f64() >= 2.0 {
                    r.last_line = Instant::now();
                    self.printer.message(&format!(
                        "      sync {sync}: {}/{} rows answered",
                        r.acked + r.rejected,
                        r.total
                    ));
                }
            }
        }
    }

    fn finish(&self, sync: &str, _report: &Report) {
        if let Ok(mut all) = self.running.lock() {
            if let Some(Running { bar: Some(bar), .. }) = all.remove(sync) {
                bar.finish_and_clear();
            }
        }
    }
}

/// The sync ids among `ids`.
pub(super) fn sync_ids(graph: &Graph, ids: &BTreeSet<String>) -> BTreeSet<String> {
    ids.iter()
        .filter(|id| graph.nodes[*id].resource_type == ResourceType::Sync)
        .cloned()
        .collect()
}

/// Tests attached to the models the given syncs read: in `ebb run`, a failing one stops the
/// sync.
pub(super) fn gate_tests(graph: &Graph, syncs: &BTreeSet<String>) -> BTreeSet<String> {
    let models: HashSet<&String> = syncs
        .iter()
        .flat_map(|id| graph.nodes[id].depends_on_nodes.iter())
        .filter(|d| {
            graph.nodes.get(*d).is_some_and(|n| {
                matches!(n.resource_type, ResourceType::Model | ResourceType::Seed)
            })
        })
        .collect();
    graph
        .nodes
        .values()
        .filter(|n| n.resource_type == ResourceType::Test)
        .filter(|n| {
            n.test_metadata
                .as_ref()
                .and_then(|t| t.attached_node.as_ref())
                .is_some_and(|a| models.contains(a))
        })
        .map(|n| n.unique_id.clone())
        .collect()
}
