//! `ebb seed`, `run` and `test` against real warehouses: SQLite always, Postgres and MariaDB
//! when `EBB_TEST_POSTGRES_URL` / `EBB_TEST_MYSQL_URL` are set (`.ci/run` sets both). Each test
//! works in its own schema and drops it afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{run_ebb, Output, TestProject};

/// A warehouse a test runs against, with a schema of its own.
pub struct Backend {
    pub kind: &'static str,
    pub schema: String,
    /// host, port, user, password, database
    parts: Option<(String, u16, String, String, String)>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn parse_url(url: &str) -> (String, u16, String, String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (auth, rest) = rest.rsplit_once('@').unwrap_or(("", rest));
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, db) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "0"));
    let db = db.split('?').next().unwrap_or_default();
    (
        host.to_string(),
        port.parse().unwrap_or(0),
        user.to_string(),
        password.to_string(),
        db.to_string(),
    )
}

impl Backend {
    /// Returns every backend available here; prints which are skipped and why.
    pub fn all() -> Vec<Backend> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let schema = format!("ebb_t{}_{n}", std::process::id());
        let mut out = vec![Backend {
            kind: "sqlite",
            schema: "main".into(),
            parts: None,
        }];
        for (kind, var) in [
            ("postgres", "EBB_TEST_POSTGRES_URL"),
            ("mysql", "EBB_TEST_MYSQL_URL"),
        ] {
            match std::env::var(var) {
                Ok(url) if !url.is_empty() => out.push(Backend {
                    kind,
                    schema: schema.clone(),
                    parts: Some(parse_url(&url)),
                }),
                // The one place a test speaks: saying why a backend is not exercised.
                #[allow(clippy::print_stderr)]
                _ => eprintln!("skipped: {var} is not set"),
            }
        }
        out
    }

    /// Writes profiles.yml for this backend into the project (profile `retail`, target `ci`).
    pub fn write_profiles(&self, project: &TestProject, profile: &str) {
        let output = match &self.parts {
            None => {
                "      type: sqlite\n      path: warehouse.db\n      schema: main\n".to_string()
            }
            Some((host, port, user, password, db)) => {
                let mut s = format!(
                    "      type: {}\n      host: {host}\n      port: {port}\n      user: {user}\n      password: \"{password}\"\n      schema: {}\n      threads: 4\n",
                    self.kind, self.schema
                );
                if self.kind == "postgres" {
                    s.push_str(&format!("      dbname: {db}\n"));
                }
                s
            }
        };
        project.write(
            "profiles.yml",
            &format!("{profile}:\n  target: ci\n  outputs:\n    ci:\n{output}"),
        );
    }

    /// Drops every schema this backend's test created.
    pub fn cleanup(&self) {
        let Some((host, port, user, password, db)) = &self.parts else {
            return;
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let like = format!("{}%", self.schema);
            if self.kind == "postgres" {
                let opts = sqlx::postgres::PgConnectOptions::new().host(host).port(*port).username(user).password(password).database(db);
                let Ok(pool) = sqlx::PgPool::connect_with(opts).await else { return };
                let names: Vec<String> = sqlx::query_scalar("select schema_name::text from information_schema.schemata where schema_name like $1")
                    .bind(&like)
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default();
                for n in names {
                    let _ = sqlx::raw_sql(&format!("drop schema if exists \"{n}\" cascade")).execute(&pool).await;
                }
            } else {
                let opts = sqlx::mysql::MySqlConnectOptions::new().host(host).port(*port).username(user).password(password);
                let Ok(pool) = sqlx::MySqlPool::connect_with(opts).await else { return };
                let names: Vec<String> = sqlx::query_scalar("select cast(schema_name as char) from information_schema.schemata where schema_name like ?")
                    .bind(&like)
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default();
                for n in names {
                    let _ = sqlx::raw_sql(&format!("drop database if exists `{n}`")).execute(&pool).await;
                }
            }
        });
    }
}

fn ebb(project: &TestProject, args: &[&str]) -> Output {
    run_ebb(project.path(), args, &[])
}

fn results(project: &TestProject) -> serde_json::Value {
    let text = std::fs::read_to_string(project.path().join("target/run_results.json"))
        .expect("run_results.json");
    serde_json::from_str(&text).expect("json")
}

fn status_of<'a>(results: &'a serde_json::Value, name: &str) -> &'a str {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["status"].as_str())
        .unwrap_or("missing")
}

