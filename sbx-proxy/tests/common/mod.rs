//! Test fixtures: loopback origins (HTTP, HTTPS with a test CA, raw TCP), a proxy started with
//! a static resolver, and clients (reqwest, curl, raw sockets). Everything binds 127.0.0.1.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sbx_proxy::{
    CidrRule, DomainRule, InjectionRule, Limits, PolicyConfig, Preset, Proxy, ProxyHandle, ProxyOptions,
    StaticResolver, UpstreamRoots,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

pub use sbx_fixtures::tls::TestCa;

/// What an origin saw: (method, path, header dump) per request.
pub type Seen = Arc<Mutex<Vec<(String, String, Vec<(String, String)>)>>>;

async fn origin_service(req: Request<hyper::body::Incoming>, seen: Seen, tag: &'static str) -> Response<Full<Bytes>> {
    let headers =
        req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string())).collect::<Vec<_>>();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    seen.lock().unwrap().push((method, path.clone(), headers));
    Response::new(Full::new(Bytes::from(format!("{tag} origin: {path} ({} bytes)", body.len()))))
}

/// A plain HTTP origin; returns its address and what it saw.
pub async fn http_origin() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let seen = seen2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let seen = seen.clone();
                    async move { Ok::<_, Infallible>(origin_service(req, seen, "http").await) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, seen)
}

/// An HTTPS origin with a certificate from `ca`.
pub async fn https_origin(ca: &TestCa) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let seen = seen2.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let svc = service_fn(move |req| {
                    let seen = seen.clone();
                    async move { Ok::<_, Infallible>(origin_service(req, seen, "https").await) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });
    (addr, seen)
}

/// A raw TCP echo server.
pub async fn echo_origin() -> SocketAddr {
    // A deep accept queue: the load test opens 1,000 tunnels at once, and with tokio's default
    // backlog (1024) the kernel fell back to SYN cookies and some upstream connections were
    // reset mid-tunnel (seen as "Connection reset by peer" in the proxy's audit log).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(LOOPBACK, 0)).unwrap();
    let listener = socket.listen(4096).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Test names: all point at loopback except `metadata.test`.
pub fn resolver() -> StaticResolver {
    StaticResolver::new()
        .with("origin.test", &[LOOPBACK])
        .with("other.test", &[LOOPBACK])
        .with("a.wild.test", &[LOOPBACK])
        .with("deep.a.wild.test", &[LOOPBACK])
        .with("wild.test", &[LOOPBACK])
        .with("rebind.test", &[LOOPBACK])
        .with("api.inject.test", &[LOOPBACK])
        .with("metadata.test", &["169.254.169.254".parse().unwrap()])
        .with("mapped.test", &["::ffff:127.0.0.1".parse().unwrap()])
}

/// A policy from short lists; every rule's source is `test.toml:<n>`.
pub fn policy(preset: Preset, allowed: &[&str], blocked: &[&str], allowed_cidrs: &[&str]) -> PolicyConfig {
    PolicyConfig {
        preset,
        preset_source: "test.toml:1".into(),
        allowed_domains: allowed.iter().map(|r| DomainRule::parse(r, "test.toml:2").unwrap()).collect(),
        blocked_domains: blocked.iter().map(|r| DomainRule::parse(r, "test.toml:3").unwrap()).collect(),
        allowed_cidrs: allowed_cidrs.iter().map(|r| CidrRule::parse(r, "test.toml:4").unwrap()).collect(),
        blocked_cidrs: vec![],
    }
}

/// A running proxy with its state dir.
pub struct TestProxy {
    pub handle: ProxyHandle,
    pub dir: tempfile::TempDir,
}

impl TestProxy {
    pub fn addr(&self) -> SocketAddr {
        self.handle.tcp_addr().unwrap()
    }
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }
    pub fn socket(&self) -> PathBuf {
        self.handle.socket_path().unwrap().to_path_buf()
    }
    pub fn log(&self) -> Vec<sbx_proxy::AuditEntry> {
        sbx_proxy::read_audit_log(&self.dir.path().join("state")).unwrap()
    }

    /// The log once it has at least `n` lines (tunnels and bodies log when they finish).
    pub async fn log_at_least(&self, n: usize) -> Vec<sbx_proxy::AuditEntry> {
        for _ in 0..1000 {
            let log = self.log();
            if log.len() >= n {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.log()
    }
}

pub struct Setup {
    pub policy: PolicyConfig,
    pub injections: Vec<InjectionRule>,
    pub roots: UpstreamRoots,
    pub tls_ports: Vec<u16>,
    pub limits: Limits,
}

impl Setup {
    pub fn new(policy: PolicyConfig) -> Setup {
        Setup {
            policy,
            injections: vec![],
            roots: UpstreamRoots::default(),
            tls_ports: vec![443],
            limits: Limits::default(),
        }
    }

    pub async fn start(self) -> TestProxy {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ProxyOptions::new("test-sandbox", dir.path().join("state"));
        options.policy = self.policy;
        options.injections = self.injections;
        options.socket_path = Some(dir.path().join("proxy.sock"));
        options.tcp_addr = Some(SocketAddr::new(LOOPBACK, 0));
        options.resolver = Arc::new(resolver());
        options.upstream_roots = self.roots;
        options.tls_ports = self.tls_ports;
        options.limits = self.limits;
        let handle = Proxy::start(options).await.unwrap();
        TestProxy { handle, dir }
    }
}

pub async fn start(policy: PolicyConfig) -> TestProxy {
    Setup::new(policy).start().await
}

/// A reqwest client through the proxy, trusting only `roots`.
pub fn client(proxy: &TestProxy, roots: &[&str]) -> reqwest::Client {
    let certs = roots.iter().map(|pem| reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()).collect::<Vec<_>>();
    reqwest::Client::builder()
        .no_proxy()
        .proxy(reqwest::Proxy::all(proxy.url()).unwrap())
        .tls_certs_only(certs)
        .build()
        .unwrap()
}

/// Sends a raw `CONNECT` and returns the stream plus the proxy's response head and body text.
pub async fn raw_connect(proxy: &TestProxy, authority: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    stream.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let mut text = String::from_utf8_lossy(&head).to_string();
    if !text.starts_with("HTTP/1.1 200") {
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        text.push_str(&String::from_utf8_lossy(&rest));
    }
    (stream, text)
}

/// Runs curl with the given arguments; returns (exit code, stdout, stderr).
pub async fn curl(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
