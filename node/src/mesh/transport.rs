//! The verified mesh as an `mpc_core::Transport`: framing, reassembly, bounded queues,
//! shutdown.
//!
//! **Wire format on the data channel.** Every data-channel message is one frame, at most
//! [`MAX_FRAME`] bytes (the SCTP message size every WebRTC stack accepts), whose first byte
//! says what it is:
//!
//! | tag | frame | body |
//! |---|---|---|
//! | `0x01` | transcript | the 64-byte Ed25519 transcript signature; first frame, once |
//! | `0x02` | start of a message | total length (u64 big endian), then the first bytes |
//! | `0x03` | continuation | the next bytes of the message being received |
//! | `0x04` | bye | nothing: the sender is done and will close; or the 2-byte (u16 big endian) index of the peer whose loss made the sender give up |
//!
//! An MPC message of `n` bytes is one start frame followed by continuation frames until `n`
//! bytes arrived; the channel is ordered and reliable, so no sequence numbers are needed.
//!
//! **Flow control.** Sending awaits `webrtc`'s per-channel send-buffer limit
//! (`PeerConnectionBuilder::with_data_channel_send_buffer_limit`): `DataChannel::send` parks
//! until SCTP has released enough acknowledged bytes — the same signal as the
//! buffered-amount-low event, but without racing the reader for the channel's event stream.
//! Receiving: a reader task per peer reassembles messages into a bounded queue; when the MPC
//! engine falls behind, the reader stops pulling from the channel, SCTP's receive window closes
//! and the sender's `send` parks. Memory per peer is bounded by `inbound_capacity` queued
//! messages, plus the one the reader holds while it waits for room, of at most `max_message`
//! bytes each, plus one partial message.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::future::{join_all, BoxFuture};
use mpc_core::{Transport, TransportError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::error::Error as RtcError;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

use super::binding::Fingerprint;
use super::error::PeerRef;
use super::MeshConfig;

/// Largest data-channel message we send (RFC 8841's default `max-message-size`).
pub(crate) const MAX_FRAME: usize = 64 * 1024;

const TAG_TRANSCRIPT: u8 = 0x01;
const TAG_START: u8 = 0x02;
const TAG_CONTINUE: u8 = 0x03;
const TAG_BYE: u8 = 0x04;
const START_HEADER: usize = 1 + 8;

/// A parsed data-channel frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Transcript(&'a [u8]),
    Start {
        total: u64,
        data: &'a [u8],
    },
    Continue(&'a [u8]),
    /// Done; `Some(i)`: gave up because peer `i` was lost.
    Bye(Option<usize>),
}

pub(crate) fn parse_frame(bytes: &[u8]) -> Result<Frame<'_>, String> {
    let (&tag, body) = bytes
        .split_first()
        .ok_or_else(|| "empty frame".to_owned())?;
    match tag {
        TAG_TRANSCRIPT => Ok(Frame::Transcript(body)),
        TAG_START => {
            let (len, data) = body
                .split_first_chunk::<8>()
                .ok_or_else(|| "start frame shorter than its header".to_owned())?;
            Ok(Frame::Start {
                total: u64::from_be_bytes(*len),
                data,
            })
        }
        TAG_CONTINUE => Ok(Frame::Continue(body)),
        TAG_BYE if body.is_empty() => Ok(Frame::Bye(None)),
        TAG_BYE if body.len() == 2 => Ok(Frame::Bye(Some(usize::from(u16::from_be_bytes([
            body[0], body[1],
        ]))))),
        _ => Err(format!("unknown frame tag {tag:#04x}")),
    }
}

pub(crate) fn transcript_frame(signature: &[u8; 64]) -> BytesMut {
    let mut b = BytesMut::with_capacity(65);
    b.extend_from_slice(&[TAG_TRANSCRIPT]);
    b.extend_from_slice(signature);
    b
}

fn bye_frame(culprit: Option<usize>) -> BytesMut {
    let mut b = BytesMut::from(&[TAG_BYE][..]);
    if let Some(i) = culprit.and_then(|i| u16::try_from(i).ok()) {
        b.extend_from_slice(&i.to_be_bytes());
    }
    b
}

