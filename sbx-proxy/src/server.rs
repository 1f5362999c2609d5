//! Starting and stopping the proxy: options, listeners, the accept loop and connection limits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::ProxyError;
use crate::audit::{AuditLog, audit_log_path};
use crate::ca::{CertificateAuthority, UpstreamRoots};
use crate::inject::{Injection, InjectionRule};
use crate::io::ClientIo;
use crate::policy::{Policy, PolicyConfig};
use crate::resolve::{Resolve, SystemResolver};

/// Resource limits. Exceeding one closes (or refuses) that connection only.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head (request line plus headers) accepted; larger gets `431`.
    /// Values below 8 KiB are raised to 8 KiB.
    pub max_header_bytes: usize,
    /// Time a client has to send a complete request head, and a TLS ClientHello after
    /// `CONNECT` to an intercepted host (defends against slowloris).
    pub header_read_timeout: Duration,
    /// A connection or tunnel that moves no byte for this long is closed.
    pub idle_timeout: Duration,
    /// Time allowed for resolving a name and for connecting upstream.
    pub connect_timeout: Duration,
    /// Client connections served at once; more are answered `503` and closed.
    pub max_connections: usize,
    /// Buffer per tunnel direction.
    pub tunnel_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            max_connections: 1024,
            tunnel_buffer_bytes: 64 * 1024,
        }
    }
}

/// Everything the proxy needs to run for one sandbox.
pub struct ProxyOptions {
    /// The sandbox name (written into every audit line and the CA's subject).
    pub sandbox: String,
    /// The sandbox's state directory; the audit log goes here.
    pub state_dir: PathBuf,
    /// The network policy.
    pub policy: PolicyConfig,
    /// Credential injection rules (their hosts are the only ones whose TLS is terminated).
    pub injections: Vec<InjectionRule>,
    /// Unix socket to listen on (how sandboxes reach the proxy). A stale socket file is replaced.
    pub socket_path: Option<PathBuf>,
    /// Loopback TCP address to listen on as well (port 0 picks a free port).
    pub tcp_addr: Option<SocketAddr>,
    /// Name resolution (defaults to the system resolver).
    pub resolver: Arc<dyn Resolve>,
    /// Roots trusted for upstream TLS of intercepted hosts.
    pub upstream_roots: UpstreamRoots,
    /// The sandbox CA; generated when `None`.
    pub ca: Option<CertificateAuthority>,
    /// Ports on which a tunnel must start with a TLS ClientHello unless its rule allows raw TCP.
    pub tls_ports: Vec<u16>,
    /// Resource limits.
    pub limits: Limits,
}

impl ProxyOptions {
    /// Options with defaults: balanced policy, no listeners yet, system resolver, webpki roots,
    /// a fresh CA, TLS port 443, default limits.
    pub fn new(sandbox: impl Into<String>, state_dir: impl Into<PathBuf>) -> ProxyOptions {
        ProxyOptions {
            sandbox: sandbox.into(),
            state_dir: state_dir.into(),
            policy: PolicyConfig::default(),
            injections: Vec::new(),
            socket_path: None,
            tcp_addr: None,
            resolver: Arc::new(SystemResolver),
            upstream_roots: UpstreamRoots::default(),
            ca: None,
            tls_ports: vec![443],
            limits: Limits::default(),
        }
    }
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub sandbox: String,
    pub policy: Policy,
    pub injections: Vec<Injection>,
    pub resolver: Arc<dyn Resolve>,
    pub ca: CertificateAuthority,
    pub upstream_tls: Arc<rustls::ClientConfig>,
    pub tls_ports: Vec<u16>,
    pub limits: Limits,
    pub audit: AuditLog,
}

/// The proxy. See [`Proxy::start`].
#[derive(Debug)]
pub struct Proxy;

/// A running proxy. Dropping it does not stop it; call [`shutdown`](Self::shutdown).
#[derive(Debug)]
pub struct ProxyHandle {
    socket_path: Option<PathBuf>,
    tcp_addr: Option<SocketAddr>,
    ca_cert_pem: String,
    audit_log: PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyHandle {
    /// The Unix socket the proxy listens on.
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket_path.as_deref()
    }

    /// The loopback TCP address the proxy listens on (with the actual port).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The CA certificate (PEM) the sandbox must trust for intercepted hosts.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The audit log file.
    pub fn audit_log_path(&self) -> &Path {
        &self.audit_log
    }

