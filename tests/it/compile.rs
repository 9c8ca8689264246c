//! `ebb compile` on example_project: compiled SQL and manifest snapshots, determinism.

use crate::common::TestProject;

#[test]
fn compiles_example_project_to_snapshot() {
    let project = TestProject::copy_of("example_project");
    let out = project.ebb(&["compile"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    insta::assert_snapshot!("compile_output", out.snapshot());
    let files = project.target_files();
    let compiled: Vec<_> = files
        .iter()
        .filter(|(p, _)| p.starts_with("compiled/"))
        .collect();
    assert!(
        compiled.len() > 40,
        "expected models and tests, got {}",
        compiled.len()
    );
    for (path, bytes) in compiled {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains('\u{E000}'), "placeholder left in {path}");
        let name = path
            .trim_start_matches("compiled/retail/")
            .replace('/', "__");
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn manifest_matches_snapshot() {
    let project = TestProject::copy_of("example_project");
    let out = project.ebb(&["compile"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let text =
        std::fs::read_to_string(project.path().join("target/manifest.json")).expect("manifest");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    insta::assert_json_snapshot!("manifest", manifest, {
        ".metadata.generated_at" => "[TIME]",
        ".metadata.invocation_id" => "[ID]",
        ".metadata.ebb_version" => "[VERSION]",
        ".metadata.git" => "[GIT]",
    });
}

#[test]
fn manifest_describes_dependencies_and_relations() {
    let project = TestProject::copy_of("example_project");
    assert_eq!(project.ebb(&["compile"]).code, 0);
    let text =
        std::fs::read_to_string(project.path().join("target/manifest.json")).expect("manifest");
    let m: serde_json::Value = serde_json::from_str(&text).expect("json");
    let scores = &m["nodes"]["model.retail.customer_scores"];
    assert_eq!(scores["config"]["materialized"], "table");
    assert_eq!(scores["schema"], "main_marts", "dbt's custom schema rule");
    let deps: Vec<&str> = scores["depends_on"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        deps.contains(&"model.retail.int_customer_orders"),
        "{deps:?}"
    );
    assert!(scores["depends_on"]["macros"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "macro.retail.days_between"));
    let compiled = scores["compiled_code"].as_str().unwrap();
    assert!(
        compiled.contains("__dbt__cte__int_customer_orders as ("),
        "ephemeral injected"
    );
    assert!(
        m["nodes"]["model.retail.accounts"]["relation_name"]
            .as_str()
            .unwrap()
            .ends_with("\"account_rollup\""),
        "alias honoured"
    );
    assert_eq!(
        m["sources"]["source.retail.web.events"]["relation_name"],
        "\"main\".\"raw_web_events\""
    );
    assert_eq!(m["metadata"]["git"], serde_json::Value::Null, "not in git");
    let children = m["child_map"]["model.retail.stg_orders"]
        .as_array()
        .expect("child map");
    assert!(
        children
            .iter()
            .any(|c| c == "model.retail.int_customer_orders"),
        "{children:?}"
    );
    assert!(children.iter().any(|c| c
        .as_str()
        .unwrap()
        .starts_with("test.retail.unique_stg_orders")));
}

#[test]
fn compiling_twice_gives_byte_identical_artifacts() {
    let project = TestProject::copy_of("example_project");
    assert_eq!(project.ebb(&["compile"]).code, 0);
    let first = project.target_files();
    assert_eq!(project.ebb(&["compile"]).code, 0);
    let second = project.target_files();
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &first {
        assert!(
            bytes == &second[path],
            "{path} differs between two compiles"
        );
    }
}

#[test]
fn target_flag_and_vars_change_the_output() {
    let project = TestProject::copy_of("example_project");
    let out = project.ebb(&[
        "compile",
        "--target",
        "pg",
        "--vars",
        "{high_value_threshold: 1000}",
    ]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let sql = std::fs::read_to_string(
        project
            .path()
            .join("target/compiled/retail/models/marts/customer_scores.sql"),
    )
    .unwrap();
    assert!(
        sql.contains("\"retail\".\"analytics\".\"stg_customers\""),
        "postgres relation names:\n{sql}"
    );
    assert!(sql.contains("1000"), "--vars overrides the project var");
    assert!(sql.contains("::date"), "the macro branches on target.type");
}

#[test]
fn a_deleted_model_leaves_no_stale_compiled_file() {
    let project = TestProject::copy_of("example_project");
    project.write("models/marts/extra.sql", "select 1 as x");
    assert_eq!(project.ebb(&["compile"]).code, 0);
    assert!(project
        .path()
        .join("target/compiled/retail/models/marts/extra.sql")
        .exists());
    std::fs::remove_file(project.path().join("models/marts/extra.sql")).unwrap();
    assert_eq!(project.ebb(&["compile"]).code, 0);
    assert!(!project
        .path()
        .join("target/compiled/retail/models/marts/extra.sql")
        .exists());
}

#[test]
fn a_dbt_project_compiles_unmodified() {
    let project = TestProject::copy_of("tests/fixtures/projects/dbt_jaffle");
    let out = project.ebb(&["compile"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let sql = std::fs::read_to_string(
        project
            .path()
            .join("target/compiled/jaffle/models/customers.sql"),
    )
    .unwrap();
    insta::assert_snapshot!("dbt_jaffle_customers", sql);
}