/// The frames of one message, each at most [`MAX_FRAME`] bytes.
pub(crate) fn frames(msg: &[u8]) -> impl Iterator<Item = BytesMut> + '_ {
    let first_len = msg.len().min(MAX_FRAME - START_HEADER);
    let (first, rest) = msg.split_at(first_len);
    let mut start = BytesMut::with_capacity(START_HEADER + first.len());
    start.extend_from_slice(&[TAG_START]);
    start.extend_from_slice(&(msg.len() as u64).to_be_bytes());
    start.extend_from_slice(first);
    std::iter::once(start).chain(rest.chunks(MAX_FRAME - 1).map(|c| {
        let mut b = BytesMut::with_capacity(1 + c.len());
        b.extend_from_slice(&[TAG_CONTINUE]);
        b.extend_from_slice(c);
        b
    }))
}

/// Reassembles messages from start/continuation frames; refuses anything over `max`.
#[derive(Debug)]
pub(crate) struct Reassembler {
    max: usize,
    partial: Option<(Vec<u8>, usize)>,
}

impl Reassembler {
    pub(crate) fn new(max: usize) -> Self {
        Reassembler { max, partial: None }
    }

    /// Feeds one start or continuation frame; returns a message when it is complete.
    pub(crate) fn push(&mut self, frame: Frame<'_>) -> Result<Option<Vec<u8>>, String> {
        match frame {
            Frame::Start { total, data } => {
                if self.partial.is_some() {
                    return Err("a new message started before the last one ended".into());
                }
                let total = usize::try_from(total)
                    .ok()
                    .filter(|&t| t <= self.max)
                    .ok_or_else(|| {
                        format!("a message of {total} bytes exceeds the limit {}", self.max)
                    })?;
                // The announced length is the peer's word: reserve at most a few frames' worth
                // up front and let the vector grow with bytes that actually arrive.
                let mut buf = Vec::with_capacity(total.min(16 * MAX_FRAME));
                buf.extend_from_slice(data);
                self.partial = Some((buf, total));
            }
            Frame::Continue(data) => match self.partial.as_mut() {
                Some((buf, _)) => buf.extend_from_slice(data),
                None => return Err("a continuation frame outside a message".into()),
            },
            Frame::Transcript(_) | Frame::Bye(_) => {
                return Err("not a message frame".into());
            }
        }
        match self.partial.take() {
            Some((buf, total)) if buf.len() == total => Ok(Some(buf)),
            Some((buf, total)) if buf.len() > total => Err(format!(
                "{} bytes arrived for a message of {total}",
                buf.len()
            )),
            other => {
                self.partial = other;
                Ok(None)
            }
        }
    }
}

/// A pair that passed every check, ready to carry MPC messages.
pub(crate) struct VerifiedPair {
    pub(crate) peer: PeerRef,
    pub(crate) pc: Arc<dyn PeerConnection>,
    pub(crate) dc: Arc<dyn DataChannel>,
    pub(crate) state: watch::Receiver<RTCPeerConnectionState>,
    pub(crate) remote_fingerprint: Fingerprint,
    pub(crate) setup: Duration,
}

/// How a link ended, as its reader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkStatus {
    Open,
    /// The peer said bye.
    Bye,
    /// The peer gave up because it lost peer `.0` (so that one is to blame, not the sender).
    GaveUp(usize),
    /// The channel or connection went away.
    Lost(String),
    /// The peer sent something that breaks the framing.
    Violation(String),
}

struct Link {
    peer: PeerRef,
    pc: Arc<dyn PeerConnection>,
    dc: Arc<dyn DataChannel>,
    inbound: Option<mpsc::Receiver<Vec<u8>>>,
    status: watch::Receiver<LinkStatus>,
    reader: JoinHandle<()>,
    remote_fingerprint: Fingerprint,
    setup: Duration,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
        // Dropped without `Mesh::close` (an error path, a panic): still close the connection
        // so the peer's DTLS/SCTP stack tells it at once, instead of it waiting for ICE
        // consent to fail or its receive timeout. Best effort: needs a runtime to run on.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pc = Arc::clone(&self.pc);
            runtime.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// What a verified peer looks like (for progress displays and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer.
    pub peer: PeerRef,
    /// Its DTLS certificate fingerprint, as signed and as presented.
    pub fingerprint: Fingerprint,
    /// How long this pair took from the start of the setup to the verified transcript.
    pub setup: Duration,
}

