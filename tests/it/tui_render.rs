//! The TUI's state machine and rendering without a terminal: `App::update` driven by
//! actions, drawn into ratatui's `TestBackend` at a fixed size with a fixed clock, and
//! compared with insta snapshots (login form, tabs, member list, marks, help).

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use rtm::protocol::{ChangeReason, ConnectionState, Event, HistoryMessage, Message, SendResult};
use rtm::tui::action::{Action, Effect, KeyAction};
use rtm::tui::app::overlay::Overlay;
use rtm::tui::app::transfers::TransferUpdate;
use rtm::tui::app::{App, Screen};
use rtm::tui::config::Theme;
use rtm::tui::job::{Failure, InviteJob, Job, JobOutput};
use rtm::tui::render;
use rtm::tui::target::Target;

use crate::support::tui_app::{app_on, asked, log_in, logged_in_as, NOW};

fn app(app_id: &str, user: &str) -> App {
    app_on(app_id, user, "ws://127.0.0.1:7420/rtm/v1")
}

fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| drop(render::draw(frame, app)))
        .unwrap();
    terminal.backend().to_string()
}

fn type_text(app: &mut App, text: &str) -> Vec<Effect> {
    let mut effects = Vec::new();
    for c in text.chars() {
        effects.extend(app.update(Action::Insert(c)));
    }
    effects
}

fn enter(app: &mut App, line: &str) -> Vec<Effect> {
    let mut effects = type_text(app, line);
    effects.extend(app.update(Action::Key(KeyAction::Submit)));
    effects
}

/// The requests among `effects`.
fn requests(effects: &[Effect]) -> Vec<Job> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Job(_, request) => Some(request.clone()),
            _ => None,
        })
        .collect()
}

/// Whether `effects` ask for `request`.
fn asks(effects: &[Effect], request: &Job) -> bool {
    requests(effects).contains(request)
}

/// Answers the request among `effects` that `pick` chooses.
fn answer(
    app: &mut App,
    effects: &[Effect],
    pick: impl Fn(&Job) -> bool,
    result: Result<JobOutput, Failure>,
) -> Vec<Effect> {
    let id = asked(effects, pick);
    app.update(Action::Done(id, result))
}

/// The server lets us in `channel`, asked in `effects`, with `count` members.
fn joined(app: &mut App, effects: &[Effect], channel: &str, count: u64) -> Vec<Effect> {
    let join = Job::Join(channel.into());
    answer(app, effects, |r| *r == join, Ok(JobOutput::Joined(count)))
}

/// A message of `from` in a history page.
fn history_message(id: u64, from: &str, text: &str, ts: u64) -> HistoryMessage {
    HistoryMessage {
        message_id: id,
        from: from.into(),
        message: Message::text(text),
        server_ts: ts,
    }
}

/// The server answers the history request among `effects` with `messages`.
fn answer_history(app: &mut App, effects: &[Effect], messages: Vec<HistoryMessage>) {
    answer(
        app,
        effects,
        |r| matches!(r, Job::History { .. }),
        Ok(JobOutput::History(messages)),
    );
}

/// A logged-in app as alice, connected.
fn logged_in() -> App {
    logged_in_as("demo", "alice")
}

fn channel_message(channel: &str, from: &str, text: &str, id: u64, ts: u64) -> Action {
    Action::Server(Event::MessageFromChannel {
        channel: channel.into(),
        from: from.into(),
        message: Message::text(text),
        message_id: id,
        server_ts: ts,
    })
}

fn peer_message(from: &str, text: &str, id: u64, offline: bool) -> Action {
    Action::Server(Event::MessageFromPeer {
        from: from.into(),
        message: Message::text(text),
        message_id: id,
        server_ts: NOW - 60_000,
        offline,
    })
}

/// alice in #lobby with bob and carol, some talk, and a peer tab from dave.
fn lobby() -> App {
    let mut app = logged_in();
    let effects = enter(&mut app, "/join lobby");
    let effects = joined(&mut app, &effects, "lobby", 3);
    let members = vec!["carol".into(), "alice".into(), "bob".into()];
    answer(
        &mut app,
        &effects,
        |r| matches!(r, Job::Members(_)),
        Ok(JobOutput::Members(members)),
    );
    let history = vec![history_message(
        1,
        "bob",
        "yesterday's news",
        NOW - 86_400_000,
    )];
    answer_history(&mut app, &effects, history);
    app.update(channel_message(
        "lobby",
        "bob",
        "morning all ☕",
        2,
        NOW + 60_000,
    ));
    app.update(channel_message(
        "lobby",
        "bob",
        "the build is green again 🚀",
        3,
        NOW + 70_000,
    ));
    app.update(channel_message("lobby", "carol", "alice: can you review my patch? It is a long line that must wrap nicely onto the next line.", 4, NOW + 200_000));
    app.update(Action::Server(Event::MemberJoined {
        channel: "lobby".into(),
        user: "dave".into(),
    }));
    app.update(peer_message("erin", "psst, alice", 9, false));
    app
}

#[test]
fn login_form_validates_as_you_type_and_shows_the_servers_answer() {
    let mut app = app("demo", "");
    assert_eq!(app.screen, Screen::Login);
    type_text(&mut app, "null");
    insta::assert_snapshot!("login_invalid_user", draw(&app, 80, 24));
    for _ in 0..4 {
        app.update(Action::Key(KeyAction::Backspace));
    }
    type_text(&mut app, "alice");
    let effects = app.update(Action::Key(KeyAction::Submit));
    let login = asked(
        &effects,
        |r| matches!(r, Job::Login { user, .. } if user == "alice"),
    );
    app.update(Action::Done(
        login,
        Err(Failure::new(Some(5), "invalid token")),
    ));
    assert_eq!(app.screen, Screen::Login);
    insta::assert_snapshot!("login_refused", draw(&app, 80, 24));
}

#[test]
fn tabs_messages_and_member_list() {
    let mut app = lobby();
    insta::assert_snapshot!("lobby_100x30", draw(&app, 100, 30));
    insta::assert_snapshot!("lobby_80x24", draw(&app, 80, 24));
    // The member list is filterable and updated from member events.
    enter(&mut app, "/members ca");
    app.update(Action::Server(Event::MemberLeft {
        channel: "lobby".into(),
        user: "bob".into(),
    }));
    let screen = draw(&app, 100, 30);
    assert!(screen.contains("carol"));
    assert!(!screen.contains("│bob"));
}

#[test]
fn marks_follow_the_result_codes() {
    let mut app = logged_in();
    enter(&mut app, "/query bob");
    let mut sends = Vec::new();
    for text in ["one", "two", "three", "four", "five", "six"] {
        for effect in enter(&mut app, text) {
            if let Effect::Job(id, Job::SendPeer { .. }) = effect {
                sends.push(id);
            }
        }
    }
    let ok = |id| {
        Ok(JobOutput::Sent(SendResult {
            message_id: id,
            server_ts: NOW,
        }))
    };
    let results = [
        ok(10),
        Err(Failure::new(
            Some(4),
            "cached by server for offline delivery",
        )),
        Err(Failure::new(Some(3), "peer unreachable")),
        Err(Failure::new(Some(2), "timed out")),
        Err(Failure::new(None, "disconnected from the server")),
    ];
    for (id, result) in sends.iter().zip(results) {
        app.update(Action::Done(*id, result));
    }
    insta::assert_snapshot!("marks", draw(&app, 100, 20));
    // /retry resends the newest failed one, pending again; its answer marks it.
    let effects = enter(&mut app, "/retry");
    assert_eq!(
        requests(&effects),
        [Job::SendPeer {
            peer: "bob".into(),
            message: Message::text("five"),
        }]
    );
    assert!(draw(&app, 100, 20).contains("five …"));
    answer(&mut app, &effects, |_| true, ok(11));
    assert!(draw(&app, 100, 20).contains("five ✓"));
}

#[test]
fn help_overlay_comes_from_the_keymap() {
    let mut app = lobby();
    app.update(Action::Insert('?'));
    assert!(matches!(app.overlay, Some(Overlay::Help { .. })));
    let screen = draw(&app, 100, 30);
    insta::assert_snapshot!("help", screen);
    app.update(Action::Key(KeyAction::Cancel));
    assert!(app.overlay.is_none());
}

#[test]
fn navigation_mentions_and_title() {
    let mut app = lobby();
    // Tabs: rtm, #lobby, @erin. A mention in a background tab counts, rings, titles.
    app.update(Action::Key(KeyAction::GoTo(1)));
    let effects = app.update(channel_message("lobby", "bob", "hey alice!", 5, NOW));
    assert!(effects.contains(&Effect::Bell));
    assert!(effects.contains(&Effect::Title("(2) rtm-tui — alice".into())));
    assert_eq!(app.tabs[1].mentions, 1);
    assert_eq!(app.tabs[2].unread, 1);
    // Alt-A goes to mentions first, then to unread.
    app.update(Action::Key(KeyAction::NextActivity));
    assert_eq!(app.tabs.active(), 1);
    assert_eq!(app.tabs[1].mentions, 0);
    app.update(Action::Key(KeyAction::NextActivity));
    assert_eq!(app.tabs.active(), 2);
    // Ctrl-K on an empty line opens the switcher; typing filters; Enter switches.
    app.update(Action::Key(KeyAction::KillToEnd));
    type_text(&mut app, "lob");
    assert_eq!(app.switcher_matches(), vec![1]);
    app.update(Action::Key(KeyAction::Submit));
    assert_eq!(app.tabs.active(), 1);
}

