//! The login form: four fields checked as they are typed (docs/protocol.md's id rules), their
//! keys, and the server's answer shown under them without leaving the form. Logging in
//! with what it holds is the app's (`App::start_login`).

use crate::protocol::codes::login;
use crate::protocol::limits::{validate_app_id, validate_user_id};

use super::action::KeyAction;
use super::line_editor::LineEditor;

/// Field labels, in form order.
pub const FIELDS: [&str; 4] = ["App id", "User id", "Token", "Server"];
pub const APP_ID: usize = 0;
pub const USER: usize = 1;
pub const TOKEN: usize = 2;
pub const SERVER: usize = 3;

/// Where the form stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStatus {
    Editing,
    /// Waiting for the server's answer.
    Busy,
    /// The server (or the connection) said no; the words as shown.
    Refused(String),
}

/// What a key on the form asks of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKey {
    /// Moved between fields or edited one.
    Handled,
    /// Enter: log in with what the form holds.
    Submit,
    /// Esc while a session goes on: back to the chat.
    Leave,
}

/// The login form's state.
#[derive(Debug, Clone)]
pub struct LoginForm {
    pub fields: [LineEditor; 4],
    pub focus: usize,
    pub status: LoginStatus,
}

impl LoginForm {
    pub fn new(app_id: &str, user: &str, token: &str, server: &str) -> LoginForm {
        let fields = [
            LineEditor::with_text(app_id),
            LineEditor::with_text(user),
            LineEditor::with_text(token),
            LineEditor::with_text(server),
        ];
        // Start on the first field that still needs typing.
        let focus = fields
            .iter()
            .position(LineEditor::is_empty)
            .unwrap_or(USER)
            .min(USER);
        LoginForm {
            fields,
            focus,
            status: LoginStatus::Editing,
        }
    }

    pub fn value(&self, field: usize) -> &str {
        self.fields[field].text()
    }

    /// What is wrong with a field as typed so far, if anything.
    pub fn problem(&self, field: usize) -> Option<String> {
        let value = self.value(field);
        match field {
            APP_ID => validate_app_id(value).err().map(|e| e.to_string()),
            USER => validate_user_id(value).err().map(|e| e.to_string()),
            SERVER
                if value
                    .split(',')
                    .map(str::trim)
                    .any(|server| server.is_empty() || server.contains(char::is_whitespace)) =>
            {
                Some(
                    "a server: ws://host:port/rtm/v1, or just host:port (several: comma-separated)"
                        .into(),
                )
            }
            _ => None,
        }
    }

    pub fn is_valid(&self) -> bool {
        (0..FIELDS.len()).all(|f| self.problem(f).is_none())
    }

    pub fn focused(&mut self) -> &mut LineEditor {
        &mut self.fields[self.focus]
    }

    pub fn next_field(&mut self) {
        self.focus = (self.focus + 1) % FIELDS.len();
    }

    pub fn prev_field(&mut self) {
        self.focus = (self.focus + FIELDS.len() - 1) % FIELDS.len();
    }

    /// A bound key on the form; `in_session` when the form was opened with `/login`
    /// while logged in, so Esc goes back rather than clearing the field.
    pub fn on_key(&mut self, key: KeyAction, in_session: bool) -> FormKey {
        match key {
            KeyAction::Submit => return FormKey::Submit,
            KeyAction::Complete | KeyAction::Down => self.next_field(),
            KeyAction::Up | KeyAction::PrevTab => self.prev_field(),
            KeyAction::Cancel if in_session => {
                self.status = LoginStatus::Editing;
                return FormKey::Leave;
            }
            KeyAction::Cancel => self.focused().set(""),
            other => self.focused().apply(other),
        }
        FormKey::Handled
    }
}

/// The server as typed, completed to a WebSocket URL (see [`crate::client::server_url`]);
/// a comma-separated list of servers (tried in turn) is completed one by one.
pub fn server_url(typed: &str) -> String {
    typed
        .split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .map(crate::client::server_url)
        .collect::<Vec<_>>()
        .join(",")
}

/// The servers of a [`server_url`] list, in order.
pub fn servers(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|server| !server.is_empty())
        .map(str::to_string)
        .collect()
}