/// The verified full mesh: an `mpc_core::Transport` over one DID-bound data channel per peer.
///
/// Built only by [`super::connect`] once every pair is verified. Call [`Mesh::close`] when the
/// computation is done; dropping it closes the connections without saying goodbye.
pub struct Mesh {
    me: usize,
    local_fingerprint: Fingerprint,
    links: Vec<Option<Link>>,
    recv_timeout: Duration,
    send_timeout: Duration,
    close_timeout: Duration,
    max_message: usize,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("me", &self.me)
            .field("parties", &self.links.len())
            .field("local_fingerprint", &self.local_fingerprint)
            .finish_non_exhaustive()
    }
}

impl Mesh {
    pub(crate) fn new(
        me: usize,
        parties: usize,
        local_fingerprint: Fingerprint,
        pairs: Vec<VerifiedPair>,
        config: &MeshConfig,
    ) -> Self {
        let mut links: Vec<Option<Link>> = (0..parties).map(|_| None).collect();
        for pair in pairs {
            let (tx, rx) = mpsc::channel(config.inbound_capacity.max(1));
            let (status_tx, status_rx) = watch::channel(LinkStatus::Open);
            let reader = tokio::spawn(read_loop(
                Arc::clone(&pair.dc),
                tx,
                status_tx,
                pair.state,
                config.max_message,
            ));
            let index = pair.peer.index;
            if let Some(slot) = links.get_mut(index) {
                *slot = Some(Link {
                    peer: pair.peer,
                    pc: pair.pc,
                    dc: pair.dc,
                    inbound: Some(rx),
                    status: status_rx,
                    reader,
                    remote_fingerprint: pair.remote_fingerprint,
                    setup: pair.setup,
                });
            }
        }
        Mesh {
            me,
            local_fingerprint,
            links,
            recv_timeout: config.recv_timeout,
            send_timeout: config.send_timeout,
            close_timeout: config.close_timeout,
            max_message: config.max_message,
        }
    }

    /// Our certificate fingerprint (the one in all our bindings).
    pub fn local_fingerprint(&self) -> Fingerprint {
        self.local_fingerprint
    }

    /// The verified peers, by index.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.links
            .iter()
            .flatten()
            .map(|l| PeerInfo {
                peer: l.peer.clone(),
                fingerprint: l.remote_fingerprint,
                setup: l.setup,
            })
            .collect()
    }

    /// Ends the session cleanly: says `bye` on every channel, waits (at most `close_timeout`)
    /// for every peer's `bye` — a peer that said bye has finished its computation, so it needs
    /// nothing more from us — then closes every connection.
    pub async fn close(self) {
        self.close_with(None).await;
    }

    /// Ends the session after the computation failed because peer `culprit` was lost: like
    /// [`Mesh::close`], but the `bye` names the lost peer, so the others blame it rather than us.
    pub async fn abort(self, culprit: usize) {
        self.close_with(Some(culprit)).await;
    }

    async fn close_with(mut self, culprit: Option<usize>) {
        let mut links: Vec<Link> = self.links.drain(..).flatten().collect();
        let close_timeout = self.close_timeout;
        for link in &mut links {
            // Nobody will receive any more: let the readers discard instead of waiting for
            // queue space, so they can still see the peer's bye.
            link.inbound = None;
        }
        join_all(links.iter().map(|link| async move {
            let _ = tokio::time::timeout(close_timeout, link.dc.send(bye_frame(culprit))).await;
        }))
        .await;
        join_all(links.iter_mut().map(|link| async move {
            let _ = tokio::time::timeout(
                close_timeout,
                link.status.wait_for(|s| *s != LinkStatus::Open),
            )
            .await;
        }))
        .await;
        join_all(links.iter().map(|link| async move {
            let _ = link.dc.close().await;
            let _ = link.pc.close().await;
        }))
        .await;
    }

    fn link(&mut self, party: usize) -> Result<&mut Link, TransportError> {
        let parties = self.links.len();
        match self.links.get_mut(party) {
            Some(Some(link)) => Ok(link),
            _ => Err(TransportError::NoSuchParty { party, parties }),
        }
    }
}

