//! dbt's node selection syntax: `name`, `+name`, `name+`, `2+name`, `name+1`, `@name`,
//! `tag:`, `path:`, `resource_type:`, `source:`, `sync:`, `destination:`, `fqn:`, `config.<key>:`,
//! and `state:new` / `state:modified[.<change>]` against `--state REV`; values separated by
//! spaces are a union, atoms joined by commas an intersection, and `--exclude` takes the same
//! syntax. Tests attached to a selected node are selected with it (dbt's eager indirect
//! selection).

use std::collections::BTreeSet;

use petgraph::Direction;

use super::state::State;
use super::{Graph, Node, ResourceType};

/// The selector methods, for messages and suggestions.
pub const METHODS: &[&str] = &[
    "sync",
    "destination",
    "name",
    "tag",
    "path",
    "resource_type",
    "source",
    "fqn",
    "config",
    "state",
];

/// A selector that cannot be parsed or names an unknown method.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector `{selector}`: {reason}")]
pub struct SelectError {
    pub selector: String,
    pub reason: String,
}

/// One parsed atom of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Atom {
    method: String,
    value: String,
    parents: Option<Option<usize>>,
    children: Option<Option<usize>>,
    at: bool,
}

fn parse_atom(text: &str) -> Result<Atom, SelectError> {
    let err = |reason: &str| SelectError {
        selector: text.to_string(),
        reason: reason.to_string(),
    };
    let mut s = text;
    let at = s.starts_with('@');
    if at {
        s = &s[1..];
    }
    let mut parents = None;
    if let Some(plus) = s.find('+') {
        let (digits, rest) = s.split_at(plus);
        if digits.chars().all(|c| c.is_ascii_digit()) {
            parents = Some(if digits.is_empty() {
                None
            } else {
                Some(digits.parse().map_err(|_| err("bad depth"))?)
            });
            s = &rest[1..];
        }
    }
    let mut children = None;
    if let Some(plus) = s.rfind('+') {
        let digits = &s[plus + 1..];
        if digits.chars().all(|c| c.is_ascii_digit()) {
            children = Some(if digits.is_empty() {
                None
            } else {
                Some(digits.parse().map_err(|_| err("bad depth"))?)
            });
            s = &s[..plus];
        }
    }
    if s.is_empty() {
        return Err(err("nothing to select"));
    }
    if at && (parents.is_some() || children.is_some()) {
        return Err(err("`@` cannot be combined with `+`"));
    }
    let (method, value) = match s.split_once(':') {
        Some((m, v)) => (m.to_string(), v.to_string()),
        None => ("name".to_string(), s.to_string()),
    };
    let base = method.split('.').next().unwrap_or_default();
    if !METHODS.contains(&base) {
        let close = crate::diag::closest(base, METHODS.iter().copied());
        let mut reason = format!("unknown method `{method}`");
        if let Some(h) = crate::diag::did_you_mean(&close) {
            reason.push_str("; ");
            reason.push_str(&h);
        }
        return Err(err(&reason));
    }
    if value.is_empty() {
        return Err(err("a method needs a value, like `tag:nightly`"));
    }
    if method == "state" && State::default().matches(&value, "").is_none() {
        return Err(err(
            "states are `new`, `modified` and `modified.<change>` with a change of body, configs, macros, vars or schema",
        ));
    }
    if method == "resource_type" && ResourceType::parse(&value).is_none() {
        return Err(err(
            "resource types are model, seed, source, test, sync and destination",
        ));
    }
    Ok(Atom {
        method,
        value,
        parents,
        children,
        at,
    })
}

/// Matches `text` against a pattern where `*` matches any run of characters and `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn matches(atom: &Atom, node: &Node, state: Option<&State>) -> bool {
    let v = atom.value.as_str();
    match atom.method.as_str() {
        "state" => state.is_some_and(|s| s.matches(v, &node.unique_id) == Some(true)),
        "name" => glob(v, &node.name) || glob(v, &node.display_name()) || fqn_matches(v, &node.fqn),
        "fqn" => fqn_matches(v, &node.fqn),
        "tag" => node.config.tags().iter().any(|t| glob(v, t)),
        "resource_type" => ResourceType::parse(v) == Some(node.resource_type),
        "sync" => node.resource_type == ResourceType::Sync && glob(v, &node.name),
        "destination" => node.resource_type == ResourceType::Destination && glob(v, &node.name),
        "source" => match &node.source_info {
            Some(s) => {
                glob(v, &s.source_name) || glob(v, &format!("{}.{}", s.source_name, node.name))
            }
            None => false,
        },
        "path" => {
            let v = v.trim_end_matches('/');
            let p = node.original_file_path.as_str();
            glob(v, p) || p.starts_with(&format!("{v}/"))
        }
        method => {
            let key = method.strip_prefix("config.").unwrap_or_default();
            match node.config.0.get(key) {
                Some(serde_json::Value::String(s)) => glob(v, s),
                Some(serde_json::Value::Array(items)) => {
                    items.iter().any(|i| i.as_str().is_some_and(|s| glob(v, s)))
                }
                Some(other) => serde_json::from_str::<serde_json::Value>(v)
                    .is_ok_and(|parsed| parsed == *other),
                None => false,
            }
        }
    }
}

