//! GPG simple signing in push and copy (skopeo's `--sign-by FINGERPRINT`), and the signatures a copy keeps
//! (`--remove-signatures` drops them): the source's GPG signatures are read from its lookaside or `dir:`,
//! the copy then must keep the manifest digest, and the destination's lookaside or `dir:` receives them with
//! the new one. A destination that cannot hold them is refused before anything is copied.

use super::Global;
use crate::copy::{CopyOptions, CopyReport, MultiArch};
use crate::plugin::signer::SigningKey;
use crate::plugin::{Plugin, PluginSource};
use crate::policy::signature;
use crate::signing::simple::{self, Storage};
use crate::transport::{ImageSource, SystemContext, media};
use anyhow::{Context, Result, bail};

/// GPG signing and signature flags of push and copy (skopeo's names).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GpgSignFlags {
    /// Sign with this GPG key of the GnuPG keyring ($GNUPGHOME, else ~/.gnupg; gpg must be installed): simple
    /// signing, stored in the registries.d lookaside (lookaside-staging first) or in a dir: image
    #[arg(long, value_name = "FINGERPRINT")]
    pub sign_by: Option<String>,
    /// Do not copy signatures (GPG lookaside and dir: signatures, cosign .sig tags, sigstore bundles)
    #[arg(long)]
    pub remove_signatures: bool,
}

/// The embedded gpg signer, alive as long as the process (opened keys borrow it).
pub fn plugin(g: &Global) -> Result<&'static Plugin> {
    let p = super::plugin::runtime(g)?
        .load(&PluginSource::Embedded(crate::signing::GPG_PLUGIN.into()))?;
    Ok(Box::leak(Box::new(p)))
}

/// The `--sign-by` key, opened (its passphrase checked) for the whole process; `None` without the flag.
fn open_key(
    g: &Global,
    f: &GpgSignFlags,
    sign: &super::sign::SignFlags,
) -> Result<Option<&'static SigningKey<'static>>> {
    let Some(fpr) = &f.sign_by else {
        return Ok(None);
    };
    let pass = match &sign.sign_passphrase_file {
        Some(f) => Some(super::sign::passphrase(Some(f.as_path()))?),
        None => None,
    };
    let key = simple::open_signing_key(plugin(g)?, fpr, pass.as_deref())?;
    Ok(Some(Box::leak(Box::new(key))))
}

/// A context for naming images (the store root is all identity_for reads).
fn g_ctx(g: &Global) -> SystemContext {
    super::flags::RemoteFlags::default().context(g)
}

/// One push or copy's GPG side: the key it signs with (opened before anything is copied), where the
/// destination keeps signatures, and whether the source's are dropped.
pub struct GpgCopy {
    /// Opened once and kept for the process (a sync signs many images with it).
    key: Option<&'static SigningKey<'static>>,
    identity: Option<String>,
    remove: bool,
    dest: String,
    storage: Storage,
    policy: crate::policy::Options,
    /// Into the store (a pull): signatures of what the store does not keep as it is are dropped (an index
    /// of which one image is kept, as podman pull drops them; a Docker manifest, stored as OCI), instead of
    /// refusing the copy.
    into_store: bool,
}

impl GpgCopy {
    pub fn new(
        g: &Global,
        f: &GpgSignFlags,
        sign: &super::sign::SignFlags,
        dest: &str,
    ) -> Result<GpgCopy> {
        // The destination is checked before the key's passphrase is asked for.
        let mut c = GpgCopy::keyless(g, f, sign).to(dest, &g_ctx(g), f.sign_by.is_some())?;
        c.key = open_key(g, f, sign)?;
        Ok(c)
    }

    /// A sync's GPG side, its destinations given image by image with [`GpgCopy::to`].
    pub fn for_sync(
        g: &Global,
        f: &GpgSignFlags,
        sign: &super::sign::SignFlags,
    ) -> Result<GpgCopy> {
        let mut c = GpgCopy::keyless(g, f, sign);
        c.key = open_key(g, f, sign)?;
        Ok(c)
    }

    /// The flags' GPG side without a destination or a key yet.
    fn keyless(g: &Global, f: &GpgSignFlags, sign: &super::sign::SignFlags) -> GpgCopy {
        GpgCopy {
            key: None,
            identity: sign.sign_identity.clone(),
            remove: f.remove_signatures,
            dest: String::new(),
            storage: Storage::None("no destination".into()),
            policy: g.policy(),
            into_store: false,
        }
    }

    /// Whether it signs with --sign-by.
    pub fn signs(&self) -> bool {
        self.key.is_some()
    }

    /// The same GPG side for another destination (each image of a sync): where it keeps signatures and,
    /// when it will be signed (`signs`), the name the signature gives it, checked.
    pub fn to(&self, dest: &str, ctx: &SystemContext, signs: bool) -> Result<GpgCopy> {
        let storage = Storage::of(dest, &self.policy, ctx, true)?;
        if signs {
            if let Storage::None(why) = &storage {
                bail!(
                    "cannot sign {dest} with --sign-by: {why} (sign a docker:// or dir: destination)"
                );
            }
            // A destination without a docker reference needs --sign-identity.
            simple::identity_for(dest, ctx, self.identity.as_deref())?;
        }
        Ok(GpgCopy {
            key: self.key,
            identity: self.identity.clone(),
            remove: self.remove,
            dest: dest.to_string(),
            into_store: matches!(storage, Storage::Store(_)),
            storage,
            policy: self.policy.clone(),
        })
    }

    /// Whether the destination already holds exactly `kept` for manifest `digest` and nothing is to be
    /// signed: then a copy would change nothing.
    pub fn complete(&self, digest: &str, kept: &[Vec<u8>]) -> Result<bool> {
        Ok(self.key.is_none() && (kept.is_empty() || self.storage.holds(digest, kept)?))
    }

