//! `token`: mint an Agora RTM token, or inspect (and verify) one.

use std::process::ExitCode;

use crate::cli::{TokenArgs, TokenFormat};

/// `rtm-tui token`: build a token, or inspect (and verify) one.
pub(crate) fn token(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    match &args.inspect {
        Some(token) => Ok(token_inspect(token, args)),
        None => token_build(args),
    }
}

fn token_build(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    use rtm::token::{check_agora_id, mint_rtm_token, unix_now, TokenVersion};

    // clap requires all three when --inspect is absent.
    let (Some(app_id), Some(certificate), Some(user)) =
        (&args.app_id, &args.certificate, &args.user)
    else {
        anyhow::bail!("--app-id, --certificate and --user are needed to build a token");
    };
    let problems = [
        check_agora_id("--app-id", app_id).err(),
        check_agora_id("--certificate", certificate).err(),
        rtm::protocol::limits::validate_user_id(user)
            .err()
            .map(|error| format!("--user: {error}")),
    ];
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    if !problems.is_empty() {
        eprintln!("rtm-tui token: {}", problems.join("; "));
        return Ok(ExitCode::from(2));
    }
    let version = match args.format {
        TokenFormat::V006 => TokenVersion::V006,
        TokenFormat::V007 => TokenVersion::V007,
    };
    let now = unix_now();
    let token = mint_rtm_token(version, app_id, certificate, user, args.expire);
    let expires_at = (args.expire != 0).then(|| now + u64::from(args.expire));
    if args.json {
        let output = serde_json::json!({
            "token": token,
            "version": version,
            "app_id": app_id,
            "user": user,
            "expires_at": expires_at,
        });
        println!("{output}");
    } else {
        println!("{token}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What checking a token against a certificate came to.
enum TokenVerdict {
    NotChecked(&'static str),
    Verified(rtm::token::VerifiedToken),
    Refused(rtm::token::TokenError),
}

fn token_inspect(token: &str, args: &TokenArgs) -> ExitCode {
    use rtm::token::{inspect, looks_like_rtc_token, unix_now, verify_rtm_token, TokenVersion};

    let info = match inspect(token) {
        Ok(info) => info,
        Err(error) => {
            if args.json {
                let output = serde_json::json!({ "error": error.to_string() });
                println!("{output}");
            } else {
                eprintln!("rtm-tui token: cannot read the token: {error}");
            }
            return ExitCode::FAILURE;
        }
    };
    let now = unix_now();
    let app_id = args.app_id.as_deref().unwrap_or(&info.app_id);
    // A 007 token without an RTM service is refused before its user matters.
    let user = args
        .user
        .as_deref()
        .or(info.user.as_deref())
        .or((info.version == TokenVersion::V007).then_some(""));
    let verdict = match (&args.certificate, user) {
        (None, _) => TokenVerdict::NotChecked("give --certificate to check the signature"),
        (Some(_), None) => TokenVerdict::NotChecked(
            "a 006 token does not hold its user id: give --user to check it",
        ),
        (Some(certificate), Some(user)) => {
            match verify_rtm_token(token, app_id, certificate, user, now) {
                Ok(verified) => TokenVerdict::Verified(verified),
                Err(error) => TokenVerdict::Refused(error),
            }
        }
    };
    let rtc = looks_like_rtc_token(token);
    if args.json {
        let (checked, valid, error, expires_at) = match &verdict {
            TokenVerdict::NotChecked(why) => (false, None, Some(why.to_string()), None),
            TokenVerdict::Verified(verified) => (true, Some(true), None, verified.expires_at),
            TokenVerdict::Refused(error) => (true, Some(false), Some(error.to_string()), None),
        };
        let output = serde_json::json!({
            "info": info,
            "looks_like_rtc_token": rtc,
            "verification": {
                "checked": checked,
                "valid": valid,
                "app_id": app_id,
                "user": user,
                "expires_at": expires_at,
                "error": error,
            },
        });
        println!("{output}");
    } else {
        println!("{}", info.describe(now));
        if rtc {
            println!("note        this looks like an RTC token, not an RTM token");
        }
        match &verdict {
            TokenVerdict::NotChecked(why) => println!("verified    not checked: {why}"),
            TokenVerdict::Verified(_) => println!(
                "verified    yes: valid now for user {:?} of app {app_id}",
                user.unwrap_or_default()
            ),
            TokenVerdict::Refused(error) => println!("verified    NO: {error}"),
        }
    }
    match verdict {
        TokenVerdict::NotChecked(_) if args.certificate.is_some() => ExitCode::from(2),
        TokenVerdict::NotChecked(_) | TokenVerdict::Verified(_) => ExitCode::SUCCESS,
        TokenVerdict::Refused(_) => ExitCode::FAILURE,
    }
}