#[test]
fn scrolling_up_loads_older_history() {
    let mut app = logged_in();
    let effects = enter(&mut app, "/query bob");
    let page: Vec<HistoryMessage> = (100..150)
        .map(|id| history_message(id, "bob", &format!("message {id}"), NOW - 1000 * (200 - id)))
        .collect();
    let history = Job::History {
        target: Target::Peer("bob".into()),
        before: None,
    };
    answer(
        &mut app,
        &effects,
        |r| *r == history,
        Ok(JobOutput::History(page)),
    );
    app.update(Action::Resize(100, 30));
    let first = app.update(Action::Key(KeyAction::PageUp));
    assert!(first.is_empty(), "{first:?}");
    let effects = app.update(Action::Key(KeyAction::PageUp));
    assert!(asks(
        &effects,
        &Job::History {
            target: Target::Peer("bob".into()),
            before: Some(100),
        }
    ));
    assert!(draw(&app, 100, 30).contains("↓ scrolled back (PgDn, Esc)"));
    app.update(Action::Key(KeyAction::PageDown));
    app.update(Action::Key(KeyAction::PageDown));
    assert_eq!(app.active_tab().scroll, 0);
    assert!(!draw(&app, 100, 30).contains("scrolled back"));
}

#[test]
fn big_pastes_ask_first_and_offline_messages_are_marked() {
    let mut app = logged_in();
    app.update(peer_message("bob", "sent while you were away", 3, true));
    app.update(Action::Key(KeyAction::GoTo(2)));
    assert!(draw(&app, 100, 20).contains("[offline] sent while you were away"));
    app.update(Action::Paste("1\n2\n3\n4\n5\n6\n7".into()));
    assert!(matches!(app.overlay, Some(Overlay::PasteConfirm { .. })));
    let effects = app.update(Action::Key(KeyAction::Submit));
    assert!(
        matches!(&requests(&effects)[..], [Job::SendPeer { message, .. }] if message.summary().lines().count() == 7)
    );
    app.update(Action::Paste("short\npaste".into()));
    assert!(app.overlay.is_none());
    assert_eq!(app.input.text(), "short\npaste");
}

#[test]
fn reconnecting_shows_a_countdown_and_aborted_says_why() {
    let mut app = logged_in();
    app.update(Action::Connection {
        state: ConnectionState::Reconnecting,
        reason: ChangeReason::Interrupted,
        retry_in_ms: Some(4_000),
    });
    assert!(app.needs_tick());
    assert!(draw(&app, 100, 20).contains("[reconnecting in 4s] connection lost"));
    app.now_ms += 1_500;
    app.update(Action::Tick);
    assert!(draw(&app, 100, 20).contains("reconnecting in 3s"));
    app.update(Action::Connection {
        state: ConnectionState::Aborted,
        reason: ChangeReason::RemoteLogin,
        retry_in_ms: None,
    });
    let screen = draw(&app, 100, 20);
    assert!(screen.contains("[session ended] you logged in somewhere else"));
    assert!(!screen.contains("ABORTED") && !screen.contains("REMOTE_LOGIN"));
    assert!(screen.contains("you logged in somewhere else"));
}

/// Several servers in the Server field: the login goes out with all of them, the status
/// line names the one in use, and a failover to another says so.
#[test]
fn several_servers_show_the_one_in_use() {
    let mut app = app_on("demo", "alice", "10.0.0.1:7420, ws://10.0.0.2:7420");
    let effects = app.submit_login();
    assert!(
        matches!(&requests(&effects)[..], [Job::Login { server, .. }]
            if server == "ws://10.0.0.1:7420/rtm/v1,ws://10.0.0.2:7420/rtm/v1"),
        "{effects:?}"
    );
    let connected = || Action::Connection {
        state: ConnectionState::Connected,
        reason: ChangeReason::LoginSuccess,
        retry_in_ms: None,
    };
    app.update(Action::ConnectedTo("ws://10.0.0.1:7420/rtm/v1".into()));
    app.update(connected());
    log_in(&mut app, &effects);
    assert!(draw(&app, 140, 20).contains("[connected] on 10.0.0.1:7420 · alice@demo"));
    app.update(Action::Connection {
        state: ConnectionState::Reconnecting,
        reason: ChangeReason::Interrupted,
        retry_in_ms: Some(500),
    });
    let screen = draw(&app, 140, 20);
    assert!(!screen.contains(" on 10.0.0.1"), "{screen}");
    app.update(Action::ConnectedTo("ws://10.0.0.2:7420/rtm/v1".into()));
    app.update(connected());
    let screen = draw(&app, 140, 20);
    assert!(screen.contains("[connected] on 10.0.0.2:7420"), "{screen}");
    assert!(
        screen.contains("now on ws://10.0.0.2:7420/rtm/v1"),
        "{screen}"
    );
    enter(&mut app, "/status");
    let screen = draw(&app, 140, 20);
    assert!(
        screen.contains("alice in app demo on ws://10.0.0.2:7420/rtm/v1 (rtm-tui/0.1.0)"),
        "{screen}"
    );
    assert!(
        screen.contains(
            "servers, tried in turn: ws://10.0.0.1:7420/rtm/v1, ws://10.0.0.2:7420/rtm/v1"
        ),
        "{screen}"
    );

    // One server: nothing more on the status line than before.
    let mut app = logged_in();
    app.update(Action::ConnectedTo("ws://127.0.0.1:7420/rtm/v1".into()));
    assert!(draw(&app, 140, 20).contains("[connected] · alice@demo"));
}

#[test]
fn call_invitations_prompt_with_a_countdown() {
    let mut app = logged_in();
    let effects = app.update(Action::Server(Event::InvitationReceived {
        invitation_id: "inv-1".into(),
        caller: "bob".into(),
        content: "quick sync?".into(),
        channel: Some("standup".into()),
    }));
    assert!(effects.contains(&Effect::Bell));
    app.now_ms += 15_000;
    app.update(Action::Tick);
    // The prompt does not take the keyboard: "hello there" (with its r and a) goes on
    // the line being typed; the prompt and the footer name the same chords.
    let effects = type_text(&mut app, "hello there");
    assert!(effects.is_empty(), "{effects:?}");
    assert!(app.calls.incoming.is_some());
    assert_eq!(app.input.text(), "hello there");
    insta::assert_snapshot!("invitation", draw(&app, 100, 24));
    let effects = app.update(Action::Key(KeyAction::AcceptCall));
    assert_eq!(app.input.text(), "hello there");
    assert_eq!(
        requests(&effects),
        [Job::Invite(InviteJob::Answer {
            answer: rtm::protocol::InvitationAnswer::Accept,
            id: "inv-1".into(),
            caller: "bob".into(),
            response: String::new(),
        })]
    );
    assert!(app.overlay.is_none());
    // A second invitation that nobody answers expires after 60 s.
    app.update(Action::Server(Event::InvitationReceived {
        invitation_id: "inv-2".into(),
        caller: "bob".into(),
        content: String::new(),
        channel: None,
    }));
    app.update(Action::Key(KeyAction::Cancel));
    assert!(draw(&app, 100, 24).contains("call waiting"));
    app.now_ms += 61_000;
    app.update(Action::Tick);
    assert!(app.calls.incoming.is_none());
    app.update(Action::Key(KeyAction::GoTo(2)));
    assert!(draw(&app, 100, 24).contains("the call invitation expired"));
}

#[test]
fn channel_attributes_presence_and_raw_messages() {
    let mut app = lobby();
    app.update(Action::Key(KeyAction::GoTo(2)));
    let effects = enter(&mut app, "/cattr set topic release on Friday");
    let topic = [("topic".to_string(), "release on Friday".to_string())].into();
    assert_eq!(
        requests(&effects),
        [Job::ChangeChannelAttributes {
            channel: "lobby".into(),
            write: rtm::protocol::AttributeWrite::AddOrUpdate(topic),
        }]
    );
    app.update(Action::Server(Event::ChannelAttributesUpdated {
        channel: "lobby".into(),
        attributes: vec![rtm::protocol::ChannelAttribute {
            key: "topic".into(),
            value: "release on Friday".into(),
            updated_by: "alice".into(),
            updated_ts: NOW,
        }],
    }));
    let screen = draw(&app, 100, 30);
    assert!(
        screen.contains("#lobby · 4 members · release on Friday"),
        "{screen}"
    );

    // Presence: /who asks, the peer tab header shows the answer and later changes.
    app.update(Action::Key(KeyAction::GoTo(3)));
    let effects = enter(&mut app, "/who");
    assert_eq!(
        requests(&effects),
        [Job::QueryPresence(vec!["erin".into()])]
    );
    let online = vec![("erin".into(), rtm::protocol::PeerStatus::Online)];
    answer(
        &mut app,
        &effects,
        |_| true,
        Ok(JobOutput::Presence(online)),
    );
    assert!(draw(&app, 100, 30).contains("@erin · online"));

    // Raw messages: shown as description and size, saved with /save, sent with /raw.
    app.update(Action::Server(Event::MessageFromPeer {
        from: "erin".into(),
        message: Message::raw(&[7u8; 2048], "notes.bin"),
        message_id: 10,
        server_ts: NOW,
        offline: false,
    }));
    assert!(draw(&app, 100, 30).contains("[notes.bin, 2.0 KiB] (/save)"));
    let effects = enter(&mut app, "/save /tmp/notes.bin");
    assert!(
        matches!(&requests(&effects)[..], [Job::SaveFile { path: Some(path), name, data }] if path.as_os_str() == "/tmp/notes.bin" && name == "notes.bin" && data.len() == 2048)
    );
    let effects = enter(&mut app, "/raw ./photo.png");
    assert_eq!(requests(&effects), [Job::ReadRawFile("./photo.png".into())]);
    let effects = answer(
        &mut app,
        &effects,
        |_| true,
        Ok(JobOutput::File(vec![1, 2, 3])),
    );
    assert!(
        matches!(&requests(&effects)[..], [Job::SendPeer { peer, message }] if peer == "erin" && message.raw_bytes() == Some(vec![1, 2, 3]))
    );
}

