//! Where project files come from: a directory on disk ([`DirSource`]) or a git tree at a
//! revision ([`super::GitSource`], for `--rev`, `--state` and `ebb diff`). Everything above this
//! module sees only relative paths and bytes.

use std::io;
use std::path::{Path, PathBuf};

/// A read-only view of a project's files, addressed by `/`-separated paths relative to the root.
pub trait ProjectSource: Sync {
    /// Returns the content of a file, or `None` when it does not exist.
    fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>>;

    /// Lists the files under a directory (recursively) whose names end in one of `extensions`,
    /// sorted; a missing directory lists nothing.
    fn list(&self, rel_dir: &str, extensions: &[&str]) -> io::Result<Vec<String>>;

    /// Describes the source for messages: a path, or `rev` at a path.
    fn describe(&self) -> String;

    /// Returns the directory on disk, when the project lives in one.
    fn root_dir(&self) -> Option<&Path>;
}

/// A project in a directory of the work tree.
#[derive(Debug, Clone)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// Opens the project at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirSource { root: root.into() }
    }
}

impl ProjectSource for DirSource {
    fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        match fs_err::read(self.root.join(rel)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, rel_dir: &str, extensions: &[&str]) -> io::Result<Vec<String>> {
        let dir = self.root.join(rel_dir);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let walker = walkdir::WalkDir::new(&dir).follow_links(true).into_iter();
        for entry in walker.filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name())) {
            let entry = entry.map_err(io::Error::other)?;
            if !entry.file_type().is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy();
            if !extensions.iter().any(|ext| name.ends_with(ext)) {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(&self.root)
                .map_err(io::Error::other)?;
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
        out.sort();
        Ok(out)
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn root_dir(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

/// The source a command reads: the work tree, or a git revision with `--rev`.
#[derive(Debug)]
pub enum Source {
    Dir(DirSource),
    Git(super::GitSource),
}

impl Source {
    fn inner(&self) -> &dyn ProjectSource {
        match self {
            Source::Dir(s) => s,
            Source::Git(s) => s,
        }
    }
}

impl ProjectSource for Source {
    fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        self.inner().read(rel)
    }

    fn list(&self, rel_dir: &str, extensions: &[&str]) -> io::Result<Vec<String>> {
        self.inner().list(rel_dir, extensions)
    }

    fn describe(&self) -> String {
        self.inner().describe()
    }

    fn root_dir(&self) -> Option<&Path> {
        self.inner().root_dir()
    }
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}
