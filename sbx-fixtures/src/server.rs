//! The HTTP side: a hyper 1.x server on its own thread and runtime, so sync and async tests
//! (and the `sbx-fixtures serve` binary) can all use it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH, LAST_MODIFIED};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::{Fault, Hit, Shared, lock};

/// A running fixture server; stops when dropped.
pub struct FixtureServer {
    base_url: String,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FixtureServer {
    /// Serves `root` on `127.0.0.1:<ephemeral port>`.
    pub fn start(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        Self::start_on(root, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves this repository's `fixtures/upstream/`.
    pub fn start_default() -> std::io::Result<Self> {
        Self::start(crate::default_root())
    }

    /// Serves `root` on a given loopback address (the binary's `--port`).
    pub fn start_on(root: impl Into<PathBuf>, addr: SocketAddr) -> std::io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::other("the fixture server binds loopback addresses only"));
        }
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let state = Shared::default();
        let (tx, rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let ctx = Arc::new(Ctx { root: root.into(), base: base_url.clone(), state: state.clone() });
        let thread = std::thread::Builder::new().name("sbx-fixtures".into()).spawn(move || {
            runtime.block_on(serve(listener, ctx, rx));
        })?;
        Ok(Self { base_url, state, shutdown: Some(tx), thread: Some(thread) })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The full URL of a path on this server (`/node/index.json`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path.trim_start_matches('/'))
    }

    /// Injects a fault for requests to `path` (URL path, query ignored), replacing any other.
    pub fn fault(&self, path: &str, fault: Fault) {
        lock(&self.state).faults.insert(normalize(path), fault);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Every request answered so far, in order.
    pub fn hits(&self) -> Vec<Hit> {
        lock(&self.state).hits.clone()
    }

    /// The statuses answered for one path, in order.
    pub fn statuses(&self, path: &str) -> Vec<u16> {
        let path = normalize(path);
        lock(&self.state).hits.iter().filter(|h| h.path == path).map(|h| h.status).collect()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Ctx {
    root: PathBuf,
    base: String,
    state: Shared,
}

fn normalize(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

async fn serve(listener: std::net::TcpListener, ctx: Arc<Ctx>, mut stop: oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, ctx.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

async fn handle(req: Request<Incoming>, ctx: Arc<Ctx>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = percent_decode(req.uri().path());
    let query = req.uri().query().unwrap_or("").to_string();
    let if_none_match = req.headers().get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let fault = {
        let mut state = lock(&ctx.state);
        match state.faults.get_mut(&path) {
            Some(Fault::Status { status, times }) if *times > 0 => {
                *times -= 1;
                Some(Fault::Status { status: *status, times: 1 })
            }
            Some(Fault::Status { .. }) | None => None,
            Some(other) => Some(other.clone()),
        }
    };
    let body = match fault {
        Some(Fault::Status { status, .. }) => {
            return Ok(record(&ctx, &path, status_response(status, "injected fault")));
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            read_file(&ctx, &path, &query)
        }
        Some(Fault::Body(b)) => Some(Bytes::from(b)),
        Some(Fault::Response { status, headers, body }) => {
            let mut r = status_response(status, "");
            *r.body_mut() = Full::new(Bytes::from(body));
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) =
                    (hyper::header::HeaderName::from_bytes(k.as_bytes()), hyper::header::HeaderValue::from_str(&v))
                {
                    r.headers_mut().insert(k, v);
                }
            }
            return Ok(record(&ctx, &path, r));
        }
        None => read_file(&ctx, &path, &query),
    };
    let Some(body) = body else {
        return Ok(record(&ctx, &path, status_response(404, "not found")));
    };
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..16]);
    let response = if if_none_match.as_deref() == Some(etag.as_str()) {
        Response::builder().status(StatusCode::NOT_MODIFIED).header(ETAG, &etag).body(Full::new(Bytes::new()))
    } else {
        Response::builder()
            .header(ETAG, &etag)
            .header(LAST_MODIFIED, "Sat, 16 Nov 2024 00:00:00 GMT")
            .header(CONTENT_TYPE, content_type(&path))
            .body(Full::new(body))
    };
    let response = response.unwrap_or_else(|_| status_response(500, "cannot build response"));
    Ok(record(&ctx, &path, response))
}

fn record(ctx: &Ctx, path: &str, response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    lock(&ctx.state).hits.push(Hit { path: path.to_string(), status: response.status().as_u16() });
    response
}

fn status_response(status: u16, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// The recorded file for a request, with `{{base}}` filled in.
///
/// `/dir/` serves `dir/index.json`; `/x` serves `x.json` when `x` does not exist; a JSON
/// array is paged like GitHub's API by `per_page` (default 30) and `page` (from 1).
fn read_file(ctx: &Ctx, path: &str, query: &str) -> Option<Bytes> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) && !rel.as_os_str().is_empty() {
        return None;
    }
    let mut file = ctx.root.join(rel);
    if path.ends_with('/') || rel.as_os_str().is_empty() {
        file = file.join("index.json");
    } else if !file.is_file() {
        file = ctx.root.join(format!("{}.json", rel.display()));
    }
    let mut raw = std::fs::read(&file).ok()?;
    if let Some(paged) = paginate(&raw, query) {
        raw = paged;
    }
    match String::from_utf8(raw) {
        Ok(text) if text.contains("{{base}}") => Some(Bytes::from(text.replace("{{base}}", &ctx.base))),
        Ok(text) => Some(Bytes::from(text)),
        Err(e) => Some(Bytes::from(e.into_bytes())),
    }
}

/// The `page`-th slice of `per_page` elements of a JSON array, when the query pages.
fn paginate(raw: &[u8], query: &str) -> Option<Vec<u8>> {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let (page, per_page) = (param("page"), param("per_page"));
    if page.is_none() && per_page.is_none() {
        return None;
    }
    let serde_json::Value::Array(items) = serde_json::from_slice(raw).ok()? else { return None };
    let per_page = per_page.unwrap_or(30).max(1);
    let page = page.unwrap_or(1).max(1);
    let slice: Vec<_> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    serde_json::to_vec_pretty(&slice).ok()
}

fn content_type(path: &str) -> &'static str {
    if path.ends_with(".json") || path.ends_with('/') || path.contains("/repos/") {
        "application/json"
    } else if path.ends_with(".txt") || path.ends_with("SUMS") {
        "text/plain"
    } else {
        "application/octet-stream"
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
