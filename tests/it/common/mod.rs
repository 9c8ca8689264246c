//! Helpers shared by the integration tests: a project in a temp dir, the `ebb` binary run in a
//! hermetic environment, and filters that make output stable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A project copied into a fresh temp dir.
pub struct TestProject {
    pub dir: tempfile::TempDir,
}

impl TestProject {
    /// Copies `src` (relative to the repository root) into a temp dir.
    pub fn copy_of(src: &str) -> TestProject {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(&repo_root().join(src), dir.path());
        TestProject { dir }
    }

    /// Returns the project directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file relative to the project.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// Runs ebb in the project directory.
    pub fn ebb(&self, args: &[&str]) -> Output {
        run_ebb(self.path(), args, &[])
    }

    /// Reads every file under `target/` (relative path → bytes).
    pub fn target_files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let root = self.path().join("target");
        for entry in walk(&root) {
            let rel = entry
                .strip_prefix(&root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel, std::fs::read(&entry).expect("read"));
        }
        out
    }
}

/// Lists every file under `dir`, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Copies a directory tree, leaving out `target/` and SQLite files.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read dir").flatten() {
        let name = e.file_name();
        if name == "target" || name.to_string_lossy().ends_with(".db") {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &dst.join(&name));
        } else {
            std::fs::copy(&p, dst.join(&name)).expect("copy");
        }
    }
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The directory the run happened in, filtered out of snapshots.
    pub dir: PathBuf,
}

impl Output {
    /// Returns exit code, stdout and stderr in one text with temp paths and timings filtered.
    pub fn snapshot(&self) -> String {
        filter(
            &format!(
                "exit code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
                self.code, self.stdout, self.stderr
            ),
            &self.dir,
        )
    }
}

/// Replaces the temp dir and timings with stable placeholders.
pub fn filter(text: &str, dir: &Path) -> String {
    let mut out = text.replace(&dir.display().to_string(), "[PROJECT]");
    if let Ok(canon) = dir.canonicalize() {
        out = out.replace(&canon.display().to_string(), "[PROJECT]");
    }
    let mut filtered = String::with_capacity(out.len());
    for line in out.lines() {
        filtered.push_str(&filter_time(line));
        filtered.push('\n');
    }
    filtered
}

fn filter_time(line: &str) -> String {
    // " in 0.05s" → " in [TIME]"
    match line.rfind(" in ") {
        Some(i)
            if line[i + 4..].ends_with('s')
                && line[i + 4..line.len() - 1].parse::<f64>().is_ok() =>
        {
            format!("{} in [TIME]", &line[..i])
        }
        _ => line.to_string(),
    }
}

/// Runs the `ebb` binary in `dir` with a cleared environment plus `env`: fixed invocation id
/// and build time, no colour, HOME pointed at the project so no real profiles leak in.
pub fn run_ebb(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ebb"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("NO_COLOR", "1")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("EBB_INVOCATION_ID", "00000000-0000-4000-8000-000000000000")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run ebb");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir: dir.to_path_buf(),
    }
}

/// Runs the git CLI in `dir` with no system or global config, a fixed author and fixed dates (so
/// commit ids are the same on every run), and returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Makes `dir` a git repository on branch `main` with everything in it committed (`target/` and
/// SQLite files ignored); returns the commit id.
pub fn git_init(dir: &Path) -> String {
    std::fs::write(
        dir.join(".gitignore"),
        "target/\n.ebb/\nexports/\n*.db\n*.db-journal\n*.db-wal\n*.db-shm\n",
    )
    .expect("write .gitignore");
    git(dir, &["init", "-q", "-b", "main"]);
    git_commit(dir, "first")
}

/// Commits everything in the work tree of `dir`; returns the commit id.
pub fn git_commit(dir: &Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Replaces each commit id (and its 7-character short form) with a placeholder.
pub fn redact_commits(text: &str, commits: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (id, name) in commits {
        out = out.replace(id, name).replace(&id[..7], name);
    }
    out
}

pub mod sink;
