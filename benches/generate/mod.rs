//! Deterministic generator of a layered ebb project, the shape of the dbt peer figures in
//! /work/shared/BENCHMARKS.md: five sources, layers of models that each ref 1–3 models of
//! earlier layers (the first layer selects from sources), project and defaulted vars,
//! `{% if %}`/`{% for %}` blocks, about one model in five calling a project macro, a schema
//! YAML per layer documenting about one model in ten (columns with `unique`/`not_null`
//! tests), and folder-level config on some layer folders.
//!
//! The same `models` count always produces byte-identical files, so other benchmarks (a
//! git-diff benchmark, say) can generate a project, commit it, and edit single models found
//! with [`model_path`].
//!
//! Layout:
//! ```text
//! ebb_project.yml  profiles.yml
//! macros/cents_to_dollars.sql  macros/safe_divide.sql  macros/sum_columns.sql  macros/recent_filter.sql
//! models/_sources.yml
//! models/layer_00/_layer_00.yml  models/layer_00/model_00000.sql ...
//! models/layer_01/...
//! ```

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Name of the generated project (the `name:` of ebb_project.yml and its profile).
pub const PROJECT_NAME: &str = "bench";

/// Number of source tables (one table in each of five sources).
pub const SOURCES: usize = 5;

/// Metric columns every model carries (in a `{% for %}`), so any model can read them from
/// any parent.
const METRICS: [&str; 6] = [
    "m_views",
    "m_clicks",
    "m_orders",
    "m_refunds",
    "m_sessions",
    "m_errors",
];

const CATEGORIES: [&str; 5] = ["retail", "wholesale", "online", "partner", "internal"];

/// Number of layers for a project of `models` models: 10, or fewer for tiny projects.
pub fn layer_count(models: usize) -> usize {
    models.clamp(1, 10)
}

/// Layer (0-based) of model `index` in a project of `models` models. Models are split evenly
/// over the layers, the first layers taking the remainder.
pub fn layer_of(index: usize, models: usize) -> usize {
    let layers = layer_count(models);
    let base = models / layers;
    let extra = models % layers;
    // The first `extra` layers have base + 1 models.
    let big = extra * (base + 1);
    if index < big {
        index / (base + 1)
    } else {
        extra + (index - big) / base.max(1)
    }
}

/// First model index of `layer`.
fn layer_start(layer: usize, models: usize) -> usize {
    let layers = layer_count(models);
    let base = models / layers;
    let extra = models % layers;
    layer * base + layer.min(extra)
}

/// Digits used in model names: at least 5 (`model_00042`).
fn width(models: usize) -> usize {
    models.saturating_sub(1).to_string().len().max(5)
}

/// Name of model `index` in a project of `models` models, e.g. `model_00042`.
pub fn model_name(index: usize, models: usize) -> String {
    format!("model_{index:0w$}", w = width(models))
}

/// Name of the directory of `layer`, e.g. `layer_03`.
pub fn layer_dir(layer: usize) -> String {
    format!("layer_{layer:02}")
}

/// Path of model `index`'s SQL file, relative to the project directory.
pub fn model_path(index: usize, models: usize) -> PathBuf {
    Path::new("models")
        .join(layer_dir(layer_of(index, models)))
        .join(format!("{}.sql", model_name(index, models)))
}

