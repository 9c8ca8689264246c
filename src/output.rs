//! The printer: data to stdout, messages to stderr, as text or JSON, with colour only on a
//! terminal and never when `NO_COLOR` is set. The only module allowed to print.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};

use serde_json::json;

use crate::diag::{self, Diagnostic};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Prints results and messages in one format.
#[derive(Debug, Clone)]
pub struct Printer {
    pub format: Format,
    pub color: bool,
    pub quiet: bool,
}

impl Printer {
    /// Returns a printer; colour is used when stderr is a terminal and `no_color` is false.
    pub fn new(format: Format, quiet: bool, no_color: bool) -> Self {
        let color = !no_color && std::io::stderr().is_terminal();
        Printer {
            format,
            color,
            quiet,
        }
    }

    /// Prints a line of data to stdout. A closed pipe (`ebb ls | head`) is not an error.
    pub fn data(&self, line: &str) {
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }

    /// Prints a JSON value to stdout on one line.
    pub fn json(&self, value: &serde_json::Value) {
        let _ = writeln!(std::io::stdout().lock(), "{value}");
    }

    /// Prints a message to stderr, unless quiet.
    pub fn message(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// Prints an error (and its hint) to stderr, whatever the format.
    pub fn error(&self, message: &str, hint: Option<&str>) {
        match self.format {
            Format::Json => eprintln!("{}", json!({"error": message, "hint": hint})),
            Format::Text => {
                eprintln!("error: {message}");
                if let Some(h) = hint {
                    eprintln!("hint: {h}");
                }
            }
        }
    }

    /// Prints diagnostics as text to stderr, each with its source line. `text_of` returns the
    /// content of a file by its project-relative path.
    pub fn diagnostics<'a>(
        &self,
        diagnostics: &[Diagnostic],
        text_of: &dyn Fn(&str) -> Option<&'a str>,
    ) {
        if self.format == Format::Json {
            return;
        }
        for d in diagnostics {
            if self.quiet && !d.is_error() {
                continue;
            }
            eprintln!(
                "{}\n",
                diag::render::to_text(d, text_of(&d.span.path), self.color)
            );
        }
    }
}

/// Returns diagnostics as JSON objects: code, severity, message, file, line, column, label, hints.
pub fn diagnostics_json(diagnostics: &[Diagnostic]) -> serde_json::Value {
    json!(diagnostics
        .iter()
        .map(|d| json!({
            "code": d.code,
            "severity": d.severity,
            "message": d.message,
            "file": d.span.path,
            "line": d.span.line,
            "column": d.span.column,
            "label": d.label,
            "hints": d.hints,
        }))
        .collect::<Vec<_>>())
}
