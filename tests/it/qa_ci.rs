//! The QA kit as a CI job uses it: the real `rtm-tui` binary against our real server, with
//! addresses as people type them, connection errors that name their cause, bench
//! thresholds (table, exit code, JUnit), a bench that stops when the server's rate limits
//! refuse it, the server's metrics in the report, the countdown of server timers, and the
//! HTML reports opened in a real browser (headless Chromium) and printed.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support;
use rtm::server::Config;

/// How long one run of the binary may take before it counts as hung.
const RUN_BOUND: Duration = Duration::from_secs(120);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn run(args: &[&str]) -> Output {
    support::rtm_tui(args, RUN_BOUND).await
}

fn all_of(run: &Output) -> String {
    format!("{}{}", text(&run.stdout), text(&run.stderr))
}

/// `host:port` (no scheme, no path) as the chat client takes it.
fn host_port(url: &str) -> String {
    url.trim_start_matches("ws://")
        .trim_end_matches(rtm::protocol::WS_PATH)
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_qa_command_takes_host_port_and_names_why_it_cannot_connect() {
    let server = support::start_server(Config::ephemeral()).await;
    let url = server.url();
    let bare = host_port(&url);

    let check = run(&["check", "--server", &bare, "--filter", "ping.ok"]).await;
    assert_eq!(check.status.code(), Some(0), "{}", all_of(&check));
    let bench = run(&[
        "bench",
        "--server",
        &bare,
        "--users",
        "2",
        "--duration",
        "1",
    ])
    .await;
    assert_eq!(bench.status.code(), Some(0), "{}", all_of(&bench));
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("ping.rtm");
    std::fs::write(
        &scenario,
        "users alice\nalice login\nalice raw {\"op\": \"ping\"}\n",
    )
    .expect("scenario");
    let script = run(&["script", scenario.to_str().unwrap(), "--server", &bare]).await;
    assert_eq!(script.status.code(), Some(0), "{}", all_of(&script));
    let headless = headless(&bare, "login alice\nquit\n").await;
    assert!(
        headless.contains("\"state\":\"CONNECTED\"") && headless.contains("\"ok\":true"),
        "headless with host:port: {headless}"
    );

    // A wrong scheme: a server listens there, and the message says what to change.
    let wss = url.replacen("ws://", "wss://", 1);
    let tls = run(&["check", "--server", &wss]).await;
    assert_eq!(tls.status.code(), Some(2));
    let said = all_of(&tls);
    assert!(
        said.contains("TLS handshake failed") && said.contains(&format!("use ws://{bare}")),
        "{said}"
    );
    assert!(!said.contains("is a server listening"), "{said}");
    // A wrong path: a 404 that names the path to use.
    let path = run(&["check", "--server", &format!("ws://{bare}/elsewhere")]).await;
    let said = all_of(&path);
    assert!(said.contains("404") && said.contains("/rtm/v1"), "{said}");
    server.shutdown().await;
    // Nothing listening: said so, with the command that starts a server there.
    let refused = run(&["check", "--server", &bare]).await;
    assert_eq!(refused.status.code(), Some(2));
    let said = all_of(&refused);
    assert!(
        said.contains(&format!("nothing listens on {bare}")) && said.contains("rtm-tui serve"),
        "{said}"
    );
    let refused = run(&["bench", "--server", &bare, "--duration", "1"]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        all_of(&refused).contains("nothing listens on"),
        "{}",
        all_of(&refused)
    );
}

/// `rtm-tui headless --server URL --app-id qa [extra...]` fed `input`, run to its end.
async fn headless_run(server: &str, input: &str, extra: &[&str]) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtm-tui"))
        .args(["headless", "--server", server, "--app-id", "qa"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start headless");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("write");
    drop(stdin);
    tokio::time::timeout(RUN_BOUND, child.wait_with_output())
        .await
        .expect("headless ends")
        .expect("headless runs")
}

/// [`headless_run`]'s stdout.
async fn headless(server: &str, input: &str) -> String {
    text(&headless_run(server, input, &[]).await.stdout)
}

/// A bench of one peer pair at 20 a second (well within any rate limit) for `seconds`.
fn gentle_bench<'a>(url: &'a str, seconds: &'a str) -> Vec<&'a str> {
    vec![
        "bench",
        "--server",
        url,
        "--users",
        "2",
        "--rate",
        "20",
        "--duration",
        seconds,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_thresholds_make_a_table_an_exit_code_and_junit() {
    let server = support::start_server(Config::ephemeral()).await;
    let url = server.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let junit = dir.path().join("bench.xml");
    let budgets = dir.path().join("budgets.toml");
    std::fs::write(&budgets, "thresholds = [\"completed > 0\"]\n").expect("budgets");
    let common = gentle_bench(&url, "2");
    let mut args = common.clone();
    args.extend([
        "--threshold",
        "p99<10s",
        "--threshold",
        "errors==0",
        "--thresholds-file",
        budgets.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let met = run(&args).await;
    let out = text(&met.stdout);
    assert_eq!(met.status.code(), Some(0), "{}", all_of(&met));
    assert!(out.contains("3 of 3 thresholds met"), "{out}");
    let xml = std::fs::read_to_string(&junit).expect("JUnit written");
    assert!(
        xml.contains("<testsuite name=\"rtm-bench\" tests=\"3\" failures=\"0\""),
        "{xml}"
    );

    // 20 a second cannot be 10,000 a second: missed, exit code 1, a JUnit failure.
    let mut args = common.clone();
    args.extend([
        "--threshold",
        "throughput>=10k",
        "--threshold",
        "errors==0",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let missed = run(&args).await;
    let out = text(&missed.stdout);
    assert_eq!(missed.status.code(), Some(1), "{}", all_of(&missed));
    let row = out
        .lines()
        .find(|l| l.starts_with("throughput>=10k"))
        .unwrap_or_else(|| panic!("no row: {out}"));
    assert!(row.ends_with("MISSED") && row.contains("/s"), "{row}");
    assert!(out.contains("1 of 2 thresholds met (exit code 1)"), "{out}");
    let xml = std::fs::read_to_string(&junit).expect("JUnit written");
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(xml.contains("<failure message=\"missed: measured"), "{xml}");

    let bad = run(&["bench", "--server", &url, "--threshold", "p98<5ms"]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", all_of(&bad));
    assert!(text(&bad.stderr).contains("MEASURE OP VALUE"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_stops_when_the_server_answers_too_often_and_names_a_rate_that_fits() {
    // Agora's limits, as a server in the field has them: 180 sends per 3 s per connection.
    let server = support::start_server(Config::ephemeral()).await;
    let url = server.url();
    let run = run(&[
        "bench",
        "--server",
        &url,
        "--users",
        "4",
        "--duration",
        "20",
        "--json",
    ])
    .await;
    assert_eq!(run.status.code(), Some(1), "{}", all_of(&run));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON");
    let stopped = report["stopped"].as_str().expect("stopped early");
    assert!(
        stopped.contains("too often") && stopped.contains("--rate"),
        "{stopped}"
    );
    // It stopped well before the 20 s asked.
    assert!(report["duration_s"].as_f64().unwrap() < 15.0, "{report}");
    // 2 senders × 60 a second get through; the rate named fits under that.
    let hint = report["rate_hint"].as_u64().expect("a rate hint");
    assert!((60..=120).contains(&hint), "{report}");
    assert!(
        report["errors"]["code 5 sending too often"]
            .as_u64()
            .unwrap()
            > 0,
        "errors named by code and meaning: {report}"
    );
    assert!(text(&run.stderr).contains(stopped), "{}", text(&run.stderr));
    server.shutdown().await;
}

/// A stand-in for the server's HTTP side: answers `GET /metrics` with Prometheus text,
/// counting the requests so that the two reads (before and after) differ.
async fn metrics_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut served = 0;
        while let Ok((mut stream, _)) = listener.accept().await {
            served += 1;
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let body = format!(
                "# HELP rtm_requests_total Requests served.\n# TYPE rtm_requests_total counter\nrtm_requests_total {}\nrtm_connections 3\n",
                served * 100
            );
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    format!("http://{address}/metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reads_the_servers_metrics_and_shows_none_when_there_are_none() {
    // With its health and metrics on an admin listener (`--admin-listen`), our server
    // answers 404 at /metrics on its main port: no metrics in the report.
    let mut config = Config::ephemeral();
    config.admin_listen = Some(([127, 0, 0, 1], 9).into());
    let server = support::start_server(config).await;
    let url = server.url();
    let mut common = gentle_bench(&url, "1");
    common.push("--json");
    let none = run(&common).await;
    let report: serde_json::Value = serde_json::from_slice(&none.stdout).expect("JSON");
    assert!(report.get("server_metrics").is_none(), "{report}");

    let endpoint = metrics_endpoint().await;
    let mut args = common.clone();
    args.extend(["--metrics", &endpoint]);
    let some = run(&args).await;
    let report: serde_json::Value = serde_json::from_slice(&some.stdout).expect("JSON");
    let samples = &report["server_metrics"][0]["samples"];
    assert_eq!(samples[0][0]["name"], "rtm_requests_total", "{report}");
    assert_eq!(samples[0][0]["value"], 200.0, "after the run: {report}");
    assert_eq!(samples[0][1], 100.0, "before the run: {report}");
    assert_eq!(samples[0][0]["kind"], "counter");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_counts_down_while_a_case_waits_for_a_server_timer() {
    let mut config = Config::ephemeral();
    config.invitation_timeout = Duration::from_secs(2);
    let server = support::start_server(config).await;
    let url = server.url();
    let args = [
        "check",
        "--server",
        &url,
        "--filter",
        "invite.expiry",
        "--invite-expiry",
        "2",
    ];
    let run = run(&args).await;
    assert_eq!(run.status.code(), Some(0), "{}", all_of(&run));
    // Not a terminal (a CI log): one line when the wait starts, with its length.
    assert!(
        text(&run.stderr).contains("invite.expiry: waiting 2s for the invitation expiry"),
        "{}",
        text(&run.stderr)
    );
    server.shutdown().await;
}

/// Chromium as Debian packages it (`.ci/test` installs it).
fn chromium() -> &'static str {
    for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(path).exists() {
            return path;
        }
    }
    panic!("headless Chromium is needed (apt-get install chromium; .ci/test installs it)");
}

/// Runs headless Chromium on `page` with `what` (`--screenshot=...`, `--print-to-pdf=...`).
async fn chromium_on(page: &Path, what: &str) {
    let profile = tempfile::tempdir().expect("profile dir");
    let run = tokio::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,2600",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(what)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("chromium finishes")
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium: {}",
        text(&output.stderr)
    );
}

/// The screenshot's pixels, RGB.
fn read_pixels(png_file: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(png_file).expect("screenshot"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).expect("a frame");
    let step = info.color_type.samples();
    let pixels = buffer[..info.buffer_size()]
        .chunks(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

/// How many pixels are within a small distance of `color`.
fn count_near(pixels: &[[u8; 3]], color: [u8; 3]) -> usize {
    pixels
        .iter()
        .filter(|p| {
            p.iter()
                .zip(color)
                .all(|(a, b)| (i16::from(*a) - i16::from(b)).abs() <= 12)
        })
        .count()
}

/// The bench and check reports, rendered by a real browser: the verdict box in its colour,
/// the plots drawn (their line colours on screen), text on the page, and a PDF to print.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_reports_render_in_a_real_browser_and_print() {
    let server = support::start_server(Config::ephemeral()).await;
    let url = server.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let bench_html = dir.path().join("bench.html");
    let bench = run(&[
        "bench",
        "--server",
        &url,
        "--users",
        "4",
        "--rate",
        "100",
        "--duration",
        "3",
        "--threshold",
        "errors==0",
        "--threshold",
        "throughput>=100000",
        "--report",
        bench_html.to_str().unwrap(),
    ])
    .await;
    assert_eq!(bench.status.code(), Some(1), "{}", all_of(&bench));
    let html = std::fs::read_to_string(&bench_html).expect("report written");
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"),
        "a self-contained page"
    );
    for part in [
        "1 of 2 thresholds missed",
        "server version</dt><dd>rtm-tui/",
        "latency by percentile",
        "completed and failed operations per second",
        "CPU time per completed operation",
    ] {
        assert!(html.contains(part), "{part} missing from the report");
    }

    let shot = dir.path().join("bench.png");
    chromium_on(&bench_html, &format!("--screenshot={}", shot.display())).await;
    let (width, height, pixels) = read_pixels(&shot);
    assert_eq!((width, height), (1000, 2600));
    // The red verdict box (a threshold missed), the latency line (blue) and the
    // completions line (green) are on screen.
    let verdict = count_near(&pixels, [0xfc, 0xe8, 0xe6]);
    let latency = count_near(&pixels, [31, 119, 180]);
    let completed = count_near(&pixels, [44, 160, 44]);
    assert!(verdict > 10_000, "red verdict box: {verdict} pixels");
    assert!(latency > 300, "latency line: {latency} pixels");
    assert!(completed > 300, "completions line: {completed} pixels");
    // Text: dark pixels well spread (not a blank or broken page).
    let dark = pixels.iter().filter(|p| p.iter().all(|c| *c < 90)).count();
    assert!(dark > 5_000, "dark (text) pixels: {dark}");

    let pdf = dir.path().join("bench.pdf");
    chromium_on(&bench_html, &format!("--print-to-pdf={}", pdf.display())).await;
    let printed = std::fs::read(&pdf).expect("printed");
    let pages = String::from_utf8_lossy(&printed)
        .matches("/Type /Page\n")
        .count()
        + String::from_utf8_lossy(&printed)
            .matches("/Type /Page ")
            .count()
        + String::from_utf8_lossy(&printed)
            .matches("/Type/Page")
            .count();
    assert!(printed.starts_with(b"%PDF") && pages >= 1, "{pages} pages");

    let check_html = dir.path().join("check.html");
    let check = run(&[
        "check",
        "--server",
        &url,
        "--filter",
        "ping.ok",
        "--report",
        check_html.to_str().unwrap(),
    ])
    .await;
    assert_eq!(check.status.code(), Some(0), "{}", all_of(&check));
    let shot = dir.path().join("check.png");
    chromium_on(&check_html, &format!("--screenshot={}", shot.display())).await;
    let (_, _, pixels) = read_pixels(&shot);
    let passed = count_near(&pixels, [0xe6, 0xf4, 0xea]);
    assert!(passed > 10_000, "green verdict box: {passed} pixels");
    server.shutdown().await;
}

/// What a person types into `rtm-tui headless --record FILE` replays with `rtm-tui script`
/// against another server, passes there, and fails where that server answers differently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_replays_as_a_regression_test() {
    let server = support::start_server(Config::ephemeral()).await;
    let url = server.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let recorded = dir.path().join("session.rtm");
    let typed = "login rec-alice\njoin rec-lobby\nsay rec-lobby \"hi all, $5 each\"\n\
                 send rec-nobody hello\nmembers rec-lobby\nquit\n";
    let out = headless_run(&url, typed, &["--record", recorded.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", all_of(&out));
    let scenario = std::fs::read_to_string(&recorded).expect("recorded");
    for step in [
        "me login as=rec-alice\n",
        "me join rec-lobby\n",
        "me say rec-lobby \"hi all, $$5 each\"\n",
        "me send rec-nobody hello -> 3\n",
        "me raw {\"op\":\"get_members\",\"channel\":\"rec-lobby\"}\n",
    ] {
        assert!(scenario.contains(step), "{step:?} not in:\n{scenario}");
    }

    // Replayed against a fresh server: the same answers, so it passes.
    let other = support::start_server(Config::ephemeral()).await;
    let file = recorded.to_str().unwrap();
    let replay = run(&["script", file, "--server", &other.url(), "--app-id", "qa"]).await;
    assert_eq!(replay.status.code(), Some(0), "{}", all_of(&replay));
    other.shutdown().await;
    // A server where the peer is online answers the send with 0, not the 3 recorded.
    let third = support::start_server(Config::ephemeral()).await;
    // A client that acknowledges what it receives, as client libraries do.
    let mut nobody = rtm::qa::raw::RawConn::connect(&third.url(), "rec-nobody", None)
        .await
        .expect("connect");
    let login = serde_json::json!({"op": "login", "app_id": "qa", "user": "rec-nobody"});
    assert_eq!(nobody.call(login).await.expect("login")["code"], 0);
    let replay = run(&["script", file, "--server", &third.url(), "--app-id", "qa"]).await;
    assert_eq!(replay.status.code(), Some(1), "{}", all_of(&replay));
    assert!(
        text(&replay.stdout).contains("send_peer answered code 0 \"\"; expected 3"),
        "{}",
        all_of(&replay)
    );
    nobody.close();
    third.shutdown().await;
    server.shutdown().await;
}
