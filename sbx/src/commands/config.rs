//! `sbx config`: the merged configuration with the origin of every value.

use std::fmt::Display;
use std::path::Path;

use serde_json::{Value, json};

use sbx_mise::Origin;
use sbx_mise::config::{EnvDirective, Scope};

use crate::cli::ConfigArgs;
use crate::output::Output;
use crate::project::Project;
use crate::sbx_toml::{SecretSource, Setting};

/// Runs `sbx config`.
pub fn run(project: &Project, args: &ConfigArgs, out: Output) -> miette::Result<()> {
    if args.json {
        let text = serde_json::to_string_pretty(&to_json(project)).map_err(|e| miette::miette!("{e}"))?;
        println!("{text}");
    } else {
        print!("{}", render_text(project, out));
    }
    Ok(())
}

/// `path:line`, with the path relative to the project when it is inside it.
fn where_(project: &Project, origin: &Origin) -> String {
    format!("{}:{}", relative(&project.root, origin.path()), origin.line())
}

/// `path` relative to the project: `mise.toml`, or `../mise.toml` for a parent directory's file.
fn relative(root: &Path, path: &Path) -> String {
    for (up, ancestor) in root.ancestors().enumerate().take(4) {
        if let Ok(rest) = path.strip_prefix(ancestor) {
            return format!("{}{}", "../".repeat(up), rest.display());
        }
    }
    path.display().to_string()
}

fn setting_origin<T>(project: &Project, s: &Setting<T>) -> String {
    s.origin.as_ref().map(|o| where_(project, o)).unwrap_or_else(|| "default".into())
}

