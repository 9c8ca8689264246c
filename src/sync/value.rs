//! One cell of a model row, as read from the warehouse and as sent to a destination. Rows are
//! plain `Vec<Value>` aligned to a column list, so a million of them stream without a map per
//! row.

use std::fmt::Write as _;

use xxhash_rust::xxh3::Xxh3;

/// A cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    /// The value as text, the way it appears in a CSV file or a key (`Null` is empty).
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => float_text(*f),
            Value::Text(s) => s.clone(),
        }
    }

    /// Feeds the value, with its type, into a running hash.
    pub fn hash_into(&self, h: &mut Xxh3) {
        match self {
            Value::Null => h.update(&[0]),
            Value::Bool(b) => h.update(&[1, u8::from(*b)]),
            Value::Int(i) => {
                h.update(&[2]);
                h.update(&i.to_le_bytes());
            }
            Value::Float(f) => {
                h.update(&[3]);
                h.update(&f.to_bits().to_le_bytes());
            }
            Value::Text(s) => {
                h.update(&[4]);
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
    }

    /// Appends the value as JSON.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) if f.is_finite() => out.push_str(&float_text(*f)),
            Value::Float(_) => out.push_str("null"),
            Value::Text(s) => write_json_string(s, out),
        }
    }

    /// The value as a serde_json value.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Text(s) => s.clone().into(),
        }
    }

    /// The value for a template (`row.x`).
    pub fn to_jinja(&self) -> minijinja::Value {
        match self {
            Value::Null => minijinja::Value::from(()),
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => (*f).into(),
            Value::Text(s) => s.as_str().into(),
        }
    }
}

fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_text() {
        let mut s = String::new();
        Value::Text("a\"b\n\u{1}".into()).write_json(&mut s);
        assert_eq!(s, r#""a\"b\n\u0001""#);
        assert_eq!(serde_json::from_str::<String>(&s).unwrap(), "a\"b\n\u{1}");
        assert_eq!(Value::Float(2.0).to_text(), "2.0");
        assert_eq!(Value::Float(2.5).to_text(), "2.5");
        assert_eq!(Value::Null.to_text(), "");
    }

    #[test]
    fn hashes_tell_types_apart() {
        let h = |v: &Value| {
            let mut x = Xxh3::new();
            v.hash_into(&mut x);
            x.digest()
        };
        assert_ne!(h(&Value::Int(1)), h(&Value::Text("1".into())));
        assert_ne!(h(&Value::Null), h(&Value::Text(String::new())));
    }
}
