//! Durations as people write them in job documents: `500ms`, `30s`, `1m30s`, `2h`, `1d`.
//!
//! The job document keeps durations as strings (so YAML, JSON and protobuf read alike);
//! this module is the one place that turns them into [`std::time::Duration`] and back.
//! The accepted form is Go's / humantime's: one or more `<number><unit>` components,
//! units `ms`, `s`, `m`, `h`, `d` (a day is always 86 400 s: durations are elapsed time,
//! not calendar time), a number may have a fraction (`1.5s`, `0.5h`), components may be
//! separated by spaces (so may a number and its unit), and a bare `0` means zero.
//!
//! Invariants:
//! - every duration [`parse_duration`] returns fits in an `i64` of nanoseconds (about
//!   292 years), so it converts to `chrono::Duration` and to nanosecond counters
//!   without overflow;
//! - [`format_duration`] writes the canonical form (largest units first, zero
//!   components left out, `0s` for zero) and `parse_duration(&format_duration(d)) == d`
//!   for every duration `parse_duration` can return.
//!
//! Deliberately not supported: negative durations, units below a millisecond (`us`,
//! `ns`), calendar units (weeks, months, years), ISO 8601 (`PT30S`), and upper-case
//! units (`1M` could mean a minute or a month; refusing it is kinder than guessing).

use std::time::Duration;

const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;
const SECONDS_PER_DAY: u64 = 86_400;

/// The longest accepted duration in nanoseconds: `i64::MAX`, so conversions never fail.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Fraction digits beyond this many are ignored (they are far below a nanosecond even
/// for days), which keeps the arithmetic inside `u128`.
const MAX_FRACTION_DIGITS: usize = 18;

const UNITS_HINT: &str = "use ms, s, m, h or d, e.g. 30s, 1m30s, 2h";

/// Parses a document duration (`"1m30s"`); the error is a human reason that names the
/// offending text, ready to go into an `InvalidArgument`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err(format!("empty duration ({UNITS_HINT})"));
    }
    if text.starts_with('-') {
        return Err(format!("{s:?} is negative; durations must be zero or more"));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }

    let bytes = text.as_bytes();
    let mut total: u128 = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }

        let int_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let int_digits = &text[int_start..i];
        let mut frac_digits = "";
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let frac_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            frac_digits = &text[frac_start..i];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            let rest = &text[int_start..];
            return Err(format!(
                "{s:?} is not a duration: expected a number at {rest:?} ({UNITS_HINT})"
            ));
        }
        let number = &text[int_start..i];

        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let unit_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_digit() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let unit = &text[unit_start..i];
        let unit_nanos: u128 = match unit {
            "ms" => NANOS_PER_MILLI,
            "s" => NANOS_PER_SECOND,
            "m" => 60 * NANOS_PER_SECOND,
            "h" => 3_600 * NANOS_PER_SECOND,
            "d" => u128::from(SECONDS_PER_DAY) * NANOS_PER_SECOND,
            "" => {
                return Err(format!(
                    "{s:?} is missing a unit after {number:?} ({UNITS_HINT})"
                ));
            }
            other => {
                return Err(format!(
                    "{s:?} has an unknown unit {other:?} ({UNITS_HINT})"
                ));
            }
        };

        let too_long = || {
            format!(
                "{s:?} is too long; the longest duration is {}",
                format_duration(max_duration())
            )
        };
        let whole = parse_digits(int_digits)
            .and_then(|n| n.checked_mul(unit_nanos))
            .ok_or_else(too_long)?;
        let kept = &frac_digits[..frac_digits.len().min(MAX_FRACTION_DIGITS)];
        let fraction = match parse_digits(kept) {
            Some(n) if !kept.is_empty() => n * unit_nanos / 10u128.pow(kept.len() as u32),
            _ => 0,
        };
        total = whole
            .checked_add(fraction)
            .and_then(|n| n.checked_add(total))
            .filter(|n| *n <= MAX_NANOS)
            .ok_or_else(too_long)?;
    }

    let secs = u64::try_from(total / NANOS_PER_SECOND)
        .expect("invariant: total is at most i64::MAX nanoseconds");
    let nanos = u32::try_from(total % NANOS_PER_SECOND)
        .expect("invariant: a remainder of a second fits u32");
    Ok(Duration::new(secs, nanos))
}

