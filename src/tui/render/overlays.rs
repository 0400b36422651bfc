//! Windows drawn over the main screen (help, fuzzy switcher, paste confirmation, call
//! invitation) and the login form, which is a screen of its own.

use std::fmt::Write as _;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::protocol::ConnectionState;

use crate::tui::action::KeyAction;
use crate::tui::app::overlay::Overlay;
use crate::tui::app::status::{reason_words, state_words};
use crate::tui::app::App;
use crate::tui::login::{LoginStatus, FIELDS, TOKEN};
use crate::tui::slash_command::COMMANDS;

use super::panes::{key_hints, size_count, PASTE_KEYS};

/// A centred rectangle of at most `width` x `height` inside `area`.
fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn boxed<'a>(app: &App, title: &'a str) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_style(app.theme.accent)
        .title(Span::styled(format!(" {title} "), app.theme.bold))
}

pub(super) fn overlay(frame: &mut Frame, app: &App, area: Rect) {
    match &app.overlay {
        None => {}
        Some(Overlay::Help { scroll, .. }) => help(frame, app, area, *scroll),
        Some(Overlay::Switcher { query, selected }) => {
            let matches = app.switcher_matches();
            let rect = centred(area, 50, (matches.len() as u16 + 3).clamp(5, 16));
            let mut lines = vec![Line::from(vec![
                Span::styled("> ", app.theme.accent),
                Span::raw(query.text().to_string()),
            ])];
            let selected = (*selected).min(matches.len().saturating_sub(1));
            for (row, &i) in matches
                .iter()
                .enumerate()
                .take(usize::from(rect.height).saturating_sub(3))
            {
                let tab = &app.tabs[i];
                let style = if row == selected {
                    app.theme.selected
                } else {
                    ratatui::style::Style::new()
                };
                let mut text = format!("{} {}", i + 1, tab.name());
                if tab.unread > 0 {
                    {
                        let _ = write!(text, "  ({} unread)", tab.unread);
                    };
                }
                lines.push(Line::styled(text, style));
            }
            frame.render_widget(Clear, rect);
            frame.render_widget(Paragraph::new(lines).block(boxed(app, "switch to")), rect);
        }
        Some(Overlay::Search { query, selected }) => {
            search(frame, app, area, query.text(), *selected);
        }
        Some(Overlay::PasteConfirm { text }) => {
            let rect = centred(area, 56, 7);
            let keys = app.keymap.footer(PASTE_KEYS);
            let mut paste_keys: Vec<(&str, &str)> =
                keys.iter().map(|(k, l)| (k.as_str(), *l)).collect();
            paste_keys.insert(1, ("e", "edit first"));
            let lines = vec![
                Line::raw(format!("You pasted {} lines.", text.lines().count())),
                size_count(app, text).map_or_else(Line::default, Line::from),
                Line::from(key_hints(app, &paste_keys)),
            ];
            frame.render_widget(Clear, rect);
            frame.render_widget(
                Paragraph::new(lines).block(boxed(app, "send this paste?")),
                rect,
            );
        }
        Some(Overlay::Invitation(inv)) => {
            let rect = centred(area, 60, 9);
            let left = inv.expires_at.saturating_sub(app.now_ms).div_ceil(1000);
            let mut lines = vec![Line::from(vec![
                Span::styled(inv.caller.clone(), app.theme.bold),
                Span::raw(" is calling you"),
            ])];
            if !inv.content.is_empty() {
                lines.push(Line::raw(format!("“{}”", inv.content)));
            }
            if let Some(channel) = &inv.channel {
                lines.push(Line::raw(format!("channel: #{channel}")));
            }
            lines.push(Line::styled(format!("expires in {left}s"), app.theme.dim));
            // The same keys as the footer, from the keymap.
            let keys = app.keymap.footer(&[
                (KeyAction::AcceptCall, "accept"),
                (KeyAction::RefuseCall, "refuse"),
                (KeyAction::Cancel, "later (/accept, /refuse [response])"),
            ]);
            let keys: Vec<(&str, &str)> = keys.iter().map(|(k, l)| (k.as_str(), *l)).collect();
            lines.push(Line::from(key_hints(app, &keys)));
            frame.render_widget(Clear, rect);
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: true })
                    .block(boxed(app, "call")),
                rect,
            );
        }
    }
}