#[test]
fn a_call_you_place_can_be_hung_up() {
    let mut app = logged_in();
    let effects = enter(&mut app, "/call bob standup?");
    // Opening the @bob tab also asks for history and presence.
    let [.., Job::Invite(InviteJob::Send {
        id, peer, content, ..
    })] = &requests(&effects)[..]
    else {
        panic!("{effects:?}");
    };
    assert_eq!((peer.as_str(), content.as_str()), ("bob", "standup?"));
    let effects = enter(&mut app, "/hangup");
    assert_eq!(
        requests(&effects),
        [Job::Invite(InviteJob::Cancel {
            id: id.clone(),
            peer: "bob".into(),
        })]
    );
    enter(&mut app, "/hangup");
    assert!(draw(&app, 100, 20).contains("no call from this tab is waiting"));
}

#[test]
fn offline_messages_that_overtake_the_login_reply_stay() {
    let mut app = app("demo", "alice");
    let login = app.submit_login();
    // The client delivers cached messages right after the login reply; they may reach the
    // app before the login's own answer does.
    let effects = app.update(peer_message("bob", "while you were out, alice", 3, true));
    // The new tab's history stops before the message it shows already.
    assert!(asks(
        &effects,
        &Job::History {
            target: Target::Peer("bob".into()),
            before: Some(3),
        }
    ));
    log_in(&mut app, &login);
    assert_eq!(app.tabs.len(), 2);
    assert_eq!(app.tabs[1].mentions, 1);
    app.update(Action::Key(KeyAction::GoTo(2)));
    assert!(draw(&app, 100, 20).contains("[offline] while you were out, alice"));
}

#[test]
fn the_config_file_changes_keys_time_format_and_bell() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "bell = false\ntime_format = \"%H:%M:%S\"\nutc_offset = \"+02:00\"\n[keys]\n\"f5\" = \"switcher\"\n",
    )
    .unwrap();
    let options = rtm::tui::Options {
        app_id: Some("demo".into()),
        user: Some("alice".into()),
        config: Some(path),
        ..rtm::tui::Options::default()
    };
    let mut app = rtm::tui::build_app(&options).unwrap();
    app.now_ms = NOW;
    assert!(app
        .keymap
        .help_rows()
        .iter()
        .any(|(keys, what)| keys.contains("F5") && what.contains("switcher")));
    let effects = app.submit_login();
    log_in(&mut app, &effects);
    let effects = app.update(peer_message("bob", "alice, look", 1, false));
    assert!(!effects.contains(&Effect::Bell), "bell = false");
    app.update(Action::Key(KeyAction::GoTo(2)));
    // 09:59:00 UTC at +02:00.
    assert!(draw(&app, 100, 20).contains("11:59:00        bob alice, look"));
    // A bad file is an error that names the problem, not a silent default.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[keys]\n\"f5\" = \"fly\"\n").unwrap();
    let error = rtm::tui::build_app(&rtm::tui::Options {
        config: Some(bad),
        ..rtm::tui::Options::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("fly"), "{error}");
}

#[test]
fn any_terminal_size_draws_without_panicking() {
    let mut app = lobby();
    let login = app_with_form();
    for (w, h) in [(1, 1), (5, 3), (20, 5), (40, 10), (80, 24), (300, 100)] {
        draw(&app, w, h);
        draw(&login, w, h);
        app.update(Action::Key(KeyAction::Help));
        draw(&app, w, h);
        app.update(Action::Key(KeyAction::Cancel));
        app.update(Action::Key(KeyAction::Switcher));
        draw(&app, w, h);
        app.update(Action::Key(KeyAction::Cancel));
    }
}

fn app_with_form() -> App {
    app("", "")
}

#[test]
fn no_color_means_no_colours_on_screen() {
    let mut app = lobby();
    app.theme = Theme::monochrome();
    app.update(channel_message(
        "lobby",
        "bob",
        "alice: ping",
        20,
        NOW + 300_000,
    ));
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    terminal
        .draw(|frame| drop(render::draw(frame, &app)))
        .unwrap();
    let buffer = terminal.backend().buffer();
    let coloured = buffer
        .content()
        .iter()
        .filter(|cell| {
            cell.fg != ratatui::style::Color::Reset || cell.bg != ratatui::style::Color::Reset
        })
        .count();
    assert_eq!(coloured, 0);
}

#[test]
fn an_expiry_warning_asks_for_a_fresh_token() {
    let mut app = logged_in();
    let effects = app.update(Action::Server(Event::TokenPrivilegeWillExpire {
        expires_at: NOW / 1000 + 30,
    }));
    assert!(asks(&effects, &Job::RenewToken(None)));
    assert!(draw(&app, 100, 20).contains("your token expires at 10:00:30"));
}

#[test]
fn server_queries_default_to_the_current_tab() {
    use rtm::tui::job::QueryJob;
    let mut app = lobby();
    assert_eq!(
        requests(&enter(&mut app, "/count")),
        [Job::Query(QueryJob::MemberCount(vec!["lobby".into()]))]
    );
    assert_eq!(
        requests(&enter(&mut app, "/count a \"b c\"")),
        [Job::Query(QueryJob::MemberCount(vec![
            "a".into(),
            "b c".into()
        ]))]
    );
    assert_eq!(
        requests(&enter(&mut app, "/subscribed")),
        [Job::Query(QueryJob::Subscribed)]
    );
    assert_eq!(
        requests(&enter(&mut app, "/ping")),
        [Job::Query(QueryJob::Ping)]
    );
    // Outside a channel tab, /count needs a channel.
    app.update(Action::Key(rtm::tui::action::KeyAction::PrevTab));
    assert_eq!(enter(&mut app, "/count"), vec![]);
    assert!(draw(&app, 100, 30).contains("usage: /count <channel>..."));
}

#[test]
fn you_joined_comes_before_what_arrived_while_the_join_was_answered() {
    let mut app = logged_in();
    let effects = enter(&mut app, "/join lobby");
    // The client library answers a join after one more round trip; events of people who
    // joined right after us can arrive first.
    app.update(Action::Server(Event::MemberJoined {
        channel: "lobby".into(),
        user: "bob".into(),
    }));
    joined(&mut app, &effects, "lobby", 1);
    let screen = draw(&app, 100, 30);
    let you = screen.find("you joined #lobby (1 member)").expect(&screen);
    let bob = screen.find("bob joined").expect(&screen);
    assert!(you < bob, "{screen}");
}

// ----- issue 12: what a new user trips on -----

/// The state first, then what needs attention; the server and notes are `/status` away
/// (issue 12, item 2).
#[test]
fn the_status_line_puts_the_state_and_what_needs_you_first() {
    let mut app = lobby();
    app.update(Action::Notice(
        "embedded server on 127.0.0.1:7420 (data in /home/alice/.local/share/rtm-tui)".into(),
    ));
    app.update(Action::Key(KeyAction::GoTo(2)));
    for i in 0..40 {
        app.update(channel_message(
            "lobby",
            "bob",
            &format!("line {i}"),
            100 + i,
            NOW + 1_000 * i,
        ));
    }
    app.update(Action::Key(KeyAction::PageUp));
    let screen = draw(&app, 120, 35);
    insta::assert_snapshot!("status_line_120x35", screen);
    let status = screen.lines().nth(32).unwrap();
    assert!(
        status.contains("[connected]") && status.contains("scrolled back (PgDn, Esc)"),
        "{status}"
    );
    assert!(!status.contains("embedded server"), "{status}");
    // The details are one command away.
    app.update(Action::Key(KeyAction::GoTo(1)));
    enter(&mut app, "/status");
    let screen = draw(&app, 120, 35);
    assert!(screen.contains("alice in app demo on ws://127.0.0.1:7420/rtm/v1 (rtm-tui/0.1.0)"));
    assert!(screen.contains("connection connected: logged in (CONNECTED, LOGIN_SUCCESS)"));
}

/// `/join #lobby` joins `lobby`, shown `#lobby` (issue 12, item 3).
#[test]
fn the_channel_sigil_is_not_part_of_the_id() {
    let mut app = logged_in();
    let effects = enter(&mut app, "/join #lobby");
    assert!(asks(&effects, &Job::Join("lobby".into())), "{effects:?}");
    let screen = draw(&app, 100, 20);
    assert!(
        screen.contains("#lobby") && !screen.contains("##lobby"),
        "{screen}"
    );
    joined(&mut app, &effects, "lobby", 1);
    let effects = enter(&mut app, "/msg #lobby hi all");
    assert!(
        requests(&effects)
            .iter()
            .any(|r| matches!(r, Job::SendChannel { channel, .. } if channel == "lobby")),
        "{effects:?}"
    );
    assert!(asks(
        &enter(&mut app, "/leave #lobby"),
        &Job::Leave("lobby".into())
    ));
}

/// `/login` while logged in: Esc goes back, Enter as the same user goes back, Shift-Tab
/// moves back a field; after `/logout` the cursor is in the user field (issue 12, item 4).
#[test]
fn the_login_form_never_traps_a_logged_in_user() {
    let mut app = logged_in();
    enter(&mut app, "/login");
    assert_eq!(app.screen, Screen::Login);
    assert!(draw(&app, 80, 24).contains("Esc back to the chat"));
    app.update(Action::Key(KeyAction::Cancel));
    assert_eq!(app.screen, Screen::Main);
    enter(&mut app, "/login");
    let effects = app.update(Action::Key(KeyAction::Submit));
    assert!(
        !requests(&effects)
            .iter()
            .any(|r| matches!(r, Job::Login { .. })),
        "{effects:?}"
    );
    assert_eq!(app.screen, Screen::Main);
    // Another user: a login (the loop logs the first one out before it).
    enter(&mut app, "/login");
    let focus = app.login.focus;
    app.update(Action::Key(KeyAction::PrevTab));
    assert_eq!(
        app.login.focus,
        (focus + 3) % 4,
        "Shift-Tab goes back a field"
    );
    app.update(Action::Key(KeyAction::Complete));
    assert_eq!(app.login.focus, focus);
    // Logged out: the next person starts in the user field.
    app.update(Action::Key(KeyAction::Cancel));
    let effects = enter(&mut app, "/logout");
    answer(
        &mut app,
        &effects,
        |r| *r == Job::Logout,
        Ok(JobOutput::Done),
    );
    app.update(Action::Connection {
        state: ConnectionState::Disconnected,
        reason: ChangeReason::Logout,
        retry_in_ms: None,
    });
    assert_eq!(app.screen, Screen::Login);
    assert_eq!(app.login.focus, rtm::tui::login::USER);
    // Not logged in any more: Esc clears the field rather than leaving.
    app.update(Action::Key(KeyAction::Cancel));
    assert_eq!(app.screen, Screen::Login);
    assert_eq!(app.login.value(rtm::tui::login::USER), "");
}

