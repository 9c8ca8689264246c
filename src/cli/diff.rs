//! `ebb diff --base REV [--head REV]`: compile the project at both revisions (from the git object
//! store; the head defaults to the work tree) and print what the change does, as text, JSON or
//! Markdown for a pull-request comment.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::settings::Settings;
use super::ProjectArgs;
use crate::compile::{self, Compilation};
use crate::diff::{self, report::Revision};
use crate::error::Error;
use crate::output::{Format, Printer};
use crate::project::GitSource;

/// How `ebb diff` lays out its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// For a terminal
    Text,
    /// For a pull-request comment
    Markdown,
}

/// Flags of `ebb diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Git revision to compare from: the pull request's merge base, a branch, a tag, a commit
    #[arg(long, value_name = "REV")]
    pub base: String,
    /// Git revision to compare to (default: the work tree, uncommitted changes included)
    #[arg(long, value_name = "REV")]
    pub head: Option<String>,
    /// Lay the report out as text or as Markdown (`--output json` prints JSON instead)
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiffFormat,
    /// Directory holding ebb_project.yml (or dbt_project.yml)
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub project_dir: PathBuf,
    /// Directory holding profiles.yml (before the project directory and ~/.ebb/)
    #[arg(long, value_name = "DIR", env = "EBB_PROFILES_DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Output of the profile to use instead of its default target
    #[arg(long, short, value_name = "NAME")]
    pub target: Option<String>,
    /// Values for var(), as YAML, used on both sides: '{key: value, other: 2}'
    #[arg(long, value_name = "YAML")]
    pub vars: Option<String>,
}

/// Prints the errors of a compilation that failed and returns `Error::Project`.
fn check(compilation: &Compilation, label: &str, printer: &Printer) -> Result<(), Error> {
    let errors: Vec<_> = compilation
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    printer.diagnostics(&errors, &|p| compilation.text_of(p));
    match printer.format {
        Format::Json => printer.json(&serde_json::json!({
            "success": false,
            "revision": label,
            "diagnostics": crate::output::diagnostics_json(&errors),
        })),
        Format::Text => printer.message(&format!(
            "error: the project at {label} has {} error(s); fix them to compare it",
            errors.len()
        )),
    }
    Err(Error::Project {
        errors: errors.len(),
    })
}

/// Runs `ebb diff`.
pub(super) fn run(args: &DiffArgs, printer: &Printer) -> Result<(), Error> {
    let project = ProjectArgs {
        project_dir: args.project_dir.clone(),
        profiles_dir: args.profiles_dir.clone(),
        target: args.target.clone(),
        vars: args.vars.clone(),
        select: Vec::new(),
        exclude: Vec::new(),
        state: None,
    };
    let settings = Settings::resolve(&project)?;
    let base_source = GitSource::open(&settings.project_dir, &args.base)?;
    let base_rev = Revision {
        rev: Some(args.base.clone()),
        commit: Some(base_source.commit()),
        dirty: false,
    };
    let settings = settings.at_revision(args.head.as_deref())?;
    let git = settings.invocation.git.clone();
    let head_rev = Revision {
        rev: args.head.clone(),
        commit: git.as_ref().and_then(|g| g.commit.clone()),
        dirty: git.is_some_and(|g| g.dirty),
    };
    let options = &settings.options;
    let (base, head) = rayon::join(
        || compile::compile(&base_source, options.clone()),
        || compile::compile(&settings.source, options.clone()),
    );
    let (base, head) = (base?, head?);
    check(&base, &base_rev.label(), printer)?;
    check(&head, &head_rev.label(), printer)?;
    let comparison = diff::compare(&base, &head, &options.vars);
    let report = diff::report::build(&base, &head, &comparison, base_rev, head_rev);
    match (printer.format, args.format) {
        (Format::Json, _) => {
            printer.json(&serde_json::to_value(&report).map_err(|e| Error::Io(e.to_string()))?)
        }
        (Format::Text, DiffFormat::Text) => printer.data(diff::render::text(&report).trim_end()),
        (Format::Text, DiffFormat::Markdown) => {
            printer.data(diff::render::markdown(&report).trim_end())
        }
    }
    Ok(())
}
