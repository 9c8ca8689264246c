//! `cargo bench --bench compile`: wall time and peak memory of `ebb compile` on generated
//! layered projects (see benches/generate/mod.rs and /work/shared/BENCHMARKS.md).
//!
//! For each size (1,000, 5,000 and 10,000 models, or `EBB_BENCH_SIZES=1000,10000`) it
//! generates the project in a temporary directory, runs the release binary once to warm up,
//! then `EBB_BENCH_RUNS` (default 5) timed runs, then one more run to measure peak RSS.
//! Every run must exit 0 and leave a target/manifest.json holding exactly N model nodes.
//!
//! Peak RSS is measured without `unsafe` (the crate forbids it): the memory run goes through
//! GNU `/usr/bin/time -f %M`, which reports the child's own `ru_maxrss` from wait4(2). When
//! that is missing, the child's `VmHWM` (the kernel's high-water mark of its RSS) is polled
//! from /proc every millisecond until it exits; that can only miss growth in the last
//! millisecond of its life (`EBB_BENCH_RSS=poll` forces this method). Timed runs spawn ebb
//! directly, so neither method costs them.
//!
//! `EBB_BENCH_KEEP=1` keeps the generated projects (their paths are printed) for profiling;
//! `EBB_BENCH_DIR=/dev/shm` generates them there instead of the system temporary directory
//! (to separate the cost of the disk from ebb's own).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod generate;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const EBB: &str = env!("CARGO_BIN_EXE_ebb");

/// Targets named by the issues: (models, max median seconds, max peak MB).
const TARGETS: [(usize, f64, Option<f64>); 2] = [(1_000, 0.15, None), (10_000, 1.0, Some(300.0))];

struct Row {
    models: usize,
    generate: Duration,
    min: Duration,
    median: Duration,
    peak_mb: f64,
    rss_method: &'static str,
    sql_files: usize,
}

fn main() {
    // `cargo bench` passes `--bench` (and any filter); nothing to parse.
    let sizes = sizes();
    let runs: usize = std::env::var("EBB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5);
    eprintln!("ebb binary: {EBB}");
    eprintln!(
        "sizes: {sizes:?}; runs per size: 1 warm-up + {runs} timed + 1 memory; projects in {}",
        std::env::var("EBB_BENCH_DIR")
            .unwrap_or_else(|_| std::env::temp_dir().display().to_string())
    );

    let mut rows = Vec::new();
    for &models in &sizes {
        rows.push(bench_size(models, runs));
    }

    println!();
    println!(
        "{:>8} | {:>9} | {:>9} | {:>9} | {:>8} | {:<40}",
        "models", "min", "median", "peak RSS", "generate", "target"
    );
    println!("{}", "-".repeat(98));
    let mut missed = 0;
    for row in &rows {
        let target = match TARGETS.iter().find(|t| t.0 == row.models) {
            Some(&(_, secs, mb)) => {
                let time_ok = row.median.as_secs_f64() < secs;
                let mut text = format!(
                    "median < {secs} s: {}",
                    if time_ok { "PASS" } else { "MISS" }
                );
                missed += usize::from(!time_ok);
                if let Some(mb) = mb {
                    let mem_ok = row.peak_mb < mb;
                    missed += usize::from(!mem_ok);
                    text += &format!("; RSS < {mb} MB: {}", if mem_ok { "PASS" } else { "MISS" });
                }
                text
            }
            None => "-".to_string(),
        };
        println!(
            "{:>8} | {:>7.3} s | {:>7.3} s | {:>6.1} MB | {:>6.2} s | {}",
            row.models,
            row.min.as_secs_f64(),
            row.median.as_secs_f64(),
            row.peak_mb,
            row.generate.as_secs_f64(),
            target
        );
    }
    println!();
    for row in &rows {
        println!(
            "{} models: {} SQL files compiled; peak RSS via {}",
            row.models, row.sql_files, row.rss_method
        );
    }
    if missed > 0 {
        println!("{missed} target(s) missed");
    }
}

fn sizes() -> Vec<usize> {
    match std::env::var("EBB_BENCH_SIZES") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|s| {
                let s = s.trim().replace('_', "");
                match s.parse() {
                    Ok(n) if n > 0 => n,
                    _ => panic!("EBB_BENCH_SIZES: `{s}` is not a positive number"),
                }
            })
            .collect(),
        _ => vec![1_000, 5_000, 10_000],
    }
}

