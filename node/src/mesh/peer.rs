//! Building the peer connections and running each pair's handshake (offer/answer with
//! bindings, trickled candidates, DTLS certificate check, transcript exchange).

use std::sync::Arc;
use std::time::SystemTime;

use futures::future::try_join_all;
use identity::Keypair;
use rtc::peer_connection::certificate::CertificateParams;
use rtc::peer_connection::configuration::RTCIceTransportPolicy;
use rtc::peer_connection::transport::RTCDtlsRole;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::crypto::{default_provider, SignatureScheme};
use webrtc::peer_connection::{
    CipherSuiteId, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCCertificate, RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

use super::binding::{
    check_dtls_certificate, check_sdp_fingerprints, verify_binding, BindingContext, ChannelBinding,
    Fingerprint, Role, Transcript,
};
use super::error::{MeshError, PeerRef, Phase};
use super::transport::{parse_frame, transcript_frame, Frame, Mesh, VerifiedPair};
use super::{MeshConfig, MeshRoster, SignalKind, SignalMessage, Signaling};

/// Signaling messages queued per peer between the router and that pair's handshake.
const SIGNALS_PER_PEER: usize = 64;
/// Local ICE candidates queued between the `webrtc` driver and the pair's handshake.
const LOCAL_CANDIDATES: usize = 64;
/// Remote candidates held until the remote description is applied.
const MAX_EARLY_CANDIDATES: usize = 64;
/// Label of the one data channel of a pair.
const CHANNEL_LABEL: &str = "mpc";
/// How often the offerer wakes its connection's driver while the channel is coming up (see
/// the `nudge` branch of [`handshake`]).
const NUDGE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

/// Makes the session's DTLS certificate: ECDSA P-256, the one key type every DTLS stack (and
/// browser) takes in both client and server roles.
fn certificate() -> Result<(RTCCertificate, Fingerprint), MeshError> {
    let provider = default_provider()
        .map_err(|e| MeshError::Certificate(webrtc::error::Error::Crypto(e.to_string())))?;
    let params = CertificateParams::new(vec!["mpc-node".to_owned()])
        .map_err(|e| MeshError::Certificate(webrtc::error::Error::Other(e.to_string())))?;
    let cert =
        RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params)
            .map_err(MeshError::Certificate)?;
    let leaf = cert.dtls_certificate.certificate.first().ok_or_else(|| {
        MeshError::Certificate(webrtc::error::Error::Other("no certificate".into()))
    })?;
    let fingerprint = Fingerprint::of_der(leaf.as_ref());
    Ok((cert, fingerprint))
}

/// Forwards the `webrtc` driver's callbacks into bounded queues. The callbacks run on the
/// driver itself, so they never wait: a full candidate queue drops the candidate (the
/// handshake drains it continuously; 64 is far more than any host has addresses).
struct Handler {
    candidates: mpsc::Sender<RTCIceCandidateInit>,
    state: watch::Sender<RTCPeerConnectionState>,
    channels: mpsc::Sender<Arc<dyn DataChannel>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                if self.candidates.try_send(init).is_err() {
                    tracing::debug!("local ICE candidate dropped (queue full or pair done)");
                }
            }
            Err(e) => tracing::warn!("cannot serialise a local ICE candidate: {e}"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // Only the answerer takes a channel, and only the first; anything else the peer opens
        // is dropped here, which discards its data.
        let _ = self.channels.try_send(channel);
    }
}

/// One peer connection before its handshake.
struct Pair {
    peer: PeerRef,
    role: Role,
    pc: Arc<dyn PeerConnection>,
    /// The offerer's channel; the answerer's arrives through `channels`.
    dc: Option<Arc<dyn DataChannel>>,
    channels: mpsc::Receiver<Arc<dyn DataChannel>>,
    candidates: mpsc::Receiver<RTCIceCandidateInit>,
    state: watch::Receiver<RTCPeerConnectionState>,
}

