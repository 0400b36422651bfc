//! Wire protocol v1 (`docs/protocol.md`): typed requests, replies and events, validation
//! of ids and sizes, and the framing of batched JSON lines.
//!
//! Pure data and functions: no I/O and no tokio here, so that server, client, TUI and QA
//! kit share one definition and it can be tested without sockets. New ops go in
//! `request.rs`, the rules their parameters must keep (and the code that refuses them) in
//! `request_rules.rs`, their results in `reply.rs`, new events in `event.rs`. Ideas that
//! several ops share have one model each: `attribute_write.rs` (set, add or update,
//! delete, clear) and `invitation_answer.rs` (accept, refuse).

pub mod attribute_write;
pub mod codes;
pub mod event;
pub mod frame;
pub mod invitation_answer;
pub mod limits;
pub mod media;
pub mod message;
pub mod reply;
pub mod request;
pub mod request_rules;
pub mod state;

pub use attribute_write::{AttributeOwner, AttributeWrite};
pub use codes::{
    AttrError, ChannelMsgError, CountError, Family, HistoryError, InviteError, JoinError,
    LeaveError, LoginError, MembersError, PeerError, QueryError, RenewError, WireCode,
};
pub use event::{Event, EventName, KickReason};
pub use frame::{
    decode_request, decode_server_message, encode, push_to_batch, split_frame, DecodeError,
    ServerMessage,
};
pub use invitation_answer::InvitationAnswer;
pub use limits::ValidationError;
pub use media::{MediaFailure, MediaTicketResult, MediaUploaded};
pub use message::Message;
pub use reply::*;
pub use request::{Attributes, Op, OpName, Request};
pub use request_rules::Refusal;
pub use state::{ChangeReason, ConnectionState};

/// The protocol version a server reports in its login reply.
pub const PROTOCOL_VERSION: u32 = 1;
/// The WebSocket path of protocol v1.
pub const WS_PATH: &str = "/rtm/v1";
/// The default TCP port.
pub const DEFAULT_PORT: u16 = 7420;
/// The default server URL: the embedded or local reference server.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:7420/rtm/v1";
/// Read buffer of the client library's and the QA kit's WebSocket connections.
/// tungstenite's default (128 KiB) is zeroed before every socket read and stays resident
/// per connection: profiles showed that memset as the largest single cost of a peer
/// round trip. Larger frames still arrive whole (the buffer grows to fit). The server's
/// connections, far more numerous, read with 2 KiB (`server::connection`), and the load
/// generator's too.
pub const WS_READ_BUFFER_BYTES: usize = 8 * 1024;
/// WebSocket close code for an object over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code for a connection closed after too many errors.
pub const CLOSE_POLICY: u16 = 1008;

/// Milliseconds since the Unix epoch, as `server_ts` carries them.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
