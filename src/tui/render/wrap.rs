//! Word wrapping of styled text by display width (wide characters and emoji count 2,
//! as unicode-width says), breaking words longer than a line.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Wraps `segments` into lines of at most `width` columns; `\n` forces a break.
/// Continuation lines are not indented here; the caller prefixes them.
pub fn wrap(segments: &[(String, Style)], width: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let mut lines: Vec<Vec<Span<'static>>> = vec![Vec::new()];
    let mut used = 0;
    // Words are laid out whole when they fit on a fresh line; spaces at a break vanish.
    for (text, style) in segments {
        for (i, paragraph) in text.split('\n').enumerate() {
            if i > 0 {
                lines.push(Vec::new());
                used = 0;
            }
            for word in paragraph.split_word_bounds() {
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
        assert_eq!(truncate("alexandria", 6), "alexa…");
        assert_eq!(truncate("bob", 6), "bob");
    }
}
