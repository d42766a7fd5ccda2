//! The signaling WebSocket (`GET /v1/sessions/{id}/signal`): a thin shell
//! around [`crate::relay::Hub`].
//!
//! Admission to the socket needs a valid access token whose DID is on the
//! session's frozen roster. Each text frame is one JSON message, checked
//! against `schemas/signal-client.schema.json`; the broker sets `from` to
//! the authenticated DID (a client-supplied `from` that differs is refused
//! as spoofing), relays only to other roster members, and answers every
//! refusal with an `error` frame on the sender's socket. Frames above the
//! size limit close the socket (1009); silence beyond the idle timeout
//! closes it; a newer connection for the same DID replaces this one.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, ProtocolError};
use identity::Did;
use serde_json::{json, Value};

use crate::api;
use crate::problem::Problem;
use crate::relay::Outbound;
use crate::state::State;

/// A token bucket: `rate` per second, up to `burst` saved.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        RateLimit {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes a token if one is available at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn error_frame(code: &str, detail: &str, id: Option<&Value>) -> String {
    let mut v = json!({"type": "error", "code": code, "detail": detail});
    if let Some(id) = id.filter(|i| i.is_string()) {
        v["id"] = id.clone();
    }
    v.to_string()
}

/// What to do with one client frame (pure).
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Relay this stamped message to `to`; `id` is the sender's message id, if any, for
    /// the error frame should the relay fail (so the sender knows what to send again).
    Relay {
        to: Did,
        msg: String,
        id: Option<Value>,
    },
    /// Answer the sender with this error frame.
    Refuse { code: &'static str, frame: String },
}

fn judge(text: &str, me: &Did, roster: &[Did], st: &State) -> Verdict {
    let refuse = |code: &'static str, detail: &str, id: Option<&Value>| Verdict::Refuse {
        code,
        frame: error_frame(code, detail, id),
    };
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return refuse(
                "malformed_json",
                &format!("the message is not valid JSON: {e}"),
                None,
            )
        }
    };
    let id = v.get("id");
    if let Err(p) = st.schemas.check_signal(&v) {
        return refuse("message_invalid", p.detail(), id);
    }
    if let Some(from) = v.get("from").and_then(Value::as_str) {
        if from != me.as_str() {
            return refuse(
                "spoofed_from",
                &format!("`from` must be your own DID ({me}) or absent; the broker sets it"),
                id,
            );
        }
    }
    // Matched as a string against the roster: decoding a did:key (an
    // Ed25519 point check) per message was 29% of the relay's CPU.
    let to = v
        .get("to")
        .and_then(Value::as_str)
        .and_then(|s| roster.iter().find(|d| d.as_str() == s))
        .cloned();
    let Some(to) = to else {
        return refuse(
            "not_on_roster",
            "the recipient is not on this session's roster",
            id,
        );
    };
    if to == *me {
        return refuse(
            "message_to_self",
            "a message to yourself is not relayed",
            id,
        );
    }
    let mut msg = json!({
        "type": v["type"],
        "from": me,
        "to": to,
        "payload": v.get("payload").cloned().unwrap_or_else(|| json!({})),
    });
    // The sender's message id travels on, so recipients can drop the
    // duplicates a resend after a reconnect produces.
    let id = id.filter(|i| i.is_string()).cloned();
    if let Some(id) = &id {
        msg["id"] = id.clone();
    }
    Verdict::Relay {
        to,
        msg: msg.to_string(),
        id,
    }
}

/// Opens a signaling socket for a roster member.
pub(crate) async fn signal(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    let me = match api::authenticate(&req, &st) {
        Ok(d) => d,
        Err(p) => {
            st.metrics.auth_failure(p.code());
            return Err(p);
        }
    };
    let rec = st.load(&id).await?;
    if let Err(p) = api::require_roster_member(&rec, &me, &st) {
        st.metrics.auth_failure(p.code());
        return Err(p);
    }
    let roster: Vec<Did> = rec.members.iter().map(|m| m.did.clone()).collect();
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        Problem::bad_request(
            "websocket_required",
            format!("this endpoint speaks WebSocket only: {e}"),
        )
    })?;
    let stream = stream.max_frame_size(st.signal.max_frame);
    let reg = st.attach(&rec.id, &me).await?;
    st.metrics.websocket(1);
    tracing::info!(session = %rec.id, did = %me, "signaling connected");
    let state = st.into_inner();
    actix_web::rt::spawn(run(state, rec.id, me, roster, session, stream, reg));
    Ok(response)
}

