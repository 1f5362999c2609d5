//! The recorded upstream files list exactly the checksums and sizes of the artifacts served,
//! and the server's routing (templating, paging, traversal) works.

use std::io::Read;
use std::path::Path;

use sbx_fixtures::{Fault, FixtureServer, default_root};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha(path: &Path) -> (String, u64) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (hex::encode(Sha256::digest(&bytes)), bytes.len() as u64)
}

fn check_sums(dir: &Path, text: &str) -> usize {
    let mut n = 0;
    for line in text.lines() {
        let (hash, name) = line.split_once("  ").unwrap();
        assert_eq!(sha(&dir.join(name)).0, hash, "{}", dir.join(name).display());
        n += 1;
    }
    n
}

#[test]
fn node_shasums_match_artifacts() {
    let root = default_root().join("node");
    let mut n = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if dir.is_dir() {
            n += check_sums(&dir, &std::fs::read_to_string(dir.join("SHASUMS256.txt")).unwrap());
        }
    }
    assert!(n >= 16);
}

#[test]
fn go_index_matches_artifacts() {
    let root = default_root().join("go");
    let index: Value = serde_json::from_str(&std::fs::read_to_string(root.join("index.json")).unwrap()).unwrap();
    for release in index.as_array().unwrap() {
        for file in release["files"].as_array().unwrap() {
            let (hash, size) = sha(&root.join(file["filename"].as_str().unwrap()));
            assert_eq!(file["sha256"], hash);
            assert_eq!(file["size"], size);
        }
    }
}

#[test]
fn github_releases_match_artifacts() {
    let root = default_root();
    for repo in ["astral-sh/python-build-standalone", "BurntSushi/ripgrep", "cli/cli"] {
        let path = root.join(format!("github/repos/{repo}/releases.json"));
        let releases: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for release in releases.as_array().unwrap() {
            let tag = release["tag_name"].as_str().unwrap();
            let dir = root.join(format!("github.com/{repo}/releases/download/{tag}"));
            for asset in release["assets"].as_array().unwrap() {
                let name = asset["name"].as_str().unwrap();
                let (hash, size) = sha(&dir.join(name));
                assert_eq!(asset["size"], size, "{name}");
                if let Some(d) = asset["digest"].as_str() {
                    assert_eq!(d, format!("sha256:{hash}"), "{name}");
                }
                if name == "SHA256SUMS" || name.ends_with("_checksums.txt") {
                    check_sums(&dir, &std::fs::read_to_string(dir.join(name)).unwrap());
                }
            }
        }
    }
}

fn get(url: &str) -> (u16, String) {
    // A minimal HTTP/1.0 client, to keep this crate free of an HTTP client dependency.
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    std::io::Write::write_all(&mut s, format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let out = String::from_utf8_lossy(&raw);
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn serves_templates_pages_and_faults() {
    let server = FixtureServer::start_default().unwrap();
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    let (status, body) = get(&server.url("/github/repos/cli/cli/releases?per_page=100&page=1"));
    assert_eq!(status, 200);
    assert!(body.contains(&format!("{}/github.com/cli/cli/releases/download/", server.base_url())));
    assert!(!body.contains("{{base}}"));
    assert_eq!(get(&server.url("/github/repos/cli/cli/releases?per_page=100&page=2")), (200, "[]".into()));
    let (_, one) = get(&server.url("/github/repos/cli/cli/releases?per_page=1&page=2"));
    assert!(one.contains("\"v2.62.0\"") && !one.contains("\"v2.63.0-pre.0\""), "{one}");
    assert_eq!(get(&server.url("/go/?mode=json&include=all")).0, 200);
    assert_eq!(get(&server.url("/node/../../Cargo.toml")).0, 404);
    assert_eq!(get(&server.url("/node/%2e%2e/%2e%2e/Cargo.toml")).0, 404);
    let plus = "/github.com/astral-sh/python-build-standalone/releases/download/20241016/cpython-3.12.7%2B20241016-x86_64-unknown-linux-gnu-install_only.tar.gz";
    assert_eq!(get(&server.url(plus)).0, 200);
    server.fault("/node/index.json", Fault::Status { status: 500, times: 1 });
    assert_eq!(get(&server.url("/node/index.json")).0, 500);
    assert_eq!(get(&server.url("/node/index.json")).0, 200);
    assert_eq!(server.statuses("/node/index.json"), [500, 200]);
}
