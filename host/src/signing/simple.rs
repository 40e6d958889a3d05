//! GPG "simple signing" (containers-signature(5)) as skopeo does it: payloads, keys from the user's GnuPG
//! keyring (exported with `gpg`, opened in the `gpg` plugin), and where an image's signatures are stored.
//!
//! * Signing keys: `--sign-by FINGERPRINT` exports the secret key from `$GNUPGHOME` (default `~/.gnupg`)
//!   with `gpg --export-secret-keys`, the passphrase (if any) given to gpg in loopback mode; the plugin then
//!   unlocks the exported key with the same passphrase. Nothing is written to disk.
//! * Storage: a registry image's signatures go to its lookaside (registries.d `lookaside-staging`, else
//!   `lookaside`, else the built-in default), `<repo>@sha256=<hex>/signature-N`, each file written
//!   atomically, the list replaced as containers/image replaces it; a `dir:` image keeps `signature-N`
//!   files; other destinations (oci:, archives, the store) cannot hold them.

use crate::plugin::signer::{KeyMaterial, SignRequest, SignatureFormat, Signed, SigningKey};
use crate::policy::Options;
use crate::policy::registries_d::{self, RegistriesD};
use crate::policy::signature::{self, ATOMIC_TYPE, MAX_LOOKASIDE, Signature};
use crate::policy::sources::{ImageSignatures, SignatureSource};
use crate::store::Store;
use crate::transport::{ImageSource, SystemContext, TransportRef};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The simple-signing payload for `digest` under `identity`, as containers/image writes it.
pub fn payload(identity: &str, digest: &str) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    serde_json::to_vec(&json!({
        "critical": {"identity": {"docker-reference": identity},
                     "image": {"docker-manifest-digest": digest}, "type": ATOMIC_TYPE},
        "optional": {"creator": format!("lade {}", env!("CARGO_PKG_VERSION")), "timestamp": now}
    }))
    .expect("JSON")
}

/// Run gpg (`$LADE_GPG`, else `gpg` on PATH) in batch mode with `args`; `passphrase` goes to its stdin
/// (loopback pinentry). Returns stdout.
fn gpg(args: &[&str], passphrase: Option<&str>) -> Result<Vec<u8>> {
    let bin = std::env::var_os("LADE_GPG").unwrap_or_else(|| "gpg".into());
    let mut c = Command::new(&bin);
    c.args(["--batch", "--no-tty"]);
    if passphrase.is_some() {
        c.args(["--pinentry-mode", "loopback", "--passphrase-fd", "0"]);
    }
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().with_context(|| {
        format!(
            "running {} (GnuPG is needed to read keys from the GnuPG keyring; install gnupg)",
            bin.to_string_lossy()
        )
    })?;
    if let Some(p) = passphrase
        && let Some(mut stdin) = child.stdin.take()
    {
        let _ = writeln!(stdin, "{p}");
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "gpg {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Where gpg keeps keys, for messages.
fn gnupg_home() -> String {
    std::env::var("GNUPGHOME").unwrap_or_else(|_| "~/.gnupg".into())
}

/// Open the secret key `fingerprint` of the user's GnuPG keyring in the gpg plugin `plugin`.
pub fn open_signing_key<'p>(
    plugin: &'p crate::plugin::Plugin,
    fingerprint: &str,
    passphrase: Option<&str>,
) -> Result<SigningKey<'p>> {
    let secret = gpg(&["--export-secret-keys", fingerprint], passphrase).with_context(|| {
        format!(
            "exporting the secret key {fingerprint} from {}{}",
            gnupg_home(),
            if passphrase.is_none() {
                " (lade never prompts: give the key's passphrase in a passphrase file)"
            } else {
                ""
            }
        )
    })?;
    if secret.is_empty() {
        bail!(
            "the GnuPG keyring in {} has no secret key {fingerprint} (`gpg --list-secret-keys` shows what it holds)",
            gnupg_home()
        );
    }
    plugin
        .signer()?
        .signing_key(&KeyMaterial {
            private_key: Some(secret),
            public_key: None,
            passphrase: passphrase.map(String::from),
            options: vec![crate::plugin::KeyValue {
                key: "fingerprint".into(),
                value: fingerprint.into(),
            }],
        })
        .with_context(|| {
            format!(
                "opening the GPG key {fingerprint}{}",
                if passphrase.is_none() {
                    " (if it has a passphrase, pass --sign-passphrase-file FILE)"
                } else {
                    ""
                }
            )
        })
}

