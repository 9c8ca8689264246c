//! `ebb plan`: per selected sync, the rows a run would insert, update and delete, with counts
//! and samples, printed and written to target/plan.json. Reads the model relations as they are
//! in the warehouse; sends nothing and writes no state.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::json;

use super::compile::{compile_project, settings_target, write_json};
use super::connect::{connect, runtime, WarehouseArgs};
use super::settings::Settings;
use super::syncs;
use crate::error::Error;
use crate::graph::select;
use crate::output::{Format, Printer};
use crate::sync::engine::{self, Options, Report};

/// Plans the selected syncs.
pub(super) fn run(args: &WarehouseArgs, printer: &Printer) -> Result<(), Error> {
    let settings = Settings::resolve(&args.project)?;
    let compilation = compile_project(&settings, printer)?;
    let graph = compilation
        .graph
        .as_ref()
        .ok_or_else(|| Error::Io("no graph".into()))?;
    let selected = select::select(graph, &settings.select, &settings.exclude)?;
    let ids = syncs::sync_ids(graph, &selected);
    if ids.is_empty() {
        printer.message("no syncs selected; nothing to plan");
        return Ok(());
    }
    let config = compilation
        .project
        .as_ref()
        .map(|p| p.file.state.clone())
        .unwrap_or_default();
    let threads = args
        .threads
        .or(compilation.target.as_ref().map(|t| t.threads))
        .unwrap_or(4)
        .max(1);
    let rt = runtime()?;
    let reports: Vec<Report> = rt.block_on(async {
        let wh = connect(&settings, &compilation, printer, threads, &[]).await?;
        let state = syncs::open_state(&settings, &config, Some(&wh)).await?;
        let options = Options {
            plan: true,
            ..Options::default()
        };
        let prepared = syncs::prepare(
            &settings,
            graph,
            &ids,
            wh.clone(),
            state,
            options,
            Arc::new(AtomicBool::new(false)),
            printer,
        )
        .await;
        let mut set = tokio::task::JoinSet::new();
        let mut reports = Vec::new();
        for id in &ids {
            match prepared.job(graph, id) {
                Ok((job, _)) => {
                    set.spawn(engine::run(prepared.cx.clone(), job, None));
                }
                Err(report) => reports.push(report),
            }
        }
        while let Some(done) = set.join_next().await {
            reports.push(done.map_err(|e| Error::Io(e.to_string()))?);
        }
        wh.close().await;
        Ok::<_, Error>(reports)
    })?;
    let mut reports = reports;
    reports.sort_by(|a, b| a.sync.cmp(&b.sync));

    let target_dir = settings_target(&settings, &compilation);
    let doc = json!({
        "metadata": {
            "ebb_version": env!("CARGO_PKG_VERSION"),
            "generated_at": settings.invocation.generated_at,
            "invocation_id": settings.invocation.invocation_id,
            "git": settings.invocation.git,
        },
        "syncs": reports,
    });
    write_json(&target_dir.join("plan.json"), &doc)?;
    match printer.format {
        Format::Json => printer.json(&doc),
        Format::Text => {
            for r in &reports {
                print_text(printer, r);
            }
            printer.message(&format!(
                "plan written to {}; nothing was sent",
                target_dir.join("plan.json").display()
            ));
        }
    }
    let failed: BTreeSet<&str> = reports
        .iter()
        .filter(|r| matches!(r.outcome, engine::Outcome::Error | engine::Outcome::Guarded))
        .map(|r| r.sync.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "{} sync(s) cannot run as planned: {}",
            failed.len(),
            failed.into_iter().collect::<Vec<_>>().join(", ")
        )))
    }
}

fn print_text(printer: &Printer, r: &Report) {
    printer.data(&format!("sync {} → {}", r.sync, r.destination));
    if r.outcome == engine::Outcome::Error {
        printer.data(&format!(
            "  error: {}",
            r.message.as_deref().unwrap_or("unknown")
        ));
        return;
    }
    printer.data(&format!(
        "  {} rows read: {} to insert, {} to update, {} to delete, {} unchanged",
        r.rows, r.to_insert, r.to_update, r.to_delete, r.unchanged
    ));
    if r.retargeted {
        printer
            .data("  the destination, object, mode or match key changed: every row is sent again");
    }
    if r.null_keys > 0 {
        printer.data(&format!(
            "  {} rows have a null primary key and are skipped",
            r.null_keys
        ));
    }
    if r.outcome == engine::Outcome::Guarded {
        printer.data(&format!("  {}", r.message.as_deref().unwrap_or_default()));
    }
    for (op, samples) in &r.samples {
        for s in samples {
            let mut fields = serde_json::Value::Object(s.fields.clone()).to_string();
            if fields.chars().count() > 120 {
                fields = format!("{}…", fields.chars().take(120).collect::<String>());
            }
            printer.data(&format!("    {op:<6} {:<12} {fields}", s.key));
        }
    }
}
