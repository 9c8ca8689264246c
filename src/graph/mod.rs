//! The project graph: every enabled node keyed by unique id, edges from each node to what it
//! depends on, cycle detection with the full path, ordering, and graph walks for selection.

pub mod config;
pub mod node;
pub mod select;
pub mod state;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::diag::{Code, Diagnostic, Span};
pub use node::{Node, ResourceType};

/// Nodes plus the directed graph of their dependencies (edges point from parent to child).
#[derive(Debug)]
pub struct Graph {
    pub nodes: BTreeMap<String, Node>,
    /// The comparison with `--state REV`, when the command line asked for one; the `state:`
    /// selectors read it. It rides on the graph so every command's selection sees it.
    pub state: Option<state::State>,
    dag: DiGraph<String, ()>,
    index: HashMap<String, NodeIndex>,
}

impl Graph {
    /// Builds the graph from nodes whose `depends_on_nodes` are already resolved. Edges to ids
    /// that are not nodes are ignored (they were reported when resolving). A cycle is reported
    /// once per strongly connected component, with one full path through it.
    pub fn build(nodes: BTreeMap<String, Node>) -> (Graph, Vec<Diagnostic>) {
        let mut dag = DiGraph::with_capacity(nodes.len(), nodes.len() * 2);
        let mut index = HashMap::with_capacity(nodes.len());
        for id in nodes.keys() {
            index.insert(id.clone(), dag.add_node(id.clone()));
        }
        for (id, node) in &nodes {
            for parent in &node.depends_on_nodes {
                if let Some(&p) = index.get(parent) {
                    dag.add_edge(p, index[id], ());
                }
            }
        }
        let graph = Graph {
            nodes,
            state: None,
            dag,
            index,
        };
        let diagnostics = graph.cycles();
        (graph, diagnostics)
    }

    fn cycles(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for scc in petgraph::algo::tarjan_scc(&self.dag) {
            let self_loop = scc.len() == 1 && self.dag.contains_edge(scc[0], scc[0]);
            if scc.len() < 2 && !self_loop {
                continue;
            }
            let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
            let start = *scc
                .iter()
                .min_by_key(|i| &self.dag[**i])
                .expect("a component has members");
            let path = self.cycle_path(start, &members);
            // Edges run from parent to child; read the cycle the way refs are written.
            let names: Vec<String> = path
                .iter()
                .rev()
                .map(|i| self.nodes[&self.dag[*i]].name.clone())
                .collect();
            let first = &self.nodes[&self.dag[start]];
            out.push(
                Diagnostic::new(
                    Code::DependencyCycle,
                    Span::at(&first.original_file_path, first.line, 1),
                    format!("dependency cycle: {} (each depends on the next)", names.join(" -> ")),
                )
                .label("this node depends on itself through the cycle")
                .hint("break the cycle: remove one of the ref() calls (or a sync's `depends_on`), or move the shared logic into a new model both can ref()"),
            );
        }
        out
    }

    /// Finds a path from `start` back to itself inside one strongly connected component.
    fn cycle_path(&self, start: NodeIndex, members: &BTreeSet<NodeIndex>) -> Vec<NodeIndex> {
        let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            let mut children: Vec<NodeIndex> = self
                .dag
                .neighbors_directed(n, Direction::Outgoing)
                .filter(|c| members.contains(c))
                .collect();
            children.sort_by_key(|c| &self.dag[*c]);
            for c in children {
                if c == start {
                    let mut path = vec![start];
                    let mut cur = n;
                    while cur != start {
                        path.push(cur);
                        cur = prev[&cur];
                    }
                    path.push(start);
                    let len = path.len();
                    path[1..len - 1].reverse();
                    return path;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(c) {
                    e.insert(n);
                    queue.push_back(c);
                }
            }
        }
        vec![start, start]
    }

    /// Returns the ids of the direct parents (`Incoming`) or children (`Outgoing`) of a node.
    pub fn neighbors(&self, id: &str, direction: Direction) -> Vec<&str> {
        let Some(&i) = self.index.get(id) else {
            return Vec::new();
        };
        let mut out: Vec<&str> = self
            .dag
            .neighbors_directed(i, direction)
            .map(|n| self.dag[n].as_str())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Returns the ids reachable from `id` in `direction` within `depth` steps (all when `None`),
    /// not including `id` itself.
    pub fn walk(&self, id: &str, direction: Direction, depth: Option<usize>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let Some(&start) = self.index.get(id) else {
            return seen;
        };
        let mut frontier = vec![start];
        let mut level = 0;
        while !frontier.is_empty() && depth.is_none_or(|d| level < d) {
            let mut next = Vec::new();
            for n in frontier {
                for m in self.dag.neighbors_directed(n, direction) {
                    if seen.insert(self.dag[m].clone()) {
                        next.push(m);
                    }
                }
            }
            frontier = next;
            level += 1;
        }
        seen
    }

    /// Returns every node id with parents before children, ties broken by id, so the order is
    /// stable. Nodes in cycles come last in id order.
    pub fn topological_order(&self) -> Vec<&str> {
        let mut indegree: HashMap<NodeIndex, usize> = self
            .dag
            .node_indices()
            .map(|i| {
                (
                    i,
                    self.dag.neighbors_directed(i, Direction::Incoming).count(),
                )
            })
            .collect();
        let mut ready: BTreeSet<(&str, NodeIndex)> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(i, _)| (self.dag[*i].as_str(), *i))
            .collect();
        let mut out = Vec::with_capacity(self.nodes.len());
        while let Some(first) = ready.pop_first() {
            out.push(first.0);
            for c in self.dag.neighbors_directed(first.1, Direction::Outgoing) {
                let d = indegree.get_mut(&c).expect("every node has an in-degree");
                *d -= 1;
                if *d == 0 {
                    ready.insert((self.dag[c].as_str(), c));
                }
            }
        }
        if out.len() < self.nodes.len() {
            let placed: BTreeSet<&str> = out.iter().copied().collect();
            out.extend(
                self.nodes
                    .keys()
                    .map(String::as_str)
                    .filter(|id| !placed.contains(id)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, deps: &[&str]) -> (String, Node) {
        let mut n = Node::new(ResourceType::Model, "p", id, format!("model.p.{id}"));
        n.original_file_path = format!("models/{id}.sql");
        n.depends_on_nodes = deps.iter().map(|d| format!("model.p.{d}")).collect();
        (n.unique_id.clone(), n)
    }

    #[test]
    fn reports_a_cycle_with_its_full_path() {
        let nodes = BTreeMap::from([
            node("a", &["c"]),
            node("b", &["a"]),
            node("c", &["b"]),
            node("d", &["a"]),
        ]);
        let (_, diags) = Graph::build(nodes);
        assert_eq!(diags.len(), 1);
        assert_eq!(
            diags[0].message,
            "dependency cycle: a -> c -> b -> a (each depends on the next)"
        );
    }

    #[test]
    fn walks_and_orders() {
        let nodes = BTreeMap::from([
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["b"]),
            node("d", &["a"]),
        ]);
        let (g, diags) = Graph::build(nodes);
        assert!(diags.is_empty());
        assert_eq!(
            g.topological_order(),
            vec!["model.p.a", "model.p.b", "model.p.c", "model.p.d"]
        );
        let down = g.walk("model.p.a", Direction::Outgoing, Some(1));
        assert_eq!(
            down.into_iter().collect::<Vec<_>>(),
            vec!["model.p.b", "model.p.d"]
        );
        assert_eq!(g.walk("model.p.c", Direction::Incoming, None).len(), 2);
    }
}
