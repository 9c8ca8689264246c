//! Finds where YAML items are: a second, event-level pass over a YAML file that records the line
//! and column of every key and sequence item, so checks made long after parsing can point at the
//! offending item. serde_yaml gives typed values but forgets positions; this keeps them.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a YAML file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Positions of the items of one YAML document, keyed by their path (`models.0.columns.2.name`).
#[derive(Debug, Default, Clone)]
pub struct Locator {
    positions: HashMap<String, Pos>,
}

impl Locator {
    /// Reads the positions of every item of `source`; an unparsable file gives an empty locator
    /// (serde_yaml reports the syntax error itself).
    pub fn new(source: &str) -> Self {
        let mut recorder = Recorder::default();
        let mut parser = Parser::new_from_str(source);
        if parser.load(&mut recorder, false).is_err() {
            return Locator::default();
        }
        Locator {
            positions: recorder.positions,
        }
    }

    /// Returns the position of the item at `path`, or of its nearest recorded ancestor.
    pub fn find(&self, path: &str) -> Pos {
        let mut path = path;
        loop {
            if let Some(pos) = self.positions.get(path) {
                return *pos;
            }
            match path.rfind('.') {
                Some(i) => path = &path[..i],
                None => return Pos { line: 1, column: 1 },
            }
        }
    }
}

enum Frame {
    /// `fresh` until the first key is seen: a mapping's own position is its first key's,
    /// because the parser marks block mappings at an odd place.
    Map {
        path: String,
        key: Option<String>,
        fresh: bool,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    positions: HashMap<String, Pos>,
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

impl Recorder {
    /// Returns the path of the value that starts now, recording its position, and advances the
    /// parent frame. For a mapping key it records the key's own position and returns `None`.
    fn value_path(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        let pos = Pos {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, index }) => {
                let p = join(path, &index.to_string());
                *index += 1;
                self.positions.entry(p.clone()).or_insert(pos);
                Some(p)
            }
            Some(Frame::Map { path, key, fresh }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    let k = scalar.unwrap_or("?").to_string();
                    self.positions.insert(join(path, &k), pos);
                    if std::mem::take(fresh) {
                        self.positions.insert(path.clone(), pos);
                    }
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                self.value_path(Some(&value), mark);
            }
            Event::Alias(_) => {
                self.value_path(None, mark);
            }
            Event::MappingStart(..) => {
                let path = self.value_path(None, mark).unwrap_or_default();
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    fresh: true,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path(None, mark).unwrap_or_default();
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_items() {
        let src = "version: 2\nmodels:\n  - name: a\n    columns:\n      - name: id\n        tests: [unique]\n";
        let loc = Locator::new(src);
        assert_eq!(loc.find("models"), Pos { line: 2, column: 1 });
        assert_eq!(loc.find("models.0"), Pos { line: 3, column: 5 });
        assert_eq!(
            loc.find("models.0.columns.0.name"),
            Pos { line: 5, column: 9 }
        );
        assert_eq!(loc.find("models.0.columns.0.tests.0").line, 6);
        assert_eq!(
            loc.find("models.0.missing.deeper"),
            Pos { line: 3, column: 5 }
        );
    }
}
