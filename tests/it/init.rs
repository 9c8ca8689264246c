//! `ebb init`: the starter project compiles, and init refuses to overwrite.

use crate::common::run_ebb;

#[test]
fn init_creates_a_project_that_compiles() {
    let root = tempfile::tempdir().unwrap();
    let out = run_ebb(root.path(), &["init", "shop-analytics"], &[]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let dir = root.path().join("shop-analytics");
    let project = std::fs::read_to_string(dir.join("ebb_project.yml")).unwrap();
    assert!(project.contains("name: shop_analytics"), "{project}");
    assert!(std::fs::read_to_string(dir.join(".gitignore"))
        .unwrap()
        .contains(".ebb/"));
    let compiled = run_ebb(&dir, &["compile"], &[]);
    assert_eq!(compiled.code, 0, "{}", compiled.snapshot());
    assert!(
        compiled.stderr.contains("compiled 2 models, 1 seed"),
        "{}",
        compiled.stderr
    );
    let listed = run_ebb(&dir, &["ls", "--resource-type", "model"], &[]);
    insta::assert_snapshot!("init_ls", listed.snapshot());
}

#[test]
fn init_refuses_a_non_empty_directory() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("keep.txt"), "x").unwrap();
    let out = run_ebb(root.path(), &["init", "."], &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("already exists and is not empty"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        1,
        "nothing written"
    );
}
