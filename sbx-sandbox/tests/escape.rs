//! The escape suite: on every runtime that must work here, each probe (tests/escape/probe.rs)
//! tries one way out of a real sandbox and must fail; a success fails the test and names the
//! hole. Control probes check that the proxy relay works, so "blocked" is not a broken sandbox.

#[path = "engine_daemons/mod.rs"]
mod engine_daemons;
mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread;

use sbx_sandbox::{Outcome, RuntimeChoice, RuntimeKind, SandboxSpec, Sandboxes, runtime};

const PROXY_ANSWER: &str = "sbx-proxy-canary-7d1f";

/// Host-side fixtures the probes aim at.
struct Host {
    _tmp: tempfile::TempDir,
    sandboxes: Sandboxes,
    layout: PathBuf,
    workspace: PathBuf,
    outside: PathBuf,
    proxy_socket: PathBuf,
    ca: PathBuf,
    canary: String,
    env_canary: String,
    tcp_port: u16,
    udp_port: u16,
    home_canary: PathBuf,
    ssh_canary: PathBuf,
    real_proxy: RealProxy,
}

/// The real egress proxy (sbx-proxy) on a Unix socket, with a resolver that maps every test name
/// to 127.0.0.1 so nothing can leave this machine even if a check failed.
struct RealProxy {
    _runtime: tokio::runtime::Runtime,
    _handle: sbx_proxy::ProxyHandle,
    socket: PathBuf,
}

impl RealProxy {
    fn start(dir: &Path) -> RealProxy {
        use sbx_proxy::{DomainRule, PolicyConfig, Preset, Proxy, ProxyOptions, StaticResolver};
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let socket = dir.join("real-proxy").join("proxy.sock");
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let mut options = ProxyOptions::new("escape", dir.join("real-proxy-state"));
        options.socket_path = Some(socket.clone());
        let loopback = [std::net::IpAddr::from([127, 0, 0, 1])];
        options.resolver = std::sync::Arc::new(
            StaticResolver::new()
                .with("allowed.test", &loopback)
                .with("blocked.test", &loopback)
                .with("localhost", &loopback),
        );
        options.policy = PolicyConfig {
            preset: Preset::DenyAll,
            preset_source: "escape test".into(),
            allowed_domains: vec![DomainRule::parse("allowed.test", "escape:1").unwrap()],
            blocked_domains: vec![DomainRule::parse("blocked.test", "escape:2").unwrap()],
            ..PolicyConfig::default()
        };
        let handle = runtime.block_on(Proxy::start(options)).unwrap();
        RealProxy { _runtime: runtime, _handle: handle, socket }
    }
}

fn serve_tcp_canary(canary: String) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(canary.as_bytes());
        }
    });
    port
}

fn serve_udp_canary(canary: String) -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(canary.as_bytes(), from);
        }
    });
    port
}

/// A stand-in for the egress proxy: answers every connection with a fixed HTTP response.
fn serve_fake_proxy(path: &Path) {
    let l = UnixListener::bind(path).unwrap();
    thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let body = PROXY_ANSWER;
                let _ =
                    write!(c, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            });
        }
    });
}

/// The host-only environment: a canary variable and the real API key (the sandbox gets a sentinel).
fn env_canary() -> String {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let canary = format!("sbxenvcanary{}", std::process::id());
    ONCE.call_once(|| {
        // SAFETY: called once, before any sandbox thread reads the environment.
        unsafe {
            std::env::set_var("SBX_ESCAPE_CANARY", &canary);
            std::env::set_var("API_KEY", "real-api-key-value");
        }
    });
    canary
}

fn host_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

