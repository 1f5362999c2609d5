//! Images and services the build tests point `sbx build` at: system tools, busybox and
//! glibc OCI layouts (from `sbx_fixtures::images`), a Debian minbase, runc and a private
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

/// An OCI layout at `dir` holding a one-layer busybox image written by umoci (so the build
/// reads a layout another tool wrote).
pub(crate) fn busybox_layout(dir: &Path) {
    let rootfs = dir.with_extension("rootfs");
    sbx_fixtures::images::busybox_rootfs(&rootfs).unwrap();
    let image = format!("{}:latest", dir.display());
    tool("umoci", &["init", "--layout", dir.to_str().unwrap()]);
    tool("umoci", &["new", "--image", &image]);
    tool("umoci", &["insert", "--image", &image, rootfs.to_str().unwrap(), "/"]);
}

/// An OCI layout at `dir` (tag `latest`): busybox plus the host's glibc.
pub(crate) fn glibc_busybox_layout(dir: &Path) {
    sbx_fixtures::images::glibc_busybox_layout(dir).unwrap();
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

pub(crate) fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
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
