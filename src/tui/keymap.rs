//! The key table: which key does what. One table drives the keys, the help overlay (F1)
//! and the footer, so they cannot disagree. The config's `[keys]` overrides add to it.
//! A new binding is a row in [`DEFAULT_BINDINGS`] (and a [`KeyAction`] if the action is new).

use std::fmt::Write as _;

use std::collections::HashMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::KeyAction;

/// A key with its modifiers, as the table stores it (Shift is folded into the character).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub const fn new(code: KeyCode, mods: KeyModifiers) -> Key {
        Key { code, mods }
    }

    /// The table's form of a terminal key event.
    pub fn from_event(event: &KeyEvent) -> Key {
        let mut mods = event.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        if matches!(event.code, KeyCode::BackTab) {
            mods |= KeyModifiers::SHIFT;
        }
        let code = match event.code {
            // Ctrl-letter arrives as lower or upper case depending on the terminal.
            KeyCode::Char(c) if !mods.is_empty() => KeyCode::Char(c.to_ascii_lowercase()),
            other => other,
        };
        Key { code, mods }
    }

    /// Parses `ctrl-g`, `alt-enter`, `f1`, `pageup`, `?`.
    pub fn parse(text: &str) -> Option<Key> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = text.trim();
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("ctrl-") {
                mods |= KeyModifiers::CONTROL;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("alt-") {
                mods |= KeyModifiers::ALT;
                rest = &rest[rest.len() - r.len()..];
            } else {
                break;
            }
        }
        let lower = rest.to_ascii_lowercase();
        let code = match lower.as_str() {
            "enter" | "return" => KeyCode::Enter,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "backspace" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            "esc" | "escape" => KeyCode::Esc,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" | "pgup" => KeyCode::PageUp,
            "pagedown" | "pgdn" => KeyCode::PageDown,
            "space" => KeyCode::Char(' '),
            f if f.starts_with('f') && f.len() > 1 => KeyCode::F(f[1..].parse().ok()?),
            _ => {
                let mut chars = rest.chars();
                let c = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                KeyCode::Char(if mods.is_empty() {
                    c
                } else {
                    c.to_ascii_lowercase()
                })
            }
        };
        Some(Key { code, mods })
    }

    /// How help and footer print the key: `Ctrl-K`, `Alt-Enter`, `PgUp`.
    pub fn label(&self) -> String {
        let mut out = String::new();
        if self.mods.contains(KeyModifiers::CONTROL) {
            out.push_str("Ctrl-");
        }
        if self.mods.contains(KeyModifiers::ALT) {
            out.push_str("Alt-");
        }
        match self.code {
            KeyCode::Char(' ') => out.push_str("Space"),
            KeyCode::Char(c) if self.mods.is_empty() => out.push(c),
            KeyCode::Char(c) => out.push(c.to_ascii_uppercase()),
            KeyCode::F(n) => {
                let _ = write!(out, "F{n}");
            }
            KeyCode::PageUp => out.push_str("PgUp"),
            KeyCode::PageDown => out.push_str("PgDn"),
            KeyCode::BackTab => out.push_str("Shift-Tab"),
            KeyCode::Up => out.push('↑'),
            KeyCode::Down => out.push('↓'),
            KeyCode::Left => out.push('←'),
            KeyCode::Right => out.push('→'),
            other => {
                let _ = write!(out, "{other:?}");
            }
        }
        out
    }
}

/// Name of an action in the config, and what it does in the help overlay.
pub fn describe(action: KeyAction) -> (&'static str, &'static str) {
    use KeyAction as A;
    match action {
        A::Submit => ("submit", "send the line, or run the /command"),
        A::NewLine => ("newline", "new line inside the message"),
        A::Complete => ("complete", "complete a /command, user or channel"),
        A::Backspace => ("backspace", "delete before the cursor"),
        A::Delete => ("delete", "delete under the cursor"),
        A::Left => ("left", "cursor left"),
        A::Right => ("right", "cursor right"),
        A::Home => ("home", "start of line"),
        A::End => ("end", "end of line"),
        A::WordBack => ("word-back", "back one word"),
        A::WordForward => ("word-forward", "forward one word"),
        A::KillToEnd => (
            "kill-to-end",
            "delete to end of line (on an empty line: switcher)",
        ),
        A::KillToStart => ("kill-to-start", "delete to start of line"),
        A::KillWordBack => ("kill-word-back", "delete the word before the cursor"),
        A::Up => ("up", "previous line of this tab's input history"),
        A::Down => ("down", "next line of this tab's input history"),
        A::NextTab => ("next-tab", "next tab"),
        A::PrevTab => ("prev-tab", "previous tab"),
        A::NextActivity => ("next-activity", "next tab with activity, mentions first"),
        A::Switcher => ("switcher", "fuzzy tab switcher"),
        A::Search => (
            "search",
            "search this tab's messages (PgUp there: older history)",
        ),
        A::PageUp => ("page-up", "scroll up (loads older history at the top)"),
        A::PageDown => ("page-down", "scroll down"),
        A::Help => ("help", "this help (also ? on an empty line)"),
        A::ToggleMembers => ("toggle-members", "show or hide the member list"),
        A::MembersUp => ("members-up", "scroll the member list up"),
        A::MembersDown => ("members-down", "scroll the member list down"),
        A::ToggleJoins => ("toggle-joins", "expand or collapse join/leave lines"),
        A::Editor => ("editor", "compose the message in $EDITOR"),
        A::Cancel => (
            "cancel",
            "cancel the upload or download under way; else close the overlay, clear the line",
        ),
        A::Redraw => ("redraw", "redraw the screen"),
        A::Quit => (
            "quit",
            "clear the line; on an empty line, quit (same as /quit)",
        ),
        A::AcceptCall => ("accept-call", "accept the call invitation waiting"),
        A::RefuseCall => ("refuse-call", "refuse the call invitation waiting"),
        A::SaveMedia => ("save", "download the newest file or image in view (/save)"),
        A::GoTo(_) => ("tab-N", "go to tab N (1..9)"),
    }
}

