//! `sbx start`: the agent (or a command) in a sandbox with the locked toolchain.
//!
//! Order: project → name and runtime → image (built first when missing or older than
//! `sbx.lock`) → required secrets (a missing one stops here) → worktree, extra folders, agent
//! config dir → proxy → sandbox. Attached, the terminal is the sandbox's (PTY, resize, signals)
//! and its exit code is sbx's; `--detach` hands proxy and sandbox to a supervisor process (see
//! [`crate::launch`]).

use std::io::IsTerminal;
use std::str::FromStr;

use clap::Args;
use miette::miette;
use sbx_sandbox::state::Status;
use sbx_sandbox::{Event, Outcome, RuntimeChoice, Sandboxes};

use super::{Context, Exit};
use crate::launch::{self, Prepared, Request, image, proxy::RunningProxy, supervisor};
use crate::output::Output;
use crate::project::Project;

/// Arguments of `sbx start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The sandbox's name (default: the project folder's name and a hash of its path).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The isolation runtime, overriding `runtime` in .sbx.toml: auto, gvisor, bwrap, docker, podman or
    /// docker-sbx (Docker Sandboxes).
    #[arg(long, value_name = "RUNTIME")]
    pub runtime: Option<String>,
    /// Run in the background; `sbx exec`, `sbx stop` and `sbx rm` manage it.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Print what would be started (runtime, image, mounts, environment, network) and stop.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Copy the agent's settings files (e.g. ~/.claude/settings.json, without its `env` and
    /// helper commands) into the sandbox's own config dir. Credential files are never copied.
    #[arg(long)]
    pub agent_settings: bool,
    /// Internal: run as the supervisor of a detached sandbox.
    #[arg(long, hide = true)]
    pub supervise: bool,
    /// The command to run instead of the agent (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Converts a sandbox exit code into sbx's.
pub fn exit_with(code: i32) -> Exit {
    match code {
        0 => Exit::Success,
        c => Exit::Code(u8::try_from(c).unwrap_or(1)),
    }
}

/// The runtime: `--runtime`, else `.sbx.toml`'s `runtime`.
fn runtime_choice(project: &Project, args: &StartArgs) -> miette::Result<RuntimeChoice> {
    let name = args.runtime.clone().unwrap_or_else(|| project.sbx.sandbox.runtime.value.as_str().to_string());
    Ok(RuntimeChoice::from_str(&name)?)
}

/// Runs `sbx start`.
pub fn run(ctx: &Context, args: &StartArgs) -> miette::Result<Exit> {
    let project = ctx.project()?;
    let sandboxes = Sandboxes::default();
    let name = args.name.clone().unwrap_or_else(|| project.default_sandbox_name());
    sbx_sandbox::spec::validate_name(&name)?;
    if args.supervise {
        return supervisor::serve(&project, &sandboxes, &name).map(exit_with);
    }
    let runtime_name = args.runtime.clone().unwrap_or_else(|| project.sbx.sandbox.runtime.value.as_str().to_string());
    if runtime_name == "docker-sbx" {
        return crate::launch::docker_sbx::start(&project, &name, &args.command, args.dry_run).map(exit_with);
    }
    let choice = runtime_choice(&project, args)?;
    if args.dry_run {
        return dry_run(&project, &sandboxes, &name, choice, args, ctx.out);
    }
    if let Ok(old) = sandboxes.store().load(&name)
        && old.status() == Status::Running
    {
        return Err(sbx_sandbox::Error::AlreadyRunning(name).into());
    }
    let image = image::ensure(ctx, &project)?;
    let req = Request {
        name: name.clone(),
        command: args.command.clone(),
        image,
        copy_settings: args.agent_settings,
        dry_run: false,
    };
    let Prepared { mut spec, secrets, worktree, skipped_secrets, .. } = launch::prepare(&project, &sandboxes, &req)?;
    if !ctx.out.quiet {
        for s in &skipped_secrets {
            eprintln!("sbx: not injecting {s}");
        }
    }
    spec.runtime = choice;
    if let Some(w) = &worktree
        && !ctx.out.quiet
    {
        eprintln!("sbx: the agent works on branch `{}` in {}", w.branch, w.path.display());
    }
    if args.detach {
        spec.detach = true;
        // Pick and announce the runtime here; the supervisor would print into its log.
        let rt = sbx_sandbox::runtime::select(choice)?;
        spec.runtime = RuntimeChoice::from_str(rt.kind().name())?;
        let handoff = supervisor::Handoff { spec, secrets };
        supervisor::spawn(&project, &sandboxes, &handoff)?;
        if !ctx.out.quiet {
            eprintln!(
                "sbx: sandbox `{name}` runs in the background on {}; `sbx exec {name} -- sh`, `sbx stop {name}`",
                rt.kind()
            );
        }
        println!("{name}");
        return Ok(Exit::Success);
    }
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    spec.tty = tty;
    spec.term = if tty { ctx.env.get("TERM").cloned() } else { None };
    let proxy = RunningProxy::start(&project, &name, &sandboxes.store().dir(&name), &secrets)?;
    supervisor::attach_proxy(&mut spec, &proxy);
    let out = ctx.out;
    let result = sandboxes.start(&spec, &mut |event| print_event(&event, out));
    proxy.stop();
    match result? {
        Outcome::Exited(code) => Ok(exit_with(code)),
        Outcome::Detached(_) => Ok(Exit::Success),
    }
}

