//! Pushing to a real `docker-registry` on 127.0.0.1, then reading it back with skopeo.

mod common;

use common::{Server, run, sample_lock};
use sbx_image::build::BuildOptions;
use sbx_image::{Cache, NoProgress, build_image};
use sbx_mise::Platform;

#[tokio::test]
async fn push_then_pull_back_by_digest() {
    let registry = sbx_fixtures::registry::Registry::start().unwrap();
    let server = Server::start();
    let lock = sample_lock(&server, &[Platform::LINUX_AMD64, Platform::LINUX_ARM64], "22.11.0", 0);
    let cache = tempfile::tempdir().unwrap();
    let out = build_image(&lock, &BuildOptions::new(Cache::new(cache.path())), &NoProgress).await.unwrap();
    let reference = format!("{}/sbx/test:v1", registry.addr);
    let digest = sbx_image::registry::push(&out, &reference, &NoProgress).await.unwrap();
    assert_eq!(digest, out.index_digest);
    // A second push finds every blob already there.
    #[derive(Default)]
    struct Pushes(std::sync::Mutex<Vec<bool>>);
    impl sbx_image::Progress for Pushes {
        fn blob_pushed(&self, _digest: &str, _size: u64, uploaded: bool) {
            self.0.lock().unwrap().push(uploaded);
        }
    }
    let pushes = Pushes::default();
    sbx_image::registry::push(&out, &reference, &pushes).await.unwrap();
    let pushes = pushes.0.lock().unwrap();
    assert!(!pushes.is_empty() && pushes.iter().all(|u| !u), "{pushes:?}");

    let raw = run("skopeo", &["inspect", "--tls-verify=false", "--raw", &format!("docker://{reference}")]);
    assert_eq!(common::sha256(raw.as_bytes()).to_string(), out.index_digest);
    let dir = tempfile::tempdir().unwrap();
    let by_digest = format!("docker://{}/sbx/test@{}", registry.addr, out.index_digest);
    run(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            "arm64",
            &by_digest,
            &format!("oci:{}:x", dir.path().display()),
        ],
    );
    let inspect = run("skopeo", &["inspect", &format!("oci:{}:x", dir.path().display())]);
    assert!(inspect.contains("arm64"), "{inspect}");
}

#[tokio::test]
async fn push_to_a_closed_port_names_the_registry() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Server::start();
    let lock = sample_lock(&server, &[Platform::LINUX_AMD64], "22.11.0", 0);
    let cache = tempfile::tempdir().unwrap();
    let out = build_image(&lock, &BuildOptions::new(Cache::new(cache.path())), &NoProgress).await.unwrap();
    let err = sbx_image::registry::push(&out, &format!("127.0.0.1:{port}/x"), &NoProgress).await.unwrap_err();
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test]
async fn registry_errors_and_auth_failures_are_reported() {
    let server = Server::start();
    let lock = sample_lock(&server, &[Platform::LINUX_AMD64], "22.11.0", 0);
    let cache = tempfile::tempdir().unwrap();
    let out = build_image(&lock, &BuildOptions::new(Cache::new(cache.path())), &NoProgress).await.unwrap();
    let host = server.base.trim_start_matches("http://").to_string();

    server.route("/v2/five/blobs/uploads/", common::Reply::Status(500));
    let err = sbx_image::registry::push(&out, &format!("{host}/five"), &NoProgress).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 500"), "{err}");

    server.route("/v2/auth/blobs/uploads/", common::Reply::Status(401));
    let err = sbx_image::registry::push(&out, &format!("{host}/auth"), &NoProgress).await.unwrap_err();
    let report = format!("{:?}", miette::Report::new(err));
    assert!(report.contains("credentials") && report.contains("docker login"), "{report}");
}

#[tokio::test]
async fn registry_base_is_pulled_by_digest_and_reused() {
    let registry = sbx_fixtures::registry::Registry::start().unwrap();
    let server = Server::start();
    let base_lock = sample_lock(&server, &[Platform::LINUX_AMD64], "20.18.1", 0);
    let base_cache = tempfile::tempdir().unwrap();
    let base = build_image(&base_lock, &BuildOptions::new(Cache::new(base_cache.path())), &NoProgress).await.unwrap();
    let reference = format!("{}/sbx/base:v1", registry.addr);
    sbx_image::registry::push(&base, &reference, &NoProgress).await.unwrap();

    let mut lock = sample_lock(&server, &[Platform::LINUX_AMD64], "22.11.0", 0);
    lock.tools.remove("jq");
    lock.base = Some(sbx_mise::lockfile::model::LockedBase {
        reference: reference.clone(),
        digest: base.index_digest.clone(),
        platforms: [(Platform::LINUX_AMD64, base.images[0].manifest_digest.clone())].into(),
    });
    // An empty cache: every base blob comes from the registry.
    let cache = tempfile::tempdir().unwrap();
    let out = build_image(&lock, &BuildOptions::new(Cache::new(cache.path())), &NoProgress).await.unwrap();
    let layers = &out.images[0].layers;
    for (a, b) in layers.iter().zip(&base.images[0].layers) {
        assert_eq!(a.blob.digest, b.blob.digest);
        assert_eq!(std::fs::read(&a.path).unwrap(), std::fs::read(&b.path).unwrap());
    }
    assert_eq!(layers.len(), base.images[0].layers.len() + 2);
    let dir = tempfile::tempdir().unwrap();
    sbx_image::output::write_oci_layout(&out, dir.path(), "latest").unwrap();
    run("skopeo", &["inspect", &format!("oci:{}:latest", dir.path().display())]);

    // A pin the registry does not have fails and names the reference.
    lock.base.as_mut().unwrap().platforms.insert(Platform::LINUX_AMD64, format!("sha256:{}", "1".repeat(64)));
    let err = build_image(&lock, &BuildOptions::new(Cache::new(cache.path())), &NoProgress).await.unwrap_err();
    assert!(err.to_string().contains(&registry.addr), "{err}");
}
