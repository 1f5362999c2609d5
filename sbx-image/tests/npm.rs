//! npm tools: the locked closure as a node_modules tree with bin links, no scripts run.

mod common;

use std::collections::BTreeMap;
use std::io::Read;

use common::{Reply, Server, targz};
use sbx_image::build::{BuildOptions, LayerKind};
use sbx_image::{Cache, NoProgress, build_image};
use sbx_mise::Platform;
use sbx_mise::lockfile::model::{Artifact, Checksum, LockedPackage, LockedTool, Lockfile};
use sha2::{Digest, Sha512};

fn package(server: &Server, name: &str, location: &str, files: &[(&str, &str, u32, bool)]) -> LockedPackage {
    let body = targz(files, 0);
    let url = server.route(&format!("/npm/{}.tgz", name.replace('/', "-")), Reply::Ok(body.clone()));
    LockedPackage {
        name: name.into(),
        version: "1.0.0".into(),
        location: Some(location.into()),
        artifact: Artifact {
            url,
            checksum: Checksum::Sha512(hex::encode(Sha512::digest(&body))),
            size: Some(body.len() as u64),
        },
        platforms: vec![],
    }
}

#[tokio::test]
async fn npm_closure_with_bin_links_and_no_scripts() {
    let server = Server::start();
    let root = package(
        &server,
        "@acme/cli",
        "node_modules/@acme/cli",
        &[
            (
                "package/package.json",
                r#"{"name":"@acme/cli","bin":{"acme":"bin/acme.js"},"scripts":{"postinstall":"touch /tmp/pwned"}}"#,
                0o644,
                false,
            ),
            ("package/bin/acme.js", "#!/usr/bin/env node\n", 0o644, false),
        ],
    );
    let dep = package(
        &server,
        "dep",
        "node_modules/@acme/cli/node_modules/dep",
        &[
            ("package/package.json", r#"{"name":"dep","bin":"cli.js"}"#, 0o644, false),
            ("package/cli.js", "x", 0o644, false),
        ],
    );
    let tool = LockedTool {
        backend: "npm:@acme/cli".into(),
        request: "1".into(),
        version: "1.0.0".into(),
        runtime: Some("node@22.11.0".into()),
        options: BTreeMap::new(),
        platforms: BTreeMap::new(),
        packages: vec![root, dep],
    };
    let lock = Lockfile {
        version: 1,
        inputs: "sha256:00".into(),
        platforms: vec![Platform::LINUX_AMD64],
        extra_platforms: Vec::new(),
        upstreams: None,
        base: None,
        tools: BTreeMap::from([("npm:@acme/cli".to_string(), vec![tool])]),
    };
    let cache = tempfile::tempdir().unwrap();
    let out = build_image(&lock, &BuildOptions::new(Cache::new(cache.path())), &NoProgress).await.unwrap();
    let layer = out.images[0].layers.iter().find(|l| matches!(l.kind, LayerKind::Tool { .. })).unwrap();
    let mut entries = BTreeMap::new();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&layer.path).unwrap()));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let link = e.link_name().unwrap().map(|l| l.display().to_string());
        let mode = e.header().mode().unwrap();
        let mut s = String::new();
        let _ = e.read_to_string(&mut s);
        entries.insert(path, (link, mode));
    }
    let base = "opt/sbx/mise/installs/npm-acme-cli/1.0.0";
    assert_eq!(entries[&format!("{base}/bin/acme")].0.as_deref(), Some("../lib/node_modules/@acme/cli/bin/acme.js"));
    assert_eq!(
        entries[&format!("{base}/lib/node_modules/@acme/cli/bin/acme.js")].1,
        0o755,
        "bin targets are executable"
    );
    assert_eq!(
        entries[&format!("{base}/lib/node_modules/@acme/cli/node_modules/.bin/dep")].0.as_deref(),
        Some("../dep/cli.js")
    );
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    let cfg: serde_json::Value = serde_json::from_slice(&out.images[0].config_json).unwrap();
    assert!(cfg["config"]["Env"][0].as_str().unwrap().starts_with(&format!("PATH=/{base}/bin:")));
}