fn print_event(event: &Event<'_>, out: Output) {
    if out.quiet {
        return;
    }
    match event {
        Event::RuntimeChosen { kind, auto, warning } => {
            if *auto && out.verbose > 0 {
                eprintln!("sbx: runtime {kind} (auto: the strongest that works here)");
            }
            if let Some(w) = warning {
                eprintln!("sbx: {w}");
            }
        }
        Event::Unpacking { digest } => eprintln!("sbx: unpacking image {digest} (first start of this image)"),
    }
}

/// `--dry-run`: prints the plan; creates, copies and starts nothing.
fn dry_run(
    project: &Project,
    sandboxes: &Sandboxes,
    name: &str,
    choice: RuntimeChoice,
    args: &StartArgs,
    out: Output,
) -> miette::Result<Exit> {
    let image_state = image::state(project)?;
    let req = Request {
        name: name.to_string(),
        command: args.command.clone(),
        image: project.image_dir(),
        copy_settings: args.agent_settings,
        dry_run: true,
    };
    let prepared = launch::prepare(project, sandboxes, &req)?;
    let spec = &prepared.spec;
    let runtime = match sbx_sandbox::runtime::select(choice) {
        Ok(rt) if choice == RuntimeChoice::Auto => format!("{} (auto: the strongest that works here)", rt.kind()),
        Ok(rt) => rt.kind().to_string(),
        Err(e) => e.to_string(),
    };
    let bold = |t: &str| out.paint("1", t);
    let mut lines = vec![format!("{} {name}", bold("sandbox  ")), format!("{} {runtime}", bold("runtime  "))];
    let digest = match image_state {
        image::ImageState::Current => sbx_sandbox::oci::resolve(&project.image_dir())
            .map(|i| format!(" ({})", i.manifest_digest))
            .unwrap_or_default(),
        _ => String::new(),
    };
    lines.push(format!("{} {}{digest}: {}", bold("image    "), project.image_dir().display(), image_state.describe()));
    lines.push(format!("{} {} (read-write)", bold("workspace"), spec.workspace.display()));
    if let Some(w) = &prepared.worktree {
        lines.push(format!("{} {} (git worktree, created if missing)", bold("branch   "), w.branch));
    }
    for e in &spec.extra_workspaces {
        let mode = if e.writable { "read-write" } else { "read-only" };
        lines.push(format!("{} {} ({mode})", bold("extra    "), e.path.display()));
    }
    for h in &spec.home_mounts {
        lines.push(format!(
            "{} ~/{} (kept per sandbox in {})",
            bold("config   "),
            h.path.display(),
            h.source.display()
        ));
    }
    for f in &prepared.copied_settings {
        lines.push(format!("{} {f} (copied from the host, credential keys removed)", bold("settings ")));
    }
    let command =
        if spec.command.is_empty() { "the image's default command".to_string() } else { spec.command.join(" ") };
    lines.push(format!("{} {command}", bold("command  ")));
    if let Some(run) = engine_run_line(sandboxes, spec, choice) {
        lines.push(format!("{} {run}", bold("engine   ")));
        lines.push("          (IMAGE: the image loaded by digest from the OCI layout at start)".to_string());
    }
    let policy = project.sbx.sandbox.network_policy.value;
    lines.push(format!(
        "{} only through the proxy (policy {policy}), relayed to 127.0.0.1:3128; no other route",
        bold("network  ")
    ));
    lines.push(format!(
        "{} built from nothing: the image's, HOME, TERM, LANG, proxy variables{}",
        bold("env      "),
        if prepared.secrets.is_empty() { "" } else { ", and:" }
    ));
    for s in &prepared.secrets {
        let how = match &s.inject {
            Some((host, _, _)) => {
                format!("sentinel `{}`; the proxy injects the value from {} for {host}", s.sandbox_value(), s.from)
            }
            None => format!("the value of {}", s.from),
        };
        lines.push(format!("            {} = {how}", s.name));
    }
    for l in lines {
        println!("{l}");
    }
    if !out.quiet {
        eprintln!("sbx: --dry-run: nothing was started");
    }
    Ok(Exit::Success)
}

/// The exact `docker run …` / `podman run …` line a docker or podman start would run.
fn engine_run_line(sandboxes: &Sandboxes, spec: &sbx_sandbox::SandboxSpec, choice: RuntimeChoice) -> Option<String> {
    let kind = match choice {
        RuntimeChoice::Docker => sbx_sandbox::RuntimeKind::Docker,
        RuntimeChoice::Podman => sbx_sandbox::RuntimeKind::Podman,
        _ => return None,
    };
    // The plan needs the image's settings only; engines never use an unpacked rootfs.
    let image = sbx_sandbox::oci::resolve(&spec.image_layout).ok()?;
    let rootfs = sbx_sandbox::PreparedRootfs {
        rootfs: std::path::PathBuf::new(),
        manifest_digest: image.manifest_digest,
        settings: image.settings,
        unpacked: false,
    };
    // The proxy's socket (and CA, once it exists) where a real start puts them.
    let mut spec = spec.clone();
    let paths = launch::proxy::paths(&spec.name, &sandboxes.store().dir(&spec.name));
    spec.proxy_socket = Some(paths.socket);
    spec.ca_pem = paths.ca.exists().then_some(paths.ca);
    let plan = sandboxes.plan(&spec, &rootfs).ok()?;
    sbx_sandbox::runtime::engine::render_run(kind, &plan, "IMAGE")
}

/// Why a sandbox name is refused (for `exec`, `stop`, `rm`).
pub fn check_name(name: &str) -> miette::Result<()> {
    sbx_sandbox::spec::validate_name(name).map_err(|e| miette!(help = "`sbx ls` lists the sandboxes", "{e}"))
}
