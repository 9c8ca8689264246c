//! Produces each node's compiled SQL: placeholders replaced by relation names, and the
//! ephemeral models it uses injected as CTEs named `__dbt__cte__<model>`, deepest first, the
//! way dbt does.

use std::collections::{BTreeSet, HashMap};

use rayon::prelude::*;

use super::resolve::resolver;
use crate::graph::{Graph, Node};
use crate::render::relation::substitute;

/// Sets `compiled_code` on every node that has SQL.
pub(crate) fn compile_sql(graph: &mut Graph) {
    let own: HashMap<String, String> = graph
        .nodes
        .par_iter()
        .filter(|(_, n)| !n.raw_code.is_empty())
        .map(|(id, n)| {
            let resolve = resolver(graph, n);
            let sql = substitute(&n.rendered, &|k| match resolve(k) {
                Some(rel) => rel.to_string(),
                // Unresolved: already reported; keep something readable in the output.
                None => format!("{k:?}"),
            });
            (id.clone(), sql)
        })
        .collect();
    let compiled: Vec<(String, String)> = own
        .par_iter()
        .map(|(id, sql)| {
            let node = &graph.nodes[id];
            let mut ctes = Vec::new();
            collect_ephemerals(graph, node, &mut ctes, &mut BTreeSet::new());
            if ctes.is_empty() {
                return (id.clone(), sql.clone());
            }
            let blocks: Vec<String> = ctes
                .iter()
                .map(|eid| {
                    let e = &graph.nodes[eid];
                    let body = own.get(eid).map(String::as_str).unwrap_or_default();
                    format!("__dbt__cte__{} as (\n{}\n)", e.name, body.trim())
                })
                .collect();
            (id.clone(), inject(sql, &blocks))
        })
        .collect();
    for (id, sql) in compiled {
        if let Some(n) = graph.nodes.get_mut(&id) {
            n.compiled_code = Some(sql);
        }
    }
}

/// Lists the ephemeral models `node` reaches through ephemeral models only, dependencies first.
fn collect_ephemerals(
    graph: &Graph,
    node: &Node,
    out: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) {
    for dep in &node.depends_on_nodes {
        let Some(d) = graph.nodes.get(dep) else {
            continue;
        };
        if !d.is_ephemeral() || !seen.insert(dep.clone()) {
            continue;
        }
        collect_ephemerals(graph, d, out, seen);
        out.push(dep.clone());
    }
}

/// Puts CTE blocks in front of `sql`: into its leading `with` if it has one, else as a new one.
fn inject(sql: &str, blocks: &[String]) -> String {
    let joined = blocks.join(",\n");
    let start = skip_comments(sql);
    let head = &sql[start..];
    let is_with = head.len() >= 4
        && head[..4].eq_ignore_ascii_case("with")
        && head[4..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c == '(');
    if is_with {
        let rest = head[4..].trim_start();
        let rest = match rest.get(..10) {
            Some(r) if r.eq_ignore_ascii_case("recursive ") => {
                return format!(
                    "{}with recursive {joined},\n{}",
                    &sql[..start],
                    rest[10..].trim_start()
                );
            }
            _ => rest,
        };
        format!("{}with {joined},\n{rest}", &sql[..start])
    } else {
        format!("{}with {joined}\n{head}", &sql[..start])
    }
}

/// Returns the byte offset of the first SQL token, past whitespace and comments.
fn skip_comments(sql: &str) -> usize {
    let mut i = 0;
    loop {
        let rest = &sql[i..];
        let trimmed = rest.trim_start();
        i += rest.len() - trimmed.len();
        if trimmed.starts_with("--") {
            i += trimmed.find('\n').map_or(trimmed.len(), |n| n + 1);
        } else if trimmed.starts_with("/*") {
            i += trimmed.find("*/").map_or(trimmed.len(), |n| n + 2);
        } else {
            return i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injects_into_an_existing_with_or_adds_one() {
        let blocks = vec!["__dbt__cte__a as (\nselect 1\n)".to_string()];
        assert_eq!(
            inject("select * from __dbt__cte__a", &blocks),
            "with __dbt__cte__a as (\nselect 1\n)\nselect * from __dbt__cte__a"
        );
        assert_eq!(
            inject("-- note\nWITH x as (select 2)\nselect * from x", &blocks),
            "-- note\nwith __dbt__cte__a as (\nselect 1\n),\nx as (select 2)\nselect * from x"
        );
        assert!(inject("without_with as", &blocks).starts_with("with __dbt__cte__a"));
    }
}
