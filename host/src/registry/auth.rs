//! Credentials, found as the containers tools find them: `--creds`, else the auth files in order. With
//! `--authfile` (or `$REGISTRY_AUTH_FILE`) only that file; otherwise `$XDG_RUNTIME_DIR/containers/auth.json`
//! (`/run/containers/UID/auth.json` without it), `~/.config/containers/auth.json`, then
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. In each file a `credHelpers` entry for the
//! registry sends the question to `docker-credential-NAME get`; then come the `auths` entries (most specific
//! key first), then docker's `credsStore` helper.
//!
//! `lade login`/`lade logout` write through the same file: a registry with a `credHelpers` entry (or a file
//! with a `credsStore`) is stored in and erased from that helper (`store`/`erase`/`list`, the docker
//! credential-helper protocol); otherwise the `auths` entry is written (temp file + rename, mode 0600).

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use super::SystemContext;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`, or a helper's `<token>` user).
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

impl Credentials {
    /// Parse `--creds USER[:PASSWORD]` (an empty password when there is no colon, as skopeo does).
    pub fn from_creds_flag(s: &str) -> Result<Credentials> {
        let (u, p) = s.split_once(':').unwrap_or((s, ""));
        if u.is_empty() {
            bail!("--creds `USER:PASSWORD`: the user name is empty");
        }
        Ok(Credentials::Basic {
            username: u.into(),
            password: p.into(),
        })
    }
}

fn home() -> PathBuf {
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("/"))
}

/// The auth file `lade login` writes and the first one read: `--authfile`, `$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json`, else `/run/containers/UID/auth.json`.
pub fn primary_auth_file(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = user_chosen_file(explicit) {
        return p;
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(d).join("containers/auth.json");
    }
    PathBuf::from(format!(
        "/run/containers/{}/auth.json",
        rustix::process::getuid().as_raw()
    ))
}

/// `--authfile` or `$REGISTRY_AUTH_FILE`: when the user names a file, it is the only one consulted.
fn user_chosen_file(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    std::env::var_os("REGISTRY_AUTH_FILE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// Every auth file consulted, in order.
pub fn auth_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut v = vec![primary_auth_file(explicit)];
    if user_chosen_file(explicit).is_some() {
        return v;
    }
    let user = super::config::user_config_dir().join("containers/auth.json");
    if !v.contains(&user) {
        v.push(user);
    }
    let docker = std::env::var_os("DOCKER_CONFIG")
        .filter(|p| !p.is_empty())
        .map(|d| PathBuf::from(d).join("config.json"))
        .unwrap_or_else(|| home().join(".docker/config.json"));
    if !v.contains(&docker) {
        v.push(docker);
    }
    v
}

/// `https://index.docker.io/v1/` → `docker.io`; `https://host/v2/` → `host`; `host/ns` stays.
fn normalise_key(k: &str) -> String {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = match k.split_once('/') {
        Some((host, path))
            if path.is_empty()
                || path == "v1/"
                || path == "v2/"
                || path == "v1"
                || path == "v2" =>
        {
            host
        }
        _ => k,
    };
    let k = k.trim_end_matches('/');
    if k == "index.docker.io" || k == "registry-1.docker.io" {
        "docker.io".into()
    } else {
        k.into()
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(|c| c.is_ascii_whitespace()) => Ok(Some(json!({}))),
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
            format!("auth file {} is not valid JSON", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading auth file {}", path.display())),
    }
}

/// Keys to try for `registry/repository`, most specific first: `host/a/b`, `host/a`, `host`.
fn candidate_keys(registry: &str, repository: Option<&str>) -> Vec<String> {
    let mut keys = vec![];
    if let Some(repo) = repository {
        let mut full = format!("{registry}/{repo}");
        loop {
            keys.push(full.clone());
            match full.rfind('/') {
                Some(i) if i > registry.len() => full.truncate(i),
                _ => break,
            }
        }
    }
    keys.push(registry.to_string());
    keys
}

fn decode_entry(entry: &Value, file: &Path, key: &str) -> Result<Option<Credentials>> {
    if let Some(t) = entry
        .get("identitytoken")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(Credentials::IdentityToken(t.into())));
    }
    let Some(auth) = entry
        .get("auth")
        .and_then(|v| v.as_str())
        .filter(|a| !a.is_empty())
    else {
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .with_context(|| format!("{}: the `auth` of `{key}` is not base64", file.display()))?;
    let s = String::from_utf8(raw)
        .with_context(|| format!("{}: the `auth` of `{key}` is not UTF-8", file.display()))?;
    let (u, p) = s.split_once(':').with_context(|| {
        format!(
            "{}: the `auth` of `{key}` is not USER:PASSWORD",
            file.display()
        )
    })?;
    Ok(Some(Credentials::Basic {
        username: u.into(),
        password: p.into(),
    }))
}

