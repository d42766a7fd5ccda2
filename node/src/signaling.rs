//! The broker's signaling WebSocket as a pair of bounded channels.
//!
//! A background task owns the socket: it writes what the node queues
//! (`{"type","to","payload"}`) and hands up what the broker relays
//! (`{"type","from","to","payload"}`, `from` stamped by the broker) and the
//! broker's `error` frames. It answers pings, and ends — closing the
//! inbound channel — when the socket closes, so a node waiting on signaling
//! learns that the broker went away instead of hanging.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use identity::Did;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

/// Signaling messages queued per direction.
const QUEUE: usize = 256;
/// How long opening the socket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

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
    },
}

/// The node's end of the signaling channel.
#[derive(Debug)]
pub struct Signaling {
    /// Queue messages for peers.
    pub tx: mpsc::Sender<Signal>,
    /// Relayed messages and refusals; closed when the socket is gone.
    pub rx: mpsc::Receiver<Incoming>,
}

/// Opens the session's signaling socket with an access token.
pub async fn connect(url: &str, token: &str) -> Result<Signaling, SignalingError> {
    let err = |reason: String| SignalingError::Connect {
        url: url.to_owned(),
        reason,
    };
    let mut req = url.into_client_request().map_err(|e| err(e.to_string()))?;
    let auth = format!("Bearer {token}")
        .parse()
        .map_err(|_| err("the token is not a valid header value".into()))?;
    req.headers_mut().insert("authorization", auth);
    let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| err(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                let body = resp
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok());
                let detail = body
                    .as_ref()
                    .and_then(|b| b["detail"].as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("HTTP {}", resp.status()));
                err(detail)
            }
            other => err(other.to_string()),
        })?;
    let (out_tx, mut out_rx) = mpsc::channel::<Signal>(QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(QUEUE);
    tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        loop {
            tokio::select! {
                out = out_rx.recv() => {
                    let Some(s) = out else { break };
                    let msg = json!({"type": s.kind, "to": s.peer, "payload": s.payload});
                    if sink.send(Message::text(msg.to_string())).await.is_err() {
                        break;
                    }
                }
                incoming = stream.next() => {
                    let text = match incoming {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Ping(p))) => {
                            if sink.send(Message::Pong(p)).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => continue,
                    };
                    let Some(event) = parse(&text) else { continue };
                    if in_tx.send(event).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });
    Ok(Signaling {
        tx: out_tx,
        rx: in_rx,
    })
}

/// Parses one broker frame; frames that are not the API are dropped.
fn parse(text: &str) -> Option<Incoming> {
    let v: Value = serde_json::from_str(text).ok()?;
    let kind = v.get("type")?.as_str()?;
    if kind == "error" {
        return Some(Incoming::Refused {
            code: v["code"].as_str().unwrap_or("unknown").to_owned(),
            detail: v["detail"].as_str().unwrap_or_default().to_owned(),
        });
    }
    let from = Did::parse(v.get("from")?.as_str()?).ok()?;
    Some(Incoming::Signal(Signal {
        kind: kind.to_owned(),
        peer: from,
        payload: v.get("payload").cloned().unwrap_or_else(|| json!({})),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_frames_parse_and_junk_is_dropped() {
        let did = identity::Keypair::from_seed(&[1; 32]).did();
        let f =
            json!({"type": "offer", "from": did, "to": did, "payload": {"sdp": "x"}}).to_string();
        assert_eq!(
            parse(&f),
            Some(Incoming::Signal(Signal {
                kind: "offer".into(),
                peer: did,
                payload: json!({"sdp": "x"})
            }))
        );
        let e = json!({"type": "error", "code": "not_on_roster", "detail": "d"}).to_string();
        assert_eq!(
            parse(&e),
            Some(Incoming::Refused {
                code: "not_on_roster".into(),
                detail: "d".into()
            })
        );
        assert_eq!(parse("{"), None);
        assert_eq!(parse(r#"{"type":"offer","from":"nope"}"#), None);
    }
}
