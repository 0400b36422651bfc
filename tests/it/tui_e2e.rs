//! End-to-end: the real `rtm-tui` binary in a real terminal (tmux) against a real server
//! on a free port. Keys go in with `send-keys`; the screen is read with `capture-pane`,
//! polled until the expected text shows (with a timeout, never a fixed sleep). Each test
//! has its own tmux socket and its own RTM_TUI_HOME, so nothing touches the user's files.

use std::time::{Duration, Instant};

use crate::support;
use crate::support::tmux::{Tmux, PROMPT, WAIT};
use rtm::client::{Client, ClientConfig, ClientEvent, Events, SendOptions};
use rtm::protocol::{AttributeWrite, Event, Message};

/// Sends "`what` 1" .. "`what` `count`" to a channel, each accepted by the server.
async fn say(channel: &rtm::client::Channel, what: &str, count: usize) {
    for i in 1..=count {
        let text = Message::text(format!("{what} {i}"));
        channel.send_message(text).await.unwrap();
    }
}

/// The first event that `pick` maps to something, within [`WAIT`].
async fn first_event<T>(
    events: &mut Events,
    what: &str,
    mut pick: impl FnMut(ClientEvent) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("the client's events go on");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_in_a_real_terminal() {
    let server = support::start_server(support::test_config()).await;
    let url = server.url();
    let tmux = Tmux::start("chat");
    tmux.launch("", &url, "alice");
    assert_eq!(tmux.format("#{alternate_on}"), "1");

    // A peer message from a second client lands in a new @bob tab.
    let (bob, _bob_events) = Client::new(ClientConfig::new(url.clone(), "e2e")).unwrap();
    bob.login(None, "bob").await.unwrap();
    bob.send_message_to_peer(
        "alice",
        Message::text("hello from bob"),
        SendOptions::default(),
    )
    .await
    .expect("alice's client acknowledges");
    tmux.wait_for("2 @bob");
    tmux.keys(&["M-2"]);
    tmux.wait_for("hello from bob");

    // /join a channel; a member who joins appears in the member list.
    tmux.line("/join lobby");
    tmux.wait_for("you joined #lobby");
    let lobby = bob.create_channel("lobby").unwrap();
    lobby.join().await.unwrap();
    tmux.wait_for("bob joined");
    tmux.wait_until("bob in the member list", |s| {
        s.lines().any(|l| l.trim_end().ends_with("│bob"))
    });

    // A channel attribute shows in the header, and goes when deleted (the server does not
    // notify the one who changed it: the client reads them again).
    tmux.line("/cattr set topic release");
    tmux.wait_until("the topic in the header", |s| {
        s.lines().next().is_some_and(|l| l.contains("· release"))
    });
    tmux.line("/cattr del topic");
    tmux.wait_until("the topic gone from the header", |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.contains("#lobby") && !l.contains("· release"))
    });

    // Send and see the mark: accepted in the channel, then received / cached by the peer.
    tmux.line("hi all");
    tmux.wait_for("hi all ✓");
    // A link is written again as an OSC 8 hyperlink: the text and the cursor stay right
    // (a terminal without OSC 8, as tmux before 3.4, prints the text alone).
    tmux.line("see https://example.org/r/1 today");
    tmux.wait_for("see https://example.org/r/1 today ✓");
    tmux.wait_until("the cursor back on the input line", |_| {
        tmux.format("#{cursor_x},#{cursor_y}") == "2,28"
    });
    tmux.line("/query bob");
    tmux.line("are you there?");
    tmux.wait_for("are you there? ✓");
    bob.logout().await.unwrap();
    tmux.line("gone already?");
    tmux.wait_for("gone already? ✓ cached");

    // Resize: the screen is drawn again at the new size. tmux cuts the old screen down by
    // itself (the footer and the top rows go; the status line stays, one row too low), so
    // wait for what only the client's redraw gives: the status line on row 21 and the
    // cursor on the input line, row 22.
    tmux.run(&["resize-window", "-x", "80", "-y", "24"]);
    tmux.wait_until("a redraw at 80x24", |s| {
        let lines: Vec<&str> = s.lines().collect();
        lines.len() == 24
            && lines[21].starts_with("[connected]")
            && tmux.format("#{cursor_x},#{cursor_y}") == "2,22"
    });

    // /quit gives the terminal back: no alternate screen, the shell prompt again.
    tmux.line("/quit");
    tmux.wait_for_shell();
    assert_eq!(tmux.format("#{alternate_on}"), "0");
    assert_eq!(tmux.format("#{cursor_flag}"), "1");
    drop(tmux);
    server.shutdown().await;
}

