//! Sync specs (`syncs/**/*.yml`) and destinations (`destinations.yml`), parsed key by key so
//! that every problem points at the line of the offending item: unknown keys (with the closest
//! valid one), wrong types, bad schedules, rate limits and guards.

use std::collections::BTreeMap;

use serde_yaml::Value;

use crate::diag::{self, Code, Diagnostic, Span};
use crate::spec::locate::Locator;

/// How a sync writes to its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only rows whose key was never delivered.
    Insert,
    /// Only keys delivered before; new keys are skipped.
    Update,
    /// New and changed rows.
    Upsert,
    /// Upsert, plus deletes for keys that left the model.
    Mirror,
}

impl Mode {
    /// Every mode, for messages.
    pub const ALL: [&'static str; 4] = ["insert", "update", "upsert", "mirror"];

    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "insert" => Mode::Insert,
            "update" => Mode::Update,
            "upsert" => Mode::Upsert,
            "mirror" => Mode::Mirror,
            _ => return None,
        })
    }

    /// Returns the mode as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Insert => "insert",
            Mode::Update => "update",
            Mode::Upsert => "upsert",
            Mode::Mirror => "mirror",
        }
    }
}

/// A rate limit: at most `count` requests per `per_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RateLimit {
    pub count: u32,
    pub per_seconds: f64,
}

impl RateLimit {
    /// Parses `10/s`, `600/min`, `1000/h`, `5/10s`.
    pub fn parse(s: &str) -> Result<RateLimit, String> {
        let (count, unit) = s
            .trim()
            .split_once('/')
            .ok_or("write a rate limit as `10/s`, `600/min` or `1000/h`")?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not a whole number", count.trim()))?;
        if count == 0 {
            return Err("the count must be at least 1".into());
        }
        let unit = unit.trim();
        let digits: String = unit.chars().take_while(|c| c.is_ascii_digit()).collect();
        let scale: f64 = if digits.is_empty() {
            1.0
        } else {
            digits.parse().map_err(|_| "bad number")?
        };
        let seconds = match &unit[digits.len()..] {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            other => return Err(format!("unknown unit `{other}`: use s, min or h")),
        };
        Ok(RateLimit {
            count,
            per_seconds: scale * seconds,
        })
    }
}

/// A guard threshold: an absolute number of rows or a percentage of the rows last delivered.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Threshold {
    Count(u64),
    Percent(f64),
}

impl Threshold {
    fn parse(v: &Value) -> Result<Threshold, String> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .map(Threshold::Count)
                .ok_or_else(|| "a count must be a whole number".into()),
            Value::String(s) => {
                let s = s.trim();
                match s.strip_suffix('%') {
                    Some(p) => {
                        let p: f64 = p
                            .trim()
                            .parse()
                            .map_err(|_| format!("`{s}` is not a percentage"))?;
                        if !(0.0..=100.0).contains(&p) {
                            return Err(format!("`{s}` is not between 0% and 100%"));
                        }
                        Ok(Threshold::Percent(p))
                    }
                    None => s.parse().map(Threshold::Count).map_err(|_| {
                        format!("`{s}` is neither a count nor a percentage like `5%`")
                    }),
                }
            }
            _ => Err("write a count (`100`) or a percentage (`5%`)".into()),
        }
    }
}

/// Limits that stop a sync before it sends anything.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Guards {
    pub max_deletes: Option<Threshold>,
    pub max_changes: Option<Threshold>,
}

/// A field of the destination and what fills it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Mapping {
    pub field: String,
    /// A model column, or a Jinja expression over `row`.
    pub source: String,
    pub line: usize,
    pub column: usize,
}

impl Mapping {
    /// Tells whether the value is a template rather than a column name.
    pub fn is_expression(&self) -> bool {
        self.source.contains("{{")
    }

