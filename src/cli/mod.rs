//! The command line: clap structs (their doc comments are `--help`) and one file per command.
//! Commands turn flags into [`settings::Settings`], call the pipeline and hand the outcome to the
//! printer; no business logic lives here.

mod compile;
mod connect;
mod diff;
mod docs;

mod execute;
mod init;
mod ls;
mod plan;
pub mod settings;
mod status;
mod syncs;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;
use crate::output::{Format, Printer};
use execute::Kinds;

/// Reverse ETL as a compiled, git-versioned project
#[derive(Debug, Parser)]
#[command(
    name = "ebb",
    version,
    about,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print results as text or as JSON
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub output: Format,
    /// Print only errors
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Never use colour (also when NO_COLOR is set)
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a working starter project in DIR
    Init(init::InitArgs),
    /// Compile the project without touching the warehouse
    Compile(compile::CompileArgs),
    /// List the selected nodes
    #[command(alias = "list")]
    Ls(ls::LsArgs),
    /// Load the seed CSV files into the warehouse, replacing their tables
    Seed(connect::WarehouseArgs),
    /// Build the selected models, then deliver the selected syncs, in dependency order
    Run(execute::RunArgs),
    /// Run the data tests of the selected nodes against the warehouse
    Test(execute::TestArgs),
    /// Show, per selected sync, the rows a run would insert, update and delete; sends nothing
    Plan(connect::WarehouseArgs),
    /// Show the recent runs of each sync, or the rows a destination rejected
    Status(status::StatusArgs),
    /// Seed, run, test and deliver the selected nodes in one pass, in dependency order
    Build(execute::BuildArgs),
    /// Generate lineage and the docs site, or serve it
    #[command(subcommand)]
    Docs(docs::DocsCommand),
    /// Report what changed between two git revisions: nodes, sync fields, PII flows, impact
    Diff(diff::DiffArgs),
}

/// Flags of commands that read a project.
#[derive(Debug, Args, Clone)]
pub struct ProjectArgs {
    /// Directory holding ebb_project.yml (or dbt_project.yml)
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub project_dir: PathBuf,
    /// Directory holding profiles.yml (before the project directory and ~/.ebb/)
    #[arg(long, value_name = "DIR", env = "EBB_PROFILES_DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Output of the profile to use instead of its default target
    #[arg(long, short, value_name = "NAME")]
    pub target: Option<String>,
    /// Values for var(), as YAML: '{key: value, other: 2}'
    #[arg(long, value_name = "YAML")]
    pub vars: Option<String>,
    /// Nodes to include: name, +name, name+, 2+name, tag:x, path:dir, resource_type:model
    #[arg(long, short, num_args = 1.., value_name = "SELECTOR")]
    pub select: Vec<String>,
    /// Nodes to leave out, in the same syntax as --select
    #[arg(long, num_args = 1.., value_name = "SELECTOR")]
    pub exclude: Vec<String>,
    /// Git revision that `state:modified` and `state:new` selectors compare against
    #[arg(long, value_name = "REV")]
    pub state: Option<String>,
}

/// The `--rev` flag of commands that only read the project.
#[derive(Debug, Args, Clone)]
pub struct RevArgs {
    /// Read the project from this git revision (commit, branch, tag) instead of the work tree
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
}

/// Runs the parsed command line and returns the error that decides the exit code.
pub fn run(cli: Cli) -> Result<(), (Error, Printer)> {
    let printer = Printer::new(
        cli.global.output,
        cli.global.quiet,
        cli.global.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    );
    let result = match cli.command {
        Command::Init(args) => init::run(&args, &printer),
        Command::Compile(args) => compile::run(&args, &printer),
        Command::Ls(args) => ls::run(&args, &printer),
        Command::Seed(args) => execute::execute(
            "seed",
            &args,
            Kinds {
                seeds: true,
                models: false,
                tests: false,
            },
            false,
            None,
            None,
            &printer,
        ),
        Command::Run(args) => execute::execute(
            "run",
            &args.warehouse,
            Kinds {
                seeds: false,
                models: true,
                tests: false,
            },
            false,
            None,
            Some(&args.sync),
            &printer,
        ),
        Command::Test(args) => {
            let kinds = Kinds {
                seeds: false,
                models: false,
                tests: true,
            };
            execute::execute(
                "test",
                &args.warehouse,
                kinds,
                args.store_failures,
                args.junit.as_deref(),
                None,
                &printer,
            )
        }
        Command::Docs(command) => docs::run(&command, &printer),
        Command::Plan(args) => plan::run(&args, &printer),
        Command::Status(args) => status::run(&args, &printer),
        Command::Diff(args) => diff::run(&args, &printer),
        Command::Build(args) => {
            let kinds = Kinds {
                seeds: true,
                models: true,
                tests: true,
            };
            execute::execute(
                "build",
                &args.test.warehouse,
                kinds,
                args.test.store_failures,
                args.test.junit.as_deref(),
                Some(&args.sync),
                &printer,
            )
        }
    };
    result.map_err(|e| (e, printer))
}
