//! `sbx-init`: the first process inside every sandbox.
//!
//! Standalone on purpose: `build.rs` compiles this file alone (std only, statically linked), so
//! the same executable runs in any image. sbx bind-mounts it read-only at `/.sbx/init`.
//!
//! Usage: `sbx-init [--relay SOCKET] [--port PORT] [--tty] [--drop-caps] [--seccomp-fd FD]… -- COMMAND [ARGS…]`
//!
//! 1. With `--relay`, listens on `127.0.0.1:PORT` (default 3128) *before* the command starts and
//!    forwards each connection to the Unix socket `SOCKET`, where the host's egress proxy listens.
//! 2. With `--tty`, makes standard input (a terminal) its controlling terminal.
//! 3. With `--drop-caps` / `--seccomp-fd` (used when joining a running sandbox from outside),
//!    drops every capability, sets no_new_privs and loads the given seccomp-BPF programs.
//! 4. Runs the command with the environment it was given, forwards SIGTERM/SIGHUP/SIGUSR1/
//!    SIGUSR2 (and SIGINT/SIGQUIT when there is no terminal, which delivers those itself),
//!    reaps orphans, and exits with the command's status (128 + signal when it was killed).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::io::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::process::{exit, Command};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread;

extern "C" {
    fn signal(sig: i32, handler: usize) -> usize;
    fn kill(pid: i32, sig: i32) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn pipe(fds: *mut i32) -> i32;
    fn write(fd: i32, buf: *const u8, n: usize) -> isize;
    fn read(fd: i32, buf: *mut u8, n: usize) -> isize;
    fn ioctl(fd: i32, req: u64, ...) -> i32;
    fn setsid() -> i32;
    fn prctl(op: i32, a: u64, b: u64, c: u64, d: u64) -> i32;
    fn syscall(n: i64, ...) -> i64;
    fn splice(fd_in: i32, off_in: *mut i64, fd_out: i32, off_out: *mut i64, len: usize, flags: u32) -> isize;
    fn pipe2(fds: *mut i32, flags: i32) -> i32;
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    fn close(fd: i32) -> i32;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const i32, len: u32) -> i32;
}

#[cfg(target_arch = "x86_64")]
const SYS_CAPSET: i64 = 126;
#[cfg(target_arch = "aarch64")]
const SYS_CAPSET: i64 = 91;
const PR_SET_SECCOMP: i32 = 22;
const PR_CAPBSET_DROP: i32 = 24;
const PR_SET_NO_NEW_PRIVS: i32 = 38;
const PR_CAP_AMBIENT: i32 = 47;
const SECCOMP_MODE_FILTER: u64 = 2;

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const u8,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

