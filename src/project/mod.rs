//! Loads a project: finds the project file, reads every model, macro, test, seed and schema file
//! from a [`ProjectSource`], and parses the YAML. The result is plain data plus diagnostics;
//! nothing is rendered here.

pub mod git;
pub mod revision;
pub mod source;

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::diag::{Code, Diagnostic, Span};
use crate::spec::{self, project::ProjectFile, schema::SchemaFile, Parsed};
pub use revision::{GitSource, RevisionError};
pub use source::{DirSource, ProjectSource, Source};

/// The destinations file at the project root.
pub const DESTINATIONS_FILE: &str = "destinations.yml";

/// A file read from the project: its relative path and text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// A seed CSV: its path and the column names of its header row.
#[derive(Debug, Clone)]
pub struct SeedFile {
    pub path: String,
    pub columns: Vec<String>,
    pub checksum: String,
}

/// Everything read from a project before rendering.
#[derive(Debug)]
pub struct Project {
    /// `ebb_project.yml` or `dbt_project.yml`.
    pub file_name: String,
    pub file: ProjectFile,
    pub project_text: String,
    pub models: Vec<SourceFile>,
    pub macros: Vec<SourceFile>,
    pub singular_tests: Vec<SourceFile>,
    pub seeds: Vec<SeedFile>,
    pub schema_files: Vec<(SourceFile, Parsed<SchemaFile>)>,
    /// YAML files that failed to parse, kept so diagnostics can show their lines.
    pub unparsed: Vec<SourceFile>,
    /// `syncs/**/*.yml`, parsed by the compiler.
    pub sync_files: Vec<SourceFile>,
    /// `destinations.yml`, when the project has one.
    pub destinations: Option<SourceFile>,
}

/// Why a project could not be loaded at all (as opposed to diagnostics inside it).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no `ebb_project.yml` or `dbt_project.yml` in `{0}`")]
    NotAProject(String),
    #[error("reading `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl Project {
    /// Returns the text of a project file read during loading, for diagnostics.
    pub fn text_of(&self, path: &str) -> Option<&str> {
        if path == self.file_name {
            return Some(&self.project_text);
        }
        self.models
            .iter()
            .chain(&self.macros)
            .chain(&self.singular_tests)
            .chain(self.schema_files.iter().map(|(f, _)| f))
            .chain(&self.unparsed)
            .chain(&self.sync_files)
            .chain(&self.destinations)
            .find(|f| f.path == path)
            .map(|f| f.text.as_str())
    }
}

