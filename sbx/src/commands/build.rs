//! `sbx build`: the sandbox image from `sbx.lock` and `.sbx.toml`, nothing else (issue #4).
//!
//! Wiring only: refuse a missing or stale lockfile, turn `[image]` into
//! [`sbx_image::BuildOptions`], run [`sbx_image::build_image`] with progress bars, then write the
//! outputs (`sbx_image::output`, `sbx_image::registry::push`).

mod bars;

use std::path::PathBuf;

use clap::Args;
use miette::{IntoDiagnostic, miette};
use sbx_image::install::MiseLayout;
use sbx_image::{BuildOptions, BuildOutput, Cache, Compression};
use sbx_mise::Platform;
use sbx_mise::lock::{LockInputs, Staleness};
use sbx_mise::lockfile::Lockfile;

use super::{Context, Exit};
use crate::project::Project;
use crate::sbx_toml;

/// Arguments of `sbx build`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  sbx build\n  sbx build --output oci:/tmp/img --output \
docker-archive:img.tar\n  sbx build --push registry.example.com/team/project:main\n  sbx build --json | jq \
.index_digest")]
pub struct BuildArgs {
    /// Where to write the image instead of .sbx/image; repeatable. `oci:DIR` writes an OCI
    /// image layout (tagged `latest`, or `oci:DIR:TAG`); `docker-archive:FILE` writes a tarball
    /// for `docker load` (one platform: see --platform).
    #[arg(long, short = 'o', value_name = "oci:DIR|docker-archive:FILE")]
    pub output: Vec<String>,
    /// Also push the image (every platform, under one index) to a registry: HOST[:PORT]/REPO[:TAG].
    /// Credentials come from the docker config (~/.docker/config.json); plain HTTP is used only
    /// for loopback registries.
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Build only these platforms (default: every [image] platforms entry); repeatable. The
    /// first one is also the docker-archive's platform (default: the host's when built).
    #[arg(long = "platform", value_name = "OS/ARCH")]
    pub platforms: Vec<String>,
    /// The name:tag a docker-archive is loaded as (default: sbx/<project folder>:latest).
    #[arg(long, value_name = "NAME:TAG")]
    pub tag: Option<String>,
    /// Print a JSON summary on stdout: index digest, per platform the manifest digest, size and
    /// every layer (digest, size, tool, version, tree hash, cached), and what was written.
    #[arg(long)]
    pub json: bool,
}

/// One place the image is written to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Destination {
    Oci { dir: PathBuf, tag: String },
    DockerArchive(PathBuf),
}

fn parse_output(spec: &str) -> miette::Result<Destination> {
    let usage = "use --output oci:DIR[:TAG] or --output docker-archive:FILE";
    if let Some(rest) = spec.strip_prefix("oci:") {
        // `oci:DIR:TAG` as skopeo writes it; a last part with a `/` is part of the path.
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((d, t)) if !t.contains('/') && !t.is_empty() && !d.is_empty() => (d, t),
            _ => (rest, "latest"),
        };
        if dir.is_empty() {
            return Err(miette!(help = usage, "`{spec}` names no directory"));
        }
        return Ok(Destination::Oci { dir: PathBuf::from(dir), tag: tag.to_string() });
    }
    match spec.strip_prefix("docker-archive:") {
        Some(file) if !file.is_empty() => Ok(Destination::DockerArchive(PathBuf::from(file))),
        _ => Err(miette!(help = usage, "unknown output `{spec}`")),
    }
}

