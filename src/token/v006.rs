//! Agora AccessToken `006`: `"006"` + the 32-character app id + base64 of
//! (signature, CRC32 of the channel name, CRC32 of the uid, message), where the message is
//! (salt, ts, privilege map of absolute expiry timestamps) and the signature is
//! HMAC-SHA256 under the certificate of app id + channel name + uid + message.
//!
//! RTM uses the RTC layout with the user id in the channel-name slot, an empty uid and
//! privilege 1000 (login). Only CRCs of channel and uid travel in the token, so a checker
//! must be told the user it expects.

use std::collections::BTreeMap;

use super::sign::{base64_decode, base64_encode, hmac_matches, hmac_sha256};
use super::wire::{PackReader, PackWriter, Truncated};
use super::TokenError;

/// Version prefix of the format.
pub const VERSION: &str = "006";
/// Length of the app id slot that follows the version prefix.
pub const APP_ID_LEN: usize = 32;
/// Privilege id of RTM login (Agora's `kRtmLogin`).
pub const PRIVILEGE_RTM_LOGIN: u16 = 1000;
/// Seconds Agora's builders put between minting and the `ts` field.
pub const TS_VALIDITY_SECS: u64 = 24 * 3600;

/// Agora's names for the privilege ids of the 006 format, for `inspect`.
pub fn privilege_name(id: u16) -> &'static str {
    match id {
        1 => "join_channel",
        2 => "publish_audio_stream",
        3 => "publish_video_stream",
        4 => "publish_data_stream",
        5 => "publish_audio_cdn",
        6 => "publish_video_cdn",
        7 => "request_publish_audio_stream",
        8 => "request_publish_video_stream",
        9 => "request_publish_data_stream",
        10 => "invite_publish_audio_stream",
        11 => "invite_publish_video_stream",
        12 => "invite_publish_data_stream",
        101 => "administrate_channel",
        PRIVILEGE_RTM_LOGIN => "rtm_login",
        _ => "unknown",
    }
}

/// Whether `id` is one of the RTC privileges (everything Agora defines except RTM login).
pub fn is_rtc_privilege(id: u16) -> bool {
    matches!(id, 1..=12 | 101)
}

/// A parsed 006 token; its signature is not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token006 {
    pub app_id: String,
    pub signature: Vec<u8>,
    pub crc_channel: u32,
    pub crc_uid: u32,
    pub salt: u32,
    /// Agora's builders set this to mint time + 24 h.
    pub ts: u32,
    /// Privilege id → absolute expiry (unix seconds; 0 = never).
    pub privileges: BTreeMap<u16, u32>,
    /// The signed message bytes exactly as they were in the token.
    message: Vec<u8>,
}

fn pack_message(salt: u32, ts: u32, privileges: &BTreeMap<u16, u32>) -> Vec<u8> {
    PackWriter::new()
        .u32(salt)
        .u32(ts)
        .map_u32(privileges)
        .finish()
}

/// Builds a token for `channel`/`uid` (RTM: user id and `""`).
pub fn build(
    app_id: &str,
    certificate: &str,
    channel: &str,
    uid: &str,
    salt: u32,
    ts: u32,
    privileges: &BTreeMap<u16, u32>,
) -> String {
    let message = pack_message(salt, ts, privileges);
    let signature = hmac_sha256(
        certificate.as_bytes(),
        &[
            app_id.as_bytes(),
            channel.as_bytes(),
            uid.as_bytes(),
            &message,
        ],
    );
    let content = PackWriter::new()
        .bytes(&signature)
        .u32(crc32fast::hash(channel.as_bytes()))
        .u32(crc32fast::hash(uid.as_bytes()))
        .bytes(&message)
        .finish();
    format!("{VERSION}{app_id}{}", base64_encode(&content))
}

/// Parses a token that starts with `006`.
pub fn parse(token: &str) -> Result<Token006, TokenError> {
    let malformed = |why: &str| TokenError::Invalid(format!("malformed 006 token: {why}"));
    let rest = token
        .strip_prefix(VERSION)
        .ok_or_else(|| malformed("it does not start with 006"))?;
    let app_id = rest
        .get(..APP_ID_LEN)
        .ok_or_else(|| malformed("too short for an app id"))?;
    let content = base64_decode(&rest[APP_ID_LEN..])
        .ok_or_else(|| malformed("the part after the app id is not base64"))?;
    parse_content(app_id, &content).map_err(|Truncated| malformed("its content ends too early"))
}

