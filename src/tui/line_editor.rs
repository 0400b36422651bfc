//! Text editing with readline keys: [`LineEditor`], multi-line text and a cursor, used by
//! the input line, the login fields and the switcher's query. Pure text manipulation;
//! which editor a key edits is the app's choice (`app/input_line.rs`, `login.rs`,
//! `app/overlay.rs`); the lines sent from a tab are `input_history.rs`.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::action::KeyAction;

/// Text being typed with a cursor (a byte index on a grapheme boundary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineEditor {
    text: String,
    cursor: usize,
}

impl LineEditor {
    pub fn with_text(text: impl Into<String>) -> Self {
        let text = text.into();
        let cursor = text.len();
        LineEditor { text, cursor }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Replaces the text, cursor at the end.
    pub fn set(&mut self, text: impl Into<String>) {
        *self = LineEditor::with_text(text);
    }

    /// Takes the text out, leaving the editor empty.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    pub fn insert_char(&mut self, c: char) {
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    pub fn insert_str(&mut self, s: &str) {
        self.text.insert_str(self.cursor, s);
        self.cursor += s.len();
    }

    fn prev_boundary(&self) -> usize {
        self.text[..self.cursor]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        self.text[self.cursor..]
            .graphemes(true)
            .next()
            .map_or(self.cursor, |g| self.cursor + g.len())
    }

    pub fn backspace(&mut self) {
        let start = self.prev_boundary();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    pub fn delete(&mut self) {
        let end = self.next_boundary();
        self.text.replace_range(self.cursor..end, "");
    }

    pub fn left(&mut self) {
        self.cursor = self.prev_boundary();
    }

    pub fn right(&mut self) {
        self.cursor = self.next_boundary();
    }

    /// Start of the current line (Ctrl-A).
    pub fn home(&mut self) {
        self.cursor = self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1);
    }

    /// End of the current line (Ctrl-E).
    pub fn end(&mut self) {
        self.cursor = self.line_end();
    }

    fn line_end(&self) -> usize {
        self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |i| self.cursor + i)
    }

    /// Start of the word before the cursor (Alt-B, Ctrl-W).
    fn word_start_before(&self) -> usize {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches(|c: char| !c.is_alphanumeric());
        trimmed
            .rfind(|c: char| !c.is_alphanumeric())
            .map_or(0, |i| {
                i + trimmed[i..].chars().next().map_or(1, char::len_utf8)
            })
    }

    pub fn word_back(&mut self) {
        self.cursor = self.word_start_before();
    }

    /// End of the next word (Alt-F).
    pub fn word_forward(&mut self) {
        let after = &self.text[self.cursor..];
        let skip = after.len()
            - after
                .trim_start_matches(|c: char| !c.is_alphanumeric())
                .len();
        let rest = &after[skip..];
        let word = rest
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len());
        self.cursor += skip + word;
    }

    /// Ctrl-K: delete to the end of the line.
    pub fn kill_to_end(&mut self) {
        let end = self.line_end();
        self.text.replace_range(self.cursor..end, "");
    }

    /// Ctrl-U: delete to the start of the line.
    pub fn kill_to_start(&mut self) {
        let end = self.cursor;
        self.home();
        self.text.replace_range(self.cursor..end, "");
    }

    /// Ctrl-W: delete the word before the cursor.
    pub fn kill_word_back(&mut self) {
        let start = self.word_start_before();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Lines of the text, and the cursor's (line, display column).
    pub fn cursor_position(&self) -> (usize, usize) {
        let before = &self.text[..self.cursor];
        let line = before.matches('\n').count();
        // Measured as drawn (see `display_safe`), so the cursor sits where the text ends.
        let col = before
            .rsplit('\n')
            .next()
            .map_or(0, |l| super::render::wrap::display_safe(l).width());
        (line, col)
    }

    pub fn line_count(&self) -> usize {
        self.text.matches('\n').count() + 1
    }

    /// Applies an editing key; other keys do nothing.
    pub fn apply(&mut self, key: KeyAction) {
        match key {
            KeyAction::Backspace => self.backspace(),
            KeyAction::Delete => self.delete(),
            KeyAction::Left => self.left(),
            KeyAction::Right => self.right(),
            KeyAction::Home => self.home(),
            KeyAction::End => self.end(),
            KeyAction::WordBack => self.word_back(),
            KeyAction::WordForward => self.word_forward(),
            KeyAction::KillToEnd => self.kill_to_end(),
            KeyAction::KillToStart => self.kill_to_start(),
            KeyAction::KillWordBack => self.kill_word_back(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readline_keys() {
        let mut e = LineEditor::with_text("hello brave world");
        e.word_back();
        assert_eq!(e.cursor(), 12);
        e.kill_word_back();
        assert_eq!(e.text(), "hello world");
        e.home();
        e.word_forward();
        assert_eq!(e.cursor(), 5);
        e.kill_to_end();
        assert_eq!(e.text(), "hello");
        e.kill_to_start();
        assert_eq!(e.text(), "");
    }

    #[test]
    fn graphemes_and_wide_characters() {
        let mut e = LineEditor::default();
        e.insert_str("a👍🏽漢");
        // As drawn: the skin tone shows by name, `👍(medium skin)`.
        assert_eq!(e.cursor_position(), (0, 1 + 2 + 13 + 2));
        e.backspace();
        e.backspace();
        assert_eq!(e.text(), "a");
    }

    #[test]
    fn multi_line() {
        let mut e = LineEditor::with_text("one\ntwo");
        assert_eq!(e.cursor_position(), (1, 3));
        e.home();
        assert_eq!(e.cursor(), 4);
        e.kill_to_end();
        assert_eq!(e.text(), "one\n");
        assert_eq!(e.line_count(), 2);
    }
}