fn bench_size(models: usize, runs: usize) -> Row {
    let prefix = format!("ebb-bench-{models}-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    let tmp = match std::env::var_os("EBB_BENCH_DIR") {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .expect("create a temporary directory");
    let dir = tmp.path();
    let started = Instant::now();
    generate::generate(dir, models).expect("generate the project");
    let generate = started.elapsed();

    // Warm-up: also the cold first compile (no target/ yet).
    let cold = timed_run(dir, models);
    eprintln!(
        "{models:>6} models: warm-up (first) run {:.3} s",
        cold.as_secs_f64()
    );

    let mut times: Vec<Duration> = (0..runs)
        .map(|i| {
            let t = timed_run(dir, models);
            eprintln!("{models:>6} models: run {} {:.3} s", i + 1, t.as_secs_f64());
            t
        })
        .collect();
    times.sort();
    let min = times[0];
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2
    };

    let (peak_kb, rss_method) = memory_run(dir, models);
    let peak_mb = peak_kb as f64 / 1024.0;
    eprintln!("{models:>6} models: peak RSS {peak_mb:.1} MB ({rss_method})");

    let sql_files = count_files(&dir.join("target/compiled"));
    if std::env::var_os("EBB_BENCH_KEEP").is_some() {
        let kept = tmp.keep();
        eprintln!("{models:>6} models: project kept in {}", kept.display());
    }
    Row {
        models,
        generate,
        min,
        median,
        peak_mb,
        rss_method,
        sql_files,
    }
}

fn ebb_command(dir: &Path) -> Command {
    let mut cmd = Command::new(EBB);
    cmd.arg("compile")
        .arg("--project-dir")
        .arg(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// Runs `ebb compile` once, checks it, and returns its wall time.
fn timed_run(dir: &Path, models: usize) -> Duration {
    remove_manifest(dir);
    let mut cmd = ebb_command(dir);
    let started = Instant::now();
    let out = cmd.output().expect("spawn ebb");
    let elapsed = started.elapsed();
    check(dir, models, out.status, &out.stdout, &out.stderr);
    elapsed
}

/// Runs `ebb compile` once more for its peak RSS in KiB; returns it with the method used.
fn memory_run(dir: &Path, models: usize) -> (u64, &'static str) {
    remove_manifest(dir);
    let time = Path::new("/usr/bin/time");
    let force_poll = std::env::var("EBB_BENCH_RSS").is_ok_and(|v| v == "poll");
    if time.exists() && !force_poll {
        let report = tempfile::NamedTempFile::new()
            .expect("create a temporary file")
            .into_temp_path();
        let out = Command::new(time)
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&report)
            .arg(EBB)
            .arg("compile")
            .arg("--project-dir")
            .arg(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("spawn /usr/bin/time");
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        // GNU time writes "Command exited with non-zero status N" before the figure on failure.
        if let Some(kb) = text
            .lines()
            .last()
            .and_then(|l| l.trim().parse::<u64>().ok())
        {
            check(dir, models, out.status, &out.stdout, &out.stderr);
            return (kb, "/usr/bin/time (wait4 ru_maxrss)");
        }
        eprintln!("/usr/bin/time gave no figure ({text:?}); polling VmHWM instead");
        remove_manifest(dir);
    }
    let mut child = ebb_command(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ebb");
    let status_path = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak = 0u64;
    // ebb writes little output; the pipes will not fill before it exits.
    let status = loop {
        if let Some(kb) = vm_hwm_kb(&status_path) {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait().expect("wait for ebb") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let out = child.wait_with_output().expect("collect ebb output");
    check(dir, models, status, &out.stdout, &out.stderr);
    (peak, "polling /proc/<pid>/status VmHWM every 1 ms")
}

fn vm_hwm_kb(status: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn remove_manifest(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("target/manifest.json"));
}

/// Fails loudly unless the run exited 0 and wrote a manifest with `models` model nodes.
fn check(dir: &Path, models: usize, status: ExitStatus, stdout: &[u8], stderr: &[u8]) {
    let show = || {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            tail(stdout),
            tail(stderr)
        )
    };
    assert!(
        status.success(),
        "ebb compile of {models} models failed ({status}) in {}\n{}",
        dir.display(),
        show()
    );
    let path = dir.join("target/manifest.json");
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), show()));
    let manifest: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let nodes = manifest["nodes"]
        .as_object()
        .unwrap_or_else(|| panic!("{}: no `nodes` object", path.display()));
    let found = nodes
        .values()
        .filter(|n| n["resource_type"] == "model")
        .count();
    assert_eq!(
        found,
        models,
        "{}: expected {models} model nodes, found {found}",
        path.display()
    );
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => n += 1,
                Err(_) => {}
            }
        }
    }
    n
}
