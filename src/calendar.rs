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
    fn timezones_are_zone_names() {
        for ok in ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+2"] {
            assert!(validate_timezone(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "Europe//Paris", "Europe/Paris<script>", &"A".repeat(65)] {
            assert!(validate_timezone(bad).is_err(), "{bad}");
        }
    }
}
