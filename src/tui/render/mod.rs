//! Drawing: pure functions from [`App`] to a ratatui frame. Nothing here changes state.
//! `messages.rs` is the scrollback, `panes.rs` the tab list, member list, header, status
//! line, input and footer, `overlays.rs` help, switcher, prompts and the login form,
//! `links.rs` the URLs in messages and where they are drawn.

pub mod links;
mod messages;
mod overlays;
mod panes;
pub mod wrap;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::Frame;

use super::app::{App, Screen};
use super::layout::{pane_widths, TAB_LIST_WIDTH};
use super::pictures::Pictures;

pub use messages::{lines as message_lines, View};

/// Most rows the input grows to with a multi-line message.
const MAX_INPUT_ROWS: u16 = 5;

/// Draws the whole screen for the app's state, leaving images' rows blank; returns where
/// links are drawn, for the terminal to make them hyperlinks (see `links.rs`).
pub fn draw(frame: &mut Frame, app: &App) -> Vec<links::Link> {
    draw_screen(frame, app, None)
}

/// [`draw`], with the images' pictures drawn in their rows.
pub fn draw_with_pictures(
    frame: &mut Frame,
    app: &App,
    pictures: &mut Pictures,
) -> Vec<links::Link> {
    draw_screen(frame, app, Some(pictures))
}

fn draw_screen(frame: &mut Frame, app: &App, pictures: Option<&mut Pictures>) -> Vec<links::Link> {
    let area = frame.area();
    if app.screen == Screen::Login {
        overlays::login(frame, app, area);
        return Vec::new();
    }
    let input_rows = (app.input.line_count() as u16).clamp(1, MAX_INPUT_ROWS);
    let [body, status, input, footer] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(input_rows),
        Constraint::Length(1),
    ])
    .areas(area);
    let tab = app.active_tab();
    let (tabs_width, members_width) =
        pane_widths(area.width, app.show_members && tab.channel().is_some());
    let [tabs_area, view_area, members_area] = Layout::horizontal([
        Constraint::Length(tabs_width),
        Constraint::Min(20),
        Constraint::Length(members_width),
    ])
    .areas(body);
    if tabs_width > 0 {
        panes::tab_list(frame, app, tabs_area, tabs_width < TAB_LIST_WIDTH);
    }
    let [header_area, messages_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(view_area);
    panes::header(frame, app, header_area);
    let View {
        lines,
        pictures: placed,
    } = messages::lines(app, tab, messages_area.width, messages_area.height);
    // Bottom-aligned like every chat client: short scrollbacks sit above the input.
    let top = messages_area.height.saturating_sub(lines.len() as u16);
    let messages_area = Rect {
        y: messages_area.y + top,
        height: messages_area.height - top,
        ..messages_area
    };
    // Under a window, links are the window's business (none).
    let links = if app.overlay.is_none() {
        links::placed(&lines, messages_area, app.theme.link)
    } else {
        Vec::new()
    };
    frame.render_widget(ratatui::widgets::Paragraph::new(lines), messages_area);
    if let Some(pictures) = pictures {
        // Pictures in the terminal's graphics layer would cover a window over them.
        if app.overlay.is_none() || !pictures.is_graphics() {
            pictures.draw(frame, messages_area, &placed);
        }
    }
    if members_width > 0 {
        panes::member_list(frame, app, members_area);
    }
    panes::status_line(frame, app, status);
    panes::input(frame, app, input);
    panes::footer(frame, app, footer);
    overlays::overlay(frame, app, area);
    links
}
