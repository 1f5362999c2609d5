//! The fetch cache against a loopback HTTP server: verification, truncation, tampering.

mod common;

use common::{Reply, Server, artifact, sha256};
use sbx_image::cache::Cache;
use sbx_image::fetch::Fetcher;
use sbx_image::{ImageError, Progress};
use std::sync::Mutex;

#[derive(Default)]
struct Recorder {
    warnings: Mutex<Vec<String>>,
    bytes: Mutex<u64>,
}

impl Progress for Recorder {
    fn download_progress(&self, _url: &str, bytes: u64) {
        *self.bytes.lock().unwrap() += bytes;
    }
    fn warn(&self, message: &str) {
        self.warnings.lock().unwrap().push(message.to_string());
    }
}

fn leftovers(cache: &Cache) -> Vec<String> {
    walkdir::WalkDir::new(cache.root().join("downloads"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn downloads_once_verifies_and_reports_progress() {
    let server = Server::start();
    let body = vec![7u8; 300_000];
    let url = server.route("/a.tar.gz", Reply::Ok(body.clone()));
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(Cache::new(dir.path())).with_parallelism(2);
    let rec = Recorder::default();
    let art = artifact(&url, &body);
    let paths = fetcher.fetch_all(&[art.clone(), art.clone()], &rec).await.unwrap();
    assert_eq!(std::fs::read(&paths[0]).unwrap(), body);
    assert_eq!(server.hits("/a.tar.gz"), 1, "the file lock makes the second fetch a cache hit");
    assert_eq!(*rec.bytes.lock().unwrap(), 300_000);
    fetcher.fetch(&art, &rec).await.unwrap();
    assert_eq!(server.hits("/a.tar.gz"), 1);
}

#[tokio::test]
async fn checksum_mismatch_names_url_and_both_checksums_and_leaves_nothing() {
    let server = Server::start();
    let url = server.route("/evil", Reply::Ok(b"evil".to_vec()));
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let mut art = artifact(&url, b"good");
    art.size = None;
    let err = Fetcher::new(cache.clone()).fetch(&art, &sbx_image::NoProgress).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImageError::ChecksumMismatch { .. }), "{msg}");
    assert!(
        msg.contains(&url) && msg.contains(&sha256(b"good").to_string()) && msg.contains(&sha256(b"evil").to_string()),
        "{msg}"
    );
    assert!(leftovers(&cache).is_empty(), "{:?}", leftovers(&cache));
}

#[tokio::test]
async fn truncated_download_is_detected() {
    let server = Server::start();
    let body = vec![1u8; 100_000];
    let url = server.route("/t", Reply::Truncated(body.clone(), 40_000));
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let err = Fetcher::new(cache.clone()).fetch(&artifact(&url, &body), &sbx_image::NoProgress).await.unwrap_err();
    assert!(matches!(err, ImageError::Download { .. } | ImageError::SizeMismatch { .. }), "{err}");
    assert!(leftovers(&cache).is_empty());
    // A server that sends a short file with a matching length is caught by the size check.
    let url = server.route("/short", Reply::Ok(body[..10].to_vec()));
    let err = Fetcher::new(cache.clone()).fetch(&artifact(&url, &body), &sbx_image::NoProgress).await.unwrap_err();
    assert!(matches!(err, ImageError::SizeMismatch { expected: 100_000, actual: 10, .. }), "{err}");
}

#[tokio::test]
async fn http_errors_are_reported() {
    let server = Server::start();
    let url = server.route("/gone", Reply::Status(503));
    let dir = tempfile::tempdir().unwrap();
    let err =
        Fetcher::new(Cache::new(dir.path())).fetch(&artifact(&url, b"x"), &sbx_image::NoProgress).await.unwrap_err();
    assert!(matches!(err, ImageError::HttpStatus { status: 503, .. }), "{err}");
}

#[tokio::test]
async fn tampered_cache_entry_is_detected_and_replaced() {
    let server = Server::start();
    let body = b"the real artifact".to_vec();
    let url = server.route("/r", Reply::Ok(body.clone()));
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(Cache::new(dir.path()));
    let art = artifact(&url, &body);
    let path = fetcher.fetch(&art, &sbx_image::NoProgress).await.unwrap();
    std::fs::write(&path, b"the fake artifact").unwrap();
    let rec = Recorder::default();
    let again = fetcher.fetch(&art, &rec).await.unwrap();
    assert_eq!(std::fs::read(again).unwrap(), body);
    assert_eq!(server.hits("/r"), 2);
    let warnings = rec.warnings.lock().unwrap();
    assert!(warnings.len() == 1 && warnings[0].contains("damaged"), "{warnings:?}");
}

#[tokio::test]
async fn file_urls_are_verified_too() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mirror.tar");
    std::fs::write(&src, b"mirrored").unwrap();
    let url = format!("file://{}", src.display());
    let cache = Cache::new(dir.path().join("cache"));
    let path = Fetcher::new(cache.clone()).fetch(&artifact(&url, b"mirrored"), &sbx_image::NoProgress).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"mirrored");
    // Same filesystem: linked, not copied.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), std::fs::metadata(&src).unwrap().ino());
    let err =
        Fetcher::new(cache.clone()).fetch(&artifact(&url, b"other!!!"), &sbx_image::NoProgress).await.unwrap_err();
    assert!(matches!(err, ImageError::ChecksumMismatch { .. }), "{err}");
    // The source changed in place (so did the linked cache entry): the next fetch sees a
    // damaged entry and refuses the new bytes instead of using them.
    std::fs::write(&src, b"tampered").unwrap();
    let rec = Recorder::default();
    let err = Fetcher::new(cache).fetch(&artifact(&url, b"mirrored"), &rec).await.unwrap_err();
    assert!(matches!(err, ImageError::ChecksumMismatch { .. }), "{err}");
    assert!(rec.warnings.lock().unwrap().iter().any(|w| w.contains("damaged")));
    let leftovers: Vec<_> =
        std::fs::read_dir(path.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.is_empty(), "no partial files left: {leftovers:?}");
}

