//! Private container engines for tests: a `dockerd` and a podman configuration, each under a
//! temporary directory of its own (data root, exec root, socket, storage), started by the test
//! and removed when the guard drops. The engine CLIs find them through `DOCKER_HOST` and
//! `CONTAINERS_CONF` / `CONTAINERS_STORAGE_CONF`, which sbx passes through to them.
//!
//! Machine facts (DESIGN.md): dockerd runs by hand with `--bridge=none --iptables=false`;
//! podman needs `--runtime runc` (crun refuses hybrid cgroups) and explicit low ulimits.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private dockerd. One at a time per test binary: `DOCKER_HOST` is process-wide,
/// so a second daemon would redirect the first test's engine calls.
pub struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
    /// `unix://…` address of its socket.
    pub host: String,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static DOCKERD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn wait_for(what: &str, log: &Path, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not come up within 60 s; log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Dockerd {
    /// Starts dockerd (with `runsc` registered as a runtime when `with_runsc`) and sets
    /// `DOCKER_HOST` for this process.
    pub fn start(with_runsc: bool) -> Dockerd {
        let one_at_a_time = DOCKERD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        assert!(
            Path::new("/usr/sbin/dockerd").exists() || which("dockerd").is_some(),
            "dockerd is not installed: run .ci/install-deps"
        );
        // Short paths: containerd's sockets live under the exec root (108-byte socket paths).
        let dir = tempfile::Builder::new().prefix("sbxd").tempdir_in("/tmp").unwrap();
        let d = dir.path();
        let mut config = serde_json::json!({});
        if with_runsc {
            config["runtimes"] = serde_json::json!({
                "runsc": {"path": which("runsc").unwrap_or_else(|| PathBuf::from("/usr/bin/runsc")),
                          "runtimeArgs": ["--platform=ptrace", "--network=none", "--host-uds=open"]}
            });
        }
        std::fs::write(d.join("daemon.json"), config.to_string()).unwrap();
        let log = std::fs::File::create(d.join("log")).unwrap();
        let host = format!("unix://{}/d.sock", d.display());
        let child = Command::new(which("dockerd").unwrap_or_else(|| PathBuf::from("/usr/sbin/dockerd")))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"])
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("x"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("-H")
            .arg(&host)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // SAFETY: set before any engine command of this test runs; the value is plain ASCII.
        unsafe { std::env::set_var("DOCKER_HOST", &host) };
        let log_path = d.join("log");
        wait_for("dockerd", &log_path, || {
            Command::new("docker")
                .env("DOCKER_HOST", &host)
                .args(["version", "--format", "{{.Server.Version}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        Dockerd { child, dir, host, _one_at_a_time: one_at_a_time }
    }

    /// `docker ARGS` against this daemon; stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker").env("DOCKER_HOST", &self.host).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in ids.split_whitespace() {
            self.docker(&["rm", "-f", id]);
        }
        // SAFETY: plain kill(2) of the daemon this guard started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        unmount_under(self.dir.path());
    }
}

/// A private podman configuration (storage, run root, runc, cgroupfs, low ulimits).
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    /// Writes the configuration and sets `CONTAINERS_CONF` / `CONTAINERS_STORAGE_CONF`.
    pub fn setup() -> Podman {
        assert!(which("podman").is_some(), "podman is not installed: run .ci/install-deps");
        let dir = tempfile::Builder::new().prefix("sbxp").tempdir_in("/tmp").unwrap();
        let d = dir.path();
        let storage = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{g}\"\nrunroot = \"{r}\"\n",
            g = d.join("graph").display(),
            r = d.join("run").display()
        );
        // No `static_dir`: conmon's exit command (`podman container cleanup`) does not see
        // CONTAINERS_CONF, so a custom libpod database dir makes every `run --rm` wait 20 s for
        // an exit that cleanup never records. The default lives under the private graphroot.
        let runc = which("runc").unwrap_or_else(|| PathBuf::from("/usr/sbin/runc"));
        let conf = format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\nlog_driver = \"k8s-file\"\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{ev}\"\ntmp_dir = \"{tmp}\"\nvolume_path = \"{vol}\"\n\
             [engine.runtimes]\nrunc = [\"{runc}\"]\n",
            ev = d.join("events.log").display(),
            tmp = d.join("tmp").display(),
            vol = d.join("volumes").display(),
            runc = runc.display(),
        );
        std::fs::write(d.join("storage.conf"), storage).unwrap();
        std::fs::write(d.join("containers.conf"), conf).unwrap();
        // SAFETY: set before any engine command of this test runs.
        unsafe {
            std::env::set_var("CONTAINERS_STORAGE_CONF", d.join("storage.conf"));
            std::env::set_var("CONTAINERS_CONF", d.join("containers.conf"));
        }
        let p = Podman { dir };
        let info = p.podman(&["info", "--format", "{{.Host.OCIRuntime.Name}}"]);
        assert_eq!(info.trim(), "runc", "podman does not use the private configuration");
        p
    }

    /// `podman ARGS` with this configuration; stdout.
    pub fn podman(&self, args: &[&str]) -> String {
        let d = self.dir.path();
        let out = Command::new("podman")
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.podman(&["rm", "--all", "--force"]);
        self.podman(&["system", "reset", "--force"]);
        unmount_under(self.dir.path());
    }
}

/// Unmounts whatever an engine left mounted under `dir` (deepest first) so it can be removed.
fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .map(String::from)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(&p).status();
    }
}

/// Finds `name` on PATH (or in the sbin directories, where Debian puts dockerd and runc).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
