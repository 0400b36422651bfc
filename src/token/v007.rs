//! Agora AccessToken2 `007`: `"007"` + base64 of zlib(signature, signing info), where the
//! signing info is (app id, issue ts, expire, salt, services) and the signature is
//! HMAC-SHA256 of the signing info under a key derived in two steps:
//! `HMAC(key = issue ts, certificate)`, then `HMAC(key = salt, that)`.
//!
//! Each service is its type, a privilege map (id → seconds after issue ts) and fields that
//! depend on the type. RTM is type 2 with the user id and privilege 1 (login). A service
//! type this code does not know ends parsing (its layout is unknown), as Agora's own
//! parsers do; the signature still covers every byte. New service layouts go in
//! `ServiceBody`.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use super::sign::{base64_decode, base64_encode, hmac_matches, hmac_sha256};
use super::wire::{PackReader, PackWriter, Truncated};
use super::TokenError;

/// Version prefix of the format.
pub const VERSION: &str = "007";
/// Service type of RTC.
pub const SERVICE_RTC: u16 = 1;
/// Service type of RTM (1.x); `PRIVILEGE_LOGIN` is its only privilege.
pub const SERVICE_RTM: u16 = 2;
/// Privilege id of RTM login.
pub const PRIVILEGE_LOGIN: u16 = 1;
/// Largest decompressed token accepted: real tokens are a few hundred bytes, and the cap
/// keeps a crafted zlib stream from costing memory.
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 * 1024;

/// The type-specific fields of a service, per Agora's AccessToken2 layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceBody {
    Rtc {
        channel: String,
        uid: String,
    },
    Rtm {
        user: String,
    },
    Streaming {
        channel: String,
        account: String,
    },
    Fpa,
    Chat {
        user: String,
    },
    FCdn {
        channel: String,
        account: String,
    },
    Apaas {
        room: String,
        user: String,
        role: i16,
    },
    /// RTM 2.x with resource permissions, kept as the raw packed bytes.
    Rtm2 {
        user: String,
        permissions: Vec<u8>,
    },
    ConvoAi,
    Stt,
}

/// One service of a token: its type, privileges and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub kind: u16,
    /// Privilege id → seconds after the issue ts (0 = no limit of its own).
    pub privileges: BTreeMap<u16, u32>,
    pub body: ServiceBody,
}

impl ServiceBody {
    /// The layout of service type `kind`, empty, or `None` for a type not known here.
    fn empty(kind: u16) -> Option<ServiceBody> {
        Some(match kind {
            SERVICE_RTC => ServiceBody::Rtc {
                channel: String::new(),
                uid: String::new(),
            },
            SERVICE_RTM => ServiceBody::Rtm {
                user: String::new(),
            },
            3 => ServiceBody::Streaming {
                channel: String::new(),
                account: String::new(),
            },
            4 => ServiceBody::Fpa,
            5 => ServiceBody::Chat {
                user: String::new(),
            },
            6 => ServiceBody::FCdn {
                channel: String::new(),
                account: String::new(),
            },
            7 => ServiceBody::Apaas {
                room: String::new(),
                user: String::new(),
                role: -1,
            },
            8 => ServiceBody::Rtm2 {
                user: String::new(),
                permissions: Vec::new(),
            },
            9 => ServiceBody::ConvoAi,
            10 => ServiceBody::Stt,
            _ => return None,
        })
    }

    fn pack(&self, out: &mut PackWriter) {
        match self {
            ServiceBody::Rtc {
                channel,
                uid: second,
            }
            | ServiceBody::Streaming {
                channel,
                account: second,
            }
            | ServiceBody::FCdn {
                channel,
                account: second,
            } => {
                out.bytes(channel.as_bytes()).bytes(second.as_bytes());
            }
            ServiceBody::Rtm { user } | ServiceBody::Chat { user } => {
                out.bytes(user.as_bytes());
            }
            ServiceBody::Apaas { room, user, role } => {
                out.bytes(room.as_bytes()).bytes(user.as_bytes()).i16(*role);
            }
            ServiceBody::Rtm2 { user, permissions } => {
                out.bytes(user.as_bytes()).raw(permissions);
            }
            ServiceBody::Fpa | ServiceBody::ConvoAi | ServiceBody::Stt => {}
        }
    }

