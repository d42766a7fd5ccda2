//! Compact JWS with EdDSA (RFC 7515 + RFC 8037) and the short-lived access
//! tokens the broker issues with it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::{Keypair, PublicKey, Signature};

/// Why a compact JWS or token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwsError {
    /// Not three base64url parts separated by dots.
    #[error("not a compact JWS (three base64url parts separated by '.')")]
    Malformed,
    /// The header is not JSON or its `alg` is not `EdDSA`.
    #[error("unsupported JWS header: {0}")]
    BadHeader(String),
    /// The signature does not verify.
    #[error("the JWS signature does not verify")]
    BadSignature,
    /// The payload is not the expected JSON.
    #[error("the token payload is not valid: {0}")]
    BadClaims(String),
    /// `exp` is in the past.
    #[error("the token expired")]
    Expired,
    /// `nbf`/`iat` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` is for another service.
    #[error("the token is for audience {found:?}, not {expected:?}")]
    WrongAudience {
        /// Expected audience.
        expected: String,
        /// Found audience.
        found: String,
    },
}

/// Signs `payload` with a caller-supplied protected header (serialized JSON,
/// used verbatim so that exact vectors can be reproduced).
pub fn sign_with_header(keypair: &Keypair, header_json: &str, payload: &[u8]) -> String {
    let signing_input = format!("{}.{}", B64.encode(header_json), B64.encode(payload));
    let sig = keypair.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(sig.to_bytes()))
}

/// Signs `payload` with header `{"alg":"EdDSA","kid":<verification method>,"typ":typ}`.
pub fn sign(keypair: &Keypair, typ: &str, payload: &[u8]) -> String {
    let header = serde_json::json!({
        "alg": "EdDSA",
        "kid": keypair.did().verification_method(),
        "typ": typ,
    });
    sign_with_header(keypair, &header.to_string(), payload)
}

/// A verified compact JWS.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJws {
    /// The protected header.
    pub header: Value,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Verifies a compact EdDSA JWS against a known key.
pub fn verify(token: &str, key: &PublicKey) -> Result<VerifiedJws, JwsError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let header_bytes = B64.decode(h).map_err(|_| JwsError::Malformed)?;
    let header: Value = serde_json::from_slice(&header_bytes)
        .map_err(|e| JwsError::BadHeader(format!("not JSON: {e}")))?;
    if header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
        return Err(JwsError::BadHeader("alg must be \"EdDSA\"".into()));
    }
    if header.get("crit").is_some() {
        return Err(JwsError::BadHeader(
            "\"crit\" extensions are not supported".into(),
        ));
    }
    let sig = B64
        .decode(s)
        .ok()
        .and_then(|b| Signature::from_bytes(&b).ok())
        .ok_or(JwsError::Malformed)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    key.verify(signing_input.as_bytes(), &sig)
        .map_err(|_| JwsError::BadSignature)?;
    let payload = B64.decode(p).map_err(|_| JwsError::Malformed)?;
    Ok(VerifiedJws { header, payload })
}

/// Claims of a broker access token (a JWT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The issuing broker's DID.
    pub iss: String,
    /// The authenticated party's DID.
    pub sub: String,
    /// The audience (the broker's domain).
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
}

/// Issues a JWT signed by the broker key.
pub fn issue_token(keypair: &Keypair, claims: &TokenClaims) -> String {
    // Serializing a struct of strings and integers cannot fail.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    sign(keypair, "JWT", &payload)
}

/// Verifies a broker JWT: signature, audience and time window (with `leeway`
/// for clock skew).
pub fn verify_token(
    token: &str,
    key: &PublicKey,
    audience: &str,
    now: SystemTime,
    leeway: Duration,
) -> Result<TokenClaims, JwsError> {
    let jws = verify(token, key)?;
    let claims: TokenClaims =
        serde_json::from_slice(&jws.payload).map_err(|e| JwsError::BadClaims(e.to_string()))?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if now > claims.exp.saturating_add(leeway.as_secs()) {
        return Err(JwsError::Expired);
    }
    if claims.iat > now.saturating_add(leeway.as_secs()) {
        return Err(JwsError::NotYetValid);
    }
    if claims.aud != audience {
        return Err(JwsError::WrongAudience {
            expected: audience.to_owned(),
            found: claims.aud,
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> TokenClaims {
        TokenClaims {
            iss: "did:key:broker".into(),
            sub: "did:key:party".into(),
            aud: "broker.example".into(),
            iat: 1_000,
            exp,
            jti: "j1".into(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn tokens_round_trip_within_their_window() {
        let kp = Keypair::from_seed(&[3u8; 32]);
        let t = issue_token(&kp, &claims(2_000));
        let got = verify_token(
            &t,
            &kp.public(),
            "broker.example",
            at(1_500),
            Duration::ZERO,
        );
        assert_eq!(got, Ok(claims(2_000)));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let kp = Keypair::from_seed(&[3u8; 32]);
        let t = issue_token(&kp, &claims(2_000));
        let got = verify_token(
            &t,
            &kp.public(),
            "broker.example",
            at(2_001),
            Duration::ZERO,
        );
        assert_eq!(got, Err(JwsError::Expired));
    }

    #[test]
    fn tokens_for_another_audience_are_refused() {
        let kp = Keypair::from_seed(&[3u8; 32]);
        let t = issue_token(&kp, &claims(2_000));
        let got = verify_token(&t, &kp.public(), "other.example", at(1_500), Duration::ZERO);
        assert!(matches!(got, Err(JwsError::WrongAudience { .. })));
    }

    #[test]
    fn tokens_signed_by_another_key_are_refused() {
        let kp = Keypair::from_seed(&[3u8; 32]);
        let other = Keypair::from_seed(&[4u8; 32]);
        let t = issue_token(&other, &claims(2_000));
        let got = verify_token(
            &t,
            &kp.public(),
            "broker.example",
            at(1_500),
            Duration::ZERO,
        );
        assert_eq!(got, Err(JwsError::BadSignature));
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let kp = Keypair::from_seed(&[3u8; 32]);
        for bad in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            "e30.e30.",
            "e30.e30.AAAA",
            "é.é.é",
        ] {
            assert!(verify(bad, &kp.public()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn other_algorithms_are_refused() {
        let kp = Keypair::from_seed(&[3u8; 32]);
        let t = sign_with_header(&kp, r#"{"alg":"none"}"#, b"x");
        assert!(matches!(
            verify(&t, &kp.public()),
            Err(JwsError::BadHeader(_))
        ));
    }
}
