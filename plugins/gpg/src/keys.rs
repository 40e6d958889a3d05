//! OpenPGP key files: parsing (armored or binary, one or more keys) and the state of each component key
//! (the primary and its subkeys): bound by a valid self-signature, able to sign, revoked, expired.
//!
//! rpgp parses and checks signatures but leaves these semantics to its users; this module does what gpg
//! does for a signing key, kept small: a component signs only when its newest valid binding says it may,
//! a signing subkey needs its back-signature, and a verified revocation or a passed expiry retires it.

use pgp::composed::{Deserializable, SignedPublicKey, SignedSecretKey};
use pgp::packet::{PublicKey, PublicSubkey, Signature, SignatureType, SubpacketData};
use pgp::types::{KeyDetails, KeyId, Tag};

/// A key file is at most this large (a keyring of a few hundred keys).
pub const MAX_KEY_FILE: usize = 16 << 20;

/// The id containers tools show for a key: its fingerprint, in uppercase hex.
pub fn fingerprint_hex(key: &impl KeyDetails) -> String {
    format!("{:X}", key.fingerprint())
}

/// The binary OpenPGP data in a file: the bytes themselves, or the content of each ASCII-armor block
/// (`-----BEGIN PGP <label>-----`), in order. `labels` are the armor labels accepted (`PUBLIC KEY BLOCK`).
pub fn dearmor(bytes: &[u8], what: &str, labels: &[&str]) -> Result<Vec<Vec<u8>>, String> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(format!("the {what} is empty"));
    };
    if bytes[start] & 0x80 != 0 {
        return Ok(vec![bytes.to_vec()]);
    }
    const BEGIN: &[u8] = b"-----BEGIN PGP ";
    let begins: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i..].starts_with(BEGIN))
        .collect();
    if begins.is_empty() {
        return Err(format!(
            "the {what} is neither binary OpenPGP data nor ASCII-armored (no `-----BEGIN PGP` line)"
        ));
    }
    let mut blocks = Vec::new();
    for (n, &at) in begins.iter().enumerate() {
        let end = begins.get(n + 1).copied().unwrap_or(bytes.len());
        let block = &bytes[at..end];
        let label_end = block[BEGIN.len()..]
            .windows(5)
            .position(|w| w == b"-----")
            .map(|p| BEGIN.len() + p)
            .ok_or_else(|| format!("the {what} has a malformed armor header line"))?;
        let label = String::from_utf8_lossy(&block[BEGIN.len()..label_end]).into_owned();
        if !labels.contains(&label.as_str()) {
            return Err(format!(
                "the {what} holds a `PGP {label}` block; expected {}",
                labels
                    .iter()
                    .map(|l| format!("`PGP {l}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        let mut reader = pgp::armor::Dearmor::new(block);
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut data)
            .map_err(|e| format!("the {what}'s armor block {} is malformed: {e}", n + 1))?;
        blocks.push(data);
    }
    Ok(blocks)
}

/// Every public key (certificate) in a keyring file.
pub fn parse_public_keys(bytes: &[u8]) -> Result<Vec<SignedPublicKey>, String> {
    let what = "public keyring";
    let mut keys = Vec::new();
    for block in dearmor(bytes, what, &["PUBLIC KEY BLOCK"])? {
        let parsed = SignedPublicKey::from_bytes_many(&block[..])
            .map_err(|e| format!("the {what} is not OpenPGP data: {e}"))?;
        for key in parsed {
            keys.push(key.map_err(|e| format!("the {what} holds a malformed key: {e}"))?);
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "the {what} holds no public key (export one with `gpg --export FINGERPRINT`)"
        ));
    }
    Ok(keys)
}

/// Every secret key in a file from `gpg --export-secret-keys`.
pub fn parse_secret_keys(bytes: &[u8]) -> Result<Vec<SignedSecretKey>, String> {
    let what = "secret key file";
    let mut keys = Vec::new();
    for block in dearmor(bytes, what, &["PRIVATE KEY BLOCK"])? {
        let parsed = SignedSecretKey::from_bytes_many(&block[..])
            .map_err(|e| format!("the {what} is not OpenPGP data: {e}"))?;
        for key in parsed {
            keys.push(key.map_err(|e| format!("the {what} holds a malformed key: {e}"))?);
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "the {what} holds no secret key (export one with `gpg --export-secret-keys FINGERPRINT`)"
        ));
    }
    Ok(keys)
}

/// A component key's public packet.
#[derive(Debug, Clone)]
pub enum KeyPacket {
    Primary(PublicKey),
    Subkey(PublicSubkey),
}

impl KeyPacket {
    pub fn fingerprint(&self) -> String {
        match self {
            KeyPacket::Primary(k) => fingerprint_hex(k),
            KeyPacket::Subkey(k) => fingerprint_hex(k),
        }
    }

    pub fn key_id(&self) -> KeyId {
        match self {
            KeyPacket::Primary(k) => k.legacy_key_id(),
            KeyPacket::Subkey(k) => k.legacy_key_id(),
        }
    }

    pub fn created(&self) -> u32 {
        match self {
            KeyPacket::Primary(k) => k.created_at().as_secs(),
            KeyPacket::Subkey(k) => k.created_at().as_secs(),
        }
    }

    /// Verifies a data signature over `data` made by this key.
    pub fn verify(&self, sig: &Signature, data: &[u8]) -> Result<(), String> {
        match self {
            KeyPacket::Primary(k) => sig.verify(k, data),
            KeyPacket::Subkey(k) => sig.verify(k, data),
        }
        .map_err(|e| e.to_string())
    }
}

/// One component key of a certificate, with what its self-signatures say about it.
#[derive(Debug, Clone)]
pub struct Component {
    /// The certificate's primary fingerprint (the id lade reports).
    pub primary: String,
    pub key: KeyPacket,
    /// Why this component may not sign data (no valid binding, no signing flag, no back-signature).
    pub unusable: Option<String>,
    /// Set when a valid revocation retires it (or its primary key).
    pub revoked: bool,
    /// Unix time after which it (or its primary key) has expired.
    pub expires: Option<u32>,
}

impl Component {
    /// Why it may not sign now (`now` in Unix seconds), or None when it may.
    pub fn refusal(&self, now: u32) -> Option<String> {
        let which = match self.key {
            KeyPacket::Primary(_) => format!("key {}", self.primary),
            KeyPacket::Subkey(_) => {
                format!("subkey {} of key {}", self.key.fingerprint(), self.primary)
            }
        };
        if self.revoked {
            return Some(format!("{which} is revoked"));
        }
        if let Some(at) = self.expires.filter(|&at| at <= now) {
            return Some(format!("{which} expired (at Unix time {at})"));
        }
        self.unusable.as_ref().map(|why| format!("{which} {why}"))
    }
}

/// The newest of `sigs` by creation time.
fn newest<'a>(sigs: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    sigs.max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))
}

