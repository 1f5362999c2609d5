//! The lazy METADATA read: over an in-memory range server (layouts that need more than the
//! tail), and through [`HttpClient`] against a loopback server that honours `Range` and one that
//! answers every range request with the whole file.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use sbx_fixtures::FixtureServer;

use super::*;
use crate::http::{Cache, HttpClient, HttpOptions};
use crate::resolve::Fetch;

const METADATA: &[u8] =
    b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: click>=8\n\nA long description.\n";

/// Bytes that do not compress (a tiny xorshift generator).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A wheel whose members are written in this order.
fn wheel(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut buf);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap();
    buf.into_inner()
}

fn metadata() -> (String, Vec<u8>) {
    ("demo-1.0.dist-info/METADATA".to_string(), METADATA.to_vec())
}

/// Serves ranges of `file` like a server with range support; records the requests.
async fn lazy(file: &[u8]) -> (Result<Vec<u8>, LazyError>, Vec<ByteRange>) {
    let requests = Mutex::new(Vec::new());
    let total = file.len() as u64;
    let result = read_member(
        |range| {
            requests.lock().unwrap().push(range);
            let (start, end) = match range {
                ByteRange::Suffix(n) => (total.saturating_sub(n), total),
                ByteRange::Prefix(n) => (0, n.min(total)),
                ByteRange::Span { start, end } => (start, end.min(total)),
            };
            let bytes = Bytes::copy_from_slice(&file[start as usize..end as usize]);
            async move { Ok(Ranged::Part { start, total, bytes }) }
        },
        is_wheel_metadata,
        "METADATA",
    )
    .await;
    (result, requests.into_inner().unwrap())
}

#[tokio::test]
async fn metadata_near_the_end_takes_one_request() {
    let file = wheel(&[
        ("demo/big.bin".into(), noise(300_000, 1)),
        metadata(),
        ("demo-1.0.dist-info/RECORD".into(), b"x".to_vec()),
    ]);
    let (result, requests) = lazy(&file).await;
    assert_eq!(result.unwrap(), METADATA);
    assert_eq!(requests, [ByteRange::Suffix(TAIL), ByteRange::Prefix(HEAD)]);
}

#[tokio::test]
async fn metadata_before_another_package_still_comes_with_the_tail() {
    // black's cp312 wheel: `.dist-info` sorts before `blib2to3/`, ~116 KB of it after METADATA.
    let file = wheel(&[
        ("black/big.bin".into(), noise(300_000, 8)),
        metadata(),
        ("blib2to3/pgen.bin".into(), noise(110_000, 9)),
    ]);
    let (result, requests) = lazy(&file).await;
    assert_eq!(result.unwrap(), METADATA);
    assert_eq!(requests, [ByteRange::Suffix(TAIL), ByteRange::Prefix(HEAD)]);
}

#[tokio::test]
async fn metadata_at_the_front_comes_with_the_head() {
    // maturin's layout (ruff): METADATA first, the binary after it.
    let file = wheel(&[metadata(), ("demo/big.bin".into(), noise(300_000, 2))]);
    let (result, requests) = lazy(&file).await;
    assert_eq!(result.unwrap(), METADATA);
    assert_eq!(requests, [ByteRange::Suffix(TAIL), ByteRange::Prefix(HEAD)]);
}

#[tokio::test]
async fn metadata_in_the_middle_is_fetched_in_one_more_request() {
    let file = wheel(&[("demo/a.bin".into(), noise(300_000, 6)), metadata(), ("demo/b.bin".into(), noise(300_000, 7))]);
    let (result, requests) = lazy(&file).await;
    assert_eq!(result.unwrap(), METADATA);
    assert_eq!(requests.len(), 3, "{requests:?}");
    let ByteRange::Span { start, end } = requests[2] else { panic!("{requests:?}") };
    assert!(start > 300_000 && end - start < 4096, "only the member is fetched, not the file: {requests:?}");
}

#[tokio::test]
async fn a_slow_head_does_not_hold_up_a_range_past_it() {
    // The tail points past the head: the member is asked for at once, the head never answers.
    let file = wheel(&[("demo/a.bin".into(), noise(300_000, 6)), metadata(), ("demo/b.bin".into(), noise(300_000, 7))]);
    let total = file.len() as u64;
    let file = &file;
    let read = read_member(
        |range| async move {
            let (start, end) = match range {
                ByteRange::Prefix(_) => std::future::pending().await,
                ByteRange::Suffix(n) => (total - n, total),
                ByteRange::Span { start, end } => (start, end.min(total)),
            };
            Ok(Ranged::Part { start, total, bytes: Bytes::copy_from_slice(&file[start as usize..end as usize]) })
        },
        is_wheel_metadata,
        "METADATA",
    );
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), read).await.expect("held up by the head");
    assert_eq!(result.unwrap(), METADATA);
}

#[tokio::test]
async fn a_central_directory_longer_than_the_tail_is_completed() {
    let mut members: Vec<(String, Vec<u8>)> =
        (0..1500).map(|i| (format!("demo/a/rather/long/path/to/module_number_{i:05}.py"), Vec::new())).collect();
    members.push(metadata());
    let file = wheel(&members);
    let (result, requests) = lazy(&file).await;
    assert_eq!(result.unwrap(), METADATA);
    assert!(requests.len() >= 2, "{requests:?}");
    let fetched: u64 = requests
        .iter()
        .map(|r| match *r {
            ByteRange::Suffix(n) | ByteRange::Prefix(n) => n,
            ByteRange::Span { start, end } => end - start,
        })
        .sum();
    assert!(fetched < file.len() as u64, "fetched {fetched} of {} bytes", file.len());
}