#[tokio::test]
async fn credentials_from_a_private_index_s_url_go_with_its_downloads() {
    let server = Server::start();
    let body = b"a wheel from a private index".to_vec();
    let url = server.route("/files/x.whl", Reply::Authorized("Basic X190b2tlbl9fOnMzY3JldA==".into(), body.clone()));
    let dir = tempfile::tempdir().unwrap();
    // Without them: the index refuses, and the error names the URL.
    let err =
        Fetcher::new(Cache::new(dir.path())).fetch(&artifact(&url, &body), &sbx_image::NoProgress).await.unwrap_err();
    assert!(matches!(err, ImageError::HttpStatus { status: 401, .. }), "{err:?}");
    // With the credentials the upstream URL carried (taken out of it, as `sbx` does).
    let mut credentials = sbx_mise::credentials::Credentials::default();
    credentials.take_from(&server.base.replacen("http://", "http://__token__:s3cret@", 1));
    let fetcher = Fetcher::new(Cache::new(dir.path())).with_credentials(credentials);
    let path = fetcher.fetch(&artifact(&url, &body), &sbx_image::NoProgress).await.unwrap();
    assert_eq!(std::fs::read(path).unwrap(), body);
    // Another origin does not get them.
    let other = Server::start();
    let elsewhere =
        other.route("/files/x.whl", Reply::Authorized("Basic X190b2tlbl9fOnMzY3JldA==".into(), body.clone()));
    let err = fetcher.fetch(&artifact(&elsewhere, b"other bytes"), &sbx_image::NoProgress).await.unwrap_err();
    assert!(matches!(err, ImageError::HttpStatus { status: 401, .. }), "{err:?}");
}