    fn unpack(&mut self, input: &mut PackReader<'_>) -> Result<(), Truncated> {
        match self {
            ServiceBody::Rtc {
                channel,
                uid: second,
            }
            | ServiceBody::Streaming {
                channel,
                account: second,
            }
            | ServiceBody::FCdn {
                channel,
                account: second,
            } => {
                *channel = input.string()?;
                *second = input.string()?;
            }
            ServiceBody::Rtm { user } | ServiceBody::Chat { user } => *user = input.string()?,
            ServiceBody::Apaas { room, user, role } => {
                *room = input.string()?;
                *user = input.string()?;
                *role = input.i16()?;
            }
            ServiceBody::Rtm2 { user, permissions } => {
                *user = input.string()?;
                let start = input.rest();
                skip_rtm2_permissions(input)?;
                let used = start.len() - input.rest().len();
                *permissions = start[..used].to_vec();
            }
            ServiceBody::Fpa | ServiceBody::ConvoAi | ServiceBody::Stt => {}
        }
        Ok(())
    }

    /// The fields as (name, value) pairs, for `inspect`.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        match self {
            ServiceBody::Rtc { channel, uid } => {
                vec![("channel", channel.clone()), ("uid", uid.clone())]
            }
            ServiceBody::Rtm { user } | ServiceBody::Chat { user } => vec![("user", user.clone())],
            ServiceBody::Streaming { channel, account }
            | ServiceBody::FCdn { channel, account } => {
                vec![("channel", channel.clone()), ("account", account.clone())]
            }
            ServiceBody::Apaas { room, user, role } => vec![
                ("room", room.clone()),
                ("user", user.clone()),
                ("role", role.to_string()),
            ],
            ServiceBody::Rtm2 { user, permissions } => vec![
                ("user", user.clone()),
                ("permission_bytes", permissions.len().to_string()),
            ],
            ServiceBody::Fpa | ServiceBody::ConvoAi | ServiceBody::Stt => Vec::new(),
        }
    }
}

/// RTM2 permissions: resource types, each with permission types, each with a list of
/// resource names.
fn skip_rtm2_permissions(input: &mut PackReader<'_>) -> Result<(), Truncated> {
    for _ in 0..input.u16()? {
        input.u16()?;
        for _ in 0..input.u16()? {
            input.u16()?;
            for _ in 0..input.u16()? {
                input.bytes()?;
            }
        }
    }
    Ok(())
}

/// Agora's name of service type `kind`, for `inspect`.
pub fn service_name(kind: u16) -> &'static str {
    match kind {
        SERVICE_RTC => "rtc",
        SERVICE_RTM => "rtm",
        3 => "streaming",
        4 => "fpa",
        5 => "chat",
        6 => "fcdn",
        7 => "apaas",
        8 => "rtm2",
        9 => "convoai",
        10 => "stt",
        _ => "unknown",
    }
}

/// Agora's name of privilege `id` of service type `kind`, for `inspect`.
pub fn privilege_name(kind: u16, id: u16) -> &'static str {
    match (kind, id) {
        (SERVICE_RTC, 1) => "join_channel",
        (SERVICE_RTC, 2) => "publish_audio_stream",
        (SERVICE_RTC, 3) => "publish_video_stream",
        (SERVICE_RTC, 4) => "publish_data_stream",
        (SERVICE_RTM | 4 | 8, 1) => "login",
        (3, 1) => "publish_mix_stream",
        (3, 2) => "publish_raw_stream",
        (5, 1) | (7, 2) => "user",
        (5, 2) | (7, 3) => "app",
        (6, 1) => "publish",
        (6, 2) => "play",
        (7, 1) => "room_user",
        _ => "unknown",
    }
}

