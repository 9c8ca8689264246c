//! JUnit XML for `ebb test --junit FILE`, the format CI systems read test reports in.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::exec::{Outcome, Status};
use crate::graph::Graph;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// Renders test outcomes as one JUnit test suite; warnings pass, with their message kept.
pub fn render(graph: &Graph, outcomes: &BTreeMap<String, Outcome>, elapsed: f64) -> String {
    let count = |s: Status| outcomes.values().filter(|o| o.status == s).count();
    let (failures, errors, skipped) = (
        count(Status::Fail),
        count(Status::Error),
        count(Status::Skipped),
    );
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"ebb\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{elapsed:.3}\">",
        outcomes.len()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"ebb test\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{elapsed:.3}\">",
        outcomes.len()
    );
    for (id, o) in outcomes {
        let node = graph.nodes.get(id);
        let name = node.map_or(id.as_str(), |n| n.name.as_str());
        let class = node.map_or(String::new(), |n| n.original_file_path.clone());
        let _ = write!(
            xml,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
            escape(name),
            escape(&class),
            o.execution_time
        );
        let message = escape(o.message.as_deref().unwrap_or(""));
        match o.status {
            Status::Fail => {
                let _ = write!(xml, ">\n      <failure type=\"data_test\" message=\"{message}\">{message}</failure>\n    </testcase>\n");
            }
            Status::Error => {
                let _ = write!(xml, ">\n      <error type=\"error\" message=\"{message}\">{message}</error>\n    </testcase>\n");
            }
            Status::Skipped => {
                let _ = write!(
                    xml,
                    ">\n      <skipped message=\"{message}\"/>\n    </testcase>\n"
                );
            }
            Status::Warn => {
                let _ = write!(
                    xml,
                    ">\n      <system-out>warning: {message}</system-out>\n    </testcase>\n"
                );
            }
            _ => xml.push_str("/>\n"),
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_xml() {
        assert_eq!(super::escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
