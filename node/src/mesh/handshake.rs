//! One pair's handshake as a pure state machine: what to check and what to do next, with no
//! `webrtc` call, no I/O and no clock of its own.
//!
//! The async shell in `peer.rs` owns the peer connection and the data channel. It feeds every
//! event of the pair into [`PairHandshake::handle`] (with the current time), then performs the
//! [`Action`]s the machine queued, in order, feeding results (our own SDP, the certificate
//! chain DTLS authenticated) back as inputs. Every decision of flow 8 lives here: which message
//! is acceptable in which phase, verifying the peer's binding and SDP fingerprints before the
//! SDP is applied, holding early candidates (and bounding all of them), the DTLS certificate
//! check, the transcript exchange, and the per-phase deadline. So each of those is tested without a network
//! (see the tests below); `tests/mesh.rs` tests the same over real peer connections.
//!
//! Phases (offerer = lower roster index):
//!
//! ```text
//! offerer:  Setup --our offer--> Answer --peer's answer--> Connect --open--> Transcript --> verified
//! answerer: Offer --peer's offer--> (answering) --our answer--> Connect --open--> Transcript --> verified
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use identity::Keypair;
use serde_json::{json, Value};
use webrtc::peer_connection::RTCIceCandidateInit;

use super::binding::{
    check_dtls_certificate, check_sdp_fingerprints, verify_binding, BindingContext, ChannelBinding,
    Fingerprint, Role, Transcript,
};
use super::error::{MeshError, PeerRef, Phase};
use super::transport::{parse_frame, transcript_frame, Frame};
use super::SignalKind;

/// Remote candidates a peer may send over the whole handshake, held or applied. Each applied
/// one is paired with every local candidate and checked, so an unbounded stream would make us
/// send STUN checks to any address the peer names; honest peers send a handful.
pub(crate) const MAX_CANDIDATES: usize = 64;
/// Label of the one data channel of a pair.
pub(crate) const CHANNEL_LABEL: &str = "mpc";

/// The session facts one pair's handshake is about.
pub(crate) struct PairContext<'a> {
    pub keypair: &'a Keypair,
    pub session: &'a str,
    pub roster_hash: &'a str,
    pub me: &'a PeerRef,
    pub peer: &'a PeerRef,
    pub role: Role,
    /// SHA-256 of our DTLS certificate.
    pub my_fingerprint: Fingerprint,
    /// `created` of our signed binding.
    pub created: SystemTime,
    /// How long each phase may take.
    pub timeout: Duration,
}

/// What happened to the pair, as the shell saw it.
#[derive(Debug)]
pub(crate) enum Input<'m> {
    /// Our own offer (offerer) or answer (answerer), applied as the local description.
    LocalDescription(String),
    /// A signaling message from the peer (sender already authenticated by the broker).
    Signal(SignalKind, Value),
    /// The signaling channel is gone.
    SignalingClosed,
    /// A local ICE candidate to trickle to the peer.
    LocalCandidate(RTCIceCandidateInit),
    /// The peer connection failed or closed (its state, for the message).
    ConnectionLost(String),
    /// The data channel the offerer opened arrived at the answerer, with its properties.
    RemoteChannel {
        label: String,
        ordered: bool,
        reliable: bool,
    },
    /// The data channel opened; the certificate chain the peer presented in DTLS.
    ChannelOpen { remote_chain: Vec<Vec<u8>> },
    /// A message on the data channel.
    ChannelMessage(&'m [u8]),
    /// The data channel closed.
    ChannelClosed,
}

/// What the shell must do next, in order.
#[derive(Debug, PartialEq)]
pub(crate) enum Action {
    /// Create an offer, apply it as the local description and feed its SDP back as
    /// [`Input::LocalDescription`].
    CreateOffer,
    /// Apply the peer's (already verified) description.
    SetRemoteDescription { sdp: String, kind: SignalKind },
    /// Create an answer, apply it and feed its SDP back as [`Input::LocalDescription`].
    CreateAnswer,
    /// Add a remote ICE candidate (only ever after the remote description).
    AddCandidate(RTCIceCandidateInit),
    /// Send a signaling message to the peer.
    Signal(SignalKind, Value),
    /// Send this frame on the data channel (our transcript signature).
    SendOnChannel(BytesMut),
    /// Keep the answerer's channel (it passed the checks).
    AcceptChannel,
    /// Every check passed: the pair is verified.
    Verified { remote_fingerprint: Fingerprint },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Offerer: waiting for our own offer.
    Describing,
    /// Waiting for the peer's offer (answerer) or answer (offerer).
    AwaitingPeer,
    /// Answerer: the offer is applied, waiting for our own answer.
    Answering(Fingerprint),
    /// ICE, DTLS and the data channel coming up; the peer's signed fingerprint.
    Connecting(Fingerprint),
    /// Our transcript is sent; waiting for the peer's.
    AwaitingTranscript(Fingerprint),
    /// Done.
    Verified,
}

