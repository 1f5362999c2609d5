//! `sbx lock`: pin every tool for every image platform into `sbx.lock`.

use miette::{IntoDiagnostic, WrapErr};
use sbx_mise::atomic::{FileLock, write_atomically};
use sbx_mise::credentials::Credentials;
use sbx_mise::lock::{self, LockInputs, LockRun, Staleness, Upgrade};
use sbx_mise::lockfile::{self, Lockfile, diff::diff};
use sbx_mise::resolve::Upstreams;
use sbx_mise::{Platform, SourceFile};

use super::Exit;
use crate::cli::LockArgs;
use crate::diff_render::{render_stale, render_text};
use crate::output::Output;
use crate::progress::LockBars;
use crate::project::Project;

/// Runs `sbx lock`.
pub fn run(project: &Project, args: &LockArgs, out: Output) -> miette::Result<Exit> {
    let inputs = inputs(project, args)?;
    let path = project.lockfile_path();
    if args.check {
        return check(project, &inputs, out);
    }
    let state = project.state_dir().into_diagnostic().wrap_err("cannot create the project's .sbx directory")?;
    let _guard = FileLock::acquire(&state.join("lock"), |p| {
        if !out.quiet {
            eprintln!("waiting for another sbx run to release {}", p.display());
        }
    })
    .into_diagnostic()
    .wrap_err_with(|| format!("cannot lock {}", path.display()))?;
    // Read under the file lock: another run may have just written it.
    let previous = read(&path)?;
    let mise_pins = sbx_mise::lockfile::mise_lock::read_pins(&project.root)?;
    let upgrade = match &args.upgrade {
        None => Upgrade::None,
        Some(tools) if tools.is_empty() => Upgrade::All,
        Some(tools) => Upgrade::Tools(tools.iter().cloned().collect()),
    };
    let credentials = upstreams_and_credentials(project).1;
    let network = crate::network::open(&inputs.upstreams, credentials, args.offline)?;
    let bars = LockBars::new(out);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().into_diagnostic()?;
    let mut new = runtime.block_on(lock::lock(&LockRun {
        inputs: &inputs,
        previous: previous.as_ref(),
        mise_pins: &mise_pins,
        upgrade: &upgrade,
        backends: &network.backends,
        fetch: network.fetch.as_ref(),
        progress: &bars,
    }));
    bars.finish();
    // The cache entries of this run, written meanwhile, are complete before the runtime stops.
    runtime.block_on(network.fetch.finish());
    if let Ok(lock) = &mut new {
        // `[image] base` pinned to a manifest digest per platform; the previous pin is kept
        // while the reference is unchanged, until `--upgrade`.
        let previous_base = previous.as_ref().and_then(|p| p.base.as_ref());
        let refresh = upgrade == Upgrade::All;
        let pin = sbx_image::base::pin_or_keep(
            &inputs.base,
            previous_base,
            &lock.platforms,
            refresh,
            args.offline,
            &project.root,
        );
        lock.base = runtime.block_on(pin)?;
    }
    let new = new?;
    // The HTTP client holds every body fetched and every document parsed (tens of megabytes
    // for a large project). The process ends right after writing the lockfile, so they are
    // left for the OS to reclaim rather than freed one by one (~10 ms of the bench's lock).
    std::mem::forget(network);
    runtime.shutdown_background();
    let text = lockfile::to_toml(&new);
    let mut changes = diff(previous.as_ref().unwrap_or(&Lockfile::default()), &new);
    if previous.is_none() {
        // A new lockfile: its platforms are in the summary line, not a change from `[]`.
        changes.platforms = None;
    }
    let unchanged_bytes = std::fs::read_to_string(&path).is_ok_and(|old| old == text);
    if args.dry_run {
        if !out.quiet {
            if unchanged_bytes {
                eprintln!("sbx.lock is up to date; nothing would change");
            } else {
                eprintln!("would update {}:", path.display());
                eprint!("{}", render_text(&changes, out));
            }
        }
        return Ok(Exit::Success);
    }
    if !unchanged_bytes {
        write_atomically(&path, text.as_bytes())
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    }
    if args.mise_lock {
        write_mise_lock(project, &new)?;
    }
    if !out.quiet {
        let platforms: Vec<String> = new.platforms.iter().map(|p| p.to_string()).collect();
        let count: usize = new.tools.values().map(Vec::len).sum();
        let verb = if unchanged_bytes { "is up to date" } else { "written" };
        eprintln!("{} {verb}: {count} tool version(s) for {}", path.display(), platforms.join(", "));
        eprint!("{}", render_text(&changes, out));
    }
    Ok(Exit::Success)
}

