//! The signature policy (containers-policy.json(5)): which images may be read, enforced before any layer
//! of a pulled, copied or FROM image is written.
//!
//! * [`config`] parses policy.json strictly; [`json`] is the strict JSON under it.
//! * [`scope`] names images for lookup per transport and validates scopes.
//! * [`eval`] picks the scope's requirements and checks them; crypto is behind [`eval::Verifier`].
//! * [`identity`] the `signedIdentity` matchers; [`signature`] signature formats and payloads.
//! * [`registries_d`] where signatures live; [`sources`] reads them.
//! * [`statement`] the in-toto statement of a sigstore bundle (cosign v3 signatures, attestations).
//! * [`trust`] `lade trust show|set` (podman's `image trust`).
//!
//! The hook is [`check`]: give it the source's transport string and the opened source; it returns the
//! source to copy from (the manifest it checked pinned, so the copy reads the very bytes that were
//! verified), or an error naming the policy file, the scope and the reason.

pub mod config;
pub mod eval;
pub mod identity;
pub mod json;
pub mod registries_d;
pub mod scope;
pub mod signature;
pub mod sources;
pub mod statement;
pub mod trust;

#[cfg(test)]
mod tests;

pub use config::Policy;
pub use eval::{NoVerifier, Verifier};

use crate::transport::{
    BlobStream, Descriptor, Digest, ImageSource, ReuseHint, SystemContext, TransportRef,
};
use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

/// Where the policy comes from (`--signature-policy`, `--insecure-policy`, `--registries.d`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--signature-policy FILE` (alias `--policy`).
    pub policy: Option<PathBuf>,
    /// `--insecure-policy`: no check at all.
    pub insecure: bool,
    /// `--registries.d DIR`.
    pub registries_d: Option<PathBuf>,
}

static OPTIONS: OnceLock<Options> = OnceLock::new();
static VERIFIER: RwLock<Option<Arc<dyn Verifier>>> = RwLock::new(None);

/// Set the process's policy options (from the command line); the first call wins.
pub fn configure(o: Options) {
    let _ = OPTIONS.set(o);
}

/// The process's policy options (defaults when [`configure`] was not called).
pub fn options() -> Options {
    OPTIONS.get().cloned().unwrap_or_default()
}

/// Install the signature verifier (the signer plugins do this); without one, signature requirements fail
/// closed.
pub fn set_verifier(v: Arc<dyn Verifier>) {
    *VERIFIER.write().unwrap_or_else(|e| e.into_inner()) = Some(v);
}

fn verifier() -> Arc<dyn Verifier> {
    VERIFIER
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| Arc::new(NoVerifier))
}

/// The user's policy file.
pub fn user_policy_path() -> Option<PathBuf> {
    dirs::home_dir().map(|h| h.join(".config/containers/policy.json"))
}

/// The system's policy file.
pub const SYSTEM_POLICY: &str = "/etc/containers/policy.json";

/// The policy file to use, as containers/image finds it: `explicit`, else the user's when it exists, else
/// the system's when it exists; an error (as skopeo's) when there is none.
pub fn policy_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let user = user_policy_path();
    if let Some(u) = &user
        && u.exists()
    {
        return Ok(u.clone());
    }
    if Path::new(SYSTEM_POLICY).exists() {
        return Ok(PathBuf::from(SYSTEM_POLICY));
    }
    bail!(
        "no signature policy: none of {} and {SYSTEM_POLICY} exists; create one (`lade trust set --type accept default` \
         accepts every image, as Debian's default does), pass --signature-policy FILE, or skip the check with --insecure-policy",
        user.map(|u| u.display().to_string())
            .unwrap_or_else(|| "$HOME/.config/containers/policy.json".into())
    )
}

