//! Where a client wants to go: parsing and normalising `host:port` authorities.
//!
//! Every host the proxy sees goes through [`Host::parse`] before any policy looks at it, so
//! rules only ever compare canonical forms (lowercase ASCII, no trailing dot, IP literals as
//! addresses).

use std::fmt;
use std::net::IpAddr;

/// A normalised destination host: a DNS name or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: lowercase ASCII, no trailing dot, every label 1–63 characters.
    Name(String),
    /// An IP address literal (IPv6 literals are written without brackets here).
    Ip(IpAddr),
}

/// Why a host or authority could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The host part is empty.
    #[error("empty host")]
    EmptyHost,
    /// The host is longer than DNS allows.
    #[error("host name longer than 253 characters")]
    TooLong,
    /// A label is empty or longer than 63 characters, or has a character DNS names cannot have.
    #[error("invalid host name `{0}`")]
    BadName(String),
    /// The port is missing where one is required.
    #[error("missing port in `{0}`")]
    MissingPort(String),
    /// The port is not a number in 1..=65535.
    #[error("invalid port in `{0}`")]
    BadPort(String),
}

impl Host {
    /// Parses and normalises a host (no port). IPv6 literals may be bracketed.
    pub fn parse(raw: &str) -> Result<Host, TargetError> {
        let unbracketed = raw.strip_prefix('[').and_then(|s| s.strip_suffix(']'));
        if let Some(inner) = unbracketed {
            return inner
                .parse::<std::net::Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| TargetError::BadName(truncate(raw)));
        }
        if let Ok(ip) = raw.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let name = raw.strip_suffix('.').unwrap_or(raw);
        if name.is_empty() {
            return Err(TargetError::EmptyHost);
        }
        if name.len() > 253 {
            return Err(TargetError::TooLong);
        }
        let lower = name.to_ascii_lowercase();
        for label in lower.split('.') {
            let ok_chars = label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if label.is_empty() || label.len() > 63 || !ok_chars || label.starts_with('-') || label.ends_with('-') {
                return Err(TargetError::BadName(truncate(raw)));
            }
        }
        Ok(Host::Name(lower))
    }

    /// The IP address, for IP-literal hosts.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
        }
    }
}

/// A destination: normalised host plus port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The host.
    pub host: Host,
    /// The TCP port.
    pub port: u16,
}

impl Target {
    /// Parses `host:port` (as in `CONNECT host:port`); the port is required.
    pub fn parse_authority(raw: &str) -> Result<Target, TargetError> {
        let (host, port) = split_host_port(raw)?;
        let port = port.ok_or_else(|| TargetError::MissingPort(truncate(raw)))?;
        Ok(Target { host: Host::parse(host)?, port })
    }

    /// Parses `host[:port]`, using `default_port` when the port is absent.
    pub fn parse_with_default(raw: &str, default_port: u16) -> Result<Target, TargetError> {
        let (host, port) = split_host_port(raw)?;
        Ok(Target { host: Host::parse(host)?, port: port.unwrap_or(default_port) })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Splits `host[:port]`, understanding bracketed IPv6 (`[::1]:443`).
pub(crate) fn split_host_port(raw: &str) -> Result<(&str, Option<u16>), TargetError> {
    if raw.is_empty() {
        return Err(TargetError::EmptyHost);
    }
    let (host, port) = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => {
                let rest = &raw[end + 1..];
                match rest.strip_prefix(':') {
                    Some(port) => (&raw[..=end], Some(port)),
                    None if rest.is_empty() => (raw, None),
                    None => return Err(TargetError::BadName(truncate(raw))),
                }
            }
            None => return Err(TargetError::BadName(truncate(raw))),
        }
    } else if raw.matches(':').count() > 1 {
        // A bare IPv6 literal without brackets has no port.
        (raw, None)
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (raw, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => {
            let ok = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
            match p.parse::<u16>() {
                Ok(n) if ok && n != 0 => Some(n),
                _ => return Err(TargetError::BadPort(truncate(raw))),
            }
        }
    };
    Ok((host, port))
}

/// Shortens untrusted input before it goes into an error message or a log line.
pub(crate) fn truncate(raw: &str) -> String {
    let clean: String = raw.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if clean.chars().count() > 100 { format!("{}…", clean.chars().take(100).collect::<String>()) } else { clean }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised() {
        assert_eq!(Host::parse("Example.COM.").unwrap(), Host::Name("example.com".into()));
        assert!(Host::parse("exa mple.com").is_err());
        assert!(Host::parse("a..b").is_err());
        assert!(Host::parse("-a.com").is_err());
        assert!(Host::parse("").is_err());
    }

    #[test]
    fn authorities() {
        let t = Target::parse_authority("[::1]:443").unwrap();
        assert_eq!(t.host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(t.to_string(), "[::1]:443");
        assert_eq!(Target::parse_authority("a.b:8080").unwrap().port, 8080);
        assert!(Target::parse_authority("a.b").is_err());
        assert!(Target::parse_authority("a.b:0").is_err());
        assert!(Target::parse_authority("a.b:99999").is_err());
        assert!(Target::parse_authority("a.b:+80").is_err());
        assert_eq!(Target::parse_with_default("a.b", 80).unwrap().port, 80);
        assert_eq!(Target::parse_with_default("127.0.0.1", 80).unwrap().host.ip(), Some("127.0.0.1".parse().unwrap()));
    }
}
