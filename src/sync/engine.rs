//! One sync, start to end: read the model, map and fingerprint each row, compare with what was
//! delivered, check the guards, then deliver the changes in batches (rate-limited, bounded,
//! retried) and record each acknowledged batch in state.
//!
//! Rows stream through twice at most: the first pass counts the changes (guards must be judged
//! before anything is sent) and keeps up to [`BUFFER`] changed rows; when more changed, a second
//! pass reads the model again and sends them as they come. Memory holds one fingerprint per
//! delivered key, never the model.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use super::connector::{Answer, Batch, Connector, Failure, FailureKind, Op, Record, Shape};
use super::mapper::{Mapped, Mapper};
use super::state::{key_hash, Delivered, RunRecord, StateStore};
use super::value::Value;
use crate::render::relation::Relation;
use crate::spec::sync::{DestinationSpec, Mode, SyncSpec, Threshold};
use crate::warehouse::rows::{family, Chunk};
use crate::warehouse::Warehouse;

/// Changed rows kept in memory after the first pass; beyond this the model is read again.
pub const BUFFER: usize = 20_000;
/// Rows of each operation kept as samples for `ebb plan`.
pub const SAMPLES: usize = 5;

type Limiter = governor::DefaultDirectRateLimiter;

fn limiter(count: u32, per_seconds: f64) -> Option<Arc<Limiter>> {
    let count = std::num::NonZeroU32::new(count)?;
    let period = Duration::from_secs_f64(per_seconds / f64::from(count.get()));
    let quota = governor::Quota::with_period(period)?.allow_burst(count);
    Some(Arc::new(governor::RateLimiter::direct(quota)))
}

/// Everything that writes to one destination shares its lane: one connector, one bound on
/// requests in flight, one rate limit.
pub struct Lane {
    pub connector: Arc<dyn Connector>,
    permits: Arc<Semaphore>,
    limiter: Option<Arc<Limiter>>,
    retry: RetryPolicy,
}

impl Lane {
    /// Builds the lane of a destination around its connector.
    pub fn new(connector: Arc<dyn Connector>, destination: &DestinationSpec) -> Lane {
        let concurrency = destination
            .settings
            .get("max_concurrency")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or_else(|| connector.default_concurrency())
            .max(1);
        let mut retry = RetryPolicy::default();
        if let Some(n) = destination
            .settings
            .get("max_retries")
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            retry.attempts = n + 1;
        }
        Lane {
            retry,
            permits: Arc::new(Semaphore::new(concurrency)),
            limiter: destination
                .rate_limit
                .and_then(|r| limiter(r.count, r.per_seconds)),
            connector,
        }
    }
}

/// How retries back off.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// The longest `Retry-After` ebb waits for; a longer one fails the batch.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(20),
            max_wait: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based): exponential, with jitter between half
    /// and all of it, or what the destination asked for.
    pub fn wait(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        if let Some(asked) = asked {
            return asked;
        }
        let exp = self
            .base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.cap);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = f64::from(xxhash_rust::xxh3::xxh3_64(&nanos.to_le_bytes()) as u32)
            / f64::from(u32::MAX);
        exp.mul_f64(0.5 + jitter / 2.0)
    }
}

/// Receives progress as a sync runs.
pub trait Progress: Send + Sync {
    /// The sync knows how many rows it will send.
    fn start(&self, sync: &str, total: u64);
    /// A batch was answered.
    fn advance(&self, sync: &str, acked: u64, rejected: u64);
    /// The sync ended.
    fn finish(&self, sync: &str, report: &Report);
}

/// What one sync run needs besides its spec.
pub struct Job {
    pub spec: SyncSpec,
    pub destination: DestinationSpec,
    pub model: Relation,
    /// Where the rows go, as one string: a change means nothing was delivered there yet.
    pub target: String,
}

/// Flags of the run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Count and sample only: nothing is sent and state is not written.
    pub plan: bool,
    /// Send every row again, whatever state says.
    pub full_refresh: bool,
    /// Syncs whose guards are lifted for this run.
    pub skip_guards: HashSet<String>,
}

/// Who started the run, for run history.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub id: String,
    pub commit: Option<String>,
    pub dirty: Option<bool>,
}

/// How a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// The destination rejected some rows; the rest were delivered.
    Partial,
    Error,
    /// A guard stopped the sync before anything was sent.
    Guarded,
    /// Ctrl-C: batches in flight were finished and recorded, the rest left for the next run.
    Interrupted,
}

