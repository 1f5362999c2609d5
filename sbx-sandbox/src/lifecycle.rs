//! The lifecycle API the CLI calls: start (attached or detached), exec, list, stop, remove.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::helper;
use crate::pty::{self, RawMode};
use crate::rootfs::{self, PreparedRootfs, RootfsCache};
use crate::runtime::{self, Launch, Runtime, RuntimeChoice, RuntimeKind};
use crate::signals::Forwarder;
use crate::spec::{LaunchPlan, SandboxSpec, validate_name};
use crate::state::{self, SandboxRecord, StateStore, Status};

/// Progress the CLI may show.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// The runtime was chosen; `auto` says whether sbx picked it; `warning` is set only the
    /// first time a weaker runtime is used on this machine.
    RuntimeChosen {
        /// The runtime.
        kind: RuntimeKind,
        /// Whether `auto` picked it.
        auto: bool,
        /// A note to print once.
        warning: Option<&'a str>,
    },
    /// The image is being unpacked into the rootfs cache (cold start).
    Unpacking {
        /// Its manifest digest.
        digest: &'a str,
    },
}

/// One line of `sbx ls`.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxInfo {
    /// Name.
    pub name: String,
    /// Runtime.
    pub runtime: RuntimeKind,
    /// Running or exited.
    pub status: Status,
    /// Image manifest digest.
    pub image_digest: String,
    /// The workspace.
    pub workspace: PathBuf,
    /// Exit code of the last attached run, if known.
    pub exit_code: Option<i32>,
}

/// How a start ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Attached run finished with this exit code (128 + signal when killed).
    Exited(i32),
    /// Detached sandbox running with this host pid.
    Detached(u32),
}

/// Entry point for sandbox operations, bound to a state dir and a cache dir.
#[derive(Debug, Clone)]
pub struct Sandboxes {
    store: StateStore,
    cache_dir: PathBuf,
}