impl Transport for Mesh {
    fn party_count(&self) -> usize {
        self.links.len()
    }

    fn party_index(&self) -> usize {
        self.me
    }

    fn send(&mut self, to: usize, msg: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let (send_timeout, max) = (self.send_timeout, self.max_message);
            let link = self.link(to)?;
            if msg.len() > max {
                return Err(TransportError::TooLarge {
                    party: to,
                    len: msg.len(),
                    max,
                });
            }
            if let Some(blame) = gone(&link.status.borrow(), to) {
                return Err(TransportError::Closed { party: blame });
            }
            let mut status = link.status.clone();
            for frame in frames(&msg) {
                // A send parked on a full buffer must not outlive the link: watch its status
                // too, or a dead peer is only noticed after the whole send timeout.
                let sent = tokio::select! {
                    r = tokio::time::timeout(send_timeout, link.dc.send(frame)) => r,
                    blame = async {
                        loop {
                            if status.changed().await.is_err() {
                                return to;
                            }
                            if let Some(b) = gone(&status.borrow(), to) {
                                return b;
                            }
                        }
                    } => return Err(TransportError::Closed { party: blame }),
                };
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(RtcError::ErrDataChannelClosed)) => {
                        return Err(TransportError::Closed { party: to })
                    }
                    Ok(Err(e)) => {
                        return Err(TransportError::Io {
                            party: to,
                            source: std::io::Error::other(e.to_string()),
                        })
                    }
                    Err(_) => {
                        return Err(TransportError::Timeout {
                            party: to,
                            after: send_timeout,
                        })
                    }
                }
            }
            Ok(())
        })
    }

    fn recv(&mut self, from: usize) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            let recv_timeout = self.recv_timeout;
            let link = self.link(from)?;
            let Some(inbound) = link.inbound.as_mut() else {
                return Err(TransportError::Closed { party: from });
            };
            match tokio::time::timeout(recv_timeout, inbound.recv()).await {
                Ok(Some(msg)) => Ok(msg),
                // The reader ended: it recorded why before dropping the queue.
                Ok(None) => match &*link.status.borrow() {
                    LinkStatus::Violation(reason) => Err(TransportError::Io {
                        party: from,
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("peer {} broke the framing: {reason}", link.peer),
                        ),
                    }),
                    other => Err(TransportError::Closed {
                        party: gone(other, from).unwrap_or(from),
                    }),
                },
                Err(_) => Err(TransportError::Timeout {
                    party: from,
                    after: recv_timeout,
                }),
            }
        })
    }
}

/// Whether a link is unusable, and whom to blame: the peer itself, or the one it says it lost.
fn gone(status: &LinkStatus, peer: usize) -> Option<usize> {
    match status {
        LinkStatus::Open => None,
        LinkStatus::GaveUp(culprit) => Some(*culprit),
        _ => Some(peer),
    }
}