/// A sample row of a plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub key: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// What a sync did (or, for a plan, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub sync: String,
    pub destination: String,
    pub outcome: Outcome,
    /// Rows read from the model.
    pub rows: u64,
    pub unchanged: u64,
    /// Planned changes.
    pub to_insert: u64,
    pub to_update: u64,
    pub to_delete: u64,
    /// Rows the destination acknowledged, by operation.
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub rejected: u64,
    /// Requests made, retries included.
    pub requests: u64,
    pub retries: u64,
    /// Rows skipped because their primary key is null.
    pub null_keys: u64,
    /// The destination changed since the last run, so everything is sent again.
    pub retargeted: bool,
    pub message: Option<String>,
    pub samples: BTreeMap<String, Vec<Sample>>,
    pub duration: f64,
}

impl Report {
    /// A report with nothing done yet.
    pub fn empty(sync: &str, destination: &str) -> Report {
        Report {
            sync: sync.to_string(),
            destination: destination.to_string(),
            outcome: Outcome::Success,
            rows: 0,
            unchanged: 0,
            to_insert: 0,
            to_update: 0,
            to_delete: 0,
            inserted: 0,
            updated: 0,
            deleted: 0,
            rejected: 0,
            requests: 0,
            retries: 0,
            null_keys: 0,
            retargeted: false,
            message: None,
            samples: BTreeMap::new(),
            duration: 0.0,
        }
    }

