//! Zero-copy tunnel data path on Linux: once a tunnel's first flight has been checked, bytes
//! move socket → pipe → socket with `splice(2)`, never entering user space.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use crate::io::Activity;

/// Most bytes moved per `splice` call.
const CHUNK: usize = 1 << 20;

/// Pipe capacity a tunnel direction grows to once it moves bulk data (a read fills the pipe).
/// Fewer, larger splices: on a 2-core box 1 MiB measured ~0.07x of direct throughput better than
/// 256 KiB. Tunnels that never fill their pipe keep the kernel's default (64 KiB), so many idle
/// tunnels do not use up an unprivileged user's pipe budget (`fs.pipe-user-pages-soft`).
const MAX_PIPE_BYTES: usize = 1 << 20;

/// A socket the splice path can drive.
#[derive(Clone, Copy)]
pub(crate) enum Sock<'a> {
    Tcp(&'a TcpStream),
    Unix(&'a UnixStream),
}

impl Sock<'_> {
    fn fd(self) -> RawFd {
        match self {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }

    async fn ready(self, interest: Interest) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.ready(interest).await.map(|_| ()),
            Sock::Unix(s) => s.ready(interest).await.map(|_| ()),
        }
    }

    fn try_io<R>(self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            Sock::Tcp(s) => s.try_io(interest, f),
            Sock::Unix(s) => s.try_io(interest, f),
        }
    }
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Capacity in bytes; [`MAX_PIPE_BYTES`] once growing was tried, even if it was refused.
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on a descriptor we own.
        let capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        Ok(Pipe { read, write, capacity: usize::try_from(capacity).unwrap_or(64 * 1024) })
    }

    /// Grows the pipe to [`MAX_PIPE_BYTES`] if it is smaller. A refusal (the user's pipe budget
    /// is spent) leaves it as it is, which still works, with more system calls per byte.
    fn grow(&mut self) {
        if self.capacity >= MAX_PIPE_BYTES {
            return;
        }
        // SAFETY: fcntl on a descriptor we own.
        let got = unsafe { libc::fcntl(self.write.as_raw_fd(), libc::F_SETPIPE_SZ, MAX_PIPE_BYTES as libc::c_int) };
        // Marked as tried either way, so a refused grow is not retried on every read.
        self.capacity = usize::try_from(got).ok().filter(|&c| c > 0).unwrap_or(MAX_PIPE_BYTES);
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain syscall on descriptors that stay open for the duration of the call.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Send buffer asked for on a Unix socket the tunnel writes to (the kernel doubles it and caps
/// it at `net.core.wmem_max`). Unlike TCP's, a Unix socket's buffer does not grow by itself: at
/// the default (~208 KiB) a 1 MiB splice stalls on it, and a tunnel over the proxy's socket ran
/// at ~0.6x of direct in `cargo xtask bench proxy`; at 4 MiB it ran at or above direct. It
/// bounds the bytes queued for a sandbox that stops reading, like TCP's autotuned maximum
/// (`net.ipv4.tcp_wmem`, 4 MiB by default) does.
const UNIX_SEND_BUFFER: libc::c_int = 4 << 20;

fn grow_send_buffer(fd: RawFd) {
    // SAFETY: setsockopt on a descriptor we borrow, with a pointer to a local int. A refusal
    // leaves the default, which still works.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&UNIX_SEND_BUFFER as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Moves bytes from `src` to `dst` until `src` ends, then half-closes `dst`.
pub(crate) async fn pump(src: Sock<'_>, dst: Sock<'_>, bytes: &mut u64, activity: &Activity) -> io::Result<()> {
    let mut pipe = Pipe::new()?;
    if let Sock::Unix(_) = dst {
        grow_send_buffer(dst.fd());
    }
    loop {
        let n = loop {
            src.ready(Interest::READABLE).await?;
            match src.try_io(Interest::READABLE, || splice(src.fd(), pipe.write.as_raw_fd(), CHUNK)) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            // SAFETY: shutdown on a descriptor we borrow; no memory is involved.
            unsafe { libc::shutdown(dst.fd(), libc::SHUT_WR) };
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            dst.ready(Interest::WRITABLE).await?;
            match dst.try_io(Interest::WRITABLE, || splice(pipe.read.as_raw_fd(), dst.fd(), left)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        *bytes += n as u64;
        activity.touch();
        if n >= pipe.capacity {
            pipe.grow();
        }
    }
}
