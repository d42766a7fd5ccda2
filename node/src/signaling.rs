//! The broker's signaling WebSocket as a pair of bounded channels that
//! survive the loss of a broker replica.
//!
//! A background task owns the socket: it writes what the node queues
//! (`{"type","to","payload","id"}`) and hands up what the broker relays
//! (`{"type","from","to","payload","id"}`, `from` stamped by the broker) and the
//! broker's `error` frames. It answers pings.
//!
//! **Reconnects.** When the socket drops without the broker closing it on
//! purpose, the task reconnects with bounded exponential backoff, cycling
//! through the broker URLs it was given (another replica, or the same one
//! restarted), for at most [`Options::reconnect_within`]. Messages in flight
//! when a replica dies may be lost, so on every connect the node asks each
//! peer for a `resync` and sends again everything it has sent so far (a
//! bounded log); every message carries an id (`<epoch>-<n>`) and receivers
//! drop ids they have seen. The mesh above therefore sees each message once,
//! in each sender's order, across any number of reconnects. A message the
//! broker's store did not take (`store_unavailable`, naming the message's id)
//! is sent again from the log with a doubling pause, a bounded number of
//! times; a broker that closes with 1012 (it lost messages on their way
//! between replicas) is a reconnect like any other. When the task
//! gives up it closes the inbound channel, so a node waiting on signaling
//! learns that the broker went away instead of hanging.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use identity::Did;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Signaling messages queued per direction.
const QUEUE: usize = 256;
/// Largest WebSocket message (and frame) taken from the broker: four times its relay limit.
const MAX_MESSAGE: usize = 256 << 10;
/// How long opening the socket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Messages kept for resending after a reconnect (a mesh handshake sends a
/// handful per peer).
const LOG_LIMIT: usize = 2048;
/// Message ids remembered per peer to drop duplicates.
const SEEN_LIMIT: usize = 2048;
/// First and longest pause between reconnect attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// The kind of message that asks a peer to resend (handled here, never
/// handed up).
const RESYNC: &str = "resync";
/// The broker's code for a message its store did not take (a Redis blip): worth sending again.
const STORE_UNAVAILABLE: &str = "store_unavailable";
/// How often a message the store did not take is sent again, and the first pause (doubling).
const RETRIES: (u32, Duration) = (6, Duration::from_millis(200));

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A message to or from a peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// `offer`, `answer`, `candidate`, `binding` or `bye`.
    pub kind: String,
    /// The peer (recipient when sending, sender when receiving).
    pub peer: Did,
    /// The message body.
    pub payload: Value,
}

/// What arrives from the broker.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A relayed message.
    Signal(Signal),
    /// The broker refused something this node sent.
    Refused {
        /// Problem code.
        code: String,
        /// Detail.
        detail: String,
    },
}

/// Why signaling failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalingError {
    /// The socket could not be opened.
    #[error("cannot open the signaling WebSocket at {url}: {reason}")]
    Connect {
        /// URL.
        url: String,
        /// Why (the broker's problem detail when it refused).
        reason: String,
        /// The broker refused for good (an HTTP 4xx: bad token, not on the
        /// roster, unknown session); retrying will not help.
        refused: bool,
    },
    /// No URL to connect to.
    #[error("no signaling URL given")]
    NoUrl,
}

/// How the signaling connection behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The session's signaling URL on each broker replica, tried in order.
    pub urls: Vec<String>,
    /// The access token.
    pub token: String,
    /// The roster members to ask for a resend after a reconnect (anyone
    /// else's requests are ignored too).
    pub peers: Vec<Did>,
    /// How long to keep trying to reconnect after the socket drops.
    pub reconnect_within: Duration,
    /// Treat the socket as lost after this long without any frame from the broker (it pings
    /// every 15 s by default), and a write that takes this long as a lost socket too. Catches a
    /// half-open connection — a replica's host gone without a TCP reset — which would
    /// otherwise never end, so the reconnect to another replica would never start.
    pub silence_timeout: Duration,
}

/// Default [`Options::silence_timeout`]: three of the broker's default ping intervals.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(45);

/// The node's end of the signaling channel.
#[derive(Debug)]
pub struct Signaling {
    /// Queue messages for peers.
    pub tx: mpsc::Sender<Signal>,
    /// Relayed messages and refusals; closed when the socket is gone for good.
    pub rx: mpsc::Receiver<Incoming>,
}

