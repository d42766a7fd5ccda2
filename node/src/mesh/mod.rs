//! The DID-bound WebRTC mesh (design flows 7–9): one DTLS-secured data channel per pair of
//! roster members, each bound to both parties' DID keys, exposed as an `mpc_core::Transport`.
//!
//! **Driving loop.** [`connect`] is one future: it makes a fresh ECDSA P-256 DTLS certificate
//! (one for all of this node's connections in the session), builds one `webrtc` peer connection
//! per peer, and runs every pair's handshake concurrently while routing inbound signaling
//! messages to them. Per pair (offerer = lower index):
//!
//! 1. the offerer sends `offer {sdp, binding}`, the answerer replies `answer {sdp, binding}`;
//!    ICE candidates trickle both ways as `candidate` messages;
//! 2. each side verifies the peer's binding ([`binding::verify_binding`]) against the roster
//!    DID, session and roster hash, and checks that every SDP fingerprint is the signed one
//!    **before** applying the SDP;
//! 3. once DTLS is up and the pair's ordered, reliable data channel (opened in band by the
//!    offerer) is open, each checks the certificate the peer actually presented against the
//!    signed fingerprint, sends its transcript signature as the first data-channel message and
//!    verifies the peer's.
//!
//! Only when every pair passed every check does [`connect`] return a [`Mesh`]; so by
//! construction no MPC message is sent, or accepted, before the whole mesh is verified. Any
//! failure aborts the whole mesh: [`connect`] sends `bye` (with the error code) to every peer,
//! closes every connection and returns a [`MeshError`] that names the peer and the reason.
//! Every wait is bounded by [`MeshConfig::phase_timeout`].
//!
//! **Signaling is abstract**: a pair of bounded channels of [`SignalMessage`]s, addressed by
//! roster index. [`SignalMessage::to_client_json`] and [`SignalMessage::from_server_json`]
//! convert to and from the broker's WebSocket messages (DIDs on the wire).
//!
//! **Invariants.** Bounded queues everywhere (signaling, candidates, inbound messages, the
//! data-channel send buffer); no `unwrap` on anything a peer sends; a peer that disappears
//! turns into an error naming it within a bounded time.

pub mod binding;
mod error;
mod handshake;
mod peer;
mod transport;

use std::time::{Duration, SystemTime};

use identity::{Did, Keypair};
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub use binding::{ChannelBinding, Fingerprint, Role, Transcript};
pub use error::{FingerprintSource, MeshError, PeerRef, Phase};
pub use transport::{Mesh, PeerInfo};

/// A STUN or TURN server for ICE (TURN credentials come from the broker).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, …
    pub urls: Vec<String>,
    /// TURN user name (empty for STUN).
    #[serde(default)]
    pub username: String,
    /// TURN credential (empty for STUN).
    #[serde(default)]
    pub credential: String,
}

/// The verified session facts the mesh binds to: produced from the broker-signed roster after
/// the node checked it (flow 6). The mesh trusts these values; the roster is where they are
/// checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshRoster {
    /// The session id.
    pub session: String,
    /// SHA-256 (lowercase hex) of the RFC 8785 form of the signed roster.
    pub roster_hash: String,
    /// Roster members in index order.
    pub parties: Vec<Did>,
}

impl MeshRoster {
    fn peer_ref(&self, index: usize) -> Option<PeerRef> {
        self.parties.get(index).map(|did| PeerRef {
            index,
            did: did.clone(),
        })
    }

    /// The roster index of a DID.
    pub fn index_of(&self, did: &Did) -> Option<usize> {
        self.parties.iter().position(|d| d == did)
    }
}

/// Mesh settings. [`Default`] suits the internet; tests bind loopback only.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// STUN/TURN servers (host candidates are gathered too, unless `relay_only`).
    pub ice_servers: Vec<IceServer>,
    /// Use TURN relay candidates only (the manifest's `"ice": "relay"`): parties then never
    /// learn each other's addresses, and a session without a TURN server cannot start.
    pub relay_only: bool,
    /// Local UDP addresses to bind, one socket per address and peer connection. A wildcard
    /// (`0.0.0.0:0`) binds every non-loopback interface; `127.0.0.1:0` binds loopback only.
    pub udp_addrs: Vec<String>,
    /// Limit on each wait while setting up one pair (offer, answer, connect, transcript).
    pub phase_timeout: Duration,
    /// How long `recv` waits for the next message from a peer.
    pub recv_timeout: Duration,
    /// How long `send` waits for send-buffer space (a peer that stopped reading).
    pub send_timeout: Duration,
    /// How long [`Mesh::close`] waits for peers' `bye` and for our last data to be delivered.
    pub close_timeout: Duration,
    /// Largest MPC message accepted or sent (messages are chunked on the wire).
    pub max_message: usize,
    /// Complete inbound messages buffered per peer before we stop reading its channel (which
    /// closes the SCTP window and so slows the sender down). The engine sends one message per
    /// peer per round, so an honest peer is at most a round or two ahead; a larger queue only
    /// lets a dishonest one park `inbound_capacity × max_message` bytes on us.
    pub inbound_capacity: usize,
    /// Per-channel send-buffer limit in bytes. 64 KiB measured best: larger limits overflow
    /// the UDP receive buffer on loopback and stall.
    pub send_buffer_limit: usize,
    /// Delay between ICE connectivity checks. The `webrtc` default (200 ms) makes a pair take
    /// about 0.6 s on loopback; checks are tiny STUN packets, so checking faster is cheap.
    pub ice_check_interval: Duration,
    /// ICE: how long without traffic before a path counts as disconnected.
    pub ice_disconnected_timeout: Duration,
    /// ICE: how long disconnected before the connection fails (and the peer counts as gone).
    pub ice_failed_timeout: Duration,
    /// ICE keepalive interval.
    pub ice_keepalive_interval: Duration,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            ice_servers: Vec::new(),
            relay_only: false,
            udp_addrs: vec!["0.0.0.0:0".into()],
            phase_timeout: Duration::from_secs(15),
            recv_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(2),
            max_message: 64 << 20,
            inbound_capacity: 4,
            send_buffer_limit: 64 << 10,
            ice_check_interval: Duration::from_millis(20),
            ice_disconnected_timeout: Duration::from_secs(5),
            ice_failed_timeout: Duration::from_secs(10),
            ice_keepalive_interval: Duration::from_secs(1),
        }
    }
}

