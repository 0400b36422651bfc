//! `rtm-tui token` as a user runs it: build a token, inspect it, verify it against a
//! certificate; exit codes 0 (ok), 1 (invalid, expired or unreadable token), 2 (bad usage).

use std::process::{Command, Output};

use rtm::token::{unix_now, verify_rtm_token};

const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
const CERTIFICATE: &str = "5CFd2fd1755d40ecb72977518be15d3b";
const OTHER_CERTIFICATE: &str = "fedcba9876543210fedcba9876543210";
/// Agora's published 007 RTC vector: a valid token, but for RTC.
const AGORA_007_RTC: &str = "007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj";

fn rtm_tui(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rtm-tui"))
        .args(args)
        .env_remove("RTM_APP_CERTIFICATE")
        .output()
        .expect("run rtm-tui")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// `rtm-tui token` building a token for `user` of the test app, valid 600 s, plus `extra`.
fn build_output(user: &str, extra: &[&str]) -> Output {
    let base = [
        "token",
        "--app-id",
        APP_ID,
        "--certificate",
        CERTIFICATE,
        "--user",
        user,
        "--expire",
        "600",
    ];
    rtm_tui(&[&base[..], extra].concat())
}

fn build(format: &str, user: &str) -> String {
    let output = build_output(user, &["--format", format]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    stdout(&output).trim().to_owned()
}

#[test]
fn built_tokens_verify_for_their_user_for_the_time_asked() {
    for format in ["006", "007"] {
        let before = unix_now();
        let token = build(format, "alice");
        assert!(token.starts_with(format), "{token}");
        let verified = verify_rtm_token(&token, APP_ID, CERTIFICATE, "alice", unix_now()).unwrap();
        let expires_at = verified.expires_at.unwrap();
        assert!((before + 600..=unix_now() + 600).contains(&expires_at));
        assert!(verify_rtm_token(&token, APP_ID, CERTIFICATE, "bob", unix_now()).is_err());
    }
}

/// `rtm-tui token --inspect TOKEN ARGS..`: exit code and standard output.
fn inspect(token: &str, args: &[&str]) -> (Option<i32>, String) {
    let output = rtm_tui(&[&["token", "--inspect", token], args].concat());
    (output.status.code(), stdout(&output))
}

#[test]
fn inspect_shows_contents_and_verifies_with_the_certificate() {
    let token = build("007", "alice");
    let (code, text) = inspect(&token, &["--certificate", CERTIFICATE]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("app id      {APP_ID}")), "{text}");
    assert!(text.contains("user        alice"), "{text}");
    assert!(text.contains("verified    yes"), "{text}");

    let (code, text) = inspect(&token, &["--certificate", OTHER_CERTIFICATE]);
    assert_eq!(code, Some(1));
    assert!(
        text.contains("verified    NO: invalid token: its signature"),
        "{text}"
    );

    let (code, text) = inspect(&token, &["--user", "bob", "--certificate", CERTIFICATE]);
    assert_eq!(code, Some(1));
    assert!(text.contains("another user"), "{text}");

    let (code, text) = inspect(&token, &[]);
    assert_eq!(code, Some(0));
    assert!(text.contains("verified    not checked"), "{text}");
}

#[test]
fn a_006_token_needs_the_user_to_be_verified() {
    let token = build("006", "alice");
    let (code, text) = inspect(&token, &["--certificate", CERTIFICATE]);
    assert_eq!(code, Some(2));
    assert!(text.contains("give --user"), "{text}");
    let (code, text) = inspect(&token, &["--certificate", CERTIFICATE, "--user", "alice"]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn json_output_is_one_object_for_machines() {
    let output = build_output("alice", &["--json"]);
    let built: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(built["version"], "007");
    assert_eq!(built["user"], "alice");
    let token = built["token"].as_str().unwrap();

    let output = rtm_tui(&[
        "token",
        "--inspect",
        token,
        "--certificate",
        CERTIFICATE,
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let inspected: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(inspected["info"]["app_id"], APP_ID);
    assert_eq!(inspected["info"]["user"], "alice");
    assert_eq!(inspected["info"]["services"][0]["name"], "rtm");
    assert_eq!(inspected["verification"]["valid"], true);
    assert_eq!(inspected["verification"]["expires_at"], built["expires_at"]);
    assert_eq!(inspected["looks_like_rtc_token"], false);
}

#[test]
fn rtc_tokens_are_called_out() {
    let output = rtm_tui(&[
        "token",
        "--inspect",
        AGORA_007_RTC,
        "--certificate",
        CERTIFICATE,
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("this looks like an RTC token, not an RTM token"),
        "{text}"
    );
}

#[test]
fn bad_input_has_the_right_exit_code() {
    let garbage = rtm_tui(&["token", "--inspect", "not-a-token"]);
    assert_eq!(garbage.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("cannot read the token"));

    let short_app_id = rtm_tui(&[
        "token",
        "--app-id",
        "demo",
        "--certificate",
        CERTIFICATE,
        "--user",
        "alice",
    ]);
    assert_eq!(short_app_id.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short_app_id.stderr).contains("32 hexadecimal"));

    let no_user = rtm_tui(&["token", "--app-id", APP_ID, "--certificate", CERTIFICATE]);
    assert_eq!(no_user.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_user.stderr).contains("--user"));
}
