//! Connectors: the one trait every destination implements, and the batch it receives. The
//! engine owns diffing, batching, rate limits, retries and state; a connector only turns a
//! batch into requests and says, row by row, what the destination acknowledged.

pub mod database;
pub mod file;
pub mod http;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::value::Value;
use crate::spec::sync::Mode;

/// What a batch asks the destination to do. Every row of a batch has the same operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A key never delivered.
    Insert,
    /// A key delivered before, with a different payload.
    Update,
    /// A key delivered before that left the model (mirror mode).
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// The shape every batch of one sync shares: its fields, in mapping order, and the field the
/// destination matches rows on.
#[derive(Debug, Clone)]
pub struct Shape {
    pub sync: String,
    pub object: String,
    pub mode: Mode,
    pub fields: Arc<[String]>,
    /// The destination field rows are matched on (`match_on`, else the primary key's field).
    pub match_field: String,
    /// Column types of the fields that come straight from a model column (`integer`, `float`,
    /// `boolean`, `text`); fields made by templates are typed from their values.
    pub types: BTreeMap<String, &'static str>,
}

impl Shape {
    /// The position of the match field among the fields, if it is mapped.
    pub fn match_index(&self) -> Option<usize> {
        self.fields.iter().position(|f| *f == self.match_field)
    }
}

/// One row to deliver: its key (the primary key's value as text), the destination's match
/// value, and the payload aligned to [`Shape::fields`] (empty for deletes).
#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    pub match_value: Value,
    pub fingerprint: u64,
    pub payload: Vec<Value>,
}

/// Rows sent in one request (or one transaction).
#[derive(Debug, Clone)]
pub struct Batch {
    pub op: Op,
    pub records: Vec<Record>,
}

/// What the destination said about a batch it answered: the indexes (into the batch) it
/// rejected, with reasons; every other row is acknowledged.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub rejected: Vec<(usize, String)>,
}

/// A batch that was not answered, or answered with a failure of the whole batch.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub message: String,
    pub kind: FailureKind,
    /// How long the destination asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

/// How the engine treats a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Worth trying again: 429, 5xx, a timeout, a dropped connection, an unreadable answer.
    Transient,
    /// The rows themselves were refused (400, 422): they are recorded as rejected and tried
    /// again on the next run.
    Rejected,
    /// Nothing will work until someone acts (401, 403, a missing table, a bad URL): the sync
    /// stops.
    Fatal,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            kind: FailureKind::Transient,
            retry_after: None,
        }
    }
    pub fn fatal(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            kind: FailureKind::Fatal,
            retry_after: None,
        }
    }
    pub fn rejected(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            kind: FailureKind::Rejected,
            retry_after: None,
        }
    }
}

/// A destination the engine can deliver to.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// The most rows one request may carry.
    fn max_batch(&self) -> usize;
    /// The batch size when the sync does not set one.
    fn default_batch(&self) -> usize {
        self.max_batch().min(500)
    }
    /// How many requests may be in flight at once when the destination does not say.
    fn default_concurrency(&self) -> usize {
        4
    }
    /// Gets ready to receive batches of `shape` (creates a table, reads a file). Called once per
    /// sync run, before the first batch.
    async fn prepare(&self, shape: &Shape) -> Result<(), Failure>;
    /// Delivers one batch.
    async fn send(&self, shape: &Shape, batch: &Batch) -> Result<Answer, Failure>;
}

/// The settings of a destination with `env_var()` resolved.
pub type Settings = BTreeMap<String, String>;

/// Reads a setting that must be a whole number.
pub fn setting_number(settings: &Settings, key: &str) -> Result<Option<u64>, String> {
    match settings.get(key) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("`{key}` must be a whole number, not `{v}`")),
    }
}

/// Builds the connector of a destination type from its resolved settings. `project_dir`
/// anchors relative file paths.
pub async fn build(
    kind: &str,
    settings: &Settings,
    project_dir: &std::path::Path,
) -> Result<Arc<dyn Connector>, String> {
    Ok(match kind {
        "http" => Arc::new(http::HttpConnector::new(settings)?),
        "file" => Arc::new(file::FileConnector::new(settings, project_dir)?),
        "postgres" | "mysql" | "sqlite" => {
            Arc::new(database::DatabaseConnector::connect(kind, settings, project_dir).await?)
        }
        other => {
            return Err(format!(
                "destination type `{other}` has no connector yet; it can be planned but not run"
            ))
        }
    })
}
