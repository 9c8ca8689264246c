//! The report of `ebb diff`: what a change between two revisions does. Nodes added, removed and
//! modified (and how); per sync, destination fields added, removed and remapped, mode and key
//! changes; PII columns that newly reach a destination; and, for each changed model, seed or
//! source, the syncs downstream of it. Plain data, serialized as the JSON output and rendered as
//! text or Markdown by [`super::render`].

use std::collections::{BTreeMap, BTreeSet};

use petgraph::Direction;
use serde::Serialize;

use super::Comparison;
use crate::compile::{is_masked, is_pii, Compilation};
use crate::graph::state::Change;
use crate::graph::{Graph, Node, ResourceType};
use crate::spec::sync::SyncSpec;

/// One side of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    /// The revision as written, or `None` for the work tree.
    pub rev: Option<String>,
    /// Full commit id (for the work tree: `HEAD`, when there is one).
    pub commit: Option<String>,
    /// The work tree had uncommitted changes (always false for a revision).
    pub dirty: bool,
}

impl Revision {
    /// Returns how the revision is named in reports: `main (1a2b3c4)`, or `the work tree`.
    pub fn label(&self) -> String {
        let short = self.commit.as_deref().map(|c| &c[..c.len().min(7)]);
        // A revision written as a commit id is shown as the short id alone.
        let is_id = |rev: &str| {
            self.commit
                .as_deref()
                .is_some_and(|c| c.starts_with(&rev.to_ascii_lowercase()))
        };
        match (&self.rev, short) {
            (Some(rev), Some(c)) if is_id(rev) => c.to_string(),
            (Some(rev), Some(c)) => format!("{rev} ({c})"),
            (Some(rev), None) => rev.clone(),
            (None, _) if self.dirty => "the work tree (uncommitted changes)".into(),
            (None, Some(c)) => format!("the work tree ({c})"),
            (None, None) => "the work tree".into(),
        }
    }
}

/// Whether a node was added, removed or modified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Added,
    Modified,
    Removed,
}

/// How many nodes of one type were added, modified and removed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub added: usize,
    pub modified: usize,
    pub removed: usize,
}

/// A node that differs.
#[derive(Debug, Clone, Serialize)]
pub struct NodeChange {
    pub unique_id: String,
    pub resource_type: ResourceType,
    pub name: String,
    pub status: Status,
    /// For a modified node: what about it changed.
    pub changes: Vec<Change>,
    /// The file that defines it (in the head, or in the base when removed).
    pub path: String,
    /// For a destination: settings that changed, by name (values may be connection details).
    pub details: Vec<String>,
}

/// A setting that changed from one value to another (`None`: not set on that side).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FromTo {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A destination field and the model column or expression that fills it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    pub field: String,
    pub source: String,
}

/// A field filled from something else than before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remap {
    pub field: String,
    pub from: String,
    pub to: String,
}

/// A sync added, removed or modified, field by field.
#[derive(Debug, Clone, Serialize)]
pub struct SyncChange {
    pub name: String,
    pub status: Status,
    /// Where it writes (in the head, or in the base when removed).
    pub destination: String,
    pub object: String,
    pub fields_added: Vec<Field>,
    pub fields_removed: Vec<Field>,
    pub fields_remapped: Vec<Remap>,
    pub model: Option<FromTo>,
    pub destination_changed: Option<FromTo>,
    pub object_changed: Option<FromTo>,
    pub mode: Option<FromTo>,
    pub primary_key: Option<FromTo>,
    pub match_on: Option<FromTo>,
    /// Other settings that changed, by name (schedule, guards, batch_size, ...).
    pub other: Vec<String>,
}

/// A column documented as PII that reaches a destination field through a sync.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PiiFlow {
    pub sync: String,
    pub model: String,
    pub column: String,
    pub destination: String,
    pub object: String,
    pub field: String,
    /// The mapping applies a masking filter (`mask`, `sha256`, ...).
    pub masked: bool,
    /// The destination has `allow_pii: true`.
    pub allowed: bool,
}

