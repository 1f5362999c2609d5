//! `sbx proxy`: the egress policy proxy run standalone, for trying a policy out with curl or a
//! browser. It enforces exactly what `sbx start` would (the project's `.sbx.toml`) and logs
//! every decision to the same kind of audit log.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use miette::{IntoDiagnostic, WrapErr, miette};
use sbx_proxy::{AuditReader, Proxy, ProxyHandle};

use super::{Context, Exit};
use crate::policy;
use crate::project::Project;

/// Longest Unix socket path the kernel accepts (`sun_path` holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Arguments of `sbx proxy`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sbx proxy --listen 127.0.0.1:3128
  curl -x http://127.0.0.1:3128 https://api.anthropic.com/  # allowed under `balanced`
  curl -x http://127.0.0.1:3128 https://example.com/  # 403 naming the .sbx.toml line to change
  sbx policy log --follow  # every decision, from another terminal

The policy is the project's .sbx.toml (`sbx policy show` lists every rule and its line).")]
pub struct ProxyArgs {
    /// Unix socket to listen on [default: .sbx/proxy/proxy.sock in the project].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Also listen on this loopback TCP address, e.g. 127.0.0.1:3128 (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Where the audit log and the CA certificate go [default: .sbx/proxy in the project].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The name written into every audit line and the CA certificate.
    #[arg(long, default_value = "standalone")]
    pub name: String,
    /// Do not inject the [secrets] credentials (no secret is read and no TLS is intercepted).
    #[arg(long)]
    pub no_inject: bool,
}

/// The standalone proxy's state directory of `project` (`.sbx/proxy`), where `sbx policy log`
/// looks by default.
pub fn default_state_dir(project: &Project) -> miette::Result<PathBuf> {
    let dir = project.state_dir().map_err(|e| miette!("cannot create {}: {e}", project.root.join(".sbx").display()))?;
    Ok(dir.join("proxy"))
}

/// Runs `sbx proxy` until Ctrl-C (or SIGTERM).
pub fn run(ctx: &Context, args: &ProxyArgs) -> miette::Result<Exit> {
    let project = ctx.project()?;
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => default_state_dir(&project)?,
    };
    let socket = args.socket.clone().unwrap_or_else(|| state_dir.join("proxy.sock"));
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(miette!(
            help = "pass a shorter path with --socket, e.g. --socket /tmp/sbx-proxy.sock",
            "the socket path {} is longer than a Unix socket address allows ({MAX_SOCKET_PATH} bytes)",
            socket.display()
        ));
    }
    let injections = if args.no_inject { Vec::new() } else { policy::injections_for(&project, &ctx.env)? };
    let mut options = policy::proxy_options(&project, args.name.clone(), &state_dir, socket, injections)?;
    options.tcp_addr = args.listen;
    let preset = format!("{} ({})", options.policy.preset, options.policy.preset_source);
    let injected: Vec<String> = options.injections.iter().map(|i| format!("{} on {}", i.service, i.host)).collect();

    crate::launch::proxy::runtime()?.block_on(async {
        // Registered before anything is printed: a signal after the banner always stops cleanly.
        let stop = stop_signals()?;
        // Positioned at the log's current end before the proxy accepts anything, so `-v` shows
        // exactly this run's decisions.
        let mut reader = AuditReader::open(&state_dir);
        let _ = reader.read_new();
        let mut handle = Proxy::start(options).await?;
        let ca = state_dir.join("ca.pem");
        std::fs::write(&ca, handle.ca_cert_pem()).map_err(|e| miette!("cannot write {}: {e}", ca.display()))?;
        print_banner(&handle, &ca, &preset, &injected);
        let (stop_echo, echo_stopped) = tokio::sync::oneshot::channel();
        let echo = (ctx.out.verbose > 0).then(|| tokio::spawn(echo_audit(reader, echo_stopped)));
        tokio::select! {
            () = stop => {}
            _ = handle.wait() => return Err(miette!("the proxy stopped unexpectedly")),
        }
        handle.shutdown().await;
        let _ = stop_echo.send(());
        if let Some(echo) = echo {
            let _ = echo.await;
        }
        if !ctx.out.quiet {
            eprintln!("sbx proxy: stopped");
        }
        Ok::<_, miette::Report>(())
    })?;
    Ok(Exit::Success)
}

/// Prints where the proxy listens (stdout; a closed stdout does not stop the proxy).
fn print_banner(handle: &ProxyHandle, ca: &Path, preset: &str, injected: &[String]) {
    let mut text = format!("sbx proxy: network preset {preset}; `sbx policy show` lists every rule\n");
    if let Some(socket) = handle.socket_path() {
        text += &format!("  socket     {}\n", socket.display());
    }
    if let Some(addr) = handle.tcp_addr() {
        text += &format!("  listen     {addr}  (HTTPS_PROXY=http://{addr} HTTP_PROXY=http://{addr})\n");
    }
    text += &format!("  CA         {}  (clients trust it only for hosts with credential injection)\n", ca.display());
    text += &format!("  audit log  {}  (`sbx policy log --follow`)\n", handle.audit_log_path().display());
    if !injected.is_empty() {
        text += &format!("  injecting  {}\n", injected.join(", "));
    }
    text += "Ctrl-C stops the proxy.\n";
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A future that resolves on Ctrl-C (SIGINT) or SIGTERM; the handlers are installed now.
fn stop_signals() -> miette::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).into_diagnostic().wrap_err("cannot watch for Ctrl-C")?;
    let mut term = signal(SignalKind::terminate()).into_diagnostic().wrap_err("cannot watch for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// `-v`: every new audit line, rendered, on stderr, until `stop` fires (then the last ones).
async fn echo_audit(mut reader: AuditReader, mut stop: tokio::sync::oneshot::Receiver<()>) {
    loop {
        let last = tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => false,
            _ = &mut stop => true,
        };
        match reader.read_new() {
            Ok(entries) => entries.iter().for_each(|e| eprintln!("{}", e.render_line())),
            Err(e) => {
                eprintln!("sbx proxy: stopped echoing the audit log: {e}");
                return;
            }
        }
        if last {
            return;
        }
    }
}
