//! `CONNECT` tunnels: the first-flight check (TLS ClientHello, SNI = CONNECT host, TLS-only
//! ports) and the byte pump in both directions with counters and the idle timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::audit::{AuditEntry, Decision};
use crate::clienthello::{FirstFlight, MAX_HELLO_BYTES, parse_first_flight};
use crate::gate::Admitted;
use crate::io::{Activity, ClientIo, Rewind, Touching};
use crate::policy::Matched;
use crate::refusal::{Fix, Refusal};
use crate::server::Shared;
use crate::splice;
use crate::target::{Host, Target};
use crate::upstream;

/// An admitted `CONNECT` whose `200` is on its way to the client.
pub(crate) struct PendingTunnel {
    pub on_upgrade: OnUpgrade,
    pub target: Target,
    pub admitted: Admitted,
    pub upstream: TcpStream,
    pub entry: AuditEntry,
    pub started: Instant,
}

/// How a tunnel's first flight was refused, which decides what the client is told.
#[derive(Debug)]
pub(crate) enum FirstFlightRefusal {
    /// Not TLS on a TLS port: the client may be speaking HTTP, so answer with a 403 text.
    NotTls(Box<Refusal>),
    /// A TLS problem (SNI mismatch, malformed): answer with a TLS `access_denied` alert.
    Tls(Box<Refusal>),
}

/// Checks the first bytes a client sends into a tunnel.
pub(crate) struct Inspector {
    pub target: Target,
    pub require_tls: bool,
}

/// The outcome of looking at the first flight so far.
pub(crate) enum Verdict {
    NeedMore,
    Pass,
    Refuse(FirstFlightRefusal),
}

impl Inspector {
    /// Judges the bytes seen so far; `eof` says no more will come.
    pub fn check(&self, buf: &[u8], eof: bool) -> Verdict {
        let target = self.target.to_string();
        let tls_refusal = |reason: String| {
            Verdict::Refuse(FirstFlightRefusal::Tls(Box::new(Refusal::impossible(
                target.clone(),
                reason,
                "TLS server name must equal the CONNECT host",
                "the name in the TLS handshake must be the host the tunnel was opened to (no domain fronting)",
            ))))
        };
        match parse_first_flight(buf) {
            FirstFlight::Incomplete if eof || buf.len() > MAX_HELLO_BYTES => {
                tls_refusal("the tunnel ended inside an incomplete TLS ClientHello".into())
            }
            FirstFlight::Incomplete => Verdict::NeedMore,
            FirstFlight::NotTls if self.require_tls => {
                let fix = match &self.target.host {
                    Host::Name(name) => Fix::Add {
                        list: "allowed_domains",
                        text: format!("tcp://{name}:{}", self.target.port),
                        at: None,
                    },
                    Host::Ip(_) => Fix::Impossible("raw TCP on a TLS port is only allowed for named hosts"),
                };
                Verdict::Refuse(FirstFlightRefusal::NotTls(Box::new(Refusal {
                    target: target.clone(),
                    reason: format!(
                        "port {} carries TLS only and the tunnel did not start with a TLS ClientHello",
                        self.target.port
                    ),
                    rule: Matched {
                        list: "tunnel check",
                        text: "TLS ports need TLS".into(),
                        source: "built in".into(),
                    },
                    fix,
                })))
            }
            FirstFlight::NotTls => Verdict::Pass,
            FirstFlight::Malformed(why) => tls_refusal(format!("malformed TLS ClientHello: {why}")),
            FirstFlight::ClientHello { sni: Some(sni) } => match &self.target.host {
                Host::Name(name) if *name == sni => Verdict::Pass,
                _ => tls_refusal(format!("TLS server name `{sni}` differs from the CONNECT host (domain fronting)")),
            },
            FirstFlight::ClientHello { sni: None } => Verdict::Pass,
        }
    }
}

