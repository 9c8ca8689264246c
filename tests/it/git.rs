//! The manifest records the git commit and dirty flag of the work tree, read with gix from a
//! real repository made in the test.

use std::path::Path;
use std::process::Command;

use crate::common::TestProject;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn manifest_git(project: &TestProject) -> serde_json::Value {
    let out = project.ebb(&["compile"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let text = std::fs::read_to_string(project.path().join("target/manifest.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["metadata"]["git"].clone()
}

#[test]
fn manifest_records_commit_and_dirty_flag() {
    let project = TestProject::copy_of("example_project");
    let dir = project.path();
    project.write(".gitignore", "target/\n*.db\n");
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "first"]);
    let head = git(dir, &["rev-parse", "HEAD"]);

    let clean = manifest_git(&project);
    assert_eq!(clean["commit"], head.as_str());
    assert_eq!(clean["branch"], "main");
    assert_eq!(
        clean["dirty"], false,
        "target/ is ignored, so compiling leaves the tree clean"
    );

    let original = std::fs::read_to_string(dir.join("models/marts/accounts.sql")).unwrap();
    project.write(
        "models/marts/accounts.sql",
        &format!("{original}\n-- edited\n"),
    );
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