/// Small seeded PRNG (SplitMix64): deterministic across platforms and runs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Writes a complete ebb project of `models` layered models into `dir` (created if needed).
/// Deterministic: the same `models` always gives the same files.
pub fn generate(dir: &Path, models: usize) -> io::Result<()> {
    let models = models.max(1);
    fs::create_dir_all(dir)?;
    let mut rng = Rng::new(0xEBB0_5EED ^ models as u64);
    let layers = layer_count(models);

    write(dir, "ebb_project.yml", &project_yml(layers))?;
    write(dir, "profiles.yml", PROFILES)?;
    write(dir, "macros/cents_to_dollars.sql", MACRO_CENTS)?;
    write(dir, "macros/safe_divide.sql", MACRO_SAFE_DIVIDE)?;
    write(dir, "macros/sum_columns.sql", MACRO_SUM_COLUMNS)?;
    write(dir, "macros/recent_filter.sql", MACRO_RECENT_FILTER)?;
    write(dir, "models/_sources.yml", &sources_yml())?;
    fs::create_dir_all(dir.join("seeds"))?;

    for layer in 0..layers {
        let start = layer_start(layer, models);
        let end = layer_start(layer + 1, models);
        let ldir = format!("models/{}", layer_dir(layer));
        fs::create_dir_all(dir.join(&ldir))?;
        let mut documented = Vec::new();
        for index in start..end {
            let sql = if layer == 0 {
                first_layer_model(&mut rng, index)
            } else {
                layered_model(&mut rng, index, models, start)
            };
            fs::write(dir.join(model_path(index, models)), sql)?;
            if rng.chance(10) {
                documented.push(index);
            }
        }
        write(
            dir,
            &format!("{ldir}/_{}.yml", layer_dir(layer)),
            &layer_yml(&documented, models),
        )?;
    }
    Ok(())
}

fn write(dir: &Path, rel: &str, text: &str) -> io::Result<()> {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, text)
}

fn project_yml(layers: usize) -> String {
    let mut s = format!(
        "name: {PROJECT_NAME}\n\
         version: \"1.0.0\"\n\
         profile: {PROJECT_NAME}\n\
         model-paths: [\"models\"]\n\
         macro-paths: [\"macros\"]\n\
         seed-paths: [\"seeds\"]\n\
         vars:\n  \
           start_date: \"2024-01-01\"\n  \
           lookback_days: 30\n  \
           amount_threshold: 100\n  \
           active_categories: [\"retail\", \"online\", \"partner\"]\n\
         models:\n  \
           {PROJECT_NAME}:\n    \
             +materialized: view\n"
    );
    for layer in 0..layers {
        // Config on some folders only: materialization on every other one, tags on every
        // third, a custom schema on every fourth.
        let mut lines = String::new();
        if layer % 2 == 1 {
            // One ephemeral layer (inlined as CTEs downstream), tables elsewhere.
            let m = if layer == 1 { "ephemeral" } else { "table" };
            let _ = writeln!(lines, "      +materialized: {m}");
        }
        if layer % 3 == 0 {
            let _ = writeln!(lines, "      +tags: [\"layer{layer}\", \"generated\"]");
        }
        if layer % 4 == 2 {
            let _ = writeln!(lines, "      +schema: layer{layer}");
        }
        if !lines.is_empty() {
            let _ = write!(s, "    {}:\n{lines}", layer_dir(layer));
        }
    }
    s
}

const PROFILES: &str = "bench:
  target: dev
  outputs:
    dev:
      type: sqlite
      path: \"bench.db\"
      schema: main
      database: main
";

const MACRO_CENTS: &str = "{# Dollars from a cents column; `scale` has a default. #}
{% macro cents_to_dollars(column_name, scale=2) %}round({{ column_name }} / 100.0, {{ scale }}){% endmacro %}
";

const MACRO_SAFE_DIVIDE: &str = "{# Division that yields null instead of failing on a zero denominator. #}
{% macro safe_divide(numerator, denominator) -%}
    {{ return('case when ' ~ denominator ~ ' = 0 then null else ' ~ numerator ~ ' * 1.0 / ' ~ denominator ~ ' end') }}
{%- endmacro %}
";

const MACRO_SUM_COLUMNS: &str = "{# `a + b + c` of the columns, each coalesced to 0. #}
{% macro sum_columns(columns, relation='') -%}
    {%- for column in columns -%}
        coalesce({% if relation %}{{ relation }}.{% endif %}{{ column }}, 0)
        {%- if not loop.last %} + {% endif -%}
    {%- endfor -%}
{%- endmacro %}
";

