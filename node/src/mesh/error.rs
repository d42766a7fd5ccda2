//! The one error type of the mesh: every failure names the peer it is about and the reason.

use std::fmt;
use std::time::Duration;

use identity::statement::StatementInvalid;
use identity::Did;

/// A roster member as errors name it: `#index (did)`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PeerRef {
    /// Roster index.
    pub index: usize,
    /// The member's DID.
    pub did: Did,
}

impl fmt::Display for PeerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} ({})", self.index, self.did)
    }
}

impl fmt::Debug for PeerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where in the setup of one pair a wait or a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Building the local peer connection, data channel and offer/answer.
    Setup,
    /// Waiting for the peer's offer (we answer).
    Offer,
    /// Waiting for the peer's answer (we offered).
    Answer,
    /// ICE connectivity, DTLS handshake and the data channel opening.
    Connect,
    /// Waiting for the peer's signed transcript over the data channel.
    Transcript,
    /// Closing the mesh.
    Shutdown,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Setup => "setup",
            Phase::Offer => "waiting for the offer",
            Phase::Answer => "waiting for the answer",
            Phase::Connect => "ICE/DTLS/data channel",
            Phase::Transcript => "waiting for the transcript",
            Phase::Shutdown => "shutdown",
        })
    }
}

/// Where a fingerprint mismatch was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FingerprintSource {
    /// An `a=fingerprint` line of the peer's SDP differs from the fingerprint it signed (a
    /// rewritten offer/answer, or a peer that signed a certificate it does not use). Caught
    /// before DTLS starts.
    Sdp,
    /// The certificate the peer presented in the DTLS handshake differs from the one it signed.
    Dtls,
}

impl fmt::Display for FingerprintSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FingerprintSource::Sdp => "in its SDP",
            FingerprintSource::Dtls => "in the DTLS handshake",
        })
    }
}

/// Why building or running the DID-bound mesh failed.
///
/// Verification failures ("checked and invalid") are separate variants from local failures
/// ("could not check"): a bad signature is the peer's (or the relay's) fault, a WebRTC error
/// building our own connection is not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The roster or configuration cannot describe a mesh (our DID not at our index, too many
    /// parties, duplicate DIDs, …).
    #[error("invalid mesh configuration: {0}")]
    Config(String),
    /// The per-session DTLS certificate could not be made.
    #[error("cannot create the DTLS certificate")]
    Certificate(#[source] webrtc::error::Error),
    /// A local WebRTC operation failed.
    #[error("WebRTC error with peer {peer} ({phase})")]
    WebRtc {
        /// The peer of the connection.
        peer: PeerRef,
        /// Where.
        phase: Phase,
        /// Cause.
        #[source]
        source: webrtc::error::Error,
    },
    /// Our own binding could not be signed.
    #[error("cannot sign the channel binding for peer {peer}: {reason}")]
    BindingSigning {
        /// The peer the binding is for.
        peer: PeerRef,
        /// Cause.
        reason: String,
    },
    /// The peer's binding is missing or not a well-formed `MpcChannelBinding`.
    #[error("malformed channel binding from peer {peer}: {reason}")]
    MalformedBinding {
        /// The peer.
        peer: PeerRef,
        /// What is wrong.
        reason: String,
    },
    /// The binding's signature does not verify under the peer's DID from the roster.
    #[error("bad channel binding signature from peer {peer}")]
    BadBindingSignature {
        /// The peer.
        peer: PeerRef,
        /// Why the proof failed (altered, or signed by someone else).
        #[source]
        source: StatementInvalid,
    },
    /// A validly signed binding, but for another session or roster (a replay, or a broker that
    /// showed us a different roster).
    #[error("channel binding from peer {peer} is for another {field}: expected {expected}, found {found}")]
    BindingForAnotherSession {
        /// The peer.
        peer: PeerRef,
        /// `session` or `rosterHash`.
        field: &'static str,
        /// Ours.
        expected: String,
        /// The binding's.
        found: String,
    },
    /// A validly signed binding whose `from`/`to` are not this pair.
    #[error("channel binding from peer {peer} names the wrong parties: {reason}")]
    BindingForOtherParties {
        /// The peer.
        peer: PeerRef,
        /// Which party field differs.
        reason: String,
    },
    /// The certificate fingerprint the peer signed is not the one it uses.
    #[error("fingerprint mismatch with peer {peer}: it signed {signed} but presented {seen} {source_of}")]
    FingerprintMismatch {
        /// The peer.
        peer: PeerRef,
        /// Where the other fingerprint was seen.
        source_of: FingerprintSource,
        /// The fingerprint in the signed binding.
        signed: String,
        /// The fingerprint seen in the SDP or DTLS handshake.
        seen: String,
    },
    /// The peer's signed transcript is missing, malformed or does not verify.
    #[error("invalid transcript from peer {peer}: {reason}")]
    TranscriptInvalid {
        /// The peer.
        peer: PeerRef,
        /// What is wrong.
        reason: String,
    },
    /// The peer broke the pairing protocol (unexpected or malformed signaling message, SDP
    /// without a data channel, …).
    #[error("protocol violation by peer {peer} ({phase}): {reason}")]
    Protocol {
        /// The peer.
        peer: PeerRef,
        /// Where.
        phase: Phase,
        /// What.
        reason: String,
    },
    /// Nothing happened within the phase's time limit.
    #[error("timed out after {after:?} with peer {peer} ({phase})")]
    Timeout {
        /// The peer.
        peer: PeerRef,
        /// Which wait.
        phase: Phase,
        /// The limit.
        after: Duration,
    },
    /// The peer said `bye`, closed its connection, or ICE/DTLS failed.
    #[error("peer {peer} closed the connection ({phase}){}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    PeerClosed {
        /// The peer.
        peer: PeerRef,
        /// Where.
        phase: Phase,
        /// The reason it gave or the state we saw, if any (text from the peer, truncated).
        reason: Option<String>,
    },
    /// The signaling channel (the broker connection) is gone.
    #[error("the signaling channel closed while talking to peer {peer} ({phase})")]
    SignalingClosed {
        /// The peer whose message could not be sent or was awaited.
        peer: PeerRef,
        /// Where.
        phase: Phase,
    },
}