    /// Returns the model columns the value reads: the column itself, or every `row.x` /
    /// `row['x']` of the expression.
    pub fn columns(&self) -> Vec<String> {
        if !self.is_expression() {
            return vec![self.source.trim().to_string()];
        }
        let mut out = Vec::new();
        let s = &self.source;
        let mut i = 0;
        while let Some(pos) = s[i..].find("row") {
            let start = i + pos;
            let before_ok =
                start == 0 || !s[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_');
            let rest = &s[start + 3..];
            if before_ok {
                if let Some(r) = rest.strip_prefix('.') {
                    let name: String = r
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    // `row.get('x')` is a method call reading column `x`, not a column `get`.
                    let after = r[name.len()..].trim_start();
                    match after.strip_prefix('(') {
                        Some(arg) => {
                            let arg = arg.trim_start();
                            if let Some(a) =
                                arg.strip_prefix('\'').or_else(|| arg.strip_prefix('"'))
                            {
                                out.push(
                                    a.chars().take_while(|c| *c != '\'' && *c != '"').collect(),
                                );
                            }
                        }
                        None if !name.is_empty() => out.push(name),
                        None => {}
                    }
                } else if let Some(r) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\""))
                {
                    let name: String = r.chars().take_while(|c| *c != '\'' && *c != '"').collect();
                    out.push(name);
                }
            }
            i = start + 3;
        }
        out.sort();
        out.dedup();
        out
    }

    /// Returns the filters the expression applies (`| mask`, `| sha256(...)`).
    pub fn filters(&self) -> Vec<String> {
        self.source
            .split('|')
            .skip(1)
            .filter_map(|part| {
                let name: String = part
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                (!name.is_empty()).then_some(name)
            })
            .collect()
    }
}

/// A sync as written, checked for shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyncSpec {
    pub name: String,
    pub description: String,
    /// The model's name, from `ref('name')` or a bare name.
    pub model: String,
    pub destination: String,
    pub object: String,
    pub mode: Mode,
    pub primary_key: String,
    pub match_on: Option<String>,
    pub mapping: Vec<Mapping>,
    /// Names of syncs that must finish first.
    pub depends_on: Vec<String>,
    pub schedule: Option<String>,
    pub batch_size: Option<u64>,
    pub rate_limit: Option<RateLimit>,
    pub guards: Guards,
    pub tags: Vec<String>,
    pub meta: serde_json::Value,
    pub enabled: bool,
    /// Where it was written.
    #[serde(skip)]
    pub path: String,
    #[serde(skip)]
    pub line: usize,
    /// Line and column of each key, for later checks.
    #[serde(skip)]
    pub lines: BTreeMap<String, (usize, usize)>,
}

/// Keys a sync may have.
pub const SYNC_KEYS: &[&str] = &[
    "name",
    "description",
    "model",
    "destination",
    "object",
    "mode",
    "primary_key",
    "match_on",
    "mapping",
    "depends_on",
    "schedule",
    "batch_size",
    "rate_limit",
    "guards",
    "tags",
    "meta",
    "enabled",
];

/// A destination: a type and its connection settings, kept unrendered (secrets are resolved
/// only when a sync runs).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DestinationSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub allow_pii: bool,
    pub rate_limit: Option<RateLimit>,
    /// Every setting as written; values with secrets hold the `env_var()` call, never a value.
    pub settings: BTreeMap<String, String>,
    #[serde(skip)]
    pub path: String,
    #[serde(skip)]
    pub line: usize,
    /// The line of each setting, for messages at run time.
    #[serde(skip)]
    pub setting_lines: BTreeMap<String, usize>,
}

/// What a destination type needs and allows.
pub struct DestinationType {
    pub name: &'static str,
    pub modes: &'static [Mode],
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
}

/// The destination types ebb ships.
pub const DESTINATION_TYPES: &[DestinationType] = &[
    DestinationType {
        name: "http",
        modes: &[Mode::Insert, Mode::Update, Mode::Upsert, Mode::Mirror],
        required: &["url"],
        optional: &[
            "method",
            "headers",
            "auth_header",
            "token",
            "body",
            "batch",
            "delete_method",
            "timeout",
        ],
    },
    DestinationType {
        name: "hubspot",
        modes: &[Mode::Update, Mode::Upsert, Mode::Mirror],
        required: &["token"],
        optional: &["base_url"],
    },
    DestinationType {
        name: "salesforce",
        modes: &[Mode::Insert, Mode::Update, Mode::Upsert, Mode::Mirror],
        required: &["instance_url", "access_token"],
        optional: &["api_version"],
    },
    DestinationType {
        name: "postgres",
        modes: &[Mode::Insert, Mode::Update, Mode::Upsert, Mode::Mirror],
        required: &["host", "dbname", "schema"],
        optional: &["port", "user", "password"],
    },
    DestinationType {
        name: "mysql",
        modes: &[Mode::Insert, Mode::Update, Mode::Upsert, Mode::Mirror],
        required: &["host", "schema"],
        optional: &["port", "user", "password"],
    },
    DestinationType {
        name: "sqlite",
        modes: &[Mode::Insert, Mode::Update, Mode::Upsert, Mode::Mirror],
        required: &["path"],
        optional: &[],
    },
    DestinationType {
        name: "file",
        modes: &[Mode::Insert, Mode::Upsert, Mode::Mirror],
        required: &["path", "format"],
        optional: &[],
    },
];

