//! The client against the loopback fixture server: retries, give-up, timeouts, validators,
//! offline mode and a damaged cache.

use std::time::Duration;

use sbx_fixtures::{Fault, FixtureServer};
use sha2::{Digest, Sha256};

use super::*;

fn options(cache: &std::path::Path) -> HttpOptions {
    HttpOptions {
        cache_dir: Some(cache.to_path_buf()),
        retry: RetryPolicy { retries: 3, base: Duration::from_millis(1) },
        ..HttpOptions::default()
    }
}

fn client(cache: &std::path::Path) -> HttpClient {
    HttpClient::new(options(cache)).unwrap()
}

const INDEX: &str = "/node/index.json";

#[tokio::test]
async fn retries_server_errors_then_succeeds() {
    let server = FixtureServer::start_default().unwrap();
    let cache = tempfile::tempdir().unwrap();
    server.fault(INDEX, Fault::Status { status: 500, times: 2 });
    let body = client(cache.path()).get(&server.url(INDEX)).await.unwrap();
    assert!(body.starts_with(b"["));
    assert_eq!(server.statuses(INDEX), [500, 500, 200]);
}

#[tokio::test]
async fn gives_up_after_the_retry_budget() {
    let server = FixtureServer::start_default().unwrap();
    let cache = tempfile::tempdir().unwrap();
    server.fault(INDEX, Fault::Status { status: 503, times: 100 });
    let mut opts = options(cache.path());
    opts.retry.retries = 2;
    let err = HttpClient::new(opts).unwrap().get(&server.url(INDEX)).await.unwrap_err();
    match &err {
        FetchError::GaveUp { attempts, last, url } => {
            assert_eq!(*attempts, 3);
            assert_eq!(last, "HTTP 503");
            assert!(url.ends_with(INDEX));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("gave up after 3 attempts"), "{err}");
    assert_eq!(server.statuses(INDEX).len(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = FixtureServer::start_default().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = client(cache.path()).get(&server.url("/node/nope.json")).await.unwrap_err();
    assert!(matches!(err, FetchError::Status { status: 404, .. }), "{err:?}");
    assert_eq!(server.statuses("/node/nope.json"), [404]);
}

#[tokio::test]
async fn a_stalled_server_times_out() {
    let server = FixtureServer::start_default().unwrap();
    let cache = tempfile::tempdir().unwrap();
    server.fault(INDEX, Fault::Delay(Duration::from_secs(30)));
    let mut opts = options(cache.path());
    opts.retry.retries = 1;
    opts.read_timeout = Duration::from_millis(100);
    let err = HttpClient::new(opts).unwrap().get(&server.url(INDEX)).await.unwrap_err();
    match err {
        FetchError::GaveUp { attempts: 2, last, .. } => assert!(last.contains("timed out"), "{last}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn etag_revalidation_is_served_from_the_cache() {
    let server = FixtureServer::start_default().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let first = client(cache.path()).get(&server.url(INDEX)).await.unwrap();
    // A new client (a new run) revalidates; the server answers 304 and the cached body is used.
    let second = client(cache.path()).get(&server.url(INDEX)).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(server.statuses(INDEX), [200, 304]);
    // Within one run a URL is fetched once.
    let c = client(cache.path());
    let url = server.url(INDEX);
    let (a, b) = tokio::join!(c.get(&url), c.get(&url));
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(server.statuses(INDEX), [200, 304, 304]);
    // Changed content: new ETag, new body, cache updated.
    server.fault(INDEX, Fault::Body(b"[]".to_vec()));
    assert_eq!(&client(cache.path()).get(&server.url(INDEX)).await.unwrap()[..], b"[]");
    assert_eq!(server.statuses(INDEX), [200, 304, 304, 200]);
    assert_eq!(&client(cache.path()).get(&server.url(INDEX)).await.unwrap()[..], b"[]");
    assert_eq!(*server.statuses(INDEX).last().unwrap(), 304);
}

#[tokio::test]
async fn offline_serves_only_the_cache() {
    let server = FixtureServer::start_default().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let artifact = server.url("/node/v22.11.0/node-v22.11.0-linux-x64.tar.gz");
    let online = client(cache.path());
    let body = online.get(&server.url(INDEX)).await.unwrap();
    let digest = online.sha256_of(&artifact).await.unwrap();
    // The run ends: its cache entries, written meanwhile, are complete.
    online.finish().await;
    let hits = server.hits().len();

    let mut opts = options(cache.path());
    opts.offline = true;
    let offline = HttpClient::new(opts).unwrap();
    assert_eq!(offline.get(&server.url(INDEX)).await.unwrap(), body);
    assert_eq!(offline.sha256_of(&artifact).await.unwrap(), digest);
    let missing = server.url("/go/");
    assert!(matches!(offline.get(&missing).await, Err(FetchError::Offline { .. })));
    assert!(matches!(
        offline.sha256_of(&server.url("/node/v23.3.0/node-v23.3.0-linux-x64.tar.gz")).await,
        Err(FetchError::Offline { .. })
    ));
    assert_eq!(server.hits().len(), hits, "offline mode touched the network");
}

#[tokio::test]
async fn sha256_of_streams_the_served_bytes() {
    let server = FixtureServer::start_default().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let rel = "node/v22.11.0/node-v22.11.0-linux-arm64.tar.gz";
    let bytes = std::fs::read(sbx_fixtures::default_root().join(rel)).unwrap();
    server.fault(&format!("/{rel}"), Fault::Status { status: 502, times: 1 });
    let (hex, size) = client(cache.path()).sha256_of(&server.url(rel)).await.unwrap();
    assert_eq!(hex, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(size, bytes.len() as u64);
    assert_eq!(server.statuses(rel), [502, 200]);
    // The digest is remembered: another run does not download again.
    client(cache.path()).sha256_of(&server.url(rel)).await.unwrap();
    assert_eq!(server.statuses(rel), [502, 200]);
}

#[tokio::test]
async fn a_damaged_cache_entry_is_never_served() {
    let server = FixtureServer::start_default().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let url = server.url(INDEX);
    let good = client(cache.path()).get(&url).await.unwrap();
    // Simulate a torn entry (as if a run was killed while writing without temp+rename) and a
    // temp file left by a killed run.
    let path = Cache::new(cache.path()).path_for(&url);
    let raw = std::fs::read(&path).unwrap();
    std::fs::write(&path, &raw[..raw.len() / 2]).unwrap();
    std::fs::write(path.with_file_name(".tmp-killed"), b"partial").unwrap();
    let again = client(cache.path()).get(&url).await.unwrap();
    assert_eq!(again, good);
    // No validators were sent for the damaged entry: a full 200, and the entry is whole again.
    assert_eq!(server.statuses(INDEX), [200, 200]);
    assert_eq!(Cache::new(cache.path()).read(&url).unwrap().body, good);
}

#[tokio::test]
async fn bearer_tokens_go_only_to_their_prefix() {
    let upstreams = Upstreams::all_at("http://127.0.0.1:1");
    let opts = HttpOptions {
        bearer_tokens: vec![(format!("{}/", upstreams.github_api), "t".into())],
        ..HttpOptions::default()
    };
    let c = HttpClient::new(opts).unwrap();
    let auth = |url: &str| {
        c.request(c.client(Route::Negotiated), url)
            .build()
            .unwrap()
            .headers()
            .contains_key(reqwest::header::AUTHORIZATION)
    };
    assert!(auth("http://127.0.0.1:1/github/repos/a/b/releases"));
    assert!(!auth("http://127.0.0.1:1/githubevil/x"));
    assert!(!auth("http://127.0.0.1:1/node/index.json"));
}

#[test]
fn cache_dir_honours_sbx_cache_dir() {
    // Only reads the variable's effect through a path join; no global state is changed.
    let d = default_cache_dir();
    assert!(d.ends_with("http"));
}

#[tokio::test]
async fn an_exhausted_rate_limit_says_to_set_a_token() {
    let server = FixtureServer::start_default().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let path = "/github/repos/cli/cli/releases";
    server.fault(
        path,
        Fault::Response {
            status: 403,
            headers: vec![("x-ratelimit-remaining".into(), "0".into())],
            body: br#"{"message":"API rate limit exceeded"}"#.to_vec(),
        },
    );
    let err = client(cache.path()).get(&server.url(path)).await.unwrap_err();
    assert!(matches!(err, FetchError::RateLimited { .. }), "{err:?}");
    assert!(err.to_string().contains("GITHUB_TOKEN"));
    assert_eq!(server.statuses(path), [403], "not retried");
}

#[test]
fn mise_durations_parse() {
    use std::time::Duration;
    assert_eq!(super::parse_duration("30"), Some(Duration::from_secs(30)));
    assert_eq!(super::parse_duration("30s"), Some(Duration::from_secs(30)));
    assert_eq!(super::parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(super::parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(super::parse_duration("0"), None);
    assert_eq!(super::parse_duration("soon"), None);
    assert_eq!(super::parse_duration("3h"), None);
}

#[tokio::test]
async fn a_request_task_ends_with_its_caller() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let caller = own_task(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        flag.store(true, Ordering::SeqCst);
        Ok(())
    });
    // The caller gives up before the request is done: the task is aborted, not left running.
    assert!(tokio::time::timeout(Duration::from_millis(5), caller).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!finished.load(Ordering::SeqCst));
    // A task that dies is a retryable failure, not a panic of the caller.
    let died = own_task::<()>(async { panic!("boom") }).await;
    assert!(matches!(died, Err(AttemptError::Retry(m)) if m.contains("task")));
}

#[tokio::test]
async fn a_url_is_asked_once_per_run_even_when_it_failed() {
    let server = FixtureServer::start_default().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let client = client(cache.path());
    let url = server.url("/node/nope.json");
    let (first, second) = futures::join!(client.get(&url), client.get(&url));
    let third = client.get(&url).await;
    for err in [first, second, third] {
        assert!(matches!(err, Err(FetchError::Status { status: 404, .. })), "{err:?}");
    }
    assert_eq!(server.statuses("/node/nope.json"), [404], "the run knew the answer already");
    // A new run (a new client) asks again.
    assert!(HttpClient::new(options(cache.path())).unwrap().get(&url).await.is_err());
    assert_eq!(server.statuses("/node/nope.json"), [404, 404]);
}

/// The header lines of one HTTP/1.1 request read from `stream`, as `(name, value)`.
pub(super) fn request_headers(stream: &std::net::TcpStream) -> Vec<(String, String)> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return headers;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
}

/// A loopback HTTP/1.1 server that answers every request with its `Accept` header, counting
/// requests.
/// A server that answers every request with the value of its `header` (lowercase; `none`
/// when absent), and counts requests.
fn echo_header_server(header: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/simple/x/", listener.local_addr().unwrap());
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let headers = request_headers(&stream);
            let value = headers.iter().find(|(k, _)| k == header).map_or("none", |(_, v)| v.as_str());
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", value.len());
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(value.as_bytes()));
        }
    });
    (url, count)
}

#[tokio::test]
async fn credentials_taken_out_of_an_upstream_url_go_to_its_origin_only() {
    let (url, _) = echo_header_server("authorization");
    let (other_origin, _) = echo_header_server("authorization");
    let mut credentials = crate::credentials::Credentials::default();
    assert_eq!(credentials.take_from(&url.replacen("http://", "http://__token__:s3cret@", 1)), url);
    let cache = tempfile::tempdir().unwrap();
    let client = HttpClient::new(HttpOptions { credentials, ..options(cache.path()) }).unwrap();
    assert_eq!(client.get(&format!("{url}files/x.whl")).await.unwrap(), "Basic X190b2tlbl9fOnMzY3JldA==");
    assert_eq!(client.size_of(&format!("{url}files/y.whl")).await.unwrap(), Some(30));
    assert_eq!(client.get(&other_origin).await.unwrap(), "none");
}

#[tokio::test]
async fn a_representation_asked_for_is_cached_apart_from_the_plain_body() {
    const JSON: &str = "application/vnd.pypi.simple.v1+json";
    let (url, requests) = echo_header_server("accept");
    let cache = tempfile::tempdir().unwrap();
    let client = client(cache.path());
    let (json, again) = futures::join!(client.get_accepting(&url, JSON), client.get_accepting(&url, JSON));
    assert_eq!((json.unwrap(), again.unwrap()), (Bytes::from(JSON), Bytes::from(JSON)));
    assert_eq!(client.get(&url).await.unwrap(), "*/*", "reqwest's default");
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2, "one request per representation");
    // Each is cached under its own key: offline, a new run gets each back as it was.
    client.finish().await;
    let offline = HttpClient::new(HttpOptions { offline: true, ..options(cache.path()) }).unwrap();
    assert_eq!(offline.get_accepting(&url, JSON).await.unwrap(), JSON);
    assert_eq!(offline.get(&url).await.unwrap(), "*/*");
}
