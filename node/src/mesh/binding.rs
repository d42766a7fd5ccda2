//! The channel binding and the transcript: pure functions, no IO, no clock.
//!
//! **Binding.** Before connecting, each node signs, per peer, an `MpcChannelBinding` statement
//! (`schemas/channel-binding.schema.json`): session id, roster hash, its own DID and index, the
//! peer's DID and index, and the SHA-256 fingerprint of its per-session DTLS certificate. It is
//! an ordinary `identity::statement` (an `eddsa-jcs-2022` Data Integrity proof for
//! `assertionMethod`), so the signed bytes are `SHA-256(JCS(proof config)) ||
//! SHA-256(JCS(binding))`: RFC 8785 makes the encoding unambiguous, and the statement `type`
//! (`MpcChannelBinding`, inside the signed bytes and required by the verifier) is the domain
//! separation — a roster or manifest signature can never pass as a binding or vice versa. The
//! binding travels as `payload.binding` of the offer/answer.
//!
//! **Transcript.** Once DTLS is up, each side signs, with its DID key, a transcript of the pair
//! (see [`Transcript::signed_bytes`]) and sends the 64-byte signature as the first message on
//! the data channel. It proves that the DID key holder is live at the other end of this very
//! channel and saw the same two certificates, session and roster.
//!
//! `docs/channel-binding.md` gives the construction and what each check defeats.

use std::fmt;
use std::time::SystemTime;

use identity::statement;
use identity::{Did, Keypair, Signature};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{FingerprintSource, MeshError, PeerRef};

/// `type` of a channel binding statement (its domain separation).
pub const BINDING_TYPE: &str = "MpcChannelBinding";

/// Domain-separation prefix of the transcript (NUL-terminated so no other prefix of ours is a
/// prefix of it).
pub const TRANSCRIPT_PREFIX: &[u8] = b"mpc-broker/transcript/v1\0";

/// The SHA-256 fingerprint of a DER certificate.
///
/// Equality is constant time: fingerprints are compared against what a peer (or a relay)
/// chose, and a timing side channel would tell an attacker how many leading bytes it got right.
#[derive(Clone, Copy)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }

    /// From the 32 digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Fingerprint(bytes)
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the binding's form exactly: `sha-256 ` and 32 colon-separated **uppercase** hex
    /// pairs (the schema's pattern). Anything else is refused, so one fingerprint has one text.
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix("sha-256 ")
            .ok_or_else(|| "does not start with \"sha-256 \"".to_owned())?;
        let fp = parse_hex_pairs(hex)?;
        if hex.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err("hex digits must be uppercase".into());
        }
        Ok(fp)
    }

    /// Parses the value of an SDP `a=fingerprint:` attribute. The algorithm name and hex digits
    /// are case-insensitive there (RFC 8122); only `sha-256` is accepted.
    pub fn parse_sdp_attribute(value: &str) -> Result<Self, String> {
        let (alg, hex) = value
            .trim()
            .split_once(' ')
            .ok_or_else(|| "no space between algorithm and value".to_owned())?;
        if !alg.eq_ignore_ascii_case("sha-256") {
            return Err(format!("unsupported algorithm {:?}", truncate(alg)));
        }
        parse_hex_pairs(hex.trim())
    }
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Fingerprint {}

impl fmt::Display for Fingerprint {
    /// `sha-256 AB:CD:…`, as in SDP `a=fingerprint` and the binding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha-256 ")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn parse_hex_pairs(hex: &str) -> Result<Fingerprint, String> {
    let mut out = [0u8; 32];
    let mut n = 0;
    for pair in hex.split(':') {
        let slot = out
            .get_mut(n)
            .ok_or_else(|| "more than 32 bytes".to_owned())?;
        if pair.len() != 2 {
            return Err(format!("{:?} is not a hex pair", truncate(pair)));
        }
        *slot = u8::from_str_radix(pair, 16)
            .map_err(|_| format!("{:?} is not a hex pair", truncate(pair)))?;
        n += 1;
    }
    if n != 32 {
        return Err(format!("{n} bytes, expected 32"));
    }
    Ok(Fingerprint(out))
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// What a node signs for one peer (the body of an `MpcChannelBinding` statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    /// Session id assigned by the broker.
    pub session: String,
    /// SHA-256 (lowercase hex) of the RFC 8785 form of the signed roster.
    pub roster_hash: String,
    /// The signer and its roster index.
    pub from: PeerRef,
    /// The peer the binding is for.
    pub to: PeerRef,
    /// The signer's DTLS certificate fingerprint.
    pub fingerprint: Fingerprint,
}

