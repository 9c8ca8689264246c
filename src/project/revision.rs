//! [`GitSource`]: a project read straight from the git object store at a revision, for `--rev`,
//! `--state` and `ebb diff`. Nothing is checked out and the work tree is never touched; the
//! project directory may be a subdirectory of the repository.
//!
//! Opening a revision reads, once, every file under the project directory whose name ends in
//! one of [`PROJECT_EXTENSIONS`] (everything `project::load` and seeding can ask for); other
//! files read as missing. gix is built without its `parallel` feature, so a repository handle
//! cannot be shared between the threads that load a project: the bytes can.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use gix::ObjectId;

use super::git::GitInfo;
use super::ProjectSource;

/// Why a revision could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    #[error("`{dir}` is not inside a git repository, so `{rev}` cannot be read")]
    NotARepository { dir: String, rev: String },
    #[error("unknown revision `{rev}`")]
    Unknown { rev: String },
    #[error("revision `{rev}` does not name a commit: {reason}")]
    NotACommit { rev: String, reason: String },
    #[error("the project directory `{dir}` does not exist at revision `{rev}`")]
    NoProjectDir { dir: String, rev: String },
    #[error("reading revision `{rev}`: {reason}")]
    Read { rev: String, reason: String },
}

/// The files a project is made of, by name ending.
pub const PROJECT_EXTENSIONS: &[&str] = &[".sql", ".yml", ".yaml", ".csv"];

/// A project as it was at one commit.
pub struct GitSource {
    /// The revision as the user wrote it.
    rev: String,
    commit: ObjectId,
    /// The revision names a local branch (written as its short or full name).
    branch: Option<String>,
    /// The project directory relative to the repository root, `/`-separated ("" at the root).
    prefix: String,
    /// Every project file under the project directory, by path relative to it.
    files: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSource")
            .field("rev", &self.rev)
            .field("commit", &self.commit)
            .field("prefix", &self.prefix)
            .field("files", &self.files.len())
            .finish()
    }
}

impl GitSource {
    /// Opens the project at `project_dir` (a directory of a git work tree) as it was at `rev`:
    /// anything `git rev-parse` understands that leads to a commit (`main`, `HEAD~2`, a tag, a
    /// full or abbreviated id).
    pub fn open(project_dir: &Path, rev: &str) -> Result<GitSource, RevisionError> {
        let read_err = |e: &dyn std::fmt::Display| RevisionError::Read {
            rev: rev.to_string(),
            reason: e.to_string(),
        };
        let repo = gix::discover(project_dir).map_err(|_| RevisionError::NotARepository {
            dir: project_dir.display().to_string(),
            rev: rev.to_string(),
        })?;
        let prefix = match repo.workdir() {
            Some(root) => relative_prefix(root, project_dir).map_err(|e| read_err(&e))?,
            None => String::new(),
        };
        let id = repo
            .rev_parse_single(rev)
            .map_err(|_| RevisionError::Unknown {
                rev: rev.to_string(),
            })?;
        let commit = id.object().and_then(|o| o.peel_to_commit()).map_err(|e| {
            RevisionError::NotACommit {
                rev: rev.to_string(),
                reason: e.to_string(),
            }
        })?;
        let tree = commit.tree().map_err(|e| read_err(&e))?;
        let root = if prefix.is_empty() {
            tree
        } else {
            let entry = tree
                .lookup_entry_by_path(&prefix)
                .map_err(|e| read_err(&e))?
                .filter(|e| e.mode().is_tree())
                .ok_or_else(|| RevisionError::NoProjectDir {
                    dir: prefix.clone(),
                    rev: rev.to_string(),
                })?;
            entry
                .object()
                .map_err(|e| read_err(&e))?
                .peel_to_tree()
                .map_err(|e| read_err(&e))?
        };
        let mut files = BTreeMap::new();
        for entry in root
            .traverse()
            .breadthfirst
            .files()
            .map_err(|e| read_err(&e))?
        {
            let path = entry.filepath.to_string();
            if !entry.mode.is_blob() || !PROJECT_EXTENSIONS.iter().any(|e| path.ends_with(e)) {
                continue;
            }
            let object = repo.find_object(entry.oid).map_err(|e| read_err(&e))?;
            files.insert(path, object.detach().data);
        }
        let branch = repo
            .try_find_reference(rev)
            .ok()
            .flatten()
            .filter(|r| r.name().category() == Some(gix::reference::Category::LocalBranch))
            .map(|r| r.name().shorten().to_string());
        Ok(GitSource {
            commit: commit.id,
            rev: rev.to_string(),
            branch,
            prefix,
            files,
        })
    }

    /// Returns the full hex id of the commit the revision resolved to.
    pub fn commit(&self) -> String {
        self.commit.to_string()
    }

    /// Returns what artifacts record about this build: the commit, the branch when the revision
    /// names one, and never dirty (the object store has no uncommitted changes).
    pub fn git_info(&self) -> GitInfo {
        GitInfo {
            commit: Some(self.commit()),
            branch: self.branch.clone(),
            dirty: false,
        }
    }
}

/// Returns `dir` relative to the repository root `root`, `/`-separated.
fn relative_prefix(root: &Path, dir: &Path) -> io::Result<String> {
    let root = fs_err::canonicalize(root)?;
    let dir = fs_err::canonicalize(dir)?;
    let rel: PathBuf = dir
        .strip_prefix(&root)
        .map_err(|_| {
            io::Error::other(format!(
                "`{}` is outside the work tree `{}`",
                dir.display(),
                root.display()
            ))
        })?
        .to_path_buf();
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    Ok(parts.join("/"))
}

impl ProjectSource for GitSource {
    fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.files.get(rel.trim_start_matches("./")).cloned())
    }

    fn list(&self, rel_dir: &str, extensions: &[&str]) -> io::Result<Vec<String>> {
        let dir = rel_dir.trim_start_matches("./").trim_end_matches('/');
        let start = if dir.is_empty() || dir == "." {
            String::new()
        } else {
            format!("{dir}/")
        };
        // Paths are sorted, so everything under `dir/` is one contiguous range.
        Ok(self
            .files
            .range(start.clone()..)
            .map(|(path, _)| path)
            .take_while(|path| path.starts_with(&start))
            .filter(|path| {
                // Hidden files and directories below `dir` are skipped, as on disk.
                !path[start.len()..]
                    .split('/')
                    .any(|part| part.starts_with('.'))
                    && extensions.iter().any(|ext| path.ends_with(ext))
            })
            .cloned()
            .collect())
    }

    fn describe(&self) -> String {
        format!("{}:{}", self.rev, self.prefix)
    }

    fn root_dir(&self) -> Option<&Path> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_relative_and_slash_separated() {
        let tmp = tempfile::tempdir().unwrap();
        let sub = tmp.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(relative_prefix(tmp.path(), &sub).unwrap(), "a/b");
        assert_eq!(relative_prefix(tmp.path(), tmp.path()).unwrap(), "");
        assert!(relative_prefix(&sub, tmp.path()).is_err());
    }
}
