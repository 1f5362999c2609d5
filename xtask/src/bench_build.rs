//! `cargo xtask bench build [TREE...]`: sbx-image's layer building against `tar | compress`.
//!
//! Trees default to the stable Rust toolchain's `rustlib/<host>` directory and the cargo
//! registry sources (≥ 300 MB together, real files). For each compressor (zstd -3, gzip -1)
//! it times, in this one process and on the same trees:
//! * baseline: `tar --sort=name -cf - -C TREE . | zstd -3 -T1` (or `gzip -1`), one tree after
//!   the other, written to files;
//! * sbx layers: `LayerTree::add_tree` + `write_layer` for every tree (as `build_image` runs
//!   them: in parallel, one per core), and one tree at a time;
//! * for reference, GNU `tar -x` of the same artifacts to disk and removal (what a builder
//!   that unpacks artifacts before writing layers pays on top; sbx reads them in place);
//! * sbx cold build: `build_image` from `file://` tarballs with an empty cache (copy and verify
//!   the artifacts, read them into layers, config, manifest), and again with the downloads
//!   cached but no layer cache.
//!
//! Then the rebuild case: one tool's artifact changes, `build_image` with a warm cache vs
//! `build_image` of that tool alone into an empty layer cache. Ratios are printed; targets are
//! throughput ≥ 0.8× baseline and rebuild ≤ 1.2× one layer. Run it with `--release` builds
//! (`cargo run --release -p xtask -- bench build`) for meaningful figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sbx_image::build::BuildOptions;
use sbx_image::layer::{Compression, LayerOptions, LayerTree, write_layer};
use sbx_image::{Cache, NoProgress, build_image};
use sbx_mise::Platform;
use sbx_mise::lockfile::model::{Artifact, Checksum, LockedTool, Lockfile};

fn default_trees() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    let mut trees = Vec::new();
    let rustup = home.join(".rustup/toolchains");
    if let Ok(entries) = std::fs::read_dir(&rustup) {
        let mut names: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        names.sort();
        if let Some(tc) = names.iter().find(|p| p.to_string_lossy().contains("stable")).or(names.first()) {
            let rustlib = tc.join("lib/rustlib/x86_64-unknown-linux-gnu");
            if rustlib.is_dir() {
                trees.push(rustlib);
            }
        }
    }
    let registry = home.join(".cargo/registry/src");
    if registry.is_dir() {
        trees.push(registry);
    }
    trees
}

