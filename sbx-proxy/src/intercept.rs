//! Credential injection: for hosts with an injection rule only, terminate the client's TLS
//! with a certificate from the sandbox CA, replace the sentinel with the real secret in the
//! configured header, and re-encrypt to the real upstream with normal certificate verification.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::audit::{AuditEntry, Decision};
use crate::clienthello::{FirstFlight, MAX_HELLO_BYTES, parse_first_flight};
use crate::gate::{self, Admitted};
use crate::inject::Injection;
use crate::io::{Activity, ClientIo, Counters, Rewind, Touching, Tracked};
use crate::refusal::Refusal;
use crate::server::Shared;
use crate::target::{Host, Target};
use crate::tunnel::{FirstFlightRefusal, Inspector, Verdict};
use crate::upstream::{self, AuditedBody, ProxyBody, UpstreamConn, strip_hop_by_hop, text_response};

/// An admitted tunnel to a host with an injection rule.
pub(crate) struct Intercept {
    pub shared: Arc<Shared>,
    pub target: Target,
    pub admitted: Admitted,
    pub injection: Injection,
    pub entry: AuditEntry,
    pub started: Instant,
    pub activity: Activity,
}

/// Per-intercepted-connection state for the inner HTTP service.
struct Inner {
    shared: Arc<Shared>,
    target: Target,
    name: String,
    admitted: Admitted,
    injection: Injection,
    activity: Activity,
    /// The TCP connection opened at `CONNECT` time, used for the first upstream TLS session.
    first_tcp: tokio::sync::Mutex<Option<TcpStream>>,
    upstream: tokio::sync::Mutex<Option<UpstreamConn>>,
}

impl Intercept {
    /// Reads and checks the ClientHello, terminates TLS and serves the inner requests.
    pub async fn run(self, mut client: Rewind<ClientIo>, upstream_tcp: TcpStream) {
        let Intercept { shared, target, admitted, injection, mut entry, started, activity } = self;
        let Host::Name(name) = target.host.clone() else { return };
        let inspector = Inspector { target: target.clone(), require_tls: true };
        let mut first = Vec::new();
        let read_hello = async {
            let mut chunk = [0u8; 4096];
            loop {
                let n = client.read(&mut chunk).await?;
                first.extend_from_slice(&chunk[..n]);
                let verdict = inspector.check(&first, n == 0);
                if !matches!(verdict, Verdict::NeedMore) || first.len() > MAX_HELLO_BYTES {
                    return Ok::<_, std::io::Error>(verdict);
                }
            }
        };
        let verdict = match tokio::time::timeout(shared.limits.header_read_timeout, read_hello).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(e)) => return finish(&shared, entry, started, Decision::Error, Some(format!("client: {e}"))),
            Err(_) => {
                let reason = Some("no TLS ClientHello within the header read timeout".into());
                return finish(&shared, entry, started, Decision::Error, reason);
            }
        };
        match verdict {
            Verdict::Pass if matches!(parse_first_flight(&first), FirstFlight::ClientHello { .. }) => {}
            Verdict::Refuse(FirstFlightRefusal::NotTls(r) | FirstFlightRefusal::Tls(r)) => {
                return deny(&shared, &mut client, entry, started, &r).await;
            }
            _ => {
                let r = Refusal::impossible(
                    target.to_string(),
                    "this host's credentials are injected, so only TLS is accepted".into(),
                    "intercepted hosts need TLS",
                    "the proxy injects credentials for this host and only speaks TLS to it",
                );
                return deny(&shared, &mut client, entry, started, &r).await;
            }
        }
        let server_config = match shared.ca.server_config(&name) {
            Ok(config) => config,
            Err(e) => return finish(&shared, entry, started, Decision::Error, Some(e.to_string())),
        };
        let accept = TlsAcceptor::from(server_config).accept(Rewind::new(Bytes::from(first), client));
        let tls = match tokio::time::timeout(shared.limits.header_read_timeout, accept).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                let reason = Some(format!("client TLS handshake failed (does the sandbox trust the sbx CA?): {e}"));
                return finish(&shared, entry, started, Decision::Error, reason);
            }
            Err(_) => {
                return finish(&shared, entry, started, Decision::Error, Some("client TLS handshake timed out".into()));
            }
        };
        let inner = Arc::new(Inner {
            shared: shared.clone(),
            target,
            name,
            admitted,
            injection,
            activity: activity.clone(),
            first_tcp: tokio::sync::Mutex::new(Some(upstream_tcp)),
            upstream: tokio::sync::Mutex::new(None),
        });
        let service_inner = inner.clone();
        let service = service_fn(move |req| {
            let inner = service_inner.clone();
            async move { Ok::<_, Infallible>(inner.forward(req).await) }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(shared.limits.header_read_timeout)
            .max_buf_size(shared.limits.max_header_bytes.max(8192));
        let conn = builder.serve_connection(TokioIo::new(Touching::new(tls, activity.clone())), service);
        tokio::select! {
            _ = conn => {}
            _ = activity.idle(shared.limits.idle_timeout) => entry.reason = Some("closed after the idle timeout".into()),
        }
        entry.injected = Some(inner.injection.service.clone());
        finish(&shared, entry, started, Decision::Allow, None);
    }
}

