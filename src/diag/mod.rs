//! Diagnostics: problems in the user's project, found before anything runs.
//!
//! Every phase of the front half returns its output plus a list of [`Diagnostic`]s; nothing here
//! prints. Rendering to text (with the offending source line) and to JSON lives in [`render`].
//! The list of codes is [`Code`]; each is documented in `docs/errors.md`.

mod code;
pub mod render;

pub use code::Code;

use serde::Serialize;

/// How bad a diagnostic is: errors fail the command, warnings are printed and the run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A place in a project file: path relative to the project root, 1-based line and column, and
/// the byte range in the file when it is known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Span {
    pub path: String,
    pub line: usize,
    pub column: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<(usize, usize)>,
}

impl Span {
    /// Returns a span covering a whole file, for problems that belong to no particular line.
    pub fn file(path: impl Into<String>) -> Self {
        Span {
            path: path.into(),
            line: 1,
            column: 1,
            range: None,
        }
    }

    /// Returns a span at a 1-based line and column with no byte range.
    pub fn at(path: impl Into<String>, line: usize, column: usize) -> Self {
        Span {
            path: path.into(),
            line: line.max(1),
            column: column.max(1),
            range: None,
        }
    }

    /// Returns a span for a byte range of `source`, computing its line and column.
    pub fn from_range(path: impl Into<String>, source: &str, range: (usize, usize)) -> Self {
        let start = range.0.min(source.len());
        let before = &source[..floor_char_boundary(source, start)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = source[line_start..floor_char_boundary(source, start)]
            .chars()
            .count()
            + 1;
        Span {
            path: path.into(),
            line,
            column,
            range: Some((start, range.1.min(source.len()).max(start))),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One problem in the project: a stable code, a one-line message, where it is, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub span: Span,
    /// Text shown under the offending source line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub hints: Vec<String>,
    /// A secret written in the file at this place: the snippet shows `****` instead.
    #[serde(skip)]
    pub conceal: Option<String>,
}

impl Diagnostic {
    /// Returns an error diagnostic with the code's default severity.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            span,
            label: None,
            hints: Vec::new(),
            conceal: None,
        }
    }

    /// Adds the text shown under the source line.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a hint, printed on its own line after the snippet.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Lowers the diagnostic to a warning.
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// Tells whether this diagnostic fails the command.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics by file, line and column, then drops exact duplicates.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| {
        (&a.span.path, a.span.line, a.span.column, a.code, &a.message).cmp(&(
            &b.span.path,
            b.span.line,
            b.span.column,
            b.code,
            &b.message,
        ))
    });
    diagnostics.dedup();
}

/// Returns up to three names from `candidates` that are close to `name`, best first.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// Formats a "did you mean" hint for a list of close names, or returns `None` when there are none.
pub fn did_you_mean(close: &[String]) -> Option<String> {
    match close {
        [] => None,
        [one] => Some(format!("did you mean `{one}`?")),
        many => {
            let quoted: Vec<String> = many.iter().map(|c| format!("`{c}`")).collect();
            Some(format!("did you mean one of {}?", quoted.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_from_range_counts_lines_and_columns() {
        let src = "select 1\nfrom {{ ref('x') }}\n";
        let start = src.find("{{").unwrap();
        let span = Span::from_range("m.sql", src, (start, start + 2));
        assert_eq!((span.line, span.column), (2, 6));
    }

    #[test]
    fn closest_names_are_ranked() {
        let names = ["customers", "orders", "customer_scores"];
        assert_eq!(closest("customers_v2", names)[0], "customers");
        assert!(closest("zzz", names).is_empty());
    }
}
