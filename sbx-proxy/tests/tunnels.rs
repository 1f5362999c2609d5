//! CONNECT tunnels: pass-through TLS (never intercepted without an injection rule), SNI
//! mismatch (domain fronting), non-TLS on TLS ports, raw TCP, credential injection end to end,
//! and curl over TCP and the Unix socket.

mod common;

use std::sync::Arc;

use common::*;
use rustls::pki_types::ServerName;
use sbx_proxy::{Decision, InjectionRule, Preset, UpstreamRoots};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LOOP: &[&str] = &["127.0.0.1/32"];

fn tls_client(roots_pem: &str) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(roots_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn https_passes_through_untouched() {
    let ca = TestCa::new(&["origin.test"]).unwrap();
    let (https, seen) = https_origin(&ca).await;
    let proxy = start(policy(Preset::Balanced, &["origin.test"], &[], LOOP)).await;
    // The client trusts only the test CA: success proves the proxy did not intercept.
    let url = format!("https://origin.test:{}/tls", https.port());
    let text = client(&proxy, &[&ca.pem]).get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(text, "https origin: /tls (0 bytes)");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let log = proxy.log_at_least(1).await;
    assert_eq!(log[0].method, "CONNECT");
    assert_eq!(log[0].decision, Decision::Allow);
    assert!(log[0].bytes_up > 0 && log[0].bytes_down > 0, "{:?}", log[0]);
    assert_eq!(log[0].injected, None);
}

#[tokio::test]
async fn sni_different_from_connect_host_is_refused() {
    let ca = TestCa::new(&["origin.test", "other.test"]).unwrap();
    let (https, seen) = https_origin(&ca).await;
    let proxy = start(policy(Preset::Balanced, &["origin.test"], &[], LOOP)).await;
    let (stream, head) = raw_connect(&proxy, &format!("origin.test:{}", https.port())).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let name = ServerName::try_from("other.test").unwrap();
    let result = tls_client(&ca.pem).connect(name, stream).await;
    assert!(result.is_err(), "fronted handshake must fail");
    let log = proxy.log_at_least(1).await;
    assert_eq!(log[0].decision, Decision::Deny);
    assert!(log[0].reason.as_deref().unwrap().contains("`other.test` differs from the CONNECT host"), "{log:?}");
    assert!(seen.lock().unwrap().is_empty());

    // The matching name goes through.
    let (stream, _) = raw_connect(&proxy, &format!("origin.test:{}", https.port())).await;
    let mut tls = tls_client(&ca.pem).connect(ServerName::try_from("origin.test").unwrap(), stream).await.unwrap();
    tls.write_all(b"GET /ok HTTP/1.1\r\nhost: origin.test\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    assert!(response.ends_with("https origin: /ok (0 bytes)"), "{response}");
}

#[tokio::test]
async fn non_tls_on_a_tls_port_needs_a_raw_tcp_rule() {
    let echo = echo_origin().await;
    let mut setup = Setup::new(policy(Preset::Balanced, &["origin.test"], &[], LOOP));
    setup.tls_ports = vec![echo.port()];
    let proxy = setup.start().await;
    let (mut stream, head) = raw_connect(&proxy, &format!("origin.test:{}", echo.port())).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream.write_all(b"GET / HTTP/1.1\r\nhost: origin.test\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden"), "{answer}");
    assert!(answer.contains("did not start with a TLS ClientHello"), "{answer}");
    assert!(answer.contains(&format!("allowed_domains = [\"tcp://origin.test:{}\"]", echo.port())), "{answer}");
    proxy.handle.shutdown().await;

    let mut setup = Setup::new(policy(Preset::Balanced, &[&format!("tcp://origin.test:{}", echo.port())], &[], LOOP));
    setup.tls_ports = vec![echo.port()];
    let proxy = setup.start().await;
    let (mut stream, _) = raw_connect(&proxy, &format!("origin.test:{}", echo.port())).await;
    stream.write_all(b"raw bytes").await.unwrap();
    let mut buf = [0u8; 9];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"raw bytes");
}

#[tokio::test]
async fn raw_tcp_on_other_ports_flows_both_ways_with_half_close() {
    let echo = echo_origin().await;
    let proxy = start(policy(Preset::DenyAll, &["origin.test"], &[], LOOP)).await;
    let (stream, head) = raw_connect(&proxy, &format!("origin.test:{}", echo.port())).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (mut r, mut w) = stream.into_split();
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let expected = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&payload).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    assert_eq!(got, expected);
    let log = proxy.log_at_least(1).await;
    assert_eq!((log[0].bytes_up, log[0].bytes_down), (300_000, 300_000));
}