/// The public keys `fingerprints` exported from the user's GnuPG keyring (a binary keyring).
pub fn export_public_keys(fingerprints: &[String]) -> Result<Vec<u8>> {
    let mut args = vec!["--export"];
    args.extend(fingerprints.iter().map(String::as_str));
    let keys = gpg(&args, None)?;
    if keys.is_empty() {
        bail!(
            "the GnuPG keyring in {} has none of the keys {}",
            gnupg_home(),
            fingerprints.join(", ")
        );
    }
    Ok(keys)
}

/// Sign `payload` with `key`: an OpenPGP message, stored as is (the old lookaside format skopeo writes).
pub fn sign(key: &SigningKey<'_>, payload: &[u8]) -> Result<Vec<u8>> {
    match key.sign(&SignRequest {
        format: SignatureFormat::OpenpgpMessage,
        payload: payload.to_vec(),
        payload_type: "application/vnd.containers.simple-signing".into(),
    })? {
        Signed::OpenpgpMessage(m) => Ok(m),
        _ => bail!("the gpg signer returned another format than the OpenPGP message asked for"),
    }
}

/// Where the GPG signatures of an image are (or would be) stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A lookaside base URL for the image's repository (`<base>@sha256=<hex>/signature-N`).
    Lookaside(url::Url),
    /// A `dir:` image's directory.
    Dir(PathBuf),
    /// The local store at this root (a directory per manifest, see [`crate::store::Store::signatures_of`]).
    Store(PathBuf),
    /// The transport keeps no signatures: why.
    None(String),
}

impl Storage {
    /// Where `name` (a transport string) keeps signatures: for reading (`write: false`, registries.d's
    /// `lookaside`) or writing (`lookaside-staging` first).
    pub fn of(name: &str, opts: &Options, ctx: &SystemContext, write: bool) -> Result<Storage> {
        Ok(match crate::transport::parse(name)? {
            TransportRef::Docker(r) => {
                let r = crate::reference::parse(&r)?;
                let conf = RegistriesD::load(&registries_d::dir(opts.registries_d.as_deref()))?;
                let url = conf.lookaside_url(&r, write)?;
                if write && url.scheme() != "file" {
                    Storage::None(format!(
                        "writing directly to the {} lookaside {url} is not supported: configure a \
                         lookaside-staging: file:// location in registries.d",
                        url.scheme()
                    ))
                } else {
                    Storage::Lookaside(url)
                }
            }
            TransportRef::Dir(d) => Storage::Dir(d),
            TransportRef::Local(_) => Storage::Store(ctx.store_root.clone()),
            _ => Storage::None(format!(
                "{} images cannot hold GPG signatures",
                name.split(':').next().unwrap_or(name)
            )),
        })
    }

    /// The path of signature `index` (0-based) of manifest `digest`.
    fn path(&self, digest: &str, index: usize) -> Result<PathBuf> {
        match self {
            Storage::Lookaside(base) => {
                let u = RegistriesD::signature_url(base, digest, index)?;
                u.to_file_path()
                    .map_err(|_| anyhow!("{u} is not a local path"))
            }
            Storage::Dir(d) => Ok(d.join(format!("signature-{}", index + 1))),
            Storage::Store(root) => {
                Ok(Store::signatures_of(root, digest)?.join(format!("signature-{}", index + 1)))
            }
            Storage::None(why) => bail!("{why}"),
        }
    }

    /// Where signatures of `digest` go, for messages.
    pub fn describe(&self, digest: &str) -> String {
        match self {
            Storage::Lookaside(base) => RegistriesD::signature_url(base, digest, 0)
                .map(|u| u.to_string().trim_end_matches("/signature-1").to_string())
                .unwrap_or_else(|_| base.to_string()),
            Storage::Dir(d) => d.display().to_string(),
            Storage::Store(root) => Store::signatures_of(root, digest)
                .unwrap_or_else(|_| Store::signatures_dir(root))
                .display()
                .to_string(),
            Storage::None(why) => why.clone(),
        }
    }

