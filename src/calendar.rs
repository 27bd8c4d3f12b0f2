//! Calendar arithmetic for file names and pages (UTC only: no time zone database needed),
//! and the shape of the zone names browsers interpret for us.

/// Gregorian date of a day count since 1970-01-01 (the proleptic calendar algorithm
/// published by H. Hinnant, restated here).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Day count since 1970-01-01 of a Gregorian date (the inverse of [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-30T22:00` (an HTML `datetime-local` value, read as UTC) → Unix seconds.
pub fn parse_utc_minute(text: &str) -> Option<i64> {
    let (date, time) = text.trim().split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, d) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (hh, mm) = time.get(..5)?.split_once(':')?;
    let (hh, mm) = (hh.parse::<i64>().ok()?, mm.parse::<i64>().ok()?);
    let (m, d) = (u32::try_from(m).ok()?, u32::try_from(d).ok()?);
    let valid = (1970..=9999).contains(&y)
        && (1..=12).contains(&m)
        && (1..=31).contains(&d)
        && civil_from_days(days_from_civil(y, m, d)) == (y, m, d)
        && (0..24).contains(&hh)
        && (0..60).contains(&mm);
    valid.then(|| days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60)
}

/// Unix seconds → `2026-11-26 14:05 UTC`.
pub fn format_datetime(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs / 60 % 60)
}

/// An IANA zone name (`Europe/Paris`) or `UTC`: shape only, the browser interprets it.
pub fn validate_timezone(tz: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&tz.len())
        && tz.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'))
        && !tz.starts_with('/')
        && !tz.contains("//");
    if ok { Ok(()) } else { Err("timezone must be a zone name like Europe/Paris or UTC".into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_naturally() {
        assert_eq!(format_datetime(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_datetime(1_795_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(format_datetime(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn form_times_read_as_utc() {
        assert_eq!(parse_utc_minute("2026-11-30T22:00"), Some(1_796_076_000));
        assert_eq!(parse_utc_minute("1970-01-01T00:00"), Some(0));
        assert_eq!(parse_utc_minute("2000-02-29T00:00"), Some(951_782_400));
        for bad in ["2026-02-30T10:00", "2026-11-30", "2026-11-30T24:00", "x-11-30T10:00", "2026-13-01T00:00"] {
            assert_eq!(parse_utc_minute(bad), None, "{bad}");
        }
    }

    #[test]
    fn timezones_are_zone_names() {
        for ok in ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+2"] {
            assert!(validate_timezone(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "Europe//Paris", "Europe/Paris<script>", &"A".repeat(65)] {
            assert!(validate_timezone(bad).is_err(), "{bad}");
        }
    }
}
