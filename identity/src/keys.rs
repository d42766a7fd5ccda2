//! Ed25519 key pairs behind opaque types.
//!
//! The backend (`ed25519-dalek`) never appears in the public API so it can be
//! replaced without touching callers. Secret material is zeroized on drop and
//! never printed by `Debug`.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::did::Did;

/// Length in bytes of an Ed25519 secret seed, public key and signature.
pub(crate) const SEED_LEN: usize = 32;
/// Length in bytes of an Ed25519 public key.
pub(crate) const PUBLIC_KEY_LEN: usize = 32;
/// Length in bytes of an Ed25519 signature.
pub(crate) const SIGNATURE_LEN: usize = 64;

/// Errors from building keys and checking signatures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The byte string does not have the length of an Ed25519 key.
    #[error("an Ed25519 {what} is {expected} bytes, got {actual}")]
    WrongLength {
        /// Which kind of key material was expected.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// The 32 bytes are not a valid compressed Edwards point.
    #[error("the bytes are not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// A hex seed could not be decoded.
    #[error("the seed is not {len} bytes of hex: {reason}")]
    BadSeedHex {
        /// Expected byte length.
        len: usize,
        /// What was wrong.
        reason: String,
    },
}

/// The signature did not verify under the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[error("Ed25519 signature verification failed")]
pub struct BadSignature;

/// An Ed25519 key pair (secret seed and public key).
///
/// The secret never leaves this type except through [`Keypair::to_seed`],
/// which returns a zeroizing buffer for key files.
pub struct Keypair {
    signing: SigningKey,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypair")
            .field("did", &self.did().as_str())
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Keypair {
    /// Draws a fresh key pair from a cryptographically secure generator.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// Derives the key pair from a 32-byte secret seed (RFC 8032 private key).
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// Parses a seed given as 64 hex digits.
    pub fn from_seed_hex(hex: &str) -> Result<Self, KeyError> {
        let bytes =
            Zeroizing::new(
                decode_hex(hex.trim()).map_err(|reason| KeyError::BadSeedHex {
                    len: SEED_LEN,
                    reason,
                })?,
            );
        let seed: Zeroizing<[u8; SEED_LEN]> = Zeroizing::new(bytes.as_slice().try_into().map_err(
            |_| KeyError::BadSeedHex {
                len: SEED_LEN,
                reason: format!("{} bytes", bytes.len()),
            },
        )?);
        Ok(Self::from_seed(&seed))
    }

    /// Builds a key pair from a seed slice of any length, checking it.
    pub fn from_seed_slice(seed: &[u8]) -> Result<Self, KeyError> {
        let seed: Zeroizing<[u8; SEED_LEN]> =
            Zeroizing::new(seed.try_into().map_err(|_| KeyError::WrongLength {
                what: "secret seed",
                expected: SEED_LEN,
                actual: seed.len(),
            })?);
        Ok(Self::from_seed(&seed))
    }

    /// The secret seed, for writing key files. Zeroized when dropped.
    pub fn to_seed(&self) -> Zeroizing<[u8; SEED_LEN]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            verifying: self.signing.verifying_key(),
        }
    }

    /// The `did:key` of the public half.
    pub fn did(&self) -> Did {
        Did::from_public_key(&self.public())
    }

    /// Signs a message (pure Ed25519, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }

    /// The X25519 secret scalar that corresponds to this key (RFC 7748 form),
    /// as used by did:key's derived `keyAgreement` key.
    pub(crate) fn x25519_secret(&self) -> Zeroizing<[u8; 32]> {
        let mut s = Zeroizing::new(self.signing.to_scalar_bytes());
        // RFC 7748 clamping, as libsodium's crypto_sign_ed25519_sk_to_curve25519
        // (which produced the did:key vectors) applies it.
        s[0] &= 248;
        s[31] &= 127;
        s[31] |= 64;
        s
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey {
    verifying: VerifyingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", encode_hex(self.as_bytes()))
    }
}

impl PublicKey {
    /// Parses 32 bytes of a compressed Edwards point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            what: "public key",
            expected: PUBLIC_KEY_LEN,
            actual: bytes.len(),
        })?;
        let verifying = VerifyingKey::from_bytes(&arr).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(Self { verifying })
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.verifying.as_bytes()
    }

    /// Verifies a signature. Uses the strict check (no small-order keys, no
    /// malleable signatures): a verifier here is never asked to be lenient.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), BadSignature> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.verifying
            .verify_strict(message, &sig)
            .map_err(|_| BadSignature)
    }

    /// The X25519 (Montgomery) form of this key, for did:key `keyAgreement`.
    pub(crate) fn to_x25519(self) -> [u8; 32] {
        self.verifying.to_montgomery().to_bytes()
    }
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", encode_hex(&self.0))
    }
}

impl Signature {
    /// Parses 64 signature bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; SIGNATURE_LEN] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            what: "signature",
            expected: SIGNATURE_LEN,
            actual: bytes.len(),
        })?;
        Ok(Self(arr))
    }

    /// The 64 raw bytes.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0
    }
}

pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub(crate) fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("invalid hex digit near position {i}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let kp = Keypair::from_seed(&[7u8; 32]);
        let shown = format!("{kp:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&encode_hex(&[7u8; 32])));
        assert!(!shown.contains("7, 7, 7"));
    }

    #[test]
    fn signatures_verify_and_tampering_is_caught() {
        let kp = Keypair::from_seed(&[1u8; 32]);
        let sig = kp.sign(b"hello");
        assert_eq!(kp.public().verify(b"hello", &sig), Ok(()));
        assert_eq!(kp.public().verify(b"hellp", &sig), Err(BadSignature));
        let other = Keypair::from_seed(&[2u8; 32]);
        assert_eq!(other.public().verify(b"hello", &sig), Err(BadSignature));
    }

    #[test]
    fn seed_hex_is_checked() {
        assert!(matches!(
            Keypair::from_seed_hex("abc"),
            Err(KeyError::BadSeedHex { .. })
        ));
        assert!(matches!(
            Keypair::from_seed_hex("zz"),
            Err(KeyError::BadSeedHex { .. })
        ));
        assert!(matches!(
            Keypair::from_seed_hex("00"),
            Err(KeyError::BadSeedHex { .. })
        ));
        assert!(Keypair::from_seed_hex(&"00".repeat(32)).is_ok());
    }

    #[test]
    fn public_key_length_is_checked() {
        assert_eq!(
            PublicKey::from_bytes(&[0u8; 31]),
            Err(KeyError::WrongLength {
                what: "public key",
                expected: 32,
                actual: 31
            })
        );
    }
}
