//! The chat client's state as its tests start from it (`tui_render.rs`), and as
//! `benches/tui_render.rs` (which includes this file by path) measures it: an [`App`] at a
//! fixed instant, timestamps in UTC, logged in through the same actions a real login makes.
//! Only `rtm` here: the bench has nothing else of the tests.

use rtm::protocol::{ChangeReason, ConnectionState, LoginResult};
use rtm::tui::action::{Action, Effect};
use rtm::tui::app::{App, LoginDefaults};
use rtm::tui::config::{Theme, TuiConfig};
use rtm::tui::job::{Job, JobId, JobOutput};
use rtm::tui::keymap::Keymap;
use rtm::tui::login;

/// 2026-11-25 10:00:00 UTC: every test runs at this instant, in UTC.
pub const NOW: u64 = 1_795_600_800_000;

/// The default config, with timestamps in UTC whatever zone the tests run in.
pub fn config() -> TuiConfig {
    TuiConfig {
        time_zone: "UTC".into(),
        ..TuiConfig::default()
    }
}

/// The app on its login form, with `server` in the form's Server field, at [`NOW`].
pub fn app_on(app_id: &str, user: &str, server: &str) -> App {
    let config = config();
    let theme = Theme::new(&config.colors, false);
    let defaults = LoginDefaults {
        app_id: app_id.into(),
        user: user.into(),
        token: String::new(),
        server: server.into(),
    };
    let mut app = App::new(config, theme, Keymap::default(), &defaults);
    app.now_ms = NOW;
    app
}

/// The id of the job among `effects` that `pick` chooses.
pub fn asked(effects: &[Effect], pick: impl Fn(&Job) -> bool) -> JobId {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Job(id, job) if pick(job) => Some(*id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no such job in {effects:?}"))
}

/// The server accepts the login asked in `effects`, as the user of the login form.
pub fn log_in(app: &mut App, effects: &[Effect]) -> Vec<Effect> {
    let reply = JobOutput::LoggedIn(LoginResult {
        user: app.login.value(login::USER).to_string(),
        server_ts: NOW,
        protocol: 1,
        server: "rtm-tui/0.1.0".into(),
        token_expires_at: None,
        store: None,
    });
    let id = asked(effects, |job| matches!(job, Job::Login { .. }));
    app.update(Action::Done(id, Ok(reply)))
}

/// `user` logged in to `app_id` on the default server: the form submitted, the client
/// CONNECTED, the login answered.
pub fn logged_in_as(app_id: &str, user: &str) -> App {
    let mut app = app_on(app_id, user, "ws://127.0.0.1:7420/rtm/v1");
    let effects = app.submit_login();
    app.update(Action::Connection {
        state: ConnectionState::Connected,
        reason: ChangeReason::LoginSuccess,
        retry_in_ms: None,
    });
    log_in(&mut app, &effects);
    app
}
