//! Seeds: a CSV file becomes a table. Column types are inferred from the values (integers,
//! decimals, booleans, dates, timestamps, text) unless the seed's `column_types` config names
//! them; the table is replaced on every load.

use std::collections::BTreeMap;

use super::{Error, RelationKind, Warehouse};
use crate::render::relation::Relation;

/// A column type inferred from seed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedType {
    Integer,
    Float,
    Boolean,
    Date,
    Timestamp,
    Text,
}

impl SeedType {
    fn fits(self, v: &str) -> bool {
        match self {
            SeedType::Integer => v.parse::<i64>().is_ok(),
            SeedType::Float => v.parse::<f64>().is_ok_and(f64::is_finite),
            SeedType::Boolean => matches!(v.to_ascii_lowercase().as_str(), "true" | "false"),
            SeedType::Date => is_date(v),
            // `get` rather than slicing: a cell may hold any UTF-8, and a slice inside a
            // character would panic.
            SeedType::Timestamp => {
                v.get(..10).is_some_and(is_date)
                    && matches!(v.as_bytes().get(10), Some(b' ' | b'T'))
                    && v.get(11..19).is_some_and(is_time)
            }
            SeedType::Text => true,
        }
    }

    /// Returns the column type in a dialect.
    pub fn sql(self, adapter: &str) -> &'static str {
        match (self, adapter) {
            (SeedType::Integer, "sqlite") => "integer",
            (SeedType::Integer, _) => "bigint",
            (SeedType::Float, "postgres") => "double precision",
            (SeedType::Float, "sqlite") => "real",
            (SeedType::Float, _) => "double",
            (SeedType::Boolean, "sqlite") => "boolean",
            (SeedType::Boolean, _) => "boolean",
            (SeedType::Date, "sqlite") => "date",
            (SeedType::Date, _) => "date",
            (SeedType::Timestamp, "mysql") => "datetime",
            (SeedType::Timestamp, _) => "timestamp",
            (SeedType::Text, _) => "text",
        }
    }
}

/// Tells whether `v` is ASCII digits with `sep` at the given byte positions and nowhere else.
fn digits_with(v: &str, len: usize, sep: u8, at: [usize; 2]) -> bool {
    v.len() == len
        && v.bytes().enumerate().all(|(i, b)| {
            if at.contains(&i) {
                b == sep
            } else {
                b.is_ascii_digit()
            }
        })
}

fn is_date(v: &str) -> bool {
    digits_with(v, 10, b'-', [4, 7])
}

fn is_time(v: &str) -> bool {
    digits_with(v, 8, b':', [2, 5])
}

/// Infers each column's type: the narrowest type every non-empty value fits.
pub fn infer(rows: &[Vec<String>], columns: usize) -> Vec<SeedType> {
    const ORDER: [SeedType; 6] = [
        SeedType::Integer,
        SeedType::Float,
        SeedType::Boolean,
        SeedType::Date,
        SeedType::Timestamp,
        SeedType::Text,
    ];
    (0..columns)
        .map(|c| {
            let values: Vec<&str> = rows
                .iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .collect();
            if values.is_empty() {
                return SeedType::Text;
            }
            *ORDER
                .iter()
                .find(|t| values.iter().all(|v| t.fits(v)))
                .unwrap_or(&SeedType::Text)
        })
        .collect()
}

fn literal(v: &str, ty: Option<SeedType>, adapter: &str) -> String {
    let v = v.trim();
    if v.is_empty() {
        return "null".into();
    }
    match ty {
        Some(SeedType::Integer | SeedType::Float) => v.to_string(),
        Some(SeedType::Boolean) => {
            let t = v.eq_ignore_ascii_case("true");
            match adapter {
                "sqlite" => if t { "1" } else { "0" }.into(),
                _ => if t { "true" } else { "false" }.into(),
            }
        }
        _ => {
            let mut s = v.replace('\'', "''");
            if adapter == "mysql" {
                s = s.replace('\\', "\\\\");
            }
            format!("'{s}'")
        }
    }
}