impl MeshError {
    /// The peer the error is about, if any.
    pub fn peer(&self) -> Option<&PeerRef> {
        match self {
            MeshError::Config(_) | MeshError::Certificate(_) => None,
            MeshError::WebRtc { peer, .. }
            | MeshError::BindingSigning { peer, .. }
            | MeshError::MalformedBinding { peer, .. }
            | MeshError::BadBindingSignature { peer, .. }
            | MeshError::BindingForAnotherSession { peer, .. }
            | MeshError::BindingForOtherParties { peer, .. }
            | MeshError::FingerprintMismatch { peer, .. }
            | MeshError::TranscriptInvalid { peer, .. }
            | MeshError::Protocol { peer, .. }
            | MeshError::Timeout { peer, .. }
            | MeshError::PeerClosed { peer, .. }
            | MeshError::SignalingClosed { peer, .. } => Some(peer),
        }
    }

    /// A short stable code for logs, the CLI and the broker's `bye` reason.
    pub fn code(&self) -> &'static str {
        match self {
            MeshError::Config(_) => "config",
            MeshError::Certificate(_) => "certificate",
            MeshError::WebRtc { .. } => "webrtc",
            MeshError::BindingSigning { .. } => "binding_signing",
            MeshError::MalformedBinding { .. } => "malformed_binding",
            MeshError::BadBindingSignature { .. } => "bad_binding_signature",
            MeshError::BindingForAnotherSession { .. } => "binding_for_another_session",
            MeshError::BindingForOtherParties { .. } => "binding_for_other_parties",
            MeshError::FingerprintMismatch { .. } => "fingerprint_mismatch",
            MeshError::TranscriptInvalid { .. } => "transcript_invalid",
            MeshError::Protocol { .. } => "protocol",
            MeshError::Timeout { .. } => "timeout",
            MeshError::PeerClosed { .. } => "peer_closed",
            MeshError::SignalingClosed { .. } => "signaling_closed",
        }
    }
}