/// One peer's reader: data-channel events → reassembled messages in the bounded queue. Ends
/// (recording why, then dropping the queue so `recv` notices) on bye, on a framing violation,
/// or when the channel or connection goes away.
async fn read_loop(
    dc: Arc<dyn DataChannel>,
    inbound: mpsc::Sender<Vec<u8>>,
    status: watch::Sender<LinkStatus>,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    max_message: usize,
) {
    let mut reassembler = Reassembler::new(max_message);
    let mut deliver = true;
    let end = loop {
        let event = tokio::select! {
            event = dc.poll() => event,
            changed = state.changed() => {
                let now = *state.borrow_and_update();
                match changed {
                    Err(_) => break LinkStatus::Lost("the connection was dropped".into()),
                    Ok(()) if matches!(
                        now,
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                    ) => break LinkStatus::Lost(format!("connection {now}")),
                    // Disconnected is transient: ICE may recover, and fails after its timeout.
                    Ok(()) => continue,
                }
            }
        };
        match event {
            None | Some(DataChannelEvent::OnClose) => {
                break LinkStatus::Lost("the data channel closed".into())
            }
            Some(DataChannelEvent::OnMessage(msg)) => {
                let complete = match parse_frame(&msg.data) {
                    Ok(Frame::Bye(None)) => break LinkStatus::Bye,
                    Ok(Frame::Bye(Some(culprit))) => break LinkStatus::GaveUp(culprit),
                    Ok(Frame::Transcript(_)) => {
                        break LinkStatus::Violation("a second transcript".into())
                    }
                    Ok(frame) => match reassembler.push(frame) {
                        Ok(complete) => complete,
                        Err(e) => break LinkStatus::Violation(e),
                    },
                    Err(e) => break LinkStatus::Violation(e),
                };
                if let Some(message) = complete {
                    // Awaiting queue space is the backpressure; a dropped queue (the mesh is
                    // closing) means discard and keep reading until the peer's bye.
                    if deliver && inbound.send(message).await.is_err() {
                        deliver = false;
                    }
                }
            }
            Some(_) => {}
        }
    };
    status.send_replace(end);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn roundtrip(msg: &[u8], max: usize) -> Result<Vec<Vec<u8>>, String> {
        let mut r = Reassembler::new(max);
        let mut out = Vec::new();
        for f in frames(msg) {
            assert!(f.len() <= MAX_FRAME);
            if let Some(m) = r.push(parse_frame(&f)?)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    #[test]
    fn messages_of_any_size_survive_framing() {
        for len in [
            0,
            1,
            MAX_FRAME - START_HEADER,
            MAX_FRAME - START_HEADER + 1,
            MAX_FRAME,
            3 * MAX_FRAME + 17,
            5 << 20,
        ] {
            let msg: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let frames_n = frames(&msg).count();
            assert_eq!(
                frames_n,
                1 + (len.saturating_sub(MAX_FRAME - START_HEADER)).div_ceil(MAX_FRAME - 1)
            );
            assert_eq!(roundtrip(&msg, 8 << 20).unwrap(), vec![msg]);
        }
    }

    #[test]
    fn framing_violations_are_refused() {
        assert!(parse_frame(&[]).is_err());
        assert!(parse_frame(&[0x09]).is_err());
        assert!(parse_frame(&[TAG_START, 0, 0]).is_err());
        assert!(parse_frame(&[TAG_BYE, 0]).is_err());
        assert_eq!(parse_frame(&[TAG_BYE]).unwrap(), Frame::Bye(None));
        assert_eq!(
            parse_frame(&bye_frame(Some(7))).unwrap(),
            Frame::Bye(Some(7))
        );
        assert_eq!(parse_frame(&bye_frame(None)).unwrap(), Frame::Bye(None));
        assert!(parse_frame(&[TAG_BYE, 1]).is_err());
        // Too large, announced or actual.
        assert!(roundtrip(&[0u8; 100], 99).is_err());
        let mut r = Reassembler::new(1 << 20);
        let mut start = vec![TAG_START];
        start.extend_from_slice(&4u64.to_be_bytes());
        start.extend_from_slice(b"ab");
        assert_eq!(r.push(parse_frame(&start).unwrap()).unwrap(), None);
        assert!(r.push(Frame::Continue(b"cde")).is_err());
        // Continuation without a start, and a start inside a message.
        let mut r = Reassembler::new(1 << 20);
        assert!(r.push(Frame::Continue(b"x")).is_err());
        r.push(parse_frame(&start).unwrap()).unwrap();
        assert!(r.push(parse_frame(&start).unwrap()).is_err());
        // u64::MAX does not allocate.
        let mut huge = vec![TAG_START];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(Reassembler::new(1 << 20)
            .push(parse_frame(&huge).unwrap())
            .is_err());
    }
}