/// Opens the session's signaling socket at one URL with an access token,
/// without reconnecting (tests and simple clients).
pub async fn connect(url: &str, token: &str) -> Result<Signaling, SignalingError> {
    connect_with(Options {
        urls: vec![url.to_owned()],
        token: token.to_owned(),
        peers: Vec::new(),
        reconnect_within: Duration::ZERO,
        silence_timeout: SILENCE_TIMEOUT,
    })
    .await
}

/// Opens the session's signaling socket (the first URL that answers) and
/// keeps it up as [`Options`] say.
pub async fn connect_with(opts: Options) -> Result<Signaling, SignalingError> {
    if opts.urls.is_empty() {
        return Err(SignalingError::NoUrl);
    }
    let mut last = None;
    let mut opened = None;
    for (i, url) in opts.urls.iter().enumerate() {
        match open(url, &opts.token).await {
            Ok(ws) => {
                opened = Some((i, ws));
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some((at, ws)) = opened else {
        return Err(last.unwrap_or(SignalingError::NoUrl));
    };
    let (out_tx, out_rx) = mpsc::channel::<Signal>(QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(QUEUE);
    let link = Link::new(opts, at, rand::random());
    tokio::spawn(link.run(ws, out_rx, in_tx));
    Ok(Signaling {
        tx: out_tx,
        rx: in_rx,
    })
}

async fn open(url: &str, token: &str) -> Result<Socket, SignalingError> {
    let err = |reason: String, refused: bool| SignalingError::Connect {
        url: url.to_owned(),
        reason,
        refused,
    };
    let mut req = url
        .into_client_request()
        .map_err(|e| err(e.to_string(), true))?;
    let auth = format!("Bearer {token}")
        .parse()
        .map_err(|_| err("the token is not a valid header value".into(), true))?;
    req.headers_mut().insert("authorization", auth);
    // tungstenite's defaults accept 64 MiB messages; the broker relays frames of at most
    // 64 KiB (its `max_frame`), and it is not trusted with our memory.
    let limits = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let connecting = tokio_tungstenite::connect_async_with_config(req, Some(limits), true);
    let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| err(format!("no answer within {CONNECT_TIMEOUT:?}"), false))?
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok());
                let detail = body
                    .as_ref()
                    .and_then(|b| b["detail"].as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("HTTP {}", resp.status()));
                err(
                    detail,
                    (400..500).contains(&status) && status != 408 && status != 429,
                )
            }
            other => err(other.to_string(), false),
        })?;
    Ok(ws)
}

/// How one socket ended.
enum Ended {
    /// The node dropped its sender: we are done.
    Finished,
    /// The node stopped reading: we are done.
    Abandoned,
    /// The broker closed on purpose (replaced, frame too large, policy).
    ClosedByBroker,
    /// The socket broke: reconnect.
    Lost,
}

/// The socket's state across reconnects (all bounded).
struct Link {
    opts: Options,
    /// Index of the URL in use.
    at: usize,
    /// Random per process, so ids never repeat across restarts of a node.
    epoch: u32,
    next: u64,
    /// What we sent, for resending: (recipient, id, wire message).
    log: VecDeque<(Did, String, String)>,
    /// Messages the broker's store did not take, to send again: (when, id).
    retries: VecDeque<(tokio::time::Instant, String)>,
    /// Attempts so far per message id sent again.
    attempts: HashMap<String, u32>,
    /// Ids seen per sender.
    seen: HashMap<Did, (HashSet<String>, VecDeque<String>)>,
}

impl Link {
    fn new(opts: Options, at: usize, epoch: u32) -> Self {
        Link {
            opts,
            at,
            epoch,
            next: 0,
            log: VecDeque::new(),
            retries: VecDeque::new(),
            attempts: HashMap::new(),
            seen: HashMap::new(),
        }
    }

    /// A message on the wire with the next id, and the id.
    fn wire(&mut self, s: &Signal) -> (String, String) {
        self.next += 1;
        let id = format!("{:08x}-{}", self.epoch, self.next);
        let wire = json!({"type": s.kind, "to": s.peer, "payload": s.payload, "id": id});
        (wire.to_string(), id)
    }

    /// Stamps and logs a message for sending.
    fn stamp(&mut self, s: &Signal) -> String {
        let (wire, id) = self.wire(s);
        if self.log.len() >= LOG_LIMIT {
            self.log.pop_front();
        }
        self.log.push_back((s.peer.clone(), id, wire.clone()));
        wire
    }

