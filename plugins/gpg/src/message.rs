//! containers-signature(5) "atomic container signature" messages: an OpenPGP signed message (what
//! `gpg --sign` and skopeo write) whose literal data is the simple-signing payload.
//!
//! Signing writes what gpg writes: a ZIP-compressed packet holding a one-pass signature, the literal data
//! and one signature. Verifying accepts exactly that shape (compressed or not, with or without the
//! one-pass packet) and nothing else: one signature packet, one literal data packet, no other packets.

use pgp::packet::{
    CompressedData, LiteralData, OnePassSignature, Packet, PacketHeader, PacketParser, PacketTrait,
    SecretKey, SecretSubkey, Signature, SignatureConfig, SignatureType, SignatureVersionSpecific,
    Subpacket, SubpacketData,
};
use pgp::ser::Serialize;
use pgp::types::{
    CompressionAlgorithm, Fingerprint, KeyDetails, Password, SecretParams, SigningKey, Tag,
    Timestamp,
};

use crate::keys::{self, Component, KeyPacket};

/// A signed message is at most this large, decompressed (simple-signing payloads are a few hundred bytes).
pub const MAX_MESSAGE: usize = 4 << 20;

/// The unlocked secret packet that signs.
pub enum SecretPacket {
    Primary(SecretKey),
    Subkey(SecretSubkey),
}

impl SecretPacket {
    fn as_signing_key(&self) -> &dyn SigningKey {
        match self {
            SecretPacket::Primary(k) => k,
            SecretPacket::Subkey(k) => k,
        }
    }

    fn is_locked(&self) -> bool {
        let params = match self {
            SecretPacket::Primary(k) => k.secret_params(),
            SecretPacket::Subkey(k) => k.secret_params(),
        };
        matches!(params, SecretParams::Encrypted(_))
    }

    /// Decrypts the key material once, so signing needs no passphrase.
    pub fn unlock(&mut self, passphrase: Option<&str>, fpr: &str) -> Result<(), String> {
        if !self.is_locked() {
            return Ok(());
        }
        let Some(pass) = passphrase else {
            return Err(format!(
                "secret key {fpr} is protected by a passphrase: give one (--sign-passphrase-file FILE)"
            ));
        };
        let pw = Password::from(pass);
        match self {
            SecretPacket::Primary(k) => k.remove_password(&pw),
            SecretPacket::Subkey(k) => k.remove_password(&pw),
        }
        .map_err(|e| format!("cannot unlock secret key {fpr}: wrong passphrase? ({e})"))
    }
}

/// Signs `payload` into a binary OpenPGP message, as `gpg --sign` does: a ZIP-compressed packet holding a
/// one-pass signature, the literal data and the signature. (Built packet by packet: rpgp's message builder
/// can also read files, which would make the component import the WASI filesystem.)
pub fn sign(key: &SecretPacket, payload: &[u8]) -> Result<Vec<u8>, String> {
    let fail = |e: pgp::errors::Error| format!("signing failed: {e}");
    // rpgp's sized stand-in for a `dyn SigningKey`.
    let signer = &Box::new(key.as_signing_key());
    let typ = SignatureType::Binary;
    let mut config = SignatureConfig::from_key(rand::thread_rng(), signer, typ).map_err(fail)?;
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::IssuerFingerprint(signer.fingerprint())).map_err(fail)?,
        Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now())).map_err(fail)?,
    ];
    let ops = match &config.version_specific {
        SignatureVersionSpecific::V6 { salt } => {
            let Fingerprint::V6(fp) = signer.fingerprint() else {
                return Err("signing failed: a v6 signature needs a v6 key".into());
            };
            OnePassSignature::v6(typ, config.hash_alg, config.pub_alg, salt.clone(), fp)
        }
        _ => {
            config.unhashed_subpackets = vec![
                Subpacket::regular(SubpacketData::IssuerKeyId(signer.legacy_key_id()))
                    .map_err(fail)?,
            ];
            OnePassSignature::v3(typ, config.hash_alg, config.pub_alg, signer.legacy_key_id())
        }
    };
    let sig = config
        .sign(signer, &Password::empty(), payload)
        .map_err(fail)?;
    let literal = LiteralData::from_bytes("", payload.to_vec().into()).map_err(fail)?;
    let mut inner = Vec::new();
    for p in [
        Packet::OnePassSignature(ops),
        Packet::LiteralData(literal),
        Packet::Signature(sig),
    ] {
        p.to_writer(&mut inner).map_err(fail)?;
    }
    // A compressed data packet: the algorithm octet, then raw DEFLATE (RFC 1951) for ZIP.
    let mut body = vec![u8::from(CompressionAlgorithm::ZIP)];
    let mut deflate = flate2::write::DeflateEncoder::new(&mut body, flate2::Compression::default());
    std::io::Write::write_all(&mut deflate, &inner)
        .and_then(|()| deflate.finish().map(|_| ()))
        .map_err(|e| format!("signing failed: compressing: {e}"))?;
    let len =
        u32::try_from(body.len()).map_err(|_| "signing failed: payload too large".to_string())?;
    let header = PacketHeader::new_fixed(Tag::CompressedData, len);
    let compressed = CompressedData::try_from_reader(header, &body[..]).map_err(fail)?;
    let mut out = Vec::new();
    Packet::CompressedData(compressed)
        .to_writer(&mut out)
        .map_err(fail)?;
    Ok(out)
}

