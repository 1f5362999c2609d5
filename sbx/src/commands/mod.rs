//! One module per subcommand. Each turns parsed arguments into calls on the library crates and
//! renders the result; the logic lives in the libraries.

pub mod build;
pub mod config;
pub mod diff;
pub mod doctor;
pub mod init;
pub mod lock;
pub mod policy;
pub mod proxy;
pub mod sandboxes;
pub mod start;
pub mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::output::Output;
use crate::project::Project;

/// What every command gets: where it runs, the environment, the global flags.
pub struct Context {
    /// The directory given with `-C`, or the current directory.
    pub dir: PathBuf,
    /// The process environment, captured once.
    pub env: BTreeMap<String, String>,
    /// `--global`: also read the user's and the system's mise config.
    pub global: bool,
    /// Output settings.
    pub out: Output,
}

impl Context {
    /// Loads the project that `dir` belongs to.
    pub fn project(&self) -> miette::Result<Project> {
        Ok(Project::load(&self.dir, self.global, self.env.clone())?)
    }
}

/// What a command asks the process to exit with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0.
    Success,
    /// 3: `--check` found the lockfile stale.
    Stale,
    /// Any other code (`sbx start` passes the agent's exit code through; `sbx verify` exits 1
    /// when something differs).
    Code(u8),
}
