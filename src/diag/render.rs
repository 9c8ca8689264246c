//! Renders diagnostics for people (a snippet of the offending line, with annotate-snippets) and
//! for programs (JSON objects with the same fields).

use annotate_snippets::{Level, Renderer, Snippet};

use super::{Diagnostic, Severity};

/// Renders one diagnostic as text. `source` is the content of the file the span points into,
/// when it could be read; without it the diagnostic is still printed with its location.
pub fn to_text(diagnostic: &Diagnostic, source: Option<&str>, color: bool) -> String {
    // A secret written in the file is never echoed: mask it in the excerpt, keeping its length so
    // positions stay right.
    let concealed = match (&diagnostic.conceal, source) {
        (Some(secret), Some(src)) if !secret.is_empty() => {
            Some(src.replace(secret.as_str(), &"*".repeat(secret.len())))
        }
        _ => None,
    };
    let source = concealed.as_deref().or(source);
    let level = match diagnostic.severity {
        Severity::Error => Level::Error,
        Severity::Warning => Level::Warning,
    };
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let span = &diagnostic.span;
    let title = level
        .title(&diagnostic.message)
        .id(diagnostic.code.as_str());
    let excerpt = source.and_then(|src| excerpt(src, span.line, span.column, span.range));
    let label = diagnostic.label.as_deref().unwrap_or("");
    let mut out = match &excerpt {
        Some((text, first_line, range)) => {
            let snippet = Snippet::source(text)
                .line_start(*first_line)
                .origin(&span.path)
                .fold(false)
                .annotation(level.span(range.clone()).label(label));
            renderer.render(title.snippet(snippet)).to_string()
        }
        None => {
            let head = renderer.render(title).to_string();
            format!("{head}\n  --> {}:{}:{}", span.path, span.line, span.column)
        }
    };
    for hint in &diagnostic.hints {
        out.push_str("\nhint: ");
        out.push_str(hint);
    }
    out
}

/// Cuts the lines a span covers out of `source` (at most three), returning the text, the number
/// of its first line, and the annotated byte range relative to the cut.
fn excerpt(
    source: &str,
    line: usize,
    column: usize,
    range: Option<(usize, usize)>,
) -> Option<(String, usize, std::ops::Range<usize>)> {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(source.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    // A position past the end (YAML errors at end of file) shows the last line.
    let last_line = if source.ends_with('\n') {
        line_starts.len().saturating_sub(2)
    } else {
        line_starts.len() - 1
    };
    let (line, column, range) = if line > last_line + 1 {
        (last_line + 1, usize::MAX, None)
    } else {
        (line, column, range)
    };
    let first = line.checked_sub(1)?;
    let start_of_line = *line_starts.get(first)?;
    let (abs_start, abs_end) = match range {
        Some((s, e)) if s >= start_of_line => (s, e),
        _ => {
            let text_end = line_starts.get(first + 1).map_or(source.len(), |e| e - 1);
            let text = &source[start_of_line..text_end];
            let offset: usize = text
                .chars()
                .take(column.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            let trimmed_end = start_of_line + text.trim_end().len();
            let s = (start_of_line + offset).min(trimmed_end);
            (s, trimmed_end.max(s))
        }
    };
    let end_line =
        line_starts.partition_point(|&ls| ls <= abs_end.saturating_sub(1).max(abs_start)) - 1;
    let last = end_line.min(first + 2);
    let cut_end = line_starts.get(last + 1).map_or(source.len(), |e| e - 1);
    let text = source[start_of_line..cut_end.max(start_of_line)]
        .trim_end_matches('\r')
        .to_string();
    let rel_start = abs_start - start_of_line;
    let rel_end = (abs_end - start_of_line).min(text.len()).max(rel_start);
    let rel_end = if rel_end == rel_start {
        (rel_start + 1).min(text.len().max(rel_start))
    } else {
        rel_end
    };
    Some((text, line, rel_start..rel_end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{Code, Span};

    #[test]
    fn renders_snippet_with_label_and_hint() {
        let src = "-- staging\nselect * from {{ ref('customers_v2') }}\n";
        let start = src.find("ref(").unwrap();
        let d = Diagnostic::new(
            Code::RefNotFound,
            Span::from_range("models/a.sql", src, (start, start + 19)),
            "model `a` refers to `customers_v2`, which does not exist",
        )
        .label("no model named `customers_v2`")
        .hint("did you mean `customers`?");
        let text = to_text(&d, Some(src), false);
        assert!(text.contains("error[ref-not-found]"), "{text}");
        assert!(text.contains("models/a.sql:2:18"), "{text}");
        assert!(text.contains("^^^^"), "{text}");
        assert!(text.ends_with("hint: did you mean `customers`?"), "{text}");
    }

    #[test]
    fn renders_without_source() {
        let d = Diagnostic::new(Code::YamlSyntax, Span::at("x.yml", 3, 4), "bad");
        assert!(to_text(&d, None, false).contains("--> x.yml:3:4"));
    }
}
