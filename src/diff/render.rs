//! The `ebb diff` report as text for a terminal and as Markdown for a pull-request comment.
//! (JSON is the report serialized as it is.)

use std::fmt::Write as _;

use super::report::{FromTo, Report, Status};
use crate::graph::ResourceType;

/// Rows of one Markdown table beyond which the rest is summarized, keeping a comment well
/// under GitHub's 65,536 characters.
const MARKDOWN_ROWS: usize = 100;

/// The first line of the Markdown report, so a CI job can find and update its own comment.
pub const MARKDOWN_MARKER: &str = "<!-- ebb-diff -->";

fn sign(status: Status) -> char {
    match status {
        Status::Added => '+',
        Status::Modified => '~',
        Status::Removed => '-',
    }
}

fn word(status: Status) -> &'static str {
    match status {
        Status::Added => "added",
        Status::Modified => "modified",
        Status::Removed => "removed",
    }
}

fn side(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(none)")
}

fn settings_lines(
    sync: &super::report::SyncChange,
) -> impl Iterator<Item = (&'static str, &FromTo)> {
    [
        ("model", &sync.model),
        ("destination", &sync.destination_changed),
        ("object", &sync.object_changed),
        ("mode", &sync.mode),
        ("primary_key", &sync.primary_key),
        ("match_on", &sync.match_on),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v.as_ref()?)))
}

/// Renders the report for a terminal.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ebb diff: {} → {}",
        report.base.label(),
        report.head.label()
    );
    if report.is_empty() {
        out.push_str("\nno differences in models, seeds, sources, tests, syncs or destinations\n");
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:<14}{:>7}{:>10}{:>9}",
        "", "added", "modified", "removed"
    );
    for (kind, c) in &report.summary {
        if c.added + c.modified + c.removed > 0 {
            let _ = writeln!(
                out,
                "{kind:<14}{:>7}{:>10}{:>9}",
                c.added, c.modified, c.removed
            );
        }
    }
    if !report.nodes.is_empty() {
        out.push_str("\nnodes\n");
        let width = report.nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
        for n in &report.nodes {
            let what = match n.status {
                Status::Modified if !n.details.is_empty() => n.details.join("; "),
                Status::Modified => n
                    .changes
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => n.path.clone(),
            };
            let _ = writeln!(
                out,
                "  {} {:<12}{:<width$}  {what}",
                sign(n.status),
                n.resource_type.as_str(),
                n.name
            );
        }
    }
    if !report.syncs.is_empty() {
        out.push_str("\nsyncs\n");
        for s in &report.syncs {
            let _ = writeln!(
                out,
                "  {} {} → {} / {} ({})",
                sign(s.status),
                s.name,
                s.destination,
                s.object,
                word(s.status)
            );
            for f in &s.fields_added {
                let _ = writeln!(out, "      + field {} ← {}", f.field, f.source);
            }
            for f in &s.fields_removed {
                let _ = writeln!(out, "      - field {} (was {})", f.field, f.source);
            }
            for r in &s.fields_remapped {
                let _ = writeln!(out, "      ~ field {}: {} → {}", r.field, r.from, r.to);
            }
            for (key, ft) in settings_lines(s) {
                let _ = writeln!(out, "      {key}: {} → {}", side(&ft.from), side(&ft.to));
            }
            if !s.other.is_empty() {
                let _ = writeln!(out, "      also changed: {}", s.other.join(", "));
            }
        }
    }
    if !report.new_pii_flows.is_empty() {
        out.push_str("\nnew PII flows\n");
        for f in &report.new_pii_flows {
            let _ = writeln!(
                out,
                "  ! {}.{} → {} / {}.{} (sync {}), {}",
                f.model,
                f.column,
                f.destination,
                f.object,
                f.field,
                f.sync,
                if f.masked { "masked" } else { "UNMASKED" }
            );
        }
    }
    if !report.impact.is_empty() {
        out.push_str("\nsyncs downstream of changed nodes\n");
        for i in &report.impact {
            let syncs: Vec<String> = i
                .syncs
                .iter()
                .map(|s| format!("{} → {} / {}", s.name, s.destination, s.object))
                .collect();
            let _ = writeln!(
                out,
                "  {} {} ({}): {}",
                i.resource_type.as_str(),
                i.name,
                word(i.status),
                syncs.join(", ")
            );
        }
    }
    out
}

/// Returns `s` as a Markdown code span that survives inside a table cell.
fn code(s: &str) -> String {
    let s = s.replace('|', "\\|").replace('\n', " ");
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

fn code_or_dash(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "—".to_string(), code)
}

