//! The image's unprivileged user: found in the base's `/etc/passwd`, or added to it.
//!
//! A base that already has the user keeps its uid, gid and home (nothing is rewritten). A base
//! without it gets one more line in `/etc/passwd` (uid 1000 unless taken, then the next free
//! one) and a group of the same name; a base without `/etc/passwd` (or `scratch`) gets fresh
//! files with `root` and the user. The lines of the base are kept byte for byte.

use crate::error::{ImageError, Result};

/// The unprivileged user the image runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUser {
    /// User and group name.
    pub name: String,
    /// uid.
    pub uid: u64,
    /// gid.
    pub gid: u64,
    /// Absolute home directory.
    pub home: String,
}

impl Default for ImageUser {
    fn default() -> Self {
        Self::named("sbx")
    }
}

impl ImageUser {
    /// The user `name` with uid/gid 1000 and home `/home/<name>` (what it gets in a base that
    /// lacks it and has uid 1000 free).
    pub fn named(name: &str) -> Self {
        Self { name: name.to_string(), uid: 1000, gid: 1000, home: format!("/home/{name}") }
    }
}

/// The effective user and the account files the config layer must write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accounts {
    /// The user the image runs as (from the base when it has it).
    pub user: ImageUser,
    /// New `/etc/passwd` content, when it has to change.
    pub passwd: Option<String>,
    /// New `/etc/group` content, when it has to change.
    pub group: Option<String>,
}

/// Checks that `name` is a portable user name (`[a-z_][a-z0-9_-]*`, at most 32 bytes).
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && name.len() <= 32 && name != "root" {
        return Ok(());
    }
    Err(ImageError::Unsupported {
        what: format!("the image user name `{name}`"),
        help: "set [image] user to a lowercase name like \"sbx\" (letters, digits, `_`, `-`; not root)".into(),
    })
}

/// `name:…` lines split on `:`.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).map(|l| l.split(':').collect())
}

fn with_line(text: Option<&str>, default: &str, line: &str) -> String {
    let mut out = text.unwrap_or(default).to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    out
}

/// Decides the user `wanted` (uid 1000 preferred) against the base's `/etc/passwd` and
/// `/etc/group` (`None` when the base has no such file).
pub fn ensure_user(wanted: &str, passwd: Option<&str>, group: Option<&str>) -> Result<Accounts> {
    validate_name(wanted)?;
    let users: Vec<Vec<&str>> = passwd.map(|p| records(p).collect()).unwrap_or_default();
    let groups: Vec<Vec<&str>> = group.map(|g| records(g).collect()).unwrap_or_default();
    let num = |r: &Vec<&str>, i: usize| r.get(i).and_then(|v| v.parse::<u64>().ok());
    let group_line = |gid: u64| format!("{wanted}:x:{gid}:");

    if let Some(r) = users.iter().find(|r| r.first() == Some(&wanted)) {
        let (Some(uid), Some(gid)) = (num(r, 2), num(r, 3)) else {
            return Err(ImageError::Unsupported {
                what: format!("the base's /etc/passwd entry for `{wanted}` (no numeric uid/gid)"),
                help: "fix the base image or set [image] user to another name".into(),
            });
        };
        let home = r.get(5).filter(|h| h.starts_with('/')).map_or_else(|| format!("/home/{wanted}"), |h| h.to_string());
        let has_group = groups.iter().any(|g| num(g, 2) == Some(gid));
        let group = (!has_group).then(|| with_line(group, "root:x:0:\n", &group_line(gid)));
        return Ok(Accounts { user: ImageUser { name: wanted.into(), uid, gid, home }, passwd: None, group });
    }

    let taken_uid = |u: u64| users.iter().any(|r| num(r, 2) == Some(u));
    let taken_gid = |g: u64| groups.iter().any(|r| num(r, 2) == Some(g));
    let uid = (1000..60000).find(|u| !taken_uid(*u)).unwrap_or(60000);
    let (gid, new_group) = match groups.iter().find(|g| g.first() == Some(&wanted)).and_then(|g| num(g, 2)) {
        Some(gid) => (gid, false),
        None => {
            let gid = if taken_gid(uid) { (1000..60000).find(|g| !taken_gid(*g)).unwrap_or(60000) } else { uid };
            (gid, true)
        }
    };
    let user = ImageUser { name: wanted.into(), uid, gid, home: format!("/home/{wanted}") };
    let passwd =
        with_line(passwd, "root:x:0:0:root:/root:/bin/sh\n", &format!("{wanted}:x:{uid}:{gid}::{}:/bin/sh", user.home));
    let group = new_group.then(|| with_line(group, "root:x:0:\n", &group_line(gid)));
    Ok(Accounts { user, passwd: Some(passwd), group })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_gets_root_and_the_user() {
        let a = ensure_user("sbx", None, None).unwrap();
        assert_eq!(a.user, ImageUser::named("sbx"));
        assert_eq!(a.passwd.unwrap(), "root:x:0:0:root:/root:/bin/sh\nsbx:x:1000:1000::/home/sbx:/bin/sh\n");
        assert_eq!(a.group.unwrap(), "root:x:0:\nsbx:x:1000:\n");
    }

    #[test]
    fn base_lines_are_kept_and_taken_ids_skipped() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\ndev:x:1000:1000::/home/dev:/bin/bash";
        let group = "root:x:0:\ndev:x:1000:\n";
        let a = ensure_user("sbx", Some(passwd), Some(group)).unwrap();
        assert_eq!((a.user.uid, a.user.gid), (1001, 1001));
        assert_eq!(a.passwd.unwrap(), format!("{passwd}\nsbx:x:1001:1001::/home/sbx:/bin/sh\n"));
        assert_eq!(a.group.unwrap(), format!("{group}sbx:x:1001:\n"));
    }

    #[test]
    fn an_existing_user_is_used_as_it_is() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnode:x:1000:1000::/home/node:/bin/bash\n";
        let group = "root:x:0:\nnode:x:1000:\n";
        let a = ensure_user("node", Some(passwd), Some(group)).unwrap();
        assert_eq!(a.user, ImageUser { name: "node".into(), uid: 1000, gid: 1000, home: "/home/node".into() });
        assert_eq!((a.passwd, a.group), (None, None));
        // Its primary group missing from /etc/group is added.
        let a = ensure_user("node", Some(passwd), Some("root:x:0:\n")).unwrap();
        assert_eq!(a.group.unwrap(), "root:x:0:\nnode:x:1000:\n");
    }

    #[test]
    fn names_are_validated() {
        for bad in ["", "Root", "root", "a b", "1x", "x:y", &"a".repeat(33)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        validate_name("sbx-agent_2").unwrap();
    }
}
