//! TUI speed: draw time of a tab holding 100 vs 1,000,000 messages (it must depend on the
//! screen size, not the history length), of a tab with images in view (their pictures in
//! half blocks: encoded once, then drawn from the cache), and the time and memory to take
//! in a burst of 50,000 channel messages through `App::update`. Run with `cargo bench --bench tui_render`;
//! prints a small table (the README quotes it).

use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use rtm::protocol::{Event, Message};
use rtm::tui::action::Action;
use rtm::tui::app::App;
use rtm::tui::job::{Job, JobOutput};
use rtm::tui::render;

// The logged-in app the TUI tests start from (the bench uses part of it; `pub` there is
// for the test binary's modules).
#[path = "../tests/it/support/tui_app.rs"]
#[allow(dead_code, unreachable_pub)]
mod tui_app;
use tui_app::NOW;

const WIDTH: u16 = 200;
const HEIGHT: u16 = 50;

/// The app logged in as "me" and in #bench with 10 members.
fn logged_in_app() -> App {
    let mut app = tui_app::logged_in_as("bench", "me");
    for c in "/join bench".chars() {
        app.update(Action::Insert(c));
    }
    let join = app.update(Action::Key(rtm::tui::action::KeyAction::Submit));
    let id = tui_app::asked(&join, |job| matches!(job, Job::Join(_)));
    app.update(Action::Done(id, Ok(JobOutput::Joined(10))));
    app
}

fn message(i: u64) -> Action {
    Action::Server(Event::MessageFromChannel {
        channel: "bench".into(),
        from: format!("user{}", i % 17),
        message: Message::text(format!(
            "message number {i}: the quick brown fox jumps over the lazy dog 🦀"
        )),
        message_id: i + 1,
        server_ts: NOW + i * 10,
    })
}

fn fill(app: &mut App, count: u64) {
    for i in 0..count {
        app.update(message(i));
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Mean time of one full draw of the app.
fn draw_time(app: &App, rounds: u32) -> Duration {
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap();
    // One warm-up draw, then measure.
    terminal.draw(|f| drop(render::draw(f, app))).unwrap();
    let start = Instant::now();
    for _ in 0..rounds {
        terminal.draw(|f| drop(render::draw(f, app))).unwrap();
    }
    start.elapsed() / rounds
}

/// An image message as `/image` makes it, from a 640x480 gradient.
fn image_message(i: u64) -> Action {
    use base64::Engine as _;
    let picture = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x / 3) as u8, (y / 2) as u8, (i * 40) as u8])
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let prepared = rtm::tui::media::prepare_image(&png).unwrap();
    Action::Server(Event::MessageFromChannel {
        channel: "bench".into(),
        from: "painter".into(),
        message: Message::Image {
            media_id: format!("m{i}"),
            name: format!("shot{i}.png"),
            size: png.len() as u64,
            width: 640,
            height: 480,
            thumbnail: base64::engine::general_purpose::STANDARD.encode(&prepared.thumbnail),
            thumbnail_width: prepared.thumbnail_width,
            thumbnail_height: prepared.thumbnail_height,
        },
        message_id: 1_000_000 + i,
        server_ts: NOW + 1_000_000 + i,
    })
}

/// The first draw of a tab with images in view (their pictures encoded), and the mean of
/// `rounds` draws after it (the pictures from the cache).
fn picture_draw_time(rounds: u32) -> (Duration, Duration) {
    let mut app = logged_in_app();
    fill(&mut app, 100);
    for i in 0..3 {
        app.update(image_message(i));
        app.update(message(200 + i));
    }
    let mut pictures = rtm::tui::pictures::Pictures::halfblocks();
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap();
    let start = Instant::now();
    terminal
        .draw(|f| drop(render::draw_with_pictures(f, &app, &mut pictures)))
        .unwrap();
    let first = start.elapsed();
    let start = Instant::now();
    for _ in 0..rounds {
        terminal
            .draw(|f| drop(render::draw_with_pictures(f, &app, &mut pictures)))
            .unwrap();
    }
    (first, start.elapsed() / rounds)
}

