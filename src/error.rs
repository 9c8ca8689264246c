//! Error classes and their exit codes: the one place that decides how ebb exits.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done, nothing wrong |
//! | 1 | ebb ran and found a problem the user can fix (diagnostics, failing tests) |
//! | 2 | ebb could not do its job: bad command line, I/O failure, unreachable services
//! | 130 | interrupted (Ctrl-C) after the work in flight was finished and recorded |

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The project has problems; they were already printed.
    #[error("found {errors} error(s) in the project")]
    Project { errors: usize },
    /// The command line or its arguments are wrong.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// Reading or writing files failed.
    #[error("{0}")]
    Io(String),
    /// A service ebb needs (the warehouse) could not be reached.
    #[error("{message}")]
    Unavailable {
        message: String,
        hint: Option<String>,
    },
    /// ebb ran and found failures the user can fix (failing data tests, model SQL errors);
    /// they were already printed.
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C: the run stopped after the work in flight.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// Returns the process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Project { .. } | Error::Failed(_) => 1,
            Error::Usage { .. } | Error::Io(_) | Error::Unavailable { .. } => 2,
            Error::Interrupted => 130,
        }
    }

    /// Returns a usage error with a hint.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// Returns the hint to print under the message, if any.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Usage { hint, .. } | Error::Unavailable { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}

impl From<crate::project::LoadError> for Error {
    fn from(e: crate::project::LoadError) -> Self {
        match e {
            crate::project::LoadError::NotAProject(dir) => Error::usage(
                format!("no `ebb_project.yml` or `dbt_project.yml` in `{dir}`"),
                "run ebb from a project directory, pass `--project-dir`, or create one with `ebb init DIR`",
            ),
            other => Error::Io(other.to_string()),
        }
    }
}

impl From<crate::warehouse::Error> for Error {
    fn from(e: crate::warehouse::Error) -> Self {
        match e {
            crate::warehouse::Error::Connect { .. } => Error::Unavailable {
                message: e.to_string(),
                hint: Some("check that the warehouse is running and that the target in profiles.yml points at it".into()),
            },
            crate::warehouse::Error::Query { message, .. } => Error::Failed(message),
        }
    }
}

impl From<crate::artifacts::WriteError> for Error {
    fn from(e: crate::artifacts::WriteError) -> Self {
        Error::Io(e.to_string())
    }
}

impl From<crate::graph::select::SelectError> for Error {
    fn from(e: crate::graph::select::SelectError) -> Self {
        Error::usage(
            e.to_string(),
            "selectors look like `name`, `+name`, `name+`, `tag:x`, `path:models/staging`, `resource_type:model`",
        )
    }
}