/// A sync and where it writes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SyncTarget {
    pub name: String,
    pub destination: String,
    pub object: String,
    /// The sync itself was added or modified too.
    pub changed: bool,
}

/// A changed model, seed or source and the syncs downstream of it.
#[derive(Debug, Clone, Serialize)]
pub struct Impact {
    pub unique_id: String,
    pub resource_type: ResourceType,
    pub name: String,
    pub status: Status,
    pub syncs: Vec<SyncTarget>,
}

/// Everything `ebb diff` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub base: Revision,
    pub head: Revision,
    /// Counts by resource type (`models`, `seeds`, `sources`, `tests`, `syncs`, `destinations`).
    pub summary: BTreeMap<String, Counts>,
    /// Nodes that differ, data tests left out (they are counted in the summary).
    pub nodes: Vec<NodeChange>,
    pub syncs: Vec<SyncChange>,
    /// PII flows in the head that the base did not have (or had masked).
    pub new_pii_flows: Vec<PiiFlow>,
    pub impact: Vec<Impact>,
}

impl Report {
    /// Tells whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.summary
            .values()
            .all(|c| c.added + c.modified + c.removed == 0)
    }
}

/// Returns the plural used in the summary for a resource type.
pub fn plural(t: ResourceType) -> &'static str {
    match t {
        ResourceType::Model => "models",
        ResourceType::Seed => "seeds",
        ResourceType::Source => "sources",
        ResourceType::Test => "tests",
        ResourceType::Sync => "syncs",
        ResourceType::Destination => "destinations",
    }
}

/// Builds the report from two successful compilations and their comparison.
pub fn build(
    base: &Compilation,
    head: &Compilation,
    comparison: &Comparison,
    base_rev: Revision,
    head_rev: Revision,
) -> Report {
    let empty = Graph::build(BTreeMap::new()).0;
    let before = base.graph.as_ref().unwrap_or(&empty);
    let after = head.graph.as_ref().unwrap_or(&empty);

    let mut summary: BTreeMap<String, Counts> = BTreeMap::new();
    for t in [
        ResourceType::Model,
        ResourceType::Seed,
        ResourceType::Source,
        ResourceType::Test,
        ResourceType::Sync,
        ResourceType::Destination,
    ] {
        summary.insert(plural(t).into(), Counts::default());
    }
    let mut nodes = Vec::new();
    let mut changed: Vec<(&Node, Status, Vec<Change>)> = Vec::new();
    for id in &comparison.added {
        changed.push((&after.nodes[id], Status::Added, Vec::new()));
    }
    for (id, changes) in &comparison.modified {
        changed.push((
            &after.nodes[id],
            Status::Modified,
            changes.iter().copied().collect(),
        ));
    }
    for id in &comparison.removed {
        changed.push((&before.nodes[id], Status::Removed, Vec::new()));
    }
    for (node, status, changes) in changed {
        let counts = summary
            .entry(plural(node.resource_type).into())
            .or_default();
        match status {
            Status::Added => counts.added += 1,
            Status::Modified => counts.modified += 1,
            Status::Removed => counts.removed += 1,
        }
        if node.resource_type == ResourceType::Test {
            continue;
        }
        let details = match (status, node.resource_type) {
            (Status::Modified, ResourceType::Destination) => {
                destination_details(&before.nodes[&node.unique_id], node)
            }
            _ => Vec::new(),
        };
        nodes.push(NodeChange {
            unique_id: node.unique_id.clone(),
            resource_type: node.resource_type,
            name: node.display_name(),
            status,
            changes,
            path: node.original_file_path.clone(),
            details,
        });
    }
    nodes.sort_by(|a, b| {
        (a.resource_type, a.status, &a.name).cmp(&(b.resource_type, b.status, &b.name))
    });

    let syncs = nodes
        .iter()
        .filter(|n| n.resource_type == ResourceType::Sync)
        .filter_map(|n| {
            let old = before.nodes.get(&n.unique_id).and_then(|x| x.sync.as_ref());
            let new = after.nodes.get(&n.unique_id).and_then(|x| x.sync.as_ref());
            sync_change(n.status, old, new)
        })
        .collect();

    // A flow is new when the base had no such flow, or had it masked; a destination that
    // starts allowing PII is reported with the destination.
    let key = |f: &PiiFlow| {
        (
            f.sync.clone(),
            f.column.clone(),
            f.destination.clone(),
            f.object.clone(),
            f.field.clone(),
            f.masked,
        )
    };
    let flows_before: BTreeSet<_> = pii_flows(before).iter().map(key).collect();
    let new_pii_flows = pii_flows(after)
        .into_iter()
        .filter(|f| !flows_before.contains(&key(f)))
        .collect();

    let changed_syncs: BTreeSet<&str> = comparison
        .added
        .iter()
        .chain(comparison.modified.keys())
        .map(String::as_str)
        .collect();
    let impact = nodes
        .iter()
        .filter(|n| {
            n.status != Status::Removed
                && matches!(
                    n.resource_type,
                    ResourceType::Model | ResourceType::Seed | ResourceType::Source
                )
        })
        .filter_map(|n| {
            let syncs: Vec<SyncTarget> = after
                .walk(&n.unique_id, Direction::Outgoing, None)
                .iter()
                .filter_map(|id| after.nodes.get(id))
                .filter_map(|s| {
                    let spec = s.sync.as_ref()?;
                    Some(SyncTarget {
                        name: s.name.clone(),
                        destination: spec.destination.clone(),
                        object: spec.object.clone(),
                        changed: changed_syncs.contains(s.unique_id.as_str()),
                    })
                })
                .collect();
            (!syncs.is_empty()).then(|| Impact {
                unique_id: n.unique_id.clone(),
                resource_type: n.resource_type,
                name: n.name.clone(),
                status: n.status,
                syncs,
            })
        })
        .collect();

    Report {
        base: base_rev,
        head: head_rev,
        summary,
        nodes,
        syncs,
        new_pii_flows,
        impact,
    }
}

