//! The files ebb writes under `target/`: compiled SQL and `manifest.json` (documented in
//! docs/manifest.md). Formats are stable and deterministic: the same project and invocation give
//! byte-identical files.

pub mod junit;
pub mod manifest;
pub mod run_results;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::graph::{Graph, Node};

/// Returns the lowercase hex SHA-256 of `bytes`, dbt's checksum for files.
pub fn checksum(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Returns where a node's compiled SQL is written, relative to the target directory:
/// `compiled/<project>/<file path>` (for generic tests, `<schema file>/<test name>.sql`).
pub fn compiled_path(node: &Node) -> Option<String> {
    node.compiled_code.as_ref()?;
    let project = &node.package_name;
    Some(match &node.test_metadata {
        Some(_) => format!(
            "compiled/{project}/{}/{}.sql",
            node.original_file_path, node.name
        ),
        None => format!("compiled/{project}/{}", node.original_file_path),
    })
}

/// An I/O failure while writing artifacts, with the path.
#[derive(Debug, thiserror::Error)]
#[error("writing `{path}`: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Writes the compiled SQL of the `selected` nodes under `target_dir`, leaving files whose
/// content is unchanged untouched (rewriting thousands of files is most of a compile's I/O).
/// When every node is selected, files of nodes that no longer exist are removed.
pub fn write_compiled(
    target_dir: &Path,
    graph: &Graph,
    selected: &BTreeSet<String>,
) -> Result<usize, WriteError> {
    let compiled_root = target_dir.join("compiled");
    let wrap = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { path, source }
    };
    let files: Vec<(PathBuf, &str)> = selected
        .iter()
        .filter_map(|id| graph.nodes.get(id))
        .filter_map(|n| {
            Some((
                target_dir.join(compiled_path(n)?),
                n.compiled_code.as_deref()?,
            ))
        })
        .collect();
    let dirs: BTreeSet<&Path> = files.iter().filter_map(|(p, _)| p.parent()).collect();
    for dir in dirs {
        fs_err::create_dir_all(dir).map_err(wrap(dir))?;
    }
    files.par_iter().try_for_each(|(path, sql)| {
        let mut text = sql.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if fs_err::read(path).is_ok_and(|old| old == text.as_bytes()) {
            return Ok(());
        }
        fs_err::write(path, text).map_err(wrap(path))
    })?;
    if selected.len() == graph.nodes.len() {
        let keep: BTreeSet<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
        for entry in walkdir::WalkDir::new(&compiled_root)
            .contents_first(true)
            .into_iter()
            .flatten()
        {
            let p = entry.path();
            if entry.file_type().is_file() && !keep.contains(p) {
                fs_err::remove_file(p).map_err(wrap(p))?;
            } else if entry.file_type().is_dir()
                && fs_err::read_dir(p).is_ok_and(|mut d| d.next().is_none())
            {
                fs_err::remove_dir(p).map_err(wrap(p))?;
            }
        }
    }
    Ok(files.len())
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let wrap = |e| WriteError {
        path: path.to_path_buf(),
        source: e,
    };
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(wrap)?;
    }
    let name = path
        .file_name()
        .map_or_else(|| "artifact".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs_err::write(&tmp, bytes).map_err(wrap)?;
    fs_err::rename(&tmp, path).map_err(wrap)
}
