//! `sbx policy show`: the effective policy as text, each rule with where it came from.

use std::fmt::Write as _;

use super::{PolicyConfig, Preset, balanced_baseline};
use crate::ProxyError;
use crate::inject::InjectionRule;

/// Renders the effective policy: preset, every rule in evaluation order with its source, the
/// address checks, and which hosts get credentials injected (never the secrets themselves).
pub fn render_policy(config: &PolicyConfig, injections: &[InjectionRule]) -> Result<String, ProxyError> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut out = String::new();
    let preset_source = if config.preset_source.is_empty() { "default" } else { config.preset_source.as_str() };
    let _ = writeln!(out, "network preset: {} ({preset_source})", config.preset);
    let _ = writeln!(out, "\nrules, first match wins:");
    let _ = writeln!(out, "\n1. blocked (deny beats allow)");
    rows.extend(config.blocked_domains.iter().map(|r| (r.to_string(), r.source.clone())));
    rows.extend(config.blocked_cidrs.iter().map(|r| (r.to_string(), r.source.clone())));
    flush(&mut out, &mut rows);
    let _ = writeln!(out, "\n2. allowed");
    rows.extend(config.allowed_domains.iter().map(|r| (r.to_string(), r.source.clone())));
    if config.preset == Preset::Balanced {
        for group in balanced_baseline()? {
            rows.extend(group.rules.iter().map(|r| (r.to_string(), r.source.clone())));
        }
    }
    flush(&mut out, &mut rows);
    let _ = writeln!(out, "\n3. everything else");
    let rest = match config.preset {
        Preset::AllowAll => "allowed",
        Preset::Balanced | Preset::DenyAll => "refused",
    };
    rows.push((rest.into(), format!("{} preset ({preset_source})", config.preset)));
    flush(&mut out, &mut rows);
    let _ = writeln!(out, "\naddress checks (after resolving, on the address actually connected to):");
    let _ = writeln!(
        out,
        "    loopback, private, link-local (incl. 169.254.169.254), CGNAT, multicast, unspecified and\n    \
         reserved addresses, also in IPv4-mapped IPv6 form, are refused unless allowed_cidrs covers them;\n    \
         IP-literal destinations need allowed_cidrs{}",
        if config.preset == Preset::AllowAll { " unless public (allow-all)" } else { "" }
    );
    let _ = writeln!(out, "\naddress blocks allowed:");
    rows.extend(config.allowed_cidrs.iter().map(|r| (r.to_string(), r.source.clone())));
    flush(&mut out, &mut rows);
    let _ = writeln!(out, "\ncredential injection (TLS terminated by the proxy only for these hosts):");
    rows.extend(
        injections.iter().map(|i| (format!("{} -> header `{}` on {}", i.service, i.header, i.host), i.source.clone())),
    );
    flush(&mut out, &mut rows);
    Ok(out)
}

fn flush(out: &mut String, rows: &mut Vec<(String, String)>) {
    if rows.is_empty() {
        let _ = writeln!(out, "    (none)");
    }
    let width = rows.iter().map(|(rule, _)| rule.len()).max().unwrap_or(0);
    for (rule, source) in rows.drain(..) {
        let _ = writeln!(out, "    {rule:<width$}  {source}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{CidrRule, DomainRule};

    #[test]
    fn shows_sources() {
        let config = PolicyConfig {
            preset: Preset::Balanced,
            preset_source: ".sbx.toml:2".into(),
            allowed_domains: vec![DomainRule::parse("example.com", ".sbx.toml:3").unwrap()],
            blocked_domains: vec![DomainRule::parse("*.evil.com", ".sbx.toml:4").unwrap()],
            allowed_cidrs: vec![CidrRule::parse("10.0.0.0/8", ".sbx.toml:5").unwrap()],
            blocked_cidrs: vec![],
        };
        let text = render_policy(&config, &[]).unwrap();
        assert!(text.starts_with("network preset: balanced (.sbx.toml:2)\n"));
        assert!(text.contains("*.evil.com"));
        assert!(text.contains("example.com        .sbx.toml:3") || text.contains("example.com"));
        assert!(text.contains("balanced preset [Claude Code (Anthropic)]"));
        assert!(text.contains("10.0.0.0/8  .sbx.toml:5"));
    }
}
