//! The registry client (distribution-spec v1.1): auth, TLS, retries, blobs, manifests, referrers.
//!
//! * [`config`]: registries.conf (mirrors, insecure, blocked, short names).
//! * [`auth`]: credentials from `--creds`, auth files and credential helpers; login/logout storage.
//! * [`tls`]: certs.d and the process-wide HTTP clients.
//! * [`body`]: response bodies read into memory, each with a cap checked while streaming.
//! * [`client`]: one registry endpoint: scheme probe, auth challenge, retries.
//! * [`repo`]: the repository operations.
//!
//! Entry point: [`open_repo`] (a reference → a [`repo::Repo`] on the right endpoint).

pub mod auth;
pub mod body;
pub mod client;
pub mod config;
pub mod locations;
pub mod repo;
pub mod tls;

use crate::oci::PlatformOverride;
use crate::reference::Reference;
use anyhow::Result;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

pub use client::{HttpError, Registry};
pub use config::RegistriesConf;
pub use repo::Repo;

/// Everything a transport may need besides the reference, like containers/image `types.SystemContext`.
/// One context is used for one side of a copy (source or destination).
#[derive(Debug, Clone, Default)]
pub struct SystemContext {
    /// `--tls-verify`: None = the default (verify, unless registries.conf marks the registry insecure).
    pub tls_verify: Option<bool>,
    /// `--creds USER[:PASSWORD]`.
    pub creds: Option<String>,
    /// `--authfile`.
    pub authfile: Option<std::path::PathBuf>,
    /// `--cert-dir`: a certs.d-style directory for this registry.
    pub cert_dir: Option<std::path::PathBuf>,
    /// `--registries-conf` (global flag).
    pub registries_conf: Option<std::path::PathBuf>,
    /// `--retry-times`: how many times a transient failure is retried.
    pub retry_times: u32,
    /// Platform overrides for picking an instance from an index.
    pub platform: PlatformOverride,
    /// The local store (`--root`), for the store transport and for lade's own metadata.
    pub store_root: std::path::PathBuf,
}

/// registries.conf as `ctx` selects it (read once per process per path).
pub fn registries_conf(ctx: &SystemContext) -> Result<Arc<RegistriesConf>> {
    static CACHE: LazyLock<Mutex<HashMap<Option<std::path::PathBuf>, Arc<RegistriesConf>>>> =
        LazyLock::new(Default::default);
    let key = ctx.registries_conf.clone();
    if let Some(c) = CACHE.lock().expect("lock").get(&key) {
        return Ok(c.clone());
    }
    let c = Arc::new(RegistriesConf::load(key.as_deref())?);
    CACHE.lock().expect("lock").insert(key, c.clone());
    Ok(c)
}

/// Registries are shared within the process (one probe, one token cache per host and credentials).
fn registry(
    host: &str,
    repository: &str,
    ctx: &SystemContext,
    insecure: bool,
) -> Result<Arc<Registry>> {
    type Key = (
        String,
        Option<bool>,
        bool,
        Option<std::path::PathBuf>,
        Option<String>,
        Option<std::path::PathBuf>,
        u32,
    );
    static CACHE: LazyLock<Mutex<HashMap<Key, Arc<Registry>>>> = LazyLock::new(Default::default);
    // Namespaced credentials differ per repository: the auth lookup is part of the key.
    let creds_key = match &ctx.creds {
        Some(c) => Some(format!("flag:{c}")),
        None => auth::lookup_for(host, Some(repository), ctx)?
            .map(|c| format!("{c:?}{}", creds_fingerprint(&c))),
    };
    let key = (
        host.to_string(),
        ctx.tls_verify,
        insecure,
        ctx.cert_dir.clone(),
        creds_key,
        ctx.authfile.clone(),
        ctx.retry_times,
    );
    if let Some(r) = CACHE.lock().expect("lock").get(&key) {
        return Ok(r.clone());
    }
    let r = Arc::new(Registry::new(host, Some(repository), ctx, insecure)?);
    CACHE.lock().expect("lock").insert(key, r.clone());
    Ok(r)
}

fn creds_fingerprint(c: &auth::Credentials) -> String {
    use sha2::Digest as _;
    let s = match c {
        auth::Credentials::Basic { username, password } => format!("{username}:{password}"),
        auth::Credentials::IdentityToken(t) => t.clone(),
    };
    hex::encode(&sha2::Sha256::digest(s.as_bytes())[..8])
}

/// A handle on `reference`'s repository at `endpoint` (from [`RegistriesConf::pull_endpoints`] or
/// [`RegistriesConf::push_endpoint`]).
pub fn open_endpoint(endpoint: &config::Endpoint, ctx: &SystemContext, push: bool) -> Result<Repo> {
    let r = &endpoint.reference;
    let reg = registry(&r.registry, &r.repository, ctx, endpoint.insecure)?;
    Ok(Repo::new(reg, &r.repository, push))
}

/// The repository of `reference` at its primary location (registries.conf `location`, `blocked`,
/// `insecure` applied), for pushing (`push`) or reading.
pub fn open_repo(
    reference: &Reference,
    ctx: &SystemContext,
    push: bool,
) -> Result<(Repo, Reference)> {
    let conf = registries_conf(ctx)?;
    let ep = conf.push_endpoint(reference)?;
    Ok((open_endpoint(&ep, ctx, push)?, ep.reference))
}

/// The candidates for a name a user typed (`lade pull alpine`), resolved through registries.conf
/// `[aliases]` and `unqualified-search-registries` under its `short-name-mode`; a fully qualified name is
/// its own single candidate.
pub fn short_name_candidates(name: &str, ctx: &SystemContext) -> Result<Vec<Reference>> {
    let conf = registries_conf(ctx)?;
    crate::reference::resolve_short_name(name, &conf.short_names)
}

/// Where a typed name is pulled from (`lade pull NAME`, a build's FROM), each with its default tag: the
/// short-name candidates when registries.conf has search registries or an alias for it; otherwise the
/// name qualified as docker does (`alpine` → `docker.io/library/alpine:latest`).
pub fn pull_candidates(name: &str, ctx: &SystemContext) -> Result<Vec<Reference>> {
    let parsed = Reference::parse(name)?;
    if parsed.qualified {
        return Ok(vec![parsed.with_default_tag()]);
    }
    let conf = registries_conf(ctx)?;
    let typed = crate::store::names::repository(name);
    let aliased = conf
        .short_names
        .aliases
        .iter()
        .any(|(k, _)| k == typed || *k == parsed.repository);
    if conf.short_names.search_registries.is_empty() && !aliased {
        return Ok(vec![parsed.with_default_tag()]);
    }
    Ok(short_name_candidates(name, ctx)?
        .into_iter()
        .map(|r| r.with_default_tag())
        .collect())
}