/// At 60x15 the tab list shrinks to numbers and the member list goes, so messages keep
/// room to be read (issue 12, item 7).
#[test]
fn narrow_screens_give_the_messages_room() {
    let mut app = lobby();
    app.update(Action::Key(KeyAction::GoTo(2)));
    let screen = draw(&app, 60, 15);
    insta::assert_snapshot!("lobby_60x15", screen);
    assert!(screen.contains("the build is green again"), "{screen}");
    assert!(!screen.contains("Members"), "{screen}");
}

/// A paste that ends with a newline sends no empty last line (issue 12, item 10).
#[test]
fn a_paste_ending_in_a_newline_sends_no_empty_line() {
    let mut app = logged_in();
    enter(&mut app, "/query bob");
    app.update(Action::Paste("first\r\nsecond\r\n".into()));
    assert_eq!(app.input.text(), "first\nsecond");
    let effects = app.update(Action::Key(KeyAction::Submit));
    assert!(
        matches!(&requests(&effects)[..], [Job::SendPeer { message, .. }] if message.summary() == "first\nsecond"),
        "{effects:?}"
    );
    let screen = draw(&app, 80, 20);
    assert!(!screen.lines().any(|l| l.trim() == "…"), "{screen}");
}

/// A flag is drawn in a form of one width everywhere, in messages and the input line
/// (issue 12, item 11).
#[test]
fn flags_are_drawn_with_one_width_everywhere() {
    let mut app = logged_in();
    enter(&mut app, "/query bob");
    app.update(peer_message("bob", "off to 🇯🇵 next week 👨‍👩‍👧", 5, false));
    type_text(&mut app, "have fun in 🇯🇵");
    let screen = draw(&app, 80, 12);
    insta::assert_snapshot!("flags", screen);
    assert!(screen.contains("off to [JP] next week 👨"), "{screen}");
    assert!(!screen.contains('🇵'), "{screen}");
    assert!(screen.contains("> have fun in [JP]"), "{screen}");
}

/// Words people read: plurals, one line per person for comings and goings, kicks in
/// words, no lone full stop, wrapped help, no ✗ before anything is typed (item 12).
#[test]
fn wording_reads_well() {
    let mut app = logged_in();
    let effects = enter(&mut app, "/join solo");
    joined(&mut app, &effects, "solo", 1);
    assert!(draw(&app, 100, 20).contains("#solo · 1 member "));
    for joined in [true, false, true, false] {
        let event = if joined {
            Event::MemberJoined {
                channel: "solo".into(),
                user: "bob".into(),
            }
        } else {
            Event::MemberLeft {
                channel: "solo".into(),
                user: "bob".into(),
            }
        };
        app.update(Action::Server(event));
    }
    app.update(Action::Server(Event::MemberJoined {
        channel: "solo".into(),
        user: "carol".into(),
    }));
    let screen = draw(&app, 100, 20);
    assert!(
        screen.contains("--> carol joined; bob came and went (Alt-J)"),
        "{screen}"
    );
    assert!(!screen.contains("bob, bob"), "{screen}");
    app.update(Action::Server(Event::Kicked {
        reason: rtm::protocol::KickReason::RemoteLogin,
    }));
    app.update(Action::Connection {
        state: ConnectionState::Aborted,
        reason: ChangeReason::RemoteLogin,
        retry_in_ms: None,
    });
    app.update(Action::Key(KeyAction::GoTo(1)));
    let screen = draw(&app, 60, 20);
    assert!(!screen.contains("RemoteLogin"), "{screen}");
    // Said once (the kick and the ABORTED that follows are one event to a person), in
    // words: no REMOTE_LOGIN.
    assert!(screen.contains("session ended: you logged in"), "{screen}");
    assert!(!screen.contains("the server ended this"), "{screen}");
    assert!(!screen.contains("REMOTE_LOGIN"), "{screen}");
    assert!(!screen.lines().any(|l| l.trim() == "."), "{screen}");
    insta::assert_snapshot!("wording_60x20", screen);
    // Help wraps its long lines instead of cutting them.
    app.update(Action::Key(KeyAction::Help));
    let help = draw(&app, 60, 40);
    assert!(
        help.contains("│  Tab                   complete a /command, user or      │"),
        "{help}"
    );
    assert!(
        help.contains("│                        channel                           │"),
        "{help}"
    );
    for _ in 0..3 {
        app.update(Action::Key(KeyAction::PageDown));
    }
    let help = draw(&app, 60, 40);
    assert!(help.contains("/msg <peer|#channel> [text]"), "{help}");
    assert!(help.contains("if given"), "{help}");
    // A fresh login form has no ✗ until something is typed; a long problem is shown whole.
    let mut form = app_with_form();
    let screen = draw(&form, 80, 24);
    assert!(!screen.contains('✗'), "{screen}");
    type_text(&mut form, "/");
    let screen = draw(&form, 80, 24);
    insta::assert_snapshot!("login_slash", screen);
}

/// What goes stale: the header after /leave, marks of a reopened tab, `✓ cached` once the
/// peer is online, a channel attribute that is gone (issue 12, item 13).
#[test]
fn nothing_stale_stays_on_screen() {
    let mut app = lobby();
    app.update(Action::Key(KeyAction::GoTo(2)));
    // A server that does not tell us of our own change: the app reads the attributes again.
    let read_again = |r: &Job| *r == Job::GetChannelAttributes("lobby".into());
    let effects = enter(&mut app, "/cattr set topic release");
    let effects = answer(&mut app, &effects, |_| true, Ok(JobOutput::Done));
    let topic = vec![rtm::protocol::ChannelAttribute {
        key: "topic".into(),
        value: "release".into(),
        updated_by: "alice".into(),
        updated_ts: NOW,
    }];
    answer(
        &mut app,
        &effects,
        read_again,
        Ok(JobOutput::ChannelAttributes(topic)),
    );
    assert!(draw(&app, 100, 20).contains("· release"));
    // Deleted: the header does not keep it.
    let effects = enter(&mut app, "/cattr del topic");
    assert!(
        matches!(
            &requests(&effects)[..],
            [Job::ChangeChannelAttributes { .. }]
        ),
        "{effects:?}"
    );
    let effects = answer(&mut app, &effects, |_| true, Ok(JobOutput::Done));
    answer(
        &mut app,
        &effects,
        read_again,
        Ok(JobOutput::ChannelAttributes(vec![])),
    );
    assert!(!draw(&app, 100, 20).contains("· release"));
    app.update(Action::Server(Event::ChannelAttributesUpdated {
        channel: "lobby".into(),
        attributes: vec![rtm::protocol::ChannelAttribute {
            key: "topic".into(),
            value: "again".into(),
            updated_by: "bob".into(),
            updated_ts: NOW,
        }],
    }));
    assert!(draw(&app, 100, 20).contains("· again"));
    assert!(draw(&app, 100, 20).contains("bob changed the topic to: again"));
    // Left: nothing about the channel is news any more; no stale topic or count.
    let effects = enter(&mut app, "/leave");
    answer(&mut app, &effects, |_| true, Ok(JobOutput::Done));
    let screen = draw(&app, 100, 20);
    assert!(screen.contains("#lobby · not joined"), "{screen}");
    assert!(
        !screen.contains("members ·") && !screen.contains("· again"),
        "{screen}"
    );

    // A peer message received, and one cached.
    enter(&mut app, "/query bob");
    let mut sends = Vec::new();
    for text in ["got it?", "later then"] {
        let effects = enter(&mut app, text);
        sends.push(asked(&effects, |r| matches!(r, Job::SendPeer { .. })));
    }
    let received = JobOutput::Sent(SendResult {
        message_id: 40,
        server_ts: NOW + 5,
    });
    app.update(Action::Done(sends[0], Ok(received)));
    app.update(Action::Done(sends[1], Err(Failure::new(Some(4), "cached"))));
    app.update(Action::Server(Event::PeersOnlineStatus {
        peers: rtm::client::OrderedPeers::from([(
            "bob".into(),
            rtm::protocol::PeerStatus::Offline,
        )]),
    }));
    assert!(draw(&app, 100, 20).contains("later then ✓ cached"));
    app.update(Action::Server(Event::PeersOnlineStatus {
        peers: rtm::client::OrderedPeers::from([("bob".into(), rtm::protocol::PeerStatus::Online)]),
    }));
    let screen = draw(&app, 100, 20);
    assert!(
        screen.contains("later then ✓") && !screen.contains("✓ cached"),
        "{screen}"
    );
    // Closed and opened again: the history brings the message back with its mark.
    enter(&mut app, "/close");
    let effects = enter(&mut app, "/query bob");
    let history = vec![history_message(40, "alice", "got it?", NOW + 5)];
    answer_history(&mut app, &effects, history);
    assert!(draw(&app, 100, 20).contains("got it? ✓"));
}

/// Ctrl-C clears a half-typed line; on an empty line it quits (issue 12, item 14).
#[test]
fn ctrl_c_clears_the_line_before_it_quits() {
    let mut app = logged_in();
    type_text(&mut app, "half a tho");
    let effects = app.update(Action::Key(KeyAction::Quit));
    assert!(!effects.contains(&Effect::Quit));
    assert!(!app.quit);
    assert_eq!(app.input.text(), "");
    let effects = app.update(Action::Key(KeyAction::Quit));
    assert!(effects.contains(&Effect::Quit));
}

