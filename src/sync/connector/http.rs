//! The HTTP/webhook connector: one request per batch (or per row with `batch: 1`), a JSON body
//! built by ebb or from a `body:` template, auth from the environment, deletes with
//! `delete_method`. Status codes decide what the engine does: 2xx acknowledged, 429/5xx tried
//! again, 400/422 rows rejected, 401/403/404 stop the sync. A 2xx answer may reject single
//! rows with `{"errors": [{"index": 3, "message": "..."}]}`.

use std::time::Duration;

use minijinja::Environment;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::{setting_number, Answer, Batch, Connector, Failure, FailureKind, Op, Settings, Shape};
use crate::secret::Secret;
use crate::sync::value::write_json_string;

/// Delivers batches as HTTP requests.
pub struct HttpConnector {
    client: reqwest::Client,
    url: String,
    method: reqwest::Method,
    delete_method: reqwest::Method,
    headers: HeaderMap,
    batch: usize,
    templates: Environment<'static>,
    secrets: Vec<Secret>,
}

const URL: &str = "url";
const BODY: &str = "body";

impl HttpConnector {
    /// Reads the settings: `url`, `method` (POST), `headers`, `auth_header` (the whole
    /// Authorization value), `token` (sent as `Bearer`), `body`, `batch` (rows per request, 100),
    /// `delete_method` (DELETE), `timeout` (seconds, 30).
    pub fn new(settings: &Settings) -> Result<Self, String> {
        let url = settings.get("url").cloned().unwrap_or_default();
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!(
                "`url` must start with http:// or https://, not `{url}`"
            ));
        }
        let method = |key: &str, default: &str| -> Result<reqwest::Method, String> {
            let m = settings.get(key).map_or(default, String::as_str);
            reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("`{key}` is not an HTTP method: `{m}`"))
        };
        let mut headers = HeaderMap::new();
        let mut secrets = Vec::new();
        if let Some(raw) = settings.get("headers") {
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw)
                .map_err(|_| "`headers` must be a mapping of header names to values".to_string())?;
            for (k, v) in map {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                if crate::spec::sync::is_secret_key(&k) || k.eq_ignore_ascii_case("authorization") {
                    secrets.push(Secret::new(v.clone()));
                }
                headers.insert(header_name(&k)?, header_value(&k, &v)?);
            }
        }
        if let Some(auth) = settings.get("auth_header").filter(|v| !v.is_empty()) {
            secrets.push(Secret::new(auth.clone()));
            headers.insert(
                reqwest::header::AUTHORIZATION,
                header_value("auth_header", auth)?,
            );
        }
        if let Some(token) = settings.get("token").filter(|v| !v.is_empty()) {
            secrets.push(Secret::new(token.clone()));
            headers.insert(
                reqwest::header::AUTHORIZATION,
                header_value("token", &format!("Bearer {token}"))?,
            );
        }
        for v in headers.values_mut() {
            v.set_sensitive(true);
        }
        let timeout = setting_number(settings, "timeout")?.unwrap_or(30);
        let batch = setting_number(settings, "batch")?.unwrap_or(100).max(1) as usize;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(timeout))
            .connect_timeout(Duration::from_secs(timeout.min(10)))
            .user_agent(concat!("ebb/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let mut templates = Environment::new();
        templates.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        if url.contains("{{") {
            templates
                .add_template_owned(URL, url.clone())
                .map_err(|e| format!("`url` is not a valid template: {e}"))?;
        }
        if let Some(body) = settings.get("body") {
            templates
                .add_template_owned(BODY, body.clone())
                .map_err(|e| format!("`body` is not a valid template: {e}"))?;
        }
        Ok(HttpConnector {
            client,
            url,
            method: method("method", "POST")?,
            delete_method: method("delete_method", "DELETE")?,
            headers,
            batch,
            templates,
            secrets,
        })
    }

    fn redact(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_string(), |t, s| s.redact(&t))
    }

    fn url(&self, batch: &Batch) -> Result<String, Failure> {
        if !self.url.contains("{{") {
            return Ok(self.url.clone());
        }
        let key = batch
            .records
            .first()
            .map(|r| r.key.clone())
            .unwrap_or_default();
        self.templates
            .get_template(URL)
            .and_then(|t| t.render(minijinja::context! { key => key }))
            .map_err(|e| Failure::fatal(format!("rendering `url`: {e}")))
    }

    fn body(&self, shape: &Shape, batch: &Batch) -> Result<String, Failure> {
        let per_row = self.batch == 1;
        if self.templates.get_template(BODY).is_ok() {
            let rows: Vec<serde_json::Value> =
                batch.records.iter().map(|r| object(shape, r)).collect();
            let keys: Vec<&str> = batch.records.iter().map(|r| r.key.as_str()).collect();
            let ctx = minijinja::context! {
                rows => rows,
                row => rows.first(),
                keys => keys,
                key => keys.first(),
                operation => batch.op.as_str(),
                sync => shape.sync,
                object => shape.object,
            };
            return self
                .templates
                .get_template(BODY)
                .and_then(|t| t.render(ctx))
                .map_err(|e| Failure::fatal(format!("rendering `body`: {e}")));
        }
        let mut out = String::with_capacity(64 + batch.records.len() * 96);
        if per_row {
            match batch.records.first() {
                Some(r) if batch.op == Op::Delete => {
                    out.push('{');
                    write_json_string(&shape.match_field, &mut out);
                    out.push(':');
                    r.match_value.write_json(&mut out);
                    out.push('}');
                }
                Some(r) => write_object(shape, r, &mut out),
                None => out.push_str("{}"),
            }
            return Ok(out);
        }
        out.push_str("{\"sync\":");
        write_json_string(&shape.sync, &mut out);
        out.push_str(",\"object\":");
        write_json_string(&shape.object, &mut out);
        out.push_str(",\"operation\":\"");
        out.push_str(batch.op.as_str());
        out.push_str("\",\"rows\":[");
        for (i, r) in batch.records.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if batch.op == Op::Delete {
                out.push('{');
                write_json_string(&shape.match_field, &mut out);
                out.push(':');
                r.match_value.write_json(&mut out);
                out.push('}');
            } else {
                write_object(shape, r, &mut out);
            }
        }
        out.push_str("]}");
        Ok(out)
    }
}