/// Runs `sbx build`.
pub fn run(ctx: &Context, args: &BuildArgs) -> miette::Result<Exit> {
    let project = ctx.project()?;
    let mut destinations = args.output.iter().map(|s| parse_output(s)).collect::<miette::Result<Vec<_>>>()?;
    let mut platforms = Vec::new();
    for p in &args.platforms {
        let platform: Platform =
            p.parse().map_err(|e| miette!(help = "use linux/amd64 or linux/arm64", "--platform {p}: {e}"))?;
        platforms.push(platform);
    }
    let lock = current_lockfile(&project, ctx.out)?;
    if destinations.is_empty() {
        destinations.push(Destination::Oci { dir: default_image_dir(&project)?, tag: "latest".into() });
    }
    let opts = options(&project, &lock, &platforms)?;
    let bars = bars::BuildBars::new(ctx.out);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().into_diagnostic()?;
    let built = runtime.block_on(sbx_image::build_image(&lock, &opts, &bars));
    bars.finish();
    let output = built?;

    let mut written = Vec::new();
    for dest in &destinations {
        match dest {
            Destination::Oci { dir, tag } => {
                let collected = sbx_image::output::write_oci_layout(&output, dir, tag)?;
                written.push(serde_json::json!({
                    "type": "oci", "path": dir, "tag": tag,
                    "removed_blobs": collected.blobs, "removed_bytes": collected.bytes,
                }));
            }
            Destination::DockerArchive(file) => {
                let platform = archive_platform(&output, &platforms)?;
                let tag = args.tag.clone().unwrap_or_else(|| default_tag(&project));
                sbx_image::output::write_docker_archive(&output, platform, file, &tag)?;
                written.push(serde_json::json!({
                    "type": "docker-archive", "path": file, "tag": tag, "platform": platform.to_string(),
                }));
            }
        }
    }
    if let Some(reference) = &args.push {
        let digest = runtime.block_on(sbx_image::registry::push(&output, reference, &bars))?;
        written.push(serde_json::json!({ "type": "registry", "reference": reference, "digest": digest }));
    }

    if args.json {
        let mut summary = sbx_image::output::summary_json(&output);
        summary["outputs"] = serde_json::Value::Array(written);
        println!("{}", serde_json::to_string_pretty(&summary).into_diagnostic()?);
    } else {
        if !ctx.out.quiet {
            print_summary(ctx, &output, &destinations, args.push.as_deref());
        }
        println!("{}", output.index_digest);
    }
    Ok(Exit::Success)
}

/// `.sbx/image`, with the project's `.sbx/` (and its `.gitignore`) created.
fn default_image_dir(project: &Project) -> miette::Result<PathBuf> {
    project.state_dir().map_err(|e| miette!("cannot create the project's .sbx directory: {e}"))?;
    Ok(project.image_dir())
}

/// `sbx.lock`, refused when missing or stale against the configuration (the same check as
/// `sbx lock --check`, no network), or when it pins another base than `[image] base`.
fn current_lockfile(project: &Project, out: crate::output::Output) -> miette::Result<Lockfile> {
    let path = project.lockfile_path();
    let missing = || {
        miette!(
            code = "sbx::build::no_lockfile",
            help = "run `sbx lock` to pin the toolchain, then `sbx build` again",
            "{} does not exist",
            path.display()
        )
    };
    let lock = super::lock::read(&path)?.ok_or_else(missing)?;
    let inputs = LockInputs::from_config(
        &project.mise,
        &project.sbx.image.platforms.value,
        &project.sbx.image.base.value,
        super::lock::upstreams(project),
    );
    let mise_pins = sbx_mise::lockfile::mise_lock::read_pins(&project.root)?;
    match sbx_mise::lock::check_with_mise_pins(&inputs, Some(&lock), &mise_pins) {
        Staleness::Current => {}
        Staleness::Missing => return Err(missing()),
        Staleness::Stale(reasons) => {
            let why = crate::diff_render::render_stale(&reasons, out);
            return Err(miette!(
                code = "sbx::build::stale_lockfile",
                help = "run `sbx lock` to update it (review the change with `sbx diff`), then `sbx build` again",
                "{} is out of date with the configuration:\n{}",
                path.display(),
                why.trim_end()
            ));
        }
    }
    sbx_image::base::check_pinned(&project.sbx.image.base.value, lock.base.as_ref())?;
    Ok(lock)
}

