//! `rtm-tui demo`: an ephemeral reference server on a free port, three simulated users who
//! chat in `#lobby` and answer peer messages (through the client library, like any user),
//! and the TUI logged in as you. The server comes from the launcher the binary hands over
//! (`local_server.rs`); the TUI only talks to it over the protocol.
//!
//! Who says what, and when, is decided by the [`Conductor`], a pure planner (tested
//! without a server): varied lines with no speaker twice in a row and no line again soon,
//! people who step out and come back (leaving and rejoining the channel), now and then a
//! call to you. The bots mention you only when answering you.

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::client::{Channel, Client, ClientConfig, ClientEvent, SendOptions};
use crate::protocol::{Event, Message};

use super::error::{io, TuiError};
use super::local_server::{ServerData, ServerLauncher};
use super::Options;

/// App id of the demo.
pub const DEMO_APP: &str = "demo";
/// The channel the simulated users talk in.
pub const DEMO_CHANNEL: &str = "lobby";

/// One simulated user: a name and what they talk about.
pub struct Persona {
    pub name: &'static str,
    pub lines: &'static [&'static str],
    /// Said before stepping out, then back.
    pub away: &'static [(&'static str, &'static str)],
    /// Answers to a peer message (`{text}` is what you wrote).
    pub replies: &'static [&'static str],
}

/// The simulated users.
pub const PERSONAS: [Persona; 3] = [
    Persona {
        name: "ada",
        lines: &[
            "morning all ☕",
            "did anyone see the message about the office move?",
            "my cat just walked over the keyboard, sorry for the noise",
            "anyone else reviewing the reconnect patch?",
            "emoji check: 🦀 🚀 漢字 — widths look right here",
            "I think the flaky test was a timeout, not a race",
            "the new coffee beans are great",
            "tea or coffee, people?",
            "the benchmark went from 40k to 55k messages a second",
            "reading the protocol doc again, the grace period is a nice touch",
            "anyone read a good book lately?",
            "ok, that's the last review for today",
        ],
        away: &[
            ("stretching, back in a minute", "back"),
            ("brb, someone at the door", "back, what did I miss?"),
        ],
        replies: &[
            "hi! I'm ada, a demo user. you said “{text}”",
            "got it 👍",
            "let me check and come back to you",
            "ha, fair point",
        ],
    },
    Persona {
        name: "linus",
        lines: &[
            "who broke the build again 😅",
            "pushed a fix, CI is running",
            "the build is green again 🚀",
            "lunch?",
            "there's a typo in the README, fixing",
            "has anyone tried the new build on a phone?",
            "the release branch is cut",
            "who has the key to the meeting room?",
            "I'll write the release notes",
            "coffee machine is broken. again.",
            "the rain stopped, finally",
        ],
        away: &[
            ("getting coffee", "back ☕"),
            (
                "my laptop wants to restart, one moment",
                "restarted, all good",
            ),
        ],
        replies: &[
            "hey, linus here (a demo user). “{text}”, noted",
            "sure",
            "can't right now, later?",
            "👍",
        ],
    },
    Persona {
        name: "grace",
        lines: &[
            "good morning everyone",
            "the new dashboard is much easier to read",
            "I left some cake in the kitchen 🍰",
            "standup in 10 minutes",
            "I moved the design doc to the wiki",
            "who's on call this week?",
            "nice weather today",
            "the load test found nothing, good sign",
            "does anyone know a good place for lunch nearby?",
            "anyone up for pairing this afternoon?",
        ],
        away: &[
            ("getting a glass of water", "back"),
            ("phone's ringing, one sec", "sorry, back now"),
        ],
        replies: &[
            "hi, grace here (demo user): “{text}” — nice",
            "thanks!",
            "yes, let's do that",
            "hmm, not sure; ask in #lobby?",
        ],
    },
];

/// How often a step is a call to you (one in this many).
const CALL_ONE_IN: u32 = 40;
/// How often a step is someone stepping out (one in this many).
const AWAY_ONE_IN: u32 = 12;
/// A line of one persona is not said again before this many of their other lines.
const NO_REPEAT_WITHIN: usize = 6;

