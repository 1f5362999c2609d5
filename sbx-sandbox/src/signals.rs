//! Forwarding the calling process's SIGINT/SIGTERM/SIGHUP/SIGWINCH to an attached sandbox while
//! it runs; the previous handlers are restored on drop.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
static INSTALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    let b = sig as u8;
    // SAFETY: write(2) is async-signal-safe; one byte from this frame.
    unsafe { libc::write(PIPE_WRITE.load(Ordering::Relaxed), (&b as *const u8).cast(), 1) };
}

/// Signals forwarded to the sandbox.
pub const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGWINCH];

/// Installed handlers; dropping restores the old ones.
pub struct Forwarder {
    old: Vec<(libc::c_int, libc::sigaction)>,
    write_end: i32,
}

impl Forwarder {
    /// Installs handlers and calls `deliver(signal)` on a background thread for each one received.
    /// Only one forwarder is active per process; a second concurrent one does nothing.
    pub fn install(deliver: impl Fn(libc::c_int) + Send + 'static) -> std::io::Result<Forwarder> {
        if INSTALLED.swap(true, Ordering::SeqCst) {
            return Ok(Forwarder { old: Vec::new(), write_end: -1 });
        }
        let mut fds = [-1; 2];
        // SAFETY: `fds` has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            INSTALLED.store(false, Ordering::SeqCst);
            return Err(std::io::Error::last_os_error());
        }
        PIPE_WRITE.store(fds[1], Ordering::Relaxed);
        // SAFETY: fds[0] is ours alone.
        let read_end = unsafe { OwnedFd::from_raw_fd(fds[0]) };
        std::thread::spawn(move || {
            let mut file = std::fs::File::from(read_end);
            let mut b = [0u8; 1];
            while let Ok(1) = file.read(&mut b) {
                deliver(libc::c_int::from(b[0]));
            }
        });
        let mut old = Vec::new();
        for sig in FORWARDED {
            // SAFETY: installs a handler that only calls write(2); `prev` receives the old action.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                action.sa_flags = libc::SA_RESTART;
                let mut prev: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut prev) == 0 {
                    old.push((sig, prev));
                }
            }
        }
        Ok(Forwarder { old, write_end: fds[1] })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if self.write_end < 0 {
            return;
        }
        for (sig, prev) in &self.old {
            // SAFETY: restores the saved action.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
        PIPE_WRITE.store(-1, Ordering::Relaxed);
        // SAFETY: closing our write end ends the delivery thread.
        unsafe { libc::close(self.write_end) };
        INSTALLED.store(false, Ordering::SeqCst);
    }
}
