//! Building the peer connections and running each pair's handshake (offer/answer with
//! bindings, trickled candidates, DTLS certificate check, transcript exchange).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

use super::binding::{Fingerprint, Role};
use super::error::{MeshError, PeerRef, Phase};
use super::handshake::{Action, Input, PairContext, PairHandshake, CHANNEL_LABEL};
use super::transport::{Mesh, VerifiedPair};
use super::{MeshConfig, MeshRoster, SignalKind, SignalMessage, Signaling};

/// Signaling messages queued per peer between the router and that pair's handshake.
const SIGNALS_PER_PEER: usize = 64;
/// Local ICE candidates queued between the `webrtc` driver and the pair's handshake.
const LOCAL_CANDIDATES: usize = 64;
/// How often the offerer wakes its connection's driver while the channel is coming up (see
/// the `nudge` branch of [`handshake`]).
const NUDGE_INTERVAL: Duration = Duration::from_millis(2);

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
        // A peer-reflexive remote candidate is a peer's address learnt from its connectivity
        // check arriving before its trickled candidate: in a large mesh the checks outrun
        // the signaling, and the crate's default then holds nomination back for 1 s, which was
        // the whole of the ~1 s step in 10-party set-ups (measured with per-pair timelines:
        // ICE "checking" at ~10 ms, "connected" at ~1015 ms). The pair it forms has already
        // answered a check, so there is nothing better to wait for.
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        // With a relay-only policy every candidate is a relay one: waiting the default 2 s
        // for a better kind of candidate cannot find one.
        .with_relay_acceptance_min_wait(config.relay_only.then_some(Duration::ZERO))
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