/// A rejoin (after a reconnect or a server restart) of someone already listed shows no
/// "joined" line (issue 11, item 5); someone new does.
#[test]
fn a_rejoin_of_a_listed_member_shows_nothing() {
    let mut app = lobby();
    app.update(Action::Key(KeyAction::GoTo(2)));
    let before = app.active_tab().entries.len();
    app.update(Action::Server(Event::MemberJoined {
        channel: "lobby".into(),
        user: "bob".into(),
    }));
    assert_eq!(app.active_tab().entries.len(), before);
    // Back from RECONNECTING: the member lists are read again.
    app.update(Action::Connection {
        state: ConnectionState::Reconnecting,
        reason: ChangeReason::Interrupted,
        retry_in_ms: Some(1_000),
    });
    let effects = app.update(Action::Connection {
        state: ConnectionState::Connected,
        reason: ChangeReason::LoginSuccess,
        retry_in_ms: None,
    });
    assert!(asks(&effects, &Job::Members("lobby".into())), "{effects:?}");
}

/// A message typed while RECONNECTING stays pending (`…`) and takes its mark when the
/// queued send is answered after the re-login; a new message that reuses an id of a server
/// that started over is shown, a repeat is not (issue 11, items 3 and 5).
#[test]
fn messages_typed_while_reconnecting_and_ids_that_start_over() {
    let mut app = lobby();
    app.update(Action::Key(KeyAction::GoTo(2)));
    app.update(Action::Connection {
        state: ConnectionState::Reconnecting,
        reason: ChangeReason::Interrupted,
        retry_in_ms: Some(8_000),
    });
    let sent = enter(&mut app, "typed while away");
    assert!(
        matches!(&requests(&sent)[..], [Job::SendChannel { channel, .. }] if channel == "lobby"),
        "{sent:?}"
    );
    assert!(draw(&app, 100, 20).contains("typed while away …"));
    let effects = enter(&mut app, "/reconnect");
    assert!(effects.contains(&Effect::Reconnect), "{effects:?}");
    let result = Ok(JobOutput::Sent(SendResult {
        message_id: 1,
        server_ts: NOW + 500_000,
    }));
    answer(&mut app, &sent, |_| true, result);
    assert!(draw(&app, 100, 20).contains("typed while away ✓"));
    // Id 2 was "morning all ☕" on the old store; on the new one it is another message.
    app.update(channel_message(
        "lobby",
        "bob",
        "fresh store, id two",
        2,
        NOW + 600_000,
    ));
    app.update(channel_message(
        "lobby",
        "bob",
        "fresh store, id two",
        2,
        NOW + 600_000,
    ));
    let screen = draw(&app, 100, 20);
    assert_eq!(screen.matches("fresh store, id two").count(), 1, "{screen}");
}

// The second pass of a demanding user (issue 20): one test per item, at a fixed size and
// clock, each failing on the code before its fix.

/// alice's lobby (`lobby()`) with the #lobby tab in front.
fn in_lobby() -> App {
    let mut app = lobby();
    app.update(Action::Key(KeyAction::GoTo(2)));
    app
}

fn topic_event(channel: &str, value: &str, by: &str) -> Action {
    Action::Server(Event::ChannelAttributesUpdated {
        channel: channel.into(),
        attributes: vec![rtm::protocol::ChannelAttribute {
            key: "topic".into(),
            value: value.into(),
            updated_by: by.into(),
            updated_ts: NOW,
        }],
    })
}

fn connection(state: ConnectionState, reason: ChangeReason) -> Action {
    Action::Connection {
        state,
        reason,
        retry_in_ms: (state == ConnectionState::Reconnecting).then_some(2_000),
    }
}

/// The header line (the first of the message view) of a 100-column screen.
fn header(app: &App) -> String {
    draw(app, 100, 20).lines().next().unwrap().to_string()
}

/// Item 1: a login after a kick follows the peer tabs' presence again; what was shown of
/// it is not kept once nobody follows it; a peer that talks is online.
#[test]
fn presence_is_followed_again_after_a_new_login() {
    let mut app = logged_in();
    let effects = enter(&mut app, "/msg bob");
    assert!(effects.contains(&Effect::Subscribe(vec!["bob".into()])));
    app.update(Action::Server(Event::PeersOnlineStatus {
        peers: [("bob".to_string(), rtm::protocol::PeerStatus::Online)].into(),
    }));
    assert!(header(&app).contains("@bob · online"), "{}", header(&app));
    app.update(connection(
        ConnectionState::Aborted,
        ChangeReason::RemoteLogin,
    ));
    assert!(header(&app).contains("@bob · presence unknown"));
    enter(&mut app, "/login");
    let effects = app.update(Action::Key(KeyAction::Submit));
    app.update(connection(
        ConnectionState::Connected,
        ChangeReason::LoginSuccess,
    ));
    let effects = log_in(&mut app, &effects);
    assert!(
        effects.contains(&Effect::Subscribe(vec!["bob".into()])),
        "{effects:?}"
    );
    // The server says unreachable, bob's client acknowledges a message: he is online.
    app.update(Action::Server(Event::PeersOnlineStatus {
        peers: [("bob".to_string(), rtm::protocol::PeerStatus::Unreachable)].into(),
    }));
    let effects = enter(&mut app, "hi bob");
    let ok = JobOutput::Sent(SendResult {
        message_id: 1,
        server_ts: NOW,
    });
    answer(&mut app, &effects, |_| true, Ok(ok));
    let screen = draw(&app, 100, 20);
    assert!(screen.contains("@bob · online"), "{screen}");
    assert!(screen.contains("hi bob ✓"), "{screen}");
}

/// Items 2 and 7: after a reconnect the channel's attributes are read again (a restarted
/// server forgot the topic), the channel tab says the connection went and came back, and
/// members coming back (or we ourselves) are not news.
#[test]
fn a_reconnect_shows_in_channel_tabs_and_forgets_a_stale_topic() {
    let mut app = in_lobby();
    app.update(topic_event("lobby", "Welcome to the lobby!", "bob"));
    assert!(header(&app).contains("· Welcome to the lobby!"));
    app.update(connection(
        ConnectionState::Reconnecting,
        ChangeReason::Interrupted,
    ));
    let effects = app.update(connection(
        ConnectionState::Connected,
        ChangeReason::LoginSuccess,
    ));
    let attributes = |r: &Job| *r == Job::GetChannelAttributes("lobby".into());
    answer(
        &mut app,
        &effects,
        attributes,
        Ok(JobOutput::ChannelAttributes(vec![])),
    );
    // The restarted server knows only us so far; the others come back one by one.
    answer(
        &mut app,
        &effects,
        |r| matches!(r, Job::Members(_)),
        Ok(JobOutput::Members(vec!["alice".into()])),
    );
    for user in ["alice", "bob", "carol"] {
        app.update(Action::Server(Event::MemberJoined {
            channel: "lobby".into(),
            user: user.into(),
        }));
    }
    let screen = draw(&app, 100, 20);
    insta::assert_snapshot!("reconnect_in_a_channel", screen);
    assert!(!header(&app).contains("Welcome"), "{screen}");
    assert!(
        screen.contains("-- connection lost; reconnecting…"),
        "{screen}"
    );
    assert!(screen.contains("-- reconnected"), "{screen}");
    // Nothing after "reconnected": nobody "joined".
    let lines: Vec<&str> = screen.lines().collect();
    let back = lines
        .iter()
        .position(|l| l.contains("-- reconnected"))
        .unwrap();
    assert!(lines[back + 1].starts_with("\"[connected]"), "{screen}");
    enter(&mut app, "/members");
    assert!(draw(&app, 100, 20).contains("│bob"));
}

/// Item 10: failures in words, without result codes.
#[test]
fn failures_are_said_in_words_without_codes() {
    let mut app = in_lobby();
    let effects = enter(&mut app, "anyone?");
    answer(
        &mut app,
        &effects,
        |_| true,
        Err(Failure::new(Some(5), "not in channel")),
    );
    let effects = enter(&mut app, "/call bob");
    answer(
        &mut app,
        &effects,
        |r| matches!(r, Job::Invite(_)),
        Err(Failure::new(Some(1), "peer offline")),
    );
    app.update(Action::Key(KeyAction::GoTo(2)));
    let screen = draw(&app, 100, 20);
    assert!(screen.contains("anyone? ✗ not in channel"), "{screen}");
    assert!(!screen.contains("(5)"), "{screen}");
    app.update(Action::Key(KeyAction::GoTo(4)));
    let screen = draw(&app, 100, 20);
    assert!(screen.contains("!! peer offline"), "{screen}");
    assert!(!screen.contains("(1)"), "{screen}");
}

/// Item 8: a topic change is said once, with its value, to the one who set it and to the
/// others; `/topic` shows and sets it.
#[test]
fn a_topic_change_is_said_once_with_its_value() {
    let mut app = in_lobby();
    app.update(topic_event("lobby", "release on Friday", "bob"));
    assert!(draw(&app, 100, 20).contains("-- bob changed the topic to: release on Friday"));
    let effects = enter(&mut app, "/topic hi all");
    let topic = [("topic".to_string(), "hi all".to_string())].into();
    assert_eq!(
        requests(&effects),
        [Job::ChangeChannelAttributes {
            channel: "lobby".into(),
            write: rtm::protocol::AttributeWrite::AddOrUpdate(topic),
        }]
    );
    let effects = answer(&mut app, &effects, |_| true, Ok(JobOutput::Done));
    app.update(topic_event("lobby", "hi all", "alice"));
    let attributes = vec![rtm::protocol::ChannelAttribute {
        key: "topic".into(),
        value: "hi all".into(),
        updated_by: "alice".into(),
        updated_ts: NOW,
    }];
    answer(
        &mut app,
        &effects,
        |_| true,
        Ok(JobOutput::ChannelAttributes(attributes)),
    );
    enter(&mut app, "/topic");
    let screen = draw(&app, 100, 20);
    assert_eq!(
        screen.matches("you changed the topic to: hi all").count(),
        1,
        "{screen}"
    );
    assert!(!screen.contains("updated"), "{screen}");
    assert!(
        screen.contains("-- topic: hi all (set by alice)"),
        "{screen}"
    );
    assert!(header(&app).contains("#lobby · 4 members · hi all"));
}