    /// Stops listening, closes every connection and removes the socket file.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Waits until the proxy stops (it only stops through [`shutdown`](Self::shutdown) or a
    /// panic), for `sbx proxy` running in the foreground.
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Proxy {
    /// Validates the options, opens the listeners and starts serving on the current tokio
    /// runtime.
    pub async fn start(options: ProxyOptions) -> Result<ProxyHandle, ProxyError> {
        if options.socket_path.is_none() && options.tcp_addr.is_none() {
            return Err(ProxyError::Options("give a Unix socket path, a loopback TCP address, or both".into()));
        }
        if let Some(addr) = options.tcp_addr
            && !addr.ip().is_loopback()
        {
            return Err(ProxyError::Options(format!("the TCP listener must be on loopback, not {addr}")));
        }
        let policy = Policy::new(options.policy)?;
        let injections = options.injections.iter().map(Injection::compile).collect::<Result<Vec<_>, _>>()?;
        let ca = match options.ca {
            Some(ca) => ca,
            None => CertificateAuthority::generate(&options.sandbox)?,
        };
        let upstream_tls = options.upstream_roots.client_config()?;
        let audit = AuditLog::open(&options.state_dir)?;
        let unix = match &options.socket_path {
            Some(path) => Some(bind_unix(path).await?),
            None => None,
        };
        let tcp = match options.tcp_addr {
            Some(addr) => {
                Some(bind_tcp(addr).map_err(|source| ProxyError::Listen { address: addr.to_string(), source })?)
            }
            None => None,
        };
        let tcp_addr = match &tcp {
            Some(l) => Some(l.local_addr().map_err(|source| ProxyError::Listen { address: "tcp".into(), source })?),
            None => None,
        };
        let ca_cert_pem = ca.cert_pem().to_owned();
        let shared = Arc::new(Shared {
            sandbox: options.sandbox,
            policy,
            injections,
            resolver: options.resolver,
            ca,
            upstream_tls,
            tls_ports: options.tls_ports,
            limits: options.limits,
            audit,
        });
        let (stop, stopped) = watch::channel(false);
        let socket_path = options.socket_path.clone();
        let task = tokio::spawn(accept_loop(unix, tcp, shared, stopped, socket_path.clone()));
        Ok(ProxyHandle {
            socket_path,
            tcp_addr,
            ca_cert_pem,
            audit_log: audit_log_path(&options.state_dir),
            stop,
            task,
        })
    }
}

/// A TCP listener with a deep accept queue (4096, capped by `net.core.somaxconn`): a burst of
/// connections beyond tokio's default of 1024 made the kernel fall back to SYN cookies, and some
/// of those connections were reset once data flowed.
fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn bind_unix(path: &Path) -> Result<UnixListener, ProxyError> {
    let err = |source| ProxyError::Listen { address: path.display().to_string(), source };
    if path.exists() {
        // A live proxy answers; a stale socket file from a crashed one does not.
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "a proxy is already listening")));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    UnixListener::bind(path).map_err(err)
}

async fn accept_unix(l: &Option<UnixListener>) -> std::io::Result<ClientIo> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| ClientIo::Unix(s)),
        None => std::future::pending().await,
    }
}

async fn accept_tcp(l: &Option<TcpListener>) -> std::io::Result<ClientIo> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            ClientIo::Tcp(s)
        }),
        None => std::future::pending().await,
    }
}

async fn accept_loop(
    unix: Option<UnixListener>,
    tcp: Option<TcpListener>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    socket_path: Option<PathBuf>,
) {
    let permits = Arc::new(Semaphore::new(shared.limits.max_connections));
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            r = accept_unix(&unix) => r,
            r = accept_tcp(&tcp) => r,
        };
        let client = match accepted {
            Ok(client) => client,
            Err(_) => {
                // Out of file descriptors or a connection reset before accept: back off briefly.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let shared = shared.clone();
                tasks.spawn(async move {
                    crate::http::serve_client(client, shared).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tasks.spawn(reject_busy(client));
            }
        }
    }
    tasks.shutdown().await;
    if let Some(path) = socket_path {
        let _ = std::fs::remove_file(path);
    }
}

async fn reject_busy(mut client: ClientIo) {
    let body = "sbx proxy: too many connections at once; retry later\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        let _ = client.write_all(response.as_bytes()).await;
        let _ = client.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