/// A resize and keys that come together both reach the client, with no more input after
/// them: each round stops the client (SIGSTOP), resizes the window and types a letter,
/// then lets it go on (SIGCONT), so the SIGWINCH and the key wait for it together. (The
/// client reads its terminal with crossterm's `use-dev-tty` reader, which polls level-
/// triggered: crossterm's default one, edge-triggered, returns the resize alone when one
/// wakeup brings it with keys, and the keys then wait for more input. That order, the
/// signal before the keys within one wakeup, cannot be forced from outside: this test
/// guards what the user sees, not that race.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_and_keys_that_come_together_both_reach_the_client() {
    let server = support::start_server(support::test_config()).await;
    let tmux = Tmux::start("resize-keys");
    // Under a shell without job control (`sh -c`, kept by the `; true`), so that stopping
    // the client does not hand the terminal back to the pane's interactive shell.
    tmux.line(&format!(
        "sh -c 'RTM_TUI_HOME={} {} --server {} --app-id e2e --user alice; true'",
        tmux.home_path,
        env!("CARGO_BIN_EXE_rtm-tui"),
        server.url()
    ));
    tmux.wait_for("[connected]");
    let child_of = |parent: u32| {
        // The process whose parent is `parent`, from /proc (no tool needed).
        let children = std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                let ppid: u32 = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                (ppid == parent).then_some(pid)
            });
        children
            .min()
            .unwrap_or_else(|| panic!("no child of {parent}"))
    };
    let pane: u32 = tmux.format("#{pane_pid}").parse().expect("a pane pid");
    let client = rustix::process::Pid::from_raw(child_of(child_of(pane)) as i32).expect("a pid");
    let signal = |signal: rustix::process::Signal| {
        rustix::process::kill_process(client, signal).expect("the client takes the signal");
    };
    let mut typed = String::new();
    for (round, letter) in ('a'..='h').enumerate() {
        let (x, y) = if round % 2 == 0 { (90, 26) } else { (100, 30) };
        signal(rustix::process::Signal::STOP);
        let (x_arg, y_arg, key) = (x.to_string(), y.to_string(), letter.to_string());
        tmux.run(&["resize-window", "-x", &x_arg, "-y", &y_arg]);
        tmux.run(&["send-keys", "-l", &key]);
        signal(rustix::process::Signal::CONT);
        typed.push(letter);
        // The redraw at the new size (status line and input line at the bottom) with
        // every letter on the input line.
        tmux.wait_until(&format!("{typed:?} typed and a redraw at {x}x{y}"), |s| {
            let lines: Vec<&str> = s.lines().collect();
            lines.len() == y
                && lines[y - 3].starts_with("[connected]")
                && lines[y - 2].contains(&typed)
        });
    }
    // The letters go (they are no command) and the terminal is given back.
    tmux.keys(&["Enter"]);
    tmux.wait_for("this is the rtm tab");
    tmux.quit();
    server.shutdown().await;
}