/// The human rendering: aligned columns, origins on the right.
pub fn render_text(project: &Project, out: Output) -> String {
    let mut s = String::new();
    let head = |t: &str| out.paint("1", t);
    s += &format!("{}  {}\n\n", head("Project"), project.root.display());

    s += &format!("{} {}\n", head("Config files"), out.paint("2", "(lowest precedence first)"));
    for f in &project.mise.files {
        let scope = match f.scope {
            Scope::System => " (system)",
            Scope::Global => " (global)",
            Scope::Local => "",
        };
        s += &format!("  {}{scope}\n", relative(&project.root, &f.path));
    }
    if let Some(p) = &project.sbx.path {
        s += &format!("  {} (sandbox settings; its [tools] win)\n", relative(&project.root, p));
    }
    if project.mise.files.is_empty() && project.sbx.path.is_none() {
        s += "  (none found — run `sbx init`, or add a mise.toml)\n";
    }

    s += &format!("\n{}\n", head("Tools"));
    let rows: Vec<[String; 4]> = project
        .mise
        .tools
        .iter()
        .map(|(name, tool)| {
            let versions: Vec<String> = tool.entry.versions.iter().map(|v| v.request.to_string()).collect();
            let backend =
                tool.entry.id.default_backend().map(|b| b.to_string()).unwrap_or_else(|| "(unknown tool)".into());
            let mut origin = where_(project, &tool.entry.origin);
            if !tool.shadowed.is_empty() {
                let over: Vec<String> = tool.shadowed.iter().map(|o| where_(project, o)).collect();
                origin += &format!("  (overrides {})", over.join(", "));
            }
            [name.clone(), versions.join(", "), backend, origin]
        })
        .collect();
    if rows.is_empty() {
        s += "  (no tools configured)\n";
    }
    s += &table(&rows, out);

    if !project.mise.env.is_empty() {
        s += &format!("\n{}\n", head("Env"));
        let rows: Vec<[String; 2]> = project
            .mise
            .env
            .iter()
            .map(|d| match d {
                EnvDirective::Set { key, value } => {
                    [format!("{key} = {}", value.value), where_(project, &value.origin)]
                }
                EnvDirective::Unset { key, origin } => [format!("{key} (unset)"), where_(project, origin)],
                EnvDirective::Path(p) => [format!("PATH += {}", p.value), where_(project, &p.origin)],
                EnvDirective::File(p) => [format!("dotenv {}", p.value), where_(project, &p.origin)],
                EnvDirective::Source(p) => [format!("source {}", p.value), where_(project, &p.origin)],
                EnvDirective::Other { name, origin } => [format!("_.{name}"), where_(project, origin)],
            })
            .collect();
        s += &table(&rows, out);
    }

    let sb = &project.sbx.sandbox;
    let list = |v: &[sbx_mise::Spanned<String>]| -> String {
        if v.is_empty() { "[]".into() } else { v.iter().map(|x| x.value.clone()).collect::<Vec<_>>().join(", ") }
    };
    let list_origin = |v: &[sbx_mise::Spanned<String>]| {
        v.first().map(|x| where_(project, &x.origin)).unwrap_or_else(|| "default".into())
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    let sandbox_rows = vec![
        row(
            "agent",
            sb.agent.value.map(|a| a.to_string()).unwrap_or_else(|| "(none)".into()),
            setting_origin(project, &sb.agent),
        ),
        row("network_policy", sb.network_policy.value, setting_origin(project, &sb.network_policy)),
        row("runtime", sb.runtime.value, setting_origin(project, &sb.runtime)),
        row("template", opt(&sb.template.value), setting_origin(project, &sb.template)),
        row("branch", opt(&sb.branch.value), setting_origin(project, &sb.branch)),
        row("allowed_domains", list(&sb.allowed_domains), list_origin(&sb.allowed_domains)),
        row("blocked_domains", list(&sb.blocked_domains), list_origin(&sb.blocked_domains)),
        row("allowed_cidrs", list(&sb.allowed_cidrs), list_origin(&sb.allowed_cidrs)),
        row("blocked_cidrs", list(&sb.blocked_cidrs), list_origin(&sb.blocked_cidrs)),
        row("required_secrets", list(&sb.required_secrets), list_origin(&sb.required_secrets)),
        row(
            "extra_workspaces",
            if sb.extra_workspaces.is_empty() {
                "[]".into()
            } else {
                sb.extra_workspaces
                    .iter()
                    .map(|w| format!("{}{}", w.path.display(), if w.writable { " (rw)" } else { " (ro)" }))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            sb.extra_workspaces.first().map(|w| where_(project, &w.origin)).unwrap_or_else(|| "default".into()),
        ),
    ];
    s += &format!("\n{}\n", head("Sandbox"));
    s += &table(&sandbox_rows, out);

    let im = &project.sbx.image;
    let platforms: Vec<String> = im.platforms.value.iter().map(|p| p.to_string()).collect();
    let image_rows = vec![
        row("base", &im.base.value, setting_origin(project, &im.base)),
        row("platforms", platforms.join(", "), setting_origin(project, &im.platforms)),
        row("data_dir", &im.data_dir.value, setting_origin(project, &im.data_dir)),
        row("user", &im.user.value, setting_origin(project, &im.user)),
        row("workdir", opt(&im.workdir.value), setting_origin(project, &im.workdir)),
        row("compression", im.compression.value, setting_origin(project, &im.compression)),
        row("mise", im.mise.value, setting_origin(project, &im.mise)),
    ];
    s += &format!("\n{}\n", head("Image"));
    s += &table(&image_rows, out);

    if !project.sbx.secrets.is_empty() {
        s += &format!("\n{}\n", head("Secrets"));
        let rows: Vec<[String; 3]> = project
            .sbx
            .secrets
            .iter()
            .map(|(service, src)| {
                let what = match &src.value {
                    SecretSource::Env(v) => format!("env {v}"),
                    SecretSource::Command(c) => format!("command `{c}`"),
                };
                [service.clone(), what, where_(project, &src.origin)]
            })
            .collect();
        s += &table(&rows, out);
    }
    if !project.sbx.mirrors.is_empty() {
        s += &format!("\n{}\n", head("Mirrors"));
        let rows: Vec<[String; 3]> =
            project.sbx.mirrors.iter().map(|(k, v)| [k.clone(), v.value.clone(), where_(project, &v.origin)]).collect();
        s += &table(&rows, out);
    }
    s
}

fn row(key: &str, value: impl Display, origin: String) -> [String; 3] {
    [key.to_string(), value.to_string(), origin]
}

/// Left-aligned columns; the last column is dimmed (it holds origins).
fn table<const N: usize>(rows: &[[String; N]], out: Output) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for r in rows {
        s += "  ";
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                s += &out.paint("2", c);
            } else {
                s += &format!("{c:<w$}  ", w = widths[i]);
            }
        }
        s += "\n";
    }
    s
}

fn origin_json(project: &Project, origin: &Origin) -> Value {
    json!(where_(project, origin))
}

fn setting_json<T: serde::Serialize>(project: &Project, s: &Setting<T>) -> Value {
    json!({ "value": s.value, "origin": s.origin.as_ref().map(|o| origin_json(project, o)) })
}

fn list_json(project: &Project, v: &[sbx_mise::Spanned<String>]) -> Value {
    Value::Array(v.iter().map(|x| json!({ "value": x.value, "origin": origin_json(project, &x.origin) })).collect())
}

