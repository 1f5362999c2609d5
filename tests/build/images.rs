//! Images and services the build tests point `sbx build` at: system tools, busybox and
//! glibc OCI layouts, a Debian minbase, runc, a loopback `docker-registry` and a private
//! `dockerd`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs a system tool, failing with its output when it fails.
pub(crate) fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("`{cmd}` is required (install it with .ci/install-deps): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// An OCI layout at `dir` holding a one-layer image with a static busybox as `/bin/sh`.
pub(crate) fn busybox_layout(dir: &Path) {
    let rootfs = busybox_rootfs(dir);
    let image = format!("{}:latest", dir.display());
    tool("umoci", &["init", "--layout", dir.to_str().unwrap()]);
    tool("umoci", &["new", "--image", &image]);
    tool("umoci", &["insert", "--image", &image, rootfs.to_str().unwrap(), "/"]);
}

/// `<dir>.rootfs` with a static busybox as `/bin/sh` and a few applets.
pub(crate) fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.with_extension("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "id", "stat", "cat", "ls"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    rootfs
}

/// An OCI layout at `dir` (tag `latest`): busybox plus the host's glibc, as one uncompressed
/// layer written here (umoci 0.4.7 truncates gzip layers of a few MB).
pub(crate) fn glibc_busybox_layout(dir: &Path) {
    let rootfs = busybox_rootfs(dir);
    let libs = ["libc.so.6", "libdl.so.2", "libgcc_s.so.1", "librt.so.1", "libpthread.so.0", "libm.so.6"];
    let files = libs.iter().map(|l| format!("lib/x86_64-linux-gnu/{l}")).chain(["lib64/ld-linux-x86-64.so.2".into()]);
    for file in files {
        std::fs::create_dir_all(rootfs.join(&file).parent().unwrap()).unwrap();
        std::fs::copy(Path::new("/").join(&file), rootfs.join(&file)).unwrap();
    }
    let blob = |bytes: &[u8]| {
        let digest = sha256_hex(bytes);
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("blobs/sha256").join(&digest), bytes).unwrap();
        serde_json::json!({"digest": format!("sha256:{digest}"), "size": bytes.len()})
    };
    let tar = dir.with_extension("tar");
    let args = ["--create", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "--file"];
    tool("tar", &[&args[..], &[tar.to_str().unwrap(), "-C", rootfs.to_str().unwrap(), "."]].concat());
    let layer = std::fs::read(&tar).unwrap();
    let mut layer_desc = blob(&layer);
    layer_desc["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    }))
    .unwrap();
    let mut config_desc = blob(&config);
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc, "layers": [layer_desc],
    }))
    .unwrap();
    let mut manifest_desc = blob(&manifest);
    manifest_desc["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    manifest_desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest_desc]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Unpacks `layout:tag` with umoci and runs `args` in it with runc → stdout.
pub(crate) fn runc_run(layout: &Path, tag: &str, work: &Path, args: &[&str]) -> String {
    let bundle = work.join(format!("bundle-{tag}"));
    let _ = std::fs::remove_dir_all(&bundle);
    tool("umoci", &["unpack", "--image", &format!("{}:{tag}", layout.display()), bundle.to_str().unwrap()]);
    let config_path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["process"]["args"] = serde_json::json!(args);
    config["process"]["terminal"] = Value::Bool(false);
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let id = format!("sbx-build-test-{}-{tag}", std::process::id());
    tool("runc", &["run", "--bundle", bundle.to_str().unwrap(), &id])
}

/// `docker-registry` on a free loopback port; stopped on drop.
pub(crate) struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn start_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("config.yml");
    let data = dir.path().join("data");
    let yml = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
        data.display()
    );
    std::fs::write(&config, yml).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("`docker-registry` is required (install it with .ci/install-deps): {e}"));
    wait_for("docker-registry", || std::net::TcpStream::connect(&addr).is_ok());
    Registry { child, addr, _dir: dir }
}

/// A `dockerd` with a private data root and socket, no bridge, no iptables; stopped on drop.
pub(crate) struct Dockerd {
    child: Child,
    /// `unix://…` for `docker -H`.
    pub(crate) host: String,
    _dir: tempfile::TempDir,
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd and unmount its data root.
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

pub(crate) fn start_dockerd() -> Dockerd {
    let dir = tempfile::Builder::new().prefix("sbx-dockerd-").tempdir_in("/tmp").unwrap();
    let sock = dir.path().join("docker.sock");
    let host = format!("unix://{}", sock.display());
    let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
    let child = Command::new("dockerd")
        .args(["--bridge=none", "--iptables=false", "--host", &host])
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .arg("--pidfile")
        .arg(dir.path().join("docker.pid"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("`dockerd` is required (install docker.io with .ci/install-deps): {e}"));
    let d = Dockerd { child, host, _dir: dir };
    wait_for("dockerd", || {
        Command::new("docker").args(["-H", &d.host, "version"]).output().is_ok_and(|o| o.status.success())
    });
    d
}

/// A Debian bookworm minbase as an OCI layout (tag `bookworm`), made once per target dir with
/// debootstrap and umoci.
pub(crate) fn debian_base_layout() -> PathBuf {
    let layout = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sbx-build-debian-minbase");
    if layout.join("index.json").is_file() {
        return layout;
    }
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let rootfs = work.path().join("rootfs");
    tool("debootstrap", &["--variant=minbase", "bookworm", rootfs.to_str().unwrap(), "http://deb.debian.org/debian"]);
    let staging = work.path().join("layout");
    let image = format!("{}:bookworm", staging.display());
    tool("umoci", &["init", "--layout", staging.to_str().unwrap()]);
    tool("umoci", &["new", "--image", &image]);
    tool("umoci", &["insert", "--image", &image, rootfs.to_str().unwrap(), "/"]);
    let _ = std::fs::remove_dir_all(&layout);
    std::fs::rename(&staging, &layout).unwrap();
    layout
}
