//! Windows over the main screen and their keys: help, the tab switcher, the search, the
//! question a big paste asks, and the prompt of a ringing call. A window handles its own keys and
//! tells the app, as a [`Reaction`], what it wants done beyond that (close, switch, send).

use super::calls::Invitation;
use crate::tui::action::KeyAction;
use crate::tui::line_editor::LineEditor;

/// Pastes of more lines than this ask before they are sent.
pub const PASTE_CONFIRM_LINES: usize = 5;

/// A window over the main screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help {
        scroll: u16,
        topic: Option<String>,
    },
    Switcher {
        query: LineEditor,
        selected: usize,
    },
    PasteConfirm {
        text: String,
    },
    /// Not modal: only Esc ("later") is its own, other keys are the screen's.
    Invitation(Invitation),
    /// Search in the tab's messages; `selected` is a row of the results, newest first.
    Search {
        query: LineEditor,
        selected: usize,
    },
}

/// What a key in a window asks of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Handled; the window stays.
    Stay,
    Close,
    /// Switcher: go to the `n`th of the tabs that match the query.
    Choose(usize),
    /// Paste question: send the paste as one message.
    Send(String),
    /// Paste question: put it on the input line to edit first.
    EditFirst(String),
    /// Search: show the `n`th result in the tab.
    ShowResult(usize),
    /// Search: fetch an older page of the tab's history to search it too.
    OlderHistory,
}

impl Overlay {
    pub fn help() -> Overlay {
        Overlay::Help {
            scroll: 0,
            topic: None,
        }
    }

    /// The switcher with the `selected`th tab of the list chosen.
    pub fn switcher(selected: usize) -> Overlay {
        Overlay::Switcher {
            query: LineEditor::default(),
            selected,
        }
    }

    /// The search, with `text` typed.
    pub fn search(text: &str) -> Overlay {
        Overlay::Search {
            query: LineEditor::with_text(text),
            selected: 0,
        }
    }

    /// The query typed, if this is the search.
    pub fn search_query(&self) -> Option<&str> {
        match self {
            Overlay::Search { query, .. } => Some(query.text()),
            _ => None,
        }
    }

    /// A pasted text; more than [`PASTE_CONFIRM_LINES`] lines ask first.
    pub fn paste(text: String) -> Result<Overlay, String> {
        if text.lines().count() > PASTE_CONFIRM_LINES {
            Ok(Overlay::PasteConfirm { text })
        } else {
            Err(text)
        }
    }

    /// The query typed, if this is the switcher.
    pub fn switcher_query(&self) -> Option<&str> {
        match self {
            Overlay::Switcher { query, .. } => Some(query.text()),
            _ => None,
        }
    }

    /// A bound key while this window is up.
    pub fn on_key(&mut self, key: KeyAction) -> Reaction {
        match self {
            Overlay::Help { scroll, .. } => {
                match key {
                    KeyAction::Up => *scroll = scroll.saturating_sub(1),
                    KeyAction::Down => *scroll += 1,
                    KeyAction::PageUp => *scroll = scroll.saturating_sub(10),
                    KeyAction::PageDown => *scroll += 10,
                    _ => return Reaction::Close,
                }
                Reaction::Stay
            }
            Overlay::Switcher { query, selected } => {
                match key {
                    KeyAction::Up | KeyAction::PrevTab => *selected = selected.saturating_sub(1),
                    KeyAction::Down | KeyAction::NextTab => *selected += 1,
                    KeyAction::Submit => return Reaction::Choose(*selected),
                    KeyAction::Cancel | KeyAction::Switcher => return Reaction::Close,
                    other => {
                        query.apply(other);
                        *selected = 0;
                    }
                }
                Reaction::Stay
            }
            Overlay::Search { query, selected } => {
                match key {
                    KeyAction::Up => *selected += 1,
                    KeyAction::Down => *selected = selected.saturating_sub(1),
                    KeyAction::Submit => return Reaction::ShowResult(*selected),
                    KeyAction::PageUp => return Reaction::OlderHistory,
                    KeyAction::Cancel | KeyAction::Search => return Reaction::Close,
                    other => {
                        query.apply(other);
                        *selected = 0;
                    }
                }
                Reaction::Stay
            }
            Overlay::PasteConfirm { text } => match key {
                KeyAction::Submit => Reaction::Send(std::mem::take(text)),
                _ => Reaction::Close,
            },
            Overlay::Invitation(_) if key == KeyAction::Cancel => Reaction::Close,
            Overlay::Invitation(_) => Reaction::Stay,
        }
    }

    /// A character typed while this window is up; `None` when it is not the window's
    /// (the call prompt leaves letters to the line being typed).
    pub fn on_insert(&mut self, c: char) -> Option<Reaction> {
        match self {
            Overlay::Switcher { query, selected } | Overlay::Search { query, selected } => {
                query.insert_char(c);
                *selected = 0;
                Some(Reaction::Stay)
            }
            Overlay::PasteConfirm { text } if c == 'e' => {
                Some(Reaction::EditFirst(std::mem::take(text)))
            }
            Overlay::PasteConfirm { .. } => Some(Reaction::Stay),
            Overlay::Help { .. } => Some(Reaction::Close),
            Overlay::Invitation(_) => None,
        }
    }
}
