//! The per-connection task: WebSocket frames in → requests for `handle`; outbox → frames.
//!
//! The reader loop (this task) splits frames into objects, decodes them and calls
//! `session::handle`; the writer task drains the outbox in batches (one frame, one flush
//! per batch) and sends the server's Pings. Nothing here decides what a request means.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use crate::protocol::limits::MAX_OBJECT_BYTES;
use crate::protocol::{
    decode_request, split_frame, DecodeError, CLOSE_POLICY, CLOSE_TOO_BIG, WS_PATH,
};

use super::hub::Hub;
use super::outbox::{Closing, ConnHandle};
use super::session::{handle, Session};

/// Most bytes the writer puts into one frame.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// How long a closing connection may take to send its last frames.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Close code when the server shuts down.
const CLOSE_GOING_AWAY: u16 = 1001;

type Socket = WebSocketStream<TcpStream>;

/// Serves one TCP connection until it ends.
pub async fn serve(tcp: TcpStream, hub: Hub, mut shutdown: watch::Receiver<bool>) {
    let peer = tcp.peer_addr().ok();
    let _ = tcp.set_nodelay(true);
    let config = hub.config();
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_frame_bytes))
        .max_frame_size(Some(config.max_frame_bytes));
    // The callback's error type is fixed by tungstenite.
    #[allow(clippy::result_large_err)]
    let check_path = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if request.uri().path() == WS_PATH {
            Ok(response)
        } else {
            let mut refusal = ErrorResponse::new(Some(format!("use {WS_PATH}")));
            *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
            Err(refusal)
        }
    };
    let socket =
        match tokio_tungstenite::accept_hdr_async_with_config(tcp, check_path, Some(ws_config))
            .await
        {
            Ok(socket) => socket,
            Err(error) => {
                tracing::debug!(?peer, %error, "WebSocket handshake failed");
                return;
            }
        };
    let conn = hub.new_conn();
    tracing::debug!(?peer, conn = conn.id(), "connected");
    let (sink, stream) = socket.split();
    let mut writer = tokio::spawn(write_loop(sink, conn.clone(), config.ping_interval));
    let mut session = Session::new(conn.clone(), &hub);
    read_loop(stream, &mut session, &hub, &mut shutdown).await;
    if let Some(me) = session.identity.take() {
        hub.disconnected(&me.app, &me.user, &conn);
    }
    if conn.closing_state() == Closing::Open {
        conn.close(1000, "");
    }
    // Let the writer send what is queued and the close frame, unless the socket is
    // being dropped (slow consumer, dead peer) or the peer does not read it in time.
    let finished = conn.closing_state() != Closing::Abort
        && tokio::time::timeout(CLOSE_GRACE, &mut writer).await.is_ok();
    if !finished {
        writer.abort();
    }
    tracing::debug!(?peer, conn = conn.id(), "disconnected");
}

async fn read_loop(
    mut stream: futures_util::stream::SplitStream<Socket>,
    session: &mut Session,
    hub: &Hub,
    shutdown: &mut watch::Receiver<bool>,
) {
    let conn = session.conn.clone();
    let mut closing = conn.closing();
    let idle = hub.config().idle_timeout;
    loop {
        let next = tokio::select! {
            _ = closing.changed() => return,
            _ = shutdown.changed() => {
                conn.close(CLOSE_GOING_AWAY, "server shutting down");
                return;
            }
            next = tokio::time::timeout(idle, stream.next()) => next,
        };
        match next {
            Err(_) => {
                tracing::info!(conn = conn.id(), "no sign of life: connection dead");
                conn.abort();
                return;
            }
            Ok(None) => return,
            Ok(Some(Err(WsError::Capacity(error)))) => {
                tracing::info!(conn = conn.id(), %error, "frame too large");
                conn.close(CLOSE_TOO_BIG, "frame too large");
                return;
            }
            Ok(Some(Err(error))) => {
                tracing::debug!(conn = conn.id(), %error, "read failed");
                return;
            }
            Ok(Some(Ok(message))) => match message {
                WsMessage::Text(text) => {
                    if !handle_frame(text.as_str(), session, hub).await {
                        return;
                    }
                }
                WsMessage::Binary(_) => {
                    if !count_error(session, hub, "binary frames are not supported".into()) {
                        return;
                    }
                }
                WsMessage::Close(_) => return,
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
            },
        }
    }
}

/// Handles every object of a text frame; false when the connection must close.
async fn handle_frame(frame: &str, session: &mut Session, hub: &Hub) -> bool {
    for object in split_frame(frame) {
        if session.conn.is_closed() {
            return false;
        }
        match decode_request(object) {
            Ok(request) => handle(request, session, hub).await,
            Err(DecodeError::TooLarge(bytes)) => {
                tracing::info!(conn = session.conn.id(), bytes, "object too large");
                session.conn.close(
                    CLOSE_TOO_BIG,
                    &format!("object larger than {MAX_OBJECT_BYTES} bytes"),
                );
                return false;
            }
            Err(error) => {
                if let Some(reply) = error.reply() {
                    session.conn.send_reply(&reply);
                } else if !count_error(session, hub, error.to_string()) {
                    return false;
                }
            }
        }
    }
    true
}

/// Answers unusable input with the `error` event; false once the connection has had too many.
fn count_error(session: &mut Session, hub: &Hub, reason: String) -> bool {
    session.conn.send_event(&crate::protocol::Event::Error {
        code: crate::protocol::codes::login::UNKNOWN,
        reason,
    });
    session.errors += 1;
    if session.errors >= hub.config().max_errors {
        tracing::info!(conn = session.conn.id(), "too many errors");
        session.conn.close(CLOSE_POLICY, "too many errors");
        return false;
    }
    true
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<Socket, WsMessage>,
    conn: ConnHandle,
    ping_interval: Duration,
) {
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    loop {
        tokio::select! {
            () = conn.wait_for_work() => {}
            _ = ping.tick() => {
                if sink.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                    conn.abort();
                    return;
                }
                continue;
            }
        }
        if conn.closing_state() == Closing::Abort {
            return;
        }
        loop {
            let drained = conn.drain(MAX_BATCH_BYTES);
            let wrote = !drained.batch.is_empty();
            if wrote && sink.send(WsMessage::text(drained.batch)).await.is_err() {
                conn.abort();
                return;
            }
            if let Some((code, reason)) = drained.close {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = sink.send(WsMessage::Close(Some(frame))).await;
                let _ = sink.close().await;
                return;
            }
            if !wrote {
                break;
            }
        }
    }
}
