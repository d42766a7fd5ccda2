//! `did:key` for Ed25519: create, parse, resolve.
//!
//! A did:key is `did:key:` + multibase base58btc (`z`) of the multicodec
//! varint `0xed 0x01` followed by the 32-byte public key. Parsing is strict and
//! every malformed input has its own error, because DIDs arrive from peers.

use serde_json::{json, Value};

use crate::keys::{KeyError, PublicKey, PUBLIC_KEY_LEN};

const PREFIX: &str = "did:key:";
/// Multicodec varint for `ed25519-pub`.
const ED25519_PUB: [u8; 2] = [0xed, 0x01];
/// Longest base58 text decoded as a multikey: the 34 bytes of an Ed25519
/// multikey need at most 47, so this leaves room to report wrong lengths.
const MAX_MULTIKEY_CHARS: usize = 128;
/// Multicodec varint for `x25519-pub`.
const X25519_PUB: [u8; 2] = [0xec, 0x01];

/// Why a string is not an Ed25519 did:key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DidError {
    /// Does not start with `did:key:`.
    #[error("not a did:key (it must start with \"did:key:\"): {0:?}")]
    WrongPrefix(String),
    /// The method-specific id is not multibase base58btc (`z…`).
    #[error("the did:key identifier must be multibase base58btc starting with 'z': {0}")]
    BadMultibase(String),
    /// The multicodec prefix is not `ed25519-pub` (0xed01).
    #[error("the did:key is not an Ed25519 key (multicodec {found}, expected ed01)")]
    WrongMulticodec {
        /// Hex of the multicodec bytes found.
        found: String,
    },
    /// The key has the wrong number of bytes.
    #[error("the Ed25519 key in the did:key has {actual} bytes, expected 32")]
    WrongLength {
        /// Bytes found after the multicodec prefix.
        actual: usize,
    },
    /// Something follows the identifier (path, query, fragment, whitespace).
    #[error("unexpected characters after the did:key identifier: {0:?}")]
    TrailingGarbage(String),
    /// The 32 bytes are not a valid Ed25519 point.
    #[error("the did:key does not hold a valid Ed25519 public key")]
    InvalidKey(#[source] KeyError),
}

/// An Ed25519 `did:key`, always well formed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did {
    text: String,
}