/// Runs one pair from its first signaling message to the verified transcript: the async shell
/// around [`PairHandshake`], which decides everything; this loop only waits for the pair's
/// events, feeds them in and performs the machine's actions on the `webrtc` objects.
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
    let mut machine = PairHandshake::new(
        PairContext {
            keypair: ctx.keypair,
            session: &ctx.roster.session,
            roster_hash: &ctx.roster.roster_hash,
            me: &ctx.me,
            peer: &peer,
            role,
            my_fingerprint: ctx.my_fingerprint,
            created: ctx.created,
            timeout,
        },
        now(),
    )?;
    let mut nudge = tokio::time::interval(NUDGE_INTERVAL);
    nudge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The answerer's channel while the machine decides whether to take it.
    let mut offered: Option<Arc<dyn DataChannel>> = None;
    let (mut signals_open, mut candidates_open, mut state_open, mut channels_open) =
        (true, true, true, true);
    // The phase the current actions were asked for in (errors name it).
    let mut phase = machine.phase();

    loop {
        while let Some(action) = machine.poll_action() {
            match action {
                Action::CreateOffer | Action::CreateAnswer => {
                    let desc = if matches!(action, Action::CreateOffer) {
                        pc.create_offer(None).await
                    } else {
                        pc.create_answer(None).await
                    }
                    .map_err(|e| webrtc_err(phase, e))?;
                    pc.set_local_description(desc.clone())
                        .await
                        .map_err(|e| webrtc_err(phase, e))?;
                    machine.handle(now(), Input::LocalDescription(desc.sdp))?;
                }
                Action::SetRemoteDescription { sdp, kind } => {
                    let desc = if kind == SignalKind::Offer {
                        RTCSessionDescription::offer(sdp)
                    } else {
                        RTCSessionDescription::answer(sdp)
                    }
                    .map_err(|e| protocol(&peer, phase, format!("bad SDP: {e}")))?;
                    pc.set_remote_description(desc)
                        .await
                        .map_err(|e| protocol(&peer, phase, format!("SDP refused: {e}")))?;
                }
                Action::AddCandidate(c) => pc
                    .add_ice_candidate(c)
                    .await
                    .map_err(|e| protocol(&peer, phase, format!("bad ICE candidate: {e}")))?,
                Action::Signal(kind, payload) => {
                    send_signal(ctx, &peer, phase, kind, payload).await?;
                }
                Action::AcceptChannel => dc = offered.take(),
                Action::SendOnChannel(frame) => {
                    let Some(channel) = dc.as_ref() else {
                        return Err(protocol(&peer, phase, "no data channel to send on".into()));
                    };
                    tokio::time::timeout(timeout, channel.send(frame))
                        .await
                        .map_err(|_| MeshError::Timeout {
                            peer: peer.clone(),
                            phase,
                            after: timeout,
                        })?
                        .map_err(|e| webrtc_err(phase, e))?;
                }
                Action::Verified { remote_fingerprint } => {
                    let Some(dc) = dc else {
                        return Err(protocol(&peer, phase, "verified without a channel".into()));
                    };
                    return Ok(VerifiedPair {
                        peer,
                        pc,
                        dc,
                        state,
                        remote_fingerprint,
                        setup: started.elapsed(),
                    });
                }
            }
        }
        phase = machine.phase();
        tokio::select! {
            msg = signals.recv(), if signals_open => match msg {
                Some(msg) => machine.handle(now(), Input::Signal(msg.kind, msg.payload))?,
                None => {
                    signals_open = false;
                    machine.handle(now(), Input::SignalingClosed)?;
                }
            },
            local = candidates.recv(), if candidates_open => match local {
                Some(c) => machine.handle(now(), Input::LocalCandidate(c))?,
                None => candidates_open = false,
            },
            changed = state.changed(), if state_open => {
                let current = *state.borrow_and_update();
                if changed.is_err() {
                    state_open = false;
                }
                if matches!(current, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                    machine.handle(now(), Input::ConnectionLost(current.to_string()))?;
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
            channel = channels.recv(), if channels_open && dc.is_none() && offered.is_none() => {
                match channel {
                    Some(channel) => {
                        let input = remote_channel(&*channel).await;
                        offered = Some(channel);
                        machine.handle(now(), input)?;
                    }
                    // The connection's handler is gone; its state change reports why.
                    None => channels_open = false,
                }
            }
            event = next_event(dc.as_ref()) => match event {
                Some(DataChannelEvent::OnOpen) if phase == Phase::Connect => {
                    // The certificate chain DTLS actually authenticated.
                    let sctp = pc.sctp().await.ok_or_else(|| {
                        protocol(&peer, phase, "no SCTP transport after open".into())
                    })?;
                    let remote_chain = sctp
                        .transport()
                        .get_remote_certificates()
                        .await
                        .map_err(|e| webrtc_err(phase, e))?;
                    machine.handle(now(), Input::ChannelOpen { remote_chain })?;
                }
                Some(DataChannelEvent::OnMessage(msg)) => {
                    machine.handle(now(), Input::ChannelMessage(&msg.data))?;
                }
                Some(DataChannelEvent::OnClose) | None => {
                    machine.handle(now(), Input::ChannelClosed)?;
                }
                Some(_) => {}
            },
            () = tokio::time::sleep_until(Instant::from_std(machine.deadline())) => {
                machine.handle_timeout(now())?;
            }
        }
    }
}

/// The machine's clock.
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// What the machine needs to know about the channel the offerer opened.
async fn remote_channel(channel: &dyn DataChannel) -> Input<'static> {
    let reliable = matches!(
        (
            channel.max_retransmits().await,
            channel.max_packet_life_time().await
        ),
        (Ok(None), Ok(None))
    );
    Input::RemoteChannel {
        label: channel.label().await.unwrap_or_default(),
        ordered: channel.ordered().await.unwrap_or(false),
        reliable,
    }
}

/// The next event of the pair's channel; never completes while there is none yet.
async fn next_event(dc: Option<&Arc<dyn DataChannel>>) -> Option<DataChannelEvent> {
    match dc {
        Some(dc) => dc.poll().await,
        None => futures::future::pending().await,
    }
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