/// What a signaling message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignalKind {
    /// `{sdp, binding}` from the offerer.
    Offer,
    /// `{sdp, binding}` from the answerer.
    Answer,
    /// A trickled ICE candidate `{candidate, sdpMid, sdpMLineIndex, …}`.
    Candidate,
    /// A channel binding on its own (allowed by the schema; this mesh sends bindings inside
    /// the offer/answer and ignores standalone ones).
    Binding,
    /// The sender ends the pair: `{reason, detail}`.
    Bye,
}

impl SignalKind {
    /// The wire name (`type` of the broker's messages).
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Offer => "offer",
            SignalKind::Answer => "answer",
            SignalKind::Candidate => "candidate",
            SignalKind::Binding => "binding",
            SignalKind::Bye => "bye",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "offer" => SignalKind::Offer,
            "answer" => SignalKind::Answer,
            "candidate" => SignalKind::Candidate,
            "binding" => SignalKind::Binding,
            "bye" => SignalKind::Bye,
            _ => return None,
        })
    }
}

/// One signaling message. `peer` is the recipient's roster index on the way out and the
/// sender's on the way in (the broker stamps the sender; the mesh never trusts a payload's
/// claim about who sent it — bindings are checked against the roster DID of `peer`).
#[derive(Debug, Clone, PartialEq)]
pub struct SignalMessage {
    /// The other party's roster index.
    pub peer: usize,
    /// What it is.
    pub kind: SignalKind,
    /// Kind-specific JSON object.
    pub payload: Value,
}

impl SignalMessage {
    /// The client → broker form `{"type", "to", "payload"}` (`to` is the recipient's DID).
    pub fn to_client_json(&self, roster: &MeshRoster) -> Option<Value> {
        let to = roster.parties.get(self.peer)?;
        Some(json!({"type": self.kind.as_str(), "to": to.as_str(), "payload": self.payload}))
    }

    /// Parses a broker → client relayed message `{"type", "from", "to", "payload"}`: `from`
    /// must be a roster member other than us and `to` must be us.
    pub fn from_server_json(v: &Value, roster: &MeshRoster, me: &Did) -> Result<Self, String> {
        let field = |name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("no string {name:?}"))
        };
        let kind =
            SignalKind::parse(field("type")?).ok_or_else(|| "unknown message type".to_owned())?;
        let from = Did::parse(field("from")?).map_err(|e| format!("from: {e}"))?;
        let to = Did::parse(field("to")?).map_err(|e| format!("to: {e}"))?;
        if &to != me {
            return Err(format!("addressed to {to}, not to us"));
        }
        if &from == me {
            return Err("a message from ourselves".into());
        }
        let peer = roster
            .index_of(&from)
            .ok_or_else(|| format!("{from} is not on the roster"))?;
        let payload = match v.get("payload") {
            Some(p @ Value::Object(_)) => p.clone(),
            _ => return Err("payload is not an object".into()),
        };
        Ok(SignalMessage {
            peer,
            kind,
            payload,
        })
    }
}

/// The node's signaling connection as the mesh sees it: bounded queues in both directions.
#[derive(Debug)]
pub struct Signaling {
    /// Messages to send (`peer` = recipient).
    pub outbound: mpsc::Sender<SignalMessage>,
    /// Messages received (`peer` = sender, as authenticated by the broker).
    pub inbound: mpsc::Receiver<SignalMessage>,
}

