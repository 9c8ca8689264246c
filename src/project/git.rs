//! What git says about the project's work tree: the commit checked out and whether the tree has
//! uncommitted changes. Read with gix; a project outside any repository simply has no commit.

use std::path::Path;

use serde::Serialize;

/// The commit a build came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitInfo {
    /// Full hex id of `HEAD`, or `None` in a repository with no commits yet.
    pub commit: Option<String>,
    /// The branch `HEAD` points at, when it points at one.
    pub branch: Option<String>,
    /// True when tracked files differ from `HEAD` or untracked (not ignored) files exist: either
    /// changes what a build reads.
    pub dirty: bool,
}

/// Reads the commit and dirty flag of the repository containing `dir`; `None` outside git.
pub fn describe(dir: &Path) -> Option<GitInfo> {
    let repo = gix::discover(dir).ok()?;
    let head = repo.head().ok()?;
    let branch = head.referent_name().map(|n| n.shorten().to_string());
    let commit = repo.head_id().ok().map(|id| id.to_string());
    let dirty = match &commit {
        // A repository with no commit is dirty as soon as it holds any file.
        None => true,
        Some(_) => repo.is_dirty().unwrap_or(true) || has_untracked(&repo).unwrap_or(true),
    };
    Some(GitInfo {
        commit,
        branch,
        dirty,
    })
}

/// Tells whether the work tree holds files git does not track and does not ignore.
fn has_untracked(repo: &gix::Repository) -> Option<bool> {
    let mut items = repo
        .status(gix::progress::Discard)
        .ok()?
        .untracked_files(gix::status::UntrackedFiles::Collapsed)
        .index_worktree_rewrites(None)
        .into_index_worktree_iter(Vec::new())
        .ok()?;
    Some(items.any(|item| {
        matches!(
            item,
            Ok(gix::status::index_worktree::Item::DirectoryContents { .. })
        )
    }))
}