/// What a valid signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signing certificate's primary fingerprint.
    pub key_id: String,
    /// The fingerprint of the component key that signed (a subkey, or the primary itself).
    pub signer: String,
    /// The literal data: the payload.
    pub payload: Vec<u8>,
    /// When the signature says it was made (Unix seconds).
    pub created: Option<u32>,
}

/// Every packet of a binary OpenPGP stream, refusing any that does not parse.
fn packets(bytes: &[u8]) -> Result<Vec<Packet>, String> {
    PacketParser::new(bytes)
        .map(|p| p.map_err(|e| format!("the signature is not a well-formed OpenPGP message: {e}")))
        .collect()
}

fn decompress(packet: &CompressedData) -> Result<Vec<u8>, String> {
    let reader = packet
        .decompress()
        .map_err(|e| format!("the signature's compressed data cannot be read: {e}"))?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(reader, MAX_MESSAGE as u64 + 1),
        &mut out,
    )
    .map_err(|e| format!("the signature's compressed data cannot be decompressed: {e}"))?;
    if out.len() > MAX_MESSAGE {
        return Err(format!(
            "the signature decompresses to more than {} MiB",
            MAX_MESSAGE >> 20
        ));
    }
    Ok(out)
}

fn packet_name(p: &Packet) -> String {
    format!("{:?}", p.tag())
}

/// The one signature and the literal data of a signed message, or why it is not one.
fn split(packets: Vec<Packet>) -> Result<(Signature, LiteralData), String> {
    let sigs = packets
        .iter()
        .filter(|p| matches!(p, Packet::Signature(_)))
        .count();
    if sigs != 1 {
        return Err(format!(
            "the signature message has {sigs} signature packets; a containers signature has exactly one"
        ));
    }
    let literals = packets
        .iter()
        .filter(|p| matches!(p, Packet::LiteralData(_)))
        .count();
    if literals != 1 {
        return Err(format!(
            "the signature message has {literals} literal data packets; a containers signature has exactly one"
        ));
    }
    let names: Vec<String> = packets.iter().map(packet_name).collect();
    let mut it = packets.into_iter();
    match (it.next(), it.next(), it.next(), it.next()) {
        (
            Some(Packet::OnePassSignature(ops)),
            Some(Packet::LiteralData(lit)),
            Some(Packet::Signature(sig)),
            None,
        ) => {
            check_one_pass(&ops, &sig)?;
            Ok((sig, lit))
        }
        (Some(Packet::Signature(sig)), Some(Packet::LiteralData(lit)), None, None) => {
            Ok((sig, lit))
        }
        _ => Err(format!(
            "the signature message has an unexpected packet sequence ({}); expected a one-pass \
             signature, literal data and a signature",
            names.join(", ")
        )),
    }
}