/// A connection that could not be made, in words that name the server as typed (the
/// client library's error names the socket's: "IO error: Connection refused (os error
/// 111)", and a generic example URL); `None` when there is nothing better to say. Only
/// for one server: with several, the library's list says which failed how.
pub fn connect_words(error: &str, server: &str) -> Option<String> {
    if server.contains(',') {
        return None;
    }
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    let (host, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let scheme = if server.starts_with("wss://") {
        "wss"
    } else {
        "ws"
    };
    if error.contains("Connection refused") {
        return Some(format!(
            "nothing listens on {host}: is the server running, and on this port? \
             (connection refused)"
        ));
    }
    if error.contains("404") {
        let wanted = crate::protocol::WS_PATH;
        return Some(format!(
            "{host} answers, but not at {path}: an RTM server listens at {wanted} \
             (try {scheme}://{host}{wanted})"
        ));
    }
    if error.contains("failed to lookup address") || error.contains("Name or service not known") {
        return Some(format!("no such host: {host}"));
    }
    None
}

/// What to do about a refused login, shown under the server's answer. The token check is
/// pure parsing from `crate::token` (no I/O), the one place the TUI reads tokens.
pub fn login_hint(code: Option<u32>, token: &str) -> Option<&'static str> {
    match code? {
        login::INVALID_TOKEN if crate::token::looks_like_rtc_token(token) => {
            Some("this looks like an RTC token, not an RTM token: mint one for RTM (rtm-tui token --help)")
        }
        login::INVALID_TOKEN if token.trim().is_empty() => {
            Some("this app has a certificate: it needs a token (rtm-tui token --help)")
        }
        login::INVALID_TOKEN => {
            Some("the token was not made for this app id, user id and certificate")
        }
        login::TOKEN_EXPIRED => Some("the token has expired: mint a fresh one"),
        login::INVALID_APP_ID => Some("the server does not know this app id"),
        login::TOO_OFTEN => Some("wait a moment and try again"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Agora's published 006 RTC test token (privileges for joining a channel, not RTM login).
    const RTC_TOKEN: &str = "006970CA35de60c44645bbae8a215061b33IACV0fZUBw+72cVoL9eyGGh3Q6Poi8bgjwVLnyKSJyOXR7dIfRBXoFHlEAABAAAAR/QQAAEAAQCvKDdW";

    #[test]
    fn refused_logins_say_what_to_do() {
        assert!(login_hint(Some(5), RTC_TOKEN)
            .unwrap()
            .contains("RTC token, not an RTM token"));
        assert!(login_hint(Some(5), "").unwrap().contains("needs a token"));
        assert!(login_hint(Some(5), "007garbage")
            .unwrap()
            .contains("not made for this app id"));
        assert!(login_hint(Some(6), "x").unwrap().contains("expired"));
        assert_eq!(login_hint(Some(2), "x"), None);
        assert_eq!(login_hint(None, RTC_TOKEN), None);
    }

    #[test]
    fn connection_errors_name_the_server_typed() {
        let refused = "cannot connect: IO error: Connection refused (os error 111)";
        let words = connect_words(refused, "ws://127.0.0.1:7431/rtm/v1").unwrap();
        assert!(
            words.contains("nothing listens on 127.0.0.1:7431"),
            "{words}"
        );
        let not_found = "cannot connect: HTTP error: 404 Not Found: nothing answers at this \
                         path; an RTM server listens at /rtm/v1 (e.g. ws://127.0.0.1:7420/rtm/v1)";
        let words = connect_words(not_found, "ws://127.0.0.1:7431/chat").unwrap();
        assert!(!words.contains("7420"), "{words}");
        assert!(words.contains("try ws://127.0.0.1:7431/rtm/v1"), "{words}");
        assert_eq!(
            connect_words(refused, "ws://a:1/rtm/v1,ws://b:2/rtm/v1"),
            None
        );
    }

    #[test]
    fn a_list_of_servers_is_completed_one_by_one() {
        assert_eq!(
            server_url("10.0.0.1:7420,ws://10.0.0.2:7420"),
            "ws://10.0.0.1:7420/rtm/v1,ws://10.0.0.2:7420/rtm/v1"
        );
        assert_eq!(servers(&server_url("a:1")), ["ws://a:1/rtm/v1"]);
        let form = |server: &str| LoginForm::new("demo", "alice", "", server);
        assert!(form("a:1,b:2").is_valid());
        assert!(form("a:1, b:2").is_valid());
        for bad in ["", " ", "a:1,", ",a:1", "a b:1", "a:1,,b:2"] {
            assert!(form(bad).problem(SERVER).is_some(), "{bad:?}");
        }
    }
}
