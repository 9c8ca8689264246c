//! `ebb ls`: selection syntax end to end, text and JSON output.

use crate::common::TestProject;

fn ls(project: &TestProject, args: &[&str]) -> Vec<String> {
    let mut all = vec!["ls"];
    all.extend_from_slice(args);
    let out = project.ebb(&all);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    out.stdout.lines().map(str::to_string).collect()
}

#[test]
fn lists_everything_by_default() {
    let project = TestProject::copy_of("example_project");
    let out = project.ebb(&["ls"]);
    assert_eq!(out.code, 0);
    insta::assert_snapshot!("ls_all", out.snapshot());
}

#[test]
fn selection_methods_and_operators() {
    let p = TestProject::copy_of("example_project");
    let models = ["--resource-type", "model"];
    assert_eq!(
        ls(&p, &["-s", "+customer_scores", "--resource-type", "model"]),
        [
            "retail.intermediate.int_customer_activity",
            "retail.intermediate.int_customer_orders",
            "retail.marts.customer_scores",
            "retail.staging.stg_customers",
            "retail.staging.stg_orders",
            "retail.staging.stg_payments",
            "retail.staging.stg_web_events",
        ]
    );
    assert_eq!(
        ls(
            &p,
            &["-s", "1+customer_scores", "--exclude", "resource_type:test"]
        )
        .len(),
        4
    );
    assert_eq!(
        ls(&p, &[&["-s", "stg_orders+"][..], &models[..]].concat()),
        [
            "retail.intermediate.int_customer_orders",
            "retail.marts.accounts",
            "retail.marts.customer_scores",
            "retail.staging.stg_orders"
        ]
    );
    assert_eq!(
        ls(&p, &["-s", "tag:marts", "--resource-type", "model"]),
        ["retail.marts.accounts", "retail.marts.customer_scores"]
    );
    assert_eq!(
        ls(
            &p,
            &["-s", "tag:staging,stg_c*", "--resource-type", "model"]
        ),
        ["retail.staging.stg_customers"]
    );
    assert_eq!(
        ls(
            &p,
            &["-s", "path:models/intermediate", "--resource-type", "model"]
        )
        .len(),
        2
    );
    assert_eq!(
        ls(&p, &["-s", "resource_type:seed", "resource_type:source"]).len(),
        5
    );
    assert_eq!(
        ls(
            &p,
            &[
                "-s",
                "source:web+",
                "--exclude",
                "resource_type:test",
                "tag:marts",
                "resource_type:sync",
                "resource_type:destination"
            ]
        ),
        [
            "retail.intermediate.int_customer_activity",
            "retail.staging.stg_web_events",
            "source:retail.web.events"
        ]
    );
}

#[test]
fn json_output_is_one_object_per_line() {
    let p = TestProject::copy_of("example_project");
    let out = p.ebb(&[
        "ls",
        "--output",
        "json",
        "-s",
        "accounts",
        "--resource-type",
        "model",
    ]);
    assert_eq!(out.code, 0);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(v["unique_id"], "model.retail.accounts");
    assert_eq!(v["config"]["materialized"], "table");
    assert_eq!(v["relation_name"], "\"main_marts\".\"account_rollup\"");
}
