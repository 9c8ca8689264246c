//! The connection settings of the active target, rendered at run time: `env_var()` is resolved
//! here (not at compile time), and the password becomes a [`Secret`].

use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic, Span};
use crate::secret::Secret;
use crate::spec::locate::Locator;
use crate::spec::profiles::Target;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub enum Connection {
    Sqlite {
        /// The file of the `main` schema; other schemas live beside it.
        path: PathBuf,
    },
    Postgres {
        host: String,
        port: u16,
        user: String,
        password: Secret,
        dbname: String,
    },
    Mysql {
        host: String,
        port: u16,
        user: String,
        password: Secret,
        database: String,
    },
}

impl Connection {
    /// Describes the connection for messages, without the password.
    pub fn describe(&self) -> String {
        match self {
            Connection::Sqlite { path } => format!("sqlite file `{}`", path.display()),
            Connection::Postgres {
                host,
                port,
                user,
                dbname,
                ..
            } => format!("postgres://{user}@{host}:{port}/{dbname}"),
            Connection::Mysql {
                host,
                port,
                user,
                database,
                ..
            } => format!("mysql://{user}@{host}:{port}/{database}"),
        }
    }

    /// Returns the password, if the connection has one, for redacting driver messages.
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Connection::Postgres { password, .. } | Connection::Mysql { password, .. } => {
                Some(password)
            }
            Connection::Sqlite { .. } => None,
        }
    }

    /// Builds the connection of `target`. `render` resolves `env_var()` in a setting;
    /// `profiles` (path, text) lets problems point at the line of the setting. A relative
    /// SQLite path is relative to `project_dir`.
    pub fn from_target(
        target: &Target,
        project_dir: &Path,
        profiles: Option<(&str, &str)>,
        render: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Connection, Diagnostic> {
        let locator = profiles
            .map(|(_, text)| Locator::new(text))
            .unwrap_or_default();
        let path = profiles.map_or("profiles.yml", |(p, _)| p);
        let at = |key: &str| {
            let pos = locator.find(&format!(
                "{}.outputs.{}.{key}",
                target.profile_name, target.name
            ));
            Span::at(path, pos.line, pos.column)
        };
        let get = |key: &str| -> Result<Option<String>, Diagnostic> {
            match target.settings.get(key) {
                None | Some(serde_yaml::Value::Null) => Ok(None),
                Some(serde_yaml::Value::String(s)) => render(s).map(Some).map_err(|e| {
                    Diagnostic::new(
                        Code::EnvVarMissing,
                        at(key),
                        format!("cannot read `{key}` of target `{}`: {e}", target.name),
                    )
                    .label("needed to connect")
                    .hint("set the environment variable, or give env_var() a default")
                }),
                Some(other) => Ok(serde_yaml::to_string(other)
                    .ok()
                    .map(|s| s.trim().to_string())),
            }
        };
        let port = |default: u16| -> Result<u16, Diagnostic> {
            match get("port")? {
                None => Ok(default),
                Some(p) => p.parse().map_err(|_| {
                    Diagnostic::new(
                        Code::YamlInvalid,
                        at("port"),
                        format!(
                            "`port` of target `{}` is not a port number: `{p}`",
                            target.name
                        ),
                    )
                    .hint("use a number such as 5432")
                }),
            }
        };
        match target.adapter_type.as_str() {
            "sqlite" => {
                let file = get("path")?.unwrap_or_else(|| "ebb.db".into());
                let file = PathBuf::from(file);
                let path = if file.is_absolute() {
                    file
                } else {
                    project_dir.join(file)
                };
                Ok(Connection::Sqlite { path })
            }
            "postgres" => Ok(Connection::Postgres {
                host: get("host")?.unwrap_or_else(|| "localhost".into()),
                port: port(5432)?,
                user: get("user")?.unwrap_or_else(|| "postgres".into()),
                password: Secret::new(get("password")?.or(get("pass")?).unwrap_or_default()),
                dbname: target.database.clone(),
            }),
            _ => Ok(Connection::Mysql {
                host: get("host")?
                    .or(get("server")?)
                    .unwrap_or_else(|| "localhost".into()),
                port: port(3306)?,
                user: get("user")?
                    .or(get("username")?)
                    .unwrap_or_else(|| "root".into()),
                password: Secret::new(get("password")?.or(get("pass")?).unwrap_or_default()),
                database: target.schema.clone(),
            }),
        }
    }
}
