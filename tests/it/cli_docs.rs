//! `docs/cli.md` is generated from the clap definitions: this test regenerates it and fails when
//! the committed file differs (run with `EBB_UPDATE_DOCS=1` to rewrite it). Help texts are
//! snapshotted too.

use crate::common::{repo_root, run_ebb};

const COMMANDS: &[&str] = &[
    "init",
    "compile",
    "ls",
    "seed",
    "run",
    "plan",
    "status",
    "test",
    "build",
    "docs",
    "docs generate",
    "docs serve",
    "diff",
];

fn help(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ebb(dir.path(), args, &[("COLUMNS", "100")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

#[test]
fn cli_reference_is_up_to_date() {
    let mut doc = String::from(
        "# Command-line reference\n\nGenerated from `ebb --help` by `tests/it/cli_docs.rs`; \
         run `EBB_UPDATE_DOCS=1 cargo test cli_reference` after changing a flag.\n\n## `ebb`\n\n```text\n",
    );
    doc.push_str(&help(&["--help"]));
    doc.push_str("```\n");
    for command in COMMANDS {
        doc.push_str(&format!("\n## `ebb {command}`\n\n```text\n"));
        doc.push_str(&help(
            &[command.split(' ').collect::<Vec<_>>(), vec!["--help"]].concat(),
        ));
        doc.push_str("```\n");
    }
    let path = repo_root().join("docs/cli.md");
    if std::env::var_os("EBB_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &doc).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/cli.md is out of date: run `EBB_UPDATE_DOCS=1 cargo test cli_reference`"
    );
}

#[test]
fn help_texts_match_snapshots() {
    insta::assert_snapshot!("help", help(&["--help"]));
    for command in COMMANDS {
        insta::assert_snapshot!(
            format!("help_{}", command.replace(' ', "_")),
            help(&[command.split(' ').collect::<Vec<_>>(), vec!["--help"]].concat())
        );
    }
}