const MACRO_RECENT_FILTER: &str =
    "{# Predicate keeping rows of the last `days` days before var('start_date'). #}
{% macro recent_filter(column_name, days=30) -%}
    {%- if target.type == 'postgres' -%}
        {{ column_name }} >= date '{{ var('start_date') }}' - interval '{{ days }} days'
    {%- elif target.type == 'sqlite' -%}
        julianday({{ column_name }}) >= julianday('{{ var('start_date') }}') - {{ days }}
    {%- else -%}
        {{ column_name }} >= date_sub('{{ var('start_date') }}', interval {{ days }} day)
    {%- endif -%}
{%- endmacro %}
";

fn sources_yml() -> String {
    let mut s = String::from("version: 2\n\nsources:\n");
    for k in 0..SOURCES {
        let _ = write!(
            s,
            "  - name: src_{k}\n    \
               description: Raw feed number {k}.\n    \
               schema: \"{{{{ target.schema }}}}\"\n    \
               tables:\n      \
                 - name: events_{k}\n        \
                   identifier: raw_events_{k}\n        \
                   description: One row per event of feed {k}.\n        \
                   columns:\n          \
                     - name: id\n            \
                       description: Primary key of the event.\n          \
                     - name: created_at\n            \
                       description: Event time in UTC.\n"
        );
    }
    s
}

fn layer_yml(documented: &[usize], models: usize) -> String {
    let mut s = String::from("version: 2\n\nmodels:\n");
    if documented.is_empty() {
        return String::from("version: 2\n\nmodels: []\n");
    }
    for &index in documented {
        let name = model_name(index, models);
        let _ = write!(
            s,
            "  - name: {name}\n    \
               description: Generated model {index}.\n    \
               columns:\n      \
                 - name: id\n        \
                   description: Primary key.\n        \
                   tests:\n          \
                     - unique\n          \
                     - not_null\n      \
                 - name: created_at\n        \
                   description: Time the row was created.\n        \
                   tests:\n          \
                     - not_null\n      \
                 - name: category\n        \
                   description: Business category of the row.\n"
        );
    }
    s
}

/// How a model calls a project macro (about one model in five does).
enum MacroUse {
    /// An extra select column computed by a macro.
    Column(String),
    /// `recent_filter(...)` added to the where clause.
    RecentFilter,
}

fn macro_use(rng: &mut Rng, rel: &str) -> Option<MacroUse> {
    if !rng.chance(5) {
        return None;
    }
    Some(match rng.below(5) {
        0 => MacroUse::Column(format!(
            "{{{{ cents_to_dollars('{rel}.amount_cents') }}}} as amount"
        )),
        1 => MacroUse::Column(format!(
            "{{{{ cents_to_dollars('{rel}.amount_cents', scale=4) }}}} as amount_precise"
        )),
        2 => MacroUse::Column(format!(
            "{{{{ safe_divide('{rel}.m_clicks', '{rel}.m_views') }}}} as click_rate"
        )),
        3 => MacroUse::Column(format!(
            "{{{{ sum_columns(['m_orders', 'm_refunds'], relation='{rel}') }}}} as order_events"
        )),
        _ => MacroUse::RecentFilter,
    })
}

