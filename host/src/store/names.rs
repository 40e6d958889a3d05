//! Image names in the store: fully qualified (`localhost/app:1`, `docker.io/library/alpine:3`), and the
//! short-name candidates a lookup tries, in buildah's order.

/// Split `NAME[:TAG][@DIGEST]` into (repository, tag, digest). The tag colon is the last one after the
/// last `/` (a registry port is not a tag).
pub fn split(name: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (name, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

/// Whether the first path component is a registry host (has a `.` or `:`, or is `localhost`).
pub fn has_domain(repo: &str) -> bool {
    match repo.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

/// `repo` with `:latest` when it names no tag and no digest.
fn with_tag(repo: &str, tag: Option<&str>, digest: Option<&str>) -> String {
    match (tag, digest) {
        (Some(t), Some(d)) => format!("{repo}:{t}@{d}"),
        (Some(t), None) => format!("{repo}:{t}"),
        (None, Some(d)) => format!("{repo}@{d}"),
        (None, None) => format!("{repo}:latest"),
    }
}

/// The name a new local image gets (buildah's rule): no registry means `localhost/`; no tag means `:latest`.
pub fn qualify_local(name: &str) -> String {
    let (repo, tag, digest) = split(name);
    let repo = if has_domain(repo) {
        repo.to_string()
    } else {
        format!("localhost/{repo}")
    };
    with_tag(&repo, tag, digest)
}

/// The name a pulled image gets: no registry means `docker.io` (with `library/` for one component).
pub fn qualify_remote(name: &str) -> String {
    let (repo, tag, digest) = split(name);
    let repo = if has_domain(repo) {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    with_tag(&repo, tag, digest)
}

/// The names a lookup of `name` tries, in order: the name itself when qualified; else `localhost/`,
/// then docker.io.
pub fn candidates(name: &str) -> Vec<String> {
    let (repo, tag, digest) = split(name);
    if has_domain(repo) {
        return vec![with_tag(repo, tag, digest)];
    }
    vec![qualify_local(name), qualify_remote(name)]
}

/// The repository part of a fully qualified name.
pub fn repository(name: &str) -> &str {
    split(name).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifies_like_buildah() {
        assert_eq!(
            split("localhost:5000/a/b:1"),
            ("localhost:5000/a/b", Some("1"), None)
        );
        assert_eq!(
            split("localhost:5000/a/b"),
            ("localhost:5000/a/b", None, None)
        );
        assert_eq!(qualify_local("app:1"), "localhost/app:1");
        assert_eq!(qualify_local("app"), "localhost/app:latest");
        assert_eq!(qualify_local("quay.io/x/app"), "quay.io/x/app:latest");
        assert_eq!(qualify_remote("alpine:3"), "docker.io/library/alpine:3");
        assert_eq!(qualify_remote("me/app"), "docker.io/me/app:latest");
        assert_eq!(
            candidates("app:1"),
            vec!["localhost/app:1", "docker.io/library/app:1"]
        );
        assert_eq!(
            candidates("127.0.0.1:5000/app"),
            vec!["127.0.0.1:5000/app:latest"]
        );
    }
}
