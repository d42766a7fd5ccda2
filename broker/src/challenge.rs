//! Challenges: what they say and how they are checked (pure).
//!
//! A challenge is `"<purpose>:<expires>:<nonce>"`, e.g.
//! `join/Qm3…:1764460800:9fK…`. Carrying the purpose and expiry in the
//! string lets the broker say precisely why an answer is refused (expired,
//! for another session, for login rather than joining) before it spends a
//! signature check; the store still decides whether it was ever issued and
//! consumes it exactly once. The purpose also binds a join presentation to
//! one session, so a node re-verifying a peer's evidence can tell that it
//! was made for this session and not replayed from another.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use rand::RngCore;

/// What a challenge may be answered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Logging in for an access token.
    Authenticate,
    /// Joining one session.
    Join(String),
}

/// A parsed challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// What it is for.
    pub purpose: Purpose,
    /// Seconds since the epoch after which it is refused.
    pub expires: u64,
}

/// Why an answered challenge is refused before the store is asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeRefused {
    /// Not a challenge this broker could have issued.
    #[error("the presentation's challenge is not one this broker issues")]
    Malformed,
    /// Past its expiry.
    #[error("the challenge expired; ask for a new one and answer within its lifetime")]
    Expired,
    /// Issued for something else.
    #[error("the challenge was issued for {found}, not for {expected}")]
    WrongPurpose {
        /// What the endpoint needs.
        expected: String,
        /// What the challenge is for.
        found: String,
    },
}

impl Purpose {
    fn tag(&self) -> String {
        match self {
            Purpose::Authenticate => "auth".into(),
            Purpose::Join(s) => format!("join/{s}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Purpose::Authenticate => "authentication".into(),
            Purpose::Join(s) => format!("joining session {s}"),
        }
    }
}

/// Mints a challenge valid for `ttl` from `now`.
pub fn mint(purpose: &Purpose, now: SystemTime, ttl: Duration, rng: &mut dyn RngCore) -> String {
    let mut nonce = [0u8; 18];
    rng.fill_bytes(&mut nonce);
    let expires = unix(now).saturating_add(ttl.as_secs().max(1));
    format!("{}:{expires}:{}", purpose.tag(), B64.encode(nonce))
}

/// Parses a challenge string.
pub fn parse(s: &str) -> Result<Challenge, ChallengeRefused> {
    if s.len() > 200 {
        return Err(ChallengeRefused::Malformed);
    }
    let mut parts = s.splitn(3, ':');
    let (Some(tag), Some(exp), Some(nonce)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ChallengeRefused::Malformed);
    };
    let expires: u64 = exp.parse().map_err(|_| ChallengeRefused::Malformed)?;
    if nonce.len() != 24 || B64.decode(nonce).is_err() {
        return Err(ChallengeRefused::Malformed);
    }
    let purpose = match tag {
        "auth" => Purpose::Authenticate,
        t => match t.strip_prefix("join/") {
            Some(id) if crate::session::valid_id(id) => Purpose::Join(id.to_owned()),
            _ => return Err(ChallengeRefused::Malformed),
        },
    };
    Ok(Challenge { purpose, expires })
}

/// Parses and checks a challenge against the endpoint's purpose and the clock.
pub fn check(s: &str, expected: &Purpose, now: SystemTime) -> Result<Challenge, ChallengeRefused> {
    let c = parse(s)?;
    if c.purpose != *expected {
        return Err(ChallengeRefused::WrongPurpose {
            expected: expected.describe(),
            found: c.purpose.describe(),
        });
    }
    if unix(now) > c.expires {
        return Err(ChallengeRefused::Expired);
    }
    Ok(c)
}

/// Seconds since the epoch (0 before it).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(7)
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn minted_challenge_checks_for_its_purpose_until_it_expires() {
        let p = Purpose::Join("abcdefgh12".into());
        let c = mint(&p, at(1000), Duration::from_secs(60), &mut rng());
        assert!(c.starts_with("join/abcdefgh12:1060:"));
        assert_eq!(check(&c, &p, at(1060)).unwrap().expires, 1060);
        assert_eq!(check(&c, &p, at(1061)), Err(ChallengeRefused::Expired));
    }

    #[test]
    fn challenge_for_another_session_or_for_login_is_refused() {
        let c = mint(
            &Purpose::Authenticate,
            at(0),
            Duration::from_secs(60),
            &mut rng(),
        );
        let err = check(&c, &Purpose::Join("abcdefgh12".into()), at(1)).unwrap_err();
        assert!(matches!(err, ChallengeRefused::WrongPurpose { .. }));
        let j = mint(
            &Purpose::Join("sessionA1".into()),
            at(0),
            Duration::from_secs(60),
            &mut rng(),
        );
        assert!(check(&j, &Purpose::Join("sessionB1".into()), at(1)).is_err());
    }

    #[test]
    fn garbage_challenges_are_malformed_not_panics() {
        for s in [
            "",
            "auth",
            "auth:1",
            "auth:x:AAAA",
            "auth:1:short",
            "join/:1:AAAAAAAAAAAAAAAAAAAAAAAA",
            &"a".repeat(500),
        ] {
            assert_eq!(parse(s), Err(ChallengeRefused::Malformed), "{s}");
        }
    }
}
