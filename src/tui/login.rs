//! The login form: four fields checked as they are typed (protocol.md's id rules), and the
//! server's answer shown under them without leaving the form.

use crate::protocol::limits::{validate_app_id, validate_user_id};

use super::input::LineEditor;

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
            SERVER if !(value.starts_with("ws://") || value.starts_with("wss://")) => {
                Some("server must be a ws:// or wss:// URL".into())
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
}
