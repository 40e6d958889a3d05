//! The image config, typed with Docker's fields (oci-spec's `Config` lacks `Healthcheck`, `OnBuild`, `Shell`
//! and keeps no unknown fields).
//!
//! Docker writes absent container-config fields as `null` (`"Entrypoint": null`); those fields are
//! `Nullable`, so a config read and written keeps its nulls and its bytes. Every struct keeps the fields it
//! does not name in `extra`.

use super::document::Extra;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A field that may be absent (`None`), `null` (`Some(None)`) or set.
pub type Nullable<T> = Option<Option<T>>;

/// Reads a present field (even `null`) as `Some`, so `Nullable` tells `null` from absent.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// An image config (`application/vnd.oci.image.config.v1+json` or Docker's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub config: Nullable<ContainerConfig>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub rootfs: Nullable<RootFs>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub history: Nullable<Vec<History>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `config` section: what a container of the image runs with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Nullable<BTreeMap<String, Value>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub env: Nullable<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Nullable<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub cmd: Nullable<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub volumes: Nullable<BTreeMap<String, Value>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub labels: Nullable<BTreeMap<String, String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Nullable<Healthcheck>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_build: Nullable<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub shell: Nullable<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `HEALTHCHECK`: durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `rootfs`: the layers' diff_ids, bottom first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default = "layers")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn layers() -> String {
    "layers".into()
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: layers(),
            diff_ids: vec![],
            extra: Extra::new(),
        }
    }
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ImageConfig {
    /// The `config` section (absent or `null`: none).
    pub fn container(&self) -> Option<&ContainerConfig> {
        self.config.as_ref().and_then(Option::as_ref)
    }

    /// The `config` section, made an empty one when absent or `null`.
    pub fn container_mut(&mut self) -> &mut ContainerConfig {
        self.config
            .get_or_insert_with(|| Some(ContainerConfig::default()))
            .get_or_insert_with(ContainerConfig::default)
    }

    /// `rootfs.diff_ids` (none when absent).
    pub fn diff_ids(&self) -> &[String] {
        match &self.rootfs {
            Some(Some(r)) => &r.diff_ids,
            _ => &[],
        }
    }

    /// The history entries (none when absent).
    pub fn history(&self) -> &[History] {
        match &self.history {
            Some(Some(h)) => h,
            _ => &[],
        }
    }
}

/// A `Nullable` field's value when set.
pub fn set<T>(v: &Nullable<T>) -> Option<&T> {
    v.as_ref().and_then(Option::as_ref)
}

#[cfg(test)]
mod tests {
    use super::super::document::{parse, to_vec};
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_nulls_and_unknown_fields_survive() {
        let v = json!({
            "architecture": "amd64", "os": "linux", "docker_version": "20.10",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Entrypoint": null, "OnBuild": null,
                       "Labels": null, "Image": "sha256:00", "AttachStdin": false,
                       "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000, "X": 1}},
            "container_config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
            "history": [{"created": "2020", "created_by": "x", "empty_layer": true, "y": 2}],
        });
        let bytes = serde_json::to_vec(&v).unwrap();
        let c: ImageConfig = parse(&bytes).unwrap();
        let cc = c.container().unwrap();
        assert_eq!(cc.entrypoint, Some(None));
        assert_eq!(set(&cc.cmd).unwrap(), &["sh"]);
        assert_eq!(c.diff_ids(), ["sha256:aa"]);
        assert_eq!(to_vec(&c).unwrap(), bytes);
    }
}
