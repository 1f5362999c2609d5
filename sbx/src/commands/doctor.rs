//! `sbx doctor`: which sandbox runtimes work on this machine, which one `auto` picks, and why
//! the others don't.

use clap::Args;
use sbx_sandbox::{RuntimeKind, runtime};

use super::{Context, Exit};

/// Arguments of `sbx doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `sbx doctor`: a trial run of every runtime, strongest first. Exits 1 when none works.
pub fn run(ctx: &Context, args: &DoctorArgs) -> miette::Result<Exit> {
    let entries = runtime::doctor();
    // `auto` considers the isolation runtimes only (container engines are used when named).
    let auto = entries.iter().find(|e| e.problem.is_none() && RuntimeKind::ALL.contains(&e.runtime)).map(|e| e.runtime);
    if args.json {
        let json = serde_json::json!({
            "auto": auto.map(|k| k.name()),
            "runtimes": entries,
        });
        let text = serde_json::to_string_pretty(&json).map_err(|e| miette::miette!("cannot render JSON: {e}"))?;
        println!("{text}");
    } else {
        let out = ctx.out;
        for e in &entries {
            match &e.problem {
                None => {
                    let note = if Some(e.runtime) == auto { "  (auto picks this one)" } else { "" };
                    println!("{} {:7} works{note}", out.paint("32", "ok"), e.runtime.name());
                }
                Some(p) => {
                    println!("{} {:7} {}", out.paint("33", "--"), e.runtime.name(), p.reason);
                    if !p.help.is_empty() {
                        println!("           {}", out.paint("2", &format!("help: {}", p.help)));
                    }
                }
            }
        }
        if auto.is_none() {
            println!("no runtime works here: sbx start cannot run");
        }
    }
    Ok(if auto.is_some() { Exit::Success } else { Exit::Code(1) })
}