fn first_layer_model(rng: &mut Rng, index: usize) -> String {
    let k = rng.below(SOURCES);
    let macro_use = macro_use(rng, "src");
    let mut s = String::new();
    let _ = writeln!(s, "{{% set lookback = var('lookback_days') %}}");
    let _ = writeln!(
        s,
        "{{% set min_amount = var('min_amount_cents', {}) %}}",
        10 * rng.range(0, 9)
    );
    let _ = writeln!(s, "{{% set metrics = [{}] %}}", quoted(&METRICS));
    let _ = write!(
        s,
        "\n-- generated model {index}: reads source src_{k}\n\
         with src as (\n\n    select * from {{{{ source('src_{k}', 'events_{k}') }}}}\n\n),\n\n\
         shaped as (\n\n    select\n        \
           src.id,\n        \
           src.created_at,\n        \
           src.category,\n        \
           src.amount_cents,\n        \
           src.is_deleted,\n"
    );
    s.push_str(
        "        {% for m in metrics %}\n        coalesce(src.{{ m }}, 0) as {{ m }},\n        {% endfor %}\n",
    );
    if let Some(MacroUse::Column(col)) = &macro_use {
        let _ = writeln!(s, "        {col},");
    }
    s.push_str(
        "        {{ lookback }} as lookback_days\n\n    from src\n\n    where src.amount_cents >= {{ min_amount }}\n",
    );
    if let Some(MacroUse::RecentFilter) = macro_use {
        s.push_str("    {% if var('only_recent', true) %}\n      and {{ recent_filter('src.created_at', days=lookback) }}\n    {% endif %}\n");
    } else {
        s.push_str("    {% if not var('include_deleted', false) %}\n      and not src.is_deleted\n    {% endif %}\n");
    }
    s.push_str("\n)\n\nselect * from shaped\n");
    s
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|m| format!("'{m}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn layered_model(rng: &mut Rng, index: usize, models: usize, layer_start: usize) -> String {
    // The first parent is in the previous layer (so the graph really is layered); the
    // others anywhere earlier.
    let layer = layer_of(index, models);
    let prev_start = self::layer_start(layer - 1, models);
    let nparents = rng.range(1, 3);
    let mut parents = vec![prev_start + rng.below(layer_start - prev_start)];
    while parents.len() < nparents {
        let p = rng.below(layer_start);
        if !parents.contains(&p) {
            parents.push(p);
        }
        if layer_start < nparents {
            break;
        }
    }
    let macro_use = macro_use(rng, "p0");
    let with_config = rng.chance(20);
    let threshold_branch = rng.chance(2);

    let mut s = String::new();
    if with_config {
        let _ = writeln!(s, "{{{{ config(materialized='table', tags=['hot']) }}}}\n");
    }
    let _ = writeln!(s, "{{% set threshold = var('amount_threshold') %}}");
    let _ = writeln!(s, "{{% set categories = var('active_categories') %}}");
    let _ = writeln!(s, "{{% set metrics = [{}] %}}", quoted(&METRICS));
    let _ = writeln!(s, "\n-- generated model {index} of layer {layer}");
    s.push_str("with ");
    for (i, &p) in parents.iter().enumerate() {
        let _ = write!(
            s,
            "p{i} as (\n\n    select * from {{{{ ref('{}') }}}}\n\n),\n\n",
            model_name(p, models)
        );
    }
    s.push_str("joined as (\n\n    select\n        p0.id,\n        p0.created_at,\n        p0.category,\n        p0.amount_cents,\n        p0.is_deleted,\n");
    // One for-loop summing each metric over the parents.
    s.push_str("        {% for m in metrics %}\n        ");
    for i in 0..parents.len() {
        if i > 0 {
            s.push_str(" + ");
        }
        let _ = write!(s, "coalesce(p{i}.{{{{ m }}}}, 0)");
    }
    s.push_str(" as {{ m }},\n        {% endfor %}\n");
    if let Some(MacroUse::Column(col)) = &macro_use {
        let _ = writeln!(s, "        {col},");
    }
    s.push_str("        case\n        {% for c in categories %}\n            when p0.category = '{{ c }}' then {{ loop.index }}\n        {% endfor %}\n            else 0\n        end as category_rank,\n");
    let _ = writeln!(
        s,
        "        '{}' as generated_category",
        CATEGORIES[rng.below(CATEGORIES.len())]
    );
    s.push_str("\n    from p0\n");
    for i in 1..parents.len() {
        let _ = write!(s, "\n    left join p{i}\n        on p0.id = p{i}.id\n");
    }
    if threshold_branch {
        s.push_str("\n    {% if threshold > 0 %}\n    where p0.amount_cents >= {{ threshold }}\n    {% else %}\n    where p0.amount_cents is not null\n    {% endif %}\n");
    } else {
        s.push_str("\n    {% if var('include_deleted', false) %}\n    where true\n    {% else %}\n    where not p0.is_deleted\n    {% endif %}\n");
    }
    if let Some(MacroUse::RecentFilter) = macro_use {
        s.push_str("      and {{ recent_filter('p0.created_at', days=var('lookback_days')) }}\n");
    }
    s.push_str("\n)\n\nselect * from joined\n");
    s
}
