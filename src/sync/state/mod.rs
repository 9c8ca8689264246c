//! Sync state: what each sync last delivered, as one fingerprint per primary key, plus the rows
//! the destination rejected and the history of runs. It is written only for rows the
//! destination acknowledged, one transaction per batch, so a run killed at any moment leaves
//! state that is true of the destination.
//!
//! Two homes: an embedded SQLite file ([`FileState`], the default), or tables in a schema of
//! the warehouse ([`WarehouseState`], `state: warehouse`), where the diff itself is a SQL query
//! run by the warehouse, so runners can be ephemeral CI jobs.

mod file;
mod warehouse;

use std::collections::{HashMap, HashSet};

pub use file::FileState;
pub use warehouse::WarehouseState;

/// The hash a key is known by in memory (128 bits: no two keys of a model share one).
pub fn key_hash(key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key.as_bytes())
}

/// What a sync delivered before: fingerprint by key hash, and whether this run saw the key.
/// The warehouse backend leaves `rows` empty (the diff happens in SQL) and sets `count`.
#[derive(Debug, Default)]
pub struct Delivered {
    pub rows: HashMap<u128, (u64, bool)>,
    /// Keys delivered.
    pub count: u64,
    /// Keys the destination rejected last time.
    pub rejected: usize,
}

/// A row of run history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub invocation_id: String,
    pub sync: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub commit: Option<String>,
    pub dirty: Option<bool>,
    pub status: String,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub rejected: u64,
    pub requests: u64,
    pub duration: f64,
    pub error: Option<String>,
}

/// Where state lives.
#[derive(Debug, Clone)]
pub enum StateStore {
    File(FileState),
    Warehouse(WarehouseState),
}

/// Runs a blocking call on the file state off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
}

impl StateStore {
    /// Says where state lives, for messages.
    pub fn describe(&self) -> String {
        match self {
            StateStore::File(f) => format!("state file `{}`", f.path().display()),
            StateStore::Warehouse(w) => format!("warehouse schema `{}`", w.schema()),
        }
    }

    /// The destination identity the sync last delivered to.
    pub async fn target(&self, sync: &str) -> Result<Option<String>, String> {
        match self {
            StateStore::File(f) => {
                let (f, s) = (f.clone(), sync.to_string());
                blocking(move || f.target(&s)).await
            }
            StateStore::Warehouse(w) => w.target(sync).await,
        }
    }

    /// What the sync delivered (file: every fingerprint; warehouse: counts only).
    pub async fn load(&self, sync: &str) -> Result<Delivered, String> {
        match self {
            StateStore::File(f) => {
                let (f, s) = (f.clone(), sync.to_string());
                blocking(move || f.load(&s)).await
            }
            StateStore::Warehouse(w) => w.load(sync).await,
        }
    }

    /// The keys (and match values) of the given key hashes (file state only).
    pub async fn keys_of(
        &self,
        sync: &str,
        hashes: HashSet<u128>,
    ) -> Result<Vec<(String, Option<String>)>, String> {
        match self {
            StateStore::File(f) => {
                let (f, s) = (f.clone(), sync.to_string());
                blocking(move || f.keys_of(&s, &hashes)).await
            }
            StateStore::Warehouse(_) => Ok(Vec::new()),
        }
    }

    /// Forgets what the sync delivered (its destination changed) and records the new target.
    pub async fn retarget(&self, sync: &str, target: &str) -> Result<(), String> {
        match self {
            StateStore::File(f) => {
                let (f, s, t) = (f.clone(), sync.to_string(), target.to_string());
                blocking(move || f.retarget(&s, &t)).await
            }
            StateStore::Warehouse(w) => w.retarget(sync, target).await,
        }
    }

    /// Records where the sync's rows go.
    pub async fn set_target(&self, sync: &str, target: &str) -> Result<(), String> {
        match self {
            StateStore::File(f) => {
                let (f, s, t) = (f.clone(), sync.to_string(), target.to_string());
                blocking(move || f.set_target(&s, &t)).await
            }
            StateStore::Warehouse(w) => w.set_target(sync, target).await,
        }
    }

    /// Records one answered batch in one transaction (see [`FileState::commit`]).
    pub async fn commit(
        &self,
        sync: String,
        acked: Vec<(String, Option<u64>)>,
        matches: Vec<Option<String>>,
        rejected: Vec<(String, String)>,
        clear_rejects: bool,
    ) -> Result<(), String> {
        match self {
            StateStore::File(f) => {
                let f = f.clone();
                blocking(move || f.commit(&sync, &acked, &matches, &rejected, clear_rejects)).await
            }
            StateStore::Warehouse(w) => {
                w.commit(&sync, &acked, &matches, &rejected, clear_rejects)
                    .await
            }
        }
    }

    /// The rejected rows of a sync: key, reason, when.
    pub async fn rejections(
        &self,
        sync: &str,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, String> {
        match self {
            StateStore::File(f) => {
                let (f, s) = (f.clone(), sync.to_string());
                blocking(move || f.rejections(&s, limit)).await
            }
            StateStore::Warehouse(w) => w.rejections(sync, limit).await,
        }
    }

    /// Starts a run-history row; returns its id.
    pub async fn start_run(&self, run: &RunRecord) -> Result<String, String> {
        match self {
            StateStore::File(f) => {
                let (f, r) = (f.clone(), run.clone());
                blocking(move || f.start_run(&r).map(|id| id.to_string())).await
            }
            StateStore::Warehouse(w) => w.start_run(run).await,
        }
    }

    /// Finishes a run-history row.
    pub async fn finish_run(&self, id: &str, run: &RunRecord) -> Result<(), String> {
        match self {
            StateStore::File(f) => {
                let id: i64 = id.parse().map_err(|_| format!("bad run id `{id}`"))?;
                let (f, r) = (f.clone(), run.clone());
                blocking(move || f.finish_run(id, &r)).await
            }
            StateStore::Warehouse(w) => w.finish_run(id, run).await,
        }
    }

    /// The most recent runs, at most `limit` per sync, by sync then newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<RunRecord>, String> {
        match self {
            StateStore::File(f) => {
                let f = f.clone();
                blocking(move || f.history(limit)).await
            }
            StateStore::Warehouse(w) => w.history(limit).await,
        }
    }
}
