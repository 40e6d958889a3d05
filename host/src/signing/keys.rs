//! cosign key pairs: `lade generate-key-pair` writes `<prefix>.key` (encrypted as cosign encrypts it) and
//! `<prefix>.pub` (PEM), made by the sigstore signer plugin. Neither file is overwritten; the private key is
//! mode 0600 and both appear whole or not at all.

use crate::fsutil::Staged;
use crate::plugin::KeyValue;
use crate::plugin::Plugin;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Make a key pair with `plugin` (the sigstore signer) and write it as `<prefix>.key` and `<prefix>.pub`.
/// Returns the two paths.
pub fn generate(
    plugin: &Plugin,
    prefix: &Path,
    passphrase: &str,
    algorithm: Option<&str>,
) -> Result<(PathBuf, PathBuf)> {
    let key = with_ext(prefix, "key");
    let public = with_ext(prefix, "pub");
    for p in [&key, &public] {
        if p.exists() {
            bail!(
                "{} exists; remove it or choose another --output-key-prefix (nothing was written)",
                p.display()
            );
        }
    }
    let options: Vec<KeyValue> = algorithm
        .map(|a| {
            vec![KeyValue {
                key: "algorithm".into(),
                value: a.into(),
            }]
        })
        .unwrap_or_default();
    let pair = plugin
        .signer()?
        .generate_key_pair(passphrase, &options)
        .context("generating a key pair")?;
    write_new(&key, &pair.private_key, 0o600)?;
    write_new(&public, &pair.public_key, 0o644)?;
    Ok((key, public))
}

fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let staged = Staged::new_in(dir)?;
    let mut f = staged.file();
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|_| f.write_all(data))
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    staged.publish_new(path)
}
