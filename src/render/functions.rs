//! The functions and objects dbt models expect: `ref`, `source`, `var`, `env_var`, `config`,
//! `log`, `exceptions`, `is_incremental` and `return`. Each records what it was asked in the
//! current [`scope`](super::scope) so the graph can be built from real calls, macros included.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Kwargs, Object, Rest, Value};
use minijinja::{Environment, Error, ErrorKind, State};

use super::relation::{RelationKey, RelationValue};
use super::scope::{self, RefCall};
use crate::diag::Code;

/// Variables and environment the functions read; shared by every render.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub vars: BTreeMap<String, Value>,
    pub env: BTreeMap<String, String>,
}

/// Registers every function and object on `env`.
pub fn register(env: &mut Environment<'static>, inputs: Arc<Inputs>) {
    env.add_function("ref", ref_fn);
    env.add_function("source", source_fn);
    let vars = inputs.clone();
    env.add_function("var", move |name: String, default: Option<Value>| {
        var_fn(&vars, name, default)
    });
    let envs = inputs;
    env.add_function("env_var", move |name: String, default: Option<Value>| {
        env_var_fn(&envs, name, default)
    });
    env.add_function("log", log_fn);
    env.add_function("is_incremental", || false);
    env.add_function("return", return_fn);
    env.add_global("config", Value::from_object(ConfigObject));
    env.add_global("exceptions", Value::from_object(Exceptions));
    env.add_global("execute", false);
    env.add_filter("as_bool", as_bool);
    env.add_filter("as_number", as_number);
    env.add_filter("as_text", |v: Value| v.to_string());
    env.add_filter("as_native", |v: Value| v);
    env.add_filter("mask", mask);
    env.add_filter("sha256", |v: Value| {
        crate::artifacts::checksum(v.to_string().as_bytes())
    });
    env.add_filter("hash", |v: Value| {
        crate::artifacts::checksum(v.to_string().as_bytes())
    });
    env.add_filter("redact", |_: Value| "****");
}

fn relation(key: RelationKey) -> Value {
    let resolved = scope::with(|s| s.resolved.clone()).and_then(|f| f(&key));
    RelationValue::value(key, resolved)
}

fn ref_fn(args: Rest<String>, kwargs: Kwargs) -> Result<Value, Error> {
    // `v=`/`version=` select a model version; ebb has no versions and accepts them unused.
    for key in ["v", "version"] {
        if kwargs.has(key) {
            let _: Value = kwargs.get(key)?;
        }
    }
    kwargs.assert_all_used()?;
    let call = match args.as_slice() {
        [name] => RefCall {
            package: None,
            name: name.clone(),
        },
        [package, name] => RefCall {
            package: Some(package.clone()),
            name: name.clone(),
        },
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "ref() takes a model name, or a package name and a model name",
            ))
        }
    };
    let key = RelationKey::Ref(call.name.clone());
    scope::with(|s| s.refs.push(call));
    Ok(relation(key))
}

fn source_fn(source_name: String, table_name: String) -> Value {
    scope::with(|s| s.sources.push((source_name.clone(), table_name.clone())));
    relation(RelationKey::Source(source_name, table_name))
}

fn var_fn(inputs: &Inputs, name: String, default: Option<Value>) -> Result<Value, Error> {
    scope::with(|s| s.vars.insert(name.clone()));
    match (inputs.vars.get(&name), default) {
        (Some(v), _) => Ok(v.clone()),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(scope::fail(
            Code::VarMissing,
            format!("required var `{name}` is not set"),
            Some(format!(
                "add `{name}` under `vars:` in the project file, pass `--vars '{{{name}: ...}}'`, or give var() a default"
            )),
        )),
    }
}

fn env_var_fn(inputs: &Inputs, name: String, default: Option<Value>) -> Result<Value, Error> {
    scope::with(|s| s.env_vars.insert(name.clone()));
    match (inputs.env.get(&name), default) {
        (Some(v), _) => Ok(Value::from(v.as_str())),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(scope::fail(
            Code::EnvVarMissing,
            format!("environment variable `{name}` is not set"),
            Some(format!("set `{name}` in the environment, or give env_var() a default: env_var('{name}', '...')")),
        )),
    }
}