/// The search window: what is typed, the matching messages of the tab in front (newest
/// at the bottom, as in the tab), and how far back the search reaches.
fn search(frame: &mut Frame, app: &App, area: Rect, query: &str, selected: usize) {
    let tab = app.active_tab();
    let results = tab.search(query);
    let width = area.width.saturating_sub(4).min(90);
    let rows = area.height.saturating_sub(8).clamp(3, 14);
    let rect = centred(area, width + 2, rows + 4);
    let inner_width = usize::from(rect.width.saturating_sub(2));
    let selected = selected.min(results.len().saturating_sub(1));
    // The selected result stays in the window.
    let first = selected.saturating_sub(usize::from(rows) - 1);
    let mut lines: Vec<Line> = results
        .iter()
        .enumerate()
        .skip(first)
        .take(usize::from(rows))
        .map(|(row, &index)| {
            let entry = &tab.entries[index];
            let Some(message) = entry.message() else {
                return Line::default();
            };
            let time = crate::tui::local_time::format(entry.ts, &app.time_zone, "%d %b %H:%M");
            let text = format!("{time} {}: {}", message.from, message.body.text());
            let text = super::wrap::truncate(&text.replace('\n', " "), inner_width);
            let style = if row == selected {
                app.theme.selected
            } else {
                ratatui::style::Style::new()
            };
            Line::styled(super::wrap::display_safe(&text).into_owned(), style)
        })
        .collect();
    lines.reverse();
    let reach = match tab.history {
        crate::tui::tab::HistoryState::More => "PgUp: search older history too",
        crate::tui::tab::HistoryState::Loading => "loading older history…",
        _ => "all of the history searched",
    };
    let found = match results.len() {
        0 if query.trim().is_empty() => "type to search".to_string(),
        0 => "no match".to_string(),
        1 => "1 match".to_string(),
        n if n >= crate::tui::tab::MAX_SEARCH_RESULTS => format!("the newest {n} matches"),
        n => format!("{n} matches"),
    };
    let mut body = vec![Line::from(vec![
        Span::styled("> ", app.theme.accent),
        Span::raw(query.to_string()),
    ])];
    body.extend(std::iter::repeat_n(
        Line::default(),
        usize::from(rows).saturating_sub(lines.len()),
    ));
    body.extend(lines);
    body.push(Line::styled(format!("{found} · {reach}"), app.theme.dim));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(body).block(boxed(app, &format!("search {}", tab.name()))),
        rect,
    );
}

/// `head` then `text` wrapped to `width`, continuation lines indented under the text
/// (or by four columns when the head is too wide for that), as a man page lays out.
fn hanging(app: &App, head: &str, text: &str, width: usize) -> Vec<Line<'static>> {
    use unicode_width::UnicodeWidthStr as _;
    let indent = if head.width() + 20 <= width {
        head.width()
    } else {
        4
    };
    let first_room = width.saturating_sub(head.width()).max(1);
    let plain = ratatui::style::Style::new();
    let mut out = Vec::new();
    let wrapped = super::wrap::wrap(&[(text.to_string(), plain)], first_room);
    let mut rest = String::new();
    for (i, line) in wrapped.into_iter().enumerate() {
        if i == 0 {
            let mut spans = vec![Span::styled(head.to_string(), app.theme.accent)];
            spans.extend(line.spans);
            out.push(Line::from(spans));
        } else {
            rest.extend(line.spans.iter().map(|s| s.content.as_ref()));
        }
    }
    if !rest.is_empty() {
        for line in super::wrap::wrap(&[(rest, plain)], width.saturating_sub(indent).max(1)) {
            let mut spans = vec![Span::raw(" ".repeat(indent))];
            spans.extend(line.spans);
            out.push(Line::from(spans));
        }
    }
    out
}

fn help(frame: &mut Frame, app: &App, area: Rect, scroll: u16) {
    let rect = centred(area, 76, area.height.saturating_sub(2));
    let width = usize::from(rect.width.saturating_sub(2));
    let mut lines = vec![Line::styled("Keys", app.theme.bold)];
    for (keys, what) in app.keymap.help_rows() {
        lines.extend(hanging(app, &format!("  {keys:<22}"), what, width));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Commands (plain text sends to this tab)",
        app.theme.bold,
    ));
    for (name, args, what) in COMMANDS {
        lines.extend(hanging(app, &format!("  /{name} {args}  "), what, width));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("The tab list", app.theme.bold));
    for (mark, what) in [
        ("2 #lobby 4", "tab 2 (Alt-2): 4 unread messages"),
        ("3 @bob @1 3", "a peer tab: 1 mention of you among 3 unread"),
        (
            "#big (900)",
            "a large channel's member count (no join/leave lines)",
        ),
        ("2 •  /  4 @", "narrow screens: unread, or a mention"),
    ] {
        lines.extend(hanging(app, &format!("  {mark:<16}"), what, width));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Marks on your messages", app.theme.bold));
    for (mark, what) in [
        ("…", "sent, waiting for the result"),
        (
            "✓",
            "received by the peer / accepted by the server (channel, history)",
        ),
        (
            "✓ cached",
            "peer offline: stored, delivered at their next login",
        ),
        ("✗ unreachable", "peer offline, not stored (/retry)"),
        ("✗ timed out", "no acknowledgement in time (/retry)"),
        ("✗ reason", "failed (/retry)"),
    ] {
        lines.extend(hanging(app, &format!("  {mark:<16}"), what, width));
    }
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .scroll((scroll, 0))
            .block(boxed(app, "help — Esc closes, ↑↓ PgUp PgDn scroll")),
        rect,
    );
}

