//! Escape probes, run inside the sandbox by `tests/escape.rs`. Compiled standalone (std only,
//! statically linked) into the test image at /usr/local/bin/probe.
//!
//! `probe NAME [ARGS…]` tries one way out. Exit codes: 0 = ESCAPED (the hole is printed),
//! 1 = blocked (as expected), 2 = the probe itself is broken. `control-*` probes check that
//! what must work (the proxy relay, loopback) does work; for them 0 means working.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::process::exit;
use std::time::Duration;

extern "C" {
    fn syscall(n: i64, ...) -> i64;
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn _exit(code: i32) -> !;
    fn pause() -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
}

// x86_64 syscall numbers.
const SYS_PTRACE: i64 = 101;
const SYS_MOUNT: i64 = 165;
const SYS_UNSHARE: i64 = 272;
const SYS_KEYCTL: i64 = 250;
const SYS_ADD_KEY: i64 = 248;
const SYS_BPF: i64 = 321;
const SYS_PERF_EVENT_OPEN: i64 = 298;
const SYS_INIT_MODULE: i64 = 175;
const SYS_KEXEC_LOAD: i64 = 246;
const SYS_OPEN_BY_HANDLE_AT: i64 = 304;
const SYS_PROCESS_VM_READV: i64 = 310;
const SYS_SOCKET: i64 = 41;
const SYS_CHROOT: i64 = 161;
const SYS_SETNS: i64 = 308;
const SYS_REBOOT: i64 = 169;

fn escaped(msg: impl std::fmt::Display) -> ! {
    println!("ESCAPED: {msg}");
    exit(0)
}

fn blocked(msg: impl std::fmt::Display) -> ! {
    println!("blocked: {msg}");
    exit(1)
}

fn broken(msg: impl std::fmt::Display) -> ! {
    println!("PROBE BROKEN: {msg}");
    exit(2)
}

/// The runtime the harness says we run under (`gvisor` implements ptrace, user namespaces and
/// devices inside its own user-space kernel, so using them there is not a way out).
fn in_gvisor() -> bool {
    std::env::var("SBX_PROBE_RUNTIME").is_ok_and(|r| r == "gvisor")
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A syscall that must be refused: refusal errnos are "blocked", success or any other errno
/// means the kernel went past the permission check.
fn expect_refused(what: &str, rc: i64) -> ! {
    if rc >= 0 {
        escaped(format!("{what} succeeded (rc {rc})"));
    }
    let e = errno();
    // EPERM, EACCES, ENOSYS, EOPNOTSUPP (gVisor's answer for unimplemented features).
    // ENODEV: gVisor has no PMU behind perf_event_open.
    if [1, 13, 38, 95].contains(&e) || (in_gvisor() && e == 19) {
        blocked(format!("{what}: {}", std::io::Error::from_raw_os_error(e)));
    }
    escaped(format!("{what} reached the kernel: {}", std::io::Error::from_raw_os_error(e)))
}

fn read_anything(paths: &[String]) -> ! {
    for p in paths {
        if let Ok(data) = std::fs::read(p) {
            escaped(format!("read {p} ({} bytes)", data.len()));
        }
        if std::fs::metadata(p).is_ok() {
            escaped(format!("{p} is visible"));
        }
    }
    blocked(format!("none of {paths:?} is visible"))
}

fn contains(hay: &[u8], needle: &str) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn scan_environs(canary: &str, pids: &[String]) -> ! {
    for pid in pids {
        let p = format!("/proc/{pid}/environ");
        if let Ok(data) = std::fs::read(&p) {
            if contains(&data, canary) {
                escaped(format!("canary found in {p}"));
            }
        }
    }
    blocked("canary not found")
}

fn all_pids() -> Vec<String> {
    std::fs::read_dir("/proc")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

fn tcp_banner(addr: &str, canary: &str) -> ! {
    let addrs = match addr.to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => blocked(format!("{addr} does not resolve: {e}")),
    };
    for a in addrs {
        if let Ok(mut s) = TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            if contains(&buf, canary) {
                escaped(format!("reached the host canary server at {a}"));
            }
        }
    }
    blocked(format!("{addr}: host canary unreachable"))
}

fn udp_echo(addr: &str, payload: &[u8], canary: &str) -> ! {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| broken(e));
    let _ = sock.set_read_timeout(Some(Duration::from_millis(700)));
    if let Err(e) = sock.send_to(payload, addr) {
        blocked(format!("send to {addr}: {e}"));
    }
    let mut buf = [0u8; 512];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) if contains(&buf[..n], canary) => escaped(format!("host UDP canary at {addr} answered")),
        _ => blocked(format!("no answer from {addr}")),
    }
}

