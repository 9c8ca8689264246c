//! `cargo bench --bench diff`: wall time and peak memory of `ebb diff` between two git
//! revisions of a generated project (benches/generate/mod.rs), the target of issue #7
//! (10,000 models in under 2 seconds).
//!
//! For each size (10,000 models, or `EBB_BENCH_SIZES=1000,10000`) it generates the project in a
//! temporary directory, adds two syncs and a destination, commits it (`base`), then makes a
//! pull request's worth of changes and commits them on a branch (`head`): 20 model files
//! edited, a macro edited (so every model calling it changes), a model added and an unused one
//! removed, a sync's mapping and mode changed. It then runs the release binary's
//! `ebb diff --base base --head head --output json` once to warm up, `EBB_BENCH_RUNS`
//! (default 5) timed runs, and one more under GNU `/usr/bin/time` for peak RSS. Every run must
//! exit 0 and report the expected changes.
//!
//! `EBB_BENCH_KEEP=1` keeps the generated repositories (their paths are printed);
//! `EBB_BENCH_DIR=/dev/shm` generates them there.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod generate;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EBB: &str = env!("CARGO_BIN_EXE_ebb");

/// The target named by the issue: (models, max median seconds).
const TARGET: (usize, f64) = (10_000, 2.0);

const DESTINATIONS: &str =
    "destinations:\n  crm:\n    type: http\n    url: \"http://127.0.0.1:9/hook\"\n";

fn syncs(a: &str, b: &str, mode: &str, category_field: &str) -> String {
    format!(
        "syncs:\n  - name: crm_a\n    model: ref('{a}')\n    destination: crm\n    object: accounts\n    mode: {mode}\n    primary_key: id\n    match_on: id\n    mapping:\n      id: id\n      {category_field}: category\n  - name: crm_b\n    model: ref('{b}')\n    destination: crm\n    object: leads\n    mode: upsert\n    primary_key: id\n    match_on: id\n    mapping:\n      id: id\n      created: created_at\n"
    )
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Generates the project, commits it as `base`, changes it and commits that as `head`.
fn prepare(dir: &Path, models: usize) {
    generate::generate(dir, models).expect("generate the project");
    let name = |i: usize| generate::model_name(i, models);
    std::fs::write(dir.join(".gitignore"), "target/\n").expect("write");
    std::fs::write(dir.join("destinations.yml"), DESTINATIONS).expect("write");
    std::fs::create_dir_all(dir.join("syncs")).expect("mkdir");
    let sync_file = dir.join("syncs/crm.yml");
    std::fs::write(
        &sync_file,
        syncs(&name(models - 2), &name(models - 3), "upsert", "segment"),
    )
    .expect("write");
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "base"]);
    git(dir, &["tag", "base"]);

    git(dir, &["checkout", "-q", "-b", "head"]);
    for k in 0..20 {
        let path = dir.join(generate::model_path(k * (models / 20), models));
        let mut sql = std::fs::read_to_string(&path).expect("read a model");
        sql.push_str("\n-- reviewed\n");
        std::fs::write(&path, sql).expect("write");
    }
    let macro_path = dir.join("macros/safe_divide.sql");
    let mut text = std::fs::read_to_string(&macro_path).expect("read the macro");
    text.push_str("\n{# edited #}\n");
    std::fs::write(&macro_path, text).expect("write");
    std::fs::remove_file(dir.join(generate::model_path(models - 1, models))).expect("remove");
    std::fs::write(
        dir.join("models/added_model.sql"),
        format!("select * from {{{{ ref('{}') }}}}\n", name(0)),
    )
    .expect("write");
    std::fs::write(
        &sync_file,
        syncs(&name(models - 2), &name(models - 3), "mirror", "category"),
    )
    .expect("write");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "head"]);
}

fn diff_command(dir: &Path) -> Command {
    let mut cmd = Command::new(EBB);
    cmd.args([
        "diff", "--base", "base", "--head", "head", "--output", "json",
    ])
    .arg("--project-dir")
    .arg(dir)
    .env("NO_COLOR", "1")
    .stdin(Stdio::null());
    cmd
}

/// Fails loudly unless the run exited 0 and reported the changes `prepare` made.
fn check(dir: &Path, out: &Output) {
    assert!(
        out.status.success(),
        "ebb diff failed in {}: {}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("ebb diff --output json prints JSON");
    let models = &report["summary"]["models"];
    assert_eq!(models["added"], 1, "{models}");
    assert_eq!(models["removed"], 1, "{models}");
    let modified = models["modified"].as_u64().unwrap_or(0);
    assert!(
        modified >= 20,
        "20 edited models and the macro's callers: {models}"
    );
    assert_eq!(report["summary"]["syncs"]["modified"], 1);
}

fn timed_run(dir: &Path) -> Duration {
    let started = Instant::now();
    let out = diff_command(dir).output().expect("spawn ebb");
    let elapsed = started.elapsed();
    check(dir, &out);
    elapsed
}

/// Peak RSS in MB through GNU time (`wait4`'s `ru_maxrss`), when it is installed.
fn peak_rss_mb(dir: &Path) -> Option<f64> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return None;
    }
    let report = tempfile::NamedTempFile::new()
        .expect("create a temporary file")
        .into_temp_path();
    let cmd = diff_command(dir);
    let out = Command::new(time)
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("spawn /usr/bin/time");
    check(dir, &out);
    let text = std::fs::read_to_string(&report).ok()?;
    let kb: f64 = text.lines().last()?.trim().parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("EBB_BENCH_SIZES")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            v.split(',')
                .map(|s| {
                    s.trim()
                        .replace('_', "")
                        .parse()
                        .expect("a number of models")
                })
                .collect()
        })
        .unwrap_or_else(|| vec![TARGET.0]);
    let runs: usize = std::env::var("EBB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5);
    eprintln!("ebb binary: {EBB}");
    println!();
    println!(
        "{:>8} | {:>9} | {:>9} | {:>9} | target",
        "models", "min", "median", "peak RSS"
    );
    for models in sizes {
        let mut builder = tempfile::Builder::new();
        builder.prefix("ebb-bench-diff-");
        let tmp = match std::env::var_os("EBB_BENCH_DIR") {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .expect("create a temporary directory");
        let dir = tmp.path();
        let started = Instant::now();
        prepare(dir, models);
        eprintln!(
            "{models:>6} models: repository with two revisions made in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let warm = timed_run(dir);
        eprintln!("{models:>6} models: warm-up {:.3} s", warm.as_secs_f64());
        let mut times: Vec<Duration> = (0..runs)
            .map(|i| {
                let t = timed_run(dir);
                eprintln!("{models:>6} models: run {} {:.3} s", i + 1, t.as_secs_f64());
                t
            })
            .collect();
        times.sort();
        let median = if times.len() % 2 == 1 {
            times[times.len() / 2]
        } else {
            (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2
        };
        let rss = peak_rss_mb(dir).map_or("n/a".to_string(), |mb| format!("{mb:.1} MB"));
        let target = if models == TARGET.0 {
            let ok = median.as_secs_f64() < TARGET.1;
            format!(
                "median < {} s: {}",
                TARGET.1,
                if ok { "PASS" } else { "MISS" }
            )
        } else {
            "-".into()
        };
        println!(
            "{models:>8} | {:>7.3} s | {:>7.3} s | {rss:>9} | {target}",
            times[0].as_secs_f64(),
            median.as_secs_f64(),
        );
        if std::env::var_os("EBB_BENCH_KEEP").is_some() {
            let kept = tmp.keep();
            eprintln!("{models:>6} models: repository kept in {}", kept.display());
        }
    }
}