    /// The broker's store did not take our message `id`: schedule it again after a pause that
    /// doubles with each attempt. `false` when it is not ours to resend (not in the log, or out
    /// of attempts), so the refusal stands.
    fn retry_later(&mut self, id: &str, now: tokio::time::Instant) -> bool {
        let attempts = self.attempts.get(id).copied().unwrap_or(0);
        if attempts >= RETRIES.0
            || self.retries.len() >= LOG_LIMIT
            || !self.log.iter().any(|(_, i, _)| i == id)
        {
            return false;
        }
        if self.attempts.len() >= LOG_LIMIT {
            self.attempts.clear();
        }
        self.attempts.insert(id.to_owned(), attempts + 1);
        self.retries
            .push_back((now + RETRIES.1 * 2u32.pow(attempts), id.to_owned()));
        true
    }

    /// When the next retry is due.
    fn next_retry(&self) -> Option<tokio::time::Instant> {
        self.retries.iter().map(|(at, _)| *at).min()
    }

    /// The logged messages whose retry is due by `now`, taken off the schedule.
    fn due_retries(&mut self, now: tokio::time::Instant) -> Vec<String> {
        let (due, later): (VecDeque<_>, VecDeque<_>) =
            self.retries.drain(..).partition(|(at, _)| *at <= now);
        self.retries = later;
        due.iter()
            .filter_map(|(_, id)| self.log.iter().find(|(_, i, _)| i == id))
            .map(|(_, _, w)| w.clone())
            .collect()
    }