/// Item 22: `/who` in a channel asks about its members.
#[test]
fn who_in_a_channel_lists_its_members() {
    let mut app = in_lobby();
    let effects = enter(&mut app, "/who");
    let members = ["alice", "bob", "carol", "dave"].map(String::from).to_vec();
    assert_eq!(requests(&effects), [Job::QueryPresence(members)]);
    let online = vec![
        ("bob".into(), rtm::protocol::PeerStatus::Online),
        ("carol".into(), rtm::protocol::PeerStatus::Offline),
    ];
    answer(
        &mut app,
        &effects,
        |_| true,
        Ok(JobOutput::Presence(online)),
    );
    let screen = draw(&app, 100, 20);
    assert!(
        screen.contains("bob is online, carol is offline"),
        "{screen}"
    );
}

/// Item 3: a message after an action names its sender again.
#[test]
fn a_line_after_an_action_names_its_sender() {
    let mut app = in_lobby();
    app.update(channel_message(
        "lobby",
        "bob",
        "/me waves at everyone",
        10,
        NOW + 300_000,
    ));
    app.update(channel_message(
        "lobby",
        "bob",
        "carol: welcome back",
        11,
        NOW + 301_000,
    ));
    let screen = draw(&app, 100, 20);
    assert!(screen.contains("* bob waves at everyone"), "{screen}");
    assert!(screen.contains("bob carol: welcome back"), "{screen}");
}

/// Item 4: a call without a message ends its line without a colon.
#[test]
fn a_call_without_a_message_has_no_dangling_colon() {
    let mut app = logged_in();
    app.update(Action::Server(Event::InvitationReceived {
        invitation_id: "inv-1".into(),
        caller: "bob".into(),
        content: String::new(),
        channel: None,
    }));
    app.update(Action::Key(KeyAction::Cancel));
    app.update(Action::Key(KeyAction::GoTo(2)));
    let screen = draw(&app, 100, 20);
    assert!(screen.contains("-- bob is calling you "), "{screen}");
    assert!(!screen.contains("calling you:"), "{screen}");
}

/// Item 6: a message over the size limit is counted as it is typed and not sent; nothing
/// typed is lost.
#[test]
fn a_message_over_the_limit_is_counted_and_not_sent() {
    let mut app = in_lobby();
    app.update(Action::Paste("x".repeat(40_000)));
    let screen = draw(&app, 100, 20);
    assert!(
        screen.contains("40000/32768 bytes too long to send"),
        "{screen}"
    );
    let effects = app.update(Action::Key(KeyAction::Submit));
    assert!(requests(&effects).is_empty(), "{effects:?}");
    assert_eq!(app.input.text().len(), 40_000);
    let screen = draw(&app, 100, 20);
    assert!(
        screen.contains("!! not sent: 40000 bytes, over the limit of 32768"),
        "{screen}"
    );
    app.update(Action::Key(KeyAction::Cancel));
    app.update(Action::Paste("y".repeat(5_000)));
    assert!(draw(&app, 100, 20).contains("5000/32768 bytes  Enter send"));
}

/// Item 9: quotes group the words of a value; they are not part of it.
#[test]
fn quotes_around_an_attribute_value_are_not_stored() {
    let mut app = logged_in();
    let effects = enter(&mut app, "/attr set status \"in a meeting\"");
    let status = [("status".to_string(), "in a meeting".to_string())].into();
    assert_eq!(
        requests(&effects),
        [Job::ChangeUserAttributes(
            rtm::protocol::AttributeWrite::AddOrUpdate(status)
        )]
    );
}

/// Item 11: F1 explains the tab list's marks.
#[test]
fn help_explains_the_tab_list() {
    let mut app = lobby();
    app.update(Action::Key(KeyAction::Help));
    let screen = draw(&app, 100, 100);
    assert!(screen.contains("The tab list"), "{screen}");
    assert!(
        screen.contains("3 @bob @1 3     a peer tab: 1 mention of you among 3 unread"),
        "{screen}"
    );
    assert!(
        screen.contains("narrow screens: unread, or a mention"),
        "{screen}"
    );
}

/// Item 12: Ctrl-K offers the tab with something new first.
#[test]
fn the_switcher_offers_the_tab_with_activity() {
    let mut app = in_lobby();
    app.update(Action::Key(KeyAction::KillToEnd));
    app.update(Action::Key(KeyAction::Submit));
    assert_eq!(app.active_tab().name(), "@erin");
    // Nothing new anywhere: the tab in front before.
    app.update(Action::Key(KeyAction::KillToEnd));
    app.update(Action::Key(KeyAction::Submit));
    assert_eq!(app.active_tab().name(), "#lobby");
}

/// Item 13: the paste question and the footer name the same keys the same way.
#[test]
fn the_paste_question_and_the_footer_agree() {
    let mut app = in_lobby();
    app.update(Action::Paste("1\n2\n3\n4\n5\n6".into()));
    let screen = draw(&app, 100, 24);
    assert_eq!(screen.matches("Esc drop").count(), 2, "{screen}");
    assert!(!screen.contains("not now"), "{screen}");
}

/// Item 14: scrolled back, the status line counts new messages, not lines.
#[test]
fn scrolled_back_the_status_line_counts_new_messages() {
    let mut app = in_lobby();
    app.update(Action::Key(KeyAction::PageUp));
    app.update(channel_message("lobby", "bob", "news", 20, NOW + 400_000));
    let screen = draw(&app, 100, 20);
    assert!(screen.contains("↓ 1 new message (PgDn, Esc)"), "{screen}");
    app.update(Action::Key(KeyAction::PageDown));
    app.update(Action::Key(KeyAction::PageDown));
    assert!(!draw(&app, 100, 20).contains("new message"));
}

/// Item 15: our peer messages that the history of a new run brings back keep their ✓.
#[test]
fn own_peer_messages_from_history_keep_their_mark() {
    let mut app = logged_in();
    let effects = enter(&mut app, "/msg bob");
    let history = vec![history_message(
        7,
        "alice",
        "sent last week",
        NOW - 3_600_000,
    )];
    answer_history(&mut app, &effects, history);
    assert!(draw(&app, 100, 20).contains("sent last week ✓"));
}

/// Item 16: a skin tone is shown, not dropped.
#[test]
fn a_skin_tone_is_shown() {
    let mut app = logged_in();
    app.update(peer_message("bob", "👍🏽 done", 1, false));
    app.update(Action::Key(KeyAction::GoTo(2)));
    let screen = draw(&app, 100, 20);
    assert!(screen.contains("👍(medium skin) done"), "{screen}");
    // No cluster of the tone with what comes before it (it spans columns a redraw left
    // stray): the modifier itself is not drawn.
    assert!(!screen.contains('🏽'), "{screen}");
}

/// Item 17: a narrow screen: F2 answers with the members, cut lines end in "…", and the
/// time and name keep less of the width.
#[test]
fn a_narrow_screen_says_what_it_cannot_show() {
    let mut app = lobby();
    app.size = (50, 20);
    app.update(Action::Key(KeyAction::GoTo(2)));
    app.update(topic_event(
        "lobby",
        "Welcome to the lobby! Be kind, and read the FAQ first",
        "bob",
    ));
    app.show_members = false;
    app.update(Action::Key(KeyAction::ToggleMembers));
    let screen = draw(&app, 50, 20);
    insta::assert_snapshot!("narrow_50x20", screen);
    assert!(
        screen.contains("too narrow for the member list;"),
        "{screen}"
    );
    let header = screen.lines().next().unwrap();
    assert!(
        header.trim_end().trim_end_matches('"').ends_with('…'),
        "{header}"
    );
    let footer = screen.lines().last().unwrap();
    assert!(
        footer.trim_end().trim_end_matches('"').ends_with('…'),
        "{footer}"
    );
    // The text of a message starts at most 14 columns into the message view.
    let line = screen.lines().find(|l| l.contains("morning all")).unwrap();
    let view = line.find('│').unwrap() + '│'.len_utf8();
    let text = line.find("morning").unwrap();
    assert!(line[view..text].chars().count() <= 14, "{line}");
}

/// Item 19: a refused connection names the server typed, not another port.
#[test]
fn a_refused_connection_names_the_server() {
    let mut app = app_on("demo", "alice", "127.0.0.1:7431");
    let effects = app.submit_login();
    let refused = "cannot connect: IO error: Connection refused (os error 111)";
    answer(
        &mut app,
        &effects,
        |_| true,
        Err(Failure::new(None, refused)),
    );
    let screen = draw(&app, 80, 24);
    assert!(
        screen.contains("nothing listens on 127.0.0.1:7431"),
        "{screen}"
    );
    assert!(!screen.contains("os error"), "{screen}");
}

/// Item 21: a line marks where the unread messages of a tab begin, until the tab is left.
#[test]
fn a_line_marks_where_the_unread_messages_begin() {
    let mut app = lobby();
    app.update(Action::Key(KeyAction::GoTo(1)));
    app.update(channel_message(
        "lobby",
        "bob",
        "first unread",
        20,
        NOW + 400_000,
    ));
    app.update(channel_message(
        "lobby",
        "carol",
        "second",
        21,
        NOW + 401_000,
    ));
    app.update(Action::Key(KeyAction::GoTo(2)));
    let screen = draw(&app, 100, 20);
    insta::assert_snapshot!("unread_marker", screen);
    let lines: Vec<&str> = screen.lines().collect();
    let marker = lines.iter().position(|l| l.contains("─ new ─")).unwrap();
    assert!(lines[marker + 1].contains("first unread"), "{screen}");
    app.update(Action::Key(KeyAction::GoTo(1)));
    app.update(Action::Key(KeyAction::GoTo(2)));
    assert!(!draw(&app, 100, 20).contains("─ new ─"));
}

