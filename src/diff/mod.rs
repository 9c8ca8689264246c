//! Comparing the project at two revisions, straight from compilations (no stored manifest):
//! per-node fingerprints ([`fingerprint`]) give the nodes added, removed and modified (and how),
//! which feed `state:` selection ([`state`]) and the pull-request report of `ebb diff`
//! ([`report`], rendered as text or Markdown by [`render`]).

pub mod fingerprint;
pub mod render;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};

use crate::compile::Compilation;
use crate::graph::state::{Change, State};

/// Which nodes differ between a base and a head compilation.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// In the head only.
    pub added: BTreeSet<String>,
    /// In the base only.
    pub removed: BTreeSet<String>,
    /// In both, with the ways they differ.
    pub modified: BTreeMap<String, BTreeSet<Change>>,
}

/// Compares two compilations of the project node by node. `cli_vars` (`--vars`) apply to both.
pub fn compare(
    base: &Compilation,
    head: &Compilation,
    cli_vars: &serde_yaml::Mapping,
) -> Comparison {
    let (before, after) = rayon::join(
        || fingerprint::fingerprints(base, cli_vars),
        || fingerprint::fingerprints(head, cli_vars),
    );
    let mut out = Comparison::default();
    for (id, print) in &after {
        match before.get(id) {
            None => {
                out.added.insert(id.clone());
            }
            Some(old) => {
                let changes = print.changes(old);
                if !changes.is_empty() {
                    out.modified.insert(id.clone(), changes);
                }
            }
        }
    }
    out.removed = before
        .keys()
        .filter(|id| !after.contains_key(*id))
        .cloned()
        .collect();
    out
}

/// Returns what `state:` selectors see when `head` is compared with the project at `rev`.
pub fn state(
    rev: &str,
    base: &Compilation,
    head: &Compilation,
    cli_vars: &serde_yaml::Mapping,
) -> State {
    let comparison = compare(base, head, cli_vars);
    State {
        rev: rev.to_string(),
        new: comparison.added,
        modified: comparison.modified,
    }
}