    /// `true` the first time this sender's id is seen.
    fn first_time(&mut self, from: &Did, id: &str) -> bool {
        let (set, order) = self.seen.entry(from.clone()).or_default();
        if !set.insert(id.to_owned()) {
            return false;
        }
        order.push_back(id.to_owned());
        if order.len() > SEEN_LIMIT {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
        true
    }

    /// What to send right after (re)connecting: a resync request to every
    /// peer, then everything sent so far.
    fn on_connect(&mut self) -> Vec<String> {
        let peers = self.opts.peers.clone();
        // The resync requests themselves are not logged: each connect makes new ones.
        let mut out: Vec<String> = peers
            .iter()
            .map(|p| {
                self.wire(&Signal {
                    kind: RESYNC.into(),
                    peer: p.clone(),
                    payload: json!({}),
                })
                .0
            })
            .collect();
        out.extend(self.log.iter().map(|(_, _, w)| w.clone()));
        out
    }

    /// What to resend to `peer` on its request.
    fn resend_to(&self, peer: &Did) -> Vec<String> {
        self.log
            .iter()
            .filter(|(to, _, _)| to == peer)
            .map(|(_, _, w)| w.clone())
            .collect()
    }

    async fn run(
        mut self,
        ws: Socket,
        mut out_rx: mpsc::Receiver<Signal>,
        in_tx: mpsc::Sender<Incoming>,
    ) {
        let mut ws = Some(ws);
        while let Some(socket) = ws.take() {
            match self.serve(socket, &mut out_rx, &in_tx).await {
                Ended::Finished | Ended::Abandoned | Ended::ClosedByBroker => return,
                Ended::Lost => ws = self.reconnect().await,
            }
        }
        // Gave up: dropping `in_tx` tells the node.
    }

    async fn reconnect(&mut self) -> Option<Socket> {
        if self.opts.reconnect_within.is_zero() {
            return None;
        }
        let until = tokio::time::Instant::now() + self.opts.reconnect_within;
        let mut pause = BACKOFF.0;
        loop {
            // Another replica first: the one we were on just failed.
            self.at = (self.at + 1) % self.opts.urls.len();
            let url = self.opts.urls[self.at].clone();
            match open(&url, &self.opts.token).await {
                Ok(ws) => {
                    tracing::info!(%url, "signaling reconnected");
                    return Some(ws);
                }
                Err(SignalingError::Connect {
                    refused: true,
                    reason,
                    ..
                }) => {
                    tracing::warn!(%url, %reason, "the broker refused the signaling reconnect");
                    return None;
                }
                Err(e) => tracing::debug!(error = %e, "signaling reconnect failed"),
            }
            let now = tokio::time::Instant::now();
            if now + pause > until {
                tracing::warn!(
                    "signaling could not reconnect within {:?}",
                    self.opts.reconnect_within
                );
                return None;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(BACKOFF.1);
        }
    }

    async fn serve(
        &mut self,
        ws: Socket,
        out_rx: &mut mpsc::Receiver<Signal>,
        in_tx: &mpsc::Sender<Incoming>,
    ) -> Ended {
        let (mut sink, mut stream) = ws.split();
        let silence = self.opts.silence_timeout;
        for wire in self.on_connect() {
            if !bounded(silence, sink.send(Message::text(wire))).await {
                return Ended::Lost;
            }
        }
        let mut heard = tokio::time::Instant::now();
        let ended = 'serve: loop {
            tokio::select! {
                // In order, the silence timer last: a frame already waiting must count as
                // heard, even when the loop was slow to come back here.
                biased;
                out = out_rx.recv() => {
                    let Some(s) = out else { break Ended::Finished };
                    let wire = self.stamp(&s);
                    if !bounded(silence, sink.send(Message::text(wire))).await {
                        break Ended::Lost;
                    }
                }
                incoming = stream.next() => {
                    heard = tokio::time::Instant::now();
                    let text = match incoming {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Ping(p))) => {
                            if !bounded(silence, sink.send(Message::Pong(p))).await {
                                break Ended::Lost;
                            }
                            continue;
                        }
                        Some(Ok(Message::Close(frame))) => {
                            // A replica that shuts down says "going away": reconnect then.
                            let code = frame.map(|f| f.code);
                            if matches!(code, Some(CloseCode::Away | CloseCode::Restart | CloseCode::Again) | None) {
                                break Ended::Lost;
                            }
                            break Ended::ClosedByBroker;
                        }
                        None | Some(Err(_)) => break Ended::Lost,
                        Some(Ok(_)) => continue,
                    };
                    let Some((event, id)) = parse(&text) else { continue };
                    if let (Incoming::Refused { code, .. }, Some(id)) = (&event, &id) {
                        // The store did not take it (a Redis blip): send it again shortly.
                        if code == STORE_UNAVAILABLE
                            && self.retry_later(id, tokio::time::Instant::now())
                        {
                            continue;
                        }
                    }
                    if let Incoming::Signal(s) = &event {
                        if let Some(id) = &id {
                            if !self.first_time(&s.peer, id) {
                                continue;
                            }
                        }
                        if s.kind == RESYNC {
                            if self.opts.peers.contains(&s.peer) {
                                for wire in self.resend_to(&s.peer) {
                                    if !bounded(silence, sink.send(Message::text(wire))).await {
                                        return Ended::Lost;
                                    }
                                }
                            }
                            continue;
                        }
                    }
                    if in_tx.send(event).await.is_err() {
                        break Ended::Abandoned;
                    }
                }
                () = tokio::time::sleep_until(self.next_retry().unwrap_or(heard + silence)),
                    if self.next_retry().is_some() =>
                {
                    for wire in self.due_retries(tokio::time::Instant::now()) {
                        if !bounded(silence, sink.send(Message::text(wire))).await {
                            break 'serve Ended::Lost;
                        }
                    }
                }
                () = tokio::time::sleep_until(heard + silence) => {
                    tracing::warn!(
                        "nothing from the broker for {silence:?}; treating the socket as lost"
                    );
                    break Ended::Lost;
                }
            }
        };
        if !matches!(ended, Ended::Lost) {
            let _ = tokio::time::timeout(silence, sink.close()).await;
        }
        ended
    }
}

/// Runs one write to the broker within `within`; false if it failed or timed out (a broker
/// that stopped reading fills our socket, and an unbounded write would park the loop).
async fn bounded<E>(
    within: Duration,
    write: impl std::future::Future<Output = Result<(), E>>,
) -> bool {
    matches!(tokio::time::timeout(within, write).await, Ok(Ok(())))
}