/// What one simulated user does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    Say(&'static str),
    /// Say this and leave the channel.
    StepOut(&'static str),
    /// Join the channel again and say this.
    Return(&'static str),
    /// Invite you to a call.
    Call,
}

/// Decides who does what next, and after how long.
pub struct Conductor {
    rng: StdRng,
    last_speaker: Option<usize>,
    /// Per persona: lines said lately (indices), most recent last.
    recent: Vec<VecDeque<usize>>,
    /// Per persona: steps left while away, and the line to come back with.
    away: Vec<Option<(u32, &'static str)>>,
}

impl Conductor {
    pub fn new(seed: u64) -> Conductor {
        Conductor {
            rng: StdRng::seed_from_u64(seed),
            last_speaker: None,
            recent: vec![VecDeque::new(); PERSONAS.len()],
            away: vec![None; PERSONAS.len()],
        }
    }

    /// The next move: after how long, by whom (an index into [`PERSONAS`]), and what.
    pub fn step(&mut self) -> (Duration, usize, Move) {
        let pause = Duration::from_secs(self.rng.random_range(5..=20));
        // Someone away long enough comes back first.
        for seat in 0..PERSONAS.len() {
            if let Some((steps, back)) = &mut self.away[seat] {
                if *steps == 0 {
                    let back = *back;
                    self.away[seat] = None;
                    self.last_speaker = Some(seat);
                    return (pause, seat, Move::Return(back));
                }
                *steps -= 1;
            }
        }
        // At most one is away at a time, so someone other than the last speaker is here.
        let present: Vec<usize> = (0..PERSONAS.len())
            .filter(|&s| self.away[s].is_none() && Some(s) != self.last_speaker)
            .collect();
        let seat = present[self.rng.random_range(0..present.len())];
        self.last_speaker = Some(seat);
        let persona = &PERSONAS[seat];
        if self.rng.random_ratio(1, CALL_ONE_IN) {
            return (pause, seat, Move::Call);
        }
        let everyone_else_here = self.away.iter().all(Option::is_none);
        if everyone_else_here && self.rng.random_ratio(1, AWAY_ONE_IN) {
            let (out, back) = persona.away[self.rng.random_range(0..persona.away.len())];
            self.away[seat] = Some((self.rng.random_range(2..=5), back));
            return (pause, seat, Move::StepOut(out));
        }
        let recent = &mut self.recent[seat];
        let fresh: Vec<usize> = (0..persona.lines.len())
            .filter(|i| !recent.contains(i))
            .collect();
        let line = fresh[self.rng.random_range(0..fresh.len())];
        recent.push_back(line);
        if recent.len() > NO_REPEAT_WITHIN.min(persona.lines.len() - 1) {
            recent.pop_front();
        }
        (pause, seat, Move::Say(persona.lines[line]))
    }
}

/// Runs the demo until the user quits the TUI.
pub async fn run(
    user: String,
    config: Option<std::path::PathBuf>,
    launcher: &dyn ServerLauncher,
) -> Result<(), TuiError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io("cannot bind a port for the demo server"))?;
    let server = launcher
        .launch(listener, ServerData::Ephemeral)
        .await
        .map_err(TuiError::DemoServer)?;
    let url = server.url().to_string();
    let mut bots = JoinSet::new();
    let mut seats = Vec::new();
    for (seat, persona) in PERSONAS.iter().enumerate() {
        let (moves, inbox) = mpsc::unbounded_channel();
        seats.push(moves);
        let url = url.clone();
        let you = user.clone();
        bots.spawn(async move {
            if let Err(e) = bot(&url, persona, &you, seat, inbox).await {
                tracing::warn!("demo user {}: {e}", persona.name);
            }
        });
    }
    bots.spawn(async move {
        let mut conductor = Conductor::new(rand::random());
        loop {
            let (pause, seat, action) = conductor.step();
            tokio::time::sleep(pause).await;
            if seats[seat].send(action).is_err() {
                return;
            }
        }
    });
    let options = Options {
        app_id: Some(DEMO_APP.into()),
        user: Some(user),
        token: None,
        token_cmd: None,
        servers: vec![url],
        config,
        startup_commands: vec![format!("/join {DEMO_CHANNEL}")],
    };
    let result = super::run(options, None).await;
    bots.shutdown().await;
    server.stop().await;
    result
}

/// One simulated user: joins the lobby, does what the conductor says, answers whoever
/// talks to it.
async fn bot(
    url: &str,
    persona: &'static Persona,
    you: &str,
    seat: usize,
    mut moves: mpsc::UnboundedReceiver<Move>,
) -> Result<(), crate::client::ClientError> {
    let (client, mut events) = Client::new(ClientConfig::new(url, DEMO_APP))?;
    client.login(None, persona.name).await?;
    let lobby = client.create_channel(DEMO_CHANNEL)?;
    lobby.join().await?;
    let mut replies = seat;
    loop {
        tokio::select! {
            action = moves.recv() => match action {
                Some(action) => perform(&client, &lobby, you, action).await,
                None => return Ok(()),
            },
            event = events.recv() => match event {
                Some(event) => answer(&client, &lobby, persona, you, &mut replies, event).await,
                None => return Ok(()),
            },
        }
    }
}

