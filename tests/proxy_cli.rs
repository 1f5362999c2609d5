//! End-to-end tests of `sbx proxy` and `sbx policy`: the real binary, the policy read from
//! `.sbx.toml`, refusals naming the `.sbx.toml` line, and the audit log rendered afterwards.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::{project, redact, sbx};

/// A guard against a hung test, not a timing assertion.
const GUARD: Duration = Duration::from_secs(30);

#[test]
fn policy_show_names_the_source_of_every_rule() {
    let home = tempfile::tempdir().unwrap();
    let out = sbx(home.path()).arg("-C").arg(project("plain")).args(["policy", "show"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    insta::assert_snapshot!("policy_show_plain", String::from_utf8_lossy(&out.stdout));

    let out = sbx(home.path()).arg("-C").arg(project("plain")).args(["policy", "show", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["preset"], serde_json::json!({ "name": "balanced", "source": ".sbx.toml:3" }));
    assert_eq!(json["allowed_domains"], serde_json::json!([{ "rule": "api.example.com", "source": ".sbx.toml:4" }]));
    assert_eq!(json["otherwise"], "refused");
    assert_eq!(json["injections"][0]["service"], "anthropic");
    assert_eq!(json["injections"][0]["host"], "api.anthropic.com");
    assert_eq!(json["injections"][0]["source"], ".sbx.toml:11");
    let baseline = json["preset_domains"].as_array().unwrap();
    assert!(baseline.iter().any(|r| r["rule"] == "registry.npmjs.org"), "{baseline:?}");
}

#[test]
fn bad_rules_stop_the_proxy_before_it_starts() {
    let home = tempfile::tempdir().unwrap();
    for (name, line, text) in [("bad-domain", 5, "https://example.com/v1"), ("bad-cidr", 3, "192.168.1.0/33")] {
        let dir = project("bad").join(name);
        for args in [&["policy", "show"][..], &["proxy", "--no-inject"][..]] {
            let out = sbx(home.path()).arg("-C").arg(&dir).args(args).output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{name} {args:?}");
            let stderr = redact(&String::from_utf8_lossy(&out.stderr));
            assert!(stderr.contains(&format!("bad/{name}/.sbx.toml:{line}:")), "{name}: {stderr}");
            assert!(stderr.contains(text) && stderr.contains("help:"), "{name}: {stderr}");
        }
    }
}

/// A loopback HTTP origin answering every request with `hello from the origin`.
fn origin() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
                head.push(byte[0]);
            }
            let body = "hello from the origin";
            let _ =
                write!(stream, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    port
}

/// Sends one request on `stream` and returns everything the proxy answers.
fn exchange(mut stream: impl Read + Write, request: &str) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn get(proxy: u16, url: &str) -> String {
    let stream = TcpStream::connect(("127.0.0.1", proxy)).unwrap();
    stream.set_read_timeout(Some(GUARD)).unwrap();
    exchange(stream, &format!("GET {url} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"))
}

/// A running `sbx proxy`, stopped with SIGTERM on drop.
struct RunningProxy {
    child: Child,
    port: u16,
    socket: PathBuf,
    stderr: mpsc::Receiver<String>,
}

impl RunningProxy {
    fn start(home: &Path, project: &Path) -> RunningProxy {
        // The same clean environment as `support::sbx`, as a std Command that can be spawned.
        let mut child = Command::new(env!("CARGO_BIN_EXE_sbx"))
            .env_clear()
            .env("HOME", home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MISE_CEILING_PATHS", project)
            .env("NO_COLOR", "1")
            .arg("-C")
            .arg(project)
            .args(["-v", "proxy", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (tx, stderr) = mpsc::channel();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        let (mut port, mut socket) = (None, None);
        while port.is_none() || socket.is_none() {
            let line = lines.recv_timeout(GUARD).expect("sbx proxy printed where it listens");
            let field =
                |name: &str| line.strip_prefix(name).and_then(|r| r.split_whitespace().next().map(String::from));
            if let Some(addr) = field("  listen ") {
                port = addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
            }
            if let Some(path) = field("  socket ") {
                socket = Some(PathBuf::from(path));
            }
        }
        RunningProxy { child, port: port.unwrap(), socket: socket.unwrap(), stderr }
    }

    /// SIGTERM, then the exit status and everything printed on stderr.
    fn stop(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        (status.success(), self.stderr.recv_timeout(GUARD).unwrap_or_default())
    }
}

fn audit_json(home: &Path, project: &Path, want: usize) -> Vec<Value> {
    for _ in 0..300 {
        let out = sbx(home).arg("-C").arg(project).args(["policy", "log", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let entries: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        if entries.len() >= want {
            return entries;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the audit log never reached {want} entries");
}

const SBX_TOML: &str = r#"[sandbox]
network_policy = "deny-all"
allowed_domains = ["localhost"]
blocked_domains = ["blocked.example"]
allowed_cidrs = ["127.0.0.1/32"]
"#;

#[test]
fn proxy_enforces_the_project_policy_and_logs_every_decision() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".sbx.toml"), SBX_TOML).unwrap();
    let origin = origin();
    let proxy = RunningProxy::start(home.path(), dir.path());

    // Blocked: the 403 names the rule and the line that blocks it.
    let answer = get(proxy.port, "http://blocked.example/secrets");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("rule: blocked_domains \"blocked.example\" (.sbx.toml:4)"), "{answer}");
    assert!(answer.contains("to allow it, remove \"blocked.example\" from blocked_domains (.sbx.toml:4)"), "{answer}");

    // The same through the Unix socket, as a sandbox reaches it, with CONNECT.
    let unix = UnixStream::connect(&proxy.socket).unwrap();
    unix.set_read_timeout(Some(GUARD)).unwrap();
    let answer = exchange(unix, "CONNECT blocked.example:443 HTTP/1.1\r\nhost: blocked.example:443\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 403") && answer.contains("(.sbx.toml:4)"), "{answer}");

    // Not listed under deny-all: the 403 says which line to extend, and how.
    let answer = get(proxy.port, "http://other.example/");
    assert!(answer.contains("rule: preset \"deny-all\" (.sbx.toml:2)"), "{answer}");
    assert!(
        answer.contains("(allowed_domains is at .sbx.toml:3):\n    allowed_domains = [\"other.example\"]"),
        "{answer}"
    );

    // Allowed: localhost resolves to loopback, which allowed_cidrs admits.
    let answer = get(proxy.port, &format!("http://localhost:{origin}/hello"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello from the origin"), "{answer}");

    let entries = audit_json(home.path(), dir.path(), 4);
    let summary: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["decision"].as_str().unwrap().into(),
                e["method"].as_str().unwrap().into(),
                e["host"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("deny", "GET", "blocked.example"),
        ("deny", "CONNECT", "blocked.example"),
        ("deny", "GET", "other.example"),
        ("allow", "GET", "localhost"),
    ];
    assert_eq!(summary, want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())));
    assert_eq!(entries[3]["addr"], "127.0.0.1");
    assert_eq!(entries[3]["sandbox"], "standalone");

    let out = sbx(home.path()).arg("-C").arg(dir.path()).args(["policy", "log"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains("DENY  GET blocked.example:80 by blocked_domains \"blocked.example\" (.sbx.toml:4)"),
        "{text}"
    );
    let allowed = format!(
        "allow GET localhost:{origin} (127.0.0.1) by allowed_domains \"localhost\" (.sbx.toml:3); allowed_cidrs \"127.0.0.1/32\" (.sbx.toml:5)"
    );
    assert!(lines[3].contains(&allowed), "{text}");

    // -v echoed the same decisions on stderr; SIGTERM stops it cleanly and removes the socket.
    let socket = proxy.socket.clone();
    let (ok, stderr) = proxy.stop();
    assert!(ok, "{stderr}");
    assert!(stderr.contains("DENY  CONNECT blocked.example:443"), "{stderr}");
    assert!(stderr.contains(&allowed), "{stderr}");
    assert!(!socket.exists());
}

#[test]
fn policy_log_of_an_unknown_sandbox_says_how_to_find_one() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = sbx(home.path())
        .env("SBX_STATE_DIR", state.path())
        .arg("-C")
        .arg(project("plain"))
        .args(["policy", "log", "no-such-sandbox"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no sandbox named `no-such-sandbox`") && stderr.contains("sbx ls"), "{stderr}");
}