/// Runs an admitted tunnel to completion and writes its audit line.
pub(crate) async fn run(shared: Arc<Shared>, tunnel: PendingTunnel, activity: Activity) {
    let PendingTunnel { on_upgrade, target, admitted, upstream: mut upstream_tcp, mut entry, started } = tunnel;
    let client = match on_upgrade.await {
        Ok(upgraded) => match upgraded.downcast::<TokioIo<Touching<ClientIo>>>() {
            Ok(parts) => Rewind::new(parts.read_buf, parts.io.into_inner().inner),
            Err(_) => return fail(&shared, entry, started, "internal: unexpected upgraded stream type"),
        },
        Err(e) => return fail(&shared, entry, started, &format!("the client left before the tunnel opened: {e}")),
    };
    if let Some(injection) = admitted.inject.clone() {
        let ctx = crate::intercept::Intercept { shared, target, admitted, injection, entry, started, activity };
        return ctx.run(client, upstream_tcp).await;
    }
    let mut client = client;
    let inspector =
        Inspector { require_tls: shared.tls_ports.contains(&target.port) && !admitted.raw_tcp, target: target.clone() };
    let buffer = shared.limits.tunnel_buffer_bytes.max(4096);
    let mut transfer = Transfer::new(&mut client, &mut upstream_tcp, buffer, Some(inspector), activity.clone());
    transfer.handoff = true;
    let mut outcome = tokio::select! {
        r = &mut transfer => r,
        _ = activity.idle(shared.limits.idle_timeout) => Err(End::Idle),
    };
    let (mut up, mut down) = (transfer.up.bytes, transfer.down.bytes);
    drop(transfer);
    if let Ok(Flow::Handoff) = outcome {
        // The first flight passed; the rest moves with splice(2), or through the user-space pump
        // if bytes replayed from the request buffer are still pending.
        let (up2, down2, rest) = match client.drained() {
            Some(inner) => splice_phase(inner, &upstream_tcp, &shared, &activity).await,
            None => {
                let mut transfer = Transfer::new(&mut client, &mut upstream_tcp, buffer, None, activity.clone());
                let rest = tokio::select! {
                    r = &mut transfer => r,
                    _ = activity.idle(shared.limits.idle_timeout) => Err(End::Idle),
                };
                (transfer.up.bytes, transfer.down.bytes, rest)
            }
        };
        up += up2;
        down += down2;
        outcome = rest;
    }
    entry.bytes_up = up;
    entry.bytes_down = down;
    match outcome {
        Ok(_) => {}
        Err(End::Idle) => entry.reason = Some("closed after the idle timeout".into()),
        Err(End::Io(e)) => entry.reason = Some(format!("ended: {e}")),
        Err(End::Refused(refusal)) => {
            let refusal = match refusal {
                FirstFlightRefusal::NotTls(r) => {
                    let body = r.body("CONNECT");
                    let response = format!(
                        "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = client.write_all(response.as_bytes()).await;
                    r
                }
                FirstFlightRefusal::Tls(r) => {
                    // TLS alert record: fatal (2), access_denied (49).
                    let _ = client.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]).await;
                    r
                }
            };
            let _ = client.shutdown().await;
            entry.decision = Decision::Deny;
            entry.rule = refusal.rule.to_string();
            entry.reason = Some(refusal.reason);
        }
    }
    upstream::record(&shared, entry, started);
}

/// Runs both directions with splice(2) until both ends finish, an error, or the idle timeout.
async fn splice_phase(
    client: &ClientIo,
    upstream: &TcpStream,
    shared: &Shared,
    activity: &Activity,
) -> (u64, u64, Result<Flow, End>) {
    let client = match client {
        ClientIo::Tcp(s) => splice::Sock::Tcp(s),
        ClientIo::Unix(s) => splice::Sock::Unix(s),
    };
    let upstream = splice::Sock::Tcp(upstream);
    let (mut up, mut down) = (0u64, 0u64);
    let result = {
        let both = async {
            tokio::try_join!(
                splice::pump(client, upstream, &mut up, activity),
                splice::pump(upstream, client, &mut down, activity)
            )
        };
        tokio::select! {
            r = both => r.map(|_| Flow::Done).map_err(End::Io),
            _ = activity.idle(shared.limits.idle_timeout) => Err(End::Idle),
        }
    };
    (up, down, result)
}

fn fail(shared: &Shared, mut entry: AuditEntry, started: Instant, reason: &str) {
    entry.decision = Decision::Error;
    entry.reason = Some(reason.to_owned());
    upstream::record(shared, entry, started);
}

/// How a transfer finished.
pub(crate) enum Flow {
    /// Both directions reached their end.
    Done,
    /// The first flight passed and nothing is buffered: the caller may switch data paths.
    Handoff,
}

/// Why a transfer stopped early.
pub(crate) enum End {
    Io(io::Error),
    Refused(FirstFlightRefusal),
    Idle,
}

/// One direction of a tunnel.
pub(crate) struct Pump {
    buf: Box<[u8]>,
    pos: usize,
    cap: usize,
    eof: bool,
    done: bool,
    pub bytes: u64,
}

impl Pump {
    fn new(size: usize) -> Pump {
        Pump { buf: vec![0; size].into_boxed_slice(), pos: 0, cap: 0, eof: false, done: false, bytes: 0 }
    }