async fn build_pair(
    peer: PeerRef,
    role: Role,
    cert: &RTCCertificate,
    config: &MeshConfig,
) -> Result<Pair, MeshError> {
    let webrtc_err = |source| MeshError::WebRtc {
        peer: peer.clone(),
        phase: Phase::Setup,
        source,
    };
    let settings = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(config.ice_check_interval), None)
        .with_ice_timeouts(
            Some(config.ice_disconnected_timeout),
            Some(config.ice_failed_timeout),
            Some(config.ice_keepalive_interval),
        )
        // Our certificate is ECDSA: offering RSA suites could only let a peer pick one we
        // cannot serve and stall the handshake.
        // The built-in check compares the DTLS certificate with the SDP fingerprint, which is
        // only as good as the relay that carried the SDP. We compare the SDP with the *signed*
        // fingerprint before applying it, and the certificate DTLS authenticated with the signed
        // fingerprint at channel open, before a single byte is sent or read
        // (`check_dtls_certificate`): strictly stronger, and a mismatch then names the peer as
        // "fingerprint mismatch" instead of surfacing as an anonymous failed handshake.
        .with_disable_certificate_fingerprint_verification(true)
        // The answerer is the DTLS (and so SCTP) server, which makes the offerer — the side
        // that owns the data channel and can nudge its driver — the side whose SCTP INIT and
        // channel OPEN would otherwise wait for the driver's next timer.
        .with_answering_dtls_role(RTCDtlsRole::Server)
        .with_dtls_cipher_suites(vec![
            CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
            CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_256_Cbc_Sha,
            CipherSuiteId::Tls_Ecdhe_Ecdsa_With_ChaCha20_Poly1305_Sha256,
        ])
        .build();
    let rtc_config = RTCConfigurationBuilder::new()
        .with_ice_servers(
            config
                .ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
        )
        .with_certificates(vec![cert.clone()])
        .with_ice_transport_policy(if config.relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        })
        .build();
    let (cand_tx, cand_rx) = mpsc::channel(LOCAL_CANDIDATES);
    let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
    let (chan_tx, chan_rx) = mpsc::channel(1);
    let pc = PeerConnectionBuilder::new()
        .with_configuration(rtc_config)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Handler {
            candidates: cand_tx,
            state: state_tx,
            channels: chan_tx,
        }))
        .with_udp_addrs(config.udp_addrs.clone())
        .with_data_channel_send_buffer_limit(config.send_buffer_limit)
        .build()
        .await
        .map_err(webrtc_err)?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    // The offerer opens the channel in band (DCEP). Not a pre-negotiated channel on both
    // sides: webrtc 0.21 drops data that reaches a negotiated channel before its own side has
    // processed the SCTP handshake completion, which loses the first message sent right at
    // open (our transcript). With DCEP the offerer's channel opens only on the answerer's ACK,
    // so both ends have the stream before any data flows.
    let dc = match role {
        Role::Offerer => Some(
            pc.create_data_channel(
                CHANNEL_LABEL,
                Some(RTCDataChannelInit {
                    ordered: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(webrtc_err)?,
        ),
        Role::Answerer => None,
    };
    Ok(Pair {
        peer,
        role,
        pc,
        dc,
        channels: chan_rx,
        candidates: cand_rx,
        state: state_rx,
    })
}

/// What one pair's handshake needs from the session.
struct PairCtx<'a> {
    keypair: &'a Keypair,
    roster: &'a MeshRoster,
    config: &'a MeshConfig,
    me: PeerRef,
    my_fingerprint: Fingerprint,
    created: SystemTime,
    out: mpsc::Sender<SignalMessage>,
}

pub(crate) async fn connect_all(
    keypair: &Keypair,
    roster: &MeshRoster,
    me: usize,
    config: &MeshConfig,
    signaling: &mut Signaling,
    created: SystemTime,
) -> Result<Mesh, MeshError> {
    let n = roster.parties.len();
    let me_ref = roster
        .peer_ref(me)
        .ok_or_else(|| MeshError::Config(format!("no party {me}")))?;
    let (cert, my_fingerprint) = certificate()?;
    let mut pcs: Vec<(PeerRef, Arc<dyn PeerConnection>)> = Vec::new();
    let result = async {
        let mut pairs = Vec::new();
        for peer in (0..n)
            .filter(|&j| j != me)
            .filter_map(|j| roster.peer_ref(j))
        {
            let role = if me < peer.index {
                Role::Offerer
            } else {
                Role::Answerer
            };
            let pair = build_pair(peer, role, &cert, config).await?;
            pcs.push((pair.peer.clone(), Arc::clone(&pair.pc)));
            pairs.push(pair);
        }
        let ctx = PairCtx {
            keypair,
            roster,
            config,
            me: me_ref.clone(),
            my_fingerprint,
            created,
            out: signaling.outbound.clone(),
        };
        let mut routes: Vec<Option<mpsc::Sender<SignalMessage>>> = (0..n).map(|_| None).collect();
        let mut handshakes = Vec::new();
        for pair in pairs {
            let (tx, rx) = mpsc::channel(SIGNALS_PER_PEER);
            if let Some(slot) = routes.get_mut(pair.peer.index) {
                *slot = Some(tx);
            }
            handshakes.push(handshake(&ctx, pair, rx));
        }
        let inbound = &mut signaling.inbound;
        let route = async move {
            while let Some(msg) = inbound.recv().await {
                match routes.get(msg.peer) {
                    Some(Some(tx)) => {
                        // Never block the router on one pair: a peer that floods us only
                        // loses its own messages.
                        if tx.try_send(msg).is_err() {
                            tracing::warn!("signaling queue for a peer is full; message dropped");
                        }
                    }
                    _ => tracing::warn!(peer = msg.peer, "signaling message from a non-peer"),
                }
            }
            // The signaling channel is gone: dropping the routes tells every pair still
            // waiting for it.
            drop(routes);
            futures::future::pending::<()>().await;
        };
        tokio::select! {
            verified = try_join_all(handshakes) => verified,
            () = route => router_ended(),
        }
    }
    .await;
    match result {
        Ok(verified) => Ok(Mesh::new(me, n, my_fingerprint, verified, config)),
        Err(err) => {
            abort_all(&pcs, &signaling.outbound, &err).await;
            Err(err)
        }
    }
}

/// The router ends in `pending()`, so its `select!` arm never fires; this gives the arm a
/// type without an `unreachable!`.
fn router_ended<T>() -> Result<T, MeshError> {
    Err(MeshError::Config("the signaling router ended".into()))
}

/// Tells every peer why we stop (best effort, never waiting on a full queue) and closes every
/// connection.
async fn abort_all(
    pcs: &[(PeerRef, Arc<dyn PeerConnection>)],
    out: &mpsc::Sender<SignalMessage>,
    err: &MeshError,
) {
    let detail: String = err.to_string().chars().take(512).collect();
    for (peer, _) in pcs {
        let _ = out.try_send(SignalMessage {
            peer: peer.index,
            kind: SignalKind::Bye,
            payload: json!({"reason": err.code(), "detail": detail}),
        });
    }
    futures::future::join_all(pcs.iter().map(|(_, pc)| pc.close())).await;
}

/// The offer/answer payload: `{sdp, binding}`.
fn description_payload(sdp: &str, binding: Value) -> Value {
    json!({"sdp": sdp, "binding": binding})
}

/// Runs one pair from its first signaling message to the verified transcript.
async fn handshake(
    ctx: &PairCtx<'_>,
    pair: Pair,
    mut signals: mpsc::Receiver<SignalMessage>,
) -> Result<VerifiedPair, MeshError> {
    let started = Instant::now();
    let Pair {
        peer,
        role,
        pc,
        mut dc,
        mut channels,
        mut candidates,
        mut state,
    } = pair;
    let timeout = ctx.config.phase_timeout;
    let webrtc_err = |phase, source| MeshError::WebRtc {
        peer: peer.clone(),
        phase,
        source,
    };
    let my_binding = ChannelBinding {
        session: ctx.roster.session.clone(),
        roster_hash: ctx.roster.roster_hash.clone(),
        from: ctx.me.clone(),
        to: peer.clone(),
        fingerprint: ctx.my_fingerprint,
    }
    .sign(ctx.keypair, ctx.created)
    .map_err(|reason| MeshError::BindingSigning {
        peer: peer.clone(),
        reason,
    })?;
    let binding_ctx = BindingContext {
        session: &ctx.roster.session,
        roster_hash: &ctx.roster.roster_hash,
        me: &ctx.me,
        peer: &peer,
    };

    let mut phase = match role {
        Role::Offerer => {
            let offer = pc
                .create_offer(None)
                .await
                .map_err(|e| webrtc_err(Phase::Setup, e))?;
            pc.set_local_description(offer.clone())
                .await
                .map_err(|e| webrtc_err(Phase::Setup, e))?;
            send_signal(
                ctx,
                &peer,
                Phase::Setup,
                SignalKind::Offer,
                description_payload(&offer.sdp, my_binding.clone()),
            )
            .await?;
            Phase::Answer
        }
        Role::Answerer => Phase::Offer,
    };
    let mut deadline = Instant::now() + timeout;
    let mut nudge = tokio::time::interval(NUDGE_INTERVAL);
    nudge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut early_candidates: Vec<RTCIceCandidateInit> = Vec::new();
    let mut remote_set = false;
    let mut peer_fingerprint: Option<Fingerprint> = None;
    let (mut signals_open, mut candidates_open, mut state_open) = (true, true, true);

    loop {
        tokio::select! {
            msg = signals.recv(), if signals_open => {
                let Some(msg) = msg else {
                    signals_open = false;
                    if matches!(phase, Phase::Offer | Phase::Answer) {
                        return Err(MeshError::SignalingClosed { peer: peer.clone(), phase });
                    }
                    continue;
                };
                match (msg.kind, role, phase) {
                    (SignalKind::Offer, Role::Answerer, Phase::Offer)
                    | (SignalKind::Answer, Role::Offerer, Phase::Answer) => {
                        let (sdp, fingerprint) =
                            check_description(&msg.payload, &binding_ctx, &peer, phase)?;
                        let desc = match role {
                            Role::Answerer => RTCSessionDescription::offer(sdp),
                            Role::Offerer => RTCSessionDescription::answer(sdp),
                        }
                        .map_err(|e| protocol(&peer, phase, format!("bad SDP: {e}")))?;
                        pc.set_remote_description(desc)
                            .await
                            .map_err(|e| protocol(&peer, phase, format!("SDP refused: {e}")))?;
                        remote_set = true;
                        peer_fingerprint = Some(fingerprint);
                        for c in early_candidates.drain(..) {
                            add_candidate(&*pc, c, &peer, phase).await?;
                        }
                        if role == Role::Answerer {
                            let answer = pc
                                .create_answer(None)
                                .await
                                .map_err(|e| webrtc_err(phase, e))?;
                            pc.set_local_description(answer.clone())
                                .await
                                .map_err(|e| webrtc_err(phase, e))?;
                            send_signal(
                                ctx,
                                &peer,
                                phase,
                                SignalKind::Answer,
                                description_payload(&answer.sdp, my_binding.clone()),
                            )
                            .await?;
                        }
                        phase = Phase::Connect;
                        deadline = Instant::now() + timeout;
                    }
                    (SignalKind::Candidate, _, _) => {
                        let c: RTCIceCandidateInit = serde_json::from_value(msg.payload)
                            .map_err(|e| protocol(&peer, phase, format!("bad candidate: {e}")))?;
                        if c.candidate.is_empty() {
                            // End-of-candidates marker: nothing to add.
                        } else if remote_set {
                            add_candidate(&*pc, c, &peer, phase).await?;
                        } else if early_candidates.len() < MAX_EARLY_CANDIDATES {
                            early_candidates.push(c);
                        } else {
                            return Err(protocol(&peer, phase, "too many early candidates".into()));
                        }
                    }
                    (SignalKind::Bye, _, _) => {
                        return Err(MeshError::PeerClosed {
                            peer: peer.clone(),
                            phase,
                            reason: Some(bye_reason(&msg.payload)),
                        });
                    }
                    (SignalKind::Binding, _, _) => {
                        tracing::debug!(peer = peer.index, "standalone binding ignored");
                    }
                    (kind, _, _) => {
                        return Err(protocol(
                            &peer,
                            phase,
                            format!("unexpected {} message", kind.as_str()),
                        ));
                    }
                }
            }
            local = candidates.recv(), if candidates_open => {
                match local {
                    Some(c) => {
                        let payload = serde_json::to_value(&c)
                            .map_err(|e| protocol(&peer, phase, format!("candidate: {e}")))?;
                        send_signal(ctx, &peer, phase, SignalKind::Candidate, payload).await?;
                    }
                    None => candidates_open = false,
                }
            }
            changed = state.changed(), if state_open => {
                let now = *state.borrow_and_update();
                if changed.is_err() {
                    state_open = false;
                }
                if matches!(now, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                    return Err(MeshError::PeerClosed {
                        peer: peer.clone(),
                        phase,
                        reason: Some(format!("connection {now}")),
                    });
                }
            }
            // webrtc 0.21's driver flushes the packets that handling a protocol event produced
            // (the SCTP INIT after DTLS completes, the channel OPEN after SCTP does) only on its
            // next loop iteration, and once ICE is connected it next wakes on its own after up
            // to 200 ms: two such waits made a pair take ~0.43 s on loopback. Any
            // data-channel call that enqueues work wakes it, so while the channel is coming
            // up the offerer pokes it with a no-op setter (the low threshold is 0 by default
            // and unused). Answerer-side events produce no packets once it is the DTLS server.
            _ = nudge.tick(), if role == Role::Offerer && phase == Phase::Connect => {
                if let Some(channel) = dc.as_ref() {
                    let _ = channel.set_buffered_amount_low_threshold(0).await;
                }
            }
            channel = channels.recv(), if dc.is_none() => {
                if let Some(channel) = channel {
                    dc = Some(accept_channel(channel, &peer, phase).await?);
                }
            }
            event = next_event(dc.as_ref()) => match event {
                Some(DataChannelEvent::OnOpen) if phase == Phase::Connect => {
                    let Some(signed) = peer_fingerprint.as_ref() else {
                        return Err(protocol(&peer, phase, "channel open before the SDP".into()));
                    };
                    // The certificate DTLS actually authenticated, against the signed one.
                    let sctp = pc.sctp().await.ok_or_else(|| {
                        protocol(&peer, phase, "no SCTP transport after open".into())
                    })?;
                    let chain = sctp
                        .transport()
                        .get_remote_certificates()
                        .await
                        .map_err(|e| webrtc_err(phase, e))?;
                    check_dtls_certificate(&chain, signed, &peer)?;
                    let transcript = pair_transcript(ctx, &peer, role, signed);
                    let signature = transcript.sign(ctx.keypair, role);
                    let Some(channel) = dc.as_ref() else {
                        return Err(protocol(&peer, phase, "open without a channel".into()));
                    };
                    tokio::time::timeout(timeout, channel.send(transcript_frame(&signature)))
                        .await
                        .map_err(|_| MeshError::Timeout { peer: peer.clone(), phase, after: timeout })?
                        .map_err(|e| webrtc_err(phase, e))?;
                    phase = Phase::Transcript;
                    deadline = Instant::now() + timeout;
                }
                Some(DataChannelEvent::OnMessage(msg)) if phase == Phase::Transcript => {
                    let Some(signed) = peer_fingerprint.as_ref() else {
                        return Err(protocol(&peer, phase, "message before the SDP".into()));
                    };
                    let signature = match parse_frame(&msg.data) {
                        Ok(Frame::Transcript(sig)) => sig,
                        _ => {
                            return Err(MeshError::TranscriptInvalid {
                                peer: peer.clone(),
                                reason: "the first data-channel message is not a transcript"
                                    .into(),
                            })
                        }
                    };
                    let peer_role = match role {
                        Role::Offerer => Role::Answerer,
                        Role::Answerer => Role::Offerer,
                    };
                    pair_transcript(ctx, &peer, role, signed).verify(peer_role, signature)?;
                    let Some(dc) = dc else {
                        return Err(protocol(&peer, phase, "message without a channel".into()));
                    };
                    return Ok(VerifiedPair {
                        peer,
                        pc,
                        dc,
                        state,
                        remote_fingerprint: *signed,
                        setup: started.elapsed(),
                    });
                }
                Some(DataChannelEvent::OnMessage(_)) => {
                    return Err(protocol(&peer, phase, "data before the channel opened".into()));
                }
                Some(DataChannelEvent::OnClose) | None => {
                    return Err(MeshError::PeerClosed {
                        peer: peer.clone(),
                        phase,
                        reason: Some("the data channel closed".into()),
                    });
                }
                Some(_) => {}
            },
            () = tokio::time::sleep_until(deadline) => {
                return Err(MeshError::Timeout { peer: peer.clone(), phase, after: timeout });
            }
        }
    }
}

/// The next event of the pair's channel; never completes while there is none yet.
async fn next_event(dc: Option<&Arc<dyn DataChannel>>) -> Option<DataChannelEvent> {
    match dc {
        Some(dc) => dc.poll().await,
        None => futures::future::pending().await,
    }
}

/// The answerer takes the offerer's channel only if it is the ordered, reliable `mpc` channel.
async fn accept_channel(
    channel: Arc<dyn DataChannel>,
    peer: &PeerRef,
    phase: Phase,
) -> Result<Arc<dyn DataChannel>, MeshError> {
    let label = channel.label().await.unwrap_or_default();
    let ordered = channel.ordered().await.unwrap_or(false);
    let reliable = matches!(
        (
            channel.max_retransmits().await,
            channel.max_packet_life_time().await
        ),
        (Ok(None), Ok(None))
    );
    if label != CHANNEL_LABEL || !ordered || !reliable {
        return Err(protocol(
            peer,
            phase,
            format!(
                "the data channel must be the ordered, reliable {CHANNEL_LABEL:?} channel (got \
                 label {:?}, ordered {ordered}, reliable {reliable})",
                label.chars().take(64).collect::<String>()
            ),
        ));
    }
    Ok(channel)
}

/// Checks an offer/answer payload before any of it is applied: the binding verifies for this
/// pair, and every SDP fingerprint is the signed one. Returns the SDP and the signed
/// fingerprint.
fn check_description(
    payload: &Value,
    ctx: &BindingContext<'_>,
    peer: &PeerRef,
    phase: Phase,
) -> Result<(String, Fingerprint), MeshError> {
    let sdp = payload
        .get("sdp")
        .and_then(Value::as_str)
        .ok_or_else(|| protocol(peer, phase, "no sdp in the payload".into()))?;
    let binding = payload
        .get("binding")
        .ok_or_else(|| MeshError::MalformedBinding {
            peer: peer.clone(),
            reason: "no binding in the payload".into(),
        })?;
    let signed = verify_binding(binding, ctx)?;
    check_sdp_fingerprints(sdp, &signed, peer)?;
    Ok((sdp.to_owned(), signed))
}

fn pair_transcript<'a>(
    ctx: &'a PairCtx<'_>,
    peer: &'a PeerRef,
    role: Role,
    peer_fingerprint: &'a Fingerprint,
) -> Transcript<'a> {
    let (offerer, answerer, offerer_fingerprint, answerer_fingerprint) = match role {
        Role::Offerer => (&ctx.me, peer, &ctx.my_fingerprint, peer_fingerprint),
        Role::Answerer => (peer, &ctx.me, peer_fingerprint, &ctx.my_fingerprint),
    };
    Transcript {
        session: &ctx.roster.session,
        roster_hash: &ctx.roster.roster_hash,
        offerer,
        answerer,
        offerer_fingerprint,
        answerer_fingerprint,
    }
}

async fn add_candidate(
    pc: &dyn PeerConnection,
    c: RTCIceCandidateInit,
    peer: &PeerRef,
    phase: Phase,
) -> Result<(), MeshError> {
    pc.add_ice_candidate(c)
        .await
        .map_err(|e| protocol(peer, phase, format!("bad ICE candidate: {e}")))
}

async fn send_signal(
    ctx: &PairCtx<'_>,
    peer: &PeerRef,
    phase: Phase,
    kind: SignalKind,
    payload: Value,
) -> Result<(), MeshError> {
    let msg = SignalMessage {
        peer: peer.index,
        kind,
        payload,
    };
    let after = ctx.config.phase_timeout;
    match tokio::time::timeout(after, ctx.out.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(MeshError::SignalingClosed {
            peer: peer.clone(),
            phase,
        }),
        Err(_) => Err(MeshError::Timeout {
            peer: peer.clone(),
            phase,
            after,
        }),
    }
}

fn protocol(peer: &PeerRef, phase: Phase, reason: String) -> MeshError {
    MeshError::Protocol {
        peer: peer.clone(),
        phase,
        reason,
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