    /// Before copying `src` (named `src_name`, already checked against the policy): the options the copy
    /// runs with and the source's GPG signatures it keeps. Refuses, before anything is written, signatures
    /// the destination cannot hold.
    /// The source comes back with the manifest read here pinned, so the copy does not fetch it again.
    pub async fn prepare(
        &self,
        src_name: &str,
        src: Box<dyn ImageSource>,
        src_ctx: &SystemContext,
        opts: &CopyOptions,
    ) -> Result<(Box<dyn ImageSource>, CopyOptions, Vec<Vec<u8>>)> {
        let mut opts = opts.clone();
        opts.signatures = !self.remove;
        if self.remove {
            return Ok((src, opts, vec![]));
        }
        let (manifest, mt) = src
            .manifest(None)
            .await
            .with_context(|| format!("reading the manifest of {src_name}"))?;
        // The store keeps signatures only of what it keeps as it is: one image of an index is not the index
        // they sign, and a Docker manifest is stored converted to OCI, under another digest.
        if self.into_store
            && ((media::is_index(&mt) && opts.multi_arch == MultiArch::System)
                || !(mt == media::OCI_MANIFEST || mt == media::OCI_INDEX))
        {
            return Ok((crate::policy::pinned(src, manifest, mt), opts, vec![]));
        }
        let digest = signature::manifest_digest(&manifest)?;
        let sigs = simple::read(src_name, src.as_ref(), src_ctx, &self.policy, &digest).await?;
        if !sigs.is_empty() {
            let n = sigs.len();
            if let Storage::None(why) = &self.storage {
                bail!(
                    "cannot copy the {n} GPG signature(s) of {src_name} to {}: {why}; pass --remove-signatures \
                     to copy the image without them",
                    self.dest
                );
            }
            if media::is_index(&mt) && opts.multi_arch == MultiArch::System {
                bail!(
                    "cannot keep the {n} GPG signature(s) of {src_name}: they sign its index, and only one image \
                     of it would be copied; pass --all, or --remove-signatures"
                );
            }
            // A rewritten manifest would invalidate them: the copy keeps every digest or fails.
            opts.preserve_digests = true;
        }
        Ok((crate::policy::pinned(src, manifest, mt), opts, sigs))
    }

    /// After the copy: store the kept signatures `sigs` and this copy's own at the destination.
    pub fn finish(
        &self,
        report: &CopyReport,
        mut sigs: Vec<Vec<u8>>,
        dst_ctx: &SystemContext,
    ) -> Result<()> {
        if let Some(key) = self.key {
            let identity = simple::identity_for(&self.dest, dst_ctx, self.identity.as_deref())?;
            let payload = simple::payload(&identity, &report.digest);
            sigs.push(simple::sign(key, &payload).context("signing with --sign-by")?);
        }
        if sigs.is_empty() {
            return Ok(());
        }
        self.storage.write(&report.digest, &sigs).with_context(|| {
            format!(
                "storing the signatures of {} at {}",
                self.dest,
                self.storage.describe(&report.digest)
            )
        })
    }
}

/// GPG signing flags of `build --push` (buildah's names).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BuildSignFlags {
    /// With --push: sign each pushed image with this GPG key of the GnuPG keyring (simple signing, stored
    /// in the registries.d lookaside)
    #[arg(long, value_name = "FINGERPRINT")]
    pub sign_by: Option<String>,
}

/// `build --push --sign-by`: the key, opened (and every lookaside checked) before the build; after the
/// push, each pushed name is signed under its own name.
pub struct PushedSigner {
    key: SigningKey<'static>,
    targets: Vec<(String, Storage)>,
}

impl PushedSigner {
    pub fn open(
        g: &Global,
        f: &BuildSignFlags,
        passphrase_file: Option<&std::path::Path>,
        push: bool,
        names: &[String],
    ) -> Result<Option<PushedSigner>> {
        let Some(fpr) = &f.sign_by else {
            return Ok(None);
        };
        if !push {
            bail!(
                "--sign-by signs the images a build pushes: add --push (or sign later with lade copy --sign-by)"
            );
        }
        let policy = g.policy();
        let mut targets = vec![];
        for n in names {
            let dest = format!("docker://{n}");
            match Storage::of(&dest, &policy, &g_ctx(g), true)? {
                Storage::None(why) => bail!("cannot sign {dest} with --sign-by: {why}"),
                s => targets.push((dest, s)),
            }
        }
        let pass = match passphrase_file {
            Some(p) => Some(super::sign::passphrase(Some(p))?),
            None => None,
        };
        let key = simple::open_signing_key(plugin(g)?, fpr, pass.as_deref())?;
        Ok(Some(PushedSigner { key, targets }))
    }

    /// Sign every pushed name: its manifest digest read back from the registry.
    pub fn sign(&self, ctx: &SystemContext) -> Result<()> {
        super::runtime()?.block_on(async {
            for (dest, storage) in &self.targets {
                let src = crate::transport::open_source(dest, ctx).await?;
                let (manifest, _) = src
                    .manifest(None)
                    .await
                    .with_context(|| format!("reading the pushed manifest of {dest}"))?;
                let digest = signature::manifest_digest(&manifest)?;
                let identity = simple::identity_for(dest, ctx, None)?;
                let sig = simple::sign(&self.key, &simple::payload(&identity, &digest))?;
                storage.write(&digest, &[sig]).with_context(|| {
                    format!(
                        "storing the signature of {dest} at {}",
                        storage.describe(&digest)
                    )
                })?;
            }
            anyhow::Ok(())
        })
    }
}
