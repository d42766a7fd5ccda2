//! WebSocket helpers: a signaling client as tests drive it.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use identity::Keypair;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::Env;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn connect(env: &Env, id: &str, token: Option<&str>) -> Result<Ws, WsError> {
    let url = format!(
        "{}/v1/sessions/{id}/signal",
        env.url.replace("http://", "ws://")
    );
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .map(|(ws, _)| ws)
}

pub async fn member(env: &Env, id: &str, who: &Keypair) -> Ws {
    let t = env.token(who).await;
    connect(env, id, Some(&t)).await.unwrap()
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next text message as JSON (pings are answered by tungstenite).
pub async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no message within the timeout");
        match m.unwrap().unwrap() {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// The close frame the server sends next.
pub async fn closed(ws: &mut Ws) -> CloseCode {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("not closed within the timeout");
        match m {
            Some(Ok(Message::Close(Some(c)))) => return c.code,
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("error instead of close: {e}"),
        }
    }
}
