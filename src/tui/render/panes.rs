//! The panes around the scrollback: tab list, channel/peer header, member list, status
//! line with the connection state, the input line and the footer of keys.

use std::fmt::Write as _;

use ratatui::layout::{Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use crate::protocol::limits::MAX_MESSAGE_BYTES;
use crate::protocol::ConnectionState;

use super::wrap::truncate;
use crate::tui::action::KeyAction;
use crate::tui::app::overlay::Overlay;
use crate::tui::app::status::{reason_words, state_words};
use crate::tui::app::{presence_word, App};
use crate::tui::tab::TOPIC;

/// From this size on, the footer counts a message's bytes against
/// [`MAX_MESSAGE_BYTES`].
const LONG_MESSAGE_BYTES: usize = MAX_MESSAGE_BYTES / 8;

/// Channels above this many members show their count in the tab list (docs/protocol.md sends
/// no member events above 512).
const LARGE_CHANNEL: u64 = crate::protocol::limits::MAX_LISTED_MEMBERS as u64;

/// The tab list; `numbers_only` on narrow screens: each tab's number and a mark for
/// mentions (`@`) or unread messages (`•`).
pub(super) fn tab_list(frame: &mut Frame, app: &App, area: Rect, numbers_only: bool) {
    let width = usize::from(area.width.saturating_sub(1));
    let lines: Vec<Line> = if numbers_only {
        app.tabs
            .iter()
            .enumerate()
            .map(|(i, tab)| {
                let (mark, style) = if tab.mentions > 0 {
                    ("@", app.theme.mention)
                } else if tab.unread > 0 {
                    ("•", app.theme.bold)
                } else {
                    (" ", Style::new())
                };
                let style = if i == app.tabs.active() {
                    app.theme.selected
                } else {
                    style
                };
                Line::styled(format!("{:>2} {mark}", i + 1), style)
            })
            .collect()
    } else {
        app.tabs
            .iter()
            .enumerate()
            .map(|(i, tab)| {
                let mut counts = String::new();
                // Large channels send no join/leave events; their size is worth showing here.
                if let Some(count) = tab.member_count.filter(|c| *c > LARGE_CHANNEL) {
                    let _ = write!(counts, " ({count})");
                }
                if tab.mentions > 0 {
                    {
                        let _ = write!(counts, " @{}", tab.mentions);
                    };
                }
                if tab.unread > 0 {
                    {
                        let _ = write!(counts, " {}", tab.unread);
                    };
                }
                let label = format!("{} ", i + 1);
                let name_width = width.saturating_sub(label.width() + counts.width());
                let name = truncate(&tab.name(), name_width);
                let pad = width.saturating_sub(label.width() + name.width() + counts.width());
                let base = if i == app.tabs.active() {
                    app.theme.selected
                } else if tab.mentions > 0 {
                    app.theme.mention
                } else if tab.unread > 0 {
                    app.theme.bold
                } else {
                    Style::new()
                };
                let counts_style = if tab.mentions > 0 {
                    app.theme.mention
                } else {
                    app.theme.accent
                };
                Line::from(vec![
                    Span::styled(label, base.patch(app.theme.dim)),
                    Span::styled(name, base),
                    Span::styled(" ".repeat(pad), base),
                    Span::styled(counts, base.patch(counts_style)),
                ])
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::RIGHT)
                .border_style(app.theme.dim),
        ),
        area,
    );
}

pub(super) fn header(frame: &mut Frame, app: &App, area: Rect) {
    let tab = app.active_tab();
    let mut spans = vec![Span::styled(format!(" {} ", tab.name()), app.theme.bold)];
    if let Some(channel) = tab.channel() {
        let _ = channel;
        if let Some(count) = tab.member_count.filter(|_| tab.joined) {
            let members = if count == 1 { "member" } else { "members" };
            spans.push(Span::styled(format!("· {count} {members} "), app.theme.dim));
        }
        if !tab.joined {
            spans.push(Span::styled("· not joined ", app.theme.error));
        }
        // The topic as it reads, then the other attributes as key=value.
        if let Some(topic) = tab.topic() {
            spans.push(Span::styled(
                format!("· {} ", topic.value),
                app.theme.accent,
            ));
        }
        let others: Vec<String> = tab
            .attributes
            .iter()
            .filter(|a| a.key != TOPIC)
            .map(|a| format!("{}={}", a.key, a.value))
            .collect();
        if !others.is_empty() {
            spans.push(Span::styled(
                format!("· {}", others.join(" ")),
                app.theme.dim,
            ));
        }
    } else if tab.peer().is_some() {
        let presence = tab.presence.map_or("presence unknown", presence_word);
        spans.push(Span::styled(format!("· {presence} "), app.theme.dim));
    } else {
        spans.push(Span::styled("· status and help ", app.theme.dim));
    }
    let spans = fit(spans, area.width);
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `spans` cut to `width` columns, ending in `…` when something was cut: a line that
/// goes on past the screen edge says so.
pub(super) fn fit(mut spans: Vec<Span<'static>>, width: u16) -> Vec<Span<'static>> {
    let width = usize::from(width);
    // Spaces at the end are room, not text to keep.
    if let Some(last) = spans.last_mut() {
        last.content = last.content.trim_end().to_string().into();
    }
    let total: usize = spans.iter().map(|s| s.content.width()).sum();
    if total <= width {
        return spans;
    }
    let mut out = Vec::new();
    let mut used = 0;
    for span in spans {
        let w = span.content.width();
        if used + w < width {
            used += w;
            out.push(span);
            continue;
        }
        // Cut here: `truncate` leaves room for its `…` within what is left.
        let cut = truncate(&format!("{}…", span.content.trim_end()), width - used);
        out.push(Span::styled(cut, span.style));
        break;
    }
    out
}

pub(super) fn member_list(frame: &mut Frame, app: &App, area: Rect) {
    let tab = app.active_tab();
    let rows = usize::from(area.height.saturating_sub(1));
    let width = usize::from(area.width.saturating_sub(1));
    let mut title = format!(
        "Members {}",
        tab.member_count.unwrap_or(tab.members.len() as u64)
    );
    if !tab.member_filter.is_empty() {
        title = format!("{title} /{}", tab.member_filter);
    }
    let mut lines = vec![Line::styled(truncate(&title, width), app.theme.bold)];
    let me = app.me();
    lines.extend(
        tab.visible_members()
            .skip(tab.member_scroll)
            .take(rows)
            .map(|m| {
                let style = if m == me { app.theme.own } else { Style::new() };
                Line::styled(truncate(m, width), style)
            }),
    );
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::LEFT)
                .border_style(app.theme.dim),
        ),
        area,
    );
}