fn check_one_pass(ops: &OnePassSignature, sig: &Signature) -> Result<(), String> {
    if ops.matches(sig) {
        Ok(())
    } else {
        Err("the signature message's one-pass signature packet does not match its signature".into())
    }
}

/// Parses `message` strictly and checks its signature against `keyring`'s components.
pub fn verify(keyring: &[Component], message: &[u8]) -> Result<Verified, String> {
    let blocks = keys::dearmor(message, "signature", &["MESSAGE"])?;
    let [binary] = blocks.as_slice() else {
        return Err("the signature holds several armored messages; expected one".into());
    };
    let mut top = packets(binary)?;
    let inner = if matches!(top.as_slice(), [Packet::CompressedData(_)]) {
        let Some(Packet::CompressedData(c)) = top.pop() else {
            unreachable!("matched above")
        };
        let data = decompress(&c)?;
        let inner = packets(&data)?;
        if inner.iter().any(|p| matches!(p, Packet::CompressedData(_))) {
            return Err("the signature message nests compressed data; gpg never does".into());
        }
        inner
    } else {
        top
    };
    let (sig, literal) = split(inner)?;
    if !matches!(
        sig.typ(),
        Some(SignatureType::Binary) | Some(SignatureType::Text)
    ) {
        return Err(format!(
            "the signature packet is of type {:?}, not a signature over data",
            sig.typ()
        ));
    }
    let component = check(keyring, &sig, literal.data())?;
    let created = sig.created().map(|t| t.as_secs());
    let now = keys::now();
    if let Some(why) = component.refusal(now) {
        return Err(format!("the signature was made by {why}"));
    }
    if let Some(at) = created.filter(|&at| at < component.key.created()) {
        return Err(format!(
            "the signature claims to be made (at Unix time {at}) before its key {} existed",
            component.key.fingerprint()
        ));
    }
    if let (Some(created), Some(valid)) = (created, sig.signature_expiration_time()) {
        let until = created.saturating_add(valid.as_secs());
        if valid.as_secs() > 0 && until <= now {
            return Err(format!(
                "the signature expired (at Unix time {until}, made by key {})",
                component.primary
            ));
        }
    }
    Ok(Verified {
        key_id: component.primary.clone(),
        signer: component.key.fingerprint(),
        payload: literal.data().to_vec(),
        created,
    })
}

/// The component whose key makes `sig` valid over `data`.
fn check<'k>(
    keyring: &'k [Component],
    sig: &Signature,
    data: &[u8],
) -> Result<&'k Component, String> {
    let fingerprints: Vec<String> = sig
        .issuer_fingerprint()
        .iter()
        .map(|f| format!("{f:X}"))
        .collect();
    let key_ids = sig.issuer_key_id();
    let named = |c: &&Component| {
        fingerprints.contains(&c.key.fingerprint())
            || key_ids.iter().any(|id| **id == c.key.key_id())
    };
    let candidates: Vec<&Component> = keyring.iter().filter(named).collect();
    if candidates.is_empty() {
        let issuer = fingerprints
            .first()
            .cloned()
            .or_else(|| key_ids.first().map(|id| hex_upper(id.as_ref())))
            .unwrap_or_else(|| "an unnamed key".into());
        let known: Vec<&str> = keyring
            .iter()
            .map(|c| c.primary.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        return Err(format!(
            "the signature was made by {issuer}, which is not in the keyring (it holds {})",
            known.join(", ")
        ));
    }
    let mut last = String::new();
    for c in candidates {
        match c.key.verify(sig, data) {
            Ok(()) => return Ok(c),
            Err(e) => {
                last = format!(
                    "the signature does not verify under key {} (the payload was changed or the \
                     signature is corrupt): {e}",
                    c.primary
                )
            }
        }
    }
    Err(last)
}

/// Whether a component key packet is the one named by `fpr`.
pub fn names(key: &KeyPacket, fpr: &str) -> bool {
    let own = key.fingerprint();
    own == fpr || (fpr.len() == 16 && own.ends_with(fpr))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
