//! Test helpers: a loopback-only HTTP server and synthetic tool artifacts.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use sbx_mise::Platform;
use sbx_mise::lockfile::model::{Artifact, Checksum, LockedTool, Lockfile};
use sha2::{Digest, Sha256};

/// How the server answers one path.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with the body.
    Ok(Vec<u8>),
    /// Announces the full length but sends only `n` bytes, then closes.
    Truncated(Vec<u8>, usize),
    /// This status with an empty body.
    Status(u16),
    /// 200 with the body when the request carries this `Authorization` value, else 401.
    Authorized(String, Vec<u8>),
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that serves fixed replies and counts hits.
#[derive(Clone)]
pub struct Server {
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Server {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (r, h) = (routes.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut authorization = None;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':')
                        && name.eq_ignore_ascii_case("authorization")
                    {
                        authorization = Some(value.trim().to_string());
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                *h.lock().unwrap().entry(path.clone()).or_default() += 1;
                let reply = match r.lock().unwrap().get(&path).cloned().unwrap_or(Reply::Status(404)) {
                    Reply::Authorized(expected, body) if authorization.as_ref() == Some(&expected) => Reply::Ok(body),
                    Reply::Authorized(..) => Reply::Status(401),
                    reply => reply,
                };
                let _ = match reply {
                    Reply::Ok(body) => stream
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                                .as_bytes(),
                        )
                        .and_then(|_| stream.write_all(&body)),
                    Reply::Truncated(body, n) => stream
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                                .as_bytes(),
                        )
                        .and_then(|_| stream.write_all(&body[..n])),
                    Reply::Status(code) => stream.write_all(
                        format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
                    ),
                    // Settled above: served or refused.
                    Reply::Authorized(..) => Ok(()),
                };
            }
        });
        Self { base, routes, hits }
    }

    /// Serves `reply` at `path` and returns the full URL.
    pub fn route(&self, path: &str, reply: Reply) -> String {
        self.routes.lock().unwrap().insert(path.to_string(), reply);
        format!("{}{path}", self.base)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

pub fn sha256(bytes: &[u8]) -> Checksum {
    Checksum::Sha256(hex::encode(Sha256::digest(bytes)))
}

pub fn artifact(url: &str, body: &[u8]) -> Artifact {
    Artifact { url: url.to_string(), checksum: sha256(body), size: Some(body.len() as u64) }
}

/// Builds a tar.gz from `(path, content or symlink target, mode, is_symlink)` entries with
/// the given mtime (so different "upstream" mtimes can be simulated).
pub fn targz(entries: &[(&str, &str, u32, bool)], mtime: u64) -> Vec<u8> {
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    let mut b = tar::Builder::new(enc);
    for (path, content, mode, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(mtime);
        h.set_mode(*mode);
        if *link {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, path, content).unwrap();
        } else if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, path, std::io::empty()).unwrap();
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(content.len() as u64);
            b.append_data(&mut h, path, content.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// A fake node distribution for `version` and `arch`: `node-vX-linux-ARCH/bin/node` printing the version.
pub fn node_tarball(version: &str, arch: &str, mtime: u64) -> Vec<u8> {
    let top = format!("node-v{version}-linux-{arch}");
    let script = format!("#!/bin/sh\necho v{version}\n");
    let files = [
        (format!("{top}/"), String::new(), 0o755, false),
        (format!("{top}/bin/"), String::new(), 0o755, false),
        (format!("{top}/bin/node"), script, 0o775, false),
        (format!("{top}/bin/npm"), "../lib/node_modules/npm/bin/npm-cli.js".to_string(), 0o777, true),
        (format!("{top}/lib/node_modules/npm/bin/npm-cli.js"), "#!/usr/bin/env node\n".to_string(), 0o755, false),
        (format!("{top}/README.md"), "node\n".repeat(100), 0o644, false),
    ];
    let refs: Vec<(&str, &str, u32, bool)> =
        files.iter().map(|(p, c, m, l)| (p.as_str(), c.as_str(), *m, *l)).collect();
    targz(&refs, mtime)
}

/// A lockfile with node (core, tarball) and jq (github, single binary) for the given platforms.
pub fn sample_lock(server: &Server, platforms: &[Platform], node_version: &str, mtime: u64) -> Lockfile {
    let mut node = LockedTool {
        backend: "core:node".into(),
        request: "22".into(),
        version: node_version.into(),
        runtime: None,
        options: BTreeMap::new(),
        platforms: BTreeMap::new(),
        packages: vec![],
    };
    let mut jq = LockedTool {
        backend: "github:jqlang/jq".into(),
        request: "latest".into(),
        version: "1.7.1".into(),
        runtime: None,
        options: BTreeMap::from([("exe".to_string(), "jq".to_string())]),
        platforms: BTreeMap::new(),
        packages: vec![],
    };
    for p in platforms {
        let arch = p.mise_key().replace("linux-", "");
        let body = node_tarball(node_version, &arch, mtime);
        let url = server
            .route(&format!("/node/v{node_version}/node-v{node_version}-linux-{arch}.tar.gz"), Reply::Ok(body.clone()));
        node.platforms.insert(*p, artifact(&url, &body));
        let jq_body = format!("#!/bin/sh\necho jq-1.7.1-{arch}\n").into_bytes();
        let url = server.route(&format!("/jq/jq-linux-{arch}"), Reply::Ok(jq_body.clone()));
        jq.platforms.insert(*p, artifact(&url, &jq_body));
    }
    Lockfile {
        version: 1,
        inputs: "sha256:00".into(),
        platforms: platforms.to_vec(),
        extra_platforms: Vec::new(),
        upstreams: None,
        base: None,
        tools: BTreeMap::from([("jq".to_string(), vec![jq]), ("node".to_string(), vec![node])]),
    }
}

/// Runs a command, failing loudly (with its output) when it is missing or fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("`{cmd}` is required for this test (install it via .ci/install-deps): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