/// Run `docker-credential-HELPER ACTION` with `input` on stdin. Ok(None) when the helper answers that it
/// has no credentials for the server.
fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<Option<Vec<u8>>> {
    let prog = format!("docker-credential-{helper}");
    let mut child = std::process::Command::new(&prog)
        .arg(action)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("running credential helper `{prog} {action}` (is it installed and on PATH?)")
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    // A helper that exits without reading its input is answered by its exit status, not a broken pipe.
    let _ = stdin.write_all(input);
    drop(stdin);
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for `{prog} {action}`"))?;
    if !out.status.success() {
        let msg = format!(
            "{} {}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        bail!(
            "credential helper `{prog} {action}` failed ({}): {}",
            out.status,
            msg.trim()
        );
    }
    Ok(Some(out.stdout))
}

/// Ask `docker-credential-NAME get` for `server`. None when the helper knows no credentials.
pub fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let Some(out) = run_helper(helper, "get", server.as_bytes())? else {
        return Ok(None);
    };
    let prog = format!("docker-credential-{helper}");
    let v: Value = serde_json::from_slice(&out)
        .with_context(|| format!("`{prog} get` printed something other than JSON"))?;
    let user = v
        .get("Username")
        .and_then(|u| u.as_str())
        .unwrap_or_default();
    let secret = v
        .get("Secret")
        .and_then(|u| u.as_str())
        .unwrap_or_default()
        .to_string();
    if user == "<token>" {
        return Ok(Some(Credentials::IdentityToken(secret)));
    }
    if user.is_empty() && secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::Basic {
        username: user.into(),
        password: secret,
    }))
}

/// `docker-credential-NAME store` for `server`.
pub fn helper_store(helper: &str, server: &str, username: &str, secret: &str) -> Result<()> {
    let input = json!({ "ServerURL": server, "Username": username, "Secret": secret });
    run_helper(helper, "store", &serde_json::to_vec(&input)?)?
        .with_context(|| format!("credential helper `{helper}` refused to store {server}"))?;
    Ok(())
}

/// `docker-credential-NAME erase` for `server`; false when the helper had nothing for it.
pub fn helper_erase(helper: &str, server: &str) -> Result<bool> {
    Ok(run_helper(helper, "erase", server.as_bytes())?.is_some())
}

/// `docker-credential-NAME list`: the servers it holds credentials for.
pub fn helper_list(helper: &str) -> Result<Vec<String>> {
    let Some(out) = run_helper(helper, "list", b"")? else {
        return Ok(vec![]);
    };
    let v: BTreeMap<String, String> = serde_json::from_slice(&out).with_context(|| {
        format!("`docker-credential-{helper} list` printed something other than a JSON object")
    })?;
    Ok(v.into_keys().collect())
}