fn header_name(k: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("`{k}` is not a valid header name"))
}

fn header_value(k: &str, v: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(v).map_err(|_| format!("the value of header `{k}` is not valid"))
}

fn object(shape: &Shape, r: &super::Record) -> serde_json::Value {
    serde_json::Value::Object(
        shape
            .fields
            .iter()
            .zip(&r.payload)
            .map(|(f, v)| (f.clone(), v.to_json()))
            .collect(),
    )
}

fn write_object(shape: &Shape, r: &super::Record, out: &mut String) {
    out.push('{');
    for (i, (f, v)) in shape.fields.iter().zip(&r.payload).enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(f, out);
        out.push(':');
        v.write_json(out);
    }
    out.push('}');
}

/// Reads `Retry-After`: seconds, or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Reads per-row errors from a 2xx answer: `{"errors": [{"index": 0, "message": "..."}]}`.
/// An answer that says it is JSON but is not cannot be trusted to have taken every row.
fn read_answer(status: u16, json: bool, body: &str, rows: usize) -> Result<Answer, Failure> {
    if body.trim().is_empty() {
        return Ok(Answer::default());
    }
    let parsed: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) if json => {
            return Err(Failure::transient(format!(
                "answered {status} with a body that is not valid JSON: {}",
                snippet(body)
            )))
        }
        Err(_) => return Ok(Answer::default()),
    };
    let mut answer = Answer::default();
    if let Some(errors) = parsed.get("errors").and_then(|e| e.as_array()) {
        for e in errors {
            let Some(i) = e.get("index").and_then(serde_json::Value::as_u64) else {
                continue;
            };
            let i = i as usize;
            if i < rows {
                let reason = e
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map_or_else(|| e.to_string(), str::to_string);
                answer.rejected.push((i, reason));
            }
        }
    }
    Ok(answer)
}

fn snippet(body: &str) -> String {
    let t: String = body.trim().chars().take(200).collect();
    if body.trim().chars().count() > 200 {
        format!("{t}…")
    } else {
        t
    }
}

#[async_trait::async_trait]
impl Connector for HttpConnector {
    fn max_batch(&self) -> usize {
        self.batch
    }

    fn default_batch(&self) -> usize {
        self.batch
    }

    async fn prepare(&self, _shape: &Shape) -> Result<(), Failure> {
        Ok(())
    }

    async fn send(&self, shape: &Shape, batch: &Batch) -> Result<Answer, Failure> {
        let url = self.url(batch)?;
        let body = self.body(shape, batch)?;
        let method = if batch.op == Op::Delete {
            self.delete_method.clone()
        } else {
            self.method.clone()
        };
        let response = self
            .client
            .request(method, &url)
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", idempotency_key(shape, batch))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() {
                    "did not answer in time"
                } else if e.is_connect() {
                    "could not be reached"
                } else {
                    "dropped the connection"
                };
                // The innermost cause says what happened ("Connection refused").
                let mut detail = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    detail = c.to_string();
                    cause = c.source();
                }
                Failure::transient(self.redact(&format!("{url} {what}: {detail}")))
            })?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let text = response.text().await.map_err(|e| {
            Failure::transient(self.redact(&format!("reading the answer of {url}: {e}")))
        })?;
        let fail = |kind: FailureKind| Failure {
            message: self.redact(&format!("{url} answered {status}: {}", snippet(&text))),
            kind,
            retry_after: wait,
        };
        match status {
            200..=299 => {
                read_answer(status, json, &text, batch.records.len()).map_err(|f| Failure {
                    message: self.redact(&f.message),
                    ..f
                })
            }
            408 | 425 | 429 | 500..=599 => Err(fail(FailureKind::Transient)),
            401 | 403 | 404 | 405 | 407 | 413 => Err(fail(FailureKind::Fatal)),
            _ => Err(fail(FailureKind::Rejected)),
        }
    }
}

/// The same batch (sync, operation, keys and payloads) always gets the same key, so a
/// destination that honours `Idempotency-Key` applies a retried request once.
fn idempotency_key(shape: &Shape, batch: &Batch) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(shape.sync.as_bytes());
    h.update(batch.op.as_str().as_bytes());
    for r in &batch.records {
        h.update(r.key.as_bytes());
        h.update(&r.fingerprint.to_le_bytes());
    }
    format!("{:032x}", h.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30));
    }

    #[test]
    fn answers_with_row_errors_and_garbage() {
        let a = read_answer(
            200,
            true,
            r#"{"errors":[{"index":1,"message":"bad email"}]}"#,
            3,
        )
        .unwrap();
        assert_eq!(a.rejected, vec![(1, "bad email".to_string())]);
        assert!(read_answer(200, true, "<html>oops", 3).is_err());
        assert!(read_answer(200, false, "ok", 3)
            .unwrap()
            .rejected
            .is_empty());
    }
}
