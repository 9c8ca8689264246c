//! `ebb status`: the recent runs of each sync from the run history in the state file, and with
//! `--rejected SYNC` the rows a destination rejected and why. Needs no warehouse.

use clap::Args;
use serde_json::json;

use super::settings::Settings;
use super::syncs;
use super::ProjectArgs;
use crate::error::Error;
use crate::output::{Format, Printer};
use crate::project::ProjectSource;
use crate::spec::project::{ProjectFile, StateConfig, PROJECT_FILES};
use crate::sync::state::StateStore;

/// Flags of `ebb status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// How many recent runs to show per sync
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub limit: usize,
    /// List the rows this sync's destination rejected, with the reasons
    #[arg(long, value_name = "SYNC")]
    pub rejected: Option<String>,
}

/// Prints the run history.
pub(super) fn run(args: &StatusArgs, printer: &Printer) -> Result<(), Error> {
    let settings = Settings::resolve(&args.project)?;
    let mut file = None;
    for name in PROJECT_FILES {
        if let Some(bytes) = settings
            .source
            .read(name)
            .map_err(|e| Error::Io(format!("reading `{name}`: {e}")))?
        {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let parsed: ProjectFile = serde_yaml::from_str(&text).map_err(|e| {
                Error::usage(
                    format!("`{name}` cannot be read: {e}"),
                    "run `ebb compile` to see the problem with its line",
                )
            })?;
            file = Some(parsed);
            break;
        }
    }
    let Some(file) = file else {
        return Err(Error::usage(
            format!("no ebb_project.yml in `{}`", settings.project_dir.display()),
            "run ebb status in a project directory, or pass --project-dir",
        ));
    };
    let rt = super::connect::runtime()?;
    let (state, wh) = rt.block_on(async {
        match &file.state {
            StateConfig::File { .. } => {
                Ok::<_, Error>((syncs::open_state(&settings, &file.state, None).await?, None))
            }
            StateConfig::Warehouse { .. } => {
                // State in the warehouse: compile to find the target, then connect.
                let compilation = super::compile::compile_project(&settings, printer)?;
                let wh = super::connect::connect(&settings, &compilation, printer, 1, &[]).await?;
                Ok((
                    syncs::open_state(&settings, &file.state, Some(&wh)).await?,
                    Some(wh),
                ))
            }
        }
    })?;
    let result = rt.block_on(show(args, &state, printer));
    if let Some(wh) = wh {
        rt.block_on(wh.close());
    }
    result
}

async fn show(args: &StatusArgs, state: &StateStore, printer: &Printer) -> Result<(), Error> {
    if let Some(sync) = &args.rejected {
        let rows = state.rejections(sync, 1000).await.map_err(Error::Io)?;
        match printer.format {
            Format::Json => printer.json(&json!({
                "sync": sync,
                "rejected": rows.iter().map(|(k, r, at)| json!({"key": k, "reason": r, "at": at})).collect::<Vec<_>>(),
            })),
            Format::Text => {
                if rows.is_empty() {
                    printer.message(&format!("sync `{sync}` has no rejected rows"));
                }
                for (key, reason, at) in rows {
                    printer.data(&format!("{key:<16} {at}  {reason}"));
                }
            }
        }
        return Ok(());
    }
    let runs = state.history(args.limit.max(1)).await.map_err(Error::Io)?;
    match printer.format {
        Format::Json => printer.json(&json!({ "runs": runs })),
        Format::Text => {
            if runs.is_empty() {
                printer.message(&format!("no sync has run yet ({})", state.describe()));
                return Ok(());
            }
            printer.data(&format!(
                "{:<24} {:<20} {:<8} {:<11} {:>8} {:>8} {:>8} {:>8} {:>8}  error",
                "sync",
                "started",
                "commit",
                "status",
                "inserted",
                "updated",
                "deleted",
                "rejected",
                "seconds"
            ));
            for r in runs {
                let commit = r.commit.as_deref().map_or("-".to_string(), |c| {
                    let short: String = c.chars().take(7).collect();
                    if r.dirty == Some(true) {
                        format!("{short}+")
                    } else {
                        short
                    }
                });
                printer.data(&format!(
                    "{:<24} {:<20} {:<8} {:<11} {:>8} {:>8} {:>8} {:>8} {:>8.2}  {}",
                    r.sync,
                    r.started_at,
                    commit,
                    r.status,
                    r.inserted,
                    r.updated,
                    r.deleted,
                    r.rejected,
                    r.duration,
                    r.error.unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}
