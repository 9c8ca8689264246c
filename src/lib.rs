//! ebb: reverse ETL as a compiled, git-versioned project.
//!
//! The pipeline runs in stages, and the module tree follows it. The front half is pure and
//! offline: [`project`] reads the files of a project (from a directory or a git revision),
//! [`spec`] parses its YAML, [`render`] renders Jinja SQL with dbt's functions while recording
//! every `ref`/`source` call, [`compile`] turns those into [`graph`] nodes and edges with named
//! relations and compiled SQL, and [`artifacts`] writes target/compiled/ and manifest.json.
//! Problems in the project are [`diag`]nostics, collected rather than thrown, each with a file,
//! line and hint. [`diff`] compares two compilations (two git revisions) node by node, for
//! `state:` selection and `ebb diff`'s pull-request report.
//!
//! The command line ([`cli`]) resolves flags and the environment into settings, calls the
//! pipeline, and hands results to the printer ([`output`]); [`error`] decides the exit code.

pub mod artifacts;
pub mod cli;
pub mod compile;
pub mod diag;
pub mod diff;
pub mod error;
pub mod exec;
pub mod graph;
pub mod lineage;
pub mod output;
pub mod project;
pub mod render;
pub mod secret;
pub mod spec;
pub mod sync;
pub mod warehouse;