impl std::fmt::Debug for Did {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Display for Did {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Did {
    type Err = DidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Did::parse(s)
    }
}

impl serde::Serialize for Did {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Did {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Did::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Which DID document representation [`Did::resolve`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DocumentFormat {
    /// Current did:key spec: one `Multikey` verification method.
    #[default]
    Multikey,
    /// The older representation of the did:key test vectors:
    /// `Ed25519VerificationKey2018` plus a derived `X25519KeyAgreementKey2019`.
    Ed25519VerificationKey2018,
    /// The same with `JsonWebKey2020` verification methods (`publicKeyJwk`).
    JsonWebKey2020,
}

impl Did {
    /// The did:key of a public key.
    pub fn from_public_key(key: &PublicKey) -> Self {
        Self {
            text: format!("{PREFIX}{}", multikey(&ED25519_PUB, key.as_bytes())),
        }
    }

    /// Parses an Ed25519 did:key (no DID URL parts).
    pub fn parse(s: &str) -> Result<Self, DidError> {
        let id = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| DidError::WrongPrefix(truncate(s)))?;
        if let Some(pos) = id.find(|c: char| !c.is_ascii_alphanumeric()) {
            return Err(DidError::TrailingGarbage(truncate(&id[pos..])));
        }
        let key = public_key_from_multikey(id)?;
        Ok(Self::from_public_key(&key))
    }

    /// The DID as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The method-specific identifier (`z6Mk…`), which is also the fragment
    /// of its verification method.
    pub fn multibase(&self) -> &str {
        &self.text[PREFIX.len()..]
    }

    /// The id of the DID's single Ed25519 verification method (`did#z6Mk…`).
    pub fn verification_method(&self) -> String {
        format!("{}#{}", self.text, self.multibase())
    }

    /// The public key the DID encodes.
    pub fn public_key(&self) -> PublicKey {
        // The text was produced from a valid key by construction.
        match public_key_from_multikey(self.multibase()) {
            Ok(k) => k,
            Err(_) => unreachable!("a Did always holds a valid key"),
        }
    }

    /// Resolves the DID to its DID document (pure: did:key needs no network).
    pub fn resolve(&self, format: DocumentFormat) -> Value {
        let did = self.as_str();
        let vm_id = self.verification_method();
        match format {
            DocumentFormat::Multikey => json!({
                "@context": [
                    "https://www.w3.org/ns/did/v1",
                    "https://w3id.org/security/multikey/v1"
                ],
                "id": did,
                "verificationMethod": [{
                    "id": vm_id,
                    "type": "Multikey",
                    "controller": did,
                    "publicKeyMultibase": self.multibase(),
                }],
                "authentication": [vm_id],
                "assertionMethod": [vm_id],
                "capabilityDelegation": [vm_id],
                "capabilityInvocation": [vm_id],
            }),
            DocumentFormat::JsonWebKey2020 => {
                use base64::Engine as _;
                let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
                let x = self.public_key().to_x25519();
                let ka_id = format!("{did}#{}", multikey(&X25519_PUB, &x));
                json!({
                    "@context": [
                        "https://www.w3.org/ns/did/v1",
                        "https://w3id.org/security/suites/jws-2020/v1"
                    ],
                    "id": did,
                    "verificationMethod": [
                        {
                            "id": vm_id,
                            "type": "JsonWebKey2020",
                            "controller": did,
                            "publicKeyJwk": {
                                "kty": "OKP",
                                "crv": "Ed25519",
                                "x": b64(self.public_key().as_bytes()),
                            },
                        },
                        {
                            "id": ka_id,
                            "type": "JsonWebKey2020",
                            "controller": did,
                            "publicKeyJwk": { "kty": "OKP", "crv": "X25519", "x": b64(&x) },
                        }
                    ],
                    "assertionMethod": [vm_id],
                    "authentication": [vm_id],
                    "capabilityInvocation": [vm_id],
                    "capabilityDelegation": [vm_id],
                    "keyAgreement": [ka_id],
                })
            }
            DocumentFormat::Ed25519VerificationKey2018 => {
                let x = self.public_key().to_x25519();
                let ka_fragment = multikey(&X25519_PUB, &x);
                let ka_id = format!("{did}#{ka_fragment}");
                json!({
                    "@context": [
                        "https://www.w3.org/ns/did/v1",
                        "https://w3id.org/security/suites/ed25519-2018/v1",
                        "https://w3id.org/security/suites/x25519-2019/v1"
                    ],
                    "id": did,
                    "verificationMethod": [
                        {
                            "id": vm_id,
                            "type": "Ed25519VerificationKey2018",
                            "controller": did,
                            "publicKeyBase58": base58(self.public_key().as_bytes()),
                        },
                        {
                            "id": ka_id,
                            "type": "X25519KeyAgreementKey2019",
                            "controller": did,
                            "publicKeyBase58": base58(&x),
                        }
                    ],
                    "assertionMethod": [vm_id],
                    "authentication": [vm_id],
                    "capabilityInvocation": [vm_id],
                    "capabilityDelegation": [vm_id],
                    "keyAgreement": [ka_id],
                })
            }
        }
    }

    /// Splits a verification method id `did:key:z…#z…` and checks that the
    /// fragment names the DID's own key, returning the DID.
    pub fn from_verification_method(vm: &str) -> Result<Self, DidError> {
        let (did, fragment) = vm
            .split_once('#')
            .ok_or_else(|| DidError::TrailingGarbage(String::from("(missing #fragment)")))?;
        let did = Did::parse(did)?;
        if fragment != did.multibase() {
            return Err(DidError::TrailingGarbage(truncate(&format!("#{fragment}"))));
        }
        Ok(did)
    }
}

/// The X25519 key-agreement key pair derived from an Ed25519 key, as the
/// did:key vectors show it: (public multikey fragment, public base58, secret base58).
pub fn x25519_key_agreement(keypair: &crate::Keypair) -> (String, String, String) {
    let x = keypair.public().to_x25519();
    let secret = keypair.x25519_secret();
    (
        multikey(&X25519_PUB, &x),
        base58(&x),
        base58(secret.as_ref()),
    )
}

/// The DID's public key in the legacy `publicKeyBase58` form.
pub fn base58_public_key(did: &Did) -> String {
    base58(did.public_key().as_bytes())
}

fn public_key_from_multikey(id: &str) -> Result<PublicKey, DidError> {
    let rest = id.strip_prefix('z').ok_or_else(|| {
        DidError::BadMultibase(format!("prefix {:?}", truncate(id).chars().next()))
    })?;
    // Base58 decoding is quadratic in the length, and DIDs come from peers:
    // refuse what cannot be a 34-byte multikey (47 characters) before
    // decoding, or a megabyte-long "DID" would cost seconds of CPU.
    if rest.len() > MAX_MULTIKEY_CHARS {
        return Err(DidError::BadMultibase(format!(
            "{} characters, far too long for an Ed25519 key",
            rest.len()
        )));
    }
    let bytes = multibase::Base::Base58Btc
        .decode(rest)
        .map_err(|e| DidError::BadMultibase(e.to_string()))?;
    let (codec, key) = bytes.split_at(bytes.len().min(2));
    if codec != ED25519_PUB {
        return Err(DidError::WrongMulticodec {
            found: crate::keys::encode_hex(codec),
        });
    }
    if key.len() != PUBLIC_KEY_LEN {
        return Err(DidError::WrongLength { actual: key.len() });
    }
    PublicKey::from_bytes(key).map_err(DidError::InvalidKey)
}

fn multikey(codec: &[u8; 2], key: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(2 + key.len());
    bytes.extend_from_slice(codec);
    bytes.extend_from_slice(key);
    multibase::encode(multibase::Base::Base58Btc, bytes)
}

pub(crate) fn base58(bytes: &[u8]) -> String {
    multibase::Base::Base58Btc.encode(bytes)
}

/// Error messages echo untrusted input; keep them short.
fn truncate(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        s.to_owned()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    fn sample() -> Did {
        Keypair::from_seed(&[0u8; 32]).did()
    }

    #[test]
    fn round_trips_through_text() {
        let did = sample();
        assert_eq!(Did::parse(did.as_str()), Ok(did.clone()));
        assert!(did.as_str().starts_with("did:key:z6Mk"));
    }

    #[test]
    fn rejects_wrong_prefix() {
        assert!(matches!(
            Did::parse("did:web:example.com"),
            Err(DidError::WrongPrefix(_))
        ));
        assert!(matches!(Did::parse(""), Err(DidError::WrongPrefix(_))));
    }

    #[test]
    fn rejects_non_base58btc_multibase() {
        // 'u' is base64url in multibase.
        assert!(matches!(
            Did::parse("did:key:uAAAA"),
            Err(DidError::BadMultibase(_))
        ));
        // '0', 'O', 'I' and 'l' are not in the base58 alphabet.
        assert!(matches!(
            Did::parse("did:key:z6Mk0OIl"),
            Err(DidError::BadMultibase(_))
        ));
        assert!(matches!(
            Did::parse("did:key:"),
            Err(DidError::BadMultibase(_))
        ));
    }

    #[test]
    fn rejects_other_multicodecs() {
        // An X25519 key (0xec01) is a valid did:key but not a signing key.
        let x = format!("did:key:{}", multikey(&X25519_PUB, &[9u8; 32]));
        assert_eq!(
            Did::parse(&x),
            Err(DidError::WrongMulticodec {
                found: "ec01".into()
            })
        );
    }

    #[test]
    fn rejects_wrong_key_length() {
        let short = format!("did:key:{}", multikey(&ED25519_PUB, &[9u8; 31]));
        assert_eq!(
            Did::parse(&short),
            Err(DidError::WrongLength { actual: 31 })
        );
        let long = format!("did:key:{}", multikey(&ED25519_PUB, &[9u8; 33]));
        assert_eq!(Did::parse(&long), Err(DidError::WrongLength { actual: 33 }));
    }

    #[test]
    fn rejects_trailing_garbage() {
        let did = sample();
        for suffix in ["#frag", "/path", "?q=1", " ", "\n"] {
            assert!(
                matches!(
                    Did::parse(&format!("{did}{suffix}")),
                    Err(DidError::TrailingGarbage(_))
                ),
                "{suffix:?}"
            );
        }
    }

    #[test]
    fn verification_method_must_name_the_dids_own_key() {
        let did = sample();
        assert_eq!(
            Did::from_verification_method(&did.verification_method()),
            Ok(did.clone())
        );
        assert!(Did::from_verification_method(&format!("{did}#other")).is_err());
        assert!(Did::from_verification_method(did.as_str()).is_err());
    }

    #[test]
    fn multikey_document_lists_the_key_for_every_relationship() {
        let did = sample();
        let doc = did.resolve(DocumentFormat::Multikey);
        assert_eq!(
            doc["verificationMethod"][0]["publicKeyMultibase"],
            did.multibase()
        );
        assert_eq!(doc["authentication"][0], did.verification_method());
    }
}
