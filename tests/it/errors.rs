//! One broken project per diagnostic code (tests/fixtures/errors/<code>/): the rendered error
//! text is snapshotted, the exit code checked, and the JSON output must name the same code.

use std::path::Path;

use crate::common::{repo_root, run_ebb, TestProject};

fn fixture_case(dir: &Path) {
    let code = dir.file_name().unwrap().to_string_lossy().to_string();
    let rel = dir
        .strip_prefix(repo_root())
        .unwrap()
        .to_string_lossy()
        .to_string();
    let project = TestProject::copy_of(&rel);
    let text = project.ebb(&["compile"]);
    let json = run_ebb(project.path(), &["compile", "--output", "json"], &[]);
    let warning_only = ebb::diag::Code::ALL
        .iter()
        .any(|c| c.as_str() == code && c.severity() == ebb::diag::Severity::Warning);
    assert_eq!(
        text.code,
        if warning_only { 0 } else { 1 },
        "{}",
        text.snapshot()
    );
    assert!(
        text.stderr.contains(&format!("[{code}]")),
        "stderr names the code:\n{}",
        text.stderr
    );
    assert!(
        text.stderr.contains("hint: "),
        "every diagnostic has a hint:\n{}",
        text.stderr
    );
    assert!(
        text.stderr.contains(" --> "),
        "every diagnostic points at a file:\n{}",
        text.stderr
    );
    let value: serde_json::Value =
        serde_json::from_str(json.stdout.trim()).expect("JSON on stdout");
    let codes: Vec<&str> = value["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&code.as_str()),
        "JSON names {code}: {codes:?}"
    );
    if !warning_only {
        assert!(
            !project.path().join("target/manifest.json").exists(),
            "nothing is written on error"
        );
    }
    insta::assert_snapshot!(format!("error_{code}"), text.snapshot());
}

#[test]
fn every_error_fixture_renders_its_diagnostic() {
    let root = repo_root().join("tests/fixtures/errors");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    for dir in dirs {
        fixture_case(&dir);
    }
}

#[test]
fn every_code_has_a_fixture_and_a_doc_section() {
    let doc = std::fs::read_to_string(repo_root().join("docs/errors.md")).expect("docs/errors.md");
    for code in ebb::diag::Code::ALL {
        let name = code.as_str();
        assert!(
            repo_root()
                .join("tests/fixtures/errors")
                .join(name)
                .is_dir(),
            "no fixture for `{name}`"
        );
        assert!(
            doc.contains(&format!("## `{name}`")),
            "docs/errors.md has no section for `{name}`"
        );
    }
}

#[test]
fn several_problems_are_reported_in_one_run_sorted_by_file() {
    let project = TestProject::copy_of("example_project");
    project.write(
        "models/marts/broken_a.sql",
        "select * from {{ ref('customer_scorez') }}",
    );
    project.write(
        "models/marts/broken_b.sql",
        "select {{ env_var('EBB_TEST_NOT_SET') }}",
    );
    project.write("models/marts/broken_c.sql", "select {{ 1 + }}");
    let out = project.ebb(&["compile"]);
    assert_eq!(out.code, 1);
    let a = out.stderr.find("broken_a.sql").expect("a reported");
    let b = out.stderr.find("broken_b.sql").expect("b reported");
    let c = out.stderr.find("broken_c.sql").expect("c reported");
    assert!(a < b && b < c, "sorted by file:\n{}", out.stderr);
    assert!(out.stderr.contains("did you mean `customer_scores`?"));
    assert!(out.stderr.contains("found 3 error(s)"), "{}", out.stderr);
}

#[test]
fn usage_errors_exit_2() {
    let project = TestProject::copy_of("example_project");
    let bad_vars = project.ebb(&["compile", "--vars", "{unclosed"]);
    assert_eq!(bad_vars.code, 2, "{}", bad_vars.snapshot());
    assert!(bad_vars.stderr.contains("`--vars` is not valid YAML"));
    let bad_selector = project.ebb(&["ls", "--select", "tags:crm"]);
    assert_eq!(bad_selector.code, 2);
    assert!(
        bad_selector.stderr.contains("did you mean `tag`?"),
        "{}",
        bad_selector.stderr
    );
    let empty = tempfile::tempdir().unwrap();
    let no_project = run_ebb(empty.path(), &["compile"], &[]);
    assert_eq!(no_project.code, 2);
    insta::assert_snapshot!("no_project", no_project.snapshot());
}
