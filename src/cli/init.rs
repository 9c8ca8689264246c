//! `ebb init DIR`: write the starter project from templates/init/ into a new directory.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::error::Error;
use crate::output::Printer;

/// Flags of `ebb init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create; it must not exist or be empty
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Project name (default: the directory's name)
    #[arg(long)]
    pub name: Option<String>,
}

/// The starter project, embedded in the binary so `ebb init` works from anywhere.
const FILES: &[(&str, &str)] = &[
    (
        ".gitignore",
        include_str!("../../templates/init/.gitignore"),
    ),
    ("README.md", include_str!("../../templates/init/README.md")),
    (
        "ebb_project.yml",
        include_str!("../../templates/init/ebb_project.yml"),
    ),
    (
        "profiles.yml",
        include_str!("../../templates/init/profiles.yml"),
    ),
    (
        "macros/README.md",
        include_str!("../../templates/init/macros/README.md"),
    ),
    (
        "models/schema.yml",
        include_str!("../../templates/init/models/schema.yml"),
    ),
    (
        "models/staging/stg_people.sql",
        include_str!("../../templates/init/models/staging/stg_people.sql"),
    ),
    (
        "models/marts/people_summary.sql",
        include_str!("../../templates/init/models/marts/people_summary.sql"),
    ),
    (
        "seeds/people.csv",
        include_str!("../../templates/init/seeds/people.csv"),
    ),
    (
        "tests/.gitkeep",
        include_str!("../../templates/init/tests/.gitkeep"),
    ),
];

/// The name the template files use for the project.
const TEMPLATE_NAME: &str = "my_project";

/// Turns a directory name into a project name: lower case letters, digits and underscores,
/// starting with a letter.
fn project_name(dir: &Path) -> String {
    let base = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    name = name.trim_matches('_').to_string();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("ebb_{name}");
    }
    name.trim_end_matches('_').to_string()
}

/// Runs `ebb init`.
pub(super) fn run(args: &InitArgs, printer: &Printer) -> Result<(), Error> {
    let dir = &args.dir;
    if dir.exists() {
        let mut entries = fs_err::read_dir(dir).map_err(|e| Error::Io(e.to_string()))?;
        if entries.next().is_some() {
            return Err(Error::usage(
                format!("`{}` already exists and is not empty", dir.display()),
                "choose a new directory: `ebb init my_project`",
            ));
        }
    }
    let name = match &args.name {
        Some(n)
            if n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && n.starts_with(|c: char| c.is_ascii_alphabetic()) =>
        {
            n.clone()
        }
        Some(n) => {
            return Err(Error::usage(
                format!("`{n}` is not a valid project name"),
                "use letters, digits and underscores, starting with a letter",
            ))
        }
        None => {
            fs_err::create_dir_all(dir).map_err(|e| Error::Io(e.to_string()))?;
            project_name(dir)
        }
    };
    for (rel, text) in FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).map_err(|e| Error::Io(e.to_string()))?;
        }
        fs_err::write(&path, text.replace(TEMPLATE_NAME, &name))
            .map_err(|e| Error::Io(e.to_string()))?;
    }
    printer.message(&format!("created project `{name}` in `{}`", dir.display()));
    printer.message(&format!(
        "next: cd {} && ebb compile && ebb ls",
        dir.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_directories() {
        assert_eq!(project_name(Path::new("/nonexistent/My-Shop")), "my_shop");
        assert_eq!(
            project_name(Path::new("/nonexistent/2024 data")),
            "ebb_2024_data"
        );
    }
}
