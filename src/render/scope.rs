//! What one render records: the `ref`/`source` calls, `config()` values, vars and environment
//! variables read, macros called, log lines, and the diagnostic a function wants to report.
//!
//! It lives in a thread-local because calls made inside macros must be captured too, and a macro
//! runs in its own template state; one render runs on one thread from start to end.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use minijinja::Value;

use super::relation::Resolver;
use crate::diag::Code;

/// A `ref()` call as written: `ref('name')` or `ref('package', 'name')`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RefCall {
    pub package: Option<String>,
    pub name: String,
}

/// A problem a template function wants reported with its own code instead of a generic
/// rendering error.
#[derive(Debug, Clone)]
pub struct Pending {
    pub code: Code,
    pub message: String,
    pub hint: Option<String>,
}

/// The record of one render.
#[derive(Default)]
pub struct Scope {
    /// The node's configuration so far (project and YAML levels), for `config.get()`.
    pub base_config: BTreeMap<String, serde_json::Value>,
    /// Names resolved by an earlier pass; `None` in the first pass.
    pub resolved: Option<Resolver>,
    pub refs: Vec<RefCall>,
    pub sources: Vec<(String, String)>,
    pub config: BTreeMap<String, serde_json::Value>,
    pub vars: BTreeSet<String>,
    pub env_vars: BTreeSet<String>,
    pub macros: BTreeSet<String>,
    pub logs: Vec<String>,
    pub warnings: Vec<String>,
    pub needs_resolve: bool,
    pub pending: Option<Pending>,
    /// One slot per macro call in progress, for `return()`.
    pub returns: Vec<Option<Value>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Runs `f` with `scope` installed as the current render's record and returns both.
pub fn run<R>(scope: Scope, f: impl FnOnce() -> R) -> (R, Scope) {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(scope));
    let out = f();
    let scope = CURRENT.with(|c| {
        let mut slot = c.borrow_mut();
        let current = slot.take();
        *slot = previous;
        current
    });
    (out, scope.unwrap_or_default())
}

/// Gives `f` the current render's record. Outside a render (a macro evaluated on its own), `f`
/// sees a throwaway record.
pub fn with<R>(f: impl FnOnce(&mut Scope) -> R) -> R {
    CURRENT.with(|c| {
        let mut slot = c.borrow_mut();
        match slot.as_mut() {
            Some(scope) => f(scope),
            None => f(&mut Scope::default()),
        }
    })
}

/// Records a problem to report with `code`, and returns the minijinja error that aborts the render.
pub fn fail(code: Code, message: String, hint: Option<String>) -> minijinja::Error {
    let err = minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message.clone());
    with(|s| {
        if s.pending.is_none() {
            s.pending = Some(Pending {
                code,
                message,
                hint,
            });
        }
    });
    err
}