/// Inside tmux (`TERM=tmux-256color`) the graphics query goes through tmux's passthrough
/// to the terminal outside; in a detached tmux with passthrough off nobody answers. The
/// first keys typed then still reach the input line (they went to a reader left waiting
/// for the answer), and pictures fall back to half blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_keys_reach_the_input_line_when_the_terminal_never_answers() {
    let server = support::start_server(support::test_config()).await;
    let tmux = Tmux::start("no-answer");
    tmux.launch("TERM=tmux-256color", &server.url(), "alice");
    tmux.run(&["send-keys", "-l", "abc"]);
    tmux.wait_until("the first keys on the input line", |s| {
        s.lines().any(|line| line.starts_with("> abc"))
    });
    tmux.run(&["send-keys", "-l", "def"]);
    tmux.wait_until("the next keys after them", |s| {
        s.lines().any(|line| line.starts_with("> abcdef"))
    });
    tmux.keys(&["C-u"]);
    tmux.quit();
    server.shutdown().await;
}

/// A skin tone typed and then erased leaves nothing behind on the terminal's screen (as a
/// swatch after a bracket it made one three-column cluster whose last columns stayed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_skin_tone_leaves_nothing_on_screen() {
    let server = support::start_server(support::test_config()).await;
    let tmux = Tmux::start("skin-tone");
    tmux.launch("", &server.url(), "alice");
    tmux.run(&["send-keys", "-l", "ab👍🏽cd"]);
    tmux.wait_until("the tone by name on the input line", |s| {
        s.lines()
            .any(|line| line.starts_with("> ab👍(medium skin)cd"))
    });
    tmux.keys(&["C-u"]);
    tmux.wait_until("an empty input line, with no stray swatch anywhere", |s| {
        s.lines().any(|line| line.trim_end() == ">") && !s.contains('🏽') && !s.contains("skin")
    });
    tmux.quit();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_invitation_and_presence_in_a_real_terminal() {
    let server = support::start_server(support::test_config()).await;
    let url = server.url();
    let tmux = Tmux::start("call");
    tmux.launch("", &url, "alice");
    let (bob, mut bob_events) = Client::new(ClientConfig::new(url.clone(), "e2e")).unwrap();
    bob.login(None, "bob").await.unwrap();

    // Presence: a peer tab subscribes and shows bob online.
    tmux.line("/query bob");
    tmux.wait_for("@bob · online");

    // bob calls while alice types: the prompt shows with its countdown, but her letters
    // (an `r` and an `a` among them) stay in the input line; Alt-Y accepts.
    tmux.run(&["send-keys", "-l", "hello "]);
    tmux.wait_for("> hello");
    bob.send_invitation("call-1", "alice", "quick sync?", None)
        .await
        .expect("delivered to alice's client");
    tmux.wait_for("bob is calling you");
    tmux.wait_for("expires in");
    tmux.run(&["send-keys", "-l", "there"]);
    tmux.wait_for("> hello there");
    tmux.wait_for("Alt-Y accept  Alt-N refuse");
    tmux.keys(&["M-y"]);
    let accepted = first_event(&mut bob_events, "the answer to bob's call", |e| match e {
        ClientEvent::Server(Event::InvitationAccepted { invitation_id, .. }) => Some(invitation_id),
        _ => None,
    })
    .await;
    assert_eq!(accepted, "call-1");
    tmux.wait_for("you accepted bob's call");
    tmux.wait_for("> hello there");
    // Ctrl-C clears the half-typed line and does not quit.
    tmux.keys(&["C-c"]);
    tmux.wait_until("the line cleared", |s| {
        s.lines().any(|l| l.trim_end() == ">") && s.contains("[connected]")
    });

    // bob goes away: the tab's presence follows.
    bob.logout().await.unwrap();
    tmux.wait_until("bob offline", |s| {
        s.contains("@bob · offline") || s.contains("@bob · unreachable")
    });
    tmux.line("/quit");
    tmux.wait_for_shell();
    assert_eq!(tmux.format("#{alternate_on}"), "0");
    drop(tmux);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_login_aborts_and_login_again_works() {
    let server = support::start_server(support::test_config()).await;
    let url = server.url();
    let tmux = Tmux::start("abort");
    // An "editor" that appends to what it is given, for the $EDITOR escape (Alt-E).
    let editor = format!("{}/editor.sh", tmux.home_path);
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf '%s + edited' \"$(cat \"$1\")\" > \"$1.new\" && mv \"$1.new\" \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    tmux.launch(&format!("EDITOR={editor}"), &url, "alice");
    tmux.run(&["send-keys", "-l", "draft"]);
    tmux.wait_for("> draft");
    tmux.keys(&["M-e"]);
    tmux.wait_for("> draft + edited");
    tmux.keys(&["C-u"]);
    // A peer tab follows bob's presence, through a kick and a new login (issue 20, item 1).
    tmux.line("/msg bob");
    tmux.wait_for("@bob · offline");
    tmux.line("/subscribed");
    tmux.wait_for("you follow the presence of: bob");
    let (other, _events) = Client::new(ClientConfig::new(url.clone(), "e2e")).unwrap();
    other.login(None, "alice").await.unwrap();
    tmux.wait_for("[session ended] you logged in somewhere else");
    tmux.wait_for("you logged in somewhere else");
    tmux.line("/login");
    tmux.wait_for("rtm-tui — log in");
    tmux.keys(&["Enter"]);
    tmux.wait_for("[connected]");
    tmux.line("/clear");
    tmux.line("/subscribed");
    tmux.wait_for("you follow the presence of: bob");
    let (bob, _bob_events) = Client::new(ClientConfig::new(url.clone(), "e2e")).unwrap();
    bob.login(None, "bob").await.unwrap();
    tmux.wait_for("@bob · online");
    // /login while logged in: Esc goes back; another user id logs in as that user (the
    // first is logged out, no "already logged in").
    tmux.line("/login");
    tmux.wait_for("Esc back to the chat");
    tmux.keys(&["Escape"]);
    tmux.wait_for("· alice@e2e · /status");
    tmux.line("/login");
    tmux.wait_for("rtm-tui — log in");
    tmux.keys(&["C-u"]);
    tmux.run(&["send-keys", "-l", "carol"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("· carol@e2e · /status");
    tmux.wait_for("logged in as carol");
    tmux.keys(&["C-c"]);
    tmux.wait_for_shell();
    assert_eq!(tmux.format("#{alternate_on}"), "0");
    drop(tmux);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_land_in_their_peer_tab() {
    let server = support::start_server(support::test_config()).await;
    let url = server.url();
    let (bob, _bob_events) = Client::new(ClientConfig::new(url.clone(), "e2e")).unwrap();
    bob.login(None, "bob").await.unwrap();
    let cached = bob
        .send_message_to_peer(
            "alice",
            Message::text("left for you"),
            SendOptions { offline: true },
        )
        .await
        .expect_err("alice is offline");
    assert_eq!(cached.code(), Some(4), "cached by the server");

    let tmux = Tmux::start("offline");
    tmux.launch("", &url, "alice");
    tmux.wait_for("2 @bob");
    tmux.keys(&["M-2"]);
    tmux.wait_for("[offline] left for you");
    // Killed rather than quit: the terminal is restored all the same.
    // rtm-tui is the pane shell's only child; the shell's own `kill` needs no procps.
    let shell = tmux.format("#{pane_pid}");
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
    let child = children
        .split_whitespace()
        .next()
        .expect("rtm-tui runs in the pane");
    let killed = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {child}")])
        .status()
        .unwrap();
    assert!(killed.success());
    tmux.wait_for_shell();
    assert_eq!(tmux.format("#{alternate_on}"), "0");
    drop(tmux);
    server.shutdown().await;
}

/// The server goes away and comes back on a fresh store (ids start over): what alice
/// typed meanwhile leaves after the re-login with its mark, in order; bob's new messages
/// reach her screen; `/reconnect` tries at once. Then alice quits and comes back to her
/// tabs. Also: `--server host:port` without `ws://` and `/rtm/v1`, and `/join #lobby`.
/// (Issue 11 items 3, 4, 5; issue 12 items 3, 6, 8.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_loses_nothing_and_tabs_come_back() {
    let server = support::start_server(support::test_config()).await;
    let addr = server.addr();
    let url = server.url();
    let tmux = Tmux::start("restart");
    // A bare address: ws:// and /rtm/v1 are filled in.
    tmux.launch("", &addr.to_string(), "alice");
    let (bob, mut bob_events) = Client::new(ClientConfig::new(url.clone(), "e2e")).unwrap();
    bob.login(None, "bob").await.unwrap();
    let lobby = bob.create_channel("lobby").unwrap();
    lobby.join().await.unwrap();

    tmux.line("/join #lobby");
    tmux.wait_for("you joined #lobby");
    let screen = tmux.wait_for("2 #lobby");
    assert!(!screen.contains("##lobby"), "{screen}");
    say(&lobby, "old", 5).await;
    tmux.wait_for("old 5");
    tmux.line("/msg @bob psst");
    tmux.wait_for("3 @bob");
    tmux.wait_for("psst ✓");
    tmux.keys(&["M-2"]);
    let topic = [("topic".to_string(), "Welcome to the lobby!".to_string())].into();
    bob.write_channel_attributes("lobby", AttributeWrite::AddOrUpdate(topic), true)
        .await
        .unwrap();
    tmux.wait_for("bob changed the topic to: Welcome to the lobby!");
    tmux.wait_for("#lobby · 2 members · Welcome to the lobby!");

    server.shutdown().await;
    tmux.wait_for("[reconnecting");
    tmux.wait_for("-- connection lost; reconnecting…");
    tmux.line("typed while away");
    tmux.line("and in order");
    tmux.wait_for("typed while away …");
    tmux.wait_for("and in order …");

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = rtm::server::spawn(listener, rtm::server::Config::ephemeral())
        .await
        .unwrap();
    // bob back in the lobby first, so he hears alice's queued messages live.
    first_event(&mut bob_events, "bob reconnected", |e| match e {
        ClientEvent::StateChanged {
            state: rtm::protocol::ConnectionState::Connected,
            ..
        } => Some(()),
        _ => None,
    })
    .await;
    tmux.line("/reconnect");
    tmux.wait_for("typed while away ✓");
    tmux.wait_for("and in order ✓");
    // The restarted server (a fresh store) has no topic: the header forgets it too, and
    // the tab says the connection came back (issue 20, items 2 and 7).
    tmux.wait_for("-- reconnected");
    tmux.wait_until("the old topic gone from the header", |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.contains("#lobby") && !l.contains("Welcome"))
    });
    tmux.line("/cattr");
    tmux.wait_for("no channel attributes");
    for expected in ["typed while away", "and in order"] {
        let heard = first_event(&mut bob_events, expected, |e| match e {
            ClientEvent::Server(Event::MessageFromChannel { message, .. }) => {
                Some(message.summary())
            }
            _ => None,
        })
        .await;
        assert_eq!(heard, expected);
    }
    // The fresh store's ids are ones alice has seen before: still shown.
    say(&lobby, "new", 3).await;
    tmux.wait_for("new 3");
    let screen = tmux.wait_for("new 1");
    assert!(screen.contains("new 2"), "{screen}");

    // Quit and come back: #lobby rejoined, @bob reopened.
    tmux.line("/quit");
    tmux.wait_for_shell();
    tmux.run(&["send-keys", "clear", "Enter"]);
    // Typed before `clear` runs, the next command line would be echoed and then wiped,
    // and the prompt after it would land on the same line as the one before.
    tmux.wait_until("the screen cleared", |s| {
        s.lines().filter(|l| l.starts_with(PROMPT)).count() == 1
    });
    tmux.launch("", &url, "alice");
    tmux.wait_for("reopened the tabs of last time: #lobby @bob");
    tmux.wait_for("2 #lobby");
    tmux.wait_for("3 @bob");
    tmux.keys(&["M-2"]);
    tmux.wait_for("you joined #lobby");
    tmux.line("/quit");
    tmux.wait_for_shell();
    drop(tmux);
    server.shutdown().await;
}

/// `--server A --server B`: the status line names the server in use; when A goes away
/// the client logs in on B, says so, and what alice types reaches bob there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_servers_show_the_one_in_use_and_fail_over() {
    let first = support::start_server(support::test_config()).await;
    let second = support::start_server(support::test_config()).await;
    let tmux = Tmux::start("failover");
    tmux.launch(
        "",
        &format!("{} --server {}", first.addr(), second.addr()),
        "alice",
    );
    tmux.wait_for(&format!("[connected] on {}", first.addr()));
    // The status tab names the server reached, not the whole list.
    let screen = tmux.wait_for("logged in as alice");
    assert!(
        screen.contains(&first.url()) && !screen.contains(&second.url()),
        "{screen}"
    );
    let (bob, mut bob_events) = Client::new(ClientConfig::new(second.url(), "e2e")).unwrap();
    bob.login(None, "bob").await.unwrap();

    first.shutdown().await;
    tmux.wait_for(&format!("now on {}", second.url()));
    tmux.wait_for(&format!("[connected] on {}", second.addr()));
    tmux.line("/msg @bob hello from node 2");
    tmux.wait_for("hello from node 2 ✓");
    let text = first_event(&mut bob_events, "alice's message", |e| match e {
        ClientEvent::Server(Event::MessageFromPeer { from, message, .. }) if from == "alice" => {
            Some(message.summary())
        }
        _ => None,
    })
    .await;
    assert_eq!(text, "hello from node 2");
    tmux.line("/status");
    tmux.wait_for("servers, tried in turn:");
    tmux.line("/quit");
    tmux.wait_for_shell();
    drop(tmux);
    second.shutdown().await;
}

