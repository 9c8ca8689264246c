//! Column lineage of one model's compiled SQL, with sqlparser: for every output column, the
//! columns of upstream relations it is computed from (direct edges, identity or
//! transformation), plus the columns its joins, filters and groupings read (indirect edges).
//!
//! The SQL is read through its CTEs and subqueries; `*` is expanded where the upstream columns
//! are known. Anything that cannot be resolved is reported, never silently dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, GroupByExpr, JoinConstraint, JoinOperator, ObjectName, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor,
};
use sqlparser::dialect::{Dialect, GenericDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

/// A column of an upstream relation: (node unique id, column name).
pub type Upstream = (String, String);

/// How an output column is derived from its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Transformation {
    /// The value is copied unchanged.
    Identity,
    /// The value is computed from its inputs.
    Transformation,
    /// The value aggregates many input rows.
    Aggregation,
}

/// One output column and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    pub name: String,
    pub inputs: BTreeSet<Upstream>,
    pub transformation: Transformation,
}

/// Why a column is read without being copied: OpenLineage's INDIRECT subtypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Indirect {
    Join,
    Filter,
    GroupBy,
}

/// The lineage of one query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryLineage {
    /// Output columns in order; `None` when a `*` over a relation of unknown columns makes the
    /// output unknowable.
    pub columns: Option<Vec<OutputColumn>>,
    pub indirect: BTreeSet<(Upstream, Indirect)>,
    /// Column references that could not be tied to a relation.
    pub unresolved: BTreeSet<String>,
}

/// What the analysis needs to know about relations outside the query.
pub trait Catalog {
    /// Returns the node a relation name (lower-cased parts, as written) refers to.
    fn resolve(&self, parts: &[String]) -> Option<String>;
    /// Returns the known columns of a node, in order.
    fn columns(&self, node: &str) -> Option<Vec<String>>;
}

fn dialect(adapter: &str) -> Box<dyn Dialect> {
    match adapter {
        "postgres" => Box::new(PostgreSqlDialect {}),
        "mysql" => Box::new(MySqlDialect {}),
        "sqlite" => Box::new(SQLiteDialect {}),
        _ => Box::new(GenericDialect {}),
    }
}

/// Analyzes a single SELECT statement. `Err` when it does not parse or is not a query.
pub fn analyze(sql: &str, adapter: &str, catalog: &dyn Catalog) -> Result<QueryLineage, String> {
    let statements =
        Parser::parse_sql(dialect(adapter).as_ref(), sql).map_err(|e| e.to_string())?;
    let query = match statements.as_slice() {
        [Statement::Query(q)] => q,
        _ => return Err("expected one SELECT statement".into()),
    };
    let mut out = QueryLineage::default();
    let cols = Analyzer {
        catalog,
        out: &mut out,
    }
    .query(query, &HashMap::new());
    out.columns = cols;
    Ok(out)
}

/// A relation visible in a FROM clause.
#[derive(Debug, Clone)]
enum Source {
    /// A node of the project, with its columns when known.
    Node {
        id: String,
        columns: Option<Vec<String>>,
    },
    /// A CTE or subquery, with its computed columns (or unknown).
    Derived(Option<Vec<OutputColumn>>),
}

impl Source {
    fn has_column(&self, name: &str) -> Option<bool> {
        match self {
            Source::Node {
                columns: Some(c), ..
            } => Some(c.iter().any(|x| x.eq_ignore_ascii_case(name))),
            Source::Derived(Some(c)) => Some(c.iter().any(|x| x.name.eq_ignore_ascii_case(name))),
            _ => None,
        }
    }

    fn column(&self, name: &str) -> Option<(BTreeSet<Upstream>, Transformation)> {
        match self {
            Source::Node { id, .. } => Some((
                BTreeSet::from([(id.clone(), name.to_lowercase())]),
                Transformation::Identity,
            )),
            Source::Derived(Some(c)) => c
                .iter()
                .find(|x| x.name.eq_ignore_ascii_case(name))
                .map(|x| (x.inputs.clone(), x.transformation)),
            Source::Derived(None) => None,
        }
    }

    fn expand(&self) -> Option<Vec<OutputColumn>> {
        match self {
            Source::Node {
                id,
                columns: Some(c),
            } => Some(
                c.iter()
                    .map(|n| OutputColumn {
                        name: n.to_lowercase(),
                        inputs: BTreeSet::from([(id.clone(), n.to_lowercase())]),
                        transformation: Transformation::Identity,
                    })
                    .collect(),
            ),
            Source::Derived(Some(c)) => Some(c.clone()),
            _ => None,
        }
    }
}

