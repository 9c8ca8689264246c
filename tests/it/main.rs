//! End-to-end tests: the real `ebb` binary on projects in temp dirs.

mod common;

mod cli_docs;
mod compile;
mod diff;
mod docs;
mod errors;
mod git;
mod init;
mod ls;
mod syncs;
mod warehouse;