/// Writes a duration in the canonical document form: `1d2h`, `1m30s`, `500ms`, `0s`.
///
/// Whole milliseconds print as `ms`; a remainder below a millisecond is written as a
/// fraction of a millisecond (`1.5ms`) so that parsing gives back the same value.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    let secs = d.as_secs();
    let days = secs / SECONDS_PER_DAY;
    let hours = secs % SECONDS_PER_DAY / 3_600;
    let minutes = secs % 3_600 / 60;
    let seconds = secs % 60;
    let millis = d.subsec_millis();
    let sub_milli = d.subsec_nanos() % 1_000_000;

    let mut out = String::new();
    for (value, unit) in [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")] {
        if value > 0 {
            out.push_str(&value.to_string());
            out.push_str(unit);
        }
    }
    if sub_milli > 0 {
        let fraction = format!("{sub_milli:06}");
        out.push_str(&format!("{millis}.{}ms", fraction.trim_end_matches('0')));
    } else if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    out
}

/// The longest duration [`parse_duration`] accepts.
fn max_duration() -> Duration {
    Duration::from_nanos(i64::MAX as u64)
}

/// A run of ASCII digits as a number; `None` when it does not fit (empty means zero).
fn parse_digits(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?.checked_add(u128::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("30s"), Ok(ms(30_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("2h"), Ok(ms(7_200_000)));
        assert_eq!(parse_duration("1d"), Ok(ms(86_400_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse_duration("0.5h"), Ok(ms(1_800_000)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("1h 30m"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration("1 h 30 m"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration(" 10m "), Ok(ms(600_000)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.25ms"), Ok(Duration::from_micros(1_250)));
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("-1s", "negative"),
            ("30", "missing a unit"),
            ("1m30", "missing a unit"),
            ("5y", "unknown unit \"y\""),
            ("5 minutes", "unknown unit \"minutes\""),
            ("5M", "unknown unit \"M\""),
            ("1us", "unknown unit \"us\""),
            ("s", "expected a number"),
            ("1..5s", "unknown unit \".\""),
            ("1.s5", "missing a unit"),
            ("1s 2", "missing a unit"),
            ("99999999999999999999999999999999999999999d", "too long"),
            ("106752d", "too long"),
        ];
        for (input, expected) in cases {
            let err = parse_duration(input).unwrap_err();
            assert!(err.contains(expected), "{input:?}: {err}");
        }
    }

    #[test]
    fn the_longest_duration_is_accepted() {
        let longest = format_duration(max_duration());
        assert_eq!(parse_duration(&longest), Ok(max_duration()));
        assert!(parse_duration("106751d").is_ok());
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(ms(500)), "500ms");
        assert_eq!(format_duration(ms(90_000)), "1m30s");
        assert_eq!(format_duration(ms(7_200_000)), "2h");
        assert_eq!(format_duration(ms(86_400_000 + 3_600_000)), "1d1h");
        assert_eq!(format_duration(ms(1_500)), "1s500ms");
        assert_eq!(format_duration(Duration::from_micros(1_250)), "1.25ms");
        assert_eq!(format_duration(Duration::from_nanos(1)), "0.000001ms");
    }

    #[test]
    fn format_then_parse_is_identity() {
        let samples = [
            Duration::ZERO,
            ms(1),
            ms(999),
            ms(1_000),
            ms(59_999),
            ms(3_600_000),
            ms(86_399_999),
            ms(86_400_000 * 365 + 1),
            Duration::from_nanos(1),
            Duration::from_nanos(1_000_001),
            Duration::new(12_345, 678_901_234),
            max_duration(),
        ];
        for d in samples {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        // And the canonical text is a fixed point.
        for text in ["1m30s", "2h", "500ms", "1d1h1m1s1ms", "0s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