impl Host {
    fn new(tag: &str) -> Host {
        let tmp = tempfile::tempdir().unwrap();
        let canary = format!("sbxcanary{}{}", tag, std::process::id());
        let workspace = tmp.path().join("workspace");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), &canary).unwrap();
        let proxy_dir = tmp.path().join("proxy");
        std::fs::create_dir_all(&proxy_dir).unwrap();
        let proxy_socket = proxy_dir.join("proxy.sock");
        serve_fake_proxy(&proxy_socket);
        let ca = tmp.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n").unwrap();
        let home_canary = host_home().join(format!(".sbx-escape-canary-{tag}"));
        std::fs::write(&home_canary, &canary).unwrap();
        let ssh = host_home().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        let ssh_canary = ssh.join(format!("sbx-escape-canary-{tag}"));
        std::fs::write(&ssh_canary, &canary).unwrap();
        Host {
            sandboxes: Sandboxes::new(tmp.path().join("state"), support::artifacts().join("cache")),
            layout: support::busybox_layout(),
            workspace,
            outside,
            proxy_socket,
            ca,
            tcp_port: serve_tcp_canary(canary.clone()),
            udp_port: serve_udp_canary(canary.clone()),
            canary,
            env_canary: env_canary(),
            home_canary,
            ssh_canary,
            real_proxy: RealProxy::start(tmp.path()),
            _tmp: tmp,
        }
    }

    /// Runs `probe ARGS` in a fresh sandbox; returns its exit code.
    fn run(&self, runtime: RuntimeChoice, name: &str, args: &[String]) -> i32 {
        let real = args.first().is_some_and(|a| a == "proxy-connect");
        // The kernel the probe runs on: gVisor's for the gvisor runtime and for docker with runsc.
        let kind = match runtime {
            RuntimeChoice::Gvisor => "gvisor",
            RuntimeChoice::Docker if sbx_sandbox::runtime::engine::docker_has_runsc() => "gvisor",
            _ => "bwrap",
        };
        let mut spec = SandboxSpec::new(name, &self.layout, &self.workspace);
        spec.runtime = runtime;
        spec.proxy_socket = Some(if real { self.real_proxy.socket.clone() } else { self.proxy_socket.clone() });
        spec.ca_pem = Some(self.ca.clone());
        spec.env = BTreeMap::from([
            ("API_KEY".to_string(), "sentinel".to_string()),
            ("SBX_PROBE_RUNTIME".to_string(), kind.to_string()),
        ]);
        spec.command = std::iter::once("/usr/local/bin/probe".to_string()).chain(args.iter().cloned()).collect();
        match self.sandboxes.start(&spec, &mut |_| {}).unwrap() {
            Outcome::Exited(code) => code,
            Outcome::Detached(_) => unreachable!(),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.home_canary);
        let _ = std::fs::remove_file(&self.ssh_canary);
    }
}

