//! `cargo xtask bench proxy`: the egress proxy against direct connections to the same loopback
//! origin, alternated in one run.
//!
//! * throughput: 1 GiB through a `CONNECT` tunnel vs directly (target ≥ 0.9× direct);
//! * latency: small keep-alive HTTP requests directly, forwarded as absolute-URI requests, and
//!   over an established tunnel (target < 1 ms added median).
//!
//! Options: `--gib N` (default 1), `--rounds N` (default 3), `--requests N` (default 2000),
//! `--buffer-kib N` (tunnel buffer per direction, default: the proxy's default).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sbx_proxy::{CidrRule, PolicyConfig, Preset, Proxy, ProxyOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};

const CHUNK: usize = 256 * 1024;

struct Args {
    bytes: u64,
    rounds: usize,
    requests: usize,
    buffer_kib: Option<usize>,
}

fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    let mut parsed = Args { bytes: 1 << 30, rounds: 3, requests: 2000, buffer_kib: None };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--gib" => parsed.bytes = value.parse::<u64>()? << 30,
            "--rounds" => parsed.rounds = value.parse()?,
            "--requests" => parsed.requests = value.parse()?,
            "--buffer-kib" => parsed.buffer_kib = Some(value.parse()?),
            other => bail!("unknown option {other}; use --gib, --rounds, --requests, --buffer-kib"),
        }
    }
    Ok(parsed)
}

/// Runs the benchmark.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let args = parse_args(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(args))
}

/// The origin: after a `T<bytes>\n` command it streams that many bytes and closes; otherwise
/// it answers every HTTP request head with a tiny keep-alive response.
async fn origin() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_origin(stream));
        }
    });
    Ok(addr)
}

async fn serve_origin(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    loop {
        let n = stream.read(&mut buf[have..]).await?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        if buf[0] == b'T' {
            if let Some(end) = buf[..have].iter().position(|&b| b == b'\n') {
                let total: u64 = std::str::from_utf8(&buf[1..end]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
                let data = vec![0x5au8; CHUNK];
                let mut sent = 0u64;
                while sent < total {
                    let n = (total - sent).min(CHUNK as u64) as usize;
                    stream.write_all(&data[..n]).await?;
                    sent += n as u64;
                }
                return stream.shutdown().await;
            }
            continue;
        }
        while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await?;
            buf.copy_within(end + 4..have, 0);
            have -= end + 4;
        }
    }
}

async fn connect_via(proxy: SocketAddr, target: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(proxy).await?;
    stream.set_nodelay(true)?;
    connect(stream, target).await
}

/// A tunnel opened over the proxy's Unix socket, the way sandboxes reach it.
async fn connect_via_socket(socket: &std::path::Path, target: SocketAddr) -> anyhow::Result<UnixStream> {
    connect(UnixStream::connect(socket).await?, target).await
}

async fn connect<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, target: SocketAddr) -> anyhow::Result<S> {
    stream.write_all(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes()).await?;
    let head = read_head(&mut stream).await?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("proxy refused the tunnel: {head}");
    }
    Ok(stream)
}

/// sbx-init's relay, as it runs inside every sandbox: a TCP port forwarding each connection to
/// the proxy's Unix socket. The path an agent's downloads take.
struct Relay {
    addr: SocketAddr,
    child: std::process::Child,
}

