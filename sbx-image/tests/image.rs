//! End-to-end builds: reproducibility, layer reuse, OCI validity with skopeo and umoci,
//! oci-layout bases, docker-archive.

mod common;

use std::path::Path;

use common::{Server, run, sample_lock};
use sbx_image::build::{BuildOptions, LayerKind};
use sbx_image::output::{write_docker_archive, write_oci_layout};
use sbx_image::{Cache, NoProgress, build_image};
use sbx_mise::Platform;
use sbx_mise::lockfile::model::LockedBase;

unsafe extern "C" {
    fn umask(mask: u32) -> u32;
}

fn options(cache: &Path) -> BuildOptions {
    let mut o = BuildOptions::new(Cache::new(cache));
    o.source_date_epoch = 0;
    o.mise_config = Some("[tools]\nnode = \"22\"\n".into());
    o
}

#[tokio::test]
async fn same_lock_same_digest_cold_warm_umask_mtimes() {
    let server = Server::start();
    let platforms = [Platform::LINUX_AMD64, Platform::LINUX_ARM64];
    let lock = sample_lock(&server, &platforms, "22.11.0", 1_000);
    let a = tempfile::tempdir().unwrap();
    let cold = build_image(&lock, &options(a.path()), &NoProgress).await.unwrap();
    assert_eq!(cold.images.len(), 2);
    assert!(cold.images[0].layers.iter().all(|l| !l.cached));
    let warm = build_image(&lock, &options(a.path()), &NoProgress).await.unwrap();
    assert!(warm.images[0].layers.iter().filter(|l| matches!(l.kind, LayerKind::Tool { .. })).all(|l| l.cached));
    assert_eq!(cold.index_digest, warm.index_digest);

    // Another cache dir, another umask: the same bytes.
    let b = tempfile::tempdir().unwrap();
    let old = unsafe { umask(0o077) };
    let other = build_image(&lock, &options(b.path()), &NoProgress).await;
    unsafe { umask(old) };
    let other = other.unwrap();
    assert_eq!(cold.index_digest, other.index_digest);
    for (x, y) in cold.images.iter().zip(&other.images) {
        assert_eq!(x.manifest_digest, y.manifest_digest);
    }

    // Same content with different upstream mtimes is a different artifact checksum (so a
    // different lock), but the layer bytes are identical.
    let server2 = Server::start();
    let lock2 = sample_lock(&server2, &platforms, "22.11.0", 999_999);
    let c = tempfile::tempdir().unwrap();
    let shifted = build_image(&lock2, &options(c.path()), &NoProgress).await.unwrap();
    let diff_ids = |o: &sbx_image::BuildOutput| -> Vec<String> {
        o.images[0].layers.iter().map(|l| l.blob.diff_id.clone()).collect()
    };
    assert_eq!(diff_ids(&cold), diff_ids(&shifted));
    let digests = |o: &sbx_image::BuildOutput| -> Vec<String> {
        o.images[0].layers.iter().map(|l| l.blob.digest.clone()).collect()
    };
    assert_eq!(digests(&cold), digests(&shifted));

    // SOURCE_DATE_EPOCH changes the bytes.
    let mut later = options(c.path());
    later.source_date_epoch = 1_700_000_000;
    let later = build_image(&lock, &later, &NoProgress).await.unwrap();
    assert_ne!(later.index_digest, cold.index_digest);
}