/// Check the image `name` (a transport string) opened as `src` against the policy of `opts`. Returns the
/// source to copy from: `src` itself, or, when signatures were checked, `src` with the checked top
/// manifest pinned.
pub async fn check_with(
    opts: &Options,
    name: &str,
    src: Box<dyn ImageSource>,
    ctx: &SystemContext,
    verifier: &dyn Verifier,
) -> Result<Box<dyn ImageSource>> {
    if opts.insecure {
        return Ok(src);
    }
    let path = policy_path(opts.policy.as_deref())?;
    let policy = Policy::load(&path)?;
    let t = crate::transport::parse(name)?;
    let store_name = match &t {
        TransportRef::Local(n) => crate::store::Store::open(&ctx.store_root)
            .and_then(|s| s.resolve(n))
            .ok()
            .map(|(full, _)| full),
        _ => None,
    };
    let image = scope::policy_ref(name, &ctx.store_root, store_name.as_deref())?;
    let (reqs, scope_name) = eval::requirements_for(&policy, &image);
    let refused = |e: anyhow::Error| {
        anyhow!(
            "{name} is refused by the signature policy {} (scope {scope_name}): {e:#}",
            path.display()
        )
    };
    if !eval::needs_signatures(reqs) {
        eval::evaluate(
            reqs,
            &eval::Subject {
                image: &image,
                manifest: &[],
                signatures: &[],
            },
            verifier,
        )
        .map_err(refused)?;
        return Ok(src);
    }
    let (manifest, mt) = src
        .manifest(None)
        .await
        .with_context(|| format!("reading the manifest of {name} to check its signatures"))?;
    let digest = signature::manifest_digest(&manifest)?;
    let sigs = signature_source(&t, &image, src.as_ref(), ctx, opts, &digest)?
        .signatures(&digest)
        .await
        .with_context(|| format!("reading the signatures of {name}"))?;
    eval::evaluate(
        reqs,
        &eval::Subject {
            image: &image,
            manifest: &manifest,
            signatures: &sigs,
        },
        verifier,
    )
    .map_err(refused)?;
    Ok(pinned(src, manifest, mt))
}

/// `src` with its top manifest fixed to `manifest` (bytes already read and checked): the copy reads those
/// very bytes, and the registry is not asked twice.
pub fn pinned(src: Box<dyn ImageSource>, manifest: Vec<u8>, mt: String) -> Box<dyn ImageSource> {
    Box::new(Pinned {
        inner: src,
        top: (manifest, mt),
    })
}

/// [`check_with`] with the process's options and verifier: the hook copy, pull, sync and FROM call
/// before writing anything.
pub async fn check(
    name: &str,
    src: Box<dyn ImageSource>,
    ctx: &SystemContext,
) -> Result<Box<dyn ImageSource>> {
    check_with(&options(), name, src, ctx, verifier().as_ref()).await
}

fn signature_source<'a>(
    t: &TransportRef,
    image: &scope::PolicyRef,
    src: &'a dyn ImageSource,
    ctx: &'a SystemContext,
    opts: &Options,
    digest: &str,
) -> Result<Box<dyn sources::SignatureSource + 'a>> {
    Ok(match (t, &image.docker_reference) {
        (TransportRef::Docker(_), Some(r)) => {
            let dir = registries_d::dir(opts.registries_d.as_deref());
            let conf = registries_d::RegistriesD::load(&dir)?;
            Box::new(sources::ImageSignatures::registry(src, ctx, r, &conf)?)
        }
        (TransportRef::Dir(d), _) => Box::new(sources::ImageSignatures {
            src,
            ctx,
            registry: None,
            dir: Some(d.clone()),
            referrers: false,
        }),
        // The store keeps a manifest's GPG signatures in a directory of its own.
        (TransportRef::Local(_), _) => Box::new(sources::ImageSignatures {
            src,
            ctx,
            registry: None,
            dir: Some(crate::store::Store::signatures_of(&ctx.store_root, digest)?),
            referrers: true,
        }),
        _ => Box::new(sources::ImageSignatures {
            src,
            ctx,
            registry: None,
            dir: None,
            referrers: true,
        }),
    })
}

/// A source whose top manifest is the one the policy check read.
struct Pinned {
    inner: Box<dyn ImageSource>,
    top: (Vec<u8>, String),
}

#[async_trait]
impl ImageSource for Pinned {
    fn name(&self) -> String {
        self.inner.name()
    }
    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)> {
        match instance {
            None => Ok(self.top.clone()),
            Some(_) => self.inner.manifest(instance).await,
        }
    }
    async fn blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        self.inner.blob(desc).await
    }
    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        self.inner.referrers(subject).await
    }
    async fn tagged_manifest(&self, tag: &str) -> Result<Option<(Vec<u8>, String)>> {
        self.inner.tagged_manifest(tag).await
    }
    fn reuse_hint(&self) -> Option<ReuseHint> {
        self.inner.reuse_hint()
    }
}
