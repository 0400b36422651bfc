//! The input line under the messages: the text being typed ([`LineEditor`]), Tab
//! completion in progress, and walking the tab's [`InputHistory`] with Up and Down. What
//! a line does once sent is the app's (`App::send_line`).

use crate::tui::action::KeyAction;
use crate::tui::input_history::InputHistory;
use crate::tui::line_editor::LineEditor;
use crate::tui::slash_command;

/// The line being typed, and the completion being cycled through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputLine {
    editor: LineEditor,
    /// Tab completion in progress: the choices and the one shown.
    completion: Option<(Vec<String>, usize)>,
}

impl InputLine {
    pub fn text(&self) -> &str {
        self.editor.text()
    }

    pub fn is_empty(&self) -> bool {
        self.editor.is_empty()
    }

    /// The line's (line, display column) of the cursor, for drawing it.
    pub fn cursor_position(&self) -> (usize, usize) {
        self.editor.cursor_position()
    }

    pub fn line_count(&self) -> usize {
        self.editor.line_count()
    }

    /// Replaces the text, cursor at the end.
    pub fn set(&mut self, text: impl Into<String>) {
        self.editor.set(text);
    }

    /// Takes the text out, leaving the line empty.
    pub fn take(&mut self) -> String {
        self.editor.take()
    }

    pub fn insert_char(&mut self, c: char) {
        self.editor.insert_char(c);
    }

    pub fn insert_str(&mut self, text: &str) {
        self.editor.insert_str(text);
    }

    /// An editing key (Backspace, Ctrl-W, ...).
    pub fn edit(&mut self, key: KeyAction) {
        self.editor.apply(key);
    }

    /// Any key but Tab ends a completion: the next Tab starts from what is typed.
    pub fn end_completion(&mut self) {
        self.completion = None;
    }

    /// Tab: completes the word at the end from `users` and `channels`; Tab again shows
    /// the next choice.
    pub fn complete(&mut self, users: &[String], channels: &[String]) {
        if let Some((choices, index)) = &mut self.completion {
            *index = (*index + 1) % choices.len();
            self.editor.set(choices[*index].clone());
            return;
        }
        let choices = slash_command::complete(self.editor.text(), users, channels);
        if let Some(first) = choices.first() {
            self.editor.set(first.clone());
            if choices.len() > 1 {
                self.completion = Some((choices, 0));
            }
        }
    }

    /// Up: the older line of `history` (the line typed so far is kept for Down).
    pub fn older(&mut self, history: &mut InputHistory) {
        if let Some(line) = history.older(self.editor.text()) {
            self.editor.set(line);
        }
    }

    /// Down: the newer line of `history`, then the line that was being typed.
    pub fn newer(&mut self, history: &mut InputHistory) {
        if let Some(line) = history.newer() {
            self.editor.set(line);
        }
    }
}