fn more(out: &mut String, total: usize, what: &str) {
    if total > MARKDOWN_ROWS {
        let _ = writeln!(
            out,
            "\n…and {} more {what}; run `ebb diff` locally for the full list.",
            total - MARKDOWN_ROWS
        );
    }
}

/// Renders the report as Markdown for a pull-request comment.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{MARKDOWN_MARKER}");
    let _ = writeln!(
        out,
        "### ebb diff: {} → {}\n",
        code(&report.base.label()),
        code(&report.head.label())
    );
    if report.is_empty() {
        out.push_str("No differences in models, seeds, sources, tests, syncs or destinations.\n");
        return out;
    }
    out.push_str("| | added | modified | removed |\n|---|--:|--:|--:|\n");
    for (kind, c) in &report.summary {
        if c.added + c.modified + c.removed > 0 {
            let _ = writeln!(
                out,
                "| {kind} | {} | {} | {} |",
                c.added, c.modified, c.removed
            );
        }
    }
    if !report.new_pii_flows.is_empty() {
        out.push_str("\n#### ⚠️ New PII flows\n\n");
        out.push_str("| sync | column | destination field | masked |\n|---|---|---|---|\n");
        for f in report.new_pii_flows.iter().take(MARKDOWN_ROWS) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                code(&f.sync),
                code(&format!("{}.{}", f.model, f.column)),
                code(&format!("{} / {}.{}", f.destination, f.object, f.field)),
                if f.masked { "yes" } else { "**no**" }
            );
        }
        more(&mut out, report.new_pii_flows.len(), "PII flows");
    }
    if !report.syncs.is_empty() {
        out.push_str("\n#### Syncs\n");
        for s in report.syncs.iter().take(MARKDOWN_ROWS) {
            let _ = writeln!(
                out,
                "\n**{}** → {} / {} ({})\n",
                code(&s.name),
                code(&s.destination),
                code(&s.object),
                word(s.status)
            );
            let rows = s.fields_added.len() + s.fields_removed.len() + s.fields_remapped.len();
            if rows > 0 {
                out.push_str("| destination field | before | after |\n|---|---|---|\n");
                for f in &s.fields_added {
                    let _ = writeln!(out, "| {} | — | {} |", code(&f.field), code(&f.source));
                }
                for f in &s.fields_removed {
                    let _ = writeln!(out, "| {} | {} | — |", code(&f.field), code(&f.source));
                }
                for r in &s.fields_remapped {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} |",
                        code(&r.field),
                        code(&r.from),
                        code(&r.to)
                    );
                }
                out.push('\n');
            }
            for (key, ft) in settings_lines(s) {
                let _ = writeln!(
                    out,
                    "- {key}: {} → {}",
                    code_or_dash(&ft.from),
                    code_or_dash(&ft.to)
                );
            }
            if !s.other.is_empty() {
                let other: Vec<String> = s.other.iter().map(|o| code(o)).collect();
                let _ = writeln!(out, "- also changed: {}", other.join(", "));
            }
        }
        more(&mut out, report.syncs.len(), "syncs");
    }
    if !report.impact.is_empty() {
        out.push_str("\n#### Syncs downstream of changed nodes\n\n");
        out.push_str("| changed | status | syncs downstream |\n|---|---|---|\n");
        for i in report.impact.iter().take(MARKDOWN_ROWS) {
            let syncs: Vec<String> = i
                .syncs
                .iter()
                .map(|s| {
                    format!(
                        "{} → {}{}",
                        code(&s.name),
                        code(&format!("{} / {}", s.destination, s.object)),
                        if s.changed { " (changed)" } else { "" }
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} {} | {} | {} |",
                i.resource_type.as_str(),
                code(&i.name),
                word(i.status),
                syncs.join("<br>")
            );
        }
        more(
            &mut out,
            report.impact.len(),
            "changed nodes with syncs downstream",
        );
    }
    let listed: Vec<_> = report
        .nodes
        .iter()
        .filter(|n| n.resource_type != ResourceType::Sync)
        .collect();
    if !listed.is_empty() {
        out.push_str("\n<details><summary>Changed nodes</summary>\n\n");
        out.push_str("| status | type | node | what changed |\n|---|---|---|---|\n");
        for n in listed.iter().take(MARKDOWN_ROWS) {
            let what = match n.status {
                Status::Modified if !n.details.is_empty() => {
                    n.details.join("; ").replace('|', "\\|")
                }
                Status::Modified => n
                    .changes
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => code(&n.path),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {what} |",
                word(n.status),
                n.resource_type.as_str(),
                code(&n.name),
            );
        }
        more(&mut out, listed.len(), "nodes");
        out.push_str("\n</details>\n");
    }
    out
}