fn from_to(a: Option<&str>, b: Option<&str>) -> Option<FromTo> {
    (a != b).then(|| FromTo {
        from: a.map(str::to_string),
        to: b.map(str::to_string),
    })
}

/// Compares two versions of a sync (either may be missing: added or removed).
fn sync_change(
    status: Status,
    old: Option<&SyncSpec>,
    new: Option<&SyncSpec>,
) -> Option<SyncChange> {
    let spec = new.or(old)?;
    let fields = |s: Option<&SyncSpec>| -> BTreeMap<String, String> {
        s.map(|s| {
            s.mapping
                .iter()
                .map(|m| (m.field.clone(), m.source.clone()))
                .collect()
        })
        .unwrap_or_default()
    };
    let (before, after) = (fields(old), fields(new));
    let field = |(f, s): (&String, &String)| Field {
        field: f.clone(),
        source: s.clone(),
    };
    let fields_added = after
        .iter()
        .filter(|(f, _)| !before.contains_key(*f))
        .map(field)
        .collect();
    let fields_removed = before
        .iter()
        .filter(|(f, _)| !after.contains_key(*f))
        .map(field)
        .collect();
    let fields_remapped = after
        .iter()
        .filter_map(|(f, to)| {
            let from = before.get(f).filter(|from| *from != to)?;
            Some(Remap {
                field: f.clone(),
                from: from.clone(),
                to: to.clone(),
            })
        })
        .collect();
    let get = |s: Option<&SyncSpec>, key: &str| -> Option<String> {
        let s = s?;
        Some(match key {
            "model" => s.model.clone(),
            "destination" => s.destination.clone(),
            "object" => s.object.clone(),
            "mode" => s.mode.as_str().to_string(),
            "primary_key" => s.primary_key.clone(),
            _ => s.match_on.clone()?,
        })
    };
    let changed = |key: &str| from_to(get(old, key).as_deref(), get(new, key).as_deref());
    // Only an existing sync's model, destination and object "change"; for an added or removed
    // sync they are where it writes.
    let both = |key: &str| {
        if old.is_some() && new.is_some() {
            changed(key)
        } else {
            None
        }
    };
    let mut other = Vec::new();
    if let (Some(a), Some(b)) = (old, new) {
        let checks: [(&str, bool); 9] = [
            ("description", a.description != b.description),
            ("depends_on", a.depends_on != b.depends_on),
            ("schedule", a.schedule != b.schedule),
            ("batch_size", a.batch_size != b.batch_size),
            ("rate_limit", a.rate_limit != b.rate_limit),
            ("guards", a.guards != b.guards),
            ("tags", a.tags != b.tags),
            ("meta", a.meta != b.meta),
            ("enabled", a.enabled != b.enabled),
        ];
        other = checks
            .into_iter()
            .filter(|(_, differs)| *differs)
            .map(|(k, _)| k.to_string())
            .collect();
    }
    Some(SyncChange {
        name: spec.name.clone(),
        status,
        destination: spec.destination.clone(),
        object: spec.object.clone(),
        fields_added,
        fields_removed,
        fields_remapped,
        model: both("model"),
        destination_changed: both("destination"),
        object_changed: both("object"),
        mode: changed("mode"),
        primary_key: changed("primary_key"),
        match_on: changed("match_on"),
        other,
    })
}

