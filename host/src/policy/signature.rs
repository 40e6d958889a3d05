//! Signatures as the engine sees them, and the checks that need no cryptography: the signature blob
//! formats (containers-signature(5) and containers/image's `FromBlob`), the simple-signing payload parsed
//! strictly (exactly `critical.{type,image,identity}`; an unknown critical member is refused), and the
//! manifest digest rule (sha256 of the manifest, a v2s1 manifest's JWS signatures stripped first).

use super::json::{self, Json};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use std::collections::BTreeMap;

/// `critical.type` of a GPG simple signature.
pub const ATOMIC_TYPE: &str = "atomic container signature";
/// `critical.type` of a cosign (sigstore) payload.
pub const COSIGN_TYPE: &str = "cosign container image signature";
/// The media type of a sigstore attachment layer.
pub const SIGSTORE_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a sigstore attachment's base64 signature.
pub const SIGSTORE_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// How many lookaside signatures are read at most (containers/image's `maxLookasideSignatures`).
pub const MAX_LOOKASIDE: usize = 128;
/// The largest signature body read (containers/image's `MaxSignatureBodySize`).
pub const MAX_SIGNATURE_BYTES: usize = 4 << 20;

/// One signature an image carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Signature {
    /// A GPG "simple signing" blob (an OpenPGP message around the JSON payload).
    SimpleSigning(Vec<u8>),
    /// A sigstore signature: the payload, its media type and the annotations (the base64 signature is in
    /// `dev.cosignproject.cosign/signature`).
    Sigstore {
        media_type: String,
        payload: Vec<u8>,
        annotations: BTreeMap<String, String>,
    },
    /// A sigstore bundle (cosign v3, an OCI 1.1 referrer of the image): its JSON, a DSSE envelope over an
    /// in-toto statement ([`super::statement`]).
    Bundle(Vec<u8>),
}

/// A signature file as stored in a lookaside or a `dir:` image: a bare OpenPGP message (the old format), or
/// `\0` + a format name + `\n` + the contents (`simple-signing`, `sigstore-json`).
pub fn from_blob(blob: &[u8]) -> Result<Signature> {
    let Some(&first) = blob.first() else {
        bail!("empty signature blob");
    };
    match first {
        // OpenPGP packet tags a signed message starts with: compressed data, one-pass signature, signature
        // (old and new packet formats).
        0xA0..=0xA3 | 0xC8 | 0x90..=0x92 | 0x3d | 0xC4 | 0x88..=0x8B | 0xC2 => {
            Ok(Signature::SimpleSigning(blob.to_vec()))
        }
        0x00 => {
            let rest = &blob[1..];
            let nl = rest.iter().position(|&b| b == b'\n').ok_or_else(|| {
                anyhow!("invalid signature format: no newline after the format name")
            })?;
            let (format, chunk) = (&rest[..nl], &rest[nl + 1..]);
            if let Some(b) = format.iter().find(|&&b| !(32..0x7F).contains(&b)) {
                bail!("invalid signature format: non-ASCII byte {b:#x} in the format name");
            }
            match format {
                b"simple-signing" => Ok(Signature::SimpleSigning(chunk.to_vec())),
                b"sigstore-json" => sigstore_json(chunk),
                other => bail!(
                    "unrecognized signature format {:?}",
                    String::from_utf8_lossy(other)
                ),
            }
        }
        b => bail!("unrecognized signature format, starting with binary {b:#x}"),
    }
}

/// The `sigstore-json` file format: `{"mimeType", "payload" (base64), "annotations"}`.
fn sigstore_json(chunk: &[u8]) -> Result<Signature> {
    let v = json::parse(chunk).context("sigstore-json signature")?;
    let f = json::object(&v, "", Some(&["mimeType", "payload", "annotations"]))?;
    let media_type = f.required_string("mimeType")?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(f.required_string("payload")?)
        .context("payload: not valid base64")?;
    let a = json::object(f.required("annotations")?, "annotations", None)?;
    let mut annotations = BTreeMap::new();
    for (k, _) in a.members() {
        annotations.insert(k.clone(), a.required_string(k)?);
    }
    Ok(Signature::Sigstore {
        media_type,
        payload,
        annotations,
    })
}

/// What a payload claims, after strict parsing. Untrusted until the caller has checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub manifest_digest: String,
    pub docker_reference: String,
}