/// Reads the project from `source`. Returns `Err` only when there is no project to speak of
/// (no project file, or an I/O failure); problems inside files are diagnostics, and a project
/// file that does not parse gives `Ok(None)` with its diagnostics.
pub fn load(
    source: &dyn ProjectSource,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<Option<Project>, LoadError> {
    let io = |path: &str| {
        let path = path.to_string();
        move |source| LoadError::Io { path, source }
    };
    let mut found = None;
    for name in spec::project::PROJECT_FILES {
        if let Some(bytes) = source.read(name).map_err(io(name))? {
            found = Some((name, bytes));
            break;
        }
    }
    let Some((file_name, bytes)) = found else {
        return Err(LoadError::NotAProject(source.describe()));
    };
    let project_text = to_text(file_name, bytes, diagnostics);
    let Some(parsed) = spec::parse::<ProjectFile>(file_name, &project_text, diagnostics) else {
        return Ok(None);
    };
    if file_name == "ebb_project.yml" {
        if let Ok(serde_yaml::Value::Mapping(map)) = serde_yaml::from_str(&project_text) {
            spec::check_keys(
                file_name,
                &map,
                spec::project::KNOWN_KEYS,
                "",
                "the project file",
                &parsed.locator,
                diagnostics,
            );
        }
    }
    let file = parsed.value;

    let list = |dirs: &[String], exts: &[&str]| -> Result<Vec<String>, LoadError> {
        let mut all = Vec::new();
        for dir in dirs {
            all.extend(source.list(dir, exts).map_err(io(dir))?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    };
    let model_paths = list(&file.model_paths, &[".sql"])?;
    let mut yaml_dirs = file.model_paths.clone();
    yaml_dirs.extend(file.seed_paths.iter().cloned());
    let yaml_paths = list(&yaml_dirs, &[".yml", ".yaml"])?;
    let mut macro_paths = list(&file.macro_paths, &[".sql"])?;
    let test_paths = list(&file.test_paths, &[".sql"])?;
    // dbt keeps custom generic tests (`{% test %}` blocks) under tests/generic/.
    let (generic, singular): (Vec<String>, Vec<String>) = test_paths
        .into_iter()
        .partition(|p| p.split('/').nth(1) == Some("generic"));
    macro_paths.extend(generic);
    let seed_paths = list(&file.seed_paths, &[".csv"])?;
    let sync_paths = list(&file.sync_paths, &[".yml", ".yaml"])?;

    let read_all = |paths: Vec<String>| -> Result<Vec<(String, Vec<u8>)>, LoadError> {
        paths
            .into_par_iter()
            .map(|p| match source.read(&p) {
                Ok(Some(bytes)) => Ok((p, bytes)),
                Ok(None) => Ok((p, Vec::new())),
                Err(e) => Err(LoadError::Io { path: p, source: e }),
            })
            .collect()
    };
    let mut texts = |paths: Vec<String>| -> Result<Vec<SourceFile>, LoadError> {
        Ok(read_all(paths)?
            .into_iter()
            .map(|(path, bytes)| SourceFile {
                text: to_text(&path, bytes, diagnostics),
                path,
            })
            .collect())
    };
    let models = texts(model_paths)?;
    let macros = texts(macro_paths)?;
    let singular_tests = texts(singular)?;
    let yaml_files = texts(yaml_paths)?;
    let sync_files = texts(sync_paths)?;
    let destinations = source
        .read(DESTINATIONS_FILE)
        .map_err(io(DESTINATIONS_FILE))?
        .map(|bytes| SourceFile {
            path: DESTINATIONS_FILE.into(),
            text: to_text(DESTINATIONS_FILE, bytes, diagnostics),
        });

    let mut schema_files = Vec::new();
    let mut unparsed = Vec::new();
    for file in yaml_files {
        match spec::parse::<SchemaFile>(&file.path, &file.text, diagnostics) {
            Some(parsed) => schema_files.push((file, parsed)),
            None => unparsed.push(file),
        }
    }

    let mut seeds = Vec::new();
    for (path, bytes) in read_all(seed_paths)? {
        match seed_header(&bytes) {
            Ok(columns) => seeds.push(SeedFile {
                checksum: crate::artifacts::checksum(&bytes),
                path,
                columns,
            }),
            Err(e) => diagnostics.push(
                Diagnostic::new(
                    Code::SeedInvalid,
                    Span::file(&path),
                    format!("cannot read the header of seed `{path}`: {e}"),
                )
                .hint("a seed is a CSV file whose first row names its columns"),
            ),
        }
    }
    Ok(Some(Project {
        file_name: file_name.to_string(),
        file,
        project_text,
        models,
        macros,
        singular_tests,
        seeds,
        schema_files,
        unparsed,
        sync_files,
        destinations,
    }))
}

fn to_text(path: &str, bytes: Vec<u8>, diagnostics: &mut Vec<Diagnostic>) -> String {
    match String::from_utf8(bytes) {
        Ok(mut s) => {
            if s.starts_with('\u{feff}') {
                s.drain(..3);
            }
            s
        }
        Err(e) => {
            diagnostics.push(
                Diagnostic::new(
                    Code::YamlSyntax,
                    Span::file(path),
                    format!("`{path}` is not valid UTF-8"),
                )
                .hint("save the file as UTF-8"),
            );
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    }
}

fn seed_header(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let headers = reader.headers().map_err(|e| e.to_string())?;
    let columns: Vec<String> = headers.iter().map(|h| h.trim().to_string()).collect();
    if columns.is_empty() || columns.iter().any(String::is_empty) {
        return Err("the header row is empty or has an empty column name".into());
    }
    let mut seen = BTreeMap::new();
    for c in &columns {
        if seen.insert(c.to_lowercase(), ()).is_some() {
            return Err(format!("column `{c}` appears twice"));
        }
    }
    Ok(columns)
}
