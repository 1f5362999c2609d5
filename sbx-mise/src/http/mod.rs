//! The production [`Fetch`]: reqwest over rustls with bounded concurrency, retries with
//! exponential backoff, an on-disk cache with validators, and an offline mode.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sbx_mise::http::{HttpClient, HttpOptions};
//! use sbx_mise::resolve::{Fetch, Upstreams};
//! let upstreams = Upstreams::from_env();
//! let client = HttpClient::new(HttpOptions::from_env(&upstreams))?;
//! let index = client.get("https://index.crates.io/ri/pg/ripgrep").await?;
//! # Ok(()) }
//! ```
//!
//! * Every response body is cached under [`default_cache_dir`] (or the directory given in
//!   [`HttpOptions::cache_dir`]) with its `ETag`/`Last-Modified`; the next request sends them
//!   back and a `304 Not Modified` is answered from the cache.
//! * A body asked for in another representation ([`Fetch::get_accepting`]) is cached and
//!   shared apart from the URL's plain body.
//! * Within one client, a URL is fetched at most once: concurrent and later callers share the
//!   request and its answer, a failure included (a 404, or the last error once the retries are
//!   spent), so a run never asks twice for what it already knows is missing.
//! * [`HttpOptions::offline`] answers only from the cache.
//! * `https://` hosts are asked over HTTP/2 from the first byte, so a burst of requests shares
//!   one connection per host; a host that speaks only HTTP/1.1 is asked again negotiated
//!   ([`protocol`]).
//! * A wheel's METADATA is read with range requests ([`lazy_zip`]); partial bodies are never
//!   stored as the URL's body, only the METADATA found, under its own key.

pub mod cache;
pub mod lazy_zip;
pub mod protocol;
pub mod retry;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_RANGE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RANGE};
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};

use self::protocol::{Protocols, Route};
pub use cache::{Cache, Writer};
pub use retry::RetryPolicy;

use self::lazy_zip::{ByteRange, LazyError, Ranged};
use crate::credentials::Credentials;
use crate::resolve::documents::Documents;
use crate::resolve::{Fetch, FetchError, Upstreams, WHEEL_METADATA};

/// How an [`HttpClient`] behaves. [`HttpOptions::default`] suits interactive use.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// The HTTP cache directory; `None` means [`default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Serve only from the cache; a miss is [`FetchError::Offline`].
    pub offline: bool,
    /// Requests in flight at once (over all hosts; HTTP/2 upstreams multiplex them on one
    /// connection per host).
    pub max_concurrent: usize,
    /// Retries on 5xx, 429, timeouts and connection failures.
    pub retry: RetryPolicy,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed between two reads of a response (a stalled server times out).
    pub read_timeout: Duration,
    /// `(URL prefix, token)`: requests whose URL starts with the prefix carry
    /// `Authorization: Bearer <token>` (GitHub's API rate limit is much higher with a token).
    pub bearer_tokens: Vec<(String, String)>,
    /// User names and passwords by origin, sent as `Authorization: Basic` (taken out of the
    /// upstream URLs: [`Upstreams::split_credentials`]).
    pub credentials: Credentials,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            offline: false,
            max_concurrent: 64,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            bearer_tokens: Vec::new(),
            credentials: Credentials::default(),
        }
    }
}

impl HttpOptions {
    /// Defaults plus mise's `MISE_HTTP_TIMEOUT` (connect and read timeout: `30`, `30s`,
    /// `500ms`, `2m`) and `MISE_HTTP_RETRIES`, and a GitHub token from `MISE_GITHUB_TOKEN`,
    /// `GITHUB_API_TOKEN`, `GITHUB_TOKEN` or `GH_TOKEN` (the first one set), sent only to
    /// `upstreams.github_api`. Unparsable values keep the defaults.
    pub fn from_env(upstreams: &Upstreams) -> Self {
        let mut options = Self::default();
        if let Some(timeout) = std::env::var("MISE_HTTP_TIMEOUT").ok().and_then(|v| parse_duration(&v)) {
            options.connect_timeout = timeout;
            options.read_timeout = timeout;
        }
        if let Some(retries) = std::env::var("MISE_HTTP_RETRIES").ok().and_then(|v| v.trim().parse().ok()) {
            options.retry.retries = retries;
        }
        let token = ["MISE_GITHUB_TOKEN", "GITHUB_API_TOKEN", "GITHUB_TOKEN", "GH_TOKEN"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()));
        if let Some(token) = token {
            options.bearer_tokens.push((format!("{}/", upstreams.github_api.trim_end_matches('/')), token));
        }
        options
    }
}

