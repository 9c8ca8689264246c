//! The sync engine: moves exactly the rows that changed from a model to a destination.
//!
//! `engine.rs` runs one sync (diff against state, guards, batched delivery, per-batch state
//! commits); `mapper.rs` turns model rows into payloads with fingerprints; `state/` is the
//! embedded state file and run history; `connector/` holds the [`connector::Connector`] trait
//! and the HTTP, database and file connectors; `value.rs` is the cell type rows are made of.

pub mod connector;
pub mod engine;
pub mod mapper;
pub mod setup;
pub mod state;
pub mod value;