/// Parses an action name of the config's `[keys]` table.
pub fn action_by_name(name: &str) -> Option<KeyAction> {
    if let Some(n) = name.strip_prefix("tab-") {
        return n
            .parse()
            .ok()
            .filter(|n| (1..=9).contains(n))
            .map(KeyAction::GoTo);
    }
    DEFAULT_BINDINGS
        .iter()
        .map(|(_, a)| *a)
        .find(|a| describe(*a).0 == name)
}

/// The built-in bindings, in the order the help overlay lists them.
pub const DEFAULT_BINDINGS: &[(&str, KeyAction)] = &[
    ("enter", KeyAction::Submit),
    ("alt-enter", KeyAction::NewLine),
    ("tab", KeyAction::Complete),
    ("ctrl-n", KeyAction::NextTab),
    ("backtab", KeyAction::PrevTab),
    ("ctrl-p", KeyAction::PrevTab),
    ("alt-a", KeyAction::NextActivity),
    ("ctrl-g", KeyAction::Switcher),
    ("ctrl-r", KeyAction::Search),
    ("pageup", KeyAction::PageUp),
    ("pagedown", KeyAction::PageDown),
    ("f1", KeyAction::Help),
    ("f2", KeyAction::ToggleMembers),
    ("alt-up", KeyAction::MembersUp),
    ("alt-down", KeyAction::MembersDown),
    ("alt-j", KeyAction::ToggleJoins),
    ("alt-e", KeyAction::Editor),
    ("up", KeyAction::Up),
    ("down", KeyAction::Down),
    ("left", KeyAction::Left),
    ("right", KeyAction::Right),
    ("ctrl-a", KeyAction::Home),
    ("home", KeyAction::Home),
    ("ctrl-e", KeyAction::End),
    ("end", KeyAction::End),
    ("alt-b", KeyAction::WordBack),
    ("alt-f", KeyAction::WordForward),
    ("ctrl-k", KeyAction::KillToEnd),
    ("ctrl-u", KeyAction::KillToStart),
    ("ctrl-w", KeyAction::KillWordBack),
    ("alt-backspace", KeyAction::KillWordBack),
    ("backspace", KeyAction::Backspace),
    ("delete", KeyAction::Delete),
    ("alt-s", KeyAction::SaveMedia),
    ("esc", KeyAction::Cancel),
    ("ctrl-l", KeyAction::Redraw),
    ("ctrl-c", KeyAction::Quit),
    // Chords, so that a call arriving while you type never takes your letters.
    ("alt-y", KeyAction::AcceptCall),
    ("alt-n", KeyAction::RefuseCall),
];

/// Key → action, built from the defaults and the config's overrides.
#[derive(Debug, Clone)]
pub struct Keymap {
    map: HashMap<Key, KeyAction>,
    /// (key, action) in help order, overrides last.
    rows: Vec<(Key, KeyAction)>,
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap::new(std::iter::empty()).expect("the built-in keymap parses")
    }
}

impl Keymap {
    /// The defaults plus `overrides` (key text → action name); errors name the bad entry.
    pub fn new<'a>(
        overrides: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> Result<Keymap, String> {
        let mut keymap = Keymap {
            map: HashMap::new(),
            rows: Vec::new(),
        };
        for (text, action) in DEFAULT_BINDINGS {
            let key = Key::parse(text).ok_or_else(|| format!("bad built-in key {text}"))?;
            keymap.bind(key, *action);
        }
        for n in 1..=9u8 {
            let key = Key::new(KeyCode::Char(char::from(b'0' + n)), KeyModifiers::ALT);
            keymap.bind(key, KeyAction::GoTo(n));
        }
        for (text, name) in overrides {
            let key = Key::parse(text).ok_or_else(|| format!("unknown key {text:?}"))?;
            let action = action_by_name(name).ok_or_else(|| format!("unknown action {name:?}"))?;
            keymap.rows.retain(|(k, _)| *k != key);
            keymap.bind(key, action);
        }
        Ok(keymap)
    }

