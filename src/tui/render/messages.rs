//! The message view: walks the scrollback backwards from the bottom of the view and stops
//! when the screen is full, so drawing cost depends on the screen size, never on how many
//! messages a tab holds. Day separators, sender grouping and join/leave collapsing are
//! decided from neighbouring entries only.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthStr;

use super::wrap::{truncate, wrap};
use crate::tui::app::App;
use crate::tui::local_time;
use crate::tui::media::human_size;
use crate::tui::pictures::{cells_for, Placed};
use crate::tui::tab::{Body, ChatMessage, Entry, EntryKind, HistoryState, Tab};

/// Columns of the sender name (longer names are cut with …) on a view of
/// [`WIDE_VIEW`] columns or more; narrower views give it a sixth of their width, down to
/// [`MIN_NICK_WIDTH`], so the text keeps most of a narrow screen.
const NICK_WIDTH: usize = 10;
const MIN_NICK_WIDTH: usize = 6;
const WIDE_VIEW: usize = NICK_WIDTH * 6;

/// The sender column's width in a view `width` columns wide.
fn nick_width(width: usize) -> usize {
    if width >= WIDE_VIEW {
        NICK_WIDTH
    } else {
        (width / 6).max(MIN_NICK_WIDTH)
    }
}
/// Messages from one sender closer than this share one name.
const GROUP_WINDOW_MS: u64 = 5 * 60_000;
/// How far back a run of join/leave lines is looked at when collapsing.
const MAX_RUN_SCAN: usize = 1000;

/// Most rows an image takes in the message list (and never more than half the view).
const MAX_PICTURE_ROWS: u16 = 12;

/// What the message view shows: its lines, oldest first, and where pictures go in them.
#[derive(Debug, Default)]
pub struct View<'a> {
    pub lines: Vec<Line<'static>>,
    pub pictures: Vec<Placed<'a>>,
}

/// Sender colours: a stable colour per name, as IRC clients do.
const NICK_COLORS: [Color; 6] = [
    Color::Magenta,
    Color::Blue,
    Color::LightRed,
    Color::LightMagenta,
    Color::LightBlue,
    Color::Yellow,
];

/// The lines that fill a view of `width` x `height` for `tab`, oldest first, and the
/// room left in them for pictures (blank rows under an image's caption).
pub fn lines<'a>(app: &App, tab: &'a Tab, width: u16, height: u16) -> View<'a> {
    let width = usize::from(width);
    let height = usize::from(height);
    // (lines, picture in them: first row within the chunk and where it goes)
    let mut chunks: Vec<(Vec<Line<'static>>, Option<Placed<'a>>)> = Vec::new();
    let mut count = 0;
    let end = tab.entries.len().saturating_sub(tab.scroll);
    let marker = tab.unread_marker_at();
    let mut index = end;
    while index > 0 && count < height {
        index -= 1;
        let mut chunk = Vec::new();
        let mut picture = None;
        let entry = &tab.entries[index];
        let previous = index.checked_sub(1).map(|i| &tab.entries[i]);
        let mut first = index;
        if let EntryKind::Membership { .. } = entry.kind {
            if !tab.expand_joins {
                let run_start = run_start(tab, index);
                if index - run_start + 1 > app.config.collapse_joins {
                    first = run_start;
                }
            }
        }
        let previous_of_first = first.checked_sub(1).map(|i| &tab.entries[i]);
        if let Some(prev) = previous_of_first {
            if local_time::day(prev.ts, &app.time_zone)
                != local_time::day(tab.entries[first].ts, &app.time_zone)
            {
                chunk.push(day_separator(app, tab.entries[first].ts, width));
            }
        }
        if marker.is_some_and(|at| (first..=index).contains(&at)) {
            chunk.push(unread_line(app, width));
        }
        if first < index {
            chunk.push(collapsed(app, tab, first, index, width));
            index = first;
        } else {
            chunk.extend(entry_lines(app, entry, previous, width));
            picture = picture_room(app, entry, width, height).map(|mut placed| {
                placed.row = chunk.len() as i32;
                chunk.extend((0..placed.size.1).map(|_| Line::raw("")));
                placed
            });
        }
        count += chunk.len();
        chunks.push((chunk, picture));
    }
    if index == 0 && count < height && tab.target.is_some() {
        let text = match tab.history {
            HistoryState::Loading => "loading history…",
            HistoryState::More => "PgUp for older messages",
            _ => "beginning of the conversation",
        };
        chunks.push((
            vec![Line::styled(format!("{text:^width$}"), app.theme.dim)],
            None,
        ));
    }
    let mut view = View::default();
    for (lines, picture) in chunks.into_iter().rev() {
        if let Some(mut placed) = picture {
            placed.row += view.lines.len() as i32;
            view.pictures.push(placed);
        }
        view.lines.extend(lines);
    }
    if view.lines.len() > height {
        let cut = view.lines.len() - height;
        view.lines.drain(..cut);
        for placed in &mut view.pictures {
            placed.row -= cut as i32;
        }
        // Wholly above the view: nothing of it to draw.
        view.pictures.retain(|p| p.row + i32::from(p.size.1) > 0);
    }
    view
}

