//! Desktop notifications through the terminal, beyond the bell: the escape sequences of
//! OSC 9 (iTerm2, WezTerm, kitty, ghostty) and OSC 777 (urxvt's `notify`, foot, VTE),
//! wrapped for tmux's passthrough when inside tmux (which needs `allow-passthrough on`).
//! Which one is the config's `notify`: "auto" (the default) picks from the environment
//! and stays silent where it cannot tell, "osc9" or "osc777" forces one, "off" none.
//! What deserves a notification is the app's (`App::receive`); the loop writes the
//! sequence.

use serde::Deserialize;

/// The config's `notify` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyMode {
    #[default]
    Auto,
    Osc9,
    Osc777,
    Off,
}

/// The escape sequence a terminal understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Osc9,
    Osc777,
}

/// How notifications are written to this terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notifier {
    pub protocol: Protocol,
    /// Inside tmux: the sequence goes through its DCS passthrough to the outer terminal.
    pub tmux: bool,
}

/// The longest body sent; a notification is a glance, the message is in its tab.
const MAX_BODY_CHARS: usize = 200;

impl Notifier {
    /// The notifier for `mode` in the environment `var` reads (`None`: no notifications).
    pub fn resolve(mode: NotifyMode, var: impl Fn(&str) -> Option<String>) -> Option<Notifier> {
        let protocol = match mode {
            NotifyMode::Off => return None,
            NotifyMode::Osc9 => Protocol::Osc9,
            NotifyMode::Osc777 => Protocol::Osc777,
            NotifyMode::Auto => auto_protocol(&var)?,
        };
        Some(Notifier {
            protocol,
            tmux: var("TMUX").is_some_and(|v| !v.is_empty()),
        })
    }

    /// The bytes that ask the terminal to show `title` and `body`.
    pub fn sequence(&self, title: &str, body: &str) -> String {
        let title = clean(title, 80).replace(';', ",");
        let body = clean(body, MAX_BODY_CHARS);
        let inner = match self.protocol {
            // OSC 9 has one field: the title goes in front.
            Protocol::Osc9 => format!("\x1b]9;{title}: {body}\x07"),
            Protocol::Osc777 => format!("\x1b]777;notify;{title};{body}\x07"),
        };
        if self.tmux {
            through_tmux(&inner)
        } else {
            inner
        }
    }
}

/// `sequence` wrapped for tmux's passthrough, to the terminal outside: tmux passes a DCS
/// "tmux;" payload on with every ESC doubled (`pictures.rs` asks its question so too).
pub(super) fn through_tmux(sequence: &str) -> String {
    format!("\x1bPtmux;{}\x1b\\", sequence.replace('\x1b', "\x1b\x1b"))
}

/// The protocol of a terminal known to show notifications, from its environment.
fn auto_protocol(var: &impl Fn(&str) -> Option<String>) -> Option<Protocol> {
    let program = var("TERM_PROGRAM").unwrap_or_default();
    let term = var("TERM").unwrap_or_default();
    // iTerm2 sets LC_TERMINAL, which ssh and tmux pass on where TERM_PROGRAM is lost.
    if matches!(program.as_str(), "iTerm.app" | "WezTerm" | "ghostty")
        || var("LC_TERMINAL").as_deref() == Some("iTerm2")
        || term.contains("kitty")
    {
        return Some(Protocol::Osc9);
    }
    if term.starts_with("foot") || term.starts_with("rxvt") || var("VTE_VERSION").is_some() {
        return Some(Protocol::Osc777);
    }
    None
}

/// `text` on one line, without control characters (which would end the sequence early),
/// cut to `max` characters.
fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn the_terminal_decides_the_sequence() {
        let iterm = Notifier::resolve(NotifyMode::Auto, env(&[("TERM_PROGRAM", "iTerm.app")]));
        assert_eq!(
            iterm.unwrap().sequence("bob", "hi\nthere"),
            "\x1b]9;bob: hi there\x07"
        );
        let foot = Notifier::resolve(NotifyMode::Auto, env(&[("TERM", "foot")])).unwrap();
        assert_eq!(
            foot.sequence("#lobby; bob", "alice?"),
            "\x1b]777;notify;#lobby, bob;alice?\x07"
        );
        // Unknown terminals stay silent unless asked; "off" is off.
        assert_eq!(
            Notifier::resolve(NotifyMode::Auto, env(&[("TERM", "xterm")])),
            None
        );
        assert!(Notifier::resolve(NotifyMode::Osc9, env(&[])).is_some());
        assert_eq!(
            Notifier::resolve(NotifyMode::Off, env(&[("TERM_PROGRAM", "WezTerm")])),
            None
        );
    }

    #[test]
    fn inside_tmux_the_sequence_is_passed_through() {
        let vars = [
            ("TMUX", "/tmp/tmux-0/default,1,0"),
            ("LC_TERMINAL", "iTerm2"),
        ];
        let notifier = Notifier::resolve(NotifyMode::Auto, env(&vars)).unwrap();
        assert_eq!(
            notifier.sequence("bob", "hi"),
            "\x1bPtmux;\x1b\x1b]9;bob: hi\x07\x1b\\"
        );
        let long = "x".repeat(500);
        assert!(notifier.sequence("bob", &long).chars().count() < 230);
    }
}