pub(super) fn status_line(frame: &mut Frame, app: &App, area: Rect) {
    let conn = &app.status.conn;
    let state = match (conn.state, conn.retry_at) {
        (ConnectionState::Reconnecting, Some(at)) => {
            let secs = at.saturating_sub(app.now_ms).div_ceil(1000);
            format!("reconnecting in {secs}s")
        }
        (state, _) => state_words(state).to_string(),
    };
    let style = match conn.state {
        ConnectionState::Connected => app.theme.ok,
        ConnectionState::Aborted | ConnectionState::Disconnected => app.theme.error,
        _ => app.theme.mention,
    };
    // The state first, then what needs attention, then who you are; the reason only when
    // it says something (not the LOGIN_SUCCESS of every healthy connection). The server,
    // notes about the embedded server and the rest are one `/status` away.
    let mut spans = vec![Span::styled(
        format!("[{state}]"),
        style.patch(app.theme.selected),
    )];
    if conn.state != ConnectionState::Connected {
        spans.push(Span::styled(
            format!(" {}", reason_words(conn.reason)),
            app.theme.dim,
        ));
    } else if let Some(url) = app
        .status
        .connected_to
        .as_deref()
        .filter(|_| app.status.has_several_servers())
    {
        // Of several servers, which one: after a failover it is news.
        spans.push(Span::styled(
            format!(" on {}", server_host(url)),
            app.theme.dim,
        ));
    }
    // A transfer's progress comes before the rest: it is what is happening now.
    if let Some(progress) = app.transfers.status(PROGRESS_BAR_CELLS) {
        spans.push(Span::styled(format!(" · {progress}"), app.theme.accent));
    } else if let Some(last) = &app.transfers.last {
        spans.push(Span::styled(format!(" · {last}"), app.theme.dim));
    }
    let tab = app.active_tab();
    if tab.scroll > 0 {
        // Messages that came while scrolled back, not lines or entries below the view.
        let below = match tab.unread {
            0 => "↓ scrolled back".to_string(),
            1 => "↓ 1 new message".to_string(),
            n => format!("↓ {n} new messages"),
        };
        spans.push(Span::styled(
            format!(" · {below} (PgDn, Esc)"),
            app.theme.mention,
        ));
    }
    if app.calls.incoming.is_some() && !matches!(app.overlay, Some(Overlay::Invitation(_))) {
        let keys = app.keymap.footer(&[
            (KeyAction::AcceptCall, "accept"),
            (KeyAction::RefuseCall, "refuse"),
        ]);
        let keys: Vec<String> = keys.iter().map(|(k, l)| format!("{k} {l}")).collect();
        spans.push(Span::styled(
            format!(" · call waiting: {}", keys.join(", ")),
            app.theme.mention,
        ));
    }
    spans.push(Span::styled(
        format!(" · {}@{} · /status", app.me(), app.status.app_id),
        app.theme.dim,
    ));
    frame.render_widget(Paragraph::new(Line::from(fit(spans, area.width))), area);
}

/// Width of the status line's progress bar for an upload or download.
const PROGRESS_BAR_CELLS: usize = 10;

/// The `host:port` of a server URL, which is what tells several servers apart.
fn server_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

