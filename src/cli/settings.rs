//! Flags, the environment and files outside the project (profiles.yml) resolved into one
//! [`Settings`] value before any work starts. The only place that reads `std::env`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::artifacts::manifest::Invocation;
use crate::compile::{Options, ProfilesText};
use crate::error::Error;
use crate::project::{DirSource, GitSource, RevisionError, Source};

use super::ProjectArgs;

/// Everything a project command needs, resolved.
#[derive(Debug)]
pub struct Settings {
    pub project_dir: PathBuf,
    /// Where the project is read from: the work tree, or a git revision with `--rev`.
    pub source: Source,
    /// `--state`: the git revision `state:` selectors compare against.
    pub state: Option<String>,
    pub options: Options,
    pub invocation: Invocation,
    pub select: Vec<String>,
    pub exclude: Vec<String>,
}

impl Settings {
    /// Resolves project flags: reads the environment, finds profiles.yml and parses `--vars`.
    pub fn resolve(args: &ProjectArgs) -> Result<Settings, Error> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let vars = match &args.vars {
            None => serde_yaml::Mapping::new(),
            Some(text) => match serde_yaml::from_str::<serde_yaml::Value>(text) {
                Ok(serde_yaml::Value::Mapping(m)) => m,
                Ok(serde_yaml::Value::Null) => serde_yaml::Mapping::new(),
                Ok(_) => {
                    return Err(Error::usage(
                        format!("`--vars` must be a YAML mapping, got: {text}"),
                        "write it as `--vars '{key: value}'`",
                    ))
                }
                Err(e) => {
                    return Err(Error::usage(
                        format!("`--vars` is not valid YAML: {e}"),
                        "write it as `--vars '{key: value}'`",
                    ))
                }
            },
        };
        // dbt users' DBT_PROFILES_DIR works too, after --profiles-dir / EBB_PROFILES_DIR.
        let profiles_dir = args
            .profiles_dir
            .clone()
            .or_else(|| env.get("DBT_PROFILES_DIR").map(PathBuf::from));
        let profiles = find_profiles(
            profiles_dir.as_deref(),
            &args.project_dir,
            env.get("HOME").map(Path::new),
        )?;
        let invocation = Invocation {
            invocation_id: env
                .get("EBB_INVOCATION_ID")
                .cloned()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            generated_at: generated_at(env.get("SOURCE_DATE_EPOCH"))?,
            git: crate::project::git::describe(&args.project_dir),
        };
        Ok(Settings {
            project_dir: args.project_dir.clone(),
            source: Source::Dir(DirSource::new(&args.project_dir)),
            state: args.state.clone(),
            options: Options {
                vars,
                env,
                target: args.target.clone(),
                profiles,
            },
            invocation,
            select: args.select.clone(),
            exclude: args.exclude.clone(),
        })
    }
}

impl Settings {
    /// Reads the project from the git revision `rev` instead of the work tree (when given);
    /// artifacts then record that commit, never dirty.
    pub fn at_revision(mut self, rev: Option<&str>) -> Result<Settings, Error> {
        if let Some(rev) = rev {
            let source = GitSource::open(&self.project_dir, rev)?;
            self.invocation.git = Some(source.git_info());
            self.source = Source::Git(source);
        }
        Ok(self)
    }

    /// Fails unless the project is in a git work tree without uncommitted changes
    /// (`--require-clean`).
    pub fn require_clean(&self) -> Result<(), Error> {
        match &self.invocation.git {
            Some(git) if !git.dirty => Ok(()),
            Some(_) => Err(Error::usage(
                "the work tree has uncommitted changes and `--require-clean` is set; nothing was run",
                "commit or stash the changes (`git status` lists them), or drop `--require-clean`",
            )),
            None => Err(Error::usage(
                format!(
                    "`{}` is not in a git work tree, so `--require-clean` cannot tell what is committed; nothing was run",
                    self.project_dir.display()
                ),
                "run from a git checkout, or drop `--require-clean`",
            )),
        }
    }
}

impl From<RevisionError> for Error {
    fn from(e: RevisionError) -> Self {
        let hint = match &e {
            RevisionError::NotARepository { .. } => {
                "`--rev`, `--state` and `ebb diff` read git history: run them in a git work tree"
                    .to_string()
            }
            RevisionError::Unknown { .. } => "name a commit, branch or tag: `git log --oneline` and `git branch -a` list them; a shallow clone (CI) may need the full history (`fetch-depth: 0`)".to_string(),
            RevisionError::NotACommit { .. } => "name a commit, branch or tag".to_string(),
            RevisionError::NoProjectDir { .. } => {
                "the project was added after this revision, or moved; pick a later revision".to_string()
            }
            RevisionError::Read { .. } => {
                return Error::Io(e.to_string());
            }
        };
        Error::usage(e.to_string(), hint)
    }
}

/// Returns the build time: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
fn generated_at(epoch: Option<&String>) -> Result<String, Error> {
    let time = match epoch {
        Some(s) => {
            let secs: u64 = s.trim().parse().map_err(|_| {
                Error::usage(
                    format!("SOURCE_DATE_EPOCH is not a number of seconds: `{s}`"),
                    "unset it or set it to a Unix time",
                )
            })?;
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
        }
        None => std::time::SystemTime::now(),
    };
    Ok(humantime::format_rfc3339_micros(time).to_string())
}

/// Finds profiles.yml: `--profiles-dir` (which must hold one), then the project directory,
/// then `~/.ebb/`, then `~/.dbt/` (so dbt users' profiles work unchanged).
fn find_profiles(
    flag: Option<&Path>,
    project_dir: &Path,
    home: Option<&Path>,
) -> Result<Option<ProfilesText>, Error> {
    if let Some(dir) = flag {
        let path = dir.join("profiles.yml");
        return match fs_err::read_to_string(&path) {
            Ok(text) => Ok(Some(ProfilesText {
                path: path.display().to_string(),
                text,
            })),
            Err(e) => Err(Error::usage(
                format!("cannot read `{}`: {}", path.display(), e.kind()),
                "point `--profiles-dir` at the directory that holds profiles.yml",
            )),
        };
    }
    let mut candidates = vec![(project_dir.join("profiles.yml"), "profiles.yml".to_string())];
    if let Some(home) = home {
        for dir in [".ebb", ".dbt"] {
            let p = home.join(dir).join("profiles.yml");
            candidates.push((p.clone(), p.display().to_string()));
        }
    }
    for (path, shown) in candidates {
        match fs_err::read_to_string(&path) {
            Ok(text) => return Ok(Some(ProfilesText { path: shown, text })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::Io(e.to_string())),
        }
    }
    Ok(None)
}