/// A duration as mise writes it: plain seconds (`30`), or a number with `ms`, `s` or `m`.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok().filter(|n: &f64| n.is_finite() && *n > 0.0)?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// The HTTP cache directory: `$SBX_CACHE_DIR/http` when set, else `<user cache dir>/sbx/http`
/// (`~/.cache/sbx/http` on Linux), else `.sbx-cache/http` in the working directory.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SBX_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("http");
    }
    match dirs::cache_dir() {
        Some(d) => d.join("sbx").join("http"),
        None => PathBuf::from(".sbx-cache").join("http"),
    }
}

/// The HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}; check the system's TLS certificates")]
pub struct HttpInitError(String);

/// Cached, retrying, concurrency-bounded HTTP access. Cheap to share behind an `Arc`.
///
/// Cache entries are written in the background ([`Writer`]): another client (the next run)
/// finds them once this one's [`Fetch::finish`] has returned or it is dropped.
pub struct HttpClient {
    /// ALPN-negotiated: HTTP/2 or HTTP/1.1, and plain `http://`. Built on first use: each
    /// client loads the system's root certificates (~4.5 ms), and a lock that talks only to
    /// HTTPS registries never needs this one.
    negotiated: std::sync::OnceLock<reqwest::Client>,
    /// HTTP/2 from the first byte: one shared connection per host ([`protocol`]).
    http2: reqwest::Client,
    protocols: Protocols,
    cache: Cache,
    /// Writes [`HttpClient::cache`] entries while the run goes on.
    writer: Writer,
    options: HttpOptions,
    permits: Semaphore,
    bodies: Memo<Bytes>,
    digests: Memo<(String, u64)>,
    metadata: Memo<Bytes>,
    documents: Documents,
}

/// Per-URL results of this client, failures included, shared by every caller of the run.
type Memo<T> = Mutex<HashMap<String, Arc<OnceCell<Result<T, FetchError>>>>>;

/// One attempt's failure: worth another try, or final.
enum AttemptError {
    /// An answer worth asking again for (5xx, 429), or the request's task died.
    Retry(String),
    /// No answer, worth another try (timeout, refused or reset connection, cut body).
    NoAnswer(String),
    Fatal(FetchError),
}

/// What a GET attempt produced.
enum Got {
    NotModified,
    Fresh { body: Bytes, etag: Option<String>, last_modified: Option<String> },
}

impl HttpClient {
    /// Builds a client; no network access happens here.
    pub fn new(options: HttpOptions) -> Result<Self, HttpInitError> {
        let http2 =
            client_builder(&options).http2_prior_knowledge().build().map_err(|e| HttpInitError(e.to_string()))?;
        let cache = Cache::new(options.cache_dir.clone().unwrap_or_else(default_cache_dir));
        let permits = Semaphore::new(options.max_concurrent.max(1));
        Ok(Self {
            negotiated: std::sync::OnceLock::new(),
            http2,
            protocols: Protocols::default(),
            writer: Writer::new(cache.clone()),
            cache,
            options,
            permits,
            bodies: Mutex::default(),
            digests: Mutex::default(),
            metadata: Mutex::default(),
            documents: Documents::default(),
        })
    }

