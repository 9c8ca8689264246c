//! `ebb docs generate` (lineage artifacts and the static site) and `ebb docs serve`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use super::compile::{compile_project, settings_target, write_artifacts, write_json};
use super::settings::Settings;
use super::{ProjectArgs, RevArgs};
use crate::error::Error;
use crate::graph::select;
use crate::lineage::{export, openlineage, project::ProjectLineage, site};
use crate::output::{Format, Printer};

/// Subcommands of `ebb docs`.
#[derive(Debug, Subcommand)]
pub enum DocsCommand {
    /// Write lineage (JSON, Mermaid, DOT, OpenLineage) and the docs site under target/
    Generate(GenerateArgs),
    /// Serve target/docs on localhost
    Serve(ServeArgs),
}

/// Flags of `ebb docs generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub rev: RevArgs,
}

/// Flags of `ebb docs serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory holding ebb_project.yml (or dbt_project.yml)
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub project_dir: PathBuf,
    /// Port to listen on, on 127.0.0.1 (0 picks a free one)
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

/// Runs `ebb docs ...`.
pub(super) fn run(command: &DocsCommand, printer: &Printer) -> Result<(), Error> {
    match command {
        DocsCommand::Generate(args) => generate(args, printer),
        DocsCommand::Serve(args) => serve(args, printer),
    }
}

fn generate(args: &GenerateArgs, printer: &Printer) -> Result<(), Error> {
    let settings = Settings::resolve(&args.project)?.at_revision(args.rev.rev.as_deref())?;
    let compilation = compile_project(&settings, printer)?;
    let (Some(graph), Some(project), Some(target)) = (
        &compilation.graph,
        &compilation.project,
        &compilation.target,
    ) else {
        return Err(Error::Io("compilation produced no graph".into()));
    };
    let selected = select::select(graph, &[], &[])?;
    let dir = settings_target(&settings, &compilation);
    write_artifacts(dir.clone(), &compilation, &settings, &selected)?;
    let lineage = ProjectLineage::compute(graph, &target.adapter_type, None);
    let edges = export::column_edges(graph, &lineage);
    let inv = &settings.invocation;
    let metadata = json!({
        "ebb_schema_version": 1,
        "ebb_version": env!("CARGO_PKG_VERSION"),
        "generated_at": inv.generated_at,
        "invocation_id": inv.invocation_id,
        "project_name": project.file.name,
        "git": inv.git,
    });
    write_json(
        &dir.join("lineage.json"),
        &export::lineage_json(graph, &lineage, metadata),
    )?;
    let write = |name: &str, text: String| {
        crate::artifacts::write_atomic(&dir.join(name), text.as_bytes()).map_err(Error::from)
    };
    write("lineage.mmd", export::mermaid(graph))?;
    write("lineage.dot", export::dot(graph))?;
    let warehouse_ns = format!(
        "{}://{}.{}",
        target.adapter_type, target.profile_name, target.name
    );
    let job_ns = format!("ebb://{}", project.file.name);
    let events = openlineage::events(
        graph,
        &lineage,
        &edges,
        &warehouse_ns,
        &job_ns,
        &inv.generated_at,
        &inv.invocation_id,
    );
    let mut lines = String::new();
    for e in &events {
        lines.push_str(&e.to_string());
        lines.push('\n');
    }
    write("openlineage.jsonl", lines)?;
    let commit = inv.git.as_ref().and_then(|g| g.commit.as_deref());
    let info = site::SiteInfo {
        project: &project.file.name,
        generated_at: &inv.generated_at,
        commit,
        dirty: inv.git.as_ref().is_some_and(|g| g.dirty),
    };
    let pages = site::generate(&dir.join("docs"), graph, &lineage, &edges, &info)?;
    match printer.format {
        Format::Json => printer.json(&json!({"success": true, "pages": pages, "column_edges": edges.len(), "openlineage_events": events.len(), "docs": dir.join("docs").display().to_string()})),
        Format::Text => printer.message(&format!(
            "wrote {pages} pages to `{}`, {} column edges to lineage.json, {} OpenLineage events",
            dir.join("docs").display(),
            edges.len(),
            events.len()
        )),
    }
    Ok(())
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn serve(args: &ServeArgs, printer: &Printer) -> Result<(), Error> {
    let root = args.project_dir.join("target/docs");
    if !root.join("index.html").exists() {
        return Err(Error::usage(
            format!("no docs site in `{}`", root.display()),
            "run `ebb docs generate` first",
        ));
    }
    let listener = TcpListener::bind(("127.0.0.1", args.port)).map_err(|e| Error::Unavailable {
        message: format!("cannot listen on 127.0.0.1:{}: {e}", args.port),
        hint: Some("pick another port with --port".into()),
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Io(e.to_string()))?;
    printer.message(&format!(
        "serving `{}` on http://{addr}/ (Ctrl-C to stop)",
        root.display()
    ));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            continue;
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .split(['?', '#'])
            .next()
            .unwrap_or("/")
            .to_string();
        let rel = if path == "/" {
            "index.html".to_string()
        } else {
            path.trim_start_matches('/').to_string()
        };
        let safe = !rel.split('/').any(|p| p == ".." || p.is_empty());
        let file = root.join(&rel);
        let response = match (safe, fs_err::read(&file)) {
            (true, Ok(body)) => {
                let mut head = format!("HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", content_type(&file), body.len()).into_bytes();
                head.extend(body);
                head
            }
            _ => {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
                    .to_vec()
            }
        };
        let _ = stream.write_all(&response);
    }
    Ok(())
}