pub(super) fn input(frame: &mut Frame, app: &App, area: Rect) {
    const PROMPT: &str = "> ";
    if area.height == 0 || area.width == 0 {
        return;
    }
    let (line, col) = app.input.cursor_position();
    let first_row = line.saturating_sub(usize::from(area.height) - 1);
    let width = usize::from(area.width).saturating_sub(PROMPT.len()).max(1);
    // Scroll the cursor's line sideways when it is longer than the screen.
    let shift = (col + 1).saturating_sub(width);
    let lines: Vec<Line> = app
        .input
        .text()
        .split('\n')
        .enumerate()
        .skip(first_row)
        .take(usize::from(area.height))
        .map(|(i, text)| {
            let prompt = if i == 0 { PROMPT } else { "  " };
            let text = super::wrap::display_safe(text);
            let text = if i == line {
                skip_columns(&text, shift)
            } else {
                text.into_owned()
            };
            Line::from(vec![
                Span::styled(prompt, app.theme.accent),
                Span::raw(text),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
    if matches!(app.overlay, None | Some(Overlay::Invitation(_))) {
        frame.set_cursor_position(Position::new(
            area.x + (PROMPT.len() + col - shift) as u16,
            area.y + (line - first_row) as u16,
        ));
    }
}

fn skip_columns(text: &str, columns: usize) -> String {
    let mut skipped = 0;
    text.chars()
        .skip_while(|c| {
            let skip = skipped < columns;
            skipped += unicode_width::UnicodeWidthChar::width(*c).unwrap_or(0);
            skip
        })
        .collect()
}

/// "key what  key what" spans, keys in the accent colour (footer, prompts, login form).
pub(super) fn key_hints(app: &App, items: &[(&str, &str)]) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for (key, label) in items {
        spans.push(Span::styled((*key).to_string(), app.theme.accent));
        spans.push(Span::styled(format!(" {label}  "), app.theme.dim));
    }
    spans
}

/// The paste question's keys and what they do; `e` (edit first) is a letter, not a key
/// of the keymap.
pub(super) const PASTE_KEYS: &[(KeyAction, &str)] = &[
    (KeyAction::Submit, "send as one message"),
    (KeyAction::Cancel, "drop"),
];

/// The keys that matter now, from the keymap table.
pub(super) fn footer(frame: &mut Frame, app: &App, area: Rect) {
    let items: &[(KeyAction, &str)] = match &app.overlay {
        Some(Overlay::Help { .. }) => &[
            (KeyAction::Cancel, "close"),
            (KeyAction::PageDown, "scroll"),
        ],
        Some(Overlay::Switcher { .. }) => &[
            (KeyAction::Submit, "go"),
            (KeyAction::Up, "select"),
            (KeyAction::Cancel, "cancel"),
        ],
        Some(Overlay::Search { .. }) => &[
            (KeyAction::Submit, "show"),
            (KeyAction::Up, "older"),
            (KeyAction::PageUp, "search older history"),
            (KeyAction::Cancel, "close"),
        ],
        Some(Overlay::Invitation(_)) => &[
            (KeyAction::AcceptCall, "accept"),
            (KeyAction::RefuseCall, "refuse"),
            (KeyAction::Cancel, "later"),
        ],
        // The paste question's own words, so the footer and the window agree.
        Some(Overlay::PasteConfirm { .. }) => PASTE_KEYS,
        None if app.input.is_empty() => &[
            (KeyAction::Help, "help"),
            // Ctrl-K kills to the end of a line, and on an empty line opens the switcher.
            (KeyAction::KillToEnd, "switch tab"),
            (KeyAction::NextActivity, "next activity"),
            (KeyAction::PageUp, "scroll"),
            (KeyAction::ToggleMembers, "members"),
            (KeyAction::Quit, "quit"),
        ],
        None => &[
            (KeyAction::Submit, "send"),
            (KeyAction::NewLine, "new line"),
            (KeyAction::Complete, "complete"),
            (KeyAction::Editor, "$EDITOR"),
            (KeyAction::Cancel, "clear"),
            (KeyAction::Quit, "clear"),
        ],
    };
    let keys = app.keymap.footer(items);
    let keys: Vec<(&str, &str)> = keys.iter().map(|(k, l)| (k.as_str(), *l)).collect();
    let mut spans = key_hints(app, &keys);
    if app.overlay.is_none() {
        if let Some(count) = size_count(app, app.input.text()) {
            spans.insert(0, count);
        }
    }
    frame.render_widget(Paragraph::new(Line::from(fit(spans, area.width))), area);
}

/// A long message shows its size against the limit before it is sent (a longer one is
/// refused, and said so, rather than sent and rejected).
pub(super) fn size_count(app: &App, text: &str) -> Option<Span<'static>> {
    let bytes = text.len();
    if bytes < LONG_MESSAGE_BYTES {
        return None;
    }
    let (note, style) = if bytes > MAX_MESSAGE_BYTES {
        (" too long to send", app.theme.error)
    } else {
        ("", app.theme.mention)
    };
    Some(Span::styled(
        format!("{bytes}/{MAX_MESSAGE_BYTES} bytes{note}  "),
        style,
    ))
}
