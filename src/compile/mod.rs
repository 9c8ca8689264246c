//! The front half of the pipeline, end to end and offline: load the project, render every model
//! and test (capturing `ref`/`source` calls), build the graph, name every relation, and produce
//! compiled SQL. Returns values and diagnostics; writing artifacts is [`crate::artifacts`]' job.

mod inject;
mod nodes;
mod resolve;
mod syncs;

pub use syncs::{is_masked, is_pii, MASKING_FILTERS};

mod tests;

use std::collections::BTreeMap;

use crate::diag::{self, Diagnostic};
use crate::graph::Graph;
use crate::project::{self, LoadError, Project, ProjectSource, SourceFile};
use crate::render::macros::MacroDef;
use crate::render::{Inputs, Renderer};
use crate::spec::profiles::{self, Target};

/// Built-in generic tests (`unique`, `not_null`, `accepted_values`, `relationships`).
const GENERIC_TESTS: &str = include_str!("../../templates/macros/generic_tests.sql");
/// The path built-in macros are reported under.
pub const BUILTIN_MACROS_PATH: &str = "<ebb>/generic_tests.sql";

/// A `profiles.yml` found by the command line, with the path to show in messages.
#[derive(Debug, Clone)]
pub struct ProfilesText {
    pub path: String,
    pub text: String,
}

/// What compilation needs besides the project files.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--vars`: values that replace project vars.
    pub vars: serde_yaml::Mapping,
    /// The environment `env_var()` reads.
    pub env: BTreeMap<String, String>,
    /// `--target`: an output of the profile other than its default.
    pub target: Option<String>,
    pub profiles: Option<ProfilesText>,
}

/// The result of compiling: the loaded project, its graph with compiled SQL, and every problem.
pub struct Compilation {
    pub project: Option<Project>,
    pub target: Option<Target>,
    pub graph: Option<Graph>,
    pub macros: Vec<MacroDef>,
    pub diagnostics: Vec<Diagnostic>,
    /// Lines from `log()` calls, in node order.
    pub logs: Vec<String>,
    pub profiles: Option<ProfilesText>,
}

impl Compilation {
    /// Tells whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Returns the text of a file a diagnostic may point into.
    pub fn text_of(&self, path: &str) -> Option<&str> {
        if let Some(p) = &self.profiles {
            if p.path == path {
                return Some(&p.text);
            }
        }
        self.project.as_ref().and_then(|p| p.text_of(path))
    }
}

/// Compiles the project read from `source`. `Err` means there is no project to compile (or it
/// cannot be read); everything wrong inside the project is in the diagnostics.
pub fn compile(source: &dyn ProjectSource, options: Options) -> Result<Compilation, LoadError> {
    let mut diagnostics = Vec::new();
    let mut compilation = Compilation {
        project: None,
        target: None,
        graph: None,
        macros: Vec::new(),
        diagnostics: Vec::new(),
        logs: Vec::new(),
        profiles: options.profiles.clone(),
    };
    let Some(project) = project::load(source, &mut diagnostics)? else {
        diag::sort(&mut diagnostics);
        compilation.diagnostics = diagnostics;
        return Ok(compilation);
    };

    let mut vars: BTreeMap<String, minijinja::Value> =
        crate::spec::project::project_vars(&project.file)
            .into_iter()
            .map(|(k, v)| (k, minijinja::Value::from_serialize(&v)))
            .collect();
    for (k, v) in &options.vars {
        if let Some(k) = k.as_str() {
            vars.insert(k.to_string(), minijinja::Value::from_serialize(v));
        }
    }
    let inputs = Inputs {
        vars,
        env: options.env.clone(),
    };

    let profile_name = project
        .file
        .profile
        .clone()
        .unwrap_or_else(|| project.file.name.clone());
    let target = resolve_target(&profile_name, &options, &inputs, &mut diagnostics);

    let mut macro_files = vec![SourceFile {
        path: BUILTIN_MACROS_PATH.into(),
        text: GENERIC_TESTS.into(),
    }];
    macro_files.extend(project.macros.iter().cloned());
    let renderer = Renderer::new(&macro_files, inputs, &target, &mut diagnostics);

    let mut logs = Vec::new();
    let mut built = nodes::build(&project, &renderer, &target, &mut diagnostics, &mut logs);
    tests::build(&project, &renderer, &mut built, &mut diagnostics, &mut logs);
    syncs::build(&project, &mut built, &mut diagnostics);
    resolve::dependencies(&mut built, &mut diagnostics);
    let (mut graph, cycle_diagnostics) = Graph::build(built.nodes);
    diagnostics.extend(cycle_diagnostics);
    resolve::relations(&mut graph, &renderer, &target, &mut diagnostics);
    resolve::second_pass(&mut graph, &renderer, &mut diagnostics);
    inject::compile_sql(&mut graph);
    syncs::validate(&graph, &target.adapter_type, &renderer, &mut diagnostics);

    diag::sort(&mut diagnostics);
    compilation.macros = renderer.macros.clone();
    compilation.diagnostics = diagnostics;
    compilation.logs = logs;
    compilation.graph = Some(graph);
    compilation.target = Some(target);
    compilation.project = Some(project);
    Ok(compilation)
}

fn resolve_target(
    profile_name: &str,
    options: &Options,
    inputs: &Inputs,
    diagnostics: &mut Vec<Diagnostic>,
) -> Target {
    let default = Target::embedded_default(profile_name);
    let Some(profiles) = &options.profiles else {
        return default;
    };
    let Some(parsed) =
        crate::spec::parse::<profiles::ProfilesFile>(&profiles.path, &profiles.text, diagnostics)
    else {
        return default;
    };
    // Profiles may use env_var(); render them with the functions but no macros.
    let bootstrap = Renderer::new(&[], inputs.clone(), &default, diagnostics);
    let render = |s: &str| bootstrap.render_str(s);
    match profiles::resolve(
        &profiles.path,
        &parsed.value,
        &parsed.locator,
        profile_name,
        options.target.as_deref(),
        &render,
    ) {
        Ok(target) => target,
        Err(d) => {
            diagnostics.push(d);
            default
        }
    }
}

/// Shared, read-only view of the nodes built so far, used while creating tests.
pub(crate) type NodeMap = BTreeMap<String, crate::graph::Node>;

/// Nodes being assembled, before the graph exists.
pub(crate) struct Built {
    pub nodes: NodeMap,
    /// Names of models and seeds that exist but are disabled, for a precise error.
    pub disabled: BTreeMap<String, String>,
    pub project_name: String,
}

/// Returns the `model` value templates see for a node.
pub(crate) fn model_value(node: &crate::graph::Node) -> minijinja::Value {
    minijinja::Value::from_serialize(serde_json::json!({
        "name": node.name,
        "unique_id": node.unique_id,
        "resource_type": node.resource_type.as_str(),
        "original_file_path": node.original_file_path,
        "path": node.path,
        "fqn": node.fqn,
                "package_name": node.package_name,
        "config": node.config,
        "tags": node.config.tags(),
    }))
}
