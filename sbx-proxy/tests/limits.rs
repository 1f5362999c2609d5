//! Limits and malformed input: oversized heads, slowloris, idle tunnels, the connection cap,
//! garbage requests. Each failure closes (or answers) that connection only.

mod common;

use std::time::Duration;

use common::*;
use sbx_proxy::{Limits, Preset};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LOOP: &[&str] = &["127.0.0.1/32"];
/// A guard against a hung test, not a timing assertion.
const GUARD: Duration = Duration::from_secs(20);

async fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(GUARD, stream.read_to_end(&mut out)).await.expect("the proxy must close");
    String::from_utf8_lossy(&out).into_owned()
}

async fn still_serves(proxy: &TestProxy, port: u16) {
    let url = format!("http://origin.test:{port}/alive");
    let text = client(proxy, &[]).get(url).send().await.unwrap().text().await.unwrap();
    assert_eq!(text, "http origin: /alive (0 bytes)");
}

#[tokio::test]
async fn oversized_heads_get_431_and_garbage_gets_400() {
    let (http, _) = http_origin().await;
    let mut setup = Setup::new(policy(Preset::Balanced, &["origin.test"], &[], LOOP));
    setup.limits = Limits { max_header_bytes: 16 * 1024, ..Limits::default() };
    let proxy = setup.start().await;

    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let big = "a".repeat(64 * 1024);
    let request = format!("GET http://origin.test:{}/ HTTP/1.1\r\nx-big: {big}\r\n\r\n", http.port());
    let _ = stream.write_all(request.as_bytes()).await;
    let answer = read_all(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    for garbage in [
        &b"\x00\x01\x02 nonsense\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"CONNECT nohost HTTP/1.1\r\n\r\n",
        b"CONNECT a.b:0 HTTP/1.1\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let answer = read_all(&mut stream).await;
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "{garbage:?} -> {answer}");
    }

    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    stream.write_all(b"GET /origin-form HTTP/1.1\r\nhost: origin.test\r\n\r\n").await.unwrap();
    let answer = read_all(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("send absolute URIs"), "{answer}");
    still_serves(&proxy, http.port()).await;
}

#[tokio::test]
async fn slow_heads_and_idle_tunnels_are_closed() {
    let (http, _) = http_origin().await;
    let echo = echo_origin().await;
    let mut setup = Setup::new(policy(Preset::Balanced, &["origin.test"], &[], LOOP));
    setup.limits = Limits {
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let proxy = setup.start().await;

    // Slowloris: a head that never completes.
    let mut slow = TcpStream::connect(proxy.addr()).await.unwrap();
    slow.write_all(b"GET http://origin.test/ HTTP/1.1\r\nx-a: 1\r\n").await.unwrap();
    let answer = read_all(&mut slow).await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");

    // An idle tunnel.
    let (mut tunnel, head) = raw_connect(&proxy, &format!("origin.test:{}", echo.port())).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tunnel.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tunnel.read_exact(&mut buf).await.unwrap();
    let rest = read_all(&mut tunnel).await;
    assert!(rest.is_empty());
    let log = proxy.log_at_least(1).await;
    assert_eq!(log[0].reason.as_deref(), Some("closed after the idle timeout"), "{log:?}");
    still_serves(&proxy, http.port()).await;
}

#[tokio::test]
async fn connections_over_the_cap_get_503() {
    let echo = echo_origin().await;
    let mut setup = Setup::new(policy(Preset::Balanced, &["origin.test"], &[], LOOP));
    setup.limits = Limits { max_connections: 2, ..Limits::default() };
    let proxy = setup.start().await;
    let authority = format!("origin.test:{}", echo.port());
    let (_a, head_a) = raw_connect(&proxy, &authority).await;
    let (_b, head_b) = raw_connect(&proxy, &authority).await;
    assert!(head_a.starts_with("HTTP/1.1 200") && head_b.starts_with("HTTP/1.1 200"));
    let (_c, head_c) = raw_connect(&proxy, &authority).await;
    assert!(head_c.starts_with("HTTP/1.1 503"), "{head_c}");
    drop((_a, _b));
    // Once the tunnels are gone, permits come back.
    let mut ok = false;
    for _ in 0..200 {
        let (_d, head) = raw_connect(&proxy, &authority).await;
        if head.starts_with("HTTP/1.1 200") {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "permits must be released when tunnels close");
}

#[tokio::test]
async fn shutdown_closes_everything_and_removes_the_socket() {
    let echo = echo_origin().await;
    let proxy = start(policy(Preset::Balanced, &["origin.test"], &[], LOOP)).await;
    let socket = proxy.socket();
    assert!(socket.exists());
    let (mut tunnel, _) = raw_connect(&proxy, &format!("origin.test:{}", echo.port())).await;
    let TestProxy { handle, dir: _dir } = proxy;
    handle.shutdown().await;
    assert!(!socket.exists());
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(GUARD, tunnel.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0);
}
