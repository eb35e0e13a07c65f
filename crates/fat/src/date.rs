//! DOS dates and times (the directory entries' timestamps) from Unix time.

/// The UTC calendar date `(year, month 1–12, day 1–31)` of a Unix time (Howard Hinnant's
/// `civil_from_days`; any `i64`, before 1970 included).
#[must_use]
pub fn civil_date(unix: i64) -> (i64, i64, i64) {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The earliest time FAT stores (1980-01-01T00:00:00Z).
pub const DOS_MIN: i64 = 315_532_800;
/// The latest time FAT stores (2107-12-31T23:59:59Z).
pub const DOS_MAX: i64 = 4_354_819_199;

/// (date, time) in DOS format for a Unix timestamp (UTC), clamped to 1980-01-01..2107-12-31.
#[must_use]
pub fn dos_datetime(unix: i64) -> (u16, u16) {
    let t = unix.clamp(DOS_MIN, DOS_MAX);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_date(t);
    let date = (((y - 1980) << 9) | (m << 5) | d) as u16;
    let time = (((secs / 3600) << 11) | (((secs / 60) % 60) << 5) | ((secs % 60) / 2)) as u16;
    (date, time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_dos_datetime() {
        assert_eq!(dos_datetime(0), (0x21, 0)); // clamped to 1980-01-01
        // 2024-02-29 13:45:30 UTC
        let (d, t) = dos_datetime(1_709_214_330);
        assert_eq!((d >> 9, (d >> 5) & 15, d & 31), (44, 2, 29));
        assert_eq!((t >> 11, (t >> 5) & 63, (t & 31) * 2), (13, 45, 30));
    }
}
