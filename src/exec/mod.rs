//! Runs a set of graph nodes in dependency order with bounded concurrency: a node starts when
//! every parent in the set has succeeded; a failure skips everything downstream of it, and the
//! rest of the run goes on.

pub mod tasks;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

/// How one node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Error,
    Skipped,
    Pass,
    Fail,
    Warn,
}

impl Status {
    /// Tells whether nodes downstream must be skipped: an error, a skip, or a failing
    /// error-severity test on a parent (as in `dbt build`).
    pub fn blocks(self) -> bool {
        matches!(self, Status::Error | Status::Skipped | Status::Fail)
    }
}

/// The result of one node.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub status: Status,
    pub message: Option<String>,
    /// Rows written by a model or seed, or failing rows found by a test.
    pub rows: Option<u64>,
    pub started_at: String,
    pub completed_at: String,
    pub execution_time: f64,
    /// What a sync did: rows inserted, updated, deleted and rejected, requests made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// Stops a run early: Ctrl-C sets `stop`; with `fail_fast`, so does the first error.
#[derive(Debug, Clone, Default)]
pub struct Control {
    pub stop: Arc<AtomicBool>,
    pub fail_fast: bool,
}

impl Outcome {
    /// Returns an outcome for work that started at `started` and ends now.
    pub fn finished(
        status: Status,
        started: (std::time::SystemTime, Instant),
        rows: Option<u64>,
        message: Option<String>,
    ) -> Self {
        Outcome {
            status,
            message,
            rows,
            started_at: humantime::format_rfc3339_micros(started.0).to_string(),
            completed_at: humantime::format_rfc3339_micros(std::time::SystemTime::now())
                .to_string(),
            execution_time: started.1.elapsed().as_secs_f64(),
            detail: None,
        }
    }

    fn skipped(because: &str) -> Self {
        Self::not_run(format!("skipped because `{because}` did not succeed"))
    }

    fn not_run(message: String) -> Self {
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        Outcome {
            status: Status::Skipped,
            message: Some(message),
            rows: None,
            started_at: now.clone(),
            completed_at: now,
            execution_time: 0.0,
            detail: None,
        }
    }
}

/// Runs `task` for every id in `parents` (id → its parents within the run), at most `threads`
/// at a time, children after parents; `on_done` sees each outcome as it arrives.
pub async fn run<F, Fut>(
    parents: BTreeMap<String, BTreeSet<String>>,
    threads: usize,
    task: F,
    on_done: impl FnMut(&str, &Outcome),
) -> BTreeMap<String, Outcome>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    run_with(parents, threads, &Control::default(), task, on_done).await
}

/// [`run`], stopping early as `control` says: once `stop` is set no node starts, the nodes
/// running finish, and the rest are reported as skipped.
pub async fn run_with<F, Fut>(
    parents: BTreeMap<String, BTreeSet<String>>,
    threads: usize,
    control: &Control,
    task: F,
    mut on_done: impl FnMut(&str, &Outcome),
) -> BTreeMap<String, Outcome>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let mut remaining: HashMap<String, usize> = parents
        .iter()
        .map(|(id, p)| (id.clone(), p.len()))
        .collect();
    let mut children: HashMap<String, Vec<String>> = HashMap::new();
    for (id, ps) in &parents {
        for p in ps {
            children.entry(p.clone()).or_default().push(id.clone());
        }
    }
    let mut ready: BTreeSet<String> = remaining
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| id.clone())
        .collect();
    let mut results: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut running: JoinSet<(String, Outcome)> = JoinSet::new();
    loop {
        while running.len() < threads.max(1) && !control.stop.load(Ordering::Relaxed) {
            let Some(id) = ready.pop_first() else { break };
            let fut = task(id.clone());
            running.spawn(async move { (id, fut.await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (id, outcome) = match joined {
            Ok(done) => done,
            Err(e) => panic!("a node task panicked: {e}"),
        };
        on_done(&id, &outcome);
        if control.fail_fast && matches!(outcome.status, Status::Error | Status::Fail) {
            control.stop.store(true, Ordering::Relaxed);
        }
        let blocks = outcome.status.blocks();
        results.insert(id.clone(), outcome);
        let mut stack = vec![id.clone()];
        while let Some(parent) = stack.pop() {
            for child in children.get(&parent).cloned().unwrap_or_default() {
                if results.contains_key(&child) {
                    continue;
                }
                if blocks {
                    let skipped = Outcome::skipped(&id);
                    on_done(&child, &skipped);
                    results.insert(child.clone(), skipped);
                    stack.push(child);
                } else if let Some(n) = remaining.get_mut(&child) {
                    *n -= 1;
                    if *n == 0 {
                        ready.insert(child);
                    }
                }
            }
        }
    }
    // Anything left waits on a dependency that never finished (a cycle): say so, never drop it.
    let stopped = control.stop.load(Ordering::Relaxed);
    for id in parents.keys() {
        if !results.contains_key(id) {
            let skipped = if stopped {
                Outcome::not_run(
                    "not started: the run was stopped (Ctrl-C, or --fail-fast after an error)"
                        .into(),
                )
            } else {
                Outcome::skipped("a dependency cycle")
            };
            on_done(id, &skipped);
            results.insert(id.clone(), skipped);
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_skip_descendants_and_the_rest_runs() {
        let parents: BTreeMap<String, BTreeSet<String>> = [
            ("a", vec![]),
            ("b", vec!["a"]),
            ("c", vec!["b"]),
            ("d", vec![]),
            ("e", vec!["d", "a"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = order.clone();
        let results = run(
            parents,
            2,
            move |id| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(id.clone());
                    let status = if id == "b" {
                        Status::Error
                    } else {
                        Status::Success
                    };
                    Outcome::finished(
                        status,
                        (std::time::SystemTime::now(), Instant::now()),
                        None,
                        None,
                    )
                }
            },
            |_, _| {},
        )
        .await;
        assert_eq!(results["c"].status, Status::Skipped);
        assert_eq!(results["e"].status, Status::Success);
        let order = order.lock().unwrap().clone();
        assert!(!order.contains(&"c".to_string()));
        let pos = |x: &str| order.iter().position(|o| o == x).unwrap();
        assert!(pos("a") < pos("b") && pos("a") < pos("e") && pos("d") < pos("e"));
    }
}