impl ChannelBinding {
    /// The unsigned statement body, in the schema's JSON shape.
    pub fn body(&self) -> Map<String, Value> {
        let v = json!({
            "type": BINDING_TYPE,
            "session": self.session,
            "rosterHash": self.roster_hash,
            "from": {"did": self.from.did.as_str(), "index": self.from.index},
            "to": {"did": self.to.did.as_str(), "index": self.to.index},
            "fingerprint": self.fingerprint.to_string(),
        });
        match v {
            Value::Object(m) => m,
            // `json!` of an object literal is always an object.
            _ => Map::new(),
        }
    }

    /// Signs the binding with the signer's DID key (`keypair` must be `from.did`'s).
    pub fn sign(&self, keypair: &Keypair, created: SystemTime) -> Result<Value, String> {
        if keypair.did() != self.from.did {
            return Err(format!(
                "the key is {}, the binding is from {}",
                keypair.did(),
                self.from.did
            ));
        }
        statement::sign(keypair, BINDING_TYPE, &self.body(), created).map_err(|e| e.to_string())
    }
}

/// What a received binding must say: it is from `peer` to `me` in this session and roster.
#[derive(Debug, Clone, Copy)]
pub struct BindingContext<'a> {
    /// Our session id.
    pub session: &'a str,
    /// Our roster hash.
    pub roster_hash: &'a str,
    /// Us.
    pub me: &'a PeerRef,
    /// The peer, with its DID from the (verified) roster.
    pub peer: &'a PeerRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireBinding {
    #[serde(rename = "type")]
    _kind: String,
    session: String,
    roster_hash: String,
    from: WireParty,
    to: WireParty,
    fingerprint: String,
    #[serde(rename = "proof")]
    _proof: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireParty {
    did: String,
    index: u64,
}

/// Verifies a peer's binding and returns the fingerprint it signed.
///
/// Checks, in order: the proof verifies and its signer is the peer's DID from the roster (not
/// whatever DID the binding claims); the document is exactly the schema's shape; the session
/// and roster hash are ours (defeats replay from another session, and a broker showing us a
/// different roster); `from` is the peer and `to` is us (defeats reflecting our own binding or
/// forwarding a binding meant for another party). The fingerprint itself is compared later
/// with [`check_sdp_fingerprints`] and [`check_dtls_certificate`].
pub fn verify_binding(doc: &Value, ctx: &BindingContext<'_>) -> Result<Fingerprint, MeshError> {
    let peer = ctx.peer;
    let malformed = |reason: String| MeshError::MalformedBinding {
        peer: peer.clone(),
        reason,
    };
    match statement::verify(doc, BINDING_TYPE, Some(&peer.did)) {
        Err(e) => return Err(malformed(e.to_string())),
        Ok(Err(source)) => {
            return Err(MeshError::BadBindingSignature {
                peer: peer.clone(),
                source,
            })
        }
        Ok(Ok(_)) => {}
    }
    let wire: WireBinding =
        serde_json::from_value(doc.clone()).map_err(|e| malformed(e.to_string()))?;
    if wire.session != ctx.session {
        return Err(MeshError::BindingForAnotherSession {
            peer: peer.clone(),
            field: "session",
            expected: ctx.session.to_owned(),
            found: truncate(&wire.session),
        });
    }
    if wire.roster_hash != ctx.roster_hash {
        return Err(MeshError::BindingForAnotherSession {
            peer: peer.clone(),
            field: "rosterHash",
            expected: ctx.roster_hash.to_owned(),
            found: truncate(&wire.roster_hash),
        });
    }
    check_party("from", &wire.from, ctx.peer, peer)?;
    check_party("to", &wire.to, ctx.me, peer)?;
    Fingerprint::parse(&wire.fingerprint).map_err(|e| malformed(format!("fingerprint: {e}")))
}