/// `[image]` as build options.
fn options(project: &Project, lock: &Lockfile, only: &[Platform]) -> miette::Result<BuildOptions> {
    let image = &project.sbx.image;
    let mut opts = BuildOptions::new(Cache::from_env()?);
    let configured: Vec<Platform> = image.platforms.value.iter().copied().filter(|p| p.oci_os() == "linux").collect();
    opts.platforms = if only.is_empty() { configured } else { only.to_vec() };
    for p in &opts.platforms {
        if !lock.platforms.contains(p) {
            return Err(miette!(
                help = "add it to [image] platforms and run `sbx lock`, or build another platform",
                "sbx.lock has no {p} artifacts"
            ));
        }
        if p.oci_os() != "linux" {
            return Err(miette!(help = "images are Linux images; use linux/amd64 or linux/arm64", "cannot build {p}"));
        }
    }
    opts.layout = MiseLayout { data_dir: image.data_dir.value.clone() };
    opts.credentials = super::lock::upstreams_and_credentials(project).1;
    opts.user = image.user.value.clone();
    // The image never bakes in a host path (the same lock gives the same image on any
    // machine); without [image] workdir it starts in the user's home, and `sbx start` runs
    // the agent in the project folder mounted at its host path.
    opts.working_dir = image.workdir.value.clone().unwrap_or_default();
    opts.compression = match image.compression.value {
        sbx_toml::Compression::Gzip => Compression::Gzip { level: Compression::DEFAULT_GZIP_LEVEL },
        sbx_toml::Compression::Zstd => Compression::Zstd { level: Compression::DEFAULT_ZSTD_LEVEL },
    };
    opts.project_dir = project.root.clone();
    let lock_bytes = std::fs::read(project.lockfile_path()).into_diagnostic()?;
    opts.lockfile_digest = Some(sbx_image::digest::sha256_digest(&lock_bytes));
    Ok(opts)
}

/// The platform a docker-archive holds: the first `--platform`, else the host's when built,
/// else the only one built.
fn archive_platform(output: &BuildOutput, requested: &[Platform]) -> miette::Result<Platform> {
    let built: Vec<Platform> = output.images.iter().map(|i| i.platform).collect();
    if let Some(p) = requested.first() {
        return Ok(*p);
    }
    if let Some(host) = Platform::host().filter(|h| built.contains(h)) {
        return Ok(host);
    }
    match built.as_slice() {
        [one] => Ok(*one),
        _ => Err(miette!(
            help = "choose one with --platform linux/amd64 (a docker archive holds one platform)",
            "the build has several platforms and none is this machine's"
        )),
    }
}

/// `sbx/<project folder>:latest`, lowercased to a valid repository name.
fn default_tag(project: &Project) -> String {
    let name: String = project
        .root
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' })
        .collect();
    let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("sbx/{}:latest", if name.is_empty() { "project" } else { name })
}

fn print_summary(ctx: &Context, output: &BuildOutput, destinations: &[Destination], push: Option<&str>) {
    for image in &output.images {
        let built = image.layers.iter().filter(|l| !l.cached).count();
        let size: u64 = image.layers.iter().map(|l| l.blob.size).sum();
        eprintln!(
            "{} {}: {} layers ({} built, {} reused), {:.1} MB",
            ctx.out.paint("32", "✓"),
            image.platform,
            image.layers.len(),
            built,
            image.layers.len() - built,
            size as f64 / 1e6
        );
    }
    for dest in destinations {
        match dest {
            Destination::Oci { dir, tag } => eprintln!("wrote OCI layout {}:{tag}", dir.display()),
            Destination::DockerArchive(file) => eprintln!("wrote docker archive {}", file.display()),
        }
    }
    if let Some(r) = push {
        eprintln!("pushed {r}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse() {
        assert_eq!(
            parse_output("oci:/tmp/x").unwrap(),
            Destination::Oci { dir: "/tmp/x".into(), tag: "latest".into() }
        );
        assert_eq!(parse_output("oci:out:v1").unwrap(), Destination::Oci { dir: "out".into(), tag: "v1".into() });
        assert_eq!(parse_output("docker-archive:a.tar").unwrap(), Destination::DockerArchive("a.tar".into()));
        assert!(parse_output("tar:x").is_err());
        assert!(parse_output("docker-archive:").is_err());
    }

    #[test]
    fn one_default_data_dir() {
        assert_eq!(sbx_toml::DEFAULT_DATA_DIR, sbx_image::install::DEFAULT_DATA_DIR);
    }
}