fn du(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn sh(script: &str) -> anyhow::Result<()> {
    let status = Command::new("sh").arg("-c").arg(script).status().context("running sh")?;
    if !status.success() {
        bail!("`{script}` failed");
    }
    Ok(())
}

/// Wall-clock time and CPU seconds (this process and its waited-for children, from
/// `/proc/self/stat`) spent in `f`. CPU time is the fair comparison on a shared machine.
#[derive(Clone, Copy)]
struct Cost {
    wall: Duration,
    cpu: f64,
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<f64> = after.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    // utime, stime, cutime, cstime are fields 14-17 (1-based); `after` starts at field 3.
    fields.get(11..15).map(|t| t.iter().sum::<f64>() / 100.0).unwrap_or(0.0)
}

fn time<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(Cost, T)> {
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let v = f()?;
    Ok((Cost { wall: start.elapsed(), cpu: cpu_seconds() - cpu }, v))
}

fn artifact(path: &Path) -> anyhow::Result<Artifact> {
    Ok(Artifact {
        url: format!("file://{}", path.display()),
        checksum: Checksum::Sha256(sbx_image::treehash::file_sha256(path)?),
        size: Some(std::fs::metadata(path)?.len()),
    })
}

fn tool(i: usize, version: &str, art: Artifact) -> (String, Vec<LockedTool>) {
    let locked = LockedTool {
        backend: format!("github:bench/tool{i}"),
        request: "latest".into(),
        version: version.into(),
        runtime: None,
        options: BTreeMap::new(),
        platforms: BTreeMap::from([(Platform::LINUX_AMD64, art)]),
        packages: vec![],
    };
    (format!("tool{i}"), vec![locked])
}

fn lock(tools: Vec<(String, Vec<LockedTool>)>) -> Lockfile {
    Lockfile {
        version: 1,
        inputs: "sha256:bench".into(),
        platforms: vec![Platform::LINUX_AMD64],
        extra_platforms: Vec::new(),
        upstreams: None,
        base: None,
        tools: tools.into_iter().collect(),
    }
}

fn options(cache: &Path, compression: Compression) -> BuildOptions {
    let mut o = BuildOptions::new(Cache::new(cache));
    o.compression = compression;
    o.platforms = vec![Platform::LINUX_AMD64];
    o
}

fn secs(c: Cost) -> f64 {
    c.wall.as_secs_f64()
}

/// Entry point for `cargo xtask bench build [TREE...]`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("note: debug build; use `cargo run --release -p xtask -- bench build` for meaningful figures");
    }
    let trees: Vec<PathBuf> = if args.is_empty() { default_trees() } else { args.iter().map(PathBuf::from).collect() };
    if trees.is_empty() {
        bail!("no trees to benchmark; pass directories: cargo xtask bench build DIR...");
    }
    let total: u64 = trees.iter().map(|t| du(t)).sum();
    println!("trees ({:.0} MB):", total as f64 / 1e6);
    for t in &trees {
        println!("  {}", t.display());
    }
    if total < 300_000_000 {
        eprintln!("warning: less than 300 MB of input");
    }
    let work = tempfile::Builder::new().prefix("sbx-bench-build-").tempdir()?;
    let w = work.path();
    std::fs::create_dir_all(w.join("art"))?;
    std::fs::create_dir_all(w.join("base"))?;

    // Artifacts for the full builds (uncompressed tarballs, prepared untimed).
    let mut arts = Vec::new();
    for (i, t) in trees.iter().enumerate() {
        let out = w.join(format!("art/tool{i}.tar"));
        sh(&format!("tar --sort=name -cf '{}' -C '{}' .", out.display(), t.display()))?;
        arts.push(artifact(&out)?);
    }
    // Warm the page cache so every contender reads from memory.
    for t in &trees {
        sh(&format!("tar --sort=name -cf - -C '{}' . | cat > /dev/null", t.display()))?;
    }

    let rt = tokio::runtime::Runtime::new()?;
    let mb = total as f64 / 1e6;
    println!();
    println!("{:<46} {:>8} {:>8} {:>9} {:>8} {:>9}", "contender", "wall s", "MB/s", "vs tar|c", "CPU s", "CPU vs");
    for (name, cmd, compression) in [
        ("zstd -3", "zstd -3 -T1 -q", Compression::Zstd { level: 3 }),
        ("gzip -1", "gzip -1", Compression::Gzip { level: 1 }),
    ] {
        let (base, ()) = time(|| {
            for (i, t) in trees.iter().enumerate() {
                sh(&format!("tar --sort=name -cf - -C '{}' . | {cmd} > '{}/base/{i}.out'", t.display(), w.display()))?;
            }
            Ok(())
        })?;
        let row = |label: &str, d: Cost| {
            println!(
                "{:<46} {:>8.2} {:>8.1} {:>8.2}x {:>8.2} {:>8.2}x",
                label,
                secs(d),
                mb / secs(d),
                secs(base) / secs(d),
                d.cpu,
                base.cpu / d.cpu.max(0.01)
            );
        };
        row(&format!("tar --sort=name | {name}"), base);

        let opts = LayerOptions { compression, ..Default::default() };
        let blobs = w.join(format!("blobs-{}", compression.cache_key()));
        let write_one = |t: &Path, i: usize| -> anyhow::Result<()> {
            let mut tree = LayerTree::new();
            tree.add_tree(&format!("opt/tool{i}"), t)?;
            write_layer(&tree, &opts, &blobs, Some(&format!("opt/tool{i}")))?;
            Ok(())
        };
        let (par, ()) = time(|| {
            std::thread::scope(|s| {
                let handles: Vec<_> = trees.iter().enumerate().map(|(i, t)| s.spawn(move || write_one(t, i))).collect();
                handles.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("layer thread panicked"))?)
            })
        })?;
        row(&format!("sbx layers, parallel ({name})"), par);
        let (seq, ()) = time(|| trees.iter().enumerate().try_for_each(|(i, t)| write_one(t, i)))?;
        row(&format!("sbx layers, one at a time ({name})"), seq);

        // What a builder that unpacks artifacts to disk first would pay on top (on this
        // machine's ext4, file and directory creation dominate it); sbx reads them in place.
        let (untar, ()) = time(|| {
            for (i, a) in arts.iter().enumerate() {
                let dir = w.join(format!("untar-{i}"));
                std::fs::create_dir_all(&dir)?;
                let file = a.url.trim_start_matches("file://");
                sh(&format!("tar -xf '{file}' -C '{}' && rm -rf '{}'", dir.display(), dir.display()))?;
            }
            Ok(())
        })?;
        row("(ref) tar -x + rm of the artifacts", untar);

        let cache = w.join(format!("cache-{}", compression.cache_key()));
        let full_lock = lock(arts.iter().enumerate().map(|(i, a)| tool(i, "1.0.0", a.clone())).collect());
        let (cold, _) =
            time(|| Ok(rt.block_on(build_image(&full_lock, &options(&cache, compression), &NoProgress))?))?;
        row(&format!("sbx build_image, cold ({name})"), cold);
        // The same with the artifacts already downloaded (a CI runner with a download cache):
        // what is left is reading the archives into layers.
        std::fs::remove_dir_all(cache.join("layers"))?;
        std::fs::remove_dir_all(cache.join("blobs"))?;
        let (layers_only, _) =
            time(|| Ok(rt.block_on(build_image(&full_lock, &options(&cache, compression), &NoProgress))?))?;
        row(&format!("sbx build_image, downloads cached ({name})"), layers_only);
    }

    // Rebuild after bumping tool0, vs building tool0's layer alone.
    println!();
    let compression = Compression::Zstd { level: 3 };
    let cache = w.join(format!("cache-{}", compression.cache_key()));
    let bumped = w.join("art/tool0-v2.tar");
    sh(&format!("tar --sort=name --mtime=@1 -cf '{}' -C '{}' .", bumped.display(), trees[0].display()))?;
    let alone_art = w.join("art/tool0-v3.tar");
    sh(&format!("tar --sort=name --mtime=@2 -cf '{}' -C '{}' .", alone_art.display(), trees[0].display()))?;
    let mut tools: Vec<_> = arts.iter().enumerate().map(|(i, a)| tool(i, "1.0.0", a.clone())).collect();
    tools[0] = tool(0, "2.0.0", artifact(&bumped)?);
    let (rebuild, out) =
        time(|| Ok(rt.block_on(build_image(&lock(tools), &options(&cache, compression), &NoProgress))?))?;
    let rebuilt = out.images[0].layers.iter().filter(|l| !l.cached).count();
    let alone_lock = lock(vec![tool(0, "3.0.0", artifact(&alone_art)?)]);
    let (alone, _) = time(|| {
        Ok(rt.block_on(build_image(&alone_lock, &options(&w.join("cache-alone"), compression), &NoProgress))?)
    })?;
    println!(
        "rebuild after bumping tool0 (zstd -3): {:.2} s wall, {:.2} s CPU ({rebuilt} layers built incl. config)",
        secs(rebuild),
        rebuild.cpu
    );
    println!("tool0's layer alone, empty cache:        {:.2} s wall, {:.2} s CPU", secs(alone), alone.cpu);
    println!(
        "rebuild / one layer = {:.2}x wall, {:.2}x CPU (target <= 1.2x)",
        secs(rebuild) / secs(alone),
        rebuild.cpu / alone.cpu.max(0.01)
    );
    Ok(())
}