/// Issue 10's promise: alice on one node and bob on another, both on one Redis, chat in
/// the TUI: a channel with both as members, its messages, and a peer message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_and_bob_chat_from_two_nodes() {
    let cluster = support::cluster::Cluster::start(2).await;
    let (alice, bob) = Tmux::alice_and_bob("node", &cluster.url(0), &cluster.url(1));

    alice.line("/join lobby");
    alice.wait_for("you joined #lobby");
    bob.line("/join lobby");
    bob.wait_for("you joined #lobby");
    alice.wait_for("bob joined");
    bob.line("hello from node 2");
    bob.wait_for("hello from node 2 ✓");
    alice.wait_for("hello from node 2");
    alice.line("hello from node 1");
    bob.wait_for("hello from node 1");

    alice.line("/msg @bob just between us");
    alice.wait_for("just between us ✓");
    bob.wait_for("@alice");
    alice.quit();
    bob.quit();
}

/// A server log redirected to a file is plain text: colours only on a terminal (issue
/// 20, item 5). The TUI's own log file never had them.
#[tokio::test]
async fn a_log_redirected_to_a_file_has_no_colour_codes() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtm-tui"))
        .args(["--log-level", "info", "serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start rtm-tui serve");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(WAIT, tokio::io::BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("the server says where it listens")
        .unwrap();
    // The store may be opened after the address is printed: wait for its line.
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("opening the store") {
            break text;
        }
        assert!(Instant::now() < deadline, "no log line in time: {text:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.kill().await.unwrap();
    assert!(!text.contains('\x1b'), "{text:?}");
}

/// `rtm-tui demo`: the binary hands the chat client the server it starts in-process (the
/// `tui` room builds none), the client logs in to it and joins the lobby, where the
/// simulated users are members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_starts_its_server_and_joins_the_lobby() {
    let tmux = Tmux::start("demo");
    let binary = env!("CARGO_BIN_EXE_rtm-tui");
    tmux.line(&format!(
        "RTM_TUI_HOME={} {binary} demo --user you",
        tmux.home_path
    ));
    tmux.wait_for("[connected]");
    tmux.wait_for("you joined #lobby");
    tmux.wait_until("a simulated user in the member list", |s| {
        s.lines().any(|l| l.trim_end().ends_with("│ada"))
    });
    tmux.line("/quit");
    tmux.wait_for_shell();
}