/// The login form: fields checked as typed, the server's answer under them.
pub(super) fn login(frame: &mut Frame, app: &App, area: Rect) {
    let form = &app.login;
    let rect = centred(area, 64, 16);
    frame.render_widget(boxed(app, "rtm-tui — log in"), rect);
    let inner = rect.inner(ratatui::layout::Margin::new(2, 1));
    let rows = Layout::vertical([Constraint::Length(2); 4]).split(inner);
    for (i, label) in FIELDS.iter().enumerate() {
        let editor = &form.fields[i];
        let shown = if i == TOKEN {
            "•".repeat(editor.text().chars().count())
        } else {
            editor.text().to_string()
        };
        let focus = i == form.focus;
        let label_style = if focus {
            app.theme.selected
        } else {
            app.theme.bold
        };
        // Nothing typed yet is not an error until a login is tried; a long problem is cut
        // here and shown whole under the form (for the field being typed in).
        let tried = matches!(form.status, LoginStatus::Refused(_));
        let room = usize::from(inner.width).saturating_sub(12);
        let check = match form.problem(i) {
            _ if i == TOKEN && editor.is_empty() => Line::styled(
                "          (only for apps with a certificate)",
                app.theme.dim,
            ),
            Some(_) if editor.is_empty() && !tried => {
                Line::styled("          (required)", app.theme.dim)
            }
            Some(problem) => Line::styled(
                format!("          ✗ {}", super::wrap::truncate(&problem, room)),
                app.theme.error,
            ),
            None => Line::styled("          ✓", app.theme.ok),
        };
        let lines = vec![
            Line::from(vec![
                Span::styled(format!("{label:<8}"), label_style),
                Span::raw("  "),
                Span::raw(shown),
            ]),
            check,
        ];
        frame.render_widget(Paragraph::new(lines), rows[i]);
        if focus && app.overlay.is_none() {
            let (_, col) = editor.cursor_position();
            let col = if i == TOKEN {
                editor.text()[..editor.cursor()].chars().count()
            } else {
                col
            };
            frame.set_cursor_position((rows[i].x + 10 + col as u16, rows[i].y));
        }
    }
    let focused_problem = form
        .problem(form.focus)
        .filter(|_| !form.fields[form.focus].is_empty());
    let status = match &form.status {
        LoginStatus::Editing => match focused_problem {
            Some(problem) => Line::styled(
                format!("{}: {problem}", FIELDS[form.focus]),
                app.theme.error,
            ),
            None => Line::styled("Enter logs in", app.theme.dim),
        },
        LoginStatus::Busy => Line::styled("logging in…", app.theme.mention),
        LoginStatus::Refused(why) => Line::styled(format!("✗ {why}"), app.theme.error),
    };
    let conn = if app.status.conn.state == ConnectionState::Disconnected {
        Line::raw("")
    } else {
        Line::styled(
            format!(
                "connection: {} ({})",
                state_words(app.status.conn.state),
                reason_words(app.status.conn.reason)
            ),
            app.theme.dim,
        )
    };
    let bottom = Rect {
        y: inner.y + 9,
        height: inner.height.saturating_sub(9),
        ..inner
    };
    let mut actions = vec![
        (KeyAction::Submit, "log in"),
        (KeyAction::Complete, "next"),
        (KeyAction::PrevTab, "back"),
    ];
    if matches!(
        app.status.conn.state,
        ConnectionState::Connected | ConnectionState::Reconnecting
    ) {
        actions.push((KeyAction::Cancel, "back to the chat"));
    }
    actions.push((KeyAction::Quit, "quit"));
    let keys = app.keymap.footer(&actions);
    let keys: Vec<(&str, &str)> = keys.iter().map(|(k, l)| (k.as_str(), *l)).collect();
    let mut lines = vec![status, conn, Line::from(key_hints(app, &keys))];
    if let Some(notice) = &app.status.notice {
        lines.insert(2, Line::styled(notice.clone(), app.theme.accent));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), bottom);
}
