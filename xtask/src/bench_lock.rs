//! `cargo xtask bench lock [ROUNDS]`: how fast `sbx lock` is.
//!
//! * Fixture project (node ×2, go, python, two GitHub tools, two platforms) against the loopback
//!   fixture server: cold (empty HTTP cache), warm (cache kept, lockfile removed) and
//!   `sbx lock --check` (target ≤ 20 ms).
//! * The same npm/pipx `mise.toml` locked by `sbx lock` and by the real `mise lock` (the
//!   `@jdxcode/mise-linux-x64` binary from the npm registry) against the live registries,
//!   cold caches, alternated round by round; reported as a ratio (target: sbx ≤ 0.5× mise).
//!   Without `uv` mise does not touch PyPI for pipx tools, so the npm tools are also compared
//!   alone, where both lock the whole closure.
//!
//! Medians of ROUNDS runs (default 5). The release `sbx` binary is built first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sbx_fixtures::FixtureServer;

const LIVE_TOOLS: &str = r#"[tools]
"npm:prettier" = "3.3.3"
"npm:eslint" = "9.15.0"
"pipx:black" = "24.10.0"
"pipx:ruff" = "0.8.0"
"#;

/// The npm tools of [`LIVE_TOOLS`] alone: work both tools do in full (mise resolves npm
/// closures with its built-in `aube` resolver).
const LIVE_NPM_TOOLS: &str = r#"[tools]
"npm:prettier" = "3.3.3"
"npm:eslint" = "9.15.0"
"#;

const PLATFORMS: &str = "[image]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n";
const MISE_VERSION: &str = "2026.9.15";

/// Runs the benchmark.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let rounds: usize = args.first().map(|a| a.parse()).transpose().context("ROUNDS must be a number")?.unwrap_or(5);
    let sbx = crate::sbx_bin::sbx_binary(true)?;
    let tmp = tempfile::tempdir()?;
    let server = FixtureServer::start_default()?;

    let fixture = project(tmp.path(), "fixture", sbx_fixtures::RECORDED_MISE_TOML)?;
    let warm_cache = tmp.path().join("warm-cache");
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut check = Vec::new();
    let fixture_env = |cache: &Path| -> Vec<(String, String)> {
        vec![
            ("SBX_NODE_URL".into(), server.url("/node")),
            ("SBX_GO_URL".into(), server.url("/go")),
            ("SBX_GITHUB_API_URL".into(), server.url("/github")),
            ("SBX_CACHE_DIR".into(), cache.display().to_string()),
        ]
    };
    for round in 0..rounds {
        let cache = tmp.path().join(format!("cold-cache-{round}"));
        remove(&fixture.join("sbx.lock"))?;
        cold.push(time(&sbx, &fixture, &["lock"], &fixture_env(&cache))?);
        remove(&fixture.join("sbx.lock"))?;
        warm.push(time(&sbx, &fixture, &["lock"], &fixture_env(&warm_cache))?);
        check.push(time(&sbx, &fixture, &["lock", "--check"], &fixture_env(&warm_cache))?);
    }
    println!("fixture project (6 tool versions × 2 platforms, loopback fixture server), {rounds} rounds:");
    println!("  sbx lock, cold cache      {}", ms(median(&mut cold)));
    println!("  sbx lock, warm cache      {}", ms(median(&mut warm)));
    let check_median = median(&mut check);
    println!(
        "  sbx lock --check          {}   (target ≤ 20 ms: {})",
        ms(check_median),
        verdict(check_median.as_secs_f64() <= 0.020)
    );

    let mise = mise_binary()?;
    let live = compare(&sbx, &mise, tmp.path(), "live", LIVE_TOOLS, rounds)?;
    println!(
        "live npm + PyPI (prettier, eslint, black, ruff × 2 platforms), cold caches, alternated, {rounds} rounds:"
    );
    let ratio = live.print();
    println!("  target ≤ 0.5×: {}", verdict(ratio <= 0.5));
    if !has_uv() {
        println!(
            "  note: no `uv` on PATH, so mise skips the pipx dependency graph (no request at all); sbx locks the whole closure with checksums"
        );
    }
    let npm = compare(&sbx, &mise, tmp.path(), "live-npm", LIVE_NPM_TOOLS, rounds)?;
    println!(
        "live npm only (prettier, eslint × 2 platforms; both lock the whole closure with integrity), {rounds} rounds:"
    );
    npm.print();
    Ok(())
}

/// The cold `sbx lock` and `mise lock` times of one project, round by round.
struct Comparison {
    sbx: Vec<Duration>,
    mise: Vec<Duration>,
}