#[test]
fn seed_run_and_test_example_project_on_every_backend() {
    for backend in Backend::all() {
        let project = TestProject::copy_of("example_project");
        backend.write_profiles(&project, "retail");
        let seed = ebb(&project, &["seed"]);
        assert_eq!(seed.code, 0, "[{}] {}", backend.kind, seed.snapshot());
        assert_eq!(status_of(&results(&project), "raw_orders"), "success");
        let run = ebb(&project, &["run", "--exclude", "sync:*"]);
        assert_eq!(run.code, 0, "[{}] {}", backend.kind, run.snapshot());
        let r = results(&project);
        assert_eq!(status_of(&r, "customer_scores"), "success");
        let scores = r["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "customer_scores")
            .unwrap();
        assert_eq!(
            scores["rows_affected"], 60,
            "[{}] one row per customer",
            backend.kind
        );
        assert!(
            r["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["name"] != "int_customer_orders"),
            "ephemeral models are not built"
        );
        let junit = project.path().join("report.xml");
        let test = ebb(&project, &["test", "--junit", junit.to_str().unwrap()]);
        assert_eq!(test.code, 0, "[{}] {}", backend.kind, test.snapshot());
        assert!(
            test.stderr.contains("47 ok"),
            "[{}] {}",
            backend.kind,
            test.stderr
        );
        assert_eq!(
            status_of(&results(&project), "hubspot_contacts"),
            "pass",
            "the sync's contract holds"
        );
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(
            xml.contains("tests=\"47\" failures=\"0\" errors=\"0\""),
            "{xml}"
        );
        backend.cleanup();
    }
}

#[test]
fn a_failing_data_test_exits_1_and_warn_severity_does_not() {
    for backend in Backend::all() {
        let project = TestProject::copy_of("example_project");
        backend.write_profiles(&project, "retail");
        project.write(
            "models/marts/_checks.yml",
            "version: 2\nmodels:\n  - name: accounts\n    columns:\n      - name: account_id\n        tests:\n          - accepted_values:\n              values: ['US', 'CA']\n          - accepted_values:\n              name: accounts_known_countries_warn\n              values: ['US']\n              config: {severity: warn}\n",
        );
        assert_eq!(ebb(&project, &["seed"]).code, 0);
        assert_eq!(ebb(&project, &["run", "--exclude", "sync:*"]).code, 0);
        let junit = project.path().join("report.xml");
        let out = ebb(
            &project,
            &[
                "test",
                "-s",
                "accounts",
                "--junit",
                junit.to_str().unwrap(),
                "--store-failures",
            ],
        );
        assert_eq!(out.code, 1, "[{}] {}", backend.kind, out.snapshot());
        assert!(
            out.stderr
                .contains("FAIL  test  accepted_values_accounts_account_id__US__CA"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("failing row(s) from `models/marts/_checks.yml`"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("WARN  test  accounts_known_countries_warn"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("stored in"),
            "--store-failures keeps the rows: {}",
            out.stderr
        );
        let r = results(&project);
        assert_eq!(status_of(&r, "accounts_known_countries_warn"), "warn");
        assert_eq!(
            status_of(&r, "accepted_values_accounts_account_id__US__CA"),
            "fail"
        );
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains("<failure type=\"data_test\""), "{xml}");
        backend.cleanup();
    }
}

#[test]
fn a_model_with_a_sql_error_fails_alone_and_skips_its_descendants() {
    for backend in Backend::all() {
        let project = TestProject::copy_of("example_project");
        backend.write_profiles(&project, "retail");
        assert_eq!(ebb(&project, &["seed"]).code, 0);
        project.write(
            "models/staging/stg_payments.sql",
            "select\n    payment_id,\n    no_such_column\nfrom {{ ref('raw_payments') }}\n",
        );
        let out = ebb(&project, &["run", "--exclude", "sync:*"]);
        assert_eq!(out.code, 1, "[{}] {}", backend.kind, out.snapshot());
        assert!(
            out.stderr
                .contains("database error in `models/staging/stg_payments.sql`"),
            "[{}] {}",
            backend.kind,
            out.stderr
        );
        assert!(
            out.stderr.to_lowercase().contains("no_such_column"),
            "the database's message: {}",
            out.stderr
        );
        let r = results(&project);
        assert_eq!(status_of(&r, "stg_payments"), "error");
        assert_eq!(
            status_of(&r, "customer_scores"),
            "skipped",
            "downstream through an ephemeral model"
        );
        assert_eq!(
            status_of(&r, "stg_customers"),
            "success",
            "the rest of the run goes on"
        );
        backend.cleanup();
    }
}

#[test]
fn an_unreachable_warehouse_exits_2_and_never_prints_the_password() {
    let project = TestProject::copy_of("example_project");
    project.write(
        "profiles.yml",
        "retail:\n  target: ci\n  outputs:\n    ci:\n      type: postgres\n      host: 127.0.0.1\n      port: 1\n      user: ebb\n      password: \"{{ env_var('EBB_TEST_PASSWORD') }}\"\n      dbname: nowhere\n      schema: s\n",
    );
    let out = run_ebb(
        project.path(),
        &["run"],
        &[("EBB_TEST_PASSWORD", "s3cr3t-Pa55word")],
    );
    assert_eq!(out.code, 2, "{}", out.snapshot());
    assert!(
        out.stderr
            .contains("cannot connect to postgres://ebb@127.0.0.1:1/nowhere"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("hint: check that the warehouse is running"),
        "{}",
        out.stderr
    );
    for (path, bytes) in project.target_files() {
        assert!(
            !String::from_utf8_lossy(&bytes).contains("s3cr3t-Pa55word"),
            "secret in target/{path}"
        );
    }
    assert!(!out.stderr.contains("s3cr3t-Pa55word") && !out.stdout.contains("s3cr3t-Pa55word"));
}

#[test]
fn a_missing_password_variable_is_a_diagnostic_and_nothing_runs() {
    let project = TestProject::copy_of("example_project");
    project.write(
        "profiles.yml",
        "retail:\n  target: ci\n  outputs:\n    ci:\n      type: postgres\n      host: 127.0.0.1\n      user: ebb\n      password: \"{{ env_var('EBB_TEST_UNSET_PASSWORD') }}\"\n      dbname: nowhere\n      schema: s\n",
    );
    let out = project.ebb(&["run"]);
    assert_eq!(out.code, 1, "{}", out.snapshot());
    insta::assert_snapshot!("missing_password_env_var", out.snapshot());
    assert!(
        !project.path().join("target/run_results.json").exists(),
        "nothing ran"
    );
}

#[test]
fn build_runs_everything_in_order_and_a_failing_test_stops_what_is_downstream() {
    for backend in Backend::all() {
        let project = TestProject::copy_of("example_project");
        backend.write_profiles(&project, "retail");
        let out = ebb(&project, &["build", "--exclude", "sync:*"]);
        assert_eq!(out.code, 0, "[{}] {}", backend.kind, out.snapshot());
        assert!(
            out.stderr.contains("52 ok"),
            "[{}] 4 seeds, 6 models, 42 tests: {}",
            backend.kind,
            out.stderr
        );
        // Seeds and tables share connections in one build: each table reports its own rows.
        assert!(
            out.stderr.contains("table customer_scores (60 rows)")
                && out.stderr.contains("table accounts (7 rows)"),
            "[{}] {}",
            backend.kind,
            out.stderr
        );

        project.write(
            "models/staging/_strict.yml",
            "version: 2\nmodels:\n  - name: stg_orders\n    tests:\n      - accepted_values:\n          name: stg_orders_no_returns\n          column_name: status\n          values: ['placed', 'shipped', 'completed']\n",
        );
        let out = ebb(&project, &["build", "--exclude", "sync:*"]);
        assert_eq!(out.code, 1, "[{}] {}", backend.kind, out.snapshot());
        let r = results(&project);
        assert_eq!(status_of(&r, "stg_orders_no_returns"), "fail");
        assert_eq!(
            status_of(&r, "customer_scores"),
            "skipped",
            "built on data that failed a test"
        );
        assert_eq!(status_of(&r, "stg_customers"), "success");
        backend.cleanup();
    }
}

#[test]
fn a_sync_whose_key_is_not_unique_fails_its_contract() {
    for backend in Backend::all() {
        let project = TestProject::copy_of("example_project");
        backend.write_profiles(&project, "retail");
        project.write(
            "syncs/orders.yml",
            "syncs:\n  - name: orders_by_customer\n    model: ref('stg_orders')\n    destination: finance_exports\n    object: orders.csv\n    mode: mirror\n    primary_key: customer_id\n    match_on: customer_id\n    mapping:\n      customer_id: customer_id\n      order_id: order_id\n",
        );
        assert_eq!(ebb(&project, &["seed"]).code, 0);
        let before_run = ebb(&project, &["test", "-s", "sync:orders_by_customer"]);
        assert_eq!(
            before_run.code,
            1,
            "[{}] {}",
            backend.kind,
            before_run.snapshot()
        );
        assert!(
            before_run
                .stderr
                .contains("does not exist in the warehouse: run `ebb run`"),
            "{}",
            before_run.stderr
        );
        assert_eq!(ebb(&project, &["run", "--exclude", "sync:*"]).code, 0);
        let out = ebb(&project, &["test", "-s", "sync:orders_by_customer"]);
        assert_eq!(out.code, 1, "[{}] {}", backend.kind, out.snapshot());
        assert!(out.stderr.contains("primary key `customer_id` of sync `orders_by_customer` must be unique and not null"), "{}", out.stderr);
        assert_eq!(status_of(&results(&project), "orders_by_customer"), "fail");
        backend.cleanup();
    }
}
