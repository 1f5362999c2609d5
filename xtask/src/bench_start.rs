//! `cargo xtask bench start [ITERATIONS]`: `true` under sbx-sandbox's runtime layer (warm and
//! cold) and through the real CLI (`sbx start -- /bin/true` on a project whose `.sbx/image` is the
//! same image: project load, proxy start and stop, sandbox) per runtime, alternated in one run
//! with the bare runtime (`bwrap …`, `runsc do …`) on the same rootfs. Prints medians,
//! differences and ratios. Target: warm ≤ raw + 30 ms. The CLI is built with `--release` first
//! (or taken from `$SBX_BIN`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sbx_sandbox::{Outcome, RuntimeChoice, RuntimeKind, SandboxSpec, Sandboxes, runtime};
use sha2::{Digest, Sha256};

fn blob(layout: &Path, data: &[u8]) -> anyhow::Result<String> {
    let hex = hex::encode(Sha256::digest(data));
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(&hex), data)?;
    Ok(format!("sha256:{hex}"))
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A small OCI layout: busybox-static with `sh` and `true`, one uncompressed layer.
fn busybox_layout(dir: &Path) -> anyhow::Result<PathBuf> {
    let busybox = std::fs::read("/bin/busybox").context("busybox-static is needed: run .ci/install-deps")?;
    let mut b = tar::Builder::new(Vec::new());
    for d in ["bin", "dev", "etc", "home", "proc", "root", "tmp", "usr", "usr/bin"] {
        b.append_data(&mut header(tar::EntryType::Directory, 0, 0o755), d, &[][..])?;
    }
    b.append_data(&mut header(tar::EntryType::Regular, busybox.len() as u64, 0o755), "bin/busybox", &busybox[..])?;
    for applet in ["sh", "true"] {
        b.append_link(&mut header(tar::EntryType::Symlink, 0, 0o777), format!("bin/{applet}"), "busybox")?;
    }
    let layer = b.into_inner()?;
    let layout = dir.join("layout");
    let layer_digest = blob(&layout, &layer)?;
    let config = serde_json::json!({
        "architecture": sbx_sandbox::oci::host_architecture(), "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let config = serde_json::to_vec(&config)?;
    let config_digest = blob(&layout, &config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    }))?;
    let manifest_digest = blob(&layout, &manifest)?;
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len(),
    }]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(layout)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sbx_true(sandboxes: &Sandboxes, spec: &SandboxSpec) -> anyhow::Result<Duration> {
    let t = Instant::now();
    match sandboxes.start(spec, &mut |_| {})? {
        Outcome::Exited(0) => Ok(t.elapsed()),
        other => bail!("sandboxed `true` ended with {other:?}"),
    }
}

fn raw_true(rt: &dyn sbx_sandbox::Runtime, rootfs: &Path) -> anyhow::Result<Duration> {
    let mut cmd: Command = rt.raw_command(rootfs, &["/bin/true"]);
    cmd.stdin(Stdio::null());
    let t = Instant::now();
    let status = cmd.status()?;
    let elapsed = t.elapsed();
    if !status.success() {
        bail!("raw {} failed: {status}", rt.kind());
    }
    Ok(elapsed)
}

/// A project whose `.sbx/image` is `layout` (newer than its lockfile, so no build runs).
fn cli_project(dir: &Path, layout: &Path) -> anyhow::Result<PathBuf> {
    let project = dir.join("cli-project");
    std::fs::create_dir_all(project.join(".sbx"))?;
    std::fs::write(project.join(".sbx.toml"), "[sandbox]\n")?;
    std::fs::write(project.join("mise.toml"), "[tools]\n")?;
    std::fs::write(project.join("sbx.lock"), "# bench\n")?;
    let status = Command::new("cp").arg("-R").arg(layout).arg(project.join(".sbx/image")).status()?;
    if !status.success() {
        bail!("copying the image failed");
    }
    Ok(project)
}