/// Tells whether a dotted fqn pattern (`retail.staging`, `staging.*`, `marts`) matches a run of
/// consecutive parts of `fqn`, so a folder name selects everything in it, as in dbt.
fn fqn_matches(pattern: &str, fqn: &[String]) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    (0..fqn.len()).any(|offset| {
        offset + parts.len() <= fqn.len()
            && parts.iter().zip(&fqn[offset..]).all(|(p, f)| glob(p, f))
    })
}

fn select_atom(graph: &Graph, atom: &Atom) -> Result<BTreeSet<String>, SelectError> {
    if atom.method == "state" && graph.state.is_none() {
        return Err(SelectError {
            selector: format!("state:{}", atom.value),
            reason: "`state:` selectors compare with a git revision: pass `--state REV`".into(),
        });
    }
    let mut out = BTreeSet::new();
    for (id, node) in &graph.nodes {
        if !matches(atom, node, graph.state.as_ref()) {
            continue;
        }
        out.insert(id.clone());
        if let Some(depth) = atom.parents {
            out.extend(graph.walk(id, Direction::Incoming, depth));
        }
        if let Some(depth) = atom.children {
            out.extend(graph.walk(id, Direction::Outgoing, depth));
        }
        if atom.at {
            out.extend(graph.walk(id, Direction::Incoming, None));
            for child in graph.walk(id, Direction::Outgoing, None) {
                out.extend(graph.walk(&child, Direction::Incoming, None));
                out.insert(child);
            }
        }
    }
    Ok(out)
}

fn select_spec(graph: &Graph, specs: &[String]) -> Result<BTreeSet<String>, SelectError> {
    let mut union = BTreeSet::new();
    for spec in specs.iter().flat_map(|s| s.split_whitespace()) {
        let mut intersection: Option<BTreeSet<String>> = None;
        for part in spec.split(',') {
            let atom = parse_atom(part)?;
            let found = select_atom(graph, &atom)?;
            intersection = Some(match intersection {
                None => found,
                Some(prev) => prev.intersection(&found).cloned().collect(),
            });
        }
        union.extend(intersection.unwrap_or_default());
    }
    Ok(union)
}

