//! Word wrapping of styled text by display width (wide characters and emoji count 2,
//! as unicode-width says), breaking words longer than a line; and [`display_safe`], the
//! text as drawn, without the emoji sequences whose width terminals disagree on.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Zero-width joiner: joins emoji into one (family, profession) on some terminals only.
const ZWJ: char = '\u{200d}';
/// Variation selector 16: asks for the emoji form of a character, which some terminals
/// draw two columns wide and others one.
const VS16: char = '\u{fe0f}';

/// The five Fitzpatrick skin tone modifiers.
fn is_skin_tone(c: char) -> bool {
    skin_tone_name(c).is_some()
}

/// A skin tone modifier's name, as drawn after its emoji (Unicode's short names).
fn skin_tone_name(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{1f3fb}' => "light",
        '\u{1f3fc}' => "medium-light",
        '\u{1f3fd}' => "medium",
        '\u{1f3fe}' => "medium-dark",
        '\u{1f3ff}' => "dark",
        _ => return None,
    })
}

fn regional_letter(c: char) -> Option<char> {
    let offset = u32::from(c).checked_sub(0x1F1E6)?;
    (offset < 26).then(|| char::from(b'A' + offset as u8))
}

/// `text` as it is drawn: grapheme clusters whose width terminals disagree on are given a
/// form every terminal draws alike, so the screen never drifts from ratatui's idea of it
/// (a flag left stray halves on later lines until Ctrl-L, on every screen showing it).
/// Flags (regional indicator pairs) become their letters, `[JP]`; joined emoji sequences
/// keep their first emoji; a skin tone follows its emoji by name, `👍(medium skin)`;
/// VS16 is dropped.
pub fn display_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let suspect =
        |c: char| c == ZWJ || c == VS16 || regional_letter(c).is_some() || is_skin_tone(c);
    if !text.chars().any(suspect) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for g in text.graphemes(true) {
        if !g.chars().any(suspect) {
            out.push_str(g);
            continue;
        }
        let letters: String = g.chars().filter_map(regional_letter).collect();
        if !letters.is_empty() {
            out.push('[');
            out.push_str(&letters);
            out.push(']');
            continue;
        }
        let first = g.split(ZWJ).next().unwrap_or(g);
        out.extend(first.chars().filter(|&c| c != VS16 && !is_skin_tone(c)));
        // The tone, not lost: by name. Not as its swatch: a modifier joins whatever comes
        // before it into one cluster (`(🏽` is one, three columns wide), whose columns
        // past the first a later redraw did not clear, leaving stray swatches on screen.
        if let Some(tone) = first.chars().find_map(skin_tone_name) {
            out.push('(');
            out.push_str(tone);
            out.push_str(" skin)");
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Wraps `segments` into lines of at most `width` columns; `\n` forces a break.
/// Text goes through [`display_safe`] first.
/// Continuation lines are not indented here; the caller prefixes them.
pub fn wrap(segments: &[(String, Style)], width: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let mut lines: Vec<Vec<Span<'static>>> = vec![Vec::new()];
    let mut used = 0;
    // Words are laid out whole when they fit on a fresh line; spaces at a break vanish.
    for (text, style) in segments {
        let text = display_safe(text);
        for (i, paragraph) in text.split('\n').enumerate() {
            if i > 0 {
                lines.push(Vec::new());
                used = 0;
            }
            for word in chunks(paragraph) {
                let w = word.width();
                if used + w <= width {
                    push(&mut lines, word, *style);
                    used += w;
                    continue;
                }
                if word.trim().is_empty() {
                    lines.push(Vec::new());
                    used = 0;
                    continue;
                }
                if w <= width {
                    lines.push(Vec::new());
                    push(&mut lines, word, *style);
                    used = w;
                    continue;
                }
                for g in word.graphemes(true) {
                    let gw = g.width();
                    if used + gw > width {
                        lines.push(Vec::new());
                        used = 0;
                    }
                    push(&mut lines, g, *style);
                    used += gw;
                }
            }
        }
    }
    lines.into_iter().map(Line::from).collect()
}

/// Runs of spaces and runs of anything else: "again." stays one word, so a line never
/// starts with a lone full stop (word-bound splitting would cut it off).
fn chunks(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let space = first.is_whitespace();
        let end = rest
            .find(|c: char| c.is_whitespace() != space)
            .unwrap_or(rest.len());
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

fn push(lines: &mut [Vec<Span<'static>>], text: &str, style: Style) {
    let line = lines.last_mut().expect("there is always a line");
    match line.last_mut() {
        Some(span) if span.style == style => span.content.to_mut().push_str(text),
        _ => line.push(Span::styled(text.to_string(), style)),
    }
}

/// `text` cut to `width` columns, with `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for g in text.graphemes(true) {
        let w = g.width();
        if used + w + 1 > width {
            break;
        }
        out.push_str(g);
        used += w;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn wraps_words_and_wide_characters() {
        let plain = Style::default();
        let lines = wrap(&[("hello brave new world".into(), plain)], 11);
        assert_eq!(texts(&lines), vec!["hello brave", "new world"]);
        let lines = wrap(&[("漢字漢字漢字".into(), plain)], 5);
        assert_eq!(texts(&lines), vec!["漢字", "漢字", "漢字"]);
        let lines = wrap(&[("a\nb".into(), plain)], 10);
        assert_eq!(texts(&lines), vec!["a", "b"]);
        // Emoji sequences that terminals draw at different widths get a stable form.
        assert_eq!(display_safe("hi 🇯🇵!"), "hi [JP]!");
        assert_eq!(
            display_safe("👍🏽 👨\u{200d}👩\u{200d}👧 ❤\u{fe0f}"),
            "👍(medium skin) 👨 ❤"
        );
        assert_eq!(display_safe("👩🏿\u{200d}💻"), "👩(dark skin)");
        assert_eq!(
            display_safe("✋🏻✋🏼✋🏾"),
            "✋(light skin)✋(medium-light skin)✋(medium-dark skin)"
        );
        assert_eq!(display_safe("漢字 🦀"), "漢字 🦀");
        // Punctuation stays with its word.
        let lines = wrap(&[("log in again.".into(), plain)], 12);
        let trimmed: Vec<String> = texts(&lines).iter().map(|t| t.trim_end().into()).collect();
        assert_eq!(trimmed, vec!["log in", "again."]);
        assert_eq!(truncate("alexandria", 6), "alexa…");
        assert_eq!(truncate("bob", 6), "bob");
    }
}