/// Keys every destination may have.
const COMMON_DESTINATION_KEYS: &[&str] = &[
    "type",
    "allow_pii",
    "rate_limit",
    "description",
    "max_concurrency",
    "max_retries",
];

/// Lists the settings under `key` (itself, or nested entries such as `headers: {Authorization:
/// ...}`) that hold a secret written as a literal instead of an `env_var()` call.
fn secret_literals(key: &str, value: &Value) -> Vec<(String, String)> {
    match value {
        Value::Mapping(m) => m
            .iter()
            .flat_map(|(k, v)| secret_literals(&scalar(k).unwrap_or_default(), v))
            .collect(),
        other => match scalar(other) {
            Some(text)
                if is_secret_key(key) && !text.trim().is_empty() && !text.contains("env_var(") =>
            {
                vec![(key.to_string(), text)]
            }
            _ => Vec::new(),
        },
    }
}

/// Tells whether a setting holds a secret and must come from `env_var()`.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "token",
        "secret",
        "api_key",
        "apikey",
        "api-key",
        "auth",
        "credential",
        "private_key",
    ]
    .iter()
    .any(|s| k.contains(s))
}

struct Ctx<'a> {
    path: &'a str,
    locator: &'a Locator,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    /// Reads an optional `rate_limit` of `map`, reporting a bad one at `at`.
    fn rate_limit(&mut self, map: &serde_yaml::Mapping, at: &str) -> Option<RateLimit> {
        let s = map.get("rate_limit").and_then(scalar)?;
        match RateLimit::parse(&s) {
            Ok(r) => Some(r),
            Err(e) => {
                self.push(
                    Code::RateLimitInvalid,
                    at,
                    format!("invalid rate limit `{s}`: {e}"),
                    "write `10/s`, `600/min` or `1000/h`".into(),
                );
                None
            }
        }
    }

    fn span(&self, at: &str) -> Span {
        let pos = self.locator.find(at);
        Span::at(self.path, pos.line, pos.column)
    }

    fn push(&mut self, code: Code, at: &str, message: String, hint: String) {
        let d = Diagnostic::new(code, self.span(at), message).hint(hint);
        self.diagnostics.push(d);
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parses the model reference of a sync: `ref('name')`, `ref("name")` or `name`.
pub fn model_name(text: &str) -> Option<String> {
    let t = text.trim();
    let inner = match t.strip_prefix("ref(") {
        Some(rest) => rest
            .strip_suffix(')')?
            .trim()
            .trim_matches(|c| c == '\'' || c == '"')
            .to_string(),
        None => t.to_string(),
    };
    let ok = !inner.is_empty() && inner.chars().all(|c| c.is_alphanumeric() || c == '_');
    ok.then_some(inner)
}

/// Checks a cron schedule: five fields (minute hour day month weekday) with `*`, numbers,
/// ranges, lists, steps and month/day names, or `@hourly`-style shortcuts.
pub fn check_cron(s: &str) -> Result<(), String> {
    let s = s.trim();
    if matches!(
        s,
        "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly"
    ) {
        return Ok(());
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "a schedule has 5 fields (minute hour day month weekday), this one has {}",
            fields.len()
        ));
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let limits = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    for (field, (what, lo, hi)) in fields.iter().zip(limits) {
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, st)) => (r, Some(st)),
                None => (part, None),
            };
            if let Some(st) = step {
                if st.parse::<u32>().map_or(true, |n| n == 0) {
                    return Err(format!(
                        "`{part}`: the step of the {what} field must be a positive number"
                    ));
                }
            }
            if range == "*" {
                continue;
            }
            let value = |v: &str| -> Result<u32, String> {
                let l = v.to_ascii_lowercase();
                if what == "month" {
                    if let Some(i) = MONTHS.iter().position(|m| *m == l) {
                        return Ok(i as u32 + 1);
                    }
                }
                if what == "day of week" {
                    if let Some(i) = DAYS.iter().position(|d| *d == l) {
                        return Ok(i as u32);
                    }
                }
                let n: u32 = v
                    .parse()
                    .map_err(|_| format!("`{v}` is not a valid {what}"))?;
                if n < lo || n > hi {
                    return Err(format!("{what} `{n}` is out of range {lo}-{hi}"));
                }
                Ok(n)
            };
            match range.split_once('-') {
                Some((a, b)) => {
                    if value(a)? > value(b)? {
                        return Err(format!("`{range}`: a range runs from low to high"));
                    }
                }
                None => {
                    value(range)?;
                }
            }
        }
    }
    Ok(())
}

