//! A destination on loopback: a small HTTP/1.1 server (keep-alive, one thread per connection)
//! that applies ebb's batched webhook body (`{"operation": ..., "rows": [...]}`) to a keyed
//! store, records every request, and misbehaves on demand: statuses with `Retry-After`,
//! garbage bodies, slow answers, dropped connections, per-row errors.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Request {
    /// The batch's operation and rows, when the body is ebb's batched JSON.
    pub fn rows(&self) -> (String, Vec<serde_json::Value>) {
        let v: serde_json::Value = serde_json::from_str(&self.body).unwrap_or_default();
        let op = v["operation"].as_str().unwrap_or_default().to_string();
        let rows = v["rows"].as_array().cloned().unwrap_or_default();
        (op, rows)
    }
}

/// How the sink answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Apply the batch and answer 200 `{}`.
    Apply,
    /// Apply the batch except the rows whose key is listed, which are rejected by index.
    RejectKeys(Vec<String>),
    /// Answer with a status, headers and body; nothing is applied.
    Status(u16, Vec<(String, String)>, String),
    /// Wait, then apply and answer (a client with a shorter timeout gives up first).
    Slow(Duration),
    /// Close the connection without answering (after reading the request).
    Drop,
}

type Script = dyn Fn(usize, &Request) -> Reply + Send + Sync;

/// The server.
pub struct Sink {
    pub url: String,
    /// Every request, in arrival order.
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// Key → row, as the destination holds it.
    pub store: Arc<Mutex<BTreeMap<String, serde_json::Value>>>,
    /// Rows applied, counting repeats (a row sent twice counts twice).
    pub applied: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    /// Starts a sink keyed on `key` that applies everything.
    pub fn start(key: &str) -> Sink {
        Sink::scripted(key, |_, _| Reply::Apply)
    }

    /// Starts a sink whose answer to request number `n` (0-based) is `script(n, request)`.
    pub fn scripted(
        key: &str,
        script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static,
    ) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::new(Mutex::new(BTreeMap::new()));
        let applied = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let counter = Arc::new(AtomicUsize::new(0));
        let shared = (
            requests.clone(),
            store.clone(),
            applied.clone(),
            stop.clone(),
            key.to_string(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if shared.3.load(Ordering::Relaxed) {
                    break;
                }
                let (requests, store, applied, key) = (
                    shared.0.clone(),
                    shared.1.clone(),
                    shared.2.clone(),
                    shared.4.clone(),
                );
                let (script, counter) = (script.clone(), counter.clone());
                std::thread::spawn(move || {
                    serve(conn, &requests, &store, &applied, &key, &*script, &counter)
                });
            }
        });
        Sink {
            url,
            requests,
            store,
            applied,
            stop,
        }
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.requests.lock().expect("lock").len()
    }

    /// The store's keys.
    pub fn keys(&self) -> Vec<String> {
        self.store.lock().expect("lock").keys().cloned().collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(
            self.url
                .trim_start_matches("http://")
                .trim_end_matches("/hook"),
        );
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn respond(stream: &mut TcpStream, status: u16, headers: &[(String, String)], body: &str) -> bool {
    let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    stream.write_all(out.as_bytes()).is_ok()
}

fn apply(
    req: &Request,
    store: &Mutex<BTreeMap<String, serde_json::Value>>,
    applied: &AtomicUsize,
    key: &str,
    reject: &[String],
) -> String {
    let (op, rows) = req.rows();
    let mut store = store.lock().expect("lock");
    let mut errors = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let k = match &row[key] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if reject.contains(&k) {
            errors.push(serde_json::json!({"index": i, "message": format!("row {k} is invalid")}));
            continue;
        }
        applied.fetch_add(1, Ordering::Relaxed);
        if op == "delete" {
            store.remove(&k);
        } else {
            store.insert(k, row.clone());
        }
    }
    serde_json::json!({ "errors": errors }).to_string()
}

fn serve(
    stream: TcpStream,
    requests: &Mutex<Vec<Request>>,
    store: &Mutex<BTreeMap<String, serde_json::Value>>,
    applied: &AtomicUsize,
    key: &str,
    script: &Script,
    counter: &AtomicUsize,
) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        requests.lock().expect("lock").push(req.clone());
        let json = vec![("content-type".to_string(), "application/json".to_string())];
        match script(n, &req) {
            Reply::Apply => {
                let body = apply(&req, store, applied, key, &[]);
                if !respond(&mut writer, 200, &json, &body) {
                    return;
                }
            }
            Reply::RejectKeys(keys) => {
                let body = apply(&req, store, applied, key, &keys);
                if !respond(&mut writer, 200, &json, &body) {
                    return;
                }
            }
            Reply::Status(code, headers, body) => {
                if !respond(&mut writer, code, &headers, &body) {
                    return;
                }
            }
            Reply::Slow(wait) => {
                std::thread::sleep(wait);
                let body = apply(&req, store, applied, key, &[]);
                if !respond(&mut writer, 200, &json, &body) {
                    return;
                }
            }
            Reply::Drop => {
                let _ = writer.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    }
}