fn probes(h: &Host) -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &str| v.to_string();
    let host_pid = std::process::id().to_string();
    let host_init =
        std::fs::read("/proc/1/cmdline").map(|c| String::from_utf8_lossy(&c).replace('\0', " ")).unwrap_or_default();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let outside = h.outside.display().to_string();
    let ws_parent = h.workspace.parent().unwrap().display().to_string();
    let tcp = format!("127.0.0.1:{}", h.tcp_port);
    let udp = format!("127.0.0.1:{}", h.udp_port);
    vec![
        ("home canary file", vec![s("read-file"), h.home_canary.display().to_string()]),
        ("~/.ssh canary file", vec![s("read-file"), h.ssh_canary.display().to_string()]),
        ("host env canary (own env)", vec![s("env-direct"), h.env_canary.clone()]),
        ("host env canary via /proc/1/environ", vec![s("env-proc1"), h.env_canary.clone()]),
        ("host env canary via every /proc/*/environ", vec![s("env-proc-all"), h.env_canary.clone()]),
        (
            "host env canary via /proc/<host pid>/environ",
            vec![s("env-host-pid"), h.env_canary.clone(), host_pid.clone()],
        ),
        ("real API key (only the sentinel may be visible)", vec![s("env-proc-all"), s("real-api-key-value")]),
        ("host pid 1 visible", vec![s("host-proc1-cmdline"), host_init]),
        ("host hostname", vec![s("hostname"), hostname]),
        ("list a sibling of the workspace", vec![s("read-file"), outside.clone(), format!("{outside}/secret.txt")]),
        (
            "write next to the workspace (checked on the host)",
            vec![s("write-file"), format!("{ws_parent}/escape-write")],
        ),
        (
            "host root directories",
            vec![s("read-file"), s("/work"), s("/etc/shadow"), s("/root/.bashrc"), s("/var/lib/dpkg/status")],
        ),
        (
            "docker / ssh-agent / dbus sockets",
            vec![
                s("read-file"),
                s("/var/run/docker.sock"),
                s("/run/docker.sock"),
                s("/run/dbus/system_bus_socket"),
                s("/run/systemd/private"),
            ],
        ),
        ("host loopback canary by IP", vec![s("tcp"), tcp.clone(), h.canary.clone()]),
        ("host loopback canary by name", vec![s("tcp"), format!("localhost:{}", h.tcp_port), h.canary.clone()]),
        ("UDP to a host loopback canary", vec![s("udp"), udp.clone(), h.canary.clone()]),
        ("DNS to a host loopback canary", vec![s("dns"), udp, h.canary.clone()]),
        ("proxy: a blocked domain", vec![s("proxy-connect"), format!("blocked.test:{}", h.tcp_port)]),
        (
            "proxy: an allowed name resolving to 127.0.0.1",
            vec![s("proxy-connect"), format!("allowed.test:{}", h.tcp_port)],
        ),
        ("proxy: a domain not on the allow list", vec![s("proxy-connect"), format!("localhost:{}", h.tcp_port)]),
        ("proxy: a loopback IP literal", vec![s("proxy-connect"), tcp.clone()]),
        ("route to an IP literal", vec![s("route"), s("192.0.2.1")]),
        ("unset the proxy variables and route directly", vec![s("route-no-proxy"), s("198.51.100.7")]),
        ("network interfaces other than lo", vec![s("interfaces")]),
        ("raw socket", vec![s("raw-socket")]),
        ("packet socket", vec![s("packet-socket")]),
        ("ptrace a host process", vec![s("ptrace-host"), host_pid.clone()]),
        ("ptrace on the host kernel", vec![s("ptrace-child")]),
        ("process_vm_readv a host process", vec![s("process-vm-readv"), host_pid]),
        ("mount", vec![s("mount")]),
        ("remount / read-write", vec![s("remount-root-rw")]),
        ("unshare -n to get a network", vec![s("unshare-net")]),
        ("nested user namespace on the host kernel", vec![s("unshare-user")]),
        ("setns into another namespace", vec![s("setns")]),
        ("chroot", vec![s("chroot")]),
        ("setuid binaries in the image", vec![s("setuid-files")]),
        ("no_new_privs unset", vec![s("no-new-privs")]),
        ("capabilities left", vec![s("capabilities")]),
        (
            "write /proc/sys",
            vec![
                s("write-file"),
                s("/proc/sys/vm/drop_caches"),
                s("/proc/sysrq-trigger"),
                s("/proc/sys/net/ipv4/ip_forward"),
            ],
        ),
        ("set the hostname via /proc/sys (checked on the host)", vec![s("write-file"), s("/proc/sys/kernel/hostname")]),
        (
            "write /sys",
            vec![
                s("write-file"),
                s("/sys/kernel/uevent_helper"),
                s("/sys/class/net/lo/mtu"),
                s("/sys/fs/cgroup/cgroup.procs"),
            ],
        ),
        ("host block and memory devices", vec![s("devices")]),
        ("create a TUN interface", vec![s("tun")]),
        ("kernel keyring (add_key)", vec![s("keyring")]),
        ("kernel keyring (keyctl)", vec![s("keyctl")]),
        ("bpf", vec![s("bpf")]),
        ("perf_event_open", vec![s("perf-event-open")]),
        ("load a kernel module", vec![s("init-module")]),
        ("kexec_load", vec![s("kexec-load")]),
        ("reboot", vec![s("reboot")]),
        ("open_by_handle_at (shocker)", vec![s("open-by-handle")]),
        (
            "write the image rootfs",
            vec![s("write-file"), s("/etc/sbx-escape-mark"), s("/usr/bin/sbx-escape-mark"), s("/sbx-escape-mark")],
        ),
        (
            "next sandbox sees rootfs writes",
            vec![s("read-file"), s("/etc/sbx-escape-mark"), s("/usr/bin/sbx-escape-mark"), s("/sbx-escape-mark")],
        ),
    ]
}