/// The same burst end to end: a real server, one client sending `count` channel messages
/// (64 in flight), and a receiving client whose events go through `App::update` as the
/// event loop does. Returns (time from the first send to the last message taken in,
/// messages taken in).
fn network_burst(count: u64) -> (Duration, usize) {
    use rtm::client::{Client, ClientConfig, ClientEvent};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = rtm::server::Config {
            rate_limits: rtm::server::RateLimits::unlimited(),
            ..rtm::server::Config::ephemeral()
        };
        let server = rtm::server::spawn(listener, config).await.unwrap();
        let (receiver, mut events) = Client::new(ClientConfig::new(server.url(), "bench")).unwrap();
        receiver.login(None, "me").await.unwrap();
        receiver
            .create_channel("bench")
            .unwrap()
            .join()
            .await
            .unwrap();
        let (sender, _sender_events) =
            Client::new(ClientConfig::new(server.url(), "bench")).unwrap();
        sender.login(None, "sender").await.unwrap();
        let channel = sender.create_channel("bench").unwrap();
        channel.join().await.unwrap();
        let mut app = logged_in_app();
        let start = Instant::now();
        let sending = tokio::spawn(async move {
            let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
            for i in 0..count {
                let permit = permits.clone().acquire_owned().await.unwrap();
                let channel = channel.clone();
                tokio::spawn(async move {
                    let text = format!("burst message {i}: the quick brown fox 🦀");
                    channel
                        .send_message(Message::text(text))
                        .await
                        .expect("accepted");
                    drop(permit);
                });
            }
        });
        let mut taken = 0;
        while taken < count as usize {
            match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
                Ok(Some(ClientEvent::Server(event @ Event::MessageFromChannel { .. }))) => {
                    app.update(Action::Server(event));
                    taken += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let elapsed = start.elapsed();
        sending.await.unwrap();
        server.shutdown().await;
        (elapsed, taken)
    })
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, in a debug
    // build, where a small smoke run keeps the suite fast.
    let full = std::env::args().any(|a| a == "--bench");
    let (burst, big): (u64, u64) = if full {
        (50_000, 1_000_000)
    } else {
        (1_000, 10_000)
    };
    println!(
        "rtm-tui TUI benchmark ({WIDTH}x{HEIGHT} screen){}",
        if full {
            ""
        } else {
            " — smoke run, use cargo bench"
        }
    );
    // The burst goes first: RSS only shows new memory before anything was freed.
    let mut app = logged_in_app();
    let before = rss_bytes();
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..burst {
        let one = Instant::now();
        app.update(message(i));
        slowest = slowest.max(one.elapsed());
    }
    let drained = start.elapsed();
    let after = rss_bytes();
    let held = app.tabs[1].entries.len();
    assert_eq!(
        held as u64,
        burst + 1,
        "every message is kept (plus the join line)"
    );
    println!(
        "burst of {burst} channel messages: taken in {drained:.2?} ({:.0} msg/s), slowest single update {:.1} µs, \
         memory {:.0} bytes/message (RSS {} → {} MiB), none dropped",
        burst as f64 / drained.as_secs_f64(),
        slowest.as_secs_f64() * 1e6,
        after.saturating_sub(before) as f64 / burst as f64,
        before / (1 << 20),
        after / (1 << 20),
    );
    drop(app);
    let (elapsed, taken) = network_burst(burst);
    println!(
        "burst of {burst} channel messages over a real server and client: {taken} taken in, in {elapsed:.2?} ({:.0} msg/s)",
        taken as f64 / elapsed.as_secs_f64()
    );
    let (first, cached) = picture_draw_time(if full { 1000 } else { 10 });
    println!(
        "draw, tab with 3 images in view (half blocks): {:>8.1} µs the first time (encoding), {:>8.1} µs after",
        first.as_secs_f64() * 1e6,
        cached.as_secs_f64() * 1e6
    );
    for count in [100u64, big] {
        let mut app = logged_in_app();
        let start = Instant::now();
        fill(&mut app, count);
        let fill_time = start.elapsed();
        let rounds = if full { 1000 } else { 10 };
        let at_bottom = draw_time(&app, rounds);
        app.update(Action::Wheel(i32::try_from(count / 2).unwrap()));
        let scrolled = draw_time(&app, rounds);
        println!(
            "draw, tab of {count:>9} messages: {:>8.1} µs at the bottom, {:>8.1} µs scrolled to the middle (filled in {:.2?})",
            at_bottom.as_secs_f64() * 1e6,
            scrolled.as_secs_f64() * 1e6,
            fill_time
        );
    }
}