/// Parses the `syncs:` list of one file. Items with problems are reported and left out.
pub fn parse_syncs(path: &str, text: &str, diagnostics: &mut Vec<Diagnostic>) -> Vec<SyncSpec> {
    let Some(parsed) = crate::spec::parse::<Value>(path, text, diagnostics) else {
        return Vec::new();
    };
    let mut cx = Ctx {
        path,
        locator: &parsed.locator,
        diagnostics,
    };
    let Some(map) = parsed.value.as_mapping() else {
        cx.push(
            Code::SyncInvalid,
            "",
            format!("`{path}` is not a mapping"),
            "start the file with `syncs:` and a list of syncs".into(),
        );
        return Vec::new();
    };
    crate::spec::check_keys(
        path,
        map,
        &["version", "syncs"],
        "",
        "a sync file",
        cx.locator,
        cx.diagnostics,
    );
    let items = match map.get("syncs") {
        Some(Value::Sequence(items)) => items,
        None | Some(Value::Null) => return Vec::new(),
        Some(_) => {
            cx.push(
                Code::SyncInvalid,
                "syncs",
                "`syncs` must be a list".into(),
                "write each sync as a `- name: ...` item".into(),
            );
            return Vec::new();
        }
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| parse_sync(&mut cx, &format!("syncs.{i}"), item))
        .collect()
}

