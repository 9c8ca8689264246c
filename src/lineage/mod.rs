//! Lineage: which warehouse columns end up in which destination fields. [`columns`] analyzes one
//! model's SQL; this module assembles the project's lineage from the graph.

pub mod columns;
pub mod export;
pub mod openlineage;
pub mod project;
pub mod site;