    fn bind(&mut self, key: Key, action: KeyAction) {
        self.map.insert(key, action);
        self.rows.push((key, action));
    }

    /// The action bound to a terminal key, if any.
    pub fn lookup(&self, event: &KeyEvent) -> Option<KeyAction> {
        self.map.get(&Key::from_event(event)).copied()
    }

    /// The keys bound to `action`, as people read them ("Ctrl-A, Home").
    pub fn keys_for(&self, action: KeyAction) -> String {
        let labels: Vec<String> = self
            .rows
            .iter()
            .filter(|(_, a)| *a == action)
            .map(|(k, _)| k.label())
            .collect();
        labels.join(", ")
    }

    /// One row per action in table order, with all its keys ("Ctrl-A, Home").
    fn rows_by_action(&self) -> Vec<(String, KeyAction)> {
        let mut rows: Vec<(String, KeyAction)> = Vec::new();
        for (_, action) in &self.rows {
            let action = match action {
                KeyAction::GoTo(_) => KeyAction::GoTo(0),
                other => *other,
            };
            if rows.iter().any(|(_, a)| *a == action) {
                continue;
            }
            let keys = if action == KeyAction::GoTo(0) {
                "Alt-1..9".to_string()
            } else {
                self.keys_for(action)
            };
            rows.push((keys, action));
        }
        rows
    }

    /// Help overlay rows: (keys, description), one per action, in table order.
    pub fn help_rows(&self) -> Vec<(String, &'static str)> {
        self.rows_by_action()
            .into_iter()
            .map(|(keys, action)| (keys, describe(action).1))
            .collect()
    }

    /// The key table as Markdown: `assets/keymap.md` is this text (a test keeps it current).
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "# rtm-tui keys\n\nGenerated from the key table in `src/tui/keymap.rs` (the same table F1 shows).\n\
             Override any of them in the config's `[keys]` table, e.g. `\"ctrl-g\" = \"switcher\"`.\n\n\
             | keys | action (config name) | what it does |\n|---|---|---|\n",
        );
        for (keys, action) in self.rows_by_action() {
            let (name, what) = describe(action);
            let _ = writeln!(out, "| {keys} | `{name}` | {what} |");
        }
        out
    }

    /// Footer items for `actions`: "key label" pairs for the keys that matter now.
    pub fn footer(&self, actions: &[(KeyAction, &'static str)]) -> Vec<(String, &'static str)> {
        actions
            .iter()
            .filter_map(|(action, label)| {
                let key = self.rows.iter().find(|(_, a)| a == action)?.0;
                Some((key.label(), *label))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventKind;

    fn event(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent {
            code,
            modifiers: mods,
            kind: KeyEventKind::Press,
            state: crossterm::event::KeyEventState::NONE,
        }
    }

    #[test]
    fn parses_and_labels_keys() {
        let k = Key::parse("ctrl-g").unwrap();
        assert_eq!(k.label(), "Ctrl-G");
        assert_eq!(Key::parse("alt-enter").unwrap().label(), "Alt-Enter");
        assert_eq!(Key::parse("F1").unwrap().label(), "F1");
        assert_eq!(Key::parse("?").unwrap().code, KeyCode::Char('?'));
        assert!(Key::parse("ctrl-").is_none());
    }

    #[test]
    fn defaults_and_overrides() {
        let km = Keymap::default();
        assert_eq!(
            km.lookup(&event(KeyCode::Char('K'), KeyModifiers::CONTROL)),
            Some(KeyAction::KillToEnd)
        );
        assert_eq!(
            km.lookup(&event(KeyCode::Char('3'), KeyModifiers::ALT)),
            Some(KeyAction::GoTo(3))
        );
        assert_eq!(km.keys_for(KeyAction::Home), "Ctrl-A, Home");
        let overrides = [("f5".to_string(), "switcher".to_string())];
        let km = Keymap::new(overrides.iter().map(|(a, b)| (a, b))).unwrap();
        assert_eq!(
            km.lookup(&event(KeyCode::F(5), KeyModifiers::NONE)),
            Some(KeyAction::Switcher)
        );
        assert!(km.keys_for(KeyAction::Switcher).contains("F5"));
        let bad = [("f5".to_string(), "fly".to_string())];
        assert!(Keymap::new(bad.iter().map(|(a, b)| (a, b))).is_err());
    }

    #[test]
    fn the_keymap_document_is_current() {
        let expected = Keymap::default().markdown();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/keymap.md");
        let actual = std::fs::read_to_string(path).unwrap_or_default();
        if actual != expected && std::env::var_os("RTM_UPDATE_KEYMAP").is_some() {
            std::fs::write(path, &expected).unwrap();
            return;
        }
        assert_eq!(
            actual, expected,
            "assets/keymap.md is stale: run with RTM_UPDATE_KEYMAP=1"
        );
    }

    #[test]
    fn every_action_has_a_unique_config_name() {
        for (_, action) in DEFAULT_BINDINGS {
            assert_eq!(action_by_name(describe(*action).0), Some(*action));
        }
    }
}