/// Returns the ids selected by `select` (everything when empty) minus those selected by
/// `exclude`, with the tests of selected nodes added.
pub fn select(
    graph: &Graph,
    select: &[String],
    exclude: &[String],
) -> Result<BTreeSet<String>, SelectError> {
    let mut chosen = if select.iter().all(|s| s.trim().is_empty()) {
        graph.nodes.keys().cloned().collect()
    } else {
        select_spec(graph, select)?
    };
    let tests: Vec<String> = graph
        .nodes
        .values()
        .filter(|n| n.resource_type == ResourceType::Test && !chosen.contains(&n.unique_id))
        .filter(|n| n.depends_on_nodes.iter().any(|p| chosen.contains(p)))
        .map(|n| n.unique_id.clone())
        .collect();
    chosen.extend(tests);
    // Excluding a node excludes its tests too (dbt's eager indirect selection).
    let mut excluded = select_spec(graph, exclude)?;
    let their_tests: Vec<String> = graph
        .nodes
        .values()
        .filter(|n| n.resource_type == ResourceType::Test)
        .filter(|n| n.depends_on_nodes.iter().any(|p| excluded.contains(p)))
        .map(|n| n.unique_id.clone())
        .collect();
    excluded.extend(their_tests);
    Ok(chosen.difference(&excluded).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn graph() -> Graph {
        let mut nodes = BTreeMap::new();
        let mut add = |name: &str, dir: &str, deps: &[&str], tags: &[&str]| {
            let mut n = Node::new(ResourceType::Model, "p", name, format!("model.p.{name}"));
            n.original_file_path = format!("models/{dir}/{name}.sql");
            n.fqn = vec!["p".into(), dir.into(), name.into()];
            n.depends_on_nodes = deps.iter().map(|d| format!("model.p.{d}")).collect();
            n.config.0.insert("tags".into(), serde_json::json!(tags));
            nodes.insert(n.unique_id.clone(), n);
        };
        add("a", "staging", &[], &["nightly"]);
        add("b", "staging", &["a"], &[]);
        add("c", "marts", &["b"], &["nightly"]);
        add("d", "marts", &["c"], &[]);
        let mut t = Node::new(
            ResourceType::Test,
            "p",
            "unique_c_id",
            "test.p.unique_c_id".into(),
        );
        t.depends_on_nodes = ["model.p.c".to_string()].into();
        t.fqn = vec!["p".into(), "unique_c_id".into()];
        nodes.insert(t.unique_id.clone(), t);
        Graph::build(nodes).0
    }

    fn names(sel: &[&str], exc: &[&str]) -> Vec<String> {
        let s: Vec<String> = sel.iter().map(|s| s.to_string()).collect();
        let e: Vec<String> = exc.iter().map(|s| s.to_string()).collect();
        select(&graph(), &s, &e)
            .unwrap()
            .into_iter()
            .map(|id| id.rsplit('.').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn graph_operators() {
        assert_eq!(names(&["+c"], &[]), ["a", "b", "c", "unique_c_id"]);
        assert_eq!(names(&["b+"], &[]), ["b", "c", "d", "unique_c_id"]);
        assert_eq!(names(&["1+c"], &["unique_c_id"]), ["b", "c"]);
        assert_eq!(names(&["a+1"], &[]), ["a", "b"]);
        assert_eq!(
            names(&["@b"], &["resource_type:test"]),
            ["a", "b", "c", "d"]
        );
    }

    #[test]
    fn methods_union_intersection_exclude() {
        assert_eq!(names(&["tag:nightly"], &["resource_type:test"]), ["a", "c"]);
        assert_eq!(
            names(&["tag:nightly,path:models/marts"], &["resource_type:test"]),
            ["c"]
        );
        assert_eq!(names(&["a d"], &[]), ["a", "d"]);
        assert_eq!(names(&["path:models/staging"], &["b"]), ["a"]);
        assert_eq!(names(&["staging.*"], &[]), ["a", "b"]);
        assert_eq!(names(&["resource_type:test"], &[]), ["unique_c_id"]);
        assert_eq!(
            names(&["*"], &["c"]),
            ["a", "b", "d"],
            "excluding a node excludes its tests"
        );
        assert_eq!(
            names(&["marts"], &[]),
            ["c", "d", "unique_c_id"],
            "a folder name selects the folder"
        );
        assert_eq!(
            names(&["@unique_c_id"], &[]),
            ["a", "b", "c", "unique_c_id"],
            "@ includes ancestors"
        );
    }

    #[test]
    fn state_selectors_read_the_comparison_on_the_graph() {
        let mut g = graph();
        let sel = |g: &Graph, s: &str| -> Result<Vec<String>, SelectError> {
            Ok(
                select(g, &[s.to_string()], &["resource_type:test".to_string()])?
                    .into_iter()
                    .map(|id| id.rsplit('.').next().unwrap_or_default().to_string())
                    .collect(),
            )
        };
        let err = sel(&g, "state:modified").unwrap_err();
        assert!(err.reason.contains("--state REV"), "{}", err.reason);
        g.state = Some(State {
            rev: "main".into(),
            new: ["model.p.d".to_string()].into(),
            modified: [(
                "model.p.b".to_string(),
                [crate::graph::state::Change::Macros].into(),
            )]
            .into(),
        });
        assert_eq!(sel(&g, "state:new").unwrap(), ["d"]);
        assert_eq!(
            sel(&g, "state:modified").unwrap(),
            ["b", "d"],
            "new counts as modified"
        );
        assert_eq!(sel(&g, "state:modified.macros").unwrap(), ["b"]);
        assert!(sel(&g, "state:modified.body").unwrap().is_empty());
        assert_eq!(sel(&g, "state:modified+").unwrap(), ["b", "c", "d"]);
        assert_eq!(
            sel(&g, "state:modified,tag:nightly").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(sel(&g, "+state:new,path:models/marts").unwrap(), ["c", "d"]);
        let err = sel(&g, "state:changed").unwrap_err();
        assert!(err.reason.contains("modified.<change>"), "{}", err.reason);
    }

    #[test]
    fn unknown_method_is_an_error_with_a_suggestion() {
        let err = select(&graph(), &["tags:nightly".into()], &[]).unwrap_err();
        assert!(err.reason.contains("did you mean `tag`?"), "{}", err.reason);
    }
}