fn cli_true(sbx: &Path, project: &Path, state: &Path, kind: RuntimeKind) -> anyhow::Result<Duration> {
    let mut cmd = Command::new(sbx);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", state)
        .env("SBX_STATE_DIR", state.join("state"))
        .env("SBX_CACHE_DIR", state.join("cache"))
        .env("MISE_CEILING_PATHS", project.parent().unwrap_or(project))
        .arg("-C")
        .arg(project)
        .args(["--quiet", "start", "--name", "bench-cli", "--runtime", kind.name(), "--", "/bin/true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let t = Instant::now();
    let status = cmd.status()?;
    let elapsed = t.elapsed();
    if !status.success() {
        bail!("`sbx start -- /bin/true` on {kind} failed: {status}");
    }
    Ok(elapsed)
}

/// Entry point.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let iterations: usize = args.first().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let tmp = tempfile::tempdir()?;
    let layout = busybox_layout(tmp.path())?;
    let workspace = tmp.path().join("workspace");
    std::fs::create_dir_all(&workspace)?;
    let sbx = crate::sbx_bin::sbx_binary(true)?;
    let project = cli_project(tmp.path(), &layout)?;
    println!("sbx start bench: `true`, {iterations} warm iterations, {} cold, medians", iterations.div_ceil(4));
    for kind in RuntimeKind::ALL {
        let choice = match kind {
            RuntimeKind::Gvisor => RuntimeChoice::Gvisor,
            RuntimeKind::Bwrap => RuntimeChoice::Bwrap,
            RuntimeKind::Docker | RuntimeKind::Podman => continue,
        };
        let rt = match runtime::select(choice) {
            Ok(rt) => rt,
            Err(e) => {
                println!("{kind:>7}: skipped ({e})");
                continue;
            }
        };
        let sandboxes = Sandboxes::new(tmp.path().join("state"), tmp.path().join("cache"));
        let mut spec = SandboxSpec::new(format!("bench-{kind}"), &layout, &workspace);
        spec.runtime = choice;
        spec.command = vec!["/bin/true".into()];
        let rootfs = sandboxes.prepare_rootfs(&layout)?.rootfs;
        sbx_true(&sandboxes, &spec)?; // prime the helper and page cache
        let cli_state = tmp.path().join(format!("cli-{kind}"));
        cli_true(&sbx, &project, &cli_state, kind)?; // unpack once: the CLI runs below are warm
        let (mut warm, mut raw, mut cold, mut cli) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..iterations {
            warm.push(sbx_true(&sandboxes, &spec)?);
            raw.push(raw_true(rt.as_ref(), &rootfs)?);
            cli.push(cli_true(&sbx, &project, &cli_state, kind)?);
            if i % 4 == 0 {
                let cold_dir = tmp.path().join(format!("cold-{kind}-{i}"));
                let fresh = Sandboxes::new(cold_dir.join("state"), cold_dir.join("cache"));
                cold.push(sbx_true(&fresh, &spec)?);
                std::fs::remove_dir_all(&cold_dir)?;
            }
            print!(".");
            std::io::stdout().flush()?;
        }
        println!();
        let (w, r, c, l) = (median(warm), median(raw), median(cold), median(cli));
        println!(
            "{kind:>7}: raw {:7.1} ms | sbx warm {:7.1} ms (raw {:+.1} ms, ×{:.2}) | sbx cold {:7.1} ms (raw {:+.1} ms) | target warm ≤ raw + 30 ms: {}",
            ms(r),
            ms(w),
            ms(w) - ms(r),
            ms(w) / ms(r).max(0.001),
            ms(c),
            ms(c) - ms(r),
            if ms(w) <= ms(r) + 30.0 { "met" } else { "MISSED" },
        );
        println!(
            "{kind:>7}: `sbx start -- /bin/true` (CLI, warm, proxy included) {:7.1} ms (raw {:+.1} ms, ×{:.2}) | target warm ≤ raw + 30 ms: {}",
            ms(l),
            ms(l) - ms(r),
            ms(l) / ms(r).max(0.001),
            if ms(l) <= ms(r) + 30.0 { "met" } else { "MISSED" },
        );
    }
    Ok(())
}
