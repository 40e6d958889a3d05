//! Compression kinds of layer blobs: the one `Compression` type, its media types, and detection by media
//! type or by magic bytes. The codecs themselves live in the layer module's `compress`.

use super::media;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::Gzip => media::OCI_LAYER_GZIP,
            Compression::Zstd => media::OCI_LAYER_ZSTD,
            Compression::None => media::OCI_LAYER,
        }
    }
    /// The Docker v2s2 layer media type (Docker has no zstd type; zstd layers keep the OCI type).
    pub fn docker_media_type(self) -> &'static str {
        match self {
            Compression::Gzip => media::DOCKER_LAYER_GZIP,
            Compression::Zstd => media::OCI_LAYER_ZSTD,
            Compression::None => media::DOCKER_LAYER,
        }
    }
    /// The layer media type for this compression in a manifest of type `manifest_mt`.
    pub fn media_type_in(self, manifest_mt: &str) -> &'static str {
        if manifest_mt == media::DOCKER_MANIFEST {
            self.docker_media_type()
        } else {
            self.oci_media_type()
        }
    }
    /// What a layer media type says: `None` for a blob that is not a recognised layer (left untouched).
    pub fn of_media_type(mt: &str) -> Option<Compression> {
        match mt {
            media::OCI_LAYER | media::DOCKER_LAYER => Some(Compression::None),
            media::OCI_LAYER_GZIP | media::DOCKER_LAYER_GZIP => Some(Compression::Gzip),
            media::OCI_LAYER_ZSTD => Some(Compression::Zstd),
            _ => None,
        }
    }
    /// Look at the first bytes of a stream and say how it is compressed.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" | "zstd:chunked" => Ok(Compression::Zstd),
            "none" | "uncompressed" => Ok(Compression::None),
            _ => anyhow::bail!("unknown compression format {s:?}: use gzip, zstd or none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_round_trip() {
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            assert_eq!(Compression::of_media_type(c.oci_media_type()), Some(c));
            assert_eq!(Compression::of_media_type(c.docker_media_type()), Some(c));
        }
        assert_eq!(Compression::of_media_type(media::OCI_CONFIG), None);
        assert_eq!(
            Compression::Gzip.media_type_in(media::DOCKER_MANIFEST),
            media::DOCKER_LAYER_GZIP
        );
        assert_eq!(
            Compression::Zstd.media_type_in(media::DOCKER_MANIFEST),
            media::OCI_LAYER_ZSTD
        );
    }

    #[test]
    fn detects_magic_bytes() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"ustar"), Compression::None);
    }
}
