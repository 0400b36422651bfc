//! Links in messages: where URLs are in a text ([`urls`]), and where they ended up on the
//! screen ([`placed`]), so the event loop can make each piece an OSC 8 hyperlink to the
//! whole URL, even a URL that the wrap had to cut over several lines (a terminal's own
//! URL detection sees only the pieces). Drawing gives the pieces the theme's `link`
//! style; that style is how they are found again.

use std::ops::Range;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use unicode_width::UnicodeWidthStr;

/// The schemes recognised as the start of a link.
const SCHEMES: [&str; 2] = ["https://", "http://"];

/// Punctuation that ends a sentence rather than a URL: "see https://x.org." links x.org.
const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', '\'', '"', ')', ']', '>'];

/// The byte ranges of the URLs in `text`.
pub fn urls(text: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = SCHEMES
        .iter()
        .filter_map(|s| text[from..].find(s).map(|i| from + i))
        .min()
    {
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || c == '<')
            .map_or(text.len(), |i| start + i);
        let end = start + text[start..end].trim_end_matches(TRAILING).len();
        if SCHEMES.iter().all(|s| end - start > s.len()) {
            found.push(start..end);
        }
        from = end.max(start + 1);
    }
    found
}

/// `text` as styled segments: the URLs in `link`, the rest in `style`.
pub fn segments(text: &str, style: Style, link: Style) -> Vec<(String, Style)> {
    let mut out = Vec::new();
    let mut at = 0;
    for range in urls(text) {
        if range.start > at {
            out.push((text[at..range.start].to_string(), style));
        }
        out.push((text[range.clone()].to_string(), link));
        at = range.end;
    }
    if at < text.len() || out.is_empty() {
        out.push((text[at..].to_string(), style));
    }
    out
}

/// A piece of a link on the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub x: u16,
    pub y: u16,
    /// The characters of the piece, as drawn.
    pub text: String,
    /// The whole URL the piece belongs to.
    pub url: String,
    pub style: Style,
}

/// The link pieces of `lines` drawn from the top of `area`: a piece that does not start
/// with a scheme continues the link of the line before (the wrap cut it).
pub fn placed(lines: &[Line], area: Rect, link: Style) -> Vec<Link> {
    let mut pieces: Vec<Link> = Vec::new();
    // The pieces of the URL being read, by index into `pieces`.
    let mut current: Vec<usize> = Vec::new();
    for (row, line) in lines.iter().enumerate().take(usize::from(area.height)) {
        let mut x = 0usize;
        for span in &line.spans {
            let width = span.content.width();
            if span.style == link && !span.content.trim().is_empty() {
                let text = span.content.to_string();
                if SCHEMES.iter().any(|s| text.starts_with(s)) {
                    current.clear();
                }
                current.push(pieces.len());
                pieces.push(Link {
                    x: area.x + x as u16,
                    y: area.y + row as u16,
                    text,
                    url: String::new(),
                    style: span.style,
                });
                let url: String = current.iter().map(|&i| pieces[i].text.as_str()).collect();
                for &i in &current {
                    pieces[i].url.clone_from(&url);
                }
            }
            x += width;
        }
    }
    // A link whose start is above the view has no scheme: not a link to offer.
    pieces.retain(|p| SCHEMES.iter().any(|s| p.url.starts_with(s)));
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_end_where_the_sentence_goes_on() {
        let text = "see https://example.org/a?b=1. and (http://x.io/y) or https:// alone";
        let found: Vec<&str> = urls(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(found, ["https://example.org/a?b=1", "http://x.io/y"]);
        assert!(urls("no links here").is_empty());
    }
}