/// A parsed 007 token; its signature is not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token007 {
    pub app_id: String,
    pub issue_ts: u32,
    /// Seconds after `issue_ts` the whole token is valid (0 = no limit of its own).
    pub expire: u32,
    pub salt: u32,
    /// The services parsed, in token order.
    pub services: Vec<Service>,
    /// The type of a service whose layout is not known here; parsing stopped at it.
    pub unknown_service: Option<u16>,
    /// How many services the token says it has.
    pub service_count: u16,
    signature: Vec<u8>,
    /// Everything after the signature: exactly the signed bytes.
    signing_info: Vec<u8>,
}

fn signing_key(certificate: &str, issue_ts: u32, salt: u32) -> [u8; 32] {
    let by_time = hmac_sha256(&issue_ts.to_le_bytes(), &[certificate.as_bytes()]);
    hmac_sha256(&salt.to_le_bytes(), &[&by_time])
}

/// Builds a token with `services`, packed in type order as Agora's builders do.
pub fn build(
    app_id: &str,
    certificate: &str,
    issue_ts: u32,
    expire: u32,
    salt: u32,
    services: &[Service],
) -> String {
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by_key(|service| service.kind);
    let mut info = PackWriter::new();
    info.bytes(app_id.as_bytes())
        .u32(issue_ts)
        .u32(expire)
        .u32(salt)
        .u16(u16::try_from(sorted.len()).expect("fewer than 64 Ki services"));
    for service in sorted {
        info.u16(service.kind).map_u32(&service.privileges);
        service.body.pack(&mut info);
    }
    let signing_info = info.finish();
    let signature = hmac_sha256(&signing_key(certificate, issue_ts, salt), &[&signing_info]);
    let mut content = PackWriter::new().bytes(&signature).finish();
    content.extend_from_slice(&signing_info);
    format!("{VERSION}{}", base64_encode(&compress(&content)))
}

/// zlib at the default level, as Agora's builders compress.
pub fn compress(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(bytes)
        .expect("writing to a Vec does not fail");
    encoder.finish().expect("writing to a Vec does not fail")
}

/// The zlib-decompressed content of a token, or `None` if it is not zlib or too large.
pub fn decompress(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut content = Vec::new();
    ZlibDecoder::new(bytes)
        .take(MAX_DECOMPRESSED_BYTES + 1)
        .read_to_end(&mut content)
        .ok()?;
    (content.len() as u64 <= MAX_DECOMPRESSED_BYTES).then_some(content)
}

/// Parses a token that starts with `007`.
pub fn parse(token: &str) -> Result<Token007, TokenError> {
    let malformed = |why: &str| TokenError::Invalid(format!("malformed 007 token: {why}"));
    let rest = token
        .strip_prefix(VERSION)
        .ok_or_else(|| malformed("it does not start with 007"))?;
    let compressed = base64_decode(rest).ok_or_else(|| malformed("it is not base64"))?;
    let content = decompress(&compressed).ok_or_else(|| malformed("it is not zlib data"))?;
    parse_content(&content).map_err(|Truncated| malformed("its content ends too early"))
}

fn parse_content(content: &[u8]) -> Result<Token007, Truncated> {
    let mut reader = PackReader::new(content);
    let signature = reader.bytes()?.to_vec();
    let signing_info = reader.rest().to_vec();
    let app_id = reader.string()?;
    let issue_ts = reader.u32()?;
    let expire = reader.u32()?;
    let salt = reader.u32()?;
    let service_count = reader.u16()?;
    let mut services = Vec::new();
    let mut unknown_service = None;
    for _ in 0..service_count {
        let kind = reader.u16()?;
        let Some(mut body) = ServiceBody::empty(kind) else {
            unknown_service = Some(kind);
            break;
        };
        let privileges = reader.map_u32()?;
        body.unpack(&mut reader)?;
        services.push(Service {
            kind,
            privileges,
            body,
        });
    }
    Ok(Token007 {
        app_id,
        issue_ts,
        expire,
        salt,
        services,
        unknown_service,
        service_count,
        signature,
        signing_info,
    })
}

impl Token007 {
    /// Whether the token was signed with `certificate`.
    pub fn signature_matches(&self, certificate: &str) -> bool {
        hmac_matches(
            &signing_key(certificate, self.issue_ts, self.salt),
            &[&self.signing_info],
            &self.signature,
        )
    }

