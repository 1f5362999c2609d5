//! Credentials written into an upstream URL, as pip, uv and npm users write them for a private
//! index (`https://__token__:glpat-…@gitlab.example/api/v4/projects/7/packages/pypi`).
//!
//! They are taken out of the URL before sbx uses it ([`Credentials::take_from`]), so no URL sbx
//! writes (`sbx.lock`, the lock's input digest) or prints (errors, progress) carries them, and
//! they are sent as `Authorization: Basic` with every request to the same origin (scheme, host
//! and port: the realm pip and uv apply index credentials to), by `sbx lock` and by `sbx build`
//! when it downloads what the lock pins. Redirects to another origin drop them (reqwest removes
//! `Authorization` when a redirect leaves the host).

use std::fmt;

use percent_encoding::percent_decode_str;

/// User names and passwords by origin. Its `Debug` shows the origins only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    realms: Vec<Realm>,
}

#[derive(Clone, PartialEq, Eq)]
struct Realm {
    /// `scheme://host:port`, as [`url::Origin::ascii_serialization`] writes it.
    origin: String,
    username: String,
    password: Option<String>,
}

impl Credentials {
    /// `url` without its user name and password, which are kept for the URL's origin (the
    /// first URL of an origin wins). A URL without them, or that does not parse, is returned
    /// as it is.
    pub fn take_from(&mut self, url: &str) -> String {
        let Ok(mut parsed) = url::Url::parse(url) else { return url.to_string() };
        if parsed.username().is_empty() && parsed.password().is_none() {
            return url.to_string();
        }
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let origin = parsed.origin().ascii_serialization();
        if !self.realms.iter().any(|r| r.origin == origin) {
            self.realms.push(Realm {
                origin,
                username: decode(parsed.username()),
                password: parsed.password().map(decode),
            });
        }
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        // The url crate writes a bare origin with a trailing `/`; keep the caller's form.
        let mut stripped = parsed.to_string();
        if !url.ends_with('/') && stripped.ends_with('/') && parsed.path() == "/" {
            stripped.pop();
        }
        stripped
    }

    /// The user name and password to send with a request to `url`, when its origin has them.
    pub fn for_url(&self, url: &str) -> Option<(&str, Option<&str>)> {
        if self.realms.is_empty() {
            return None;
        }
        let origin = url::Url::parse(url).ok()?.origin().ascii_serialization();
        let realm = self.realms.iter().find(|r| r.origin == origin)?;
        Some((&realm.username, realm.password.as_deref()))
    }

    /// `request` (to `url`) with `Authorization: Basic` when the URL's origin has credentials.
    pub fn authorize(&self, request: reqwest::RequestBuilder, url: &str) -> reqwest::RequestBuilder {
        match self.for_url(url) {
            Some((username, password)) => request.basic_auth(username, password),
            None => request,
        }
    }

    /// Whether no origin has credentials.
    pub fn is_empty(&self) -> bool {
        self.realms.is_empty()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.realms.iter().map(|r| format!("{} (redacted)", r.origin))).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_and_go_with_its_origin_only() {
        let mut c = Credentials::default();
        let url = c.take_from("https://__token__:s%40cret@gitlab.example/api/v4/projects/7/packages/pypi");
        assert_eq!(url, "https://gitlab.example/api/v4/projects/7/packages/pypi");
        assert_eq!(
            c.for_url("https://gitlab.example/api/v4/projects/7/packages/pypi/files/x.whl"),
            Some(("__token__", Some("s@cret")))
        );
        assert_eq!(c.for_url("https://GITLAB.example:443/other/path"), Some(("__token__", Some("s@cret"))));
        for other in ["http://gitlab.example/x", "https://gitlab.example:8443/x", "https://evil.example/x", "not a url"]
        {
            assert_eq!(c.for_url(other), None, "{other}");
        }
        // A user name alone, a bare origin, and URLs without credentials.
        assert_eq!(c.take_from("https://npm-user@npm.example"), "https://npm.example");
        assert_eq!(c.for_url("https://npm.example/pkg"), Some(("npm-user", None)));
        assert_eq!(c.take_from("https://pypi.org"), "https://pypi.org");
        assert_eq!(c.take_from("not a url"), "not a url");
        // The first credentials of an origin win.
        c.take_from("https://other:pw@gitlab.example/else");
        assert_eq!(c.for_url("https://gitlab.example/"), Some(("__token__", Some("s@cret"))));
        // Debug output names origins, never secrets.
        let shown = format!("{c:?}");
        assert!(
            shown.contains("https://gitlab.example") && !shown.contains("cret") && !shown.contains("token"),
            "{shown}"
        );
        assert_eq!(Credentials::default().take_from("https://u:p@h.example/a/b.whl"), "https://h.example/a/b.whl");
    }
}
