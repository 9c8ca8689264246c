//! The embedded state file (`.ebb/state.db` unless `state: {path: ...}` says otherwise): SQLite
//! in WAL mode with `synchronous=normal`, so a committed batch survives the process being
//! killed. Blocking calls; [`super::StateStore`] runs them off the async threads.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, OptionalExtension};

use super::{key_hash, Delivered, RunRecord};

/// The state file.
#[derive(Clone)]
pub struct FileState {
    conn: Arc<Mutex<rusqlite::Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for FileState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileState({})", self.path.display())
    }
}

const SCHEMA: &str = "
create table if not exists delivered (
    sync text not null,
    key text not null,
    fingerprint integer not null,
    -- The destination's match value, when it is not the key (needed to delete the row).
    match_value text,
    primary key (sync, key)
) without rowid;
create table if not exists targets (
    sync text primary key,
    target text not null
);
create table if not exists rejected (
    sync text not null,
    key text not null,
    reason text not null,
    at text not null,
    primary key (sync, key)
) without rowid;
create table if not exists runs (
    id integer primary key,
    invocation_id text not null,
    sync text not null,
    started_at text not null,
    finished_at text,
    git_commit text,
    dirty integer,
    status text not null,
    inserted integer not null default 0,
    updated integer not null default 0,
    deleted integer not null default 0,
    rejected integer not null default 0,
    requests integer not null default 0,
    duration real not null default 0,
    error text
);
create index if not exists runs_by_sync on runs (sync, id);
";

fn err(path: &Path) -> impl Fn(rusqlite::Error) -> String + '_ {
    move |e| format!("state file `{}`: {e}", path.display())
}

impl FileState {
    /// Opens (creating when needed) the state file.
    pub fn open(path: &Path) -> Result<FileState, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs_err::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let conn = rusqlite::Connection::open(path).map_err(err(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err(path))?;
        // WAL with synchronous=NORMAL: a committed batch survives the process being killed.
        conn.pragma_update(None, "journal_mode", "wal")
            .map_err(err(path))?;
        conn.pragma_update(None, "synchronous", "normal")
            .map_err(err(path))?;
        conn.execute_batch(SCHEMA).map_err(err(path))?;
        Ok(FileState {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, String> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| "the state file lock is poisoned".to_string())?;
        f(&mut conn).map_err(err(&self.path))
    }

    /// The destination identity the sync last delivered to.
    pub fn target(&self, sync: &str) -> Result<Option<String>, String> {
        self.with(|c| {
            c.query_row("select target from targets where sync = ?1", [sync], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    /// Loads what the sync delivered.
    pub fn load(&self, sync: &str) -> Result<Delivered, String> {
        self.with(|c| {
            let mut d = Delivered::default();
            let mut stmt =
                c.prepare_cached("select key, fingerprint from delivered where sync = ?1")?;
            let mut rows = stmt.query([sync])?;
            while let Some(r) = rows.next()? {
                let key = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                let fp: i64 = r.get(1)?;
                d.rows.insert(key_hash(key), (fp as u64, false));
            }
            d.count = d.rows.len() as u64;
            d.rejected = c.query_row(
                "select count(*) from rejected where sync = ?1",
                [sync],
                |r| r.get::<_, i64>(0),
            )? as usize;
            Ok(d)
        })
    }

    /// Returns the keys (as text) of the given key hashes, with their match values.
    pub fn keys_of(
        &self,
        sync: &str,
        hashes: &HashSet<u128>,
    ) -> Result<Vec<(String, Option<String>)>, String> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "select key, match_value from delivered where sync = ?1 order by key",
            )?;
            let mut rows = stmt.query([sync])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let key: String = r.get(0)?;
                if hashes.contains(&key_hash(&key)) {
                    out.push((key, r.get(1)?));
                }
            }
            Ok(out)
        })
    }