#[tokio::test]
async fn credential_injection_end_to_end() {
    let ca = TestCa::new(&["api.inject.test"]).unwrap();
    let (https, seen) = https_origin(&ca).await;
    let host = format!("api.inject.test:{}", https.port());
    let mut setup = Setup::new(policy(Preset::DenyAll, &["api.inject.test"], &[], LOOP));
    setup.roots = UpstreamRoots::Pem(ca.pem.clone());
    setup.injections = vec![InjectionRule {
        service: "inject-test".into(),
        host: host.clone(),
        header: "x-api-key".into(),
        sentinel: "SBX-SENTINEL-inject-test".into(),
        secret: "sk-the-real-secret".into(),
        source: "test.toml:9".into(),
    }];
    let proxy = setup.start().await;
    // The sandbox trusts only the proxy's CA, and only ever holds the sentinel.
    let sandbox_ca = proxy.handle.ca_cert_pem().to_owned();
    let client = client(&proxy, &[&sandbox_ca]);
    for path in ["/v1/messages", "/v1/again"] {
        let response = client
            .post(format!("https://{host}{path}"))
            .header("x-api-key", "SBX-SENTINEL-inject-test")
            .header("x-other", "SBX-SENTINEL-inject-test")
            .body("{\"hello\":1}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.text().await.unwrap(), format!("https origin: {path} (11 bytes)"));
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for (method, _, headers) in &seen {
        assert_eq!(method, "POST");
        let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(get("x-api-key").as_deref(), Some("sk-the-real-secret"));
        assert_eq!(get("x-other").as_deref(), Some("SBX-SENTINEL-inject-test"), "only the configured header");
    }
    let log = proxy.log_at_least(2).await;
    let inner: Vec<_> = log.iter().filter(|e| e.method == "POST").collect();
    assert_eq!(inner.len(), 2);
    assert!(inner.iter().all(|e| e.injected.as_deref() == Some("inject-test")));
    let raw = std::fs::read_to_string(proxy.handle.audit_log_path()).unwrap();
    assert!(!raw.contains("sk-the-real-secret"), "the secret never reaches the log");

    // A client that does not trust the sandbox CA cannot be fooled into talking to the proxy.
    let stranger = common::client(&proxy, &[&ca.pem]);
    assert!(stranger.get(format!("https://{host}/")).send().await.is_err());
}

#[tokio::test]
async fn injection_refuses_upstreams_that_fail_verification() {
    let ca = TestCa::new(&["api.inject.test"]).unwrap();
    let (https, seen) = https_origin(&ca).await;
    let host = format!("api.inject.test:{}", https.port());
    let mut setup = Setup::new(policy(Preset::DenyAll, &["api.inject.test"], &[], LOOP));
    // Upstream roots are the default web PKI: the test CA is not in it.
    setup.injections = vec![InjectionRule {
        service: "svc".into(),
        host: host.clone(),
        header: "authorization".into(),
        sentinel: "SBX-SENTINEL-svc".into(),
        secret: "Bearer real".into(),
        source: "test".into(),
    }];
    let proxy = setup.start().await;
    let client = client(&proxy, &[proxy.handle.ca_cert_pem()]);
    let response = client.get(format!("https://{host}/")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 502);
    assert!(response.text().await.unwrap().contains("TLS to the real api.inject.test failed"));
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn curl_over_tcp_and_raw_clients_over_the_unix_socket() {
    let ca = TestCa::new(&["origin.test"]).unwrap();
    let (https, _) = https_origin(&ca).await;
    let (http, _) = http_origin().await;
    let proxy = start(policy(Preset::Balanced, &["origin.test"], &[], LOOP)).await;
    let ca_file = proxy.dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let ca_arg = ca_file.to_str().unwrap();
    let url = proxy.url();

    let (code, out, err) = curl(&["--proxy", &url, &format!("http://origin.test:{}/plain", http.port())]).await;
    assert_eq!((code, out.as_str()), (0, "http origin: /plain (0 bytes)"), "{err}");

    let https_url = format!("https://origin.test:{}/tls", https.port());
    let (code, out, err) = curl(&["--proxy", &url, "--cacert", ca_arg, &https_url]).await;
    assert_eq!((code, out.as_str()), (0, "https origin: /tls (0 bytes)"), "{err}");

    let (code, out, _) =
        curl(&["--proxy", &url, "-o", "/dev/stdout", "-w", "%{http_code}", "http://other.test/"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("allowed_domains = [\"other.test\"]"), "{out}");
    assert!(out.ends_with("403"), "{out}");

    let (code, _, err) = curl(&["--proxy", &url, "--cacert", ca_arg, "https://other.test/"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("403"), "{err}");

    // Domain fronting with curl: CONNECT to origin.test, TLS name other.test.
    let fronted = format!("other.test:{0}:origin.test:{0}", https.port());
    let fronted_url = format!("https://other.test:{}/", https.port());
    let (code, _, _) = curl(&["--proxy", &url, "--cacert", ca_arg, "--connect-to", &fronted, &fronted_url]).await;
    assert_ne!(code, 0, "fronting must fail");

    // The Unix socket, as sandboxes use it (curl 7.88 does not speak to a proxy over a Unix
    // socket, so this side uses raw streams: an absolute-URI request and a CONNECT + TLS).
    let mut unix = tokio::net::UnixStream::connect(proxy.socket()).await.unwrap();
    let request = format!(
        "GET http://origin.test:{}/unix HTTP/1.1\r\nhost: origin.test\r\nconnection: close\r\n\r\n",
        http.port()
    );
    unix.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    unix.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("http origin: /unix (0 bytes)"), "{response}");
    let mut unix = tokio::net::UnixStream::connect(proxy.socket()).await.unwrap();
    let request = format!("CONNECT origin.test:{0} HTTP/1.1\r\nhost: origin.test:{0}\r\n\r\n", https.port());
    unix.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(unix.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let mut tls = tls_client(&ca.pem).connect(ServerName::try_from("origin.test").unwrap(), unix).await.unwrap();
    tls.write_all(b"GET /unix-tls HTTP/1.1\r\nhost: origin.test\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    assert!(response.ends_with("https origin: /unix-tls (0 bytes)"), "{response}");
    drop(tls);
    let log = proxy.log_at_least(7).await;
    let fronting = log.iter().find(|e| e.reason.as_deref().is_some_and(|r| r.contains("domain fronting")));
    assert!(fronting.is_some(), "{log:#?}");
}
