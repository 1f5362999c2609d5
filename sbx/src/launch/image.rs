//! The image `sbx start` runs: the OCI layout `sbx build` writes to `.sbx/image`. A start whose
//! image is missing or older than `sbx.lock` builds it first through the same code path as
//! `sbx build`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use miette::miette;

use crate::commands::Context;
use crate::project::Project;

/// Whether the project's image can be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageState {
    /// Present and at least as new as the lockfile.
    Current,
    /// No image yet.
    Missing,
    /// Built before the lockfile last changed.
    Stale,
}

impl ImageState {
    /// Human text for `--dry-run`.
    pub fn describe(&self) -> &'static str {
        match self {
            ImageState::Current => "built, up to date with sbx.lock",
            ImageState::Missing => "not built yet: sbx start builds it first",
            ImageState::Stale => "older than sbx.lock: sbx start rebuilds it first",
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Compares the image layout with the lockfile by modification time.
pub fn state(project: &Project) -> miette::Result<ImageState> {
    let lock = project.lockfile_path();
    let Some(lock_time) = modified(&lock) else {
        return Err(miette!(
            code = "sbx::start::no_lockfile",
            help = "run `sbx lock` to pin the toolchain, then `sbx start` again",
            "{} does not exist",
            lock.display()
        ));
    };
    let index = project.image_dir().join("index.json");
    Ok(match modified(&index) {
        None => ImageState::Missing,
        Some(t) if t < lock_time => ImageState::Stale,
        Some(_) => ImageState::Current,
    })
}

/// Returns the image layout to start, building it first when needed.
pub fn ensure(ctx: &Context, project: &Project) -> miette::Result<PathBuf> {
    match state(project)? {
        ImageState::Current => Ok(project.image_dir()),
        other => {
            build(ctx, &other)?;
            Ok(project.image_dir())
        }
    }
}

/// Runs `sbx build` (default output: `.sbx/image`, every `[image]` platform, the build's progress
/// bars on stderr). The index digest `sbx build` prints on stdout goes to stderr here, so the
/// sandbox's stdout carries only what the command inside prints.
fn build(ctx: &Context, state: &ImageState) -> miette::Result<()> {
    if !ctx.out.quiet {
        let why = match state {
            ImageState::Stale => "the image in .sbx/image is older than sbx.lock",
            _ => "the project has no image yet",
        };
        eprintln!("sbx: {why}; building it first (`sbx build`)");
    }
    let args = crate::commands::build::BuildArgs {
        output: Vec::new(),
        push: None,
        platforms: Vec::new(),
        tag: None,
        json: false,
    };
    let _redirect = StdoutToStderr::new();
    crate::commands::build::run(ctx, &args).map(|_| ())
}

/// Points file descriptor 1 at stderr until dropped.
struct StdoutToStderr {
    saved: Option<std::os::fd::OwnedFd>,
}

impl StdoutToStderr {
    fn new() -> Self {
        use std::io::Write;
        use std::os::fd::{AsFd, AsRawFd};
        let _ = std::io::stdout().flush();
        let saved = std::io::stdout().as_fd().try_clone_to_owned().ok();
        if saved.is_some() {
            // SAFETY: dup2 on the process's own standard descriptors.
            unsafe { libc::dup2(std::io::stderr().as_raw_fd(), 1) };
        }
        StdoutToStderr { saved }
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let _ = std::io::stdout().flush();
        if let Some(fd) = &self.saved {
            // SAFETY: restores descriptor 1 from the copy taken in `new`.
            unsafe { libc::dup2(fd.as_raw_fd(), 1) };
        }
    }
}
