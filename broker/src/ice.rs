//! ICE servers for roster members, with TURN credentials in the standard
//! TURN REST form that coturn's `use-auth-secret` checks: username
//! `<expiry>:<did>`, password `base64(HMAC-SHA1(secret, username))`.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

/// One entry of the RTCConfiguration `iceServers` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The broker's STUN/TURN configuration.
#[derive(Debug, Clone, Default)]
pub struct IceConfig {
    /// STUN URLs.
    pub stun: Vec<String>,
    /// TURN URLs.
    pub turn: Vec<String>,
    /// Shared secret with the TURN server.
    pub turn_secret: Option<String>,
    /// Lifetime of TURN credentials.
    pub turn_ttl: Duration,
}

/// TURN REST credentials for `did`, valid until `now + ttl`.
pub fn turn_credentials(
    secret: &str,
    did: &str,
    now: SystemTime,
    ttl: Duration,
) -> (String, String) {
    let expiry = crate::challenge::unix(now).saturating_add(ttl.as_secs());
    let username = format!("{expiry}:{did}");
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(username.as_bytes());
    (username, B64.encode(mac.finalize().into_bytes()))
}

impl IceConfig {
    /// The servers to hand `did`.
    pub fn servers_for(&self, did: &str, now: SystemTime) -> Vec<IceServer> {
        let mut out = Vec::new();
        if !self.stun.is_empty() {
            out.push(IceServer {
                urls: self.stun.clone(),
                username: None,
                credential: None,
            });
        }
        if let (false, Some(secret)) = (self.turn.is_empty(), &self.turn_secret) {
            let (u, c) = turn_credentials(secret, did, now, self.turn_ttl);
            out.push(IceServer {
                urls: self.turn.clone(),
                username: Some(u),
                credential: Some(c),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn turn_rest_credentials_match_an_independent_hmac_sha1() {
        // Computed with: printf '%s' '1000:did:key:z6Mkx' | openssl dgst -sha1 -hmac secret -binary | base64
        let (u, c) = turn_credentials(
            "secret",
            "did:key:z6Mkx",
            UNIX_EPOCH + Duration::from_secs(400),
            Duration::from_secs(600),
        );
        assert_eq!(u, "1000:did:key:z6Mkx");
        assert_eq!(c, "fvINSUePA4jWJUne7XciT+cR3tc=");
    }

    #[test]
    fn no_turn_entry_without_a_secret() {
        let cfg = IceConfig {
            stun: vec!["stun:s".into()],
            turn: vec!["turn:t".into()],
            turn_secret: None,
            turn_ttl: Duration::from_secs(60),
        };
        let s = cfg.servers_for("did:key:z", UNIX_EPOCH);
        assert_eq!(s.len(), 1);
        assert!(s[0].username.is_none());
    }
}
