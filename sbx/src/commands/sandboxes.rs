//! `sbx exec`, `sbx ls`, `sbx stop`, `sbx rm`: the lifecycle of started sandboxes. State lives
//! under the user's state dir (`$SBX_STATE_DIR`, else e.g. `~/.local/state/sbx`).

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use sbx_sandbox::Sandboxes;
use sbx_sandbox::state::Status;

use super::start::{check_name, exit_with};
use super::{Context, Exit};
use crate::launch::supervisor;

/// Arguments of `sbx exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The running sandbox.
    pub name: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Arguments of `sbx ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sbx stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The sandbox.
    pub name: String,
    /// Seconds to wait after SIGTERM before killing everything in it.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub grace: u64,
}

/// Arguments of `sbx rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The sandboxes to remove (stopped first).
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Runs `sbx exec`: the command inside the running sandbox, attached; its exit code is sbx's.
pub fn exec(_ctx: &Context, args: &ExecArgs) -> miette::Result<Exit> {
    check_name(&args.name)?;
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let code = Sandboxes::default().exec(&args.name, &args.command, tty)?;
    Ok(exit_with(code))
}

/// Runs `sbx ls`.
pub fn ls(ctx: &Context, args: &LsArgs) -> miette::Result<Exit> {
    let list = Sandboxes::default().list()?;
    if args.json {
        let text = serde_json::to_string_pretty(&list).map_err(|e| miette::miette!("cannot render JSON: {e}"))?;
        println!("{text}");
        return Ok(Exit::Success);
    }
    if list.is_empty() {
        if !ctx.out.quiet {
            eprintln!("no sandboxes; `sbx start` creates one");
        }
        return Ok(Exit::Success);
    }
    let width = list.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
    println!("{:width$}  {:7}  {:8}  {:7}  WORKSPACE", "NAME", "RUNTIME", "STATUS", "IMAGE");
    for s in &list {
        let status = match (s.status, s.exit_code) {
            (Status::Running, _) => "running".to_string(),
            (Status::Exited, Some(c)) => format!("exited {c}"),
            (Status::Exited, None) => "stopped".to_string(),
        };
        let digest = s.image_digest.trim_start_matches("sha256:");
        println!(
            "{:width$}  {:7}  {:8}  {:7}  {}",
            s.name,
            s.runtime.name(),
            status,
            &digest[..digest.len().min(7)],
            s.workspace.display()
        );
    }
    Ok(Exit::Success)
}

/// Stops `name` and waits for its supervisor (and proxy) to be gone.
fn stop_one(sandboxes: &Sandboxes, name: &str, grace: Duration) -> miette::Result<()> {
    check_name(name)?;
    sandboxes.stop(name, grace)?;
    supervisor::wait_gone(sandboxes, name, Duration::from_secs(10));
    Ok(())
}

/// Runs `sbx stop`.
pub fn stop(ctx: &Context, args: &StopArgs) -> miette::Result<Exit> {
    let sandboxes = Sandboxes::default();
    stop_one(&sandboxes, &args.name, Duration::from_secs(args.grace))?;
    if !ctx.out.quiet {
        eprintln!("sbx: stopped `{}`", args.name);
    }
    Ok(Exit::Success)
}

/// Runs `sbx rm`.
pub fn rm(ctx: &Context, args: &RmArgs) -> miette::Result<Exit> {
    let sandboxes = Sandboxes::default();
    for name in &args.names {
        stop_one(&sandboxes, name, Duration::from_secs(5))?;
        sandboxes.remove(name)?;
        if !ctx.out.quiet {
            eprintln!("sbx: removed `{name}`");
        }
    }
    Ok(Exit::Success)
}
