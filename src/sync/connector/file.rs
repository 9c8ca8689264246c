//! The file connector: the sync's rows as one CSV or JSON Lines file (`object` is the file
//! name, under the destination's `path`). Each batch is merged into the file's rows by match
//! key and the whole file is written to a temporary name and renamed over the old one, so a
//! reader, or a run killed mid-write, never sees half a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::sync::Mutex;

use super::{Answer, Batch, Connector, Failure, Op, Settings, Shape};
use crate::sync::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
}

/// Writes a sync's rows to a file.
pub struct FileConnector {
    dir: PathBuf,
    format: Format,
    /// The file's rows by match value, in the order of the fields; read on `prepare`.
    rows: Mutex<BTreeMap<String, Vec<String>>>,
}

impl FileConnector {
    /// Reads `path` (a directory, relative to the project) and `format` (`csv` or `jsonl`).
    pub fn new(settings: &Settings, project_dir: &Path) -> Result<Self, String> {
        let format = match settings.get("format").map(String::as_str) {
            Some("csv") => Format::Csv,
            Some("jsonl" | "json_lines" | "ndjson") => Format::JsonLines,
            other => {
                return Err(format!(
                    "`format` must be `csv` or `jsonl`, not `{}`",
                    other.unwrap_or_default()
                ))
            }
        };
        let dir = PathBuf::from(settings.get("path").cloned().unwrap_or_default());
        let dir = if dir.is_absolute() {
            dir
        } else {
            project_dir.join(dir)
        };
        Ok(FileConnector {
            dir,
            format,
            rows: Mutex::new(BTreeMap::new()),
        })
    }

    fn file(&self, shape: &Shape) -> PathBuf {
        self.dir.join(&shape.object)
    }
}

/// One cell as it is written: CSV text, or a JSON value.
fn cell(format: Format, v: &Value) -> String {
    match format {
        Format::Csv => v.to_text(),
        Format::JsonLines => {
            let mut s = String::new();
            v.write_json(&mut s);
            s
        }
    }
}

fn read_existing(
    path: &Path,
    format: Format,
    shape: &Shape,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut rows = BTreeMap::new();
    let text = match fs_err::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(rows),
        Err(e) => return Err(e.to_string()),
    };
    let at = shape.match_index().unwrap_or(0);
    match format {
        Format::Csv => {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let headers: Vec<String> = reader
                .headers()
                .map_err(|e| format!("reading `{}`: {e}", path.display()))?
                .iter()
                .map(str::to_string)
                .collect();
            for record in reader.records() {
                let record = record.map_err(|e| format!("reading `{}`: {e}", path.display()))?;
                let by_name: BTreeMap<&str, &str> = headers
                    .iter()
                    .map(String::as_str)
                    .zip(record.iter())
                    .collect();
                let cells: Vec<String> = shape
                    .fields
                    .iter()
                    .map(|f| {
                        by_name
                            .get(f.as_str())
                            .copied()
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect();
                if let Some(k) = cells.get(at) {
                    rows.insert(k.clone(), cells);
                }
            }
        }
        Format::JsonLines => {
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
                    .map_err(|e| format!("`{}` line {}: {e}", path.display(), n + 1))?;
                let cells: Vec<String> = shape
                    .fields
                    .iter()
                    .map(|f| {
                        obj.get(f)
                            .map_or_else(|| "null".into(), ToString::to_string)
                    })
                    .collect();
                let key = obj
                    .get(&shape.match_field)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .unwrap_or_default();
                rows.insert(key, cells);
            }
        }
    }
    Ok(rows)
}

fn render(
    format: Format,
    shape: &Shape,
    rows: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<u8>, String> {
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(shape.fields.iter())
                .map_err(|e| e.to_string())?;
            for cells in rows.values() {
                w.write_record(cells).map_err(|e| e.to_string())?;
            }
            w.into_inner().map_err(|e| e.to_string())
        }
        Format::JsonLines => {
            let mut out = String::new();
            for cells in rows.values() {
                out.push('{');
                for (i, (f, c)) in shape.fields.iter().zip(cells).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    crate::sync::value::write_json_string(f, &mut out);
                    out.push(':');
                    out.push_str(c);
                }
                out.push_str("}\n");
            }
            Ok(out.into_bytes())
        }
    }
}

#[async_trait::async_trait]
impl Connector for FileConnector {
    fn max_batch(&self) -> usize {
        // The whole file is rewritten per batch: one large batch per run.
        1_000_000
    }

    fn default_batch(&self) -> usize {
        1_000_000
    }

    fn default_concurrency(&self) -> usize {
        1
    }

    async fn prepare(&self, shape: &Shape) -> Result<(), Failure> {
        let path = self.file(shape);
        let existing = read_existing(&path, self.format, shape).map_err(Failure::fatal)?;
        *self.rows.lock().await = existing;
        Ok(())
    }

    async fn send(&self, shape: &Shape, batch: &Batch) -> Result<Answer, Failure> {
        let mut rows = self.rows.lock().await;
        let mut next = rows.clone();
        let key_text = |v: &Value| match v {
            Value::Text(s) => s.clone(),
            other => cell(Format::Csv, other),
        };
        for r in &batch.records {
            let k = key_text(&r.match_value);
            match batch.op {
                Op::Delete => {
                    next.remove(&k);
                }
                Op::Insert | Op::Update => {
                    next.insert(k, r.payload.iter().map(|v| cell(self.format, v)).collect());
                }
            }
        }
        let bytes = render(self.format, shape, &next).map_err(Failure::fatal)?;
        let path = self.file(shape);
        let written =
            tokio::task::spawn_blocking(move || crate::artifacts::write_atomic(&path, &bytes))
                .await
                .map_err(|e| Failure::fatal(e.to_string()))?;
        written.map_err(|e| Failure::fatal(format!("writing the file: {e}")))?;
        *rows = next;
        Ok(Answer::default())
    }
}
