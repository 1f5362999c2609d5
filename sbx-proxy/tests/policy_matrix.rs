//! The policy matrix against real loopback origins: presets × allow/deny × wildcard × port ×
//! CIDR, each through plain HTTP (absolute URI) and through a CONNECT tunnel, plus rebinding,
//! metadata, IPv4-mapped and IP-literal targets, and the text of the 403.

mod common;

use common::*;
use sbx_proxy::{Decision, Preset};

const LOOP: &[&str] = &["127.0.0.1/32"];

struct Case {
    preset: Preset,
    allowed: Vec<String>,
    blocked: Vec<String>,
    cidrs: &'static [&'static str],
    host: &'static str,
    allow: bool,
}

fn case(
    preset: Preset,
    allowed: &[&str],
    blocked: &[&str],
    cidrs: &'static [&'static str],
    host: &'static str,
    allow: bool,
) -> Case {
    Case {
        preset,
        allowed: allowed.iter().map(|s| s.to_string()).collect(),
        blocked: blocked.iter().map(|s| s.to_string()).collect(),
        cidrs,
        host,
        allow,
    }
}

async fn http_status(proxy: &TestProxy, url: &str) -> u16 {
    client(proxy, &[]).get(url).send().await.unwrap().status().as_u16()
}

async fn connect_status(proxy: &TestProxy, authority: &str) -> u16 {
    let (_stream, head) = raw_connect(proxy, authority).await;
    head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn policy_matrix_http_and_connect() {
    let (http, _) = http_origin().await;
    let port = http.port();
    let port_rule = format!("origin.test:{port}");
    let other_port_rule = format!("origin.test:{}", port.wrapping_add(1).max(1));
    use Preset::*;
    let cases = vec![
        // allow-all
        case(AllowAll, &[], &[], LOOP, "origin.test", true),
        case(AllowAll, &[], &["origin.test"], LOOP, "origin.test", false),
        case(AllowAll, &[], &["*.wild.test"], LOOP, "a.wild.test", false),
        case(AllowAll, &[], &["*.wild.test"], LOOP, "wild.test", true),
        case(AllowAll, &[], &[], &[], "origin.test", false), // loopback needs a CIDR rule
        case(AllowAll, &[], &[], &["127.0.0.0/8"], "origin.test", true),
        // balanced
        case(Balanced, &[], &[], LOOP, "origin.test", false),
        case(Balanced, &["origin.test"], &[], LOOP, "origin.test", true),
        case(Balanced, &["origin.test"], &["origin.test"], LOOP, "origin.test", false),
        case(Balanced, &["*.wild.test"], &[], LOOP, "a.wild.test", true),
        case(Balanced, &["*.wild.test"], &[], LOOP, "deep.a.wild.test", true),
        case(Balanced, &["*.wild.test"], &[], LOOP, "wild.test", false),
        case(Balanced, &["*.wild.test"], &["deep.a.wild.test"], LOOP, "deep.a.wild.test", false),
        case(Balanced, &[&port_rule], &[], LOOP, "origin.test", true),
        case(Balanced, &[&other_port_rule], &[], LOOP, "origin.test", false),
        case(Balanced, &["origin.test"], &[&port_rule], LOOP, "origin.test", false),
        case(Balanced, &["origin.test"], &[&other_port_rule], LOOP, "origin.test", true),
        // deny-all
        case(DenyAll, &[], &[], LOOP, "origin.test", false),
        case(DenyAll, &["origin.test"], &[], LOOP, "origin.test", true),
        case(DenyAll, &["*.wild.test"], &[], LOOP, "other.test", false),
        // IP literals need a CIDR rule, whatever the preset
        case(Balanced, &[], &[], LOOP, "127.0.0.1", true),
        case(DenyAll, &[], &[], LOOP, "127.0.0.1", true),
        case(AllowAll, &[], &[], &[], "127.0.0.1", false),
        case(Balanced, &["origin.test"], &[], &["10.0.0.0/8"], "127.0.0.1", false),
        // rebinding: an allowed name resolving to loopback
        case(Balanced, &["rebind.test"], &[], &[], "rebind.test", false),
        case(AllowAll, &[], &[], &[], "mapped.test", false),
    ];
    for (i, c) in cases.iter().enumerate() {
        let allowed: Vec<&str> = c.allowed.iter().map(String::as_str).collect();
        let blocked: Vec<&str> = c.blocked.iter().map(String::as_str).collect();
        let proxy = start(policy(c.preset, &allowed, &blocked, c.cidrs)).await;
        let want = if c.allow { 200 } else { 403 };
        let url = format!("http://{}:{port}/case{i}", c.host);
        assert_eq!(http_status(&proxy, &url).await, want, "case {i} plain HTTP {url} ({:?})", c.preset);
        let authority = format!("{}:{port}", c.host);
        assert_eq!(connect_status(&proxy, &authority).await, want, "case {i} CONNECT {authority} ({:?})", c.preset);
        let log = proxy.log_at_least(2).await;
        assert_eq!(log.len(), 2, "case {i}: one audit line per decision: {log:?}");
        let want_decision = if c.allow { Decision::Allow } else { Decision::Deny };
        assert!(log.iter().all(|e| e.decision == want_decision), "case {i}: {log:?}");
        proxy.handle.shutdown().await;
    }
}

#[tokio::test]
async fn metadata_address_is_refused_even_when_everything_is_allowed() {
    let proxy = start(policy(Preset::AllowAll, &[], &[], &[])).await;
    let body = client(&proxy, &[]).get("http://metadata.test/latest/meta-data/").send().await.unwrap();
    assert_eq!(body.status().as_u16(), 403);
    let text = body.text().await.unwrap();
    assert!(text.contains("metadata.test resolved to 169.254.169.254"), "{text}");
    assert!(text.contains("link-local"), "{text}");
    assert!(text.contains("allowed_cidrs = [\"169.254.169.254/32\"]"), "{text}");
    let (_s, head) = raw_connect(&proxy, "169.254.169.254:80").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (_s, head) = raw_connect(&proxy, "[::ffff:169.254.169.254]:80").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let log = proxy.log_at_least(3).await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|e| e.decision == Decision::Deny && e.addr.is_none()));
}