    /// The signed bytes, for tests that compare with Agora's vectors after decompression.
    #[cfg(test)]
    pub fn signed_content(&self) -> Vec<u8> {
        let mut content = PackWriter::new().bytes(&self.signature).finish();
        content.extend_from_slice(&self.signing_info);
        content
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
    const CERTIFICATE: &str = "5CFd2fd1755d40ecb72977518be15d3b";
    const CHANNEL: &str = "7d72365eb983485397e3e3f9d460bdda";

    fn service(kind: u16, privileges: &[u16], body: ServiceBody) -> Service {
        Service {
            kind,
            privileges: privileges.iter().map(|&id| (id, 600)).collect(),
            body,
        }
    }

    fn rtm(user: &str) -> Service {
        service(
            SERVICE_RTM,
            &[PRIVILEGE_LOGIN],
            ServiceBody::Rtm { user: user.into() },
        )
    }

    /// Agora's builders and ours compress differently, so vectors are compared after
    /// decompression: same signature, same signed bytes.
    fn assert_same_content(ours: &str, agoras: &str) {
        let ours = parse(ours).unwrap();
        let agoras = parse(agoras).unwrap();
        assert_eq!(ours.signed_content(), agoras.signed_content());
        assert_eq!(ours, agoras);
    }

    #[test]
    fn reproduces_agoras_rtc_and_rtm_vector() {
        // AccessToken2 tests of AgoraDynamicKey (Node "AccessToken_Test4"): RTC with all
        // four privileges for uid 2882341273 plus RTM login for test_user, expire 600.
        let agoras = "007eJxTYOAQsrQ5s3TfH+1tvy8zZZ46EpCc0V43JXdGd2jS8porKo4KDJbmBs6OxqYpqWYGySYmZiamSUmJqRaJRoamBmaGScbG7l8EGCKYGBgYGRgYmBgYGVgYGMF8JjDJDCZZwKQCg3mKuZGxmWlqkqWFsYmFqbGleapxqnGaZYqJmUFSSkoiF4ORhYWRsYmhkbkxyCyISZwMJanFJfGlxalFACKnKng=";
        let rtc = service(
            SERVICE_RTC,
            &[1, 2, 3, 4],
            ServiceBody::Rtc {
                channel: CHANNEL.into(),
                uid: "2882341273".into(),
            },
        );
        let ours = build(
            APP_ID,
            CERTIFICATE,
            1_111_111,
            600,
            1,
            &[rtm("test_user"), rtc],
        );
        assert_same_content(&ours, agoras);
        assert!(parse(agoras).unwrap().signature_matches(CERTIFICATE));
    }

    #[test]
    fn reproduces_agoras_rtc_vector() {
        let agoras = "007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj";
        let rtc = service(
            SERVICE_RTC,
            &[1],
            ServiceBody::Rtc {
                channel: CHANNEL.into(),
                uid: "2882341273".into(),
            },
        );
        let ours = build(APP_ID, CERTIFICATE, 1_111_111, 600, 1, &[rtc]);
        assert_same_content(&ours, agoras);
    }

    #[test]
    fn chat_vectors_of_two_agora_builders_differ_as_strings_but_not_in_content() {
        // The same token from Agora's Python and Node builders: zlib output differs.
        let python = "007eJxTYNAIsnbS3v/A5t2TC6feR15r+6cq8bqAvfaW+tk/Vzz+p6xTYLA0N3B2NDZNSTUzSDYxMTMxTUpKTLVINDI0NTAzTDI2dv8iwBDBxMDAyADCrEDMCOZzMRhZWBgZmxgamRsDAB+lHrg=";
        let node = "007eJxTYNAIsnbS3v/A5t2TC6feR15r+6cq8bqAvfaW+tk/Vzz+p6xTYLA0N3B2NDZNSTUzSDYxMTMxTUpKTLVINDI0NTAzTDI2dv8iwBDBxMDAyADCrAyMDIxgPheDkYWFkbGJoZG5MQAfpR64";
        assert_ne!(python, node);
        assert_same_content(python, node);
        let chat = service(
            5,
            &[1],
            ServiceBody::Chat {
                user: "2882341273".into(),
            },
        );
        assert_same_content(
            &build(APP_ID, CERTIFICATE, 1_111_111, 600, 1, &[chat]),
            node,
        );
    }

    #[test]
    fn every_known_layout_round_trips() {
        let services = vec![
            rtm("alice"),
            service(
                3,
                &[1, 2],
                ServiceBody::Streaming {
                    channel: "c".into(),
                    account: "a".into(),
                },
            ),
            service(4, &[1], ServiceBody::Fpa),
            service(
                6,
                &[1, 2],
                ServiceBody::FCdn {
                    channel: "c".into(),
                    account: String::new(),
                },
            ),
            service(
                7,
                &[1],
                ServiceBody::Apaas {
                    room: "r".into(),
                    user: "u".into(),
                    role: -1,
                },
            ),
            service(
                8,
                &[1],
                ServiceBody::Rtm2 {
                    user: "bob".into(),
                    // one resource type, one permission type, resources "a" and "bc"
                    permissions: vec![1, 0, 0, 0, 1, 0, 1, 0, 2, 0, 1, 0, b'a', 2, 0, b'b', b'c'],
                },
            ),
            service(9, &[1], ServiceBody::ConvoAi),
            service(10, &[1], ServiceBody::Stt),
        ];
        let token = parse(&build(APP_ID, CERTIFICATE, 5, 10, 7, &services)).unwrap();
        assert_eq!(token.services, services);
        assert_eq!(token.unknown_service, None);
        assert!(token.signature_matches(CERTIFICATE));
    }

    #[test]
    fn parsing_stops_at_an_unknown_service_but_the_signature_covers_it() {
        // Pack an RTM service followed by a type-999 service by hand.
        let mut info = PackWriter::new();
        info.bytes(APP_ID.as_bytes()).u32(1).u32(600).u32(2).u16(2);
        info.u16(SERVICE_RTM).map_u32(&BTreeMap::from([(1, 600)]));
        info.bytes(b"alice");
        info.u16(999)
            .map_u32(&BTreeMap::from([(1, 600)]))
            .bytes(b"x");
        let signing_info = info.finish();
        let signature = hmac_sha256(&signing_key(CERTIFICATE, 1, 2), &[&signing_info]);
        let mut content = PackWriter::new().bytes(&signature).finish();
        content.extend_from_slice(&signing_info);
        let token = format!("{VERSION}{}", base64_encode(&compress(&content)));

        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.services, vec![rtm("alice")]);
        assert_eq!(parsed.unknown_service, Some(999));
        assert_eq!(parsed.service_count, 2);
        assert!(parsed.signature_matches(CERTIFICATE));
    }

    #[test]
    fn signature_depends_on_certificate_and_every_signed_byte() {
        let token = build(APP_ID, CERTIFICATE, 1_111_111, 600, 1, &[rtm("alice")]);
        let parsed = parse(&token).unwrap();
        assert!(!parsed.signature_matches("5CFd2fd1755d40ecb72977518be15d3c"));
        let mut tampered = parsed.clone();
        let last = tampered.signing_info.len() - 1;
        tampered.signing_info[last] ^= 1;
        assert!(!tampered.signature_matches(CERTIFICATE));
    }

    #[test]
    fn malformed_tokens_are_invalid() {
        let not_zlib = format!("{VERSION}{}", base64_encode(b"hello"));
        let truncated = format!("{VERSION}{}", base64_encode(&compress(&[32, 0, 1, 2])));
        let bomb = format!(
            "{VERSION}{}",
            base64_encode(&compress(&vec![0; 2 * MAX_DECOMPRESSED_BYTES as usize]))
        );
        for token in ["007", "007!!", "006abc", &not_zlib, &truncated, &bomb] {
            assert!(
                matches!(parse(token), Err(TokenError::Invalid(_))),
                "{token}"
            );
        }
    }
}