fn parse_content(app_id: &str, content: &[u8]) -> Result<Token006, Truncated> {
    let mut reader = PackReader::new(content);
    let signature = reader.bytes()?.to_vec();
    let crc_channel = reader.u32()?;
    let crc_uid = reader.u32()?;
    let message = reader.bytes()?.to_vec();
    let mut fields = PackReader::new(&message);
    let salt = fields.u32()?;
    let ts = fields.u32()?;
    let privileges = fields.map_u32()?;
    Ok(Token006 {
        app_id: app_id.to_owned(),
        signature,
        crc_channel,
        crc_uid,
        salt,
        ts,
        privileges,
        message,
    })
}

impl Token006 {
    /// Whether the token was signed with `certificate` for `channel`/`uid`.
    pub fn signature_matches(&self, certificate: &str, channel: &str, uid: &str) -> bool {
        hmac_matches(
            certificate.as_bytes(),
            &[
                self.app_id.as_bytes(),
                channel.as_bytes(),
                uid.as_bytes(),
                &self.message,
            ],
            &self.signature,
        )
    }

    /// Whether the uid slot is empty, as in RTM tokens (CRC32 of nothing is 0).
    pub fn has_empty_uid(&self) -> bool {
        self.crc_uid == 0
    }

    /// Whether the channel-name slot (RTM: the user id) has the CRC of `channel`.
    pub fn is_for_channel(&self, channel: &str) -> bool {
        self.crc_channel == crc32fast::hash(channel.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
    const CERTIFICATE: &str = "5CFd2fd1755d40ecb72977518be15d3b";

    /// Agora's published RTM vector (RtmTokenBuilder tests of AgoraDynamicKey).
    const RTM_VECTOR: &str = "006970CA35de60c44645bbae8a215061b33IAAsR0qgiCxv0vrpRcpkz5BrbfEWCBZ6kvR6t7qG/wJIQob86ogAAAAAEAABAAAAR/QQAAEA6AOvKDdW";

    #[test]
    fn reproduces_agoras_rtm_vector_byte_for_byte() {
        let privileges = BTreeMap::from([(PRIVILEGE_RTM_LOGIN, 1_446_455_471)]);
        let token = build(
            APP_ID,
            CERTIFICATE,
            "test_user",
            "",
            1,
            1_111_111,
            &privileges,
        );
        assert_eq!(token, RTM_VECTOR);
    }

    #[test]
    fn reproduces_agoras_rtc_vector_byte_for_byte() {
        // AccessToken test of AgoraDynamicKey: channel and uid 2882341273, join channel.
        let privileges = BTreeMap::from([(1, 1_446_455_471)]);
        let token = build(
            APP_ID,
            CERTIFICATE,
            "7d72365eb983485397e3e3f9d460bdda",
            "2882341273",
            1,
            1_111_111,
            &privileges,
        );
        assert_eq!(
            token,
            "006970CA35de60c44645bbae8a215061b33IACV0fZUBw+72cVoL9eyGGh3Q6Poi8bgjwVLnyKSJyOXR7dIfRBXoFHlEAABAAAAR/QQAAEAAQCvKDdW"
        );
    }

    #[test]
    fn parses_what_it_builds() {
        let parsed = parse(RTM_VECTOR).unwrap();
        assert_eq!(parsed.app_id, APP_ID);
        assert_eq!(parsed.salt, 1);
        assert_eq!(parsed.ts, 1_111_111);
        assert_eq!(
            parsed.privileges,
            BTreeMap::from([(PRIVILEGE_RTM_LOGIN, 1_446_455_471)])
        );
        assert!(parsed.is_for_channel("test_user"));
        assert!(!parsed.is_for_channel("test_user2"));
        assert_eq!(parsed.crc_uid, 0, "RTM puts an empty uid");
        assert!(parsed.signature_matches(CERTIFICATE, "test_user", ""));
        assert!(!parsed.signature_matches("5CFd2fd1755d40ecb72977518be15d3c", "test_user", ""));
    }

    #[test]
    fn malformed_tokens_are_invalid() {
        for token in [
            "006",
            "006970CA35de60c44645bbae8a2150",
            "006970CA35de60c44645bbae8a215061b33!!!",
            "006970CA35de60c44645bbae8a215061b33IAAs",
            "007970CA35de60c44645bbae8a215061b33IAAs",
        ] {
            assert!(
                matches!(parse(token), Err(TokenError::Invalid(_))),
                "{token}"
            );
        }
    }
}