#[tokio::test]
async fn refusal_body_names_rule_and_the_line_to_add() {
    let (http, _) = http_origin().await;
    let proxy = start(policy(Preset::Balanced, &[], &["*.wild.test"], LOOP)).await;
    let port = http.port();
    let response = client(&proxy, &[]).get(format!("http://origin.test:{port}/x")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body = response.text().await.unwrap();
    let expected = format!(
        "sbx proxy: blocked GET origin.test:{port}\n\
         reason: origin.test is not on the allowed list of the balanced preset\n\
         rule: preset \"balanced\" (test.toml:1)\n\
         to allow it, add under [sandbox] in .sbx.toml:\n    \
         allowed_domains = [\"origin.test\"]\n\
         Do not try other routes: the sandbox has no other way out. Ask the user to change the policy.\n"
    );
    assert_eq!(body, expected);

    let (_s, head) = raw_connect(&proxy, &format!("a.wild.test:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(head.contains("rule: blocked_domains \"*.wild.test\" (test.toml:3)"), "{head}");
    assert!(head.contains("remove \"*.wild.test\" from blocked_domains (test.toml:3)"), "{head}");

    let (_s, head) = raw_connect(&proxy, "rebind.test:80").await;
    assert!(head.contains("blocked CONNECT rebind.test:80"), "{head}");

    let proxy = start(policy(Preset::Balanced, &["rebind.test"], &[], &[])).await;
    let (_s, head) = raw_connect(&proxy, "rebind.test:443").await;
    assert!(head.contains("rebind.test resolved to 127.0.0.1, a loopback address"), "{head}");
    assert!(head.contains("allowed_cidrs = [\"127.0.0.1/32\"]"), "{head}");
    let (_s, head) = raw_connect(&proxy, "192.0.2.1:443").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (_s, head) = raw_connect(&proxy, "8.8.8.8:443").await;
    assert!(head.contains("connections to IP addresses need an allowed_cidrs rule"), "{head}");
    assert!(head.contains("allowed_cidrs = [\"8.8.8.8/32\"]"), "{head}");
}

#[tokio::test]
async fn audit_lines_carry_the_decision_details() {
    let (http, _) = http_origin().await;
    let proxy = start(policy(Preset::DenyAll, &["origin.test"], &[], LOOP)).await;
    let url = format!("http://origin.test:{}/hello", http.port());
    let text = client(&proxy, &[]).get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(text, "http origin: /hello (0 bytes)");
    let _ = client(&proxy, &[]).get("http://other.test/").send().await.unwrap();
    let log = proxy.log_at_least(2).await;
    assert_eq!(log.len(), 2, "{log:?}");
    let ok = &log[0];
    assert_eq!((ok.sandbox.as_str(), ok.method.as_str(), ok.host.as_str()), ("test-sandbox", "GET", "origin.test"));
    assert_eq!(ok.port, http.port());
    assert_eq!(ok.addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(ok.decision, Decision::Allow);
    assert!(ok.rule.contains("allowed_domains \"origin.test\" (test.toml:2)"), "{}", ok.rule);
    assert!(ok.rule.contains("allowed_cidrs \"127.0.0.1/32\""), "{}", ok.rule);
    assert!(ok.bytes_up > 0 && ok.bytes_down > 0, "{ok:?}");
    assert!(ok.time.ends_with('Z'));
    let denied = &log[1];
    assert_eq!((denied.decision, denied.host.as_str(), denied.port), (Decision::Deny, "other.test", 80));
    assert!(denied.rule.contains("preset \"deny-all\""), "{}", denied.rule);
    assert!(denied.render_line().contains("DENY  GET other.test:80"));
}

#[tokio::test]
async fn blocked_cidrs_beat_allowed_cidrs_and_name_their_line() {
    let (http, _) = http_origin().await;
    let port = http.port();
    let mut config = policy(Preset::AllowAll, &[], &[], &["127.0.0.0/8"]);
    config.blocked_cidrs = vec![sbx_proxy::CidrRule::parse("127.0.0.1", "test.toml:5").unwrap()];
    let proxy = start(config).await;
    let response = client(&proxy, &[]).get(format!("http://origin.test:{port}/")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("origin.test:") && body.contains("address 127.0.0.1 is in a blocked address block"),
        "{body}"
    );
    assert!(body.contains("remove \"127.0.0.1/32\" from blocked_cidrs (test.toml:5)"), "{body}");
    for authority in [format!("127.0.0.1:{port}"), format!("[::ffff:127.0.0.1]:{port}")] {
        let (_s, head) = raw_connect(&proxy, &authority).await;
        assert!(head.starts_with("HTTP/1.1 403") && head.contains("blocked_cidrs"), "{authority}: {head}");
    }
    // IPv6 loopback is outside both blocks: it needs a rule of its own.
    let (_s, head) = raw_connect(&proxy, &format!("[::1]:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 403") && head.contains("allowed_cidrs = [\"::1/128\"]"), "{head}");
    let log = proxy.log_at_least(4).await;
    assert!(log.iter().all(|e| e.decision == Decision::Deny), "{log:?}");
}
