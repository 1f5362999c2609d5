//! One HTTP/2 connection per host, opened once and shared by every request to it.
//!
//! reqwest learns that a host speaks HTTP/2 from ALPN, at the end of the first TLS handshake.
//! Until then nothing tells its pool that the connection will be shareable, so every request
//! started before the first handshake ends opens a connection of its own. A lock starts a
//! dozen requests at once: that made six TLS handshakes to two hosts, and servers that throttle
//! new connections answered all of them later (the bench's lock took ~15% longer).
//!
//! So `https://` hosts are first asked with HTTP/2 from the first byte ("prior knowledge"):
//! the pool then opens one connection per host and the other requests wait for it, as curl
//! does with `PIPEWAIT`. A host whose first contact over HTTP/2 gets no answer (it speaks only
//! HTTP/1.1, or it is unreachable) is asked again with negotiation, which allows HTTP/1.1, for
//! the rest of the run. Plain `http://` hosts (loopback fixture servers, local mirrors) always
//! negotiate.

use std::collections::HashMap;
use std::sync::Mutex;

/// How a request is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// HTTP/2 to a host not known to speak it yet: no answer means [`Protocols::unanswered`].
    TryHttp2,
    /// HTTP/2 to a host that answered over it.
    Http2,
    /// ALPN negotiation (HTTP/2 or HTTP/1.1), or plain `http://`.
    Negotiated,
}

/// What each host of this run speaks, learned from the first answers.
#[derive(Default)]
pub struct Protocols {
    hosts: Mutex<HashMap<String, Route>>,
}

impl Protocols {
    /// How to send a request to `url` now.
    pub fn route(&self, url: &str) -> Route {
        let Some(host) = https_authority(url) else {
            return Route::Negotiated;
        };
        self.lock().get(host).copied().unwrap_or(Route::TryHttp2)
    }

    /// A request sent by `route` got an answer (any status).
    pub fn answered(&self, url: &str, route: Route) {
        if route == Route::TryHttp2
            && let Some(host) = https_authority(url)
        {
            self.lock().entry(host.to_string()).or_insert(Route::Http2);
        }
    }

    /// A request sent by `route` got no answer; `true` when it should be sent again at once,
    /// negotiated (the host's first contact over HTTP/2 failed).
    pub fn unanswered(&self, url: &str, route: Route) -> bool {
        let Some(host) = https_authority(url) else {
            return false;
        };
        if route != Route::TryHttp2 {
            return false;
        }
        let mut hosts = self.lock();
        match hosts.get(host) {
            // Another request already got an HTTP/2 answer from it: this was a plain failure.
            Some(Route::Http2) => false,
            _ => {
                hosts.insert(host.to_string(), Route::Negotiated);
                true
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Route>> {
        match self.hosts.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// `host[:port]` of an `https://` URL.
fn https_authority(url: &str) -> Option<&str> {
    let rest = url.get(..8).filter(|scheme| scheme.eq_ignore_ascii_case("https://")).map(|_| &url[8..])?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|authority| !authority.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_hosts_try_http2_until_their_first_answer_or_failure() {
        let p = Protocols::default();
        let (a, b) = ("https://registry.example/pkg", "https://h1.example:8443/x");
        assert_eq!(p.route(a), Route::TryHttp2);
        p.answered(a, Route::TryHttp2);
        assert_eq!(p.route("https://registry.example/other"), Route::Http2);
        // A later failure of a host known to speak HTTP/2 is an ordinary failure.
        assert!(!p.unanswered(a, Route::Http2));
        assert!(!p.unanswered(a, Route::TryHttp2));
        assert_eq!(p.route(a), Route::Http2);

        assert!(p.unanswered(b, Route::TryHttp2));
        assert_eq!(p.route(b), Route::Negotiated);
        // Once negotiated, an answer does not switch the host back.
        p.answered(b, Route::Negotiated);
        assert_eq!(p.route(b), Route::Negotiated);
        // The port is part of the host.
        assert_eq!(p.route("https://h1.example/x"), Route::TryHttp2);
    }

    #[test]
    fn plain_http_always_negotiates() {
        let p = Protocols::default();
        assert_eq!(p.route("http://127.0.0.1:8080/npm/x"), Route::Negotiated);
        assert!(!p.unanswered("http://127.0.0.1:8080/npm/x", Route::Negotiated));
        assert_eq!(https_authority("HTTPS://Up.Example?q"), Some("Up.Example"));
        assert_eq!(https_authority("https:///nohost"), None);
        assert_eq!(https_authority("file:///x"), None);
    }
}