    /// Whether the signatures stored for `digest` are exactly `sigs` (`signature-1..N`, and no more).
    pub fn holds(&self, digest: &str, sigs: &[Vec<u8>]) -> Result<bool> {
        for i in 0..=sigs.len() {
            let p = self.path(digest, i)?;
            let found = match std::fs::read(&p) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
            };
            if found.as_ref() != sigs.get(i) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Replace the signatures of `digest` by `sigs`: `signature-1..N` written atomically, then any later
    /// ones removed (as containers/image does).
    pub fn write(&self, digest: &str, sigs: &[Vec<u8>]) -> Result<()> {
        for (i, s) in sigs.iter().enumerate() {
            let p = self.path(digest, i)?;
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            crate::fsutil::write_atomic(&p, s)
                .with_context(|| format!("writing the signature {}", p.display()))?;
        }
        for i in sigs.len()..MAX_LOOKASIDE {
            let p = self.path(digest, i)?;
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
            }
        }
        Ok(())
    }
}

/// The GPG simple signatures the image `name` (opened as `src`) carries for its manifest `digest`.
pub async fn read(
    name: &str,
    src: &dyn ImageSource,
    ctx: &SystemContext,
    opts: &Options,
    digest: &str,
) -> Result<Vec<Vec<u8>>> {
    let sigs = match Storage::of(name, opts, ctx, false)? {
        Storage::Lookaside(base) => ImageSignatures {
            src,
            ctx,
            registry: Some((base, false)),
            dir: None,
            referrers: false,
        },
        Storage::Dir(d) => ImageSignatures {
            src,
            ctx,
            registry: None,
            dir: Some(d),
            referrers: false,
        },
        Storage::Store(root) => ImageSignatures {
            src,
            ctx,
            registry: None,
            dir: Some(Store::signatures_of(&root, digest)?),
            referrers: false,
        },
        Storage::None(_) => return Ok(vec![]),
    };
    Ok(sigs
        .signatures(digest)
        .await
        .with_context(|| format!("reading the GPG signatures of {name}"))?
        .into_iter()
        .filter_map(|s| match s {
            Signature::SimpleSigning(b) => Some(b),
            Signature::Sigstore { .. } | Signature::Bundle(_) => None,
        })
        .collect())
}

/// The docker reference a signature of `name` names: `identity`, else the image's own (with its tag).
pub fn identity_for(name: &str, ctx: &SystemContext, identity: Option<&str>) -> Result<String> {
    super::cosign::identity_for(name, ctx, identity)
}

/// What a standalone or image signature check found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    /// The primary key's fingerprint.
    pub key_id: String,
    /// The fingerprint of the (sub)key that signed, when the plugin tells it.
    pub signer: Option<String>,
    pub docker_reference: String,
    pub manifest_digest: String,
}

/// Check one simple signature `sig` with the opened keyring `key`: the OpenPGP signature, the strict
/// payload, its manifest digest against `manifest_digest`; the identity is returned for the caller.
pub fn check(
    key: &crate::plugin::signer::VerifyingKey<'_>,
    sig: &[u8],
    manifest_digest: &str,
) -> Result<Verified> {
    let blob = match signature::from_blob(sig)? {
        Signature::SimpleSigning(b) => b,
        Signature::Sigstore { .. } | Signature::Bundle(_) => {
            bail!("a sigstore signature, not a GPG simple signature")
        }
    };
    let v = key.verify(None, &Signed::OpenpgpMessage(blob))?;
    let p = signature::parse_payload(&v.payload, ATOMIC_TYPE)?;
    if p.manifest_digest != manifest_digest {
        bail!(
            "the signature is for manifest digest {}, the manifest is {manifest_digest}",
            p.manifest_digest
        );
    }
    let signer = v
        .details
        .iter()
        .find(|kv| kv.key == "signer")
        .map(|kv| kv.value.to_ascii_uppercase());
    Ok(Verified {
        key_id: v.key_id,
        signer,
        docker_reference: p.docker_reference,
        manifest_digest: p.manifest_digest,
    })
}

