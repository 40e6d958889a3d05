//! USER resolution: `name`, `uid`, `uid:gid`, `name:group` through the image's /etc/passwd and /etc/group,
//! with supplementary groups, as Docker and buildah do it.

use anyhow::{Result, bail};

/// The resolved identity of a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (from /etc/group membership of the user's name).
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || l.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn group_entries(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || l.starts_with('#') {
            return None;
        }
        Some((
            f[0],
            f[2].parse().ok()?,
            f[3].split(',').filter(|m| !m.is_empty()).collect(),
        ))
    })
}

/// Resolve `spec` ("" = root) against the contents of /etc/passwd and /etc/group (empty if missing).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<Identity> {
    let spec = spec.trim();
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd_entries(passwd).find(|e| e.name == u).or_else(|| {
        u.parse::<u32>()
            .ok()
            .and_then(|id| passwd_entries(passwd).find(|e| e.uid == id))
    });
    let (uid, mut gid, home, name) = match (&entry, u.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name.to_string())),
        (None, Ok(id)) => (id, 0, "/".to_string(), None),
        (None, Err(_)) => bail!(
            "user {u:?} is not in the image's /etc/passwd: use a uid, or create the user first"
        ),
    };
    let explicit_group = g.filter(|g| !g.is_empty());
    if let Some(g) = explicit_group {
        gid = match group_entries(group).find(|(n, _, _)| *n == g) {
            Some((_, id, _)) => id,
            None => g.parse().map_err(|_| anyhow::anyhow!("group {g:?} is not in the image's /etc/group: use a gid, or create the group first"))?,
        };
    }
    // The primary group is a supplementary group too (as buildah, and Docker since CVE-2022-36109), so a
    // process that drops it cannot keep access through a group it never had.
    let mut groups = vec![gid];
    if let (None, Some(name)) = (explicit_group, &name) {
        // Memberships from /etc/group only when no group was given, as Docker does.
        for (_, id, members) in group_entries(group) {
            if members.contains(&name.as_str()) && !groups.contains(&id) {
                groups.push(id);
            }
        }
    }
    Ok(Identity {
        uid,
        gid,
        groups,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\nstaff:x:50:app\n";

    #[test]
    fn resolves_names_ids_and_groups() {
        assert_eq!(
            resolve("", PASSWD, GROUP).unwrap(),
            Identity {
                uid: 0,
                gid: 0,
                groups: vec![0],
                home: "/root".into()
            }
        );
        let app = resolve("app", PASSWD, GROUP).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.clone(), app.home.as_str()),
            (1000, 1000, vec![1000, 10, 50], "/home/app")
        );
        assert_eq!(resolve("1000", PASSWD, GROUP).unwrap().gid, 1000);
        assert_eq!(resolve("app:wheel", PASSWD, GROUP).unwrap().gid, 10);
        assert_eq!(
            resolve("app:wheel", PASSWD, GROUP).unwrap().groups,
            vec![10]
        );
        let anon = resolve("4242:77", PASSWD, GROUP).unwrap();
        assert_eq!((anon.uid, anon.gid, anon.home.as_str()), (4242, 77, "/"));
        assert!(
            resolve("nobody", PASSWD, GROUP)
                .unwrap_err()
                .to_string()
                .contains("nobody")
        );
        assert!(resolve("app:nogroup", PASSWD, GROUP).is_err());
    }
}