/// The room an image entry's picture takes under its caption: in the text column, as
/// wide as its thumbnail allows, at most [`MAX_PICTURE_ROWS`] and half the view high.
fn picture_room<'a>(
    app: &App,
    entry: &'a Entry,
    width: usize,
    height: usize,
) -> Option<Placed<'a>> {
    let cell = app.picture_cells?;
    let EntryKind::Message(message) = &entry.kind else {
        return None;
    };
    let Body::Image {
        media,
        thumbnail,
        thumbnail_width,
        thumbnail_height,
        ..
    } = &message.body
    else {
        return None;
    };
    if thumbnail.is_empty() {
        return None;
    }
    let column = time_prefix(app, entry.ts).width() + nick_width(width) + 1;
    let max_columns = width.saturating_sub(column).min(usize::from(u16::MAX)) as u16;
    let max_rows = (height / 2).clamp(1, usize::from(MAX_PICTURE_ROWS)) as u16;
    if max_columns < 4 {
        return None;
    }
    let size = cells_for(
        *thumbnail_width,
        *thumbnail_height,
        cell,
        (max_columns, max_rows),
    );
    Some(Placed {
        key: &media.media_id,
        thumbnail,
        row: 0,
        column: column as u16,
        size,
    })
}

fn run_start(tab: &Tab, index: usize) -> usize {
    let mut start = index;
    while start > 0
        && index - start < MAX_RUN_SCAN
        && matches!(tab.entries[start - 1].kind, EntryKind::Membership { .. })
    {
        start -= 1;
    }
    start
}

fn time_prefix(app: &App, ts: u64) -> String {
    format!(
        "{} ",
        local_time::format(ts, &app.time_zone, &app.config.time_format)
    )
}

fn day_separator(app: &App, ts: u64, width: usize) -> Line<'static> {
    let day = local_time::format(ts, &app.time_zone, " %a %d %b %Y ");
    rule(&day, width, app.theme.dim)
}

/// The line above the first message not read yet, as WeeChat and irssi draw it.
fn unread_line(app: &App, width: usize) -> Line<'static> {
    rule(" new ", width, app.theme.mention)
}

/// `label` centred on a horizontal rule across `width`.
fn rule(label: &str, width: usize, style: Style) -> Line<'static> {
    let side = width.saturating_sub(label.width()) / 2;
    Line::styled(
        format!("{}{label}{}", "─".repeat(side), "─".repeat(side)),
        style,
    )
}

/// One line for a run of joins and leaves (Alt-J expands it).
fn collapsed(app: &App, tab: &Tab, first: usize, last: usize, width: usize) -> Line<'static> {
    // Each user once, by where they ended up: someone who left and came back (or came
    // and went) is one name, not "bob, bob".
    let mut users: Vec<(&str, bool, bool)> = Vec::new(); // (user, first event, last event)
    for entry in tab.entries.range(first..=last) {
        if let EntryKind::Membership { user, joined } = &entry.kind {
            match users.iter_mut().find(|(u, _, _)| u == user) {
                Some(seen) => seen.2 = *joined,
                None => users.push((user.as_str(), *joined, *joined)),
            }
        }
    }
    let group = |first: bool, last: bool| -> Vec<&str> {
        users
            .iter()
            .filter(|(_, f, l)| *f == first && *l == last)
            .map(|(u, _, _)| *u)
            .collect()
    };
    let mut parts = Vec::new();
    for (names, what) in [
        (group(true, true), "joined"),
        (group(false, false), "left"),
        (group(false, true), "left and came back"),
        (group(true, false), "came and went"),
    ] {
        if !names.is_empty() {
            parts.push(format!("{} {what}", names.join(", ")));
        }
    }
    let prefix = format!(
        "{}{:>nick_width$} ",
        time_prefix(app, tab.entries[last].ts),
        "-->",
        nick_width = nick_width(width),
    );
    let text = truncate(
        &format!("{} (Alt-J)", parts.join("; ")),
        width.saturating_sub(prefix.width()),
    );
    Line::styled(format!("{prefix}{text}"), app.theme.dim)
}