/// A route lookup only: `connect` on a UDP socket sends nothing.
fn route_to(ip: &str) -> ! {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| broken(e));
    match sock.connect((ip, 9)) {
        Ok(()) => escaped(format!("the sandbox has a route to {ip}")),
        Err(e) => blocked(format!("no route to {ip}: {e}")),
    }
}

fn write_file(path: &str) -> bool {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .is_ok_and(|mut f| f.write_all(b"1").is_ok())
}

fn spawn_child_sleeper() -> i32 {
    // SAFETY: the child only pauses; the probe kills it before exiting.
    let pid = unsafe { fork() };
    if pid == 0 {
        unsafe {
            pause();
            _exit(0)
        }
    }
    pid
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else { broken("no probe name") };
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| broken(format!("{name}: missing argument {i}")));
    match name.as_str() {
        "read-file" => read_anything(&args[1..]),
        "env-direct" => {
            let canary = arg(1);
            for (k, v) in std::env::vars() {
                if contains(k.as_bytes(), &canary) || contains(v.as_bytes(), &canary) {
                    escaped(format!("canary in own environment ({k})"));
                }
            }
            blocked("canary not in environment")
        }
        "env-proc1" => scan_environs(&arg(1), &["1".into()]),
        "env-proc-all" => scan_environs(&arg(1), &all_pids()),
        "env-host-pid" => scan_environs(&arg(1), &[arg(2)]),
        "host-proc1-cmdline" => {
            let host = arg(1);
            match std::fs::read("/proc/1/cmdline") {
                Ok(c) if !host.is_empty() && String::from_utf8_lossy(&c).replace('\0', " ") == host => {
                    escaped("sees the host's pid 1")
                }
                _ => blocked("pid 1 is not the host's init"),
            }
        }
        "hostname" => {
            let host = arg(1);
            let mine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            if mine.trim() == host.trim() {
                escaped(format!("hostname is the host's ({host})"));
            }
            blocked(format!("hostname is {}", mine.trim()))
        }
        "write-file" => {
            for p in &args[1..] {
                if write_file(p) {
                    escaped(format!("wrote {p}"));
                }
            }
            blocked(format!("could not write any of {:?}", &args[1..]))
        }
        "tcp" => tcp_banner(&arg(1), &arg(2)),
        "udp" => udp_echo(&arg(1), arg(2).as_bytes(), &arg(2)),
        "dns" => {
            // A DNS query for the canary name, sent to the host's loopback DNS canary.
            let canary = arg(2);
            let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            for label in canary.split('.') {
                q.push(label.len() as u8);
                q.extend_from_slice(label.as_bytes());
            }
            q.extend_from_slice(&[0, 0, 1, 0, 1]);
            udp_echo(&arg(1), &q, &canary)
        }
        "route" => route_to(&arg(1)),
        "route-no-proxy" => {
            for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"] {
                std::env::remove_var(k);
            }
            route_to(&arg(1))
        }
        "interfaces" => {
            let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
            let ifaces: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
            match ifaces.iter().find(|i| **i != "lo") {
                Some(i) => escaped(format!("network interface {i} present")),
                None => blocked(format!("interfaces: {ifaces:?}")),
            }
        }
        "raw-socket" => {
            expect_refused("socket(AF_INET, SOCK_RAW, ICMP)", unsafe { syscall(SYS_SOCKET, 2i64, 3i64, 1i64) })
        }
        "packet-socket" => {
            expect_refused("socket(AF_PACKET, SOCK_RAW)", unsafe { syscall(SYS_SOCKET, 17i64, 3i64, 0x0300i64) })
        }
        "ptrace-host" => {
            let pid: i64 = arg(1).parse().unwrap_or_else(|e| broken(e));
            let rc = unsafe { syscall(SYS_PTRACE, 16i64, pid, 0i64, 0i64) };
            if rc == 0 {
                escaped(format!("PTRACE_ATTACH to host pid {pid} succeeded"));
            }
            blocked(format!("ptrace host pid {pid}: {}", std::io::Error::last_os_error()))
        }
        "ptrace-child" => {
            // Tracing processes is refused outright under bwrap; gVisor traces only inside itself,
            // so this probe checks that ptrace cannot reach a *host* view: it must not see the host.
            let child = spawn_child_sleeper();
            let rc = unsafe { syscall(SYS_PTRACE, 16i64, child as i64, 0i64, 0i64) };
            let e = errno();
            unsafe {
                kill(child, 9);
                waitpid(child, std::ptr::null_mut(), 0);
            }
            if rc == 0 && in_gvisor() {
                blocked("ptrace works only inside gVisor's own kernel");
            }
            if rc == 0 {
                escaped("PTRACE_ATTACH on the host kernel succeeded");
            }
            blocked(format!("ptrace: {}", std::io::Error::from_raw_os_error(e)))
        }
        "process-vm-readv" => {
            let pid: i64 = arg(1).parse().unwrap_or_else(|e| broken(e));
            let mut buf = [0u8; 8];
            let local = [buf.as_mut_ptr() as usize, 8usize];
            let remote = [0x400000usize, 8usize];
            let rc = unsafe { syscall(SYS_PROCESS_VM_READV, pid, local.as_ptr(), 1i64, remote.as_ptr(), 1i64, 0i64) };
            if rc > 0 {
                escaped(format!("read memory of host pid {pid}"));
            }
            blocked(format!("process_vm_readv: {}", std::io::Error::last_os_error()))
        }
        "mount" => {
            let _ = std::fs::create_dir_all("/tmp/m");
            expect_refused("mount tmpfs", unsafe {
                syscall(SYS_MOUNT, c"none".as_ptr(), c"/tmp/m".as_ptr(), c"tmpfs".as_ptr(), 0i64, 0i64)
            })
        }
        "remount-root-rw" => expect_refused("remount / rw", unsafe {
            syscall(SYS_MOUNT, c"none".as_ptr(), c"/".as_ptr(), 0i64, 0x20i64, 0i64)
        }),
        "unshare-net" => {
            // CLONE_NEWUSER | CLONE_NEWNET: a network namespace of our own, then look for a route.
            let rc = unsafe { syscall(SYS_UNSHARE, 0x1000_0000i64 | 0x4000_0000i64) };
            let rc2 = if rc < 0 { unsafe { syscall(SYS_UNSHARE, 0x4000_0000i64) } } else { rc };
            if rc2 < 0 {
                blocked(format!("unshare: {}", std::io::Error::last_os_error()));
            }
            route_to("192.0.2.1")
        }
        "unshare-user" => {
            let rc = unsafe { syscall(SYS_UNSHARE, 0x1000_0000i64) };
            if rc < 0 {
                blocked(format!("unshare(CLONE_NEWUSER): {}", std::io::Error::last_os_error()));
            }
            // A new user namespace is only a hole if it grants capabilities over the host kernel.
            if in_gvisor() {
                blocked("user namespace inside gVisor's own kernel");
            }
            escaped("created a user namespace on the host kernel")
        }
        "setns" => {
            let f = std::fs::File::open("/proc/1/ns/net").unwrap_or_else(|e| blocked(e));
            use std::os::fd::AsRawFd;
            expect_refused("setns(/proc/1/ns/net)", unsafe { syscall(SYS_SETNS, f.as_raw_fd() as i64, 0i64) })
        }
        "chroot" => expect_refused("chroot", unsafe { syscall(SYS_CHROOT, c"/tmp".as_ptr()) }),
        "setuid-files" => {
            use std::os::unix::fs::PermissionsExt;
            for dir in ["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin"] {
                for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    if let Ok(m) = std::fs::symlink_metadata(e.path()) {
                        if m.is_file() && m.permissions().mode() & 0o6000 != 0 {
                            escaped(format!("setuid/setgid file {}", e.path().display()));
                        }
                    }
                }
            }
            blocked("no setuid files")
        }
        "no-new-privs" => {
            // prctl(PR_GET_NO_NEW_PRIVS) = syscall 157 (x86_64) with option 39.
            match unsafe { syscall(157, 39i64, 0i64, 0i64, 0i64, 0i64) } {
                1 => blocked("no_new_privs is set"),
                rc => escaped(format!("setuid binaries could elevate: PR_GET_NO_NEW_PRIVS = {rc}")),
            }
        }
        "capabilities" => {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            for l in status
                .lines()
                .filter(|l| l.starts_with("CapEff:") || l.starts_with("CapPrm:") || l.starts_with("CapBnd:"))
            {
                if !l.trim_end().ends_with("0000000000000000") {
                    escaped(format!("capabilities left: {l}"));
                }
            }
            blocked("no capabilities")
        }
        "keyring" => expect_refused("add_key(user)", unsafe {
            syscall(SYS_ADD_KEY, c"user".as_ptr(), c"sbx-probe".as_ptr(), c"x".as_ptr(), 1i64, -4i64)
        }),
        "keyctl" => expect_refused("keyctl(GET_KEYRING_ID)", unsafe { syscall(SYS_KEYCTL, 0i64, -4i64, 0i64) }),
        "bpf" => {
            let attr = [0u8; 128];
            expect_refused("bpf(MAP_CREATE)", unsafe { syscall(SYS_BPF, 0i64, attr.as_ptr(), 128i64) })
        }
        "perf-event-open" => {
            let mut attr = [0u8; 128];
            attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
            expect_refused("perf_event_open", unsafe {
                syscall(SYS_PERF_EVENT_OPEN, attr.as_ptr(), 0i64, -1i64, -1i64, 0i64)
            })
        }
        "init-module" => {
            let img = [0u8; 64];
            expect_refused("init_module", unsafe { syscall(SYS_INIT_MODULE, img.as_ptr(), 64i64, c"".as_ptr()) })
        }
        "kexec-load" => expect_refused("kexec_load", unsafe { syscall(SYS_KEXEC_LOAD, 0i64, 0i64, 0i64, 0i64) }),
        "reboot" => expect_refused("reboot(CAD_OFF)", unsafe {
            syscall(SYS_REBOOT, 0xfee1deadu32 as i64, 0x28121969i64, 0i64, 0i64)
        }),
        "open-by-handle" => {
            let handle = [0u8; 16];
            expect_refused("open_by_handle_at", unsafe {
                syscall(SYS_OPEN_BY_HANDLE_AT, -100i64, handle.as_ptr(), 0i64)
            })
        }
        "devices" => {
            for d in [
                "/dev/sda",
                "/dev/vda",
                "/dev/nvme0n1",
                "/dev/mem",
                "/dev/kmem",
                "/dev/port",
                "/dev/kmsg",
                "/dev/kvm",
                "/dev/mapper/control",
            ] {
                if std::fs::OpenOptions::new().read(true).open(d).is_ok() {
                    escaped(format!("opened host device {d}"));
                }
            }
            blocked("no host device opens")
        }
        "tun" => {
            use std::os::fd::AsRawFd;
            let f = match std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun") {
                Ok(f) => f,
                Err(e) => blocked(format!("/dev/net/tun: {e}")),
            };
            let mut ifreq = [0u8; 40];
            ifreq[..4].copy_from_slice(b"sbx0");
            ifreq[16..18].copy_from_slice(&1u16.to_ne_bytes()); // IFF_TUN
            expect_refused("TUNSETIFF", unsafe { syscall(16, f.as_raw_fd() as i64, 0x400454cai64, ifreq.as_ptr()) })
        }
        "listen-below-1024" => match TcpListener::bind("127.0.0.1:80") {
            // Harmless inside the own network namespace; only printed for information.
            Ok(_) => blocked("bound :80 in the sandbox's own loopback"),
            Err(e) => blocked(format!("bind :80: {e}")),
        },
        "control-proxy" => {
            // Must WORK: 127.0.0.1:3128 relays to the host proxy socket.
            let proxy = std::env::var("HTTP_PROXY").unwrap_or_else(|_| broken("HTTP_PROXY is not set"));
            let addr = proxy.trim_start_matches("http://").trim_end_matches('/').to_string();
            let mut s = TcpStream::connect(&addr).unwrap_or_else(|e| broken(format!("relay {addr}: {e}")));
            let _ = s.write_all(b"GET http://example.invalid/ HTTP/1.1\r\nHost: example.invalid\r\n\r\n");
            let mut buf = Vec::new();
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.read_to_end(&mut buf);
            if contains(&buf, &arg(1)) {
                println!("proxy relay works");
                exit(0)
            }
            broken(format!("unexpected proxy answer: {}", String::from_utf8_lossy(&buf)))
        }
        "proxy-connect" => {
            // Through the real egress proxy: CONNECT must be refused for this target.
            let proxy = std::env::var("HTTP_PROXY").unwrap_or_else(|_| broken("HTTP_PROXY is not set"));
            let addr = proxy.trim_start_matches("http://").trim_end_matches('/').to_string();
            let mut s = TcpStream::connect(&addr).unwrap_or_else(|e| broken(format!("relay {addr}: {e}")));
            let target = arg(1);
            let _ = write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let status = head.lines().next().unwrap_or("").to_string();
            if status.contains(" 200") {
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
                escaped(format!("proxy tunnelled to {target}: {status} {}", String::from_utf8_lossy(&rest)));
            }
            if status.starts_with("HTTP/1.1 4") || status.starts_with("HTTP/1.1 5") {
                blocked(format!("proxy refused {target}: {status}"));
            }
            broken(format!("unexpected proxy answer for {target}: {head:?}"))
        }
        other => broken(format!("unknown probe `{other}`")),
    }
}