/// Parse a simple-signing payload whose `critical.type` must be `expected_type`.
pub fn parse_payload(bytes: &[u8], expected_type: &str) -> Result<Payload> {
    let v = json::parse(bytes).context("the signed payload is not valid JSON")?;
    let top = exact(&v, "", &["critical", "optional"])?;
    let optional = top.required("optional")?;
    // `optional` is open-ended (unknown members ignored, duplicates already refused); a cosign payload
    // may have `null` there.
    if !(expected_type == COSIGN_TYPE && *optional == Json::Null) {
        let o = json::object(optional, "optional", None)?;
        o.string("creator")?;
        if let Some(t) = o.get("timestamp") {
            match t {
                Json::Number(n)
                    if n.as_i64().is_some() || n.as_f64().is_some_and(|f| f.fract() == 0.0) => {}
                Json::Number(_) => bail!("optional.timestamp is not an integer"),
                other => bail!(
                    "optional.timestamp: expected a number, found {}",
                    other.kind()
                ),
            }
        }
    }
    let critical = exact(
        top.required("critical")?,
        "critical",
        &["type", "image", "identity"],
    )?;
    let ty = critical.required_string("type")?;
    if ty != expected_type {
        bail!("critical.type: unrecognized signature type {ty:?} (expected {expected_type:?})");
    }
    let image = exact(
        critical.required("image")?,
        "critical.image",
        &["docker-manifest-digest"],
    )?;
    let manifest_digest = image.required_string("docker-manifest-digest")?;
    if !valid_digest(&manifest_digest) {
        bail!("critical.image.docker-manifest-digest: invalid digest {manifest_digest:?}");
    }
    let identity = exact(
        critical.required("identity")?,
        "critical.identity",
        &["docker-reference"],
    )?;
    Ok(Payload {
        manifest_digest,
        docker_reference: identity.required_string("docker-reference")?,
    })
}

/// An object with exactly the keys `keys`, each present.
fn exact<'a>(v: &'a Json, path: &str, keys: &[&str]) -> Result<json::Fields<'a>> {
    let f = json::object(v, path, Some(keys))?;
    for k in keys {
        f.required(k)?;
    }
    Ok(f)
}

