//! Per-sandbox state: `<state dir>/sandboxes/<name>/sandbox.json`, so `ls`, `stop`, `rm` and
//! `exec` work from any later process.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runtime::RuntimeKind;
use crate::spec::LaunchPlan;

/// Where sbx keeps sandbox state: `$SBX_STATE_DIR`, else the user's state dir + `sbx`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SBX_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::state_dir().or_else(dirs::data_local_dir).unwrap_or_else(std::env::temp_dir).join("sbx")
}

/// The metadata of one sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Sandbox name.
    pub name: String,
    /// Runtime it runs under.
    pub runtime: RuntimeKind,
    /// Manifest digest of its image.
    pub image_digest: String,
    /// The plan it was started with (mounts, env, argv, user).
    pub plan: LaunchPlan,
    /// Host pid of the runtime process while it runs.
    pub pid: Option<u32>,
    /// Start time of that pid (clock ticks since boot), to tell pid reuse apart.
    pub pid_start: Option<u64>,
    /// Exit code once an attached run has ended.
    pub exit_code: Option<i32>,
    /// Whether it was started detached.
    pub detached: bool,
}

/// Whether a sandbox's runtime process is still alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The runtime process is alive.
    Running,
    /// It has exited (or was never started).
    Exited,
}

/// Start time (field 22 of `/proc/<pid>/stat`) of a live process; `None` for zombies.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    let mut fields = after_comm.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

impl SandboxRecord {
    /// Running if the recorded pid is alive and is the same process.
    pub fn status(&self) -> Status {
        match (self.pid, self.pid_start) {
            (Some(pid), Some(start)) if process_start_time(pid) == Some(start) => Status::Running,
            _ => Status::Exited,
        }
    }
}

/// The directory of all sandbox records.
#[derive(Debug, Clone)]
pub struct StateStore {
    root: PathBuf,
}

const RECORD: &str = "sandbox.json";

impl StateStore {
    /// A store under `state_dir/sandboxes`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        StateStore { root: state_dir.into().join("sandboxes") }
    }

    /// The state directory of sandbox `name`.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes `record` atomically.
    pub fn save(&self, record: &SandboxRecord) -> Result<()> {
        let dir = self.dir(&record.name);
        fs::create_dir_all(&dir).map_err(Error::io("creating the sandbox state dir", &dir))?;
        let path = dir.join(RECORD);
        let json =
            serde_json::to_vec_pretty(record).map_err(|source| Error::Metadata { path: path.clone(), source })?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(Error::io("writing sandbox metadata", &dir))?;
        std::io::Write::write_all(&mut tmp, &json).map_err(Error::io("writing sandbox metadata", &path))?;
        tmp.persist(&path).map_err(|e| Error::io("writing sandbox metadata", &path)(e.error))?;
        Ok(())
    }

    /// Reads the record of `name`.
    pub fn load(&self, name: &str) -> Result<SandboxRecord> {
        let path = self.dir(name).join(RECORD);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound(name.to_string())),
            Err(e) => return Err(Error::io("reading sandbox metadata", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| Error::Metadata { path, source })
    }

    /// All records, sorted by name (unreadable ones are skipped).
    pub fn list(&self) -> Result<Vec<SandboxRecord>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing sandboxes", &self.root)(e)),
        };
        let mut names: Vec<String> =
            entries.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).collect();
        names.sort();
        Ok(names.iter().filter_map(|n| self.load(n).ok()).collect())
    }

    /// Deletes the state of `name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        let dir = self.dir(name);
        remove_tree(&dir).map_err(Error::io("removing sandbox state", dir))
    }
}

fn remove_tree(dir: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
