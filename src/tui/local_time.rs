//! Times as the user reads them: messages carry UTC milliseconds, shown in a time zone
//! (the system's by default, daylight saving included; the config's `time_zone` may name
//! another, or a fixed offset). The app never reads the system clock itself: the event
//! loop passes "now" in, and tests pass a fixed one and a fixed zone.

use jiff::civil::Date;
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;

/// The zone a `time_zone` setting names: empty for the system's (`TZ`, else
/// `/etc/localtime`), `UTC`, a fixed offset like `+02:00`, or an IANA name like
/// `Europe/Paris`.
pub fn zone(setting: &str) -> Result<TimeZone, String> {
    let setting = setting.trim();
    if setting.is_empty() {
        return Ok(TimeZone::system());
    }
    if let Some(minutes) = fixed_offset_minutes(setting) {
        let offset = Offset::from_seconds((minutes * 60) as i32).map_err(|e| e.to_string())?;
        return Ok(TimeZone::fixed(offset));
    }
    TimeZone::get(setting).map_err(|e| format!("unknown time zone {setting:?}: {e}"))
}

/// `+02:00`, `-05:30`, `+2`, `UTC` or `Z` in minutes east of UTC.
fn fixed_offset_minutes(text: &str) -> Option<i64> {
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

fn zoned(ms: u64, zone: &TimeZone) -> jiff::Zoned {
    // Out of jiff's range (year 9999) only for nonsense times; shown as the epoch.
    let at = Timestamp::from_millisecond(ms as i64).unwrap_or(Timestamp::UNIX_EPOCH);
    at.to_zoned(zone.clone())
}

/// Formats `ms` with strftime's `pattern` (`%H:%M`, `%a %d %b %Y`, ...). A pattern jiff
/// cannot use (the config refuses those) is shown as it is.
pub fn format(ms: u64, zone: &TimeZone, pattern: &str) -> String {
    jiff::fmt::strtime::format(pattern, &zoned(ms, zone)).unwrap_or_else(|_| pattern.to_string())
}

/// Whether `pattern` formats (a check for the config file).
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    jiff::fmt::strtime::format(pattern, &zoned(0, &TimeZone::UTC))
        .map(drop)
        .map_err(|e| format!("bad time_format {pattern:?}: {e}"))
}

/// The calendar day of `ms` in `zone`, for day separators.
pub fn day(ms: u64, zone: &TimeZone) -> Date {
    zoned(ms, zone).date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        // 2026-11-25 18:58:18 UTC
        let ms = 1_795_633_098_000;
        let utc = zone("UTC").unwrap();
        assert_eq!(
            format(ms, &utc, "%a %d %b %Y %H:%M:%S"),
            "Wed 25 Nov 2026 18:58:18"
        );
        assert_eq!(format(ms, &zone("+02:00").unwrap(), "%H:%M"), "20:58");
        let plus_six = zone("+06:00").unwrap();
        assert_eq!(format(ms, &plus_six, "%d"), "26");
        assert_eq!(day(ms, &utc).tomorrow().unwrap(), day(ms, &plus_six));
    }

    #[test]
    fn named_zones_keep_daylight_saving() {
        let paris = zone("Europe/Paris").unwrap();
        // 12:00 UTC: 14:00 in Paris in July (CEST), 13:00 in January (CET).
        assert_eq!(format(1_783_944_000_000, &paris, "%H:%M"), "14:00");
        assert_eq!(format(1_768_478_400_000, &paris, "%H:%M"), "13:00");
    }

    #[test]
    fn settings() {
        assert_eq!(fixed_offset_minutes("+02:00"), Some(120));
        assert_eq!(fixed_offset_minutes("-05:30"), Some(-330));
        assert_eq!(fixed_offset_minutes("UTC"), Some(0));
        assert_eq!(fixed_offset_minutes("2"), None);
        assert!(zone("").is_ok());
        assert!(zone("Mars/Olympus").is_err());
        assert!(check_pattern("%H:%M").is_ok());
        assert!(check_pattern("%K").is_err());
    }
}