fn log_fn(msg: Value, kwargs: Kwargs) -> Result<String, Error> {
    let info: Option<bool> = kwargs.get("info")?;
    kwargs.assert_all_used()?;
    let line = msg.to_string();
    // dbt shows `info=True` lines on the console and keeps the rest for its log file; ebb has no
    // log file yet, so only `info` lines are kept.
    if info.unwrap_or(false) {
        scope::with(|s| s.logs.push(line));
    }
    Ok(String::new())
}

fn return_fn(value: Value) -> Result<Value, Error> {
    let placed = scope::with(|s| match s.returns.last_mut() {
        Some(slot) => {
            *slot = Some(value);
            true
        }
        None => false,
    });
    if placed {
        // Aborts the macro; the macro's caller picks the value up from the slot.
        Err(Error::new(ErrorKind::InvalidOperation, "return"))
    } else {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            "return() can only be used inside a macro",
        ))
    }
}

/// Masks all but the last four characters: `+1 555 0100` → `*******0100`.
fn mask(v: Value) -> Value {
    if v.is_none() || v.is_undefined() {
        return v;
    }
    let s = v.to_string();
    let n = s.chars().count();
    let keep = if n > 4 { 4 } else { 0 };
    Value::from(
        s.chars()
            .enumerate()
            .map(|(i, c)| if i < n - keep { '*' } else { c })
            .collect::<String>(),
    )
}

fn as_bool(v: Value) -> bool {
    match v.as_str() {
        Some(s) => matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "1"),
        None => v.is_true(),
    }
}

fn as_number(v: Value) -> Result<Value, Error> {
    if v.as_str().is_none() {
        return Ok(v);
    }
    let s = v.as_str().unwrap_or_default().trim();
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Value::from(i));
    }
    s.parse::<f64>().map(Value::from).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("`{s}` is not a number"),
        )
    })
}

/// `config`: called with keyword arguments it records the node's configuration; `config.get`
/// and `config.require` read it back.
#[derive(Debug)]
struct ConfigObject;

impl Object for ConfigObject {
    fn call(self: &Arc<Self>, _state: &State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        for arg in args {
            let is_map = matches!(arg.kind(), minijinja::value::ValueKind::Map);
            if !is_map {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "config() takes keyword arguments, like config(materialized='table')",
                ));
            }
            let map: BTreeMap<String, serde_json::Value> = serde_json::to_value(arg)
                .ok()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            scope::with(|s| s.config.extend(map));
        }
        Ok(Value::from(""))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let (key, default) = match args {
            [k] => (k.as_str().unwrap_or_default().to_string(), None),
            [k, d, ..] => (k.as_str().unwrap_or_default().to_string(), Some(d.clone())),
            _ => {
                return Err(Error::new(
                    ErrorKind::MissingArgument,
                    format!("config.{method}() needs a key"),
                ))
            }
        };
        let found = scope::with(|s| {
            s.config
                .get(&key)
                .or_else(|| s.base_config.get(&key))
                .cloned()
        });
        match (method, found) {
            ("get" | "require", Some(v)) => Ok(Value::from_serialize(&v)),
            ("get", None) => Ok(default.unwrap_or(Value::from(()))),
            ("require", None) => Err(scope::fail(
                Code::ConfigInvalid,
                format!("config `{key}` is required but not set"),
                Some(format!(
                    "set `{key}` with config({key}=...) or in the project file"
                )),
            )),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// `exceptions.raise_compiler_error(msg)` and `exceptions.warn(msg)`.
#[derive(Debug)]
struct Exceptions;

impl Object for Exceptions {
    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let msg = args.first().map(|v| v.to_string()).unwrap_or_default();
        match method {
            "raise_compiler_error" => Err(scope::fail(
                Code::CompilerError,
                msg,
                Some("the project raised this error itself with exceptions.raise_compiler_error(); fix what it describes".into()),
            )),
            "warn" => {
                scope::with(|s| s.warnings.push(msg));
                Ok(Value::from(""))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}
