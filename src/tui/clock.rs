//! Calendar arithmetic for timestamps and day separators, without a time-zone database:
//! messages carry UTC milliseconds and the config gives a fixed `utc_offset`.
//! The app never reads the system clock itself; the event loop passes "now" in, and
//! tests pass a fixed one.

use std::fmt::Write as _;

/// Days since 1970-01-01 of `ms` at `offset_min` minutes east of UTC.
pub fn day_number(ms: u64, offset_min: i64) -> i64 {
    (ms as i64 + offset_min * 60_000).div_euclid(86_400_000)
}

/// (year, month 1..12, day 1..31) of a day number (Howard Hinnant's civil_from_days).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// Formats `ms` with `%H %M %S %d %m %Y %y %b %a` (other characters are copied).
pub fn format(ms: u64, offset_min: i64, pattern: &str) -> String {
    let local = ms as i64 + offset_min * 60_000;
    let days = local.div_euclid(86_400_000);
    let secs = local.rem_euclid(86_400_000) / 1000;
    let (y, m, d) = civil(days);
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('H') => {
                let _ = write!(out, "{:02}", secs / 3600);
            }
            Some('M') => {
                let _ = write!(out, "{:02}", secs / 60 % 60);
            }
            Some('S') => {
                let _ = write!(out, "{:02}", secs % 60);
            }
            Some('d') => {
                let _ = write!(out, "{d:02}");
            }
            Some('m') => {
                let _ = write!(out, "{m:02}");
            }
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => {
                let _ = write!(out, "{:02}", y.rem_euclid(100));
            }
            Some('b') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('a') => out.push_str(WEEKDAYS[days.rem_euclid(7) as usize]),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        // 2026-11-25 18:58:18 UTC
        let ms = 1_795_633_098_000;
        assert_eq!(
            format(ms, 0, "%a %d %b %Y %H:%M:%S"),
            "Wed 25 Nov 2026 18:58:18"
        );
        assert_eq!(format(ms, 120, "%H:%M"), "20:58");
        assert_eq!(format(ms, 360, "%d"), "26");
        assert_eq!(day_number(ms, 0) + 1, day_number(ms, 360));
        assert_eq!(civil(0), (1970, 1, 1));
    }
}