/// A digest as go-digest parses it: a registered algorithm and its lowercase hex.
pub fn valid_digest(s: &str) -> bool {
    let Some((alg, hex)) = s.split_once(':') else {
        return false;
    };
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The digest containers/image gives a manifest: sha256 of the bytes, after stripping the JWS signatures
/// of a signed v2s1 manifest.
pub fn manifest_digest(manifest: &[u8]) -> Result<String> {
    let bytes = match v2s1_payload(manifest)? {
        Some(p) => p,
        None => manifest.to_vec(),
    };
    Ok(crate::oci::verify::sha256_digest(&bytes).to_string())
}

/// A signed schema 1 manifest's payload (libtrust "pretty signature": the bytes up to `formatLength`, plus
/// the base64url `formatTail` of the first signature's protected header). None for any other manifest.
fn v2s1_payload(manifest: &[u8]) -> Result<Option<Vec<u8>>> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return Ok(None);
    };
    if v.get("schemaVersion").and_then(|s| s.as_i64()) != Some(1) || v.get("signatures").is_none() {
        return Ok(None);
    }
    let protected = v["signatures"][0]["protected"]
        .as_str()
        .context("v2s1 manifest: the first signature has no protected header")?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: serde_json::Value = serde_json::from_slice(
        &b64.decode(protected.trim_end_matches('='))
            .context("v2s1 manifest: protected header is not base64url")?,
    )
    .context("v2s1 manifest: protected header is not JSON")?;
    let len = header["formatLength"]
        .as_u64()
        .context("v2s1 manifest: no formatLength")? as usize;
    let tail = b64
        .decode(
            header["formatTail"]
                .as_str()
                .context("v2s1 manifest: no formatTail")?
                .trim_end_matches('='),
        )
        .context("v2s1 manifest: formatTail is not base64url")?;
    if len > manifest.len() {
        bail!("v2s1 manifest: formatLength {len} is past the end of the manifest");
    }
    let mut out = manifest[..len].to_vec();
    out.extend_from_slice(&tail);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn payload(critical: &str, optional: &str) -> Vec<u8> {
        format!(r#"{{"critical":{critical},"optional":{optional}}}"#).into_bytes()
    }

    fn critical(ty: &str, extra: &str) -> String {
        format!(
            r#"{{"type":"{ty}","image":{{"docker-manifest-digest":"{D}"}},"identity":{{"docker-reference":"quay.io/a/b:1"}}{extra}}}"#
        )
    }

    #[test]
    fn payloads_parse_strictly() {
        let ok = parse_payload(
            &payload(
                &critical(ATOMIC_TYPE, ""),
                r#"{"creator":"x","timestamp":1,"other":[1]}"#,
            ),
            ATOMIC_TYPE,
        )
        .unwrap();
        assert_eq!(ok.manifest_digest, D);
        assert_eq!(ok.docker_reference, "quay.io/a/b:1");
        let cosign =
            parse_payload(&payload(&critical(COSIGN_TYPE, ""), "null"), COSIGN_TYPE).unwrap();
        assert_eq!(cosign.docker_reference, "quay.io/a/b:1");
        let err = |p: Vec<u8>, ty: &str| format!("{:#}", parse_payload(&p, ty).unwrap_err());
        // An unknown critical member is refused; so are a wrong type, a null optional for GPG, a
        // fractional timestamp, duplicate keys, bad digests, and the other signature type.
        assert!(
            err(
                payload(&critical(ATOMIC_TYPE, r#","extra":1"#), "{}"),
                ATOMIC_TYPE
            )
            .contains("critical: unknown key \"extra\"")
        );
        assert!(
            err(payload(&critical(ATOMIC_TYPE, ""), "null"), ATOMIC_TYPE)
                .contains("optional: expected an object")
        );
        assert!(
            err(
                payload(&critical(ATOMIC_TYPE, ""), r#"{"timestamp":1.5}"#),
                ATOMIC_TYPE
            )
            .contains("not an integer")
        );
        assert!(
            err(
                payload(&critical(ATOMIC_TYPE, ""), r#"{"creator":1}"#),
                ATOMIC_TYPE
            )
            .contains("optional.creator")
        );
        assert!(
            err(payload(&critical(COSIGN_TYPE, ""), "{}"), ATOMIC_TYPE)
                .contains("unrecognized signature type")
        );
        assert!(
            err(
                payload(&critical(ATOMIC_TYPE, ""), "{}")
                    .into_iter()
                    .chain(b"x".iter().copied())
                    .collect(),
                ATOMIC_TYPE
            )
            .contains("unexpected data")
        );
        let dup = format!(
            r#"{{"critical":{},"critical":{},"optional":{{}}}}"#,
            critical(ATOMIC_TYPE, ""),
            critical(ATOMIC_TYPE, "")
        );
        assert!(err(dup.into_bytes(), ATOMIC_TYPE).contains("duplicate key \"critical\""));
        let bad_digest = payload(&critical(ATOMIC_TYPE, "").replace(D, "sha256:ABC"), "{}");
        assert!(err(bad_digest, ATOMIC_TYPE).contains("invalid digest"));
        let no_identity = br#"{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},"optional":{}}"#;
        assert!(
            err(no_identity.to_vec(), ATOMIC_TYPE)
                .contains("critical: required key \"identity\" is missing")
        );
    }

    #[test]
    fn digests() {
        assert!(valid_digest(D));
        assert!(valid_digest(&format!("sha512:{}", "a".repeat(128))));
        assert!(!valid_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!valid_digest(&format!("md5:{}", "a".repeat(32))));
        assert!(!valid_digest("sha256"));
        let m = br#"{"schemaVersion":2}"#;
        assert_eq!(
            manifest_digest(m).unwrap(),
            crate::oci::verify::sha256_digest(m).to_string()
        );
    }

    #[test]
    fn v2s1_signatures_are_stripped() {
        // A payload and its pretty-signed form: formatLength bytes of the payload, then the tail.
        let payload = b"{\n   \"schemaVersion\": 1,\n   \"name\": \"a/b\"\n}";
        let len = payload.len() - 2; // up to before "\n}"
        let tail = &payload[len..];
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let protected = b64.encode(format!(
            r#"{{"formatLength":{len},"formatTail":"{}","time":"x"}}"#,
            b64.encode(tail)
        ));
        let signed = format!(
            "{},\n   \"signatures\": [{{\"protected\": \"{protected}\", \"signature\": \"x\"}}]\n}}",
            std::str::from_utf8(&payload[..len]).unwrap()
        );
        assert_eq!(
            manifest_digest(signed.as_bytes()).unwrap(),
            crate::oci::verify::sha256_digest(payload).to_string()
        );
    }

    #[test]
    fn blob_formats() {
        assert_eq!(
            from_blob(&[0xA3, 1, 2]).unwrap(),
            Signature::SimpleSigning(vec![0xA3, 1, 2])
        );
        assert_eq!(
            from_blob(b"\0simple-signing\n\x89x").unwrap(),
            Signature::SimpleSigning(b"\x89x".to_vec())
        );
        let s = from_blob(b"\0sigstore-json\n{\"mimeType\":\"m\",\"payload\":\"cA==\",\"annotations\":{\"k\":\"v\"}}").unwrap();
        let Signature::Sigstore {
            media_type,
            payload,
            annotations,
        } = s
        else {
            panic!()
        };
        assert_eq!(
            (
                media_type.as_str(),
                payload.as_slice(),
                annotations["k"].as_str()
            ),
            ("m", &b"p"[..], "v")
        );
        assert!(from_blob(b"").is_err());
        assert!(from_blob(b"\0other\nx").is_err());
        assert!(from_blob(b"{json}").is_err());
    }
}
