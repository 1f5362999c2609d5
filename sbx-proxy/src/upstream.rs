//! Shared pieces of HTTP forwarding: response bodies, hop-by-hop header hygiene, upstream
//! HTTP/1.1 connections, and audit records written when a response body finishes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::audit::{AuditEntry, Decision, now_rfc3339};
use crate::io::Counters;
use crate::server::Shared;
use crate::target::Target;

/// The body type of every response the proxy sends to clients.
pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// A short plain-text response.
pub(crate) fn text_response(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// An empty `200` (the answer to an admitted `CONNECT`).
pub(crate) fn empty_ok() -> Response<ProxyBody> {
    Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed())
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those named by `Connection`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        // Never let `Connection` strip the framing headers the body depends on.
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            headers.remove(&name);
        }
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// An HTTP/1.1 connection to an upstream, reused for the next request to the same place.
pub(crate) struct UpstreamConn {
    pub target: Target,
    pub addr: SocketAddr,
    pub sender: SendRequest<Incoming>,
    pub counters: Arc<Counters>,
}

impl UpstreamConn {
    /// Whether it can carry the next request to `target` over one of `addrs`.
    pub fn reusable_for(&self, target: &Target, addrs: &[SocketAddr]) -> bool {
        &self.target == target && addrs.contains(&self.addr) && !self.sender.is_closed() && self.sender.is_ready()
    }
}

/// Runs the HTTP/1.1 client handshake on `io` and drives the connection in the background
/// (the task ends when the sender is dropped or the upstream closes).
pub(crate) async fn handshake<T>(io: T) -> Result<SendRequest<Incoming>, hyper::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Builds the audit entry for a request to `target`, filled in later.
pub(crate) fn entry(shared: &Shared, time: String, method: &str, target: &Target) -> AuditEntry {
    AuditEntry {
        time,
        sandbox: shared.sandbox.clone(),
        method: method.to_owned(),
        host: target.host.to_string(),
        port: target.port,
        addr: None,
        decision: Decision::Allow,
        rule: String::new(),
        reason: None,
        injected: None,
        bytes_up: 0,
        bytes_down: 0,
        duration_ms: 0,
    }
}

/// Records `entry` with its duration measured from `started`.
pub(crate) fn record(shared: &Shared, mut entry: AuditEntry, started: Instant) {
    entry.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    shared.audit.record(&entry);
}

/// Starts an audit entry for a request arriving now.
pub(crate) fn start(shared: &Shared, method: &str, target: &Target) -> (AuditEntry, Instant) {
    (entry(shared, now_rfc3339(), method, target), Instant::now())
}

/// A response body that writes its audit line when it is finished or dropped, so the line has
/// the real byte counts and duration.
pub(crate) struct AuditedBody {
    inner: Incoming,
    pending: Option<(Arc<Shared>, AuditEntry, Instant)>,
    counters: Arc<Counters>,
    base: (u64, u64),
}

impl AuditedBody {
    pub fn new(
        inner: Incoming,
        shared: Arc<Shared>,
        entry: AuditEntry,
        started: Instant,
        counters: Arc<Counters>,
        base: (u64, u64),
    ) -> AuditedBody {
        AuditedBody { inner, pending: Some((shared, entry, started)), counters, base }
    }

    fn finish(&mut self) {
        if let Some((shared, mut entry, started)) = self.pending.take() {
            let (up, down) = self.counters.snapshot();
            entry.bytes_up = up.saturating_sub(self.base.0);
            entry.bytes_down = down.saturating_sub(self.base.1);
            record(&shared, entry, started);
        }
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Body for AuditedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.finish();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