fn parse_sync(cx: &mut Ctx<'_>, at: &str, item: &Value) -> Option<SyncSpec> {
    let Some(map) = item.as_mapping() else {
        cx.push(
            Code::SyncInvalid,
            at,
            "a sync must be a mapping".into(),
            "write `- name: my_sync` followed by its keys".into(),
        );
        return None;
    };
    let errors_before = cx.diagnostics.iter().filter(|d| d.is_error()).count();
    crate::spec::check_keys(
        cx.path,
        map,
        SYNC_KEYS,
        at,
        "a sync",
        cx.locator,
        cx.diagnostics,
    );
    let key_at = |k: &str| format!("{at}.{k}");
    let mut lines = BTreeMap::new();
    for k in map.keys().filter_map(Value::as_str) {
        let pos = cx.locator.find(&key_at(k));
        lines.insert(k.to_string(), (pos.line, pos.column));
    }
    let name = scalar(map.get("name").unwrap_or(&Value::Null));
    let label = name.clone().unwrap_or_else(|| "this sync".into());
    let required = |cx: &mut Ctx<'_>, key: &str, hint: &str| -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => {
                cx.push(
                    Code::SyncInvalid,
                    at,
                    format!("sync `{label}` has no `{key}`"),
                    hint.into(),
                );
                None
            }
            Some(v) => match scalar(v) {
                Some(s) if !s.trim().is_empty() => Some(s),
                _ => {
                    cx.push(
                        Code::SyncInvalid,
                        &key_at(key),
                        format!("`{key}` of sync `{label}` must be a string"),
                        hint.into(),
                    );
                    None
                }
            },
        }
    };
    let name = required(
        cx,
        "name",
        "give the sync a unique name: `name: hubspot_contacts`",
    );
    let model_text = required(
        cx,
        "model",
        "name the model to sync: `model: ref('customer_scores')`",
    );
    let destination = required(
        cx,
        "destination",
        "name a destination of destinations.yml: `destination: hubspot`",
    );
    let object = required(
        cx,
        "object",
        "name the destination object, table or endpoint: `object: contacts`",
    );
    let mode_text = required(cx, "mode", "choose one of: insert, update, upsert, mirror");
    let primary_key = required(
        cx,
        "primary_key",
        "name the model column that identifies a row: `primary_key: customer_id`",
    );
    let model = model_text.as_deref().and_then(|t| {
        let m = model_name(t);
        if m.is_none() {
            cx.push(
                Code::SyncInvalid,
                &key_at("model"),
                format!("`model: {t}` is not a model reference"),
                "write `model: ref('customer_scores')`".into(),
            );
        }
        m
    });
    let mode = mode_text.as_deref().and_then(|t| {
        let m = Mode::parse(t.trim());
        if m.is_none() {
            let close = diag::closest(t, Mode::ALL);
            let hint = diag::did_you_mean(&close)
                .unwrap_or_else(|| "choose one of: insert, update, upsert, mirror".into());
            cx.push(
                Code::SyncInvalid,
                &key_at("mode"),
                format!("unknown mode `{t}`"),
                hint,
            );
        }
        m
    });
    let match_on = map.get("match_on").and_then(scalar);
    let mut mapping = Vec::new();
    match map.get("mapping") {
        Some(Value::Mapping(m)) if !m.is_empty() => {
            for (k, v) in m {
                let field = scalar(k).unwrap_or_default();
                let field_at = format!("{at}.mapping.{field}");
                match scalar(v) {
                    Some(source) => {
                        let pos = cx.locator.find(&field_at);
                        mapping.push(Mapping {
                            field,
                            source,
                            line: pos.line,
                            column: pos.column,
                        });
                    }
                    None => cx.push(
                        Code::SyncInvalid,
                        &field_at,
                        format!("the value of `{field}` must be a column name or a template"),
                        "write `field: column` or `field: \"{{ row.column | lower }}\"`".into(),
                    ),
                }
            }
        }
        None | Some(Value::Null) => cx.push(
            Code::SyncInvalid,
            at,
            format!("sync `{label}` has no `mapping`"),
            "map destination fields to model columns: `mapping: {email: email}`".into(),
        ),
        Some(_) => cx.push(
            Code::SyncInvalid,
            &key_at("mapping"),
            "`mapping` must be a non-empty mapping of field: column".into(),
            "write `mapping: {email: email}`".into(),
        ),
    }
    let depends_on: Vec<String> = match map.get("depends_on") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(s)) => s
            .iter()
            .filter_map(scalar)
            .map(|d| d.trim_start_matches("sync.").to_string())
            .collect(),
        Some(Value::String(s)) => vec![s.trim_start_matches("sync.").to_string()],
        Some(_) => {
            cx.push(
                Code::SyncInvalid,
                &key_at("depends_on"),
                "`depends_on` must be a list of sync names".into(),
                "write `depends_on: [sync.other_sync]`".into(),
            );
            Vec::new()
        }
    };
    let schedule = map.get("schedule").and_then(scalar);
    if let Some(s) = &schedule {
        if let Err(e) = check_cron(s) {
            cx.push(
                Code::ScheduleInvalid,
                &key_at("schedule"),
                format!("invalid schedule `{s}`: {e}"),
                "use cron syntax, e.g. `0 * * * *` for hourly, or `@daily`".into(),
            );
        }
    }
    let batch_size = match map.get("batch_size") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|n| *n > 0) {
            Some(n) => Some(n),
            None => {
                cx.push(
                    Code::SyncInvalid,
                    &key_at("batch_size"),
                    "`batch_size` must be a positive whole number".into(),
                    "write `batch_size: 100`".into(),
                );
                None
            }
        },
    };
    let rate_limit = cx.rate_limit(map, &key_at("rate_limit"));
    let mut guards = Guards::default();
    match map.get("guards") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(g)) => {
            crate::spec::check_keys(
                cx.path,
                g,
                &["max_deletes", "max_changes"],
                &key_at("guards"),
                "guards",
                cx.locator,
                cx.diagnostics,
            );
            for (key, slot) in [
                ("max_deletes", &mut guards.max_deletes),
                ("max_changes", &mut guards.max_changes),
            ] {
                if let Some(v) = g.get(key) {
                    match Threshold::parse(v) {
                        Ok(t) => *slot = Some(t),
                        Err(e) => cx.push(
                            Code::GuardInvalid,
                            &format!("{at}.guards.{key}"),
                            format!("invalid `{key}`: {e}"),
                            "write a count (`100`) or a percentage (`5%`)".into(),
                        ),
                    }
                }
            }
        }
        Some(_) => cx.push(
            Code::GuardInvalid,
            &key_at("guards"),
            "`guards` must be a mapping".into(),
            "write `guards: {max_deletes: 5%, max_changes: 50%}`".into(),
        ),
    }
    let tags = match map.get("tags") {
        Some(Value::Sequence(s)) => s.iter().filter_map(scalar).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let meta = map
        .get("meta")
        .and_then(|m| serde_json::to_value(m).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let enabled = map.get("enabled").and_then(Value::as_bool).unwrap_or(true);
    let description = map.get("description").and_then(scalar).unwrap_or_default();
    let errors_after = cx.diagnostics.iter().filter(|d| d.is_error()).count();
    if errors_after > errors_before {
        return None;
    }
    Some(SyncSpec {
        name: name?,
        description,
        model: model?,
        destination: destination?,
        object: object?,
        mode: mode?,
        primary_key: primary_key?,
        match_on,
        mapping,
        depends_on,
        schedule,
        batch_size,
        rate_limit,
        guards,
        tags,
        meta,
        enabled,
        path: cx.path.to_string(),
        line: cx.locator.find(at).line,
        lines,
    })
}

/// Parses `destinations.yml`. Problems are reported; bad destinations are left out.
pub fn parse_destinations(
    path: &str,
    text: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<DestinationSpec> {
    let Some(parsed) = crate::spec::parse::<Value>(path, text, diagnostics) else {
        return Vec::new();
    };
    let mut cx = Ctx {
        path,
        locator: &parsed.locator,
        diagnostics,
    };
    let Some(map) = parsed.value.as_mapping() else {
        return Vec::new();
    };
    crate::spec::check_keys(
        path,
        map,
        &["version", "destinations"],
        "",
        "destinations.yml",
        cx.locator,
        cx.diagnostics,
    );
    let Some(Value::Mapping(dests)) = map.get("destinations") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, body) in dests {
        let Some(name) = scalar(name) else { continue };
        let at = format!("destinations.{name}");
        let Some(body) = body.as_mapping() else {
            cx.push(
                Code::DestinationInvalid,
                &at,
                format!("destination `{name}` must be a mapping"),
                "give it a `type:` and its settings".into(),
            );
            continue;
        };
        let kind = body.get("type").and_then(scalar).unwrap_or_default();
        let Some(def) = DESTINATION_TYPES.iter().find(|t| t.name == kind) else {
            let names: Vec<&str> = DESTINATION_TYPES.iter().map(|t| t.name).collect();
            let hint = diag::did_you_mean(&diag::closest(&kind, names.iter().copied()))
                .unwrap_or_else(|| format!("types are: {}", names.join(", ")));
            let msg = if kind.is_empty() {
                format!("destination `{name}` has no `type`")
            } else {
                format!("destination `{name}` has unknown type `{kind}`")
            };
            cx.push(Code::DestinationInvalid, &format!("{at}.type"), msg, hint);
            continue;
        };
        let known: Vec<&str> = COMMON_DESTINATION_KEYS
            .iter()
            .chain(def.required)
            .chain(def.optional)
            .copied()
            .collect();
        let before = cx.diagnostics.len();
        crate::spec::check_keys(
            path,
            body,
            &known,
            &at,
            &format!("a `{kind}` destination"),
            cx.locator,
            cx.diagnostics,
        );
        let mut ok = cx.diagnostics.len() == before;
        for req in def.required {
            if !body.contains_key(*req) {
                cx.push(
                    Code::DestinationInvalid,
                    &at,
                    format!("destination `{name}` ({kind}) needs `{req}`"),
                    format!("add `{req}:` to `{name}` in {path}"),
                );
                ok = false;
            }
        }
        let mut settings = BTreeMap::new();
        let mut setting_lines = BTreeMap::new();
        for (k, v) in body {
            let Some(k) = scalar(k) else { continue };
            setting_lines.insert(k.clone(), cx.locator.find(&format!("{at}.{k}")).line);
            let text = match v {
                Value::Mapping(_) | Value::Sequence(_) => {
                    serde_json::to_string(v).unwrap_or_default()
                }
                other => scalar(other).unwrap_or_default(),
            };
            for (key, value) in secret_literals(&k, v) {
                let d = Diagnostic::new(
                    Code::SecretLiteral,
                    cx.span(&format!("{at}.{k}")),
                    format!("`{key}` of destination `{name}` is written in the file; secrets must come from the environment"),
                )
                .label("a secret in plain text")
                .hint(format!("write `{key}: \"{{{{ env_var('{}_{}') }}}}\"` and set that variable where ebb runs", name.to_uppercase(), key.to_uppercase().replace('-', "_")));
                cx.diagnostics.push(Diagnostic {
                    conceal: Some(value),
                    ..d
                });
                ok = false;
            }
            settings.insert(k, text);
        }
        let rate_limit = cx.rate_limit(body, &format!("{at}.rate_limit"));
        if ok {
            out.push(DestinationSpec {
                allow_pii: body
                    .get("allow_pii")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                rate_limit,
                kind,
                line: cx.locator.find(&at).line,
                path: path.to_string(),
                settings,
                setting_lines,
                name,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_thresholds() {
        assert_eq!(
            RateLimit::parse("10/s").unwrap(),
            RateLimit {
                count: 10,
                per_seconds: 1.0
            }
        );
        assert_eq!(RateLimit::parse("600/min").unwrap().per_seconds, 60.0);
        assert_eq!(RateLimit::parse("5/10s").unwrap().per_seconds, 10.0);
        assert!(RateLimit::parse("fast").is_err());
        assert_eq!(
            Threshold::parse(&Value::from("5%")).unwrap(),
            Threshold::Percent(5.0)
        );
        assert_eq!(
            Threshold::parse(&Value::from(100)).unwrap(),
            Threshold::Count(100)
        );
        assert!(Threshold::parse(&Value::from("150%")).is_err());
    }

    #[test]
    fn cron_schedules() {
        for ok in [
            "0 * * * *",
            "*/15 9-17 * * mon-fri",
            "0 0 1 jan,jul *",
            "@daily",
        ] {
            assert!(check_cron(ok).is_ok(), "{ok}");
        }
        for bad in [
            "0 * * *",
            "61 * * * *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
        ] {
            assert!(check_cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mapping_columns_and_filters() {
        let m = Mapping {
            field: "f".into(),
            source: "{{ row.phone | mask }} {{ row['email'] | lower | sha256 }}".into(),
            line: 1,
            column: 1,
        };
        assert_eq!(m.columns(), vec!["email".to_string(), "phone".to_string()]);
        assert_eq!(m.filters(), vec!["mask", "lower", "sha256"]);
        let plain = Mapping {
            field: "f".into(),
            source: "email".into(),
            line: 1,
            column: 1,
        };
        assert_eq!(plain.columns(), vec!["email".to_string()]);
    }

    #[test]
    fn parses_a_sync_and_reports_bad_keys_at_their_line() {
        let text = "syncs:\n  - name: s\n    model: ref('m')\n    destination: d\n    object: contacts\n    mode: upsert\n    primary_key: id\n    match_on: email\n    mapping:\n      email: email\n    batchsize: 10\n";
        let mut diags = Vec::new();
        let syncs = parse_syncs("syncs/s.yml", text, &mut diags);
        assert!(syncs.is_empty());
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].span.line, 11);
        assert!(diags[0].hints[0].contains("batch_size"));
        let fixed = text.replace("batchsize", "batch_size");
        let mut diags = Vec::new();
        let syncs = parse_syncs("syncs/s.yml", &fixed, &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(syncs[0].model, "m");
        assert_eq!(syncs[0].mapping[0].line, 10);
    }
}