/// Builds the verified mesh: see the module docs. `keypair` must be the key of one roster
/// member; its position in the roster is our index.
pub async fn connect(
    keypair: &Keypair,
    roster: &MeshRoster,
    config: &MeshConfig,
    signaling: &mut Signaling,
) -> Result<Mesh, MeshError> {
    let me = check_roster(keypair, roster)?;
    if config.relay_only
        && !config
            .ice_servers
            .iter()
            .flat_map(|s| &s.urls)
            .any(|u| u.starts_with("turn:") || u.starts_with("turns:"))
    {
        return Err(MeshError::Config(
            "the manifest allows relayed connections only (\"ice\": \"relay\"), but no TURN \
             server is configured: the broker operator must configure one (--turn and \
             --turn-secret)"
                .into(),
        ));
    }
    peer::connect_all(keypair, roster, me, config, signaling, SystemTime::now()).await
}

fn check_roster(keypair: &Keypair, roster: &MeshRoster) -> Result<usize, MeshError> {
    let n = roster.parties.len();
    if n == 0 || n > identity::session::MAX_PARTIES {
        return Err(MeshError::Config(format!(
            "{n} parties (1..={} allowed)",
            identity::session::MAX_PARTIES
        )));
    }
    let mut sorted = roster.parties.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != n {
        return Err(MeshError::Config(
            "a DID appears twice in the roster".into(),
        ));
    }
    if roster.roster_hash.len() != 64
        || !roster
            .roster_hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(MeshError::Config(
            "the roster hash is not 64 lowercase hex digits".into(),
        ));
    }
    let did = keypair.did();
    roster
        .index_of(&did)
        .ok_or_else(|| MeshError::Config(format!("our DID {did} is not on the roster")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn roster() -> MeshRoster {
        MeshRoster {
            session: "q7Xv2mKp9RtLwZ3a".into(),
            roster_hash: "ab".repeat(32),
            parties: (1..=3u8)
                .map(|n| Keypair::from_seed(&[n; 32]).did())
                .collect(),
        }
    }

    #[test]
    fn signal_messages_convert_to_and_from_the_broker_form() {
        let r = roster();
        let msg = SignalMessage {
            peer: 2,
            kind: SignalKind::Offer,
            payload: json!({"sdp": "v=0"}),
        };
        let out = msg.to_client_json(&r).unwrap();
        assert_eq!(
            out,
            json!({"type": "offer", "to": r.parties[2].as_str(), "payload": {"sdp": "v=0"}})
        );
        let relayed = json!({
            "type": "candidate", "from": r.parties[0].as_str(), "to": r.parties[1].as_str(),
            "payload": {"candidate": "c"}
        });
        let got = SignalMessage::from_server_json(&relayed, &r, &r.parties[1]).unwrap();
        assert_eq!((got.peer, got.kind), (0, SignalKind::Candidate));
        // Not for us, not on the roster, from ourselves, unknown type, payload not an object.
        assert!(SignalMessage::from_server_json(&relayed, &r, &r.parties[2]).is_err());
        let stranger = Keypair::from_seed(&[9; 32]).did();
        let mut bad = relayed.clone();
        bad["from"] = json!(stranger.as_str());
        assert!(SignalMessage::from_server_json(&bad, &r, &r.parties[1]).is_err());
        let mut bad = relayed.clone();
        bad["from"] = json!(r.parties[1].as_str());
        assert!(SignalMessage::from_server_json(&bad, &r, &r.parties[1]).is_err());
        let mut bad = relayed.clone();
        bad["type"] = json!("hello");
        assert!(SignalMessage::from_server_json(&bad, &r, &r.parties[1]).is_err());
        let mut bad = relayed;
        bad["payload"] = json!("x");
        assert!(SignalMessage::from_server_json(&bad, &r, &r.parties[1]).is_err());
        assert!(msg
            .to_client_json(&MeshRoster {
                parties: vec![],
                ..r
            })
            .is_none());
    }

    #[tokio::test]
    async fn a_relay_only_session_without_a_turn_server_is_refused_before_any_connection() {
        let r = roster();
        let (out, _keep) = mpsc::channel(1);
        let (_tx, inbound) = mpsc::channel(1);
        let mut sig = Signaling {
            outbound: out,
            inbound,
        };
        let config = MeshConfig {
            relay_only: true,
            ice_servers: vec![IceServer {
                urls: vec!["stun:127.0.0.1:3478".into()],
                ..Default::default()
            }],
            ..MeshConfig::default()
        };
        let e = connect(&Keypair::from_seed(&[2; 32]), &r, &config, &mut sig)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no TURN server"), "{e}");
    }

    #[test]
    fn rosters_are_checked_before_anything_is_built() {
        let r = roster();
        assert_eq!(check_roster(&Keypair::from_seed(&[2; 32]), &r).unwrap(), 1);
        assert!(check_roster(&Keypair::from_seed(&[9; 32]), &r).is_err());
        let mut dup = r.clone();
        dup.parties.push(dup.parties[0].clone());
        assert!(check_roster(&Keypair::from_seed(&[2; 32]), &dup).is_err());
        let mut upper = r.clone();
        upper.roster_hash = "AB".repeat(32);
        assert!(check_roster(&Keypair::from_seed(&[2; 32]), &upper).is_err());
        let empty = MeshRoster {
            parties: vec![],
            ..r
        };
        assert!(check_roster(&Keypair::from_seed(&[2; 32]), &empty).is_err());
    }
}