/// One pair's handshake (see the module docs).
pub(crate) struct PairHandshake<'a> {
    ctx: PairContext<'a>,
    my_binding: Value,
    state: State,
    deadline: Instant,
    early_candidates: Vec<RTCIceCandidateInit>,
    /// Remote candidates received so far (early and late), bounded by [`MAX_CANDIDATES`].
    candidates: usize,
    /// Local candidates sent so far, held to the same bound.
    sent_candidates: usize,
    have_channel: bool,
    actions: VecDeque<Action>,
}

impl<'a> PairHandshake<'a> {
    /// Starts the handshake at `now`: signs our binding and, as the offerer, asks for the offer.
    pub(crate) fn new(ctx: PairContext<'a>, now: Instant) -> Result<Self, MeshError> {
        let my_binding = ChannelBinding {
            session: ctx.session.to_owned(),
            roster_hash: ctx.roster_hash.to_owned(),
            from: ctx.me.clone(),
            to: ctx.peer.clone(),
            fingerprint: ctx.my_fingerprint,
        }
        .sign(ctx.keypair, ctx.created)
        .map_err(|reason| MeshError::BindingSigning {
            peer: ctx.peer.clone(),
            reason,
        })?;
        let mut actions = VecDeque::new();
        let (state, have_channel) = match ctx.role {
            Role::Offerer => {
                actions.push_back(Action::CreateOffer);
                // The offerer creates the channel itself.
                (State::Describing, true)
            }
            Role::Answerer => (State::AwaitingPeer, false),
        };
        let deadline = now + ctx.timeout;
        Ok(Self {
            ctx,
            my_binding,
            state,
            deadline,
            early_candidates: Vec::new(),
            candidates: 0,
            sent_candidates: 0,
            have_channel,
            actions,
        })
    }

    /// The phase errors and timeouts are reported in.
    pub(crate) fn phase(&self) -> Phase {
        match (self.state, self.ctx.role) {
            (State::Describing, _) => Phase::Setup,
            (State::AwaitingPeer, Role::Offerer) => Phase::Answer,
            (State::AwaitingPeer, Role::Answerer) | (State::Answering(_), _) => Phase::Offer,
            (State::Connecting(_), _) => Phase::Connect,
            (State::AwaitingTranscript(_) | State::Verified, _) => Phase::Transcript,
        }
    }