fn escape_suite(kind: RuntimeKind, choice: RuntimeChoice) {
    if let Err(e) = runtime::select(choice) {
        panic!("runtime {kind} must work on this machine (run .ci/install-deps): {e}");
    }
    let h = Host::new(kind.name());
    // Controls: the sandbox works and its only way out (the relay to the proxy) works.
    assert_eq!(
        h.run(choice, &format!("ctl-{kind}"), &["control-proxy".into(), PROXY_ANSWER.into()]),
        0,
        "proxy relay broken"
    );
    let host_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let list = probes(&h);
    let mut holes = Vec::new();
    let mut broken = Vec::new();
    for (i, (what, args)) in list.iter().enumerate() {
        let code = h.run(choice, &format!("esc-{kind}-{i}"), args);
        match code {
            1 => {}
            // Writes that may land in the sandbox's own tmpfs count only if the host sees them.
            0 if what.ends_with("(checked on the host)") => {}
            0 => holes.push(format!("{what} ({})", args.join(" "))),
            other => broken.push(format!("{what}: exit {other}")),
        }
    }
    let rootfs = h.sandboxes.prepare_rootfs(&h.layout).unwrap().rootfs;
    for leaked in ["etc/sbx-escape-mark", "usr/bin/sbx-escape-mark", "sbx-escape-mark"] {
        if rootfs.join(leaked).exists() {
            holes.push(format!("wrote {leaked} into the shared rootfs cache"));
        }
    }
    if std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default() != host_hostname {
        holes.push("changed the host's hostname".into());
    }
    if h.workspace.parent().unwrap().join("escape-write").exists() {
        holes.push("wrote next to the workspace on the host".into());
    }
    println!("{kind}: {} probes, {} holes, {} broken", list.len(), holes.len(), broken.len());
    assert!(list.len() >= 30);
    assert!(broken.is_empty(), "{kind}: broken probes: {broken:#?}");
    assert!(holes.is_empty(), "{kind}: ESCAPES FOUND: {holes:#?}");
}

#[test]
fn escape_suite_bwrap() {
    escape_suite(RuntimeKind::Bwrap, RuntimeChoice::Bwrap);
}

#[test]
fn escape_suite_gvisor() {
    escape_suite(RuntimeKind::Gvisor, RuntimeChoice::Gvisor);
}

#[test]
fn escape_suite_docker() {
    let _dockerd = engine_daemons::Dockerd::start(false);
    escape_suite(RuntimeKind::Docker, RuntimeChoice::Docker);
}

/// Docker with gVisor registered (`--runtime runsc` is added): the registration sbx documents
/// (`--network=none --host-uds=open`: loopback only, the proxy socket reachable).
#[test]
fn escape_suite_docker_runsc() {
    let _dockerd = engine_daemons::Dockerd::start(true);
    escape_suite(RuntimeKind::Docker, RuntimeChoice::Docker);
}

#[test]
fn escape_suite_podman() {
    let _podman = engine_daemons::Podman::setup();
    escape_suite(RuntimeKind::Podman, RuntimeChoice::Podman);
}