fn drop_caps() -> Result<(), String> {
    // SAFETY: prctl/capset with valid, fully initialised arguments.
    unsafe {
        for cap in 0..64 {
            prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        prctl(PR_CAP_AMBIENT, 4, 0, 0, 0);
        let header = CapHeader { version: 0x2008_0522, pid: 0 };
        let data = [0u32; 6];
        if syscall(SYS_CAPSET, &header as *const CapHeader, data.as_ptr()) != 0 {
            return Err(format!("capset: {}", io::Error::last_os_error()));
        }
        if prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!("no_new_privs: {}", io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn load_seccomp(fd: i32) -> Result<(), String> {
    use std::os::fd::FromRawFd;
    // SAFETY: the launcher passed us this descriptor for exactly this purpose.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut prog = Vec::new();
    file.read_to_end(&mut prog).map_err(|e| format!("reading seccomp fd {fd}: {e}"))?;
    if prog.is_empty() || prog.len() % 8 != 0 || prog.len() / 8 > usize::from(u16::MAX) {
        return Err(format!("seccomp fd {fd} does not hold a BPF program"));
    }
    let fprog = SockFprog { len: (prog.len() / 8) as u16, filter: prog.as_ptr() };
    // SAFETY: `fprog` points at `prog`, which outlives the call.
    let rc = unsafe { prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog as *const SockFprog as u64, 0, 0) };
    if rc != 0 {
        return Err(format!("loading seccomp filter: {}", io::Error::last_os_error()));
    }
    Ok(())
}

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGQUIT: i32 = 3;
const SIGUSR1: i32 = 10;
const SIGUSR2: i32 = 12;
const SIGTERM: i32 = 15;
const TIOCSCTTY: u64 = 0x540E;

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: i32) {
    let b = sig as u8;
    // SAFETY: write(2) is async-signal-safe; the buffer is one byte on this stack frame.
    unsafe { write(SIGNAL_PIPE.load(Ordering::Relaxed), &b, 1) };
}

struct Args {
    relay: Option<String>,
    port: u16,
    tty: bool,
    drop_caps: bool,
    seccomp: Vec<i32>,
    command: Vec<String>,
}

fn parse() -> Result<Args, String> {
    let mut args =
        Args { relay: None, port: 3128, tty: false, drop_caps: false, seccomp: Vec::new(), command: Vec::new() };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--relay" => args.relay = Some(it.next().ok_or("--relay needs a socket path")?),
            "--port" => {
                args.port = it.next().and_then(|p| p.parse().ok()).ok_or("--port needs a number")?;
            }
            "--tty" => args.tty = true,
            "--drop-caps" => args.drop_caps = true,
            "--seccomp-fd" => {
                args.seccomp.push(it.next().and_then(|p| p.parse().ok()).ok_or("--seccomp-fd needs a number")?);
            }
            "--" => {
                args.command = it.collect();
                break;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.command.is_empty() {
        return Err("no command given after `--`".into());
    }
    Ok(args)
}

const O_CLOEXEC: i32 = 0o2000000;
const F_SETPIPE_SZ: i32 = 1031;
const SPLICE_F_MOVE: u32 = 1;
const SOL_SOCKET: i32 = 1;
const SO_SNDBUF: i32 = 7;
/// Bytes moved per splice, and the pipe size asked for.
const RELAY_CHUNK: usize = 1 << 20;

/// Moves bytes `from` → `to` in the kernel (socket → pipe → socket) until `from` ends. `None`
/// when splice is not available here (the caller copies instead); nothing was moved then.
fn splice_all(from: i32, to: i32) -> Option<io::Result<()>> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { pipe2(fds.as_mut_ptr(), O_CLOEXEC) } != 0 {
        return None;
    }
    let (pipe_read, pipe_write) = (fds[0], fds[1]);
    // SAFETY: fcntl on a pipe we own; a refusal keeps the default size, which still works.
    unsafe { fcntl(pipe_write, F_SETPIPE_SZ, RELAY_CHUNK as i32) };
    let mut moved_any = false;
    let result = loop {
        // SAFETY: splice between descriptors that stay open for the call, no offsets.
        let n =
            unsafe { splice(from, std::ptr::null_mut(), pipe_write, std::ptr::null_mut(), RELAY_CHUNK, SPLICE_F_MOVE) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break if moved_any || err.raw_os_error() != Some(22) { Some(Err(err)) } else { None };
        }
        if n == 0 {
            break Some(Ok(()));
        }
        moved_any = true;
        let mut left = n as usize;
        while left > 0 {
            // SAFETY: as above.
            let m = unsafe { splice(pipe_read, std::ptr::null_mut(), to, std::ptr::null_mut(), left, SPLICE_F_MOVE) };
            if m <= 0 {
                let err = io::Error::last_os_error();
                if m < 0 && err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return close_both(
                    pipe_read,
                    pipe_write,
                    Some(Err(if m == 0 { io::ErrorKind::WriteZero.into() } else { err })),
                );
            }
            left -= m as usize;
        }
    };
    close_both(pipe_read, pipe_write, result)
}

fn close_both<T>(a: i32, b: i32, value: T) -> T {
    // SAFETY: closing the pipe descriptors this module created and no longer uses.
    unsafe {
        close(a);
        close(b);
    }
    value
}

/// One direction of a relayed connection: spliced when the kernel can, else copied through
/// a large buffer; then `done` (half-closes the other side).
fn pump(from: impl Read + AsFd, to: impl Write + AsFd, done: impl FnOnce()) {
    let (mut from, mut to) = (from, to);
    if splice_all(from.as_fd().as_raw_fd(), to.as_fd().as_raw_fd()).is_none() {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    done();
}

fn relay_one(tcp: TcpStream, socket: &str) {
    let unix = match UnixStream::connect(socket) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("sbx-init: relay: cannot reach the egress proxy at {socket}: {e}");
            return;
        }
    };
    // A Unix socket's send buffer does not grow by itself as TCP's does; a larger one keeps
    // uploads through the relay from stalling on it.
    let size: i32 = 4 << 20;
    // SAFETY: setsockopt on a socket we own, with a pointer to a local int.
    unsafe { setsockopt(unix.as_raw_fd(), SOL_SOCKET, SO_SNDBUF, &size, 4) };
    let (Ok(tcp2), Ok(unix2)) = (tcp.try_clone(), unix.try_clone()) else { return };
    let up = thread::spawn(move || pump(tcp, &unix, || drop(unix.shutdown(Shutdown::Write))));
    pump(unix2, &tcp2, || drop(tcp2.shutdown(Shutdown::Write)));
    let _ = up.join();
}

fn start_relay(socket: String, port: u16) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let socket = socket.clone();
            thread::spawn(move || relay_one(conn, &socket));
        }
    });
    Ok(())
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sbx-init: {e}\nusage: sbx-init [--relay SOCKET] [--port PORT] [--tty] -- COMMAND [ARGS…]");
            exit(125);
        }
    };
    if let Some(socket) = args.relay.clone() {
        if let Err(e) = start_relay(socket, args.port) {
            eprintln!("sbx-init: cannot listen on 127.0.0.1:{} for the proxy relay: {e}", args.port);
            exit(125);
        }
    }
    if args.drop_caps {
        if let Err(e) = drop_caps() {
            eprintln!("sbx-init: {e}");
            exit(125);
        }
    }
    for fd in &args.seccomp {
        if let Err(e) = load_seccomp(*fd) {
            eprintln!("sbx-init: {e}");
            exit(125);
        }
    }
    if args.tty {
        // SAFETY: plain syscalls on our own process and standard input.
        unsafe {
            setsid();
            ioctl(0, TIOCSCTTY, 0);
        }
    }
    let mut fds = [-1i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    if unsafe { pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!("sbx-init: pipe: {}", io::Error::last_os_error());
        exit(125);
    }
    SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
    let mut forwarded = vec![SIGTERM, SIGHUP, SIGUSR1, SIGUSR2];
    for sig in [SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGINT, SIGQUIT] {
        // SAFETY: installs a handler that only calls write(2).
        unsafe { signal(sig, on_signal as *const () as usize) };
    }
    if !args.tty {
        forwarded.extend([SIGINT, SIGQUIT]);
    }
    let child = match Command::new(&args.command[0]).args(&args.command[1..]).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sbx-init: cannot run `{}`: {e}", args.command[0]);
            exit(if e.kind() == io::ErrorKind::NotFound { 127 } else { 126 });
        }
    };
    let pid = child.id() as i32;
    let read_fd = fds[0];
    thread::spawn(move || loop {
        let mut b = 0u8;
        // SAFETY: reads one byte into a stack variable.
        let n = unsafe { read(read_fd, &mut b, 1) };
        if n == 1 && forwarded.contains(&i32::from(b)) {
            // SAFETY: signals our own child.
            unsafe { kill(pid, i32::from(b)) };
        } else if n <= 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    });
    loop {
        let mut status = 0i32;
        // SAFETY: waits for any child; `status` is a valid out pointer.
        let got = unsafe { waitpid(-1, &mut status, 0) };
        if got == pid {
            let code = if status & 0x7f == 0 { (status >> 8) & 0xff } else { 128 + (status & 0x7f) };
            let _ = io::stdout().flush();
            exit(code);
        }
        if got < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            exit(125);
        }
    }
}