/// The machine rendering.
pub fn to_json(project: &Project) -> Value {
    let files: Vec<Value> = project
        .mise
        .files
        .iter()
        .map(|f| json!({ "path": f.path, "scope": format!("{:?}", f.scope).to_lowercase() }))
        .collect();
    let tools: Vec<Value> = project
        .mise
        .tools
        .iter()
        .map(|(name, t)| {
            let versions: Vec<Value> = t
                .entry
                .versions
                .iter()
                .map(|v| {
                    json!({
                        "request": v.request.to_string(),
                        "origin": origin_json(project, &v.origin),
                        "os": v.options.os.as_ref().map(|os| os.iter().map(|o| o.value.clone()).collect::<Vec<_>>()),
                        "install_env": v.options.install_env.iter().map(|(k, x)| (k.clone(), json!(x.value))).collect::<serde_json::Map<_, _>>(),
                        "postinstall": v.options.postinstall.as_ref().map(|p| p.value.clone()),
                        "options": v.options.backend.iter().map(|(k, x)| (k.clone(), json!(x.value))).collect::<serde_json::Map<_, _>>(),
                    })
                })
                .collect();
            json!({
                "name": name,
                "key": t.entry.id.key,
                "backend": t.entry.id.default_backend().map(|b| b.to_string()),
                "backends": t.entry.id.backends.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
                "versions": versions,
                "origin": origin_json(project, &t.entry.origin),
                "overrides": t.shadowed.iter().map(|o| origin_json(project, o)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let env: Vec<Value> = project
        .mise
        .env
        .iter()
        .map(|d| match d {
            EnvDirective::Set { key, value } => {
                json!({"set": key, "value": value.value, "origin": origin_json(project, &value.origin)})
            }
            EnvDirective::Unset { key, origin } => json!({"unset": key, "origin": origin_json(project, origin)}),
            EnvDirective::Path(p) => json!({"path": p.value, "origin": origin_json(project, &p.origin)}),
            EnvDirective::File(p) => json!({"file": p.value, "origin": origin_json(project, &p.origin)}),
            EnvDirective::Source(p) => json!({"source": p.value, "origin": origin_json(project, &p.origin)}),
            EnvDirective::Other { name, origin } => json!({"directive": name, "origin": origin_json(project, origin)}),
        })
        .collect();
    let sb = &project.sbx.sandbox;
    let im = &project.sbx.image;
    json!({
        "project": project.root,
        "files": files,
        "sbx_toml": project.sbx.path,
        "tools": tools,
        "env": env,
        "settings": project.mise.settings.iter().map(|(k, v)| (k.clone(), json!({"value": v.value, "origin": origin_json(project, &v.origin)}))).collect::<serde_json::Map<_, _>>(),
        "sandbox": {
            "agent": setting_json(project, &sb.agent),
            "template": setting_json(project, &sb.template),
            "network_policy": setting_json(project, &sb.network_policy),
            "branch": setting_json(project, &sb.branch),
            "runtime": setting_json(project, &sb.runtime),
            "docker_sbx": setting_json(project, &sb.docker_sbx),
            "required_secrets": list_json(project, &sb.required_secrets),
            "allowed_domains": list_json(project, &sb.allowed_domains),
            "blocked_domains": list_json(project, &sb.blocked_domains),
            "allowed_cidrs": list_json(project, &sb.allowed_cidrs),
            "blocked_cidrs": list_json(project, &sb.blocked_cidrs),
            "extra_workspaces": sb.extra_workspaces.iter().map(|w| json!({"path": w.path, "writable": w.writable, "origin": origin_json(project, &w.origin)})).collect::<Vec<_>>(),
        },
        "image": {
            "base": setting_json(project, &im.base),
            "platforms": setting_json(project, &im.platforms),
            "data_dir": setting_json(project, &im.data_dir),
            "user": setting_json(project, &im.user),
            "workdir": setting_json(project, &im.workdir),
            "compression": setting_json(project, &im.compression),
            "mise": setting_json(project, &im.mise),
        },
        "secrets": project.sbx.secrets.iter().map(|(k, v)| (k.clone(), json!({"source": v.value, "origin": origin_json(project, &v.origin)}))).collect::<serde_json::Map<_, _>>(),
        "mirrors": project.sbx.mirrors.iter().map(|(k, v)| (k.clone(), json!({"url": v.value, "origin": origin_json(project, &v.origin)}))).collect::<serde_json::Map<_, _>>(),
    })
}