    /// When the current phase times out.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The next thing to do, if any.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Fails the handshake if the current phase's deadline has passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), MeshError> {
        if now >= self.deadline && self.state != State::Verified {
            return Err(MeshError::Timeout {
                peer: self.ctx.peer.clone(),
                phase: self.phase(),
                after: self.ctx.timeout,
            });
        }
        Ok(())
    }

    /// Takes one event. An error ends the handshake (the shell aborts the mesh with it).
    pub(crate) fn handle(&mut self, now: Instant, input: Input<'_>) -> Result<(), MeshError> {
        if self.state == State::Verified {
            return Ok(());
        }
        match input {
            Input::LocalDescription(sdp) => self.local_description(now, sdp),
            Input::Signal(kind, payload) => self.signal(now, kind, payload),
            Input::SignalingClosed => match self.state {
                State::Describing | State::AwaitingPeer | State::Answering(_) => {
                    Err(MeshError::SignalingClosed {
                        peer: self.ctx.peer.clone(),
                        phase: self.phase(),
                    })
                }
                // Everything left happens on the peer connection itself.
                _ => Ok(()),
            },
            Input::LocalCandidate(c) => {
                // The peer takes at most MAX_CANDIDATES from us; past that it would abort the
                // pair, so a host with many interfaces sends the first ones and no more.
                if !c.candidate.is_empty() {
                    if self.sent_candidates >= MAX_CANDIDATES {
                        return Ok(());
                    }
                    self.sent_candidates += 1;
                }
                let payload = serde_json::to_value(&c)
                    .map_err(|e| self.protocol(format!("candidate: {e}")))?;
                self.actions
                    .push_back(Action::Signal(SignalKind::Candidate, payload));
                Ok(())
            }
            Input::ConnectionLost(state) => Err(MeshError::PeerClosed {
                peer: self.ctx.peer.clone(),
                phase: self.phase(),
                reason: Some(format!("connection {state}")),
            }),
            Input::RemoteChannel {
                label,
                ordered,
                reliable,
            } => self.remote_channel(&label, ordered, reliable),
            Input::ChannelOpen { remote_chain } => self.channel_open(now, &remote_chain),
            Input::ChannelMessage(data) => self.channel_message(data),
            Input::ChannelClosed => Err(MeshError::PeerClosed {
                peer: self.ctx.peer.clone(),
                phase: self.phase(),
                reason: Some("the data channel closed".into()),
            }),
        }
    }

    fn local_description(&mut self, now: Instant, sdp: String) -> Result<(), MeshError> {
        let kind = match self.state {
            State::Describing => {
                self.enter(now, State::AwaitingPeer);
                SignalKind::Offer
            }
            State::Answering(signed) => {
                self.enter(now, State::Connecting(signed));
                SignalKind::Answer
            }
            _ => return Err(self.protocol("a local description out of turn".into())),
        };
        self.actions.push_back(Action::Signal(
            kind,
            json!({"sdp": sdp, "binding": self.my_binding}),
        ));
        Ok(())
    }

    fn signal(&mut self, now: Instant, kind: SignalKind, payload: Value) -> Result<(), MeshError> {
        let expected = match self.ctx.role {
            Role::Offerer => SignalKind::Answer,
            Role::Answerer => SignalKind::Offer,
        };
        match kind {
            _ if kind == expected && self.state == State::AwaitingPeer => {
                let (sdp, signed) = self.check_description(&payload)?;
                self.actions
                    .push_back(Action::SetRemoteDescription { sdp, kind });
                for c in self.early_candidates.drain(..) {
                    self.actions.push_back(Action::AddCandidate(c));
                }
                match self.ctx.role {
                    Role::Answerer => {
                        self.actions.push_back(Action::CreateAnswer);
                        self.state = State::Answering(signed);
                    }
                    Role::Offerer => self.enter(now, State::Connecting(signed)),
                }
                Ok(())
            }
            SignalKind::Candidate => {
                let c: RTCIceCandidateInit = serde_json::from_value(payload)
                    .map_err(|e| self.protocol(format!("bad candidate: {e}")))?;
                if c.candidate.is_empty() {
                    // End-of-candidates marker: nothing to add.
                    return Ok(());
                }
                self.candidates += 1;
                if self.candidates > MAX_CANDIDATES {
                    return Err(self.protocol(format!(
                        "too many ICE candidates (more than {MAX_CANDIDATES}); a peer sends at \
                         most that many, so this one is not following the protocol"
                    )));
                }
                if matches!(self.state, State::Describing | State::AwaitingPeer) {
                    self.early_candidates.push(c);
                } else {
                    self.actions.push_back(Action::AddCandidate(c));
                }
                Ok(())
            }
            SignalKind::Bye => Err(MeshError::PeerClosed {
                peer: self.ctx.peer.clone(),
                phase: self.phase(),
                reason: Some(bye_reason(&payload)),
            }),
            // Bindings travel inside offers and answers; a standalone one carries nothing.
            SignalKind::Binding => Ok(()),
            _ => Err(self.protocol(format!("unexpected {} message", kind.as_str()))),
        }
    }

    /// The peer's offer/answer, checked before any of it is applied: the binding verifies for
    /// this pair, and every SDP fingerprint is the signed one.
    fn check_description(&self, payload: &Value) -> Result<(String, Fingerprint), MeshError> {
        let peer = self.ctx.peer;
        let sdp = payload
            .get("sdp")
            .and_then(Value::as_str)
            .ok_or_else(|| self.protocol("no sdp in the payload".into()))?;
        let binding = payload
            .get("binding")
            .ok_or_else(|| MeshError::MalformedBinding {
                peer: peer.clone(),
                reason: "no binding in the payload".into(),
            })?;
        let binding_ctx = BindingContext {
            session: self.ctx.session,
            roster_hash: self.ctx.roster_hash,
            me: self.ctx.me,
            peer,
        };
        let signed = verify_binding(binding, &binding_ctx)?;
        check_sdp_fingerprints(sdp, &signed, peer)?;
        Ok((sdp.to_owned(), signed))
    }

    /// The answerer takes the offerer's channel only if it is the ordered, reliable `mpc`
    /// channel, and only the first.
    fn remote_channel(
        &mut self,
        label: &str,
        ordered: bool,
        reliable: bool,
    ) -> Result<(), MeshError> {
        if self.have_channel {
            // Anything else the peer opens is never read.
            return Ok(());
        }
        if label != CHANNEL_LABEL || !ordered || !reliable {
            return Err(self.protocol(format!(
                "the data channel must be the ordered, reliable {CHANNEL_LABEL:?} channel (got \
                 label {:?}, ordered {ordered}, reliable {reliable})",
                label.chars().take(64).collect::<String>()
            )));
        }
        self.have_channel = true;
        self.actions.push_back(Action::AcceptChannel);
        Ok(())
    }

    fn channel_open(&mut self, now: Instant, chain: &[Vec<u8>]) -> Result<(), MeshError> {
        let State::Connecting(signed) = self.state else {
            // webrtc reports the open once; an open in any other phase carries nothing new.
            return Ok(());
        };
        // The certificate DTLS actually authenticated, against the signed one.
        check_dtls_certificate(chain, &signed, self.ctx.peer)?;
        let signature = self
            .transcript(&signed)
            .sign(self.ctx.keypair, self.ctx.role);
        self.actions
            .push_back(Action::SendOnChannel(transcript_frame(&signature)));
        self.enter(now, State::AwaitingTranscript(signed));
        Ok(())
    }

    fn channel_message(&mut self, data: &[u8]) -> Result<(), MeshError> {
        let State::AwaitingTranscript(signed) = self.state else {
            return Err(self.protocol("data before the channel opened".into()));
        };
        let Ok(Frame::Transcript(signature)) = parse_frame(data) else {
            return Err(MeshError::TranscriptInvalid {
                peer: self.ctx.peer.clone(),
                reason: "the first data-channel message is not a transcript".into(),
            });
        };
        let peer_role = match self.ctx.role {
            Role::Offerer => Role::Answerer,
            Role::Answerer => Role::Offerer,
        };
        self.transcript(&signed).verify(peer_role, signature)?;
        self.state = State::Verified;
        self.actions.push_back(Action::Verified {
            remote_fingerprint: signed,
        });
        Ok(())
    }

    fn transcript<'t>(&'t self, peer_fingerprint: &'t Fingerprint) -> Transcript<'t> {
        let c = &self.ctx;
        let (offerer, answerer, offerer_fingerprint, answerer_fingerprint) = match c.role {
            Role::Offerer => (c.me, c.peer, &c.my_fingerprint, peer_fingerprint),
            Role::Answerer => (c.peer, c.me, peer_fingerprint, &c.my_fingerprint),
        };
        Transcript {
            session: c.session,
            roster_hash: c.roster_hash,
            offerer,
            answerer,
            offerer_fingerprint,
            answerer_fingerprint,
        }
    }

    /// Moves to `state`, whose phase gets a fresh deadline.
    fn enter(&mut self, now: Instant, state: State) {
        self.state = state;
        self.deadline = now + self.ctx.timeout;
    }

    fn protocol(&self, reason: String) -> MeshError {
        MeshError::Protocol {
            peer: self.ctx.peer.clone(),
            phase: self.phase(),
            reason,
        }
    }
}

