//! `ebb docs generate`: lineage artifacts (snapshots), OpenLineage events validated against the
//! specification's JSON Schemas, the site opened in headless Chromium, and no secret anywhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{repo_root, run_ebb, TestProject};

fn generate() -> TestProject {
    let project = TestProject::copy_of("example_project");
    let out = project.ebb(&["docs", "generate"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    project
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("json")
}

#[test]
fn lineage_json_and_mermaid_match_snapshots() {
    let project = generate();
    let lineage = read_json(&project.path().join("target/lineage.json"));
    let edges = lineage["column_edges"].as_array().unwrap();
    // Source column → model → destination field, end to end.
    let to_hubspot = edges
        .iter()
        .find(|e| {
            e["to_node"] == "destination.retail.hubspot"
                && e["to_column"] == "contacts.lifetime_value"
        })
        .expect("edge to the HubSpot field");
    assert_eq!(to_hubspot["from_node"], "model.retail.customer_scores");
    assert_eq!(to_hubspot["via"], "sync.retail.hubspot_contacts");
    assert!(edges
        .iter()
        .any(|e| e["to_node"] == "model.retail.stg_payments"
            && e["to_column"] == "amount"
            && e["from_node"] == "seed.retail.raw_payments"
            && e["from_column"] == "amount_cents"));
    assert!(edges
        .iter()
        .any(|e| e["type"] == "INDIRECT" && e["subtype"] == "JOIN"));
    assert!(edges
        .iter()
        .any(|e| e["to_column"] == "contacts.phone" && e["masked"] == true));
    assert_eq!(
        lineage["unresolved"],
        serde_json::json!({}),
        "every column of the example resolves"
    );
    insta::assert_json_snapshot!("lineage_json", lineage, {
        ".metadata.generated_at" => "[TIME]",
        ".metadata.invocation_id" => "[ID]",
        ".metadata.ebb_version" => "[VERSION]",
        ".metadata.git" => "[GIT]",
    });
    insta::assert_snapshot!(
        "lineage_mermaid",
        std::fs::read_to_string(project.path().join("target/lineage.mmd")).unwrap()
    );
    let dot = std::fs::read_to_string(project.path().join("target/lineage.dot")).unwrap();
    assert!(
        dot.contains("\"sync.retail.hubspot_contacts\" -> \"destination.retail.hubspot\";"),
        "{dot}"
    );
}

/// Builds a validator for a facet schema, pointing its reference to the core schema's
/// `DatasetFacet` at a local copy (shared/openlineage/README.md says to resolve it so).
fn facet_validator(file: &str, def: &str, core: &serde_json::Value) -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo_root().join("../shared/openlineage").join(file))
        .expect("facet schema");
    let mut schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let base = core["definitions"]["BaseFacet"].clone();
    schema["$defs"]["LocalDatasetFacet"] = base;
    let fixed = schema.to_string().replace(
        "https://openlineage.io/spec/1-0-2/OpenLineage.json#/$defs/DatasetFacet",
        "#/$defs/LocalDatasetFacet",
    );
    let mut schema: serde_json::Value = serde_json::from_str(&fixed).unwrap();
    schema["$ref"] = serde_json::json!(format!("#/$defs/{def}"));
    jsonschema::validator_for(&schema).expect("facet schema compiles")
}

