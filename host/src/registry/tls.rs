//! TLS for one registry: certs.d directories (`--cert-dir`, else `/etc/containers/certs.d/<host>`,
//! `~/.config/containers/certs.d/<host>`, `/etc/docker/certs.d/<host>`): `*.crt` are extra CAs, `*.cert` with
//! the matching `*.key` is a client certificate. HTTP clients are built once per distinct TLS setting and
//! shared by the whole process, so connections are pooled and reused.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// What makes two registries need different HTTP clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    pub verify: bool,
    pub ca_files: Vec<PathBuf>,
    /// (certificate, key) PEM files.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// The certs.d directories to look in for `host`.
pub fn cert_dirs(host: &str, explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(d) = explicit {
        return vec![d.to_path_buf()];
    }
    vec![
        Path::new("/etc/containers/certs.d").join(host),
        super::config::user_config_dir()
            .join("containers/certs.d")
            .join(host),
        Path::new("/etc/docker/certs.d").join(host),
    ]
}

/// Collect CA and client certificate files for `host`.
pub fn settings_for(host: &str, verify: bool, explicit_dir: Option<&Path>) -> Result<TlsSettings> {
    let mut s = TlsSettings {
        verify,
        ..Default::default()
    };
    for dir in cert_dirs(host, explicit_dir) {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading certificate directory {}", dir.display()));
            }
        };
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in &files {
            match f.extension().and_then(|e| e.to_str()) {
                Some("crt") => s.ca_files.push(f.clone()),
                Some("cert") => {
                    let key = f.with_extension("key");
                    if !key.exists() {
                        anyhow::bail!(
                            "client certificate {} has no matching key {}",
                            f.display(),
                            key.display()
                        );
                    }
                    s.client_cert.get_or_insert((f.clone(), key));
                }
                Some("key") if !f.with_extension("cert").exists() => {
                    anyhow::bail!(
                        "client key {} has no matching certificate {}",
                        f.display(),
                        f.with_extension("cert").display()
                    )
                }
                _ => {}
            }
        }
    }
    Ok(s)
}

static CLIENTS: LazyLock<Mutex<HashMap<TlsSettings, reqwest::Client>>> =
    LazyLock::new(Default::default);

/// The process-wide HTTP client for these settings.
pub fn client(s: &TlsSettings) -> Result<reqwest::Client> {
    let mut clients = CLIENTS.lock().expect("client cache lock");
    if let Some(c) = clients.get(s) {
        return Ok(c.clone());
    }
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("lade/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(32)
        .redirect(reqwest::redirect::Policy::limited(10))
        .no_proxy();
    if let Some(p) = std::env::var("HTTPS_PROXY")
        .ok()
        .or_else(|| std::env::var("https_proxy").ok())
        .filter(|p| !p.is_empty())
    {
        b = b.proxy(reqwest::Proxy::https(&p).with_context(|| format!("HTTPS_PROXY `{p}`"))?);
    }
    if !s.verify {
        // Nothing is verified, so the system's CA bundle (a few hundred certificates, tens of
        // milliseconds to parse) is not loaded.
        b = b
            .danger_accept_invalid_certs(true)
            .tls_built_in_root_certs(false);
    }
    for f in &s.ca_files {
        let pem =
            std::fs::read(f).with_context(|| format!("reading CA certificate {}", f.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("CA certificate {} is not PEM", f.display()))?;
        if certs.is_empty() {
            anyhow::bail!("CA file {} holds no PEM certificate", f.display());
        }
        for cert in certs {
            b = b.add_root_certificate(cert);
        }
    }
    if let Some((cert, key)) = &s.client_cert {
        let mut pem = std::fs::read(cert)
            .with_context(|| format!("reading client certificate {}", cert.display()))?;
        pem.push(b'\n');
        pem.extend(
            std::fs::read(key).with_context(|| format!("reading client key {}", key.display()))?,
        );
        let id = reqwest::Identity::from_pem(&pem).with_context(|| {
            format!(
                "client certificate {} / key {} are not a usable PEM pair",
                cert.display(),
                key.display()
            )
        })?;
        b = b.identity(id);
    }
    let c = b.build().context("building the HTTP client")?;
    clients.insert(s.clone(), c.clone());
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_certs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ca.crt"), "x").unwrap();
        std::fs::write(d.path().join("client.cert"), "x").unwrap();
        std::fs::write(d.path().join("client.key"), "x").unwrap();
        let s = settings_for("h:1", true, Some(d.path())).unwrap();
        assert_eq!(s.ca_files, [d.path().join("ca.crt")]);
        assert_eq!(
            s.client_cert,
            Some((d.path().join("client.cert"), d.path().join("client.key")))
        );
        std::fs::remove_file(d.path().join("client.key")).unwrap();
        assert!(settings_for("h:1", true, Some(d.path())).is_err());
        assert!(
            format!(
                "{:#}",
                client(&TlsSettings {
                    verify: true,
                    ca_files: vec![d.path().join("ca.crt")],
                    client_cert: None
                })
                .unwrap_err()
            )
            .contains("ca.crt")
        );
    }
}
