//! Flags several commands share, declared once: the registry flags of one-registry commands, the per-side
//! flags of two-sided ones (copy, sync), and the one human size format.

use super::Global;
use crate::oci::PlatformOverride;
use crate::registry::SystemContext;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use std::path::PathBuf;
use std::str::FromStr;

/// A clap value parser for a library type (which carries no clap derive): one of `values`, listed in
/// `--help`, turned into `T` by its `FromStr`.
pub fn choice<T>(values: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Debug,
{
    PossibleValuesParser::new(values).map(|s| s.parse::<T>().expect("every listed value parses"))
}

/// Registry flags of commands that talk to one registry (push, pull, build, inspect, manifest, list-tags,
/// delete, login), named as skopeo and podman name them.
#[derive(clap::Args, Debug, Clone)]
pub struct RemoteFlags {
    /// Require HTTPS and verify certificates (false also allows plain HTTP)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Credentials USER[:PASSWORD]
    #[arg(long, value_name = "USER[:PASS]")]
    pub creds: Option<String>,
    /// auth.json to read (and, for login, write) credentials (default: $REGISTRY_AUTH_FILE, then
    /// $XDG_RUNTIME_DIR/containers/auth.json)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// certs.d-style directory with the registry's CA (*.crt) and client certificate (*.cert, *.key)
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Retries after a transient failure
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retry_times: u32,
}

impl Default for RemoteFlags {
    fn default() -> Self {
        RemoteFlags {
            tls_verify: None,
            creds: None,
            authfile: None,
            cert_dir: None,
            retry_times: 3,
        }
    }
}

impl RemoteFlags {
    /// The context for the registry these flags are about (no platform override).
    pub fn context(&self, g: &Global) -> SystemContext {
        SystemContext {
            tls_verify: self.tls_verify,
            creds: self.creds.clone(),
            authfile: self.authfile.clone(),
            cert_dir: self.cert_dir.clone(),
            registries_conf: g.registries_conf.clone(),
            retry_times: self.retry_times,
            platform: PlatformOverride::default(),
            store_root: g.root(),
        }
    }
}

/// Registry flags per side of a copy, named as skopeo names them (`copy` and `sync` share them).
#[derive(clap::Args, Debug)]
pub struct SideFlags {
    /// Credentials USER[:PASSWORD] for the source registry
    #[arg(long, value_name = "USER[:PASS]")]
    pub src_creds: Option<String>,
    /// Credentials USER[:PASSWORD] for the destination registry
    #[arg(long, value_name = "USER[:PASS]")]
    pub dest_creds: Option<String>,
    /// Verify TLS for the source registry
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub src_tls_verify: Option<bool>,
    /// Verify TLS for the destination registry
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub dest_tls_verify: Option<bool>,
    /// auth.json for the source
    #[arg(long, value_name = "FILE")]
    pub src_authfile: Option<PathBuf>,
    /// auth.json for the destination
    #[arg(long, value_name = "FILE")]
    pub dest_authfile: Option<PathBuf>,
    /// certs.d-style directory for the source registry
    #[arg(long, value_name = "DIR")]
    pub src_cert_dir: Option<PathBuf>,
    /// certs.d-style directory for the destination registry
    #[arg(long, value_name = "DIR")]
    pub dest_cert_dir: Option<PathBuf>,
    /// Retries after a transient failure
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retry_times: u32,
}

impl SideFlags {
    /// The source side's context; `authfile` is the fallback for both sides (`--authfile`).
    pub fn src_context(&self, g: &Global, authfile: Option<&PathBuf>) -> SystemContext {
        side_context(
            g,
            self.src_tls_verify,
            self.src_creds.clone(),
            self.src_authfile.clone().or(authfile.cloned()),
            self.src_cert_dir.clone(),
            self.retry_times,
        )
    }
    /// The destination side's context.
    pub fn dest_context(&self, g: &Global, authfile: Option<&PathBuf>) -> SystemContext {
        side_context(
            g,
            self.dest_tls_verify,
            self.dest_creds.clone(),
            self.dest_authfile.clone().or(authfile.cloned()),
            self.dest_cert_dir.clone(),
            self.retry_times,
        )
    }
}

fn side_context(
    g: &Global,
    tls_verify: Option<bool>,
    creds: Option<String>,
    authfile: Option<PathBuf>,
    cert_dir: Option<PathBuf>,
    retry_times: u32,
) -> SystemContext {
    SystemContext {
        tls_verify,
        creds,
        authfile,
        cert_dir,
        registries_conf: g.registries_conf.clone(),
        retry_times,
        platform: PlatformOverride::default(),
        store_root: g.root(),
    }
}

/// A size in decimal units with up to three decimals, trailing zeros dropped ("5.06 MB", "5 MB"), as
/// buildah and podman print sizes.
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        let digits = format!("{v:.3}");
        format!(
            "{} {}",
            digits.trim_end_matches('0').trim_end_matches('.'),
            units[u]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_buildah_prints_them() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(5_060_000), "5.06 MB");
        assert_eq!(human_size(5_000_000), "5 MB");
        assert_eq!(human_size(1_234_567_890), "1.235 GB");
    }
}