fn quote(adapter: &str, name: &str) -> String {
    match adapter {
        "mysql" => format!("`{}`", name.replace('`', "``")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// A seed file read and ready to load.
#[derive(Debug, Clone, Default)]
pub struct SeedData {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Column types from the seed's `column_types` config, used instead of inferred ones.
    pub overrides: BTreeMap<String, String>,
}

impl SeedData {
    /// Reads a CSV file; errors name the line.
    pub fn read(bytes: &[u8], overrides: BTreeMap<String, String>) -> Result<SeedData, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| format!("line {}: {e}", i + 2))?;
            rows.push(record.iter().map(str::to_string).collect());
        }
        Ok(SeedData {
            header,
            rows,
            overrides,
        })
    }
}

/// Replaces `rel` with the rows of a seed. Returns the number of rows loaded.
pub async fn load(wh: &Warehouse, rel: &Relation, data: &SeedData) -> Result<u64, Error> {
    let (header, rows, overrides) = (&data.header, &data.rows, &data.overrides);
    let adapter = wh.adapter();
    let inferred = infer(rows, header.len());
    let columns: Vec<String> = header
        .iter()
        .zip(&inferred)
        .map(|(name, ty)| {
            let sql_type = overrides
                .get(name)
                .cloned()
                .unwrap_or_else(|| ty.sql(adapter).to_string());
            format!("{} {sql_type}", quote(adapter, name))
        })
        .collect();
    let types: Vec<Option<SeedType>> = header
        .iter()
        .zip(&inferred)
        .map(|(n, t)| (!overrides.contains_key(n)).then_some(*t))
        .collect();
    if let Some(kind) = wh.relation_kind(rel).await? {
        let what = if kind == RelationKind::View {
            "view"
        } else {
            "table"
        };
        let cascade = if adapter == "postgres" {
            " cascade"
        } else {
            ""
        };
        wh.execute(&format!("drop {what} if exists {rel}{cascade}"))
            .await?;
    }
    wh.execute(&format!("create table {rel} ({})", columns.join(", ")))
        .await?;
    let names: Vec<String> = header.iter().map(|h| quote(adapter, h)).collect();
    for chunk in rows.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|row| {
                let cells: Vec<String> = (0..header.len())
                    .map(|i| literal(row.get(i).map_or("", String::as_str), types[i], adapter))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        wh.execute(&format!(
            "insert into {rel} ({}) values {}",
            names.join(", "),
            values.join(", ")
        ))
        .await?;
    }
    Ok(rows.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_the_narrowest_type() {
        let rows: Vec<Vec<String>> = vec![
            vec![
                "1".into(),
                "1.5".into(),
                "true".into(),
                "2024-01-02".into(),
                "2024-01-02 10:00:00".into(),
                "x".into(),
                "".into(),
            ],
            vec![
                "2".into(),
                "3".into(),
                "False".into(),
                "2024-02-03".into(),
                "2024-01-02T11:00:00".into(),
                "7".into(),
                "".into(),
            ],
        ];
        assert_eq!(
            infer(&rows, 7),
            vec![
                SeedType::Integer,
                SeedType::Float,
                SeedType::Boolean,
                SeedType::Date,
                SeedType::Timestamp,
                SeedType::Text,
                SeedType::Text
            ]
        );
    }

    #[test]
    fn odd_text_is_text_and_never_panics() {
        let rows: Vec<Vec<String>> = vec![
            vec!["2024-01-0é 10:00:00x".into()],
            vec!["2024-01-02 1é:00:00".into()],
        ];
        assert_eq!(infer(&rows, 1), vec![SeedType::Text]);
        assert!(!is_date("2024/01/02") && is_time("23:59:00"));
    }

    #[test]
    fn literals_escape_quotes() {
        assert_eq!(
            literal("O'Brien", Some(SeedType::Text), "postgres"),
            "'O''Brien'"
        );
        assert_eq!(literal("a\\b", Some(SeedType::Text), "mysql"), "'a\\\\b'");
        assert_eq!(literal("", Some(SeedType::Integer), "sqlite"), "null");
        assert_eq!(literal("TRUE", Some(SeedType::Boolean), "sqlite"), "1");
    }
}