#[test]
fn openlineage_events_validate_against_the_specification() {
    let project = generate();
    let core_text =
        std::fs::read_to_string(repo_root().join("../shared/openlineage/OpenLineage.json"))
            .expect("../shared/openlineage/OpenLineage.json");
    let core: serde_json::Value = serde_json::from_str(&core_text).unwrap();
    let event_validator = jsonschema::validator_for(&core).expect("core schema compiles");
    let schema_validator = facet_validator("SchemaDatasetFacet.json", "SchemaDatasetFacet", &core);
    let lineage_validator = facet_validator(
        "ColumnLineageDatasetFacet.json",
        "ColumnLineageDatasetFacet",
        &core,
    );
    let text = std::fs::read_to_string(project.path().join("target/openlineage.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one event per line"))
        .collect();
    assert_eq!(events.len(), 13, "8 models and 5 syncs");
    for event in &events {
        let errors: Vec<String> = event_validator
            .iter_errors(event)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not validate: {errors:?}",
            event["job"]["name"]
        );
        for ds in event["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .chain(event["outputs"].as_array().unwrap())
        {
            if let Some(f) = ds["facets"].get("schema") {
                assert!(
                    schema_validator.is_valid(f),
                    "schema facet of {}",
                    ds["name"]
                );
            }
            if let Some(f) = ds["facets"].get("columnLineage") {
                let errors: Vec<String> = lineage_validator
                    .iter_errors(f)
                    .map(|e| e.to_string())
                    .collect();
                assert!(
                    errors.is_empty(),
                    "columnLineage of {}: {errors:?}",
                    ds["name"]
                );
            }
        }
    }
    // The validator does reject a broken event.
    let mut broken = events[0].clone();
    broken.as_object_mut().unwrap().remove("producer");
    assert!(
        !event_validator.is_valid(&broken),
        "an event without `producer` must fail validation"
    );
    let sync = events
        .iter()
        .find(|e| e["job"]["name"] == "sync.retail.hubspot_contacts")
        .expect("an event per sync");
    assert_eq!(sync["outputs"][0]["namespace"], "hubspot://hubspot");
    assert_eq!(sync["outputs"][0]["name"], "contacts");
    let churn =
        &sync["outputs"][0]["facets"]["columnLineage"]["fields"]["churn_risk"]["inputFields"][0];
    assert_eq!(churn["field"], "churn_risk_score");
    assert_eq!(churn["transformations"][0]["subtype"], "TRANSFORMATION");
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        let out = Command::new("which").arg(name).output().ok()?;
        out.status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
}

fn headless(browser: &Path, profile: &Path, extra: &[String], url: &str) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--window-size=1600,1000")
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs")
}

#[test]
fn the_site_shows_syncs_and_destinations_in_headless_chromium() {
    let Some(browser) = chromium() else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: chromium is not installed (.ci/run installs it)");
        }
        return;
    };
    let project = generate();
    let index = project.path().join("target/docs/index.html");
    let url = format!(
        "file://{}#focus=sync.retail.hubspot_contacts",
        index.display()
    );
    let profile = tempfile::tempdir().unwrap();
    let dom = headless(
        &browser,
        profile.path(),
        &["--virtual-time-budget=2000".into(), "--dump-dom".into()],
        &url,
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    for id in [
        "sync.retail.hubspot_contacts",
        "sync.retail.salesforce_accounts",
        "destination.retail.hubspot",
        "destination.retail.salesforce",
        "destination.retail.finance_exports",
    ] {
        assert!(dom.contains(&format!("data-id=\"{id}\"")), "{id} is drawn");
    }
    assert!(
        dom.contains("data-focus=\"sync.retail.hubspot_contacts\""),
        "the script focused the node from the URL"
    );
    assert!(
        dom.contains("class=\"node sync focused\""),
        "the focused sync is highlighted"
    );
    assert!(
        dom.contains("class=\"node destination dimmed\""),
        "unrelated destinations are dimmed"
    );
    // Keep a screenshot as a test artifact.
    let artifacts = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("docs-lineage.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        &browser,
        profile.path(),
        &[format!("--screenshot={}", shot.display())],
        &url,
    );
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "screenshot written to {}",
        shot.display()
    );
    let page = std::fs::read_to_string(
        project
            .path()
            .join("target/docs/nodes/sync.retail.hubspot_contacts.html"),
    )
    .unwrap();
    assert!(
        page.contains("churn_risk") && page.contains("masked"),
        "the sync page shows its field mapping"
    );
}

#[test]
fn secrets_never_reach_target() {
    let project = TestProject::copy_of("example_project");
    let secrets = [
        ("HUBSPOT_TOKEN", "pat-na1-SECRET-11111111"),
        ("SALESFORCE_ACCESS_TOKEN", "00DSECRET22222222"),
        ("LOYALTY_WEBHOOK_TOKEN", "whsec-SECRET-3333"),
    ];
    for args in [&["compile"][..], &["docs", "generate"][..]] {
        let out = run_ebb(project.path(), args, &secrets);
        assert_eq!(out.code, 0, "{}", out.snapshot());
        for (_, secret) in secrets {
            assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
        }
    }
    let files = project.target_files();
    assert!(files.len() > 40);
    for (path, bytes) in files {
        let text = String::from_utf8_lossy(&bytes);
        for (_, secret) in secrets {
            assert!(!text.contains(secret), "secret found in target/{path}");
        }
    }
}