    /// The on-disk cache this client uses.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    fn client(&self, route: Route) -> &reqwest::Client {
        match route {
            Route::TryHttp2 | Route::Http2 => &self.http2,
            // The same settings built the HTTP/2 client; should the build fail anyway, that
            // client answers (and an HTTP/1.1-only host fails with a transport error).
            Route::Negotiated => self
                .negotiated
                .get_or_init(|| client_builder(&self.options).build().unwrap_or_else(|_| self.http2.clone())),
        }
    }

    fn request(&self, client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        self.authorized(client.get(url), url)
    }

    fn authorized(&self, req: reqwest::RequestBuilder, url: &str) -> reqwest::RequestBuilder {
        match self.options.bearer_tokens.iter().find(|(prefix, _)| url.starts_with(prefix.as_str())) {
            Some((_, token)) => req.bearer_auth(token),
            None => self.options.credentials.authorize(req, url),
        }
    }

    /// Runs `attempt` with the client `url`'s host is asked with ([`protocol`]) until it
    /// succeeds, fails for good, or the retry policy is exhausted. A host's failed first
    /// contact over HTTP/2 is asked again at once, negotiated, without counting an attempt.
    async fn with_retries<T, F, Fut>(&self, url: &str, mut attempt: F) -> Result<T, FetchError>
    where
        F: FnMut(&reqwest::Client) -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let attempts = self.options.retry.attempts();
        let mut last = String::new();
        let mut n = 0;
        while n < attempts {
            let route = self.protocols.route(url);
            let outcome = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|e| FetchError::Transport { url: url.to_string(), message: e.to_string() })?;
                attempt(self.client(route)).await
            };
            match outcome {
                Ok(v) => {
                    self.protocols.answered(url, route);
                    return Ok(v);
                }
                Err(AttemptError::Fatal(e @ FetchError::Transport { .. })) => {
                    if self.protocols.unanswered(url, route) {
                        continue;
                    }
                    return Err(e);
                }
                Err(AttemptError::Fatal(e)) => {
                    self.protocols.answered(url, route);
                    return Err(e);
                }
                Err(AttemptError::NoAnswer(why)) => {
                    if self.protocols.unanswered(url, route) {
                        continue;
                    }
                    last = why;
                }
                Err(AttemptError::Retry(why)) => last = why,
            }
            if n + 1 < attempts {
                tokio::time::sleep(self.options.retry.delay(n)).await;
            }
            n += 1;
        }
        Err(FetchError::GaveUp { url: url.to_string(), attempts, last })
    }

    /// GETs `url` (with `Accept: accept` when given), from the cache entry `key` when the
    /// server says it has not changed.
    async fn get_uncached(&self, key: &str, url: &str, accept: Option<&str>) -> Result<Bytes, FetchError> {
        let cached = self.cache.read(key);
        if self.options.offline {
            return cached.map(|e| e.body).ok_or_else(|| FetchError::Offline { url: url.to_string() });
        }
        let got = self
            .with_retries(url, |client| {
                let mut req = self.request(client, url);
                if let Some(accept) = accept {
                    req = req.header(ACCEPT, accept);
                }
                if let Some(entry) = &cached {
                    if let Some(etag) = &entry.meta.etag {
                        req = req.header(IF_NONE_MATCH, etag);
                    }
                    if let Some(lm) = &entry.meta.last_modified {
                        req = req.header(IF_MODIFIED_SINCE, lm);
                    }
                }
                let (url, has_cached) = (url.to_string(), cached.is_some());
                own_task(async move {
                    let url = url.as_str();
                    let resp = req.send().await.map_err(|e| transport(url, &e))?;
                    let status = resp.status().as_u16();
                    if status == 304 && has_cached {
                        return Ok(Got::NotModified);
                    }
                    if matches!(status, 403 | 429)
                        && resp.headers().get("x-ratelimit-remaining").is_some_and(|v| v.as_bytes() == b"0")
                    {
                        return Err(AttemptError::Fatal(FetchError::RateLimited { url: url.to_string() }));
                    }
                    check_status(url, status)?;
                    let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                    let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
                    let body = resp.bytes().await.map_err(|e| transport(url, &e))?;
                    Ok(Got::Fresh { body, etag, last_modified })
                })
            })
            .await?;
        match (got, cached) {
            (Got::NotModified, Some(entry)) => Ok(entry.body),
            (Got::NotModified, None) => Err(FetchError::Status { url: url.to_string(), status: 304 }),
            (Got::Fresh { body, etag, last_modified }, _) => {
                self.store(key.to_string(), etag, last_modified, body.clone());
                Ok(body)
            }
        }
    }

    async fn sha256_uncached(&self, url: &str) -> Result<(String, u64), FetchError> {
        let key = format!("sha256-of {url}");
        let cached = self.cache.read(&key).and_then(|e| serde_json::from_slice::<DigestRecord>(&e.body).ok());
        if let Some(record) = cached {
            return Ok((record.sha256, record.size));
        }
        if self.options.offline {
            return Err(FetchError::Offline { url: url.to_string() });
        }
        let (sha256, size) = self
            .with_retries(url, |client| {
                let req = self.request(client, url);
                let url = url.to_string();
                own_task(async move {
                    let url = url.as_str();
                    let resp = req.send().await.map_err(|e| transport(url, &e))?;
                    check_status(url, resp.status().as_u16())?;
                    let mut hasher = Sha256::new();
                    let mut size = 0u64;
                    let mut stream = resp.bytes_stream();
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(|e| transport(url, &e))?;
                        size += chunk.len() as u64;
                        hasher.update(&chunk);
                    }
                    Ok((hex::encode(hasher.finalize()), size))
                })
            })
            .await?;
        if let Ok(body) = serde_json::to_vec(&DigestRecord { sha256: sha256.clone(), size }) {
            self.store(key, None, None, body.into());
        }
        Ok((sha256, size))
    }
}