type Ctes = HashMap<String, Option<Vec<OutputColumn>>>;

struct Analyzer<'a> {
    catalog: &'a dyn Catalog,
    out: &'a mut QueryLineage,
}

fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(|i| i.value.to_lowercase())
        .collect()
}

fn is_aggregate(expr: &Expr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e {
            let name = f.name.to_string().to_lowercase();
            if matches!(
                name.as_str(),
                "count"
                    | "sum"
                    | "min"
                    | "max"
                    | "avg"
                    | "group_concat"
                    | "string_agg"
                    | "array_agg"
                    | "bool_and"
                    | "bool_or"
            ) {
                found = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

impl Analyzer<'_> {
    fn query(&mut self, query: &Query, outer: &Ctes) -> Option<Vec<OutputColumn>> {
        let mut ctes = outer.clone();
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                let name = cte.alias.name.value.to_lowercase();
                let mut cols = self.query(&cte.query, &ctes);
                if let Some(cols) = cols.as_mut() {
                    for (c, alias) in cols.iter_mut().zip(&cte.alias.columns) {
                        c.name = alias.name.value.to_lowercase();
                    }
                }
                ctes.insert(name, cols);
            }
        }
        self.set_expr(&query.body, &ctes)
    }

    fn set_expr(&mut self, body: &SetExpr, ctes: &Ctes) -> Option<Vec<OutputColumn>> {
        match body {
            SetExpr::Select(select) => self.select(select, ctes),
            SetExpr::Query(q) => self.query(q, ctes),
            SetExpr::SetOperation { left, right, .. } => {
                let l = self.set_expr(left, ctes);
                let r = self.set_expr(right, ctes);
                let (mut l, r) = (l?, r?);
                for (a, b) in l.iter_mut().zip(r) {
                    a.inputs.extend(b.inputs);
                    if a.transformation == Transformation::Identity {
                        a.transformation = b.transformation;
                    }
                }
                Some(l)
            }
            _ => Some(Vec::new()),
        }
    }

    fn factor(&mut self, factor: &TableFactor, ctes: &Ctes, scope: &mut Vec<(String, Source)>) {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let parts = name_parts(name);
                let last = parts.last().cloned().unwrap_or_default();
                let source = match (parts.len(), ctes.get(&last)) {
                    // An ebb-injected ephemeral CTE is the ephemeral model itself.
                    (1, Some(_)) if !last.starts_with("__dbt__cte__") => {
                        Source::Derived(ctes[&last].clone())
                    }
                    _ => match self.catalog.resolve(&parts) {
                        Some(id) => Source::Node {
                            columns: self.catalog.columns(&id),
                            id,
                        },
                        None => {
                            self.out
                                .unresolved
                                .insert(format!("relation {}", parts.join(".")));
                            Source::Derived(None)
                        }
                    },
                };
                let key = alias.as_ref().map_or(last, |a| a.name.value.to_lowercase());
                scope.push((key, source));
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let cols = self.query(subquery, ctes);
                let key = alias
                    .as_ref()
                    .map_or_else(String::new, |a| a.name.value.to_lowercase());
                scope.push((key, Source::Derived(cols)));
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.factor(&table_with_joins.relation, ctes, scope);
                for j in &table_with_joins.joins {
                    self.factor(&j.relation, ctes, scope);
                }
            }
            _ => scope.push((String::new(), Source::Derived(None))),
        }
    }

    /// Resolves a column reference to upstream columns.
    fn reference(
        &mut self,
        parts: &[String],
        scope: &[(String, Source)],
    ) -> Option<(BTreeSet<Upstream>, Transformation)> {
        let (qualifier, name) = match parts {
            [name] => (None, name.as_str()),
            [.., q, name] => (Some(q.as_str()), name.as_str()),
            [] => return None,
        };
        let found = match qualifier {
            Some(q) => scope
                .iter()
                .find(|(k, _)| k == q)
                .and_then(|(_, s)| s.column(name)),
            None => {
                let known: Vec<&Source> = scope
                    .iter()
                    .map(|(_, s)| s)
                    .filter(|s| s.has_column(name) == Some(true))
                    .collect();
                match known.as_slice() {
                    [one] => one.column(name),
                    [] => {
                        let unknown: Vec<&Source> = scope
                            .iter()
                            .map(|(_, s)| s)
                            .filter(|s| s.has_column(name).is_none())
                            .collect();
                        match unknown.as_slice() {
                            [one] => one.column(name),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
        };
        if found.is_none() {
            self.out
                .unresolved
                .insert(format!("column {}", parts.join(".")));
        }
        found
    }

    /// Collects the upstream columns an expression reads.
    fn expr_inputs(
        &mut self,
        expr: &Expr,
        scope: &[(String, Source)],
    ) -> (BTreeSet<Upstream>, Transformation) {
        let mut refs: Vec<Vec<String>> = Vec::new();
        let _ = sqlparser::ast::visit_expressions(expr, |e| {
            match e {
                Expr::Identifier(i) => refs.push(vec![i.value.to_lowercase()]),
                Expr::CompoundIdentifier(ids) => {
                    refs.push(ids.iter().map(|i| i.value.to_lowercase()).collect())
                }
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        let mut inputs = BTreeSet::new();
        let mut strongest = Transformation::Identity;
        for r in refs {
            if let Some((cols, t)) = self.reference(&r, scope) {
                inputs.extend(cols);
                strongest = strongest.max(t);
            }
        }
        (inputs, strongest)
    }

    fn indirect(&mut self, expr: &Expr, kind: Indirect, scope: &[(String, Source)]) {
        let (inputs, _) = self.expr_inputs(expr, scope);
        for i in inputs {
            self.out.indirect.insert((i, kind));
        }
    }

    fn select(&mut self, select: &Select, ctes: &Ctes) -> Option<Vec<OutputColumn>> {
        let mut scope: Vec<(String, Source)> = Vec::new();
        let mut join_exprs = Vec::new();
        for twj in &select.from {
            self.factor(&twj.relation, ctes, &mut scope);
            for j in &twj.joins {
                self.factor(&j.relation, ctes, &mut scope);
                let constraint = match &j.join_operator {
                    JoinOperator::Join(c)
                    | JoinOperator::Inner(c)
                    | JoinOperator::Left(c)
                    | JoinOperator::LeftOuter(c)
                    | JoinOperator::Right(c)
                    | JoinOperator::RightOuter(c)
                    | JoinOperator::FullOuter(c) => Some(c),
                    _ => None,
                };
                match constraint {
                    Some(JoinConstraint::On(e)) => join_exprs.push(e.clone()),
                    Some(JoinConstraint::Using(cols)) => {
                        for c in cols {
                            let name = name_parts(c).join(".");
                            for (_, s) in &scope {
                                if let Some((inputs, _)) = s.column(&name) {
                                    for i in inputs {
                                        self.out.indirect.insert((i, Indirect::Join));
                                    }
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        for e in &join_exprs {
            self.indirect(e, Indirect::Join, &scope);
        }
        if let Some(w) = &select.selection {
            self.indirect(w, Indirect::Filter, &scope);
        }
        if let Some(h) = &select.having {
            self.indirect(h, Indirect::Filter, &scope);
        }
        if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
            for e in exprs {
                self.indirect(e, Indirect::GroupBy, &scope);
            }
        }

        let mut columns = Vec::new();
        let mut known = true;
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                    let name = match (item, expr) {
                        (SelectItem::ExprWithAlias { alias, .. }, _) => alias.value.to_lowercase(),
                        (_, Expr::Identifier(i)) => i.value.to_lowercase(),
                        (_, Expr::CompoundIdentifier(ids)) => ids
                            .last()
                            .map(|i| i.value.to_lowercase())
                            .unwrap_or_default(),
                        (_, other) => other.to_string().to_lowercase(),
                    };
                    let plain = matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                    let (inputs, upstream) = self.expr_inputs(expr, &scope);
                    let transformation = if is_aggregate(expr) {
                        Transformation::Aggregation
                    } else if plain {
                        upstream
                    } else {
                        upstream.max(Transformation::Transformation)
                    };
                    columns.push(OutputColumn {
                        name,
                        inputs,
                        transformation,
                    });
                }
                SelectItem::Wildcard(_) => {
                    for (_, s) in &scope {
                        match s.expand() {
                            Some(cols) => columns.extend(cols),
                            None => known = false,
                        }
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    _,
                ) => {
                    let q = name_parts(name).last().cloned().unwrap_or_default();
                    match scope
                        .iter()
                        .find(|(k, _)| *k == q)
                        .and_then(|(_, s)| s.expand())
                    {
                        Some(cols) => columns.extend(cols),
                        None => known = false,
                    }
                }
                _ => known = false,
            }
        }
        known.then_some(columns)
    }
}

/// A catalog backed by plain maps, for tests and for the project graph.
#[derive(Debug, Default, Clone)]
pub struct MapCatalog {
    /// Lower-cased relation names (`schema.table`, `db.schema.table`, CTE names) → node id.
    pub names: BTreeMap<String, String>,
    pub columns: BTreeMap<String, Vec<String>>,
}

impl Catalog for MapCatalog {
    fn resolve(&self, parts: &[String]) -> Option<String> {
        (0..parts.len()).find_map(|skip| self.names.get(&parts[skip..].join(".")).cloned())
    }

    fn columns(&self, node: &str) -> Option<Vec<String>> {
        self.columns.get(node).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> MapCatalog {
        let mut c = MapCatalog::default();
        c.names
            .insert("main.orders".into(), "model.p.orders".into());
        c.names
            .insert("main.customers".into(), "model.p.customers".into());
        c.names
            .insert("__dbt__cte__eph".into(), "model.p.eph".into());
        c.columns.insert(
            "model.p.orders".into(),
            vec![
                "order_id".into(),
                "customer_id".into(),
                "amount".into(),
                "status".into(),
            ],
        );
        c.columns.insert(
            "model.p.customers".into(),
            vec!["customer_id".into(), "email".into()],
        );
        c.columns.insert(
            "model.p.eph".into(),
            vec!["customer_id".into(), "score".into()],
        );
        c
    }

    fn cols(l: &QueryLineage) -> Vec<(String, Vec<String>, Transformation)> {
        l.columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.inputs
                        .iter()
                        .map(|(n, col)| format!("{}.{col}", n.rsplit('.').next().unwrap()))
                        .collect(),
                    c.transformation,
                )
            })
            .collect()
    }

    #[test]
    fn traces_ctes_joins_aggregates_and_stars() {
        let sql = r#"
            with o as (select * from "main"."orders" where status = 'done'),
            agg as (select customer_id, sum(amount) as ltv, count(*) as n from o group by customer_id)
            select c.customer_id, c.email, lower(c.email) as email_lc, agg.ltv, e.score
            from "main"."customers" c
            left join agg on c.customer_id = agg.customer_id
            join __dbt__cte__eph e using (customer_id)
        "#;
        let l = analyze(sql, "postgres", &catalog()).unwrap();
        assert_eq!(
            cols(&l),
            vec![
                (
                    "customer_id".into(),
                    vec!["customers.customer_id".into()],
                    Transformation::Identity
                ),
                (
                    "email".into(),
                    vec!["customers.email".into()],
                    Transformation::Identity
                ),
                (
                    "email_lc".into(),
                    vec!["customers.email".into()],
                    Transformation::Transformation
                ),
                (
                    "ltv".into(),
                    vec!["orders.amount".into()],
                    Transformation::Aggregation
                ),
                (
                    "score".into(),
                    vec!["eph.score".into()],
                    Transformation::Identity
                ),
            ]
        );
        assert!(l
            .indirect
            .contains(&(("model.p.orders".into(), "status".into()), Indirect::Filter)));
        assert!(l.indirect.contains(&(
            ("model.p.orders".into(), "customer_id".into()),
            Indirect::GroupBy
        )));
        assert!(l.indirect.contains(&(
            ("model.p.customers".into(), "customer_id".into()),
            Indirect::Join
        )));
        assert!(l.unresolved.is_empty(), "{:?}", l.unresolved);
    }

    #[test]
    fn union_all_merges_inputs_by_position() {
        let sql = "select order_id as id from main.orders union all select customer_id from main.customers";
        let l = analyze(sql, "sqlite", &catalog()).unwrap();
        assert_eq!(
            cols(&l),
            vec![(
                "id".into(),
                vec!["customers.customer_id".into(), "orders.order_id".into()],
                Transformation::Identity
            )]
        );
    }

    #[test]
    fn unknown_star_and_unresolved_columns_are_reported() {
        let l = analyze("select * from main.nowhere", "sqlite", &catalog()).unwrap();
        assert!(l.columns.is_none());
        assert!(l.unresolved.contains("relation main.nowhere"));
        let l = analyze("select o.order_id, c.customer_id, mystery from main.orders o join main.customers c on 1 = 1", "sqlite", &catalog()).unwrap();
        assert!(
            l.unresolved.contains("column mystery"),
            "{:?}",
            l.unresolved
        );
    }
}
