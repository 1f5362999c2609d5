//! A real `docker-registry` (Debian's package of distribution/registry) on a free loopback
//! port, with its storage in a temp dir; stopped and removed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running registry.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`, for references like `127.0.0.1:PORT/sbx/example:latest`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts `docker-registry serve` and waits (up to 30 s) until it accepts connections.
    pub fn start() -> Result<Registry> {
        let dir = tempfile::Builder::new().prefix("sbx-registry-").tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let yml = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        std::fs::write(&config, yml)?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("`docker-registry` is required (install it with .ci/install-deps)")?;
        let mut registry = Registry { child, addr, _dir: dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            if let Some(status) = registry.child.try_wait()? {
                bail!("docker-registry exited with {status} before listening on {}", registry.addr);
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("docker-registry did not listen on {} within 30 s", registry.addr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