impl Comparison {
    /// Prints each tool's median and range and the ratio of the medians, which it returns.
    /// The registry mirror's answers vary by tens of milliseconds from one minute to the next,
    /// so the range and the median of the per-round ratios (each round's two runs are seconds
    /// apart) are printed too.
    fn print(mut self) -> f64 {
        let mut per_round: Vec<f64> =
            self.sbx.iter().zip(&self.mise).map(|(s, m)| s.as_secs_f64() / m.as_secs_f64()).collect();
        per_round.sort_by(f64::total_cmp);
        let (s, m) = (median(&mut self.sbx), median(&mut self.mise));
        let range = |v: &[Duration]| {
            let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            format!("(range {:.0}–{:.0} ms)", ms(v.first()), ms(v.last()))
        };
        println!("  sbx lock                  {}   {}", ms(s), range(&self.sbx));
        println!("  mise {MISE_VERSION} lock       {}   {}", ms(m), range(&self.mise));
        let ratio = s.as_secs_f64() / m.as_secs_f64();
        println!(
            "  ratio sbx / mise          {ratio:.2}×   (per round: median {:.2}×, range {:.2}–{:.2}×)",
            per_round.get(per_round.len() / 2).copied().unwrap_or_default(),
            per_round.first().copied().unwrap_or_default(),
            per_round.last().copied().unwrap_or_default(),
        );
        ratio
    }
}

/// Cold `sbx lock` and `mise lock` of `tools`, alternated round by round, each run with fresh
/// caches and a fresh `HOME`.
fn compare(sbx: &Path, mise: &Path, root: &Path, name: &str, tools: &str, rounds: usize) -> anyhow::Result<Comparison> {
    let live = project(root, name, tools)?;
    let mut sbx_cold = Vec::new();
    let mut mise_cold = Vec::new();
    for round in 0..rounds {
        remove(&live.join("sbx.lock"))?;
        let dir = root.join(format!("{name}-sbx-{round}"));
        let env = [
            ("SBX_CACHE_DIR".to_string(), dir.join("cache").display().to_string()),
            ("HOME".to_string(), dir.join("home").display().to_string()),
        ];
        sbx_cold.push(time(sbx, &live, &["lock"], &env)?);
        // mise also keeps its npm resolver's lockfiles in `.mise/locks`: a cold run has none.
        remove(&live.join("mise.lock"))?;
        match std::fs::remove_dir_all(live.join(".mise")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let dir = root.join(format!("{name}-mise-{round}"));
        let env = [
            ("MISE_CACHE_DIR".to_string(), dir.join("cache").display().to_string()),
            ("MISE_DATA_DIR".to_string(), dir.join("data").display().to_string()),
            ("MISE_STATE_DIR".to_string(), dir.join("state").display().to_string()),
            ("HOME".to_string(), dir.join("home").display().to_string()),
            ("MISE_YES".to_string(), "1".to_string()),
        ];
        mise_cold.push(time(mise, &live, &["lock", "--platform", "linux-x64,linux-arm64"], &env)?);
    }
    Ok(Comparison { sbx: sbx_cold, mise: mise_cold })
}

/// The real mise binary, downloaded once from the npm registry into the target dir.
fn mise_binary() -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/bench-mise-{MISE_VERSION}"));
    let bin = dir.join("package/bin/mise");
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir)?;
    let url = format!("https://registry.npmjs.org/@jdxcode/mise-linux-x64/-/mise-linux-x64-{MISE_VERSION}.tgz");
    let tgz = dir.join("mise.tgz");
    let status = Command::new("curl").args(["-fsSL", "-o"]).arg(&tgz).arg(&url).status()?;
    if !status.success() {
        bail!("cannot download {url}");
    }
    let status = Command::new("tar").arg("xzf").arg(&tgz).arg("-C").arg(&dir).status()?;
    if !status.success() || !bin.is_file() {
        bail!("{url} does not hold package/bin/mise");
    }
    Ok(bin)
}

fn project(root: &Path, name: &str, tools: &str) -> anyhow::Result<PathBuf> {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("mise.toml"), tools)?;
    std::fs::write(dir.join(".sbx.toml"), PLATFORMS)?;
    Ok(dir)
}

/// Runs `program args` in `dir` with a small, fixed environment and returns the wall time.
fn time(program: &Path, dir: &Path, args: &[&str], env: &[(String, String)]) -> anyhow::Result<Duration> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir.join("home"))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MISE_CEILING_PATHS", dir.parent().unwrap_or(dir))
        .envs(env.iter().map(|(k, v)| (k, v)));
    let start = Instant::now();
    let out = cmd.output()?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        bail!("{} {} failed:\n{}", program.display(), args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(elapsed)
}

fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// The median; sorts `samples`.
fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:>8.1} ms", d.as_secs_f64() * 1000.0)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn has_uv() -> bool {
    Command::new("uv").arg("--version").output().is_ok_and(|o| o.status.success())
}