async fn perform(client: &Client, lobby: &Channel, you: &str, action: Move) {
    let say = |text: &str| lobby.send_message(Message::text(text));
    match action {
        Move::Say(text) => {
            let _ = say(text).await;
        }
        Move::StepOut(text) => {
            let _ = say(text).await;
            let _ = lobby.leave().await;
        }
        Move::Return(text) => {
            let _ = lobby.join().await;
            let _ = say(text).await;
        }
        Move::Call => {
            let id = crate::client::new_invitation_id();
            let _ = client
                .send_invitation(&id, you, "got a minute to pair on the review?", None)
                .await;
        }
    }
}

/// Answers what concerns this user: a peer message, a mention in the lobby, a call.
async fn answer(
    client: &Client,
    lobby: &Channel,
    persona: &Persona,
    you: &str,
    replies: &mut usize,
    event: ClientEvent,
) {
    let ClientEvent::Server(event) = event else {
        return;
    };
    match event {
        Event::MessageFromPeer { from, message, .. } => {
            let template = persona.replies[*replies % persona.replies.len()];
            *replies += 1;
            let reply = template.replace("{text}", &message.summary());
            let client = client.clone();
            tokio::spawn(async move {
                // Typing takes a moment.
                tokio::time::sleep(Duration::from_millis(800)).await;
                let options = SendOptions { offline: true };
                let _ = client
                    .send_message_to_peer(&from, Message::text(reply), options)
                    .await;
            });
        }
        // Addressed by name: an answer that names who asked (a mention that matters).
        Event::MessageFromChannel { from, message, .. }
            if crate::tui::tab::mentions(&message.summary(), persona.name) =>
        {
            // Reads well whatever the name, "you" (the demo's default) included.
            let _ = lobby
                .send_message(Message::text(format!("hey {from} 👋, what's up?")))
                .await;
        }
        Event::InvitationReceived {
            invitation_id,
            caller,
            ..
        } => {
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let _ = client
                    .accept_invitation(&invitation_id, &caller, "on my way")
                    .await;
            });
        }
        Event::InvitationAccepted { .. } => {
            let text = "great, joining the call now";
            let _ = client
                .send_message_to_peer(you, Message::text(text), SendOptions { offline: true })
                .await;
        }
        Event::InvitationRefused { .. } | Event::InvitationFailure { .. } => {
            let text = "no worries, another time";
            let _ = client
                .send_message_to_peer(you, Message::text(text), SendOptions { offline: true })
                .await;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long run of the planner: it sounds like a live channel, not a loop.
    #[test]
    fn the_demo_channel_varies_and_people_come_and_go() {
        let mut conductor = Conductor::new(7);
        let mut last = None;
        let mut said: Vec<Vec<&str>> = vec![Vec::new(); PERSONAS.len()];
        let mut away = vec![false; PERSONAS.len()];
        let (mut calls, mut outs, mut returns) = (0, 0, 0);
        for _ in 0..2000 {
            let (pause, seat, action) = conductor.step();
            assert!((5..=20).contains(&pause.as_secs()));
            assert_ne!(Some(seat), last, "nobody speaks twice in a row");
            last = Some(seat);
            match action {
                Move::Say(text) => {
                    assert!(!away[seat], "{} talks while away", PERSONAS[seat].name);
                    let recent = &said[seat];
                    let window = &recent[recent.len().saturating_sub(NO_REPEAT_WITHIN)..];
                    assert!(!window.contains(&text), "{text:?} again so soon");
                    said[seat].push(text);
                }
                Move::StepOut(_) => {
                    away[seat] = true;
                    outs += 1;
                }
                Move::Return(_) => {
                    assert!(away[seat]);
                    away[seat] = false;
                    returns += 1;
                }
                Move::Call => calls += 1,
            }
        }
        assert!(
            outs > 20 && returns + 1 >= outs,
            "{outs} out, {returns} back"
        );
        assert!((10..200).contains(&calls), "{calls} calls");
        // The demo sounds like people at work, not like a manual of the tool: no
        // commands, keys or marks; and an absence is short, as the steps are.
        for persona in &PERSONAS {
            let away: Vec<&str> = persona.away.iter().flat_map(|(o, b)| [*o, *b]).collect();
            for line in persona.lines.iter().chain(&away).chain(persona.replies) {
                for word in ["/", "F1", "Ctrl", "Alt-", "PgUp", "✓"] {
                    assert!(!line.contains(word), "{}: {line:?}", persona.name);
                }
            }
            for line in away {
                for word in ["lunch", "meeting", "call"] {
                    assert!(!line.contains(word), "{}: {line:?}", persona.name);
                }
            }
        }
        // Every persona uses most of its lines; and no canned line mentions you.
        for (persona, lines) in PERSONAS.iter().zip(&said) {
            let mut distinct = lines.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert!(
                distinct.len() + 2 >= persona.lines.len(),
                "{}",
                persona.name
            );
        }
    }
}