/// Whether a binding signature carries a key-flags subpacket at all (old keys may have none).
fn has_key_flags(sig: &Signature) -> bool {
    sig.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    })
}

/// The expiry a binding signature gives a key created at `created`.
fn expiry(sig: &Signature, created: u32) -> Option<u32> {
    sig.key_expiration_time()
        .map(|d| d.as_secs())
        .filter(|&d| d > 0)
        .map(|d| created.saturating_add(d))
}

fn earliest(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The component keys of a certificate, with their state. Signatures that do not verify (third-party
/// certifications, corrupt ones) are ignored, as gpg ignores them.
pub fn components(cert: &SignedPublicKey) -> Vec<Component> {
    let primary = &cert.primary_key;
    let fpr = fingerprint_hex(primary);
    let created = primary.created_at().as_secs();

    let mut self_sigs: Vec<&Signature> = Vec::new();
    for user in &cert.details.users {
        for sig in &user.signatures {
            if sig.is_certification()
                && sig
                    .verify_certification(primary, Tag::UserId, &user.id)
                    .is_ok()
            {
                self_sigs.push(sig);
            }
        }
    }
    for sig in &cert.details.direct_signatures {
        if sig.typ() == Some(SignatureType::Key) && sig.verify_key(primary).is_ok() {
            self_sigs.push(sig);
        }
    }
    let revoked = cert.details.revocation_signatures.iter().any(|sig| {
        sig.typ() == Some(SignatureType::KeyRevocation) && sig.verify_key(primary).is_ok()
    });
    let newest_self = newest(self_sigs.iter().copied());
    let primary_expires = newest_self.and_then(|s| expiry(s, created));
    let unusable = match newest_self {
        None => Some("has no valid self-signature".to_string()),
        Some(s) if has_key_flags(s) && !s.key_flags().sign() => {
            Some("is not marked for signing (key flags)".to_string())
        }
        Some(_) => None,
    };
    let mut out = vec![Component {
        primary: fpr.clone(),
        key: KeyPacket::Primary(primary.clone()),
        unusable,
        revoked,
        expires: primary_expires,
    }];

    for sub in &cert.public_subkeys {
        let bindings = sub.signatures.iter().filter(|s| {
            s.typ() == Some(SignatureType::SubkeyBinding)
                && s.verify_subkey_binding(primary, &sub.key).is_ok()
        });
        let sub_revoked = sub.signatures.iter().any(|s| {
            s.typ() == Some(SignatureType::SubkeyRevocation)
                && s.verify_subkey_binding(primary, &sub.key).is_ok()
        });
        let binding = newest(bindings);
        let unusable = match binding {
            None => Some("has no valid binding signature".to_string()),
            Some(b) if !b.key_flags().sign() => {
                Some("is not marked for signing (key flags)".to_string())
            }
            Some(b) => match b.embedded_signature() {
                Some(back) if back.verify_primary_key_binding(&sub.key, primary).is_ok() => None,
                _ => Some("has no valid back-signature (primary key binding)".to_string()),
            },
        };
        let sub_created = sub.key.created_at().as_secs();
        out.push(Component {
            primary: fpr.clone(),
            key: KeyPacket::Subkey(sub.key.clone()),
            unusable,
            revoked: revoked || sub_revoked,
            expires: earliest(
                primary_expires,
                binding.and_then(|b| expiry(b, sub_created)),
            ),
        });
    }
    out
}

/// The current time in Unix seconds (WASI's wall clock in the sandbox).
pub fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}