/// The platforms, upstreams and tools that decide the lock. Platforms added earlier with
/// `--platform` stay (they are recorded in the lockfile) unless `--reset-platforms` is given.
fn inputs(project: &Project, args: &LockArgs) -> miette::Result<LockInputs> {
    let mut extra = Vec::new();
    if !args.reset_platforms
        && let Some(previous) = read(&project.lockfile_path())?
    {
        extra = previous.extra_platforms;
    }
    for p in &args.platforms {
        let platform: Platform = p
            .parse()
            .map_err(|e| miette::miette!(help = "use linux/amd64, linux/arm64, darwin/amd64 or darwin/arm64", "{e}"))?;
        extra.push(platform);
    }
    let configured = &project.sbx.image.platforms.value;
    Ok(LockInputs::from_config(&project.mise, configured, &project.sbx.image.base.value, upstreams(project))
        .with_extra_platforms(&extra))
}

/// Upstream URLs: defaults, then the environment, then `[mirrors]` in `.sbx.toml`.
pub fn upstreams(project: &Project) -> Upstreams {
    upstreams_and_credentials(project).0
}

/// [`upstreams`], and the user names and passwords their URLs carried (a private index written
/// `https://__token__:…@host/…`), which are sent with requests to the same origin and never
/// written to `sbx.lock` or printed.
pub fn upstreams_and_credentials(project: &Project) -> (Upstreams, Credentials) {
    let mut u = Upstreams::from_env_with(|k| project.env.get(k).cloned());
    for (key, url) in &project.sbx.mirrors {
        let url = url.value.trim_end_matches('/').to_string();
        match key.as_str() {
            "node" => u.node = url,
            "go" => u.go = url,
            "github_api" => u.github_api = url,
            "npm" => u.npm = url,
            "pypi" => u.pypi = url,
            "crates_index" => u.crates_index = url,
            "crates_download" => u.crates_download = url,
            _ => {}
        }
    }
    u.split_credentials()
}

/// Reads `sbx.lock` if it exists.
pub fn read(path: &std::path::Path) -> miette::Result<Option<Lockfile>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(lockfile::from_toml(SourceFile::new(path, text))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(miette::miette!("cannot read {}: {e}", path.display())),
    }
}

/// `--check`: exit 0 when current, 3 with the reasons when stale or missing. No network.
fn check(project: &Project, inputs: &LockInputs, out: Output) -> miette::Result<Exit> {
    let path = project.lockfile_path();
    let lock = read(&path)?;
    let mise_pins = sbx_mise::lockfile::mise_lock::read_pins(&project.root)?;
    match lock::check_with_mise_pins(inputs, lock.as_ref(), &mise_pins) {
        Staleness::Current => {
            if !out.quiet {
                eprintln!("{} is up to date", path.display());
            }
            Ok(Exit::Success)
        }
        Staleness::Missing => {
            eprintln!("{} is missing; run `sbx lock` to create it", path.display());
            Ok(Exit::Stale)
        }
        Staleness::Stale(reasons) => {
            eprintln!("{} is out of date:", path.display());
            eprint!("{}", render_stale(&reasons, out));
            eprintln!("run `sbx lock` to update it");
            Ok(Exit::Stale)
        }
    }
}

/// `--mise-lock`: writes or updates `mise.lock` next to the project's config.
fn write_mise_lock(project: &Project, lock: &Lockfile) -> miette::Result<()> {
    let path = project.root.join(lockfile::mise_lock::FILE_NAME);
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let host = lockfile::mise_lock::MiseLockOptions::from_env_and_settings(
        &project.env,
        project.mise.settings.get("node.mirror_url").map(|s| s.as_str()),
    );
    let text = lockfile::mise_lock::render_with(lock, &existing, &host).map_err(|e| {
        miette::miette!(help = "fix or delete it, then run again", "cannot update {}: {e}", path.display())
    })?;
    write_atomically(&path, text.as_bytes())
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write {}", path.display()))
}
