//! The client-facing HTTP/1.1 side: one hyper connection per client, `CONNECT` admission (the
//! tunnel itself runs in [`crate::tunnel`]) and plain-HTTP forwarding of absolute-URI requests.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::audit::Decision;
use crate::gate::{self, Denied};
use crate::io::{Activity, ClientIo, Counters, Touching, Tracked};
use crate::server::Shared;
use crate::target::{Target, truncate};
use crate::tunnel::PendingTunnel;
use crate::upstream::{self, AuditedBody, ProxyBody, UpstreamConn, strip_hop_by_hop, text_response};

/// Per-client-connection state.
struct ConnState {
    shared: Arc<Shared>,
    activity: Activity,
    /// An admitted `CONNECT` waiting for hyper to hand over the raw stream.
    pending: Mutex<Option<PendingTunnel>>,
    /// The upstream connection of the previous plain-HTTP request, for keep-alive.
    upstream: tokio::sync::Mutex<Option<UpstreamConn>>,
}

/// Serves one client connection until it closes, idles out, or becomes a tunnel (which is then
/// run to completion here, so the connection's limit permit covers the tunnel too).
pub(crate) async fn serve_client(client: ClientIo, shared: Arc<Shared>) {
    let activity = Activity::new();
    let state = Arc::new(ConnState {
        shared: shared.clone(),
        activity: activity.clone(),
        pending: Mutex::new(None),
        upstream: tokio::sync::Mutex::new(None),
    });
    let io = TokioIo::new(Touching::new(client, activity.clone()));
    let svc_state = state.clone();
    let service = service_fn(move |req| {
        let state = svc_state.clone();
        async move { Ok::<_, Infallible>(handle(&state, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_read_timeout)
        .max_buf_size(shared.limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::select! {
        _ = conn => {}
        _ = activity.idle(shared.limits.idle_timeout) => return,
    }
    let pending = state.pending.lock().ok().and_then(|mut p| p.take());
    drop(state);
    if let Some(tunnel) = pending {
        crate::tunnel::run(shared, tunnel, activity).await;
    }
}

async fn handle(state: &ConnState, req: Request<Incoming>) -> Response<ProxyBody> {
    if req.method() == Method::CONNECT { connect(state, req).await } else { forward(state, req).await }
}

fn bad_request(message: String) -> Response<ProxyBody> {
    closing(text_response(StatusCode::BAD_REQUEST, message))
}

/// Marks a response as the last on its connection (a refused `CONNECT` leaves nothing to reuse).
fn closing(mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn connect(state: &ConnState, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let shared = &state.shared;
    let target = match req.uri().authority().map(|a| Target::parse_authority(a.as_str())) {
        Some(Ok(target)) => target,
        Some(Err(e)) => return bad_request(format!("sbx proxy: cannot understand the CONNECT target: {e}\n")),
        None => return bad_request("sbx proxy: CONNECT needs a host:port target\n".into()),
    };
    let (mut entry, started) = upstream::start(shared, "CONNECT", &target);
    let admitted = match gate::admit(shared, &target).await {
        Ok(admitted) => admitted,
        Err(denied) => return closing(refuse(shared, entry, started, denied, "CONNECT")),
    };
    match gate::connect(&admitted.addrs, shared.limits.connect_timeout).await {
        Ok((upstream, addr)) => {
            let on_upgrade = hyper::upgrade::on(&mut req);
            entry.addr = Some(addr.ip().to_string());
            entry.rule = admitted.rule.clone();
            let tunnel = PendingTunnel { on_upgrade, target, admitted, upstream, entry, started };
            if let Ok(mut pending) = state.pending.lock() {
                *pending = Some(tunnel);
            }
            upstream::empty_ok()
        }
        Err(message) => {
            entry.rule = admitted.rule;
            closing(refuse(shared, entry, started, Denied::Failed(message), "CONNECT"))
        }
    }
}

/// Answers a refusal or failure and records it.
fn refuse(
    shared: &Shared,
    mut entry: crate::audit::AuditEntry,
    started: Instant,
    denied: Denied,
    method: &str,
) -> Response<ProxyBody> {
    match denied {
        Denied::Refused(refusal) => {
            entry.decision = Decision::Deny;
            entry.rule = refusal.rule.to_string();
            entry.reason = Some(refusal.reason.clone());
            upstream::record(shared, entry, started);
            text_response(StatusCode::FORBIDDEN, refusal.body(method))
        }
        Denied::Failed(message) => {
            entry.decision = Decision::Error;
            entry.reason = Some(message.clone());
            upstream::record(shared, entry, started);
            text_response(StatusCode::BAD_GATEWAY, format!("sbx proxy: {message}\n"))
        }
    }
}

async fn forward(state: &ConnState, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let shared = &state.shared;
    let uri = req.uri().clone();
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return bad_request("sbx proxy: only http:// URIs are forwarded; use CONNECT for TLS\n".into()),
        None => {
            return bad_request(
                "sbx proxy: this is a forward proxy; send absolute URIs (http://host/path) or CONNECT\n".into(),
            );
        }
    }
    let target = match uri.authority().map(|a| Target::parse_with_default(a.as_str(), 80)) {
        Some(Ok(target)) => target,
        Some(Err(e)) => return bad_request(format!("sbx proxy: cannot understand the request target: {e}\n")),
        None => return bad_request("sbx proxy: the request URI has no host\n".into()),
    };
    let method = truncate(req.method().as_str());
    let (mut entry, started) = upstream::start(shared, &method, &target);
    let admitted = match gate::admit(shared, &target).await {
        Ok(admitted) => admitted,
        Err(denied) => return refuse(shared, entry, started, denied, &method),
    };
    entry.rule = admitted.rule.clone();

    // Rewrite to origin form and make `Host` agree with the URI (no Host-header fronting).
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    match Uri::builder().path_and_query(path).build() {
        Ok(origin_form) => *req.uri_mut() = origin_form,
        Err(_) => return bad_request("sbx proxy: invalid request path\n".into()),
    }
    strip_hop_by_hop(req.headers_mut());
    if let Some(authority) = uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        req.headers_mut().insert(header::HOST, host);
    }

    let mut slot = state.upstream.lock().await;
    let reusable = slot.as_ref().is_some_and(|u| u.reusable_for(&target, &admitted.addrs));
    if !reusable {
        *slot = None;
        let (stream, addr) = match gate::connect(&admitted.addrs, shared.limits.connect_timeout).await {
            Ok(connected) => connected,
            Err(message) => return refuse(shared, entry, started, Denied::Failed(message), &method),
        };
        let counters = Arc::new(Counters::default());
        let io = Tracked::new(stream, state.activity.clone(), counters.clone());
        match upstream::handshake(io).await {
            Ok(sender) => *slot = Some(UpstreamConn { target: target.clone(), addr, sender, counters }),
            Err(e) => return refuse(shared, entry, started, Denied::Failed(format!("upstream: {e}")), &method),
        }
    }
    let Some(conn) = slot.as_mut() else {
        return refuse(shared, entry, started, Denied::Failed("no upstream connection".into()), &method);
    };
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
            refuse(shared, entry, started, Denied::Failed(format!("upstream request failed: {e}")), &method)
        }
    }
}
