//! `ebb compile`: compile the project and write target/compiled/ and target/manifest.json.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;

use clap::Args;

use super::settings::Settings;
use super::{ProjectArgs, RevArgs};
use crate::compile::{self, Compilation};
use crate::error::Error;
use crate::graph::select;
use crate::output::{self, Format, Printer};

/// Flags of `ebb compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub rev: RevArgs,
}

/// Compiles the project of `settings` and prints its diagnostics. Returns the compilation when
/// it has no errors; otherwise the errors are printed and `Error::Project` is returned.
pub(super) fn compile_project(
    settings: &Settings,
    printer: &Printer,
) -> Result<Compilation, Error> {
    let mut compilation = compile::compile(&settings.source, settings.options.clone())?;
    printer.diagnostics(&compilation.diagnostics, &|p| compilation.text_of(p));
    for line in &compilation.logs {
        printer.message(line);
    }
    let errors = compilation
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .count();
    if errors > 0 {
        match printer.format {
            Format::Json => printer.json(&json!({
                "success": false,
                "diagnostics": output::diagnostics_json(&compilation.diagnostics),
            })),
            Format::Text => printer.message(&format!(
                "error: found {errors} error(s); nothing was written"
            )),
        }
        return Err(Error::Project { errors });
    }
    if let Some(rev) = &settings.state {
        compare_with_state(&mut compilation, rev, settings, printer)?;
    }
    Ok(compilation)
}

/// Compiles the project at the `--state` revision and records on the graph which nodes are new
/// or modified since, for `state:` selectors.
fn compare_with_state(
    compilation: &mut Compilation,
    rev: &str,
    settings: &Settings,
    printer: &Printer,
) -> Result<(), Error> {
    let source = crate::project::GitSource::open(&settings.project_dir, rev)?;
    let base = compile::compile(&source, settings.options.clone())?;
    let errors = base.diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        printer.message(&format!(
            "warning: the project at `--state {rev}` has {errors} error(s); nodes it could not build count as new"
        ));
    }
    let state = crate::diff::state(rev, &base, compilation, &settings.options.vars);
    if let Some(graph) = compilation.graph.as_mut() {
        graph.state = Some(state);
    }
    Ok(())
}

/// Returns the target directory of the compiled project.
pub(super) fn settings_target(
    settings: &Settings,
    compilation: &Compilation,
) -> std::path::PathBuf {
    let path = compilation
        .project
        .as_ref()
        .map_or("target", |p| p.file.target_path.as_str());
    settings.project_dir.join(path)
}

/// Writes the compiled SQL of `selected` and the manifest; returns the number of SQL files.
pub(super) fn write_artifacts(
    target_dir: std::path::PathBuf,
    compilation: &Compilation,
    settings: &Settings,
    selected: &std::collections::BTreeSet<String>,
) -> Result<usize, Error> {
    let Some(graph) = &compilation.graph else {
        return Ok(0);
    };
    let written = crate::artifacts::write_compiled(&target_dir, graph, selected)?;
    let path = target_dir.join("manifest.json");
    crate::artifacts::manifest::write(&path, compilation, graph, &settings.invocation)
        .map_err(|e| Error::Io(format!("writing `{}`: {e}", path.display())))?;
    Ok(written)
}

/// Writes a JSON artifact, pretty-printed with a final newline, atomically.
pub(super) fn write_json(path: &std::path::Path, value: &serde_json::Value) -> Result<(), Error> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Io(e.to_string()))?;
    bytes.push(b'\n');
    crate::artifacts::write_atomic(path, &bytes)?;
    Ok(())
}

/// Runs `ebb compile`.
pub(super) fn run(args: &CompileArgs, printer: &Printer) -> Result<(), Error> {
    let started = Instant::now();
    let settings = Settings::resolve(&args.project)?.at_revision(args.rev.rev.as_deref())?;
    let compilation = compile_project(&settings, printer)?;
    let (Some(graph), Some(_)) = (&compilation.graph, &compilation.project) else {
        return Err(Error::Io("compilation produced no graph".into()));
    };
    let selected = select::select(graph, &settings.select, &settings.exclude)?;
    let target_dir = settings_target(&settings, &compilation);
    let written = write_artifacts(target_dir.clone(), &compilation, &settings, &selected)?;

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for node in graph.nodes.values() {
        *counts.entry(node.resource_type.as_str()).or_default() += 1;
    }
    match printer.format {
        Format::Json => printer.json(&json!({
            "success": true,
            "nodes": counts,
            "compiled_files": written,
            "target_path": target_dir.display().to_string(),
            "diagnostics": output::diagnostics_json(&compilation.diagnostics),
        })),
        Format::Text => {
            let parts: Vec<String> = counts
                .iter()
                .map(|(k, v)| format!("{v} {k}{}", if *v == 1 { "" } else { "s" }))
                .collect();
            printer.message(&format!(
                "compiled {} ({} SQL files) into `{}` in {:.2}s",
                parts.join(", "),
                written,
                target_dir.display(),
                started.elapsed().as_secs_f64()
            ));
        }
    }
    Ok(())
}
