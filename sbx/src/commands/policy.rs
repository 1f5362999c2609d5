//! `sbx policy show` and `sbx policy log`: the effective network policy with the source of
//! every rule, and the proxy's audit log (one line per decision).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use miette::{IntoDiagnostic, miette};
use sbx_proxy::policy::balanced_baseline;
use sbx_proxy::{AuditEntry, AuditReader, PolicyConfig, Preset, render_policy};
use serde_json::{Value, json};

use super::{Context, Exit};
use crate::policy::{self, PlannedInjection};

/// Arguments of `sbx policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// What to show.
    #[command(subcommand)]
    pub command: PolicyCommand,
}

/// `sbx policy`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the effective network policy, each rule with the file:line it comes from.
    ///
    /// Rules are listed in the order the proxy applies them: blocked (deny beats allow), then
    /// allowed (`allowed_domains` and the preset's baseline, sbx-proxy/data/balanced.toml), then
    /// what the preset does with everything else; then the address checks, the allowed address
    /// blocks, and the hosts whose credential the proxy injects. No secret is read.
    Show(ShowArgs),
    /// Show the proxy's audit log: one line per decision (allowed, refused, failed).
    ///
    /// Without NAME: the log of `sbx proxy` run in this project (.sbx/proxy). With NAME: the log
    /// of that sandbox (`sbx ls` lists them).
    Log(LogArgs),
}

/// Arguments of `sbx policy show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sbx policy log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The sandbox whose log to show [default: the project's standalone `sbx proxy`].
    #[arg(value_name = "NAME", conflicts_with = "state_dir")]
    pub sandbox: Option<String>,
    /// Read the log from this state directory instead (as given to `sbx proxy --state-dir`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Keep printing new decisions as they are logged, until Ctrl-C.
    #[arg(long, short)]
    pub follow: bool,
    /// Print JSON: an array of entries, or with --follow one entry per line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `sbx policy`.
pub fn run(ctx: &Context, args: &PolicyArgs) -> miette::Result<Exit> {
    match &args.command {
        PolicyCommand::Show(show) => run_show(ctx, show),
        PolicyCommand::Log(log) => run_log(ctx, log),
    }
}

fn run_show(ctx: &Context, args: &ShowArgs) -> miette::Result<Exit> {
    let project = ctx.project()?;
    let config = policy::policy_for(&project)?;
    let (planned, other) = policy::injection_plan(&project);
    if args.json {
        let text = serde_json::to_string_pretty(&show_json(&config, &planned, &other)?).into_diagnostic()?;
        emit(&format!("{text}\n"));
        return Ok(Exit::Success);
    }
    let rules: Vec<_> = planned.iter().map(PlannedInjection::display_rule).collect();
    let mut text = render_policy(&config, &rules)?;
    if !other.is_empty() {
        text.push_str("\n[secrets] services the proxy cannot inject (no known API host and header):\n");
        for name in &other {
            text.push_str(&format!("    {name}\n"));
        }
    }
    emit(&text);
    Ok(Exit::Success)
}

fn show_json(config: &PolicyConfig, planned: &[PlannedInjection], other: &[String]) -> miette::Result<Value> {
    let rules = |list: Vec<(String, String)>| -> Value {
        list.into_iter().map(|(rule, source)| json!({ "rule": rule, "source": source })).collect()
    };
    let domains =
        |list: &[sbx_proxy::DomainRule]| rules(list.iter().map(|r| (r.to_string(), r.source.clone())).collect());
    let cidrs = |list: &[sbx_proxy::CidrRule]| rules(list.iter().map(|r| (r.to_string(), r.source.clone())).collect());
    let baseline = match config.preset {
        Preset::Balanced => {
            balanced_baseline()?.into_iter().flat_map(|g| g.rules).map(|r| (r.to_string(), r.source)).collect()
        }
        Preset::AllowAll | Preset::DenyAll => Vec::new(),
    };
    let otherwise = match config.preset {
        Preset::AllowAll => "allowed",
        Preset::Balanced | Preset::DenyAll => "refused",
    };
    Ok(json!({
        "preset": { "name": config.preset, "source": config.preset_source },
        "blocked_domains": domains(&config.blocked_domains),
        "blocked_cidrs": cidrs(&config.blocked_cidrs),
        "allowed_domains": domains(&config.allowed_domains),
        "preset_domains": rules(baseline),
        "otherwise": otherwise,
        "allowed_cidrs": cidrs(&config.allowed_cidrs),
        "injections": planned.iter().map(|p| json!({
            "service": p.service,
            "host": p.host,
            "header": p.header,
            "env": p.env,
            "sentinel": p.sentinel,
            "source": p.source,
        })).collect::<Value>(),
        "not_injected": other,
    }))
}

fn run_log(ctx: &Context, args: &LogArgs) -> miette::Result<Exit> {
    let state_dir = match (&args.state_dir, &args.sandbox) {
        (Some(dir), _) => dir.clone(),
        (None, Some(name)) => {
            let dir = sbx_sandbox::state::default_state_dir().join("sandboxes").join(name);
            if !dir.is_dir() {
                return Err(miette!(
                    help = "`sbx ls` lists this machine's sandboxes; without NAME, `sbx policy log` shows `sbx proxy`'s log",
                    "there is no sandbox named `{name}` ({} does not exist)",
                    dir.display()
                ));
            }
            dir
        }
        (None, None) => super::proxy::default_state_dir(&ctx.project()?)?,
    };
    let mut reader = AuditReader::open(&state_dir);
    let entries = reader.read_new()?;
    if args.follow {
        if entries.iter().all(|e| print_entry(e, args.json)) {
            // Runs until Ctrl-C, or until stdout goes away.
            reader.follow(Duration::from_millis(200), |e| print_entry(e, args.json))?;
        }
        return Ok(Exit::Success);
    }
    if args.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&entries).into_diagnostic()?));
    } else if entries.is_empty() && !ctx.out.quiet {
        eprintln!("no decisions logged yet in {}", reader.path().display());
    } else {
        let _ = entries.iter().all(|e| print_entry(e, false));
    }
    if reader.skipped_lines() > 0 && !ctx.out.quiet {
        eprintln!("({} unreadable lines skipped in {})", reader.skipped_lines(), reader.path().display());
    }
    Ok(Exit::Success)
}

/// Prints one entry; `false` once stdout is gone (e.g. `| head`).
fn print_entry(entry: &AuditEntry, json: bool) -> bool {
    let line = if json { serde_json::to_string(entry).unwrap_or_default() } else { entry.render_line() };
    emit(&format!("{line}\n"))
}

/// Writes `text` to stdout; `false` when stdout is closed (a reader like `head` went away),
/// which is not an error for a command that only prints.
fn emit(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_ok()
}
