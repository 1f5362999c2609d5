//! Attaching the user's terminal: a fresh PTY pair for the sandbox (never the host terminal, so
//! `TIOCSTI` injection into the host shell is impossible), raw mode on the host side, window
//! size copied on start and on every SIGWINCH.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

/// A PTY pair.
pub struct Pty {
    /// The side sbx reads and writes.
    pub master: OwnedFd,
    /// The side the sandbox gets as stdin/stdout/stderr.
    pub slave: OwnedFd,
}

/// Opens a new PTY pair sized like the host terminal on stdin (if any).
pub fn open() -> Result<Pty> {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors; null name/termios/winsize are allowed.
    let rc =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    if rc != 0 {
        return Err(Error::io("opening a pseudo-terminal", "/dev/ptmx")(std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let pty = unsafe { Pty { master: OwnedFd::from_raw_fd(master), slave: OwnedFd::from_raw_fd(slave) } };
    // SAFETY: set close-on-exec on our master so the sandbox never inherits it.
    unsafe { libc::fcntl(master, libc::F_SETFD, libc::FD_CLOEXEC) };
    copy_window_size(&pty.master);
    Ok(pty)
}

/// Copies the host terminal's window size (stdin) onto `master`.
pub fn copy_window_size(master: &OwnedFd) {
    // SAFETY: winsize is plain data; ioctls on descriptors we hold.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Host terminal mode, restored on drop.
pub struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    /// Puts stdin in raw mode if it is a terminal.
    pub fn enable() -> RawMode {
        // SAFETY: termios is plain data; calls on stdin.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::isatty(0) != 1 || libc::tcgetattr(0, &mut t) != 0 {
                return RawMode { saved: None };
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
            RawMode { saved: Some(saved) }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restores the attributes read in `enable`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}

/// Copies host stdin → master (in a detached thread) and master → host stdout until the
/// sandbox side closes. Returns when all output has been copied.
pub fn pump(master: &OwnedFd) -> Result<()> {
    let input = master.try_clone().map_err(Error::io("duplicating the PTY", "/dev/ptmx"))?;
    std::thread::spawn(move || {
        let mut to_sandbox = File::from(input);
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || to_sandbox.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut from_sandbox = File::from(master.try_clone().map_err(Error::io("duplicating the PTY", "/dev/ptmx"))?);
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 8192];
    // EIO means every slave descriptor is closed: the sandbox has exited.
    while let Ok(n) = from_sandbox.read(&mut buf) {
        if n == 0 || out.write_all(&buf[..n]).is_err() {
            break;
        }
        let _ = out.flush();
    }
    Ok(())
}
