//! Property tests: the parsers that see untrusted bytes never panic, and arbitrary request
//! bytes sent to a running proxy never take it down (the next request is still served).

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use sbx_proxy::{DomainRule, Preset, Target, parse_first_flight};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    proxy: TestProxy,
    origin_port: u16,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (proxy, origin_port) = runtime.block_on(async {
            let (http, _) = http_origin().await;
            let mut setup = Setup::new(policy(Preset::Balanced, &["origin.test"], &[], &["127.0.0.1/32"]));
            setup.limits.header_read_timeout = Duration::from_millis(300);
            (setup.start().await, http.port())
        });
        Fixture { runtime, proxy, origin_port }
    })
}

/// Request-like inputs: a mix of real request heads with damage and plain noise.
fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![Just("GET".to_string()), Just("CONNECT".to_string()), "[A-Z]{0,8}"];
    let target = prop_oneof![
        Just("http://origin.test/".to_string()),
        Just("origin.test:443".to_string()),
        "[ -~]{0,40}",
        "\\PC{0,20}",
    ];
    let structured = (method, target, proptest::collection::vec(("[!-~]{0,12}", "[ -~]{0,30}"), 0..6), any::<bool>())
        .prop_map(|(m, t, headers, finish)| {
            let mut s = format!("{m} {t} HTTP/1.1\r\n");
            for (k, v) in headers {
                s.push_str(&format!("{k}: {v}\r\n"));
            }
            if finish {
                s.push_str("\r\n");
            }
            s.into_bytes()
        });
    prop_oneof![structured, proptest::collection::vec(any::<u8>(), 0..512)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn first_flight_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_first_flight(&bytes);
        let mut tls_like = vec![0x16, 0x03, 0x01];
        tls_like.extend_from_slice(&bytes);
        let _ = parse_first_flight(&tls_like);
    }

    #[test]
    fn target_and_rule_parsers_never_panic(text in "\\PC{0,80}") {
        let _ = Target::parse_authority(&text);
        let _ = Target::parse_with_default(&text, 80);
        let _ = DomainRule::parse(&text, "fuzz");
        let _ = sbx_proxy::CidrRule::parse(&text, "fuzz");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_request_bytes_never_take_the_proxy_down(bytes in request_bytes()) {
        let f = fixture();
        f.runtime.block_on(async {
            let mut stream = tokio::net::TcpStream::connect(f.proxy.addr()).await.unwrap();
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
            let mut sink = Vec::new();
            // The proxy answers or closes; the header read timeout bounds the wait.
            let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut sink)).await;
            let url = format!("http://origin.test:{}/after", f.origin_port);
            let text = client(&f.proxy, &[]).get(url).send().await.unwrap().text().await.unwrap();
            assert_eq!(text, "http origin: /after (0 bytes)");
        });
    }
}
