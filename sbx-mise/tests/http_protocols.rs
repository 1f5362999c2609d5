//! The HTTP client opens one connection per HTTPS host, even for a burst of concurrent
//! requests (HTTP/2 from the first byte), and still reaches hosts that speak only HTTP/1.1.
//!
//! Real TLS on loopback, with a test CA that the client trusts through `SSL_CERT_FILE` (as a
//! user behind a TLS-inspecting proxy would); one test function, so the variable is set before
//! any other thread exists.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sbx_fixtures::tls::TestCa;
use sbx_mise::http::{HttpClient, HttpOptions};
use sbx_mise::resolve::Fetch;

/// What a server speaks.
#[derive(Clone, Copy)]
enum Speaks {
    /// HTTP/2 and HTTP/1.1, offered by ALPN (like every public registry).
    Both,
    /// Only HTTP/1.1: no ALPN, an HTTP/1.1-only server behind TLS (an old mirror).
    Http1Only,
}

/// An HTTPS server on loopback answering `<version> <path>`; returns its address and a count
/// of the TCP connections it accepted.
async fn server(mut config: rustls::ServerConfig, speaks: Speaks) -> (SocketAddr, Arc<AtomicUsize>) {
    config.alpn_protocols = match speaks {
        Speaks::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Speaks::Http1Only => Vec::new(),
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let text = format!("{:?} {}", req.version(), req.uri().path());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                let io = TokioIo::new(tls);
                let _ = match speaks {
                    Speaks::Both => {
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    }
                    Speaks::Http1Only => hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                        .map_err(Into::into),
                };
            });
        }
    });
    (addr, accepted)
}

/// Sends 24 GETs to `base` at once and returns the answers in order.
async fn burst(client: &HttpClient, base: &str) -> Vec<String> {
    let urls: Vec<String> = (0..24).map(|i| format!("{base}/pkg-{i}")).collect();
    let bodies = futures::future::join_all(urls.iter().map(|u| client.get(u))).await;
    bodies.into_iter().map(|b| String::from_utf8(b.unwrap().to_vec()).unwrap()).collect()
}

#[test]
fn one_connection_per_https_host_and_http1_hosts_still_answer() {
    let ca = TestCa::new(&["localhost"]).unwrap();
    let config = (*ca.server_config).clone();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    // SAFETY: no other thread exists yet in this test binary (one test, runtime built below).
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca_file) };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let (h2_addr, h2_accepted) = server(config.clone(), Speaks::Both).await;
        let (h1_addr, h1_accepted) = server(config, Speaks::Http1Only).await;
        let options = |name: &str| HttpOptions { cache_dir: Some(dir.path().join(name)), ..HttpOptions::default() };

        // A burst to a host that speaks HTTP/2: every request shares one connection.
        let client = HttpClient::new(options("h2")).unwrap();
        let answers = burst(&client, &format!("https://localhost:{}", h2_addr.port())).await;
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(answer, &format!("HTTP/2.0 /pkg-{i}"));
        }
        assert_eq!(h2_accepted.load(Ordering::SeqCst), 1, "one TLS connection for 24 concurrent requests");

        // A host that speaks only HTTP/1.1: the first contact over HTTP/2 fails, every request
        // is asked again over HTTP/1.1 at once, and all of them are answered.
        let client = HttpClient::new(options("h1")).unwrap();
        let answers = burst(&client, &format!("https://localhost:{}", h1_addr.port())).await;
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(answer, &format!("HTTP/1.1 /pkg-{i}"));
        }
        // Later requests go straight to HTTP/1.1, without another failed try.
        let before = h1_accepted.load(Ordering::SeqCst);
        let again = client.get(&format!("https://localhost:{}/later", h1_addr.port())).await.unwrap();
        assert_eq!(&again[..], b"HTTP/1.1 /later");
        assert!(h1_accepted.load(Ordering::SeqCst) <= before + 1);
    });
}