impl Default for Sandboxes {
    fn default() -> Self {
        Sandboxes::new(state::default_state_dir(), rootfs::default_cache_dir())
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

impl Sandboxes {
    /// Uses `state_dir` for sandbox metadata and `cache_dir` for rootfs and helper caches.
    pub fn new(state_dir: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        Sandboxes { store: StateStore::new(state_dir), cache_dir: cache_dir.into() }
    }

    /// The metadata store.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Unpacks (or finds) the rootfs for an image layout.
    pub fn prepare_rootfs(&self, layout: &std::path::Path) -> Result<PreparedRootfs> {
        RootfsCache::new(&self.cache_dir).prepare(layout)
    }

    /// Computes the plan for `spec` without starting anything (also used by tests and `--dry-run`).
    pub fn plan(&self, spec: &SandboxSpec, rootfs: &PreparedRootfs) -> Result<LaunchPlan> {
        let helper = helper::materialize(&self.cache_dir)?;
        LaunchPlan::build(spec, rootfs, &helper, &self.store.dir(&spec.name))
    }

    fn warn_once(&self, rt: &dyn Runtime) -> Option<&'static str> {
        let warning = rt.warning()?;
        let marker = self.store.dir("").join(format!(".warned-{}", rt.kind().name()));
        if marker.exists() {
            return None;
        }
        let _ = fs::create_dir_all(self.store.dir(""));
        let _ = fs::write(&marker, b"");
        Some(warning)
    }

    /// Starts a sandbox: attached (returns the exit code) or detached (returns its pid).
    pub fn start(&self, spec: &SandboxSpec, on_event: &mut dyn FnMut(Event<'_>)) -> Result<Outcome> {
        validate_name(&spec.name)?;
        if let Ok(old) = self.store.load(&spec.name) {
            if old.status() == Status::Running {
                return Err(Error::AlreadyRunning(spec.name.clone()));
            }
            if old.pid.is_some() {
                // It died without cleaning up (killed sbx, reboot): clear the runtime's leftovers.
                old.runtime.runtime().cleanup(&old.plan);
            }
        }
        let rt = runtime::select(spec.runtime)?;
        let warning = self.warn_once(rt.as_ref());
        on_event(Event::RuntimeChosen { kind: rt.kind(), auto: spec.runtime == RuntimeChoice::Auto, warning });
        // A reader's lock on the image layout while it is unpacked or loaded: a concurrent
        // `sbx build` into the same layout waits before it removes the blobs being read.
        let layout = &spec.image_layout;
        let layout_lock = fs::File::open(layout).map_err(Error::io("opening the image layout", layout))?;
        layout_lock.lock_shared().map_err(Error::io("locking the image layout", layout))?;
        let rootfs = self.prepare_rootfs(&spec.image_layout)?;
        if rootfs.unpacked {
            on_event(Event::Unpacking { digest: &rootfs.manifest_digest });
        }
        let mut plan = self.plan(spec, &rootfs)?;
        fs::create_dir_all(&plan.state_dir).map_err(Error::io("creating the sandbox state dir", &plan.state_dir))?;
        crate::env::install_ca_bundle(&mut plan)?;
        rt.prepare_image(&spec.image_layout, &self.cache_dir, &plan)?;
        drop(layout_lock);
        let launch = rt.launch(&plan)?;
        let mut record = SandboxRecord {
            name: spec.name.clone(),
            runtime: rt.kind(),
            image_digest: rootfs.manifest_digest.clone(),
            plan,
            pid: None,
            pid_start: None,
            exit_code: None,
            detached: spec.detach,
        };
        if spec.detach {
            let mut child = self.spawn_detached(launch, &record.plan)?;
            self.wait_ready(rt.as_ref(), &record.plan, &mut child)?;
            record.pid = Some(child.id());
            record.pid_start = state::process_start_time(child.id());
            self.store.save(&record)?;
            return Ok(Outcome::Detached(child.id()));
        }
        let code = self.run_attached(rt.as_ref(), launch, &mut record)?;
        Ok(Outcome::Exited(code))
    }

    fn spawn_detached(&self, launch: Launch, plan: &LaunchPlan) -> Result<Child> {
        let Launch { mut command, keep } = launch;
        let log_path = plan.state_dir.join("output.log");
        let log = fs::File::create(&log_path).map_err(Error::io("creating the sandbox log", &log_path))?;
        let log2 = log.try_clone().map_err(Error::io("creating the sandbox log", &log_path))?;
        command.stdin(Stdio::null()).stdout(log).stderr(log2).process_group(0);
        let child = command.spawn().map_err(Error::io("starting the sandbox runtime", &plan.state_dir))?;
        drop(keep);
        Ok(child)
    }

    /// Waits until a detached sandbox runs its command, so `exec` works right after `start`.
    fn wait_ready(&self, rt: &dyn Runtime, plan: &LaunchPlan, child: &mut Child) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = fs::read_to_string(plan.state_dir.join("output.log")).unwrap_or_default();
                return Err(Error::Spec(format!("sandbox `{}` exited at start ({status}): {}", plan.name, log.trim())));
            }
            if rt.ready(plan, child.id()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = rt.kill(plan, child.id());
                return Err(Error::Spec(format!("sandbox `{}` did not start within 30 s", plan.name)));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Spawns `launch` attached to this terminal, forwards signals, waits, returns the exit code.
    fn run_attached(&self, rt: &dyn Runtime, launch: Launch, record: &mut SandboxRecord) -> Result<i32> {
        let Launch { mut command, keep } = launch;
        let tty = record.plan.tty;
        let pty = if tty { Some(pty::open()?) } else { None };
        if let Some(p) = &pty {
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(Error::io("duplicating the PTY", "/dev/ptmx"));
            command.stdin(dup(&p.slave)?).stdout(dup(&p.slave)?).stderr(dup(&p.slave)?);
        }
        // Own process group: terminal signals reach sbx only, which forwards them.
        command.process_group(0);
        let mut child = command.spawn().map_err(Error::io("starting the sandbox runtime", &record.plan.state_dir))?;
        drop(command);
        drop(keep);
        record.pid = Some(child.id());
        record.pid_start = state::process_start_time(child.id());
        self.store.save(record)?;
        let (plan, pid) = (record.plan.clone(), child.id());
        let kind = rt.kind();
        let master = pty.as_ref().map(|p| p.master.try_clone()).transpose().ok().flatten();
        let forwarder = Forwarder::install(move |sig| {
            if sig == libc::SIGWINCH {
                if let Some(m) = &master {
                    pty::copy_window_size(m);
                    kind.runtime().resized(&plan, pid);
                }
            } else {
                let _ = kind.runtime().signal(&plan, pid, sig);
            }
        })
        .map_err(Error::io("installing signal handlers", "signal"))?;
        let status = if let Some(p) = pty {
            drop(p.slave);
            let raw = RawMode::enable();
            pty::pump(&p.master)?;
            let status = child.wait();
            drop(raw);
            status
        } else {
            child.wait()
        };
        drop(forwarder);
        let status = status.map_err(Error::io("waiting for the sandbox", &record.plan.state_dir))?;
        let code = exit_code(status);
        rt.cleanup(&record.plan);
        record.pid = None;
        record.pid_start = None;
        record.exit_code = Some(code);
        self.store.save(record)?;
        Ok(code)
    }

    /// Runs `argv` inside the running sandbox `name`, attached; returns its exit code.
    pub fn exec(&self, name: &str, argv: &[String], tty: bool) -> Result<i32> {
        let record = self.store.load(name)?;
        let pid = match (record.status(), record.pid) {
            (Status::Running, Some(pid)) => pid,
            _ => return Err(Error::Spec(format!("sandbox `{name}` is not running; start it first"))),
        };
        let rt = record.runtime.runtime();
        let Launch { mut command, keep } = rt.exec(&record.plan, pid, argv, tty)?;
        let mut child =
            command.spawn().map_err(Error::io("running a command in the sandbox", &record.plan.state_dir))?;
        drop(command);
        drop(keep);
        let status = child.wait().map_err(Error::io("waiting for the command", &record.plan.state_dir))?;
        Ok(exit_code(status))
    }

    /// Whether sandbox `name` is running its command yet (so `exec` works): for callers that
    /// start a sandbox attached in another process and wait for it.
    pub fn is_ready(&self, name: &str) -> bool {
        match self.store.load(name) {
            Ok(record) => match (record.status(), record.pid) {
                (Status::Running, Some(pid)) => record.runtime.runtime().ready(&record.plan, pid),
                _ => false,
            },
            Err(_) => false,
        }
    }

    /// Lists all sandboxes with their status.
    pub fn list(&self) -> Result<Vec<SandboxInfo>> {
        Ok(self
            .store
            .list()?
            .into_iter()
            .map(|r| SandboxInfo {
                status: r.status(),
                name: r.name,
                runtime: r.runtime,
                image_digest: r.image_digest,
                workspace: r.plan.cwd,
                exit_code: r.exit_code,
            })
            .collect())
    }

    /// Stops `name`: SIGTERM to its command, then after `grace` kills everything in it.
    pub fn stop(&self, name: &str, grace: Duration) -> Result<()> {
        let mut record = self.store.load(name)?;
        let Some(pid) = record.pid.filter(|_| record.status() == Status::Running) else { return Ok(()) };
        let rt = record.runtime.runtime();
        rt.signal(&record.plan, pid, libc::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while record.status() == Status::Running && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if record.status() == Status::Running {
            rt.kill(&record.plan, pid)?;
            let deadline = Instant::now() + Duration::from_secs(5);
            while record.status() == Status::Running && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        rt.cleanup(&record.plan);
        record.pid = None;
        record.pid_start = None;
        self.store.save(&record)
    }

    /// Removes `name` (stopping it first).
    pub fn remove(&self, name: &str) -> Result<()> {
        self.stop(name, Duration::from_secs(5))?;
        self.store.remove(name)
    }
}