async fn run(
    st: Arc<State>,
    session_id: String,
    me: Did,
    roster: Vec<Did>,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    mut reg: crate::relay::Registration,
) {
    let limits = st.signal;
    let mut bucket = RateLimit::new(limits.rate, limits.burst, Instant::now());
    let mut heartbeat = tokio::time::interval(limits.ping_every);
    heartbeat.tick().await;
    let mut last_seen = Instant::now();
    let close = loop {
        tokio::select! {
            incoming = stream.recv() => match incoming {
                None => break None,
                Some(Err(ProtocolError::Overflow)) => break Some(CloseReason {
                    code: CloseCode::Size,
                    description: Some(format!("frame larger than {} bytes", limits.max_frame)),
                }),
                Some(Err(e)) => break Some(CloseReason {
                    code: CloseCode::Protocol,
                    description: Some(e.to_string()),
                }),
                Some(Ok(msg)) => {
                    last_seen = Instant::now();
                    match msg {
                        Message::Text(text) => {
                            let reply = if bucket.take(Instant::now()) {
                                handle_text(&st, &session_id, &me, &roster, &text).await
                            } else {
                                st.metrics.relay_refused("rate_limited");
                                Some(error_frame("rate_limited", &format!(
                                    "more than {} messages per second; slow down", limits.rate), None))
                            };
                            if let Some(frame) = reply {
                                if !bounded(limits.write_timeout, session.text(frame)).await {
                                    break None;
                                }
                            }
                        }
                        Message::Binary(_) => {
                            let f = error_frame("binary_not_supported", "send JSON text frames", None);
                            if !bounded(limits.write_timeout, session.text(f)).await {
                                break None;
                            }
                        }
                        Message::Ping(b) if !bounded(limits.write_timeout, session.pong(&b)).await => {
                            break None
                        }
                        Message::Close(_) => break None,
                        _ => {}
                    }
                }
            },
            out = reg.rx.recv() => match out {
                Some(Outbound::Text(t)) => {
                    if !bounded(limits.write_timeout, session.text(t.to_string())).await {
                        break None;
                    }
                }
                Some(Outbound::Restart) => break Some(CloseReason {
                    code: CloseCode::Restart,
                    description: Some("the broker may have lost messages for you; reconnect and resync".into()),
                }),
                Some(Outbound::Replaced) | None => break Some(CloseReason {
                    code: CloseCode::Policy,
                    description: Some("replaced by a newer connection for the same DID".into()),
                }),
            },
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > limits.idle_timeout {
                    break Some(CloseReason {
                        code: CloseCode::Away,
                        description: Some("no traffic or pong within the idle timeout".into()),
                    });
                }
                if !bounded(limits.write_timeout, session.ping(b"")).await {
                    break None;
                }
            }
        }
    };
    st.detach(&session_id, &me, reg.id).await;
    st.metrics.websocket(-1);
    tracing::info!(session = %session_id, did = %me, "signaling disconnected");
    // The close frame queues behind whatever the client did not read: bounded as well.
    let _ = tokio::time::timeout(limits.write_timeout, session.close(close)).await;
}

/// Runs one write to the client within `within`; false if it failed or timed out. A client
/// that sends but never reads fills its socket and actix-ws's queue, and an unbounded write
/// would then park the connection's loop — heartbeat, idle timeout and relay queue included —
/// for good.
async fn bounded<E>(within: Duration, write: impl Future<Output = Result<(), E>>) -> bool {
    matches!(tokio::time::timeout(within, write).await, Ok(Ok(())))
}

/// Handles one text frame; returns an error frame for the sender, if any.
async fn handle_text(
    st: &State,
    session_id: &str,
    me: &Did,
    roster: &[Did],
    text: &str,
) -> Option<String> {
    match judge(text, me, roster, st) {
        Verdict::Refuse { code, frame } => {
            st.metrics.relay_refused(code);
            Some(frame)
        }
        Verdict::Relay { to, msg, id } => match st.relay(session_id, &to, msg).await {
            Ok(()) => {
                st.metrics.relayed();
                None
            }
            Err(e) => {
                st.metrics.relay_refused(e.code());
                Some(error_frame(e.code(), e.detail(), id.as_ref()))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_limit_allows_a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut b = RateLimit::new(10.0, 3.0, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(100)));
    }
}
