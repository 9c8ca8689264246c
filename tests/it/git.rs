//! Git-native features on real repositories made in the test with the git CLI: the commit and
//! dirty flag in artifacts, `--rev` compiling from the object store, `--state` selection, and
//! `--require-clean`.

use std::path::Path;

use crate::common::{copy_dir, git, git_commit, git_init, repo_root, run_ebb, TestProject};

fn manifest(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("target/manifest.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()
}

fn manifest_git(project: &TestProject) -> serde_json::Value {
    let out = project.ebb(&["compile"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    manifest(project.path())["metadata"]["git"].clone()
}

fn append(path: &Path, text: &str) {
    let original = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, format!("{original}{text}")).unwrap();
}

fn replace(path: &Path, from: &str, to: &str) {
    let original = std::fs::read_to_string(path).unwrap();
    assert!(
        original.contains(from),
        "{} has no `{from}`",
        path.display()
    );
    std::fs::write(path, original.replacen(from, to, 1)).unwrap();
}

#[test]
fn manifest_records_commit_and_dirty_flag() {
    let project = TestProject::copy_of("example_project");
    let dir = project.path();
    let head = git_init(dir);

    let clean = manifest_git(&project);
    assert_eq!(clean["commit"], head.as_str());
    assert_eq!(clean["branch"], "main");
    assert_eq!(
        clean["dirty"], false,
        "target/ is ignored, so compiling leaves the tree clean"
    );

    append(&dir.join("models/marts/accounts.sql"), "\n-- edited\n");
    assert_eq!(
        manifest_git(&project)["dirty"],
        true,
        "a modified tracked file"
    );

    git(dir, &["checkout", "-q", "--", "models/marts/accounts.sql"]);
    project.write("models/marts/new_model.sql", "select 1 as x");
    assert_eq!(
        manifest_git(&project)["dirty"],
        true,
        "an untracked model changes the build"
    );
}

/// A repository whose project lives in `analytics/`, with two commits (tagged `v1` and `v2`) and
/// an uncommitted change on top.
struct History {
    repo: tempfile::TempDir,
    v1: String,
    v2: String,
}

impl History {
    fn new() -> History {
        let repo = tempfile::tempdir().unwrap();
        copy_dir(
            &repo_root().join("example_project"),
            &repo.path().join("analytics"),
        );
        let v1 = git_init(repo.path());
        git(repo.path(), &["tag", "v1"]);
        let project = repo.path().join("analytics");
        replace(
            &project.join("models/marts/accounts.sql"),
            "select",
            "select 'v2' as release_tag,",
        );
        std::fs::remove_file(project.join("tests/assert_no_negative_lifetime_value.sql")).unwrap();
        let v2 = git_commit(repo.path(), "second");
        git(repo.path(), &["tag", "v2"]);
        append(
            &project.join("models/staging/stg_orders.sql"),
            "\n-- work in progress\n",
        );
        History { repo, v1, v2 }
    }

    fn project(&self) -> std::path::PathBuf {
        self.repo.path().join("analytics")
    }
}

#[test]
fn compile_rev_reads_an_older_revision_and_leaves_the_work_tree_alone() {
    let history = History::new();
    let project = history.project();
    let status_before = git(history.repo.path(), &["status", "--porcelain"]);
    let tracked_before =
        std::fs::read_to_string(project.join("models/marts/accounts.sql")).unwrap();

    let out = run_ebb(&project, &["compile", "--rev", "v1"], &[]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let m = manifest(&project);
    assert_eq!(m["metadata"]["git"]["commit"], history.v1.as_str());
    assert_eq!(
        m["metadata"]["git"]["dirty"], false,
        "a revision has no uncommitted changes"
    );
    let accounts = &m["nodes"]["model.retail.accounts"];
    assert!(
        !accounts["raw_code"]
            .as_str()
            .unwrap()
            .contains("release_tag"),
        "the model as it was at v1"
    );
    assert!(
        !m["nodes"]["model.retail.stg_orders"]["raw_code"]
            .as_str()
            .unwrap()
            .contains("work in progress"),
        "the uncommitted edit is not read"
    );
    assert!(
        m["nodes"]["test.retail.assert_no_negative_lifetime_value"].is_object(),
        "a test deleted in v2 exists at v1"
    );
    let compiled =
        std::fs::read_to_string(project.join("target/compiled/retail/models/marts/accounts.sql"))
            .unwrap();
    assert!(!compiled.contains("release_tag"));

    assert_eq!(
        git(history.repo.path(), &["status", "--porcelain"]),
        status_before,
        "the work tree is untouched (target/ is ignored)"
    );
    assert_eq!(
        std::fs::read_to_string(project.join("models/marts/accounts.sql")).unwrap(),
        tracked_before
    );

    let out = run_ebb(&project, &["compile", "--rev", "v2"], &[]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let m = manifest(&project);
    assert_eq!(m["metadata"]["git"]["commit"], history.v2.as_str());
    assert!(m["nodes"]["model.retail.accounts"]["raw_code"]
        .as_str()
        .unwrap()
        .contains("release_tag"));
    assert!(m["nodes"]["test.retail.assert_no_negative_lifetime_value"].is_null());
}

#[test]
fn ls_and_docs_take_a_revision() {
    let history = History::new();
    let project = history.project();
    let tests_at = |rev: Option<&str>| {
        let mut args = vec!["ls", "-s", "assert_*"];
        if let Some(rev) = rev {
            args.extend(["--rev", rev]);
        }
        let out = run_ebb(&project, &args, &[]);
        assert_eq!(out.code, 0, "{}", out.snapshot());
        out.stdout
    };
    assert_eq!(
        tests_at(Some("v1")),
        "retail.assert_no_negative_lifetime_value\n"
    );
    assert_eq!(tests_at(Some(&history.v1[..10])), tests_at(Some("v1")));
    assert_eq!(tests_at(Some("HEAD~1")), tests_at(Some("v1")));
    assert_eq!(tests_at(None), "", "deleted in v2");

    let out = run_ebb(&project, &["docs", "generate", "--rev", "v1"], &[]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let lineage: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.join("target/lineage.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(lineage["metadata"]["git"]["commit"], history.v1.as_str());
}

#[test]
fn an_unknown_revision_is_a_clear_error() {
    let history = History::new();
    let project = history.project();
    let out = run_ebb(&project, &["compile", "--rev", "no-such-branch"], &[]);
    insta::assert_snapshot!("unknown_revision", out.snapshot());
    assert!(!project.join("target").exists(), "nothing was written");

    let out = run_ebb(
        &project,
        &["ls", "--state", "v9", "-s", "state:modified"],
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.snapshot());
    assert!(
        out.stderr.contains("unknown revision `v9`"),
        "{}",
        out.stderr
    );

    let outside = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("example_project"), outside.path());
    let out = run_ebb(outside.path(), &["compile", "--rev", "main"], &[]);
    insta::assert_snapshot!("rev_outside_git", out.snapshot());
}

/// `ebb ls --state main` with a selector, model names only.
fn modified(dir: &Path, selector: &str, resource_type: &str) -> Vec<String> {
    let out = run_ebb(
        dir,
        &[
            "ls",
            "--state",
            "main",
            "-s",
            selector,
            "--resource-type",
            resource_type,
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.snapshot());
    out.stdout.lines().map(str::to_string).collect()
}

#[test]
fn state_modified_follows_files_macros_vars_and_schema_yaml() {
    let project = TestProject::copy_of("example_project");
    let dir = project.path();
    git_init(dir);
    let reset = || git(dir, &["checkout", "-q", "--", "."]);

    assert!(
        modified(dir, "state:modified", "model").is_empty(),
        "nothing changed yet"
    );

    // A model's file.
    append(&dir.join("models/staging/stg_orders.sql"), "\n-- edited\n");
    assert_eq!(
        modified(dir, "state:modified", "model"),
        ["retail.staging.stg_orders"]
    );
    assert_eq!(
        modified(dir, "state:modified.body", "model"),
        ["retail.staging.stg_orders"]
    );
    assert!(modified(dir, "state:modified.macros", "model").is_empty());
    assert_eq!(
        modified(dir, "state:modified+", "model"),
        [
            "retail.intermediate.int_customer_orders",
            "retail.marts.accounts",
            "retail.marts.customer_scores",
            "retail.staging.stg_orders",
        ],
        "`+` adds everything downstream"
    );
    assert_eq!(
        modified(dir, "state:modified+", "sync"),
        [
            "sync:retail.finance_account_export",
            "sync:retail.hubspot_contacts",
            "sync:retail.loyalty_vip_webhook",
            "sync:retail.ops_customer_segments",
            "sync:retail.salesforce_accounts",
        ]
    );
    assert_eq!(
        modified(dir, "state:modified+,tag:marts", "model"),
        ["retail.marts.accounts", "retail.marts.customer_scores"],
        "intersection with another method"
    );
    reset();

    // A macro called from inside a model's template (days_between is used by two models).
    replace(
        &dir.join("macros/days_between.sql"),
        "julianday(",
        "JULIANDAY(",
    );
    assert_eq!(
        modified(dir, "state:modified", "model"),
        [
            "retail.intermediate.int_customer_activity",
            "retail.marts.customer_scores",
        ]
    );
    assert_eq!(
        modified(dir, "state:modified.macros", "model"),
        modified(dir, "state:modified", "model")
    );
    reset();

    // A var: only the model that reads it.
    replace(
        &dir.join("ebb_project.yml"),
        "high_value_threshold: 500",
        "high_value_threshold: 750",
    );
    assert_eq!(
        modified(dir, "state:modified", "model"),
        ["retail.marts.customer_scores"]
    );
    assert_eq!(
        modified(dir, "state:modified.vars", "model"),
        ["retail.marts.customer_scores"]
    );
    reset();

    // Schema YAML: a column description of one model.
    replace(
        &dir.join("models/marts/_marts.yml"),
        "Phone number of the customer.",
        "Phone number of the customer, as entered.",
    );
    assert_eq!(
        modified(dir, "state:modified.schema", "model"),
        ["retail.marts.customer_scores"]
    );
    assert!(modified(dir, "state:modified.body", "model").is_empty());
    reset();

    // A new model is new and modified; the one it reads is neither.
    project.write(
        "models/marts/vip_customers.sql",
        "select * from {{ ref('customer_scores') }} where segment = 'vip'",
    );
    assert_eq!(
        modified(dir, "state:new", "model"),
        ["retail.marts.vip_customers"]
    );
    assert_eq!(
        modified(dir, "state:modified", "model"),
        ["retail.marts.vip_customers"]
    );
    assert_eq!(
        modified(dir, "+state:new", "model").len(),
        8,
        "`+` in front adds ancestors"
    );

    let out = project.ebb(&["ls", "-s", "state:modified"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("pass `--state REV`"), "{}", out.stderr);
}

#[test]
fn state_compares_two_revisions_with_rev() {
    let history = History::new();
    let project = history.project();
    let out = run_ebb(
        &project,
        &[
            "ls",
            "--rev",
            "v2",
            "--state",
            "v1",
            "-s",
            "state:modified",
            "--resource-type",
            "model",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.snapshot());
    assert_eq!(
        out.stdout, "retail.marts.accounts\n",
        "the uncommitted stg_orders edit is not part of v2"
    );
}

#[test]
fn require_clean_refuses_a_dirty_work_tree() {
    let project = TestProject::copy_of("example_project");
    let dir = project.path();
    let head = git_init(dir);
    append(&dir.join("models/marts/accounts.sql"), "\n-- edited\n");

    let out = project.ebb(&["run", "--require-clean"]);
    insta::assert_snapshot!("require_clean_dirty", out.snapshot());
    assert!(!dir.join("target").exists(), "nothing was compiled or run");
    assert!(
        !dir.join("retail.db").exists(),
        "the warehouse was not touched"
    );

    git(dir, &["checkout", "-q", "--", "."]);
    assert_eq!(project.ebb(&["seed"]).code, 0);
    let out = project.ebb(&["run", "--require-clean", "--exclude", "sync:*"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("target/run_results.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(results["metadata"]["git"]["commit"], head.as_str());
    assert_eq!(results["metadata"]["git"]["dirty"], false);
    assert_eq!(results["metadata"]["git"]["branch"], "main");

    let outside = TestProject::copy_of("example_project");
    let out = outside.ebb(&["run", "--require-clean"]);
    assert_eq!(out.code, 2, "{}", out.snapshot());
    assert!(
        out.stderr.contains("not in a git work tree"),
        "{}",
        out.stderr
    );
}