/// Parses one broker frame (and the sender's message id, or for a refusal the id of our
/// message it refers to); frames that are not the API are dropped.
fn parse(text: &str) -> Option<(Incoming, Option<String>)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let kind = v.get("type")?.as_str()?;
    if kind == "error" {
        return Some((
            Incoming::Refused {
                code: v["code"].as_str().unwrap_or("unknown").to_owned(),
                detail: v["detail"].as_str().unwrap_or_default().to_owned(),
            },
            // For a refusal: the id of our message it refers to, if the broker says.
            v.get("id").and_then(Value::as_str).map(str::to_owned),
        ));
    }
    let from = Did::parse(v.get("from")?.as_str()?).ok()?;
    let id = v.get("id").and_then(Value::as_str).map(str::to_owned);
    Some((
        Incoming::Signal(Signal {
            kind: kind.to_owned(),
            peer: from,
            payload: v.get("payload").cloned().unwrap_or_else(|| json!({})),
        }),
        id,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn did(n: u8) -> Did {
        identity::Keypair::from_seed(&[n; 32]).did()
    }

    #[test]
    fn broker_frames_parse_and_junk_is_dropped() {
        let did = did(1);
        let f =
            json!({"type": "offer", "from": did, "to": did, "payload": {"sdp": "x"}, "id": "a-1"})
                .to_string();
        assert_eq!(
            parse(&f),
            Some((
                Incoming::Signal(Signal {
                    kind: "offer".into(),
                    peer: did,
                    payload: json!({"sdp": "x"})
                }),
                Some("a-1".into())
            ))
        );
        let e = json!({"type": "error", "code": "not_on_roster", "detail": "d"}).to_string();
        assert_eq!(
            parse(&e),
            Some((
                Incoming::Refused {
                    code: "not_on_roster".into(),
                    detail: "d".into()
                },
                None
            ))
        );
        assert_eq!(parse("{"), None);
        assert_eq!(parse(r#"{"type":"offer","from":"nope"}"#), None);
    }

    fn link() -> Link {
        Link::new(
            Options {
                urls: vec!["ws://a".into()],
                token: "t".into(),
                peers: vec![did(2), did(3)],
                reconnect_within: Duration::from_secs(1),
                silence_timeout: SILENCE_TIMEOUT,
            },
            0,
            0xabcd,
        )
    }

    #[test]
    fn a_reconnect_asks_every_peer_to_resync_and_resends_the_log_in_order() {
        let mut l = link();
        assert_eq!(
            l.on_connect().len(),
            2,
            "first connect: two resync requests"
        );
        let a = l.stamp(&Signal {
            kind: "offer".into(),
            peer: did(2),
            payload: json!({"sdp": "1"}),
        });
        let b = l.stamp(&Signal {
            kind: "offer".into(),
            peer: did(3),
            payload: json!({"sdp": "2"}),
        });
        let again = l.on_connect();
        assert_eq!(again.len(), 4);
        assert!(again[..2].iter().all(|w| w.contains("\"resync\"")));
        assert_eq!(&again[2..], &[a.clone(), b]);
        assert_eq!(l.resend_to(&did(2)), vec![a]);
        // Ids are unique and name this process's epoch.
        let ids: HashSet<String> = again
            .iter()
            .map(|w| {
                serde_json::from_str::<Value>(w).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 4);
        assert!(ids.iter().all(|i| i.starts_with("0000abcd-")));
    }

    #[test]
    fn duplicates_are_dropped_per_sender_and_memory_stays_bounded() {
        let mut l = link();
        assert!(l.first_time(&did(2), "x-1"));
        assert!(!l.first_time(&did(2), "x-1"));
        assert!(l.first_time(&did(3), "x-1"), "ids are per sender");
        for n in 0..(SEEN_LIMIT + 10) {
            l.first_time(&did(2), &format!("y-{n}"));
        }
        assert!(l.seen[&did(2)].0.len() <= SEEN_LIMIT);
        for n in 0..(LOG_LIMIT + 10) {
            l.stamp(&Signal {
                kind: "candidate".into(),
                peer: did(2),
                payload: json!({"n": n}),
            });
        }
        assert_eq!(l.log.len(), LOG_LIMIT);
    }

    #[test]
    fn a_message_the_store_refused_is_retried_with_doubling_pauses_a_bounded_number_of_times() {
        let mut l = link();
        let wire = l.stamp(&Signal {
            kind: "offer".into(),
            peer: did(2),
            payload: json!({}),
        });
        let id = format!("{:08x}-1", 0xabcd);
        let t0 = tokio::time::Instant::now();
        assert!(
            !l.retry_later("0000abcd-99", t0),
            "not ours: the refusal stands"
        );
        assert_eq!(l.next_retry(), None);
        let mut at = t0;
        for attempt in 0..RETRIES.0 {
            assert!(l.retry_later(&id, at), "attempt {attempt}");
            let due = l.next_retry().unwrap();
            assert_eq!(due - at, RETRIES.1 * 2u32.pow(attempt));
            assert!(l.due_retries(due - Duration::from_millis(1)).is_empty());
            assert_eq!(l.due_retries(due), vec![wire.clone()]);
            assert_eq!(l.next_retry(), None);
            at = due;
        }
        assert!(
            !l.retry_later(&id, at),
            "out of attempts: the refusal stands"
        );
    }
}