impl Relay {
    async fn start(dir: &std::path::Path, socket: &std::path::Path) -> anyhow::Result<Relay> {
        use std::os::unix::fs::PermissionsExt;
        let init = dir.join("sbx-init");
        std::fs::write(&init, sbx_sandbox::helper::INIT_BINARY)?;
        std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::process::Command::new(&init)
            .arg("--relay")
            .arg(socket)
            .args(["--port", &port.to_string(), "--", "sleep", "86400"])
            .spawn()
            .context("starting sbx-init")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_ok() {
                return Ok(Relay { addr, child });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("sbx-init's relay did not listen on {addr}")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> anyhow::Result<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await?;
        head.push(byte);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Reads a `T` stream to its end; returns bytes per second.
async fn throughput<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: u64) -> anyhow::Result<f64> {
    let start = Instant::now();
    stream.write_all(format!("T{bytes}\n").as_bytes()).await?;
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    if got != bytes {
        bail!("received {got} of {bytes} bytes");
    }
    Ok(bytes as f64 / start.elapsed().as_secs_f64())
}

/// Sends `count` small keep-alive requests; returns each round-trip time.
async fn latencies(stream: &mut TcpStream, request: &[u8], count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(count);
    let mut buf = vec![0u8; 4096];
    for _ in 0..count {
        let start = Instant::now();
        stream.write_all(request).await?;
        let mut have = 0;
        loop {
            let n = stream.read(&mut buf[have..]).await?;
            if n == 0 {
                bail!("connection closed mid-response");
            }
            have += n;
            if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n")
                && have >= end + 4 + 2
            {
                break;
            }
        }
        out.push(start.elapsed());
    }
    Ok(out)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let origin = origin().await?;
    let state = tempfile::tempdir()?;
    let mut options = ProxyOptions::new("bench", state.path());
    options.policy = PolicyConfig {
        preset: Preset::DenyAll,
        preset_source: "bench".into(),
        allowed_cidrs: vec![CidrRule::parse("127.0.0.1/32", "bench")?],
        ..PolicyConfig::default()
    };
    options.tcp_addr = Some("127.0.0.1:0".parse()?);
    options.socket_path = Some(state.path().join("proxy.sock"));
    if let Some(kib) = args.buffer_kib {
        options.limits.tunnel_buffer_bytes = kib * 1024;
    }
    let handle = Proxy::start(options).await?;
    let proxy = handle.tcp_addr().context("proxy has no TCP address")?;
    let socket = handle.socket_path().context("proxy has no socket")?.to_path_buf();
    let gib = args.bytes as f64 / f64::from(1u32 << 30);
    let relay = Relay::start(state.path(), &socket).await?;

    println!("throughput: {gib:.2} GiB per run, {} rounds alternated", args.rounds);
    let labels = ["tunnel over TCP", "tunnel over the Unix socket", "tunnel through sbx-init's relay"];
    let mut direct = Vec::new();
    let mut tunnels: [Vec<f64>; 3] = Default::default();
    for round in 0..args.rounds {
        let d = throughput(TcpStream::connect(origin).await?, args.bytes).await?;
        let t = [
            throughput(connect_via(proxy, origin).await?, args.bytes).await?,
            throughput(connect_via_socket(&socket, origin).await?, args.bytes).await?,
            throughput(connect_via(relay.addr, origin).await?, args.bytes).await?,
        ];
        let mib = |v: f64| v / 1048576.0;
        println!(
            "  round {}: direct {:.0}, {} {:.0}, {} {:.0}, {} {:.0} MiB/s",
            round + 1,
            mib(d),
            labels[0],
            mib(t[0]),
            labels[1],
            mib(t[1]),
            labels[2],
            mib(t[2])
        );
        direct.push(d);
        for (all, v) in tunnels.iter_mut().zip(t) {
            all.push(v);
        }
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let mib = |v: &[f64]| best(v) / 1048576.0;
    println!("  best: direct {:.0} MiB/s", mib(&direct));
    for (label, v) in labels.iter().zip(&tunnels) {
        let ratio = best(v) / best(&direct);
        println!("        {label:<32} {:>6.0} MiB/s, ratio {ratio:.2}x (target >= 0.90x)", mib(v));
    }

    let host = format!("127.0.0.1:{}", origin.port());
    let direct_req = format!("GET /small HTTP/1.1\r\nhost: {host}\r\n\r\n").into_bytes();
    let proxied_req = format!("GET http://{host}/small HTTP/1.1\r\nhost: {host}\r\n\r\n").into_bytes();
    let mut direct_conn = TcpStream::connect(origin).await?;
    direct_conn.set_nodelay(true)?;
    let mut forward_conn = TcpStream::connect(proxy).await?;
    forward_conn.set_nodelay(true)?;
    let mut tunnel_conn = connect_via(proxy, origin).await?;
    let (mut d, mut f, mut t) = (Vec::new(), Vec::new(), Vec::new());
    let batch = 100;
    for _ in 0..args.requests.div_ceil(batch) {
        d.extend(latencies(&mut direct_conn, &direct_req, batch).await?);
        f.extend(latencies(&mut forward_conn, &proxied_req, batch).await?);
        t.extend(latencies(&mut tunnel_conn, &direct_req, batch).await?);
    }
    let (d, f, t) = (median(d), median(f), median(t));
    let added = |x: Duration| x.as_secs_f64() * 1e6 - d.as_secs_f64() * 1e6;
    println!("latency: {} small requests each, alternated in batches of {batch}, median", args.requests);
    println!("  direct            {:>8.1} µs", d.as_secs_f64() * 1e6);
    println!("  plain HTTP proxy  {:>8.1} µs  (+{:.1} µs)", f.as_secs_f64() * 1e6, added(f));
    println!("  CONNECT tunnel    {:>8.1} µs  (+{:.1} µs)", t.as_secs_f64() * 1e6, added(t));
    println!("  target: < 1000 µs added");
    handle.shutdown().await;
    Ok(())
}