/// The notifications asked for among `effects`.
fn notifications(effects: &[Effect]) -> Vec<(String, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify { title, body } => Some((title.clone(), body.clone())),
            _ => None,
        })
        .collect()
}

/// Item 24: mentions and peer messages out of sight ask for a desktop notification;
/// what is in front of a focused terminal, or with `notify = "off"`, does not.
#[test]
fn mentions_and_peer_messages_out_of_sight_notify() {
    let mut app = in_lobby();
    let effects = app.update(peer_message("erin", "lunch?", 30, false));
    assert_eq!(
        notifications(&effects),
        [("erin".to_string(), "lunch?".to_string())]
    );
    let effects = app.update(channel_message("lobby", "bob", "plain talk", 31, NOW + 1));
    assert!(notifications(&effects).is_empty());
    let effects = app.update(channel_message("lobby", "bob", "alice, look", 32, NOW + 2));
    assert!(notifications(&effects).is_empty(), "in front and focused");
    app.update(Action::Focus(false));
    let effects = app.update(channel_message("lobby", "bob", "alice?", 33, NOW + 3));
    assert_eq!(
        notifications(&effects),
        [("#lobby: bob".to_string(), "alice?".to_string())]
    );
    app.config.notify = rtm::tui::notify::NotifyMode::Off;
    let effects = app.update(peer_message("erin", "still there?", 34, false));
    assert!(notifications(&effects).is_empty());
}

/// Item 25: `/renew [token]`, `/call bob #room`, and `/attr` with several keys or
/// replacing them all.
#[test]
fn renew_call_into_a_channel_and_several_attributes() {
    let mut app = lobby();
    let effects = enter(&mut app, "/renew 007fresh");
    assert_eq!(
        requests(&effects),
        [Job::RenewToken(Some("007fresh".into()))]
    );
    answer(
        &mut app,
        &effects,
        |_| true,
        Ok(JobOutput::Text("token renewed".into())),
    );
    let effects = enter(&mut app, "/renew");
    assert_eq!(requests(&effects), [Job::RenewToken(None)]);

    let effects = enter(&mut app, "/call bob #lobby pair on the review?");
    let [.., Job::Invite(InviteJob::Send {
        peer,
        channel,
        content,
        ..
    })] = &requests(&effects)[..]
    else {
        panic!("{effects:?}");
    };
    assert_eq!(
        (peer.as_str(), channel.as_deref(), content.as_str()),
        ("bob", Some("lobby"), "pair on the review?")
    );
    assert!(draw(&app, 100, 20).contains("-- calling bob into #lobby… (/hangup to cancel)"));

    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    let effects = enter(&mut app, "/attr set mood=happy status=\"in a meeting\"");
    assert_eq!(
        requests(&effects),
        [Job::ChangeUserAttributes(
            rtm::protocol::AttributeWrite::AddOrUpdate(
                [pair("mood", "happy"), pair("status", "in a meeting")].into()
            )
        )]
    );
    let effects = enter(&mut app, "/attr replace mood=calm");
    assert_eq!(
        requests(&effects),
        [Job::ChangeUserAttributes(
            rtm::protocol::AttributeWrite::Set([pair("mood", "calm")].into())
        )]
    );
    let effects = enter(&mut app, "/attr del mood status");
    assert_eq!(
        requests(&effects),
        [Job::ChangeUserAttributes(
            rtm::protocol::AttributeWrite::Delete(vec!["mood".into(), "status".into()])
        )]
    );
    enter(&mut app, "/attr set mood");
    assert!(draw(&app, 100, 20).contains("usage: /attr"));
}

/// Item 23: Ctrl-R (or `/search`) searches the tab's messages; Enter shows the one chosen
/// in the tab; PgUp brings older history into the search.
#[test]
fn search_finds_messages_and_reaches_into_history() {
    let mut app = in_lobby();
    app.update(Action::Key(KeyAction::Search));
    type_text(&mut app, "BUILD");
    let screen = draw(&app, 100, 24);
    insta::assert_snapshot!("search", screen);
    assert!(
        screen.contains("25 Nov 10:01 bob: the build is green again"),
        "{screen}"
    );
    assert!(
        screen.contains("1 match · all of the history searched"),
        "{screen}"
    );
    app.update(Action::Key(KeyAction::Submit));
    assert!(app.overlay.is_none());
    let screen = draw(&app, 100, 24);
    let last_message = screen.lines().rfind(|l| l.contains("│10:")).unwrap();
    assert!(
        last_message.contains("the build is green again"),
        "{screen}"
    );
    assert!(screen.contains("↓ scrolled back"), "{screen}");

    // A peer tab with more history on the server: PgUp in the search fetches it.
    let mut app = logged_in();
    let effects = enter(&mut app, "/msg bob");
    let page: Vec<HistoryMessage> = (100..150)
        .map(|id| history_message(id, "bob", &format!("note {id}"), NOW - 1_000_000 + id))
        .collect();
    answer_history(&mut app, &effects, page);
    enter(&mut app, "/search invoice");
    assert!(draw(&app, 100, 24).contains("no match · PgUp: search older history too"));
    let effects = app.update(Action::Key(KeyAction::PageUp));
    assert!(asks(
        &effects,
        &Job::History {
            target: Target::Peer("bob".into()),
            before: Some(100),
        }
    ));
    let older = vec![history_message(
        42,
        "bob",
        "the invoice is paid",
        NOW - 5_000_000,
    )];
    answer(&mut app, &effects, |_| true, Ok(JobOutput::History(older)));
    let screen = draw(&app, 100, 24);
    assert!(screen.contains("bob: the invoice is paid"), "{screen}");
    assert!(
        screen.contains("1 match · all of the history searched"),
        "{screen}"
    );
}

/// Item 20: URLs are drawn as links, and every piece of one the wrap had to cut links to
/// the whole URL (the event loop writes them as OSC 8 hyperlinks).
#[test]
fn urls_are_links_even_when_the_wrap_cuts_them() {
    let mut app = in_lobby();
    let url = "https://example.org/builds/2026/11/25/the-very-long-report-of-the-nightly-run.html";
    app.update(channel_message(
        "lobby",
        "bob",
        &format!("report: {url}. read it"),
        20,
        NOW + 400_000,
    ));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut links = Vec::new();
    terminal
        .draw(|frame| links = render::draw(frame, &app))
        .unwrap();
    assert!(links.len() >= 2, "{links:?}");
    assert!(links.iter().all(|l| l.url == url), "{links:?}");
    let drawn: String = links.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(drawn, url);
    // The pieces are where the text is, underlined.
    let buffer = terminal.backend().buffer();
    for link in &links {
        let cell = &buffer[(link.x, link.y)];
        assert_eq!(cell.symbol(), &link.text[..1], "{link:?}");
        assert!(cell.modifier.contains(ratatui::style::Modifier::UNDERLINED));
    }
    // The full stop after the URL is the sentence's, not the link's.
    assert!(!links.iter().any(|l| l.text.ends_with('.')));
}

/// Up past the oldest search result stays on it: Enter shows that one.
#[test]
fn search_up_past_the_oldest_result_stays_on_it() {
    let mut app = in_lobby();
    enter(&mut app, "/search bob");
    for _ in 0..5 {
        app.update(Action::Key(KeyAction::Up));
    }
    app.update(Action::Key(KeyAction::Submit));
    let screen = draw(&app, 100, 24);
    let last_message = screen.lines().rfind(|l| l.contains("│10:")).unwrap();
    assert!(last_message.contains("yesterday's news"), "{screen}");
}

/// An image message as `/image` makes it: a `width` x `height` gradient's thumbnail.
fn image_message(media_id: &str, name: &str, width: u32, height: u32) -> Message {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 200])
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let prepared = rtm::tui::media::prepare_image(&png).unwrap();
    use base64::Engine as _;
    Message::Image {
        media_id: media_id.into(),
        name: name.into(),
        size: png.len() as u64,
        width,
        height,
        thumbnail: base64::engine::general_purpose::STANDARD.encode(&prepared.thumbnail),
        thumbnail_width: prepared.thumbnail_width,
        thumbnail_height: prepared.thumbnail_height,
    }
}

fn from_erin(message: Message, id: u64) -> Action {
    Action::Server(Event::MessageFromPeer {
        from: "erin".into(),
        message,
        message_id: id,
        server_ts: NOW - 1000 + id,
        offline: false,
    })
}

/// The screen with pictures in half blocks, and how many cells of it are picture cells
/// (`▀` or `▄` with colours on both halves) in each row.
fn draw_pictures(app: &App, width: u16, height: u16) -> (String, Vec<usize>) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let mut pictures = rtm::tui::pictures::Pictures::halfblocks();
    terminal
        .draw(|frame| drop(render::draw_with_pictures(frame, app, &mut pictures)))
        .unwrap();
    let buffer = terminal.backend().buffer();
    let rows = (0..height)
        .map(|y| {
            (0..width)
                .filter(|&x| {
                    let cell = &buffer[(x, y)];
                    matches!(cell.symbol(), "▀" | "▄")
                        && matches!(cell.fg, ratatui::style::Color::Rgb(..))
                        && matches!(cell.bg, ratatui::style::Color::Rgb(..))
                })
                .count()
        })
        .collect();
    (terminal.backend().to_string(), rows)
}