/// The helper a file names for `registry`: its `credHelpers` entry, else its `credsStore`.
fn helper_for(v: &Value, registry: &str) -> Option<String> {
    v.get("credHelpers")
        .and_then(|h| h.get(registry))
        .or_else(|| v.get("credsStore"))
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

type LookupKey = (String, Option<String>, Option<PathBuf>);

/// Lookups already made by this process (a credential helper is a process per question).
static LOOKUPS: LazyLock<Mutex<HashMap<LookupKey, Option<Credentials>>>> =
    LazyLock::new(Default::default);

/// Credentials for `registry` (and optionally a repository inside it, for namespaced entries).
pub fn lookup(
    registry: &str,
    repository: Option<&str>,
    authfile: Option<&Path>,
) -> Result<Option<Credentials>> {
    let key = (
        registry.to_string(),
        repository.map(str::to_string),
        authfile.map(Path::to_path_buf),
    );
    if let Some(c) = LOOKUPS.lock().expect("lock").get(&key) {
        return Ok(c.clone());
    }
    let found = lookup_uncached(registry, repository, authfile)?;
    LOOKUPS.lock().expect("lock").insert(key, found.clone());
    Ok(found)
}

fn lookup_uncached(
    registry: &str,
    repository: Option<&str>,
    authfile: Option<&Path>,
) -> Result<Option<Credentials>> {
    for file in auth_files(authfile) {
        let Some(v) = read_json(&file)? else { continue };
        if let Some(helper) = v
            .get("credHelpers")
            .and_then(|h| h.get(registry))
            .and_then(|h| h.as_str())
        {
            let found = helper_get(helper, registry).with_context(|| {
                format!("credHelpers entry for {registry} in {}", file.display())
            })?;
            if found.is_some() {
                return Ok(found);
            }
            continue;
        }
        if let Some(auths) = v.get("auths").and_then(|a| a.as_object()) {
            let normalised: Vec<(String, &Value)> =
                auths.iter().map(|(k, e)| (normalise_key(k), e)).collect();
            for key in candidate_keys(registry, repository) {
                if let Some((_, entry)) = normalised.iter().find(|(k, _)| *k == key)
                    && let Some(c) = decode_entry(entry, &file, &key)?
                {
                    return Ok(Some(c));
                }
            }
        }
        if let Some(store) = v.get("credsStore").and_then(|h| h.as_str())
            && let Some(c) = helper_get(store, registry)
                .with_context(|| format!("credsStore of {}", file.display()))?
        {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn forget_lookups() {
    LOOKUPS.lock().expect("lock").clear();
    HELPER_GETS.lock().expect("lock").clear();
}

/// The name registries.conf's `credential-helpers` gives the auth files.
pub const AUTH_FILE_HELPER: &str = "containers-auth.json";

/// `docker-credential-NAME get` answers already given to this process.
type HelperKey = (String, String);
static HELPER_GETS: LazyLock<Mutex<HashMap<HelperKey, Option<Credentials>>>> =
    LazyLock::new(Default::default);

fn helper_get_cached(helper: &str, registry: &str) -> Result<Option<Credentials>> {
    let key = (helper.to_string(), registry.to_string());
    if let Some(c) = HELPER_GETS.lock().expect("lock").get(&key) {
        return Ok(c.clone());
    }
    let c = helper_get(helper, registry)?;
    HELPER_GETS.lock().expect("lock").insert(key, c.clone());
    Ok(c)
}

/// registries.conf's `credential-helpers`, in order (unset or empty: the auth files alone).
pub fn credential_helpers(ctx: &SystemContext) -> Result<Vec<String>> {
    let conf = super::registries_conf(ctx)?;
    Ok(match &conf.credential_helpers {
        Some(h) if !h.is_empty() => h.clone(),
        _ => vec![AUTH_FILE_HELPER.to_string()],
    })
}

/// Credentials for `registry` (and optionally a repository in it) as containers/image finds them: each of
/// registries.conf's `credential-helpers` in order, where `containers-auth.json` means the auth files
/// ([`lookup`]) and any other name a `docker-credential-NAME` helper asked for the registry. The first
/// answer wins; a helper that fails is an error only when no other one answers.
pub fn lookup_for(
    registry: &str,
    repository: Option<&str>,
    ctx: &SystemContext,
) -> Result<Option<Credentials>> {
    let mut errors = vec![];
    for h in credential_helpers(ctx)? {
        let found = if h == AUTH_FILE_HELPER {
            lookup(registry, repository, ctx.authfile.as_deref())
        } else {
            helper_get_cached(&h, registry)
        };
        match found {
            Ok(Some(c)) => return Ok(Some(c)),
            Ok(None) => {}
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!(
            "looking up credentials for {registry}: {}",
            errors.join("; ")
        );
    }
    Ok(None)
}

fn write_atomic(path: &Path, v: &Value) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(&serde_json::to_vec_pretty(v)?)?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing auth file {}", path.display()))?;
    Ok(())
}

/// Where [`save`] put credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// In this auth file's `auths`.
    File(PathBuf),
    /// In this credential helper (named by `credHelpers` or `credsStore`).
    Helper(String),
}

/// Store credentials for `key` (a host, or host/namespace) as `file` directs: its `credHelpers` entry or
/// `credsStore` helper when it names one (a helper takes whole registries, not namespaces), else its
/// `auths`.
pub fn save(file: &Path, key: &str, username: &str, password: &str) -> Result<Saved> {
    forget_lookups();
    let v = read_json(file)?.unwrap_or_else(|| json!({}));
    let (host, namespaced) = match key.split_once('/') {
        Some((h, _)) => (h, true),
        None => (key, false),
    };
    if let Some(helper) = helper_for(&v, host) {
        if namespaced {
            bail!(
                "{} sends {host} to credential helper `{helper}`, which stores whole registries: log in to {host}, not {key}",
                file.display()
            );
        }
        helper_store(&helper, key, username, password).with_context(|| {
            format!(
                "storing the credentials for {key} (as {} directs)",
                file.display()
            )
        })?;
        return Ok(Saved::Helper(helper));
    }
    store(file, key, username, password)?;
    Ok(Saved::File(file.to_path_buf()))
}

/// Store `user:password` for `key` (a host, or host/namespace) in `file`'s `auths`.
pub fn store(file: &Path, key: &str, username: &str, password: &str) -> Result<()> {
    forget_lookups();
    let mut v = read_json(file)?.unwrap_or_else(|| json!({}));
    if !v.is_object() {
        bail!("auth file {} does not hold a JSON object", file.display());
    }
    let auths = v
        .as_object_mut()
        .expect("object")
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let auths = auths
        .as_object_mut()
        .with_context(|| format!("{}: `auths` is not an object", file.display()))?;
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    auths.insert(key.to_string(), json!({ "auth": enc }));
    write_atomic(file, &v)
}

/// Forget `key` as `file` directs: erased from the helper that `credHelpers`/`credsStore` names for it, and
/// its `auths` entry removed. Returns whether anything was removed.
pub fn forget(file: &Path, key: &str) -> Result<bool> {
    forget_lookups();
    let Some(v) = read_json(file)? else {
        return Ok(false);
    };
    let mut removed = false;
    if !key.contains('/')
        && let Some(helper) = helper_for(&v, key)
    {
        removed |= helper_erase(&helper, key).with_context(|| {
            format!(
                "erasing the credentials for {key} (as {} directs)",
                file.display()
            )
        })?;
    }
    removed |= remove(file, Some(key), false)?;
    Ok(removed)
}

/// Forget every credential `file` holds or points at: each `credHelpers` registry is erased from its
/// helper, every server a `credsStore` lists is erased from it, and `auths` is emptied. The helper
/// configuration itself stays.
pub fn forget_all(file: &Path) -> Result<()> {
    forget_lookups();
    let Some(v) = read_json(file)? else {
        return Ok(());
    };
    if let Some(helpers) = v.get("credHelpers").and_then(|h| h.as_object()) {
        for (registry, helper) in helpers {
            if let Some(helper) = helper.as_str() {
                helper_erase(helper, registry).with_context(|| {
                    format!("credHelpers entry for {registry} in {}", file.display())
                })?;
            }
        }
    }
    if let Some(store) = v.get("credsStore").and_then(|h| h.as_str()) {
        for server in
            helper_list(store).with_context(|| format!("credsStore of {}", file.display()))?
        {
            helper_erase(store, &server)
                .with_context(|| format!("credsStore of {}", file.display()))?;
        }
    }
    remove(file, None, true)?;
    Ok(())
}

/// Remove `key` (or every entry with `all`) from `file`'s `auths`. Returns whether anything was removed.
pub fn remove(file: &Path, key: Option<&str>, all: bool) -> Result<bool> {
    forget_lookups();
    let Some(mut v) = read_json(file)? else {
        return Ok(false);
    };
    let removed = match v.get_mut("auths").and_then(|a| a.as_object_mut()) {
        Some(auths) if all => {
            let had = !auths.is_empty();
            auths.clear();
            had
        }
        Some(auths) => {
            let key = key.expect("a key unless --all");
            let before = auths.len();
            auths.retain(|k, _| normalise_key(k) != key);
            before != auths.len()
        }
        None => false,
    };
    if removed {
        write_atomic(file, &v)?;
    }
    Ok(removed)
}

/// The user name stored for `key` in `file`'s `auths` (no helper asked).
pub fn stored_user(file: &Path, key: &str) -> Result<Option<String>> {
    let Some(v) = read_json(file)? else {
        return Ok(None);
    };
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    for (k, e) in auths {
        if normalise_key(k) == key
            && let Some(Credentials::Basic { username, .. }) = decode_entry(e, file, k)?
        {
            return Ok(Some(username));
        }
    }
    Ok(None)
}

/// The credentials every source gives for `key` (`host` or `host/namespace`), helpers included (for
/// `lade login --get-login` and for logging in again with what is stored).
pub fn for_key(key: &str, ctx: &SystemContext) -> Result<Option<Credentials>> {
    let (host, repo) = match key.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (key, None),
    };
    lookup_for(host, repo, ctx)
}

/// Store credentials for `key` in the first of registries.conf's `credential-helpers` that takes them
/// (`containers-auth.json`: [`save`] into the primary auth file).
pub fn save_for(ctx: &SystemContext, key: &str, username: &str, password: &str) -> Result<Saved> {
    forget_lookups();
    let mut errors = vec![];
    for h in credential_helpers(ctx)? {
        let r = if h == AUTH_FILE_HELPER {
            save(
                &primary_auth_file(ctx.authfile.as_deref()),
                key,
                username,
                password,
            )
        } else if key.contains('/') {
            Err(anyhow::anyhow!(
                "credential helper `{h}` stores whole registries, not the namespace {key}"
            ))
        } else {
            helper_store(&h, key, username, password).map(|()| Saved::Helper(h.clone()))
        };
        match r {
            Ok(s) => return Ok(s),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    bail!("storing the credentials for {key}: {}", errors.join("; "))
}

/// Forget `key` everywhere registries.conf's `credential-helpers` says credentials live. Returns whether
/// anything was removed.
pub fn forget_for(ctx: &SystemContext, key: &str) -> Result<bool> {
    forget_lookups();
    let mut removed = false;
    for h in credential_helpers(ctx)? {
        if h == AUTH_FILE_HELPER {
            removed |= forget(&primary_auth_file(ctx.authfile.as_deref()), key)?;
        } else if !key.contains('/') {
            removed |= helper_erase(&h, key)?;
        }
    }
    Ok(removed)
}

/// Forget every credential: [`forget_all`] on the primary auth file, and every server each other
/// `credential-helpers` entry lists (a helper that is not installed holds nothing).
pub fn forget_all_for(ctx: &SystemContext) -> Result<()> {
    forget_lookups();
    for h in credential_helpers(ctx)? {
        if h == AUTH_FILE_HELPER {
            forget_all(&primary_auth_file(ctx.authfile.as_deref()))?;
            continue;
        }
        let servers = match helper_list(&h) {
            Ok(s) => s,
            Err(e)
                if e.chain().any(|c| {
                    c.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
                }) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        for server in servers {
            helper_erase(&h, &server)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chosen_file_is_the_only_one() {
        let f = Path::new("/x/auth.json");
        assert_eq!(auth_files(Some(f)), [f.to_path_buf()]);
        assert_eq!(primary_auth_file(Some(f)), f);
    }

    #[test]
    fn missing_helper_is_a_clear_error() {
        let e = format!(
            "{:#}",
            helper_get("lade-no-such-helper-xyz", "h:1").unwrap_err()
        );
        assert!(
            e.contains("docker-credential-lade-no-such-helper-xyz") && e.contains("PATH"),
            "{e}"
        );
    }

    #[test]
    fn keys_and_round_trip() {
        assert_eq!(normalise_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalise_key("http://h:5000"), "h:5000");
        assert_eq!(normalise_key("h:5000/ns/repo"), "h:5000/ns/repo");
        assert_eq!(candidate_keys("h", Some("a/b")), ["h/a/b", "h/a", "h"]);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/auth.json");
        store(&f, "h:5000", "u", "p:w").unwrap();
        store(&f, "h:5000/team", "t", "x").unwrap();
        assert_eq!(
            lookup("h:5000", Some("other"), Some(&f)).unwrap(),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p:w".into()
            })
        );
        assert_eq!(
            lookup("h:5000", Some("team/app"), Some(&f)).unwrap(),
            Some(Credentials::Basic {
                username: "t".into(),
                password: "x".into()
            })
        );
        assert_eq!(stored_user(&f, "h:5000").unwrap().as_deref(), Some("u"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(remove(&f, Some("h:5000"), false).unwrap());
        assert!(!remove(&f, Some("h:5000"), false).unwrap());
        assert!(remove(&f, None, true).unwrap());
        std::fs::write(&f, "{\"auths\":{\"x\":{\"auth\":\"!!\"}}}").unwrap();
        assert!(format!("{:#}", lookup("x", None, Some(&f)).unwrap_err()).contains("base64"));
        assert_eq!(
            Credentials::from_creds_flag("a:b:c").unwrap(),
            Credentials::Basic {
                username: "a".into(),
                password: "b:c".into()
            }
        );
    }
}