impl HttpClient {
    async fn size_uncached(&self, url: &str) -> Result<Option<u64>, FetchError> {
        let key = format!("size-of {url}");
        if let Some(entry) = self.cache.read(&key) {
            return Ok(serde_json::from_slice(&entry.body).ok());
        }
        if self.options.offline {
            return Err(FetchError::Offline { url: url.to_string() });
        }
        let size = self
            .with_retries(url, |client| {
                let req = self.authorized(client.head(url), url);
                async move {
                    let resp = req.send().await.map_err(|e| transport(url, &e))?;
                    check_status(url, resp.status().as_u16())?;
                    Ok(resp
                        .headers()
                        .get(reqwest::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok()))
                }
            })
            .await?;
        if let Some(size) = size
            && let Ok(body) = serde_json::to_vec(&size)
        {
            self.store(key, None, None, body.into());
        }
        Ok(size)
    }

    /// Hands a cache entry to the [`Writer`]; the caller gets its body at once.
    fn store(&self, key: String, etag: Option<String>, last_modified: Option<String>, body: Bytes) {
        self.writer.write(key, etag, last_modified, body);
    }

    /// One range of `url`, never cached: `206` answers are [`Ranged::Part`], a server that
    /// ignores the range (`200`) gives [`Ranged::Whole`] ([`Ranged::Ignored`], unread, for a
    /// [`ByteRange::Prefix`]).
    async fn get_range(&self, url: &str, range: ByteRange) -> Result<Ranged, FetchError> {
        if self.options.offline {
            return Err(FetchError::Offline { url: url.to_string() });
        }
        self.with_retries(url, |client| {
            let req = self.request(client, url).header(RANGE, range.header());
            let url = url.to_string();
            own_task(async move {
                let url = url.as_str();
                let resp = req.send().await.map_err(|e| transport(url, &e))?;
                let status = resp.status().as_u16();
                check_status(url, status)?;
                if status != 206 && matches!(range, ByteRange::Prefix(_)) {
                    return Ok(Ranged::Ignored);
                }
                if status != 206 {
                    let body = resp.bytes().await.map_err(|e| transport(url, &e))?;
                    return Ok(Ranged::Whole(body));
                }
                let content_range = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
                let Some((start, total)) = content_range.as_deref().and_then(parse_content_range) else {
                    return Err(AttemptError::Fatal(FetchError::Malformed {
                        url: url.to_string(),
                        message: format!("a 206 answer with an unusable Content-Range ({content_range:?})"),
                    }));
                };
                let bytes = resp.bytes().await.map_err(|e| transport(url, &e))?;
                Ok(Ranged::Part { start, total, bytes })
            })
        })
        .await
    }

    async fn wheel_metadata_uncached(&self, url: &str) -> Result<Bytes, FetchError> {
        let key = format!("metadata-of {url}");
        if let Some(entry) = self.cache.read(&key) {
            return Ok(entry.body);
        }
        let malformed = |message| FetchError::Malformed { url: url.to_string(), message };
        let in_memory = |wheel: &[u8]| {
            lazy_zip::member_in(wheel, lazy_zip::is_wheel_metadata, WHEEL_METADATA).map(Bytes::from).map_err(malformed)
        };
        // A wheel downloaded whole by an earlier sbx is still good.
        let metadata = if let Some(entry) = self.cache.read(url) {
            in_memory(&entry.body)?
        } else if self.options.offline {
            return Err(FetchError::Offline { url: url.to_string() });
        } else {
            let lazy =
                lazy_zip::read_member(|range| self.get_range(url, range), lazy_zip::is_wheel_metadata, WHEEL_METADATA);
            match lazy.await {
                Ok(metadata) => Bytes::from(metadata),
                Err(LazyError::Fetch(e @ (FetchError::Offline { .. } | FetchError::RateLimited { .. }))) => {
                    return Err(e);
                }
                // Range answers that do not fit together, or a server refusing ranges (416):
                // the whole file settles it.
                Err(
                    LazyError::Malformed(_)
                    | LazyError::Fetch(FetchError::Malformed { .. } | FetchError::Status { status: 416, .. }),
                ) => in_memory(&self.get_uncached(url, url, None).await?)?,
                Err(LazyError::Fetch(e)) => return Err(e),
            }
        };
        self.store(key, None, None, metadata.clone());
        Ok(metadata)
    }
}