fn nick_style(app: &App, message: &ChatMessage) -> Style {
    if message.own {
        return app.theme.own.add_modifier(Modifier::BOLD);
    }
    if app.theme.accent.fg.is_none() {
        return app.theme.bold;
    }
    let hash = message.from.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    Style::new()
        .fg(NICK_COLORS[hash % NICK_COLORS.len()])
        .add_modifier(Modifier::BOLD)
}

fn entry_lines(
    app: &App,
    entry: &Entry,
    previous: Option<&Entry>,
    width: usize,
) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let time = time_prefix(app, entry.ts);
    let (nick, nick_style, segments): (String, Style, Vec<(String, Style)>) = match &entry.kind {
        EntryKind::Message(message) => {
            // A line after an action (`* alice waves`) names its sender again: under a
            // `*` an empty name column would read as the action's continuation.
            let grouped = previous.is_some_and(|p| {
                p.message().is_some_and(|pm| {
                    pm.from == message.from
                        && !matches!(pm.body, Body::Action(_))
                        && entry.ts.saturating_sub(p.ts) < GROUP_WINDOW_MS
                }) && local_time::day(p.ts, &app.time_zone)
                    == local_time::day(entry.ts, &app.time_zone)
            });
            let text_style = if message.mention {
                theme.mention
            } else {
                Style::new()
            };
            let mut segments = Vec::new();
            if message.offline {
                segments.push(("[offline] ".to_string(), theme.dim));
            }
            let named = if grouped {
                String::new()
            } else {
                message.from.clone()
            };
            let nick = match &message.body {
                Body::Text(text) => {
                    segments.extend(super::links::segments(text, text_style, theme.link));
                    named
                }
                Body::Action(text) => {
                    segments.push((
                        format!("{} {text}", message.from),
                        text_style.add_modifier(Modifier::ITALIC),
                    ));
                    "*".to_string()
                }
                body => {
                    segments.push((attachment(body), theme.accent));
                    named
                }
            };
            if let Some(mark) = &message.mark {
                let style = match mark {
                    crate::tui::tab::Mark::Pending => theme.dim,
                    m if m.retryable() => theme.error,
                    _ => theme.ok,
                };
                segments.push((format!(" {}", mark.label()), style));
            }
            (nick, nick_style(app, message), segments)
        }
        EntryKind::Membership { user, joined } => {
            let (arrow, verb) = if *joined {
                ("-->", "joined")
            } else {
                ("<--", "left")
            };
            (
                arrow.to_string(),
                theme.dim,
                vec![(format!("{user} {verb}"), theme.dim)],
            )
        }
        EntryKind::Info(text) => ("--".to_string(), theme.dim, vec![(text.clone(), theme.dim)]),
        EntryKind::Error(text) => (
            "!!".to_string(),
            theme.error,
            vec![(text.clone(), theme.error)],
        ),
    };
    let nick_width = nick_width(width);
    let nick = truncate(&nick, nick_width);
    let pad = nick_width.saturating_sub(nick.width());
    let prefix_width = time.width() + nick_width + 1;
    let body = wrap(&segments, width.saturating_sub(prefix_width).max(8));
    body.into_iter()
        .enumerate()
        .map(|(i, line)| {
            let mut spans = if i == 0 {
                vec![
                    Span::styled(time.clone(), theme.dim),
                    Span::raw(" ".repeat(pad)),
                    Span::styled(nick.clone(), nick_style),
                    Span::raw(" "),
                ]
            } else {
                vec![Span::raw(" ".repeat(prefix_width))]
            };
            spans.extend(line.spans);
            Line::from(spans)
        })
        .collect()
}

/// The line for a raw message, a file or an image: what it is, its size, and how to save it.
fn attachment(body: &Body) -> String {
    // Names come from other users: no control characters reach the terminal.
    let clean = |name: &str| -> String { name.chars().filter(|c| !c.is_control()).collect() };
    let what = match body {
        Body::Raw { description, data } if description.is_empty() => {
            format!("raw data, {}", human_size(data.len() as u64))
        }
        Body::Raw { description, data } => {
            format!("{description}, {}", human_size(data.len() as u64))
        }
        Body::File(media) => format!("file {}, {}", clean(&media.name), human_size(media.size)),
        Body::Image {
            media,
            width,
            height,
            ..
        } => format!(
            "image {}, {width}×{height}, {}",
            clean(&media.name),
            human_size(media.size)
        ),
        Body::Text(text) | Body::Action(text) => text.clone(),
    };
    format!("[{what}] (/save)")
}