#[test]
fn received_images_are_drawn_inline_and_files_are_a_line() {
    let mut app = logged_in();
    enter(&mut app, "/query erin");
    app.update(from_erin(image_message("m1", "shot.png", 640, 480), 1));
    app.update(from_erin(
        Message::File {
            media_id: "m2".into(),
            name: "app.log".into(),
            size: 20 * 1024 * 1024,
        },
        2,
    ));
    let (screen, rows) = draw_pictures(&app, 100, 30);
    assert!(
        screen.contains("[image shot.png, 640×480, ")
            && screen.contains("[file app.log, 20.0 MiB] (/save)"),
        "{screen}"
    );
    // The 320x240 thumbnail in half blocks: 12 rows (the most an image takes) of 32.
    let picture_rows: Vec<usize> = rows.iter().copied().filter(|&n| n > 0).collect();
    assert_eq!(picture_rows, vec![32; 12], "{screen}");
    // The picture sits between its caption and the file's line.
    let lines: Vec<&str> = screen.lines().collect();
    let caption = lines.iter().position(|l| l.contains("shot.png")).unwrap();
    let file = lines.iter().position(|l| l.contains("app.log")).unwrap();
    assert_eq!(file - caption, 13, "{screen}");
    assert!(rows[caption + 1] > 0 && rows[file - 1] > 0 && rows[file] == 0);

    // Without pictures (the config's `images = "off"`), an image is its line only.
    app.picture_cells = None;
    let (screen, rows) = draw_pictures(&app, 100, 30);
    assert!(rows.iter().all(|&n| n == 0));
    let lines: Vec<&str> = screen.lines().collect();
    let caption = lines.iter().position(|l| l.contains("shot.png")).unwrap();
    assert!(lines[caption + 1].contains("app.log"), "{screen}");
}

#[test]
fn an_image_scrolled_half_out_of_view_is_cut_not_lost() {
    let mut app = logged_in();
    enter(&mut app, "/query erin");
    app.update(from_erin(image_message("m1", "shot.png", 640, 480), 1));
    for n in 0..12 {
        app.update(from_erin(Message::text(format!("line {n}")), 10 + n));
    }
    // 100x20: the view has 16 rows, an image takes at most half: 8 rows, of which the
    // 12 lines below leave 4 in view.
    let (screen, rows) = draw_pictures(&app, 100, 20);
    assert!(
        !screen.contains("shot.png"),
        "the caption is above the view: {screen}"
    );
    let shown = rows.iter().filter(|&&n| n > 0).count();
    assert_eq!(shown, 4, "{screen}");
    assert!(screen.contains("line 0") && screen.contains("line 11"));
    // Scrolled back by the text lines: the whole picture and its caption are in view.
    app.update(Action::Wheel(12));
    let (screen, rows) = draw_pictures(&app, 100, 20);
    assert!(screen.contains("shot.png"), "{screen}");
    assert_eq!(rows.iter().filter(|&&n| n > 0).count(), 8, "{screen}");
    // Every size draws without panicking, the picture clipped to what fits.
    for (w, h) in [(20, 6), (45, 10), (60, 8), (200, 60)] {
        draw_pictures(&app, w, h);
    }
}

#[test]
fn a_thumbnail_that_is_not_an_image_is_drawn_as_a_line() {
    let mut app = logged_in();
    enter(&mut app, "/query erin");
    use base64::Engine as _;
    let bogus = Message::Image {
        media_id: "m1".into(),
        name: "trick.png".into(),
        size: 10,
        width: 100_000,
        height: 100_000,
        thumbnail: base64::engine::general_purpose::STANDARD.encode(b"not a picture at all"),
        thumbnail_width: 30_000,
        thumbnail_height: 1,
    };
    app.update(from_erin(bogus, 1));
    let (screen, rows) = draw_pictures(&app, 100, 30);
    assert!(
        screen.contains("[image trick.png, 100000×100000, 10 B]"),
        "{screen}"
    );
    assert!(rows.iter().all(|&n| n == 0), "{screen}");
}

#[test]
fn uploads_show_progress_esc_cancels_and_the_message_goes_when_done() {
    let mut app = logged_in();
    enter(&mut app, "/query erin");
    let effects = enter(&mut app, "/file /var/log/app log.txt");
    assert_eq!(
        requests(&effects),
        [Job::UploadFile("/var/log/app log.txt".into())]
    );
    let id = asked(&effects, |_| true);
    assert!(draw(&app, 100, 30).contains("⇡ app log.txt starting… · Esc cancels"));
    app.update(Action::Transfer(
        id,
        TransferUpdate::Progress {
            done: 5 << 20,
            total: 20 << 20,
        },
    ));
    let screen = draw(&app, 120, 30);
    assert!(
        screen.contains("⇡ app log.txt [██░░░░░░░░] 25% 5.0 MiB of 20.0 MiB · Esc cancels"),
        "{screen}"
    );
    // Esc cancels the transfer (and leaves the line being typed alone).
    type_text(&mut app, "draft");
    let effects = app.update(Action::Key(KeyAction::Cancel));
    assert_eq!(effects, [Effect::CancelTransfer(id)]);
    assert_eq!(app.input.text(), "draft");
    app.update(Action::Done(id, Err(Failure::new(None, "cancelled"))));
    let screen = draw(&app, 100, 30);
    assert!(
        screen.contains("upload of app log.txt cancelled"),
        "{screen}"
    );
    assert!(app.transfers.is_empty());
    // With no transfer, Esc is Esc again.
    app.update(Action::Key(KeyAction::Cancel));
    assert_eq!(app.input.text(), "");

    // /image: a done upload sends the message it gave, to the tab it was typed in.
    let effects = enter(&mut app, "/image ~/shot.png");
    assert_eq!(requests(&effects), [Job::UploadImage("~/shot.png".into())]);
    let image = image_message("m9", "shot.png", 64, 48);
    let effects = answer(
        &mut app,
        &effects,
        |_| true,
        Ok(JobOutput::Uploaded(image.clone())),
    );
    assert_eq!(
        requests(&effects),
        [Job::SendPeer {
            peer: "erin".into(),
            message: image
        }]
    );
    assert!(draw(&app, 100, 30).contains("uploaded shot.png"));

    // A file that is not an image: the note says so, in the tab and the status line.
    let effects = enter(&mut app, "/image notes.txt");
    let id = asked(&effects, |_| true);
    let note =
        "notes.txt is not an image this client reads (PNG, JPEG, GIF, WebP): sending it as a file";
    app.update(Action::Transfer(id, TransferUpdate::Note(note.into())));
    let screen = draw(&app, 250, 30);
    assert_eq!(screen.matches(note).count(), 2, "{screen}");
    // A failure is said in the tab.
    app.update(Action::Done(
        id,
        Err(Failure::new(None, "over the 30 MB limit")),
    ));
    assert!(draw(&app, 100, 30).contains("notes.txt not sent: over the 30 MB limit"));
    // Outside a conversation there is nobody to send to.
    app.update(Action::Key(KeyAction::GoTo(1)));
    let effects = enter(&mut app, "/file x");
    assert!(requests(&effects).is_empty());
    assert!(draw(&app, 100, 30).contains("/file: open a peer or channel tab first"));
}

#[test]
fn save_downloads_the_newest_file_or_image_in_view() {
    let mut app = logged_in();
    enter(&mut app, "/query erin");
    let effects = enter(&mut app, "/save");
    assert!(requests(&effects).is_empty());
    assert!(draw(&app, 100, 30).contains("/save: no file, image or raw message in view"));
    app.update(from_erin(image_message("m1", "shot.png", 64, 48), 1));
    app.update(from_erin(
        Message::File {
            media_id: "m2".into(),
            name: "app.log".into(),
            size: 2048,
        },
        2,
    ));
    for n in 0..3 {
        app.update(from_erin(Message::text(format!("line {n}")), 10 + n));
    }
    let download = |media_id: &str, name: &str, path: Option<&str>| Job::Download {
        media_id: media_id.into(),
        name: name.into(),
        path: path.map(Into::into),
    };
    let effects = enter(&mut app, "/save");
    assert_eq!(requests(&effects), [download("m2", "app.log", None)]);
    let id = asked(&effects, |_| true);
    app.update(Action::Transfer(
        id,
        TransferUpdate::Progress {
            done: 1024,
            total: 2048,
        },
    ));
    assert!(draw(&app, 100, 30).contains("⇣ app.log [█████░░░░░] 50%"));
    let words = "saved app.log (2.0 KiB) to /home/erin/Downloads/app.log";
    app.update(Action::Done(id, Ok(JobOutput::Text(words.into()))));
    let screen = draw(&app, 100, 30);
    // In the tab, and on the status line until the next transfer.
    assert_eq!(screen.matches(words).count(), 2, "{screen}");

    // Scrolled back past the file (3 lines, the file, the saved line): the image is the
    // one in view; Alt-S saves it too.
    app.update(Action::Wheel(5));
    let effects = app.update(Action::Key(KeyAction::SaveMedia));
    assert_eq!(requests(&effects), [download("m1", "shot.png", None)]);
    let effects = enter(&mut app, "/save \"/tmp/my pictures\"");
    assert_eq!(
        requests(&effects),
        [download("m1", "shot.png", Some("/tmp/my pictures"))]
    );
    // A failed download says why, in the tab where the file was.
    let id = asked(&effects, |_| true);
    app.update(Action::Done(
        id,
        Err(Failure::new(None, "unknown or expired media id")),
    ));
    let last = &app.active_tab().entries.back().unwrap().kind;
    assert!(
        matches!(last, rtm::tui::tab::EntryKind::Error(text) if text == "cannot save shot.png: unknown or expired media id"),
        "{last:?}"
    );
}

#[test]
fn the_help_lists_the_media_commands_and_the_save_key() {
    let mut app = logged_in();
    app.update(Action::Key(KeyAction::Help));
    let screen = draw(&app, 120, 80);
    for text in ["/file <path>", "/image <path>", "/save [path]", "Alt-S"] {
        assert!(screen.contains(text), "{text}: {screen}");
    }
}
