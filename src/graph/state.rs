//! What `--state REV` found when the project was compared with that revision: which nodes are
//! new and which were modified, and in what way. `state:new`, `state:modified` and
//! `state:modified.<change>` selectors read it. Computing it (compiling the revision and
//! comparing fingerprints) is [`crate::diff`]'s job; this is the plain result.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// One way a node can differ from the same node at another revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Its file or definition: SQL, a seed's CSV, a source table's relation, a sync's or
    /// destination's spec.
    Body,
    /// Its resolved configuration (project file, folder, YAML and `config()` layers).
    Configs,
    /// A macro it calls, directly or through other macros.
    Macros,
    /// The value of a var it reads.
    Vars,
    /// Its schema YAML entry: description, columns, attached data tests.
    Schema,
}

impl Change {
    /// Every change, in the order they are reported.
    pub const ALL: [Change; 5] = [
        Change::Body,
        Change::Configs,
        Change::Macros,
        Change::Vars,
        Change::Schema,
    ];

    /// Returns the name used in `state:modified.<name>` and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Body => "body",
            Change::Configs => "configs",
            Change::Macros => "macros",
            Change::Vars => "vars",
            Change::Schema => "schema",
        }
    }

    /// Parses a `state:modified.<name>` suffix.
    pub fn parse(s: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The comparison of the project with the project at `--state`.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// The revision as the user wrote it.
    pub rev: String,
    /// Nodes with no node of the same unique id at the revision.
    pub new: BTreeSet<String>,
    /// Nodes that exist at the revision and differ from it, with how.
    pub modified: BTreeMap<String, BTreeSet<Change>>,
}

impl State {
    /// Tells whether a node matches `state:<value>`: `new`, `modified` (new or changed, as in
    /// dbt) or `modified.<change>`. `None` for a value that names no state.
    pub fn matches(&self, value: &str, id: &str) -> Option<bool> {
        Some(match value {
            "new" => self.new.contains(id),
            "modified" => self.new.contains(id) || self.modified.contains_key(id),
            other => {
                let change = Change::parse(other.strip_prefix("modified.")?)?;
                self.modified.get(id).is_some_and(|c| c.contains(&change))
            }
        })
    }
}