    fn poll_copy<R, W>(&mut self, cx: &mut Context<'_>, r: &mut R, w: &mut W, act: &Activity) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            if self.pos < self.cap {
                let n = ready!(Pin::new(&mut *w).poll_write(cx, &self.buf[self.pos..self.cap]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
                self.bytes += n as u64;
                act.touch();
                continue;
            }
            if self.eof {
                ready!(Pin::new(&mut *w).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(&mut self.buf);
            ready!(Pin::new(&mut *r).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                self.eof = true;
            } else {
                self.pos = 0;
                self.cap = n;
                act.touch();
            }
        }
    }

    /// Reads the first flight into `first` until the inspector decides; on `Pass` the bytes are
    /// queued in this pump's buffer (which is at least as large as any first flight allowed).
    fn poll_inspect<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        inspector: &Inspector,
        first: &mut Vec<u8>,
        act: &Activity,
    ) -> Poll<Result<(), End>> {
        loop {
            let mut chunk = [0u8; 4096];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut *r).poll_read(cx, &mut rb)).map_err(End::Io)?;
            let n = rb.filled().len();
            let eof = n == 0;
            if eof && first.is_empty() {
                self.eof = true;
                return Poll::Ready(Ok(()));
            }
            first.extend_from_slice(rb.filled());
            act.touch();
            match inspector.check(first, eof) {
                Verdict::NeedMore => continue,
                Verdict::Refuse(refusal) => return Poll::Ready(Err(End::Refused(refusal))),
                Verdict::Pass => {
                    if first.len() > self.buf.len() {
                        self.buf = vec![0; first.len()].into_boxed_slice();
                    }
                    self.buf[..first.len()].copy_from_slice(first);
                    self.pos = 0;
                    self.cap = first.len();
                    self.eof = eof;
                    first.clear();
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

/// Both directions of a tunnel, polled together so server-first protocols work while the
/// client's first flight is still being inspected.
pub(crate) struct Transfer<'a, A, B> {
    client: &'a mut A,
    upstream: &'a mut B,
    pub up: Pump,
    pub down: Pump,
    inspector: Option<Inspector>,
    first: Vec<u8>,
    activity: Activity,
    /// Return [`Flow::Handoff`] as soon as the first flight passed and both buffers are empty.
    pub handoff: bool,
}

impl<'a, A, B> Transfer<'a, A, B> {
    pub fn new(
        client: &'a mut A,
        upstream: &'a mut B,
        buffer: usize,
        inspector: Option<Inspector>,
        activity: Activity,
    ) -> Self {
        Transfer {
            client,
            upstream,
            up: Pump::new(buffer),
            down: Pump::new(buffer),
            inspector,
            first: Vec::new(),
            activity,
            handoff: false,
        }
    }
}

impl<A, B> Future for Transfer<'_, A, B>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    type Output = Result<Flow, End>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.down.done
            && let Poll::Ready(Err(e)) = this.down.poll_copy(cx, this.upstream, this.client, &this.activity)
        {
            return Poll::Ready(Err(End::Io(e)));
        }
        if let Some(inspector) = &this.inspector {
            match this.up.poll_inspect(cx, this.client, inspector, &mut this.first, &this.activity) {
                Poll::Ready(Ok(())) => this.inspector = None,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if !this.up.done
            && let Poll::Ready(Err(e)) = this.up.poll_copy(cx, this.client, this.upstream, &this.activity)
        {
            return Poll::Ready(Err(End::Io(e)));
        }
        if this.up.done && this.down.done {
            return Poll::Ready(Ok(Flow::Done));
        }
        let idle = |p: &Pump| p.pos == p.cap && !p.eof && !p.done;
        if this.handoff && idle(&this.up) && idle(&this.down) {
            return Poll::Ready(Ok(Flow::Handoff));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clienthello::tests::hello;

    fn inspector(host: &str, require_tls: bool) -> Inspector {
        Inspector { target: Target::parse_authority(host).unwrap(), require_tls }
    }

    #[test]
    fn first_flight_verdicts() {
        let i = inspector("api.example.com:443", true);
        assert!(matches!(i.check(&hello(&["api.example.com"], 999), false), Verdict::Pass));
        assert!(matches!(i.check(&hello(&["evil.com"], 999), false), Verdict::Refuse(FirstFlightRefusal::Tls(_))));
        assert!(matches!(i.check(b"GET / HTTP/1.1\r\n", false), Verdict::Refuse(FirstFlightRefusal::NotTls(_))));
        assert!(matches!(i.check(&hello(&["api.example.com"], 999)[..20], false), Verdict::NeedMore));
        let raw = inspector("db.example.com:5432", false);
        assert!(matches!(raw.check(b"\x00\x00\x00\x08", false), Verdict::Pass));
        assert!(matches!(raw.check(&hello(&["evil.com"], 999), false), Verdict::Refuse(_)));
        let ip = inspector("10.0.0.1:443", true);
        assert!(matches!(ip.check(&hello(&["a.com"], 999), false), Verdict::Refuse(_)));
    }
}