fn finish(shared: &Shared, mut entry: AuditEntry, started: Instant, decision: Decision, reason: Option<String>) {
    entry.decision = decision;
    if reason.is_some() {
        entry.reason = reason;
    }
    upstream::record(shared, entry, started);
}

async fn deny(shared: &Shared, client: &mut Rewind<ClientIo>, mut entry: AuditEntry, started: Instant, r: &Refusal) {
    let _ = client.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]).await;
    let _ = client.shutdown().await;
    entry.rule = r.rule.to_string();
    finish(shared, entry, started, Decision::Deny, Some(r.reason.clone()));
}

impl Inner {
    /// Whether a `Host` header or absolute URI names the intercepted host (or is absent).
    fn names_this_host(&self, authority: Option<&str>) -> bool {
        authority
            .is_none_or(|a| Target::parse_with_default(a, self.target.port).is_ok_and(|t| t.host == self.target.host))
    }

    async fn forward(&self, mut req: Request<Incoming>) -> Response<ProxyBody> {
        let shared = &self.shared;
        let method = crate::target::truncate(req.method().as_str());
        let (mut entry, started) = upstream::start(shared, &method, &self.target);
        entry.rule = self.admitted.rule.clone();
        let host_header = req.headers().get(header::HOST).map(|h| h.to_str().unwrap_or("\u{0}"));
        if !self.names_this_host(host_header) || !self.names_this_host(req.uri().authority().map(|a| a.as_str())) {
            let refusal = Refusal::impossible(
                self.target.to_string(),
                "the request's Host names another host than the tunnel".into(),
                "Host must equal the CONNECT host",
                "requests inside a tunnel must go to the tunnel's host",
            );
            entry.decision = Decision::Deny;
            entry.rule = refusal.rule.to_string();
            entry.reason = Some(refusal.reason.clone());
            upstream::record(shared, entry, started);
            return text_response(StatusCode::FORBIDDEN, refusal.body(&method));
        }
        if self.injection.apply(req.headers_mut()) {
            entry.injected = Some(self.injection.service.clone());
        }
        strip_hop_by_hop(req.headers_mut());
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
        if let Ok(uri) = hyper::Uri::builder().path_and_query(path).build() {
            *req.uri_mut() = uri;
        }
        if !req.headers().contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(&self.name)
        {
            req.headers_mut().insert(header::HOST, host);
        }
        let mut slot = self.upstream.lock().await;
        if !slot.as_ref().is_some_and(|u| u.reusable_for(&self.target, &self.admitted.addrs)) {
            *slot = None;
            match self.connect().await {
                Ok(conn) => *slot = Some(conn),
                Err(message) => return self.fail(entry, started, message),
            }
        }
        let Some(conn) = slot.as_mut() else { return self.fail(entry, started, "no upstream connection".into()) };
        entry.addr = Some(conn.addr.ip().to_string());
        let base = conn.counters.snapshot();
        let counters = conn.counters.clone();
        match conn.sender.send_request(req).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                let body = AuditedBody::new(body, shared.clone(), entry, started, counters, base);
                Response::from_parts(parts, body.boxed())
            }
            Err(e) => {
                *slot = None;
                self.fail(entry, started, format!("upstream request failed: {e}"))
            }
        }
    }

    fn fail(&self, mut entry: AuditEntry, started: Instant, message: String) -> Response<ProxyBody> {
        entry.decision = Decision::Error;
        entry.reason = Some(message.clone());
        upstream::record(&self.shared, entry, started);
        text_response(StatusCode::BAD_GATEWAY, format!("sbx proxy: {message}\n"))
    }

    /// Opens a verified TLS connection to the real upstream, on a checked address.
    async fn connect(&self) -> Result<UpstreamConn, String> {
        let limits = &self.shared.limits;
        let reused = self.first_tcp.lock().await.take();
        let (tcp, addr) = match reused {
            Some(tcp) => {
                let addr = tcp.peer_addr().map_err(|e| format!("upstream: {e}"))?;
                (tcp, addr)
            }
            None => gate::connect(&self.admitted.addrs, limits.connect_timeout).await?,
        };
        let counters = Arc::new(Counters::default());
        let tracked = Tracked::new(tcp, self.activity.clone(), counters.clone());
        let server_name = ServerName::try_from(self.name.clone()).map_err(|e| format!("server name: {e}"))?;
        let connect = TlsConnector::from(self.shared.upstream_tls.clone()).connect(server_name, tracked);
        let tls = match tokio::time::timeout(limits.connect_timeout, connect).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(format!("TLS to the real {} failed: {e}", self.name)),
            Err(_) => return Err(format!("TLS to the real {} timed out", self.name)),
        };
        let sender = upstream::handshake(tls).await.map_err(|e| format!("upstream: {e}"))?;
        Ok(UpstreamConn { target: self.target.clone(), addr, sender, counters })
    }
}