/// Settings shared by the HTTP/2 and the negotiated client.
fn client_builder(options: &HttpOptions) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("sbx/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
}

/// Runs one request in a task of its own, so its body keeps arriving while the task that asked
/// is busy (parsing what came before); an HTTP/2 stream whose reader is not polled stalls once
/// its flow-control window is full. The task is aborted when the caller stops waiting.
async fn own_task<T: Send + 'static>(
    attempt: impl Future<Output = Result<T, AttemptError>> + Send + 'static,
) -> Result<T, AttemptError> {
    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(tokio::spawn(attempt));
    match (&mut task.0).await {
        Ok(result) => result,
        Err(e) => Err(AttemptError::Retry(format!("the request's task ended: {e}"))),
    }
}

/// `bytes <start>-<end>/<total>` → `(start, total)`.
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let (start, end, total) =
        (start.trim().parse::<u64>().ok()?, end.trim().parse::<u64>().ok()?, total.trim().parse().ok()?);
    (start <= end && end < total).then_some((start, total))
}

/// A downloaded artifact's digest, cached so offline runs and re-locks need not download again.
#[derive(serde::Serialize, serde::Deserialize)]
struct DigestRecord {
    sha256: String,
    size: u64,
}

fn transport(url: &str, e: &reqwest::Error) -> AttemptError {
    let message = retry::describe(e);
    if retry::retryable_error(e) {
        AttemptError::NoAnswer(message)
    } else {
        AttemptError::Fatal(FetchError::Transport { url: url.to_string(), message })
    }
}

fn check_status(url: &str, status: u16) -> Result<(), AttemptError> {
    if (200..300).contains(&status) {
        Ok(())
    } else if retry::retryable_status(status) {
        Err(AttemptError::Retry(format!("HTTP {status}")))
    } else {
        Err(AttemptError::Fatal(FetchError::Status { url: url.to_string(), status }))
    }
}

/// The shared cell for `key`, created on first use.
fn cell<T>(map: &Memo<T>, key: &str) -> Arc<OnceCell<Result<T, FetchError>>> {
    let mut map = match map.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    map.entry(key.to_string()).or_default().clone()
}

#[async_trait]
impl Fetch for HttpClient {
    async fn get(&self, url: &str) -> Result<Bytes, FetchError> {
        let cell = cell(&self.bodies, url);
        cell.get_or_init(|| self.get_uncached(url, url, None)).await.clone()
    }

    async fn get_accepting(&self, url: &str, accept: &'static str) -> Result<Bytes, FetchError> {
        let key = format!("accept {accept} {url}");
        let cell = cell(&self.bodies, &key);
        cell.get_or_init(|| self.get_uncached(&key, url, Some(accept))).await.clone()
    }

    async fn sha256_of(&self, url: &str) -> Result<(String, u64), FetchError> {
        let cell = cell(&self.digests, url);
        cell.get_or_init(|| self.sha256_uncached(url)).await.clone()
    }

    async fn size_of(&self, url: &str) -> Result<Option<u64>, FetchError> {
        self.size_uncached(url).await
    }

    async fn wheel_metadata(&self, url: &str) -> Result<Bytes, FetchError> {
        let cell = cell(&self.metadata, url);
        cell.get_or_init(|| self.wheel_metadata_uncached(url)).await.clone()
    }

    fn documents(&self) -> Option<&Documents> {
        Some(&self.documents)
    }

    async fn finish(&self) {
        self.writer.flush().await;
    }
}

#[cfg(test)]
mod tests;
