//! Turns model rows into destination payloads: each mapping field is a model column or a
//! template over `row`. A template that is one `{{ expression }}` is evaluated as an
//! expression, so numbers stay numbers; anything else renders to text. Every payload gets a
//! fingerprint (xxh3 over the field names and typed values) that change detection compares.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::Environment;
use xxhash_rust::xxh3::Xxh3;

use super::connector::Record;
use super::value::Value;
use crate::spec::sync::SyncSpec;

enum Source {
    Column(usize),
    Expression(String),
    Template(String),
}

/// The compiled mapping of one sync.
pub struct Mapper {
    /// Columns read from the model: the primary key first, then what the mapping reads.
    pub columns: Vec<String>,
    pub fields: Arc<[String]>,
    sources: Vec<Source>,
    /// Position of the match field among the fields, if mapped.
    match_index: Option<usize>,
    env: Environment<'static>,
    seed: u64,
}

/// A row mapped: the record to send, or why it cannot be.
pub enum Mapped {
    Record(Record),
    NullKey,
}

impl Mapper {
    /// Compiles the mapping of `spec`. `env` has ebb's filters (mask, sha256, ...) installed.
    pub fn new(
        spec: &SyncSpec,
        env: Environment<'static>,
        match_field: &str,
    ) -> Result<Mapper, String> {
        let mut columns = vec![spec.primary_key.clone()];
        let index = |c: &str, columns: &mut Vec<String>| -> usize {
            columns.iter().position(|x| x == c).unwrap_or_else(|| {
                columns.push(c.to_string());
                columns.len() - 1
            })
        };
        let mut sources = Vec::new();
        for m in &spec.mapping {
            if m.is_expression() {
                for c in m.columns() {
                    index(&c, &mut columns);
                }
                let t = m.source.trim();
                let single = t
                    .strip_prefix("{{")
                    .and_then(|r| r.strip_suffix("}}"))
                    .filter(|inner| {
                        !inner.contains("{{") && !inner.contains("}}") && !t.contains("{%")
                    });
                sources.push(match single {
                    Some(inner) => Source::Expression(inner.trim().to_string()),
                    None => Source::Template(m.source.clone()),
                });
            } else {
                sources.push(Source::Column(index(m.source.trim(), &mut columns)));
            }
        }
        let fields: Arc<[String]> = spec.mapping.iter().map(|m| m.field.clone()).collect();
        let mut seed = Xxh3::new();
        for f in fields.iter() {
            seed.update(f.as_bytes());
            seed.update(&[0]);
        }
        let mapper = Mapper {
            match_index: fields.iter().position(|f| f == match_field),
            columns,
            fields,
            sources,
            env,
            seed: seed.digest(),
        };
        // Fail on a template that does not compile before a row is read.
        for s in &mapper.sources {
            match s {
                Source::Expression(e) => {
                    mapper
                        .env
                        .compile_expression(e)
                        .map_err(|e| e.to_string())?;
                }
                Source::Template(t) => {
                    mapper.env.template_from_str(t).map_err(|e| e.to_string())?;
                }
                Source::Column(_) => {}
            }
        }
        Ok(mapper)
    }

    /// Types of the fields that copy a model column, from the columns' type families.
    pub fn field_types(&self, families: &[&'static str]) -> BTreeMap<String, &'static str> {
        self.fields
            .iter()
            .zip(&self.sources)
            .filter_map(|(f, s)| match s {
                Source::Column(i) => Some((f.clone(), *families.get(*i)?)),
                _ => None,
            })
            .collect()
    }

    /// Maps a chunk of rows (aligned to [`Mapper::columns`]).
    pub fn map_chunk(&self, rows: Vec<Vec<Value>>) -> Result<Vec<Mapped>, String> {
        let has_templates = self.sources.iter().any(|s| !matches!(s, Source::Column(_)));
        let mut expressions = Vec::new();
        let mut templates = Vec::new();
        if has_templates {
            for s in &self.sources {
                match s {
                    Source::Expression(e) => {
                        expressions.push(Some(
                            self.env.compile_expression(e).map_err(|e| e.to_string())?,
                        ));
                        templates.push(None);
                    }
                    Source::Template(t) => {
                        expressions.push(None);
                        templates.push(Some(
                            self.env.template_from_str(t).map_err(|e| e.to_string())?,
                        ));
                    }
                    Source::Column(_) => {
                        expressions.push(None);
                        templates.push(None);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key = match &row[0] {
                Value::Null => {
                    out.push(Mapped::NullKey);
                    continue;
                }
                v => v.to_text(),
            };
            let context = has_templates.then(|| {
                let map: BTreeMap<&str, minijinja::Value> = self
                    .columns
                    .iter()
                    .map(String::as_str)
                    .zip(row.iter().map(Value::to_jinja))
                    .collect();
                minijinja::context! { row => map }
            });
            let mut payload = Vec::with_capacity(self.sources.len());
            for (i, s) in self.sources.iter().enumerate() {
                let v = match s {
                    Source::Column(c) => row[*c].clone(),
                    Source::Expression(_) => {
                        let (Some(Some(e)), Some(ctx)) = (expressions.get(i), &context) else {
                            return Err("expression not compiled".into());
                        };
                        let v = e.eval(ctx).map_err(|e| self.describe(i, &e))?;
                        from_jinja(&v)
                    }
                    Source::Template(_) => {
                        let (Some(Some(t)), Some(ctx)) = (templates.get(i), &context) else {
                            return Err("template not compiled".into());
                        };
                        Value::Text(t.render(ctx).map_err(|e| self.describe(i, &e))?)
                    }
                };
                payload.push(v);
            }
            let mut h = Xxh3::with_seed(self.seed);
            for v in &payload {
                v.hash_into(&mut h);
            }
            let match_value = self
                .match_index
                .map_or_else(|| row[0].clone(), |i| payload[i].clone());
            out.push(Mapped::Record(Record {
                key,
                match_value,
                fingerprint: h.digest(),
                payload,
            }));
        }
        Ok(out)
    }

    fn describe(&self, i: usize, e: &minijinja::Error) -> String {
        let detail = e
            .detail()
            .map_or_else(|| e.kind().to_string(), str::to_string);
        format!("mapping field `{}`: {detail}", self.fields[i])
    }
}

/// Converts a template's result to a cell, keeping numbers and booleans typed.
fn from_jinja(v: &minijinja::Value) -> Value {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => Value::Null,
        ValueKind::Bool => Value::Bool(v.is_true()),
        ValueKind::Number => match i64::try_from(v.clone()) {
            Ok(i) if !v.to_string().contains('.') => Value::Int(i),
            _ => f64::try_from(v.clone()).map_or_else(|_| Value::Text(v.to_string()), Value::Float),
        },
        ValueKind::String => Value::Text(v.as_str().unwrap_or_default().to_string()),
        _ => Value::Text(v.to_string()),
    }
}
