//! Relations as templates see them: what `ref()`, `source()` and `this` return.
//!
//! While models are first rendered, the final names of other models are not known yet (their
//! `config(schema=..., alias=...)` calls have not all run), so a relation prints as a placeholder
//! that is replaced once every node is named. A template that reads a relation's parts
//! (`ref('x').schema`) is marked and rendered a second time with the real names.

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Object, ObjectRepr, Value};

use super::scope;

/// Starts a placeholder key in rendered text. From Unicode's private use area, so it cannot
/// collide with SQL text.
pub const OPEN: char = '\u{E000}';
/// Ends a placeholder key.
pub const CLOSE: char = '\u{E001}';

/// A fully named relation in the target warehouse.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Relation {
    pub database: String,
    pub schema: String,
    pub identifier: String,
    /// The adapter type, which decides quoting and how many parts are printed.
    #[serde(skip)]
    pub adapter: String,
    /// Set for ephemeral models: the relation prints as the name of an injected CTE.
    #[serde(skip)]
    pub cte: Option<String>,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(cte) = &self.cte {
            return f.write_str(cte);
        }
        match self.adapter.as_str() {
            "mysql" => write!(f, "`{}`.`{}`", self.schema, self.identifier),
            "sqlite" => write!(f, "\"{}\".\"{}\"", self.schema, self.identifier),
            _ => write!(
                f,
                "\"{}\".\"{}\".\"{}\"",
                self.database, self.schema, self.identifier
            ),
        }
    }
}

/// Looks up the real relation for a placeholder key; shared across render threads.
pub type Resolver = Arc<dyn Fn(&RelationKey) -> Option<Relation> + Send + Sync>;

/// What a relation value refers to, as written in the template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelationKey {
    Ref(String),
    Source(String, String),
    This,
}

impl RelationKey {
    /// Returns the placeholder text that stands for this relation in first-pass output.
    pub fn placeholder(&self) -> String {
        match self {
            RelationKey::Ref(name) => format!("{OPEN}r:{name}{CLOSE}"),
            RelationKey::Source(s, t) => format!("{OPEN}s:{s}\u{1f}{t}{CLOSE}"),
            RelationKey::This => format!("{OPEN}this{CLOSE}"),
        }
    }

    /// Parses the inside of a placeholder.
    pub fn parse(inner: &str) -> Option<RelationKey> {
        if inner == "this" {
            return Some(RelationKey::This);
        }
        if let Some(name) = inner.strip_prefix("r:") {
            return Some(RelationKey::Ref(name.to_string()));
        }
        let rest = inner.strip_prefix("s:")?;
        let (s, t) = rest.split_once('\u{1f}')?;
        Some(RelationKey::Source(s.to_string(), t.to_string()))
    }
}

/// Replaces every placeholder in `text` with what `resolve` returns for its key.
pub fn substitute(text: &str, resolve: &dyn Fn(&RelationKey) -> String) -> String {
    if !text.contains(OPEN) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len_utf8()..];
        match after.find(CLOSE) {
            Some(end) => {
                match RelationKey::parse(&after[..end]) {
                    Some(key) => out.push_str(&resolve(&key)),
                    None => out.push_str(&after[..end]),
                }
                rest = &after[end + CLOSE.len_utf8()..];
            }
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The value templates get from `ref()`, `source()` and `this`.
#[derive(Debug)]
pub struct RelationValue {
    pub key: RelationKey,
    /// The real relation, known in the second pass.
    pub resolved: Option<Relation>,
}

impl RelationValue {
    /// Wraps a relation key (and its real name, when known) as a template value.
    pub fn value(key: RelationKey, resolved: Option<Relation>) -> Value {
        Value::from_object(RelationValue { key, resolved })
    }
}

impl Object for RelationValue {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let field = key.as_str()?;
        let Some(rel) = &self.resolved else {
            // The name is not known yet: ask for a second render and give a stand-in.
            scope::with(|s| s.needs_resolve = true);
            return match field {
                "database" | "schema" | "identifier" | "name" | "table" => Some(Value::from("")),
                _ => None,
            };
        };
        Some(Value::from(match field {
            "database" => rel.database.clone(),
            "schema" => rel.schema.clone(),
            "identifier" | "name" | "table" => rel.identifier.clone(),
            _ => return None,
        }))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resolved {
            Some(rel) => write!(f, "{rel}"),
            None => f.write_str(&self.key.placeholder()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_round_trip() {
        let text = format!(
            "select * from {} join {} on 1=1 -- {}",
            RelationKey::Ref("a".into()).placeholder(),
            RelationKey::Source("web".into(), "events".into()).placeholder(),
            RelationKey::This.placeholder()
        );
        let out = substitute(&text, &|k| match k {
            RelationKey::Ref(n) => format!("R({n})"),
            RelationKey::Source(s, t) => format!("S({s}.{t})"),
            RelationKey::This => "THIS".into(),
        });
        assert_eq!(out, "select * from R(a) join S(web.events) on 1=1 -- THIS");
    }

    #[test]
    fn relations_quote_per_adapter() {
        let mut r = Relation {
            database: "db".into(),
            schema: "s".into(),
            identifier: "t".into(),
            adapter: "postgres".into(),
            cte: None,
        };
        assert_eq!(r.to_string(), "\"db\".\"s\".\"t\"");
        r.adapter = "mysql".into();
        assert_eq!(r.to_string(), "`s`.`t`");
        r.adapter = "sqlite".into();
        assert_eq!(r.to_string(), "\"s\".\"t\"");
    }
}
