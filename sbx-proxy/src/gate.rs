//! Admission: the policy decision for one destination, the DNS resolution, the address check,
//! and the connection to exactly a checked address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::inject::Injection;
use crate::policy::Matched;
use crate::refusal::Refusal;
use crate::server::Shared;
use crate::target::{Host, Target};

/// A destination the policy allows, with the addresses that passed the address check.
#[derive(Clone)]
pub(crate) struct Admitted {
    /// Checked addresses, in resolver order. The proxy connects only to these.
    pub addrs: Vec<SocketAddr>,
    /// The deciding rule(s), for the audit log.
    pub rule: String,
    /// Non-TLS traffic is allowed on TLS ports.
    pub raw_tcp: bool,
    /// The credential-injection rule for this destination, if any.
    pub inject: Option<Injection>,
}

/// Why a destination is not reachable.
pub(crate) enum Denied {
    /// The policy refuses it: answer 403.
    Refused(Box<Refusal>),
    /// It is allowed but could not be resolved: answer 502.
    Failed(String),
}

fn describe(name_rule: Option<&Matched>, addr_rule: Option<&Matched>) -> String {
    match (name_rule, addr_rule) {
        (Some(n), Some(a)) if n != a => format!("{n}; {a}"),
        (Some(n), _) => n.to_string(),
        (None, Some(a)) => a.to_string(),
        (None, None) => String::new(),
    }
}

/// Decides whether `target` may be reached and which addresses may be used.
pub(crate) async fn admit(shared: &Shared, target: &Target) -> Result<Admitted, Denied> {
    let policy = &shared.policy;
    match &target.host {
        Host::Ip(ip) => {
            let rule = policy.check_address(target, *ip).map_err(Denied::Refused)?;
            Ok(Admitted {
                addrs: vec![SocketAddr::new(*ip, target.port)],
                rule: describe(None, rule.as_ref()),
                raw_tcp: false,
                inject: None,
            })
        }
        Host::Name(name) => {
            let allowed = policy.check_name(name, target.port, target).map_err(Denied::Refused)?;
            let ips = resolve(shared, name, target.port).await?;
            let mut addrs = Vec::new();
            let mut addr_rule = None;
            let mut first_refusal = None;
            for ip in ips {
                match policy.check_address(target, ip) {
                    Ok(rule) => {
                        if addrs.is_empty() {
                            addr_rule = rule;
                        }
                        addrs.push(SocketAddr::new(ip, target.port));
                    }
                    Err(refusal) => {
                        first_refusal.get_or_insert(refusal);
                    }
                }
            }
            if addrs.is_empty() {
                return Err(match first_refusal {
                    Some(refusal) => Denied::Refused(refusal),
                    None => Denied::Failed(format!("{name} has no addresses")),
                });
            }
            let inject = shared.injections.iter().find(|i| &i.target == target).cloned();
            Ok(Admitted {
                addrs,
                rule: describe(Some(&allowed.by), addr_rule.as_ref()),
                raw_tcp: allowed.raw_tcp,
                inject,
            })
        }
    }
}

async fn resolve(shared: &Shared, name: &str, port: u16) -> Result<Vec<IpAddr>, Denied> {
    let lookup = shared.resolver.resolve(name, port);
    match tokio::time::timeout(shared.limits.connect_timeout, lookup).await {
        Ok(Ok(ips)) => Ok(ips),
        Ok(Err(e)) => Err(Denied::Failed(format!("cannot resolve {name}: {e}"))),
        Err(_) => Err(Denied::Failed(format!("resolving {name} timed out"))),
    }
}

/// Connects to the first checked address that answers.
pub(crate) async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<(TcpStream, SocketAddr), String> {
    let mut last = String::from("no address to connect to");
    for &addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Ok(Err(e)) => last = format!("cannot connect to {addr}: {e}"),
            Err(_) => last = format!("connecting to {addr} timed out"),
        }
    }
    Err(last)
}