/// Lists what changed in a destination: its type and PII permission with values, other
/// settings by name only (they may hold connection details).
fn destination_details(old: &Node, new: &Node) -> Vec<String> {
    let (Some(a), Some(b)) = (&old.destination, &new.destination) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if a.kind != b.kind {
        out.push(format!("type: {} → {}", a.kind, b.kind));
    }
    if a.allow_pii != b.allow_pii {
        out.push(format!("allow_pii: {} → {}", a.allow_pii, b.allow_pii));
    }
    if a.rate_limit != b.rate_limit {
        let show = |r: &Option<crate::spec::sync::RateLimit>| {
            r.map_or("(none)".to_string(), |r| {
                format!("{}/{}s", r.count, r.per_seconds)
            })
        };
        out.push(format!(
            "rate_limit: {} → {}",
            show(&a.rate_limit),
            show(&b.rate_limit)
        ));
    }
    let keys: BTreeSet<&String> = a.settings.keys().chain(b.settings.keys()).collect();
    // `type`, `allow_pii` and `rate_limit` are reported above.
    for k in keys
        .into_iter()
        .filter(|k| !["type", "allow_pii", "rate_limit"].contains(&k.as_str()))
    {
        match (a.settings.get(k), b.settings.get(k)) {
            (None, Some(_)) => out.push(format!("setting `{k}` added")),
            (Some(_), None) => out.push(format!("setting `{k}` removed")),
            (Some(x), Some(y)) if x != y => out.push(format!("setting `{k}` changed")),
            _ => {}
        }
    }
    out
}

/// Every PII column of a model that a sync maps to a destination field.
fn pii_flows(graph: &Graph) -> Vec<PiiFlow> {
    let allow_pii: BTreeMap<&str, bool> = graph
        .nodes
        .values()
        .filter_map(|n| n.destination.as_ref())
        .map(|d| (d.name.as_str(), d.allow_pii))
        .collect();
    let mut out = Vec::new();
    for node in graph.nodes.values() {
        let Some(spec) = &node.sync else { continue };
        let model = node
            .depends_on_nodes
            .iter()
            .filter_map(|d| graph.nodes.get(d))
            .find(|n| n.name == spec.model);
        let Some(model) = model else { continue };
        let allowed = allow_pii
            .get(spec.destination.as_str())
            .copied()
            .unwrap_or(false);
        for m in &spec.mapping {
            for column in m.columns() {
                if is_pii(model, &column) {
                    out.push(PiiFlow {
                        sync: spec.name.clone(),
                        model: model.name.clone(),
                        column,
                        destination: spec.destination.clone(),
                        object: spec.object.clone(),
                        field: m.field.clone(),
                        masked: is_masked(m),
                        allowed,
                    });
                }
            }
        }
    }
    out.sort();
    out
}