    /// Rows sent and acknowledged.
    pub fn sent(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

/// Shared by every sync of a run.
pub struct Context {
    pub wh: Warehouse,
    pub state: StateStore,
    /// Mapping templates are evaluated here (ebb's filters installed).
    pub templates: minijinja::Environment<'static>,
    pub options: Options,
    pub cancel: Arc<AtomicBool>,
    pub progress: Arc<dyn Progress>,
    pub invocation: Invocation,
}

fn classify(mode: Mode, before: Option<u64>, fp: u64, force: bool) -> Option<Op> {
    match (before, mode) {
        (None, Mode::Update) => None,
        (None, _) => Some(Op::Insert),
        (Some(_), Mode::Insert) => None,
        (Some(old), _) if old != fp || force => Some(Op::Update),
        (Some(_), _) => None,
    }
}

fn tripped(limit: Option<Threshold>, count: u64, base: u64) -> Option<String> {
    match limit? {
        Threshold::Count(max) if count > max => Some(format!("{count} (limit {max})")),
        Threshold::Percent(p) if base > 0 && (count as f64) * 100.0 / (base as f64) > p => {
            Some(format!(
                "{count} of {base} delivered rows, {:.1}% (limit {p}%)",
                (count as f64) * 100.0 / (base as f64)
            ))
        }
        _ => None,
    }
}

/// Runs (or plans) one sync. `lane` is `None` for a plan. A run (not a plan) is recorded in
/// the run history.
pub async fn run(cx: Arc<Context>, job: Job, lane: Option<Arc<Lane>>) -> Report {
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut report = Report::empty(&job.spec.name, &job.destination.name);
    let mut record = RunRecord {
        invocation_id: cx.invocation.id.clone(),
        sync: job.spec.name.clone(),
        started_at,
        finished_at: None,
        commit: cx.invocation.commit.clone(),
        dirty: cx.invocation.dirty,
        status: "running".into(),
        inserted: 0,
        updated: 0,
        deleted: 0,
        rejected: 0,
        requests: 0,
        duration: 0.0,
        error: None,
    };
    let history = if cx.options.plan {
        None
    } else {
        cx.state.start_run(&record).await.ok()
    };
    let result = run_inner(&cx, &job, lane, &mut report).await;
    report.duration = started.elapsed().as_secs_f64();
    if let Err(message) = result {
        if report.outcome != Outcome::Guarded {
            report.outcome = Outcome::Error;
        }
        report.message = Some(message);
    }
    cx.progress.finish(&job.spec.name, &report);
    if let Some(id) = history {
        record.finished_at =
            Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
        record.status = serde_json::to_value(report.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        record.inserted = report.inserted;
        record.updated = report.updated;
        record.deleted = report.deleted;
        record.rejected = report.rejected;
        record.requests = report.requests;
        record.duration = report.duration;
        record.error = report
            .message
            .clone()
            .filter(|_| report.outcome != Outcome::Success);
        let _ = cx.state.finish_run(&id, &record).await;
    }
    report
}

/// Records in the run history a sync that could not start (its destination's settings or
/// connection failed), so `ebb status` shows it.
pub async fn record_failure(cx: &Context, report: &Report) {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let record = RunRecord {
        invocation_id: cx.invocation.id.clone(),
        sync: report.sync.clone(),
        started_at: now.clone(),
        finished_at: Some(now),
        commit: cx.invocation.commit.clone(),
        dirty: cx.invocation.dirty,
        status: "error".into(),
        inserted: 0,
        updated: 0,
        deleted: 0,
        rejected: 0,
        requests: 0,
        duration: 0.0,
        error: report.message.clone(),
    };
    if let Ok(id) = cx.state.start_run(&record).await {
        let _ = cx.state.finish_run(&id, &record).await;
    }
}

/// Where the changed rows come from when they are sent.
enum Changes {
    /// Kept from the first pass.
    Buffer(Vec<(Op, Record)>),
    /// A second pass over the model, compared with what was delivered.
    SecondPass(Delivered),
    /// The warehouse's own diff query (`state: warehouse`).
    Query(String, Vec<&'static str>),
}

/// What the diff found, before anything is sent.
struct Diff {
    changes: Changes,
    deletes: Vec<Record>,
    /// Keys delivered before (what percentages in guards are of).
    base: u64,
    clear_rejects: bool,
}

async fn run_inner(
    cx: &Arc<Context>,
    job: &Job,
    lane: Option<Arc<Lane>>,
    report: &mut Report,
) -> Result<(), String> {
    let spec = &job.spec;
    let name = spec.name.clone();
    let columns = cx
        .wh
        .columns(&job.model)
        .await
        .map_err(|e| format!("reading the columns of `{}`: {e}", job.model))?;
    if columns.is_empty() {
        return Err(format!(
            "the model relation `{}` does not exist; build it first with `ebb run --select {}`",
            job.model,
            crate::spec::sync::model_name(&spec.model).unwrap_or_default()
        ));
    }
    let key_field = spec
        .mapping
        .iter()
        .find(|m| !m.is_expression() && m.source.trim() == spec.primary_key)
        .map(|m| m.field.clone());
    let match_field = spec
        .match_on
        .clone()
        .or(key_field)
        .unwrap_or_else(|| spec.primary_key.clone());
    let mapper = Arc::new(Mapper::new(spec, cx.templates.clone(), &match_field)?);
    let families: Vec<&'static str> = mapper
        .columns
        .iter()
        .map(|c| {
            columns
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(c))
                .map(|(_, t)| family(t))
                .ok_or_else(|| format!("column `{c}` is not in `{}`", job.model))
        })
        .collect::<Result<_, _>>()?;
    let shape = Shape {
        sync: name.clone(),
        object: spec.object.clone(),
        mode: spec.mode,
        fields: mapper.fields.clone(),
        match_field: match_field.clone(),
        types: mapper.field_types(&families),
    };

    // Where the rows went before.
    let previous = cx.state.target(&name).await?;
    report.retargeted = previous.as_ref().is_some_and(|p| *p != job.target);
    if report.retargeted && !cx.options.plan {
        cx.state.retarget(&name, &job.target).await?;
    }

    let diff = match &cx.state {
        StateStore::Warehouse(ws) => {
            warehouse_diff(cx, ws, job, &mapper, &families, &shape, report).await?
        }
        StateStore::File(_) => file_diff(cx, job, &mapper, &families, &shape, report).await?,
    };
    report.to_delete = diff.deletes.len() as u64;
    if !diff.deletes.is_empty() {
        report.samples.insert(
            "delete".into(),
            diff.deletes
                .iter()
                .take(SAMPLES)
                .map(|r| Sample {
                    key: r.key.clone(),
                    fields: [(match_field.clone(), r.match_value.to_json())]
                        .into_iter()
                        .collect(),
                })
                .collect(),
        );
    }

    // Guards, judged before anything is sent.
    if !cx.options.skip_guards.contains(&name) {
        let changes = report.to_insert + report.to_update + report.to_delete;
        let guards = &spec.guards;
        let mut why = Vec::new();
        if let Some(t) = tripped(guards.max_deletes, report.to_delete, diff.base) {
            why.push(format!("it would delete {t} (guards.max_deletes)"));
        }
        if let Some(t) = tripped(guards.max_changes, changes, diff.base) {
            why.push(format!("it would change {t} (guards.max_changes)"));
        }
        if !why.is_empty() {
            report.outcome = Outcome::Guarded;
            return Err(format!(
                "sync `{name}` stopped by its guards before sending anything: {}. Check the model; to send it anyway for this one run: ebb run --select sync:{name} --skip-guards {name}",
                why.join(" and ")
            ));
        }
    }
    if cx.options.plan {
        return Ok(());
    }
    let Some(lane) = lane else {
        return Ok(());
    };
    let total = report.to_insert + report.to_update + report.to_delete;
    cx.progress.start(&name, total);
    if previous.as_deref() != Some(job.target.as_str()) {
        cx.state.set_target(&name, &job.target).await?;
    }
    if total == 0 {
        return Ok(());
    }
    lane.connector
        .prepare(&shape)
        .await
        .map_err(|f| f.message)?;

    // Deliver: changed rows stream in from the source, in batches of one operation each.
    let batch_size = spec
        .batch_size
        .map_or_else(|| lane.connector.default_batch(), |b| b as usize)
        .clamp(1, lane.connector.max_batch());
    let sender = Sender {
        cx: cx.clone(),
        lane,
        shape: Arc::new(shape),
        sync_limiter: spec
            .rate_limit
            .and_then(|r| limiter(r.count, r.per_seconds)),
        stats: Arc::new(Stats::default()),
        failed: Arc::new(Mutex::new(None)),
        key_is_match: match_field_is_key(spec, &match_field),
        clear_rejects: diff.clear_rejects,
    };
    let (tx, mut rx) = mpsc::channel::<Result<(Op, Record), String>>(batch_size.min(4096) * 2);
    let producer = tokio::spawn(produce(
        cx.clone(),
        job.model.clone(),
        mapper.clone(),
        families.clone(),
        spec.mode,
        diff.changes,
        tx,
    ));
    let mut running = JoinSet::new();
    let mut pending: BTreeMap<Op, Vec<Record>> = BTreeMap::new();
    let mut produced = Ok(());
    while let Some(item) = rx.recv().await {
        let (op, rec) = match item {
            Ok(x) => x,
            Err(e) => {
                produced = Err(e);
                break;
            }
        };
        let list = pending.entry(op).or_default();
        list.push(rec);
        if list.len() >= batch_size {
            let batch = Batch {
                op,
                records: std::mem::take(list),
            };
            if !sender.dispatch(batch, &mut running).await {
                break;
            }
        }
    }
    drop(rx);
    let _ = producer.await;
    if produced.is_ok() {
        for (op, records) in pending {
            if records.is_empty() {
                continue;
            }
            if !sender.dispatch(Batch { op, records }, &mut running).await {
                break;
            }
        }
        // Deletes go last, after every upsert was answered.
        while running.join_next().await.is_some() {}
        for chunk in diff.deletes.chunks(batch_size) {
            let batch = Batch {
                op: Op::Delete,
                records: chunk.to_vec(),
            };
            if !sender.dispatch(batch, &mut running).await {
                break;
            }
        }
    }
    while running.join_next().await.is_some() {}

    let s = &sender.stats;
    report.inserted = s.inserted.load(Ordering::Relaxed);
    report.updated = s.updated.load(Ordering::Relaxed);
    report.deleted = s.deleted.load(Ordering::Relaxed);
    report.rejected = s.rejected.load(Ordering::Relaxed);
    report.requests = s.requests.load(Ordering::Relaxed);
    report.retries = s.retries.load(Ordering::Relaxed);
    produced?;
    let failed = sender.failed.lock().map(|f| f.clone()).unwrap_or(None);
    if let Some(message) = failed {
        return Err(message);
    }
    if cx.cancel.load(Ordering::Relaxed) && report.sent() + report.rejected < total {
        report.outcome = Outcome::Interrupted;
        report.message = Some(format!(
            "interrupted: {} of {total} rows delivered and recorded; the next run sends the rest",
            report.sent()
        ));
        return Ok(());
    }
    if report.rejected > 0 {
        report.outcome = Outcome::Partial;
        report.message = Some(format!(
            "{} row(s) rejected by the destination; see `ebb status --rejected {name}`; they are sent again on the next run",
            report.rejected
        ));
    }
    Ok(())
}

/// Mapped rows of one chunk, or why mapping stopped.
type MappedChunk = Result<Vec<Mapped>, String>;

/// Reads the model and maps each chunk of rows off the async threads, sending the mapped
/// chunks down the returned channel; the handle ends with the rows read or the read error.
fn read_mapped(
    cx: &Arc<Context>,
    model: Relation,
    mapper: Arc<Mapper>,
    families: Vec<&'static str>,
) -> (
    tokio::task::JoinHandle<Result<u64, String>>,
    mpsc::Receiver<MappedChunk>,
) {
    let (raw_tx, mut raw_rx) = mpsc::channel::<Chunk>(4);
    let (tx, rx) = mpsc::channel(4);
    let wh = cx.wh.clone();
    let reader = tokio::spawn(async move {
        let cols = mapper.columns.clone();
        let mapping = tokio::spawn(async move {
            while let Some(chunk) = raw_rx.recv().await {
                let m = mapper.clone();
                let mapped = tokio::task::spawn_blocking(move || m.map_chunk(chunk))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
                let stop = mapped.is_err();
                if tx.send(mapped).await.is_err() || stop {
                    break;
                }
            }
        });
        let read = wh.stream_rows(&model, &cols, &families, raw_tx).await;
        let _ = mapping.await;
        read.map_err(|e| format!("reading `{model}`: {e}"))
    });
    (reader, rx)
}

/// Sends the changed rows of `changes` down `tx`.
async fn produce(
    cx: Arc<Context>,
    model: Relation,
    mapper: Arc<Mapper>,
    families: Vec<&'static str>,
    mode: Mode,
    changes: Changes,
    tx: mpsc::Sender<Result<(Op, Record), String>>,
) {
    let force = cx.options.full_refresh;
    match changes {
        Changes::Buffer(rows) => {
            for row in rows {
                if tx.send(Ok(row)).await.is_err() {
                    return;
                }
            }
        }
        Changes::SecondPass(delivered) => {
            let (reader, mut rx) = read_mapped(&cx, model, mapper, families);
            while let Some(chunk) = rx.recv().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                for row in chunk {
                    let Mapped::Record(rec) = row else { continue };
                    let before = delivered.rows.get(&key_hash(&rec.key)).map(|e| e.0);
                    if let Some(op) = classify(mode, before, rec.fingerprint, force) {
                        if tx.send(Ok((op, rec))).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if let Ok(Err(e)) = reader.await {
                let _ = tx.send(Err(e)).await;
            }
        }
        Changes::Query(sql, kinds) => {
            let (raw_tx, mut raw_rx) = mpsc::channel::<Chunk>(4);
            let wh = cx.wh.clone();
            let reader = tokio::spawn(async move { wh.stream_query(&sql, &kinds, raw_tx).await });
            while let Some(chunk) = raw_rx.recv().await {
                match query_chunk(&mapper, chunk) {
                    Ok(rows) => {
                        for row in rows {
                            if tx.send(Ok(row)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            if let Ok(Err(e)) = reader.await {
                let _ = tx.send(Err(format!("the diff query: {e}"))).await;
            }
        }
    }
}

/// Maps rows of the warehouse's diff query: model columns, then `ebb_key`, `ebb_fp`, `ebb_op`.
/// The fingerprint kept in state is the warehouse's.
fn query_chunk(mapper: &Mapper, chunk: Chunk) -> Result<Vec<(Op, Record)>, String> {
    let width = mapper.columns.len();
    let mut extra = Vec::with_capacity(chunk.len());
    let mut rows = Vec::with_capacity(chunk.len());
    for mut row in chunk {
        let tail = row.split_off(width.min(row.len()));
        extra.push(tail);
        rows.push(row);
    }
    let mapped = mapper.map_chunk(rows)?;
    Ok(mapped
        .into_iter()
        .zip(extra)
        .filter_map(|(m, tail)| {
            let Mapped::Record(mut rec) = m else {
                return None;
            };
            if let Some(Value::Int(fp)) = tail.get(1) {
                rec.fingerprint = *fp as u64;
            }
            let op = match tail.get(2) {
                Some(Value::Int(0)) => Op::Insert,
                _ => Op::Update,
            };
            Some((op, rec))
        })
        .collect())
}

/// The diff against the state file: one pass over the model in Rust, keeping up to [`BUFFER`]
/// changed rows.
async fn file_diff(
    cx: &Arc<Context>,
    job: &Job,
    mapper: &Arc<Mapper>,
    families: &[&'static str],
    shape: &Shape,
    report: &mut Report,
) -> Result<Diff, String> {
    let spec = &job.spec;
    let name = &spec.name;
    let mut delivered = if report.retargeted {
        Delivered::default()
    } else {
        cx.state.load(name).await?
    };
    let base = delivered.count;
    let force = cx.options.full_refresh;
    let mut buffer: Vec<(Op, Record)> = Vec::new();
    let mut overflow = false;
    let mut new_keys: HashSet<u128> = HashSet::new();
    let mut duplicates = 0u64;
    let mut first_duplicate = None;
    let (reader, mut rx) = read_mapped(cx, job.model.clone(), mapper.clone(), families.to_vec());
    while let Some(chunk) = rx.recv().await {
        for row in chunk? {
            report.rows += 1;
            let Mapped::Record(rec) = row else {
                report.null_keys += 1;
                continue;
            };
            let h = key_hash(&rec.key);
            let before = match delivered.rows.get_mut(&h) {
                Some(entry) if entry.1 => {
                    duplicates += 1;
                    first_duplicate.get_or_insert_with(|| rec.key.clone());
                    continue;
                }
                Some(entry) => {
                    entry.1 = true;
                    Some(entry.0)
                }
                None => {
                    if !new_keys.insert(h) {
                        duplicates += 1;
                        first_duplicate.get_or_insert_with(|| rec.key.clone());
                        continue;
                    }
                    None
                }
            };
            match classify(spec.mode, before, rec.fingerprint, force) {
                None => report.unchanged += 1,
                Some(op) => {
                    match op {
                        Op::Insert => report.to_insert += 1,
                        _ => report.to_update += 1,
                    }
                    let samples = report.samples.entry(op.as_str().to_string()).or_default();
                    if samples.len() < SAMPLES {
                        samples.push(sample(shape, &rec));
                    }
                    if !overflow && !cx.options.plan {
                        if buffer.len() < BUFFER {
                            buffer.push((op, rec));
                        } else {
                            overflow = true;
                            buffer = Vec::new();
                        }
                    }
                }
            }
        }
    }
    reader.await.map_err(|e| e.to_string())??;
    if duplicates > 0 {
        return Err(duplicate_error(
            spec,
            job,
            duplicates,
            first_duplicate.unwrap_or_default(),
        ));
    }
    drop(new_keys);

    // Keys that left the model.
    let gone: HashSet<u128> = if spec.mode == Mode::Mirror {
        delivered
            .rows
            .iter()
            .filter(|(_, (_, seen))| !seen)
            .map(|(h, _)| *h)
            .collect()
    } else {
        HashSet::new()
    };
    let deletes = if gone.is_empty() {
        Vec::new()
    } else {
        cx.state.keys_of(name, gone).await?
    };
    let deletes = delete_records(deletes, shape, families);
    let clear_rejects = delivered.rejected > 0;
    Ok(Diff {
        changes: if overflow {
            Changes::SecondPass(delivered)
        } else {
            Changes::Buffer(buffer)
        },
        deletes,
        base,
        clear_rejects,
    })
}

fn duplicate_error(spec: &SyncSpec, job: &Job, duplicates: u64, first: String) -> String {
    format!(
        "primary key `{}` is not unique in `{}`: {duplicates} duplicate row(s), the first with key `{first}`; nothing was sent",
        spec.primary_key, job.model
    )
}

/// Delete records from (key, match value) pairs, typed as the match field's column.
fn delete_records(
    keys: Vec<(String, Option<String>)>,
    shape: &Shape,
    families: &[&'static str],
) -> Vec<Record> {
    let key_family = families.first().copied().unwrap_or("text");
    let match_family = shape
        .types
        .get(&shape.match_field)
        .copied()
        .unwrap_or(key_family);
    keys.into_iter()
        .map(|(key, matched)| Record {
            match_value: typed(matched.as_deref().unwrap_or(&key), match_family),
            key,
            fingerprint: 0,
            payload: Vec::new(),
        })
        .collect()
}

/// The diff run by the warehouse (`state: warehouse`): counts first, then the changed rows
/// stream out of one query when they are sent.
async fn warehouse_diff(
    cx: &Arc<Context>,
    ws: &super::state::WarehouseState,
    job: &Job,
    mapper: &Arc<Mapper>,
    families: &[&'static str],
    shape: &Shape,
    report: &mut Report,
) -> Result<Diff, String> {
    let spec = &job.spec;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for m in &spec.mapping {
        h.update(m.field.as_bytes());
        h.update(&[0]);
        h.update(m.source.as_bytes());
        h.update(&[1]);
    }
    let sql = ws.diff_sql(
        &spec.name,
        &job.model,
        &mapper.columns,
        families,
        spec.mode,
        &format!("{:016x}", h.digest()),
        cx.options.full_refresh,
        report.retargeted && cx.options.plan,
    );
    let delivered = cx.state.load(&spec.name).await?;
    let fail = |e: crate::warehouse::Error| format!("the diff query in the warehouse: {e}");
    let counts = cx
        .wh
        .query_rows(&sql.counts, &["integer"; 4])
        .await
        .map_err(fail)?;
    let n = |i: usize| match counts.first().and_then(|r| r.get(i)) {
        Some(Value::Int(v)) => *v as u64,
        _ => 0,
    };
    report.to_insert = n(0);
    report.to_update = n(1);
    report.rows = n(2);
    report.unchanged = report.rows - report.to_insert - report.to_update;
    if n(3) > 0 {
        return Err(duplicate_error(spec, job, n(3), "(see the model)".into()));
    }
    let deletes = if spec.mode == Mode::Mirror && !(report.retargeted && cx.options.plan) {
        cx.wh
            .query_rows(&sql.deletes, &["text", "text"])
            .await
            .map_err(fail)?
            .into_iter()
            .map(|r| {
                let matched = (r[1] != Value::Null).then(|| r[1].to_text());
                (r[0].to_text(), matched)
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut kinds: Vec<&'static str> = families.to_vec();
    kinds.extend(["text", "integer", "integer"]);
    if report.to_insert + report.to_update > 0 {
        // Samples: the first changed rows of the query.
        let (tx, mut rx) = mpsc::channel::<Chunk>(1);
        let wh = cx.wh.clone();
        let (q, k) = (sql.changes.clone(), kinds.clone());
        let reader = tokio::spawn(async move { wh.stream_query(&q, &k, tx).await });
        if let Some(chunk) = rx.recv().await {
            for (op, rec) in query_chunk(mapper, chunk)? {
                let samples = report.samples.entry(op.as_str().to_string()).or_default();
                if samples.len() < SAMPLES {
                    samples.push(sample(shape, &rec));
                }
            }
        }
        drop(rx);
        let _ = reader.await;
    }
    Ok(Diff {
        changes: Changes::Query(sql.changes, kinds),
        deletes: delete_records(deletes, shape, families),
        base: delivered.count,
        clear_rejects: delivered.rejected > 0,
    })
}

fn match_field_is_key(spec: &SyncSpec, match_field: &str) -> bool {
    spec.mapping.iter().any(|m| {
        m.field == match_field && !m.is_expression() && m.source.trim() == spec.primary_key
    }) || spec.mapping.iter().all(|m| m.field != match_field)
}

/// A key or match value as the type of its column.
fn typed(text: &str, family: &str) -> Value {
    match family {
        "integer" => text
            .parse()
            .map_or_else(|_| Value::Text(text.into()), Value::Int),
        "float" => text
            .parse()
            .map_or_else(|_| Value::Text(text.into()), Value::Float),
        _ => Value::Text(text.into()),
    }
}

fn sample(shape: &Shape, rec: &Record) -> Sample {
    Sample {
        key: rec.key.clone(),
        fields: shape
            .fields
            .iter()
            .zip(&rec.payload)
            .map(|(f, v)| (f.clone(), v.to_json()))
            .collect(),
    }
}

#[derive(Default)]
struct Stats {
    inserted: AtomicU64,
    updated: AtomicU64,
    deleted: AtomicU64,
    rejected: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

struct Sender {
    cx: Arc<Context>,
    lane: Arc<Lane>,
    shape: Arc<Shape>,
    sync_limiter: Option<Arc<Limiter>>,
    stats: Arc<Stats>,
    /// The first failure that stops the sync.
    failed: Arc<Mutex<Option<String>>>,
    /// The match value is the key, so state need not store it.
    key_is_match: bool,
    clear_rejects: bool,
}

impl Sender {
    fn stopped(&self) -> bool {
        self.cx.cancel.load(Ordering::Relaxed)
            || self.failed.lock().map(|f| f.is_some()).unwrap_or(true)
    }

    /// Sends a batch when a request slot is free; returns false when the sync must stop
    /// (Ctrl-C, or a failure that no retry will fix).
    async fn dispatch(&self, batch: Batch, running: &mut JoinSet<()>) -> bool {
        // Reap finished batches so the set stays small.
        while running.try_join_next().is_some() {}
        if self.stopped() {
            return false;
        }
        let Ok(permit) = self.lane.permits.clone().acquire_owned().await else {
            return false;
        };
        if self.stopped() {
            return false;
        }
        let (cx, lane, shape, stats, failed) = (
            self.cx.clone(),
            self.lane.clone(),
            self.shape.clone(),
            self.stats.clone(),
            self.failed.clone(),
        );
        let sync_limiter = self.sync_limiter.clone();
        let (key_is_match, clear_rejects) = (self.key_is_match, self.clear_rejects);
        running.spawn(async move {
            // The permit is held until the batch is recorded: at most `concurrency` batches
            // are ever delivered but not yet in state (what a kill can make ebb send twice).
            let _permit = permit;
            let answer =
                send_with_retries(&cx, &lane, sync_limiter.as_deref(), &shape, &batch, &stats)
                    .await;
            let answer = match answer {
                Ok(a) => a,
                Err(f) if f.kind == FailureKind::Rejected => Answer {
                    rejected: (0..batch.records.len())
                        .map(|i| (i, f.message.clone()))
                        .collect(),
                },
                Err(f) => {
                    if let Ok(mut first) = failed.lock() {
                        first.get_or_insert(f.message);
                    }
                    return;
                }
            };
            let rejected: HashSet<usize> = answer.rejected.iter().map(|(i, _)| *i).collect();
            let acked: Vec<(String, Option<u64>)> = batch
                .records
                .iter()
                .enumerate()
                .filter(|(i, _)| !rejected.contains(i))
                .map(|(_, r)| {
                    let fp = (batch.op != Op::Delete).then_some(r.fingerprint);
                    (r.key.clone(), fp)
                })
                .collect();
            let matches: Vec<Option<String>> = if key_is_match || batch.op == Op::Delete {
                Vec::new()
            } else {
                batch
                    .records
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !rejected.contains(i))
                    .map(|(_, r)| Some(r.match_value.to_text()))
                    .collect()
            };
            let reasons: Vec<(String, String)> = answer
                .rejected
                .iter()
                .filter_map(|(i, why)| Some((batch.records.get(*i)?.key.clone(), why.clone())))
                .collect();
            let n_acked = acked.len() as u64;
            let n_rejected = reasons.len() as u64;
            let committed = cx
                .state
                .commit(shape.sync.clone(), acked, matches, reasons, clear_rejects)
                .await;
            if let Err(e) = committed {
                if let Ok(mut first) = failed.lock() {
                    first.get_or_insert(format!("recording delivered rows: {e}"));
                }
                return;
            }
            let counter = match batch.op {
                Op::Insert => &stats.inserted,
                Op::Update => &stats.updated,
                Op::Delete => &stats.deleted,
            };
            counter.fetch_add(n_acked, Ordering::Relaxed);
            stats.rejected.fetch_add(n_rejected, Ordering::Relaxed);
            cx.progress.advance(&shape.sync, n_acked, n_rejected);
        });
        true
    }
}

async fn send_with_retries(
    cx: &Context,
    lane: &Lane,
    sync_limiter: Option<&Limiter>,
    shape: &Shape,
    batch: &Batch,
    stats: &Stats,
) -> Result<Answer, Failure> {
    let policy = lane.retry;
    let mut attempt = 0;
    loop {
        if let Some(l) = &lane.limiter {
            l.until_ready().await;
        }
        if let Some(l) = sync_limiter {
            l.until_ready().await;
        }
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let failure = match lane.connector.send(shape, batch).await {
            Ok(answer) => return Ok(answer),
            Err(f) if f.kind != FailureKind::Transient => return Err(f),
            Err(f) => f,
        };
        attempt += 1;
        if attempt >= policy.attempts {
            return Err(Failure {
                message: format!("{} (gave up after {attempt} attempts)", failure.message),
                kind: FailureKind::Fatal,
                retry_after: None,
            });
        }
        if failure.retry_after.is_some_and(|w| w > policy.max_wait) {
            return Err(Failure {
                message: format!(
                    "{} (the destination asked to wait {}s, longer than ebb waits)",
                    failure.message,
                    failure.retry_after.map_or(0, |w| w.as_secs())
                ),
                kind: FailureKind::Fatal,
                retry_after: None,
            });
        }
        if cx.cancel.load(Ordering::Relaxed) {
            return Err(Failure::fatal(format!(
                "{} (interrupted while retrying)",
                failure.message
            )));
        }
        stats.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(policy.wait(attempt, failure.retry_after)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_decide_what_is_sent() {
        assert_eq!(classify(Mode::Insert, None, 1, false), Some(Op::Insert));
        assert_eq!(classify(Mode::Insert, Some(2), 1, false), None);
        assert_eq!(classify(Mode::Update, None, 1, false), None);
        assert_eq!(classify(Mode::Update, Some(2), 1, false), Some(Op::Update));
        assert_eq!(classify(Mode::Upsert, Some(1), 1, false), None);
        assert_eq!(classify(Mode::Upsert, Some(1), 1, true), Some(Op::Update));
        assert_eq!(classify(Mode::Mirror, None, 1, false), Some(Op::Insert));
    }

    #[test]
    fn guards_count_and_percent() {
        assert!(tripped(Some(Threshold::Count(10)), 11, 100).is_some());
        assert!(tripped(Some(Threshold::Count(10)), 10, 100).is_none());
        assert!(tripped(Some(Threshold::Percent(5.0)), 6, 100).is_some());
        assert!(tripped(Some(Threshold::Percent(5.0)), 5, 100).is_none());
        // Nothing delivered yet: a percentage has nothing to be a percentage of.
        assert!(tripped(Some(Threshold::Percent(5.0)), 500, 0).is_none());
    }

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        let p = RetryPolicy::default();
        let w1 = p.wait(1, None);
        assert!(w1 >= Duration::from_millis(100) && w1 <= Duration::from_millis(200));
        let w3 = p.wait(3, None);
        assert!(w3 >= Duration::from_millis(400) && w3 <= Duration::from_millis(800));
        assert!(p.wait(10, None) <= p.cap);
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }
}