/// The reason a peer gave in its `bye` (peer-supplied text: truncated).
fn bye_reason(payload: &Value) -> String {
    let field = |k: &str| payload.get(k).and_then(Value::as_str).unwrap_or("");
    let text = match (field("reason"), field("detail")) {
        ("", "") => "bye".to_owned(),
        (r, "") => r.to_owned(),
        ("", d) => d.to_owned(),
        (r, d) => format!("{r}: {d}"),
    };
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::mesh::binding::peer_ref;
    use crate::mesh::FingerprintSource;
    use std::time::UNIX_EPOCH;

    const SESSION: &str = "q7Xv2mKp9RtLwZ3a";
    const ROSTER: &str = "69b2fd77cee9964a01259aef570c4f9228fe6dc36c42fa633e4472340b0a95eb";
    const TIMEOUT: Duration = Duration::from_secs(10);

    /// The parties of the tests: their keys, roster entries and DTLS certificates (any bytes
    /// stand in for a DER certificate: only its SHA-256 matters here).
    struct Party {
        keypair: Keypair,
        me: PeerRef,
        cert: Vec<u8>,
    }

    fn party(index: usize) -> Party {
        let keypair = Keypair::from_seed(&[index as u8 + 1; 32]);
        let me = peer_ref(index, &keypair.did());
        Party {
            keypair,
            me,
            cert: format!("certificate of party {index}").into_bytes(),
        }
    }

    fn machine<'a>(
        me: &'a Party,
        peer: &'a Party,
        session: &'a str,
        now: Instant,
    ) -> PairHandshake<'a> {
        PairHandshake::new(
            PairContext {
                keypair: &me.keypair,
                session,
                roster_hash: ROSTER,
                me: &me.me,
                peer: &peer.me,
                role: if me.me.index < peer.me.index {
                    Role::Offerer
                } else {
                    Role::Answerer
                },
                my_fingerprint: Fingerprint::of_der(&me.cert),
                created: UNIX_EPOCH + Duration::from_secs(1_898_593_323),
                timeout: TIMEOUT,
            },
            now,
        )
        .unwrap()
    }

    fn sdp_with(cert: &[u8]) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\na=fingerprint:{}\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
            Fingerprint::of_der(cert)
        )
    }

    fn drain(m: &mut PairHandshake<'_>) -> Vec<Action> {
        std::iter::from_fn(|| m.poll_action()).collect()
    }

    fn candidate(n: u8) -> RTCIceCandidateInit {
        RTCIceCandidateInit {
            candidate: format!(
                "candidate:{n} 1 udp 2130706431 127.0.0.1 {} typ host",
                50000 + u16::from(n)
            ),
            ..Default::default()
        }
    }

    /// The one signaling message among `actions`.
    fn sent(actions: &[Action], kind: SignalKind) -> Value {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Signal(k, v) if *k == kind => Some(v.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {kind:?} among {actions:?}"))
    }

    fn frame(actions: &[Action]) -> Vec<u8> {
        actions
            .iter()
            .find_map(|a| match a {
                Action::SendOnChannel(f) => Some(f.to_vec()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no frame among {actions:?}"))
    }

    /// Runs offerer `a` and answerer `b` (as the shell would, with a perfect network) up to
    /// the offer arriving at `b`; returns the offer payload.
    fn offer(a: &mut PairHandshake<'_>, pa: &Party, now: Instant) -> Value {
        assert_eq!(drain(a), vec![Action::CreateOffer]);
        a.handle(now, Input::LocalDescription(sdp_with(&pa.cert)))
            .unwrap();
        sent(&drain(a), SignalKind::Offer)
    }

    #[test]
    fn a_pair_verifies_when_both_sides_follow_the_protocol() {
        let (pa, pb) = (party(0), party(1));
        let now = Instant::now();
        let mut a = machine(&pa, &pb, SESSION, now);
        let mut b = machine(&pb, &pa, SESSION, now);
        assert_eq!((a.phase(), b.phase()), (Phase::Setup, Phase::Offer));
        assert!(drain(&mut b).is_empty(), "the answerer waits");

        // A candidate that overtakes the offer is held until the offer is applied.
        b.handle(
            now,
            Input::Signal(
                SignalKind::Candidate,
                serde_json::to_value(candidate(1)).unwrap(),
            ),
        )
        .unwrap();
        assert!(drain(&mut b).is_empty());

        let offer = offer(&mut a, &pa, now);
        assert_eq!(a.phase(), Phase::Answer);
        b.handle(now, Input::Signal(SignalKind::Offer, offer))
            .unwrap();
        assert_eq!(
            drain(&mut b),
            vec![
                Action::SetRemoteDescription {
                    sdp: sdp_with(&pa.cert),
                    kind: SignalKind::Offer
                },
                Action::AddCandidate(candidate(1)),
                Action::CreateAnswer,
            ]
        );
        b.handle(now, Input::LocalDescription(sdp_with(&pb.cert)))
            .unwrap();
        let answer = sent(&drain(&mut b), SignalKind::Answer);
        assert_eq!(b.phase(), Phase::Connect);
        a.handle(now, Input::Signal(SignalKind::Answer, answer))
            .unwrap();
        assert!(matches!(
            drain(&mut a).as_slice(),
            [Action::SetRemoteDescription {
                kind: SignalKind::Answer,
                ..
            }]
        ));
        assert_eq!(a.phase(), Phase::Connect);

        // Candidates now go straight to the connection.
        a.handle(
            now,
            Input::Signal(
                SignalKind::Candidate,
                serde_json::to_value(candidate(2)).unwrap(),
            ),
        )
        .unwrap();
        assert_eq!(drain(&mut a), vec![Action::AddCandidate(candidate(2))]);

        b.handle(
            now,
            Input::RemoteChannel {
                label: CHANNEL_LABEL.into(),
                ordered: true,
                reliable: true,
            },
        )
        .unwrap();
        assert_eq!(drain(&mut b), vec![Action::AcceptChannel]);

        a.handle(
            now,
            Input::ChannelOpen {
                remote_chain: vec![pb.cert.clone()],
            },
        )
        .unwrap();
        b.handle(
            now,
            Input::ChannelOpen {
                remote_chain: vec![pa.cert.clone()],
            },
        )
        .unwrap();
        let (fa, fb) = (frame(&drain(&mut a)), frame(&drain(&mut b)));
        assert_eq!(
            (a.phase(), b.phase()),
            (Phase::Transcript, Phase::Transcript)
        );
        a.handle(now, Input::ChannelMessage(&fb)).unwrap();
        b.handle(now, Input::ChannelMessage(&fa)).unwrap();
        assert_eq!(
            drain(&mut a),
            vec![Action::Verified {
                remote_fingerprint: Fingerprint::of_der(&pb.cert)
            }]
        );
        assert_eq!(
            drain(&mut b),
            vec![Action::Verified {
                remote_fingerprint: Fingerprint::of_der(&pa.cert)
            }]
        );
        // Verified is final: no deadline, nothing more to do.
        a.handle_timeout(now + 2 * TIMEOUT).unwrap();
    }

    #[test]
    fn a_rewritten_sdp_fingerprint_is_refused_before_the_sdp_is_applied() {
        let (pa, pb, mallory) = (party(0), party(1), party(7));
        let now = Instant::now();
        let mut a = machine(&pa, &pb, SESSION, now);
        let mut b = machine(&pb, &pa, SESSION, now);
        let mut offer = offer(&mut a, &pa, now);
        offer["sdp"] = Value::String(sdp_with(&mallory.cert));
        let err = b
            .handle(now, Input::Signal(SignalKind::Offer, offer))
            .unwrap_err();
        assert!(
            matches!(&err, MeshError::FingerprintMismatch { peer, source_of: FingerprintSource::Sdp, .. } if peer.index == 0),
            "{err}"
        );
        assert!(drain(&mut b).is_empty(), "nothing of the offer is applied");
    }

    #[test]
    fn an_appended_second_fingerprint_is_refused() {
        let (pa, pb, mallory) = (party(0), party(1), party(7));
        let now = Instant::now();
        let mut a = machine(&pa, &pb, SESSION, now);
        let mut b = machine(&pb, &pa, SESSION, now);
        let mut offer = offer(&mut a, &pa, now);
        let sdp = format!(
            "{}a=fingerprint:{}\r\n",
            offer["sdp"].as_str().unwrap(),
            Fingerprint::of_der(&mallory.cert)
        );
        offer["sdp"] = Value::String(sdp);
        let err = b
            .handle(now, Input::Signal(SignalKind::Offer, offer))
            .unwrap_err();
        assert!(
            matches!(err, MeshError::FingerprintMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_binding_signed_for_another_session_is_refused() {
        let (pa, pb) = (party(0), party(1));
        let now = Instant::now();
        let mut a = machine(&pa, &pb, "anotherSession01", now);
        let mut b = machine(&pb, &pa, SESSION, now);
        let offer = offer(&mut a, &pa, now);
        let err = b
            .handle(now, Input::Signal(SignalKind::Offer, offer))
            .unwrap_err();
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
        assert!(drain(&mut b).is_empty(), "nothing of the offer is applied");
    }

    #[test]
    fn a_binding_signed_by_someone_else_is_refused() {
        let (pa, pb, mallory) = (party(0), party(1), party(2));
        let now = Instant::now();
        let mut a = machine(&pa, &pb, SESSION, now);
        let mut b = machine(&pb, &pa, SESSION, now);
        let mut offer = offer(&mut a, &pa, now);
        // A relay (or mallory) replaces a's binding with mallory's own, for this pair and
        // with a's fingerprint, relabelled as a's.
        let mut forged = ChannelBinding {
            session: SESSION.into(),
            roster_hash: ROSTER.into(),
            from: peer_ref(0, &mallory.keypair.did()),
            to: pb.me.clone(),
            fingerprint: Fingerprint::of_der(&pa.cert),
        }
        .sign(
            &mallory.keypair,
            UNIX_EPOCH + Duration::from_secs(1_898_593_323),
        )
        .unwrap();
        forged["from"]["did"] = Value::String(pa.me.did.to_string());
        offer["binding"] = forged;
        let err = b
            .handle(now, Input::Signal(SignalKind::Offer, offer))
            .unwrap_err();
        assert!(
            matches!(&err, MeshError::BadBindingSignature { peer, .. } | MeshError::MalformedBinding { peer, .. } if peer.index == 0),
            "{err}"
        );
    }

    /// Both machines up to `Connect` over a faithful relay.
    fn connected<'a>(
        pa: &'a Party,
        pb: &'a Party,
        now: Instant,
    ) -> (PairHandshake<'a>, PairHandshake<'a>) {
        let mut a = machine(pa, pb, SESSION, now);
        let mut b = machine(pb, pa, SESSION, now);
        let o = offer(&mut a, pa, now);
        b.handle(now, Input::Signal(SignalKind::Offer, o)).unwrap();
        let _ = drain(&mut b);
        b.handle(now, Input::LocalDescription(sdp_with(&pb.cert)))
            .unwrap();
        let answer = sent(&drain(&mut b), SignalKind::Answer);
        a.handle(now, Input::Signal(SignalKind::Answer, answer))
            .unwrap();
        let _ = drain(&mut a);
        (a, b)
    }

    #[test]
    fn a_dtls_certificate_other_than_the_signed_one_is_refused_at_open() {
        let (pa, pb, mallory) = (party(0), party(1), party(7));
        let now = Instant::now();
        let (mut a, _b) = connected(&pa, &pb, now);
        let err = a
            .handle(
                now,
                Input::ChannelOpen {
                    remote_chain: vec![mallory.cert.clone()],
                },
            )
            .unwrap_err();
        assert!(
            matches!(&err, MeshError::FingerprintMismatch { source_of: FingerprintSource::Dtls, peer, .. } if peer.index == 1),
            "{err}"
        );
        assert!(drain(&mut a).is_empty(), "no transcript is sent");
        let err = a
            .handle(
                now,
                Input::ChannelOpen {
                    remote_chain: vec![],
                },
            )
            .unwrap_err();
        assert!(
            matches!(err, MeshError::FingerprintMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_transcript_of_another_pair_is_refused() {
        let (pa, pb, pc) = (party(0), party(1), party(2));
        let now = Instant::now();
        let (mut a, mut b) = connected(&pa, &pb, now);
        // c's transcript for its own pair with a, replayed into a–b.
        let (_a2, mut c) = connected(&pa, &pc, now);
        c.handle(
            now,
            Input::ChannelOpen {
                remote_chain: vec![pa.cert.clone()],
            },
        )
        .unwrap();
        let replayed = frame(&drain(&mut c));
        a.handle(
            now,
            Input::ChannelOpen {
                remote_chain: vec![pb.cert.clone()],
            },
        )
        .unwrap();
        let _ = drain(&mut a);
        let err = a.handle(now, Input::ChannelMessage(&replayed)).unwrap_err();
        assert!(
            matches!(&err, MeshError::TranscriptInvalid { peer, .. } if peer.index == 1),
            "{err}"
        );
        // And a garbage first message.
        b.handle(
            now,
            Input::ChannelOpen {
                remote_chain: vec![pa.cert.clone()],
            },
        )
        .unwrap();
        let err = b
            .handle(now, Input::ChannelMessage(b"\x02hello"))
            .unwrap_err();
        assert!(matches!(err, MeshError::TranscriptInvalid { .. }), "{err}");
    }

    #[test]
    fn data_before_the_channel_opened_is_a_protocol_error() {
        let (pa, pb) = (party(0), party(1));
        let now = Instant::now();
        let (mut a, _b) = connected(&pa, &pb, now);
        let err = a.handle(now, Input::ChannelMessage(b"\x01x")).unwrap_err();
        assert!(
            matches!(
                err,
                MeshError::Protocol {
                    phase: Phase::Connect,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn candidates_are_bounded_before_and_after_the_offer() {
        let (pa, pb) = (party(0), party(1));
        let now = Instant::now();
        let mut a = machine(&pa, &pb, SESSION, now);
        let mut b = machine(&pb, &pa, SESSION, now);
        let c = serde_json::to_value(candidate(1)).unwrap();
        // End-of-candidates markers carry nothing and do not count.
        for _ in 0..2 * MAX_CANDIDATES {
            b.handle(
                now,
                Input::Signal(SignalKind::Candidate, json!({"candidate": ""})),
            )
            .unwrap();
        }
        // Half of the allowance arrives before the offer (held), half after (applied).
        for _ in 0..MAX_CANDIDATES / 2 {
            b.handle(now, Input::Signal(SignalKind::Candidate, c.clone()))
                .unwrap();
        }
        let offer = offer(&mut a, &pa, now);
        b.handle(now, Input::Signal(SignalKind::Offer, offer))
            .unwrap();
        for _ in MAX_CANDIDATES / 2..MAX_CANDIDATES {
            b.handle(now, Input::Signal(SignalKind::Candidate, c.clone()))
                .unwrap();
        }
        let added = drain(&mut b)
            .into_iter()
            .filter(|a| matches!(a, Action::AddCandidate(_)))
            .count();
        assert_eq!(added, MAX_CANDIDATES);
        let err = b
            .handle(now, Input::Signal(SignalKind::Candidate, c))
            .unwrap_err();
        assert!(err.to_string().contains("too many ICE candidates"), "{err}");
        let mut b = machine(&pb, &pa, SESSION, now);
        let err = b
            .handle(
                now,
                Input::Signal(SignalKind::Candidate, json!({"candidate": 5})),
            )
            .unwrap_err();
        assert!(err.to_string().contains("bad candidate"), "{err}");
    }

    #[test]
    fn we_send_no_more_candidates_than_the_peer_takes() {
        let (pa, pb) = (party(0), party(1));
        let now = Instant::now();
        let mut a = machine(&pa, &pb, SESSION, now);
        drain(&mut a);
        for _ in 0..MAX_CANDIDATES + 10 {
            a.handle(now, Input::LocalCandidate(candidate(1))).unwrap();
        }
        a.handle(now, Input::LocalCandidate(RTCIceCandidateInit::default()))
            .unwrap();
        let sent = drain(&mut a)
            .into_iter()
            .filter(|a| matches!(a, Action::Signal(SignalKind::Candidate, _)))
            .count();
        // The first MAX_CANDIDATES, and the end-of-candidates marker.
        assert_eq!(sent, MAX_CANDIDATES + 1);
    }

    #[test]
    fn each_phase_has_its_own_deadline() {
        let (pa, pb) = (party(0), party(1));
        let t0 = Instant::now();
        let mut a = machine(&pa, &pb, SESSION, t0);
        a.handle_timeout(t0 + TIMEOUT - Duration::from_millis(1))
            .unwrap();
        let t1 = t0 + TIMEOUT / 2;
        let _ = drain(&mut a);
        a.handle(t1, Input::LocalDescription(sdp_with(&pa.cert)))
            .unwrap();
        // Entering "waiting for the answer" at t1 restarts the clock.
        assert_eq!(a.deadline(), t1 + TIMEOUT);
        a.handle_timeout(t0 + TIMEOUT).unwrap();
        let err = a.handle_timeout(t1 + TIMEOUT).unwrap_err();
        assert!(
            matches!(&err, MeshError::Timeout { phase: Phase::Answer, peer, after } if peer.index == 1 && *after == TIMEOUT),
            "{err}"
        );
    }

    #[test]
    fn a_bye_ends_the_pair_with_the_peers_reason() {
        let (pa, pb) = (party(0), party(1));
        let now = Instant::now();
        let (mut a, _b) = connected(&pa, &pb, now);
        let err = a
            .handle(
                now,
                Input::Signal(
                    SignalKind::Bye,
                    json!({"reason": "timeout", "detail": "x".repeat(1000)}),
                ),
            )
            .unwrap_err();
        let MeshError::PeerClosed {
            peer,
            phase,
            reason: Some(reason),
        } = err
        else {
            panic!("{err}")
        };
        assert_eq!((peer.index, phase), (1, Phase::Connect));
        assert!(
            reason.starts_with("timeout: xxx") && reason.len() == 300,
            "{reason}"
        );
    }

    #[test]
    fn messages_out_of_turn_are_protocol_errors() {
        let (pa, pb) = (party(0), party(1));
        let now = Instant::now();
        let mut b = machine(&pb, &pa, SESSION, now);
        let err = b
            .handle(now, Input::Signal(SignalKind::Answer, json!({})))
            .unwrap_err();
        assert!(
            err.to_string().contains("unexpected answer message"),
            "{err}"
        );

        // A second offer once connecting.
        let (mut a, mut b) = connected(&pa, &pb, now);
        let err = b
            .handle(now, Input::Signal(SignalKind::Offer, json!({})))
            .unwrap_err();
        assert!(err.to_string().contains("unexpected offer"), "{err}");
        let err = a
            .handle(now, Input::LocalDescription("v=0".into()))
            .unwrap_err();
        assert!(err.to_string().contains("out of turn"), "{err}");
        // An offer without its binding.
        let mut b = machine(&pb, &pa, SESSION, now);
        let err = b
            .handle(now, Input::Signal(SignalKind::Offer, json!({"sdp": "v=0"})))
            .unwrap_err();
        assert!(matches!(err, MeshError::MalformedBinding { .. }), "{err}");
    }

    #[test]
    fn losing_signaling_matters_only_until_the_descriptions_are_exchanged() {
        let (pa, pb) = (party(0), party(1));
        let now = Instant::now();
        let mut b = machine(&pb, &pa, SESSION, now);
        let err = b.handle(now, Input::SignalingClosed).unwrap_err();
        assert!(
            matches!(
                err,
                MeshError::SignalingClosed {
                    phase: Phase::Offer,
                    ..
                }
            ),
            "{err}"
        );
        let (mut a, _b) = connected(&pa, &pb, now);
        a.handle(now, Input::SignalingClosed).unwrap();
        let err = a
            .handle(now, Input::ConnectionLost("failed".into()))
            .unwrap_err();
        assert!(err.to_string().contains("connection failed"), "{err}");
    }

    #[test]
    fn the_answerer_takes_only_the_ordered_reliable_mpc_channel() {
        let (pa, pb) = (party(0), party(1));
        let now = Instant::now();
        for (label, ordered, reliable) in [
            ("mpc", false, true),
            ("mpc", true, false),
            ("x", true, true),
        ] {
            let (_a, mut b) = connected(&pa, &pb, now);
            let err = b
                .handle(
                    now,
                    Input::RemoteChannel {
                        label: label.into(),
                        ordered,
                        reliable,
                    },
                )
                .unwrap_err();
            assert!(err.to_string().contains("ordered, reliable"), "{err}");
        }
        let (_a, mut b) = connected(&pa, &pb, now);
        let good = || Input::RemoteChannel {
            label: CHANNEL_LABEL.into(),
            ordered: true,
            reliable: true,
        };
        b.handle(now, good()).unwrap();
        b.handle(now, good()).unwrap();
        assert_eq!(drain(&mut b), vec![Action::AcceptChannel], "only the first");
    }
}
