//! Files written whole or not at all, and locks against concurrent runs.
//!
//! Every file sbx writes for the user (lockfile, `.sbx.toml`, `mise.lock`) goes through
//! [`write_atomically`]: a temp file in the same directory, synced, then renamed over the
//! target, so a killed run leaves the old file exactly as it was.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".sbx-tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // Keep the target's permissions when replacing a file (a lockfile may be group-writable).
    if let Ok(meta) = std::fs::metadata(path) {
        tmp.as_file().set_permissions(meta.permissions())?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// An exclusive lock on a lock file, held until dropped.
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Takes the lock file at `path` (created with its directory if needed), waiting for
    /// another sbx run that holds it. `on_wait` is called once if the lock is busy, so the CLI
    /// can say what it waits for.
    pub fn acquire(path: &Path, on_wait: impl FnOnce(&Path)) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let path = path.to_path_buf();
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                on_wait(&path);
                file.lock()?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok(Self { file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sbx.lock");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sbx.lock")]);
    }

    #[test]
    fn second_lock_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(".sbx/lock");
        let first = FileLock::acquire(&target, |_| panic!("first lock must not wait")).unwrap();
        let (waiting_tx, waiting_rx) = std::sync::mpsc::channel();
        let (got_tx, got_rx) = std::sync::mpsc::channel();
        let t2 = target.clone();
        let handle = std::thread::spawn(move || {
            let _second = FileLock::acquire(&t2, |_| waiting_tx.send(()).unwrap()).unwrap();
            got_tx.send(()).unwrap();
        });
        // The second run reports that it waits, and gets the lock only once the first is gone.
        waiting_rx.recv().unwrap();
        assert!(got_rx.try_recv().is_err(), "second lock acquired while the first was held");
        drop(first);
        got_rx.recv().unwrap();
        handle.join().unwrap();
    }
}
