//! A strict, allocation-light parser for the first flight of a TLS connection: is it a
//! ClientHello, and which server name (SNI) does it ask for?
//!
//! It runs on bytes an untrusted client sent; every length is bounds-checked and anything
//! ambiguous (two SNI extensions, two names in one extension) counts as malformed, because the
//! proxy must see the same name the upstream server will.

use crate::target::Host;

/// The largest ClientHello the proxy waits for (real ones are under 2 KiB; post-quantum key
/// shares push them towards 2 KiB, so this leaves a wide margin).
pub const MAX_HELLO_BYTES: usize = 32 * 1024;

/// What the first bytes of a connection are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstFlight {
    /// Not enough bytes yet to tell.
    Incomplete,
    /// Not TLS.
    NotTls,
    /// A complete TLS ClientHello with this server name, if any (lowercase, no trailing dot).
    ClientHello {
        /// The SNI host name.
        sni: Option<String>,
    },
    /// Looks like TLS but is broken or ambiguous.
    Malformed(&'static str),
}

/// Classifies the first bytes a client sent on a tunnel.
pub fn parse_first_flight(buf: &[u8]) -> FirstFlight {
    match buf {
        [] => return FirstFlight::Incomplete,
        [0x16] => return FirstFlight::Incomplete,
        [0x16, 0x03, ..] => {}
        _ => return FirstFlight::NotTls,
    }
    let mut handshake: Vec<u8> = Vec::new();
    let mut rest = buf;
    loop {
        if rest.len() < 5 {
            return FirstFlight::Incomplete;
        }
        if rest[0] != 0x16 || rest[1] != 0x03 {
            return FirstFlight::Malformed("a non-handshake record interrupts the ClientHello");
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 || len > 16384 + 2048 {
            return FirstFlight::Malformed("bad TLS record length");
        }
        if rest.len() < 5 + len {
            return if buf.len() > MAX_HELLO_BYTES {
                FirstFlight::Malformed("ClientHello too large")
            } else {
                FirstFlight::Incomplete
            };
        }
        handshake.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
        if handshake.len() >= 4 {
            if handshake[0] != 0x01 {
                return FirstFlight::Malformed("first handshake message is not a ClientHello");
            }
            let msg_len = usize::from(handshake[1]) << 16 | usize::from(handshake[2]) << 8 | usize::from(handshake[3]);
            if msg_len > MAX_HELLO_BYTES {
                return FirstFlight::Malformed("ClientHello too large");
            }
            if handshake.len() >= 4 + msg_len {
                return match client_hello_sni(&handshake[4..4 + msg_len]) {
                    Ok(sni) => FirstFlight::ClientHello { sni },
                    Err(why) => FirstFlight::Malformed(why),
                };
            }
        }
    }
}

/// A bounds-checked reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated ClientHello");
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Result<&'a [u8], &'static str> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }
    fn vec16(&mut self) -> Result<&'a [u8], &'static str> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

fn client_hello_sni(body: &[u8]) -> Result<Option<String>, &'static str> {
    let mut r = Reader(body);
    r.take(2)?; // legacy_version
    r.take(32)?; // random
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    if r.0.is_empty() {
        return Ok(None); // no extensions at all
    }
    let mut exts = Reader(r.vec16()?);
    if !r.0.is_empty() {
        return Err("trailing bytes after the ClientHello extensions");
    }
    let mut seen: Vec<u16> = Vec::new();
    let mut sni = None;
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if seen.contains(&kind) {
            return Err("duplicate ClientHello extension");
        }
        seen.push(kind);
        if kind == 0 {
            sni = Some(parse_sni(data)?);
        }
    }
    Ok(sni)
}

fn parse_sni(data: &[u8]) -> Result<String, &'static str> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec16()?);
    if !r.0.is_empty() {
        return Err("trailing bytes in the server_name extension");
    }
    let mut name = None;
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let value = list.vec16()?;
        if kind == 0 {
            if name.is_some() {
                return Err("more than one server name");
            }
            name = Some(value);
        }
    }
    let value = name.ok_or("server_name extension without a host name")?;
    let text = std::str::from_utf8(value).map_err(|_| "server name is not text")?;
    match Host::parse(text) {
        Ok(Host::Name(name)) => Ok(name),
        Ok(Host::Ip(_)) | Err(_) => Err("server name is not a valid host name"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a minimal ClientHello with the given SNI entries, split into records of `chunk`.
    pub fn hello(names: &[&str], chunk: usize) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(0);
        body.extend([0, 2, 0x13, 0x01]);
        body.extend([1, 0]);
        let mut exts = Vec::new();
        if !names.is_empty() {
            let mut list = Vec::new();
            for n in names {
                list.push(0);
                list.extend((n.len() as u16).to_be_bytes());
                list.extend(n.as_bytes());
            }
            let mut data = (list.len() as u16).to_be_bytes().to_vec();
            data.extend(list);
            exts.extend([0, 0]);
            exts.extend((data.len() as u16).to_be_bytes());
            exts.extend(data);
        }
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut out = Vec::new();
        for part in hs.chunks(chunk) {
            out.extend([0x16, 0x03, 0x01]);
            out.extend((part.len() as u16).to_be_bytes());
            out.extend(part);
        }
        out
    }

    #[test]
    fn finds_sni_across_records() {
        let h = hello(&["Example.com"], 1000);
        assert_eq!(parse_first_flight(&h), FirstFlight::ClientHello { sni: Some("example.com".into()) });
        let h = hello(&["example.com"], 10);
        assert_eq!(parse_first_flight(&h), FirstFlight::ClientHello { sni: Some("example.com".into()) });
        for cut in 0..h.len() {
            assert_eq!(parse_first_flight(&h[..cut]), FirstFlight::Incomplete, "cut {cut}");
        }
        assert_eq!(parse_first_flight(&hello(&[], 1000)), FirstFlight::ClientHello { sni: None });
    }

    #[test]
    fn rejects_ambiguity_and_non_tls() {
        assert!(matches!(parse_first_flight(&hello(&["a.com", "b.com"], 1000)), FirstFlight::Malformed(_)));
        assert_eq!(parse_first_flight(b"GET / HTTP/1.1\r\n"), FirstFlight::NotTls);
        assert_eq!(parse_first_flight(b"SSH-2.0-OpenSSH"), FirstFlight::NotTls);
        assert!(matches!(parse_first_flight(&hello(&["1.2.3.4"], 1000)), FirstFlight::Malformed(_)));
    }
}
