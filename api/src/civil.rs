//! Calendar arithmetic for the few places that print or parse UTC dates (SigV4 `x-amz-date`,
//! PutMedia's ISO-8601 start timestamp, certificate validity), without a date-time dependency.
//! Parsing refuses dates that do not exist (`2020-02-31`), as KVS does. Algorithms from Howard
//! Hinnant, "chrono-Compatible Low-Level Date Algorithms".

use crate::Timestamp;

/// The UTC time `y-mo-d h:mi:s.ms`, or `None` unless it names a real calendar date and a time
/// of day (second 60 for a leap second; `ms` below 1000). Every parser of a date goes through
/// here.
pub fn timestamp(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> Option<Timestamp> {
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 || ms > 999 {
        return None;
    }
    let secs =
        (days_from_civil(y, mo, d) * 24 + i64::from(h)) * 3600 + i64::from(mi) * 60 + i64::from(s);
    Some(Timestamp::from_millis(secs * 1000 + i64::from(ms)))
}

/// ISO-8601 UTC with a `Z` zone, as the Java producer sends `x-amzn-producer-start-timestamp`:
/// `2017-11-28T06:55:08Z` or with a fraction of any length, `2017-11-28T06:55:08.513Z`
/// (milliseconds kept, finer digits dropped).
pub fn parse_iso8601(v: &str) -> Option<Timestamp> {
    let (date, time) = v.split_once('T')?;
    let time = time.strip_suffix('Z')?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut d = date.splitn(3, '-');
    let (y, mo, d) = (d.next()?, d.next()?, d.next()?);
    let mut t = hms.splitn(3, ':');
    let (h, mi, s) = (t.next()?, t.next()?, t.next()?);
    let fixed = |p: &str, len: usize| -> Option<u32> {
        (p.len() == len && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok())?
    };
    timestamp(
        i64::from(fixed(y, 4)?),
        fixed(mo, 2)?,
        fixed(d, 2)?,
        fixed(h, 2)?,
        fixed(mi, 2)?,
        fixed(s, 2)?,
        fraction_millis(frac)?,
    )
}

/// The milliseconds of a decimal fraction's digits: `"5"` is 500, `"1234"` is 123, `""` is 0.
pub fn fraction_millis(frac: &str) -> Option<u32> {
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        frac.bytes()
            .chain(std::iter::repeat(b'0'))
            .take(3)
            .fold(0, |ms, b| ms * 10 + u32::from(b - b'0')),
    )
}

/// The number of days of month `m` (1–12) of year `y`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d`. The date is not checked:
/// `2020-02-31` is 2020-03-02; parse dates with [`timestamp`].
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(y, m, d)` of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYYMMDDTHHMMSSZ`, the SigV4 date format.
pub fn amz_date(t: Timestamp) -> String {
    let secs = t.as_millis().div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (HLS `EXT-X-PROGRAM-DATE-TIME`, DASH `publishTime`).
pub fn iso8601_millis(t: Timestamp) -> String {
    let ms = t.as_millis();
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_with_millis_round_trips() {
        let t = Timestamp::from_millis(1_684_331_315_994);
        assert_eq!(iso8601_millis(t), "2023-05-17T13:48:35.994Z");
        assert_eq!(parse_iso8601(&iso8601_millis(t)), Some(t));
    }

    #[test]
    fn round_trips_and_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 27), 20_784);
        for z in [-800_000, -1, 0, 59, 60, 11_016, 20_784, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(
            amz_date(Timestamp::from_millis(1_795_770_002_000)),
            "20261127T090002Z"
        );
    }

    #[test]
    fn only_real_dates_and_times() {
        let ms = |y, mo, d| timestamp(y, mo, d, 0, 0, 0, 0).map(Timestamp::as_millis);
        assert_eq!(ms(2020, 2, 29), Some(1_582_934_400_000), "leap year");
        assert_eq!(ms(2000, 2, 29), Some(951_782_400_000), "divisible by 400");
        assert_eq!(ms(2026, 12, 31), Some(1_798_675_200_000));
        for (y, mo, d) in [
            (2020, 2, 31),
            (2020, 2, 30),
            (2019, 2, 29),
            (1900, 2, 29),
            (2021, 4, 31),
            (2021, 6, 31),
            (2021, 9, 31),
            (2021, 11, 31),
            (2021, 1, 32),
            (2021, 1, 0),
            (2021, 0, 1),
            (2021, 13, 1),
        ] {
            assert_eq!(ms(y, mo, d), None, "{y}-{mo}-{d}");
        }
        assert!(
            timestamp(2021, 1, 1, 23, 59, 60, 999).is_some(),
            "leap second"
        );
        assert!(timestamp(2021, 1, 1, 24, 0, 0, 0).is_none());
        assert!(timestamp(2021, 1, 1, 0, 60, 0, 0).is_none());
        assert!(timestamp(2021, 1, 1, 0, 0, 61, 0).is_none());
        assert!(timestamp(2021, 1, 1, 0, 0, 0, 1000).is_none());
    }

    #[test]
    fn iso8601() {
        let ms = |v| parse_iso8601(v).map(Timestamp::as_millis);
        assert_eq!(ms("2017-11-28T06:55:08.513Z"), Some(1_511_852_108_513));
        assert_eq!(ms("2017-11-28T06:55:08Z"), Some(1_511_852_108_000));
        assert_eq!(ms("2017-11-28T06:55:08.5Z"), Some(1_511_852_108_500));
        assert_eq!(ms("2017-11-28T06:55:08.123456Z"), Some(1_511_852_108_123));
        for bad in [
            "2020-02-31T00:00:00Z",
            "2019-02-29T00:00:00Z",
            "2017-13-28T06:55:08Z",
            "2017-11-28T06:55:08",
            "2017-11-28T06:55:08+01:00",
            "2017-11-28 06:55:08Z",
            "2017-11-28T6:55:08Z",
            "2017-11-28T06:55:08.Z1",
            "+2017-11-28T06:55:08Z",
            "2017-11-28T06:55:08.-1Z",
            "",
        ] {
            assert_eq!(ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn fractions() {
        assert_eq!(fraction_millis(""), Some(0));
        assert_eq!(fraction_millis("5"), Some(500));
        assert_eq!(fraction_millis("05"), Some(50));
        assert_eq!(fraction_millis("1234"), Some(123));
        assert_eq!(fraction_millis("1a"), None);
    }
}