fn check_party(
    field: &str,
    got: &WireParty,
    want: &PeerRef,
    peer: &PeerRef,
) -> Result<(), MeshError> {
    if got.did != want.did.as_str() || got.index != want.index as u64 {
        return Err(MeshError::BindingForOtherParties {
            peer: peer.clone(),
            reason: format!(
                "{field} is #{} ({}), expected {want}",
                got.index,
                truncate(&got.did)
            ),
        });
    }
    Ok(())
}

/// Every `a=fingerprint` line of the peer's SDP (session or media level) must be the fingerprint
/// it signed.
///
/// WebRTC accepts the DTLS certificate if it matches **any** fingerprint of the SDP, so one
/// matching line among others is not enough: an attacker could append its own.
pub fn check_sdp_fingerprints(
    sdp: &str,
    signed: &Fingerprint,
    peer: &PeerRef,
) -> Result<(), MeshError> {
    let mut found = 0usize;
    for line in sdp.lines() {
        let Some(value) = line.trim_end_matches('\r').strip_prefix("a=fingerprint:") else {
            continue;
        };
        found += 1;
        let seen = Fingerprint::parse_sdp_attribute(value);
        match seen {
            Ok(fp) if fp == *signed => {}
            Ok(fp) => {
                return Err(mismatch(
                    peer,
                    signed,
                    fp.to_string(),
                    FingerprintSource::Sdp,
                ))
            }
            Err(_) => {
                return Err(mismatch(
                    peer,
                    signed,
                    truncate(value),
                    FingerprintSource::Sdp,
                ))
            }
        }
    }
    if found == 0 {
        return Err(mismatch(
            peer,
            signed,
            "no a=fingerprint line".into(),
            FingerprintSource::Sdp,
        ));
    }
    Ok(())
}

/// The certificate chain the peer presented in DTLS: its leaf (the certificate whose key did
/// the handshake) must have the fingerprint it signed.
pub fn check_dtls_certificate(
    chain: &[Vec<u8>],
    signed: &Fingerprint,
    peer: &PeerRef,
) -> Result<(), MeshError> {
    let Some(leaf) = chain.first() else {
        return Err(mismatch(
            peer,
            signed,
            "no certificate".into(),
            FingerprintSource::Dtls,
        ));
    };
    let seen = Fingerprint::of_der(leaf);
    if seen != *signed {
        return Err(mismatch(
            peer,
            signed,
            seen.to_string(),
            FingerprintSource::Dtls,
        ));
    }
    Ok(())
}

fn mismatch(
    peer: &PeerRef,
    signed: &Fingerprint,
    seen: String,
    source_of: FingerprintSource,
) -> MeshError {
    MeshError::FingerprintMismatch {
        peer: peer.clone(),
        source_of,
        signed: signed.to_string(),
        seen,
    }
}

/// Which end of a pair signs a transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The lower index, which sends the offer.
    Offerer,
    /// The higher index, which answers.
    Answerer,
}

/// The pair transcript both ends sign after DTLS.
#[derive(Debug, Clone)]
pub struct Transcript<'a> {
    /// Session id.
    pub session: &'a str,
    /// Roster hash.
    pub roster_hash: &'a str,
    /// The offerer (lower index).
    pub offerer: &'a PeerRef,
    /// The answerer (higher index).
    pub answerer: &'a PeerRef,
    /// The offerer's certificate fingerprint.
    pub offerer_fingerprint: &'a Fingerprint,
    /// The answerer's certificate fingerprint.
    pub answerer_fingerprint: &'a Fingerprint,
}