#[tokio::test]
async fn small_files_and_missing_metadata() {
    let file = wheel(&[metadata()]);
    let (result, requests) = lazy(&file).await;
    assert_eq!(result.unwrap(), METADATA);
    assert_eq!(requests, [ByteRange::Suffix(TAIL), ByteRange::Prefix(HEAD)]);

    let (result, _) = lazy(&wheel(&[("demo/__init__.py".into(), b"".to_vec())])).await;
    match result {
        Err(LazyError::Malformed(m)) => assert_eq!(m, "the wheel has no METADATA"),
        other => panic!("{other:?}"),
    }
    let (result, _) = lazy(&noise(100_000, 3)).await;
    assert!(matches!(result, Err(LazyError::Malformed(m)) if m.starts_with("not a wheel")));
}

#[test]
fn content_ranges_and_range_headers() {
    assert_eq!(crate::http::parse_content_range("bytes 10-19/100"), Some((10, 100)));
    assert_eq!(crate::http::parse_content_range("bytes 0-99/100"), Some((0, 100)));
    assert_eq!(crate::http::parse_content_range("bytes 0-100/100"), None);
    assert_eq!(crate::http::parse_content_range("bytes 0-9/*"), None);
    assert_eq!(ByteRange::Suffix(5).header(), "bytes=-5");
    assert_eq!(ByteRange::Span { start: 3, end: 10 }.header(), "bytes=3-9");
    assert!(is_wheel_metadata("a-1.dist-info/METADATA"));
    assert!(!is_wheel_metadata("a/b-1.dist-info/METADATA"));
}

/// A loopback HTTP/1.1 server for one file that honours `Range` (single ranges); records the
/// `Range` header of every request (`None` for a plain GET).
struct RangeServer {
    url: String,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

impl RangeServer {
    fn start(file: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/demo-1.0-py3-none-any.whl", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let headers = crate::http::tests::request_headers(&stream);
                let range = headers.into_iter().find(|(k, _)| k == "range").map(|(_, v)| v);
                seen.lock().unwrap().push(range.clone());
                let total = file.len();
                let span = range.as_deref().and_then(|r| r.strip_prefix("bytes=")).map(|r| match r.split_once('-') {
                    Some(("", n)) => (total - n.parse::<usize>().unwrap().min(total), total - 1),
                    Some((a, b)) => (a.parse().unwrap(), b.parse::<usize>().unwrap().min(total - 1)),
                    None => (0, total - 1),
                });
                let (head, body) = match span {
                    Some((a, b)) => (
                        format!(
                            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{total}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b + 1 - a
                        ),
                        &file[a..=b],
                    ),
                    None => {
                        (format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"), &file[..])
                    }
                };
                let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body));
            }
        });
        Self { url, ranges }
    }
}

fn client(cache: &std::path::Path, offline: bool) -> HttpClient {
    HttpClient::new(HttpOptions { cache_dir: Some(cache.to_path_buf()), offline, ..HttpOptions::default() }).unwrap()
}

#[tokio::test]
async fn the_client_reads_metadata_with_ranges_and_caches_only_the_metadata() {
    let file = wheel(&[metadata(), ("demo/big.bin".into(), noise(300_000, 4))]);
    let server = RangeServer::start(file.clone());
    let cache = tempfile::tempdir().unwrap();
    let got = client(cache.path(), false).wheel_metadata(&server.url).await.unwrap();
    assert_eq!(&got[..], METADATA);
    let ranges = server.ranges.lock().unwrap().clone();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert!(ranges.iter().all(Option::is_some), "no full download: {ranges:?}");
    assert!(
        ranges.contains(&Some(format!("bytes=-{TAIL}"))) && ranges.contains(&Some(format!("bytes=0-{}", HEAD - 1)))
    );
    // A partial body is never stored as the URL's body; the METADATA is, under its own key.
    assert!(Cache::new(cache.path()).read(&server.url).is_none());
    // Another run, offline, finds it.
    assert_eq!(&client(cache.path(), true).wheel_metadata(&server.url).await.unwrap()[..], METADATA);
    assert_eq!(server.ranges.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_server_that_ignores_ranges_costs_one_full_download() {
    let root = tempfile::tempdir().unwrap();
    let file = wheel(&[metadata(), ("demo/big.bin".into(), noise(300_000, 5))]);
    std::fs::write(root.path().join("demo-1.0-py3-none-any.whl"), &file).unwrap();
    let server = FixtureServer::start(root.path()).unwrap();
    let url = server.url("/demo-1.0-py3-none-any.whl");
    let cache = tempfile::tempdir().unwrap();
    let got = client(cache.path(), false).wheel_metadata(&url).await.unwrap();
    assert_eq!(&got[..], METADATA);
    // The tail's answer is the whole file; the head's is dropped unread (or, when the tail
    // already answered, the head request is cancelled before the server sees it).
    let statuses = server.statuses("/demo-1.0-py3-none-any.whl");
    assert!(matches!(statuses.as_slice(), [200] | [200, 200]), "{statuses:?}");
    assert_eq!(&client(cache.path(), true).wheel_metadata(&url).await.unwrap()[..], METADATA);

    // Not a wheel: a clear error naming the URL.
    std::fs::write(root.path().join("bad.whl"), b"not a zip").unwrap();
    let err = client(cache.path(), false).wheel_metadata(&server.url("/bad.whl")).await.unwrap_err();
    assert!(matches!(&err, FetchError::Malformed { message, .. } if message.starts_with("not a wheel")), "{err:?}");
}