#[tokio::test]
async fn changing_one_tool_rebuilds_only_its_layer() {
    let server = Server::start();
    let lock = sample_lock(&server, &[Platform::LINUX_AMD64], "22.11.0", 0);
    let cache = tempfile::tempdir().unwrap();
    let first = build_image(&lock, &options(cache.path()), &NoProgress).await.unwrap();
    let lock2 = sample_lock(&server, &[Platform::LINUX_AMD64], "22.12.0", 0);
    let second = build_image(&lock2, &options(cache.path()), &NoProgress).await.unwrap();
    let tools: Vec<(String, bool, String)> = second.images[0]
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::Tool { tool, .. } => Some((tool.clone(), l.cached, l.blob.digest.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(tools[0].0, "jq");
    assert!(tools[0].1, "jq is reused from the layer cache");
    assert_eq!(tools[0].2, first.images[0].layers[0].blob.digest);
    assert_eq!(tools[1].0, "node");
    assert!(!tools[1].1, "node was rebuilt");
}

#[tokio::test]
async fn layout_passes_skopeo_and_umoci_and_runs_the_tool() {
    let server = Server::start();
    let lock = sample_lock(&server, &[Platform::LINUX_AMD64], "22.11.0", 0);
    let cache = tempfile::tempdir().unwrap();
    let out = build_image(&lock, &options(cache.path()), &NoProgress).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    write_oci_layout(&out, &layout, "latest").unwrap();
    let layout_s = layout.to_str().unwrap();

    let inspect = run(
        "skopeo",
        &["inspect", "--override-arch", "amd64", "--override-os", "linux", &format!("oci:{layout_s}:latest")],
    );
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 3, "{inspect}");
    assert!(v["Labels"]["dev.sbx.lockfile.digest"].as_str().unwrap().starts_with("sha256:"));
    let raw = run("skopeo", &["inspect", "--raw", &format!("oci:{layout_s}:latest")]);
    assert_eq!(common::sha256(raw.as_bytes()).to_string(), out.index_digest);
    let copy = work.path().join("copy");
    run("skopeo", &["copy", &format!("oci:{layout_s}:latest"), &format!("oci:{}:latest", copy.display())]);

    let bundle = work.path().join("bundle");
    run("umoci", &["unpack", "--rootless", "--image", &format!("{layout_s}:latest"), bundle.to_str().unwrap()]);
    let rootfs = bundle.join("rootfs");
    let installs = rootfs.join("opt/sbx/mise/installs");
    let version = run(installs.join("node/22.11.0/bin/node").to_str().unwrap(), &[]);
    assert_eq!(version.trim(), "v22.11.0");
    assert_eq!(std::fs::read_link(installs.join("node/22")).unwrap(), Path::new("./22.11.0"));
    assert_eq!(std::fs::read_link(installs.join("node/latest")).unwrap(), Path::new("./22.11.0"));
    assert_eq!(
        std::fs::read_link(installs.join("node/22.11.0/bin/npm")).unwrap(),
        Path::new("../lib/node_modules/npm/bin/npm-cli.js")
    );
    assert_eq!(run(installs.join("jq/1.7.1/bin/jq").to_str().unwrap(), &[]).trim(), "jq-1.7.1-x64");
    let manifest = std::fs::read_to_string(installs.join(".mise-installs.toml")).unwrap();
    assert!(manifest.contains("[node]") && manifest.contains("full = \"github:jqlang/jq\""), "{manifest}");
    assert!(std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap().contains("sbx:x:1000:1000"));
    assert!(rootfs.join("etc/mise/config.toml").is_file());
    assert!(rootfs.join("home/sbx").is_dir());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(rootfs.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);

    // The tree hash recorded in the manifest matches the unpacked tree.
    let manifest: serde_json::Value = serde_json::from_slice(&out.images[0].manifest_json).unwrap();
    let node_layer =
        manifest["layers"].as_array().unwrap().iter().find(|l| l["annotations"]["dev.sbx.tool"] == "node").unwrap();
    assert_eq!(
        node_layer["annotations"]["dev.sbx.tree-hash"].as_str().unwrap(),
        sbx_image::tree_hash_dir(&installs.join("node/22.11.0")).unwrap()
    );
    let cfg: serde_json::Value = serde_json::from_slice(&out.images[0].config_json).unwrap();
    let env: Vec<&str> = cfg["config"]["Env"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(
        env[0].starts_with("PATH=/opt/sbx/mise/installs/jq/1.7.1/bin:/opt/sbx/mise/installs/node/22.11.0/bin:"),
        "{env:?}"
    );
    assert!(cfg["history"].as_array().unwrap().iter().all(|h| h.get("created").is_none()));

    let summary = sbx_image::output::summary_json(&out);
    assert_eq!(summary["index_digest"], out.index_digest.as_str());
    assert_eq!(summary["images"][0]["layers"][1]["tool"], "node");
    assert_eq!(summary["images"][0]["layers"][2]["kind"], "config");

    // docker-archive: skopeo reads it as docker would.
    let archive = work.path().join("image.tar");
    write_docker_archive(&out, Platform::LINUX_AMD64, &archive, "sbx/test:latest").unwrap();
    let inspect = run("skopeo", &["inspect", &format!("docker-archive:{}", archive.display())]);
    assert!(inspect.contains(&out.images[0].layers[1].blob.diff_id), "{inspect}");
}

#[tokio::test]
async fn oci_layout_base_layers_are_reused_as_they_are() {
    let server = Server::start();
    let base_lock = sample_lock(&server, &[Platform::LINUX_AMD64], "20.18.1", 0);
    let cache = tempfile::tempdir().unwrap();
    let base_out = build_image(&base_lock, &options(cache.path()), &NoProgress).await.unwrap();
    let project = tempfile::tempdir().unwrap();
    write_oci_layout(&base_out, &project.path().join("base"), "latest").unwrap();

    let mut lock = sample_lock(&server, &[Platform::LINUX_AMD64], "22.11.0", 0);
    lock.tools.remove("jq");
    lock.base = Some(LockedBase {
        reference: "oci-layout:base".into(),
        digest: base_out.index_digest.clone(),
        platforms: [(Platform::LINUX_AMD64, base_out.images[0].manifest_digest.clone())].into(),
    });
    let mut opts = options(cache.path());
    opts.project_dir = project.path().to_path_buf();
    let out = build_image(&lock, &opts, &NoProgress).await.unwrap();
    let layers = &out.images[0].layers;
    let base_layers = &base_out.images[0].layers;
    assert_eq!(layers.len(), base_layers.len() + 2);
    for (a, b) in layers.iter().zip(base_layers) {
        assert_eq!(a.kind, LayerKind::Base);
        assert_eq!(a.blob.digest, b.blob.digest);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&out.images[0].manifest_json).unwrap();
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.digest"],
        base_out.images[0].manifest_digest.as_str()
    );
    let layout = project.path().join("out");
    write_oci_layout(&out, &layout, "latest").unwrap();
    run("skopeo", &["inspect", &format!("oci:{}:latest", layout.display())]);

    // A pin that the layout does not hold is an error naming the base.
    lock.base.as_mut().unwrap().platforms.insert(Platform::LINUX_AMD64, format!("sha256:{}", "0".repeat(64)));
    let err = build_image(&lock, &opts, &NoProgress).await.unwrap_err();
    assert!(err.to_string().contains("oci-layout:base"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_builds_share_the_cache_safely() {
    let server = Server::start();
    let lock = sample_lock(&server, &[Platform::LINUX_AMD64], "22.11.0", 0);
    let cache = tempfile::tempdir().unwrap();
    let (o1, o2) = (options(cache.path()), options(cache.path()));
    let (a, b) = tokio::join!(build_image(&lock, &o1, &NoProgress), build_image(&lock, &o2, &NoProgress));
    assert_eq!(a.unwrap().index_digest, b.unwrap().index_digest);
    assert_eq!(server.hits("/node/v22.11.0/node-v22.11.0-linux-x64.tar.gz"), 1, "downloaded once");
}

#[tokio::test]
async fn damaged_layer_cache_blob_is_rebuilt() {
    let server = Server::start();
    let lock = sample_lock(&server, &[Platform::LINUX_AMD64], "22.11.0", 0);
    let cache = tempfile::tempdir().unwrap();
    let first = build_image(&lock, &options(cache.path()), &NoProgress).await.unwrap();
    let node = first.images[0]
        .layers
        .iter()
        .find(|l| matches!(&l.kind, LayerKind::Tool { tool, .. } if tool == "node"))
        .unwrap();
    let len = std::fs::metadata(&node.path).unwrap().len() as usize;
    std::fs::write(&node.path, vec![0u8; len]).unwrap();
    let second = build_image(&lock, &options(cache.path()), &NoProgress).await.unwrap();
    let again = second.images[0]
        .layers
        .iter()
        .find(|l| matches!(&l.kind, LayerKind::Tool { tool, .. } if tool == "node"))
        .unwrap();
    assert!(!again.cached, "a damaged blob is not served from the cache");
    assert_eq!(second.index_digest, first.index_digest);
    assert_eq!(sbx_image::digest::sha256_digest(&std::fs::read(&again.path).unwrap()), again.blob.digest);
}