impl Transcript<'_> {
    /// The bytes `signer` signs:
    ///
    /// ```text
    /// "mpc-broker/transcript/v1\0"
    /// lp(session) lp(rosterHash)
    /// lp(offerer fingerprint, 32 bytes) lp(answerer fingerprint, 32 bytes)
    /// lp(offerer DID) lp(answerer DID)
    /// u32(offerer index) u32(answerer index)
    /// u8(signer: 0 = offerer, 1 = answerer)
    /// ```
    ///
    /// where `lp(x)` is `x`'s length as a big-endian u32 followed by `x`, and `u32` is big
    /// endian. Every field has a length or a fixed size, so no two transcripts share bytes; the
    /// trailing role byte makes the two ends' signatures cover different messages, so one can
    /// never be reflected as the other.
    pub fn signed_bytes(&self, signer: Role) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(TRANSCRIPT_PREFIX);
        put_lp(&mut out, self.session.as_bytes());
        put_lp(&mut out, self.roster_hash.as_bytes());
        put_lp(&mut out, self.offerer_fingerprint.as_bytes());
        put_lp(&mut out, self.answerer_fingerprint.as_bytes());
        put_lp(&mut out, self.offerer.did.as_str().as_bytes());
        put_lp(&mut out, self.answerer.did.as_str().as_bytes());
        put_u32(&mut out, self.offerer.index);
        put_u32(&mut out, self.answerer.index);
        out.push(match signer {
            Role::Offerer => 0,
            Role::Answerer => 1,
        });
        out
    }

    /// Our signature, as the end `role`.
    pub fn sign(&self, keypair: &Keypair, role: Role) -> [u8; 64] {
        keypair.sign(&self.signed_bytes(role)).to_bytes()
    }

    /// Verifies the peer's signature: it is the end `peer_role`, and its key is its roster DID's.
    pub fn verify(&self, peer_role: Role, signature: &[u8]) -> Result<(), MeshError> {
        let peer = match peer_role {
            Role::Offerer => self.offerer,
            Role::Answerer => self.answerer,
        };
        let invalid = |reason: &str| MeshError::TranscriptInvalid {
            peer: peer.clone(),
            reason: reason.to_owned(),
        };
        let sig = Signature::from_bytes(signature)
            .map_err(|_| invalid("the signature is not 64 bytes"))?;
        peer.did
            .public_key()
            .verify(&self.signed_bytes(peer_role), &sig)
            .map_err(|_| invalid("the signature does not verify under the peer's DID key"))
    }
}

fn put_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every field is far below 4 GiB (sessions ≤ 64 chars, DIDs ≤ 128); saturating keeps the
    // encoding total rather than panicking on an impossible input.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&u32::try_from(v).unwrap_or(u32::MAX).to_be_bytes());
}