    /// Forgets what the sync delivered (its destination changed) and records the new target.
    pub fn retarget(&self, sync: &str, target: &str) -> Result<(), String> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("delete from delivered where sync = ?1", [sync])?;
            tx.execute("delete from rejected where sync = ?1", [sync])?;
            tx.execute(
                "insert into targets (sync, target) values (?1, ?2)
                 on conflict (sync) do update set target = excluded.target",
                [sync, target],
            )?;
            tx.commit()
        })
    }

    /// Records one answered batch, in one transaction: acknowledged rows (key, fingerprint; a
    /// fingerprint of `None` is a delete), their match values when they are not the key (empty,
    /// or aligned to `acked`), and rejected rows (key, reason).
    pub fn commit(
        &self,
        sync: &str,
        acked: &[(String, Option<u64>)],
        matches: &[Option<String>],
        rejected: &[(String, String)],
        clear_rejects: bool,
    ) -> Result<(), String> {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut put = tx.prepare_cached(
                    "insert into delivered (sync, key, fingerprint, match_value) values (?1, ?2, ?3, ?4)
                     on conflict (sync, key) do update
                     set fingerprint = excluded.fingerprint, match_value = excluded.match_value",
                )?;
                let mut del = tx.prepare_cached("delete from delivered where sync = ?1 and key = ?2")?;
                let mut unreject =
                    tx.prepare_cached("delete from rejected where sync = ?1 and key = ?2")?;
                for (i, (key, fp)) in acked.iter().enumerate() {
                    let matched = matches.get(i).cloned().flatten();
                    match fp {
                        Some(fp) => put.execute(params![sync, key, *fp as i64, matched])?,
                        None => del.execute(params![sync, key])?,
                    };
                    if clear_rejects {
                        unreject.execute(params![sync, key])?;
                    }
                }
                let mut reject = tx.prepare_cached(
                    "insert into rejected (sync, key, reason, at) values (?1, ?2, ?3, ?4)
                     on conflict (sync, key) do update set reason = excluded.reason, at = excluded.at",
                )?;
                for (key, reason) in rejected {
                    reject.execute(params![sync, key, reason, now])?;
                }
            }
            tx.commit()
        })
    }

    /// Records that the sync's rows went to `target` (after its first acknowledged batch).
    pub fn set_target(&self, sync: &str, target: &str) -> Result<(), String> {
        self.with(|c| {
            c.execute(
                "insert into targets (sync, target) values (?1, ?2)
                 on conflict (sync) do update set target = excluded.target",
                [sync, target],
            )
            .map(|_| ())
        })
    }

    /// The rejected rows of a sync: key, reason, when.
    pub fn rejections(
        &self,
        sync: &str,
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, String> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "select key, reason, at from rejected where sync = ?1 order by key limit ?2",
            )?;
            let rows = stmt
                .query_map(params![sync, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Starts a run-history row; returns its id.
    pub fn start_run(&self, run: &RunRecord) -> Result<i64, String> {
        self.with(|c| {
            c.execute(
                "insert into runs (invocation_id, sync, started_at, git_commit, dirty, status)
                 values (?1, ?2, ?3, ?4, ?5, 'running')",
                params![
                    run.invocation_id,
                    run.sync,
                    run.started_at,
                    run.commit,
                    run.dirty
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Finishes a run-history row.
    pub fn finish_run(&self, id: i64, run: &RunRecord) -> Result<(), String> {
        self.with(|c| {
            c.execute(
                "update runs set finished_at = ?2, status = ?3, inserted = ?4, updated = ?5,
                 deleted = ?6, rejected = ?7, requests = ?8, duration = ?9, error = ?10 where id = ?1",
                params![
                    id,
                    run.finished_at,
                    run.status,
                    run.inserted as i64,
                    run.updated as i64,
                    run.deleted as i64,
                    run.rejected as i64,
                    run.requests as i64,
                    run.duration,
                    run.error
                ],
            )
            .map(|_| ())
        })
    }

    /// The most recent runs, newest first, at most `limit` per sync.
    pub fn history(&self, limit: usize) -> Result<Vec<RunRecord>, String> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "select invocation_id, sync, started_at, finished_at, git_commit, dirty, status,
                        inserted, updated, deleted, rejected, requests, duration, error
                 from (select *, row_number() over (partition by sync order by id desc) as n from runs)
                 where n <= ?1 order by sync, id desc",
            )?;
            let rows = stmt
                .query_map([limit as i64], |r| {
                    Ok(RunRecord {
                        invocation_id: r.get(0)?,
                        sync: r.get(1)?,
                        started_at: r.get(2)?,
                        finished_at: r.get(3)?,
                        commit: r.get(4)?,
                        dirty: r.get(5)?,
                        status: r.get(6)?,
                        inserted: r.get::<_, i64>(7)? as u64,
                        updated: r.get::<_, i64>(8)? as u64,
                        deleted: r.get::<_, i64>(9)? as u64,
                        rejected: r.get::<_, i64>(10)? as u64,
                        requests: r.get::<_, i64>(11)? as u64,
                        duration: r.get(12)?,
                        error: r.get(13)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_loads_and_retargets() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileState::open(&dir.path().join("s.db")).unwrap();
        s.commit(
            "a",
            &[("1".into(), Some(7)), ("2".into(), Some(8))],
            &[],
            &[("3".into(), "bad".into())],
            false,
        )
        .unwrap();
        let d = s.load("a").unwrap();
        assert_eq!(d.rows.len(), 2);
        assert_eq!(d.rows[&key_hash("1")], (7, false));
        assert_eq!(d.rejected, 1);
        s.commit(
            "a",
            &[("1".into(), None), ("3".into(), Some(1))],
            &[],
            &[],
            true,
        )
        .unwrap();
        let d = s.load("a").unwrap();
        assert_eq!(d.rows.len(), 2);
        assert_eq!(d.rejected, 0);
        let keys = s
            .keys_of("a", &[key_hash("2")].into_iter().collect())
            .unwrap();
        assert_eq!(keys, vec![("2".to_string(), None)]);
        s.retarget("a", "x").unwrap();
        assert!(s.load("a").unwrap().rows.is_empty());
        assert_eq!(s.target("a").unwrap().as_deref(), Some("x"));
    }
}