/// Whether two docker references name the same image once normalized, as skopeo's standalone-verify
/// compares them (`busybox:1` = `docker.io/library/busybox:1`; no default tag is added).
pub fn same_reference(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        crate::reference::parse(s).map(|r| {
            let mut n = r.name();
            if let Some(t) = &r.tag {
                n = format!("{n}:{t}");
            }
            if let Some(d) = &r.digest {
                n = format!("{n}@{d}");
            }
            n
        })
    };
    match (norm(a), norm(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_as_containers_image_parses_them() {
        let d = format!("sha256:{}", "a".repeat(64));
        let p = signature::parse_payload(&payload("q.io/a:1", &d), ATOMIC_TYPE).unwrap();
        assert_eq!(p.docker_reference, "q.io/a:1");
        assert_eq!(p.manifest_digest, d);
    }

    #[test]
    fn writing_replaces_the_list() {
        let t = tempfile::tempdir().unwrap();
        let s = Storage::Dir(t.path().to_path_buf());
        let d = format!("sha256:{}", "b".repeat(64));
        s.write(&d, &[b"1".to_vec(), b"2".to_vec(), b"3".to_vec()])
            .unwrap();
        s.write(&d, &[b"x".to_vec()]).unwrap();
        assert_eq!(std::fs::read(t.path().join("signature-1")).unwrap(), b"x");
        assert!(!t.path().join("signature-2").exists());
        assert!(!t.path().join("signature-3").exists());
        let base = url::Url::from_directory_path(t.path()).unwrap();
        let mut base = base.clone();
        base.set_path(&format!("{}repo/app", base.path()));
        Storage::Lookaside(base)
            .write(&d, &[b"y".to_vec()])
            .unwrap();
        let f = t
            .path()
            .join(format!("repo/app@sha256={}/signature-1", "b".repeat(64)));
        assert_eq!(std::fs::read(f).unwrap(), b"y");
    }

    #[test]
    fn storage_follows_the_transport_and_registries_d() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("a.yaml"),
            "docker:\n  h.io/http:\n    lookaside: https://sigs.example/s\n  h.io/staged:\n    lookaside: https://sigs.example/s\n    lookaside-staging: file:///stage\n",
        )
        .unwrap();
        let opts = Options {
            registries_d: Some(t.path().to_path_buf()),
            ..Options::default()
        };
        let ctx = SystemContext {
            store_root: "/store".into(),
            ..Default::default()
        };
        let of = |n: &str, w: bool| Storage::of(n, &opts, &ctx, w).unwrap();
        assert!(
            matches!(of("docker://h.io/http/a:1", true), Storage::None(why) if why.contains("lookaside-staging"))
        );
        assert_eq!(
            of("docker://h.io/http/a:1", false),
            Storage::Lookaside(url::Url::parse("https://sigs.example/s/http/a").unwrap())
        );
        assert_eq!(
            of("docker://h.io/staged/a:1", true),
            Storage::Lookaside(url::Url::parse("file:///stage/staged/a").unwrap())
        );
        assert_eq!(of("dir:/x", true), Storage::Dir("/x".into()));
        assert!(matches!(of("oci:/x:t", true), Storage::None(_)));
        assert_eq!(of("lade:x:1", true), Storage::Store("/store".into()));
        assert_eq!(
            Storage::Store("/s".into()).describe(&format!("sha256:{}", "c".repeat(64))),
            format!("/s/lade/signatures/sha256-{}", "c".repeat(64))
        );
        // A digest that is not one never becomes a path.
        assert!(
            Storage::Store("/s".into())
                .write("sha256:../../etc", &[b"x".to_vec()])
                .is_err()
        );
    }

    #[test]
    fn references_compare_as_skopeo_compares_them() {
        assert!(same_reference("busybox:1", "docker.io/library/busybox:1"));
        assert!(!same_reference("busybox", "busybox:latest"));
        assert!(!same_reference("q.io/a:1", "q.io/a:2"));
    }
}