/// The DID of a roster member as a [`PeerRef`] (helper for callers and tests).
pub fn peer_ref(index: usize, did: &Did) -> PeerRef {
    PeerRef {
        index,
        did: did.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn kp(n: u8) -> Keypair {
        Keypair::from_seed(&[n; 32])
    }

    fn party(n: u8, index: usize) -> PeerRef {
        peer_ref(index, &kp(n).did())
    }

    const SESSION: &str = "q7Xv2mKp9RtLwZ3a";
    const ROSTER: &str = "69b2fd77cee9964a01259aef570c4f9228fe6dc36c42fa633e4472340b0a95eb";

    /// 2030-03-01T11:02:03Z, the date of the schema examples.
    fn created() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_898_593_323)
    }

    fn fp(n: u8) -> Fingerprint {
        Fingerprint::from_bytes([n; 32])
    }

    fn binding(from: &PeerRef, to: &PeerRef) -> ChannelBinding {
        ChannelBinding {
            session: SESSION.into(),
            roster_hash: ROSTER.into(),
            from: from.clone(),
            to: to.clone(),
            fingerprint: fp(0xAB),
        }
    }

    fn ctx<'a>(me: &'a PeerRef, peer: &'a PeerRef) -> BindingContext<'a> {
        BindingContext {
            session: SESSION,
            roster_hash: ROSTER,
            me,
            peer,
        }
    }

    #[test]
    fn fingerprint_text_forms() {
        let f = Fingerprint::from_bytes([0x5B; 32]);
        let s = f.to_string();
        assert!(s.starts_with("sha-256 5B:5B:"));
        assert_eq!(s.len(), "sha-256 ".len() + 32 * 3 - 1);
        assert_eq!(Fingerprint::parse(&s).unwrap(), f);
        // The binding form is strict: lowercase, missing prefix, short or long are refused.
        assert!(Fingerprint::parse(&s.to_lowercase()).is_err());
        assert!(Fingerprint::parse(&s["sha-256 ".len()..]).is_err());
        assert!(Fingerprint::parse(&s[..s.len() - 3]).is_err());
        assert!(Fingerprint::parse(&format!("{s}:00")).is_err());
        // SDP is case-insensitive.
        assert_eq!(
            Fingerprint::parse_sdp_attribute(&s.to_lowercase().replace("sha-256", "SHA-256"))
                .unwrap(),
            f
        );
        assert!(Fingerprint::parse_sdp_attribute(&s.replace("sha-256", "sha-1")).is_err());
        assert_ne!(f, Fingerprint::from_bytes([0x5C; 32]));
    }

    #[test]
    fn a_binding_verifies_for_its_pair_and_session() {
        let (a, b) = (party(2, 0), party(4, 1));
        let doc = binding(&a, &b).sign(&kp(2), created()).unwrap();
        assert_eq!(verify_binding(&doc, &ctx(&b, &a)).unwrap(), fp(0xAB));
        // The JSON shape is the schema's.
        let keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "type",
            "session",
            "rosterHash",
            "from",
            "to",
            "fingerprint",
            "proof",
        ] {
            assert!(keys.contains(&k), "missing {k}");
        }
        assert_eq!(keys.len(), 7);
    }

    #[test]
    fn only_the_key_of_from_may_sign() {
        let (a, b) = (party(2, 0), party(4, 1));
        assert!(binding(&a, &b).sign(&kp(3), created()).is_err());
    }

    #[test]
    fn a_binding_signed_by_another_key_is_rejected() {
        let (a, b, m) = (party(2, 0), party(4, 1), party(7, 0));
        // Mallory signs a binding that claims to be from a.
        let mut forged = binding(&m, &b);
        let doc = forged.sign(&kp(7), created()).unwrap();
        let err = verify_binding(&doc, &ctx(&b, &a)).unwrap_err();
        assert!(
            matches!(err, MeshError::BadBindingSignature { ref peer, .. } if peer.index == 0),
            "{err}"
        );
        forged.from = a.clone();
        let mut doc = forged.sign(&kp(2), created()).unwrap();
        doc["fingerprint"] = json!(fp(0xCD).to_string());
        let err = verify_binding(&doc, &ctx(&b, &a)).unwrap_err();
        assert!(
            matches!(err, MeshError::BadBindingSignature { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_binding_for_another_session_or_roster_is_rejected() {
        let (a, b) = (party(2, 0), party(4, 1));
        let mut other = binding(&a, &b);
        other.session = "AnotherSession1".into();
        let doc = other.sign(&kp(2), created()).unwrap();
        let err = verify_binding(&doc, &ctx(&b, &a)).unwrap_err();
        assert!(
            matches!(
                err,
                MeshError::BindingForAnotherSession {
                    field: "session",
                    ..
                }
            ),
            "{err}"
        );
        let mut other = binding(&a, &b);
        other.roster_hash = "00".repeat(32);
        let doc = other.sign(&kp(2), created()).unwrap();
        let err = verify_binding(&doc, &ctx(&b, &a)).unwrap_err();
        assert!(
            matches!(
                err,
                MeshError::BindingForAnotherSession {
                    field: "rosterHash",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_binding_for_other_parties_is_rejected() {
        let (a, b, c) = (party(2, 0), party(4, 1), party(3, 2));
        // A binding a made for c, forwarded to b.
        let doc = binding(&a, &c).sign(&kp(2), created()).unwrap();
        let err = verify_binding(&doc, &ctx(&b, &a)).unwrap_err();
        assert!(
            matches!(err, MeshError::BindingForOtherParties { .. }),
            "{err}"
        );
        // The right DIDs but a wrong index.
        let doc = binding(&party(2, 5), &b).sign(&kp(2), created()).unwrap();
        let err = verify_binding(&doc, &ctx(&b, &a)).unwrap_err();
        assert!(
            matches!(err, MeshError::BindingForOtherParties { .. }),
            "{err}"
        );
        // Our own binding reflected back to us.
        let doc = binding(&b, &a).sign(&kp(4), created()).unwrap();
        let err = verify_binding(&doc, &ctx(&b, &a)).unwrap_err();
        assert!(
            matches!(err, MeshError::BadBindingSignature { .. }),
            "{err}"
        );
    }

    #[test]
    fn malformed_bindings_are_rejected() {
        let (a, b) = (party(2, 0), party(4, 1));
        for doc in [
            json!(null),
            json!("binding"),
            json!({}),
            binding(&a, &b).body().into(),
        ] {
            let err = verify_binding(&doc, &ctx(&b, &a)).unwrap_err();
            assert!(matches!(err, MeshError::MalformedBinding { .. }), "{err}");
        }
        // Extra fields are refused even when signed (the schema has additionalProperties
        // false).
        let mut body = binding(&a, &b).body();
        body.insert("extra".into(), json!(1));
        let doc = statement::sign(&kp(2), BINDING_TYPE, &body, created()).unwrap();
        let err = verify_binding(&doc, &ctx(&b, &a)).unwrap_err();
        assert!(matches!(err, MeshError::MalformedBinding { .. }), "{err}");
        // A lowercase fingerprint is not the schema's form.
        let mut body = binding(&a, &b).body();
        body.insert(
            "fingerprint".into(),
            json!(fp(0xAB).to_string().to_lowercase()),
        );
        let doc = statement::sign(&kp(2), BINDING_TYPE, &body, created()).unwrap();
        let err = verify_binding(&doc, &ctx(&b, &a)).unwrap_err();
        assert!(matches!(err, MeshError::MalformedBinding { .. }), "{err}");
    }

    #[test]
    fn sdp_fingerprints_must_all_be_the_signed_one() {
        let peer = party(2, 0);
        let good = fp(0xAB);
        let sdp = |lines: &[String]| {
            let mut s = String::from("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n");
            for l in lines {
                s.push_str(l);
                s.push_str("\r\n");
            }
            s
        };
        let line = |f: &Fingerprint| format!("a=fingerprint:{f}");
        check_sdp_fingerprints(&sdp(&[line(&good)]), &good, &peer).unwrap();
        check_sdp_fingerprints(&sdp(&[line(&good), line(&good)]), &good, &peer).unwrap();
        for bad in [
            vec![line(&fp(1))],
            vec![line(&good), line(&fp(1))],
            vec![line(&fp(1)), line(&good)],
            vec![],
            vec!["a=fingerprint:sha-1 00:11".into()],
        ] {
            let err = check_sdp_fingerprints(&sdp(&bad), &good, &peer).unwrap_err();
            assert!(
                matches!(
                    err,
                    MeshError::FingerprintMismatch {
                        source_of: FingerprintSource::Sdp,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err
                .to_string()
                .contains("fingerprint mismatch with peer #0"));
        }
    }

    #[test]
    fn the_dtls_certificate_must_be_the_signed_one() {
        let peer = party(2, 0);
        let der = b"a certificate".to_vec();
        let signed = Fingerprint::of_der(&der);
        check_dtls_certificate(std::slice::from_ref(&der), &signed, &peer).unwrap();
        for chain in [
            vec![],
            vec![b"another".to_vec()],
            vec![b"another".to_vec(), der],
        ] {
            let err = check_dtls_certificate(&chain, &signed, &peer).unwrap_err();
            assert!(
                matches!(
                    err,
                    MeshError::FingerprintMismatch {
                        source_of: FingerprintSource::Dtls,
                        ..
                    }
                ),
                "{err}"
            );
        }
    }

    fn transcript<'a>(
        o: &'a PeerRef,
        a: &'a PeerRef,
        fo: &'a Fingerprint,
        fa: &'a Fingerprint,
    ) -> Transcript<'a> {
        Transcript {
            session: SESSION,
            roster_hash: ROSTER,
            offerer: o,
            answerer: a,
            offerer_fingerprint: fo,
            answerer_fingerprint: fa,
        }
    }

    #[test]
    fn transcripts_verify_and_bind_every_field() {
        let (o, a) = (party(2, 0), party(4, 1));
        let (fo, fa) = (fp(1), fp(2));
        let t = transcript(&o, &a, &fo, &fa);
        let sig_o = t.sign(&kp(2), Role::Offerer);
        let sig_a = t.sign(&kp(4), Role::Answerer);
        t.verify(Role::Offerer, &sig_o).unwrap();
        t.verify(Role::Answerer, &sig_a).unwrap();
        // A reflected signature (the answerer's own, sent back) does not verify.
        assert!(t.verify(Role::Answerer, &sig_o).is_err());
        assert!(t.verify(Role::Offerer, &sig_a).is_err());
        // Any other fingerprint pair, session or party breaks it.
        let fx = fp(3);
        let err = transcript(&o, &a, &fo, &fx)
            .verify(Role::Offerer, &sig_o)
            .unwrap_err();
        assert!(matches!(err, MeshError::TranscriptInvalid { ref peer, .. } if peer.index == 0));
        assert!(transcript(&o, &a, &fa, &fo)
            .verify(Role::Offerer, &sig_o)
            .is_err());
        let mut t2 = transcript(&o, &a, &fo, &fa);
        t2.session = "q7Xv2mKp9RtLwZ3b";
        assert!(t2.verify(Role::Offerer, &sig_o).is_err());
        assert!(t.verify(Role::Offerer, &sig_o[..63]).is_err());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Pins the exact bytes of the binding (what JCS makes of it, the 64 bytes Ed25519 signs,
    /// the signature) and of the transcript. A change to any of them is a protocol change: bump
    /// the `v1` and update docs/channel-binding.md.
    #[test]
    fn binding_and_transcript_bytes_are_pinned() {
        let (a, b) = (party(2, 0), party(4, 1));
        let bd = ChannelBinding {
            fingerprint: Fingerprint::from_bytes(std::array::from_fn(|i| i as u8)),
            ..binding(&a, &b)
        };
        let body = Value::Object(bd.body());
        let canonical =
            identity::integrity::canonical_form(&body, identity::Cryptosuite::EddsaJcs2022)
                .unwrap();
        assert_eq!(
            String::from_utf8(canonical).unwrap(),
            concat!(
                r#"{"fingerprint":"sha-256 00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:"#,
                r#"10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F","#,
                r#""from":{"did":"did:key:z6Mko9hTggMwjSTEaJaPUfE6tqcy2xvU6BnNq3e3o8qVBiyH","index":0},"#,
                r#""rosterHash":"69b2fd77cee9964a01259aef570c4f9228fe6dc36c42fa633e4472340b0a95eb","#,
                r#""session":"q7Xv2mKp9RtLwZ3a","#,
                r#""to":{"did":"did:key:z6Mkt6316e2PN3mZdB6N9CrzomJYUd1s5yBZi1XYHmwT9TUP","index":1},"#,
                r#""type":"MpcChannelBinding"}"#
            )
        );
        let signed = bd.sign(&kp(2), created()).unwrap();
        let mut config = signed["proof"].as_object().unwrap().clone();
        config.remove("proofValue");
        let hash =
            identity::integrity::hash_data(&body, config, identity::Cryptosuite::EddsaJcs2022)
                .unwrap();
        assert_eq!(hex(&hash), PINNED_BINDING_HASH_DATA);
        assert_eq!(signed["proof"]["proofValue"], PINNED_BINDING_PROOF_VALUE);

        let (fo, fa) = (fp(0x11), fp(0x22));
        let t = transcript(&a, &b, &fo, &fa);
        assert_eq!(
            hex(&t.signed_bytes(Role::Offerer)),
            PINNED_TRANSCRIPT_OFFERER
        );
        assert_eq!(
            hex(&t.sign(&kp(2), Role::Offerer)),
            PINNED_TRANSCRIPT_SIGNATURE
        );
        let answerer = t.signed_bytes(Role::Answerer);
        let offerer = t.signed_bytes(Role::Offerer);
        assert_eq!(answerer[..answerer.len() - 1], offerer[..offerer.len() - 1]);
        assert_eq!(answerer.last(), Some(&1));
    }

    const PINNED_BINDING_HASH_DATA: &str = concat!(
        // SHA-256(JCS(proof config))
        "e826072d39bcab582b5ae40ed4f746dc97e733e7a91bf9028a3d9fb954202a3c",
        // SHA-256(JCS(binding))
        "ec375f84241eefa5cd627fc5aa11e6da0f9372acab8a0c6557a3720f57d15320",
    );
    const PINNED_BINDING_PROOF_VALUE: &str =
        "z42TyBdvk4zDyZjH4JSJVZh5VGtChfw8mRFRdTfm4MCJk7VqzjyBCQ7DrQqaZvn1pCCBf6QuGc5TtgD2H72br4ZRQ";
    const PINNED_TRANSCRIPT_OFFERER: &str = concat!(
        "6d70632d62726f6b65722f7472616e7363726970742f76310000000010713758",
        "76326d4b703952744c775a336100000040363962326664373763656539393634",
        "6130313235396165663537306334663932323866653664633336633432666136",
        "3333653434373233343062306139356562000000201111111111111111111111",
        "1111111111111111111111111111111111111111110000002022222222222222",
        "2222222222222222222222222222222222222222222222222200000038646964",
        "3a6b65793a7a364d6b6f39685467674d776a535445614a615055664536747163",
        "793278765536426e4e713365336f38715642697948000000386469643a6b6579",
        "3a7a364d6b74363331366532504e336d5a6442364e3943727a6f6d4a59556431",
        "733579425a69315859486d775439545550000000000000000100",
    );
    const PINNED_TRANSCRIPT_SIGNATURE: &str = concat!(
        "d986598a6f0d2956c2bc4b1be85cc2b34d68fda9cb55a03f2e9b2dffcb37e561",
        "3a7e37844b95cdb36cb2f22e49a432158c9c7e3e184088653996fa54289cd404",
    );

    /// The schema's example binding (alice → carol) is a binding this code accepts, and signing
    /// the same body at the same time reproduces it byte for byte.
    #[test]
    fn the_schema_example_verifies() {
        let example: Value = serde_json::from_str(include_str!(
            "../../../schemas/examples/channel-binding.example.json"
        ))
        .unwrap();
        let (alice, carol) = (party(2, 0), party(4, 1));
        let fp = verify_binding(&example, &ctx(&carol, &alice)).unwrap();
        assert_eq!(fp.to_string(), example["fingerprint"]);
        let again = ChannelBinding {
            fingerprint: fp,
            ..binding(&alice, &carol)
        }
        .sign(&kp(2), created())
        .unwrap();
        assert_eq!(again, example);
    }
}
