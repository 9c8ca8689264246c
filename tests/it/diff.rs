//! `ebb diff` on a real repository: a feature branch off `main` changes syncs, a macro, a
//! destination and adds a model while `main` moves on; the report between the merge base and
//! the branch is snapshotted as text, JSON and Markdown.

use std::path::Path;

use crate::common::{git, git_commit, git_init, redact_commits, Output, TestProject};

fn replace(path: &Path, from: &str, to: &str) {
    let original = std::fs::read_to_string(path).unwrap();
    assert!(
        original.contains(from),
        "{} has no `{from}`",
        path.display()
    );
    std::fs::write(path, original.replacen(from, to, 1)).unwrap();
}

/// The example project on `main`, a `feature` branch with the changes of a pull request, and
/// one more commit on `main` after the branch was made.
struct PullRequest {
    project: TestProject,
    merge_base: String,
    feature: String,
}

impl PullRequest {
    fn new() -> PullRequest {
        let project = TestProject::copy_of("example_project");
        let dir = project.path();
        let first = git_init(dir);
        git(dir, &["checkout", "-q", "-b", "feature"]);
        // A sync: a PII field added unmasked, one removed, one remapped, mode and key changed.
        replace(
            &dir.join("syncs/ops.yml"),
            "    mode: mirror\n    primary_key: customer_id\n    match_on: customer_id\n    mapping:\n      customer_id: customer_id\n      email: email\n      segment: segment\n      churn_risk_score: churn_risk_score\n      last_order_date: last_order_date\n",
            "    mode: upsert\n    primary_key: customer_id\n    match_on: email\n    mapping:\n      customer_id: customer_id\n      email: email\n      phone: phone\n      segment: \"{{ row.segment | upper }}\"\n      churn_risk_score: churn_risk_score\n",
        );
        // A sync removed.
        let ops = std::fs::read_to_string(dir.join("syncs/ops.yml")).unwrap();
        let cut = ops.find("\n  - name: finance_account_export").unwrap();
        std::fs::write(dir.join("syncs/ops.yml"), &ops[..cut + 1]).unwrap();
        // A sync added, with a masked PII field.
        project.write(
            "syncs/sms.yml",
            "syncs:\n  - name: sms_optin\n    model: ref('vip_customers')\n    destination: loyalty_webhook\n    object: sms\n    mode: insert\n    primary_key: customer_id\n    mapping:\n      customer_id: customer_id\n      phone_hash: \"{{ row.phone | sha256 }}\"\n",
        );
        // A model added, documented so its PII is known.
        project.write(
            "models/marts/vip_customers.sql",
            "select * from {{ ref('customer_scores') }} where segment = 'vip'\n",
        );
        project.write(
            "models/marts/_vip.yml",
            "version: 2\nmodels:\n  - name: vip_customers\n    columns:\n      - name: customer_id\n      - name: phone\n        meta:\n          pii: true\n",
        );
        // A macro two models call, and a destination setting.
        replace(
            &dir.join("macros/days_between.sql"),
            "julianday(",
            "JULIANDAY(",
        );
        replace(
            &dir.join("destinations.yml"),
            "rate_limit: 25/s",
            "rate_limit: 20/s",
        );
        let feature = git_commit(dir, "feature: reshape the ops sync");
        git(dir, &["checkout", "-q", "main"]);
        std::fs::write(dir.join("README.md"), "moved on\n").unwrap();
        git_commit(dir, "main moves on");
        git(dir, &["checkout", "-q", "feature"]);
        let merge_base = git(dir, &["merge-base", "main", "feature"]);
        assert_eq!(merge_base, first);
        PullRequest {
            project,
            merge_base,
            feature,
        }
    }

    fn diff(&self, extra: &[&str]) -> Output {
        let mut args = vec!["diff", "--base", &self.merge_base, "--head", "feature"];
        args.extend(extra);
        self.project.ebb(&args)
    }

    fn redact(&self, text: &str) -> String {
        redact_commits(
            text,
            &[(&self.merge_base, "[BASE]"), (&self.feature, "[FEATURE]")],
        )
    }
}

#[test]
fn diff_of_a_pull_request_as_text() {
    let pr = PullRequest::new();
    let out = pr.diff(&[]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    insta::assert_snapshot!("pull_request_text", pr.redact(&out.snapshot()));
}

#[test]
fn diff_of_a_pull_request_as_markdown() {
    let pr = PullRequest::new();
    let out = pr.diff(&["--format", "markdown"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    assert!(out.stdout.starts_with("<!-- ebb-diff -->\n"));
    insta::assert_snapshot!("pull_request_markdown", pr.redact(&out.stdout));
}

#[test]
fn diff_of_a_pull_request_as_json() {
    let pr = PullRequest::new();
    let out = pr.diff(&["--output", "json"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let report: serde_json::Value =
        serde_json::from_str(&pr.redact(&out.stdout)).expect("one JSON document");
    let ops = report["syncs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ops_customer_segments")
        .unwrap();
    assert_eq!(
        ops["mode"],
        serde_json::json!({"from": "mirror", "to": "upsert"})
    );
    assert_eq!(
        report["new_pii_flows"][0]["field"], "phone",
        "{}",
        report["new_pii_flows"]
    );
    insta::assert_json_snapshot!("pull_request_json", report);
}

#[test]
fn diff_against_the_work_tree_and_with_no_changes() {
    let pr = PullRequest::new();
    let dir = pr.project.path();
    let out = pr.project.ebb(&["diff", "--base", "feature"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    assert!(out.stdout.contains("no differences"), "{}", out.snapshot());

    replace(
        &dir.join("models/marts/accounts.sql"),
        "select",
        "select 1 as one,",
    );
    let out = pr.project.ebb(&["diff", "--base", "feature"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    insta::assert_snapshot!("work_tree", pr.redact(&out.snapshot()));
}

#[test]
fn diff_with_an_unknown_base_or_a_broken_head() {
    let pr = PullRequest::new();
    let out = pr.project.ebb(&["diff", "--base", "nope"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown revision `nope`"),
        "{}",
        out.stderr
    );

    pr.project.write(
        "models/marts/broken.sql",
        "select * from {{ ref('does_not_exist') }}",
    );
    let out = pr.project.ebb(&["diff", "--base", "main"]);
    assert_eq!(out.code, 1, "{}", out.snapshot());
    assert!(
        out.stderr
            .contains("the project at the work tree (uncommitted changes) has 1 error(s)"),
        "{}",
        out.stderr
    );
}
