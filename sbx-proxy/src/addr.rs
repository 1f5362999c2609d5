//! Address classification: which resolved addresses are never reachable without an explicit
//! CIDR rule (loopback, private networks, link-local and cloud metadata, CGNAT, multicast, …).
//!
//! IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//! `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are classified by the embedded address, so
//! `::ffff:127.0.0.1` is loopback just like `127.0.0.1`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A class of address that the proxy refuses unless an `allowed_cidrs` rule covers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialRange {
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`, `fc00::/7` (unique local).
    Private,
    /// `169.254.0.0/16` (including cloud metadata `169.254.169.254`), `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT, `100.64.0.0/10`.
    SharedCgnat,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `255.255.255.255`, `240.0.0.0/4` and other addresses that are not on the internet
    /// (documentation, benchmarking, IETF protocol assignments, site-local IPv6).
    Reserved,
}

impl SpecialRange {
    /// A short human description.
    pub fn describe(self) -> &'static str {
        match self {
            SpecialRange::Loopback => "loopback",
            SpecialRange::Private => "private network",
            SpecialRange::LinkLocal => "link-local (cloud metadata lives here)",
            SpecialRange::SharedCgnat => "carrier-grade NAT (100.64.0.0/10)",
            SpecialRange::Multicast => "multicast",
            SpecialRange::Unspecified => "unspecified",
            SpecialRange::Reserved => "reserved, not on the internet",
        }
    }
}

impl fmt::Display for SpecialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Returns the special class of `ip`, or `None` for an ordinary public address.
pub fn classify(ip: IpAddr) -> Option<SpecialRange> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<SpecialRange> {
    let o = ip.octets();
    let special = match o {
        [0, ..] => SpecialRange::Unspecified,
        [127, ..] => SpecialRange::Loopback,
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => SpecialRange::Private,
        [169, 254, ..] => SpecialRange::LinkLocal,
        [100, 64..=127, ..] => SpecialRange::SharedCgnat,
        [224..=239, ..] => SpecialRange::Multicast,
        [240..=255, ..] => SpecialRange::Reserved,
        // IETF protocol assignments, documentation, benchmarking, 6to4 relay anycast.
        [192, 0, 0, _] | [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] | [198, 18..=19, ..] => {
            SpecialRange::Reserved
        }
        [192, 88, 99, _] => SpecialRange::Reserved,
        _ => return None,
    };
    Some(special)
}

fn classify_v6(ip: Ipv6Addr) -> Option<SpecialRange> {
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let seg = ip.segments();
    let special = if ip.is_unspecified() {
        SpecialRange::Unspecified
    } else if ip.is_loopback() {
        SpecialRange::Loopback
    } else if seg[0] & 0xfe00 == 0xfc00 {
        SpecialRange::Private
    } else if seg[0] & 0xffc0 == 0xfe80 {
        SpecialRange::LinkLocal
    } else if seg[0] & 0xffc0 == 0xfec0 {
        // Deprecated site-local.
        SpecialRange::Reserved
    } else if seg[0] & 0xff00 == 0xff00 {
        SpecialRange::Multicast
    } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
        SpecialRange::Reserved
    } else if seg[0] & 0xe000 != 0x2000 {
        // Outside global unicast 2000::/3: nothing public lives there.
        SpecialRange::Reserved
    } else {
        return None;
    };
    Some(special)
}

/// The IPv4 address embedded in an IPv6 address by a well-known translation scheme.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    // IPv4-mapped ::ffff:a.b.c.d
    if seg[..5] == [0, 0, 0, 0, 0] && seg[5] == 0xffff {
        return Some(tail);
    }
    // IPv4-compatible ::a.b.c.d (deprecated, but some stacks still route it). `::` and `::1`
    // are handled as IPv6 by the caller's later checks, so skip them here.
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        return Some(tail);
    }
    // NAT64 well-known prefix 64:ff9b::/96 and local-use 64:ff9b:1::/48.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1) {
        return Some(tail);
    }
    // 6to4 2002:AABB:CCDD::/48 embeds AABB:CCDD.
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Option<SpecialRange> {
        classify(s.parse().unwrap())
    }

    #[test]
    fn v4_ranges() {
        assert_eq!(c("127.0.0.1"), Some(SpecialRange::Loopback));
        assert_eq!(c("127.255.0.9"), Some(SpecialRange::Loopback));
        assert_eq!(c("10.1.2.3"), Some(SpecialRange::Private));
        assert_eq!(c("172.16.0.1"), Some(SpecialRange::Private));
        assert_eq!(c("172.32.0.1"), None);
        assert_eq!(c("192.168.1.1"), Some(SpecialRange::Private));
        assert_eq!(c("169.254.169.254"), Some(SpecialRange::LinkLocal));
        assert_eq!(c("100.64.0.1"), Some(SpecialRange::SharedCgnat));
        assert_eq!(c("100.128.0.1"), None);
        assert_eq!(c("224.0.0.1"), Some(SpecialRange::Multicast));
        assert_eq!(c("0.0.0.0"), Some(SpecialRange::Unspecified));
        assert_eq!(c("255.255.255.255"), Some(SpecialRange::Reserved));
        assert_eq!(c("93.184.216.34"), None);
        assert_eq!(c("1.1.1.1"), None);
    }

    #[test]
    fn v6_ranges_and_embedded_v4() {
        assert_eq!(c("::1"), Some(SpecialRange::Loopback));
        assert_eq!(c("::"), Some(SpecialRange::Unspecified));
        assert_eq!(c("::ffff:127.0.0.1"), Some(SpecialRange::Loopback));
        assert_eq!(c("::ffff:169.254.169.254"), Some(SpecialRange::LinkLocal));
        assert_eq!(c("::ffff:10.0.0.1"), Some(SpecialRange::Private));
        assert_eq!(c("::127.0.0.1"), Some(SpecialRange::Loopback));
        assert_eq!(c("64:ff9b::a9fe:a9fe"), Some(SpecialRange::LinkLocal));
        assert_eq!(c("2002:7f00:0001::"), Some(SpecialRange::Loopback));
        assert_eq!(c("fd00::1"), Some(SpecialRange::Private));
        assert_eq!(c("fe80::1"), Some(SpecialRange::LinkLocal));
        assert_eq!(c("ff02::1"), Some(SpecialRange::Multicast));
        assert_eq!(c("2001:db8::1"), Some(SpecialRange::Reserved));
        assert_eq!(c("2606:4700::1111"), None);
        assert_eq!(c("::ffff:1.1.1.1"), None);
    }
}
